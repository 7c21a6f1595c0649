//! `flywheel jobs`: the stage-run history headless, filtered by stage, age
//! and failure, with counts and durations in words.

mod support;

use flywheel::domain::{JobStatus, Stage, Trigger};
use support::backends::timestamp_at;
use support::{TestDb, exec, json_stdout};

/// Four runs: a daily capture yesterday (succeeded, with counts), a sync
/// that failed an hour ago, a weekly training that crashed ten days ago
/// (outside the default week) and a daily capture still running.
fn seed(db: &TestDb) {
    db.with_store(|store| async move {
        let now = chrono::Utc::now();
        let capture = store
            .insert_job_run(Stage::DailyCapture, Trigger::Cron, Some("cron-host"), Some(41))
            .await
            .unwrap();
        store
            .finish_job_run(
                capture.id,
                JobStatus::Succeeded,
                Some(r#"{"already_reviewed":0,"approved_unused":3266,"auto_approved":9991,"captured":10370,"ready_for_training":true}"#),
                None,
            )
            .await
            .unwrap();
        let sync = store
            .insert_job_run(Stage::LabelStudioSync, Trigger::Cron, None, None)
            .await
            .unwrap();
        store
            .finish_job_run(
                sync.id,
                JobStatus::Failed,
                None,
                Some("Label Studio at http://ls:8080 is unreachable\nsecond line"),
            )
            .await
            .unwrap();
        let training = store
            .insert_job_run(Stage::WeeklyTraining, Trigger::Cron, None, None)
            .await
            .unwrap();
        store.mark_crashed_job_runs(Stage::WeeklyTraining).await.unwrap();
        let running = store
            .insert_job_run(Stage::DailyCapture, Trigger::Cli, None, None)
            .await
            .unwrap();
        // Move the runs back in time: 26 h, 1 h, 10 days, 2 min ago.
        for (id, start, took_secs) in [
            (capture.id, now - chrono::Duration::hours(26), Some(192)),
            (sync.id, now - chrono::Duration::hours(1), Some(4)),
            (training.id, now - chrono::Duration::days(10), Some(3700)),
            (running.id, now - chrono::Duration::minutes(2), None),
        ] {
            let finished = took_secs.map_or("NULL".to_string(), |s| {
                timestamp_at(&store, start + chrono::Duration::seconds(s))
            });
            exec(
                &store,
                &format!(
                    "UPDATE job_runs SET started_at = {}, finished_at = {finished} WHERE id = {id}",
                    timestamp_at(&store, start)
                ),
            )
            .await;
        }
    });
}

#[test]
fn jobs_lists_the_history_in_words_and_filters_it() {
    for db in TestDb::all() {
        seed(&db);

        // Default: the last 7 days, newest first; the crashed training is older.
        let all = json_stdout(&db.cmd().args(["jobs", "--json"]).output().unwrap());
        let runs = all["runs"].as_array().unwrap();
        let stages: Vec<&str> = runs.iter().map(|r| r["stage"].as_str().unwrap()).collect();
        assert_eq!(
            stages,
            ["daily-capture", "label-studio-sync", "daily-capture"],
            "{all}"
        );
        assert_eq!(
            (&all["succeeded"], &all["failed"], &all["running"]),
            (&1.into(), &1.into(), &1.into())
        );
        let capture = &runs[2];
        assert_eq!(capture["counts"]["captured"], 10370, "counts are an object");
        assert_eq!(
            capture["summary"],
            "3 266 approved unused, 9 991 auto-approved, 10 370 captured, ready for training"
        );
        assert_eq!(capture["duration_seconds"], 192.0);
        assert_eq!(capture["took"], "3 min");
        assert_eq!(capture["host"], "cron-host");
        assert!(runs[0]["duration_seconds"].is_null(), "still running");

        // --failed over a month: the failed sync and the crashed training.
        let failed = json_stdout(
            &db.cmd()
                .args(["jobs", "--failed", "--since", "30d", "--json"])
                .output()
                .unwrap(),
        );
        let statuses: Vec<&str> = failed["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["status"].as_str().unwrap())
            .collect();
        assert_eq!(statuses, ["failed", "crashed"], "{failed}");

        // --stage, human text: durations and counts in words, no raw JSON.
        let out = db
            .cmd()
            .args(["jobs", "--stage", "daily-capture", "--since", "2d"])
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.contains("3 266 approved unused, 9 991 auto-approved"),
            "{text}"
        );
        assert!(!text.contains('{'), "no raw JSON: {text}");
        assert!(!text.contains("label-studio-sync"), "{text}");
        assert!(
            text.contains("2 runs of daily-capture since")
                && text.contains("1 succeeded, 1 running"),
            "{text}"
        );

        // The failed run shows its error's first line.
        let out = db.cmd().args(["jobs", "--failed"]).output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.contains("failed        4.0 s  Label Studio at http://ls:8080 is unreachable"),
            "{text}"
        );
        assert!(!text.contains("second line"), "{text}");
        assert!(
            text.contains("1 failed run since") && text.ends_with(": 1 failed or crashed\n"),
            "{text}"
        );

        // Nothing matches: said so, still success.
        let out = db
            .cmd()
            .args(["jobs", "--stage", "prune"])
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(
            String::from_utf8(out.stdout)
                .unwrap()
                .starts_with("no runs of prune since "),
        );
    }
}

#[test]
fn jobs_refuses_an_unknown_stage_naming_the_known_ones() {
    let db = TestDb::sqlite();
    let out = db
        .cmd()
        .args(["jobs", "--stage", "daily"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("unknown stage `daily`") && err.contains("daily-capture, label-studio-sync"),
        "{err}"
    );
}
