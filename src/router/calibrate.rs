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

/// The fallback threshold that scores best on validation data.
///
/// With out-of-scope data, a fallback counts as answering `oos` and the
/// threshold maximises plain accuracy: every validation query weighs the
/// same. (Maximising in-scope accuracy + out-of-scope recall instead, as is
/// sometimes done, values one OOS query like thirty in-scope ones on
/// CLINC150 and cost 8 points of in-scope accuracy for 0.97 OOS recall.)
/// Without out-of-scope data: accept a prediction only where accepted
/// predictions are more often right than wrong (maximise right − wrong).
/// Ties go to the lower threshold (fewer fallbacks).
pub(crate) fn choose_threshold(model: &Model, samples: &[Sample], probs: &[Vec<f32>]) -> f32 {
    let oos = model.labels().iter().position(|l| l == OOS_LABEL);
    let has_oos_data = samples.iter().any(|s| s.intent == OOS_LABEL);
    let best: Vec<(usize, f32)> = probs
        .iter()
        .map(|p| {
            p.iter().enumerate().fold(
                (0, f32::MIN),
                |acc, (i, &c)| if c > acc.1 { (i, c) } else { acc },
            )
        })
        .collect();
    let score = |t: f32| -> i64 {
        let mut s = 0i64;
        for ((pred, conf), sample) in best.iter().zip(samples) {
            let fallback = *conf < t || Some(*pred) == oos;
            let label = model.labels()[*pred].as_str();
            if has_oos_data {
                let answer = if fallback { OOS_LABEL } else { label };
                s += i64::from(answer == sample.intent);
            } else if !fallback {
                s += if label == sample.intent { 1 } else { -1 };
            }
        }
        s
    };
    let mut chosen = (0.0f32, score(0.0));
    for step in 1..100 {
        let t = step as f32 / 100.0;
        let s = score(t);
        if s > chosen.1 {
            chosen = (t, s);
        }
    }
    chosen.0
}
