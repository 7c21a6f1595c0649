//! The daily-capture stage (DESIGN §1): a window's `pending` conversations
//! → the auto-filter rule → approved samples and a review queue, folded by
//! normalised text, plus the day's report.
//!
//! Work goes in batches of conversations streamed by id; each batch is one
//! transaction (samples upserted, conversations marked), so a crash loses
//! nothing and a re-run of the window finds nothing pending.

use std::collections::HashMap;
use std::collections::HashSet;
use std::path::PathBuf;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::json;

use super::auto_filter::{Verdict, classify};
use super::daily_report::{DailyReport, MixCounts};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::jobs::{Stage, Trigger, run_stage};
use crate::progress::Reporter;
use crate::storage::Store;
use crate::storage::Timestamp;
use crate::storage::daily_capture::{
    CapturedConversation, PendingConversation, conversation_status,
};
use crate::storage::samples::{NewSample, UpsertedSample};
use crate::text::normalize_for_dedup;

/// Conversations per transaction: big enough for set-based SQL to pay off,
/// small enough that `serve` never waits long for SQLite's write lock.
pub const DEFAULT_BATCH_SIZE: usize = 5000;

/// Which conversations a run looks at (by `created_at`, UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The last span before now (`--since 24h`).
    Since(Duration),
    /// One UTC calendar day (`--date 2026-11-24`).
    Date(NaiveDate),
}

impl Window {
    /// `[start, end)` and the date the report is filed under.
    pub fn bounds(self, now: DateTime<Utc>) -> (Timestamp, Timestamp, NaiveDate) {
        match self {
            Window::Since(span) => (
                Timestamp::from(now - span),
                Timestamp::from(now),
                now.date_naive(),
            ),
            Window::Date(date) => {
                let start = date.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
                (
                    Timestamp::from(start),
                    Timestamp::from(start + Duration::days(1)),
                    date,
                )
            }
        }
    }
}

/// Parse `--since`: a positive number with `s`, `m`, `h` or `d` (`24h`, `90m`, `7d`).
pub fn parse_since(text: &str) -> Result<Duration> {
    let text = text.trim();
    let split = text.len().saturating_sub(1);
    let (number, unit) = text.split_at(split);
    let n: i64 = number.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
        Error::usage(format!(
            "--since {text:?}: expected a positive number and a unit, like 24h, 90m or 7d"
        ))
    })?;
    match unit {
        "s" => Ok(Duration::seconds(n)),
        "m" => Ok(Duration::minutes(n)),
        "h" => Ok(Duration::hours(n)),
        "d" => Ok(Duration::days(n)),
        _ => Err(Error::usage(format!(
            "--since {text:?}: the unit must be s, m, h or d (like 24h)"
        ))),
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub window: Window,
    /// Report what would happen; write nothing (no rows, no report file, no job run).
    pub dry_run: bool,
    pub batch_size: usize,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub report: DailyReport,
    /// Where the report was written (`None` on a dry run).
    pub report_path: Option<PathBuf>,
}

/// Run the stage as a locked, recorded job run (exit 75 when another run
/// holds it). A dry run takes no lock and records nothing.
pub async fn run_recorded(
    store: &Store,
    config: &Config,
    options: &Options,
    trigger: Trigger,
    reporter: &Reporter,
) -> Result<Outcome> {
    if options.dry_run {
        return run(store, config, options, reporter).await;
    }
    run_stage(store, Stage::DailyCapture, trigger, |_run_id| async {
        let outcome = run(store, config, options, reporter).await?;
        let r = &outcome.report;
        let counts = json!({
            "captured": r.captured,
            "auto_approved": r.auto_approved,
            "needs_review": r.needs_review,
            "ignored": r.ignored,
            "new_samples": r.new_samples.approved + r.new_samples.needs_review,
            "duplicates_folded": r.duplicates_folded,
            "approved_unused": r.approved_unused,
            "ready_for_training": r.ready_for_training,
        });
        Ok((outcome, counts))
    })
    .await
}

