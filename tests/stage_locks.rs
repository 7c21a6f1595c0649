//! The job framework on both backends: two runs of one stage never
//! overlap, a run that died does not keep its lock, and every run's end is
//! recorded (succeeded with its typed counts, failed, or cancelled).

mod support;

use flywheel::config::Config;
use flywheel::error::ErrorKind;
use flywheel::jobs::{self, JobRunGuard, Launch, Stage, StageContext, StageJob, Trigger};
use flywheel::progress::{CancellationToken, Progress, Reporter};
use flywheel::storage::{self, Store};
use support::{TestDb, block_on};

/// What a probe stage does when run.
enum Work {
    /// Succeed, having captured (or exported) this many.
    Count(u64),
    Fail(flywheel::Error),
    /// Never end on its own (a run killed mid-way).
    Forever,
}

impl Work {
    async fn run(self, ctx: &StageContext<'_>) -> flywheel::Result<u64> {
        match self {
            Work::Count(n) => {
                assert!(ctx.run_id().is_some(), "a recorded run knows its row");
                Ok(n)
            }
            Work::Fail(err) => Err(err),
            Work::Forever => std::future::pending().await,
        }
    }
}

#[derive(serde::Serialize)]
struct Captured {
    captured: u64,
}

/// Stages for the framework's sake, each under a real stage's lock.
macro_rules! probe {
    ($name:ident, $stage:expr) => {
        struct $name(Work);

        impl StageJob for $name {
            const STAGE: Stage = $stage;
            type Outcome = u64;
            async fn work(self, ctx: &StageContext<'_>) -> flywheel::Result<u64> {
                self.0.run(ctx).await
            }
            fn counts(outcome: &u64) -> impl serde::Serialize {
                Captured { captured: *outcome }
            }
        }
    };
}
probe!(CaptureProbe, Stage::DailyCapture);
probe!(ExportProbe, Stage::Export);

/// A dry run: neither locked nor recorded.
struct DryProbe;

impl StageJob for DryProbe {
    const STAGE: Stage = Stage::DailyCapture;
    type Outcome = Option<i64>;
    fn recorded(&self) -> bool {
        false
    }
    async fn work(self, ctx: &StageContext<'_>) -> flywheel::Result<Option<i64>> {
        Ok(ctx.run_id())
    }
    fn counts(_: &Option<i64>) -> impl serde::Serialize {}
}

fn launch<'a>(store: &'a Store, config: &'a Config, trigger: Trigger) -> Launch<'a> {
    Launch::new(store, config, trigger)
}

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
            let value = jobs::run(
                CaptureProbe(Work::Count(7)),
                &launch(&b, &config, Trigger::Cli),
            )
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
            let down = flywheel::Error::unavailable("Label Studio is down");
            let err = jobs::run(
                ExportProbe(Work::Fail(down)),
                &launch(&store, &config, Trigger::Tui),
            )
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
                let (store, config) = (store.clone(), config.clone());
                tokio::spawn(async move {
                    let launch = launch(&store, &config, Trigger::Cron);
                    jobs::run(CaptureProbe(Work::Forever), &launch).await
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

/// A run cancelled before it began does nothing and is recorded
/// `cancelled`; progress and cancellation reach the stage separately.
#[test]
fn a_run_cancelled_before_it_began_is_recorded_cancelled() {
    for db in TestDb::all() {
        let config = db.config();
        block_on(async move {
            let store = storage::open(&config).await.unwrap();
            let cancel = CancellationToken::new();
            let reporter = Reporter::new(Progress::silent(), cancel.clone());
            cancel.cancel();
            let launch = launch(&store, &config, Trigger::Tui).with_reporter(reporter);
            let err = jobs::run(CaptureProbe(Work::Count(1)), &launch)
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Cancelled);
            assert_eq!(err.kind().exit_code(), 1);
            let last = store.last_job_run_per_stage().await.unwrap();
            assert_eq!(last.len(), 1);
            assert_eq!(last[0].status, "cancelled");
            assert_eq!(last[0].counts, None);
            assert_eq!(last[0].error.as_deref(), Some("cancelled by the operator"));
            store.close().await;
        });
    }
}

/// A stage that says a run is not recorded (a dry run) takes no lock and
/// leaves no row: it runs although another run holds the lock.
#[test]
fn an_unrecorded_run_takes_no_lock_and_leaves_no_row() {
    for db in TestDb::all() {
        let config = db.config();
        block_on(async move {
            let store = storage::open(&config).await.unwrap();
            let holder = JobRunGuard::start(&store, Stage::DailyCapture, Trigger::Cron)
                .await
                .unwrap();
            let run_id = jobs::run(DryProbe, &launch(&store, &config, Trigger::Cli))
                .await
                .unwrap();
            assert_eq!(run_id, None);
            assert_eq!(store.recent_job_runs(10).await.unwrap().len(), 1);
            holder.succeed(&serde_json::json!({})).await.unwrap();
            store.close().await;
        });
    }
}
