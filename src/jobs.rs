//! The job-run framework every stage runs through. A stage is one type
//! ([`StageJob`]): its options are its fields, built from the configuration
//! by its constructor and then overridden by the CLI or the console; its
//! outcome is typed and says what `job_runs.counts` records. [`run`] is
//! the one entry point of every face: take the stage's lock, record a
//! `job_runs` row, keep its heartbeat, run, and record how it ended
//! (`succeeded`, `failed`, or `cancelled` when an operator stopped it or
//! its output was closed). A second concurrent run of the same stage is
//! refused with [`ErrorKind::Locked`] (exit 75) and a message naming the
//! run that holds the lock.

use std::future::Future;
use std::time::Duration;

use serde::Serialize;

use crate::config::Config;
pub use crate::domain::{JobStatus, Stage, Trigger};
use crate::error::{Error, ErrorKind, Result};
use crate::monitor::notify;
use crate::progress::{Reporter, cancelled};
use crate::storage::{StageLock, Store, jobs::JobRun};

/// One stage of the loop as a job. Its fields are its options.
pub trait StageJob: Send + Sized {
    /// Its lock and its name in `job_runs`.
    const STAGE: Stage;
    /// What a run hands back to the face that started it.
    type Outcome: Send;

    /// Whether this run takes the lock and is recorded: a dry run that
    /// writes nothing is neither.
    fn recorded(&self) -> bool {
        true
    }

    /// The stage's work; only [`run`] calls it (or a stage doing another's
    /// work under its own run, as bootstrap does weekly training's).
    fn work(self, ctx: &StageContext<'_>) -> impl Future<Output = Result<Self::Outcome>> + Send;

    /// What `job_runs.counts` records of a successful run.
    fn counts(outcome: &Self::Outcome) -> impl Serialize;

    /// What a successful run tells the on-call webhook ([`notify`]).
    fn alerts(_outcome: &Self::Outcome, _config: &Config) -> Vec<notify::Event> {
        Vec::new()
    }
}

/// Where a face runs a stage, and who it is: the same for every stage.
#[derive(Clone)]
pub struct Launch<'a> {
    pub store: &'a Store,
    pub config: &'a Config,
    pub trigger: Trigger,
    /// Where progress goes and the token that stops the run.
    pub reporter: Reporter,
}

impl<'a> Launch<'a> {
    /// A launch nobody watches or cancels (tests, nested calls).
    pub fn new(store: &'a Store, config: &'a Config, trigger: Trigger) -> Self {
        Self {
            store,
            config,
            trigger,
            reporter: Reporter::silent(),
        }
    }

    pub fn with_reporter(self, reporter: Reporter) -> Self {
        Self { reporter, ..self }
    }
}

/// What a stage's work sees; only the framework makes one.
pub struct StageContext<'a> {
    pub store: &'a Store,
    pub config: &'a Config,
    /// Progress out, cancellation in.
    pub reporter: &'a Reporter,
    run_id: Option<i64>,
}

impl StageContext<'_> {
    /// The `job_runs` row recording this run; `None` for a run that is not
    /// recorded (a dry run).
    pub fn run_id(&self) -> Option<i64> {
        self.run_id
    }
}

/// Run `stage`: locked and recorded (unless it says it is not, as a dry
/// run does), with a heartbeat, its end recorded whatever it is.
pub async fn run<S: StageJob>(stage: S, launch: &Launch<'_>) -> Result<S::Outcome> {
    let mut ctx = StageContext {
        store: launch.store,
        config: launch.config,
        reporter: &launch.reporter,
        run_id: None,
    };
    if !stage.recorded() {
        return stage.work(&ctx).await;
    }
    let mut guard = JobRunGuard::start(launch.store, S::STAGE, launch.trigger).await?;
    let run_id = guard.run().id;
    ctx.run_id = Some(run_id);
    let outcome = if launch.reporter.is_cancelled() {
        // Cancelled while it waited to start: do nothing, say so.
        Err(cancelled())
    } else {
        // Losing the lock mid-run stops the stage (its open transaction
        // rolls back), so two runs never overlap even when a lock session
        // is killed.
        tokio::select! {
            outcome = stage.work(&ctx) => outcome,
            () = heartbeat(launch.store.clone(), run_id) => unreachable!("the heartbeat never ends"),
            () = guard.lock.lost() => Err(lost_lock(S::STAGE)),
        }
    };
    match outcome {
        Ok(outcome) => {
            guard.succeed(&S::counts(&outcome)).await?;
            let events = S::alerts(&outcome, launch.config);
            notify::after_stage(launch.store, launch.config, S::STAGE, events, None).await;
            Ok(outcome)
        }
        Err(err) => {
            guard.fail(&err).await;
            // A cancelled run is an operator's choice, not an alert.
            if !matches!(err.kind(), ErrorKind::OutputClosed | ErrorKind::Cancelled) {
                let error = Some(err.message());
                notify::after_stage(launch.store, launch.config, S::STAGE, Vec::new(), error).await;
            }
            Err(err)
        }
    }
}