/// The stage itself, without the lock and job-run bookkeeping.
pub async fn run(
    store: &Store,
    config: &Config,
    options: &Options,
    reporter: &Reporter,
) -> Result<Outcome> {
    let (start, end, date) = options.window.bounds(Utc::now());
    let (total, ids) = store.pending_in_window(start, end).await?;
    reporter.phase(
        if options.dry_run {
            "daily-capture (dry run)"
        } else {
            "daily-capture"
        },
        Some(total.max(0) as u64),
    );
    let mut report = empty_report(date, start, end, options.dry_run, config);
    // Dry run only: samples this run would already have created.
    let mut would_create: HashSet<String> = HashSet::new();
    if let Some((min_id, max_id)) = ids {
        let fetch = |after: i64| {
            store.pending_conversations(start, end, after, max_id, options.batch_size as i64)
        };
        let mut done = 0u64;
        let mut rows = fetch(min_id - 1).await?;
        while let Some(last) = rows.last() {
            reporter.check_cancelled()?;
            let started = std::time::Instant::now();
            let batch = build_batch(&rows, config);
            let built = started.elapsed();
            // The next batch is read while this one is written: the read
            // only sees ids above this batch's, which the write never
            // touches, and under WAL (SQLite) or MVCC it does not wait.
            let write = async {
                if options.dry_run {
                    simulate(store, &batch.samples, &mut would_create).await
                } else {
                    store
                        .apply_capture_batch(&batch.samples, &batch.conversations)
                        .await
                }
            };
            let (states, next) = tokio::join!(write, fetch(last.id));
            let states = states?;
            count_batch(&mut report, &rows, &batch, &states);
            tracing::debug!(
                rows = rows.len(),
                samples = batch.samples.len(),
                fold_ms = built.as_millis() as u64,
                write_and_next_read_ms = (started.elapsed() - built).as_millis() as u64,
                "daily-capture batch"
            );
            done += rows.len() as u64;
            reporter.advance(done);
            rows = next?;
        }
    }
    report.approved_unused = store.approved_unused_count().await?
        + if options.dry_run {
            report.new_samples.approved as i64
        } else {
            0
        };
    report.ready_for_training = report.approved_unused >= report.ready_for_training_threshold;
    report.recompute_rate();
    if report.ready_for_training {
        tracing::warn!(
            approved_unused = report.approved_unused,
            threshold = report.ready_for_training_threshold,
            "ready for training: {} approved samples wait for a training run (threshold {})",
            report.approved_unused,
            report.ready_for_training_threshold
        );
    }
    let report_path = if options.dry_run {
        None
    } else {
        Some(report.save(&config.logs_dir())?)
    };
    Ok(Outcome {
        report,
        report_path,
    })
}

fn empty_report(
    date: NaiveDate,
    start: Timestamp,
    end: Timestamp,
    dry_run: bool,
    config: &Config,
) -> DailyReport {
    DailyReport {
        date,
        window_start: start,
        window_end: end,
        generated_at: Timestamp::now(),
        dry_run,
        runs: 1,
        captured: 0,
        auto_approved: 0,
        needs_review: 0,
        needs_review_by_priority: Default::default(),
        ignored: 0,
        already_reviewed: 0,
        new_samples: Default::default(),
        duplicates_folded: 0,
        per_language: Default::default(),
        per_intent: Default::default(),
        auto_approval_rate: None,
        approved_unused: 0,
        ready_for_training_threshold: config.auto_filter.ready_for_training,
        ready_for_training: false,
    }
}

/// A batch folded by normalised text, ready for one transaction.
struct Batch {
    samples: Vec<NewSample>,
    conversations: Vec<CapturedConversation>,
}

fn build_batch(rows: &[PendingConversation], config: &Config) -> Batch {
    let filter = &config.auto_filter;
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut samples: Vec<NewSample> = Vec::new();
    let mut conversations = Vec::with_capacity(rows.len());
    for row in rows {
        let normalized = normalize_for_dedup(&row.user_message);
        if normalized.is_empty() {
            conversations.push(CapturedConversation {
                id: row.id,
                sample: None,
            });
            continue;
        }
        let verdict = classify(
            filter,
            row.nlu_intent.as_deref(),
            row.nlu_confidence,
            row.nlu_provider.as_deref(),
        );
        let slot = match index.get(&normalized) {
            Some(&slot) => {
                let sample = &mut samples[slot];
                sample.occurrences += 1;
                match verdict {
                    // A confident repeat makes the new sample an approved
                    // one, represented by that conversation.
                    Verdict::AutoApproved if sample.review_status != "approved" => {
                        let occurrences = sample.occurrences;
                        *sample = new_sample(row, normalized, verdict, filter.medium_priority);
                        sample.occurrences = occurrences;
                    }
                    Verdict::NeedsReview { priority }
                        if sample.review_status == "needs-review" && priority < sample.priority =>
                    {
                        sample.priority = priority;
                    }
                    _ => {}
                }
                slot
            }
            None => {
                index.insert(normalized.clone(), samples.len());
                samples.push(new_sample(row, normalized, verdict, filter.medium_priority));
                samples.len() - 1
            }
        };
        conversations.push(CapturedConversation {
            id: row.id,
            sample: Some(slot),
        });
    }
    Batch {
        samples,
        conversations,
    }
}

