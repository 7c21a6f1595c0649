//! The loop's state as Prometheus gauges: what waits for review, what
//! waits for training, what audits measured of the live versions, when
//! each stage last succeeded, and the health checks `status` and `doctor`
//! warn on — each figure read from the one place that defines it
//! ([`Store::status_snapshot`], [`crate::health`]), never recounted here.
//!
//! Label values are bounded: priorities (the auto-filter's buckets),
//! places, stage names, check names, and the versions live now (production
//! and canary, at most two) — never texts, users or every version ever
//! trained.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::exposition::{escape, header};
use crate::audit::VersionEstimate;
use crate::config::Config;
use crate::domain::{ModelStatus, WaitingPlace};
use crate::error::Result;
use crate::health;
use crate::storage::jobs::JobRun;
use crate::storage::snapshot::StatusSnapshot;
use crate::storage::{Store, Timestamp};

/// Everything the loop's gauges show, read at one moment.
#[derive(Debug, Clone)]
pub struct LoopMetrics {
    pub snapshot: StatusSnapshot,
    pub gold_samples: i64,
    /// Audit estimates of the live versions.
    pub estimates: Vec<VersionEstimate>,
    /// The latest successful run of each stage.
    pub last_success: Vec<JobRun>,
    /// The latest run of each stage.
    pub last_runs: Vec<JobRun>,
    pub checks: Vec<(&'static str, bool)>,
    pub now: DateTime<Utc>,
}

impl LoopMetrics {
    pub async fn read(store: &Store, config: &Config) -> Result<Self> {
        let now = Utc::now();
        let health::LoopHealth {
            snapshot,
            last_runs,
            warnings,
        } = health::LoopHealth::read(store, config, now).await?;
        let checks = health::check_results(&warnings);
        let live: Vec<&str> = snapshot
            .live_models
            .iter()
            .map(|m| m.version.as_str())
            .collect();
        let estimates = store
            .audit_tallies(None)
            .await?
            .iter()
            .map(VersionEstimate::from)
            .filter(|e| live.contains(&e.version.as_str()))
            .collect();
        Ok(Self {
            gold_samples: store.gold_sample_count().await?,
            estimates,
            last_success: store.last_successful_job_run_per_stage().await?,
            last_runs,
            checks,
            snapshot,
            now,
        })
    }

    /// The exposition text of every loop family.
    pub fn render(&self, out: &mut String) {
        let s = &self.snapshot;
        header(
            out,
            "flywheel_review_queue_depth",
            "gauge",
            "Samples waiting for a human label (review queue, audits, suspect labels), here or in Label Studio, by priority; as status counts them.",
        );
        for p in s.queue.by_priority() {
            let _ = writeln!(
                out,
                "flywheel_review_queue_depth{{priority=\"{}\"}} {}",
                p.priority, p.count
            );
        }
        header(
            out,
            "flywheel_review_waiting",
            "gauge",
            "Samples waiting for a human label by where they wait (here or label-studio) and priority.",
        );
        for p in s.queue.by_priority() {
            for (place, n) in [
                (WaitingPlace::Here, p.here),
                (WaitingPlace::LabelStudio, p.label_studio),
            ] {
                let _ = writeln!(
                    out,
                    "flywheel_review_waiting{{where=\"{place}\",priority=\"{}\"}} {n}",
                    p.priority
                );
            }
        }
        let oldest = s.oldest_queued_at.map_or(0.0, |t| seconds(self.now - t.0));
        let simple = [
            (
                "flywheel_review_queue_oldest_age_seconds",
                "Age of the oldest sample in the review queue (0 when empty).",
                oldest,
            ),
            (
                "flywheel_approved_unused_samples",
                "Approved samples no training run has used yet.",
                s.approved_unused as f64,
            ),
            (
                "flywheel_gold_samples",
                "Approved samples labelled by a human or an import (the gold set).",
                self.gold_samples as f64,
            ),
            (
                "flywheel_canary_traffic_ratio",
                "Share of traffic the canary serves (0 without a canary).",
                s.live_models
                    .iter()
                    .find(|m| m.status == ModelStatus::Canary)
                    .map_or(0.0, |m| f64::from(m.traffic_percentage) / 100.0),
            ),
        ];
        for (name, help, value) in simple {
            header(out, name, "gauge", help);
            let _ = writeln!(out, "{name} {value}");
        }
        self.render_versions(out);
        self.render_stages(out);
        header(
            out,
            "flywheel_health_check",
            "gauge",
            "1 when the loop health check passes, 0 when status and doctor warn about it.",
        );
        for (check, ok) in &self.checks {
            let _ = writeln!(
                out,
                "flywheel_health_check{{check=\"{check}\"}} {}",
                u8::from(*ok)
            );
        }
    }

