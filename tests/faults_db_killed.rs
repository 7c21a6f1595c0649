//! Fault injection (issue 8): PostgreSQL connections killed, or the whole
//! database going away, in the middle of daily-capture, weekly-training and
//! export run by the real binary. The stage ends with a clear error and
//! exit 69, leaves nothing half-written, `job_runs` tells what happened
//! (`failed`, or `crashed` once a re-run finds the dead holder), and a
//! re-run converges to exactly what a clean run produces.
//!
//! PostgreSQL only: SQLite has no connection to kill (its faults are the
//! disk's, in faults_disk.rs). Synchronised on what the stage has visibly
//! done (its `job_runs` row, conversations marked, epochs recorded, the
//! export's partial file), never on sleeps.

mod support;

use std::time::Duration;

use support::backends::PgAdmin;
use support::fake_label_studio::{FakeLabelStudio, Fault, Where};
use support::fixtures::{DAY, seed_approved_samples, seed_conversations};
use support::processes::{Finished, Run, run, spawn, spawn_weekly_training, until_or_exit};
use support::state::{
    assert_capture_invariants, assert_training_report_whole, capture_state, clean_capture_state,
    clean_training_state, job_runs, stage_running, training_state,
};
use support::{Backend, TestDb, scalar};

/// Conversations seeded for daily capture: with batches of 200 the run
/// takes a few seconds, so the kill lands mid-run.
const CONVERSATIONS: i64 = 20_000;
const BATCH: usize = 200;

fn capture_args(batch: &str) -> Vec<&str> {
    vec!["daily-capture", "--date", DAY, "--batch-size", batch]
}

async fn marked(store: &flywheel::storage::Store) -> i64 {
    scalar(
        store,
        "SELECT COUNT(*) FROM conversation_logs WHERE review_status <> 'pending'",
    )
    .await
}

/// Start daily capture and return once its run is recorded and it has
/// committed some batches but not all.
async fn capture_mid_run(db: &TestDb, store: &flywheel::storage::Store) -> Run {
    let batch = BATCH.to_string();
    let mut run = spawn(db, &capture_args(&batch), &[]);
    let seen = until_or_exit(&mut run, Duration::from_secs(60), || async {
        stage_running(store, "daily-capture").await && marked(store).await > 0
    })
    .await;
    assert!(
        seen && run.exited().is_none(),
        "daily-capture ended before it could be interrupted; seed more conversations:\n{}",
        run.stderr_now()
    );
    assert!(marked(store).await < CONVERSATIONS);
    run
}

