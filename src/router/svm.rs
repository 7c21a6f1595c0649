//! The linear member (issue 15 item 4): a one-vs-rest linear SVM over the
//! same sparse TF-IDF vectors as the n-gram members, trained by dual
//! coordinate descent with an L2-regularised squared hinge loss — the
//! algorithm of liblinear, which scikit-learn's `LinearSVC` runs (Hsieh et
//! al. 2008, "A dual coordinate descent method for large-scale linear SVM").
//!
//! Why a second kind of member: the n-gram members squeeze every utterance
//! through a 64-wide hidden vector and stop early; the SVM keeps a full
//! weight per (n-gram, intent) and a margin. Where data is scarce they err
//! on different utterances: on a 20 % split of Hinglish-TOP's train file
//! (2 400 utterances) the n-gram members alone scored 0.878, the SVM alone
//! 0.883–0.890 and the even mix 0.898. On CLINC150's 12 000 the mix bought
//! nothing (0.958–0.959 either way), so the share is chosen on the
//! selection split (`calibrate::choose_linear_share`).
//!
//! Each intent's problem is independent. Intents train in blocks of 16
//! that share one visiting order (a permutation drawn from the seed and
//! the block), blocks in parallel, so the result does not depend on thread
//! timing.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::sgd::Example;

/// Passes over the data at most per intent (liblinear's default is 1000;
/// 20 and 200 gave the same accuracy as 10 on a split of the train files,
/// measured with the one-intent-at-a-time solver blocks replaced).
const MAX_PASSES: usize = 10;

/// Stop when the projected gradients span less than this (liblinear's
/// default `eps` for the dual solvers).
const TOLERANCE: f32 = 0.1;

