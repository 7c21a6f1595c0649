//! Health expectations (DESIGN §1): the warnings `status`, `doctor` and the
//! console show. Pure functions over a status snapshot so every face agrees.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::config::Config;
use crate::domain::JobStatus;
use crate::storage::Timestamp;
use crate::storage::jobs::JobRun;
use crate::storage::snapshot::{AuditStatus, StatusSnapshot};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Warning {
    /// Short machine-friendly name, e.g. `no-production-model`.
    pub code: &'static str,
    pub message: String,
}

/// The checks behind the warnings, each a stable name (`/metrics`'
/// `flywheel_health_check{check}`), with the warning codes that fail it.
pub const CHECKS: [(&str, &[&str]); 13] = [
    ("capture", &["capture-quiet"]),
    ("capture-volume", &["capture-dropped"]),
    ("production-model", &["no-production-model"]),
    ("test-accuracy", &["low-test-accuracy"]),
    ("production-accuracy", &["low-production-accuracy"]),
    ("auto-approval-precision", &["low-auto-approval-precision"]),
    ("fallback-rate", &["high-fallback-rate"]),
    ("auto-approval-rate", &["auto-approval-rate"]),
    ("stage-failed", &["stage-failed"]),
    ("stage-overdue", &["stage-overdue"]),
    ("review-queue-age", &["review-queue-ageing"]),
    ("disk-space", &["low-disk-space"]),
    ("label-studio", &["label-studio-failing"]),
];

/// What to do about a warning, by its code: the `fix` `doctor` prints.
pub fn fix(code: &str) -> &'static str {
    match code {
        "capture-quiet" => {
            "check the NLU service and `flywheel serve` (`stats capture-gaps` shows when it stopped)"
        }
        "capture-dropped" => {
            "see which provider or language fell in the console's Capture pane (mix) and `flywheel stats capture-gaps`; check the NLU service's logs for refused requests"
        }
        "no-production-model" => {
            "promote a version: `flywheel models promote VERSION --to production`"
        }
        "low-test-accuracy" | "low-production-accuracy" => {
            "review the audit queue's corrections, then `flywheel weekly-training`; roll back with `flywheel models rollback` if a new version caused it"
        }
        "low-auto-approval-precision" => "raise auto_filter.auto_approve_confidence",
        "high-fallback-rate" => {
            "look at what falls back in the console's Capture pane; retrain with the reviewed samples"
        }
        "auto-approval-rate" => {
            "check the traffic mix and auto_filter.auto_approve_confidence (`flywheel stats daily`)"
        }
        "stage-failed" => {
            "read the run's error with `flywheel jobs --failed`, fix it, run the stage again"
        }
        "stage-overdue" => {
            "install the schedule: the lines of crontab.conf (`crontab -e`) or the systemd timers; `flywheel jobs` shows the last runs"
        }
        "review-queue-ageing" => {
            "review in the console (Review pane) or Label Studio; `flywheel stats queue` lists the oldest"
        }
        "label-studio-failing" => {
            "check Label Studio is up and the key is right (`flywheel doctor` tries both); the next sync retries"
        }
        "low-disk-space" => {
            "free space under the data dir: `flywheel prune` deletes conversations past retention; move old models/ and logs/"
        }
        _ => "see docs/runbook.md",
    }
}

/// The share of conversations the auto-filter judged that it approved, in
/// percent: the one auto-approval rate of `status`, `stats daily`, the
/// daily report and the console. Conversations not judged yet (pending)
/// are in neither count.
pub fn auto_approval_rate(auto_approved: i64, judged: i64) -> Option<f64> {
    (judged > 0).then(|| auto_approved as f64 * 100.0 / judged as f64)
}

/// The loop as `status`, `doctor`, the console, `/metrics` and the alerts
/// judge it: the status snapshot, each stage's last run and the warnings
/// they raise at `now`.
#[derive(Debug, Clone)]
pub struct LoopHealth {
    pub snapshot: StatusSnapshot,
    pub last_runs: Vec<JobRun>,
    pub warnings: Vec<Warning>,
}

