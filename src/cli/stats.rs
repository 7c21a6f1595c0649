//! `flywheel stats queue|suspects|daily|models|thresholds|recent|capture-gaps`.

use std::fmt::Write as _;
use std::process::ExitCode;

use chrono::{Duration, Utc};
use clap::Subcommand;
use serde_json::json;

use super::Context;
use super::args::{parse_duration, row_limit};
use crate::capture::gaps::{GapRules, capture_gaps};
use crate::domain::WaitingPlace;
use crate::error::Result;
use crate::review::order::{head, review_order};
use crate::stages::approval_thresholds::{
    ApprovalThresholds, EVIDENCE_WINDOW_DAYS, IntentThreshold, ThresholdBasis,
};
use crate::storage::model_performance::WindowStats;
use crate::storage::{Store, Timestamp};

#[derive(Debug, Subcommand)]
pub enum StatsCommand {
    /// What waits for review — queued here or in Label Studio — per
    /// priority, and the first of it in review order, with why.
    Queue {
        #[arg(long, default_value_t = 20, value_parser = row_limit())]
        limit: i64,
    },
    /// Approved labels the model confidently disagrees with, most
    /// suspicious first (flagged by weekly training).
    Suspects {
        #[arg(long, default_value_t = 100, value_parser = row_limit())]
        limit: i64,
    },
    /// Per day: captured, auto-approved, needs review, reviewed, approved, rejected.
    Daily {
        #[arg(long, default_value = "7d", value_parser = parse_duration)]
        since: Duration,
    },
    /// Per version: traffic, fallback rate, production and test accuracy;
    /// canary against production since the canary started.
    Models,
    /// Auto-approval threshold per intent and the audits it rests on.
    Thresholds,
    /// Recent conversations and capture gaps.
    #[command(flatten)]
    Capture(CaptureStatsCommand),
}

pub async fn run(ctx: &Context, command: StatsCommand) -> Result<ExitCode> {
    if let StatsCommand::Capture(command) = command {
        return capture_stats(ctx, command).await;
    }
    let store = ctx.existing_store().await?;
    let result = match command {
        StatsCommand::Queue { limit } => queue(ctx, &store, limit).await,
        StatsCommand::Suspects { limit } => {
            super::stats_suspects::suspects(ctx, &store, limit).await
        }
        StatsCommand::Daily { since } => daily(ctx, &store, since).await,
        StatsCommand::Models => models(ctx, &store).await,
        StatsCommand::Thresholds => thresholds(ctx, &store).await,
        StatsCommand::Capture(_) => unreachable!("handled above"),
    };
    store.close().await;
    result.map(|()| ExitCode::SUCCESS)
}

async fn queue(ctx: &Context, store: &Store, limit: i64) -> Result<()> {
    let config = ctx.config();
    let waiting = store.waiting(config.auto_filter.high_priority).await?;
    let order = review_order(store, config).await?;
    let items = head(store, &order, limit.max(0) as usize).await?;
    ctx.out.summary(
        &json!({ "ok": true, "waiting": waiting, "by_priority": waiting.by_priority(), "items": items }),
        || {
            let mut out = String::new();
            let _ = writeln!(
                out,
                "{} waiting for review ({})",
                waiting.total(),
                waiting.places()
            );
            for p in waiting.by_priority() {
                let _ = writeln!(
                    out,
                    "  priority {}: {} ({} here, {} in Label Studio)",
                    p.priority, p.count, p.here, p.label_studio
                );
            }
            let (audits, suspects) = (waiting.approved_audits(), waiting.suspects());
            if audits + suspects > 0 {
                let _ = writeln!(
                    out,
                    "  besides the review queue: {audits} audits of approved samples, {suspects} suspect labels (flywheel stats suspects)"
                );
            }
            if !items.is_empty() {
                let _ = writeln!(out, "In review order (rank, where, why):");
            }
            for q in &items {
                let s = &q.sample;
                let _ = writeln!(
                    out,
                    "  {:>4} {:<4} p{} ×{:<4} {:<18} {:>5}  {:<8} {:<32} {}",
                    q.ranked.rank,
                    match q.place() {
                        WaitingPlace::Here => "here",
                        WaitingPlace::LabelStudio => "LS",
                    },
                    s.priority,
                    s.occurrences,
                    s.intent,
                    s.confidence
                        .map_or_else(|| "-".into(), |c| format!("{c:.2}")),
                    s.language.as_deref().unwrap_or("-"),
                    q.ranked.reason.to_string(),
                    s.text
                );
            }
            out
        },
    );
    Ok(())
}

