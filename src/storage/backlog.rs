//! The review backlog queued here, as the model serving now re-judges it
//! ([`crate::stages::rejudge`]): which samples it reads, and how their new
//! predictions are stored.

use super::{Store, Timestamp, db_error, on_pool, on_tx};
use crate::error::Result;

/// A sample queued here for review whose prediction came from another
/// version than the one serving now.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct BacklogSample {
    pub id: i64,
    pub text: String,
    pub language: Option<String>,
}

/// What the serving model now says of a backlog sample, and the priority
/// its new confidence earns.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejudged {
    pub id: i64,
    pub intent: String,
    pub confidence: f64,
    pub version: String,
    pub priority: i32,
}

impl Store {
    /// Samples queued here (`needs-review`: not in Label Studio) that
    /// `version` has not predicted yet. Audit samples are left out — an
    /// audit is a human's label by definition — and so is anything with a
    /// Label Studio task (one in flight would be labelled twice).
    pub async fn backlog_not_judged_by(&self, version: &str) -> Result<Vec<BacklogSample>> {
        on_pool!(self, |pool| sqlx::query_as(
            "SELECT s.id, s.text, s.language FROM training_samples s \
             WHERE s.review_status = 'needs-review' AND s.source = 'auto' \
               AND (s.predicted_by_version IS NULL OR s.predicted_by_version <> $1) \
               AND NOT EXISTS (SELECT 1 FROM audits a WHERE a.sample_id = s.id) \
               AND NOT EXISTS (SELECT 1 FROM label_studio_tasks t WHERE t.sample_id = s.id) \
             ORDER BY s.id"
        )
        .bind(version)
        .fetch_all(pool)
        .await)
        .map_err(|err| db_error("reading the review backlog", err))
    }

    /// Store the new predictions in one transaction. A sample a human
    /// decided, or a sync pushed, since it was read is left as it is (the
    /// update requires it still queued here).
    pub async fn store_rejudged(&self, rows: &[Rejudged]) -> Result<()> {
        let err = |e| db_error("storing the re-judged backlog", e);
        let now = Timestamp::now();
        let mut tx = self.begin().await.map_err(err)?;
        for row in rows {
            on_tx!(&mut tx, |tx, Db| {
                sqlx::query::<Db>(
                    "UPDATE training_samples SET intent = $2, predicted_intent = $2, \
                         confidence = $3, predicted_by_version = $4, priority = $5, \
                         updated_at = $6 \
                     WHERE id = $1 AND review_status = 'needs-review' AND source = 'auto'",
                )
                .bind(row.id)
                .bind(&row.intent)
                .bind(row.confidence)
                .bind(&row.version)
                .bind(row.priority)
                .bind(now)
                .execute(&mut **tx)
                .await
                .map(|_| ())
            })
            .map_err(err)?;
        }
        on_tx!(tx, |tx, Db| tx.commit().await).map_err(err)
    }
}
