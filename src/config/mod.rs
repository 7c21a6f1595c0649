//! Layered configuration (DESIGN §4): built-in defaults < `config.toml` in
//! the config directory < `.env.labelstudio` and `.env` in the working
//! directory < the process environment < command-line flags.
//!
//! Every layer is written into one TOML table which is then deserialised
//! into [`Config`] with unknown keys refused, so a typo in any layer is an
//! error that names where it came from rather than a silently ignored value.
//! Every numeric key then has its range checked (`validate`), so no
//! command ever runs on a threshold that makes no sense.

mod layers;
mod secret;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use layers::{LoadOptions, Origin};
pub use secret::{DatabaseUrl, Secret};

pub use crate::monitor::notify::AlertsConfig;
pub use crate::privacy::PrivacyConfig;
pub use crate::schedule::ScheduleConfig;

use crate::error::Result;

/// The provider name the router writes into `conversation_logs.nlu_provider`.
pub const ROUTER_PROVIDER: &str = "flywheel-router";

/// The merged configuration every stage reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Holds the SQLite file, `models/`, `logs/` and the HMAC key.
    pub data_dir: PathBuf,
    /// `postgres://…` for PostgreSQL, `sqlite://…` for another SQLite file;
    /// unset means the embedded SQLite file in the data dir.
    pub database_url: Option<DatabaseUrl>,
    /// URL of the NLU service's health endpoint, checked by `doctor` when set.
    pub nlu_health_url: Option<String>,
    pub auto_filter: AutoFilterConfig,
    pub label_studio: LabelStudioConfig,
    pub serve: ServeConfig,
    pub training: TrainingConfig,
    pub health: HealthConfig,
    /// Audits of live traffic ([`crate::audit`]).
    pub audit: AuditConfig,
    /// Suspect labels found before each training run ([`crate::suspects`]).
    pub suspects: SuspectsConfig,
    /// Redaction of texts leaving for Label Studio or an export (SECURITY.md).
    pub privacy: PrivacyConfig,
    /// The canary analysis of `flywheel canary-check` ([`crate::canary`]).
    pub canary: CanaryConfig,
    /// When cron runs each scheduled stage, for "overdue" ([`crate::schedule`]).
    pub schedule: ScheduleConfig,
    /// Notifications to an on-call webhook ([`crate::monitor::notify`]).
    pub alerts: AlertsConfig,
    /// The operator console (`flywheel tui`).
    pub console: ConsoleConfig,
}

/// `[console]` in the configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Refuse every action that writes (review, sync, train, promote, roll
    /// back, run a stage): for looking at production. `flywheel tui
    /// --read-only` sets it for one session.
    pub read_only: bool,
}

/// DESIGN §1 auto-filter rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AutoFilterConfig {
    /// At or above this confidence, from a trusted provider: auto-approved.
    pub auto_approve_confidence: f64,
    /// At or above this: needs review with `medium_priority`; below: `high_priority`.
    pub review_confidence: f64,
    pub trusted_providers: Vec<String>,
    pub medium_priority: i32,
    pub high_priority: i32,
    /// Daily capture warns "ready for training" at this many approved unused samples.
    pub ready_for_training: i64,
    /// Below this auto-approval precision (measured by audits) is a
    /// warning, and each intent is auto-approved only from the confidence
    /// where audits say its precision reaches it (never below
    /// `auto_approve_confidence`).
    pub min_precision: f64,
    /// How many audits an intent's own tally must hold to outweigh all
    /// intents' pooled precision (and the least the pool needs before any
    /// threshold moves off `auto_approve_confidence`); 0 switches
    /// per-intent thresholds off.
    pub threshold_evidence: u32,
    /// The production model re-predicts the review backlog queued here —
    /// at the first daily capture after its promotion, and before weekly
    /// training — so the review order ranks by its doubt
    /// ([`crate::stages::rejudge`]).
    pub rejudge_backlog: bool,
}