async fn thresholds(ctx: &Context, store: &Store) -> Result<()> {
    let config = &ctx.config().auto_filter;
    let t = ApprovalThresholds::as_of(store, config, Timestamp::now()).await?;
    let intents: Vec<_> = t
        .intents
        .iter()
        .map(|(intent, i)| json!({ "intent": intent, "threshold": i }))
        .collect();
    ctx.out.summary(
        &json!({
            "ok": true,
            "floor": t.floor,
            "min_precision": config.min_precision,
            "evidence_window_days": EVIDENCE_WINDOW_DAYS,
            "pooled": t.pooled,
            "intents": intents,
        }),
        || {
            let describe = |i: &IntentThreshold| {
                let basis = match i.basis {
                    ThresholdBasis::NoEvidence => "no evidence: the floor",
                    ThresholdBasis::Evidence => "precision reached",
                    ThresholdBasis::PrecisionNotReached => "precision never reached: best level",
                };
                let precision = i
                    .estimated_precision
                    .map_or_else(|| "-".into(), |p| format!("{p:.3}"));
                format!(
                    "{:>5.2}  {:>4}/{:<4} est. {precision:<6} {basis}",
                    i.threshold, i.right, i.audits
                )
            };
            let mut out = format!(
                "auto-approval from confidence ≥ threshold (floor {:.2}, aim: precision ≥ {:.2}; audits of the last {EVIDENCE_WINDOW_DAYS} days)\n",
                t.floor, config.min_precision
            );
            let _ = writeln!(out, "{:<24} {}", "all other intents", describe(&t.pooled));
            let mut rows: Vec<_> = t.intents.iter().collect();
            rows.sort_by(|a, b| b.1.threshold.total_cmp(&a.1.threshold).then(a.0.cmp(b.0)));
            for (intent, i) in rows {
                let _ = writeln!(out, "{intent:<24} {}", describe(i));
            }
            out
        },
    );
    Ok(())
}

async fn daily(ctx: &Context, store: &Store, since: Duration) -> Result<()> {
    let from = (Utc::now() - since).date_naive();
    let days = store.daily_stats(from).await?;
    ctx.out
        .summary(&json!({ "ok": true, "since": from, "days": days }), || {
            let mut out = format!(
                "{:<10} {:>8} {:>9} {:>7} {:>8} {:>8} {:>8} {:>6}\n",
                "date",
                "captured",
                "auto-appr",
                "review",
                "reviewed",
                "approved",
                "rejected",
                "auto %"
            );
            for d in &days {
                let _ = writeln!(
                    out,
                    "{:<10} {:>8} {:>9} {:>7} {:>8} {:>8} {:>8} {:>6}",
                    d.date,
                    d.captured,
                    d.auto_approved,
                    d.needs_review,
                    d.reviewed,
                    d.approved,
                    d.rejected,
                    d.auto_approval_rate
                        .map_or_else(|| "-".into(), |r| format!("{r:.1}"))
                );
            }
            out
        });
    Ok(())
}

