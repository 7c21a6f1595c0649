//! `flywheel tui`, and `flywheel` alone on a terminal: the operator console.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Args;

use super::Context;
use crate::error::{Error, Result};

#[derive(Debug, Args, Default)]
pub struct TuiArgs {
    /// Look without touching: every action that writes (review, sync,
    /// train, promote, roll back, run a stage) is refused
    /// (also `[console] read_only`).
    #[arg(long)]
    pub read_only: bool,
}

pub async fn run(ctx: &Context, args: TuiArgs) -> Result<ExitCode> {
    if !std::io::stdout().is_terminal() {
        return Err(Error::usage(
            "the console needs a terminal on stdout; cron and scripts use the headless commands (`flywheel --help`)",
        ));
    }
    let store = ctx.existing_store().await?;
    let mut config = ctx.config().clone();
    config.console.read_only |= args.read_only;
    let result = crate::tui::run(store.clone(), config).await;
    store.close().await;
    result.map(|()| ExitCode::SUCCESS)
}

/// Whether this invocation opens the console (its logs then go to the file only).
pub fn opens_console(command: Option<&super::Command>) -> bool {
    match command {
        Some(super::Command::Tui(_)) => true,
        None => std::io::stdout().is_terminal(),
        Some(_) => false,
    }
}
