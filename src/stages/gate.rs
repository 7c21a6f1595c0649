//! The promotion gate of weekly training: is a candidate registered
//! `testing` (a human may promote it) or `rejected`?
//!
//! Both models answer the same gold test items ([`crate::gold`]); an item
//! is right when the answer is its label, or when an out-of-scope item is
//! answered with fallback or `oos`. The decision is a paired comparison
//! that accounts for n — the two models' answers on one item are not
//! independent, so what counts is where they disagree (McNemar) — with
//! out-of-scope recall as a guard. A pure function of the answers, so
//! every outcome is tested without training anything.

use serde::Serialize;

use crate::domain::ModelStatus;
use crate::estimate::{Estimate, Z95, wilson};

/// Below this p-value a difference between the two models is real.
const SIGNIFICANCE: f64 = 0.05;

/// The gate's settings (`training.gate_tolerance`, `oos_tolerance`,
/// `min_gold_test`) and the run's `--force`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateRules {
    /// How much worse in overall accuracy a candidate may be and still be
    /// "not worse" (a share: 0.01 is one point).
    pub tolerance: f64,
    /// The same for out-of-scope recall.
    pub oos_tolerance: f64,
    /// Fewer gold test items than this are too few to judge.
    pub min_gold: usize,
    /// Register a candidate there are too few items to judge; never one
    /// that is clearly worse.
    pub force: bool,
}

/// One model's answers on the gold test items, in the same order for both.
#[derive(Debug, Clone, PartialEq)]
pub struct Answers<'a> {
    /// Whether each item was answered right.
    pub correct: &'a [bool],
}

/// What the gate knows of the production model.
#[derive(Debug, Clone, PartialEq)]
pub enum ProductionScore<'a> {
    /// No model is in production.
    None,
    /// It is in production but could not be loaded (`why`).
    Unloadable { version: &'a str, why: &'a str },
    /// Its answers on the candidate's gold test items, and how many gold
    /// samples it was trained on (`None`: trained before that was kept).
    Scored {
        version: &'a str,
        answers: Answers<'a>,
        gold_train: Option<usize>,
    },
}

/// The candidate: its answers, and how many gold samples trained it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate<'a> {
    pub answers: Answers<'a>,
    pub gold_train: usize,
}

/// The gold test items: which are out of scope (same order as the answers).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Items<'a> {
    pub out_of_scope: &'a [bool],
}

/// The paired comparison behind a decision, for the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub candidate: Estimate,
    pub production: Estimate,
    /// Candidate minus production, with its paired 95 % interval.
    pub difference: Estimate,
    /// Items only the candidate got right, and only production got right.
    pub candidate_only: usize,
    pub production_only: usize,
    /// Exact two-sided McNemar p-value over those disagreements.
    pub p_value: f64,
    /// Out-of-scope recall of both, when there are out-of-scope items.
    pub oos: Option<OosComparison>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OosComparison {
    pub candidate: Estimate,
    pub production: Estimate,
    pub p_value: f64,
}

/// The gate's verdict, its reason in one sentence, and the comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateDecision {
    pub status: ModelStatus,
    pub reason: String,
    pub comparison: Option<Comparison>,
}

