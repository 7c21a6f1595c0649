//! The data stages of the loop, each one type the CLI and the console run
//! through [`crate::jobs::run`]: daily capture (auto-filter into samples and
//! the review queue), samples import, export, Label Studio sync, weekly
//! training (and bootstrap, its work for a fresh installation), the
//! canary check, prune.
//! Ingest, capture's backfill, lives with capture.

pub mod approval_thresholds;
pub mod auto_filter;
pub mod bootstrap;
pub mod canary_check;
mod capture_fold;
pub mod daily_capture;
pub mod daily_report;
pub mod export;
pub mod gate;
mod jsonl;
pub mod label_studio_sync;
pub mod prune;
pub mod rejudge;
pub mod samples_import;
mod suspect_flags;
pub mod weekly_training;
