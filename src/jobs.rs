//! The job-run framework every stage uses: take the stage's lock, record a
//! `job_runs` row, run, and record how it ended. A second concurrent run of
//! the same stage is refused with [`ErrorKind::Locked`] (exit 75) and a
//! message naming the run that holds the lock.

use std::future::Future;
use std::time::Duration;

pub use crate::domain::{JobStatus, Stage, Trigger};
use crate::error::{Error, ErrorKind, Result};
use crate::storage::{StageLock, Store, jobs::JobRun};

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
    pub async fn succeed(self, counts: &serde_json::Value) -> Result<()> {
        let counts = counts.to_string();
        let result = self
            .store
            .finish_job_run(self.run.id, JobStatus::Succeeded, Some(&counts), None)
            .await;
        tracing::info!(stage = %self.run.stage, run = self.run.id, counts = %counts, "stage succeeded");
        self.lock.release().await;
        result
    }

    /// Record failure (or, when an operator stopped the run or the output's
    /// reader went away, `cancelled`)
    /// and release the lock. Recording is best effort: when the database
    /// itself is what failed, the row is marked `crashed` by the next run
    /// instead.
    pub async fn fail(self, error: &Error, counts: Option<&serde_json::Value>) {
        let counts = counts.map(|c| c.to_string());
        let cancelled = matches!(error.kind(), ErrorKind::OutputClosed | ErrorKind::Cancelled);
        let status = if cancelled {
            JobStatus::Cancelled
        } else {
            JobStatus::Failed
        };
        if let Err(record_err) = self
            .store
            .finish_job_run(
                self.run.id,
                status,
                counts.as_deref(),
                Some(error.message()),
            )
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

/// Run `work` as one recorded, locked run of `stage`. `work` returns its
/// result and the counts to record.
pub async fn run_stage<T, Fut>(
    store: &Store,
    stage: Stage,
    trigger: Trigger,
    work: impl FnOnce(i64) -> Fut,
) -> Result<T>
where
    Fut: Future<Output = Result<(T, serde_json::Value)>>,
{
    let mut guard = JobRunGuard::start(store, stage, trigger).await?;
    let run_id = guard.run().id;
    // Losing the lock mid-run stops the stage (its open transaction rolls
    // back), so two runs never overlap even when a lock session is killed.
    let outcome = tokio::select! {
        outcome = work(run_id) => outcome,
        () = heartbeat(store.clone(), run_id) => unreachable!("the heartbeat never ends"),
        () = guard.lock.lost() => Err(Error::new(
            ErrorKind::Unavailable,
            format!(
                "{stage} lost its lock: the database session holding it ended; \
                 stopped so that no other run overlaps this one. Run it again."
            ),
        )),
    };
    match outcome {
        Ok((value, counts)) => {
            guard.succeed(&counts).await?;
            Ok(value)
        }
        Err(err) => {
            guard.fail(&err, None).await;
            Err(err)
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

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}
