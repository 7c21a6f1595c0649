//! Training (issue 3 items 1, 2, 5; issue 15 item 2): features, the
//! ensemble members (see `sgd.rs` for the loop itself), then calibration and
//! the fallback threshold on validation data, and the report. Without a
//! validation set, [`train`] carves one out of the samples for those
//! choices and then refits on all of them.

use std::collections::BTreeMap;
use std::time::Instant;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::artifact::{self, Metadata};
use super::calibrate;
use super::eval::{EvalReport, evaluate_probabilities};
use super::features::{FeatureConfig, Scratch, Vocab};
use super::model::{Linear, Model};
use super::sgd::{Example, Outcome, Trainer};
use super::svm;
use crate::dataset::Sample;
use crate::error::{Error, Result};
use crate::lang;
use crate::progress::Reporter;

/// Knobs of one training run. `Default` holds the tuned values (and fills
/// fields missing from a stored copy).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainParams {
    /// Model version, e.g. `router-v1.1.0`.
    pub version: String,
    /// Maximum epochs (the learning rate decays to zero over them).
    pub epochs: u32,
    pub seed: u64,
    /// Stop as soon as validation accuracy reaches this; the run "fails" if
    /// it never does.
    pub target_accuracy: Option<f32>,
    /// Use this instead of the threshold chosen on validation data.
    pub fallback_threshold: Option<f32>,
    /// Stop after this many epochs without a better validation accuracy.
    pub patience: u32,
    pub dim: usize,
    pub learning_rate: f32,
    pub batch_size: usize,
    pub label_smoothing: f32,
    /// Ensemble members, each trained from its own seed.
    pub members: usize,
    /// Share of an utterance's n-grams hidden in each training step: cheap
    /// augmentation that stops the model leaning on a few memorised n-grams.
    pub feature_dropout: f32,
    /// Cost of a margin violation for the linear SVM member; 0: no linear
    /// member.
    pub linear_c: f32,
    /// Weight of the linear member's probabilities in the mix, in (0, 1];
    /// `None`: chosen on the selection data among [`LINEAR_SHARES`] (0 drops
    /// the member), or [`DEFAULT_LINEAR_SHARE`] without selection data.
    pub linear_share: Option<f32>,
    pub features: FeatureConfig,
    /// Share of the samples carved off (stratified by intent) to choose the
    /// epochs, temperature and fallback threshold when no validation set is
    /// given; the model is then refit on all of them. 0: no selection.
    pub selection_share: f32,
}

impl Default for TrainParams {
    fn default() -> Self {
        Self {
            version: "router-v1.0.0".into(),
            epochs: 20,
            seed: 42,
            target_accuracy: None,
            fallback_threshold: None,
            patience: 5,
            dim: 64,
            learning_rate: 0.2,
            batch_size: 32,
            label_smoothing: 0.1,
            members: 2,
            feature_dropout: 0.3,
            linear_c: 4.0,
            linear_share: None,
            features: FeatureConfig::default(),
            selection_share: 0.1,
        }
    }
}

/// The linear member's shares of the mix tried on selection data.
pub const LINEAR_SHARES: [f32; 4] = [0.0, 0.25, 0.5, 0.75];

/// The linear member's share when nothing chose it.
pub const DEFAULT_LINEAR_SHARE: f32 = 0.5;

/// Threshold used when there is no validation data and no override.
pub const DEFAULT_FALLBACK_THRESHOLD: f32 = 0.5;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub member: usize,
    pub epoch: u32,
    pub loss: f32,
    pub validation_accuracy: Option<f32>,
    pub seconds: f64,
    /// An epoch of the final training on all the data (after selection).
    #[serde(default)]
    pub refit: bool,
}

/// The training report written next to the model (`training-report.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingReport {
    pub version: String,
    pub params: TrainParams,
    pub features: usize,
    pub epochs: Vec<EpochRecord>,
    /// Best validation accuracy (argmax, before calibration) per member.
    pub best_validation_accuracy: Option<f32>,
    /// `Some(false)` when a target was set and not reached.
    pub target_met: Option<bool>,
    pub warnings: Vec<String>,
    pub train_seconds: f64,
    /// Metrics on the validation data: the selection share when there was
    /// no validation file (scored by the model trained without it).
    pub validation: Option<EvalReport>,
    /// Epochs of the refit on all the data, when there was one.
    #[serde(default)]
    pub refit_epochs: Option<u32>,
}

