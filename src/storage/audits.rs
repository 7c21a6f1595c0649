//! `audits`: conversations drawn for a human label ([`crate::audit`]), how
//! many of their samples await it, and what they measured per model
//! version. Where they stand in the review order is
//! [`crate::review::order`]'s.

use super::samples::gold_sources;
use super::{Store, Timestamp, db_error, on_pool};
use crate::audit::{AuditCell, AuditTally, DrawRates, HASH_MULTIPLIER};
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
    /// How many conversations created in `[start, end)` daily capture
    /// auto-approved and sent to review: what the audit draw's rates
    /// ([`DrawRates::for_window`]) follow.
    pub async fn audit_strata(&self, start: Timestamp, end: Timestamp) -> Result<(u64, u64)> {
        let (auto_approved, needs_review): (i64, i64) = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT COUNT(CASE WHEN review_status = 'auto-approved' THEN 1 END), \
                        COUNT(CASE WHEN review_status = 'needs-review' THEN 1 END) \
                 FROM conversation_logs \
                 WHERE created_at >= $1 AND created_at < $2 AND sample_id IS NOT NULL",
            )
            .bind(start)
            .bind(end)
            .fetch_one(pool)
            .await
        })
        .map_err(|err| db_error("counting the audit draw's strata", err))?;
        Ok((auto_approved.max(0) as u64, needs_review.max(0) as u64))
    }

    /// Draw the processed conversations created in `[start, end)` for audit
    /// at `rates` (the bucket of [`crate::audit::bucket`], computed here in
    /// SQL), keeping what each was served, how daily capture processed it
    /// and the rate it was drawn at. Drawing a window twice adds nothing.
    /// Returns how many were drawn now.
    pub async fn draw_audits(
        &self,
        start: Timestamp,
        end: Timestamp,
        rates: DrawRates,
    ) -> Result<u64> {
        let rate = "CASE WHEN c.review_status = 'auto-approved' THEN $3 ELSE $4 END";
        let sql = format!(
            "INSERT INTO audits (conversation_id, sample_id, model_version, served_intent, \
                 conversation_status, conversation_at, drawn_at, draw_permille) \
             SELECT c.id, c.sample_id, c.model_version, \
                 CASE WHEN c.fallback THEN 'oos' ELSE c.nlu_intent END, \
                 c.review_status, c.created_at, $5, {rate} \
             FROM conversation_logs c \
             WHERE c.created_at >= $1 AND c.created_at < $2 AND c.sample_id IS NOT NULL \
               AND c.review_status IN ('auto-approved', 'needs-review') \
               AND (((c.id % 1048576) * {HASH_MULTIPLIER}) % 4294967296) / 4294968 < {rate} \
             ON CONFLICT (conversation_id) DO NOTHING"
        );
        on_pool!(self, |pool| {
            sqlx::query(&sql)
                .bind(start)
                .bind(end)
                .bind(i64::from(rates.auto_approved))
                .bind(i64::from(rates.needs_review))
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
    /// that served them (`None`: all of them), by the stratum and rate
    /// each was drawn at.
    pub async fn audit_tallies(&self, since: Option<Timestamp>) -> Result<Vec<AuditTally>> {
        let labelled = format!(
            "s.review_status = 'approved' AND s.source IN ({})",
            gold_sources()
        );
        let awaiting = awaiting_label();
        let sql = format!(
            "SELECT a.model_version AS version, a.conversation_status, a.draw_permille, \
                 SUM(CASE WHEN {labelled} THEN 1 ELSE 0 END) AS labelled, \
                 SUM(CASE WHEN {labelled} AND a.served_intent = s.intent THEN 1 ELSE 0 END) AS served_right, \
                 SUM(CASE WHEN {awaiting} THEN 1 ELSE 0 END) AS awaiting \
             FROM audits a CROSS JOIN training_samples s \
             WHERE s.id = a.sample_id AND a.conversation_at >= $1 \
             GROUP BY a.model_version, a.conversation_status, a.draw_permille \
             ORDER BY a.model_version, a.conversation_status, a.draw_permille"
        );
        let since = since.unwrap_or(Timestamp(chrono::DateTime::UNIX_EPOCH));
        let cells = on_pool!(self, |pool| {
            sqlx::query_as::<_, AuditCell>(&sql)
                .bind(since)
                .fetch_all(pool)
                .await
        })
        .map_err(|err| db_error("reading what audits found", err))?;
        Ok(AuditTally::by_version(cells))
    }

    /// Labelled audits of conversations in `[since, until)` with what the router
    /// predicted (intent and confidence, before any fallback), whether the
    /// human agreed, and the provider that answered: the evidence for
    /// per-intent auto-approval thresholds.
    pub async fn audited_predictions(
        &self,
        since: Timestamp,
        until: Timestamp,
    ) -> Result<Vec<(Option<String>, AuditedPrediction)>> {
        let sql = format!(
            "SELECT c.nlu_provider, c.nlu_intent, c.nlu_confidence, s.intent, a.draw_permille \
             FROM audits a CROSS JOIN training_samples s CROSS JOIN conversation_logs c \
             WHERE s.id = a.sample_id AND c.id = a.conversation_id \
               AND a.conversation_at >= $1 AND a.conversation_at < $2 \
               AND s.review_status = 'approved' AND s.source IN ({}) \
               AND c.nlu_intent IS NOT NULL AND c.nlu_confidence IS NOT NULL",
            gold_sources()
        );
        let rows: Vec<(Option<String>, String, f64, String, i32)> = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(since)
                .bind(until)
                .fetch_all(pool)
                .await
        })
        .map_err(|err| db_error("reading audited predictions", err))?;
        Ok(rows
            .into_iter()
            .map(|(provider, intent, confidence, label, permille)| {
                let right = intent == label;
                (
                    provider,
                    AuditedPrediction {
                        intent,
                        confidence,
                        right,
                        weight: 1000.0 / permille.max(1) as f64,
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
            let (Some(version), Some(accuracy)) = (&tally.version, tally.production_accuracy())
            else {
                continue;
            };
            updated += on_pool!(self, |pool| {
                sqlx::query("UPDATE model_versions SET production_accuracy = $2 WHERE version = $1")
                    .bind(version)
                    .bind(accuracy.value)
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