/// Decide. In order: nothing to compare with, or production cannot be
/// scored → `testing` (a human decides); clearly worse overall or on
/// out-of-scope recall → `rejected`, whatever `force` says; too few gold
/// items → `testing` only with `force`; significantly better, or not worse
/// beyond the tolerance → `testing`; otherwise indistinguishable →
/// `testing` when the candidate learnt from strictly more gold (human)
/// data than production, so a tie cannot stall the loop, else `rejected`.
pub fn decide(
    candidate: &Candidate<'_>,
    production: &ProductionScore<'_>,
    items: Items<'_>,
    rules: GateRules,
) -> GateDecision {
    let (version, production_answers, production_gold) = match *production {
        ProductionScore::None => {
            return verdict(
                ModelStatus::Testing,
                "no production model to compare with".into(),
                None,
            );
        }
        ProductionScore::Unloadable { version, why } => {
            return verdict(
                ModelStatus::Testing,
                format!(
                    "production model {version} could not be loaded ({why}); registered for a human decision"
                ),
                None,
            );
        }
        ProductionScore::Scored {
            version,
            ref answers,
            gold_train,
        } => (version, answers, gold_train),
    };
    let comparison = compare(&candidate.answers, production_answers, items);
    let c = &comparison;
    let scores = format!(
        "{} vs {version} at {} on {} gold items",
        pct(c.candidate.value),
        pct(c.production.value),
        c.candidate.n
    );
    let significant = c.p_value < SIGNIFICANCE;
    let (status, reason) = if significant && c.difference.value < -rules.tolerance {
        (
            ModelStatus::Rejected,
            format!(
                "clearly worse: {scores} (p = {:.3}, more than {} worse)",
                c.p_value,
                points(rules.tolerance)
            ),
        )
    } else if let Some(oos) = c
        .oos
        .as_ref()
        .filter(|o| o.p_value < SIGNIFICANCE)
        .filter(|o| o.candidate.value < o.production.value - rules.oos_tolerance)
    {
        (
            ModelStatus::Rejected,
            format!(
                "clearly worse on out-of-scope recall: {} vs {version} at {} on {} out-of-scope items (p = {:.3}, more than {} worse)",
                pct(oos.candidate.value),
                pct(oos.production.value),
                oos.candidate.n,
                oos.p_value,
                points(rules.oos_tolerance)
            ),
        )
    } else if c.candidate.n < rules.min_gold {
        let few = if c.candidate.n == 0 {
            format!(
                "too few gold items to judge: 0 of the {} needed",
                rules.min_gold
            )
        } else {
            format!(
                "too few gold items to judge: {} of the {} needed ({} vs {version} at {})",
                c.candidate.n,
                rules.min_gold,
                pct(c.candidate.value),
                pct(c.production.value)
            )
        };
        if rules.force {
            (
                ModelStatus::Testing,
                format!("{few}; registered for a human decision because of --force"),
            )
        } else {
            (
                ModelStatus::Rejected,
                format!("{few}: review more, or --force registers it for a human decision"),
            )
        }
    } else if significant && c.difference.value > 0.0 {
        (
            ModelStatus::Testing,
            format!("better: {scores} (p = {:.3})", c.p_value),
        )
    } else if c.difference.low >= -rules.tolerance {
        (
            ModelStatus::Testing,
            format!(
                "not worse beyond {}: {scores} (difference {} to {})",
                points(rules.tolerance),
                signed_points(c.difference.low),
                signed_points(c.difference.high)
            ),
        )
    } else if production_gold.is_none_or(|p| candidate.gold_train > p) {
        (
            ModelStatus::Testing,
            format!(
                "indistinguishable from production ({scores}, p = {:.2}) and trained on more human labels ({} vs {})",
                c.p_value,
                candidate.gold_train,
                production_gold.map_or("unknown".into(), |p| p.to_string())
            ),
        )
    } else {
        (
            ModelStatus::Rejected,
            format!(
                "not shown better or not worse ({scores}, p = {:.2}) and trained on no more human labels",
                c.p_value
            ),
        )
    };
    verdict(status, reason, Some(comparison))
}

fn verdict(status: ModelStatus, reason: String, comparison: Option<Comparison>) -> GateDecision {
    GateDecision {
        status,
        reason,
        comparison,
    }
}

/// Both models' scores on the same items, and where they disagree.
fn compare(candidate: &Answers<'_>, production: &Answers<'_>, items: Items<'_>) -> Comparison {
    let n = candidate.correct.len();
    let (mut candidate_only, mut production_only) = (0, 0);
    for (&c, &p) in candidate.correct.iter().zip(production.correct) {
        candidate_only += usize::from(c && !p);
        production_only += usize::from(p && !c);
    }
    let oos_indices: Vec<usize> = (0..n).filter(|&i| items.out_of_scope[i]).collect();
    let oos = (!oos_indices.is_empty()).then(|| {
        let right =
            |answers: &Answers<'_>| oos_indices.iter().filter(|&&i| answers.correct[i]).count();
        let (mut only_c, mut only_p) = (0, 0);
        for &i in &oos_indices {
            only_c += usize::from(candidate.correct[i] && !production.correct[i]);
            only_p += usize::from(production.correct[i] && !candidate.correct[i]);
        }
        OosComparison {
            candidate: wilson(right(candidate), oos_indices.len()),
            production: wilson(right(production), oos_indices.len()),
            p_value: mcnemar_exact(only_c, only_p),
        }
    });
    Comparison {
        candidate: wilson(candidate.correct.iter().filter(|&&c| c).count(), n),
        production: wilson(production.correct.iter().filter(|&&c| c).count(), n),
        difference: paired_difference(candidate_only, production_only, n),
        candidate_only,
        production_only,
        p_value: mcnemar_exact(candidate_only, production_only),
        oos,
    }
}

