//! Per-intent auto-approval thresholds (issue 17 item 4): the confidence at
//! which each intent's auto-approvals are right often enough
//! (`auto_filter.min_precision`), as audits measured it — never below the
//! operator's `auto_filter.auto_approve_confidence`, the floor.
//!
//! Evidence is audits only: they are drawn uniformly from traffic, so the
//! audited conversations at or above a confidence are a fair sample of what
//! auto-approval at that confidence lets through (reviews of the queue are
//! not: they are the uncertain ones).
//!
//! Audits are scarce per intent (5 % of 2 000 conversations a week spread
//! over 150 intents is under one an intent), so an intent's precision at
//! a confidence is its own tally shrunk towards all intents' pooled
//! precision at that confidence, with a prior worth `evidence` audits:
//! `(right + evidence · pooled) / (n + evidence)`. An intent with a few
//! wrong audits rises above the pool; one without any audit follows the
//! pool. With fewer than `evidence` audits in the pool, nothing is known
//! and every intent stays at the floor. Where the estimate reaches
//! `min_precision` at no confidence, the threshold is the confidence with
//! the best estimate (and `stats thresholds` says so): auto-approval is
//! kept where it is most precise rather than stopped for everyone.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::AutoFilterConfig;
use crate::error::Result;
use crate::storage::{Store, Timestamp};

/// Audits older than this are not evidence: the served model changes weekly.
pub const EVIDENCE_WINDOW_DAYS: i64 = 28;

/// One audited conversation the rule could have auto-approved: the intent
/// and confidence the router gave, whether the human agreed, and how many
/// conversations it stands for (the inverse of the rate it was drawn at:
/// uncertain conversations are drawn more often, [`crate::audit::DrawRates`]).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditedPrediction {
    pub intent: String,
    pub confidence: f64,
    pub right: bool,
    pub weight: f64,
}

/// The audits at or above one confidence: how many, how many right, and
/// the share right once each is weighted by what it stands for.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Tally {
    audits: usize,
    right: usize,
    precision: Option<f64>,
}

/// Why an intent's threshold is what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ThresholdBasis {
    /// Too few audits in the window to say anything: the operator's floor.
    NoEvidence,
    /// The lowest confidence (not below the floor) where the estimated
    /// precision reaches `min_precision`.
    Evidence,
    /// Evidence says `min_precision` is reached at no confidence: the one
    /// with the best estimated precision.
    PrecisionNotReached,
}

/// The threshold of one intent (or of the pool) and what it rests on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntentThreshold {
    pub threshold: f64,
    pub basis: ThresholdBasis,
    /// The intent's own audits at or above the floor, and how many a human
    /// agreed with.
    pub audits: usize,
    pub right: usize,
    /// Estimated precision of auto-approvals at `threshold`.
    pub estimated_precision: Option<f64>,
}

/// Thresholds for every intent with audits, and the pool's for the rest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApprovalThresholds {
    /// The operator's `auto_approve_confidence`.
    pub floor: f64,
    /// Intents without audits of their own.
    pub pooled: IntentThreshold,
    pub intents: BTreeMap<String, IntentThreshold>,
}

impl ApprovalThresholds {
    /// Only the floor (no evidence, or per-intent thresholds switched off).
    pub fn floor_only(config: &AutoFilterConfig) -> Self {
        Self {
            floor: config.auto_approve_confidence,
            pooled: IntentThreshold {
                threshold: config.auto_approve_confidence,
                basis: ThresholdBasis::NoEvidence,
                audits: 0,
                right: 0,
                estimated_precision: None,
            },
            intents: BTreeMap::new(),
        }
    }

    /// The confidence at or above which `intent` is auto-approved.
    pub fn for_intent(&self, intent: &str) -> f64 {
        self.intents
            .get(intent)
            .map_or(self.pooled.threshold, |t| t.threshold)
    }

    /// The thresholds the audits of the [`EVIDENCE_WINDOW_DAYS`] days of
    /// traffic before `as_of` give: what daily capture applies to a window
    /// ending then (so a re-run of an old day judges it as of that day) and
    /// `stats thresholds` shows as of now.
    pub async fn as_of(store: &Store, config: &AutoFilterConfig, as_of: Timestamp) -> Result<Self> {
        if config.threshold_evidence == 0 {
            return Ok(Self::floor_only(config));
        }
        let since = Timestamp(as_of.0 - chrono::Duration::days(EVIDENCE_WINDOW_DAYS));
        let audited: Vec<AuditedPrediction> = store
            .audited_predictions(since, as_of)
            .await?
            .into_iter()
            .filter(|(provider, _)| {
                provider
                    .as_ref()
                    .is_some_and(|p| config.trusted_providers.contains(p))
            })
            .map(|(_, prediction)| prediction)
            .collect();
        Ok(Self::choose(config, &audited))
    }