/// Audits of live traffic: a share of all captured conversations, whatever
/// their confidence, goes to a human, so production accuracy and
/// auto-approval precision are measured rather than guessed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Percent of captured conversations drawn for audit (by a hash of id).
    pub percent: u32,
    /// Percent of every stretch of the review order (the console's queue,
    /// Label Studio's pushes and stream) given to audits; the rest goes to
    /// the review queue, by expected value. 40 % of 300 labels a week
    /// covers the ~113 audits 5 % of 2 265 conversations draw, so each
    /// weekly version is measured on n ≥ 100 (at 20 % it got ~60).
    pub share: u32,
    /// How many times as often as an auto-approved conversation an
    /// uncertain (needs-review) one is drawn, the overall share staying
    /// `percent`; every estimate weights an audit by the inverse of its
    /// rate ([`crate::audit::DrawRates`]). 1 draws uniformly.
    pub needs_review_multiplier: u32,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            percent: 5,
            share: 40,
            needs_review_multiplier: 2,
        }
    }
}

/// Suspect labels: approved labels the model confidently disagrees with,
/// flagged by weekly training, kept out of its training set and sent to a
/// human.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SuspectsConfig {
    /// Flag suspects before each weekly training run (five extra, smaller
    /// trainings: out-of-fold predictions). Off by default: in the loop
    /// bench (six weeks of CLINC150, 300 labels a week) flagging cost
    /// production 0.7 points of held-out accuracy — the flagged labels,
    /// mostly right, leave training and take review places — while it finds
    /// a 10 % flip of imported labels at 0.96 precision (README "Suspect
    /// labels"): turn it on to vet imported or bulk-labelled data.
    pub enabled: bool,
    /// Percent of the review places audits leave (every stretch of the
    /// console's queue, Label Studio's pushes and stream) given to suspects,
    /// most suspicious first; the review queue gets the rest.
    pub share: u32,
}

impl Default for SuspectsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            share: 20,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LabelStudioConfig {
    pub url: Option<String>,
    pub api_key: Option<Secret>,
    pub project_id: Option<i64>,
    /// Tasks per import call.
    pub batch_size: usize,
    pub timeout_secs: u64,
    /// A pull asks for tasks updated since the last pull's newest, less
    /// this: an annotation saved in a transaction that commits after our
    /// read still carries the earlier time. Tasks re-read in it cost a
    /// read, never a second decision.
    pub pull_overlap_secs: u64,
    /// Shared secret Label Studio's webhooks send in the
    /// `X-Flywheel-Webhook-Secret` header; `POST /v1/label-studio/webhook`
    /// answers 404 until it is set.
    pub webhook_secret: Option<Secret>,
    /// Where Label Studio reaches `serve`'s webhook route
    /// (`http://host:3200/v1/label-studio/webhook`); when set (with
    /// `webhook_secret`), `label-studio-sync` registers the webhook.
    pub webhook_url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    pub addr: String,
    /// Bearer token required on every route but `/health` when set.
    pub api_token: Option<Secret>,
    /// A fresh installation (no model version ever) trains and deploys the
    /// bootstrap model from the built-in seed set when serve starts.
    pub bootstrap: bool,
    /// A request's header lines must arrive within this (else the connection is closed).
    pub header_read_timeout_secs: u64,
    /// A request's body must arrive within this once its headers have (else 408).
    pub body_read_timeout_secs: u64,
    /// After SIGTERM, in-flight requests get this long; then the connections
    /// left are closed (every row already answered 200 is committed).
    pub drain_timeout_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainingConfig {
    /// Weekly training runs only with at least this many approved unused samples.
    pub min_samples: i64,
    /// The promotion gate ([`crate::stages::gate`]): a candidate worse than
    /// production by at most this share of overall accuracy (0.01: one
    /// point) on the gold test items is "not worse".
    pub gate_tolerance: f64,
    /// The same for out-of-scope recall.
    pub oos_tolerance: f64,
    /// Fewer gold test items than this are too few to judge a candidate
    /// (`weekly-training --force` registers it for a human decision).
    pub min_gold_test: u32,
    /// Share of samples (by hash of id) held out as the stable test split.
    pub test_split_percent: u32,
    /// Maximum epochs; unset: the router's tuned default (early stopping decides).
    pub epochs: Option<u32>,
    pub seed: u64,
    /// Default canary traffic share when promoting without `--traffic`.
    pub canary_traffic: u32,
}

/// What `flywheel canary-check` does with its decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CanaryMode {
    /// Say what it would do; change nothing.
    #[default]
    Recommend,
    /// Also apply the decision as a lifecycle transition.
    Auto,
}

