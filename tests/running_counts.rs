//! The running counts behind the console (migration 0014) on both
//! backends: after concurrent capture, sample and review writers, a prune
//! and a hand-made correction, every counter equals what counting the rows
//! gives; the migration backfills rows written before it existed.

mod support;

use std::collections::BTreeMap;

use chrono::{Duration, Utc};
use flywheel::domain::{Provenance, ReviewStatus, ReviewVerdict};
use flywheel::storage::capture_stats::{Bucket, MixDimension};
use flywheel::storage::conversations::NewConversation;
use flywheel::storage::samples::{NewSample, ReviewDecision};
use flywheel::storage::{Store, Timestamp};
use support::backends::timestamp_at;
use support::{Backend, TestDb, block_on, exec, rows};

const CAPTURE_WRITERS: usize = 6;
const BATCHES: usize = 8;
const BATCH: usize = 40;
/// Concurrent sample writers on PostgreSQL (two daily-capture batches
/// write at once there). SQLite's are one at a time in Flywheel — daily
/// capture under its stage lock — and an upsert, which reads before it
/// writes, cannot take the write lock past another writer's commit.
const PG_SAMPLE_WRITERS: usize = 4;

fn conversation(writer: usize, batch: usize, i: usize) -> NewConversation {
    let n = writer * 1000 + batch * 100 + i;
    // Spread over 90 minutes, a few far in the past (what prune takes).
    let age = if n.is_multiple_of(17) {
        Duration::days(200)
    } else {
        Duration::minutes((n % 90) as i64)
    };
    NewConversation {
        created_at: Timestamp::from(Utc::now() - age),
        session_id: Some(format!("s{writer}")),
        user_hash: None,
        user_message: format!("message {n}"),
        language: ["en", "hi", "hinglish"].get(n % 4).map(|l| l.to_string()),
        nlu_provider: (!n.is_multiple_of(5)).then(|| "flywheel-router".to_string()),
        model_version: Some("router-v1.0.0".into()),
        nlu_intent: Some(format!("intent_{}", n % 7)),
        nlu_confidence: Some(0.5),
        fallback: false,
        routing_decision: None,
        classify_ms: Some(n as f64 / 10.0),
        classify_error: None,
    }
}

/// Overlapping texts across writers, so some upserts fold into a sample
/// another writer created (and may move its priority).
fn sample(writer: usize, i: usize) -> NewSample {
    let text = format!("sample {}", (writer * 7 + i) % 60);
    let needs_review = !i.is_multiple_of(3);
    NewSample {
        text: text.clone(),
        normalized_text: text,
        language: Some("en".into()),
        intent: "track_order".into(),
        source: Provenance::Auto,
        review_status: if needs_review {
            ReviewStatus::NeedsReview
        } else {
            ReviewStatus::Approved
        },
        priority: if (writer + i).is_multiple_of(2) { 2 } else { 5 },
        predicted_intent: Some("track_order".into()),
        predicted_by_version: Some("router-v1.0.0".into()),
        confidence: Some(0.6),
        occurrences: 1,
        conversation_id: None,
    }
}

fn round_of_samples(writer: usize, round: usize) -> Vec<NewSample> {
    (round * 6..round * 6 + 6)
        .map(|i| sample(writer, i))
        .collect()
}

const ROUNDS: usize = 5;

