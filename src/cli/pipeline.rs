//! `daily-capture`, `samples import` and `export`: thin callers of `crate::stages`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{Duration, NaiveDate};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use super::Context;
use super::args::parse_positive_duration;
use crate::error::Result;
use crate::stages::daily_capture::{DailyCapture, Window};
use crate::stages::daily_report::DailyReport;
use crate::stages::export::{Export, Split};
use crate::stages::samples_import::{ImportSource, OnConflict, SamplesImport};
use crate::storage::export::ExportFilter;

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

#[derive(Debug, Subcommand)]
pub enum SamplesCommand {
    /// Labelled JSONL (`{"text", "intent", "language"?}` per line) → approved samples.
    Import(SamplesImportArgs),
}

#[derive(Debug, Args)]
pub struct SamplesImportArgs {
    /// The JSONL file.
    pub file: PathBuf,
    /// Recorded as the samples' source.
    #[arg(long, value_enum, default_value_t = SourceArg::Import)]
    pub source: SourceArg,
    /// Where a line's label contradicts one a human review or an earlier
    /// import gave the same text: refuse the file (default), replace the
    /// stored label, or keep it. Labels the model gave are always replaced.
    #[arg(long, value_enum, default_value_t = ConflictArg::Refuse)]
    pub on_conflict: ConflictArg,
}

/// `--source`: the CLI's spelling of [`ImportSource`].
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SourceArg {
    Synthetic,
    Import,
}

impl From<SourceArg> for ImportSource {
    fn from(arg: SourceArg) -> Self {
        match arg {
            SourceArg::Synthetic => ImportSource::Synthetic,
            SourceArg::Import => ImportSource::Import,
        }
    }
}

/// `--on-conflict`: the CLI's spelling of [`OnConflict`].
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ConflictArg {
    Refuse,
    Replace,
    Keep,
}

impl From<ConflictArg> for OnConflict {
    fn from(arg: ConflictArg) -> Self {
        match arg {
            ConflictArg::Refuse => OnConflict::Refuse,
            ConflictArg::Replace => OnConflict::Replace,
            ConflictArg::Keep => OnConflict::Keep,
        }
    }
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
        }),
        || render_capture(&outcome.report, outcome.report_path.as_deref()),
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

pub async fn samples(ctx: &Context, command: SamplesCommand) -> Result<ExitCode> {
    match command {
        SamplesCommand::Import(args) => samples_import(ctx, args).await,
    }
}

async fn samples_import(ctx: &Context, args: SamplesImportArgs) -> Result<ExitCode> {
    let stage = SamplesImport {
        source: args.source.into(),
        on_conflict: args.on_conflict.into(),
        ..SamplesImport::new(args.file)
    };
    let summary = ctx.run_stage(stage).await?;
    ctx.out.summary(&json!({ "ok": true, "import": summary }), || {
        let mut out = format!(
            "{}: {} line(s) → {} new {} sample(s), {} folded into existing samples, {} repeated line(s)\n",
            summary.file.display(),
            summary.lines,
            summary.created,
            summary.source,
            summary.folded_into_existing,
            summary.duplicates_in_file
        );
        let relabelled = [
            (summary.corrected, "model label(s) corrected"),
            (summary.confirmed, "model label(s) confirmed"),
            (summary.conflicts_replaced, "conflicting label(s) replaced"),
            (summary.conflicts_kept, "conflicting label(s) kept"),
        ];
        let relabelled: Vec<String> = relabelled
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect();
        if !relabelled.is_empty() {
            let _ = writeln!(out, "  of the folded: {}", relabelled.join(", "));
        }
        for (intent, n) in &summary.per_intent {
            let _ = writeln!(out, "  {intent:<30} {n}");
        }
        out
    });
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// JSONL file to write, or `-` for stdout.
    #[arg(long, short, value_name = "FILE", default_value = "-")]
    pub output: PathBuf,
    /// At most this many samples.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// Only these languages (comma-separated: en,hinglish).
    #[arg(long, value_delimiter = ',', value_name = "LANGS")]
    pub languages: Vec<String>,
    /// Leave out samples whose confidence is below this (samples without one are kept).
    #[arg(long, value_name = "X")]
    pub min_confidence: Option<f64>,
    /// The stable split by hash of sample id (config `training.test_split_percent`).
    #[arg(long, value_enum, default_value_t = SplitArg::All)]
    pub split: SplitArg,
    /// Only samples no training run has used yet.
    #[arg(long)]
    pub unused_only: bool,
}

/// `--split`: the CLI's spelling of [`Split`].
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SplitArg {
    Train,
    Test,
    All,
}

impl From<SplitArg> for Split {
    fn from(arg: SplitArg) -> Self {
        match arg {
            SplitArg::Train => Split::Train,
            SplitArg::Test => Split::Test,
            SplitArg::All => Split::All,
        }
    }
}

pub async fn export(ctx: &Context, args: ExportArgs) -> Result<ExitCode> {
    let to_stdout = args.output.as_os_str() == "-";
    let mut stage = Export::from_config(ctx.config());
    stage.output = (!to_stdout).then_some(args.output);
    stage.limit = args.limit;
    stage.filter = ExportFilter {
        languages: args
            .languages
            .iter()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect(),
        min_confidence: args.min_confidence,
        unused_only: args.unused_only,
    };
    stage.split = args.split.into();
    let summary = ctx.run_stage(stage).await?;
    let human = || {
        let mut out = format!(
            "exported {} sample(s) ({:?} split, test share {} %) to {}\n",
            summary.exported, summary.split, summary.test_split_percent, summary.output
        );
        for (intent, n) in &summary.per_intent {
            let _ = writeln!(out, "  {intent:<30} {n}");
        }
        let languages: Vec<String> = summary
            .per_language
            .iter()
            .map(|(l, n)| format!("{l} {n}"))
            .collect();
        let _ = writeln!(out, "  languages: {}", languages.join(", "));
        for w in &summary.warnings {
            let _ = writeln!(out, "warning: {w}");
        }
        out
    };
    let value = json!({ "ok": true, "export": summary });
    if to_stdout {
        // stdout carries the samples: the summary goes to stderr.
        if ctx.out.json {
            eprintln!("{value}");
        } else if !ctx.out.quiet {
            eprint!("{}", human());
        }
    } else {
        ctx.out.summary(&value, human);
    }
    Ok(ExitCode::SUCCESS)
}
