//! Turning scores into confidences an operator can use (issue 3 item 2,
//! issue 15 item 3): a softmax temperature fitted on validation data
//! (minimum negative log-likelihood), then the fallback threshold as a
//! level of that calibrated confidence.

use rayon::prelude::*;

use super::model::{Model, OOS_LABEL, hidden_matrix};
use super::train::LINEAR_SHARES;
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

/// The linear member's raw scores as one "member" (`[1][sample][class]`),
/// when the model has one.
pub(crate) fn linear_scores(
    model: &Model,
    vectors: &[Vec<(u32, f32)>],
) -> Option<Vec<Vec<Vec<f32>>>> {
    let linear = model.linear.as_ref()?;
    let classes = model.labels().len();
    let scores = vectors
        .par_iter()
        .map(|v| {
            let mut out = vec![0.0f32; classes];
            linear.scores(v, &mut out);
            out
        })
        .collect();
    Some(vec![scores])
}

/// The linear member's share of the mix with the lowest negative
/// log-likelihood on the selection data, among [`LINEAR_SHARES`] (ties to
/// the smaller share). Likelihood rather than accuracy: on a few hundred
/// selection samples accuracy moves in steps of whole samples.
pub(crate) fn choose_linear_share(
    model: &Model,
    member_logits: &[Vec<Vec<f32>>],
    linear_scores: &[Vec<Vec<f32>>],
    labels: &[Option<usize>],
) -> f32 {
    let members = probabilities(member_logits, model.metadata.temperature);
    let linear = probabilities(linear_scores, model.metadata.linear_temperature);
    let nll = |share: f32| -> f64 {
        members
            .iter()
            .zip(&linear)
            .zip(labels)
            .filter_map(|((m, l), y)| {
                y.map(|y| -f64::from(((1.0 - share) * m[y] + share * l[y]).max(1e-12)).ln())
            })
            .sum()
    };
    let mut best = (f64::INFINITY, 0.0);
    for share in LINEAR_SHARES {
        let loss = nll(share);
        if loss < best.0 {
            best = (loss, share);
        }
    }
    best.1
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

/// The calibrated confidence under which a model trained with out-of-scope
/// examples falls back: answer only when the intent is right at least 3
/// times in 10. Chosen on the trade-off curve of a 20 % split of CLINC150's
/// train file (`ROUTER_BENCH_DEV=1 cargo bench --bench router`): 0.3 cost
/// 0.2 points of in-scope accuracy for 0.55 out-of-scope recall there.
pub const OUT_OF_SCOPE_LEVEL: f32 = 0.3;

/// The fallback threshold and the rule that set it (for the metadata).
/// `probs` are the calibrated probabilities of the selection samples.
///
/// With out-of-scope examples in the training data (the model has an `oos`
/// class): [`OUT_OF_SCOPE_LEVEL`], a fixed level of calibrated confidence
/// (the temperature is what the selection split chooses). A threshold
/// fitted to the handful of out-of-scope examples a 10 % split holds swung
/// out-of-scope recall from 0.29 to 0.43 between seeds; one set at a
/// quantile of the in-scope confidences moved with the few least confident
/// answers (0.33 to 0.50, recall 0.65 to 0.81) and sent 2.5 % of
/// CLINC150's validation queries to the fallback, whose in-scope queries
/// are less like the training file than the split is.
///
/// Without out-of-scope examples nothing says what out-of-scope traffic
/// looks like, and a threshold that trades right answers for fallbacks only
/// loses them (the old right-minus-wrong rule sent 8 % of Hinglish-TOP's
/// in-scope queries to the fallback): fall back only when the model has no
/// idea, i.e. is no more confident than about a query none of whose n-grams
/// it knows (its answer there is the class prior).
pub(crate) fn choose_threshold(model: &Model) -> (f32, &'static str) {
    if model.labels().iter().any(|l| l == OOS_LABEL) {
        return (OUT_OF_SCOPE_LEVEL, "out-of-scope level");
    }
    let confidence = model.probabilities(&[]).into_iter().fold(0.0, f32::max);
    // Rounded up so that the prior answer itself falls back.
    (
        ((confidence * 100.0).floor() + 1.0) / 100.0,
        "no-idea level",
    )
}
