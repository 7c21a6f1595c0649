//! Training (issue 3 items 1, 2, 5).
//!
//! The shape is fastText's, because dense autograd over the n-gram table is
//! what makes naive candle training slow: candle-nn's `Embedding` backward
//! materialises a gradient for the whole table every step. So the table is a
//! plain `Vec<f32>` updated by hand on the rows a batch touches (SGD, linear
//! learning-rate decay), while the output layer and the loss (softmax
//! cross-entropy with label smoothing) run through candle autograd.
//!
//! Both cores are used without giving up determinism: hidden vectors are
//! computed per example in parallel (independent), and the sparse update is
//! split by *table rows* — each worker owns a fixed range of rows and applies
//! the batch's updates to them in example order — so the result does not
//! depend on thread timing.

use std::collections::BTreeMap;
use std::time::Instant;

use candle_core::{D, Device, Tensor, Var};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::artifact::{self, Metadata};
use super::calibrate;
use super::eval::{EvalReport, evaluate_probabilities};
use super::features::{FeatureConfig, Scratch, Vocab, mix};
use super::model::{Member, Model, axpy, hidden_matrix};
use crate::dataset::Sample;
use crate::error::{Error, Result};
use crate::lang;
use crate::progress::{ProgressEvent, Reporter};

/// Knobs of one training run. `Default` holds the tuned values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    pub features: FeatureConfig,
}

impl Default for TrainParams {
    fn default() -> Self {
        Self {
            version: "router-v1.0.0".into(),
            epochs: 20,
            seed: 42,
            target_accuracy: None,
            fallback_threshold: None,
            patience: 3,
            dim: 64,
            learning_rate: 0.2,
            batch_size: 32,
            label_smoothing: 0.1,
            members: 2,
            feature_dropout: 0.3,
            features: FeatureConfig::default(),
        }
    }
}

/// Threshold used when there is no validation data and no override.
pub const DEFAULT_FALLBACK_THRESHOLD: f32 = 0.5;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub member: usize,
    pub epoch: u32,
    pub loss: f32,
    pub validation_accuracy: Option<f32>,
    pub seconds: f64,
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
    pub validation: Option<EvalReport>,
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

/// One vectorised training example.
struct Example {
    features: Vec<(u32, f32)>,
    label: usize,
}

fn candle_err(e: candle_core::Error) -> Error {
    Error::failure(format!("training: {e}"))
}

