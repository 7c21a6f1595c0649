//! `flywheel ingest FILE.jsonl|-`: backfill conversation records (the bulk
//! API's shape, one per line) in one pass with constant memory.
//!
//! All-or-nothing by default: rows are inserted in batches inside one
//! transaction while the file streams past, and the first invalid line
//! turns the run into validation only (every later line is still checked
//! so the report lists all problems) ending in a rollback. One pass means
//! stdin works as well as a file; the transaction is what keeps it atomic.
//! With `--skip-invalid` bad lines are reported and the rest committed.

use std::time::Instant;

use serde::Serialize;
use tokio::io::AsyncBufRead;

use super::record::conversation_record;
use super::user_hash::UserHasher;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::jobs::{Stage, StageContext, StageJob};
/// The line cap every JSONL reader shares.
pub use crate::lines::MAX_LINE_BYTES;
use crate::lines::{LineRead, LineReader};
use crate::progress::Reporter;
use crate::storage::Store;
use crate::storage::conversations::{ConversationImport, NewConversation};

/// Rows buffered before an INSERT round.
const BATCH_ROWS: usize = 2000;
/// Problems listed in the report (all are counted).
const MAX_REPORTED: usize = 50;

/// The ingest stage. Its fields are its options.
pub struct Ingest<R> {
    /// The JSONL records (a file, stdin).
    pub input: R,
    /// Hashes the records' phone numbers.
    pub hasher: UserHasher,
    /// Validate only; store nothing, record no run.
    pub dry_run: bool,
    /// Import the valid lines and report the invalid ones (default: all or
    /// nothing).
    pub skip_invalid: bool,
}

impl<R> Ingest<R> {
    /// All or nothing, hashing with the installation's key.
    pub fn from_config(config: &Config, input: R) -> Result<Self> {
        Ok(Self {
            input,
            hasher: UserHasher::load_or_create(&config.data_dir)?,
            dry_run: false,
            skip_invalid: false,
        })
    }
}

impl<R: AsyncBufRead + Unpin + Send> StageJob for Ingest<R> {
    const STAGE: Stage = Stage::Ingest;
    type Outcome = IngestReport;

    /// A dry run takes no lock and records nothing.
    fn recorded(&self) -> bool {
        !self.dry_run
    }

    async fn work(self, ctx: &StageContext<'_>) -> Result<IngestReport> {
        ingest(ctx.store, self, ctx.reporter).await
    }

    fn counts(report: &IngestReport) -> impl Serialize {
        RecordedCounts {
            lines: report.lines,
            valid: report.valid,
            invalid: report.invalid,
            imported: report.imported,
            dry_run: report.dry_run,
        }
    }
}

/// What `job_runs.counts` records of an ingest.
#[derive(Serialize)]
struct RecordedCounts {
    lines: u64,
    valid: u64,
    invalid: u64,
    imported: u64,
    dry_run: bool,
}

/// A refused line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineError {
    pub line: u64,
    pub field: Option<String>,
    pub message: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct IngestReport {
    pub lines: u64,
    pub valid: u64,
    pub invalid: u64,
    /// Rows committed (0 on a dry run or when refused).
    pub imported: u64,
    pub dry_run: bool,
    /// The first problems, in line order.
    pub errors: Vec<LineError>,
    pub seconds: f64,
    pub rows_per_second: f64,
}

