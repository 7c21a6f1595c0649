//! The data stages of the loop, as library functions the CLI and the
//! console both call: daily capture (auto-filter into samples and the review
//! queue), importing labelled samples and exporting approved ones.

pub mod auto_filter;
pub mod bootstrap;
mod capture_fold;
pub mod daily_capture;
pub mod daily_report;
pub mod export;
mod jsonl;
pub mod label_studio_sync;
pub mod prune;
pub mod samples_import;
pub mod weekly_training;
