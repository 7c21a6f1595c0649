//! `flywheel prune`: the command line of the [`Prune`] stage (retention of
//! conversation logs).

use std::process::ExitCode;

use clap::Args;

use super::Context;
use super::args::parse_duration;
use crate::error::Result;
use crate::stages::prune::Prune;

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Delete conversation logs older than this (at least 1d).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub older_than: chrono::Duration,
    /// Count what would be deleted; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub async fn prune(ctx: &Context, args: PruneArgs) -> Result<ExitCode> {
    let mut stage = Prune::new(args.older_than)?;
    stage.dry_run = args.dry_run;
    let summary = ctx.run_stage(stage).await?;
    ctx.out.summary(
        &serde_json::json!({ "ok": true, "prune": &summary }),
        || {
            if summary.dry_run {
                format!(
                    "dry run: {} conversation(s) older than {} would be deleted ({} never processed by daily capture); samples and models are kept",
                    summary.conversations, summary.cutoff, summary.pending
                )
            } else {
                format!(
                    "deleted {} conversation(s) older than {}; samples and models are kept",
                    summary.deleted, summary.cutoff
                )
            }
        },
    );
    Ok(ExitCode::SUCCESS)
}
