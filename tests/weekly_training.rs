//! Weekly training end to end through the binary on both backends: skip
//! below the minimum, train and register, compare with production on the
//! same test split, and leave nothing half-done when it fails.

mod support;

use flywheel::storage::Store;
use support::fixtures::promote_to_production;
use support::{Exits, TestDb, exec, json_stdout, rows, scalar};

/// A small learnable data set: five intents from templates and fillers.
fn utterances(round: usize) -> Vec<(String, &'static str)> {
    let fillers = [
        "pizza",
        "biryani",
        "dosa",
        "burger",
        "paneer tikka",
        "noodles",
        "momos",
        "thali",
        "pasta",
        "samosa",
    ];
    let templates: [(&str, &[&str]); 5] = [
        (
            "order_food",
            &[
                "i want to order {} please",
                "get me some {} now",
                "{} order karo",
                "can i get {} delivered",
            ],
        ),
        (
            "track_order",
            &[
                "where is my {} order",
                "track my {} delivery",
                "mera {} order kahan hai",
                "how long until the {} arrives",
            ],
        ),
        (
            "cancel_order",
            &[
                "cancel my {} order",
                "i don't want the {} anymore",
                "{} wala order cancel karo",
                "please stop the {} order",
            ],
        ),
        (
            "refund_request",
            &[
                "refund for the {} please",
                "i want my money back for {}",
                "{} ka refund chahiye",
                "the {} was bad give me a refund",
            ],
        ),
        (
            "greeting",
            &[
                "hello there about {}",
                "hi i have a question on {}",
                "namaste {} ke baare mein",
                "good morning, {} question",
            ],
        ),
    ];
    let mut out = Vec::new();
    for (intent, forms) in templates {
        for form in forms {
            for (i, f) in fillers.iter().enumerate() {
                if !(i + round).is_multiple_of(3) || round == 0 {
                    out.push((
                        format!(
                            "{} {}",
                            form.replace("{}", f),
                            if round > 0 {
                                format!("#{round}")
                            } else {
                                String::new()
                            }
                        )
                        .trim()
                        .to_string(),
                        intent,
                    ));
                }
            }
        }
    }
    out
}

async fn add_approved(store: &Store, round: usize) {
    for (text, intent) in utterances(round) {
        let t = text.replace('\'', "''");
        exec(store, &format!(
            "INSERT INTO training_samples (text, normalized_text, intent, language, source, review_status) \
             VALUES ('{t}', '{t}', '{intent}', 'en', 'human', 'approved')"
        )).await;
    }
}

