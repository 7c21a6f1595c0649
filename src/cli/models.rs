//! `flywheel models list | history | promote | rollback | archive`.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use serde_json::json;

use super::Context;
use crate::error::Result;
use crate::lifecycle::{self, Target};
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
    },
    /// Restore the previous production version.
    Rollback,
    /// Retire a version that is not in production.
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
    let store = ctx.store().await?;
    let actor = lifecycle::current_actor();
    let result = match command {
        ModelsCommand::List => list(ctx, &store).await,
        ModelsCommand::History { model, limit } => {
            history(ctx, &store, model.as_deref(), limit).await
        }
        ModelsCommand::Promote { model, to, traffic } => {
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
            let changes = lifecycle::promote(&store, &model, target, &actor).await?;
            report_changes(ctx, &changes);
            Ok(())
        }
        ModelsCommand::Rollback => {
            let changes = lifecycle::rollback(&store, &actor).await?;
            report_changes(ctx, &changes);
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
        });
}

async fn list(ctx: &Context, store: &crate::storage::Store) -> Result<()> {
    let versions = store.list_model_versions().await?;
    ctx.out.summary(&json!({ "ok": true, "models": versions }), || {
        if versions.is_empty() {
            return "No model versions yet. `flywheel demo` or `flywheel weekly-training` creates one.".into();
        }
        let mut out = format!(
            "{:<18} {:<10} {:>7} {:>9} {:>9} {:>8}  {}\n",
            "version", "status", "traffic", "test acc", "prod acc", "fallback", "created"
        );
        for m in &versions {
            let _ = writeln!(
                out,
                "{:<18} {:<10} {:>6} % {:>9} {:>9} {:>8}  {}",
                m.version,
                m.status,
                m.traffic_percentage,
                fmt(m.test_accuracy),
                fmt(m.production_accuracy),
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
                    t.from_status.as_deref().unwrap_or("(new)"),
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
