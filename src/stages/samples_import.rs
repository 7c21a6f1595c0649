//! `flywheel samples import`: labelled data a team already has (or the
//! shipped synthetic seed set) → approved samples, folded by normalised text
//! like captured ones. The whole file is validated first; then it goes in as
//! one transaction, so a bad line means nothing was imported.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use super::jsonl::{self, Line};
use crate::dataset::intent_name;
use crate::domain::{Provenance, ReviewStatus};
use crate::error::{Error, Result};
use crate::jobs::{Stage, StageContext, StageJob};
use crate::lang::Language;
use crate::progress::Reporter;
use crate::storage::Store;
use crate::storage::samples::{NewSample, Relabel, StoredLabel};
use crate::text::{normalize_for_dedup, quoted};

/// Longest text accepted, in characters: utterances, not documents.
pub const MAX_TEXT_CHARS: usize = 2000;
/// Errors listed before "… and N more".
const MAX_REPORTED_ERRORS: usize = 20;

/// The provenance an import records on its samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ImportSource {
    Synthetic,
    #[default]
    Import,
}

impl ImportSource {
    pub fn as_str(self) -> &'static str {
        self.provenance().as_str()
    }

    /// What the imported samples record as their label's origin.
    pub fn provenance(self) -> Provenance {
        match self {
            ImportSource::Synthetic => Provenance::Synthetic,
            ImportSource::Import => Provenance::Import,
        }
    }
}

/// What an import does where a text is already stored with another label
/// by a human review or an earlier import (labels a model or the synthetic
/// seed set gave are always replaced by an import's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnConflict {
    /// Refuse the whole file (exit 65), naming each line and stored label.
    #[default]
    Refuse,
    /// The file's label wins; the stored one is kept as `corrected_from`.
    Replace,
    /// The stored label stays; the line only adds an occurrence.
    Keep,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImportSummary {
    pub file: PathBuf,
    pub source: &'static str,
    /// Sample lines read (blank lines not counted).
    pub lines: u64,
    /// Distinct normalised texts.
    pub samples: u64,
    pub created: u64,
    /// Texts we already held: their occurrences went up instead.
    pub folded_into_existing: u64,
    /// Of those, labels a model (or the synthetic seed set) gave that the
    /// import replaced with another intent.
    pub corrected: u64,
    /// Of those, model labels the import confirmed (same intent, now
    /// labelled data).
    pub confirmed: u64,
    /// Conflicts with a human or imported label: replaced (`--on-conflict
    /// replace`) or kept (`--on-conflict keep`).
    pub conflicts_replaced: u64,
    pub conflicts_kept: u64,
    /// Lines that repeated an earlier line of the file.
    pub duplicates_in_file: u64,
    pub per_intent: BTreeMap<String, u64>,
    pub per_language: BTreeMap<String, u64>,
}

/// The samples-import stage. Its fields are its options.
#[derive(Debug, Clone)]
pub struct SamplesImport {
    /// The JSONL file.
    pub file: PathBuf,
    pub source: ImportSource,
    pub on_conflict: OnConflict,
}

impl SamplesImport {
    /// `file` as labelled data, refused where it contradicts a stored label.
    pub fn new(file: impl Into<PathBuf>) -> Self {
        Self {
            file: file.into(),
            source: ImportSource::default(),
            on_conflict: OnConflict::default(),
        }
    }
}

/// What `job_runs.counts` records of an import.
#[derive(Serialize)]
struct RecordedCounts {
    lines: u64,
    created: u64,
    folded_into_existing: u64,
    duplicates_in_file: u64,
    corrected: u64,
    confirmed: u64,
    conflicts_replaced: u64,
    conflicts_kept: u64,
}

impl StageJob for SamplesImport {
    const STAGE: Stage = Stage::SamplesImport;
    type Outcome = ImportSummary;

