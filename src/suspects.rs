//! Suspect labels (issue 17 item 3): approved labels the model confidently
//! disagrees with, found before each training run by confident learning
//! (Northcutt, Jiang & Chuang, "Confident Learning: Estimating Uncertainty
//! in Dataset Labels", 2021) over out-of-fold predictions.
//!
//! Every approved sample gets a prediction from a router trained without it
//! ([`out_of_fold`]: k folds, stratified by intent, the router's own
//! [`crate::router::train`]). Class `j`'s threshold `t_j` is the mean
//! probability of `j` over the samples labelled `j` — how sure the model
//! usually is of that intent. A sample labelled `i` is a suspect when the
//! most probable other intent `j` reaching its threshold is also more
//! probable than `i` ([`flag`]): the model is as sure it is a `j` as it
//! usually is of `j`s, and prefers that to the stored label. Suspects rank
//! by `p(j) − p(i)`, the margin by which the model prefers its suggestion.
//! Only the top intents of each prediction are read ([`Alternative`]s); an
//! intent left out counts as probability 0.
//!
//! Who may be suspected: labels a model, the seed set or an import gave.
//! A human's label never is: a human already looked, and a confirmation
//! must stick (flagging it again each week would loop). Nor is the label of
//! an intent with fewer than [`MIN_INTENT_SAMPLES`] samples, too few for a
//! model trained without one of them to know it. Weekly training keeps
//! suspects out of its training set until a human confirms or corrects
//! them (one in the gold test split still judges: leaving out the items a
//! model disagrees with would flatter it); the review order
//! ([`crate::review::order`]) gives them `suspects.share` of the places
//! audits leave, most suspicious first.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;

use crate::dataset::Sample;
use crate::error::Result;
use crate::lang::Language;
use crate::progress::Reporter;
use crate::router::{self, Alternative, TrainParams};

/// Folds of the out-of-fold predictions: each sample is predicted by a
/// model trained on the other four fifths.
pub const FOLDS: usize = 5;

/// An intent with fewer approved samples than this is not judged.
pub const MIN_INTENT_SAMPLES: usize = 5;

/// A label the model confidently disagrees with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Flag {
    /// Index of the sample in the input.
    pub index: usize,
    /// The intent the model prefers.
    pub suggested: String,
    /// `p(suggested) − p(stored label)`: higher is more suspicious.
    pub score: f32,
}

/// What the faces show of a suspect beside its stored label.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suspicion {
    /// The intent the model prefers.
    pub suggested: String,
    /// `p(suggested) − p(stored label)`.
    pub score: f64,
}

/// One sample as [`flag`] weighs it: its stored label, whether it may be
/// suspected, and what a model trained without it said (the most probable
/// intents with their probabilities; an intent left out counts as 0).
#[derive(Debug, Clone, PartialEq)]
pub struct Judged<'a> {
    pub label: &'a str,
    pub flaggable: bool,
    pub predicted: &'a [Alternative],
}

/// The suspects among `samples`, most suspicious first.
pub fn flag(samples: &[Judged<'_>]) -> Vec<Flag> {
    let probability = |s: &Judged<'_>, intent: &str| {
        s.predicted
            .iter()
            .find(|a| a.intent == intent)
            .map_or(0.0, |a| a.confidence)
    };
    // t_j: the mean self-confidence of the samples labelled j.
    let mut sums: HashMap<&str, (f32, usize)> = HashMap::new();
    for s in samples {
        let entry = sums.entry(s.label).or_default();
        entry.0 += probability(s, s.label);
        entry.1 += 1;
    }
    let threshold: HashMap<&str, f32> = sums
        .iter()
        .map(|(intent, (sum, n))| (*intent, sum / *n as f32))
        .collect();
    let mut flags: Vec<Flag> = samples
        .iter()
        .enumerate()
        .filter(|(_, s)| s.flaggable && sums[s.label].1 >= MIN_INTENT_SAMPLES)
        .filter_map(|(index, s)| {
            let own = probability(s, s.label);
            let reaches = |intent: &str, p: f32| threshold.get(intent).is_some_and(|t| p >= *t);
            // The most probable other intent the model is as sure of as usual…
            let (best, p) = s
                .predicted
                .iter()
                .filter(|a| a.intent != s.label && reaches(&a.intent, a.confidence))
                .map(|a| (a.intent.as_str(), a.confidence))
                .max_by(|a, b| a.1.total_cmp(&b.1).then_with(|| b.0.cmp(a.0)))?;
            // …and prefers to the stored label: a model that likes the
            // stored label better does not confidently disagree, whatever
            // the thresholds say.
            (p > own).then(|| Flag {
                index,
                suggested: best.to_string(),
                score: p - own,
            })
        })
        .collect();
    flags.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
    flags
}

