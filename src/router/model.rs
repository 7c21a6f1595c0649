//! The trained router: a fastText-shaped model. An utterance's sparse
//! TF-IDF vector selects rows of an n-gram embedding table whose weighted sum
//! is the hidden vector; one linear layer maps it to intent logits, and a
//! temperature fitted on validation data turns them into calibrated
//! probabilities. Several members trained from different seeds may be
//! averaged (an ensemble), and mixed with a linear SVM's probabilities over
//! the same vectors (see `svm.rs`), calibrated with its own temperature.
//!
//! Two inference paths give the same numbers: [`Model::classify`] uses plain
//! loops, because for one utterance candle's per-op overhead (tens of µs)
//! would dominate the ~10 µs of arithmetic; [`Model::classify_batch`] runs the
//! output layer as one candle matmul over the whole batch.

use std::cell::RefCell;

use candle_core::{Device, Tensor};
use rayon::prelude::*;
use serde::Serialize;

use super::artifact::Metadata;
use super::features::{FeatureConfig, Scratch, Vocab};
use super::table::Table;
use crate::error::{Error, Result};
use crate::lang::{self, Language};

/// The label CLINC150-style data uses for out-of-scope utterances.
pub const OOS_LABEL: &str = "oos";

/// Rows per candle matmul on the batch path (chunks run in parallel).
const BATCH_CHUNK: usize = 256;

/// One member of the ensemble.
#[derive(Debug, Clone)]
pub struct Member {
    /// `features × dim`, row-major.
    pub embedding: Vec<f32>,
    /// `dim × classes`, row-major.
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// The linear member: per n-gram a row of intent scores (quantised like
/// the n-gram tables) and a bias per intent.
#[derive(Debug, Clone)]
pub(crate) struct Linear {
    pub table: Table,
    pub bias: Vec<f32>,
}

impl Linear {
    /// Quantise a trained SVM for inference (and for the artifact).
    pub(crate) fn from_svm(svm: &super::svm::Svm) -> Self {
        let classes = svm.bias.len();
        let rows = svm.weight.len() / classes;
        Self {
            table: Table::from_rows(rows, classes, |row, out| {
                out.copy_from_slice(&svm.weight[row * classes..(row + 1) * classes]);
            }),
            bias: svm.bias.clone(),
        }
    }

    /// Raw scores (margins) of one vector: `bias + Σ weight · row`.
    pub(crate) fn scores(&self, vector: &[(u32, f32)], out: &mut [f32]) {
        self.table.hidden(vector, out);
        out.iter_mut().zip(&self.bias).for_each(|(o, b)| *o += b);
    }
}

/// A loaded or freshly trained router.
#[derive(Debug, Clone)]
pub struct Model {
    pub(crate) metadata: Metadata,
    pub(crate) labels: Vec<String>,
    pub(crate) features: FeatureConfig,
    pub(crate) dim: usize,
    pub(crate) vocab: Vocab,
    pub(crate) members: Vec<Member>,
    /// Mixed in with `metadata.linear_share` at `metadata.linear_temperature`.
    pub(crate) linear: Option<Linear>,
    /// The members' tables interleaved and quantised, for inference.
    table: Table,
    /// candle copies of each member's output layer, for the batch path.
    pub(crate) output: Vec<(Tensor, Tensor)>,
    oos: Option<usize>,
}

/// One alternative intent with its probability.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alternative {
    pub intent: String,
    pub confidence: f32,
}

/// What the router says about one utterance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    pub intent: String,
    /// Calibrated probability of `intent`.
    pub confidence: f32,
    /// True when the confidence is under the model's fallback threshold or
    /// the best intent is the out-of-scope class: route to the fallback.
    pub fallback: bool,
    pub language: Language,
    /// The three most probable intents, best first (the first is `intent`).
    pub alternatives: Vec<Alternative>,
}

thread_local! {
    static SCRATCH: RefCell<(Scratch, Vec<(u32, f32)>)> = RefCell::default();
}

impl Model {
    pub(crate) fn new(
        metadata: Metadata,
        labels: Vec<String>,
        features: FeatureConfig,
        dim: usize,
        vocab: Vocab,
        members: Vec<Member>,
        linear: Option<Linear>,
    ) -> Result<Self> {
        let classes = labels.len();
        let output = members
            .iter()
            .map(|m| {
                Ok((
                    Tensor::from_slice(&m.weight, (dim, classes), &Device::Cpu)?,
                    Tensor::from_slice(&m.bias, classes, &Device::Cpu)?,
                ))
            })
            .collect::<candle_core::Result<Vec<_>>>()
            .map_err(|e| Error::failure(format!("building the output layer: {e}")))?;
        let oos = labels.iter().position(|l| l == OOS_LABEL);
        let table = Table::new(&members, vocab.len(), dim);
        Ok(Self {
            table,
            metadata,
            labels,
            features,
            dim,
            vocab,
            members,
            linear,
            output,
            oos,
        })
    }

