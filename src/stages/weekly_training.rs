//! Weekly training (DESIGN §1): when enough approved samples wait, flag the
//! suspect labels ([`crate::suspects`]), train the next version on every
//! other approved sample outside the gold test split, score
//! it **and the production model on the same gold test items**
//! ([`crate::gold`]), and let the gate ([`super::gate`]) register it as
//! `testing` or `rejected`, with a report in `logs/`.
//!
//! Crash safety: the artifact is written to a `.partial-` directory and only
//! renamed into place before registration, which (version row, audit entry,
//! run end, samples marked used) is one transaction. A SIGKILL anywhere
//! before it leaves no version and no marked samples; the next run cleans
//! the partial directory and closes the dead `training_runs` row.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use super::gate::{
    self, Answers, Candidate, Comparison, GateDecision, GateRules, Items, ProductionScore,
};
use super::rejudge::{RejudgeReport, rejudge_backlog};
use super::suspect_flags::flag_suspects;
use crate::config::Config;
use crate::dataset::Sample;
use crate::domain::ModelStatus;
use crate::error::{Error, Result};
use crate::gold::{self, GoldLabel, GoldSummary};
use crate::jobs::{Stage, StageContext, StageJob};
use crate::lang::Language;
use crate::progress::{ProgressEvent, Reporter};
use crate::router::{self, EvalReport, Model, OOS_LABEL, TrainParams};
use crate::storage::Store;
use crate::storage::models::{NewModelVersion, TrainedBy};
use crate::storage::samples::TrainingSample;

/// The weekly-training stage. Its fields are its options.
#[derive(Debug, Clone, Copy)]
pub struct WeeklyTraining {
    /// Train only with at least this many approved unused samples.
    pub min_samples: i64,
    /// Train even with fewer approved unused samples than the minimum, and
    /// register a candidate there are too few gold items to judge (never
    /// one that is clearly worse).
    pub force: bool,
    /// Bump MAJOR (an architecture change) instead of MINOR.
    pub major: bool,
    /// Flag suspect labels first and train without them
    /// ([`crate::suspects`]; `suspects.enabled`).
    pub suspects: bool,
}

/// How the run ended.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum WeeklyOutcome {
    /// Not enough new samples; nothing trained.
    Skipped {
        approved_unused: i64,
        min_samples: i64,
    },
    Trained(TrainingSummary),
}

#[derive(Debug, Clone, Serialize)]
pub struct TrainingSummary {
    pub version: String,
    /// `Testing` or `Rejected`, and the gate's reason in one sentence.
    pub status: ModelStatus,
    pub reason: String,
    pub train_samples: usize,
    /// Approved labels flagged as suspects this run and left out of
    /// training (those in the gold test split still judge).
    pub suspects: usize,
    /// The review backlog the production model re-judged first, and how
    /// much of it it approved (and this version trained on).
    pub rejudged: RejudgeReport,
    /// Gold test items both models were scored on.
    pub test_samples: usize,
    /// On the gold test items; `None` when there are none.
    pub accuracy: Option<f32>,
    pub production_version: Option<String>,
    pub production_accuracy: Option<f32>,
    pub report_path: PathBuf,
    pub seconds: f64,
}

/// The report written to `logs/training-router-vX.Y.Z.json`.
#[derive(Debug, Serialize)]
struct Report<'a> {
    version: &'a str,
    decision: &'a str,
    reason: String,
    /// Both models on the same gold items, with intervals and the paired test.
    gate: Option<&'a Comparison>,
    data: DataCounts,
    gold: GoldSummary,
    parameters: &'a TrainParams,
    new_model: &'a EvalReport,
    production_model: Option<ProductionSide<'a>>,
    /// Per intent: new F1 minus production F1 on the same test split.
    per_intent_f1_delta: Vec<(String, f32)>,
    training: &'a router::TrainingReport,
    seconds: f64,
}

#[derive(Debug, Serialize)]
struct ProductionSide<'a> {
    version: &'a str,
    metrics: Option<&'a EvalReport>,
    load_error: Option<String>,
}

#[derive(Debug, Serialize)]
struct DataCounts {
    approved: usize,
    suspects: usize,
    rejudged: RejudgeReport,
    train: usize,
    test: usize,
    per_intent: std::collections::BTreeMap<String, (usize, usize)>,
    per_language: std::collections::BTreeMap<String, usize>,
}

impl WeeklyTraining {
    /// The configured minimum (`training.min_samples`), a MINOR bump.
    pub fn from_config(config: &Config) -> Self {
        Self {
            min_samples: config.training.min_samples,
            force: false,
            major: false,
            suspects: config.suspects.enabled,
        }
    }
}

