//! `serve`, `ingest`, `stats recent` and `stats capture-gaps`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde::Serialize;

use super::Context;
use super::args::{parse_duration, parse_positive_duration, row_limit};
use crate::capture::classifier::load_artifact;
use crate::capture::gaps::{GapRules, capture_gaps};
use crate::capture::ingest::Ingest;
use crate::capture::server::{ServeOptions, serve as run_serve};
use crate::capture::simulate::{SimulateOptions, simulate as run_simulate};
use crate::capture::writer::WriterOptions;
use crate::error::{Error, Result};
use crate::storage::Timestamp;

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

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// JSONL file of conversation records, or `-` for stdin.
    #[arg(value_name = "FILE.jsonl|-")]
    pub input: PathBuf,
    /// Validate only; store nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Import the valid lines and report the invalid ones (default: all or nothing).
    #[arg(long)]
    pub skip_invalid: bool,
}

pub async fn ingest(ctx: &Context, args: IngestArgs) -> Result<ExitCode> {
    let input: Box<dyn tokio::io::AsyncRead + Unpin + Send> = if args.input.as_os_str() == "-" {
        Box::new(tokio::io::stdin())
    } else {
        Box::new(tokio::fs::File::open(&args.input).await.map_err(|err| {
            Error::bad_input(format!("cannot open {}: {err}", args.input.display()))
        })?)
    };
    let reader = tokio::io::BufReader::with_capacity(256 * 1024, input);
    let stage = Ingest {
        dry_run: args.dry_run,
        skip_invalid: args.skip_invalid,
        ..Ingest::from_config(ctx.config(), reader)?
    };
    let report = ctx.run_stage(stage).await?;
    #[derive(Serialize)]
    struct Summary<'a> {
        ok: bool,
        #[serde(flatten)]
        report: &'a crate::capture::ingest::IngestReport,
    }
    ctx.out.summary(
        &Summary {
            ok: true,
            report: &report,
        },
        || {
            let mut text = format!(
                "{} line(s): {} valid, {} invalid; {} imported{} in {:.2}s ({:.0} rows/s)",
                report.lines,
                report.valid,
                report.invalid,
                report.imported,
                if report.dry_run { " (dry run)" } else { "" },
                report.seconds,
                report.rows_per_second
            );
            for err in &report.errors {
                let _ = write!(text, "\n  skipped {err}");
            }
            text
        },
    );
    Ok(ExitCode::SUCCESS)
}

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

#[derive(Debug, Subcommand)]
pub enum StatsCommand {
    /// The latest conversations.
    Recent {
        #[arg(long, default_value_t = 20, value_parser = row_limit())]
        limit: i64,
    },
    /// Silences in capture and hours far below their usual volume.
    CaptureGaps {
        /// Window to analyse: 90m, 24h, 7d…
        #[arg(long, default_value = "7d", value_parser = parse_duration)]
        since: chrono::Duration,
    },
}

pub async fn stats(ctx: &Context, command: StatsCommand) -> Result<ExitCode> {
    let store = ctx.store().await?;
    match command {
        StatsCommand::Recent { limit } => {
            let rows = store.recent_conversations(limit).await?;
            ctx.out.summary(
                &serde_json::json!({ "ok": true, "conversations": rows }),
                || {
                    let mut text = String::new();
                    for r in &rows {
                        let _ = writeln!(
                            text,
                            "{}  #{:<8} {:<24} {:>5} {:<10} {}",
                            r.created_at,
                            r.id,
                            r.nlu_intent.as_deref().unwrap_or("-"),
                            r.nlu_confidence.map_or("-".into(), |c| format!("{c:.2}")),
                            r.language.as_deref().unwrap_or("-"),
                            r.user_message.chars().take(60).collect::<String>()
                        );
                    }
                    if rows.is_empty() {
                        text.push_str("no conversations captured yet");
                    }
                    text
                },
            );
        }
        StatsCommand::CaptureGaps { since } => {
            let since = Timestamp::from(chrono::Utc::now() - since);
            let rules = GapRules::with_quiet_minutes(ctx.config().health.quiet_period_minutes);
            let report = capture_gaps(&store, since, rules).await?;
            let value = serde_json::json!({ "ok": true, "report": &report });
            ctx.out.summary(&value, || {
                let mut text = format!(
                    "{} captured since {}; last capture {}\n",
                    report.captured,
                    report.since,
                    report
                        .last_capture_at
                        .map_or("never".into(), |t| t.to_string())
                );
                if report.gaps.is_empty() {
                    let _ = writeln!(
                        text,
                        "no gap longer than {} min",
                        report.quiet_period_minutes
                    );
                }
                for g in &report.gaps {
                    let _ = writeln!(
                        text,
                        "gap  {} → {}  {} min{}",
                        g.start,
                        g.end,
                        g.minutes,
                        if g.ongoing { " (ongoing)" } else { "" }
                    );
                }
                for l in &report.low_hours {
                    let _ = writeln!(
                        text,
                        "low  {}  {} captured, usually {:.0}",
                        l.hour, l.captured, l.usual
                    );
                }
                text
            });
        }
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
