//! Metrics of a model on a labelled set (issue 3 item 4, `flywheel eval`).
//!
//! When the model or the data knows the out-of-scope label `oos`, a fallback
//! counts as predicting `oos` — that is how the router behaves in production
//! and how CLINC150 scores in-scope accuracy and out-of-scope recall.
//! Otherwise the best intent is scored whatever its confidence.

use std::collections::{BTreeMap, BTreeSet};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::model::{Model, OOS_LABEL};
use crate::dataset::Sample;
use crate::lang;

/// Confidence bins for the expected calibration error.
const ECE_BINS: usize = 15;
/// How many confusion pairs a report lists.
const TOP_CONFUSIONS: usize = 10;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntentMetrics {
    pub precision: f32,
    pub recall: f32,
    pub f1: f32,
    pub support: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LanguageMetrics {
    pub accuracy: f32,
    pub samples: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Confusion {
    pub expected: String,
    pub predicted: String,
    pub count: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub samples: usize,
    pub accuracy: f32,
    /// Accuracy on samples not labelled `oos` (only when `oos` is present).
    pub in_scope_accuracy: Option<f32>,
    /// Share of `oos` samples answered with `oos` or a fallback.
    pub oos_recall: Option<f32>,
    pub macro_f1: f32,
    /// Share of samples under the fallback threshold (or predicted `oos`).
    pub fallback_rate: f32,
    /// |confidence − accuracy| averaged over 15 equal-width confidence bins.
    pub expected_calibration_error: f32,
    pub per_intent: BTreeMap<String, IntentMetrics>,
    pub per_language: BTreeMap<String, LanguageMetrics>,
    /// The most frequent (expected, predicted) mistakes.
    pub confusions: Vec<Confusion>,
    /// Labels the model does not know, with their counts; always errors.
    pub unknown_intents: BTreeMap<String, usize>,
    /// Whether each sample, in order, was answered right: what a paired
    /// comparison of two models on the same samples needs.
    #[serde(skip)]
    pub correct: Vec<bool>,
}

/// Score `model` on `samples`.
pub fn evaluate(model: &Model, samples: &[Sample]) -> EvalReport {
    let probs: Vec<Vec<f32>> = samples
        .par_iter()
        .map(|s| model.probabilities(&model.vectorise(&s.text)))
        .collect();
    evaluate_probabilities(model, samples, &probs)
}

pub(crate) fn evaluate_probabilities(
    model: &Model,
    samples: &[Sample],
    probs: &[Vec<f32>],
) -> EvalReport {
    let known: BTreeSet<&str> = model.labels().iter().map(String::as_str).collect();
    let oos_mode = known.contains(OOS_LABEL) || samples.iter().any(|s| s.intent == OOS_LABEL);
    let n = samples.len().max(1) as f32;
    let mut correct = 0usize;
    let mut fallbacks = 0usize;
    let (mut in_scope, mut in_scope_ok, mut oos, mut oos_ok) = (0usize, 0usize, 0usize, 0usize);
    let mut tp: BTreeMap<&str, usize> = BTreeMap::new();
    let mut predicted: BTreeMap<String, usize> = BTreeMap::new();
    let mut support: BTreeMap<&str, usize> = BTreeMap::new();
    let mut languages: BTreeMap<&'static str, (usize, usize)> = BTreeMap::new();
    let mut confusions: BTreeMap<(&str, String), usize> = BTreeMap::new();
    let mut unknown: BTreeMap<String, usize> = BTreeMap::new();
    let mut bins = [(0usize, 0.0f32, 0usize); ECE_BINS];
    let mut each = Vec::with_capacity(samples.len());
    for (sample, p) in samples.iter().zip(probs) {
        let language = sample
            .language
            .unwrap_or_else(|| lang::detect(&sample.text));
        let pred = model.prediction(p, language);
        let label = sample.intent.as_str();
        let answer = if oos_mode && pred.fallback {
            OOS_LABEL.to_string()
        } else {
            pred.intent.clone()
        };
        let ok = answer == label;
        each.push(ok);
        correct += usize::from(ok);
        fallbacks += usize::from(pred.fallback);
        if label == OOS_LABEL {
            oos += 1;
            oos_ok += usize::from(ok);
        } else {
            in_scope += 1;
            in_scope_ok += usize::from(ok);
        }
        if !known.contains(label) {
            *unknown.entry(label.to_string()).or_default() += 1;
        }
        *support.entry(label).or_default() += 1;
        if ok {
            *tp.entry(label).or_default() += 1;
        } else {
            *confusions.entry((label, answer.clone())).or_default() += 1;
        }
        *predicted.entry(answer).or_default() += 1;
        let lang_entry = languages.entry(language.as_str()).or_default();
        lang_entry.0 += 1;
        lang_entry.1 += usize::from(ok);
        // Calibration is about the model's own top answer, before fallback.
        let bin = ((pred.confidence * ECE_BINS as f32) as usize).min(ECE_BINS - 1);
        bins[bin].0 += 1;
        bins[bin].1 += pred.confidence;
        bins[bin].2 += usize::from(pred.intent == label);
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f32 / b as f32 };
    let per_intent: BTreeMap<String, IntentMetrics> = support
        .iter()
        .map(|(&label, &sup)| {
            let t = tp.get(label).copied().unwrap_or(0);
            let precision = ratio(t, predicted.get(label).copied().unwrap_or(0));
            let recall = ratio(t, sup);
            let f1 = if precision + recall > 0.0 {
                2.0 * precision * recall / (precision + recall)
            } else {
                0.0
            };
            (
                label.to_string(),
                IntentMetrics {
                    precision,
                    recall,
                    f1,
                    support: sup,
                },
            )
        })
        .collect();
    let macro_f1 = per_intent.values().map(|m| m.f1).sum::<f32>() / per_intent.len().max(1) as f32;
    let mut confusions: Vec<Confusion> = confusions
        .into_iter()
        .map(|((expected, predicted), count)| Confusion {
            expected: expected.to_string(),
            predicted,
            count,
        })
        .collect();
    confusions.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| (&a.expected, &a.predicted).cmp(&(&b.expected, &b.predicted)))
    });
    confusions.truncate(TOP_CONFUSIONS);
    let ece = bins
        .iter()
        .map(|&(_, conf, ok)| (conf - ok as f32).abs())
        .sum::<f32>()
        / n;
    let has_oos = oos > 0;
    EvalReport {
        samples: samples.len(),
        accuracy: correct as f32 / n,
        in_scope_accuracy: has_oos.then(|| ratio(in_scope_ok, in_scope)),
        oos_recall: has_oos.then(|| ratio(oos_ok, oos)),
        macro_f1,
        fallback_rate: fallbacks as f32 / n,
        expected_calibration_error: ece,
        per_intent,
        per_language: languages
            .into_iter()
            .map(|(l, (count, ok))| {
                (
                    l.to_string(),
                    LanguageMetrics {
                        accuracy: ratio(ok, count),
                        samples: count,
                    },
                )
            })
            .collect(),
        confusions,
        unknown_intents: unknown,
        correct: each,
    }
}