async fn models(ctx: &Context, store: &Store) -> Result<()> {
    let performance = store.model_performance().await?;
    let versions = store.list_model_versions().await?;
    let canary = versions
        .iter()
        .find(|m| m.status == crate::domain::ModelStatus::Canary);
    let production = versions
        .iter()
        .find(|m| m.status == crate::domain::ModelStatus::Production);
    // The 48-hour watch: both live versions over the same window.
    let watch = match (canary, production) {
        (Some(c), Some(p)) => {
            let since = c.canary_at.unwrap_or(c.updated_at);
            let canary_stats = store.version_window_stats(&c.version, since).await?;
            let production_stats = store.version_window_stats(&p.version, since).await?;
            Some((
                since,
                c.version.clone(),
                canary_stats,
                p.version.clone(),
                production_stats,
            ))
        }
        _ => None,
    };
    let watch_json = watch.as_ref().map(|(since, cv, cs, pv, ps)| {
        json!({ "since": since, "canary": { "version": cv, "stats": cs }, "production": { "version": pv, "stats": ps } })
    });
    ctx.out.summary(
        &json!({ "ok": true, "models": performance, "canary_watch": watch_json }),
        || {
            let mut out = format!(
                "{:<18} {:<10} {:>7} {:>9} {:>9} {:>7} {:>8} {:>13}\n",
                "version", "status", "traffic", "test acc", "prod acc", "audited", "fallback", "conversations"
            );
            for m in &performance {
                let _ = writeln!(
                    out,
                    "{:<18} {:<10} {:>6} % {:>9} {:>9} {:>7} {:>8} {:>13}",
                    m.version,
                    m.status,
                    m.traffic_percentage,
                    pct(m.test_accuracy),
                    pct(m.production_accuracy),
                    m.audited,
                    pct(m.fallback_rate),
                    m.conversations
                );
            }
            out.push_str(
                "prod acc: served answers a human agreed with, over audited conversations (a random share of all traffic)\n",
            );
            if let Some((since, cv, cs, pv, ps)) = &watch {
                let total = (cs.conversations + ps.conversations).max(1) as f64;
                let _ = writeln!(out, "\nCanary watch since {since}:");
                let _ = writeln!(out, "{:<24} {:>14} {:>14}", "", cv, pv);
                let row = |name: &str, f: &dyn Fn(&WindowStats) -> String| {
                    format!("{name:<24} {:>14} {:>14}\n", f(cs), f(ps))
                };
                out.push_str(&row("traffic share", &|s| {
                    format!("{:.1} %", s.conversations as f64 * 100.0 / total)
                }));
                out.push_str(&row("conversations", &|s| s.conversations.to_string()));
                out.push_str(&row("fallback rate", &|s| {
                    ratio(s.fallbacks, s.conversations)
                }));
                out.push_str(&row("negative feedback", &|s| {
                    ratio(s.negative_feedback, s.conversations)
                }));
                out.push_str(&row("review agreement", &|s| ratio(s.agreed, s.reviewed)));
            }
            out
        },
    );
    Ok(())
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.3}"))
}

fn ratio(part: i64, whole: i64) -> String {
    if whole == 0 {
        "-".into()
    } else {
        format!("{:.1} %", part as f64 * 100.0 / whole as f64)
    }
}

#[derive(Debug, Subcommand)]
pub enum CaptureStatsCommand {
    /// The latest conversations.
    Recent {
        #[arg(long, default_value_t = 20, value_parser = row_limit())]
        limit: i64,
    },
    /// Silences in capture and hours far below their usual volume.
    CaptureGaps {
        /// Window to analyse: 90m, 24h, 7d…
        #[arg(long, default_value = "7d", value_parser = parse_duration)]
        since: chrono::Duration,
    },
}

/// `stats recent` and `stats capture-gaps`.
async fn capture_stats(ctx: &Context, command: CaptureStatsCommand) -> Result<ExitCode> {
    let store = ctx.store().await?;
    match command {
        CaptureStatsCommand::Recent { limit } => {
            let rows = store.recent_conversations(limit).await?;
            ctx.out.summary(
                &serde_json::json!({ "ok": true, "conversations": rows }),
                || {
                    let mut text = String::new();
                    for r in &rows {
                        let _ = writeln!(
                            text,
                            "{}  #{:<8} {:<24} {:>5} {:<10} {}",
                            r.created_at,
                            r.id,
                            r.nlu_intent.as_deref().unwrap_or("-"),
                            r.nlu_confidence.map_or("-".into(), |c| format!("{c:.2}")),
                            r.language.as_deref().unwrap_or("-"),
                            r.user_message.chars().take(60).collect::<String>()
                        );
                    }
                    if rows.is_empty() {
                        text.push_str("no conversations captured yet");
                    }
                    text
                },
            );
        }
        CaptureStatsCommand::CaptureGaps { since } => {
            let since = Timestamp::from(chrono::Utc::now() - since);
            let rules = GapRules::from_health(&ctx.config().health);
            let report = capture_gaps(&store, since, rules).await?;
            let value = serde_json::json!({ "ok": true, "report": &report });
            ctx.out.summary(&value, || {
                let mut text = format!(
                    "{} captured since {}; last capture {}\n",
                    report.captured,
                    report.since,
                    report
                        .last_capture_at
                        .map_or("never".into(), |t| t.to_string())
                );
                if report.gaps.is_empty() {
                    let _ = writeln!(
                        text,
                        "no gap longer than {} min",
                        report.quiet_period_minutes
                    );
                }
                for g in &report.gaps {
                    let _ = writeln!(
                        text,
                        "gap  {} → {}  {} min{}",
                        g.start,
                        g.end,
                        g.minutes,
                        if g.ongoing { " (ongoing)" } else { "" }
                    );
                }
                for l in &report.low_hours {
                    let _ = writeln!(
                        text,
                        "low  {}  {} captured, usually {:.0}",
                        l.hour, l.captured, l.usual
                    );
                }
                text
            });
        }
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
