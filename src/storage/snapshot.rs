//! The state of the loop at a glance, behind `flywheel status`, `doctor`,
//! the health warnings and weekly training's check: each figure asked of
//! the concept that owns it (what waits for review, samples, conversations,
//! model versions), nothing counted here.

use chrono::{Datelike, TimeZone, Utc};
use serde::Serialize;

use std::path::Path;

use super::waiting::Waiting;
use super::{Store, Timestamp};
use crate::audit::{VersionEstimate, pooled_precision};
use crate::config::Config;
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

impl DayCounts {
    /// Conversations the auto-filter has judged (approved or queued).
    pub fn judged(&self) -> i64 {
        self.captured - self.pending
    }
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
    /// When the oldest sample waiting for review was queued.
    pub oldest_queued_at: Option<Timestamp>,
    /// The oldest conversation kept: a stage that never ran is overdue
    /// from here (an installation that never captured has nothing to do).
    pub first_capture_at: Option<Timestamp>,
    pub capture_volume: CaptureVolume,
    /// Free space on the data dir's file system, when it can be read.
    pub free_disk_bytes: Option<u64>,
}

/// The last hour's capture beside the same hour of earlier weeks, for
/// "capture far below usual" ([`crate::capture::gaps::capture_drop`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CaptureVolume {
    pub last_hour: i64,
    /// The same 60 minutes 1, 2, … weeks earlier, only weeks after capture
    /// began (a week before it is no evidence of a usual volume).
    pub same_hour_earlier_weeks: Vec<i64>,
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

/// Bytes available to this user on the file system holding `dir` (or its
/// nearest existing ancestor: the data dir may not exist yet).
fn free_disk_bytes(dir: &Path) -> Option<u64> {
    let existing = dir.ancestors().find(|d| d.exists())?;
    let stat = rustix::fs::statvfs(existing).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
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
    pub async fn status_snapshot(&self, config: &Config) -> Result<StatusSnapshot> {
        let urgent_priority = config.auto_filter.high_priority;
        let first_capture_at = self.first_capture_at().await?;
        let today = start_of_today();
        let day = self.day_counts(today).await?;
        let (approved_today, rejected_today) = self.decisions_since(today).await?;
        let auto_approval_rate = crate::health::auto_approval_rate(day.auto_approved, day.judged());
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
            oldest_queued_at: self.oldest_queued_sample_at().await?,
            capture_volume: self
                .capture_volume(first_capture_at, config.health.capture_baseline_weeks)
                .await?,
            first_capture_at,
            free_disk_bytes: free_disk_bytes(&config.data_dir),
        })
    }

    /// The last 60 minutes and the same 60 minutes in each of the `weeks`
    /// earlier weeks that capture had begun by.
    async fn capture_volume(
        &self,
        first_capture_at: Option<Timestamp>,
        weeks: u32,
    ) -> Result<CaptureVolume> {
        let now = Utc::now();
        let hour = chrono::Duration::hours(1);
        let last_hour = self
            .captured_between(Timestamp(now - hour), Timestamp(now))
            .await?;
        let mut same_hour_earlier_weeks = Vec::new();
        for week in 1..=i64::from(weeks) {
            let until = now - chrono::Duration::weeks(week);
            if first_capture_at.is_none_or(|first| first.0 > until - hour) {
                break;
            }
            same_hour_earlier_weeks.push(
                self.captured_between(Timestamp(until - hour), Timestamp(until))
                    .await?,
            );
        }
        Ok(CaptureVolume {
            last_hour,
            same_hour_earlier_weeks,
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