#[test]
fn weekly_training_skips_trains_compares_and_registers() {
    for db in TestDb::all() {
        db.with_store(move |store| async move {
            add_approved(&store, 0).await;
        });

        // Below the minimum: says so, exits 0, trains nothing.
        let out = db.cmd().args(["weekly-training", "--json"]).succeeds();
        let skipped = json_stdout(&out);
        assert_eq!(skipped["result"]["outcome"], "skipped");
        assert_eq!(skipped["result"]["approved_unused"], 200);

        // --force: the first version, no production to compare with.
        let out = db
            .cmd()
            .args(["weekly-training", "--force", "--json"])
            .succeeds();
        let first = json_stdout(&out);
        let r = &first["result"];
        assert_eq!(r["outcome"], "trained");
        assert_eq!(r["version"], "router-v1.0.0");
        assert_eq!(r["status"], "testing");
        assert_eq!(
            r["train_samples"].as_u64().unwrap() + r["test_samples"].as_u64().unwrap(),
            200
        );
        assert!(r["accuracy"].as_f64().unwrap() > 0.6, "{r}");
        let report_path = r["report_path"].as_str().unwrap().to_string();
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
        assert_eq!(report["decision"], "testing");
        assert_eq!(report["data"]["approved"], 200);
        assert!(report["new_model"]["per_intent"]["order_food"]["f1"].is_number());
        // Trained the way `flywheel train` trains (issue 15 item 2): the
        // selection share was carved from the training samples and the
        // model then refit on all of them.
        let metadata: serde_json::Value = serde_json::from_slice(
            &std::fs::read(db.data_path().join("models/router-v1.0.0/metadata.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(metadata["train_samples"], r["train_samples"], "{metadata}");
        assert!(metadata["validation_samples"].as_u64().unwrap() > 0);
        assert!(report["training"]["refit_epochs"].as_u64().unwrap() >= 1);

        db.with_store(move |store| async move {
            assert_eq!(scalar(&store, "SELECT COUNT(*) FROM training_samples WHERE model_version_target = 'router-v1.0.0'").await, 200);
            assert_eq!(
                scalar(
                    &store,
                    "SELECT COUNT(*) FROM training_runs WHERE status = 'succeeded' AND epoch >= 1"
                )
                .await,
                1
            );
            promote_to_production(&store, "router-v1.0.0").await;
            add_approved(&store, 1).await;
        });

        // Second version: scored against production on the same test split.
        let out = db
            .cmd()
            .args(["weekly-training", "--force", "--json"])
            .succeeds();
        let second = json_stdout(&out);
        let r = &second["result"];
        assert_eq!(r["version"], "router-v1.1.0");
        assert_eq!(r["production_version"], "router-v1.0.0");
        assert!(
            r["accuracy"].is_number() && r["production_accuracy"].is_number(),
            "{r}"
        );
        // The gate's outcomes are unit-tested (src/stages/gate.rs); here the
        // status follows the reason the report gives.
        let reason = r["reason"].as_str().unwrap();
        let expected = if reason.starts_with("clearly worse") || reason.starts_with("not shown") {
            "rejected"
        } else {
            "testing"
        };
        assert_eq!(r["status"], expected, "{r}");
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(r["report_path"].as_str().unwrap()).unwrap())
                .unwrap();
        assert_eq!(report["production_model"]["version"], "router-v1.0.0");
        assert_eq!(
            report["production_model"]["metrics"]["samples"], report["new_model"]["samples"],
            "both models are scored on the same test split"
        );
        let gate = &report["gate"];
        assert_eq!(gate["candidate"]["n"], r["test_samples"], "{gate}");
        assert_eq!(gate["production"]["n"], r["test_samples"], "{gate}");
        assert!(
            gate["p_value"].is_number() && gate["difference"]["low"].is_number(),
            "{gate}"
        );
        assert_eq!(report["reason"], r["reason"]);
        db.with_store(move |store| async move {
            let marked = scalar(&store, "SELECT COUNT(*) FROM training_samples WHERE model_version_target = 'router-v1.1.0'").await;
            if expected == "testing" {
                assert!(marked > 0);
            } else {
                assert_eq!(marked, 0, "a rejected model marks no samples used");
            }
        });
    }
}

#[test]
fn a_failed_training_leaves_no_version_and_no_marked_samples() {
    for db in TestDb::all() {
        db.with_store(move |store| async move {
            add_approved(&store, 0).await;
        });
        // The models directory cannot be created: training fails after the run started.
        std::fs::write(db.data_path().join("models"), b"not a directory").unwrap();
        db.cmd().args(["weekly-training", "--force"]).exits_with(1);
        db.with_store(move |store| async move {
            assert_eq!(
                scalar(&store, "SELECT COUNT(*) FROM model_versions").await,
                0
            );
            assert_eq!(
                scalar(
                    &store,
                    "SELECT COUNT(*) FROM training_samples WHERE model_version_target IS NOT NULL"
                )
                .await,
                0
            );
            assert_eq!(
                scalar(
                    &store,
                    "SELECT COUNT(*) FROM training_runs WHERE status = 'failed'"
                )
                .await,
                1
            );
            assert_eq!(scalar(&store, "SELECT COUNT(*) FROM job_runs WHERE stage = 'weekly-training' AND status = 'failed'").await, 1);
        });
        // Fixed: the next run starts clean.
        std::fs::remove_file(db.data_path().join("models")).unwrap();
        db.cmd()
            .args(["weekly-training", "--force"])
            .assert()
            .success();
    }
}

/// A sample waiting for review (`review_status`) with a stale, wrong,
/// unsure prediction of an old version.
async fn insert_stale(store: &Store, text: &str, review_status: &str) {
    let t = text.replace('\'', "''");
    exec(
        store,
        &format!(
            "INSERT INTO training_samples (text, normalized_text, intent, language, source, \
             review_status, priority, confidence, predicted_intent, predicted_by_version) \
         VALUES ('{t}', '{t}', 'greeting', 'en', 'auto', '{review_status}', 2, 0.3, \
             'greeting', 'router-v0.9.0')"
        ),
    )
    .await;
}

/// Issue 16/17: the review backlog waits with the predictions of the
/// version that served it. Weekly training first has the production model
/// re-predict what is queued here: each sample keeps waiting with the new
/// prediction, confidence and priority; audits and human decisions are
/// left alone, and a version judges a sample once. Daily capture does the
/// same as soon as another version is in production, and a production
/// model that does not load leaves the backlog as it was without failing
/// the capture.
#[test]
fn the_production_model_rejudges_the_backlog_in_weekly_training_and_daily_capture() {
    for db in TestDb::all() {
        db.with_store(move |store| async move {
            add_approved(&store, 0).await;
        });
        db.cmd().args(["weekly-training", "--force"]).succeeds();
        db.with_store(move |store| async move {
            promote_to_production(&store, "router-v1.0.0").await;
            // Queued with a stale, wrong, unsure prediction of an old version.
            for (text, _) in utterances(1).into_iter().filter(|(_, i)| *i == "order_food") {
                insert_stale(&store, &text, "needs-review").await;
            }
            // An audit's sample: its served answer is what it measures.
            exec(&store,
                "UPDATE training_samples SET text = 'audited pizza order', normalized_text = 'audited pizza order' \
                 WHERE id = (SELECT MIN(id) FROM training_samples WHERE review_status = 'needs-review')",
            ).await;
            exec(&store,
                "INSERT INTO audits (conversation_id, sample_id, model_version, served_intent, \
                     conversation_status, conversation_at, drawn_at) \
                 SELECT 1, MIN(id), 'router-v0.9.0', 'greeting', 'needs-review', \
                     '2026-12-01T00:00:00.000000Z', '2026-12-01T00:00:00.000000Z' \
                 FROM training_samples WHERE review_status = 'needs-review'",
            ).await;
        });
        let backlog = db.with_store(move |store| async move {
            scalar(
                &store,
                "SELECT COUNT(*) FROM training_samples WHERE review_status = 'needs-review'",
            )
            .await
        });
        assert!(backlog > 10, "{backlog}");

        // Switched off: nothing re-judged.
        let out = db
            .cmd()
            .env("FLYWHEEL_AUTO_FILTER__REJUDGE_BACKLOG", "false")
            .args(["weekly-training", "--force", "--json"])
            .succeeds();
        let off = json_stdout(&out);
        assert_eq!(off["result"]["rejudged"]["judged"], 0, "{off}");

        let out = db
            .cmd()
            .args(["weekly-training", "--force", "--json"])
            .succeeds();
        let on = json_stdout(&out);
        let rejudged = &on["result"]["rejudged"];
        assert_eq!(rejudged["version"], "router-v1.0.0", "{on}");
        assert_eq!(rejudged["judged"], backlog - 1, "all but the audit: {on}");
        let report: serde_json::Value = serde_json::from_slice(
            &std::fs::read(on["result"]["report_path"].as_str().unwrap()).unwrap(),
        )
        .unwrap();
        assert_eq!(report["data"]["rejudged"], *rejudged);
        let now_sure = rejudged["now_sure"].as_i64().unwrap();
        db.with_store(move |store| async move {
            // Nothing approved: all still wait, with the model's new answer.
            assert_eq!(
                scalar(&store, "SELECT COUNT(*) FROM training_samples WHERE review_status = 'needs-review'").await,
                backlog
            );
            assert_eq!(
                scalar(&store, "SELECT COUNT(*) FROM training_samples WHERE review_status = 'needs-review' \
                       AND predicted_by_version = 'router-v1.0.0' AND predicted_intent = intent").await,
                backlog - 1
            );
            // The model knows these now: most are order_food, sure ones
            // drop to the medium priority, and the doubt the order ranks by
            // is the new one.
            assert!(
                scalar(&store, "SELECT COUNT(*) FROM training_samples WHERE review_status = 'needs-review' \
                       AND predicted_by_version = 'router-v1.0.0' AND intent = 'order_food'").await
                    > (backlog - 1) / 2
            );
            assert_eq!(
                scalar(&store, "SELECT COUNT(*) FROM training_samples WHERE predicted_by_version = 'router-v1.0.0' \
                       AND review_status = 'needs-review' AND priority = 5 AND confidence >= 0.85").await,
                now_sure
            );
            assert_eq!(
                scalar(&store, "SELECT COUNT(*) FROM training_samples WHERE predicted_by_version = 'router-v1.0.0' \
                       AND review_status = 'needs-review' AND confidence = 0.3").await,
                0
            );
            // The audit keeps its served answer.
            assert_eq!(
                scalar(&store, "SELECT COUNT(*) FROM training_samples WHERE text = 'audited pizza order' \
                       AND intent = 'greeting' AND predicted_by_version = 'router-v0.9.0'").await,
                1
            );
        });

        // The same production version judges a sample once.
        let out = db
            .cmd()
            .args(["weekly-training", "--force", "--json"])
            .succeeds();
        let newest = json_stdout(&out);
        assert_eq!(newest["result"]["rejudged"]["judged"], 0);
        let newest = newest["result"]["version"].as_str().unwrap().to_string();

        // Another version in production: the next daily capture re-judges
        // with it (a dry run does not), and only once.
        let make_production = |version: String| {
            db.with_store(move |store| async move {
                exec(
                    &store,
                    "UPDATE model_versions SET status = 'archived' WHERE status = 'production'",
                )
                .await;
                exec(&store, &format!(
                    "UPDATE model_versions SET status = 'production' WHERE version = '{version}'"
                ))
                .await;
            })
        };
        // Two samples in Label Studio: one whose task waits for its
        // annotation (re-judged: the stream serves it in the new order),
        // one annotated (the sync's to settle).
        db.with_store(move |store| async move {
            for (text, state) in [("pushed pizza order", "pushed"), ("annotated pizza order", "annotated")] {
                insert_stale(&store, text, "in-review").await;
                exec(&store, &format!(
                    "INSERT INTO label_studio_tasks (sample_id, project_id, task_id, pushed_at, sync_state) \
                     SELECT id, 1, id, '2026-12-01T00:00:00.000000Z', '{state}' \
                     FROM training_samples WHERE text = '{text}'"
                )).await;
            }
        });
        make_production(newest.clone());
        let daily = |extra: &[&str]| {
            let out = db
                .cmd()
                .args(["daily-capture", "--json"])
                .args(extra)
                .succeeds();
            json_stdout(&out)["rejudged"].clone()
        };
        let dry = daily(&["--dry-run"]);
        assert_eq!(dry["judged"], 0, "{dry}");
        let rejudged = daily(&[]);
        assert_eq!(rejudged["version"], newest.as_str(), "{rejudged}");
        assert_eq!(
            rejudged["judged"], backlog,
            "all queued here but the audit, and the task awaiting its annotation: {rejudged}"
        );
        let in_label_studio: Vec<(String, String)> = db.with_store(move |store| async move {
            rows(
                &store,
                "SELECT text, predicted_by_version FROM training_samples \
                          WHERE review_status = 'in-review' ORDER BY text",
            )
            .await
        });
        assert_eq!(
            in_label_studio,
            vec![
                (
                    "annotated pizza order".to_string(),
                    "router-v0.9.0".to_string()
                ),
                ("pushed pizza order".to_string(), newest.clone()),
            ]
        );
        let judged_by = |version: String| {
            db.with_store(move |store| async move {
                scalar(&store, &format!(
                    "SELECT COUNT(*) FROM training_samples WHERE review_status = 'needs-review' \
                     AND predicted_by_version = '{version}'"
                ))
                .await
            })
        };
        assert_eq!(judged_by(newest.clone()), backlog - 1, "queued here");
        assert_eq!(daily(&[])["judged"], 0, "once per version");

        // A production model whose artifact is gone: the capture still
        // succeeds and the backlog keeps what it had.
        make_production("router-v1.0.0".into());
        let artifact = db.with_store(move |store| async move {
            store
                .model_version("router-v1.0.0")
                .await
                .unwrap()
                .unwrap()
                .artifact_path
                .unwrap()
        });
        std::fs::remove_dir_all(db.data_dir.path().join(&artifact)).unwrap();
        let broken = daily(&[]);
        assert_eq!(broken["judged"], 0, "{broken}");
        assert_eq!(judged_by(newest), backlog - 1);
    }
}
