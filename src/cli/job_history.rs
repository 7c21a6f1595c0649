//! `flywheel jobs`: the stage-run history (`job_runs`) headless, so what
//! cron did needs no grep through its mail or logs.

use std::fmt::Write as _;
use std::process::ExitCode;

use chrono::{Duration, Utc};
use clap::Args;
use serde_json::{Value, json};

use super::Context;
use super::args::{parse_duration, row_limit};
use crate::domain::{JobStatus, Stage};
use crate::error::Result;
use crate::run_words::{counts_in_words, took};
use crate::storage::Timestamp;
use crate::storage::jobs::{JobRun, JobRunFilter};

#[derive(Debug, Args)]
pub struct JobsArgs {
    /// Only this stage's runs (daily-capture, label-studio-sync, weekly-training, …).
    #[arg(long, value_parser = parse_stage)]
    stage: Option<Stage>,
    /// How far back: 24h, 7d, 4w…
    #[arg(long, default_value = "7d", value_parser = parse_duration)]
    since: Duration,
    /// Only runs that failed or crashed.
    #[arg(long)]
    failed: bool,
    /// Most runs listed, newest first.
    #[arg(long, default_value_t = 200, value_parser = row_limit())]
    limit: i64,
}

fn parse_stage(text: &str) -> std::result::Result<Stage, String> {
    Stage::parse(text).ok_or_else(|| {
        let known: Vec<&str> = Stage::ALL.iter().map(|s| s.as_str()).collect();
        format!("unknown stage `{text}`; one of {}", known.join(", "))
    })
}

pub async fn jobs(ctx: &Context, args: JobsArgs) -> Result<ExitCode> {
    let store = ctx.existing_store().await?;
    let now = Utc::now();
    let filter = JobRunFilter {
        since: Timestamp(now - args.since),
        stage: args.stage,
        failed: args.failed,
        limit: args.limit,
    };
    let runs = store.job_run_history(&filter).await;
    store.close().await;
    let runs = runs?;
    let tally = Tally::of(&runs);
    let json_runs: Vec<Value> = runs.iter().map(|r| run_json(r, now)).collect();
    ctx.out.summary(
        &json!({
            "ok": true,
            "since": filter.since,
            "stage": filter.stage,
            "failed_only": filter.failed,
            "runs": json_runs,
            "succeeded": tally.succeeded,
            "failed": tally.failed,
            "running": tally.running,
            "cancelled": tally.cancelled,
        }),
        || render(&runs, &filter, &tally, now),
    );
    Ok(ExitCode::SUCCESS)
}

/// One run for `--json`: the row, its counts as an object (not text in
/// text), its duration in seconds and both in words.
fn run_json(run: &JobRun, now: chrono::DateTime<Utc>) -> Value {
    let counts = run
        .counts
        .as_deref()
        .map(|c| serde_json::from_str::<Value>(c).unwrap_or_else(|_| Value::String(c.into())));
    let seconds = run
        .finished_at
        .map(|f| (f.0 - run.started_at.0).num_milliseconds() as f64 / 1000.0);
    json!({
        "id": run.id,
        "stage": run.stage,
        "trigger": run.trigger,
        "status": run.status,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "duration_seconds": seconds,
        "took": took(run.started_at, run.finished_at, now),
        "counts": counts,
        "summary": run.counts.as_deref().map(counts_in_words),
        "error": run.error,
        "host": run.host,
        "pid": run.pid,
    })
}

#[derive(Default)]
struct Tally {
    succeeded: usize,
    /// Failed or crashed.
    failed: usize,
    running: usize,
    cancelled: usize,
}

impl Tally {
    fn of(runs: &[JobRun]) -> Self {
        let mut t = Tally::default();
        for r in runs {
            match r.status {
                JobStatus::Succeeded => t.succeeded += 1,
                JobStatus::Failed | JobStatus::Crashed => t.failed += 1,
                JobStatus::Running => t.running += 1,
                JobStatus::Cancelled => t.cancelled += 1,
            }
        }
        t
    }
}

fn render(
    runs: &[JobRun],
    filter: &JobRunFilter,
    tally: &Tally,
    now: chrono::DateTime<Utc>,
) -> String {
    let what = match (filter.failed, filter.stage) {
        (false, None) => "runs".to_string(),
        (false, Some(stage)) => format!("runs of {stage}"),
        (true, None) => "failed runs".to_string(),
        (true, Some(stage)) => format!("failed runs of {stage}"),
    };
    let since = filter.since.0.format("%Y-%m-%d %H:%M UTC");
    if runs.is_empty() {
        return format!("no {what} since {since}\n");
    }
    let mut out = format!(
        "{:<16} {:<17} {:<4} {:<9} {:>9}  {}\n",
        "started (UTC)", "stage", "by", "status", "took", "counts / error"
    );
    for r in runs {
        let detail = match (&r.error, &r.counts) {
            (Some(error), _) => error.lines().next().unwrap_or_default().to_string(),
            (None, Some(counts)) => counts_in_words(counts),
            (None, None) => String::new(),
        };
        let _ = writeln!(
            out,
            "{:<16} {:<17} {:<4} {:<9} {:>9}  {detail}",
            r.started_at.0.format("%Y-%m-%d %H:%M"),
            r.stage.as_str(),
            r.trigger.as_str(),
            r.status.as_str(),
            took(r.started_at, r.finished_at, now),
        );
    }
    let parts: Vec<String> = [
        (tally.succeeded, "succeeded"),
        (tally.failed, "failed or crashed"),
        (tally.running, "running"),
        (tally.cancelled, "cancelled"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    let shown = if runs.len() as i64 == filter.limit {
        format!(" (the newest {}; --limit shows more)", runs.len())
    } else {
        String::new()
    };
    let what = if runs.len() == 1 {
        what.replacen("runs", "run", 1)
    } else {
        what
    };
    let _ = writeln!(
        out,
        "{} {what} since {since}{shown}: {}",
        runs.len(),
        parts.join(", ")
    );
    out
}