impl StageJob for WeeklyTraining {
    const STAGE: Stage = Stage::WeeklyTraining;
    type Outcome = WeeklyOutcome;

    async fn work(self, ctx: &StageContext<'_>) -> Result<WeeklyOutcome> {
        train_next_version(ctx.store, ctx.config, self, ctx.reporter).await
    }

    /// The whole outcome.
    fn counts(outcome: &WeeklyOutcome) -> impl Serialize {
        outcome
    }
}

/// The work of one run.
async fn train_next_version(
    store: &Store,
    config: &Config,
    options: WeeklyTraining,
    reporter: &Reporter,
) -> Result<WeeklyOutcome> {
    let started = Instant::now();
    let approved_unused = store.approved_unused_count().await?;
    if approved_unused < options.min_samples && !options.force {
        tracing::info!(
            approved_unused,
            min_samples = options.min_samples,
            "not enough approved unused samples for weekly training; nothing to do"
        );
        return Ok(WeeklyOutcome::Skipped {
            approved_unused,
            min_samples: options.min_samples,
        });
    }
    let stale = store.fail_stale_training_runs().await?;
    if stale > 0 {
        tracing::warn!(
            stale,
            "closed training runs left running by a process that died"
        );
    }
    remove_partial_artifacts(&config.models_dir());

    let production = load_production(store).await?;
    let serving = production
        .as_ref()
        .and_then(|p| Some((p.version.as_str(), p.model.as_ref().ok()?.clone())));
    let rejudged = rejudge_backlog(store, config, serving, reporter).await?;
    let samples = store.approved_samples().await?;
    let versions = store.list_model_versions().await?;
    let version = next_version(versions.iter().map(|m| m.version.as_str()), options.major);
    let params = TrainParams {
        version: version.clone(),
        seed: config.training.seed,
        epochs: config
            .training
            .epochs
            .unwrap_or(TrainParams::default().epochs),
        ..TrainParams::default()
    };
    let inputs: Vec<Sample> = samples.iter().map(to_sample).collect();
    let suspected = flag_suspects(
        store,
        &samples,
        &inputs,
        &params,
        options.suspects,
        reporter,
    )
    .await?;
    let percent = config.training.test_split_percent;
    // Only gold labels judge; everything else, auto-approved included,
    // trains, except suspects (a suspect in the test split still judges:
    // dropping the items a model disagrees with would flatter it).
    let (test, train): (Vec<&TrainingSample>, Vec<&TrainingSample>) = samples
        .iter()
        .filter(|s| gold::judges(s.id, s.source, percent) || !suspected.contains(&s.id))
        .partition(|s| gold::judges(s.id, s.source, percent));
    if train.is_empty() {
        return Err(Error::failure(
            "there are no approved samples to train on; run daily-capture and review, or `flywheel samples import`",
        ));
    }
    let params_json = serde_json::to_string(&params).unwrap_or_default();
    let run_id = store
        .start_training_run(&version, &params_json, params.epochs as i32)
        .await?;
    tracing::info!(version = %version, train = train.len(), test = test.len(), "weekly training started");

    let attempt = Attempt {
        run_id,
        started,
        partial: config.models_dir().join(format!(".partial-{version}")),
        final_dir: config.models_dir().join(&version),
    };
    let data = Data {
        all: &samples,
        train: train.iter().map(|s| to_sample(s)).collect(),
        test: test.iter().map(|s| to_sample(s)).collect(),
        gold_train: train.iter().filter(|s| s.source.is_gold()).count(),
        used: train.iter().chain(&test).map(|s| s.id).collect(),
        suspects: suspected.len(),
        rejudged,
        production: production.as_ref(),
    };
    let rules = GateRules {
        tolerance: config.training.gate_tolerance,
        oos_tolerance: config.training.oos_tolerance,
        min_gold: config.training.min_gold_test as usize,
        force: options.force,
    };
    let outcome =
        train_and_register(store, config, &params, &attempt, &data, rules, reporter).await;
    match outcome {
        Ok(summary) => Ok(WeeklyOutcome::Trained(summary)),
        Err(err) => {
            attempt.abandon(store, &err).await;
            Err(err)
        }
    }
}

/// A training run's files until its version is registered: whatever
/// fails, [`Attempt::abandon`] is the one clean-up (no artifact left that
/// nothing points at, the run closed as failed).
struct Attempt {
    run_id: i64,
    /// When the stage started (the report and summary give the duration).
    started: Instant,
    /// Where the model is written first.
    partial: PathBuf,
    /// Where it is moved just before registration.
    final_dir: PathBuf,
}