impl LoopHealth {
    pub async fn read(
        store: &crate::storage::Store,
        config: &Config,
        now: DateTime<Utc>,
    ) -> crate::error::Result<Self> {
        let snapshot = store.status_snapshot(config).await?;
        let last_runs = store.last_job_run_per_stage().await?;
        let warnings = warnings(&snapshot, &last_runs, config, now);
        Ok(Self {
            snapshot,
            last_runs,
            warnings,
        })
    }
}

/// The warning codes that fail `check`.
pub fn codes_of(check: &str) -> &'static [&'static str] {
    CHECKS
        .iter()
        .find(|(name, _)| *name == check)
        .map_or(&[], |(_, codes)| codes)
}

/// Each check and whether it passes, given the warnings raised.
pub fn check_results(warnings: &[Warning]) -> Vec<(&'static str, bool)> {
    CHECKS
        .iter()
        .map(|(check, codes)| (*check, !warnings.iter().any(|w| codes.contains(&w.code))))
        .collect()
}

pub fn warnings(
    snapshot: &StatusSnapshot,
    last_runs: &[JobRun],
    config: &Config,
    now: DateTime<Utc>,
) -> Vec<Warning> {
    let health = &config.health;
    let mut out = Vec::new();
    let mut warn = |code, message: String| out.push(Warning { code, message });

    match snapshot
        .live_models
        .iter()
        .find(|m| m.status == crate::domain::ModelStatus::Production)
    {
        None => warn(
            "no-production-model",
            format!(
                "no model is in production: {}",
                crate::lifecycle::no_production_advice(snapshot.model_versions > 0)
            ),
        ),
        Some(model) => {
            if let Some(acc) = model
                .test_accuracy
                .filter(|a| *a < health.min_test_accuracy)
            {
                warn(
                    "low-test-accuracy",
                    format!(
                        "production model {} has test accuracy {acc:.3}, below {:.2}",
                        model.version, health.min_test_accuracy
                    ),
                );
            }
            if let Some(rate) = model
                .fallback_rate
                .filter(|r| *r > health.max_fallback_rate)
            {
                warn(
                    "high-fallback-rate",
                    format!(
                        "production model {} falls back on {:.1} % of conversations (limit {:.0} %)",
                        model.version,
                        rate * 100.0,
                        health.max_fallback_rate * 100.0
                    ),
                );
            }
        }
    }

    for w in audit_warnings(&snapshot.audits, config) {
        warn(w.code, w.message);
    }

    // Only when the whole 95 % interval of today's rate is outside the band:
    // just after midnight a few dozen conversations make the rate noise.
    let processed = snapshot.today.judged().max(0) as usize;
    let interval = (processed > 0)
        .then(|| crate::estimate::wilson(snapshot.today.auto_approved.max(0) as usize, processed));
    if let (Some(rate), Some(interval)) = (snapshot.auto_approval_rate, interval)
        && (interval.high * 100.0 < health.min_auto_approval_rate
            || interval.low * 100.0 > health.max_auto_approval_rate)
    {
        warn(
            "auto-approval-rate",
            format!(
                "today's auto-approval rate is {rate:.1} %, outside {:.0}–{:.0} %",
                health.min_auto_approval_rate, health.max_auto_approval_rate
            ),
        );
    }

    let volume = &snapshot.capture_volume;
    if let Some(drop) = crate::capture::gaps::capture_drop(
        volume.last_hour,
        &volume.same_hour_earlier_weeks,
        health.capture_drop_ratio,
    ) {
        warn(
            "capture-dropped",
            format!(
                "{} conversations captured in the last hour, below {:.0} % of the usual {:.0} at this hour (median of the last {} weeks)",
                drop.captured,
                health.capture_drop_ratio * 100.0,
                drop.usual,
                volume.same_hour_earlier_weeks.len()
            ),
        );
    }

    if let Some(oldest) = snapshot.oldest_queued_at
        && now - oldest.0 > Duration::days(health.max_review_age_days.into())
    {
        warn(
            "review-queue-ageing",
            format!(
                "a sample has waited for review for {} (since {oldest}), longer than {} days",
                human_duration(now - oldest.0),
                health.max_review_age_days
            ),
        );
    }

    if let Some(free) = snapshot.free_disk_bytes
        && free / (1024 * 1024) < health.min_free_disk_mb
    {
        warn(
            "low-disk-space",
            format!(
                "{} MiB free under the data dir {}, below {} MiB",
                free / (1024 * 1024),
                config.data_dir.display(),
                health.min_free_disk_mb
            ),
        );
    }

    if let Some(last) = snapshot.last_capture_at {
        let quiet = now - last.0;
        if quiet > Duration::minutes(health.quiet_period_minutes as i64) {
            warn(
                "capture-quiet",
                format!(
                    "no conversation captured for {} (last at {last}); see `flywheel stats capture-gaps`",
                    human_duration(quiet)
                ),
            );
        }
    }

    for stage in never_run_overdue(snapshot, last_runs, config, now) {
        let schedule = config.schedule.of(stage).expect("only scheduled stages");
        warn(
            "stage-overdue",
            format!(
                "{stage} has never run, though due by its schedule `{schedule}` since conversations were first captured ({}); check cron (crontab.conf) or the systemd timers",
                snapshot
                    .first_capture_at
                    .expect("only after a first capture")
            ),
        );
    }

    // Label Studio unreachable or the key refused: what the last sync met
    // (stage-failed says so too; this names the service, for the alert).
    if let Some(sync) = last_runs.iter().find(|r| {
        r.stage == crate::domain::Stage::LabelStudioSync
            && matches!(r.status, JobStatus::Failed | JobStatus::Crashed)
    }) {
        warn(
            "label-studio-failing",
            format!(
                "the last Label Studio sync (#{}, {}) failed: {}",
                sync.id,
                sync.started_at,
                sync.error
                    .as_deref()
                    .and_then(|e| e.lines().next())
                    .unwrap_or("no error recorded")
            ),
        );
    }

    for run in last_runs {
        if matches!(run.status, JobStatus::Failed | JobStatus::Crashed) {
            warn(
                "stage-failed",
                format!(
                    "the last {} run (#{}, {}) {}: {}",
                    run.stage,
                    run.id,
                    run.started_at,
                    run.status,
                    run.error.as_deref().unwrap_or("no error recorded")
                ),
            );
        }
        if let Some(schedule) = config.schedule.of(run.stage)
            && let Some(due) = crate::schedule::overdue_since(schedule, run.started_at.0, now)
        {
            warn(
                "stage-overdue",
                format!(
                    "{} has not run since {} ({} ago), though due at {} by its schedule `{schedule}`; check cron (crontab.conf, [schedule])",
                    run.stage,
                    run.started_at,
                    human_duration(now - run.started_at.0),
                    Timestamp(due)
                ),
            );
        }
    }
    out
}