/// The difference of two paired shares, (b − c) / n, with the Wald 95 %
/// interval of a paired difference.
fn paired_difference(b: usize, c: usize, n: usize) -> Estimate {
    if n == 0 {
        return Estimate {
            value: 0.0,
            low: -1.0,
            high: 1.0,
            n,
        };
    }
    let (b, c, n_f) = (b as f64, c as f64, n as f64);
    let d = (b - c) / n_f;
    let variance = ((b + c) / n_f - d * d) / n_f;
    let half = Z95 * variance.max(0.0).sqrt();
    Estimate {
        value: d,
        low: (d - half).max(-1.0),
        high: (d + half).min(1.0),
        n,
    }
}

/// Exact two-sided McNemar test: under "both models are as good", each of
/// the `b + c` disagreements goes either way with probability ½.
pub fn mcnemar_exact(b: usize, c: usize) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    let k = b.min(c);
    // P(X ≤ k) for X ~ Binomial(n, ½), summed in logs (0.5^n underflows).
    let mut log_term = n as f64 * 0.5f64.ln();
    let mut log_sum = log_term;
    for i in 0..k {
        log_term += ((n - i) as f64).ln() - ((i + 1) as f64).ln();
        log_sum = log_add(log_sum, log_term);
    }
    (2.0 * log_sum.exp()).min(1.0)
}

fn log_add(a: f64, b: f64) -> f64 {
    let (high, low) = if a > b { (a, b) } else { (b, a) };
    high + (low - high).exp().ln_1p()
}

fn pct(share: f64) -> String {
    format!("{:.1} %", share * 100.0)
}

fn points(share: f64) -> String {
    format!("{:.1} points", share * 100.0)
}

