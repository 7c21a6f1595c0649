//! Queries behind `flywheel stats queue|daily|models`, read from the views
//! of DESIGN §2 so the CLI shows what operators' own SQL shows.

use chrono::NaiveDate;
use serde::Serialize;

use super::{Store, Timestamp, db_error, on_pool};
use crate::error::Result;

/// A row of the `training_queue` view.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct QueueItem {
    pub id: i64,
    pub text: String,
    pub intent: String,
    pub language: Option<String>,
    pub confidence: Option<f64>,
    pub priority: i32,
    pub occurrences: i32,
    pub source: String,
    pub created_at: Timestamp,
}

/// A row of the `daily_training_stats` view.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct DailyStats {
    pub date: NaiveDate,
    pub captured: i64,
    pub auto_approved: i64,
    pub needs_review: i64,
    pub reviewed: i64,
    pub approved: i64,
    pub rejected: i64,
    pub auto_approval_rate: Option<f64>,
}

/// A row of the `model_performance` view.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ModelPerformance {
    pub version: String,
    pub status: String,
    pub traffic_percentage: i32,
    pub test_accuracy: Option<f64>,
    pub conversations: i64,
    pub fallback_rate: Option<f64>,
    pub reviewed: i64,
    pub production_accuracy: Option<f64>,
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

impl Store {
    /// The first `limit` rows of the review queue, most urgent first.
    pub async fn queue_items(&self, limit: i64) -> Result<Vec<QueueItem>> {
        on_pool!(self, |pool| sqlx::query_as::<_, QueueItem>(
            "SELECT id, text, intent, language, confidence, priority, occurrences, source, created_at \
             FROM training_queue ORDER BY priority, occurrences DESC, id LIMIT $1"
        )
        .bind(limit)
        .fetch_all(pool)
        .await)
        .map_err(|err| db_error("reading the review queue", err))
    }

    /// Queue size per priority, most urgent first.
    pub async fn queue_by_priority(&self) -> Result<Vec<(i32, i64)>> {
        on_pool!(self, |pool| sqlx::query_as::<_, (i32, i64)>(
            "SELECT priority, COUNT(*) FROM training_queue GROUP BY priority ORDER BY priority"
        )
        .fetch_all(pool)
        .await)
        .map_err(|err| db_error("reading the review queue", err))
    }

    /// `daily_training_stats` from `since` (a UTC date) on, newest first.
    pub async fn daily_stats(&self, since: NaiveDate) -> Result<Vec<DailyStats>> {
        on_pool!(self, |pool| sqlx::query_as::<_, DailyStats>(
            "SELECT date, captured, auto_approved, needs_review, reviewed, approved, rejected, auto_approval_rate \
             FROM daily_training_stats WHERE date >= $1 ORDER BY date DESC"
        )
        .bind(since)
        .fetch_all(pool)
        .await)
        .map_err(|err| db_error("reading daily stats", err))
    }

    pub async fn model_performance(&self) -> Result<Vec<ModelPerformance>> {
        on_pool!(self, |pool| sqlx::query_as::<_, ModelPerformance>(
            "SELECT version, status, traffic_percentage, test_accuracy, conversations, fallback_rate, \
                    reviewed, production_accuracy \
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
        let (conversations, fallbacks, negative_feedback): (i64, i64, i64) =
            on_pool!(self, |pool| {
                sqlx::query_as(
                    "SELECT COUNT(*), COUNT(CASE WHEN fallback THEN 1 END), \
                        COUNT(CASE WHEN feedback = 'negative' THEN 1 END) \
                 FROM conversation_logs WHERE model_version = $1 AND created_at >= $2",
                )
                .bind(version)
                .bind(since)
                .fetch_one(pool)
                .await
            })
            .map_err(|err| db_error("reading version stats", err))?;
        let (reviewed, agreed): (i64, i64) = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT COUNT(*), COUNT(CASE WHEN review_status = 'approved' AND corrected_from IS NULL THEN 1 END) \
                 FROM training_samples \
                 WHERE predicted_by_version = $1 AND source = 'human' AND reviewed_at >= $2 \
                   AND review_status IN ('approved', 'rejected')",
            )
            .bind(version)
            .bind(since)
            .fetch_one(pool)
            .await
        })
        .map_err(|err| db_error("reading version stats", err))?;
        Ok(WindowStats {
            conversations,
            fallbacks,
            negative_feedback,
            reviewed,
            agreed,
        })
    }
}
