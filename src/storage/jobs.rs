//! `job_runs`: one row per stage run from the CLI, cron or the console.

use serde::Serialize;

use super::{Store, Timestamp, db_error, on_pool};
use crate::domain::{JobStatus, Stage, Trigger};
use crate::error::Result;

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct JobRun {
    pub id: i64,
    pub stage: Stage,
    pub trigger: Trigger,
    pub status: JobStatus,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    /// JSON object of the stage's counts.
    pub counts: Option<String>,
    pub error: Option<String>,
    pub host: Option<String>,
    pub pid: Option<i32>,
    /// Last sign of life of a running run; a crashed run ends here.
    pub heartbeat_at: Option<Timestamp>,
}

pub(super) const JOB_RUN_COLUMNS: &str =
    "id, stage, trigger, status, started_at, finished_at, counts, error, host, pid, heartbeat_at";

impl Store {
    /// Record the start of a run (status `running`).
    pub async fn insert_job_run(
        &self,
        stage: Stage,
        trigger: Trigger,
        host: Option<&str>,
        pid: Option<i32>,
    ) -> Result<JobRun> {
        let sql = format!(
            "INSERT INTO job_runs (stage, trigger, status, started_at, heartbeat_at, host, pid) \
             VALUES ($1, $2, $3, $4, $4, $5, $6) RETURNING {JOB_RUN_COLUMNS}"
        );
        on_pool!(self, |pool| {
            sqlx::query_as::<_, JobRun>(&sql)
                .bind(stage)
                .bind(trigger)
                .bind(JobStatus::Running)
                .bind(Timestamp::now())
                .bind(host)
                .bind(pid)
                .fetch_one(pool)
                .await
        })
        .map_err(|err| db_error("recording the job run", err))
    }

    /// Close a run with its final status, counts and error.
    pub async fn finish_job_run(
        &self,
        id: i64,
        status: JobStatus,
        counts: Option<&str>,
        error: Option<&str>,
    ) -> Result<()> {
        on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE job_runs SET status = $2, finished_at = $3, counts = $4, error = $5 WHERE id = $1",
            )
            .bind(id)
            .bind(status)
            .bind(Timestamp::now())
            .bind(counts)
            .bind(error)
            .execute(pool)
            .await
            .map(|_| ())
        })
        .map_err(|err| db_error("finishing the job run", err))
    }

    /// A running run is alive: move its heartbeat to now.
    pub async fn beat_job_run(&self, id: i64) -> Result<()> {
        on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE job_runs SET heartbeat_at = $2 WHERE id = $1 AND status = 'running'",
            )
            .bind(id)
            .bind(Timestamp::now())
            .execute(pool)
            .await
            .map(|_| ())
        })
        .map_err(|err| db_error("recording the job run's heartbeat", err))
    }

    /// Runs of `stage` still marked `running` although the caller now holds
    /// the stage lock: their process died. Mark them `crashed`, ended at
    /// their last heartbeat (not now, when their death was noticed).
    pub async fn mark_crashed_job_runs(&self, stage: Stage) -> Result<u64> {
        on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE job_runs SET status = 'crashed', \
                 finished_at = COALESCE(heartbeat_at, started_at), \
                 error = 'the process ended without finishing (killed or crashed)' \
                 WHERE stage = $1 AND status = 'running'",
            )
            .bind(stage)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(|err| db_error("marking crashed job runs", err))
    }

    /// The newest `running` row of a stage (the holder of its lock, usually).
    pub async fn running_job_run(&self, stage: Stage) -> Result<Option<JobRun>> {
        let sql = format!(
            "SELECT {JOB_RUN_COLUMNS} FROM job_runs WHERE stage = $1 AND status = 'running' \
             ORDER BY started_at DESC, id DESC LIMIT 1"
        );
        on_pool!(self, |pool| {
            sqlx::query_as::<_, JobRun>(&sql)
                .bind(stage)
                .fetch_optional(pool)
                .await
        })
        .map_err(|err| db_error("reading job runs", err))
    }

    pub async fn recent_job_runs(&self, limit: i64) -> Result<Vec<JobRun>> {
        let sql = format!(
            "SELECT {JOB_RUN_COLUMNS} FROM job_runs ORDER BY started_at DESC, id DESC LIMIT $1"
        );
        on_pool!(self, |pool| {
            sqlx::query_as::<_, JobRun>(&sql)
                .bind(limit)
                .fetch_all(pool)
                .await
        })
        .map_err(|err| db_error("reading job runs", err))
    }

    /// The latest run of every stage that has run at least once.
    pub async fn last_job_run_per_stage(&self) -> Result<Vec<JobRun>> {
        let sql = format!(
            "SELECT {JOB_RUN_COLUMNS} FROM job_runs j WHERE id = \
               (SELECT id FROM job_runs k WHERE k.stage = j.stage ORDER BY started_at DESC, id DESC LIMIT 1) \
             ORDER BY stage"
        );
        on_pool!(self, |pool| {
            sqlx::query_as::<_, JobRun>(&sql).fetch_all(pool).await
        })
        .map_err(|err| db_error("reading job runs", err))
    }
}

