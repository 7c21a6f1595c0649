//! Two-way Label Studio sync (DESIGN §1 review sync, §11): push the review
//! queue as tasks carrying the model's prediction, pull finished
//! annotations back and apply them through the same storage call as the
//! console's review pane.
//!
//! Never push twice: every batch is reserved in `label_studio_tasks` before
//! the import call and confirmed after it; reservations a crash left
//! unconfirmed are reconciled by our `sample_id` in the task data before
//! anything new is pushed. Label Studio being unreachable is found out
//! before anything changes locally (exit 69).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::Config;
use crate::domain::{Provenance, ReviewStatus, ReviewVerdict, WaitingPlace};
use crate::error::{Error, ErrorKind, Result};
use crate::jobs::{Stage, StageContext, StageJob};
use crate::privacy::Redactor;
use crate::progress::Reporter;
use crate::review::annotations::{Applied, apply_task};
use crate::review::label_studio::{
    DEFAULT_LABEL_CONFIG, LabelStudioClient, ModelPrediction, NewTask, REVIEW_ORDER_VERSION,
    TaskPrediction, UNCERTAINTY_SAMPLING, WebhookRegistration, label_config_with_intents,
};
use crate::review::order::review_order;
use crate::review::rescore::rescore;
use crate::storage::Store;
use crate::storage::label_studio_tasks::PushedTask;
use crate::suspects::Suspicion;

/// The Label Studio sync stage. Its fields are its options.
#[derive(Clone)]
pub struct LabelStudioSync {
    pub client: LabelStudioClient,
    /// Push at most this many samples.
    pub limit: Option<i64>,
    /// Overrides `label_studio.project_id`.
    pub project_id: Option<i64>,
    pub push: bool,
    pub pull: bool,
}

impl LabelStudioSync {
    /// A full sync (push, then pull) through `client`.
    pub fn new(client: LabelStudioClient) -> Self {
        Self {
            client,
            limit: None,
            project_id: None,
            push: true,
            pull: true,
        }
    }

    /// A full sync with the configured client, or a configuration error
    /// saying what to set.
    pub fn from_config(config: &Config) -> Result<Self> {
        Ok(Self::new(LabelStudioClient::from_config(config)?))
    }
}

/// What a sync did; also the counts recorded in `job_runs`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncReport {
    pub project_id: i64,
    pub project_created: bool,
    pub label_config_updated: bool,
    pub pushed: usize,
    /// Unconfirmed pushes of an interrupted run found in Label Studio.
    pub reconciled: usize,
    /// Waiting tasks given a new place in Label Studio's labelling stream.
    pub reordered: usize,
    /// Tasks the pull read from Label Studio: those annotated (or skipped)
    /// and changed since the last pull and its overlap, not the project.
    pub read: usize,
    /// Tasks read back with at least one annotation.
    pub pulled: usize,
    pub approved: usize,
    pub corrected: usize,
    pub rejected: usize,
    /// Annotations that could not be applied (no choice, unknown intent…).
    pub unusable: usize,
    /// Tasks whose annotations disagree (the most recent won).
    pub disagreements: usize,
    /// What registering serve's webhook did, when `label_studio.webhook_url` is set.
    pub webhook: Option<WebhookRegistration>,
    pub errors: Vec<String>,
}

impl StageJob for LabelStudioSync {
    const STAGE: Stage = Stage::LabelStudioSync;
    type Outcome = SyncReport;

    async fn work(self, ctx: &StageContext<'_>) -> Result<SyncReport> {
        sync(ctx.store, ctx.config, &self, ctx.reporter).await
    }

    /// The whole report.
    fn counts(report: &SyncReport) -> impl Serialize {
        report
    }
}