impl Attempt {
    async fn abandon(&self, store: &Store, err: &Error) {
        let _ = std::fs::remove_dir_all(&self.partial);
        let _ = std::fs::remove_dir_all(&self.final_dir);
        let _ = store
            .finish_training_run(self.run_id, "failed", None, Some(err.message()))
            .await;
    }
}

/// The approved samples and their split.
struct Data<'a> {
    all: &'a [TrainingSample],
    train: Vec<Sample>,
    /// The gold test items.
    test: Vec<Sample>,
    /// Gold samples among `train`.
    gold_train: usize,
    /// Ids of the samples trained or judged on (suspects left out of
    /// training stay unused, so a resolved one counts as new).
    used: Vec<i64>,
    /// Suspects flagged this run.
    suspects: usize,
    rejudged: RejudgeReport,
    /// The production model the candidate is scored beside.
    production: Option<&'a ServingProduction>,
}

/// `model_versions.metrics`: the evaluation, and how many gold samples
/// trained the version (what a later tie is broken on).
#[derive(Debug, Serialize, serde::Deserialize)]
struct VersionMetrics<T> {
    #[serde(flatten)]
    evaluation: T,
    gold_train_samples: Option<usize>,
}

/// Train, score against production, decide, move the model into place,
/// write the report and register the version.
async fn train_and_register(
    store: &Store,
    config: &Config,
    params: &TrainParams,
    attempt: &Attempt,
    data: &Data<'_>,
    rules: GateRules,
    reporter: &Reporter,
) -> Result<TrainingSummary> {
    let started = attempt.started;
    let (trained_eval, training_report) = train_and_score(
        store,
        params,
        attempt.run_id,
        &data.train,
        &data.test,
        &attempt.partial,
        reporter,
    )
    .await?;
    let production = match data.production {
        Some(serving) => Some(score_production(serving, &data.test).await?),
        None => None,
    };
    let judged = !data.test.is_empty();
    let production_accuracy = production
        .as_ref()
        .and_then(|p| p.metrics.as_ref())
        .filter(|_| judged)
        .map(|m| m.accuracy);
    let production_score = match &production {
        None => ProductionScore::None,
        Some(p) => match (&p.metrics, &p.load_error) {
            (Some(metrics), _) => ProductionScore::Scored {
                version: &p.version,
                answers: Answers {
                    correct: &metrics.correct,
                },
                gold_train: p.gold_train,
            },
            (None, why) => ProductionScore::Unloadable {
                version: &p.version,
                why: why.as_deref().unwrap_or("unknown error"),
            },
        },
    };
    let out_of_scope: Vec<bool> = data.test.iter().map(|s| s.intent == OOS_LABEL).collect();
    let GateDecision {
        status,
        reason,
        comparison,
    } = gate::decide(
        &Candidate {
            answers: Answers {
                correct: &trained_eval.correct,
            },
            gold_train: data.gold_train,
        },
        &production_score,
        Items {
            out_of_scope: &out_of_scope,
        },
        rules,
    );

    let version = &params.version;
    let final_dir = &attempt.final_dir;
    // The version is above every registered one, so a directory under its
    // name is a model a killed run moved into place but never registered.
    if final_dir.exists() {
        tracing::warn!(path = %final_dir.display(), "removing a model an interrupted run never registered");
        let _ = std::fs::remove_dir_all(final_dir);
    }
    std::fs::rename(&attempt.partial, final_dir).map_err(|err| {
        Error::failure(format!(
            "moving the trained model to {}: {err}",
            final_dir.display()
        ))
    })?;
    let report_path = config.logs_dir().join(format!("training-{version}.json"));
    let report = Report {
        version,
        decision: status.as_str(),
        reason: reason.clone(),
        gate: comparison.as_ref(),
        data: data_counts(data),
        gold: gold_summary(data.all, config.training.test_split_percent),
        parameters: params,
        new_model: &trained_eval,
        production_model: production.as_ref().map(|p| ProductionSide {
            version: &p.version,
            metrics: p.metrics.as_ref(),
            load_error: p.load_error.clone(),
        }),
        per_intent_f1_delta: f1_deltas(
            &trained_eval,
            production.as_ref().and_then(|p| p.metrics.as_ref()),
        ),
        training: &training_report,
        seconds: started.elapsed().as_secs_f64(),
    };
    write_report(&report_path, &report)?;

    let new = NewModelVersion {
        version: version.clone(),
        status,
        artifact_path: Some(final_dir.display().to_string()),
        train_samples: Some(data.train.len() as i32),
        test_samples: Some(data.test.len() as i32),
        test_accuracy: judged.then(|| f64::from(trained_eval.accuracy)),
        traffic_percentage: 0,
        metrics: serde_json::to_string(&VersionMetrics {
            evaluation: &trained_eval,
            gold_train_samples: Some(data.gold_train),
        })
        .ok(),
    };
    store
        .register_trained_version(
            &new,
            &crate::lifecycle::current_actor(),
            &TrainedBy {
                run: attempt.run_id,
                report_path: &report_path.display().to_string(),
                used_sample_ids: &data.used,
            },
        )
        .await?;
    tracing::info!(version = %version, status = status.as_str(), "{reason}");
    Ok(TrainingSummary {
        version: version.clone(),
        status,
        reason,
        train_samples: data.train.len(),
        suspects: data.suspects,
        rejudged: data.rejudged.clone(),
        test_samples: data.test.len(),
        accuracy: judged.then_some(trained_eval.accuracy),
        production_version: production.map(|p| p.version),
        production_accuracy,
        report_path,
        seconds: started.elapsed().as_secs_f64(),
    })
}

