//! `audits`: conversations drawn for a human label ([`crate::audit`]), how
//! many of their samples await it, and what they measured per model
//! version. Where they stand in the review order is
//! [`crate::review::order`]'s.

use super::samples::gold_sources;
use super::{Store, Timestamp, db_error, on_pool};
use crate::audit::{AuditTally, HASH_MULTIPLIER};
use crate::error::Result;
use crate::stages::approval_thresholds::AuditedPrediction;

/// An audit's sample waits for a human: it has no gold label yet and was
/// not thrown out. Samples waiting for review (here or in Label Studio)
/// count too: left to the review queue's order they would wait behind its
/// backlog, and the versions measured would be the old ones (the review
/// order takes each once, as an audit).
pub(super) fn awaiting_label() -> String {
    format!(
        "s.review_status IN ('approved', 'needs-review', 'in-review') AND s.source NOT IN ({})",
        gold_sources()
    )
}

impl Store {
    /// Draw `percent` % of the processed conversations created in `[start,
    /// end)` for audit (the bucket of [`crate::audit::bucket`], computed
    /// here in SQL), keeping what each was served and how daily capture
    /// processed it. Drawing a window twice adds nothing. Returns how many
    /// were drawn now.
    pub async fn draw_audits(&self, start: Timestamp, end: Timestamp, percent: u32) -> Result<u64> {
        let sql = format!(
            "INSERT INTO audits (conversation_id, sample_id, model_version, served_intent, \
                 conversation_status, conversation_at, drawn_at) \
             SELECT c.id, c.sample_id, c.model_version, \
                 CASE WHEN c.fallback THEN 'oos' ELSE c.nlu_intent END, \
                 c.review_status, c.created_at, $4 \
             FROM conversation_logs c \
             WHERE c.created_at >= $1 AND c.created_at < $2 AND c.sample_id IS NOT NULL \
               AND c.review_status IN ('auto-approved', 'needs-review') \
               AND (((c.id % 1048576) * {HASH_MULTIPLIER}) % 4294967296) / 42949673 < $3 \
             ON CONFLICT (conversation_id) DO NOTHING"
        );
        on_pool!(self, |pool| {
            sqlx::query(&sql)
                .bind(start)
                .bind(end)
                .bind(i64::from(percent))
                .bind(Timestamp::now())
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .map_err(|err| db_error("drawing audits", err))
    }

    /// Samples of audits awaiting a human label.
    pub async fn audit_queue_size(&self) -> Result<i64> {
        let sql = format!(
            "SELECT COUNT(DISTINCT a.sample_id) FROM audits a \
             CROSS JOIN training_samples s WHERE s.id = a.sample_id AND {}",
            awaiting_label()
        );
        on_pool!(self, |pool| sqlx::query_scalar(&sql).fetch_one(pool).await)
            .map_err(|err| db_error("counting the audit queue", err))
    }

    /// What the audits of conversations since `since` found, per version
    /// that served them (`None`: all of them).
    pub async fn audit_tallies(&self, since: Option<Timestamp>) -> Result<Vec<AuditTally>> {
        let labelled = format!(
            "s.review_status = 'approved' AND s.source IN ({})",
            gold_sources()
        );
        let awaiting = awaiting_label();
        let sql = format!(
            "SELECT a.model_version AS version, COUNT(*) AS drawn, \
                 SUM(CASE WHEN {labelled} THEN 1 ELSE 0 END) AS labelled, \
                 SUM(CASE WHEN {labelled} AND a.served_intent = s.intent THEN 1 ELSE 0 END) AS served_right, \
                 SUM(CASE WHEN {labelled} AND a.conversation_status = 'auto-approved' THEN 1 ELSE 0 END) AS auto_approved, \
                 SUM(CASE WHEN {labelled} AND a.conversation_status = 'auto-approved' \
                     AND a.served_intent = s.intent THEN 1 ELSE 0 END) AS auto_approved_right, \
                 SUM(CASE WHEN {awaiting} THEN 1 ELSE 0 END) AS awaiting \
             FROM audits a CROSS JOIN training_samples s \
             WHERE s.id = a.sample_id AND a.conversation_at >= $1 \
             GROUP BY a.model_version ORDER BY a.model_version"
        );
        let since = since.unwrap_or(Timestamp(chrono::DateTime::UNIX_EPOCH));
        on_pool!(self, |pool| {
            sqlx::query_as::<_, AuditTally>(&sql)
                .bind(since)
                .fetch_all(pool)
                .await
        })
        .map_err(|err| db_error("reading what audits found", err))
    }

    /// Labelled audits of conversations since `since` with what the router
    /// predicted (intent and confidence, before any fallback), whether the
    /// human agreed, and the provider that answered: the evidence for
    /// per-intent auto-approval thresholds.
    pub async fn audited_predictions(
        &self,
        since: Timestamp,
    ) -> Result<Vec<(Option<String>, AuditedPrediction)>> {
        let sql = format!(
            "SELECT c.nlu_provider, c.nlu_intent, c.nlu_confidence, s.intent              FROM audits a CROSS JOIN training_samples s CROSS JOIN conversation_logs c              WHERE s.id = a.sample_id AND c.id = a.conversation_id AND a.conversation_at >= $1                AND s.review_status = 'approved' AND s.source IN ({})                AND c.nlu_intent IS NOT NULL AND c.nlu_confidence IS NOT NULL",
            gold_sources()
        );
        let rows: Vec<(Option<String>, String, f64, String)> = on_pool!(self, |pool| {
            sqlx::query_as(&sql).bind(since).fetch_all(pool).await
        })
        .map_err(|err| db_error("reading audited predictions", err))?;
        Ok(rows
            .into_iter()
            .map(|(provider, intent, confidence, label)| {
                let right = intent == label;
                (
                    provider,
                    AuditedPrediction {
                        intent,
                        confidence,
                        right,
                    },
                )
            })
            .collect())
    }

    /// Write each version's audited production accuracy (all its traffic)
    /// and fallback rate into `model_versions`, where the seed's "Check
    /// Model Performance" query reads them. Returns versions updated.
    pub async fn record_version_performance(&self) -> Result<u64> {
        let mut updated = 0;
        for tally in self.audit_tallies(None).await? {
            let (Some(version), true) = (&tally.version, tally.labelled > 0) else {
                continue;
            };
            let accuracy = tally.served_right as f64 / tally.labelled as f64;
            updated += on_pool!(self, |pool| {
                sqlx::query("UPDATE model_versions SET production_accuracy = $2 WHERE version = $1")
                    .bind(version)
                    .bind(accuracy)
                    .execute(pool)
                    .await
                    .map(|done| done.rows_affected())
            })
            .map_err(|err| db_error("recording production accuracy", err))?;
        }
        // Fallback rate as the model_performance view measures it, one
        // version at a time along conversation_logs (model_version, created_at).
        on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE model_versions SET fallback_rate = ( \
                     SELECT CAST(AVG(CASE WHEN c.fallback THEN 1.0 ELSE 0.0 END) AS DOUBLE PRECISION) \
                     FROM conversation_logs c WHERE c.model_version = model_versions.version) \
                 WHERE EXISTS (SELECT 1 FROM conversation_logs c WHERE c.model_version = model_versions.version)",
            )
            .execute(pool)
            .await
            .map(|_| ())
        })
        .map_err(|err| db_error("recording fallback rates", err))?;
        Ok(updated)
    }
}