    /// Choose from the audited predictions of trusted providers.
    pub fn choose(config: &AutoFilterConfig, audited: &[AuditedPrediction]) -> Self {
        let floor = config.auto_approve_confidence;
        let prior = config.threshold_evidence as f64;
        let grid = candidate_thresholds(floor);
        let eligible: Vec<&AuditedPrediction> =
            audited.iter().filter(|a| a.confidence >= floor).collect();
        let pool = tallies(&grid, &eligible);
        if config.threshold_evidence == 0 || (pool[0].audits as f64) < prior {
            return Self::floor_only(config);
        }
        // Pooled precision at each grid point. Where too few audits are that
        // confident, the last measured level carries upwards (precision does
        // not fall as confidence rises), so an intent pushed above its own
        // wrong audits can land where the pool has little to say.
        let mut last = None;
        let pooled_precision: Vec<Option<f64>> = pool
            .iter()
            .map(|t| {
                if t.audits as f64 >= prior {
                    last = t.precision;
                }
                last
            })
            .collect();
        let pooled = pick(&grid, &pool, &pooled_precision, config.min_precision);
        let mut by_intent: BTreeMap<&str, Vec<&AuditedPrediction>> = BTreeMap::new();
        for a in eligible {
            by_intent.entry(a.intent.as_str()).or_default().push(a);
        }
        let intents = by_intent
            .into_iter()
            .map(|(intent, items)| {
                let own = tallies(&grid, &items);
                let estimate: Vec<Option<f64>> = own
                    .iter()
                    .zip(&pooled_precision)
                    .map(|(t, pooled)| {
                        let own = t.precision.unwrap_or(0.0) * t.audits as f64;
                        pooled.map(|p| (own + prior * p) / (t.audits as f64 + prior))
                    })
                    .collect();
                (
                    intent.to_string(),
                    pick(&grid, &own, &estimate, config.min_precision),
                )
            })
            .collect();
        Self {
            floor,
            pooled,
            intents,
        }
    }
}

/// The floor, then every hundredth above it up to 0.99.
fn candidate_thresholds(floor: f64) -> Vec<f64> {
    let mut grid = vec![floor];
    let mut step = (floor * 100.0).floor() as i64 + 1;
    while step <= 99 {
        grid.push(step as f64 / 100.0);
        step += 1;
    }
    grid
}

/// The audits at or above each grid point.
fn tallies(grid: &[f64], items: &[&AuditedPrediction]) -> Vec<Tally> {
    grid.iter()
        .map(|&t| {
            let (audits, right, weight, weight_right) = items
                .iter()
                .filter(|a| a.confidence >= t)
                .fold((0, 0, 0.0, 0.0), |(n, right, w, wr), a| {
                    let r = if a.right { a.weight } else { 0.0 };
                    (n + 1, right + usize::from(a.right), w + a.weight, wr + r)
                });
            Tally {
                audits,
                right,
                precision: (weight > 0.0).then(|| weight_right / weight),
            }
        })
        .collect()
}