pub struct TrainedModel {
    pub model: Model,
    pub report: TrainingReport,
}

impl TrainedModel {
    /// Write the artifact directory and the training report into `dir`.
    pub fn save(&self, dir: &std::path::Path) -> Result<()> {
        artifact::save(&self.model, dir)?;
        let bytes = serde_json::to_vec_pretty(&self.report)
            .map_err(|e| Error::failure(format!("encoding the training report: {e}")))?;
        std::fs::write(dir.join(artifact::REPORT_FILE), bytes)
            .map_err(|e| Error::failure(format!("writing the training report: {e}")))
    }
}

/// Train a router on `samples`: what `flywheel train` and weekly training
/// run, and what `cargo bench --bench router` measures.
///
/// With `validation`, that set drives early stopping, the temperature and
/// the fallback threshold, and the model is trained on `samples` alone.
/// Without it, a stratified `params.selection_share` of `samples` is carved
/// off for those choices; then the members are trained again on all of
/// `samples` for the chosen number of epochs and given the chosen
/// temperature and threshold, so no label is spent on selection only (weekly
/// training has few). A share of 0 trains once on everything, with the
/// default threshold.
pub fn train(
    samples: &[Sample],
    validation: Option<&[Sample]>,
    params: &TrainParams,
    reporter: &Reporter,
) -> Result<TrainedModel> {
    if let Some(validation) = validation.filter(|v| !v.is_empty()) {
        return Ok(fit(samples, Some(validation), params, reporter)?.0);
    }
    if !(0.0..1.0).contains(&params.selection_share) {
        return Err(Error::usage("the selection share must be in [0, 1)"));
    }
    let (fit_set, selection) = if params.selection_share > 0.0 {
        split_validation(samples.to_vec(), params.selection_share, params.seed)
    } else {
        (Vec::new(), Vec::new())
    };
    if selection.is_empty() {
        return Ok(fit(samples, None, params, reporter)?.0);
    }
    let started = Instant::now();
    let (selected, best_epochs) = fit(&fit_set, Some(&selection), params, reporter)?;
    // The members stopped at their best selection epoch; the refit runs a
    // whole learning-rate schedule of that length on all the data.
    let epochs = (best_epochs.iter().map(|&e| f64::from(e)).sum::<f64>() / best_epochs.len() as f64)
        .round()
        .max(1.0) as u32;
    let chosen_share = selected.model.metadata.linear_share;
    let refit_params = TrainParams {
        epochs,
        target_accuracy: None,
        linear_c: if chosen_share > 0.0 {
            params.linear_c
        } else {
            0.0
        },
        linear_share: Some(chosen_share).filter(|&s| s > 0.0),
        ..params.clone()
    };
    reporter.note(format!(
        "refitting on all {} samples for {epochs} epochs",
        samples.len()
    ));
    let (refit, _) = fit(samples, None, &refit_params, reporter)?;
    let TrainedModel { mut model, report } = refit;
    let chosen = &selected.model.metadata;
    model.metadata.temperature = chosen.temperature;
    model.metadata.linear_temperature = chosen.linear_temperature;
    model.metadata.fallback_threshold = chosen.fallback_threshold;
    model.metadata.fallback_threshold_source = chosen.fallback_threshold_source.clone();
    model.metadata.validation_samples = chosen.validation_samples;
    model.metadata.validation_metrics = chosen.validation_metrics.clone();
    model.metadata.epochs_run = epochs;
    model.metadata.train_seconds = started.elapsed().as_secs_f64();
    let mut history = selected.report.epochs;
    history.extend(
        report
            .epochs
            .into_iter()
            .map(|e| EpochRecord { refit: true, ..e }),
    );
    let report = TrainingReport {
        params: params.clone(),
        features: report.features,
        epochs: history,
        warnings: report.warnings,
        train_seconds: model.metadata.train_seconds,
        refit_epochs: Some(epochs),
        ..selected.report
    };
    Ok(TrainedModel { model, report })
}