    async fn work(self, ctx: &StageContext<'_>) -> Result<ImportSummary> {
        ctx.reporter.phase("validate", None);
        let validated = validate(&self.file, self.source)?;
        store_samples(ctx.store, validated, self.on_conflict, ctx.reporter).await
    }

    fn counts(s: &ImportSummary) -> impl Serialize {
        RecordedCounts {
            lines: s.lines,
            created: s.created,
            folded_into_existing: s.folded_into_existing,
            duplicates_in_file: s.duplicates_in_file,
            corrected: s.corrected,
            confirmed: s.confirmed,
            conflicts_replaced: s.conflicts_replaced,
            conflicts_kept: s.conflicts_kept,
        }
    }
}

async fn store_samples(
    store: &Store,
    validated: Validated,
    on_conflict: OnConflict,
    reporter: &Reporter,
) -> Result<ImportSummary> {
    let Validated {
        samples,
        first_lines,
        mut summary,
    } = validated;
    reporter.phase("import", Some(samples.len() as u64));
    let mut outcome = Weighed::default();
    let stored = store
        .import_samples(&samples, |labels| {
            outcome = weigh(&samples, &first_lines, labels, on_conflict, &summary.file)?;
            Ok(std::mem::take(&mut outcome.relabels))
        })
        .await?;
    reporter.advance(samples.len() as u64);
    summary.created = stored.iter().filter(|s| s.created).count() as u64;
    summary.folded_into_existing = summary.samples - summary.created;
    summary.corrected = outcome.corrected;
    summary.confirmed = outcome.confirmed;
    summary.conflicts_replaced = outcome.conflicts_replaced;
    summary.conflicts_kept = outcome.conflicts_kept;
    Ok(summary)
}

/// How far a label is trusted: a human's review over labelled data a team
/// imports over what a model (or the synthetic seed set) said.
fn trust(source: Provenance) -> u8 {
    match source {
        Provenance::Human => 2,
        Provenance::Import => 1,
        Provenance::Auto | Provenance::Synthetic => 0,
    }
}

/// What an import does to the labels already stored.
#[derive(Debug, Default)]
struct Weighed {
    relabels: Vec<Relabel>,
    corrected: u64,
    confirmed: u64,
    conflicts_replaced: u64,
    conflicts_kept: u64,
}

/// Weigh each sample of the file against the stored label of its text: a
/// more trusted label replaces (or confirms) a less trusted one; a label
/// that disagrees with one trusted as much or more (or with a human's
/// reject) is a conflict, settled by `on_conflict`.
fn weigh(
    samples: &[NewSample],
    first_lines: &[usize],
    stored: &[StoredLabel],
    on_conflict: OnConflict,
    file: &Path,
) -> Result<Weighed> {
    let stored: HashMap<&str, &StoredLabel> = stored
        .iter()
        .map(|s| (s.normalized_text.as_str(), s))
        .collect();
    let mut out = Weighed::default();
    let mut conflicts = Vec::new();
    for (sample, line) in samples.iter().zip(first_lines) {
        let Some(old) = stored.get(sample.normalized_text.as_str()) else {
            continue;
        };
        let rejected = old.review_status == ReviewStatus::Rejected;
        let same = old.intent == sample.intent && !rejected;
        let relabel = |corrected_from: Option<String>| Relabel {
            id: old.id,
            intent: sample.intent.clone(),
            corrected_from,
        };
        if trust(sample.source) > trust(old.source) && !rejected {
            if same {
                out.confirmed += 1;
                out.relabels.push(relabel(None));
            } else {
                out.corrected += 1;
                out.relabels.push(relabel(Some(old.intent.clone())));
            }
            continue;
        }
        if same {
            continue;
        }
        match on_conflict {
            OnConflict::Refuse => conflicts.push(format!(
                "{}:{line}: {:?} is labelled {:?} here, but {} {}",
                file.display(),
                sample.text,
                sample.intent,
                if rejected {
                    "a human review rejected it".to_string()
                } else {
                    format!("is stored as {:?} ({})", old.intent, provenance(old.source))
                },
                if old.review_status == ReviewStatus::Approved || rejected {
                    ""
                } else {
                    "(waiting for review)"
                }
            )),
            OnConflict::Replace => {
                out.conflicts_replaced += 1;
                out.relabels.push(relabel(Some(old.intent.clone())));
            }
            OnConflict::Keep => out.conflicts_kept += 1,
        }
    }
    if conflicts.is_empty() {
        return Ok(out);
    }
    let total = conflicts.len();
    let mut message = format!(
        "{}: {total} line(s) contradict a stored label; nothing was imported \
         (`--on-conflict replace` to take the file's labels, `--on-conflict keep` to keep the stored ones):\n  {}",
        file.display(),
        conflicts[..total.min(MAX_REPORTED_ERRORS)].join("\n  ")
    );
    if total > MAX_REPORTED_ERRORS {
        message.push_str(&format!("\n  … and {} more", total - MAX_REPORTED_ERRORS));
    }
    Err(Error::bad_input(message))
}