/// Weights of the trained SVM: `features × classes` row-major (one row per
/// n-gram, the layout inference reads) and one bias per class.
pub(crate) struct Svm {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// Train one-vs-rest: for each class, the examples of that class are
/// positives and all others negatives. `c` is the cost of a margin
/// violation (larger: less regularisation). The bias is learnt as the weight
/// of a constant feature 1, regularised like the others (as liblinear does).
pub(crate) fn train(
    examples: &[Example],
    features: usize,
    classes: usize,
    c: f32,
    seed: u64,
) -> Svm {
    // ‖x‖² + 1 (the bias feature) + the diagonal of the squared hinge.
    let diagonal = 0.5 / c;
    let qd: Vec<f32> = examples
        .iter()
        .map(|e| e.features.iter().map(|(_, w)| w * w).sum::<f32>() + 1.0 + diagonal)
        .collect();
    let blocks: Vec<(Vec<[f32; BLOCK]>, [f32; BLOCK])> = (0..classes.div_ceil(BLOCK))
        .into_par_iter()
        .map(|block| {
            let first = block * BLOCK;
            let width = BLOCK.min(classes - first);
            class_block(examples, &qd, features, first, width, diagonal, seed)
        })
        .collect();
    let mut weight = vec![0.0f32; features * classes];
    let mut bias = vec![0.0f32; classes];
    for (block, (w, b)) in blocks.into_iter().enumerate() {
        let first = block * BLOCK;
        let width = BLOCK.min(classes - first);
        for (feature, row) in w.iter().enumerate() {
            weight[feature * classes + first..][..width].copy_from_slice(&row[..width]);
        }
        bias[first..first + width].copy_from_slice(&b[..width]);
    }
    Svm { weight, bias }
}

/// Classes solved together: one cache line of weights per n-gram.
const BLOCK: usize = 16;

/// liblinear's `solve_l2r_l1l2_svc` for the squared hinge (upper bound ∞),
/// run for the `width` classes from `first` side by side: each class's
/// problem is its own (its weights, its alphas, its stopping test), but
/// they visit the examples in one order, so an example's n-gram rows are
/// read once for all of them — `BLOCK` adjacent weights, one cache line —
/// instead of once per class. That read was the SVM's whole cost: a class
/// alone gathers one scattered float per n-gram. liblinear's shrinking
/// (setting aside examples whose constraint looks inactive) is left out:
/// the block reads the row whatever one class would skip.
fn class_block(
    examples: &[Example],
    qd: &[f32],
    features: usize,
    first: usize,
    width: usize,
    diagonal: f32,
    seed: u64,
) -> (Vec<[f32; BLOCK]>, [f32; BLOCK]) {
    let mut w = vec![[0.0f32; BLOCK]; features];
    let mut b = [0.0f32; BLOCK];
    let mut alpha = vec![[0.0f32; BLOCK]; examples.len()];
    let mut order: Vec<usize> = (0..examples.len()).collect();
    let mut rng =
        ChaCha8Rng::seed_from_u64(seed ^ (first as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    // Classes past `width` (the last block's padding) never train.
    let mut done = [false; BLOCK];
    done[width..].fill(true);
    for _ in 0..MAX_PASSES {
        let (mut pg_max, mut pg_min) = ([f32::NEG_INFINITY; BLOCK], [f32::INFINITY; BLOCK]);
        order.shuffle(&mut rng);
        for &i in &order {
            let x = &examples[i].features;
            let mut margin = b;
            for &(f, v) in x {
                for (m, w) in margin.iter_mut().zip(&w[f as usize]) {
                    *m += w * v;
                }
            }
            let mut step = [0.0f32; BLOCK];
            let mut moved = false;
            for j in (0..width).filter(|&j| !done[j]) {
                let y = if examples[i].label == first + j {
                    1.0
                } else {
                    -1.0
                };
                let old = alpha[i][j];
                let g = y * margin[j] - 1.0 + old * diagonal;
                let pg = if old == 0.0 { g.min(0.0) } else { g };
                pg_max[j] = pg_max[j].max(pg);
                pg_min[j] = pg_min[j].min(pg);
                if pg.abs() > 1e-12 {
                    alpha[i][j] = (old - g / qd[i]).max(0.0);
                    step[j] = (alpha[i][j] - old) * y;
                    moved |= step[j] != 0.0;
                }
            }
            if moved {
                for &(f, v) in x {
                    for (w, s) in w[f as usize].iter_mut().zip(&step) {
                        *w += s * v;
                    }
                }
                for (b, s) in b.iter_mut().zip(&step) {
                    *b += s;
                }
            }
        }
        for j in 0..width {
            done[j] |= pg_max[j] - pg_min[j] <= TOLERANCE;
        }
        if done.iter().all(|&d| d) {
            break;
        }
    }
    (w, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(features: &[(u32, f32)], label: usize) -> Example {
        Example {
            features: features.to_vec(),
            label,
        }
    }

    #[test]
    fn separable_classes_are_separated_with_a_margin() {
        // Feature 0 means class 0, feature 1 class 1, feature 2 class 2;
        // feature 3 is noise shared by all.
        let examples: Vec<Example> = (0..30)
            .map(|i| {
                let class = i % 3;
                example(&[(class as u32, 0.8), (3, 0.6)], class)
            })
            .collect();
        let svm = train(&examples, 4, 3, 1.0, 7);
        for e in &examples {
            let scores: Vec<f32> = (0..3)
                .map(|k| {
                    svm.bias[k]
                        + e.features
                            .iter()
                            .map(|&(f, v)| svm.weight[f as usize * 3 + k] * v)
                            .sum::<f32>()
                })
                .collect();
            let best = (0..3)
                .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
                .unwrap();
            assert_eq!(best, e.label, "scores {scores:?}");
            assert!(
                scores[e.label] > 0.0,
                "positive side of its margin: {scores:?}"
            );
        }
    }

    #[test]
    fn intents_in_several_blocks_land_in_their_own_columns() {
        // 40 intents: blocks of 16, 16 and 8. Feature k means intent k.
        let classes = 40;
        let examples: Vec<Example> = (0..classes * 3)
            .map(|i| example(&[((i % classes) as u32, 1.0)], i % classes))
            .collect();
        let svm = train(&examples, classes, classes, 1.0, 5);
        for k in 0..classes {
            let row = &svm.weight[k * classes..][..classes];
            let best = (0..classes)
                .max_by(|&a, &b| (row[a] + svm.bias[a]).total_cmp(&(row[b] + svm.bias[b])))
                .unwrap();
            assert_eq!(best, k, "feature {k} votes for intent {best}: {row:?}");
        }
    }

    #[test]
    fn training_is_deterministic_for_a_seed() {
        let examples: Vec<Example> = (0..40)
            .map(|i| example(&[((i % 5) as u32, 0.7), (5 + (i % 3) as u32, 0.7)], i % 4))
            .collect();
        let a = train(&examples, 8, 4, 1.0, 3);
        let b = train(&examples, 8, 4, 1.0, 3);
        assert_eq!(a.weight, b.weight);
        assert_eq!(a.bias, b.bias);
    }
}
