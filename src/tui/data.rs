//! What each pane shows: plain data loaded by the refresh task
//! ([`super::refresh`]) and handed to the app state. No terminal, no
//! database handle: a pane's data is a value that can be built in a test.

use std::path::PathBuf;

use crate::canary::Analysis;
use crate::capture::gaps::{Gap, LowHour};
use crate::gold::GoldSummary;
use crate::health::Warning;
use crate::review::order::Queued;
use crate::stages::canary_check::Watched;
use crate::storage::Timestamp;
use crate::storage::capture_stats::BucketCount;
use crate::storage::conversations::Conversation;
use crate::storage::jobs::JobRun;
use crate::storage::label_studio_tasks::TaskCounts;
use crate::storage::model_performance::{ModelPerformance, WindowStats};
use crate::storage::models::ModelVersion;
use crate::storage::samples::Sample;
use crate::storage::snapshot::AuditStatus;
use crate::storage::training_runs::TrainingRun;
use crate::storage::waiting::Waiting;

/// The five panes, in tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Pane {
    #[default]
    Capture,
    Review,
    LabelStudio,
    Training,
    Jobs,
}

impl Pane {
    pub const ALL: [Pane; 5] = [
        Pane::Capture,
        Pane::Review,
        Pane::LabelStudio,
        Pane::Training,
        Pane::Jobs,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Pane::Capture => "Capture",
            Pane::Review => "Review",
            Pane::LabelStudio => "Label Studio",
            Pane::Training => "Training",
            Pane::Jobs => "Jobs & logs",
        }
    }

    pub fn index(self) -> usize {
        Pane::ALL.iter().position(|p| *p == self).unwrap_or(0)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CaptureData {
    /// Newest first.
    pub feed: Vec<Conversation>,
    /// Captures per minute over the last hour, one entry per minute, oldest first.
    pub per_minute: Vec<u64>,
    /// Captures per hour over the last 48 h (every hour present, zeros included), oldest first.
    pub per_hour: Vec<BucketCount>,
    pub last_capture_at: Option<Timestamp>,
    pub gaps: Vec<Gap>,
    pub low_hours: Vec<LowHour>,
    /// "Silence this long is a gap", from `health.quiet_period_minutes`.
    pub quiet_period_minutes: i64,
    /// Last hour's top values: (dimension, [(value, count)]).
    pub mix: Vec<(&'static str, Vec<(String, i64)>)>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReviewData {
    /// The head of what waits, in review order ([`crate::review::order`]),
    /// each with why it ranks there.
    pub queue: Vec<Queued>,
    /// What waits for review, here and in Label Studio (as `status` counts).
    pub waiting: Waiting,
    /// Audit samples awaiting a human label.
    pub audits: i64,
    /// Every intent samples carry: the choices of `c`.
    pub intents: Vec<String>,
}

/// Whether Label Studio answers, checked off the refresh path (network).
#[derive(Debug, Clone, PartialEq)]
pub enum Connection {
    /// Reachable and the key accepted, as this user.
    Ok {
        user: String,
    },
    /// Reachable, but the key was refused.
    KeyRefused(String),
    Unreachable(String),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelStudioData {
    /// `None` when configured; else which settings to set.
    pub missing_settings: Option<String>,
    pub url: Option<String>,
    /// Configured, or else the project of the latest push.
    pub project: Option<i64>,
    pub counts: Option<TaskCounts>,
    /// Latest sync runs, newest first.
    pub syncs: Vec<JobRun>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrainingData {
    /// Newest first.
    pub versions: Vec<ModelVersion>,
    pub runs: Vec<TrainingRun>,
    /// Traffic, fallback rate and production accuracy computed from
    /// captured data (a heavier query, refreshed less often).
    pub performance: Vec<ModelPerformance>,
    /// Canary and production side by side since the canary started.
    pub canary_watch: Option<CanaryWatch>,
    /// The labels that judge models ([`crate::gold`]); boxed, as it is
    /// large beside the other panes' data.
    pub gold: Box<GoldSummary>,
    /// What audits measured (boxed, like `gold`), and the warnings it raises.
    pub audits: Box<AuditStatus>,
    pub audit_warnings: Vec<Warning>,
}

/// The 48-hour watch of DESIGN §1: both live versions over the same window.
#[derive(Debug, Clone, PartialEq)]
pub struct CanaryWatch {
    pub since: Timestamp,
    pub canary_version: String,
    pub canary_traffic: i32,
    pub canary: WindowStats,
    pub production_version: String,
    pub production: WindowStats,
    /// What `flywheel canary-check` sees and would decide now.
    pub check: Box<(Watched, Analysis)>,
    /// `[canary] min_step_minutes`.
    pub min_step_minutes: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobsData {
    pub runs: Vec<JobRun>,
    pub log_file: Option<PathBuf>,
    /// Last lines of the newest log file, oldest first.
    pub log_tail: Vec<String>,
    /// Why the log could not be read.
    pub log_problem: Option<String>,
    /// The loop's health warnings (`None` before the first read).
    pub health: Option<Vec<Warning>>,
}

/// One load's result, for one pane.
#[derive(Debug, Clone, PartialEq)]
pub enum PaneData {
    Capture(CaptureData),
    Review(ReviewData),
    LabelStudio(LabelStudioData),
    Training(TrainingData),
    Jobs(JobsData),
}

impl PaneData {
    pub fn pane(&self) -> Pane {
        match self {
            PaneData::Capture(_) => Pane::Capture,
            PaneData::Review(_) => Pane::Review,
            PaneData::LabelStudio(_) => Pane::LabelStudio,
            PaneData::Training(_) => Pane::Training,
            PaneData::Jobs(_) => Pane::Jobs,
        }
    }
}

/// What the capture pane shows when drilling into a gap.
#[derive(Debug, Clone, PartialEq)]
pub struct GapDetail {
    pub gap: Gap,
    pub conversations: Vec<Conversation>,
    pub job_runs: Vec<JobRun>,
}

/// One conversation in full, for its detail view (Enter on the feed).
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationDetail {
    /// Its text redacted as it would leave Flywheel (`[privacy]`).
    pub conversation: Conversation,
    /// The sample daily capture folded it into, with its review state.
    pub sample: Option<Sample>,
    pub alternatives: Alternatives,
}

/// The intents the served model weighed for a conversation.
#[derive(Debug, Clone, PartialEq)]
pub enum Alternatives {
    /// Scored again by the version that answered it (its artifact, the
    /// same deterministic model): best first, with confidences.
    Scored {
        version: String,
        intents: Vec<(String, f32)>,
    },
    /// Why there are none to show (another provider, no artifact).
    Unavailable(String),
}
