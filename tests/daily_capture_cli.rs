//! `flywheel daily-capture` through the real binary on both backends:
//! dry run, the report file and job run, the ready-for-training warning,
//! the default 24 h window, and the stage lock (exit 75).

mod support;

use chrono::{Duration, Utc};
use flywheel::jobs::{JobRunGuard, Stage, Trigger};
use flywheel::stages::daily_report::DailyReport;
use support::fixtures::{Conv, conv, conversations, insert, samples};
use support::state::job_run_count;
use support::{Exits, TestDb, block_on, json_stdout};

const DAY: &str = "2026-03-10";

fn seed(db: &TestDb) {
    db.with_store(move |store| async move {
        insert(
            &store,
            &[
                conv("pizza chahiye", "order_food", 0.95, "2026-03-10T08:00:00Z"),
                conv("Pizza chahiye!", "order_food", 0.91, "2026-03-10T08:10:00Z"),
                conv(
                    "track my parcel",
                    "track_order",
                    0.75,
                    "2026-03-10T09:00:00Z",
                ),
                conv("uh", "greeting", 0.2, "2026-03-10T10:00:00Z"),
            ],
        )
        .await;
    });
}

fn report_path(db: &TestDb) -> std::path::PathBuf {
    DailyReport::path_in(&db.data_path().join("logs"), DAY.parse().unwrap())
}

#[test]
fn dry_run_reports_what_it_would_do_and_writes_nothing() {
    for db in TestDb::all() {
        seed(&db);
        let out = db
            .cmd()
            .args(["--json", "daily-capture", "--date", DAY, "--dry-run"])
            .succeeds();
        let json = json_stdout(&out);
        assert_eq!(json["dry_run"], true);
        assert_eq!(json["report_path"], serde_json::Value::Null);
        let report = &json["report"];
        assert_eq!(report["captured"], 4);
        assert_eq!(report["auto_approved"], 2);
        assert_eq!(report["needs_review"], 2);
        assert_eq!(report["duplicates_folded"], 1);
        assert_eq!(report["new_samples"]["approved"], 1);
        assert_eq!(report["approved_unused"], 1, "counts what it would approve");
        assert!(!report_path(&db).exists(), "no report file on a dry run");

        let human = db
            .cmd()
            .args(["daily-capture", "--date", DAY, "--dry-run"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&human.stdout);
        assert!(text.contains("dry run, would capture 4"), "{text}");
        assert!(text.contains("nothing was written"), "{text}");

        db.with_store(move |store| async move {
            assert!(
                conversations(&store)
                    .await
                    .iter()
                    .all(|c| c.1 == "pending" && c.2.is_none())
            );
            assert!(samples(&store).await.is_empty());
            assert_eq!(job_run_count(&store, "daily-capture").await, 0);
        });
    }
}

#[test]
fn a_run_writes_the_report_and_records_its_counts() {
    for db in TestDb::all() {
        seed(&db);
        let out = db
            .cmd()
            .args(["--json", "daily-capture", "--date", DAY])
            .succeeds();
        let json = json_stdout(&out);
        assert_eq!(json["report_path"], report_path(&db).display().to_string());
        let on_disk: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(report_path(&db)).unwrap()).unwrap();
        assert_eq!(on_disk, json["report"]);
        assert_eq!(on_disk["captured"], 4);

        db.with_store(move |store| async move {
            let last = store.last_job_run_per_stage().await.unwrap();
            let run = last.iter().find(|r| r.stage == "daily-capture").unwrap();
            assert_eq!(run.status, "succeeded");
            let counts: serde_json::Value =
                serde_json::from_str(run.counts.as_deref().unwrap()).unwrap();
            assert_eq!(counts["captured"], 4);
            assert_eq!(counts["auto_approved"], 2);
            assert_eq!(counts["new_samples"], 3);
        });
    }
}

#[test]
fn warns_ready_for_training_and_still_exits_0() {
    for db in TestDb::all() {
        seed(&db);
        let out = db
            .cmd()
            .env("FLYWHEEL_AUTO_FILTER__READY_FOR_TRAINING", "1")
            .args(["daily-capture", "--date", DAY])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("WARN") && stderr.contains("ready for training"),
            "{stderr}"
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("ready for training (threshold 1)"),
            "{stdout}"
        );
        let on_disk: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(report_path(&db)).unwrap()).unwrap();
        assert_eq!(on_disk["ready_for_training"], true);
    }
}

#[test]
fn default_window_is_the_last_24_hours() {
    for db in TestDb::all() {
        db.with_store(move |store| async move {
            let at = |hours: i64| -> &'static str {
                Box::leak(
                    (Utc::now() - Duration::hours(hours))
                        .to_rfc3339()
                        .into_boxed_str(),
                )
            };
            insert(
                &store,
                &[
                    Conv {
                        at: at(1),
                        ..conv("recent", "a", 0.9, "")
                    },
                    Conv {
                        at: at(25),
                        ..conv("too old", "a", 0.9, "")
                    },
                ],
            )
            .await;
        });
        let out = db.cmd().args(["--json", "daily-capture"]).succeeds();
        assert_eq!(json_stdout(&out)["report"]["captured"], 1);
        let out = db
            .cmd()
            .args(["--json", "daily-capture", "--since", "2d"])
            .output()
            .unwrap();
        assert_eq!(
            json_stdout(&out)["report"]["captured"],
            1,
            "the older one now"
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    let db = TestDb::sqlite();
    for args in [
        &["daily-capture", "--since", "24h", "--date", DAY][..],
        &["daily-capture", "--since", "24x"][..],
        &["daily-capture", "--date", "yesterday"][..],
    ] {
        let out = db.cmd().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn a_second_concurrent_run_exits_75_and_changes_nothing() {
    for db in TestDb::all() {
        seed(&db);
        let config = db.config();
        let cmd = db.cmd();
        let report = report_path(&db);
        block_on(async move {
            let store = flywheel::storage::open(&config).await.unwrap();
            // A daily capture in progress elsewhere holds the stage lock.
            let running = JobRunGuard::start(&store, Stage::DailyCapture, Trigger::Cron)
                .await
                .unwrap();
            let mut cmd = cmd;
            let out = cmd.args(["daily-capture", "--date", DAY]).output().unwrap();
            assert_eq!(out.status.code(), Some(75));
            let stderr = String::from_utf8_lossy(&out.stderr);
            let holder = format!(
                "daily-capture is already running (run #{}",
                running.run().id
            );
            assert!(stderr.contains(&holder), "{stderr}");
            assert!(conversations(&store).await.iter().all(|c| c.1 == "pending"));
            assert!(samples(&store).await.is_empty());
            assert!(!report.exists());
            running.succeed(&serde_json::json!({})).await.unwrap();
            store.close().await;
        });
    }
}
