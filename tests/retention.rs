//! `flywheel prune` on both backends (old conversations go, new ones and
//! every sample stay, a dry run changes nothing) and `flywheel backup` of
//! the embedded database (a usable copy, never over an existing file,
//! PostgreSQL pointed at pg_dump).

mod support;

use support::backends::timestamp_at;
use support::{Exits, TestDb, block_on, exec, json_stdout, scalar};

/// 3 conversations 200 days old (one still pending, one behind a sample)
/// and 2 from today.
async fn seed(store: &flywheel::storage::Store) {
    let old = timestamp_at(store, chrono::Utc::now() - chrono::Duration::days(200));
    for (text, status, age) in [
        ("old pending", "pending", old.as_str()),
        ("old approved", "auto-approved", &old),
        ("old reviewed", "reviewed", &old),
        ("new one", "pending", ""),
        ("new two", "needs-review", ""),
    ] {
        exec(
            store,
            &format!("INSERT INTO conversation_logs (user_message, review_status) VALUES ('{text}', '{status}')"),
        )
        .await;
        if !age.is_empty() {
            exec(
                store,
                &format!(
                    "UPDATE conversation_logs SET created_at = {age} WHERE user_message = '{text}'"
                ),
            )
            .await;
        }
    }
    exec(
        store,
        "INSERT INTO training_samples (text, normalized_text, intent, source, review_status, conversation_id) \
         SELECT 'old approved', 'old approved', 'greeting', 'auto', 'approved', id \
         FROM conversation_logs WHERE user_message = 'old approved'",
    )
    .await;
    // every conversation linked for review, old and new
    exec(
        store,
        "INSERT INTO review_links (conversation_id, sample_id) \
         SELECT c.id, s.id FROM conversation_logs c, training_samples s",
    )
    .await;
}

#[test]
fn prune_deletes_old_conversations_and_keeps_samples() {
    for db in TestDb::all() {
        db.with_store(move |store| async move {
            seed(&store).await;
        });

        let dry = db
            .cmd()
            .args(["--json", "prune", "--older-than", "180d", "--dry-run"])
            .succeeds();
        let dry = json_stdout(&dry)["prune"].clone();
        assert_eq!(
            (dry["conversations"].as_i64(), dry["pending"].as_i64()),
            (Some(3), Some(1)),
            "{dry}"
        );
        assert_eq!(dry["deleted"], 0);

        let config = db.config();
        let before = block_on(async move {
            let store = flywheel::storage::open(&config).await.unwrap();
            let n = scalar(&store, "SELECT COUNT(*) FROM conversation_logs").await;
            store.close().await;
            n
        });
        assert_eq!(before, 5, "the dry run deleted something");

        let real = db
            .cmd()
            .args(["--json", "prune", "--older-than", "180d"])
            .succeeds();
        assert_eq!(json_stdout(&real)["prune"]["deleted"], 3);

        db.with_store(move |store| async move {
            assert_eq!(
                scalar(&store, "SELECT COUNT(*) FROM conversation_logs").await,
                2
            );
            assert_eq!(
                scalar(
                    &store,
                    "SELECT COUNT(*) FROM conversation_logs WHERE user_message LIKE 'new%'"
                )
                .await,
                2
            );
            // Only the kept conversations keep their review links.
            assert_eq!(
                scalar(&store, "SELECT COUNT(*) FROM review_links").await,
                scalar(&store, "SELECT COUNT(*) FROM conversation_logs").await
            );
            // The sample stays, unlinked from its pruned conversation.
            assert_eq!(
                scalar(&store, "SELECT COUNT(*) FROM training_samples WHERE text = 'old approved' AND conversation_id IS NULL").await,
                1
            );
            assert_eq!(
                scalar(
                    &store,
                    "SELECT COUNT(*) FROM job_runs WHERE stage = 'prune' AND status = 'succeeded'"
                )
                .await,
                1
            );
        });

        // A retention shorter than a day is refused as a usage error.
        db.cmd().args(["prune", "--older-than", "2h"]).exits_with(2);
    }
}

#[test]
fn backup_copies_the_embedded_database_and_never_overwrites() {
    let db = TestDb::sqlite();
    db.with_store(move |store| async move {
        seed(&store).await;
    });
    let target = db.data_path().join("copy.db");
    let out = db.cmd().args(["--json", "backup"]).arg(&target).succeeds();
    assert!(json_stdout(&out)["backup"]["bytes"].as_u64().unwrap() > 0);

    // The copy is a whole Flywheel database: the binary reads it as one.
    let restored = tempfile::tempdir().unwrap();
    std::fs::copy(&target, restored.path().join("flywheel.db")).unwrap();
    let status = support::environment::flywheel_cmd(restored.path())
        .arg("--data-dir")
        .arg(restored.path())
        .args(["--json", "stats", "recent", "--limit", "10"])
        .succeeds();
    assert_eq!(
        json_stdout(&status)["conversations"]
            .as_array()
            .unwrap()
            .len(),
        5
    );

    let again = db.cmd().arg("backup").arg(&target).output().unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("never overwrites"));

    if let Some(pg) = TestDb::postgres() {
        let out = pg
            .cmd()
            .arg("backup")
            .arg(pg.data_path().join("x.db"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("pg_dump"));
    }
}