    pub fn version(&self) -> &str {
        &self.metadata.version
    }

    pub fn fallback_threshold(&self) -> f32 {
        self.metadata.fallback_threshold
    }

    /// Override the stored threshold (e.g. an operator's choice at serve time).
    pub fn set_fallback_threshold(&mut self, threshold: f32) {
        self.metadata.fallback_threshold = threshold;
    }

    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Classify one utterance. `language` is detected when not given.
    pub fn classify(&self, text: &str, language: Option<Language>) -> Prediction {
        let probs = SCRATCH.with(|cell| {
            let mut guard = cell.borrow_mut();
            let (scratch, vector) = &mut *guard;
            self.vocab.vectorise(&self.features, text, scratch, vector);
            self.probabilities(vector)
        });
        self.prediction(&probs, language.unwrap_or_else(|| lang::detect(text)))
    }

    /// Classify many utterances; the output layer runs as candle matmuls.
    pub fn classify_batch(&self, texts: &[(&str, Option<Language>)]) -> Result<Vec<Prediction>> {
        let vectors: Vec<Vec<(u32, f32)>> =
            texts.par_iter().map(|(t, _)| self.vectorise(t)).collect();
        let probs = self.probabilities_batch(&vectors)?;
        Ok(probs
            .par_iter()
            .zip(texts)
            .map(|(p, (text, language))| {
                self.prediction(p, language.unwrap_or_else(|| lang::detect(text)))
            })
            .collect())
    }

    pub(crate) fn vectorise(&self, text: &str) -> Vec<(u32, f32)> {
        SCRATCH.with(|cell| {
            let mut guard = cell.borrow_mut();
            let (scratch, _) = &mut *guard;
            let mut out = Vec::new();
            self.vocab
                .vectorise(&self.features, text, scratch, &mut out);
            out
        })
    }

    /// Averaged calibrated probabilities for one sparse vector (plain loops).
    pub(crate) fn probabilities(&self, vector: &[(u32, f32)]) -> Vec<f32> {
        let (classes, dim) = (self.labels.len(), self.dim);
        let mut hidden = vec![0.0f32; dim * self.members.len()];
        self.table.hidden(vector, &mut hidden);
        let mut logits = vec![0.0f32; classes];
        let mut out = vec![0.0f32; classes];
        for (m, member) in self.members.iter().enumerate() {
            logits.copy_from_slice(&member.bias);
            for (k, &h) in hidden[m * dim..(m + 1) * dim].iter().enumerate() {
                axpy(
                    h,
                    &member.weight[k * classes..(k + 1) * classes],
                    &mut logits,
                );
            }
            softmax_into(&mut logits, self.metadata.temperature, &mut out);
        }
        let n = self.members.len() as f32;
        out.iter_mut().for_each(|p| *p /= n);
        self.mix_linear(vector, &mut logits, &mut out);
        out
    }

    /// `probs = (1 − share) · probs + share · softmax(svm scores / t)`, when
    /// the model has a linear member. `scratch` is a buffer of `classes`.
    fn mix_linear(&self, vector: &[(u32, f32)], scratch: &mut [f32], probs: &mut [f32]) {
        let Some(linear) = &self.linear else { return };
        // A model has a linear member only with a share in (0, 1].
        let share = self.metadata.linear_share;
        probs.iter_mut().for_each(|p| *p *= (1.0 - share) / share);
        linear.scores(vector, scratch);
        softmax_into(scratch, self.metadata.linear_temperature, probs);
        probs.iter_mut().for_each(|p| *p *= share);
    }

    /// The same as [`Self::probabilities`] for many vectors: the hidden
    /// vectors in parallel, then each member's output layer and softmax as
    /// candle ops over the whole chunk.
    pub(crate) fn probabilities_batch(&self, vectors: &[Vec<(u32, f32)>]) -> Result<Vec<Vec<f32>>> {
        // Chunks run in parallel, each a short sequence of candle ops: the
        // ops on one big matrix left a core idle between the parallel parts.
        let chunks: Vec<Result<Vec<Vec<f32>>>> = vectors
            .par_chunks(BATCH_CHUNK)
            .map(|chunk| self.chunk_probabilities(chunk))
            .collect();
        let mut all = Vec::with_capacity(vectors.len());
        for chunk in chunks {
            all.extend(chunk?);
        }
        Ok(all)
    }