/// Scheduled stages with no run at all whose schedule came due (with the
/// grace) since the first capture. Label Studio sync counts only where
/// Label Studio is configured: without it the stage has nothing to do.
fn never_run_overdue(
    snapshot: &StatusSnapshot,
    last_runs: &[JobRun],
    config: &Config,
    now: DateTime<Utc>,
) -> Vec<crate::domain::Stage> {
    let Some(first) = snapshot.first_capture_at else {
        return Vec::new();
    };
    crate::domain::Stage::ALL
        .iter()
        .copied()
        .filter(|stage| !last_runs.iter().any(|r| r.stage == *stage))
        .filter(|stage| {
            *stage != crate::domain::Stage::LabelStudioSync || config.label_studio_configured()
        })
        .filter(|stage| {
            config
                .schedule
                .of(*stage)
                .and_then(|schedule| crate::schedule::overdue_since(schedule, first.0, now))
                .is_some()
        })
        .collect()
}

/// "3 min", "5 h 2 min", "2 d 4 h".
pub fn human_duration(d: Duration) -> String {
    let minutes = d.num_minutes().max(0);
    match minutes {
        0 => format!("{} s", d.num_seconds().max(0)),
        1..60 => format!("{minutes} min"),
        60..1440 => format!("{} h {} min", minutes / 60, minutes % 60),
        _ => format!("{} d {} h", minutes / 1440, (minutes % 1440) / 60),
    }
}