impl Store {
    /// The latest successful run of every stage that has succeeded once.
    pub async fn last_successful_job_run_per_stage(&self) -> Result<Vec<JobRun>> {
        let sql = format!(
            "SELECT {JOB_RUN_COLUMNS} FROM job_runs j WHERE id = \
               (SELECT id FROM job_runs k WHERE k.stage = j.stage AND k.status = 'succeeded' \
                ORDER BY started_at DESC, id DESC LIMIT 1) \
             ORDER BY stage"
        );
        on_pool!(self, |pool| {
            sqlx::query_as::<_, JobRun>(&sql).fetch_all(pool).await
        })
        .map_err(|err| db_error("reading job runs", err))
    }
}

impl Store {
    /// Job runs that were running at some point between `from` and `to`
    /// (what cron and operators did while capture was silent), oldest first.
    pub async fn job_runs_overlapping(
        &self,
        from: Timestamp,
        to: Timestamp,
        limit: i64,
    ) -> Result<Vec<JobRun>> {
        let sql = format!(
            "SELECT {JOB_RUN_COLUMNS} FROM job_runs \
             WHERE started_at <= $2 AND (finished_at IS NULL OR finished_at >= $1) \
             ORDER BY started_at, id LIMIT $3"
        );
        on_pool!(self, |pool| {
            sqlx::query_as::<_, JobRun>(&sql)
                .bind(from)
                .bind(to)
                .bind(limit)
                .fetch_all(pool)
                .await
        })
        .map_err(|err| db_error("reading job runs around a gap", err))
    }

    /// The newest `limit` runs of one stage.
    pub async fn stage_job_runs(&self, stage: &str, limit: i64) -> Result<Vec<JobRun>> {
        let sql = format!(
            "SELECT {JOB_RUN_COLUMNS} FROM job_runs WHERE stage = $1 \
             ORDER BY started_at DESC, id DESC LIMIT $2"
        );
        on_pool!(self, |pool| {
            sqlx::query_as::<_, JobRun>(&sql)
                .bind(stage)
                .bind(limit)
                .fetch_all(pool)
                .await
        })
        .map_err(|err| db_error("reading job runs", err))
    }
}

/// Which runs `flywheel jobs` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobRunFilter {
    /// Runs started at or after this.
    pub since: Timestamp,
    /// Only this stage's runs.
    pub stage: Option<Stage>,
    /// Only runs that ended badly (`failed` or `crashed`).
    pub failed: bool,
    pub limit: i64,
}

impl Store {
    /// The stage-run history, newest first.
    pub async fn job_run_history(&self, filter: &JobRunFilter) -> Result<Vec<JobRun>> {
        // The optional filters are constant SQL; their values are still bound.
        let mut sql = format!("SELECT {JOB_RUN_COLUMNS} FROM job_runs WHERE started_at >= $1");
        if filter.failed {
            sql.push_str(" AND status IN ('failed', 'crashed')");
        }
        if filter.stage.is_some() {
            sql.push_str(" AND stage = $3");
        }
        sql.push_str(" ORDER BY started_at DESC, id DESC LIMIT $2");
        on_pool!(self, |pool| {
            let mut query = sqlx::query_as::<_, JobRun>(&sql)
                .bind(filter.since)
                .bind(filter.limit);
            if let Some(stage) = filter.stage {
                query = query.bind(stage);
            }
            query.fetch_all(pool).await
        })
        .map_err(|err| db_error("reading the stage-run history", err))
    }
}
