//! `flywheel serve`: classify and log live utterances over HTTP.

use std::process::ExitCode;

use clap::Args;

use super::Context;
use super::args::parse_positive_duration;
use crate::capture::classifier::load_artifact;
use crate::capture::server::{ServeOptions, serve as run_serve};
use crate::capture::writer::WriterOptions;
use crate::error::{Error, Result};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; default `serve.addr` (127.0.0.1:3200).
    #[arg(long, value_name = "HOST:PORT")]
    pub addr: Option<String>,
    /// Requests that may wait for the database writer before 503.
    #[arg(long, default_value_t = WriterOptions::default().queue_capacity, value_name = "N")]
    pub queue_capacity: usize,
    /// Rows committed per transaction at most.
    #[arg(long, default_value_t = WriterOptions::default().max_batch_rows, value_name = "N")]
    pub max_batch: usize,
    /// How long a request waits for its commit before 503 "may or may not
    /// be stored" (retry with the same Idempotency-Key).
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = parse_positive_duration)]
    pub commit_wait: chrono::Duration,
    /// On a fresh installation, do not train and deploy the bootstrap model
    /// (classify answers 503 until a model is promoted); `serve.bootstrap = false`.
    #[arg(long)]
    pub no_bootstrap: bool,
}

pub async fn serve(ctx: &Context, args: ServeArgs) -> Result<ExitCode> {
    let config = ctx.config();
    let store = ctx.store().await?;
    let options = ServeOptions {
        addr: args.addr.unwrap_or_else(|| config.serve.addr.clone()),
        bootstrap: config.serve.bootstrap && !args.no_bootstrap,
        shutdown: None,
        api_token: config.serve.api_token.clone(),
        writer: WriterOptions {
            queue_capacity: args.queue_capacity,
            max_batch_rows: args.max_batch,
            commit_wait: args
                .commit_wait
                .to_std()
                .map_err(|_| Error::usage("--commit-wait must be positive"))?,
        },
        loader: load_artifact,
    };
    let summary = run_serve(store.clone(), config, options, |addr| {
        // Scripts (and the tests) read the bound address from this line.
        super::output::print_line(&format!("flywheel serve listening on http://{addr}"));
    })
    .await?;
    store.close().await;
    ctx.out.summary(&summary, || {
        format!(
            "serve stopped; {} conversation(s) captured",
            summary.captured_rows
        )
    });
    Ok(ExitCode::SUCCESS)
}
