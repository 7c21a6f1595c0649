//! The state of the loop at a glance, behind `flywheel status`, `doctor`,
//! the health warnings and weekly training's check: each figure asked of
//! the concept that owns it (what waits for review, samples, conversations,
//! model versions), nothing counted here.

use chrono::{Datelike, TimeZone, Utc};
use serde::Serialize;

use super::waiting::Waiting;
use super::{Store, Timestamp};
use crate::audit::{VersionEstimate, pooled_precision};
use crate::domain::ModelStatus;
use crate::error::Result;
use crate::estimate::Estimate;

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
    /// What waits for review, here and in Label Studio ([`super::waiting`]).
    pub queue: Waiting,
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
    /// What audits of live traffic measured.
    pub audits: AuditStatus,
}

/// Audits at a glance: production's measured accuracy, and auto-approval
/// precision over the last [`PRECISION_WINDOW_DAYS`] days.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AuditStatus {
    /// The production version's estimate over all its audited traffic.
    pub production: Option<VersionEstimate>,
    pub auto_approval_precision: Option<Estimate>,
    /// Audit samples waiting for a human label.
    pub awaiting_label: i64,
}

/// The window auto-approval precision is measured over in `status`.
pub const PRECISION_WINDOW_DAYS: i64 = 7;

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
        let day = self.day_counts(today).await?;
        let (approved_today, rejected_today) = self.decisions_since(today).await?;
        let processed = day.captured - day.pending;
        let auto_approval_rate =
            (processed > 0).then(|| day.auto_approved as f64 * 100.0 / processed as f64);
        Ok(StatusSnapshot {
            queue: self.waiting(urgent_priority).await?,
            approved_unused: self.approved_unused_count().await?,
            today: day,
            approved_today,
            rejected_today,
            auto_approval_rate,
            last_capture_at: self.last_capture_at().await?,
            live_models: self.live_models().await?,
            model_versions: self.model_version_count().await?,
            audits: self.audit_status().await?,
        })
    }

    /// What audits measured: production's accuracy over all its audited
    /// traffic, auto-approval precision over the last week.
    pub async fn audit_status(&self) -> Result<AuditStatus> {
        let production = self
            .live_models()
            .await?
            .into_iter()
            .find(|m| m.status == ModelStatus::Production)
            .map(|m| m.version);
        let all = self.audit_tallies(None).await?;
        let since = Timestamp(Utc::now() - chrono::Duration::days(PRECISION_WINDOW_DAYS));
        let recent = self.audit_tallies(Some(since)).await?;
        Ok(AuditStatus {
            production: production.and_then(|version| {
                all.iter()
                    .find(|t| t.version.as_deref() == Some(version.as_str()))
                    .map(VersionEstimate::from)
            }),
            auto_approval_precision: pooled_precision(&recent),
            awaiting_label: self.audit_queue_size().await?,
        })
    }
}