impl CanaryMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CanaryMode::Recommend => "recommend",
            CanaryMode::Auto => "auto",
        }
    }
}

/// The gradual rollout of DESIGN §1 (issue 18): the canary's traffic steps,
/// how long each step lasts at least, the evidence needed before any
/// decision, and the false-alarm rate of the sequential test.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CanaryConfig {
    pub mode: CanaryMode,
    /// Traffic percentages in order; the last, 100, means production.
    pub steps: Vec<u32>,
    /// Least time at each step before advancing. The default, 960 (16 h),
    /// makes the three waits of 10 → 25 → 50 → 100 the seed's 48 hours.
    pub min_step_minutes: u64,
    /// Requests each version must have served since the canary started
    /// before any decision (rollback included).
    pub min_requests: u64,
    /// Labelled audits each version needs before any decision; 0 decides on
    /// negative feedback, review corrections, fallback and OOS rates alone.
    pub min_audits: u64,
    /// Chance that a canary as good as production is ever rolled back,
    /// however many hourly checks look at it.
    pub alpha: f64,
    /// A classification slower than this (ms, the model's own time) is
    /// slow: the canary's slow-request rate is compared with production's.
    pub slow_ms: f64,
    /// The canary's error rate (the model failed; answered as a fallback)
    /// whose whole 95 % interval is above this rolls it back at once.
    pub max_error_rate: f64,
}

impl Default for CanaryConfig {
    fn default() -> Self {
        Self {
            mode: CanaryMode::Recommend,
            steps: vec![10, 25, 50, 100],
            min_step_minutes: 960,
            min_requests: 300,
            min_audits: 30,
            alpha: 0.05,
            slow_ms: 50.0,
            max_error_rate: 0.01,
        }
    }
}

/// Thresholds for the warnings of `status`, `doctor` and the console.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    pub min_test_accuracy: f64,
    pub max_fallback_rate: f64,
    pub min_auto_approval_rate: f64,
    pub max_auto_approval_rate: f64,
    /// Production accuracy (measured by audits) whose whole 95 % interval
    /// is below this is a warning.
    pub min_production_accuracy: f64,
    /// No capture for longer than this is a warning.
    pub quiet_period_minutes: u64,
    /// Capture in the last hour below this share of the same hour in
    /// earlier weeks is a warning (and an hour below it is a low hour in
    /// `stats capture-gaps`).
    pub capture_drop_ratio: f64,
    /// How many earlier weeks make the same hour's usual volume.
    pub capture_baseline_weeks: u32,
    /// A sample waiting for review longer than this is a warning.
    pub max_review_age_days: u32,
    /// Less free space than this under the data dir is a warning.
    pub min_free_disk_mb: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: default_data_dir(),
            database_url: None,
            nlu_health_url: None,
            auto_filter: AutoFilterConfig::default(),
            label_studio: LabelStudioConfig::default(),
            serve: ServeConfig::default(),
            training: TrainingConfig::default(),
            health: HealthConfig::default(),
            audit: AuditConfig::default(),
            suspects: SuspectsConfig::default(),
            privacy: PrivacyConfig::default(),
            canary: CanaryConfig::default(),
            schedule: ScheduleConfig::default(),
            alerts: AlertsConfig::default(),
            console: ConsoleConfig::default(),
        }
    }
}

impl Default for AutoFilterConfig {
    fn default() -> Self {
        Self {
            auto_approve_confidence: 0.85,
            review_confidence: 0.70,
            trusted_providers: vec![ROUTER_PROVIDER.to_string()],
            medium_priority: 5,
            high_priority: 2,
            ready_for_training: 1000,
            min_precision: 0.97,
            threshold_evidence: 30,
            rejudge_backlog: true,
        }
    }
}

