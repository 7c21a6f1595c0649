//! `flywheel models list | history | promote | rollback | archive`.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use serde_json::json;

use super::Context;
use crate::audit::VersionEstimate;
use crate::error::Result;
use crate::lifecycle::{self, Gate, Target};
use crate::storage::models::ModelChange;

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Every version with status, accuracy, fallback rate and traffic.
    List,
    /// The audit trail: who moved which version where, and when.
    History {
        /// Only this version.
        #[arg(value_name = "VERSION")]
        model: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// testing → canary (with --traffic), canary or testing → production.
    Promote {
        #[arg(value_name = "VERSION")]
        model: String,
        #[arg(long, value_enum)]
        to: PromoteTo,
        /// Canary share of traffic in percent (default: training.canary_traffic, 10).
        #[arg(long)]
        traffic: Option<u32>,
        /// Promote a version the weekly-training gate rejected, on purpose
        /// (recorded as forced in the audit trail).
        #[arg(long)]
        force: bool,
    },
    /// Restore the version that served before the current production (each
    /// call one step further back, skipping retired versions).
    Rollback,
    /// Retire a version that is not in production (rollback skips a retired
    /// former production version).
    Archive {
        #[arg(value_name = "VERSION")]
        model: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PromoteTo {
    Canary,
    Production,
}

pub async fn run(ctx: &Context, command: ModelsCommand) -> Result<ExitCode> {
    let store = ctx.existing_store().await?;
    let actor = lifecycle::current_actor();
    let result = match command {
        ModelsCommand::List => list(ctx, &store).await,
        ModelsCommand::History { model, limit } => {
            history(ctx, &store, model.as_deref(), limit).await
        }
        ModelsCommand::Promote {
            model,
            to,
            traffic,
            force,
        } => {
            let target = match to {
                PromoteTo::Canary => Target::Canary {
                    traffic: traffic.unwrap_or(ctx.config().training.canary_traffic),
                },
                PromoteTo::Production => {
                    if traffic.is_some() {
                        return Err(crate::Error::usage(
                            "--traffic applies to --to canary; production takes the rest of the traffic",
                        ));
                    }
                    Target::Production
                }
            };
            let gate = if force { Gate::Override } else { Gate::Respect };
            let changes = lifecycle::promote_with(&store, &model, target, gate, &actor).await?;
            report_changes(ctx, &changes);
            Ok(())
        }
        ModelsCommand::Rollback => {
            let changes = lifecycle::rollback(&store, &actor).await?;
            report_rollback(ctx, &changes);
            Ok(())
        }
        ModelsCommand::Archive { model } => {
            let changes = lifecycle::archive(&store, &model, &actor).await?;
            report_changes(ctx, &changes);
            Ok(())
        }
    };
    store.close().await;
    result.map(|()| ExitCode::SUCCESS)
}

fn report_changes(ctx: &Context, changes: &[ModelChange]) {
    ctx.out
        .summary(&json!({ "ok": true, "changes": changes }), || {
            describe_changes(changes)
        });
}

/// A rollback also names the version it restored and the one it retired.
fn report_rollback(ctx: &Context, changes: &[ModelChange]) {
    let restored = changes
        .iter()
        .find(|c| c.to_status == crate::domain::ModelStatus::Production);
    let retired = changes
        .iter()
        .find(|c| c.from_status == crate::domain::ModelStatus::Production);
    let name = |c: Option<&ModelChange>| c.map(|c| c.version.clone());
    ctx.out.summary(
        &json!({
            "ok": true,
            "restored": name(restored),
            "retired": name(retired),
            "changes": changes,
        }),
        || {
            let mut out = String::new();
            if let (Some(restored), Some(retired)) = (restored, retired) {
                let _ = writeln!(
                    out,
                    "Restored {} to production; retired {} (a further rollback goes further back, never to it).",
                    restored.version, retired.version
                );
            }
            out + &describe_changes(changes)
        },
    );
}

fn describe_changes(changes: &[ModelChange]) -> String {
    let mut out = String::new();
    for c in changes {
        let _ = writeln!(
            out,
            "{}: {} → {} ({} % traffic){}",
            c.version,
            c.from_status,
            c.to_status,
            c.traffic_percentage,
            c.reason
                .as_deref()
                .map(|r| format!(" — {r}"))
                .unwrap_or_default()
        );
    }
    out.push_str("Running `flywheel serve` processes pick this up within seconds.");
    out
}

async fn list(ctx: &Context, store: &crate::storage::Store) -> Result<()> {
    let versions = store.list_model_versions().await?;
    // Production accuracy as audits measure it now (the stored column is
    // refreshed by daily capture and Label Studio syncs).
    let estimates: Vec<VersionEstimate> = store
        .audit_tallies(None)
        .await?
        .iter()
        .map(VersionEstimate::from)
        .collect();
    let estimate_of = |version: &str| estimates.iter().find(|e| e.version == version);
    let listed: Vec<serde_json::Value> = versions
        .iter()
        .map(|m| {
            let mut row = serde_json::to_value(m).unwrap_or_default();
            let estimate = estimate_of(&m.version);
            let accuracy = estimate.and_then(|e| e.production_accuracy);
            if let Some(a) = accuracy {
                row["production_accuracy"] = json!(a.value);
            }
            row["production_accuracy_n"] = json!(accuracy.map_or(0, |a| a.n));
            row["production_accuracy_interval"] = json!(accuracy.map(|a| [a.low, a.high]));
            row["auto_approval_precision"] =
                json!(estimate.and_then(|e| e.auto_approval_precision));
            row["audits_awaiting_label"] = json!(estimate.map_or(0, |e| e.awaiting_label));
            row
        })
        .collect();
    ctx.out
        .summary(&json!({ "ok": true, "models": listed }), || {
            if versions.is_empty() {
                return format!(
                    "No model versions yet: {}.",
                    lifecycle::no_production_advice(false)
                );
            }
            let mut out = format!(
                "{:<18} {:<10} {:>7} {:>9} {:>22} {:>8}  {}\n",
                "version",
                "status",
                "traffic",
                "test acc",
                "prod acc (95 %, n)",
                "fallback",
                "created"
            );
            for m in &versions {
                let production = match estimate_of(&m.version).and_then(|e| e.production_accuracy) {
                    Some(a) => format!("{:.3} ({:.2}–{:.2}, {})", a.value, a.low, a.high, a.n),
                    None => fmt(m.production_accuracy),
                };
                let _ = writeln!(
                    out,
                    "{:<18} {:<10} {:>6} % {:>9} {:>22} {:>8}  {}",
                    m.version,
                    m.status,
                    m.traffic_percentage,
                    fmt(m.test_accuracy),
                    production,
                    fmt(m.fallback_rate),
                    m.created_at
                );
            }
            out
        });
    Ok(())
}

async fn history(
    ctx: &Context,
    store: &crate::storage::Store,
    version: Option<&str>,
    limit: i64,
) -> Result<()> {
    let transitions = store.model_transitions(version, limit).await?;
    ctx.out
        .summary(&json!({ "ok": true, "transitions": transitions }), || {
            let mut out = String::new();
            for t in &transitions {
                let _ = writeln!(
                    out,
                    "{}  {:<18} {:>10} → {:<10} {:>3} %  by {}{}",
                    t.at,
                    t.version,
                    t.from_status.map_or("(new)", |s| s.as_str()),
                    t.to_status,
                    t.traffic_percentage,
                    t.actor,
                    t.reason
                        .as_deref()
                        .map(|r| format!("  ({r})"))
                        .unwrap_or_default()
                );
            }
            if out.is_empty() {
                out.push_str("No transitions recorded.");
            }
            out
        });
    Ok(())
}

fn fmt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.3}"))
}