async fn sync(
    store: &Store,
    config: &Config,
    options: &LabelStudioSync,
    reporter: &Reporter,
) -> Result<SyncReport> {
    let client = &options.client;
    let webhook = webhook_settings(config)?;
    // Fail before touching anything local when Label Studio is down or the
    // key is wrong.
    client.whoami().await?;
    let mut report = SyncReport::default();
    let intents = known_intents(store).await?;
    let project = ensure_project(store, config, client, options, &intents, &mut report).await?;
    report.project_id = project;
    if let Some((url, secret)) = webhook {
        // Best effort: the pull below is the source of truth either way.
        match client.ensure_webhook(project, url, secret).await {
            Ok(done) => report.webhook = Some(done),
            Err(err) => {
                tracing::warn!("could not register the Label Studio webhook: {err}");
                report
                    .errors
                    .push(format!("registering the webhook {url}: {err}"));
            }
        }
    }
    if options.push {
        push(
            store,
            config,
            client,
            project,
            options.limit,
            &mut report,
            reporter,
        )
        .await?;
    }
    if options.pull {
        // Validated to at most a day, so the cast cannot wrap.
        let overlap = chrono::Duration::seconds(config.label_studio.pull_overlap_secs as i64);
        pull(
            store,
            client,
            project,
            &intents,
            overlap,
            &mut report,
            reporter,
        )
        .await?;
        // Labels just pulled may settle audits.
        store.record_version_performance().await?;
    }
    if options.push {
        // What is left waiting, in the product's order, for Label Studio's
        // labelling stream. Best effort: the tasks and labels are safe
        // either way, and a failed step is redone by the next sync.
        if let Err(err) = order_review(store, config, client, project, &mut report).await {
            tracing::warn!("could not hand the review order to Label Studio: {err}");
            report
                .errors
                .push(format!("ordering the labelling stream: {err}"));
        }
    }
    Ok(report)
}

/// The webhook to register: `label_studio.webhook_url` with its secret,
/// or nothing when no URL is set; a URL without a secret is refused (serve
/// would answer every delivery 404).
fn webhook_settings(config: &Config) -> Result<Option<(&str, &str)>> {
    let Some(url) = config.label_studio.webhook_url.as_deref() else {
        return Ok(None);
    };
    let Some(secret) = &config.label_studio.webhook_secret else {
        return Err(Error::config(
            "label_studio.webhook_url is set but label_studio.webhook_secret is not: set both \
             (FLYWHEEL_LABEL_STUDIO__WEBHOOK_SECRET), the same secret for serve and the sync",
        ));
    };
    Ok(Some((url, secret.expose())))
}

async fn known_intents(store: &Store) -> Result<Vec<String>> {
    let mut intents: BTreeSet<String> = store.sample_intents().await?.into_iter().collect();
    intents.remove("");
    Ok(intents.into_iter().collect())
}

/// Where a project Flywheel created is remembered when none is configured.
fn project_file(config: &Config) -> PathBuf {
    config.data_dir.join("label-studio-project-id")
}

async fn ensure_project(
    store: &Store,
    config: &Config,
    client: &LabelStudioClient,
    options: &LabelStudioSync,
    intents: &[String],
    report: &mut SyncReport,
) -> Result<i64> {
    let known = match options.project_id.or(config.label_studio.project_id) {
        Some(id) => Some(id),
        None => match read_project_file(&project_file(config))? {
            Some(id) => Some(id),
            None => store.latest_label_studio_project().await?,
        },
    };
    let wanted = label_config_with_intents(DEFAULT_LABEL_CONFIG, intents)?;
    match known {
        Some(id) => {
            let project = client.get_project(id).await?;
            let missing = intents
                .iter()
                .any(|i| !project.label_config.contains(&format!("value=\"{i}\"")));
            if missing {
                client.update_label_config(id, &wanted).await?;
                report.label_config_updated = true;
                tracing::info!(
                    project = id,
                    "added new intents to the Label Studio project"
                );
            }
            Ok(id)
        }
        None => {
            let id = client
                .create_project("Flywheel intent review", &wanted)
                .await?;
            let path = project_file(config);
            std::fs::create_dir_all(&config.data_dir)
                .and_then(|()| std::fs::write(&path, id.to_string()))
                .map_err(|err| {
                    Error::failure(format!(
                        "created Label Studio project {id} but could not remember it in {}: {err}; set LABEL_STUDIO_PROJECT_ID={id}",
                        path.display()
                    ))
                })?;
            tracing::info!(
                project = id,
                "created a Label Studio project; set LABEL_STUDIO_PROJECT_ID={id} to pin it"
            );
            report.project_created = true;
            Ok(id)
        }
    }
}