impl Default for LabelStudioConfig {
    fn default() -> Self {
        Self {
            url: None,
            api_key: None,
            project_id: None,
            batch_size: 500,
            timeout_secs: 60,
            pull_overlap_secs: 60,
            webhook_secret: None,
            webhook_url: None,
        }
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:3200".into(),
            api_token: None,
            bootstrap: true,
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 10,
            drain_timeout_secs: 10,
        }
    }
}

impl Default for TrainingConfig {
    fn default() -> Self {
        Self {
            min_samples: 500,
            gate_tolerance: 0.01,
            oos_tolerance: 0.05,
            min_gold_test: 30,
            test_split_percent: 15,
            epochs: None,
            seed: 42,
            canary_traffic: 10,
        }
    }
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            min_test_accuracy: 0.82,
            max_fallback_rate: 0.20,
            min_auto_approval_rate: 50.0,
            max_auto_approval_rate: 80.0,
            min_production_accuracy: 0.82,
            quiet_period_minutes: 30,
            capture_drop_ratio: 0.5,
            capture_baseline_weeks: 4,
            max_review_age_days: 7,
            min_free_disk_mb: 1024,
        }
    }
}

/// The data dir when nothing says otherwise: the platform's user data dir.
pub fn default_data_dir() -> PathBuf {
    directories::ProjectDirs::from("", "", "flywheel")
        .map(|dirs| dirs.data_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from(".flywheel"))
}

/// The config file read when neither `--config` nor `FLYWHEEL_CONFIG` names one.
pub fn default_config_file() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "flywheel")
        .map(|dirs| dirs.config_dir().join("config.toml"))
}

impl Config {
    /// Merge every layer. See [`LoadOptions::from_process`] for the usual call.
    pub fn load(options: &LoadOptions) -> Result<LoadedConfig> {
        layers::load(options)
    }

    pub fn models_dir(&self) -> PathBuf {
        self.data_dir.join("models")
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.data_dir.join("logs")
    }

    /// The embedded SQLite file used when no database URL is set.
    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join("flywheel.db")
    }

    pub fn label_studio_configured(&self) -> bool {
        self.label_studio.url.is_some() && self.label_studio.api_key.is_some()
    }
}

/// The keys whose values are secrets.
const SECRET_KEYS: [&str; 5] = [
    "alerts.webhook_url",
    "label_studio.api_key",
    "label_studio.webhook_secret",
    "serve.api_token",
    "database_url",
];

/// A merged configuration and where each explicitly set key came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: Config,
    /// Dotted key → the layer that set it (keys left at their default are absent).
    pub origins: BTreeMap<String, Origin>,
    /// The config file that was read, if any.
    pub config_file: Option<PathBuf>,
}

impl LoadedConfig {
    /// The merged configuration as TOML with secrets masked.
    pub fn to_masked_toml(&self) -> String {
        toml::to_string_pretty(&self.config)
            .unwrap_or_else(|err| format!("# could not render the configuration: {err}\n"))
    }

    /// Files that hold a secret (a Label Studio key, the API token, a
    /// database password) and that other users may read: each with its mode.
    /// `doctor` fails on them and every command warns (SECURITY.md).
    pub fn readable_secret_files(&self) -> Vec<(PathBuf, u32)> {
        use std::os::unix::fs::PermissionsExt;
        let has_password = self
            .config
            .database_url
            .as_ref()
            .is_some_and(|url| url.redacted() != url.expose());
        let mut files: Vec<PathBuf> = SECRET_KEYS
            .iter()
            .filter(|key| **key != "database_url" || has_password)
            .filter_map(|key| match self.origins.get(*key) {
                Some(Origin::File(path) | Origin::DotEnv(path)) => Some(path.clone()),
                _ => None,
            })
            .collect();
        files.sort();
        files.dedup();
        files
            .into_iter()
            .filter_map(|path| {
                let mode = std::fs::metadata(&path).ok()?.permissions().mode() & 0o777;
                (mode & 0o077 != 0).then_some((path, mode))
            })
            .collect()
    }

    /// Where `key` came from, for `config show`.
    pub fn origin_of(&self, key: &str) -> Option<&Origin> {
        self.origins.get(key)
    }
}

/// Resolve `path` against `base` when relative.
pub(crate) fn absolute(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}