/// After the failed run: exit 69 naming the database, no report, then a
/// re-run that converges to the clean state; the first run ends up
/// `failed` (it recorded its failure on a connection still open) or
/// `crashed` (it could not; the re-run marks it) with its reason.
async fn assert_capture_recovers(db: &TestDb, out: Finished) {
    assert_eq!(out.code(), Some(69), "{}", out.output());
    assert!(
        out.stderr.contains("database unavailable"),
        "a clear error: {}",
        out.output()
    );
    let report = db.data_path().join(format!("logs/daily-report-{DAY}.json"));
    assert!(!report.exists(), "no report from a failed run");

    let batch = BATCH.to_string();
    let rerun = run(db, &capture_args(&batch)).await;
    assert_eq!(rerun.code(), Some(0), "re-run: {}", rerun.output());

    let store = db.store().await;
    let runs = job_runs(&store, "daily-capture").await;
    assert_eq!(runs.len(), 2, "{runs:?}");
    let (status, error) = (&runs[0].1, runs[0].2.as_deref().unwrap_or_default());
    match status.as_str() {
        "failed" => assert!(error.contains("database unavailable"), "{runs:?}"),
        "crashed" => assert!(error.contains("without finishing"), "{runs:?}"),
        other => panic!("the interrupted run is {other}: {runs:?}"),
    }
    assert_eq!(runs[1].1, "succeeded");
    assert_capture_invariants(&store, CONVERSATIONS).await;
    let state = capture_state(&store).await;
    store.close().await;
    let clean = clean_capture_state(Backend::Postgres, CONVERSATIONS, BATCH).await;
    assert!(
        state == clean,
        "the re-run did not converge to a clean run's state ({} vs {} samples)",
        state.samples.len(),
        clean.samples.len()
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert!(report["captured"].as_i64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_capture_connections_killed_mid_run() {
    let Some(db) = TestDb::postgres() else { return };
    let store = db.store().await;
    seed_conversations(&store, CONVERSATIONS).await;
    let mut run = capture_mid_run(&db, &store).await;
    store.close().await;
    // Kill whatever statement the stage is running, until it gives up; the
    // database itself stays up (new connections are accepted).
    let mut admin = PgAdmin::connect().await;
    let name = db.pg_name().to_string();
    let mut killed = 0;
    while run.exited().is_none() {
        killed += admin.terminate(&name, true).await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(killed > 0);
    let out = run.finish(Duration::from_secs(30)).await;
    assert_capture_recovers(&db, out).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_capture_database_gone_mid_run() {
    let Some(db) = TestDb::postgres() else { return };
    let store = db.store().await;
    seed_conversations(&store, CONVERSATIONS).await;
    let run = capture_mid_run(&db, &store).await;
    store.close().await;
    let mut admin = PgAdmin::connect().await;
    let name = db.pg_name().to_string();
    admin.take_away(&name).await;
    let out = run.finish(Duration::from_secs(30)).await;
    admin.allow_connections(&name, true).await;
    // New connections are refused before the open ones are killed, so the
    // failure may still be recorded on one of those: `failed` or `crashed`.
    assert_capture_recovers(&db, out).await;
}

/// Approved samples to train on: enough that an epoch takes a while, so
/// the connections are taken away while the model trains (300 left the
/// window so short that training could finish first).
const SAMPLES: i64 = 1500;

async fn epoch_recorded(store: &flywheel::storage::Store) -> bool {
    scalar(
        store,
        "SELECT COUNT(*) FROM training_runs WHERE status = 'running' AND epoch >= 1",
    )
    .await
        > 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weekly_training_survives_killed_connections_and_fails_cleanly_when_the_database_is_gone() {
    let Some(db) = TestDb::postgres() else { return };
    let name = db.pg_name().to_string();
    let store = db.store().await;
    seed_approved_samples(&store, SAMPLES).await;

    // 1. Every pool connection killed while the model trains: training is
    //    CPU work, the pool reconnects, the run finishes and registers its
    //    version. (Killing the lock's session stops a run: see
    //    a_stage_whose_lock_session_dies_stops_with_exit_69.)
    let mut run = spawn_weekly_training(&db);
    assert!(
        until_or_exit(&mut run, Duration::from_secs(60), || epoch_recorded(&store)).await
            && run.exited().is_none(),
        "training ended before an epoch was seen: {}",
        run.stderr_now()
    );
    let mut admin = PgAdmin::connect().await;
    assert!(admin.terminate_by_lock(&name, false).await > 0);
    let out = run.finish(Duration::from_secs(120)).await;
    assert_eq!(out.code(), Some(0), "{}", out.output());
    let state = training_state(&db, &db.store().await).await;
    assert_eq!(state, clean_training_state(SAMPLES));
    assert_training_report_whole(&db);

    // 2. The database goes away while the next model trains: registering
    //    it fails with exit 69, the trained model is not left behind, no
    //    sample is marked used by it.
    let db2 = TestDb::postgres().unwrap();
    let name2 = db2.pg_name().to_string();
    let store2 = db2.store().await;
    seed_approved_samples(&store2, SAMPLES).await;
    let mut run = spawn_weekly_training(&db2);
    assert!(
        until_or_exit(&mut run, Duration::from_secs(60), || epoch_recorded(
            &store2
        ))
        .await
            && run.exited().is_none(),
        "training ended before an epoch was seen: {}",
        run.stderr_now()
    );
    store2.close().await;
    admin.take_away(&name2).await;
    let out = run.finish(Duration::from_secs(120)).await;
    admin.allow_connections(&name2, true).await;
    assert_eq!(out.code(), Some(69), "{}", out.output());
    assert!(
        out.stderr.contains("database unavailable"),
        "{}",
        out.output()
    );
    let store2 = db2.store().await;
    let after_failure = training_state(&db2, &store2).await;
    assert!(after_failure.versions.is_empty(), "{after_failure:?}");
    assert!(after_failure.used.is_empty(), "{after_failure:?}");
    assert!(
        after_failure
            .model_dirs
            .iter()
            .all(|d| d.starts_with(".partial-")),
        "no finished model without a registered version: {after_failure:?}"
    );

    // The re-run (no --force: the threshold decides) converges.
    let rerun = spawn_weekly_training(&db2)
        .finish(Duration::from_secs(120))
        .await;
    assert_eq!(rerun.code(), Some(0), "{}", rerun.output());
    assert_eq!(
        training_state(&db2, &store2).await,
        clean_training_state(SAMPLES)
    );
    assert_training_report_whole(&db2);
    let runs = job_runs(&store2, "weekly-training").await;
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[0].1, "crashed", "{runs:?}");
    assert_eq!(runs[1].1, "succeeded", "{runs:?}");
    assert_eq!(
        scalar(
            &store2,
            "SELECT COUNT(*) FROM training_runs WHERE status = 'failed'"
        )
        .await,
        1,
        "the interrupted training run is closed as failed"
    );
    store2.close().await;
    store.close().await;
}

const EXPORTED: i64 = 100_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_connection_killed_mid_run_leaves_no_file_and_a_rerun_is_whole() {
    let Some(db) = TestDb::postgres() else { return };
    let name = db.pg_name().to_string();
    let store = db.store().await;
    seed_approved_samples(&store, EXPORTED).await;
    let output = db.data_path().join("train.jsonl");
    let partial = db.data_path().join("train.jsonl.partial");
    let out_arg = output.display().to_string();
    let mut run = spawn(&db, &["export", "--output", &out_arg], &[]);
    // Mid-run: the first page is being written.
    let partial_seen = partial.clone();
    assert!(
        until_or_exit(&mut run, Duration::from_secs(60), || {
            let p = partial_seen.clone();
            async move { std::fs::metadata(&p).is_ok_and(|m| m.len() > 0) }
        })
        .await
            && run.exited().is_none(),
        "export ended before it could be interrupted: {}",
        run.stderr_now()
    );
    store.close().await;
    let mut admin = PgAdmin::connect().await;
    let mut killed = 0;
    while run.exited().is_none() {
        killed += admin.terminate(&name, true).await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(killed > 0);
    let out = run.finish(Duration::from_secs(30)).await;
    assert_eq!(out.code(), Some(69), "{}", out.output());
    assert!(
        out.stderr.contains("database unavailable"),
        "{}",
        out.output()
    );
    assert!(
        !output.exists(),
        "a failed export never leaves a file under its final name"
    );

    let rerun = run_export(&db, &out_arg).await;
    assert_eq!(rerun.code(), Some(0), "{}", rerun.output());
    let text = std::fs::read_to_string(&output).unwrap();
    let mut ids: Vec<i64> = text
        .lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).expect("whole JSON lines")["sample_id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(ids.len() as i64, EXPORTED);
    ids.dedup();
    assert_eq!(ids.len() as i64, EXPORTED, "no sample twice");
    assert!(
        !partial.exists(),
        "the successful re-run leaves no partial file"
    );
    let store = db.store().await;
    let runs = job_runs(&store, "export").await;
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert!(
        matches!(runs[0].1.as_str(), "failed" | "crashed"),
        "{runs:?}"
    );
    assert_eq!(runs[1].1, "succeeded");
    store.close().await;
}

async fn run_export(db: &TestDb, output: &str) -> Finished {
    run(db, &["export", "--output", output]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_whose_lock_session_dies_stops_with_exit_69() {
    let Some(db) = TestDb::postgres() else { return };
    let name = db.pg_name().to_string();
    let store = db.store().await;
    // A Label Studio that knows the key but never answers what the sync
    // asks next, so the sync holds its stage lock for as long as the test wants.
    let key = "0123456789abcdef0123456789abcdef01234567";
    let fake = FakeLabelStudio::with_fault(key, Fault::Hang, Where::Project).await;
    let env = [
        ("LABEL_STUDIO_URL", fake.url.as_str()),
        ("LABEL_STUDIO_API_KEY", key),
        ("LABEL_STUDIO_PROJECT_ID", "7"),
    ];
    let mut run = spawn(&db, &["label-studio-sync"], &env);
    assert!(
        until_or_exit(&mut run, Duration::from_secs(30), || stage_running(
            &store,
            "label-studio-sync"
        ))
        .await
            && run.exited().is_none(),
        "{}",
        run.stderr_now()
    );
    // The sync waits on Label Studio forever; only the lost lock ends it.
    let mut admin = PgAdmin::connect().await;
    assert_eq!(admin.terminate_by_lock(&name, true).await, 1);
    let out = run.finish(Duration::from_secs(30)).await;
    assert_eq!(out.code(), Some(69), "{}", out.output());
    assert!(
        out.stderr.contains("label-studio-sync lost its lock"),
        "{}",
        out.output()
    );
    // Its job run says why (the pool's own sessions were left alone).
    let runs = job_runs(&store, "label-studio-sync").await;
    assert_eq!(runs.len(), 1);
    assert!(
        runs[0].1 == "failed" && runs[0].2.as_deref().unwrap_or("").contains("lost its lock"),
        "{runs:?}"
    );
}