/// The lowest grid point whose estimate reaches `min_precision`; failing
/// that, the best estimate; with no estimate at all, the floor.
fn pick(
    grid: &[f64],
    tallies: &[Tally],
    estimate: &[Option<f64>],
    min_precision: f64,
) -> IntentThreshold {
    let Tally { audits, right, .. } = tallies[0];
    let at = |i: usize, basis| IntentThreshold {
        threshold: grid[i],
        basis,
        audits,
        right,
        estimated_precision: estimate[i],
    };
    if let Some(i) = estimate
        .iter()
        .position(|e| e.is_some_and(|p| p >= min_precision))
    {
        return at(i, ThresholdBasis::Evidence);
    }
    let best = estimate
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.map(|p| (i, p)))
        // The lowest threshold among equally good ones.
        .fold(None, |best: Option<(usize, f64)>, (i, p)| match best {
            Some((_, q)) if q >= p => best,
            _ => Some((i, p)),
        });
    match best {
        Some((i, _)) => at(i, ThresholdBasis::PrecisionNotReached),
        None => at(0, ThresholdBasis::NoEvidence),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audits(intent: &str, confidence: f64, right: usize, wrong: usize) -> Vec<AuditedPrediction> {
        (0..right + wrong)
            .map(|i| AuditedPrediction {
                intent: intent.into(),
                confidence,
                right: i < right,
                weight: 1.0,
            })
            .collect()
    }

    fn config() -> AutoFilterConfig {
        AutoFilterConfig::default()
    }

    #[test]
    fn too_few_audits_leave_every_intent_at_the_floor() {
        let t = ApprovalThresholds::choose(&config(), &audits("a", 0.9, 10, 5));
        assert_eq!(t.pooled.basis, ThresholdBasis::NoEvidence);
        assert_eq!(t.for_intent("a"), 0.85);
        assert_eq!(t.for_intent("b"), 0.85);
    }

    #[test]
    fn a_precise_pool_keeps_the_floor_and_a_wrong_intent_rises_above_it() {
        let mut evidence = audits("good", 0.9, 200, 0);
        evidence.extend(audits("good", 0.99, 100, 0));
        // "shaky" is wrong half the time at 0.9 and always right at 0.99.
        evidence.extend(audits("shaky", 0.9, 10, 10));
        evidence.extend(audits("shaky", 0.99, 30, 0));
        let t = ApprovalThresholds::choose(&config(), &evidence);
        assert_eq!(t.pooled.basis, ThresholdBasis::Evidence);
        assert_eq!(t.for_intent("good"), 0.85);
        assert_eq!(t.for_intent("unseen"), 0.85, "follows the pool");
        let shaky = &t.intents["shaky"];
        assert_eq!(shaky.basis, ThresholdBasis::Evidence);
        assert!(
            shaky.threshold > 0.9 && shaky.threshold <= 0.99,
            "{shaky:?}"
        );
        assert_eq!((shaky.audits, shaky.right), (50, 40));
    }

    #[test]
    fn an_imprecise_pool_raises_everyone_and_never_goes_below_the_floor() {
        // Right 90 % of the time at 0.86, always at 0.97 and above.
        let mut evidence = audits("a", 0.86, 90, 10);
        evidence.extend(audits("b", 0.97, 60, 0));
        evidence.extend(audits("c", 0.5, 0, 100));
        let t = ApprovalThresholds::choose(&config(), &evidence);
        assert!(
            (t.pooled.threshold - 0.87).abs() < 1e-9,
            "first point above the imprecise audits: {:?}",
            t.pooled
        );
        assert!(t.for_intent("c") >= 0.85);
        assert!(
            !t.intents.contains_key("c"),
            "audits below the floor are not evidence"
        );
    }

    #[test]
    fn audits_drawn_more_often_weigh_less() {
        // From the floor up the pool holds 100 audits at 0.99 (all right),
        // 100 at 0.9 drawn at the confident rate (96 right) and 8 at 0.86
        // drawn at twice it (4 right), each standing for half a
        // conversation: (100 + 96 + 2) / (100 + 100 + 4) = 0.9706 reaches
        // 0.97 at the floor. Counted flat, 200 / 208 = 0.9615 would not.
        let mut evidence = audits("b", 0.99, 100, 0);
        evidence.extend(audits("a", 0.9, 96, 4));
        evidence.extend(
            audits("a", 0.86, 4, 4)
                .into_iter()
                .map(|a| AuditedPrediction { weight: 0.5, ..a }),
        );
        let t = ApprovalThresholds::choose(&config(), &evidence);
        assert_eq!(t.pooled.threshold, 0.85, "{:?}", t.pooled);
        let precision = t.pooled.estimated_precision.unwrap();
        assert!((precision - 198.0 / 204.0).abs() < 1e-9, "{precision}");
        let a = &t.intents["a"];
        assert_eq!((a.audits, a.right), (108, 100), "counts stay counts");
    }

    #[test]
    fn switched_off_with_zero_evidence() {
        let cfg = AutoFilterConfig {
            threshold_evidence: 0,
            ..config()
        };
        let t = ApprovalThresholds::choose(&cfg, &audits("a", 0.9, 0, 500));
        assert_eq!(t.for_intent("a"), 0.85);
    }
}
