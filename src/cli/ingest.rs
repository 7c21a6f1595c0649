//! `flywheel ingest`: the command line of the [`Ingest`] stage (backfill
//! conversation records from JSONL).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde::Serialize;

use super::Context;
use crate::capture::ingest::Ingest;
use crate::error::{Error, Result};

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