fn new_sample(
    row: &PendingConversation,
    normalized_text: String,
    verdict: Verdict,
    medium_priority: i32,
) -> NewSample {
    let (review_status, priority) = match verdict {
        Verdict::AutoApproved => ("approved", medium_priority),
        Verdict::NeedsReview { priority } => ("needs-review", priority),
    };
    NewSample {
        text: row.user_message.trim().to_string(),
        normalized_text,
        // A sample needs an intent; reviewers replace this placeholder.
        intent: row
            .nlu_intent
            .clone()
            .filter(|i| !i.trim().is_empty())
            .unwrap_or_else(|| "unknown".into()),
        language: row.language.clone(),
        source: "auto",
        confidence: row.nlu_confidence,
        review_status,
        priority,
        occurrences: 1,
        predicted_intent: row.nlu_intent.clone(),
        predicted_by_version: row.model_version.clone(),
        conversation_id: Some(row.id),
    }
}

/// What the batch would do, without writing: existing samples as stored,
/// the rest as created (once per run).
async fn simulate(
    store: &Store,
    samples: &[NewSample],
    would_create: &mut HashSet<String>,
) -> Result<Vec<UpsertedSample>> {
    let texts: Vec<String> = samples.iter().map(|s| s.normalized_text.clone()).collect();
    let existing: HashMap<String, UpsertedSample> = store
        .existing_samples(&texts)
        .await?
        .into_iter()
        .map(|s| (s.normalized_text.clone(), s))
        .collect();
    Ok(samples
        .iter()
        .map(|s| match existing.get(&s.normalized_text) {
            Some(stored) => UpsertedSample {
                created: false,
                priority: if stored.review_status == "needs-review" {
                    stored.priority.min(s.priority)
                } else {
                    stored.priority
                },
                ..stored.clone()
            },
            None => UpsertedSample {
                id: 0,
                normalized_text: s.normalized_text.clone(),
                occurrences: s.occurrences,
                priority: s.priority,
                review_status: s.review_status.to_string(),
                reviewed_at: None,
                created: would_create.insert(s.normalized_text.clone()),
            },
        })
        .collect())
}

fn count_batch(
    report: &mut DailyReport,
    rows: &[PendingConversation],
    batch: &Batch,
    states: &[UpsertedSample],
) {
    for state in states.iter().filter(|s| s.created) {
        if state.review_status == "approved" {
            report.new_samples.approved += 1;
        } else {
            report.new_samples.needs_review += 1;
        }
    }
    let created = states.iter().filter(|s| s.created).count() as u64;
    let mut folded_into_samples = 0u64;
    for (row, conversation) in rows.iter().zip(&batch.conversations) {
        report.captured += 1;
        let state = conversation.sample.map(|i| &states[i]);
        let status = conversation_status(state);
        let bump = |mix: &mut MixCounts| {
            mix.captured += 1;
            match status {
                "auto-approved" => mix.auto_approved += 1,
                "needs-review" => mix.needs_review += 1,
                _ => {}
            }
        };
        bump(
            report
                .per_language
                .entry(row.language.clone().unwrap_or_else(|| "unknown".into()))
                .or_default(),
        );
        bump(
            report
                .per_intent
                .entry(row.nlu_intent.clone().unwrap_or_else(|| "unknown".into()))
                .or_default(),
        );
        match (status, state) {
            ("ignored", _) => report.ignored += 1,
            ("reviewed", _) => report.already_reviewed += 1,
            ("auto-approved", _) => report.auto_approved += 1,
            (_, Some(state)) => {
                report.needs_review += 1;
                *report
                    .needs_review_by_priority
                    .entry(state.priority.to_string())
                    .or_default() += 1;
            }
            _ => {}
        }
        if state.is_some() {
            folded_into_samples += 1;
        }
    }
    report.duplicates_folded += folded_into_samples - created;
}