/// The training parameters of one fold's model: `params` with one member
/// and no selection share (a fixed schedule), which halves the cost of
/// each fold and is enough to rank labels.
pub fn fold_params(params: &TrainParams, fold: usize) -> TrainParams {
    TrainParams {
        version: format!("{}-fold{fold}", params.version),
        members: 1,
        selection_share: 0.0,
        // The n-gram member alone: what the precision and recall above
        // were measured with, without the SVM's cost five times over.
        linear_c: 0.0,
        target_accuracy: None,
        ..params.clone()
    }
}

/// For each sample, the most probable intents by a model trained on the
/// other folds (in input order). Folds are stratified by intent from a
/// shuffle seeded by `params.seed`, so a run is deterministic; they train
/// side by side. Fewer than two folds, or too few samples to train on,
/// give no predictions (an empty list).
pub fn out_of_fold(
    samples: &[Sample],
    folds: usize,
    params: &TrainParams,
    reporter: &Reporter,
) -> Result<Vec<Vec<Alternative>>> {
    let intents: BTreeMap<&str, usize> = samples.iter().fold(BTreeMap::new(), |mut m, s| {
        *m.entry(s.intent.as_str()).or_insert(0) += 1;
        m
    });
    if folds < 2 || intents.len() < 2 || samples.len() < folds * 2 {
        return Ok(Vec::new());
    }
    let fold_of = assign_folds(samples, folds, params.seed);
    reporter.phase("suspects", Some(folds as u64));
    let done = AtomicU64::new(0);
    let predicted: Vec<Result<Held>> = (0..folds)
        .into_par_iter()
        .map(|fold| {
            let held = predict_fold(samples, &fold_of, fold, params, reporter)?;
            reporter.advance(done.fetch_add(1, Ordering::Relaxed) + 1);
            Ok(held)
        })
        .collect();
    let mut out = vec![Vec::new(); samples.len()];
    for fold in predicted {
        for (i, alternatives) in fold? {
            out[i] = alternatives;
        }
    }
    Ok(out)
}

/// The predictions of one fold's samples (by index) by a model trained on
/// the others.
type Held = Vec<(usize, Vec<Alternative>)>;

fn predict_fold(
    samples: &[Sample],
    fold_of: &[usize],
    fold: usize,
    params: &TrainParams,
    reporter: &Reporter,
) -> Result<Held> {
    reporter.check_cancelled()?;
    let train: Vec<Sample> = samples
        .iter()
        .zip(fold_of)
        .filter(|(_, f)| **f != fold)
        .map(|(s, _)| s.clone())
        .collect();
    let held: Vec<usize> = (0..samples.len()).filter(|i| fold_of[*i] == fold).collect();
    // The fold's epochs are not the stage's progress: only its cancel token is shared.
    let quiet = Reporter::new(Default::default(), reporter.cancel_token().clone());
    let trained = router::train(&train, None, &fold_params(params, fold), &quiet)?;
    let texts: Vec<(&str, Option<Language>)> = held
        .iter()
        .map(|i| (samples[*i].text.as_str(), samples[*i].language))
        .collect();
    let predictions = trained.model.classify_batch(&texts)?;
    Ok(held
        .into_iter()
        .zip(predictions)
        .map(|(i, p)| (i, p.alternatives))
        .collect())
}

