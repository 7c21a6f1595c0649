//! `flywheel demo`: see `crate::demo`. This face only picks console or
//! headless and prints the summary.

use std::process::ExitCode;

use clap::Args;

use super::Context;
use super::args::parse_duration;
use crate::demo::{self, DemoOptions, DemoSummary};
use crate::error::{Error, Result};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// No console: set up, let synthetic users talk to serve for --duration,
    /// fold their conversations with a daily capture, print a summary.
    #[arg(long)]
    pub headless: bool,
    /// With --headless: how long the synthetic users talk (20s, 2m…).
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub duration: chrono::Duration,
    /// Synthetic requests per second.
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Where the demo's serve listens (a busy address falls back to a free port).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:3200")]
    pub addr: String,
}

pub async fn demo(ctx: &Context, args: DemoArgs) -> Result<ExitCode> {
    if !args.headless && !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        return Err(Error::usage(
            "the console needs a terminal; run `flywheel demo --headless` instead",
        ));
    }
    // main() has already moved the configuration to the demo's data dir.
    let config = ctx.config();
    let store = ctx.store().await?;
    let options = DemoOptions {
        addr: args.addr.clone(),
        rate: args.rate,
    };
    let display = ctx.out.progress();
    let reporter = display.reporter();
    let started = demo::start(&store, config, &options, &reporter).await;
    display.finish();
    let session = started?;
    if args.headless {
        let duration = args
            .duration
            .to_std()
            .map_err(|_| Error::usage("--duration must be positive"))?;
        tracing::info!(
            addr = %session.setup.serve_addr,
            "demo running for {}s: serve on http://{}",
            duration.as_secs(),
            session.setup.serve_addr
        );
        // The demo's run time is the feature here, not synchronisation.
        tokio::time::sleep(duration).await;
    }
    let console = if args.headless {
        Ok(())
    } else {
        run_console(ctx, &store).await
    };
    // Serve and the synthetic users stop cleanly even when the console failed.
    let stopped = session.stop(&store, config).await;
    console?;
    let summary = stopped?;
    store.close().await;
    ctx.out
        .summary(&serde_json::json!({"ok": true, "demo": &summary}), || {
            human_summary(&summary)
        });
    Ok(ExitCode::SUCCESS)
}

async fn run_console(ctx: &Context, store: &crate::storage::Store) -> Result<()> {
    crate::tui::run(store.clone(), ctx.config().clone()).await
}

fn human_summary(s: &DemoSummary) -> String {
    let setup = &s.setup;
    let capture = &setup.daily_capture;
    let rate = capture
        .auto_approval_percent()
        .map(|p| format!(" ({p:.1} %)"))
        .unwrap_or_default();
    format!(
        "demo in {dir}, serve was on http://{addr}\n  {model}\n  \
         history: {history} synthetic conversations; live: {live} conversations captured from {sent} simulated requests\n  \
         daily capture of the history: {captured} conversations → {approved} auto-approved{rate}, {review} to review, \
         as {samples} new samples to review (repeated texts fold into one sample)\n  \
         review queue: {queue} samples waiting for review (what `status` counts)\n  \
         look around: flywheel --data-dir {dir} status   (or `stats capture-gaps`, `models list`)",
        dir = setup.data_dir,
        addr = setup.serve_addr,
        model = setup.bootstrap.describe(),
        history = setup.history_conversations,
        live = s.captured_live,
        sent = s.simulated.sent,
        captured = capture.captured,
        approved = capture.auto_approved,
        review = capture.needs_review,
        samples = capture.samples_to_review,
        queue = s.review_queue_samples,
    )
}