/// One training run: the members on `samples`, then (with validation data)
/// the temperature and the fallback threshold chosen on `validation`.
/// Returns the epoch count each member was taken at as well.
fn fit(
    samples: &[Sample],
    validation: Option<&[Sample]>,
    params: &TrainParams,
    reporter: &Reporter,
) -> Result<(TrainedModel, Vec<u32>)> {
    let started = Instant::now();
    let mut warnings = Vec::new();
    let labels = check_labels(samples, &mut warnings)?;
    for w in &warnings {
        tracing::warn!("{w}");
        reporter.note(w.clone());
    }
    if params.dim == 0 || params.batch_size == 0 || params.members == 0 || params.epochs == 0 {
        return Err(Error::usage(
            "epochs, dim, batch size and members must be positive",
        ));
    }
    if !(params.linear_c >= 0.0 && params.linear_c.is_finite())
        || params.linear_share.is_some_and(|s| !(s > 0.0 && s <= 1.0))
    {
        return Err(Error::usage(
            "linear_c must be 0 (no linear member) or positive, with linear_share in (0, 1]",
        ));
    }
    let label_index: BTreeMap<&str, usize> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i))
        .collect();
    reporter.phase("features", None);
    let vocab = Vocab::build(&params.features, samples.iter().map(|s| s.text.as_str()));
    if vocab.is_empty() {
        return Err(Error::bad_input(
            "the training texts yield no features (are they all punctuation?)",
        ));
    }
    let vectorise = |s: &Sample| {
        let mut out = Vec::new();
        vocab.vectorise(&params.features, &s.text, &mut Scratch::default(), &mut out);
        out
    };
    let examples: Vec<Example> = samples
        .par_iter()
        .map(|s| Example {
            features: vectorise(s),
            label: label_index[s.intent.as_str()],
        })
        .collect();
    // Validation samples with unknown intents still count (as errors) in the
    // metrics, but cannot steer training.
    let validation = validation.filter(|v| !v.is_empty());
    let val_vectors: Vec<Vec<(u32, f32)>> = validation
        .map(|v| v.par_iter().map(vectorise).collect())
        .unwrap_or_default();
    let val_labels: Vec<Option<usize>> = validation
        .map(|v| {
            v.iter()
                .map(|s| label_index.get(s.intent.as_str()).copied())
                .collect()
        })
        .unwrap_or_default();

    // Members train side by side, one per core: each is deterministic on its
    // own, and two independent loops keep both cores busier than one loop
    // whose every small step is split in two.
    let outcomes: Vec<Result<(Outcome, Vec<EpochRecord>)>> = (0..params.members)
        .into_par_iter()
        .map(|m| {
            let mut history = Vec::new();
            let mut trainer = Trainer::new(vocab.len(), labels.len(), params, m)?;
            let outcome = trainer.run(
                &examples,
                &val_vectors,
                &val_labels,
                params,
                m,
                reporter,
                &mut history,
            )?;
            Ok((outcome, history))
        })
        .collect();
    let mut members = Vec::new();
    let mut best_epochs = Vec::new();
    let mut history = Vec::new();
    let mut best_acc: Option<f32> = None;
    let mut target_met = None;
    for result in outcomes {
        let (outcome, member_history) = result?;
        history.extend(member_history);
        best_acc = outcome.best_accuracy.or(best_acc);
        if let Some(target) = params.target_accuracy {
            let reached = outcome.best_accuracy.unwrap_or(outcome.train_accuracy) >= target;
            target_met = Some(target_met.unwrap_or(true) && reached);
        }
        best_epochs.push(outcome.best_epoch);
        members.push(outcome.member);
    }
    let linear = (params.linear_c > 0.0).then(|| {
        reporter.phase("linear member", None);
        let svm = svm::train(
            &examples,
            vocab.len(),
            labels.len(),
            params.linear_c,
            params.seed,
        );
        Linear::from_svm(&svm)
    });
    let train_seconds = started.elapsed().as_secs_f64();

    let metadata = Metadata {
        format: artifact::FORMAT,
        version: params.version.clone(),
        created_at: chrono::Utc::now().to_rfc3339(),
        seed: params.seed,
        data_hash: data_hash(samples),
        train_samples: samples.len(),
        validation_samples: validation.map_or(0, |v| v.len()),
        samples_per_intent: count_by(samples.iter().map(|s| s.intent.clone())),
        samples_per_language: count_by(samples.iter().map(|s| {
            s.language
                .unwrap_or_else(|| lang::detect(&s.text))
                .as_str()
                .to_string()
        })),
        temperature: 1.0,
        linear_share: if linear.is_some() {
            params.linear_share.unwrap_or(DEFAULT_LINEAR_SHARE)
        } else {
            0.0
        },
        linear_temperature: 1.0,
        fallback_threshold: params
            .fallback_threshold
            .unwrap_or(DEFAULT_FALLBACK_THRESHOLD),
        fallback_threshold_source: if params.fallback_threshold.is_some() {
            "override"
        } else {
            "default"
        }
        .into(),
        epochs_run: history
            .iter()
            .map(|h: &EpochRecord| h.epoch)
            .max()
            .unwrap_or(0),
        train_seconds,
        validation_metrics: None,
        files: BTreeMap::new(),
    };
    let mut model = Model::new(
        metadata,
        labels,
        params.features.clone(),
        params.dim,
        vocab,
        members,
        linear,
    )?;
    let mut validation_report = None;
    if let Some(val) = validation {
        reporter.phase("calibrate", None);
        let logits = calibrate::member_logits(&model, &val_vectors)?;
        model.metadata.temperature = calibrate::fit_temperature(&logits, &val_labels);
        if let Some(scores) = calibrate::linear_scores(&model, &val_vectors) {
            model.metadata.linear_temperature = calibrate::fit_temperature(&scores, &val_labels);
            if params.linear_share.is_none() {
                let share = calibrate::choose_linear_share(&model, &logits, &scores, &val_labels);
                model.metadata.linear_share = share;
                if share == 0.0 {
                    model.linear = None;
                }
            }
        }
        // The report from the inference path itself (quantised
        // table), so they match what `evaluate` says about the saved model.
        let probs: Vec<Vec<f32>> = val_vectors
            .par_iter()
            .map(|v| model.probabilities(v))
            .collect();
        if params.fallback_threshold.is_none() {
            let (threshold, rule) = calibrate::choose_threshold(&model);
            model.metadata.fallback_threshold = threshold;
            model.metadata.fallback_threshold_source = format!("validation, {rule}");
        }
        let report = evaluate_probabilities(&model, val, &probs);
        model.metadata.validation_metrics = Some(report.clone());
        validation_report = Some(report);
    }
    let report = TrainingReport {
        version: params.version.clone(),
        params: params.clone(),
        features: model.vocab.len(),
        epochs: history,
        best_validation_accuracy: best_acc,
        target_met,
        warnings,
        train_seconds,
        validation: validation_report,
        refit_epochs: None,
    };
    Ok((TrainedModel { model, report }, best_epochs))
}

