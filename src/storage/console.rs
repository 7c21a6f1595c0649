//! Queries only the operator console runs: the live feed tailed by id, the
//! conversations and job runs around a capture gap, one stage's recent runs
//! and the review queue's size. Each is an index look-up or a short range,
//! so a console tick stays cheap on millions of rows.

use super::conversations::Conversation;
use super::jobs::{JOB_RUN_COLUMNS, JobRun};
use super::samples::{SAMPLE_COLUMNS, Sample};
use super::{Store, Timestamp, db_error, on_pool};
use crate::error::Result;

const CONVERSATION_COLUMNS: &str = "id, created_at, session_id, user_message, language, \
    nlu_intent, nlu_confidence, nlu_provider, model_version, fallback, routing_decision, \
    feedback, review_status";

/// Size of the review queue and how much of it is urgent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueSize {
    pub total: i64,
    /// At the most urgent priority or better.
    pub urgent: i64,
}

impl Store {
    /// Up to `limit` conversations logged after row `after_id`, newest first
    /// (the primary key: a tail, whatever the table's size).
    pub async fn conversations_after(
        &self,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<Conversation>> {
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversation_logs WHERE id > $1 \
             ORDER BY id DESC LIMIT $2"
        );
        on_pool!(self, |pool| {
            sqlx::query_as::<_, Conversation>(&sql)
                .bind(after_id)
                .bind(limit)
                .fetch_all(pool)
                .await
        })
        .map_err(|err| db_error("reading the live feed", err))
    }

    /// The `each_side` conversations before `start` and after `end` of a
    /// gap (so the edges of the silence), oldest first.
    pub async fn conversations_around(
        &self,
        start: Timestamp,
        end: Timestamp,
        each_side: i64,
    ) -> Result<Vec<Conversation>> {
        let before = format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversation_logs WHERE created_at < $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        );
        let after = format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversation_logs WHERE created_at >= $1 \
             ORDER BY created_at, id LIMIT $2"
        );
        let err = |e| db_error("reading conversations around a gap", e);
        let mut rows = on_pool!(self, |pool| {
            sqlx::query_as::<_, Conversation>(&before)
                .bind(start)
                .bind(each_side)
                .fetch_all(pool)
                .await
        })
        .map_err(err)?;
        rows.reverse();
        let later = on_pool!(self, |pool| {
            sqlx::query_as::<_, Conversation>(&after)
                .bind(end)
                .bind(each_side)
                .fetch_all(pool)
                .await
        })
        .map_err(err)?;
        rows.extend(later);
        Ok(rows)
    }

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

    /// The head of the review queue, most urgent first: the order of
    /// [`Store::review_queue`], read along the queue's partial index.
    pub async fn console_review_queue(&self, limit: i64) -> Result<Vec<Sample>> {
        let sql = format!(
            "SELECT {SAMPLE_COLUMNS} FROM training_samples {} \
             WHERE review_status = 'needs-review' \
             ORDER BY priority, occurrences DESC, id LIMIT $1",
            self.queue_index_hint()
        );
        on_pool!(self, |pool| {
            sqlx::query_as::<_, Sample>(&sql)
                .bind(limit)
                .fetch_all(pool)
                .await
        })
        .map_err(|err| db_error("reading the review queue", err))
    }

    /// Needs-review samples, and how many are at `urgent_priority` or more
    /// urgent, counted from the queue's partial index alone (priority is
    /// its first column) without visiting the table's rows.
    pub async fn review_queue_size(&self, urgent_priority: i32) -> Result<QueueSize> {
        let rows: Vec<(i32, i64)> = on_pool!(self, |pool| {
            sqlx::query_as(&format!(
                "SELECT priority, COUNT(*) FROM training_samples {} \
                 WHERE review_status = 'needs-review' GROUP BY priority",
                self.queue_index_hint()
            ))
            .fetch_all(pool)
            .await
        })
        .map_err(|err| db_error("counting the review queue", err))?;
        Ok(QueueSize {
            total: rows.iter().map(|(_, n)| n).sum(),
            urgent: rows
                .iter()
                .filter(|(p, _)| *p <= urgent_priority)
                .map(|(_, n)| n)
                .sum(),
        })
    }
}
