//! Running work the operator starts from the console: stages (the same
//! library functions the CLI calls, recorded with trigger `tui`), lifecycle
//! changes and review decisions. Each runs in its own tokio task; results
//! and progress come back to the UI loop as [`UiEvent`]s, so nothing here
//! ever blocks a frame.

use std::path::PathBuf;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::event::UiEvent;
use super::job::Job;
use super::refresh::Loader;
use crate::capture::gaps::Gap;
use crate::config::Config;
use crate::domain::ReviewVerdict;
use crate::error::Result;
use crate::jobs::{self, Launch, Trigger};
use crate::lifecycle::{self, Target};
use crate::progress::{CancellationToken, Progress, Reporter};
use crate::review::decisions::{self, short};
use crate::stages::canary_check::CanaryCheck;
use crate::stages::daily_capture::DailyCapture;
use crate::stages::export::Export;
use crate::stages::label_studio_sync::LabelStudioSync;
use crate::stages::weekly_training::{WeeklyOutcome, WeeklyTraining};
use crate::storage::{Store, Timestamp};

/// Hands work to background tasks; cheap to clone.
#[derive(Clone)]
pub struct Runner {
    store: Store,
    config: Config,
    events: UnboundedSender<UiEvent>,
    actor: String,
    /// Decisions and undos go through one worker, in the order they were
    /// made: an undo never overtakes the decision it undoes.
    reviews: UnboundedSender<ReviewOp>,
}

#[derive(Debug)]
enum ReviewOp {
    Decide(i64, ReviewVerdict),
    Undo(i64),
}

impl Runner {
    /// Must be called inside the tokio runtime (it starts the review worker).
    pub fn new(store: Store, config: Config, events: UnboundedSender<UiEvent>) -> Self {
        let actor = lifecycle::current_actor();
        let (reviews, ops) = unbounded_channel();
        tokio::spawn(review_worker(
            store.clone(),
            actor.clone(),
            ops,
            events.clone(),
        ));
        Self {
            store,
            config,
            events,
            actor,
            reviews,
        }
    }

    /// Start `job`; `cancel` stops it. The console sees every progress
    /// event the job sent before its end, then its end.
    pub fn start(&self, job: Job, cancel: CancellationToken) {
        let (progress, mut events_of_job) = Progress::channel();
        let reporter = Reporter::new(progress, cancel);
        let this = self.clone();
        let events = self.events.clone();
        tokio::spawn(async move {
            let run = this.run_job(&job, &reporter);
            let result = events_of_job
                .forward_until(run, |event| {
                    let _ = events.send(UiEvent::Progress(event));
                })
                .await
                .map_err(|err| err.message().to_string());
            let _ = events.send(UiEvent::JobFinished { job, result });
        });
    }

    async fn run_job(&self, job: &Job, reporter: &Reporter) -> Result<String> {
        let (store, config, trigger) = (&self.store, &self.config, Trigger::Tui);
        let launch = Launch::new(store, config, trigger).with_reporter(reporter.clone());
        match job {
            Job::DailyCapture => {
                let outcome = jobs::run(DailyCapture::default(), &launch).await?;
                let r = &outcome.report.counts;
                Ok(format!(
                    "daily capture: {} captured, {} auto-approved, {} need review",
                    r.captured, r.auto_approved, r.needs_review
                ))
            }
            Job::LabelStudioSync => {
                let r = jobs::run(LabelStudioSync::from_config(config)?, &launch).await?;
                let mut text = format!(
                    "sync: project {}, pushed {}, pulled {} ({} approved, {} corrected, {} rejected)",
                    r.project_id, r.pushed, r.pulled, r.approved, r.corrected, r.rejected
                );
                if !r.errors.is_empty() {
                    text.push_str(&format!(", {} error(s): {}", r.errors.len(), r.errors[0]));
                }
                Ok(text)
            }
            Job::Export => {
                let output = export_path(config);
                if let Some(dir) = output.parent() {
                    std::fs::create_dir_all(dir).map_err(|err| {
                        crate::Error::failure(format!("creating {}: {err}", dir.display()))
                    })?;
                }
                let stage = Export {
                    output: Some(output),
                    ..Export::from_config(config)
                };
                let s = jobs::run(stage, &launch).await?;
                Ok(format!("exported {} sample(s) to {}", s.exported, s.output))
            }
            Job::TrainNow => {
                let stage = WeeklyTraining {
                    force: true,
                    ..WeeklyTraining::from_config(config)
                };
                match jobs::run(stage, &launch).await? {
                    WeeklyOutcome::Skipped {
                        approved_unused, ..
                    } => Ok(format!(
                        "nothing trained ({approved_unused} approved unused samples)"
                    )),
                    WeeklyOutcome::Trained(s) => Ok(format!(
                        "{} registered as {}: {}",
                        s.version, s.status, s.reason
                    )),
                }
            }
            Job::Promote { version, traffic } => {
                let target = if *traffic >= 100 {
                    Target::Production
                } else {
                    Target::Canary { traffic: *traffic }
                };
                let changes = lifecycle::promote(store, version, target, &self.actor).await?;
                Ok(describe_changes(&changes))
            }
            Job::Rollback => {
                let changes = lifecycle::rollback(store, &self.actor).await?;
                Ok(describe_changes(&changes))
            }
            Job::CanaryCheck => {
                let stage = CanaryCheck {
                    mode: config.canary.mode,
                    dry_run: false,
                };
                let summary = jobs::run(stage, &launch).await?;
                Ok(match (summary.decision(), summary.applied()) {
                    (None, _) => summary.note.unwrap_or_default(),
                    (Some(decision), true) => {
                        format!("canary check: {} — done", decision.describe())
                    }
                    (Some(decision), false) => format!(
                        "canary check ({} mode): {}",
                        summary.mode.as_str(),
                        decision.describe()
                    ),
                })
            }
        }
    }

