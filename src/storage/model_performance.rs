//! How versions do: the `model_performance` view operators query by hand,
//! one version's numbers over a window (the canary watch), and each live
//! version's fallback rate.

use serde::Serialize;

use super::snapshot::LiveModel;
use super::{Store, Timestamp, db_error, on_pool};
use crate::canary::Served;
use crate::domain::ModelStatus;
use crate::error::Result;

/// A row of the `model_performance` view.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ModelPerformance {
    pub version: String,
    pub status: ModelStatus,
    pub traffic_percentage: i32,
    pub test_accuracy: Option<f64>,
    pub conversations: i64,
    pub fallback_rate: Option<f64>,
    pub reviewed: i64,
    /// Measured by audits ([`crate::audit`]), over `audited` labelled ones.
    pub production_accuracy: Option<f64>,
    pub audited: i64,
}

/// One version's numbers over a time window (the canary watch).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct WindowStats {
    pub conversations: i64,
    pub fallbacks: i64,
    pub negative_feedback: i64,
    pub reviewed: i64,
    pub agreed: i64,
}

/// A version's traffic and the reviews of its answers over a window.
struct WindowCounts {
    conversations: i64,
    fallbacks: i64,
    out_of_scope: i64,
    negative_feedback: i64,
    reviewed: i64,
    agreed: i64,
    corrected: i64,
}

impl Store {
    pub async fn model_performance(&self) -> Result<Vec<ModelPerformance>> {
        on_pool!(self, |pool| sqlx::query_as::<_, ModelPerformance>(
            "SELECT version, status, traffic_percentage, test_accuracy, conversations, fallback_rate, \
                    reviewed, production_accuracy, audited \
             FROM model_performance \
             ORDER BY CASE status WHEN 'production' THEN 0 WHEN 'canary' THEN 1 ELSE 2 END, version DESC"
        )
        .fetch_all(pool)
        .await)
        .map_err(|err| db_error("reading model performance", err))
    }

    /// What `version` did since `since`: traffic, fallbacks, negative
    /// feedback, and how often human reviewers agreed with it.
    pub async fn version_window_stats(
        &self,
        version: &str,
        since: Timestamp,
    ) -> Result<WindowStats> {
        let c = self.window_counts(version, since).await?;
        Ok(WindowStats {
            conversations: c.conversations,
            fallbacks: c.fallbacks,
            negative_feedback: c.negative_feedback,
            reviewed: c.reviewed,
            agreed: c.agreed,
        })
    }

