//! `flywheel samples import`: the command line of the [`SamplesImport`] stage.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use super::Context;
use crate::error::Result;
use crate::stages::samples_import::{ImportSource, OnConflict, SamplesImport};

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