fn provenance(source: Provenance) -> &'static str {
    match source {
        Provenance::Human => "by a human review",
        Provenance::Import => "by an earlier import",
        Provenance::Synthetic => "by the synthetic seed set",
        Provenance::Auto => "by the model",
    }
}

/// The synthetic seed set shipped in the binary (`assets/seed/seed.jsonl`),
/// so an installed `flywheel` can bootstrap its first model anywhere.
const SEED_SET: &[u8] = include_bytes!("../../assets/seed/seed.jsonl");
/// What the seed set is called in summaries and errors.
pub const SEED_SET_NAME: &str = "built-in seed set (assets/seed/seed.jsonl)";

/// Import the built-in seed set as `synthetic` samples. A second import
/// duplicates nothing (samples fold by normalised text) but does raise
/// occurrences, so bootstrap only imports it on a fresh install.
pub async fn import_seed_set(store: &Store, reporter: &Reporter) -> Result<ImportSummary> {
    reporter.phase("validate", None);
    let lines = jsonl::read_lines_from(SEED_SET_NAME, SEED_SET)?;
    let validated = validate_lines(SEED_SET_NAME.into(), lines, ImportSource::Synthetic)?;
    store_samples(store, validated, OnConflict::Keep, reporter).await
}

/// A file's samples, one per normalised text, each with the line that
/// first held it.
#[derive(Debug)]
pub struct Validated {
    pub samples: Vec<NewSample>,
    pub first_lines: Vec<usize>,
    pub summary: ImportSummary,
}

/// Parse and check every line; all problems at once, each naming file,
/// line and field (exit 65).
pub fn validate(path: &Path, source: ImportSource) -> Result<Validated> {
    validate_lines(path.to_path_buf(), jsonl::read_lines(path)?, source)
}