struct Production {
    version: String,
    metrics: Option<EvalReport>,
    load_error: Option<String>,
    /// Gold samples that trained it, when its registration kept that.
    gold_train: Option<usize>,
}

/// Train (the same call as `flywheel train`), save the model to `partial`,
/// and score it on the test split; epochs go to `training_runs` as they end.
async fn train_and_score(
    store: &Store,
    params: &TrainParams,
    run_id: i64,
    train: &[Sample],
    test: &[Sample],
    partial: &Path,
    reporter: &Reporter,
) -> Result<(EvalReport, router::TrainingReport)> {
    // Progress goes to training_runs (for the console) and on to the caller.
    let (inner, mut events) = reporter.intercept();
    let outer = reporter.clone();
    let progress_store = store.clone();
    let forwarder = tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let ProgressEvent::Epoch {
                epoch,
                loss,
                validation_accuracy,
                ..
            } = &event
            {
                let _ = progress_store
                    .update_training_progress(
                        run_id,
                        *epoch as i32,
                        f64::from(*loss),
                        validation_accuracy.map(f64::from),
                    )
                    .await;
            }
            outer.send(event);
        }
    });

    let train_owned = train.to_vec();
    let test_owned = test.to_vec();
    let params_owned = params.clone();
    let partial_owned = partial.to_path_buf();
    let trained = tokio::task::spawn_blocking(move || -> Result<_> {
        // The same call as `flywheel train`: selection carved inside, refit on all.
        let trained = router::train(&train_owned, None, &params_owned, &inner)?;
        std::fs::create_dir_all(&partial_owned).map_err(|err| {
            Error::failure(format!("creating {}: {err}", partial_owned.display()))
        })?;
        trained.save(&partial_owned)?;
        let evaluation = router::evaluate(&trained.model, &test_owned);
        Ok((evaluation, trained.report))
    })
    .await
    .map_err(|err| Error::failure(format!("the training task failed: {err}")))?;
    let _ = forwarder.await;
    trained
}

/// The production model, loaded once for the run: it re-judges the
/// backlog and is scored beside the candidate. A model that does not load
/// is kept with the reason (the gate says so; nothing is re-judged).
struct ServingProduction {
    version: String,
    model: std::result::Result<Arc<Model>, String>,
    /// Gold samples that trained it, when its registration kept that.
    gold_train: Option<usize>,
}

async fn load_production(store: &Store) -> Result<Option<ServingProduction>> {
    let Some(p) = store
        .list_model_versions()
        .await?
        .into_iter()
        .find(|m| m.status == ModelStatus::Production)
    else {
        return Ok(None);
    };
    let model = match p.artifact_path.map(PathBuf::from) {
        None => Err("no artifact path recorded".to_string()),
        Some(artifact) => tokio::task::spawn_blocking(move || Model::load(&artifact))
            .await
            .map_err(|err| err.to_string())
            .and_then(|loaded| {
                loaded
                    .map(Arc::new)
                    .map_err(|err| err.message().to_string())
            }),
    };
    let gold_train = p
        .metrics
        .as_deref()
        .and_then(|m| serde_json::from_str::<VersionMetrics<serde::de::IgnoredAny>>(m).ok())
        .and_then(|m| m.gold_train_samples);
    Ok(Some(ServingProduction {
        version: p.version,
        model,
        gold_train,
    }))
}

