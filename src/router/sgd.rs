//! The training loop of one ensemble member.
//!
//! The n-gram table is a plain `Vec<f32>` updated by hand on the rows a batch
//! touches (SGD with linear learning-rate decay, as fastText does), because
//! candle-nn's `Embedding` backward materialises a gradient for the whole
//! table on every step. The output layer and the loss (softmax cross-entropy
//! with label smoothing) run through candle autograd.
//!
//! Both cores work without giving up determinism: hidden vectors are
//! computed per example in parallel (independent of each other), and the
//! sparse update is split by *table rows* — each worker owns a fixed range of
//! rows and applies the batch's updates to them in example order — so the
//! result never depends on thread timing. Dropout masks are hashes of
//! (seed, step, example, feature) for the same reason.

use std::time::Instant;

use candle_core::{D, Device, Tensor, Var};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::artifact;
use super::features::mix;
use super::model::{Member, axpy, hidden_matrix};
use super::train::{EpochRecord, TrainParams};
use crate::error::{Error, Result};
use crate::progress::{ProgressEvent, Reporter};

/// One vectorised training example.
pub(crate) struct Example {
    pub features: Vec<(u32, f32)>,
    pub label: usize,
}

pub(crate) fn candle_err(e: candle_core::Error) -> Error {
    Error::failure(format!("training: {e}"))
}

pub(crate) struct Outcome {
    pub member: Member,
    pub best_accuracy: Option<f32>,
    /// The epoch `member` comes from (the last one without validation data).
    pub best_epoch: u32,
    pub train_accuracy: f32,
}

pub(crate) struct Trainer {
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
    pub(crate) fn new(
        features: usize,
        classes: usize,
        params: &TrainParams,
        member: usize,
    ) -> Result<Self> {
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
    pub(crate) fn run(
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
        let mut best: Option<(f32, u32, Member)> = None;
        let mut last_epoch = 0;
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
            last_epoch = epoch;
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
                let (loss, ok) = self.step(&dropped, lr, params).map_err(candle_err)?;
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
                refit: false,
            });
            let Some(acc) = val_acc else { continue };
            // Ties go to the later epoch: on a small selection split the
            // accuracy saturates early, and the refit should not inherit a
            // one-epoch schedule from that. Only a strict gain resets patience.
            match &best {
                Some((b, _, _)) if acc < *b => since_best += 1,
                Some((b, _, _)) if acc == *b => {
                    best = Some((acc, epoch, self.snapshot()?));
                    since_best += 1;
                }
                _ => {
                    best = Some((acc, epoch, self.snapshot()?));
                    since_best = 0;
                }
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
        let (best_accuracy, best_epoch, member) = match best {
            Some((acc, epoch, m)) => (Some(acc), epoch, m),
            None => (None, last_epoch, self.snapshot()?),
        };
        Ok(Outcome {
            member,
            best_accuracy,
            best_epoch,
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
        params: &TrainParams,
    ) -> candle_core::Result<(f32, usize)> {
        let (n, dim, classes) = (batch.len(), self.dim, self.classes);
        let vectors: Vec<&[(u32, f32)]> = batch.iter().map(|e| e.features.as_slice()).collect();
        let hidden = hidden_matrix(&self.embedding, dim, &vectors);
        let h = Var::from_tensor(&Tensor::from_vec(hidden, (n, dim), &Device::Cpu)?)?;
        let logits = h
            .as_tensor()
            .matmul(self.weight.as_tensor())?
            .broadcast_add(self.bias.as_tensor())?;
        let smoothing = params.label_smoothing;
        let log_probs = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
        let off = smoothing / classes as f32;
        let mut targets = vec![off; n * classes];
        for (i, e) in batch.iter().enumerate() {
            targets[i * classes + e.label] += 1.0 - smoothing;
        }
        let targets = Tensor::from_vec(targets, (n, classes), &Device::Cpu)?;
        let loss = log_probs.mul(&targets)?.sum_all()?.neg()?;
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
