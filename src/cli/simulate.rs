//! `flywheel simulate`: synthetic users talking to a running `serve`.

use std::process::ExitCode;

use clap::Args;

use super::Context;
use super::args::parse_duration;
use crate::capture::simulate::{SimulateOptions, simulate as run_simulate};
use crate::error::{Error, Result};

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Requests per second (three times that during the bursts).
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// How long to run: 60s, 10m…
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub duration: chrono::Duration,
    /// Base URL of `flywheel serve`; default http://<serve.addr>.
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// Inject a capture outage of this length a third of the way in (e.g. 5m).
    #[arg(long, value_parser = parse_duration)]
    pub gap: Option<chrono::Duration>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

pub async fn simulate(ctx: &Context, args: SimulateArgs) -> Result<ExitCode> {
    let config = ctx.config();
    let to_std = |d: chrono::Duration| {
        d.to_std()
            .map_err(|_| Error::usage("durations must be positive"))
    };
    let options = SimulateOptions {
        target: args
            .target
            .unwrap_or_else(|| format!("http://{}", config.serve.addr)),
        token: config
            .serve
            .api_token
            .as_ref()
            .map(|t| t.expose().to_string()),
        rate: args.rate,
        duration: to_std(args.duration)?,
        gap: args.gap.map(to_std).transpose()?,
        seed: args.seed,
    };
    let display = ctx.out.progress();
    let reporter = display.reporter();
    let result = run_simulate(options, &reporter).await;
    display.finish();
    let report = result?;
    ctx.out.summary(
        &serde_json::json!({ "ok": true, "report": &report }),
        || {
            format!(
                "sent {} in {:.0}s: {} ok, {} refused (503), {} failed{}",
                report.sent,
                report.seconds,
                report.ok,
                report.refused,
                report.failed,
                report
                    .gap_seconds
                    .map_or(String::new(), |g| format!("; injected a {g:.0}s gap"))
            )
        },
    );
    Ok(ExitCode::SUCCESS)
}