async fn write_concurrently(store: &Store) {
    // SQLite's sample upserts go first (see PG_SAMPLE_WRITERS); its
    // reviews still run among the captures.
    let upsert_concurrently = store.is_postgres();
    let mut upserted_first: Vec<Vec<i64>> = Vec::new();
    if !upsert_concurrently {
        for writer in 0..PG_SAMPLE_WRITERS {
            for round in 0..ROUNDS {
                let stored = store
                    .upsert_samples(&round_of_samples(writer, round))
                    .await
                    .expect("upsert");
                upserted_first.push(stored.iter().map(|s| s.id).collect());
            }
        }
    }
    let mut writers = Vec::new();
    for writer in 0..CAPTURE_WRITERS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for batch in 0..BATCHES {
                let rows: Vec<NewConversation> =
                    (0..BATCH).map(|i| conversation(writer, batch, i)).collect();
                store.insert_conversations(&rows).await.expect("capture");
            }
        }));
    }
    for writer in 0..PG_SAMPLE_WRITERS {
        let store = store.clone();
        let first: Vec<Vec<i64>> = upserted_first
            .iter()
            .skip(writer * ROUNDS)
            .take(ROUNDS)
            .cloned()
            .collect();
        writers.push(tokio::spawn(async move {
            for round in 0..ROUNDS {
                let ids = if upsert_concurrently {
                    let stored = store
                        .upsert_samples(&round_of_samples(writer, round))
                        .await
                        .expect("upsert");
                    stored.iter().map(|s| s.id).collect()
                } else {
                    first.get(round).cloned().expect("upserted first")
                };
                // A reviewer decides one of each round as it arrives.
                let decision = ReviewDecision {
                    verdict: if round % 2 == 0 {
                        ReviewVerdict::Accept
                    } else {
                        ReviewVerdict::Reject
                    },
                    annotator: Some(format!("reviewer {writer}")),
                    decided_at: Timestamp::now(),
                };
                store.apply_review(ids[0], &decision).await.expect("review");
            }
        }));
    }
    for writer in writers {
        writer.await.expect("writer task");
    }
}

/// Every counter against counting the rows.
async fn assert_counters_exact(store: &Store, when: &str) {
    let epoch = Timestamp(chrono::DateTime::UNIX_EPOCH);
    let counted = store.counted_captures_per_minute(epoch).await.unwrap();
    let actual = store.capture_counts(epoch, Bucket::Minute).await.unwrap();
    assert!(!actual.is_empty(), "{when}: nothing captured");
    assert_eq!(counted, actual, "{when}: captures per minute");

    let mut counted_mix = BTreeMap::new();
    for c in store.counted_capture_mix(epoch).await.unwrap() {
        counted_mix.insert((format!("{:?}", c.dimension), c.value), c.count);
    }
    let mut actual_mix = BTreeMap::new();
    for dimension in [
        MixDimension::Provider,
        MixDimension::Language,
        MixDimension::Intent,
    ] {
        for m in store.capture_mix(epoch, dimension).await.unwrap() {
            *actual_mix
                .entry((format!("{dimension:?}"), m.value))
                .or_insert(0) += m.count;
        }
    }
    assert_eq!(counted_mix, actual_mix, "{when}: mix");

    let counted_samples: Vec<(String, i32, i64)> = store
        .counted_samples()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.review_status.as_str().to_string(), c.priority, c.samples))
        .collect();
    let actual_samples: Vec<(String, i32, i64)> = rows(
        store,
        "SELECT review_status, priority, COUNT(*) FROM training_samples \
         GROUP BY review_status, priority ORDER BY priority, review_status",
    )
    .await;
    assert!(!actual_samples.is_empty(), "{when}: no samples");
    assert_eq!(counted_samples, actual_samples, "{when}: samples");
}

#[test]
fn counters_equal_counting_after_concurrent_writers_prune_and_corrections() {
    for db in TestDb::all() {
        // A runtime with worker threads: the writers really overlap.
        let config = db.config();
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(4)
                .enable_all()
                .build()
                .unwrap()
                .block_on(async move {
                    let store = flywheel::storage::open(&config).await.unwrap();
                    write_concurrently(&store).await;
                    assert_counters_exact(&store, "after concurrent writers").await;

                    // Retention: prune's batches delete the old ones.
                    let cutoff = Timestamp::from(Utc::now() - Duration::days(100));
                    let pruned = store
                        .delete_conversations_before(cutoff, 1000)
                        .await
                        .unwrap();
                    assert!(pruned > 0, "the seed has old conversations");
                    // A hand-made correction moves rows in time and language.
                    let moved = timestamp_at(&store, Utc::now() - Duration::hours(30));
                    exec(
                        &store,
                        &format!(
                            "UPDATE conversation_logs SET created_at = {moved}, language = 'hi' \
                             WHERE id % 11 = 0"
                        ),
                    )
                    .await;
                    exec(&store, "DELETE FROM training_samples WHERE id % 9 = 0").await;
                    assert_counters_exact(&store, "after prune and corrections").await;

                    // Folding moves rows between shards, never a total.
                    store.fold_counter_shards().await.unwrap();
                    assert_counters_exact(&store, "after folding").await;
                    store.close().await;
                })
        })
        .join()
        .expect("test thread");
    }
}