fn lost_lock(stage: Stage) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        format!(
            "{stage} lost its lock: the database session holding it ended; \
             stopped so that no other run overlaps this one. Run it again."
        ),
    )
}

/// A run in progress: holds the stage lock and its `job_runs` row.
#[derive(Debug)]
pub struct JobRunGuard {
    store: Store,
    run: JobRun,
    lock: StageLock,
}

impl JobRunGuard {
    /// Take the stage's lock and record a `running` row, or refuse with
    /// exit 75 naming the run that holds the lock.
    pub async fn start(store: &Store, stage: Stage, trigger: Trigger) -> Result<Self> {
        let Some(lock) = store.try_lock_stage(stage.as_str()).await? else {
            return Err(locked_error(store, stage).await);
        };
        // We hold the lock, so any row still `running` belongs to a dead process.
        let crashed = store.mark_crashed_job_runs(stage).await?;
        if crashed > 0 {
            tracing::warn!(stage = %stage, crashed, "earlier run(s) of this stage died without finishing; marked crashed");
        }
        let host = hostname();
        let pid = i32::try_from(std::process::id()).ok();
        let run = store
            .insert_job_run(stage, trigger, host.as_deref(), pid)
            .await?;
        tracing::info!(stage = %stage, run = run.id, trigger = %trigger, "stage started");
        Ok(Self {
            store: store.clone(),
            run,
            lock,
        })
    }

    pub fn run(&self) -> &JobRun {
        &self.run
    }

    /// Record success with the stage's counts and release the lock.
    pub async fn succeed(self, counts: &impl Serialize) -> Result<()> {
        // Through a JSON value: its keys come out sorted, as `job_runs.counts`
        // has always stored them (the console and the runbook show that text).
        let counts = serde_json::to_value(counts)
            .map_err(|err| Error::failure(format!("encoding the run's counts: {err}")))?
            .to_string();
        let result = self
            .store
            .finish_job_run(self.run.id, JobStatus::Succeeded, Some(&counts), None)
            .await;
        tracing::info!(stage = %self.run.stage, run = self.run.id, counts = %counts, "stage succeeded");
        self.lock.release().await;
        result
    }

    /// Record failure (or `cancelled`, when an operator stopped the run or
    /// its output's reader went away) and release the lock. Recording is
    /// best effort: when the database itself is what failed, the row is
    /// marked `crashed` by the next run instead.
    pub async fn fail(self, error: &Error) {
        let cancelled = matches!(error.kind(), ErrorKind::OutputClosed | ErrorKind::Cancelled);
        let status = if cancelled {
            JobStatus::Cancelled
        } else {
            JobStatus::Failed
        };
        if let Err(record_err) = self
            .store
            .finish_job_run(self.run.id, status, None, Some(error.message()))
            .await
        {
            tracing::warn!(
                run = self.run.id,
                "could not record the {status} run: {record_err}"
            );
        }
        if cancelled {
            tracing::info!(stage = %self.run.stage, run = self.run.id, "stage cancelled: {error}");
        } else {
            tracing::error!(stage = %self.run.stage, run = self.run.id, "stage failed: {error}");
        }
        self.lock.release().await;
    }
}

/// How often a running stage records that it is alive: a run that dies is
/// shown as ending at most this long after it really did.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);

/// Move the run's heartbeat forward until dropped. A missed beat (the
/// database busy or briefly away) only makes a crash look a little earlier.
async fn heartbeat(store: Store, run_id: i64) {
    let mut tick = tokio::time::interval(HEARTBEAT_INTERVAL);
    tick.tick().await; // the row starts with its heartbeat at started_at
    loop {
        tick.tick().await;
        if let Err(err) = store.beat_job_run(run_id).await {
            tracing::debug!(run = run_id, "heartbeat not recorded: {err}");
        }
    }
}

async fn locked_error(store: &Store, stage: Stage) -> Error {
    let holder = match store.running_job_run(stage).await {
        Ok(Some(run)) => format!(
            "run #{} started {} by {}{}",
            run.id,
            run.started_at,
            run.trigger,
            match (&run.host, run.pid) {
                (Some(host), Some(pid)) => format!(", pid {pid} on {host}"),
                (None, Some(pid)) => format!(", pid {pid}"),
                _ => String::new(),
            }
        ),
        _ => "a run that is just starting".to_string(),
    };
    Error::new(
        ErrorKind::Locked,
        format!("{stage} is already running ({holder}); this run did nothing"),
    )
}

/// This host's name, as job runs and alerts record it.
pub fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}
