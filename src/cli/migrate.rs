//! `flywheel migrate`: create or upgrade the database schema.

use std::process::ExitCode;

use serde::Serialize;

use super::Context;
use crate::error::Result;

pub async fn migrate(ctx: &Context) -> Result<ExitCode> {
    let store =
        super::storage::open_unmigrated(ctx.config(), super::storage::OpenMode::Create).await?;
    let before = store.migration_state().await?;
    let after = store.migrate().await?;
    let applied_now = after.applied.len().saturating_sub(before.applied.len());
    #[derive(Serialize)]
    struct Summary<'a> {
        ok: bool,
        database: &'a str,
        applied_now: usize,
        applied: &'a [i64],
    }
    ctx.out.summary(
        &Summary {
            ok: true,
            database: store.description(),
            applied_now,
            applied: &after.applied,
        },
        || {
            format!(
                "{}: {applied_now} migration(s) applied now, schema at version {}",
                store.description(),
                after.applied.last().copied().unwrap_or_default()
            )
        },
    );
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