/// Validate and (unless a dry run) import every record of the input.
/// Returns `BadInput` naming the first bad lines when a line is invalid and
/// `skip_invalid` is off; nothing is imported then.
async fn ingest<R: AsyncBufRead + Unpin>(
    store: &Store,
    options: Ingest<R>,
    reporter: &Reporter,
) -> Result<IngestReport> {
    let Ingest {
        input,
        hasher,
        dry_run,
        skip_invalid,
    } = options;
    let started = Instant::now();
    let mut report = IngestReport {
        dry_run,
        ..IngestReport::default()
    };
    // Parsing and validating (CPU) overlap with inserting (the database):
    // batches go to a writer task that owns the transaction.
    let mut writer = if dry_run {
        None
    } else {
        Some(ImportWriter::start(
            store.begin_conversation_import().await?,
        ))
    };
    let mut pending: Vec<NewConversation> = Vec::with_capacity(BATCH_ROWS);
    let mut lines = LineReader::new(input);
    reporter.phase("ingest", None);
    let now = chrono::Utc::now();
    while let Some((number, read)) = lines
        .next_line_async()
        .await
        .map_err(|err| Error::bad_input(format!("reading the input: {err}")))?
    {
        report.lines = number;
        if matches!(read, LineRead::Line(line) if line.iter().all(u8::is_ascii_whitespace)) {
            continue;
        }
        match parse_line(read, number, &hasher, now) {
            Ok(row) => {
                report.valid += 1;
                if writer.is_some() {
                    pending.push(row);
                }
            }
            Err(err) => {
                report.invalid += 1;
                if report.errors.len() < MAX_REPORTED {
                    report.errors.push(err);
                }
                if !skip_invalid && let Some(w) = writer.take() {
                    // Nothing of this run may land: stop writing, keep validating.
                    w.finish().await?.0.rollback().await?;
                    pending.clear();
                }
            }
        }
        if pending.len() >= BATCH_ROWS
            && let Some(w) = writer.as_mut()
        {
            let batch = std::mem::replace(&mut pending, Vec::with_capacity(BATCH_ROWS));
            if w.batches.send(batch).await.is_err() {
                // The writer stopped: its error says why.
                let w = writer.take().expect("checked");
                w.finish().await?;
                return Err(Error::failure("the import writer stopped unexpectedly"));
            }
        }
        if number.is_multiple_of(10_000) {
            reporter.advance(number);
            reporter.check_cancelled()?;
        }
    }
    reporter.advance(report.lines);
    if let Some(w) = writer {
        if !pending.is_empty() {
            let _ = w.batches.send(std::mem::take(&mut pending)).await;
        }
        let (import, imported) = w.finish().await?;
        import.commit().await?;
        report.imported = imported;
    }
    report.seconds = started.elapsed().as_secs_f64();
    report.rows_per_second = report.valid as f64 / report.seconds.max(1e-9);
    if report.invalid > 0 && !skip_invalid {
        let listed: Vec<String> = report
            .errors
            .iter()
            .take(10)
            .map(ToString::to_string)
            .collect();
        let verb = if dry_run {
            "would be refused"
        } else {
            "nothing was imported"
        };
        return Err(Error::bad_input(format!(
            "{} of {} lines are invalid, {verb} (use --skip-invalid to import the valid ones): {}",
            report.invalid,
            report.lines,
            listed.join("; ")
        )));
    }
    Ok(report)
}

/// The task inserting an import's batches while the next ones are parsed.
struct ImportWriter {
    batches: tokio::sync::mpsc::Sender<Vec<NewConversation>>,
    task: tokio::task::JoinHandle<Result<(ConversationImport, u64)>>,
}

impl ImportWriter {
    fn start(mut import: ConversationImport) -> Self {
        // Two batches in flight at most: memory stays bounded.
        let (batches, mut rx) = tokio::sync::mpsc::channel::<Vec<NewConversation>>(2);
        let task = tokio::spawn(async move {
            let mut imported = 0u64;
            while let Some(batch) = rx.recv().await {
                imported += import.insert(&batch).await?.len() as u64;
            }
            Ok((import, imported))
        });
        Self { batches, task }
    }

    /// Wait for every sent batch to be inserted; the open import and its row count.
    async fn finish(self) -> Result<(ConversationImport, u64)> {
        drop(self.batches);
        self.task
            .await
            .map_err(|err| Error::failure(format!("the import writer failed: {err}")))?
    }
}

fn parse_line(
    read: LineRead<'_>,
    number: u64,
    hasher: &UserHasher,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<NewConversation, LineError> {
    let error = |field: Option<String>, message: String| LineError {
        line: number,
        field,
        message,
    };
    let LineRead::Line(line) = read else {
        return Err(error(None, format!("longer than {MAX_LINE_BYTES} bytes")));
    };
    let text = std::str::from_utf8(line).map_err(|err| {
        error(
            None,
            format!("not valid UTF-8 (byte {})", err.valid_up_to()),
        )
    })?;
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|err| error(None, format!("not valid JSON: {err}")))?;
    conversation_record(&value, hasher, now)
        .map_err(|err| error(Some(err.field.clone()), err.to_string()))
}
