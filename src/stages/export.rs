//! `flywheel export`: approved samples → JSONL (DESIGN §5 format plus
//! `sample_id`, `source`, `occurrences`), read a page at a time in id order
//! (constant memory, deterministic output), with the stable test split
//! (gold samples only: [`crate::gold`]).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::gold;
use crate::jobs::{Stage, StageContext, StageJob};
use crate::lang::Language;
use crate::privacy::Redactor;
use crate::progress::Reporter;
use crate::storage::Store;
use crate::storage::samples::{ExportFilter, ExportRow};

/// Samples read per query.
const PAGE: i64 = 10_000;
/// An intent with fewer exported samples than this gets a warning: too few
/// to learn or to measure.
pub const MIN_SAMPLES_PER_INTENT: u64 = 10;

/// Which samples of the stable split an export writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Test,
    #[default]
    All,
}

/// The export stage. Its fields are its options.
#[derive(Debug, Clone)]
pub struct Export {
    /// `None` writes to stdout.
    pub output: Option<PathBuf>,
    pub limit: Option<u64>,
    pub filter: ExportFilter,
    pub split: Split,
    pub test_split_percent: u32,
    /// Phone numbers, e-mails and long digit runs in texts (`privacy.redact`).
    pub redactor: Redactor,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportSummary {
    /// The file written, or "-" for stdout.
    pub output: String,
    pub exported: u64,
    pub split: Split,
    pub test_split_percent: u32,
    pub per_intent: BTreeMap<String, u64>,
    pub per_language: BTreeMap<String, u64>,
    pub warnings: Vec<String>,
}

#[derive(Serialize)]
struct Line<'a> {
    text: Cow<'a, str>,
    intent: &'a str,
    language: Option<&'a str>,
    confidence: Option<f64>,
    source: &'a str,
    sample_id: i64,
    occurrences: i32,
}

impl Export {
    /// Every approved sample to stdout, with the configured test split and
    /// redaction.
    pub fn from_config(config: &Config) -> Self {
        Self {
            output: None,
            limit: None,
            filter: ExportFilter::default(),
            split: Split::All,
            test_split_percent: config.training.test_split_percent,
            redactor: Redactor::new(&config.privacy),
        }
    }
}

/// What `job_runs.counts` records of an export.
#[derive(Serialize)]
struct RecordedCounts {
    exported: u64,
    intents: usize,
}

impl StageJob for Export {
    const STAGE: Stage = Stage::Export;
    type Outcome = ExportSummary;

    async fn work(self, ctx: &StageContext<'_>) -> Result<ExportSummary> {
        export(ctx.store, &self, ctx.reporter).await
    }

    fn counts(summary: &ExportSummary) -> impl Serialize {
        RecordedCounts {
            exported: summary.exported,
            intents: summary.per_intent.len(),
        }
    }
}

async fn export(store: &Store, options: &Export, reporter: &Reporter) -> Result<ExportSummary> {
    reporter.phase("export", options.limit);
    let mut summary = ExportSummary {
        output: options
            .output
            .as_ref()
            .map_or_else(|| "-".into(), |p| p.display().to_string()),
        exported: 0,
        split: options.split,
        test_split_percent: options.test_split_percent,
        per_intent: BTreeMap::new(),
        per_language: BTreeMap::new(),
        warnings: Vec::new(),
    };
    // A file is written beside its final name and renamed at the end, so a
    // failed export never leaves a truncated training file behind.
    // Removed again on any error or cancel (the guard's drop).
    let mut tmp = options.output.as_deref().map(|output| PartialFile {
        path: temp_path(output),
        renamed: false,
    });
    // `Send`, so the console can run an export on any of its tasks.
    let mut out: Box<dyn Write + Send> = match &tmp {
        Some(tmp) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(&tmp.path)
                .map_err(|err| Error::failure(format!("creating {}: {err}", tmp.path.display())))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    let target = options
        .output
        .as_ref()
        .map_or_else(|| "stdout".to_string(), |p| p.display().to_string());
    let write_err =
        |err: std::io::Error| Error::writing(format_args!("the export to {target}"), &err);
    let filter = languages_as_stored(&options.filter, &mut summary.warnings);
    let mut after = 0i64;
    'pages: loop {
        reporter.check_cancelled()?;
        let page = store.approved_samples_page(&filter, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for row in &page {
            if options.limit.is_some_and(|limit| summary.exported >= limit) {
                break 'pages;
            }
            if !wanted(row, options) {
                continue;
            }
            serde_json::to_writer(&mut out, &line(row, &options.redactor))
                .map_err(|e| write_err(e.into()))?;
            out.write_all(b"\n").map_err(write_err)?;
            summary.exported += 1;
            *summary.per_intent.entry(row.intent.clone()).or_default() += 1;
            let language = row.language.clone().unwrap_or_else(|| "unknown".into());
            *summary.per_language.entry(language).or_default() += 1;
        }
        reporter.advance(summary.exported);
    }
    out.flush().map_err(write_err)?;
    drop(out);
    if let (Some(tmp), Some(output)) = (&mut tmp, &options.output) {
        std::fs::rename(&tmp.path, output)
            .map_err(|err| Error::failure(format!("writing {}: {err}", output.display())))?;
        tmp.renamed = true;
    }
    for (intent, n) in &summary.per_intent {
        if *n < MIN_SAMPLES_PER_INTENT {
            let warning = format!(
                "intent {intent} has only {n} sample(s) (fewer than {MIN_SAMPLES_PER_INTENT}); the model will barely learn it"
            );
            tracing::warn!("{warning}");
            summary.warnings.push(warning);
        }
    }
    Ok(summary)
}

/// The filter with its languages spelled as stored ("EN" is "en"). A code
/// that is no language matches no sample: warned about, not silently
/// exporting nothing.
fn languages_as_stored(filter: &ExportFilter, warnings: &mut Vec<String>) -> ExportFilter {
    let mut filter = filter.clone();
    for code in &mut filter.languages {
        match Language::parse(code) {
            Some(language) => *code = language.as_str().to_string(),
            None => {
                let warning = format!(
                    "unknown language \"{code}\" in the language filter (expected en, hinglish, hi, mr or other): no sample has it"
                );
                tracing::warn!("{warning}");
                warnings.push(warning);
            }
        }
    }
    filter
}

fn wanted(row: &ExportRow, options: &Export) -> bool {
    match options.split {
        Split::All => true,
        Split::Test => gold::judges(row.id, row.source, options.test_split_percent),
        Split::Train => !gold::judges(row.id, row.source, options.test_split_percent),
    }
}

fn line<'a>(row: &'a ExportRow, redactor: &Redactor) -> Line<'a> {
    Line {
        text: redactor.redact(&row.text),
        intent: &row.intent,
        language: row.language.as_deref(),
        confidence: row.confidence,
        source: row.source.as_str(),
        sample_id: row.id,
        occurrences: row.occurrences,
    }
}

/// The `.partial` file being written; deleted unless renamed into place.
struct PartialFile {
    path: PathBuf,
    renamed: bool,
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.renamed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn temp_path(output: &Path) -> PathBuf {
    let mut name = output.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    output.with_file_name(name)
}
