//! Two runs of one stage never overlap, on both backends, and a run that
//! died does not keep its lock.

mod common;

use common::{TestDb, block_on};
use flywheel::error::ErrorKind;
use flywheel::jobs::{JobRunGuard, Stage, Trigger, run_stage};
use flywheel::storage;

#[test]
fn second_run_is_refused_with_exit_75_naming_the_holder() {
    for db in TestDb::all() {
        let config = db.config();
        block_on(async move {
            // Two pools: as separate as two processes for both lock kinds.
            let a = storage::open(&config).await.unwrap();
            let b = storage::open(&config).await.unwrap();
            let first = JobRunGuard::start(&a, Stage::DailyCapture, Trigger::Cron)
                .await
                .expect("first run proceeds");
            let err = JobRunGuard::start(&b, Stage::DailyCapture, Trigger::Cli)
                .await
                .expect_err("second run must be refused");
            assert_eq!(err.kind(), ErrorKind::Locked);
            assert_eq!(err.kind().exit_code(), 75);
            let holder = format!("run #{}", first.run().id);
            assert!(err.message().contains(&holder), "{}", err.message());
            assert!(err.message().contains("by cron"), "{}", err.message());

            // Another stage is not blocked.
            let other = JobRunGuard::start(&b, Stage::Export, Trigger::Cli)
                .await
                .unwrap();
            other
                .succeed(&serde_json::json!({"exported": 0}))
                .await
                .unwrap();

            first
                .succeed(&serde_json::json!({"captured": 3}))
                .await
                .unwrap();
            // Released: the next run proceeds and is recorded.
            let value = run_stage(&b, Stage::DailyCapture, Trigger::Cli, |_| async {
                Ok((7, serde_json::json!({"captured": 7})))
            })
            .await
            .unwrap();
            assert_eq!(value, 7);
            let runs = b.recent_job_runs(10).await.unwrap();
            let daily: Vec<_> = runs.iter().filter(|r| r.stage == "daily-capture").collect();
            assert_eq!(daily.len(), 2);
            assert!(
                daily
                    .iter()
                    .all(|r| r.status == "succeeded" && r.finished_at.is_some())
            );
            assert_eq!(daily[0].counts.as_deref(), Some(r#"{"captured":7}"#));
            a.close().await;
            b.close().await;
        });
    }
}

#[test]
fn failed_run_records_its_error_and_releases_the_lock() {
    for db in TestDb::all() {
        let config = db.config();
        block_on(async move {
            let store = storage::open(&config).await.unwrap();
            let err = run_stage::<(), _>(&store, Stage::Export, Trigger::Tui, |_| async {
                Err(flywheel::Error::unavailable("Label Studio is down"))
            })
            .await
            .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Unavailable);
            let last = store.last_job_run_per_stage().await.unwrap();
            assert_eq!(last.len(), 1);
            assert_eq!(last[0].status, "failed");
            assert_eq!(last[0].trigger, "tui");
            assert_eq!(last[0].error.as_deref(), Some("Label Studio is down"));
            JobRunGuard::start(&store, Stage::Export, Trigger::Cli)
                .await
                .expect("lock released after failure")
                .succeed(&serde_json::json!({}))
                .await
                .unwrap();
            store.close().await;
        });
    }
}

#[test]
fn a_run_whose_process_died_is_marked_crashed_and_its_lock_is_free() {
    for db in TestDb::all() {
        let config = db.config();
        block_on(async move {
            let store = storage::open(&config).await.unwrap();
            // What a SIGKILLed run leaves: a `running` row, and a lock the
            // OS / database released with the process (dropping the guard
            // without finishing closes the file / session the same way).
            let dead = JobRunGuard::start(&store, Stage::WeeklyTraining, Trigger::Cron)
                .await
                .unwrap();
            let dead_id = dead.run().id;
            drop(dead);
            // PostgreSQL notices the closed session asynchronously: poll, bounded.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            let next = loop {
                match JobRunGuard::start(&store, Stage::WeeklyTraining, Trigger::Cron).await {
                    Ok(guard) => break guard,
                    Err(err) if std::time::Instant::now() < deadline => {
                        assert_eq!(err.kind(), flywheel::error::ErrorKind::Locked);
                        tokio::task::yield_now().await;
                    }
                    Err(err) => panic!("a dead run's lock must not block the next one: {err}"),
                }
            };
            let runs = store.recent_job_runs(10).await.unwrap();
            let old = runs.iter().find(|r| r.id == dead_id).unwrap();
            assert_eq!(old.status, "crashed");
            assert!(old.error.as_deref().unwrap().contains("without finishing"));
            next.succeed(&serde_json::json!({})).await.unwrap();
            store.close().await;
        });
    }
}

/// A run keeps a heartbeat on its row; one that dies is ended at its last
/// heartbeat, not when the next run notices it (which made a run killed at
/// 3 s look like it ran 6 s).
#[test]
fn a_crashed_run_ends_at_its_last_heartbeat() {
    for db in TestDb::all() {
        let config = db.config();
        block_on(async move {
            let store = storage::open(&config).await.unwrap();
            let running = {
                let store = store.clone();
                tokio::spawn(async move {
                    run_stage::<(), _>(&store, Stage::DailyCapture, Trigger::Cron, |_| {
                        std::future::pending()
                    })
                    .await
                })
            };
            // Wait (bounded) until the heartbeat has moved past the start.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            let beating = loop {
                let runs = store.recent_job_runs(5).await.unwrap();
                if let Some(run) = runs.iter().find(|r| {
                    r.status == "running" && r.heartbeat_at.is_some_and(|h| h > r.started_at)
                }) {
                    break run.clone();
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "no heartbeat: {runs:?}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            };
            // The process "dies": its future is dropped, its lock released.
            running.abort();
            let _ = running.await;
            let died_by = flywheel::storage::Timestamp::now();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            let next = loop {
                match JobRunGuard::start(&store, Stage::DailyCapture, Trigger::Cli).await {
                    Ok(guard) => break guard,
                    Err(err) if std::time::Instant::now() < deadline => {
                        assert_eq!(err.kind(), ErrorKind::Locked);
                        tokio::task::yield_now().await;
                    }
                    Err(err) => panic!("{err}"),
                }
            };
            let runs = store.recent_job_runs(10).await.unwrap();
            let dead = runs.iter().find(|r| r.id == beating.id).unwrap();
            assert_eq!(dead.status, "crashed");
            let ended = dead.finished_at.expect("a crashed run has an end");
            assert!(ended >= beating.heartbeat_at.unwrap(), "{dead:?}");
            assert!(
                ended <= died_by,
                "ended when noticed, not at its last heartbeat: {dead:?}"
            );
            next.succeed(&serde_json::json!({})).await.unwrap();
            store.close().await;
        });
    }
}