/// The production model scored on the same test split.
async fn score_production(serving: &ServingProduction, test: &[Sample]) -> Result<Production> {
    let (metrics, load_error) = match &serving.model {
        Err(why) => (None, Some(why.clone())),
        Ok(model) => {
            let (model, test) = (model.clone(), test.to_vec());
            let metrics = tokio::task::spawn_blocking(move || router::evaluate(&model, &test))
                .await
                .map_err(|err| Error::failure(format!("scoring production failed: {err}")))?;
            (Some(metrics), None)
        }
    };
    Ok(Production {
        version: serving.version.clone(),
        metrics,
        load_error,
        gold_train: serving.gold_train,
    })
}

fn to_sample(s: &TrainingSample) -> Sample {
    Sample {
        text: s.text.clone(),
        intent: s.intent.clone(),
        language: s.language.as_deref().and_then(Language::parse),
        confidence: None,
        source: None,
    }
}

/// The next `router-vMAJOR.MINOR.PATCH`: MINOR+1 (MAJOR+1 with `major`)
/// over every version ever registered, rejected ones included, so numbers
/// are never reused. The first is `router-v1.0.0`.
pub fn next_version<'a>(existing: impl Iterator<Item = &'a str>, major: bool) -> String {
    let highest = existing
        .filter_map(|v| {
            let mut parts = v
                .strip_prefix("router-v")?
                .split('.')
                .map(|p| p.parse::<u32>().ok());
            Some((parts.next()??, parts.next()??, parts.next()??))
        })
        .max();
    match highest {
        None => "router-v1.0.0".into(),
        Some((ma, _, _)) if major => format!("router-v{}.0.0", ma + 1),
        Some((ma, mi, _)) => format!("router-v{ma}.{}.0", mi + 1),
    }
}

fn remove_partial_artifacts(models_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(models_dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(".partial-") {
            tracing::warn!(path = %entry.path().display(), "removing a half-written model from an interrupted run");
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn data_counts(data: &Data<'_>) -> DataCounts {
    let (all, train, test) = (data.all, &data.train, &data.test);
    let mut per_intent = std::collections::BTreeMap::<String, (usize, usize)>::new();
    for s in train {
        per_intent.entry(s.intent.clone()).or_default().0 += 1;
    }
    for s in test {
        per_intent.entry(s.intent.clone()).or_default().1 += 1;
    }
    let mut per_language = std::collections::BTreeMap::new();
    for s in all {
        *per_language
            .entry(s.language.clone().unwrap_or_else(|| "unknown".into()))
            .or_insert(0) += 1;
    }
    DataCounts {
        approved: all.len(),
        suspects: data.suspects,
        rejudged: data.rejudged.clone(),
        train: train.len(),
        test: test.len(),
        per_intent,
        per_language,
    }
}

/// The gold set of this run's approved samples, as `status` reports it.
fn gold_summary(all: &[TrainingSample], percent: u32) -> GoldSummary {
    let gold: Vec<GoldLabel> = all
        .iter()
        .filter(|s| s.source.is_gold())
        .map(|s| GoldLabel {
            id: s.id,
            intent: s.intent.clone(),
            language: s.language.clone(),
        })
        .collect();
    let intents = all
        .iter()
        .map(|s| s.intent.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    GoldSummary::of(&gold, intents, percent)
}

fn f1_deltas(new: &EvalReport, production: Option<&EvalReport>) -> Vec<(String, f32)> {
    let Some(production) = production else {
        return Vec::new();
    };
    let mut deltas: Vec<(String, f32)> = new
        .per_intent
        .iter()
        .map(|(intent, m)| {
            let before = production.per_intent.get(intent).map_or(0.0, |p| p.f1);
            (intent.clone(), m.f1 - before)
        })
        .collect();
    deltas.sort_by(|a, b| a.1.total_cmp(&b.1));
    deltas
}

fn write_report(path: &Path, report: &Report<'_>) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|err| Error::failure(format!("creating {}: {err}", dir.display())))?;
    }
    let bytes = serde_json::to_vec_pretty(report)
        .map_err(|err| Error::failure(format!("encoding the training report: {err}")))?;
    // Write then rename: a reader never sees half a report.
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|err| {
            // A full disk leaves no half-written file behind.
            let _ = std::fs::remove_file(&tmp);
            Error::failure(format!("writing {}: {err}", path.display()))
        })
}

#[cfg(test)]
mod tests {
    use super::next_version;

    #[test]
    fn versions_bump_minor_or_major_and_never_reuse() {
        assert_eq!(next_version([].into_iter(), false), "router-v1.0.0");
        assert_eq!(
            next_version(
                ["router-v1.0.0", "router-v1.2.0", "router-v1.1.0", "junk"].into_iter(),
                false
            ),
            "router-v1.3.0"
        );
        assert_eq!(
            next_version(["router-v1.3.1"].into_iter(), true),
            "router-v2.0.0"
        );
    }
}