/// Fold of each sample: within each intent, a seeded shuffle dealt round
/// the folds, so every fold holds about a k-th of every intent.
fn assign_folds(samples: &[Sample], folds: usize, seed: u64) -> Vec<usize> {
    let mut by_intent: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, s) in samples.iter().enumerate() {
        by_intent.entry(s.intent.as_str()).or_default().push(i);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xf01d);
    let mut fold_of = vec![0; samples.len()];
    let mut next = 0;
    for (_, mut group) in by_intent {
        group.shuffle(&mut rng);
        for i in group {
            fold_of[i] = next % folds;
            next += 1;
        }
    }
    fold_of
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alternatives(probs: &[(&str, f32)]) -> Vec<Alternative> {
        probs
            .iter()
            .map(|(intent, confidence)| Alternative {
                intent: (*intent).into(),
                confidence: *confidence,
            })
            .collect()
    }

    fn judged<'a>(label: &'a str, flaggable: bool, predicted: &'a [Alternative]) -> Judged<'a> {
        Judged {
            label,
            flaggable,
            predicted,
        }
    }

    /// Five "a" and five "b" predicted as `a` and `b` say.
    fn known<'a>(a: &'a [Alternative], b: &'a [Alternative]) -> Vec<Judged<'a>> {
        (0..5)
            .flat_map(|_| [judged("a", true, a), judged("b", true, b)])
            .collect()
    }

    #[test]
    fn a_confident_disagreement_is_flagged_and_ranked_by_margin() {
        // Five "a" the model knows (0.8), five "b" (0.6), one "a" it calls
        // "b" at 0.7 (over b's threshold), one "a" it calls "b" at 0.9.
        let sure_a = alternatives(&[("a", 0.8), ("b", 0.1)]);
        let sure_b = alternatives(&[("b", 0.6), ("a", 0.3)]);
        let doubtful = alternatives(&[("b", 0.7), ("a", 0.2)]);
        let wrong = alternatives(&[("b", 0.9), ("c", 0.05)]);
        let mut samples = known(&sure_a, &sure_b);
        samples.push(judged("a", true, &doubtful));
        samples.push(judged("a", true, &wrong));
        let flags = flag(&samples);
        let flagged: Vec<(usize, &str)> = flags
            .iter()
            .map(|f| (f.index, f.suggested.as_str()))
            .collect();
        assert_eq!(flagged, vec![(11, "b"), (10, "b")]);
        // a absent from the top intents counts as probability 0.
        assert!((flags[0].score - 0.9).abs() < 1e-6);
        assert!((flags[1].score - 0.5).abs() < 1e-6);
    }

    #[test]
    fn humans_rare_intents_and_unsure_models_are_not_flagged() {
        let sure_a = alternatives(&[("a", 0.9), ("b", 0.05)]);
        let sure_b = alternatives(&[("b", 0.9), ("a", 0.05)]);
        // Under b's threshold (0.9 on average): the model is not as sure as usual.
        let unsure = alternatives(&[("b", 0.5), ("a", 0.4)]);
        let mut samples = known(&sure_a, &sure_b);
        samples.push(judged("a", true, &unsure));
        samples.push(judged("a", false, &sure_b));
        // A rare intent (one sample): not judged.
        samples.push(judged("c", true, &sure_b));
        assert_eq!(flag(&samples), Vec::new());
    }

    #[test]
    fn folds_are_stratified_and_deterministic() {
        let samples: Vec<Sample> = (0..50)
            .map(|i| Sample::new(format!("text {i}"), if i < 20 { "a" } else { "b" }))
            .collect();
        let folds = assign_folds(&samples, 5, 7);
        assert_eq!(folds, assign_folds(&samples, 5, 7));
        for fold in 0..5 {
            let a = (0..20).filter(|i| folds[*i] == fold).count();
            let b = (20..50).filter(|i| folds[*i] == fold).count();
            assert_eq!((a, b), (4, 6), "fold {fold}");
        }
    }
}
