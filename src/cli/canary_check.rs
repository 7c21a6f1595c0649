//! `flywheel canary-check`: the command line of the [`CanaryCheck`] stage.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use super::Context;
use crate::canary::{self, Analysis, Decision};
use crate::config::CanaryMode;
use crate::error::Result;
use crate::stages::canary_check::{CanaryCheck, CanaryCheckSummary};

#[derive(Debug, Args)]
pub struct CanaryCheckArgs {
    /// `auto` applies the decision; `recommend` only says it (default: [canary] mode).
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// Analyse and decide; change nothing, record nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `--mode`: the CLI's spelling of [`CanaryMode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    Recommend,
    Auto,
}

impl From<ModeArg> for CanaryMode {
    fn from(arg: ModeArg) -> Self {
        match arg {
            ModeArg::Recommend => CanaryMode::Recommend,
            ModeArg::Auto => CanaryMode::Auto,
        }
    }
}

pub async fn canary_check(ctx: &Context, args: CanaryCheckArgs) -> Result<ExitCode> {
    let stage = CanaryCheck {
        mode: args.mode.map_or(ctx.config().canary.mode, CanaryMode::from),
        dry_run: args.dry_run,
    };
    let summary = ctx.run_stage(stage).await?;
    ctx.out.summary(
        &serde_json::json!({
            "ok": true,
            "decision": summary.decision().map(Decision::kind),
            "applied": summary.applied(),
            "canary_check": &summary,
        }),
        || describe(&summary),
    );
    Ok(ExitCode::SUCCESS)
}

/// The human report: where the rollout stands, each signal, the decision
/// and whether it was applied.
pub fn describe(summary: &CanaryCheckSummary) -> String {
    let (Some(watched), Some(analysis)) = (&summary.watched, &summary.analysis) else {
        return summary
            .note
            .clone()
            .unwrap_or_else(|| "nothing to check".into());
    };
    let mut out = format!(
        "canary {} at {} % for {} (canary since {}), production {}\n",
        watched.canary,
        watched.traffic,
        canary::minutes(watched.minutes_at_step),
        watched.since,
        watched.production
    );
    out.push_str(&signal_table(analysis));
    let _ = writeln!(out, "decision: {}", analysis.decision.describe());
    let applied = if summary.applied() {
        let mut text = String::from("applied:");
        for c in &summary.changes {
            let _ = write!(
                text,
                " {} {} → {} ({} %);",
                c.version, c.from_status, c.to_status, c.traffic_percentage
            );
        }
        text.pop();
        text + "\nRunning `flywheel serve` processes pick this up within seconds."
    } else if matches!(analysis.decision, Decision::Wait(_)) {
        "nothing to change".into()
    } else if summary.dry_run {
        "dry run: nothing changed".into()
    } else if summary.mode == CanaryMode::Recommend {
        "recommend mode: nothing changed (`--mode auto` or [canary] mode = \"auto\" applies it)"
            .into()
    } else {
        "nothing changed".into()
    };
    out + &applied
}

/// One line per signal: canary and production with their 95 % intervals,
/// and the sequential test where the check decides on it.
fn signal_table(analysis: &Analysis) -> String {
    let mut out = String::new();
    for c in &analysis.signals {
        let line = format!(
            "  {:<19} canary {:<31} production {:<31} {}",
            c.signal.name(),
            canary::shown(&c.canary),
            canary::shown(&c.production),
            c.test.map(|t| t.describe()).unwrap_or_default()
        );
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}
