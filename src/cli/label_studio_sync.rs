//! `flywheel label-studio-sync`.

use std::process::ExitCode;

use clap::Args;

use super::Context;
use crate::error::Result;
use crate::stages::label_studio_sync::LabelStudioSync;

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Push at most N samples this run.
    #[arg(long)]
    pub limit: Option<i64>,
    /// The Label Studio project (overrides LABEL_STUDIO_PROJECT_ID).
    #[arg(long)]
    pub project_id: Option<i64>,
    /// Only push the review queue.
    #[arg(long, conflicts_with = "pull_only")]
    pub push_only: bool,
    /// Only pull finished annotations.
    #[arg(long)]
    pub pull_only: bool,
}

pub async fn label_studio_sync(ctx: &Context, args: &SyncArgs) -> Result<ExitCode> {
    let stage = LabelStudioSync {
        limit: args.limit,
        project_id: args.project_id,
        push: !args.pull_only,
        pull: !args.push_only,
        ..LabelStudioSync::from_config(ctx.config())?
    };
    let report = ctx.run_stage(stage).await?;
    ctx.out.summary(&serde_json::json!({ "ok": true, "sync": report }), || {
        let mut text = format!(
            "Label Studio project {}{}: pushed {}, reconciled {}; read {} changed tasks, pulled {}: {} approved, {} corrected, {} rejected, {} unusable, {} with disagreeing annotators",
            report.project_id,
            if report.project_created { " (created)" } else { "" },
            report.pushed,
            report.reconciled,
            report.read,
            report.pulled,
            report.approved,
            report.corrected,
            report.rejected,
            report.unusable,
            report.disagreements
        );
        if let Some(webhook) = report.webhook {
            text.push_str(&format!("\nwebhook: {webhook:?}").to_lowercase());
        }
        for e in &report.errors {
            text.push_str(&format!("\nwarning: {e}"));
        }
        text
    });
    Ok(ExitCode::SUCCESS)
}