/// Sorted label set; errors for data no model can learn from, warnings for
/// data a model learns badly from.
fn check_labels(samples: &[Sample], warnings: &mut Vec<String>) -> Result<Vec<String>> {
    let counts = count_by(samples.iter().map(|s| s.intent.clone()));
    match counts.len() {
        0 => return Err(Error::bad_input("no training samples")),
        1 => {
            return Err(Error::bad_input(format!(
                "training needs at least two intents; every sample is labelled {:?}",
                counts.keys().next().expect("one label")
            )));
        }
        _ => {}
    }
    let rare: Vec<&str> = counts
        .iter()
        .filter(|&(_, &c)| c < 2)
        .map(|(l, _)| l.as_str())
        .collect();
    if !rare.is_empty() {
        warnings.push(format!(
            "{} intent(s) have a single training example and will be learnt poorly: {}",
            rare.len(),
            rare.join(", ")
        ));
    }
    Ok(counts.into_keys().collect())
}

fn count_by(items: impl Iterator<Item = String>) -> BTreeMap<String, usize> {
    let mut map = BTreeMap::new();
    for item in items {
        *map.entry(item).or_insert(0) += 1;
    }
    map
}

fn data_hash(samples: &[Sample]) -> String {
    let mut h = Sha256::new();
    for s in samples {
        h.update(s.text.as_bytes());
        h.update(b"\t");
        h.update(s.intent.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// Split off a stratified validation share, deterministically for a seed.
/// Intents with fewer than two samples stay entirely in training.
pub fn split_validation(
    samples: Vec<Sample>,
    fraction: f32,
    seed: u64,
) -> (Vec<Sample>, Vec<Sample>) {
    let mut by_intent: BTreeMap<String, Vec<Sample>> = BTreeMap::new();
    for s in samples {
        by_intent.entry(s.intent.clone()).or_default().push(s);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for (_, mut group) in by_intent {
        group.shuffle(&mut rng);
        let take = if group.len() < 2 {
            0
        } else {
            ((group.len() as f32 * fraction).round() as usize).clamp(1, group.len() - 1)
        };
        val.extend(group.drain(..take));
        train.extend(group);
    }
    train.shuffle(&mut rng);
    (train, val)
}