/// What audits say against the bars: production accuracy below
/// `health.min_production_accuracy`, auto-approval precision below
/// `auto_filter.min_precision` — only when the whole 95 % interval is below,
/// so a handful of audits never raises an alarm on its own.
pub fn audit_warnings(audits: &AuditStatus, config: &Config) -> Vec<Warning> {
    let mut out = Vec::new();
    if let Some((version, accuracy)) = audits.production.as_ref().and_then(|e| {
        e.production_accuracy
            .filter(|a| a.high < config.health.min_production_accuracy)
            .map(|a| (&e.version, a))
    }) {
        out.push(Warning {
            code: "low-production-accuracy",
            message: format!(
                "production model {version} is right on {} of audited conversations, below {:.2}: review the audit queue's corrections and retrain",
                accuracy.describe(),
                config.health.min_production_accuracy
            ),
        });
    }
    if let Some(precision) = audits
        .auto_approval_precision
        .filter(|p| p.high < config.auto_filter.min_precision)
    {
        out.push(Warning {
            code: "low-auto-approval-precision",
            message: format!(
                "auto-approved labels were right on {} of audited conversations in the last {} days, below {:.2}: raise auto_filter.auto_approve_confidence",
                precision.describe(),
                crate::storage::snapshot::PRECISION_WINDOW_DAYS,
                config.auto_filter.min_precision
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Stage;
    use crate::storage::snapshot::LiveModel;

    fn snapshot() -> StatusSnapshot {
        StatusSnapshot {
            queue: Default::default(),
            approved_unused: 0,
            today: Default::default(),
            approved_today: 0,
            rejected_today: 0,
            auto_approval_rate: None,
            last_capture_at: None,
            live_models: vec![LiveModel {
                version: "router-v1.0.0".into(),
                status: crate::domain::ModelStatus::Production,
                traffic_percentage: 100,
                test_accuracy: Some(0.9),
                production_accuracy: None,
                fallback_rate: Some(0.05),
            }],
            model_versions: 1,
            audits: Default::default(),
            oldest_queued_at: None,
            first_capture_at: None,
            capture_volume: Default::default(),
            free_disk_bytes: None,
        }
    }

    /// The advice fixes this installation: never `flywheel demo`, which
    /// works in a data dir of its own.
    #[test]
    fn no_production_model_advice_fits_the_installation() {
        let mut s = snapshot();
        s.live_models.clear();
        s.model_versions = 0;
        let fresh = &warnings(&s, &[], &Config::default(), Utc::now())[0];
        assert_eq!(fresh.code, "no-production-model");
        assert!(
            fresh
                .message
                .contains("`flywheel serve` trains and deploys"),
            "{fresh:?}"
        );
        assert!(
            fresh.message.contains("weekly-training --force"),
            "{fresh:?}"
        );
        s.model_versions = 3;
        let with_versions = &warnings(&s, &[], &Config::default(), Utc::now())[0];
        assert!(
            with_versions
                .message
                .contains("models promote VERSION --to production")
        );
        for w in [fresh, with_versions] {
            assert!(!w.message.contains("demo"), "{w:?}");
        }
    }

    /// A warning no check owns would never show in `/metrics`.
    #[test]
    fn every_warning_code_belongs_to_a_check() {
        let source = include_str!("health.rs");
        let body = &source[..source.find("#[cfg(test)]").unwrap()];
        let owned: Vec<&str> = CHECKS.iter().flat_map(|(_, c)| c.iter().copied()).collect();
        // A code is the literal after `warn(` (on the next line) or `code:`.
        let lines: Vec<&str> = body.lines().map(str::trim).collect();
        let mut raised = Vec::new();
        for pair in lines.windows(2) {
            let literal = if pair[0].ends_with("warn(") {
                pair[1].strip_suffix(',')
            } else {
                pair[1]
                    .strip_prefix("code: ")
                    .and_then(|c| c.strip_suffix(','))
            };
            if let Some(code) = literal.and_then(|l| l.strip_prefix('"')?.strip_suffix('"')) {
                raised.push(code);
            }
        }
        raised.sort_unstable();
        raised.dedup();
        assert_eq!(raised.len(), owned.len(), "{raised:?}");
        for code in &raised {
            assert!(
                owned.contains(code),
                "warning code {code} has no check in CHECKS"
            );
        }
    }

    fn codes(w: &[Warning]) -> Vec<&str> {
        w.iter().map(|w| w.code).collect()
    }

    #[test]
    fn healthy_snapshot_has_no_warnings() {
        assert!(warnings(&snapshot(), &[], &Config::default(), Utc::now()).is_empty());
    }

    #[test]
    fn a_rate_over_a_few_conversations_does_not_warn() {
        // Just after midnight: 13 of 27 processed conversations (48 %) is
        // noise, 450 of 1000 is not.
        let config = Config::default();
        let mut s = snapshot();
        s.today.captured = 27;
        s.today.auto_approved = 13;
        s.auto_approval_rate = Some(13.0 * 100.0 / 27.0);
        let codes = |s: &StatusSnapshot| -> Vec<&'static str> {
            warnings(s, &[], &config, Utc::now())
                .iter()
                .map(|w| w.code)
                .collect()
        };
        assert!(!codes(&s).contains(&"auto-approval-rate"));
        s.today.captured = 1000;
        s.today.auto_approved = 450;
        s.auto_approval_rate = Some(45.0);
        assert!(codes(&s).contains(&"auto-approval-rate"));
    }

    #[test]
    fn each_expectation_warns() {
        let now = Utc::now();
        let mut s = snapshot();
        s.live_models[0].test_accuracy = Some(0.7);
        s.live_models[0].fallback_rate = Some(0.3);
        s.auto_approval_rate = Some(95.0);
        s.today.captured = 1000;
        s.today.auto_approved = 950;
        s.last_capture_at = Some(Timestamp(now - Duration::hours(2)));
        let run = JobRun {
            id: 7,
            stage: Stage::DailyCapture,
            trigger: crate::domain::Trigger::Cron,
            status: JobStatus::Failed,
            started_at: Timestamp(now - Duration::days(3)),
            finished_at: None,
            counts: None,
            error: Some("database unavailable".into()),
            host: None,
            pid: None,
            heartbeat_at: None,
        };
        let w = warnings(&s, &[run], &Config::default(), now);
        assert_eq!(
            codes(&w),
            [
                "low-test-accuracy",
                "high-fallback-rate",
                "auto-approval-rate",
                "capture-quiet",
                "stage-failed",
                "stage-overdue"
            ]
        );
        s.live_models.clear();
        assert_eq!(
            codes(&warnings(&s, &[], &Config::default(), now))[0],
            "no-production-model"
        );
    }

    #[test]
    fn capture_far_below_the_same_hour_of_earlier_weeks_warns() {
        let config = Config::default();
        let with = |last_hour: i64, weeks: Vec<i64>| {
            let mut s = snapshot();
            s.capture_volume = crate::storage::snapshot::CaptureVolume {
                last_hour,
                same_hour_earlier_weeks: weeks,
            };
            codes(&warnings(&s, &[], &config, Utc::now()))
                .into_iter()
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(with(40, vec![100, 120, 90, 110]), ["capture-dropped"]);
        // Half is the bar (health.capture_drop_ratio 0.5 of the median 105).
        assert!(with(53, vec![100, 120, 90, 110]).is_empty());
        // One earlier week is no baseline; a quiet hour is noise.
        assert!(with(0, vec![100]).is_empty());
        assert!(with(0, vec![6, 8]).is_empty());
        let w = warnings(
            &StatusSnapshot {
                capture_volume: crate::storage::snapshot::CaptureVolume {
                    last_hour: 40,
                    same_hour_earlier_weeks: vec![100, 120],
                },
                ..snapshot()
            },
            &[],
            &config,
            Utc::now(),
        );
        assert_eq!(
            w[0].message,
            "40 conversations captured in the last hour, below 50 % of the usual 110 at this hour (median of the last 2 weeks)"
        );
    }

    #[test]
    fn an_old_review_queue_and_a_full_disk_warn() {
        let now = Utc::now();
        let mut s = snapshot();
        s.oldest_queued_at = Some(Timestamp(now - Duration::days(6)));
        s.free_disk_bytes = Some(2 << 30);
        assert!(warnings(&s, &[], &Config::default(), now).is_empty());
        s.oldest_queued_at = Some(Timestamp(now - Duration::days(8)));
        s.free_disk_bytes = Some(500 << 20);
        let w = warnings(&s, &[], &Config::default(), now);
        assert_eq!(codes(&w), ["review-queue-ageing", "low-disk-space"]);
        assert!(
            w[1].message.starts_with("500 MiB free under the data dir"),
            "{w:?}"
        );
    }

    /// A scheduled stage that never ran is overdue once its slot (and the
    /// grace) passed after the first capture; Label Studio sync only where
    /// Label Studio is configured.
    #[test]
    fn a_stage_that_never_ran_is_overdue_after_the_first_capture() {
        use chrono::TimeZone;
        let now = Utc.with_ymd_and_hms(2026, 12, 2, 12, 0, 0).unwrap();
        let ran = |stage, at| JobRun {
            id: 1,
            stage,
            trigger: crate::domain::Trigger::Cron,
            status: JobStatus::Succeeded,
            started_at: Timestamp(at),
            finished_at: None,
            counts: None,
            error: None,
            host: None,
            pid: None,
            heartbeat_at: None,
        };
        let mut s = snapshot();
        let runs = [
            ran(Stage::CanaryCheck, now - Duration::minutes(40)),
            ran(Stage::WeeklyTraining, now - Duration::days(3)),
        ];
        // Nothing captured: nothing is due.
        assert!(warnings(&s, &runs, &Config::default(), now).is_empty());
        // Capturing since 01:00 today: daily capture's 02:00 slot passed.
        s.first_capture_at = Some(Timestamp(now - Duration::hours(11)));
        let w = warnings(&s, &runs, &Config::default(), now);
        assert_eq!(codes(&w), ["stage-overdue"]);
        assert!(
            w[0].message.starts_with("daily-capture has never run"),
            "{w:?}"
        );
        // Since 03:00: not yet due (tomorrow 02:00).
        s.first_capture_at = Some(Timestamp(now - Duration::hours(9)));
        assert!(warnings(&s, &runs, &Config::default(), now).is_empty());
        // With Label Studio configured its sync (every 6 h at :30) is due too.
        let mut config = Config::default();
        config.label_studio.url = Some("http://ls:8080".into());
        config.label_studio.api_key = Some(crate::config::Secret::new("k"));
        config.label_studio.project_id = Some(1);
        let w = warnings(&s, &runs, &config, now);
        assert!(
            w[0].message.starts_with("label-studio-sync has never run"),
            "{w:?}"
        );
    }

    /// Audits warn only when the whole 95 % interval is below the bar: a
    /// point estimate under it on a few items is not yet evidence.
    #[test]
    fn audited_accuracy_and_precision_warn_when_their_interval_is_below_the_bar() {
        use crate::audit::VersionEstimate;
        use crate::estimate::wilson;
        let with = |right: usize, n: usize, precise: usize, approved: usize| {
            let mut s = snapshot();
            s.audits.production = Some(VersionEstimate {
                version: "router-v1.0.0".into(),
                production_accuracy: Some(wilson(right, n)),
                auto_approval_precision: None,
                awaiting_label: 0,
            });
            s.audits.auto_approval_precision = Some(wilson(precise, approved));
            codes(&warnings(&s, &[], &Config::default(), Utc::now()))
                .into_iter()
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        // 0.74 on 400 audits: interval 0.70–0.78, all below 0.82.
        // Precision 0.90 on 300: below 0.97.
        assert_eq!(
            with(296, 400, 270, 300),
            ["low-production-accuracy", "low-auto-approval-precision"]
        );
        // 0.74 on 20 audits reaches above 0.82; 0.95 on 40 reaches 0.97.
        assert!(with(15, 20, 38, 40).is_empty());
        // Healthy figures.
        assert!(with(380, 400, 298, 300).is_empty());
        let mut s = snapshot();
        s.audits.production = Some(VersionEstimate {
            version: "router-v1.0.0".into(),
            production_accuracy: Some(wilson(296, 400)),
            auto_approval_precision: None,
            awaiting_label: 0,
        });
        let w = warnings(&s, &[], &Config::default(), Utc::now());
        assert!(
            w[0].message.contains(
                "right on 0.740 (0.695–0.781, n 400) of audited conversations, below 0.82"
            ),
            "{w:?}"
        );
    }
}
