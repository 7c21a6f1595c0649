//! Suspect labels (issue 17 item 3) through the binary on both backends:
//! weekly training flags imported labels flipped at known places, keeps
//! them out of training, lists them in `stats suspects` (most suspicious
//! first) and ranks them in `stats queue`, counted in what waits for
//! review; a human's confirmation, correction or reject
//! ends a suspicion, and a human's label is never suspected again. The
//! measurement of the flags on CLINC150 (the bar) is the last test.

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use flywheel::domain::{Provenance, ReviewVerdict, WaitingPlace};
use flywheel::review::decisions;
use flywheel::review::order::{Ranked, review_order};
use flywheel::storage::Timestamp;
use flywheel::storage::samples::NewSample;
use flywheel::storage::suspects::NewSuspect;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use support::{Exits, TestDb, exec, for_each_backend, json_stdout, scalar};

/// A labelled file: (text, intent) per line, and the texts whose label
/// was flipped to another intent.
struct Flipped {
    path: PathBuf,
    flipped: HashSet<String>,
}

/// `per_intent` utterances of each intent of `data`, every label flipped
/// to another intent with probability `rate` (exactly `rate` of them, at
/// places a seeded shuffle picks), written as JSONL into `dir`.
fn flipped_file(
    dir: &Path,
    data: &[(String, String)],
    intents: usize,
    per_intent: usize,
    rate: f64,
    seed: u64,
) -> Flipped {
    let mut by_intent: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut seen = HashSet::new();
    for (text, intent) in data {
        // One line per normalised text, so the flipped texts are the stored ones.
        if seen.insert(flywheel::text::normalize_for_dedup(text)) {
            by_intent.entry(intent).or_default().push(text);
        }
    }
    let names: Vec<&str> = by_intent
        .iter()
        .filter(|(_, texts)| texts.len() >= per_intent)
        .map(|(intent, _)| *intent)
        .take(intents)
        .collect();
    assert_eq!(names.len(), intents, "not enough intents in the data");
    let mut rows: Vec<(&str, &str)> = names
        .iter()
        .flat_map(|intent| {
            by_intent[intent][..per_intent]
                .iter()
                .map(move |text| (*text, *intent))
        })
        .collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut places: Vec<usize> = (0..rows.len()).collect();
    places.shuffle(&mut rng);
    let mut flipped = HashSet::new();
    for &i in &places[..(rows.len() as f64 * rate).round() as usize] {
        let others: Vec<&str> = names.iter().copied().filter(|n| *n != rows[i].1).collect();
        rows[i].1 = others[rng.random_range(0..others.len())];
        flipped.insert(rows[i].0.to_string());
    }
    let path = dir.join("flipped.jsonl");
    let lines: Vec<String> = rows
        .iter()
        .map(|(text, intent)| serde_json::json!({ "text": text, "intent": intent }).to_string())
        .collect();
    std::fs::write(&path, lines.join("\n")).unwrap();
    Flipped { path, flipped }
}

