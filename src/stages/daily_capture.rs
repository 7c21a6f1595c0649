//! The daily-capture stage (DESIGN §1): a window's `pending` conversations
//! → the auto-filter rule → approved samples and a review queue, folded by
//! normalised text, plus the day's report; then the audit draw, and the
//! backlog re-judged by a version promoted since ([`super::rejudge`]).
//!
//! Conversations are streamed by id and folded a round at a time
//! (`capture_fold`); each chunk of the round is one transaction (samples
//! upserted, their conversations marked), so a crash loses nothing and a
//! re-run of the window finds nothing pending.

use std::collections::HashMap;
use std::collections::HashSet;
use std::path::PathBuf;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use futures_util::StreamExt;
use serde::Serialize;

use super::approval_thresholds::ApprovalThresholds;
use super::auto_filter::AutoFilter;
use super::capture_fold::{Fold, ROUND_CONVERSATIONS};
use super::daily_report::{CaptureCounts, DailyReport};
use super::rejudge::{RejudgeReport, rejudge_with_production};
use crate::audit::DrawRates;
use crate::config::Config;
use crate::domain::ReviewStatus;
use crate::error::{Error, Result};
use crate::jobs::{Stage, StageContext, StageJob};
use crate::monitor::notify;
use crate::progress::Reporter;
use crate::storage::Store;
use crate::storage::Timestamp;
use crate::storage::daily_capture::TallyKey;
use crate::storage::samples::{NewSample, UpsertedSample};

/// Conversations per transaction: big enough for set-based SQL to pay off,
/// small enough that `serve` never waits long for SQLite's write lock.
pub const DEFAULT_BATCH_SIZE: usize = 5000;

/// Ids per read while folding (so at most as many conversations): reads
/// are not transactions, so they need not follow the write chunks' size,
/// and fewer, larger reads cost the database less.
const READ_BATCH: usize = 20_000;

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

/// The daily-capture stage. Its fields are its options.
#[derive(Debug, Clone)]
pub struct DailyCapture {
    pub window: Window,
    /// Report what would happen; write nothing (no rows, no report file, no job run).
    pub dry_run: bool,
    /// Conversations per transaction.
    pub batch_size: usize,
}

impl Default for DailyCapture {
    /// What cron runs: the last 24 hours.
    fn default() -> Self {
        Self {
            window: Window::Since(Duration::hours(24)),
            dry_run: false,
            batch_size: DEFAULT_BATCH_SIZE,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub report: DailyReport,
    /// Where the report was written (`None` on a dry run).
    pub report_path: Option<PathBuf>,
    /// Conversations of the window drawn for audit by this run.
    pub audits_drawn: u64,
    /// The review backlog re-judged by the version in production, if it
    /// had not judged it yet.
    pub rejudged: RejudgeReport,
}

/// What `job_runs.counts` records of a run: its counters, and what waits
/// for training.
#[derive(Serialize)]
struct RecordedCounts<'a> {
    #[serde(flatten)]
    counts: &'a CaptureCounts,
    new_samples: u64,
    approved_unused: i64,
    ready_for_training: bool,
    audits_drawn: u64,
    rejudged: usize,
}

impl StageJob for DailyCapture {
    const STAGE: Stage = Stage::DailyCapture;
    type Outcome = Outcome;

    /// A dry run takes no lock and records nothing.
    fn recorded(&self) -> bool {
        !self.dry_run
    }

    async fn work(self, ctx: &StageContext<'_>) -> Result<Outcome> {
        capture(ctx.store, ctx.config, &self, ctx.run_id(), ctx.reporter).await
    }

    fn counts(outcome: &Outcome) -> impl Serialize {
        let r = &outcome.report;
        RecordedCounts {
            counts: &r.counts,
            new_samples: r.new_samples.approved + r.new_samples.needs_review,
            approved_unused: r.approved_unused,
            ready_for_training: r.ready_for_training,
            audits_drawn: outcome.audits_drawn,
            rejudged: outcome.rejudged.judged,
        }
    }