    /// Record a review decision exactly as a Label Studio pull does.
    pub fn review(&self, sample_id: i64, verdict: ReviewVerdict) {
        let _ = self.reviews.send(ReviewOp::Decide(sample_id, verdict));
    }

    /// Put a decided sample back in the queue.
    pub fn undo(&self, sample_id: i64) {
        let _ = self.reviews.send(ReviewOp::Undo(sample_id));
    }

    pub fn load_gap(&self, gap: Gap) {
        let loader = Loader::new(self.store.clone(), self.config.clone());
        let events = self.events.clone();
        tokio::spawn(async move {
            let result = loader
                .gap_detail(gap)
                .await
                .map_err(|err| err.message().to_string());
            let _ = events.send(UiEvent::GapLoaded(result));
        });
    }

    /// One conversation in full, its alternatives scored off the runtime's
    /// threads (loading a model reads its artifact).
    pub fn load_conversation(&self, id: i64) {
        let loader = Loader::new(self.store.clone(), self.config.clone());
        let events = self.events.clone();
        tokio::spawn(async move {
            let result = loader
                .conversation_detail(id)
                .await
                .map(Box::new)
                .map_err(|err| err.message().to_string());
            let _ = events.send(UiEvent::ConversationLoaded(result));
        });
    }
}

async fn review_worker(
    store: Store,
    annotator: String,
    mut ops: UnboundedReceiver<ReviewOp>,
    events: UnboundedSender<UiEvent>,
) {
    while let Some(op) = ops.recv().await {
        let event = match op {
            ReviewOp::Decide(sample_id, verdict) => {
                let annotator = Some(annotator.clone());
                let result = match decisions::record(
                    &store,
                    sample_id,
                    verdict,
                    annotator,
                    Timestamp::now(),
                )
                .await
                {
                    Ok(outcome) => decisions::describe(sample_id, &outcome),
                    Err(err) => Err(err.message().to_string()),
                };
                UiEvent::Reviewed { sample_id, result }
            }
            ReviewOp::Undo(sample_id) => {
                let result = match decisions::undo(&store, sample_id).await {
                    Ok(Some(s)) => Ok(format!("“{}” is back in the queue", short(&s.text))),
                    Ok(None) => Err(format!(
                        "sample {sample_id} was not decided by a human; nothing to undo"
                    )),
                    Err(err) => Err(err.message().to_string()),
                };
                UiEvent::Undone { sample_id, result }
            }
        };
        if events.send(event).is_err() {
            break;
        }
    }
}

fn describe_changes(changes: &[crate::storage::models::ModelChange]) -> String {
    if changes.is_empty() {
        return "nothing changed".into();
    }
    changes
        .iter()
        .map(|c| {
            format!(
                "{} {} → {} ({} %)",
                c.version, c.from_status, c.to_status, c.traffic_percentage
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `DATA_DIR/exports/export-YYYYmmdd-HHMMSS.jsonl`.
fn export_path(config: &Config) -> PathBuf {
    config.data_dir.join("exports").join(format!(
        "export-{}.jsonl",
        chrono::Utc::now().format("%Y%m%d-%H%M%S")
    ))
}