    fn render_versions(&self, out: &mut String) {
        type Figure = fn(&VersionEstimate) -> Option<f64>;
        let audited: [(&str, &str, Figure); 6] = [
            (
                "flywheel_production_accuracy",
                "Served answers a human agreed with, over audited conversations of the live version.",
                |e| e.production_accuracy.map(|a| a.value),
            ),
            (
                "flywheel_production_accuracy_lower",
                "Lower bound of production accuracy's 95 % interval.",
                |e| e.production_accuracy.map(|a| a.low),
            ),
            (
                "flywheel_production_accuracy_samples",
                "Audited conversations with a human label (n of production accuracy).",
                |e| e.production_accuracy.map(|a| a.n as f64),
            ),
            (
                "flywheel_auto_approval_precision",
                "Auto-approved labels a human agreed with, over audited conversations of the live version.",
                |e| e.auto_approval_precision.map(|p| p.value),
            ),
            (
                "flywheel_auto_approval_precision_samples",
                "Audited auto-approved conversations with a human label (n of auto-approval precision).",
                |e| e.auto_approval_precision.map(|p| p.n as f64),
            ),
            (
                "flywheel_audits_awaiting_label",
                "Audited conversations of the live version still waiting for a human label.",
                |e| Some(e.awaiting_label as f64),
            ),
        ];
        for (name, help, value) in audited {
            header(out, name, "gauge", help);
            for estimate in &self.estimates {
                if let Some(v) = value(estimate) {
                    let _ = writeln!(
                        out,
                        "{name}{{version=\"{}\"}} {v}",
                        escape(&estimate.version)
                    );
                }
            }
        }
        header(
            out,
            "flywheel_fallback_rate",
            "gauge",
            "Share of the live version's conversations of the last 24 hours answered with the fallback.",
        );
        for m in &self.snapshot.live_models {
            if let Some(rate) = m.fallback_rate {
                let _ = writeln!(
                    out,
                    "flywheel_fallback_rate{{version=\"{}\"}} {rate}",
                    escape(&m.version)
                );
            }
        }
    }

    fn render_stages(&self, out: &mut String) {
        type Figure = fn(&JobRun, Timestamp) -> f64;
        let families: [(&str, &str, Figure); 2] = [
            (
                "flywheel_stage_last_success_timestamp_seconds",
                "When the stage's latest successful run ended (Unix time; absent: never succeeded).",
                |_, end| end.0.timestamp_millis() as f64 / 1000.0,
            ),
            (
                "flywheel_stage_last_duration_seconds",
                "How long the stage's latest successful run took.",
                |run, end| seconds(end.0 - run.started_at.0),
            ),
        ];
        for (name, help, value) in families {
            header(out, name, "gauge", help);
            for run in &self.last_success {
                if let Some(end) = run.finished_at {
                    let _ = writeln!(out, "{name}{{stage=\"{}\"}} {}", run.stage, value(run, end));
                }
            }
        }
    }
}

fn seconds(d: chrono::Duration) -> f64 {
    d.num_milliseconds().max(0) as f64 / 1000.0
}

/// How long a read of the loop's state is reused: scrapes every few
/// seconds from several Prometheus servers must not each cost a dozen
/// queries on a database serving capture.
pub const CACHE_TTL: Duration = Duration::from_secs(15);

/// The loop's exposition text, read at most once per [`CACHE_TTL`].
pub struct LoopMetricsCache {
    store: Store,
    config: Config,
    ttl: Duration,
    /// One reader at a time: concurrent scrapes wait for its text.
    cached: tokio::sync::Mutex<Option<(Instant, Arc<str>)>>,
}

impl LoopMetricsCache {
    pub fn new(store: Store, config: Config, ttl: Duration) -> Self {
        Self {
            store,
            config,
            ttl,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// The text, fresh within the TTL. A read that fails or takes longer
    /// than `wait` keeps the previous text (stale rather than missing), or
    /// gives none before any read succeeded.
    pub async fn text(&self, wait: Duration) -> Option<Arc<str>> {
        let mut cached = self.cached.lock().await;
        if let Some((at, text)) = cached.as_ref()
            && at.elapsed() < self.ttl
        {
            return Some(text.clone());
        }
        match tokio::time::timeout(wait, LoopMetrics::read(&self.store, &self.config)).await {
            Ok(Ok(metrics)) => {
                let mut text = String::with_capacity(4096);
                metrics.render(&mut text);
                let text: Arc<str> = text.into();
                *cached = Some((Instant::now(), text.clone()));
                Some(text)
            }
            Ok(Err(err)) => {
                tracing::debug!("loop metrics not read: {err}");
                cached.as_ref().map(|(_, text)| text.clone())
            }
            Err(_) => {
                tracing::debug!("loop metrics not read within {wait:?}");
                cached.as_ref().map(|(_, text)| text.clone())
            }
        }
    }
}
