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

/// A model's answer (`source = 'auto'`) waiting for a human: queued here
/// with no task in flight, or in Label Studio with its task pushed and not
/// yet annotated. Over `training_samples s`.
const WAITING: &str = "s.source = 'auto' AND ( \
       (s.review_status = 'needs-review' \
        AND NOT EXISTS (SELECT 1 FROM label_studio_tasks t WHERE t.sample_id = s.id)) \
    OR (s.review_status = 'in-review' \
        AND EXISTS (SELECT 1 FROM label_studio_tasks t \
                    WHERE t.sample_id = s.id AND t.sync_state = 'pushed')))";

impl Store {
    /// Samples waiting for review — queued here, or in Label Studio with a
    /// task that waits for its annotation — that `version` has not
    /// predicted yet. Audit samples are left out (an audit is a human's
    /// label by definition), and so is a sample whose task is being pushed,
    /// was annotated or failed: its state is the sync's to settle.
    pub async fn backlog_not_judged_by(&self, version: &str) -> Result<Vec<BacklogSample>> {
        on_pool!(self, |pool| sqlx::query_as(&format!(
            "SELECT s.id, s.text, s.language FROM training_samples s \
             WHERE {WAITING} \
               AND (s.predicted_by_version IS NULL OR s.predicted_by_version <> $1) \
               AND NOT EXISTS (SELECT 1 FROM audits a WHERE a.sample_id = s.id) \
             ORDER BY s.id"
        ))
        .bind(version)
        .fetch_all(pool)
        .await)
        .map_err(|err| db_error("reading the review backlog", err))
    }

    /// Store the new predictions in one transaction. A sample a human
    /// decided, or a sync started pushing or pulled, since it was read is
    /// left as it is (the update requires it still waiting as it was read).
    pub async fn store_rejudged(&self, rows: &[Rejudged]) -> Result<()> {
        let err = |e| db_error("storing the re-judged backlog", e);
        let now = Timestamp::now();
        let update = format!(
            "UPDATE training_samples AS s SET intent = $2, predicted_intent = $2, \
                 confidence = $3, predicted_by_version = $4, priority = $5, updated_at = $6 \
             WHERE s.id = $1 AND {WAITING}"
        );
        let mut tx = self.begin().await.map_err(err)?;
        for row in rows {
            on_tx!(&mut tx, |tx, Db| {
                sqlx::query::<Db>(&update)
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
