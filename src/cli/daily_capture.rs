//! `flywheel daily-capture`: the command line of the [`DailyCapture`] stage.

use std::fmt::Write as _;
use std::process::ExitCode;

use chrono::{Duration, NaiveDate};
use clap::Args;
use serde_json::json;

use super::Context;
use super::args::parse_positive_duration;
use crate::error::Result;
use crate::stages::daily_capture::{DailyCapture, Window};
use crate::stages::daily_report::DailyReport;

#[derive(Debug, Args)]
pub struct DailyCaptureArgs {
    /// Look back this far from now: 24h, 90m, 7d, 2w [default: 24h].
    #[arg(long, value_name = "SPAN", value_parser = parse_positive_duration, conflicts_with = "date")]
    pub since: Option<Duration>,
    /// Capture one UTC calendar day instead.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub date: Option<NaiveDate>,
    /// Print what would happen; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Conversations per transaction [default: 5000].
    #[arg(long, hide = true)]
    pub batch_size: Option<usize>,
}

pub async fn daily_capture(ctx: &Context, args: DailyCaptureArgs) -> Result<ExitCode> {
    let mut stage = DailyCapture {
        dry_run: args.dry_run,
        ..DailyCapture::default()
    };
    match (args.date, args.since) {
        (Some(date), _) => stage.window = Window::Date(date),
        (None, Some(since)) => stage.window = Window::Since(since),
        (None, None) => {}
    }
    if let Some(batch_size) = args.batch_size {
        stage.batch_size = batch_size.max(1);
    }
    let outcome = ctx.run_stage(stage).await?;
    ctx.out.summary(
        &json!({
            "ok": true,
            "dry_run": outcome.report.dry_run,
            "report_path": outcome.report_path,
            "report": outcome.report,
            "audits_drawn": outcome.audits_drawn,
            "rejudged": outcome.rejudged,
        }),
        || {
            let mut text = render_capture(&outcome.report, outcome.report_path.as_deref());
            if !outcome.report.dry_run {
                text.push_str(&format!(
                    "  {} conversation(s) drawn for audit\n",
                    outcome.audits_drawn
                ));
                if let Some(version) = outcome
                    .rejudged
                    .version
                    .as_deref()
                    .filter(|_| outcome.rejudged.judged > 0)
                {
                    text.push_str(&format!(
                        "  {} sample(s) waiting for review re-judged by {version}\n",
                        outcome.rejudged.judged
                    ));
                }
            }
            text
        },
    );
    Ok(ExitCode::SUCCESS)
}

fn render_capture(r: &DailyReport, path: Option<&std::path::Path>) -> String {
    let mut out = String::new();
    let would = if r.dry_run {
        "dry run, would capture"
    } else {
        "captured"
    };
    let _ = writeln!(
        out,
        "daily-capture {}: {would} {} conversation(s) from {} to {}",
        r.date, r.counts.captured, r.window_start, r.window_end
    );
    let priorities: Vec<String> = r
        .needs_review_by_priority
        .iter()
        .map(|(p, n)| format!("priority {p}: {n}"))
        .collect();
    let _ = writeln!(
        out,
        "  {} auto-approved{}, {} need review ({}), {} already reviewed, {} ignored",
        r.counts.auto_approved,
        r.auto_approval_rate
            .map(|rate| format!(" ({rate:.1} %)"))
            .unwrap_or_default(),
        r.counts.needs_review,
        if priorities.is_empty() {
            "none".to_string()
        } else {
            priorities.join(", ")
        },
        r.counts.already_reviewed,
        r.counts.ignored
    );
    let _ = writeln!(
        out,
        "  samples: {} new approved, {} new to review, {} duplicate(s) folded",
        r.new_samples.approved, r.new_samples.needs_review, r.counts.duplicates_folded
    );
    let _ = writeln!(
        out,
        "  approved unused: {}{}",
        r.approved_unused,
        if r.ready_for_training {
            format!(
                " — ready for training (threshold {})",
                r.ready_for_training_threshold
            )
        } else {
            String::new()
        }
    );
    match path {
        Some(path) => {
            let _ = writeln!(out, "  report: {}", path.display());
        }
        None => {
            let _ = writeln!(out, "  dry run: nothing was written");
        }
    }
    out
}
