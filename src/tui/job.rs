//! The work an operator starts from the console: stages, lifecycle changes.

/// Work that runs in the background with progress and can be cancelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    DailyCapture,
    LabelStudioSync,
    Export,
    /// Weekly training with `--force`: "train now".
    TrainNow,
    /// Promote a version: canary with this traffic, or production at 100.
    Promote {
        version: String,
        traffic: u32,
    },
    Rollback,
    /// `flywheel canary-check` in the configured `[canary] mode`.
    CanaryCheck,
}

impl Job {
    /// The stages the jobs menu offers, in order.
    pub const MENU: [Job; 4] = [
        Job::DailyCapture,
        Job::LabelStudioSync,
        Job::Export,
        Job::TrainNow,
    ];

    pub fn label(&self) -> String {
        match self {
            Job::DailyCapture => "daily capture (last 24 h)".into(),
            Job::LabelStudioSync => "Label Studio sync".into(),
            Job::Export => "export approved samples".into(),
            Job::TrainNow => "weekly training now (--force)".into(),
            Job::Promote { version, traffic } if *traffic >= 100 => {
                format!("promote {version} to production")
            }
            Job::Promote { version, traffic } => {
                format!("promote {version} to canary at {traffic} %")
            }
            Job::Rollback => "roll back production".into(),
            Job::CanaryCheck => "canary check".into(),
        }
    }
}