fn signed_points(share: f64) -> String {
    format!("{:+.1}", share * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: GateRules = GateRules {
        tolerance: 0.01,
        oos_tolerance: 0.05,
        min_gold: 30,
        force: false,
    };

    /// `n` items; the candidate and production right on the first
    /// `candidate` / `production` of them (so every item production gets
    /// right the better one gets right too, unless `swap`).
    fn answers(n: usize, right: usize) -> Vec<bool> {
        (0..n).map(|i| i < right).collect()
    }

    fn run(
        candidate: &[bool],
        production: &[bool],
        oos: &[bool],
        gold: (usize, Option<usize>),
        rules: GateRules,
    ) -> GateDecision {
        decide(
            &Candidate {
                answers: Answers { correct: candidate },
                gold_train: gold.0,
            },
            &ProductionScore::Scored {
                version: "router-v1.0.0",
                answers: Answers {
                    correct: production,
                },
                gold_train: gold.1,
            },
            Items { out_of_scope: oos },
            rules,
        )
    }

    #[test]
    fn a_clearly_better_candidate_is_testing() {
        let oos = vec![false; 400];
        let d = run(
            &answers(400, 360),
            &answers(400, 320),
            &oos,
            (10, Some(10)),
            RULES,
        );
        assert_eq!(d.status, ModelStatus::Testing);
        assert!(
            d.reason
                .starts_with("better: 90.0 % vs router-v1.0.0 at 80.0 % on 400 gold items"),
            "{}",
            d.reason
        );
        let c = d.comparison.unwrap();
        assert_eq!((c.candidate_only, c.production_only), (40, 0));
        assert!(c.p_value < 1e-9);
    }

    #[test]
    fn a_clearly_worse_candidate_is_rejected_even_with_force() {
        let oos = vec![false; 400];
        let rules = GateRules {
            force: true,
            ..RULES
        };
        let d = run(
            &answers(400, 320),
            &answers(400, 360),
            &oos,
            (99, Some(1)),
            rules,
        );
        assert_eq!(d.status, ModelStatus::Rejected);
        assert!(
            d.reason.starts_with("clearly worse: 80.0 %"),
            "{}",
            d.reason
        );
        // Even with too few items to judge otherwise.
        let few = vec![false; 20];
        let d = run(
            &answers(20, 2),
            &answers(20, 20),
            &few,
            (99, Some(1)),
            rules,
        );
        assert_eq!(d.status, ModelStatus::Rejected, "{}", d.reason);
    }

    #[test]
    fn worse_out_of_scope_recall_is_rejected_though_overall_is_equal() {
        // 100 items, the last 40 out of scope; the candidate trades 20
        // out-of-scope items for 20 in-scope ones.
        let oos: Vec<bool> = (0..100).map(|i| i >= 60).collect();
        let production: Vec<bool> = (0..100).map(|i| i >= 20).collect();
        let candidate: Vec<bool> = (0..100).map(|i| i < 80).collect();
        let d = run(&candidate, &production, &oos, (10, Some(1)), RULES);
        assert_eq!(d.status, ModelStatus::Rejected);
        assert!(
            d.reason.starts_with(
                "clearly worse on out-of-scope recall: 50.0 % vs router-v1.0.0 at 100.0 %"
            ),
            "{}",
            d.reason
        );
    }

    #[test]
    fn too_few_gold_items_register_only_with_force() {
        let oos = vec![false; 10];
        let d = run(&answers(10, 9), &answers(10, 8), &oos, (5, Some(1)), RULES);
        assert_eq!(d.status, ModelStatus::Rejected);
        assert!(
            d.reason.starts_with("too few gold items to judge"),
            "{}",
            d.reason
        );
        assert!(d.reason.contains("--force"), "{}", d.reason);
        let forced = GateRules {
            force: true,
            ..RULES
        };
        let d = run(&answers(10, 9), &answers(10, 8), &oos, (5, Some(1)), forced);
        assert_eq!(d.status, ModelStatus::Testing);
        assert!(d.reason.contains("because of --force"), "{}", d.reason);
    }

    #[test]
    fn not_worse_beyond_the_tolerance_is_testing() {
        // 2000 items, production right on 1800, the candidate on the same
        // 1800 but one: a tight interval around -0.05 points.
        let oos = vec![false; 2000];
        let d = run(
            &answers(2000, 1799),
            &answers(2000, 1800),
            &oos,
            (1, Some(1)),
            RULES,
        );
        assert_eq!(d.status, ModelStatus::Testing);
        assert!(
            d.reason.starts_with("not worse beyond 1.0 points"),
            "{}",
            d.reason
        );
    }

    #[test]
    fn a_tie_is_testing_only_with_more_human_labels() {
        // 200 items; each model right on 180, disagreeing on 20 of them.
        let oos = vec![false; 200];
        let production: Vec<bool> = (0..200).map(|i| i < 180).collect();
        let candidate: Vec<bool> = (0..200).map(|i| (10..190).contains(&i)).collect();
        let more = run(&candidate, &production, &oos, (500, Some(400)), RULES);
        assert_eq!(more.status, ModelStatus::Testing);
        assert!(
            more.reason.starts_with("indistinguishable from production"),
            "{}",
            more.reason
        );
        assert!(more.reason.contains("(500 vs 400)"), "{}", more.reason);
        let same = run(&candidate, &production, &oos, (400, Some(400)), RULES);
        assert_eq!(same.status, ModelStatus::Rejected);
        assert!(
            same.reason.contains("trained on no more human labels"),
            "{}",
            same.reason
        );
        // A production version from before gold counts were kept: a
        // candidate is not held back by what nobody recorded.
        let unknown = run(&candidate, &production, &oos, (1, None), RULES);
        assert_eq!(unknown.status, ModelStatus::Testing);
    }

    #[test]
    fn without_a_scored_production_a_human_decides() {
        let candidate = Candidate {
            answers: Answers { correct: &[] },
            gold_train: 0,
        };
        let items = Items { out_of_scope: &[] };
        let none = decide(&candidate, &ProductionScore::None, items, RULES);
        assert_eq!(none.status, ModelStatus::Testing);
        assert_eq!(none.reason, "no production model to compare with");
        let broken = ProductionScore::Unloadable {
            version: "router-v1.0.0",
            why: "weights.safetensors is missing",
        };
        let d = decide(&candidate, &broken, items, RULES);
        assert_eq!(d.status, ModelStatus::Testing);
        assert!(
            d.reason.contains("weights.safetensors is missing"),
            "{}",
            d.reason
        );
    }

    #[test]
    fn intervals_and_the_exact_test_match_known_values() {
        // McNemar exact, 10 vs 2 disagreements: p = 0.0386.
        assert!((mcnemar_exact(10, 2) - 0.03857).abs() < 1e-4);
        assert_eq!(mcnemar_exact(5, 5), 1.0);
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        // Large n does not underflow.
        assert!(mcnemar_exact(1500, 1400) > 0.0 && mcnemar_exact(1500, 1400) < 1.0);
    }
}
