//! `flywheel backup`: an online copy of the embedded database.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::Context;
use crate::error::Result;

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where to write the copy (must not exist).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

pub async fn backup(ctx: &Context, args: BackupArgs) -> Result<ExitCode> {
    // The copy is of the database as it is: taken before an upgrade, with
    // the new binary already in place, it must not migrate first.
    let store =
        crate::storage::open_unmigrated(ctx.config(), crate::storage::OpenMode::Existing).await?;
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
