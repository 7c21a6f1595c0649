//! `flywheel stats queue|daily|models` read the views and compare the canary
//! with production over the same window.

mod support;

use flywheel::lifecycle::{self, Target};
use flywheel::storage::models::NewModelVersion;
use support::fixtures::{model, register_model};
use support::{TestDb, exec, json_stdout};

#[test]
fn stats_commands_report_the_views() {
    for db in TestDb::all() {
        db.with_store(move |store| async move {
            for (v, s, t) in [
                ("router-v1.0.0", "production", 100),
                ("router-v1.1.0", "testing", 0),
            ] {
                let version = NewModelVersion {
                    test_accuracy: Some(0.9),
                    ..model(v, s, t)
                };
                register_model(&store, version).await;
            }
            lifecycle::promote(&store, "router-v1.1.0", Target::Canary { traffic: 20 }, "t")
                .await
                .unwrap();
            // 8 production conversations (2 fallbacks), 2 canary ones (1 negative feedback).
            for i in 0..10 {
                let (version, fallback, feedback) = match i {
                    0 | 1 => ("router-v1.0.0", "TRUE", "NULL"),
                    8 => ("router-v1.1.0", "FALSE", "'negative'"),
                    9 => ("router-v1.1.0", "FALSE", "NULL"),
                    _ => ("router-v1.0.0", "FALSE", "NULL"),
                };
                exec(&store, &format!(
                    "INSERT INTO conversation_logs (user_message, nlu_intent, nlu_confidence, nlu_provider, model_version, fallback, feedback, review_status) \
                     VALUES ('utterance {i}', 'order_food', 0.9, 'flywheel-router', '{version}', {fallback}, {feedback}, 'auto-approved')"
                )).await;
            }
            for (i, (status, priority, corrected)) in [
                ("needs-review", 2, "NULL"),
                ("needs-review", 5, "NULL"),
                ("approved", 5, "NULL"),
                ("approved", 5, "'track_order'"),
            ]
            .iter()
            .enumerate()
            {
                let source = if *status == "approved" {
                    "human"
                } else {
                    "auto"
                };
                let reviewed = if *status == "approved" {
                    "CURRENT_TIMESTAMP"
                } else {
                    "NULL"
                };
                exec(&store, &format!(
                    "INSERT INTO training_samples (text, normalized_text, intent, source, review_status, priority, occurrences, predicted_by_version, corrected_from, reviewed_at) \
                     VALUES ('s{i}', 's{i}', 'order_food', '{source}', '{status}', {priority}, {}, 'router-v1.1.0', {corrected}, {reviewed})",
                    i + 1
                )).await;
            }
        });
        if db.backend == support::Backend::Sqlite {
            // SQLite's CURRENT_TIMESTAMP has a space; normalise to our ISO shape.
            db.with_store(move |store| async move {
                exec(&store, "UPDATE training_samples SET reviewed_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE reviewed_at IS NOT NULL").await;
            });
        }

        let queue = json_stdout(
            &db.cmd()
                .args(["stats", "queue", "--json"])
                .output()
                .unwrap(),
        );
        assert_eq!(queue["by_priority"][0]["priority"], 2);
        assert_eq!(queue["items"].as_array().unwrap().len(), 2);
        // In review order: equally unsure (no confidence), the one said
        // twice first; both like ("s#") what a human labelled today.
        let first = &queue["items"][0];
        assert_eq!(first["text"], "s1", "{queue}");
        assert_eq!(
            (first["rank"].as_i64(), first["sample_id"].as_i64()),
            (Some(1), first["id"].as_i64())
        );
        assert_eq!(first["reason"], "like #3, labelled this week");
        assert_eq!(first["where"], "here");
        assert_eq!(queue["items"][1]["rank"], 2);

        let daily = json_stdout(
            &db.cmd()
                .args(["stats", "daily", "--since", "2d", "--json"])
                .output()
                .unwrap(),
        );
        let today = &daily["days"][0];
        assert_eq!(today["captured"], 10, "{daily}");
        assert_eq!(today["auto_approved"], 10);
        assert_eq!(today["approved"], 2);

        let models = json_stdout(
            &db.cmd()
                .args(["stats", "models", "--json"])
                .output()
                .unwrap(),
        );
        assert_eq!(models["models"][0]["version"], "router-v1.0.0");
        assert_eq!(models["models"][0]["conversations"], 8);
        assert!((models["models"][0]["fallback_rate"].as_f64().unwrap() - 0.25).abs() < 1e-9);
        let watch = &models["canary_watch"];
        assert_eq!(watch["canary"]["version"], "router-v1.1.0");
        assert_eq!(watch["canary"]["stats"]["conversations"], 2);
        assert_eq!(watch["canary"]["stats"]["negative_feedback"], 1);
        assert_eq!(watch["canary"]["stats"]["reviewed"], 2);
        assert_eq!(watch["canary"]["stats"]["agreed"], 1);
        assert_eq!(watch["production"]["stats"]["fallbacks"], 2);
        let human = db.cmd().args(["stats", "models"]).output().unwrap();
        let text = String::from_utf8_lossy(&human.stdout);
        assert!(
            text.contains("Canary watch since") && text.contains("review agreement"),
            "{text}"
        );
    }
}
