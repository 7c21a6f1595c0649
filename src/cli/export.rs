//! `flywheel export`: the command line of the [`Export`] stage.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use serde_json::json;

use super::Context;
use crate::error::Result;
use crate::stages::export::{Export, Split};
use crate::storage::samples::ExportFilter;

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
