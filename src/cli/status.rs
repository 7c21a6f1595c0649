//! `flywheel status`: the queue, approved unused samples, the gold set, today's counts,
//! live models, last runs and health warnings.

use std::fmt::Write as _;
use std::process::ExitCode;

use chrono::Utc;
use serde::Serialize;

use super::Context;
use crate::error::Result;
use crate::gold::GoldSummary;
use crate::health::{LoopHealth, Warning, human_duration};
use crate::storage::jobs::JobRun;
use crate::storage::snapshot::StatusSnapshot;

#[derive(Serialize)]
struct StatusReport<'a> {
    ok: bool,
    database: &'a str,
    #[serde(flatten)]
    snapshot: &'a StatusSnapshot,
    /// The labels that judge models ([`crate::gold`]).
    gold: &'a GoldSummary,
    last_runs: &'a [JobRun],
    warnings: &'a [Warning],
}

pub async fn status(ctx: &Context) -> Result<ExitCode> {
    let store = ctx.existing_store().await?;
    let config = ctx.config();
    let LoopHealth {
        snapshot,
        last_runs,
        warnings,
    } = LoopHealth::read(&store, config, Utc::now()).await?;
    let gold = store
        .gold_summary(config.training.test_split_percent)
        .await?;
    let report = StatusReport {
        ok: true,
        database: store.description(),
        snapshot: &snapshot,
        gold: &gold,
        last_runs: &last_runs,
        warnings: &warnings,
    };
    ctx.out.summary(&report, || {
        render_status(&report, config.training.min_samples)
    });
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

fn render_status(r: &StatusReport<'_>, min_samples: i64) -> String {
    let s = r.snapshot;
    let mut out = String::new();
    let _ = writeln!(out, "Flywheel status  ({})", r.database);
    let _ = writeln!(
        out,
        "Review queue     {} samples waiting for review ({} urgent): {}{}",
        s.queue.total(),
        s.queue.urgent(),
        s.queue.places(),
        match s.queue.suspects() {
            0 => String::new(),
            1 => "; 1 suspect label among them".into(),
            n => format!("; {n} suspect labels among them"),
        }
    );
    let _ = writeln!(
        out,
        "Approved unused  {} samples (weekly training needs {min_samples})",
        s.approved_unused
    );
    let _ = writeln!(out, "Gold set         {}", r.gold.line());
    let audits = &s.audits;
    let _ = writeln!(
        out,
        "Audits           production {}; auto-approval precision {} (last {} days); {} awaiting a label",
        audits
            .production
            .as_ref()
            .and_then(|e| e.production_accuracy.map(|a| format!(
                "{} right on {}",
                e.version,
                a.describe()
            )))
            .unwrap_or_else(|| "not measured yet".into()),
        audits
            .auto_approval_precision
            .map_or_else(|| "not measured yet".into(), |p| p.describe()),
        crate::storage::snapshot::PRECISION_WINDOW_DAYS,
        audits.awaiting_label
    );
    let t = &s.today;
    let _ = writeln!(
        out,
        "Today (UTC)      {} conversations captured: {} auto-approved, {} need review, {} reviewed, {} pending; {} samples approved, {} rejected in review{}",
        t.captured,
        t.auto_approved,
        t.needs_review,
        t.reviewed,
        t.pending,
        s.approved_today,
        s.rejected_today,
        s.auto_approval_rate
            .map(|r| format!("; auto-approval {r:.1} %"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "Last capture     {}",
        match s.last_capture_at {
            Some(at) => format!("{at} ({} ago)", human_duration(Utc::now() - at.0)),
            None => "never".into(),
        }
    );
    for status in ["production", "canary"] {
        let line = match s.live_models.iter().find(|m| m.status == status) {
            Some(m) => format!(
                "{}  test acc {}  fallback {}  traffic {} %",
                m.version,
                fmt_opt(m.test_accuracy, 3),
                fmt_opt(m.fallback_rate, 3),
                m.traffic_percentage
            ),
            None => "none".into(),
        };
        let _ = writeln!(out, "{:<17}{line}", capitalise(status));
    }
    if r.last_runs.is_empty() {
        let _ = writeln!(out, "Last runs        none yet");
    } else {
        let _ = writeln!(out, "Last runs");
        for run in r.last_runs {
            let took = run
                .finished_at
                .map(|f| {
                    format!(
                        "{:.1} s",
                        (f.0 - run.started_at.0).num_milliseconds() as f64 / 1000.0
                    )
                })
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {:<18} {:<9} {}  {:<4} {took}{}",
                run.stage,
                run.status,
                run.started_at,
                run.trigger,
                run.error
                    .as_deref()
                    .map(|e| format!("  {e}"))
                    .unwrap_or_default()
            );
        }
    }
    for w in r.warnings {
        let _ = writeln!(out, "warning: {}", w.message);
    }
    out
}

fn fmt_opt(value: Option<f64>, digits: usize) -> String {
    value.map_or_else(|| "n/a".into(), |v| format!("{v:.digits$}"))
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}