fn validate_lines(
    path: PathBuf,
    lines: Vec<std::result::Result<Line, (usize, String)>>,
    source: ImportSource,
) -> Result<Validated> {
    let mut summary = ImportSummary {
        file: path.clone(),
        source: source.as_str(),
        ..Default::default()
    };
    let mut errors: Vec<String> = Vec::new();
    let mut samples: Vec<NewSample> = Vec::new();
    let mut first_lines: Vec<usize> = Vec::new();
    // normalised text → (index in samples, first line)
    let mut seen: HashMap<String, (usize, usize)> = HashMap::new();
    let file = path.display();
    for line in lines {
        summary.lines += 1;
        let line = match line {
            Ok(line) => line,
            Err((number, message)) => {
                errors.push(format!("{file}:{number}: {message}"));
                continue;
            }
        };
        let number = line.number;
        let sample = match parse_sample(&line, source) {
            Ok(sample) => sample,
            Err(message) => {
                errors.push(format!("{file}:{number}: {message}"));
                continue;
            }
        };
        match seen.get(&sample.normalized_text) {
            Some(&(index, first)) => {
                let earlier = &mut samples[index];
                if earlier.intent != sample.intent {
                    errors.push(format!(
                        "{file}:{number}: field `intent`: {} contradicts line {first}, which labels the same text {}",
                        quoted(&sample.intent),
                        quoted(&earlier.intent)
                    ));
                } else {
                    earlier.occurrences += 1;
                    summary.duplicates_in_file += 1;
                }
            }
            None => {
                seen.insert(sample.normalized_text.clone(), (samples.len(), number));
                samples.push(sample);
                first_lines.push(number);
            }
        }
    }
    if !errors.is_empty() {
        let total = errors.len();
        let mut message = format!(
            "{file}: {total} invalid line(s); nothing was imported:\n  {}",
            errors[..total.min(MAX_REPORTED_ERRORS)].join("\n  ")
        );
        if total > MAX_REPORTED_ERRORS {
            message.push_str(&format!("\n  … and {} more", total - MAX_REPORTED_ERRORS));
        }
        return Err(Error::bad_input(message));
    }
    summary.samples = samples.len() as u64;
    for s in &samples {
        let n = u64::try_from(s.occurrences).unwrap_or(0);
        *summary.per_intent.entry(s.intent.clone()).or_default() += n;
        let language = s.language.clone().unwrap_or_else(|| "unknown".into());
        *summary.per_language.entry(language).or_default() += n;
    }
    Ok(Validated {
        samples,
        first_lines,
        summary,
    })
}

fn parse_sample(line: &Line, source: ImportSource) -> std::result::Result<NewSample, String> {
    let field = |name: &str| line.value.get(name).filter(|v| !v.is_null());
    let text = match field("text") {
        None => return Err("field `text`: missing".into()),
        Some(Value::String(text)) => text.trim(),
        Some(other) => {
            return Err(format!(
                "field `text`: expected a string, got {}",
                jsonl::kind(other)
            ));
        }
    };
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(format!(
            "field `text`: longer than {MAX_TEXT_CHARS} characters"
        ));
    }
    let normalized_text = normalize_for_dedup(text);
    if normalized_text.is_empty() {
        return Err("field `text`: has no letters or digits".into());
    }
    let intent = match field("intent") {
        None => return Err("field `intent`: missing".into()),
        Some(Value::String(intent)) => {
            intent_name(intent).map_err(|reason| format!("field `intent`: {reason}"))?
        }
        Some(other) => {
            return Err(format!(
                "field `intent`: expected a string, got {}",
                jsonl::kind(other)
            ));
        }
    };
    let language = match field("language") {
        None => None,
        Some(Value::String(code)) => match Language::parse(code) {
            Some(language) => Some(language.as_str().to_string()),
            None => {
                return Err(format!(
                    "field `language`: unknown language {} (expected en, hinglish, hi, mr or other)",
                    quoted(code)
                ));
            }
        },
        Some(other) => {
            return Err(format!(
                "field `language`: expected a string, got {}",
                jsonl::kind(other)
            ));
        }
    };
    let confidence = match field("confidence") {
        None => None,
        Some(Value::Number(n)) => match n.as_f64().filter(|c| (0.0..=1.0).contains(c)) {
            Some(c) => Some(c),
            None => return Err(format!("field `confidence`: {n} is not between 0 and 1")),
        },
        Some(other) => {
            return Err(format!(
                "field `confidence`: expected a number, got {}",
                jsonl::kind(other)
            ));
        }
    };
    Ok(NewSample {
        text: text.to_string(),
        normalized_text,
        intent: intent.to_string(),
        language,
        source: source.provenance(),
        confidence,
        review_status: ReviewStatus::Approved,
        priority: 5,
        occurrences: 1,
        predicted_intent: None,
        predicted_by_version: None,
        conversation_id: None,
    })
}
