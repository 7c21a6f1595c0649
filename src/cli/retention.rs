//! `prune` and `backup`: retention of conversation logs and an online copy
//! of the embedded database.

use std::path::PathBuf;
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

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where to write the copy (must not exist).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
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

pub async fn backup(ctx: &Context, args: BackupArgs) -> Result<ExitCode> {
    let store = ctx.existing_store().await?;
    let bytes = store.backup_sqlite(&args.file).await?;
    store.close().await;
    let file = args.file.display().to_string();
    ctx.out.summary(
        &serde_json::json!({ "ok": true, "backup": { "file": &file, "bytes": bytes } }),
        || {
            format!(
                "copied the database to {file} ({:.1} MB); restore: stop every flywheel process, then replace DATA_DIR/flywheel.db with it",
                bytes as f64 / 1e6
            )
        },
    );
    Ok(ExitCode::SUCCESS)
}