/// Train a router on `samples`; `validation` drives early stopping, the
/// temperature and the fallback threshold.
pub fn train(
    samples: &[Sample],
    validation: Option<&[Sample]>,
    params: &TrainParams,
    reporter: &Reporter,
) -> Result<TrainedModel> {
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

    let mut members = Vec::new();
    let mut history = Vec::new();
    let mut best_acc: Option<f32> = None;
    let mut target_met = None;
    for m in 0..params.members {
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
        best_acc = outcome.best_accuracy.or(best_acc);
        if let Some(target) = params.target_accuracy {
            let reached = outcome.best_accuracy.unwrap_or(outcome.train_accuracy) >= target;
            target_met = Some(target_met.unwrap_or(true) && reached);
        }
        members.push(outcome.member);
    }
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
    )?;
    let mut validation_report = None;
    if let Some(val) = validation {
        reporter.phase("calibrate", None);
        let logits = calibrate::member_logits(&model, &val_vectors)?;
        let temperature = calibrate::fit_temperature(&logits, &val_labels);
        model.metadata.temperature = temperature;
        let probs = calibrate::probabilities(&logits, temperature);
        if params.fallback_threshold.is_none() {
            model.metadata.fallback_threshold = calibrate::choose_threshold(&model, val, &probs);
            model.metadata.fallback_threshold_source = "validation".into();
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
    };
    Ok(TrainedModel { model, report })
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

struct Outcome {
    member: Member,
    best_accuracy: Option<f32>,
    train_accuracy: f32,
}

struct Trainer {
    dim: usize,
    classes: usize,
    embedding: Vec<f32>,
    weight: Var,
    bias: Var,
    rng: ChaCha8Rng,
    /// Seeds the per-step dropout masks.
    salt: u64,
}

impl Trainer {
    fn new(features: usize, classes: usize, params: &TrainParams, member: usize) -> Result<Self> {
        let mut rng =
            ChaCha8Rng::seed_from_u64(params.seed.wrapping_add(member as u64 * 0x9e37_79b9));
        let dim = params.dim;
        // fastText's initialisation: small uniform table, zero output layer.
        let bound = 1.0 / dim as f32;
        let embedding = (0..features * dim)
            .map(|_| rand::Rng::random_range(&mut rng, -bound..bound))
            .collect();
        let weight = Var::zeros((dim, classes), candle_core::DType::F32, &Device::Cpu)
            .map_err(candle_err)?;
        let bias =
            Var::zeros(classes, candle_core::DType::F32, &Device::Cpu).map_err(candle_err)?;
        let salt = rand::Rng::random(&mut rng);
        Ok(Self {
            dim,
            classes,
            embedding,
            weight,
            bias,
            rng,
            salt,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn run(
        &mut self,
        examples: &[Example],
        val_vectors: &[Vec<(u32, f32)>],
        val_labels: &[Option<usize>],
        params: &TrainParams,
        member: usize,
        reporter: &Reporter,
        history: &mut Vec<EpochRecord>,
    ) -> Result<Outcome> {
        let batches_per_epoch = examples.len().div_ceil(params.batch_size);
        let total_steps = (batches_per_epoch * params.epochs as usize) as f32;
        let mut order: Vec<usize> = (0..examples.len()).collect();
        let mut step = 0usize;
        let mut best: Option<(f32, Member)> = None;
        let mut since_best = 0;
        let mut train_accuracy = 0.0;
        let name = if params.members > 1 {
            format!("train {}/{}", member + 1, params.members)
        } else {
            "train".into()
        };
        reporter.phase(name, Some(u64::from(params.epochs)));
        for epoch in 1..=params.epochs {
            let t0 = Instant::now();
            order.shuffle(&mut self.rng);
            let mut loss_sum = 0.0f64;
            let mut correct = 0usize;
            for chunk in order.chunks(params.batch_size) {
                reporter.check_cancelled()?;
                let lr = params.learning_rate * (1.0 - step as f32 / total_steps).max(0.0);
                let batch: Vec<&Example> = chunk.iter().map(|&i| &examples[i]).collect();
                let dropped = dropout(
                    &batch,
                    params.feature_dropout,
                    self.salt ^ (step as u64) << 20,
                );
                let (loss, ok) = self
                    .step(&dropped, lr, params.label_smoothing)
                    .map_err(candle_err)?;
                loss_sum += f64::from(loss);
                correct += ok;
                step += 1;
            }
            train_accuracy = correct as f32 / examples.len() as f32;
            let loss = (loss_sum / examples.len() as f64) as f32;
            if !loss.is_finite() {
                return Err(Error::failure(format!(
                    "training diverged in epoch {epoch} (loss {loss}); lower the learning rate or the batch size"
                )));
            }
            let val_acc = if val_vectors.is_empty() {
                None
            } else {
                Some(self.accuracy(val_vectors, val_labels)?)
            };
            reporter.send(ProgressEvent::Epoch {
                epoch,
                epochs: params.epochs,
                loss,
                validation_accuracy: val_acc,
            });
            history.push(EpochRecord {
                member,
                epoch,
                loss,
                validation_accuracy: val_acc,
                seconds: t0.elapsed().as_secs_f64(),
            });
            let Some(acc) = val_acc else { continue };
            if best.as_ref().is_none_or(|(b, _)| acc > *b) {
                best = Some((acc, self.snapshot()?));
                since_best = 0;
            } else {
                since_best += 1;
            }
            if params.target_accuracy.is_some_and(|t| acc >= t) {
                reporter.note(format!(
                    "target accuracy reached at epoch {epoch} ({acc:.4})"
                ));
                break;
            }
            if since_best >= params.patience {
                reporter.note(format!(
                    "validation accuracy stopped improving; stopping at epoch {epoch}"
                ));
                break;
            }
        }
        let (best_accuracy, member) = match best {
            Some((acc, m)) => (Some(acc), m),
            None => (None, self.snapshot()?),
        };
        Ok(Outcome {
            member,
            best_accuracy,
            train_accuracy,
        })
    }

    fn snapshot(&self) -> Result<Member> {
        let flat = |v: &Var| {
            v.as_tensor()
                .flatten_all()
                .and_then(|t| t.to_vec1::<f32>())
                .map_err(candle_err)
        };
        Ok(Member {
            embedding: artifact::round_to_f16(self.embedding.clone())?,
            weight: flat(&self.weight)?,
            bias: flat(&self.bias)?,
        })
    }

    /// Argmax accuracy on validation vectors (unknown labels count as wrong).
    fn accuracy(&self, vectors: &[Vec<(u32, f32)>], labels: &[Option<usize>]) -> Result<f32> {
        let hidden = hidden_matrix(&self.embedding, self.dim, vectors);
        let h = Tensor::from_vec(hidden, (vectors.len(), self.dim), &Device::Cpu)
            .map_err(candle_err)?;
        let pred = h
            .matmul(self.weight.as_tensor())
            .and_then(|l| l.broadcast_add(self.bias.as_tensor()))
            .and_then(|l| l.argmax(D::Minus1))
            .and_then(|p| p.to_vec1::<u32>())
            .map_err(candle_err)?;
        let ok = pred
            .iter()
            .zip(labels)
            .filter(|(p, l)| **l == Some(**p as usize))
            .count();
        Ok(ok as f32 / vectors.len() as f32)
    }

    /// One SGD step on a batch; returns the summed loss and the number of
    /// examples the model already got right.
    fn step(
        &mut self,
        batch: &[Example],
        lr: f32,
        smoothing: f32,
    ) -> candle_core::Result<(f32, usize)> {
        let (n, dim, classes) = (batch.len(), self.dim, self.classes);
        let vectors: Vec<&[(u32, f32)]> = batch.iter().map(|e| e.features.as_slice()).collect();
        let hidden = hidden_matrix(&self.embedding, dim, &vectors);
        let h = Var::from_tensor(&Tensor::from_vec(hidden, (n, dim), &Device::Cpu)?)?;
        let logits = h
            .as_tensor()
            .matmul(self.weight.as_tensor())?
            .broadcast_add(self.bias.as_tensor())?;
        let log_probs = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
        let off = smoothing / classes as f32;
        let mut targets = vec![off; n * classes];
        for (i, e) in batch.iter().enumerate() {
            targets[i * classes + e.label] += 1.0 - smoothing;
        }
        let targets = Tensor::from_vec(targets, (n, classes), &Device::Cpu)?;
        let loss = (log_probs.mul(&targets)?.sum_all()?.neg())?;
        let grads = loss.backward()?;
        let correct = logits
            .argmax(D::Minus1)?
            .to_vec1::<u32>()?
            .iter()
            .zip(batch)
            .filter(|(p, e)| **p as usize == e.label)
            .count();
        for var in [&self.weight, &self.bias] {
            if let Some(g) = grads.get(var.as_tensor()) {
                var.set(&(var.as_tensor() - g.affine(f64::from(lr), 0.0)?)?)?;
            }
        }
        let grad_h = match grads.get(h.as_tensor()) {
            Some(g) => g.flatten_all()?.to_vec1::<f32>()?,
            None => return Ok((loss.to_scalar::<f32>()?, correct)),
        };
        self.sparse_update(&vectors, &grad_h, lr);
        Ok((loss.to_scalar::<f32>()?, correct))
    }

    /// Apply `-lr · weight · grad_h` to every touched table row. Workers own
    /// disjoint row ranges and walk the batch in order: deterministic.
    fn sparse_update(&mut self, vectors: &[&[(u32, f32)]], grad_h: &[f32], lr: f32) {
        let dim = self.dim;
        let rows = self.embedding.len() / dim;
        let parts = rayon::current_num_threads().max(1) * 4;
        let rows_per_part = rows.div_ceil(parts).max(1);
        self.embedding
            .par_chunks_mut(rows_per_part * dim)
            .enumerate()
            .for_each(|(part, chunk)| {
                let lo = (part * rows_per_part) as u32;
                let hi = lo + (chunk.len() / dim) as u32;
                for (b, v) in vectors.iter().enumerate() {
                    let g = &grad_h[b * dim..(b + 1) * dim];
                    let start = v.partition_point(|&(id, _)| id < lo);
                    for &(id, w) in v[start..].iter().take_while(|&&(id, _)| id < hi) {
                        let r = (id - lo) as usize * dim;
                        axpy(-lr * w, g, &mut chunk[r..r + dim]);
                    }
                }
            });
    }
}

/// Copies of the batch with a random share `p` of each vector's features
/// removed and the rest re-normalised. The mask is a hash of (salt, example,
/// feature), so it is the same whatever thread computes it.
fn dropout(batch: &[&Example], p: f32, salt: u64) -> Vec<Example> {
    let cut = (f64::from(p.clamp(0.0, 0.95)) * u64::MAX as f64) as u64;
    batch
        .par_iter()
        .enumerate()
        .map(|(b, e)| {
            let mut features: Vec<(u32, f32)> = e
                .features
                .iter()
                .enumerate()
                .filter(|&(j, _)| p <= 0.0 || mix(salt ^ ((b as u64) << 40) ^ j as u64) >= cut)
                .map(|(_, &f)| f)
                .collect();
            if features.is_empty() {
                features = e.features.clone();
            }
            let norm: f32 = features.iter().map(|(_, w)| w * w).sum::<f32>().sqrt();
            if norm > 0.0 {
                features.iter_mut().for_each(|(_, w)| *w /= norm);
            }
            Example {
                features,
                label: e.label,
            }
        })
        .collect()
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