fn read_project_file(path: &Path) -> Result<Option<i64>> {
    match std::fs::read_to_string(path) {
        Ok(text) => text.trim().parse().map(Some).map_err(|_| {
            Error::config(format!(
                "{} should hold a Label Studio project id, not {:?}",
                path.display(),
                text.trim()
            ))
        }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(Error::failure(format!("reading {}: {err}", path.display()))),
    }
}

async fn push(
    store: &Store,
    config: &Config,
    client: &LabelStudioClient,
    project: i64,
    limit: Option<i64>,
    report: &mut SyncReport,
    reporter: &Reporter,
) -> Result<()> {
    // 1. A crash between import and confirm left reservations: find them in
    //    Label Studio by sample id; confirm those found, release the rest.
    let unconfirmed = store.unconfirmed_pushes(project).await?;
    if !unconfirmed.is_empty() {
        let found = client
            .find_tasks_by_sample_ids(project, &unconfirmed)
            .await?;
        let confirmed: Vec<(i64, i64)> = unconfirmed
            .iter()
            .filter_map(|s| found.get(s).map(|t| (*s, *t)))
            .collect();
        let missing: Vec<i64> = unconfirmed
            .iter()
            .copied()
            .filter(|s| !found.contains_key(s))
            .collect();
        store.confirm_pushes(project, &confirmed).await?;
        store.release_pushes(project, &missing).await?;
        report.reconciled = confirmed.len();
        if !confirmed.is_empty() {
            tracing::warn!(
                reconciled = confirmed.len(),
                released = missing.len(),
                "an earlier sync was interrupted mid-push; its tasks were found in Label Studio and not pushed again"
            );
        }
    }

    // 2. New pushes in review order (audits and suspects their shares), in batches:
    //    what waits here and has never had a task.
    let production = store.production_model().await?.map(|m| m.version);
    let batch_size = config.label_studio.batch_size.max(1);
    let mut suspicions: HashMap<i64, Suspicion> = HashMap::new();
    let to_push: Vec<i64> = review_order(store, config)
        .await?
        .into_iter()
        .filter(|r| r.item.place == WaitingPlace::Here && !r.item.has_task)
        .take(limit.map_or(usize::MAX, |l| l.max(0) as usize))
        .map(|r| {
            if let Some(suspicion) = r.item.suspicion() {
                suspicions.insert(r.item.sample_id, suspicion);
            }
            r.item.sample_id
        })
        .collect();
    reporter.phase("push", limit.map(|l| l as u64));
    let redactor = Redactor::new(&config.privacy);
    for ids in to_push.chunks(batch_size) {
        reporter.check_cancelled()?;
        // Read now: a sample a human decided since the order was read
        // (in the console) no longer waits.
        let mut batch = store.samples_by_ids(ids).await?;
        batch.retain(|s| {
            s.review_status == ReviewStatus::NeedsReview
                || (s.review_status == ReviewStatus::Approved && s.source != Provenance::Human)
        });
        if batch.is_empty() {
            continue;
        }
        let ids: Vec<i64> = batch.iter().map(|s| s.id).collect();
        store.reserve_pushes(project, &ids).await?;
        let tasks: Vec<NewTask> = batch
            .iter()
            .map(|s| {
                let model_version = s
                    .predicted_by_version
                    .clone()
                    .or_else(|| production.clone())
                    .unwrap_or_else(|| "unknown".into());
                NewTask {
                    sample_id: s.id,
                    text: redactor.redact(&s.text).into_owned(),
                    language: s.language.clone().unwrap_or_default(),
                    occurrences: i64::from(s.occurrences),
                    priority: i64::from(s.priority),
                    prediction: ModelPrediction {
                        model_version,
                        intent: s.intent.clone(),
                        score: s.confidence.unwrap_or(0.0),
                    },
                    suspect: suspicions.get(&s.id).cloned(),
                }
            })
            .collect();
        match client.import_tasks(project, &tasks).await {
            Ok(task_ids) => {
                let pairs: Vec<(i64, i64)> = ids.iter().copied().zip(task_ids).collect();
                store.confirm_pushes(project, &pairs).await?;
                report.pushed += pairs.len();
                reporter.advance(report.pushed as u64);
            }
            // A refused batch (bad request) certainly did not import: release
            // it so it is tried again. Anything else may have imported:
            // keep the reservation for the next run's reconciliation.
            Err(err) if err.kind() == ErrorKind::BadInput => {
                store.release_pushes(project, &ids).await?;
                return Err(err);
            }
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// Hand the review order to Label Studio (DESIGN §11): every waiting task
/// carries one prediction of [`REVIEW_ORDER_VERSION`] — the model's intent,
/// preselected — whose score is its place in the product's order, and the
/// project serves the lowest score first. Only tasks out of order get a new
/// score; their old prediction is deleted first, and the score we hold is
/// cleared until the new one is in, so a failure half-way is redone.
async fn order_review(
    store: &Store,
    config: &Config,
    client: &LabelStudioClient,
    project: i64,
    report: &mut SyncReport,
) -> Result<()> {
    // The project's waiting tasks, in the place review order gives them.
    let mut tasks: HashMap<i64, PushedTask> = store
        .pushed_tasks(project)
        .await?
        .into_iter()
        .map(|t| (t.sample_id, t))
        .collect();
    let ordered: Vec<(PushedTask, String)> = review_order(store, config)
        .await?
        .into_iter()
        .filter_map(|r| Some((tasks.remove(&r.item.sample_id)?, r.item.intent)))
        .collect();
    let scores = rescore(
        &ordered
            .iter()
            .map(|(t, _)| t.order_score)
            .collect::<Vec<_>>(),
    );
    let changed: Vec<(&PushedTask, &str, f64)> = ordered
        .iter()
        .zip(scores)
        .filter_map(|((task, intent), score)| score.map(|s| (task, intent.as_str(), s)))
        .collect();
    if !changed.is_empty() {
        let ids: Vec<i64> = changed.iter().map(|(t, _, _)| t.task_id).collect();
        let cleared: Vec<(i64, Option<f64>)> = ids.iter().map(|id| (*id, None)).collect();
        store.set_order_scores(project, &cleared).await?;
        client.delete_predictions(project, &ids).await?;
        let predictions: Vec<TaskPrediction> = changed
            .iter()
            .map(|(task, intent, score)| TaskPrediction {
                task_id: task.task_id,
                prediction: ModelPrediction {
                    model_version: REVIEW_ORDER_VERSION.into(),
                    intent: intent.to_string(),
                    score: *score,
                },
            })
            .collect();
        client.import_predictions(project, &predictions).await?;
        let scored: Vec<(i64, Option<f64>)> = changed
            .iter()
            .map(|(t, _, s)| (t.task_id, Some(*s)))
            .collect();
        store.set_order_scores(project, &scored).await?;
        report.reordered = changed.len();
    }
    if ordered.is_empty() {
        return Ok(());
    }
    let settings = client.get_project(project).await?;
    if settings.sampling != UNCERTAINTY_SAMPLING || settings.model_version != REVIEW_ORDER_VERSION {
        client
            .set_review_order(project, REVIEW_ORDER_VERSION)
            .await?;
    }
    Ok(())
}

/// Read the annotated tasks changed since the last pull and apply their
/// annotations ([`apply_task`], the path serve's webhook takes too). The
/// pull starts from the project's task watermark — the newest task
/// `updated_at` a completed pull read, on Label Studio's clock — less
/// `overlap`, so what it reads follows what annotators changed, not the
/// project's size (tasks nobody annotated are never read). Before the
/// first pull of a project synced by an older version, the newest
/// annotation applied stands in for the watermark.
async fn pull(
    store: &Store,
    client: &LabelStudioClient,
    project: i64,
    intents: &[String],
    overlap: chrono::Duration,
    report: &mut SyncReport,
    reporter: &Reporter,
) -> Result<()> {
    let watermark = match store.task_watermark(project).await? {
        Some(at) => Some(at),
        None => store.pull_watermark(project).await?.map(|t| t.0),
    };
    let since = watermark.map(|t| t - overlap);
    reporter.phase("pull", None);
    let tasks = client.annotated_tasks_updated_since(project, since).await?;
    report.read = tasks.len();
    let newest = tasks.iter().map(|t| t.updated_at).max();
    let is_known = |intent: &str| intents.iter().any(|i| i == intent);
    for task in tasks {
        reporter.check_cancelled()?;
        let applied = apply_task(store, project, &task, is_known).await?;
        if applied.was_annotated() {
            report.pulled += 1;
        }
        match applied {
            Applied::Mismatch { carries, ours } => report.errors.push(format!(
                "task {} now carries sample {carries:?}, not {ours}; skipped",
                task.id
            )),
            Applied::Unusable {
                reason,
                disagreement,
            } => {
                report.disagreements += usize::from(disagreement);
                report.unusable += 1;
                report.errors.push(format!("task {}: {reason}", task.id));
            }
            Applied::Recorded {
                verdict,
                applied,
                disagreement,
                ..
            } => {
                report.disagreements += usize::from(disagreement);
                if applied {
                    *match verdict {
                        ReviewVerdict::Accept => &mut report.approved,
                        ReviewVerdict::Choose(_) => &mut report.corrected,
                        ReviewVerdict::Reject => &mut report.rejected,
                    } += 1;
                }
            }
            Applied::NotOurs | Applied::NoAnnotation | Applied::Unchanged => {}
        }
    }
    // Only a pull that went through every task moves the watermark: one
    // that failed half-way is read again from the same point.
    if let Some(newest) = newest {
        store.advance_task_watermark(project, newest).await?;
    }
    Ok(())
}