    fn chunk_probabilities(&self, chunk: &[Vec<(u32, f32)>]) -> Result<Vec<Vec<f32>>> {
        let err = |e: candle_core::Error| Error::failure(format!("batch classify: {e}"));
        let (dim, members) = (self.dim, self.members.len());
        let hidden = self.table.hidden_rows(chunk);
        let hidden =
            Tensor::from_vec(hidden, (chunk.len(), dim * members), &Device::Cpu).map_err(err)?;
        let mut sum: Option<Tensor> = None;
        for (m, (w, b)) in self.output.iter().enumerate() {
            let probs = output_probabilities(
                &hidden.narrow(1, m * dim, dim).map_err(err)?,
                w,
                b,
                self.metadata.temperature,
            )
            .map_err(err)?;
            sum = Some(match sum {
                None => probs,
                Some(s) => (s + probs).map_err(err)?,
            });
        }
        let mut probs = sum
            .expect("a model has at least one member")
            .affine(1.0 / members as f64, 0.0)
            .and_then(|t| t.to_vec2::<f32>())
            .map_err(err)?;
        if self.linear.is_some() {
            let mut scratch = vec![0.0f32; self.labels.len()];
            for (p, v) in probs.iter_mut().zip(chunk) {
                self.mix_linear(v, &mut scratch, p);
            }
        }
        Ok(probs)
    }

    pub(crate) fn prediction(&self, probs: &[f32], language: Language) -> Prediction {
        // Top three by probability, ties to the lower label index so the
        // answer never depends on iteration details.
        let mut top: Vec<usize> = Vec::with_capacity(4);
        for i in 0..probs.len() {
            let pos = top
                .iter()
                .position(|&j| probs[i] > probs[j])
                .unwrap_or(top.len());
            if pos < 3 {
                top.insert(pos, i);
                top.truncate(3);
            }
        }
        let best = top[0];
        let confidence = probs[best];
        Prediction {
            intent: self.labels[best].clone(),
            confidence,
            fallback: confidence < self.metadata.fallback_threshold || Some(best) == self.oos,
            language,
            alternatives: top
                .iter()
                .map(|&i| Alternative {
                    intent: self.labels[i].clone(),
                    confidence: probs[i],
                })
                .collect(),
        }
    }
}

/// `out = Σ weight · embedding[row]` over the sparse vector.
pub(crate) fn hidden_vector(embedding: &[f32], dim: usize, vector: &[(u32, f32)], out: &mut [f32]) {
    out.iter_mut().for_each(|x| *x = 0.0);
    for &(id, w) in vector {
        let row = id as usize * dim;
        axpy(w, &embedding[row..row + dim], out);
    }
}

/// The hidden vectors of a batch (`rows × dim`), computed in parallel.
pub(crate) fn hidden_matrix(
    embedding: &[f32],
    dim: usize,
    vectors: &[impl AsRef<[(u32, f32)]> + Sync],
) -> Vec<f32> {
    let mut hidden = vec![0.0f32; vectors.len() * dim];
    hidden
        .par_chunks_mut(dim)
        .zip(vectors.par_iter())
        .for_each(|(out, v)| hidden_vector(embedding, dim, v.as_ref(), out));
    hidden
}

/// Softmax of `(hidden · weight + bias) / temperature`, via candle.
fn output_probabilities(
    hidden: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    temperature: f32,
) -> candle_core::Result<Tensor> {
    let logits = hidden.contiguous()?.matmul(weight)?.broadcast_add(bias)?;
    candle_nn::ops::softmax_last_dim(&logits.affine(1.0 / f64::from(temperature), 0.0)?)
}

#[inline]
pub(crate) fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// Adds softmax(logits / t) into `out`.
/// Overwrites `logits` with the unnormalised exponentials (no allocation on
/// the classify path).
fn softmax_into(logits: &mut [f32], t: f32, out: &mut [f32]) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for l in logits.iter_mut() {
        *l = ((*l - max) / t).exp();
        sum += *l;
    }
    let inv = sum.recip();
    for (o, e) in out.iter_mut().zip(logits.iter()) {
        *o += e * inv;
    }
}

/// Keep the feature settings reachable for reports.
impl Model {
    pub fn feature_config(&self) -> &FeatureConfig {
        &self.features
    }
}
