//! The review queue: needs-review samples, most urgent first (lowest
//! priority number, then most occurrences, then oldest), the order of the
//! `training_queue` view operators query by hand. How much waits, here and
//! in Label Studio, is [`super::waiting`].

use super::samples::{SAMPLE_COLUMNS, Sample};
use super::{Store, db_error, on_pool};
use crate::error::Result;

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
}
