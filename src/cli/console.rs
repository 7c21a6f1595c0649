//! `flywheel tui`, and `flywheel` alone on a terminal: the operator console.

use std::io::IsTerminal;
use std::process::ExitCode;

use super::Context;
use crate::error::{Error, Result};

pub async fn run(ctx: &Context) -> Result<ExitCode> {
    if !std::io::stdout().is_terminal() {
        return Err(Error::usage(
            "the console needs a terminal on stdout; cron and scripts use the headless commands (`flywheel --help`)",
        ));
    }
    let store = ctx.existing_store().await?;
    let result = crate::tui::run(store.clone(), ctx.config().clone()).await;
    store.close().await;
    result.map(|()| ExitCode::SUCCESS)
}

/// Whether this invocation opens the console (its logs then go to the file only).
pub fn opens_console(command: Option<&super::Command>) -> bool {
    match command {
        Some(super::Command::Tui) => true,
        None => std::io::stdout().is_terminal(),
        Some(_) => false,
    }
}