    /// The traffic and reviews of `version` since `since`.
    async fn window_counts(&self, version: &str, since: Timestamp) -> Result<WindowCounts> {
        let err = |e| db_error("reading version stats", e);
        let (conversations, fallbacks, out_of_scope, negative_feedback): (i64, i64, i64, i64) =
            on_pool!(self, |pool| {
                sqlx::query_as(
                    "SELECT COUNT(*), COUNT(CASE WHEN fallback THEN 1 END), \
                        COUNT(CASE WHEN NOT fallback AND nlu_intent = $3 THEN 1 END), \
                        COUNT(CASE WHEN feedback = 'negative' THEN 1 END) \
                     FROM conversation_logs WHERE model_version = $1 AND created_at >= $2",
                )
                .bind(version)
                .bind(since)
                .bind(crate::router::OOS_LABEL)
                .fetch_one(pool)
                .await
            })
            .map_err(err)?;
        let (reviewed, agreed, corrected): (i64, i64, i64) = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT COUNT(*), \
                    COUNT(CASE WHEN review_status = 'approved' AND corrected_from IS NULL THEN 1 END), \
                    COUNT(CASE WHEN review_status = 'approved' AND corrected_from IS NOT NULL THEN 1 END) \
                 FROM training_samples \
                 WHERE predicted_by_version = $1 AND source = 'human' AND reviewed_at >= $2 \
                   AND review_status IN ('approved', 'rejected')",
            )
            .bind(version)
            .bind(since)
            .fetch_one(pool)
            .await
        })
        .map_err(err)?;
        Ok(WindowCounts {
            conversations,
            fallbacks,
            out_of_scope,
            negative_feedback,
            reviewed,
            agreed,
            corrected,
        })
    }

    /// What `version` served since `since`, for the canary analysis
    /// ([`crate::canary`]): its requests with their fallbacks, out-of-scope
    /// answers and negative feedback; the reviews of its answers and their
    /// corrections; the labelled audits of the conversations it served.
    pub async fn served_since(
        &self,
        version: &str,
        since: Timestamp,
        slow_ms: f64,
    ) -> Result<Served> {
        let c = self.window_counts(version, since).await?;
        let (timed, slow, errors) = self.classify_timing(version, since, slow_ms).await?;
        let audits = self
            .audit_tallies(Some(since))
            .await?
            .into_iter()
            .find(|t| t.version.as_deref() == Some(version))
            .unwrap_or_default();
        let count = |n: i64| n.max(0) as u64;
        Ok(Served {
            requests: count(c.conversations),
            fallbacks: count(c.fallbacks),
            out_of_scope: count(c.out_of_scope),
            negative_feedback: count(c.negative_feedback),
            reviewed: count(c.reviewed),
            corrected: count(c.corrected),
            audited: count(audits.labelled()),
            // The weighted share of the audits (uncertain traffic is drawn
            // more often), in counts the sequential test takes.
            audited_right: audits
                .production_accuracy()
                .map_or(0, |a| (a.value * a.n as f64).round() as u64),
            timed: count(timed),
            slow: count(slow),
            errors: count(errors),
        })
    }

    /// Of `version`'s conversations since `since`: how many have a recorded
    /// classification time, how many of those took longer than `slow_ms`,
    /// and how many its model failed on.
    async fn classify_timing(
        &self,
        version: &str,
        since: Timestamp,
        slow_ms: f64,
    ) -> Result<(i64, i64, i64)> {
        on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT COUNT(classify_ms), COUNT(CASE WHEN classify_ms > $3 THEN 1 END), \
                    COUNT(classify_error) \
                 FROM conversation_logs WHERE model_version = $1 AND created_at >= $2",
            )
            .bind(version)
            .bind(since)
            .bind(slow_ms)
            .fetch_one(pool)
            .await
        })
        .map_err(|e| db_error("reading classification times", e))
    }

    /// Production and canary, production first, each with its fallback rate
    /// over its last 24 hours of conversations.
    pub async fn live_models(&self) -> Result<Vec<LiveModel>> {
        let err = |e| db_error("reading the live models", e);
        let mut live_models: Vec<LiveModel> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT version, status, traffic_percentage, test_accuracy, production_accuracy, fallback_rate \
                 FROM model_versions WHERE status IN ('production', 'canary') \
                 ORDER BY CASE status WHEN 'production' THEN 0 ELSE 1 END",
            )
            .fetch_all(pool)
            .await
        })
        .map_err(err)?;
        // Nothing writes model_versions.fallback_rate while a version
        // serves: measure it over the last 24 hours of its conversations
        // (the (model_version, created_at) index), so the warning can fire.
        let since = Timestamp::from(chrono::Utc::now() - chrono::Duration::hours(24));
        for model in &mut live_models {
            let (served, fell_back): (i64, Option<i64>) = on_pool!(self, |pool| {
                sqlx::query_as(
                    "SELECT COUNT(*), SUM(CASE WHEN fallback THEN 1 ELSE 0 END) \
                     FROM conversation_logs WHERE model_version = $1 AND created_at >= $2",
                )
                .bind(&model.version)
                .bind(since)
                .fetch_one(pool)
                .await
            })
            .map_err(err)?;
            if served > 0 {
                model.fallback_rate = Some(fell_back.unwrap_or(0) as f64 / served as f64);
            }
        }
        Ok(live_models)
    }
}