impl EvalReport {
    /// The human summary `flywheel eval` prints without `--json`.
    pub fn human(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "samples           {}", self.samples);
        let _ = writeln!(s, "accuracy          {:.4}", self.accuracy);
        if let (Some(a), Some(r)) = (self.in_scope_accuracy, self.oos_recall) {
            let _ = writeln!(s, "in-scope accuracy {a:.4}");
            let _ = writeln!(s, "oos recall        {r:.4}");
        }
        let _ = writeln!(s, "macro-F1          {:.4}", self.macro_f1);
        let _ = writeln!(s, "fallback rate     {:.4}", self.fallback_rate);
        let _ = writeln!(
            s,
            "calibration (ECE) {:.4}",
            self.expected_calibration_error
        );
        for (l, m) in &self.per_language {
            let _ = writeln!(
                s,
                "language {l:<8} {:.4} ({} samples)",
                m.accuracy, m.samples
            );
        }
        if !self.confusions.is_empty() {
            let _ = writeln!(s, "top confusions (expected -> predicted):");
            for c in &self.confusions {
                let _ = writeln!(s, "  {:>4}  {} -> {}", c.count, c.expected, c.predicted);
            }
        }
        if !self.unknown_intents.is_empty() {
            let list: Vec<String> = self
                .unknown_intents
                .iter()
                .map(|(k, v)| format!("{k} ({v})"))
                .collect();
            let _ = writeln!(
                s,
                "unknown intents (counted as errors): {}",
                list.join(", ")
            );
        }
        s
    }
}