    /// The seed's "alert for training": enough approved samples wait.
    fn alerts(outcome: &Outcome, _config: &Config) -> Vec<notify::Event> {
        let r = &outcome.report;
        if !r.ready_for_training {
            return Vec::new();
        }
        vec![notify::Event {
            fix: Some("run `flywheel weekly-training` (or wait for its schedule)".into()),
            ..notify::Event::new(
                notify::EventKind::ReadyForTraining,
                notify::Severity::Info,
                format!(
                    "ready for training: {} approved samples wait for a training run (threshold {})",
                    r.approved_unused, r.ready_for_training_threshold
                ),
            )
        }]
    }
}

/// The stage as job run `run_id` (`None`: a dry run): each batch records
/// its counts with it.
async fn capture(
    store: &Store,
    config: &Config,
    options: &DailyCapture,
    run_id: Option<i64>,
    reporter: &Reporter,
) -> Result<Outcome> {
    let (start, end, date) = options.window.bounds(Utc::now());
    let tally_key = run_id.map(|job_run_id| TallyKey {
        job_run_id,
        report_date: date,
    });
    let (total, ids) = store.pending_in_window(start, end).await?;
    reporter.phase(
        if options.dry_run {
            "daily-capture (dry run)"
        } else {
            "daily-capture"
        },
        Some(total.max(0) as u64),
    );
    let mut report = DailyReport {
        dry_run: options.dry_run,
        ready_for_training_threshold: config.auto_filter.ready_for_training,
        ..DailyReport::tally(date, start, end)
    };
    let filter = AutoFilter {
        config: &config.auto_filter,
        thresholds: ApprovalThresholds::as_of(store, &config.auto_filter, end).await?,
    };
    // Dry run only: samples this run would already have created.
    let mut would_create: HashSet<String> = HashSet::new();
    if let Some((min_id, max_id)) = ids {
        let mut after = min_id - 1;
        let mut done = 0u64;
        loop {
            let started = std::time::Instant::now();
            let (fold, last) = read_round(
                store,
                &filter,
                options,
                (start, end),
                after,
                max_id,
                reporter,
            )
            .await?;
            let Some(last) = last else { break };
            after = last;
            let read = started.elapsed();
            let mut chunks = 0usize;
            if options.dry_run {
                for chunk in fold.chunks(options.batch_size) {
                    reporter.check_cancelled()?;
                    let states = simulate(store, &chunk.samples, &mut would_create).await?;
                    report.count_chunk(&fold.labels, &chunk, &states);
                    chunks += 1;
                    done += chunk.conversations.len() as u64;
                    reporter.advance(done);
                }
            } else {
                let in_flight = store.capture_writers();
                let labels = &fold.labels;
                let mut written = futures_util::stream::iter(fold.chunks(options.batch_size))
                    .map(|chunk| async move {
                        reporter.check_cancelled()?;
                        // The batch's own counts, committed with it.
                        let tally = |states: &[UpsertedSample]| {
                            let mut tally = DailyReport::tally(date, start, end);
                            tally.count_chunk(labels, &chunk, states);
                            serde_json::to_string(&tally).expect("a report serialises")
                        };
                        let states = store
                            .apply_capture_batch(
                                &chunk.samples,
                                &chunk.conversations,
                                tally_key,
                                tally,
                            )
                            .await?;
                        Ok::<_, Error>((chunk, states))
                    })
                    .buffered(in_flight);
                while let Some(result) = written.next().await {
                    let (chunk, states) = result?;
                    report.count_chunk(&fold.labels, &chunk, &states);
                    chunks += 1;
                    done += chunk.conversations.len() as u64;
                    reporter.advance(done);
                }
            }
            tracing::debug!(
                conversations = fold.conversations,
                chunks,
                read_and_fold_ms = read.as_millis() as u64,
                write_ms = (started.elapsed() - read).as_millis() as u64,
                "daily-capture round"
            );
        }
    }
    // Audits are drawn from what the window processed (by this run or an
    // earlier one: drawing twice adds nothing), and what the labelled ones
    // found is written where the seed's queries read it.
    let audits_drawn = if options.dry_run {
        0
    } else {
        let (auto_approved, needs_review) = store.audit_strata(start, end).await?;
        let rates = DrawRates::for_window(
            config.audit.percent,
            config.audit.needs_review_multiplier,
            auto_approved,
            needs_review,
        );
        let drawn = store.draw_audits(start, end, rates).await?;
        store.record_version_performance().await?;
        // The day's writers have mostly gone: their counter rows fold into one.
        store.fold_counter_shards_or_warn().await;
        drawn
    };
    // After the draw: an audit keeps the answer it was served with.
    let rejudged = if options.dry_run {
        RejudgeReport::default()
    } else {
        rejudge_with_production(store, config, reporter).await?
    };
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
    let report_path = match run_id {
        None => None, // a dry run writes nothing
        Some(_) => Some(match day_from_tallies(store, &report).await? {
            Some(day) => day.write_unless_unchanged(&config.logs_dir())?,
            None => report.save(&config.logs_dir())?,
        }),
    };
    Ok(Outcome {
        report,
        report_path,
        audits_drawn,
        rejudged,
    })
}

/// The report of every run of `report`'s day, from the tallies their
/// batches committed (a killed run's included), with this run's view of
/// what waits for training. `None` for a day without tallies (runs before
/// they existed, or none that captured anything): the file then
/// accumulates as before.
async fn day_from_tallies(store: &Store, report: &DailyReport) -> Result<Option<DailyReport>> {
    let tallies = store.daily_capture_tallies(report.date).await?;
    if tallies.is_empty() {
        return Ok(None);
    }
    let mut day = DailyReport {
        runs: 0,
        generated_at: report.generated_at,
        approved_unused: report.approved_unused,
        ready_for_training_threshold: report.ready_for_training_threshold,
        ready_for_training: report.ready_for_training,
        ..DailyReport::tally(report.date, report.window_start, report.window_end)
    };
    let mut runs = HashSet::new();
    for (run, tally) in tallies {
        let tally: DailyReport = serde_json::from_str(&tally).map_err(|err| {
            Error::failure(format!(
                "daily capture: the stored tally of run {run}: {err}"
            ))
        })?;
        runs.insert(run);
        day.absorb(DailyReport { runs: 0, ..tally });
    }
    day.runs = runs.len() as u32;
    Ok(Some(day))
}

/// Read pending conversations after `after` (up to `max_id`) and fold
/// them, until the round is full or the window exhausted; returns the fold
/// and the last id read past (`None`: nothing was left).
///
/// Reads walk fixed spans of ids, so the next spans are known before the
/// current one arrives: [`READ_AHEAD`] of them are read (and decoded) on
/// other tasks while this one folds. A round that fills up drops the spans
/// read ahead; the next round reads them again.
async fn read_round(
    store: &Store,
    filter: &AutoFilter<'_>,
    options: &DailyCapture,
    (start, end): (Timestamp, Timestamp),
    after: i64,
    max_id: i64,
    reporter: &Reporter,
) -> Result<(Fold, Option<i64>)> {
    if after >= max_id {
        return Ok((Fold::default(), None));
    }
    let span = options.batch_size.max(READ_BATCH) as i64;
    let mut spans = (after..max_id).step_by(span as usize).map(|low| {
        let high = low.saturating_add(span).min(max_id);
        let store = store.clone();
        let read = tokio::spawn(async move {
            store
                .pending_conversations(start, end, low, high, span)
                .await
        });
        (high, AbortOnDrop(read))
    });
    let mut ahead: std::collections::VecDeque<_> = spans.by_ref().take(READ_AHEAD).collect();
    let mut fold = Fold::default();
    let mut last = after;
    while let Some((high, mut read)) = ahead.pop_front() {
        ahead.extend(spans.next());
        reporter.check_cancelled()?;
        let rows = read.join().await?;
        fold.add(&rows, filter);
        last = high;
        if fold.conversations >= ROUND_CONVERSATIONS {
            break;
        }
    }
    Ok((fold, Some(last)))
}

/// Spans of ids read ahead of the fold (besides the one being folded).
const READ_AHEAD: usize = 2;

/// A read running on its own task, stopped when the round no longer wants it.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> AbortOnDrop<Result<T>> {
    async fn join(&mut self) -> Result<T> {
        (&mut self.0)
            .await
            .map_err(|err| Error::failure(format!("daily capture: a read task failed: {err}")))?
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
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
                priority: if stored.review_status == ReviewStatus::NeedsReview {
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
                review_status: s.review_status,
                reviewed_at: None,
                created: would_create.insert(s.normalized_text.clone()),
            },
        })
        .collect())
}
