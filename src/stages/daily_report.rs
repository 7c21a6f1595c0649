//! `logs/daily-report-YYYY-MM-DD.json`: what daily capture did for a day.
//!
//! Runs of the same day accumulate into one report (cron at night plus a
//! manual run later add up); a run that captured nothing leaves an existing
//! report as it was, so re-running a window never erases its figures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::storage::Timestamp;

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
    /// Pending conversations of the window that were processed.
    pub captured: u64,
    pub auto_approved: u64,
    pub needs_review: u64,
    /// Needs-review conversations by priority ("2", "5").
    pub needs_review_by_priority: BTreeMap<String, u64>,
    /// Conversations with no letters or digits to learn from, marked `ignored`.
    pub ignored: u64,
    /// Needs-review conversations folded into a sample a human had already decided.
    pub already_reviewed: u64,
    /// Samples created (the rest folded into existing ones).
    pub new_samples: NewSamples,
    /// Conversations that raised the occurrences of a sample instead of
    /// creating one (repeats within the run and of earlier samples).
    pub duplicates_folded: u64,
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
            captured: 0,
            auto_approved: 0,
            needs_review: 0,
            needs_review_by_priority: BTreeMap::new(),
            ignored: 0,
            already_reviewed: 0,
            new_samples: NewSamples::default(),
            duplicates_folded: 0,
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
        self.auto_approval_rate = (self.captured > 0).then(|| {
            (self.auto_approved as f64 * 100.0 / self.captured as f64 * 100.0).round() / 100.0
        });
    }

    /// Add an earlier report (or a batch's tally) of the same day into this one.
    pub fn absorb(&mut self, earlier: DailyReport) {
        self.runs += earlier.runs;
        self.window_start = self.window_start.min(earlier.window_start);
        self.window_end = self.window_end.max(earlier.window_end);
        self.captured += earlier.captured;
        self.auto_approved += earlier.auto_approved;
        self.needs_review += earlier.needs_review;
        for (k, v) in earlier.needs_review_by_priority {
            *self.needs_review_by_priority.entry(k).or_default() += v;
        }
        self.ignored += earlier.ignored;
        self.already_reviewed += earlier.already_reviewed;
        self.new_samples.approved += earlier.new_samples.approved;
        self.new_samples.needs_review += earlier.new_samples.needs_review;
        self.duplicates_folded += earlier.duplicates_folded;
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
                Ok(_) if self.captured == 0 => {
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
}
