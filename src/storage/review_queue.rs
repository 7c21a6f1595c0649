//! The review queue: needs-review samples, most urgent first (lowest
//! priority number, then most occurrences, then oldest), the order of the
//! `training_queue` view operators query by hand. One read and one count,
//! which the console, `status`, `stats queue` and the tests all use.

use super::samples::{SAMPLE_COLUMNS, Sample};
use super::{Store, db_error, on_pool};
use crate::error::Result;

/// How many samples wait for review.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueSize {
    pub total: i64,
    /// At `urgent_priority` or more urgent.
    pub urgent: i64,
    /// (priority, count), most urgent first.
    pub by_priority: Vec<(i32, i64)>,
}

impl Store {
    /// `limit` samples of the queue from `offset` on, read along the
    /// queue's partial index.
    pub async fn review_queue(&self, limit: i64, offset: i64) -> Result<Vec<Sample>> {
        let sql = format!(
            "SELECT {SAMPLE_COLUMNS} FROM training_samples {} \
             WHERE review_status = 'needs-review' \
             ORDER BY priority, occurrences DESC, id LIMIT $1 OFFSET $2",
            self.queue_index_hint()
        );
        on_pool!(self, |pool| {
            sqlx::query_as::<_, Sample>(&sql)
                .bind(limit)
                .bind(offset)
                .fetch_all(pool)
                .await
        })
        .map_err(|err| db_error("reading the review queue", err))
    }

    /// The queue's size per priority, counted from its partial index alone
    /// (priority is its first column) without visiting the table's rows.
    pub async fn review_queue_size(&self, urgent_priority: i32) -> Result<QueueSize> {
        let by_priority: Vec<(i32, i64)> = on_pool!(self, |pool| {
            sqlx::query_as(&format!(
                "SELECT priority, COUNT(*) FROM training_samples {} \
                 WHERE review_status = 'needs-review' GROUP BY priority ORDER BY priority",
                self.queue_index_hint()
            ))
            .fetch_all(pool)
            .await
        })
        .map_err(|err| db_error("counting the review queue", err))?;
        Ok(QueueSize {
            total: by_priority.iter().map(|(_, n)| n).sum(),
            urgent: by_priority
                .iter()
                .filter(|(p, _)| *p <= urgent_priority)
                .map(|(_, n)| n)
                .sum(),
            by_priority,
        })
    }
}
