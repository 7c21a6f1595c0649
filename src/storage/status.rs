//! The counts behind `flywheel status`, the console header and `doctor`.

use chrono::{Datelike, TimeZone, Utc};
use serde::Serialize;

use super::{Store, Timestamp, db_error, on_pool};
use crate::domain::ModelStatus;
use crate::error::Result;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueueCounts {
    /// Rows of the `training_queue` view.
    pub needs_review: i64,
    /// Of those, at the most urgent priority or better.
    pub urgent: i64,
    /// Pushed to Label Studio, awaiting annotation.
    pub in_review: i64,
}

/// Today's counts (UTC day).
#[derive(Debug, Clone, Default, PartialEq, Serialize, sqlx::FromRow)]
pub struct DayCounts {
    pub captured: i64,
    pub pending: i64,
    pub auto_approved: i64,
    pub needs_review: i64,
    pub reviewed: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct LiveModel {
    pub version: String,
    pub status: ModelStatus,
    pub traffic_percentage: i32,
    pub test_accuracy: Option<f64>,
    pub production_accuracy: Option<f64>,
    pub fallback_rate: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusSnapshot {
    pub queue: QueueCounts,
    pub approved_unused: i64,
    pub today: DayCounts,
    /// Samples approved / rejected today.
    pub approved_today: i64,
    pub rejected_today: i64,
    /// Percentage of today's captures auto-approved, once any were processed.
    pub auto_approval_rate: Option<f64>,
    pub last_capture_at: Option<Timestamp>,
    /// Production and canary, production first.
    pub live_models: Vec<LiveModel>,
    /// Model versions ever registered (none: a fresh installation).
    pub model_versions: i64,
}

fn start_of_today() -> Timestamp {
    let now = Utc::now();
    Timestamp(
        Utc.with_ymd_and_hms(now.year(), now.month(), now.day(), 0, 0, 0)
            .single()
            .expect("midnight UTC exists"),
    )
}

impl Store {
    /// Everything `status` prints, in a handful of indexed queries.
    pub async fn status_snapshot(&self, urgent_priority: i32) -> Result<StatusSnapshot> {
        let today = start_of_today();
        let err = |e| db_error("reading status", e);
        let (needs_review, urgent): (i64, i64) = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT COUNT(*), COUNT(CASE WHEN priority <= $1 THEN 1 END) FROM training_queue",
            )
            .bind(urgent_priority)
            .fetch_one(pool)
            .await
        })
        .map_err(err)?;
        let in_review: i64 = on_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM training_samples WHERE review_status = 'in-review'",
            )
            .fetch_one(pool)
            .await
        })
        .map_err(err)?;
        let approved_unused: i64 = on_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM training_samples WHERE review_status = 'approved' AND model_version_target IS NULL",
            )
            .fetch_one(pool)
            .await
        })
        .map_err(err)?;
        let day: DayCounts = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT COUNT(*) AS captured, \
                    COUNT(CASE WHEN review_status = 'pending' THEN 1 END) AS pending, \
                    COUNT(CASE WHEN review_status = 'auto-approved' THEN 1 END) AS auto_approved, \
                    COUNT(CASE WHEN review_status = 'needs-review' THEN 1 END) AS needs_review, \
                    COUNT(CASE WHEN review_status = 'reviewed' THEN 1 END) AS reviewed \
                 FROM conversation_logs WHERE created_at >= $1",
            )
            .bind(today)
            .fetch_one(pool)
            .await
        })
        .map_err(err)?;
        let (approved_today, rejected_today): (i64, i64) = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT COUNT(CASE WHEN review_status = 'approved' THEN 1 END), \
                        COUNT(CASE WHEN review_status = 'rejected' THEN 1 END) \
                 FROM training_samples WHERE reviewed_at >= $1",
            )
            .bind(today)
            .fetch_one(pool)
            .await
        })
        .map_err(err)?;
        let last_capture_at: Option<Timestamp> = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT MAX(created_at) FROM conversation_logs")
                .fetch_one(pool)
                .await
        })
        .map_err(err)?;
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
        let model_versions: i64 = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM model_versions")
                .fetch_one(pool)
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
        let processed = day.captured - day.pending;
        let auto_approval_rate =
            (processed > 0).then(|| day.auto_approved as f64 * 100.0 / processed as f64);
        Ok(StatusSnapshot {
            queue: QueueCounts {
                needs_review,
                urgent,
                in_review,
            },
            approved_unused,
            today: day,
            approved_today,
            rejected_today,
            auto_approval_rate,
            last_capture_at,
            live_models,
            model_versions,
        })
    }
}