#[test]
fn folding_leaves_one_row_per_key_once_the_writers_are_gone() {
    let Some(db) = TestDb::postgres() else { return };
    let config = db.config();
    block_on(async move {
        let writers = flywheel::storage::open(&config).await.unwrap();
        write_concurrently(&writers).await;
        // Each writing backend counted in a shard of its own.
        let shards: i64 = support::scalar(
            &writers,
            "SELECT COUNT(DISTINCT shard) FROM capture_counts WHERE shard <> 0",
        )
        .await;
        assert!(shards >= 1, "the writers counted in their own shards");
        writers.close().await;

        let store = flywheel::storage::open(&config).await.unwrap();
        // A closed pool's backends end asynchronously on the server: wait
        // for each (pg_terminate_backend's timeout waits for the exit).
        exec(
            &store,
            "SELECT pg_terminate_backend(s.shard::int, 10000) \
             FROM (SELECT DISTINCT shard FROM capture_counts WHERE shard <> 0) s \
             JOIN pg_stat_activity a ON a.pid = s.shard",
        )
        .await;
        store.fold_counter_shards().await.unwrap();
        let left: i64 = support::scalar(
            &store,
            "SELECT COUNT(*) FROM capture_counts WHERE shard <> 0",
        )
        .await;
        assert_eq!(left, 0, "rows of gone writers were folded into shard 0");
        let zero: i64 = support::scalar(
            &store,
            "SELECT COUNT(*) FROM capture_counts WHERE captures = 0",
        )
        .await;
        assert_eq!(zero, 0, "rows at zero are dropped");
        assert_counters_exact(&store, "after folding gone writers").await;
        store.close().await;
    });
}

/// Copy the first `upto` migrations of `backend` into a directory of their own.
fn migrations_upto(backend: Backend, upto: u32) -> tempfile::TempDir {
    let from = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(match backend {
        Backend::Sqlite => "migrations/sqlite",
        Backend::Postgres => "migrations/postgres",
    });
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&from).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let number: u32 = name[..4].parse().unwrap();
        if number <= upto {
            std::fs::copy(&path, dir.path().join(&name)).unwrap();
        }
    }
    dir
}

#[test]
fn migration_backfills_the_counters_from_existing_rows() {
    for db in TestDb::all() {
        let config = db.config();
        let migrations = migrations_upto(db.backend, 13);
        block_on(async move {
            let store =
                flywheel::storage::open_unmigrated(&config, flywheel::storage::OpenMode::Create)
                    .await
                    .unwrap();
            let migrator = sqlx::migrate::Migrator::new(migrations.path())
                .await
                .unwrap();
            match store.backend() {
                flywheel::storage::Backend::Sqlite(pool) => migrator.run(pool).await,
                flywheel::storage::Backend::Postgres(pool) => migrator.run(pool).await,
            }
            .expect("migrations up to 0013");
            // Written as a binary of schema 13 wrote them: the columns of
            // later migrations do not exist yet.
            let values: Vec<String> = (0..300)
                .map(|i| {
                    let c = conversation(1, i / 100, i % 100);
                    let text = |v: &Option<String>| {
                        v.as_deref()
                            .map_or("NULL".to_string(), |v| format!("'{v}'"))
                    };
                    format!(
                        "({}, {}, '{}', {}, {}, {}, {}, FALSE)",
                        timestamp_at(&store, c.created_at.0),
                        text(&c.session_id),
                        c.user_message,
                        text(&c.language),
                        text(&c.nlu_intent),
                        text(&c.nlu_provider),
                        text(&c.model_version),
                    )
                })
                .collect();
            exec(
                &store,
                &format!(
                    "INSERT INTO conversation_logs (created_at, session_id, user_message, language, \
                       nlu_intent, nlu_provider, model_version, fallback) VALUES {}",
                    values.join(", ")
                ),
            )
            .await;
            let samples: Vec<NewSample> = (0..30).map(|i| sample(0, i)).collect();
            store.upsert_samples(&samples).await.unwrap();
            store.close().await;

            let store = flywheel::storage::open(&config)
                .await
                .expect("migrate to 0014");
            assert_counters_exact(&store, "after the backfill").await;
            store.close().await;
        });
    }
}
