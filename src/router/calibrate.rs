//! Turning scores into confidences an operator can use (issue 3 item 2):
//! a softmax temperature fitted on validation data (minimum negative
//! log-likelihood), then the fallback threshold chosen on the calibrated
//! confidences.

use rayon::prelude::*;

use super::model::{Model, OOS_LABEL, hidden_matrix};
use crate::dataset::Sample;
use crate::error::{Error, Result};

/// Raw logits per member: `[member][sample][class]`.
pub(crate) fn member_logits(
    model: &Model,
    vectors: &[Vec<(u32, f32)>],
) -> Result<Vec<Vec<Vec<f32>>>> {
    let err = |e: candle_core::Error| Error::failure(format!("calibration: {e}"));
    let mut out = Vec::new();
    for (m, (w, b)) in model.members.iter().zip(&model.output) {
        let hidden = hidden_matrix(&m.embedding, model.dim, vectors);
        let h = candle_core::Tensor::from_vec(
            hidden,
            (vectors.len(), model.dim),
            &candle_core::Device::Cpu,
        )
        .map_err(err)?;
        let logits = h
            .matmul(w)
            .and_then(|l| l.broadcast_add(b))
            .and_then(|l| l.to_vec2::<f32>())
            .map_err(err)?;
        out.push(logits);
    }
    Ok(out)
}

/// Ensemble-averaged softmax(logits / t) for every sample.
pub(crate) fn probabilities(logits: &[Vec<Vec<f32>>], t: f32) -> Vec<Vec<f32>> {
    let samples = logits.first().map_or(0, Vec::len);
    (0..samples)
        .into_par_iter()
        .map(|i| {
            let mut out = vec![0.0f32; logits[0][i].len()];
            for member in logits {
                let row = &member[i];
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let exps: Vec<f32> = row.iter().map(|&l| ((l - max) / t).exp()).collect();
                let sum: f32 = exps.iter().sum();
                out.iter_mut().zip(&exps).for_each(|(o, e)| *o += e / sum);
            }
            let n = logits.len() as f32;
            out.iter_mut().for_each(|p| *p /= n);
            out
        })
        .collect()
}

fn nll(logits: &[Vec<Vec<f32>>], labels: &[Option<usize>], t: f32) -> f64 {
    let probs = probabilities(logits, t);
    probs
        .iter()
        .zip(labels)
        .filter_map(|(p, l)| l.map(|l| -f64::from(p[l].max(1e-12)).ln()))
        .sum()
}

/// Golden-section search of the temperature on a log scale in [0.05, 20].
pub(crate) fn fit_temperature(logits: &[Vec<Vec<f32>>], labels: &[Option<usize>]) -> f32 {
    if labels.iter().all(Option::is_none) {
        return 1.0;
    }
    let f = |x: f64| nll(logits, labels, x.exp() as f32);
    let (mut a, mut b) = (0.05f64.ln(), 20f64.ln());
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let (mut c, mut d) = (b - g * (b - a), a + g * (b - a));
    let (mut fc, mut fd) = (f(c), f(d));
    for _ in 0..30 {
        if fc < fd {
            b = d;
            d = c;
            fd = fc;
            c = b - g * (b - a);
            fc = f(c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + g * (b - a);
            fd = f(d);
        }
    }
    ((a + b) / 2.0).exp() as f32
}

/// Share of the selection split's right in-scope answers the fallback
/// threshold may give up to catch out-of-scope queries, when the training
/// data has out-of-scope examples. Chosen on the trade-off curve of a split
/// of CLINC150's train file (1 % of right answers bought ~0.55 out-of-scope
/// recall there).
pub const OUT_OF_SCOPE_BUDGET: f32 = 0.01;

/// The fallback threshold and how it was chosen (for the metadata).
///
/// With out-of-scope examples in the training data (the model has an `oos`
/// class): the highest threshold under which fall at most
/// [`OUT_OF_SCOPE_BUDGET`] of the right in-scope answers on the selection
/// split. This depends on the in-scope answers only, of which there are
/// hundreds or thousands, not on the few out-of-scope ones a 10 % split holds
/// (a threshold fitted to those swung out-of-scope recall from 0.29 to 0.43
/// between seeds); the `oos` class and the threshold then catch what they
/// catch.
///
/// Without out-of-scope examples nothing says what out-of-scope traffic
/// looks like, and a threshold that trades right answers for fallbacks only
/// loses them (the old right-minus-wrong rule sent 8 % of Hinglish-TOP's
/// in-scope queries to the fallback): fall back only when the model has no
/// idea, i.e. is no more confident than about a query none of whose n-grams
/// it knows (its answer there is the class prior).
pub(crate) fn choose_threshold(
    model: &Model,
    samples: &[Sample],
    probs: &[Vec<f32>],
) -> (f32, &'static str) {
    let labels = model.labels();
    let prior = || {
        let confidence = model.probabilities(&[]).into_iter().fold(0.0, f32::max);
        // Rounded up so that the prior answer itself falls back.
        ((confidence * 100.0).floor() + 1.0) / 100.0
    };
    let Some(oos) = labels.iter().position(|l| l == OOS_LABEL) else {
        return (prior(), "no-idea level");
    };
    let mut right: Vec<f32> = probs
        .iter()
        .zip(samples)
        .filter_map(|(p, s)| {
            let (best, conf) =
                p.iter().enumerate().fold(
                    (0, f32::MIN),
                    |acc, (i, &c)| {
                        if c > acc.1 { (i, c) } else { acc }
                    },
                );
            (best != oos && labels[best] == s.intent).then_some(conf)
        })
        .collect();
    if right.is_empty() {
        return (prior(), "no-idea level");
    }
    right.sort_by(f32::total_cmp);
    // `allowed` right answers may fall under the threshold: it is the
    // confidence of the next one.
    let allowed = (right.len() as f32 * OUT_OF_SCOPE_BUDGET).floor() as usize;
    (right[allowed.min(right.len() - 1)], "out-of-scope budget")
}
