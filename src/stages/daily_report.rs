//! `logs/daily-report-YYYY-MM-DD.json`: what daily capture did for a day.
//!
//! Runs of the same day accumulate into one report (cron at night plus a
//! manual run later add up); a run that captured nothing leaves an existing
//! report as it was, so re-running a window never erases its figures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::capture_fold::{Chunk, Labels};
use crate::domain::{ConversationStatus, ReviewStatus};
use crate::error::{Error, Result};
use crate::storage::Timestamp;
use crate::storage::daily_capture::conversation_status;
use crate::storage::samples::UpsertedSample;

/// Declares the run's counters once: the struct (its fields are the
/// report's, each batch's tally's and `job_runs.counts`' alike) and its sum.
macro_rules! counters {
    (
        $(#[$meta:meta])*
        pub struct $name:ident { $( $(#[$field_meta:meta])* $field:ident, )+ }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct $name {
            $( $(#[$field_meta])* pub $field: u64, )+
        }

        impl $name {
            /// Add another run's (or batch's) counters into these.
            pub fn add(&mut self, other: &Self) {
                $( self.$field += other.$field; )+
            }
        }
    };
}

counters! {
    /// What a run counted, conversation by conversation.
    pub struct CaptureCounts {
        /// Pending conversations of the window that were processed.
        captured,
        auto_approved,
        needs_review,
        /// Conversations with no letters or digits to learn from, marked `ignored`.
        ignored,
        /// Needs-review conversations folded into a sample a human had already decided.
        already_reviewed,
        /// Conversations that raised the occurrences of a sample instead of
        /// creating one (repeats within the run and of earlier samples).
        duplicates_folded,
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MixCounts {
    pub captured: u64,
    pub auto_approved: u64,
    pub needs_review: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewSamples {
    pub approved: u64,
    pub needs_review: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DailyReport {
    pub date: NaiveDate,
    pub window_start: Timestamp,
    pub window_end: Timestamp,
    pub generated_at: Timestamp,
    pub dry_run: bool,
    /// Runs accumulated into this report.
    pub runs: u32,
    #[serde(flatten)]
    pub counts: CaptureCounts,
    /// Needs-review conversations by priority ("2", "5").
    pub needs_review_by_priority: BTreeMap<String, u64>,
    /// Samples created (the rest folded into existing ones).
    pub new_samples: NewSamples,
    pub per_language: BTreeMap<String, MixCounts>,
    pub per_intent: BTreeMap<String, MixCounts>,
    /// Auto-approved share of the captured conversations, in percent.
    pub auto_approval_rate: Option<f64>,
    /// Approved samples no training run has used yet, after this run.
    pub approved_unused: i64,
    pub ready_for_training_threshold: i64,
    /// `approved_unused >= ready_for_training_threshold`.
    pub ready_for_training: bool,
}

impl DailyReport {
    /// Nothing counted yet, for one run's window of `date`; what one batch
    /// adds (a tally) starts from this too.
    pub fn tally(date: NaiveDate, window_start: Timestamp, window_end: Timestamp) -> Self {
        Self {
            date,
            window_start,
            window_end,
            generated_at: Timestamp::now(),
            dry_run: false,
            runs: 1,
            counts: CaptureCounts::default(),
            needs_review_by_priority: BTreeMap::new(),
            new_samples: NewSamples::default(),
            per_language: BTreeMap::new(),
            per_intent: BTreeMap::new(),
            auto_approval_rate: None,
            approved_unused: 0,
            ready_for_training_threshold: 0,
            ready_for_training: false,
        }
    }

    pub fn file_name(date: NaiveDate) -> String {
        format!("daily-report-{}.json", date.format("%Y-%m-%d"))
    }

    pub fn path_in(logs_dir: &Path, date: NaiveDate) -> PathBuf {
        logs_dir.join(Self::file_name(date))
    }

    pub fn recompute_rate(&mut self) {
        let CaptureCounts {
            captured,
            auto_approved,
            ..
        } = self.counts;
        // Daily capture judges every conversation of its window: captured
        // here is what the auto-filter judged.
        self.auto_approval_rate =
            crate::health::auto_approval_rate(auto_approved as i64, captured as i64)
                .map(|rate| (rate * 100.0).round() / 100.0);
    }

    /// Add an earlier report (or a batch's tally) of the same day into this one.
    pub fn absorb(&mut self, earlier: DailyReport) {
        self.runs += earlier.runs;
        self.window_start = self.window_start.min(earlier.window_start);
        self.window_end = self.window_end.max(earlier.window_end);
        self.counts.add(&earlier.counts);
        for (k, v) in earlier.needs_review_by_priority {
            *self.needs_review_by_priority.entry(k).or_default() += v;
        }
        self.new_samples.approved += earlier.new_samples.approved;
        self.new_samples.needs_review += earlier.new_samples.needs_review;
        for (map, other) in [
            (&mut self.per_language, earlier.per_language),
            (&mut self.per_intent, earlier.per_intent),
        ] {
            for (k, v) in other {
                let e = map.entry(k).or_default();
                e.captured += v.captured;
                e.auto_approved += v.auto_approved;
                e.needs_review += v.needs_review;
            }
        }
        self.recompute_rate();
    }

    /// Write the report for its date, accumulating into an existing one.
    /// Returns the path. An unreadable earlier report is replaced, with a warning.
    pub fn save(&self, logs_dir: &Path) -> Result<PathBuf> {
        let path = Self::path_in(logs_dir, self.date);
        let mut report = self.clone();
        if path.exists() {
            match std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|t| serde_json::from_str::<DailyReport>(&t).map_err(|e| e.to_string()))
            {
                Ok(_) if self.counts.captured == 0 => {
                    tracing::info!(path = %path.display(), "nothing captured; the day's report stays as it was");
                    return Ok(path);
                }
                Ok(earlier) => report.absorb(earlier),
                Err(err) => {
                    tracing::warn!(path = %path.display(), "replacing an unreadable daily report: {err}")
                }
            }
        }
        report.write(logs_dir)
    }

    /// Write this report as its date's file, unless the file already says
    /// the same (but for when it was generated): a re-run that changed
    /// nothing leaves the day's report as it was.
    pub fn write_unless_unchanged(&self, logs_dir: &Path) -> Result<PathBuf> {
        let path = Self::path_in(logs_dir, self.date);
        let on_file = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| serde_json::from_str::<DailyReport>(&text).ok());
        let mut this = self.clone();
        this.recompute_rate();
        match on_file {
            Some(on_file)
                if DailyReport {
                    generated_at: on_file.generated_at,
                    ..this
                } == on_file =>
            {
                Ok(path)
            }
            _ => self.write(logs_dir),
        }
    }

    /// Write this report as its date's file, replacing what is there.
    pub fn write(&self, logs_dir: &Path) -> Result<PathBuf> {
        let path = Self::path_in(logs_dir, self.date);
        let mut report = self.clone();
        report.recompute_rate();
        std::fs::create_dir_all(logs_dir).map_err(|err| {
            Error::failure(format!("cannot create {}: {err}", logs_dir.display()))
        })?;
        let text = serde_json::to_string_pretty(&report)
            .map_err(|err| Error::failure(format!("encoding the daily report: {err}")))?;
        // Write then rename, so a reader never sees half a report.
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text + "\n")
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|err| {
                // A full disk leaves no half-written file behind.
                let _ = std::fs::remove_file(&tmp);
                Error::failure(format!("writing {}: {err}", path.display()))
            })?;
        Ok(path)
    }

    /// Count one written (or, on a dry run, simulated) chunk: `states` are
    /// its samples as stored.
    pub(super) fn count_chunk(
        &mut self,
        labels: &Labels,
        chunk: &Chunk,
        states: &[UpsertedSample],
    ) {
        for state in states.iter().filter(|s| s.created) {
            if state.review_status == ReviewStatus::Approved {
                self.new_samples.approved += 1;
            } else {
                self.new_samples.needs_review += 1;
            }
        }
        let created = states.iter().filter(|s| s.created).count() as u64;
        let mut folded_into_samples = 0u64;
        let counts = &mut self.counts;
        for (conversation, labels_of) in chunk.conversations.iter().zip(&chunk.refs) {
            counts.captured += 1;
            let state = conversation.sample.map(|i| &states[i]);
            let status = conversation_status(state);
            let bump = |mix: &mut MixCounts| {
                mix.captured += 1;
                match status {
                    ConversationStatus::AutoApproved => mix.auto_approved += 1,
                    ConversationStatus::NeedsReview => mix.needs_review += 1,
                    _ => {}
                }
            };
            bump(mix_of(
                &mut self.per_language,
                labels.name(labels_of.language),
            ));
            bump(mix_of(&mut self.per_intent, labels.name(labels_of.intent)));
            match (status, state) {
                (ConversationStatus::Ignored, _) => counts.ignored += 1,
                (ConversationStatus::Reviewed, _) => counts.already_reviewed += 1,
                (ConversationStatus::AutoApproved, _) => counts.auto_approved += 1,
                (_, Some(state)) => {
                    counts.needs_review += 1;
                    *self
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
        counts.duplicates_folded += folded_into_samples - created;
    }
}

/// The counts of `name`, allocating its key only the first time.
fn mix_of<'a>(mixes: &'a mut BTreeMap<String, MixCounts>, name: &str) -> &'a mut MixCounts {
    if !mixes.contains_key(name) {
        mixes.insert(name.to_string(), MixCounts::default());
    }
    mixes.get_mut(name).expect("inserted")
}