/// (text, intent) of every line of a JSONL file.
fn read_jsonl(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            (
                v["text"].as_str().unwrap().to_string(),
                v["intent"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// `stats suspects --json` with room for every suspect.
fn suspects(db: &TestDb) -> Value {
    db.json(&["stats", "suspects", "--json", "--limit", "10000"])
}

/// Precision and recall of `items` (stats suspects' items) against the
/// flipped texts: over the first `top`, and over all of them.
fn measure(items: &[Value], flipped: &HashSet<String>, top: usize) -> (f64, f64) {
    let hit = |item: &Value| flipped.contains(item["text"].as_str().unwrap());
    let head = items.iter().take(top).filter(|i| hit(i)).count();
    let found = items.iter().filter(|i| hit(i)).count();
    (
        head as f64 / top.min(items.len()).max(1) as f64,
        found as f64 / flipped.len() as f64,
    )
}

/// Weekly training with flagging on (it is off by default).
fn train(db: &TestDb) -> Value {
    let out = db
        .cmd()
        .env("FLYWHEEL_SUSPECTS__ENABLED", "true")
        .args(["weekly-training", "--force", "--json"])
        .succeeds();
    json_stdout(&out)["result"].clone()
}

#[test]
fn flipped_labels_are_flagged_kept_out_of_training_and_resolved_by_a_human() {
    let seed = read_jsonl(&Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/seed/seed.jsonl"));
    for db in TestDb::all() {
        let file = flipped_file(db.data_path(), &seed, 16, 60, 0.1, 3);
        db.cmd()
            .args(["samples", "import"])
            .arg(&file.path)
            .assert()
            .success();

        let first = train(&db);
        let version = first["version"].as_str().unwrap().to_string();
        let listed = suspects(&db);
        let items = listed["items"].as_array().unwrap().clone();
        let flagged = first["suspects"].as_u64().unwrap();
        assert!(flagged > 0, "{first}");
        assert_eq!(listed["total"].as_u64(), Some(flagged));
        assert_eq!(items.len() as u64, flagged);
        // The JSON shape, most suspicious first.
        for item in &items {
            for field in ["sample_id", "text", "intent", "suggested", "score"] {
                assert!(!item[field].is_null(), "{field} missing: {item}");
            }
            assert_ne!(item["intent"], item["suggested"], "{item}");
            assert_eq!(item["flagged_by"], version.as_str());
        }
        let scores: Vec<f64> = items.iter().map(|i| i["score"].as_f64().unwrap()).collect();
        assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
        // Looser than the CLINC150 bar below: 960 template utterances,
        // whose near-duplicates carry a flipped label over to their twins.
        let (precision, recall) = measure(&items, &file.flipped, 20);
        assert!(
            precision >= 0.8 && recall >= 0.5,
            "precision in the top 20 {precision:.2}, recall {recall:.2} of {} flipped",
            file.flipped.len()
        );

        // Kept out of training: a suspect outside the gold test split is
        // the only approved sample the version did not use.
        let ids: Vec<i64> = items
            .iter()
            .map(|i| i["sample_id"].as_i64().unwrap())
            .collect();
        let left_out = ids
            .iter()
            .filter(|id| !flywheel::gold::judges(**id, Provenance::Import, 15))
            .count() as i64;
        let ids_list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        let unused_sql = "SELECT COUNT(*) FROM training_samples WHERE model_version_target IS NULL";
        let suspects_unused = format!("{unused_sql} AND id IN ({ids_list})");
        let (unused, unused_suspects) = db.with_store(move |store| async move {
            (
                scalar(&store, unused_sql).await,
                scalar(&store, &suspects_unused).await,
            )
        });
        assert_eq!((unused, unused_suspects), (left_out, left_out));
        let trained =
            first["train_samples"].as_i64().unwrap() + first["test_samples"].as_i64().unwrap();
        assert_eq!(trained, 960 - left_out, "{first}");

        // `stats queue` shows them waiting for a human, in review order:
        // nothing else waits, so most suspicious first.
        let queue = db.json(&["stats", "queue", "--json", "--limit", "10000"]);
        assert_eq!(queue["waiting"]["suspects"].as_u64(), Some(flagged));
        assert_eq!(queue["waiting"]["total"].as_u64(), Some(flagged));
        let ranked = queue["items"].as_array().unwrap();
        assert_eq!(ranked.len() as u64, flagged);
        for (item, listed) in ranked.iter().zip(&items) {
            assert_eq!(item["sample_id"], listed["sample_id"], "{item}");
            let reason = format!(
                "suspect: model says {}",
                listed["suggested"].as_str().unwrap()
            );
            assert_eq!(item["reason"], reason.as_str());
            assert_eq!(item["suspect"]["suggested"], listed["suggested"]);
        }
        let text = db.output(&["stats", "queue"]);
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(
            text.contains(&format!("{flagged} suspect labels")),
            "{text}"
        );
        assert!(text.contains("model says"), "{text}");

        // A human corrects the first, confirms the second, rejects the third.
        let pick = |i: usize| {
            (
                items[i]["sample_id"].as_i64().unwrap(),
                items[i]["intent"].as_str().unwrap().to_string(),
                items[i]["suggested"].as_str().unwrap().to_string(),
            )
        };
        let (corrected, _, suggestion) = pick(0);
        let (confirmed, stored, _) = pick(1);
        let (rejected, _, _) = pick(2);
        db.with_store(move |store| async move {
            for (id, verdict) in [
                (corrected, ReviewVerdict::Choose(suggestion.clone())),
                (confirmed, ReviewVerdict::Choose(stored.clone())),
                (rejected, ReviewVerdict::Reject),
            ] {
                decisions::record(&store, id, verdict, Some("tester".into()), Timestamp::now())
                    .await
                    .unwrap();
            }
            let corrected = store.sample(corrected).await.unwrap().unwrap();
            assert_eq!(
                (corrected.intent, corrected.source),
                (suggestion, Provenance::Human)
            );
            let confirmed = store.sample(confirmed).await.unwrap().unwrap();
            assert_eq!(
                (confirmed.intent, confirmed.source),
                (stored, Provenance::Human)
            );
        });
        let after = suspects(&db);
        assert_eq!(after["total"].as_u64(), Some(flagged - 3));
        let remaining: HashSet<i64> = after["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["sample_id"].as_i64().unwrap())
            .collect();
        assert!(
            [corrected, confirmed, rejected]
                .iter()
                .all(|id| !remaining.contains(id))
        );

        // The next run: a human's label is never suspected again.
        let second = train(&db);
        let again: HashSet<i64> = suspects(&db)["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["sample_id"].as_i64().unwrap())
            .collect();
        assert_eq!(again.len() as u64, second["suspects"].as_u64().unwrap());
        assert!(!again.contains(&corrected) && !again.contains(&confirmed));
    }
}

/// A flag on sample `id`.
fn suspect(id: i64, flagged: &str, suggested: &str, score: f64) -> NewSuspect {
    NewSuspect {
        sample_id: id,
        flagged_intent: flagged.into(),
        suggested_intent: suggested.into(),
        score,
    }
}

/// An approved imported sample.
fn imported(text: &str, intent: &str) -> NewSample {
    support::fixtures::approved_sample(text, intent, Provenance::Import)
}

#[test]
fn suspects_are_read_most_suspicious_first_and_end_with_the_label_they_doubt() {
    for_each_backend(|store| async move {
        let rows = store
            .upsert_samples(&[
                imported("where is my parcel", "order_food"),
                imported("i want a pizza", "track_order"),
                imported("hello there", "goodbye"),
            ])
            .await
            .unwrap();
        let id: HashMap<usize, i64> = rows.iter().enumerate().map(|(i, r)| (i, r.id)).collect();
        let flag = |i: usize, flagged, suggested, score| suspect(id[&i], flagged, suggested, score);
        store
            .replace_suspects(
                "router-v1.1.0",
                &[
                    flag(0, "order_food", "track_order", 0.4),
                    flag(1, "track_order", "order_food", 0.9),
                    flag(2, "goodbye", "greeting", 0.6),
                ],
            )
            .await
            .unwrap();
        let order: Vec<i64> = store
            .suspects(10)
            .await
            .unwrap()
            .iter()
            .map(|s| s.sample.id)
            .collect();
        assert_eq!(order, vec![id[&1], id[&2], id[&0]]);
        assert_eq!(store.suspect_count().await.unwrap(), 3);
        let first = &store.suspects(1).await.unwrap()[0];
        assert_eq!(
            (first.suggested_intent.as_str(), first.flagged_by.as_str()),
            ("order_food", "router-v1.1.0")
        );

        // An import that gives the sample another label ends the suspicion.
        exec(
            &store,
            &format!(
                "UPDATE training_samples SET intent = 'greeting' WHERE id = {}",
                id[&2]
            ),
        )
        .await;
        assert_eq!(store.suspect_count().await.unwrap(), 2);

        // The next run's flags replace the last run's.
        store
            .replace_suspects(
                "router-v1.2.0",
                &[flag(0, "order_food", "track_order", 0.5)],
            )
            .await
            .unwrap();
        assert_eq!(store.suspect_count().await.unwrap(), 1);
        assert_eq!(
            scalar(&store, "SELECT COUNT(*) FROM label_suspects").await,
            1
        );
        store.replace_suspects("router-v1.3.0", &[]).await.unwrap();
        assert!(store.suspects(10).await.unwrap().is_empty());
    });
}

/// A sample waiting for review, as daily capture leaves it.
fn waiting(text: &str, intent: &str, priority: i32) -> NewSample {
    NewSample {
        source: Provenance::Auto,
        review_status: flywheel::domain::ReviewStatus::NeedsReview,
        priority,
        predicted_intent: Some(intent.into()),
        predicted_by_version: Some("router-v1.0.0".into()),
        confidence: Some(0.5),
        ..imported(text, intent)
    }
}

#[test]
fn label_studio_gets_suspects_marked_at_the_head_of_their_share() {
    let runtime = support::fuzz::runtime(1);
    let fake = runtime.block_on(support::fake_label_studio::FakeLabelStudio::start(
        "f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1",
    ));
    for db in TestDb::all() {
        let suspected = db.with_store(|store| async move {
            let rows = store
                .upsert_samples(&[
                    waiting("refund please", "refund_request", 2),
                    waiting("hello", "greeting", 5),
                    waiting("bye now", "goodbye", 5),
                    imported("where is my parcel", "order_food"),
                    imported("i want a pizza", "track_order"),
                ])
                .await
                .unwrap();
            let (low, high) = (rows[3].id, rows[4].id);
            store
                .replace_suspects(
                    "router-v1.1.0",
                    &[
                        suspect(low, "order_food", "track_order", 0.5),
                        suspect(high, "track_order", "order_food", 0.9),
                    ],
                )
                .await
                .unwrap();
            (low, high)
        });
        let before = fake.imported().len();
        db.cmd()
            .args(["label-studio-sync", "--push-only", "--json"])
            .env("LABEL_STUDIO_URL", &fake.url)
            .env(
                "LABEL_STUDIO_API_KEY",
                "f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1",
            )
            .env("LABEL_STUDIO_PROJECT_ID", "3")
            .env("FLYWHEEL_SUSPECTS__SHARE", "50")
            .assert()
            .success();
        let pushed: Vec<Value> = fake.imported()[before..].to_vec();
        let order: Vec<&str> = pushed.iter().map(|d| d["text"].as_str().unwrap()).collect();
        // No audit waits: half of every stretch to suspects, a suspect first.
        assert_eq!(
            order,
            [
                "i want a pizza",
                "refund please",
                "where is my parcel",
                "hello",
                "bye now"
            ]
        );
        assert_eq!(pushed[0]["suspect"], true);
        assert_eq!(pushed[0]["suggested"], "order_food");
        assert_eq!(
            pushed[0]["predicted_intent"],
            "track_order (suspect: model says order_food)"
        );
        assert!(pushed[1].get("suspect").is_none(), "{}", pushed[1]);
        assert_eq!(pushed[1]["predicted_intent"], "refund_request");

        // Waiting in Label Studio, they keep their place in the order it is handed.
        let (low, high) = suspected;
        let mut config = db.config();
        config.suspects.share = 50;
        db.with_store(move |store| async move {
            let in_label_studio = |order: Vec<Ranked>| -> Vec<Ranked> {
                order
                    .into_iter()
                    .filter(|r| r.item.place == WaitingPlace::LabelStudio)
                    .collect()
            };
            let tasks = in_label_studio(review_order(&store, &config).await.unwrap());
            let score = |id: i64| {
                tasks
                    .iter()
                    .find(|t| t.item.sample_id == id)
                    .and_then(|t| t.item.suspect_score)
            };
            assert_eq!((score(low), score(high)), (Some(0.5), Some(0.9)));
            assert_eq!(tasks.len(), 5);
            let order: Vec<i64> = tasks.iter().map(|t| t.item.sample_id).collect();
            assert_eq!((order[0], order[2]), (high, low));
            // Decided in Label Studio (or anywhere): no longer a suspect task.
            decisions::record(&store, high, ReviewVerdict::Reject, None, Timestamp::now())
                .await
                .unwrap();
            let tasks = in_label_studio(review_order(&store, &config).await.unwrap());
            assert!(tasks.iter().all(|t| t.item.sample_id != high));
            assert_eq!(tasks.len(), 4);
        });
    }
}

#[test]
fn a_suspect_waits_for_review_in_stats_queue_and_status() {
    for db in TestDb::all() {
        let (queued, suspected) = db.with_store(|store| async move {
            let rows = store
                .upsert_samples(&[
                    waiting("refund please", "refund_request", 2),
                    waiting("hello", "greeting", 5),
                    imported("where is my parcel", "order_food"),
                ])
                .await
                .unwrap();
            store
                .replace_suspects(
                    "router-v1.1.0",
                    &[suspect(rows[2].id, "order_food", "track_order", 0.7)],
                )
                .await
                .unwrap();
            ([rows[0].id, rows[1].id], rows[2].id)
        });

        // Ranked with the queue: the suspects' share puts it first.
        let queue = db.json(&["stats", "queue", "--json"]);
        let items = queue["items"].as_array().unwrap();
        let ids: Vec<i64> = items
            .iter()
            .map(|i| i["sample_id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids, vec![suspected, queued[0], queued[1]], "{queue}");
        assert_eq!(items[0]["rank"], 1);
        assert_eq!(items[0]["reason"], "suspect: model says track_order");
        assert_eq!(items[0]["where"], "here");
        assert_eq!(items[0]["intent"], "order_food");
        assert_eq!(items[0]["suspect"]["suggested"], "track_order");
        assert!(items[1].get("suspect").is_none(), "{}", items[1]);
        assert_eq!(queue["waiting"]["total"], 3);
        assert_eq!(queue["waiting"]["suspects"], 1);
        assert_eq!(queue["waiting"]["needs_review"], 2);

        // Counted in what waits, wherever it is read.
        let status = db.json(&["status", "--json"]);
        assert_eq!(status["queue"], queue["waiting"], "{status}");
        let text = db.output(&["status"]);
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(
            text.contains(
                "3 samples waiting for review (1 urgent): 3 here; 1 suspect label among them"
            ),
            "{text}"
        );

        // A human confirms it: it waits no more.
        db.with_store(move |store| async move {
            decisions::record(
                &store,
                suspected,
                ReviewVerdict::Choose("order_food".into()),
                Some("tester".into()),
                Timestamp::now(),
            )
            .await
            .unwrap();
        });
        let status = db.json(&["status", "--json"]);
        assert_eq!(
            (
                status["queue"]["total"].as_i64(),
                status["queue"]["suspects"].as_i64()
            ),
            (Some(2), Some(0))
        );
        let queue = db.json(&["stats", "queue", "--json"]);
        assert!(
            queue["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i["sample_id"] != suspected && i.get("suspect").is_none()),
            "{queue}"
        );
    }
}

#[test]
fn stats_suspects_says_when_there_are_none() {
    let db = TestDb::sqlite();
    db.cmd().arg("migrate").assert().success();
    let json = db.json(&["stats", "suspects", "--json"]);
    assert_eq!(json["total"], 0);
    assert_eq!(json["items"], serde_json::json!([]));
    let out = db.output(&["stats", "suspects"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("No suspect labels"));
}

/// The benchmark data (`../shared/data`, or `$FLYWHEEL_BENCH_DATA`), when present.
fn clinc_train() -> Option<PathBuf> {
    let dir = std::env::var_os("FLYWHEEL_BENCH_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    let file = dir.join("clinc150_train.jsonl");
    file.is_file().then_some(file)
}

/// The bar: 1 600 labelled CLINC150 utterances (40 intents, 40
/// each) imported with 10 % of the labels flipped, then `weekly-training
/// --force`: precision ≥ 0.8 in the top 100 of `stats suspects`, recall ≥
/// 0.6. About 20 s unoptimised.
#[test]
fn suspect_flags_on_clinc150_with_a_tenth_of_the_labels_flipped_meet_the_bar() {
    let Some(clinc) = clinc_train() else {
        eprintln!("skipping: no benchmark data (../shared/data or $FLYWHEEL_BENCH_DATA)");
        return;
    };
    let data: Vec<(String, String)> = read_jsonl(&clinc)
        .into_iter()
        .filter(|(_, intent)| intent != "oos")
        .collect();
    let db = TestDb::sqlite();
    let file = flipped_file(db.data_path(), &data, 40, 40, 0.1, 17);
    assert_eq!(file.flipped.len(), 160);
    db.cmd()
        .args(["samples", "import"])
        .arg(&file.path)
        .assert()
        .success();
    let started = std::time::Instant::now();
    let result = train(&db);
    let items = suspects(&db)["items"].as_array().unwrap().clone();
    let (precision, recall) = measure(&items, &file.flipped, 100);
    eprintln!(
        "suspects: {} flagged, precision in the top 100 {precision:.2}, recall {recall:.2} \
         ({} of 160 flipped); weekly training {:.1} s",
        items.len(),
        items
            .iter()
            .filter(|i| file.flipped.contains(i["text"].as_str().unwrap()))
            .count(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(result["suspects"].as_u64(), Some(items.len() as u64));
    assert!(precision >= 0.8, "precision in the top 100: {precision:.2}");
    assert!(recall >= 0.6, "recall: {recall:.2}");
}
