//! Canary analysis (DESIGN §1 "Lifecycle", issue 18): does the canary
//! serve as well as production, judged by the model's own quality signals
//! on the traffic each served since the canary started — and so wait,
//! advance its traffic to the next step, promote it, or roll it back.
//!
//! Pure: [`analyse`] takes what each version served ([`Served`]), where the
//! rollout stands and the settings, and returns every signal compared with
//! its interval and one typed [`Decision`]. `flywheel canary-check`
//! ([`crate::stages::canary_check`]) reads the figures and applies the
//! decision as a lifecycle transition.
//!
//! Why a sequential test: the check runs every hour, and a fixed-n test
//! looked at 48 times rolls back a perfectly good canary far more often than
//! its alpha says. The mixture sequential probability ratio test (mSPRT,
//! Johari, Pekelis & Walsh, "Always valid inference", 2017) gives a
//! likelihood ratio that may be watched continuously: under "no
//! difference" the chance it ever reaches `1/alpha` is at most `alpha`
//! (Ville's inequality), however often one looks.

use std::fmt::Write as _;

use serde::Serialize;

use crate::config::CanaryConfig;
use crate::estimate::{Estimate, wilson};

/// Spread of the mixture over true differences between the two versions'
/// rates: differences of a few points are the ones the test is most
/// sensitive to (a larger spread needs more evidence for small ones).
const MIXTURE_SD: f64 = 0.05;

/// What one version served since the canary started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Served {
    pub requests: u64,
    pub fallbacks: u64,
    /// Answers `oos` (out of scope) without falling back.
    pub out_of_scope: u64,
    pub negative_feedback: u64,
    /// Its answers a human reviewed, and of those, corrected to another intent.
    pub reviewed: u64,
    pub corrected: u64,
    /// Labelled audits of its answers, and of those, answered right —
    /// weighted by draw rate (uncertain traffic is drawn more often), so
    /// `audited_right / audited` is the unbiased share, rounded to a count.
    pub audited: u64,
    pub audited_right: u64,
    /// Requests whose classification time was recorded, and of those, the
    /// ones slower than `[canary] slow_ms`.
    pub timed: u64,
    pub slow: u64,
    /// Requests its model failed to classify (answered as a fallback).
    pub errors: u64,
}

/// A quality signal both versions are compared on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Signal {
    /// Served answer vs a human label, over audits ([`crate::audit`]).
    AuditAccuracy,
    NegativeFeedback,
    ReviewCorrections,
    FallbackRate,
    OutOfScopeRate,
    /// Classifications slower than `[canary] slow_ms`, of those timed.
    SlowRate,
    /// The model failed and the request was answered as a fallback.
    ErrorRate,
}

impl Signal {
    pub const ALL: [Signal; 7] = [
        Signal::AuditAccuracy,
        Signal::NegativeFeedback,
        Signal::ReviewCorrections,
        Signal::FallbackRate,
        Signal::OutOfScopeRate,
        Signal::SlowRate,
        Signal::ErrorRate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Signal::AuditAccuracy => "audit accuracy",
            Signal::NegativeFeedback => "negative feedback",
            Signal::ReviewCorrections => "review corrections",
            Signal::FallbackRate => "fallback rate",
            Signal::OutOfScopeRate => "out-of-scope rate",
            Signal::SlowRate => "slow-request rate",
            Signal::ErrorRate => "error rate",
        }
    }

    /// Only accuracy is better higher; every other rate is a failure seen
    /// by the user (an out-of-scope answer to a question in scope is the
    /// regression a label swap or a broken threshold shows first).
    pub fn higher_is_better(self) -> bool {
        self == Signal::AuditAccuracy
    }

    /// (events, n) of this signal.
    fn counts(self, s: &Served) -> (u64, u64) {
        match self {
            Signal::AuditAccuracy => (s.audited_right, s.audited),
            Signal::NegativeFeedback => (s.negative_feedback, s.requests),
            Signal::ReviewCorrections => (s.corrected, s.reviewed),
            Signal::FallbackRate => (s.fallbacks, s.requests),
            Signal::OutOfScopeRate => (s.out_of_scope, s.requests),
            Signal::SlowRate => (s.slow, s.timed),
            Signal::ErrorRate => (s.errors, s.timed),
        }
    }
}

/// The signals the sequential test decides on, each with its share of
/// alpha (Bonferroni: the chance any of them ever alarms on an equally good
/// canary stays within alpha). With audits required, audit accuracy — the
/// primary signal, unbiased — gets half and the five rates every request or
/// review gives share the rest: audits come slowly at a canary's share of
/// traffic, and a canary drawing twice the complaints should not wait for
/// them (in simulation, a canary 15 points worse was caught in 69 % of
/// 48-hour rollouts on audits alone). Without audits the rates share it all.
/// The error rate is not tested against production: any error rate
/// clearly above `[canary] max_error_rate` is a hard guard on its own.
pub fn tested_signals(settings: &CanaryConfig) -> &'static [(Signal, f64)] {
    const RATES: [Signal; 5] = [
        Signal::NegativeFeedback,
        Signal::ReviewCorrections,
        Signal::FallbackRate,
        Signal::OutOfScopeRate,
        Signal::SlowRate,
    ];
    if settings.min_audits > 0 {
        &[
            (Signal::AuditAccuracy, 0.5),
            (RATES[0], 0.1),
            (RATES[1], 0.1),
            (RATES[2], 0.1),
            (RATES[3], 0.1),
            (RATES[4], 0.1),
        ]
    } else {
        &[
            (RATES[0], 0.2),
            (RATES[1], 0.2),
            (RATES[2], 0.2),
            (RATES[3], 0.2),
            (RATES[4], 0.2),
        ]
    }
}

/// The mSPRT on one signal at one look.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SequentialTest {
    /// The mixture likelihood ratio against "no difference".
    pub likelihood_ratio: f64,
    /// `1 / alpha` of this signal (alpha shared among the signals tested).
    pub threshold: f64,
    /// The ratio reached the threshold with the canary on the worse side.
    pub regression: bool,
}

impl SequentialTest {
    /// "mSPRT Λ 81.2 ≥ 20 (regression)".
    pub fn describe(&self) -> String {
        let ratio = self.likelihood_ratio;
        format!(
            "mSPRT Λ {} {} {:.0}{}",
            if ratio >= 1e4 {
                format!("{ratio:.1e}")
            } else {
                format!("{ratio:.2}")
            },
            if self.likelihood_ratio >= self.threshold {
                "≥"
            } else {
                "<"
            },
            self.threshold,
            if self.regression { " (regression)" } else { "" }
        )
    }
}

/// One signal, canary vs production, each with its 95 % interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Comparison {
    pub signal: Signal,
    pub canary: Estimate,
    pub production: Estimate,
    /// The sequential test, when this signal is one the check decides on
    /// and both versions have data for it.
    pub test: Option<SequentialTest>,
}

impl Comparison {
    /// "audit accuracy: canary 0.600 (0.45–0.73, n 40) vs production 0.900 (…); mSPRT …".
    pub fn describe(&self) -> String {
        let mut out = format!(
            "{}: canary {} vs production {}",
            self.signal.name(),
            shown(&self.canary),
            shown(&self.production)
        );
        if let Some(test) = &self.test {
            let _ = write!(out, "; {}", test.describe());
        }
        out
    }
}

/// An estimate with its interval, or "no data" before its first item.
pub fn shown(estimate: &Estimate) -> String {
    if estimate.n == 0 {
        "no data (n 0)".into()
    } else {
        estimate.describe()
    }
}

/// What a waiting check waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "for", rename_all = "kebab-case")]
pub enum WaitFor {
    /// The minimum evidence, each missing piece in words.
    Evidence { missing: Vec<String> },
    /// The least time at this step.
    StepTime { minutes_left: u64, next_step: u32 },
}

/// Why a canary is rolled back.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RollbackReason {
    /// The sequential test found the canary worse on a signal.
    Regression { signal: Signal },
    /// Its fallback rate is clearly above `health.max_fallback_rate` (the
    /// whole 95 % interval), whatever production does.
    FallbackGuard { rate: Estimate, max: f64 },
    /// Its model fails (answered as a fallback) clearly more often than
    /// `[canary] max_error_rate` (the whole 95 % interval above).
    ErrorGuard { rate: Estimate, max: f64 },
}

/// The one thing a check decides.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "kebab-case")]
pub enum Decision {
    Wait(WaitFor),
    /// Raise the canary's traffic to the next step.
    Advance {
        from: u32,
        to: u32,
    },
    /// The last step: the canary becomes production (the old one archived).
    Promote {
        from: u32,
    },
    /// The canary's traffic returns to production at once.
    Rollback(RollbackReason),
}

impl Decision {
    /// Short machine name: `wait`, `advance`, `promote`, `rollback`.
    pub fn kind(&self) -> &'static str {
        match self {
            Decision::Wait(_) => "wait",
            Decision::Advance { .. } => "advance",
            Decision::Promote { .. } => "promote",
            Decision::Rollback(_) => "rollback",
        }
    }

    /// One sentence.
    pub fn describe(&self) -> String {
        match self {
            Decision::Wait(WaitFor::Evidence { missing }) => {
                format!("wait for the minimum evidence: {}", missing.join("; "))
            }
            Decision::Wait(WaitFor::StepTime {
                minutes_left,
                next_step,
            }) => format!(
                "wait {} more at this step before {next_step} %",
                minutes(*minutes_left)
            ),
            Decision::Advance { from, to } => format!("advance canary traffic {from} % → {to} %"),
            Decision::Promote { from } => {
                format!("promote to production (from {from} %; the old production is archived)")
            }
            Decision::Rollback(RollbackReason::Regression { signal }) => {
                format!(
                    "roll back: the canary is worse on {} (sequential test)",
                    signal.name()
                )
            }
            Decision::Rollback(RollbackReason::FallbackGuard { rate, max }) => format!(
                "roll back: the canary's fallback rate {} is above health.max_fallback_rate {max:.2}",
                rate.describe()
            ),
            Decision::Rollback(RollbackReason::ErrorGuard { rate, max }) => format!(
                "roll back: the canary's model fails on {} of requests, above canary.max_error_rate {max:.3}",
                rate.describe()
            ),
        }
    }
}

/// "16 h 0 min", "45 min".
pub fn minutes(total: u64) -> String {
    match (total / 60, total % 60) {
        (0, m) => format!("{m} min"),
        (h, m) => format!("{h} h {m} min"),
    }
}

/// Where the rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rollout {
    pub canary: Served,
    pub production: Served,
    /// The canary's traffic now (1–99).
    pub traffic: u32,
    /// Since its traffic last changed.
    pub minutes_at_step: u64,
}

/// Everything a check found and what it decides.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    pub signals: Vec<Comparison>,
    pub decision: Decision,
}

impl Analysis {
    /// The evidence of a decision, for the transition's reason and the
    /// report: the decision, then each signal (tested ones first).
    pub fn evidence(&self) -> String {
        let mut out = format!("canary-check: {}", self.decision.describe());
        let (tested, shown): (Vec<&Comparison>, Vec<&Comparison>) =
            self.signals.iter().partition(|c| c.test.is_some());
        for c in tested.into_iter().chain(shown) {
            let _ = write!(out, " | {}", c.describe());
        }
        out
    }
}

/// The mixture likelihood ratio of "the canary's rate differs from
/// production's" against "they are equal", for `canary` events of `n`
/// and `production` events of `m`: the normal approximation of the
/// difference, its variance from the pooled rate (the rate under the null),
/// a N(0, MIXTURE_SD²) mixture over the true difference.
pub fn mixture_likelihood_ratio(canary: (u64, u64), production: (u64, u64)) -> f64 {
    let ((k, n), (j, m)) = (canary, production);
    if n == 0 || m == 0 {
        return 0.0;
    }
    let (n, m) = (n as f64, m as f64);
    let pooled = (k + j) as f64 / (n + m);
    let variance = pooled * (1.0 - pooled) * (1.0 / n + 1.0 / m);
    if variance <= 0.0 {
        // Both versions all one way: no difference seen.
        return 0.0;
    }
    let difference = k as f64 / n - j as f64 / m;
    let tau2 = MIXTURE_SD * MIXTURE_SD;
    (variance / (variance + tau2)).sqrt()
        * (tau2 * difference * difference / (2.0 * variance * (variance + tau2))).exp()
}

/// Compare both versions on every signal and decide.
pub fn analyse(rollout: &Rollout, settings: &CanaryConfig, max_fallback_rate: f64) -> Analysis {
    let tested = tested_signals(settings);
    let signals: Vec<Comparison> = Signal::ALL
        .iter()
        .map(|&signal| {
            let (c, p) = (
                signal.counts(&rollout.canary),
                signal.counts(&rollout.production),
            );
            let share = tested.iter().find(|(s, _)| *s == signal).map(|(_, a)| *a);
            let test = share.filter(|_| c.1 > 0 && p.1 > 0).map(|share| {
                let threshold = 1.0 / (settings.alpha * share);
                let likelihood_ratio = mixture_likelihood_ratio(c, p);
                let canary_worse = if signal.higher_is_better() {
                    c.0 as f64 / (c.1 as f64) < p.0 as f64 / p.1 as f64
                } else {
                    c.0 as f64 / (c.1 as f64) > p.0 as f64 / p.1 as f64
                };
                SequentialTest {
                    likelihood_ratio,
                    threshold,
                    regression: canary_worse && likelihood_ratio >= threshold,
                }
            });
            Comparison {
                signal,
                canary: estimate(c),
                production: estimate(p),
                test,
            }
        })
        .collect();
    let decision = decide(rollout, settings, max_fallback_rate, &signals);
    Analysis { signals, decision }
}

fn estimate((events, n): (u64, u64)) -> Estimate {
    wilson(events as usize, n as usize)
}

fn decide(
    rollout: &Rollout,
    settings: &CanaryConfig,
    max_fallback_rate: f64,
    signals: &[Comparison],
) -> Decision {
    let (canary, production) = (&rollout.canary, &rollout.production);
    // The hard guards judge the canary alone, once it has served enough
    // that one unlucky request cannot trip them.
    if canary.requests >= settings.min_requests {
        let rate = estimate(Signal::ErrorRate.counts(canary));
        if rate.low > settings.max_error_rate {
            return Decision::Rollback(RollbackReason::ErrorGuard {
                rate,
                max: settings.max_error_rate,
            });
        }
        let rate = estimate(Signal::FallbackRate.counts(canary));
        if rate.low > max_fallback_rate {
            return Decision::Rollback(RollbackReason::FallbackGuard {
                rate,
                max: max_fallback_rate,
            });
        }
    }
    let missing = missing_evidence(canary, production, settings);
    if !missing.is_empty() {
        return Decision::Wait(WaitFor::Evidence { missing });
    }
    if let Some(worse) = signals
        .iter()
        .find(|c| c.test.is_some_and(|t| t.regression))
    {
        return Decision::Rollback(RollbackReason::Regression {
            signal: worse.signal,
        });
    }
    let next = settings
        .steps
        .iter()
        .copied()
        .find(|s| *s > rollout.traffic)
        .unwrap_or(100);
    if rollout.minutes_at_step < settings.min_step_minutes {
        return Decision::Wait(WaitFor::StepTime {
            minutes_left: settings.min_step_minutes - rollout.minutes_at_step,
            next_step: next,
        });
    }
    if next >= 100 {
        Decision::Promote {
            from: rollout.traffic,
        }
    } else {
        Decision::Advance {
            from: rollout.traffic,
            to: next,
        }
    }
}

/// Each version's minimum evidence still missing, in words.
fn missing_evidence(canary: &Served, production: &Served, settings: &CanaryConfig) -> Vec<String> {
    let mut missing = Vec::new();
    for (name, served) in [("canary", canary), ("production", production)] {
        let mut short = Vec::new();
        if served.requests < settings.min_requests {
            short.push(format!(
                "{} of {} requests",
                served.requests, settings.min_requests
            ));
        }
        if served.audited < settings.min_audits {
            short.push(format!(
                "{} of {} labelled audits",
                served.audited, settings.min_audits
            ));
        }
        if !short.is_empty() {
            missing.push(format!("{name} {}", short.join(", ")));
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn settings() -> CanaryConfig {
        CanaryConfig {
            min_requests: 200,
            min_audits: 30,
            min_step_minutes: 60,
            ..CanaryConfig::default()
        }
    }

    /// `requests` served with the given rates (audits: 20 % of requests).
    fn served(requests: u64, accuracy: f64, fallback: f64, negative: f64) -> Served {
        let audited = requests / 5;
        Served {
            requests,
            fallbacks: (requests as f64 * fallback) as u64,
            out_of_scope: requests / 20,
            negative_feedback: (requests as f64 * negative) as u64,
            reviewed: requests / 10,
            corrected: (requests as f64 / 10.0 * (1.0 - accuracy)) as u64,
            audited,
            audited_right: (audited as f64 * accuracy) as u64,
            timed: requests,
            slow: requests / 100,
            errors: 0,
        }
    }

    fn rollout(canary: Served, production: Served, traffic: u32, minutes: u64) -> Rollout {
        Rollout {
            canary,
            production,
            traffic,
            minutes_at_step: minutes,
        }
    }

    #[test]
    fn a_worse_canary_is_rolled_back_once_the_evidence_is_in() {
        let production = served(2000, 0.9, 0.05, 0.05);
        let worse = served(200, 0.6, 0.05, 0.2);
        let a = analyse(&rollout(worse, production, 10, 0), &settings(), 0.2);
        assert_eq!(
            a.decision,
            Decision::Rollback(RollbackReason::Regression {
                signal: Signal::AuditAccuracy
            })
        );
        let evidence = a.evidence();
        assert!(
            evidence.contains("audit accuracy: canary 0.600"),
            "{evidence}"
        );
        assert!(evidence.contains("(regression)"), "{evidence}");
        // The same canary one request short of the minimum: no decision.
        let short = Served {
            requests: 199,
            ..worse
        };
        let a = analyse(&rollout(short, production, 10, 0), &settings(), 0.2);
        let Decision::Wait(WaitFor::Evidence { missing }) = a.decision else {
            panic!("{:?}", a.decision);
        };
        assert_eq!(missing, vec!["canary 199 of 200 requests"]);
    }

    #[test]
    fn without_audits_the_rates_decide() {
        let config = CanaryConfig {
            min_audits: 0,
            ..settings()
        };
        let production = Served {
            audited: 0,
            audited_right: 0,
            ..served(2000, 0.9, 0.05, 0.05)
        };
        let worse = Served {
            audited: 0,
            audited_right: 0,
            ..served(400, 0.9, 0.05, 0.2)
        };
        let a = analyse(&rollout(worse, production, 10, 0), &config, 0.2);
        assert_eq!(
            a.decision,
            Decision::Rollback(RollbackReason::Regression {
                signal: Signal::NegativeFeedback
            })
        );
        // Audit accuracy is shown, not tested.
        assert!(a.signals[0].test.is_none());
        assert!((a.signals[1].test.unwrap().threshold - 100.0).abs() < 1e-9);
        assert_eq!(a.signals.iter().filter(|c| c.test.is_some()).count(), 5);
    }

    /// A canary whose model is slower: more classifications over
    /// `slow_ms` than production's, told apart by the sequential test.
    #[test]
    fn a_slower_canary_is_rolled_back_on_its_slow_request_rate() {
        let production = served(3000, 0.9, 0.05, 0.05);
        let slower = Served {
            slow: 120,
            ..served(600, 0.9, 0.05, 0.05)
        };
        let a = analyse(&rollout(slower, production, 10, 0), &settings(), 0.2);
        assert_eq!(
            a.decision,
            Decision::Rollback(RollbackReason::Regression {
                signal: Signal::SlowRate
            })
        );
        assert!(
            a.evidence().contains("slow-request rate: canary 0.200"),
            "{}",
            a.evidence()
        );
    }

    /// A model that fails on some inputs is rolled back on its own error
    /// rate, whatever production does, once it has served the minimum.
    #[test]
    fn the_error_guard_rolls_back_a_failing_model() {
        let production = served(3000, 0.9, 0.05, 0.05);
        let failing = Served {
            errors: 12,
            ..served(300, 0.9, 0.05, 0.05)
        };
        let a = analyse(&rollout(failing, production, 10, 0), &settings(), 0.2);
        let Decision::Rollback(RollbackReason::ErrorGuard { rate, max }) = a.decision else {
            panic!("{:?}", a.decision);
        };
        assert_eq!(max, 0.01);
        assert!(rate.low > 0.01, "{rate:?}");
        assert!(a.decision.describe().contains("model fails on 0.040"));
        // One error in 300 is within the bar; one in 10 is too few requests.
        for (errors, requests) in [(1, 300), (1, 10)] {
            let few = Served {
                errors,
                ..served(requests, 0.9, 0.05, 0.05)
            };
            let a = analyse(&rollout(few, production, 10, 0), &settings(), 0.2);
            assert!(
                !matches!(a.decision, Decision::Rollback(_)),
                "{:?}",
                a.decision
            );
        }
    }

    #[test]
    fn the_fallback_guard_needs_the_requests_and_a_clear_excess() {
        let production = served(2000, 0.9, 0.05, 0.05);
        let falling_back = served(300, 0.9, 0.4, 0.05);
        let a = analyse(&rollout(falling_back, production, 10, 0), &settings(), 0.2);
        assert!(
            matches!(
                a.decision,
                Decision::Rollback(RollbackReason::FallbackGuard { max, .. }) if max == 0.2
            ),
            "{:?}",
            a.decision
        );
        // Three fallbacks in ten requests trip nothing.
        let early = served(10, 0.9, 0.3, 0.05);
        let a = analyse(&rollout(early, production, 10, 0), &settings(), 0.2);
        assert_eq!(a.decision.kind(), "wait");
    }

    #[test]
    fn an_equal_canary_waits_its_step_time_then_advances_then_promotes() {
        let production = served(2000, 0.9, 0.05, 0.05);
        let equal = served(400, 0.9, 0.05, 0.05);
        let check = |traffic, minutes| {
            analyse(
                &rollout(equal, production, traffic, minutes),
                &settings(),
                0.2,
            )
            .decision
        };
        assert_eq!(
            check(10, 20),
            Decision::Wait(WaitFor::StepTime {
                minutes_left: 40,
                next_step: 25
            })
        );
        assert_eq!(check(10, 60), Decision::Advance { from: 10, to: 25 });
        assert_eq!(check(25, 61), Decision::Advance { from: 25, to: 50 });
        assert_eq!(check(50, 60), Decision::Promote { from: 50 });
        // A share set by hand between steps goes to the next step up.
        assert_eq!(check(15, 60), Decision::Advance { from: 15, to: 25 });
        assert!(check(10, 20).describe().contains("40 min"));
    }

    #[test]
    fn a_better_canary_is_never_rolled_back() {
        let production = served(2000, 0.8, 0.1, 0.1);
        let better = served(2000, 0.95, 0.02, 0.01);
        let a = analyse(&rollout(better, production, 50, 600), &settings(), 0.2);
        assert_eq!(a.decision, Decision::Promote { from: 50 });
        let ratio = a.signals[0].test.unwrap().likelihood_ratio;
        assert!(ratio > 1000.0, "the difference is clear: {ratio}");
    }

    #[test]
    fn the_likelihood_ratio_grows_with_evidence_of_a_difference() {
        assert_eq!(mixture_likelihood_ratio((0, 0), (5, 10)), 0.0);
        assert_eq!(mixture_likelihood_ratio((10, 10), (50, 50)), 0.0);
        let small = mixture_likelihood_ratio((60, 100), (900, 1000));
        let large = mixture_likelihood_ratio((600, 1000), (9000, 10000));
        assert!(large > small && small > 20.0, "{small} {large}");
        // Equal rates: evidence for no difference, the ratio shrinks below 1.
        assert!(mixture_likelihood_ratio((900, 1000), (9000, 10000)) < 1.0);
    }

    fn binomial(rng: &mut ChaCha8Rng, n: u64, p: f64) -> u64 {
        (0..n).filter(|_| rng.random_bool(p)).count() as u64
    }

    /// How a simulated version serves: its accuracy and the share of its
    /// answers a user complains about.
    #[derive(Clone, Copy)]
    struct Quality {
        accuracy: f64,
        negative: f64,
    }

    const AS_PRODUCTION: Quality = Quality {
        accuracy: 0.85,
        negative: 0.06,
    };

    /// One simulated hour of traffic for a version.
    fn hour(rng: &mut ChaCha8Rng, requests: u64, audit_share: f64, quality: Quality) -> Served {
        let audited = binomial(rng, requests, audit_share);
        let reviewed = binomial(rng, requests, 0.2);
        Served {
            requests,
            fallbacks: binomial(rng, requests, 0.08),
            out_of_scope: binomial(rng, requests, 0.04),
            negative_feedback: binomial(rng, requests, quality.negative),
            reviewed,
            corrected: binomial(rng, reviewed, 1.0 - quality.accuracy),
            audited,
            audited_right: binomial(rng, audited, quality.accuracy),
            timed: requests,
            slow: binomial(rng, requests, 0.02),
            errors: 0,
        }
    }

    fn add(a: &mut Served, b: Served) {
        a.requests += b.requests;
        a.fallbacks += b.fallbacks;
        a.out_of_scope += b.out_of_scope;
        a.negative_feedback += b.negative_feedback;
        a.reviewed += b.reviewed;
        a.corrected += b.corrected;
        a.audited += b.audited;
        a.audited_right += b.audited_right;
        a.timed += b.timed;
        a.slow += b.slow;
        a.errors += b.errors;
    }

    /// The share of simulated rollouts of a canary serving with `canary`
    /// quality that are rolled back, and the mean hour of those rollbacks.
    /// Each is checked every hour for 48 hours, 100 requests an hour,
    /// advancing as the checks decide.
    fn rollback_rate(
        config: &CanaryConfig,
        canary_quality: Quality,
        runs: usize,
        seed: u64,
    ) -> (f64, f64) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (mut rollbacks, mut hours) = (0, 0);
        for _ in 0..runs {
            let (mut canary, mut production) = (Served::default(), Served::default());
            let (mut traffic, mut minutes_at_step) = (config.steps[0], 0);
            for hour_number in 1..=48 {
                let requests: u64 = 100;
                let on_canary = binomial(&mut rng, requests, f64::from(traffic) / 100.0);
                add(&mut canary, hour(&mut rng, on_canary, 0.1, canary_quality));
                add(
                    &mut production,
                    hour(&mut rng, requests - on_canary, 0.1, AS_PRODUCTION),
                );
                minutes_at_step += 60;
                let state = rollout(canary, production, traffic, minutes_at_step);
                match analyse(&state, config, 0.2).decision {
                    Decision::Rollback(_) => {
                        rollbacks += 1;
                        hours += hour_number;
                        break;
                    }
                    Decision::Promote { .. } => break,
                    Decision::Advance { to, .. } => {
                        traffic = to;
                        minutes_at_step = 0;
                    }
                    Decision::Wait(_) => {}
                }
            }
        }
        (
            rollbacks as f64 / runs as f64,
            hours as f64 / rollbacks.max(1) as f64,
        )
    }

    /// A/A: the canary is the same model; the share of rollouts ever rolled
    /// back must stay within alpha.
    fn false_alarm_rate(config: &CanaryConfig, runs: usize, seed: u64) -> f64 {
        rollback_rate(config, AS_PRODUCTION, runs, seed).0
    }

    /// A canary 15 points less accurate, drawing twice the complaints, is
    /// caught within the 48 hours in nearly every rollout, either way.
    #[test]
    fn a_clearly_worse_canary_is_caught_within_the_rollout() {
        let worse = Quality {
            accuracy: 0.70,
            negative: 0.12,
        };
        let audits = CanaryConfig {
            min_requests: 50,
            min_audits: 10,
            ..CanaryConfig::default()
        };
        let (rate, hour) = rollback_rate(&audits, worse, 300, 21);
        assert!(rate >= 0.9, "audits: {rate} rolled back (mean hour {hour})");
        let rates_only = CanaryConfig {
            min_audits: 0,
            ..audits
        };
        let (rate, hour) = rollback_rate(&rates_only, worse, 300, 22);
        assert!(rate >= 0.9, "rates: {rate} rolled back (mean hour {hour})");
    }

    #[test]
    fn hourly_looks_at_an_a_a_canary_keep_false_alarms_within_alpha() {
        let audits = CanaryConfig {
            min_requests: 50,
            min_audits: 10,
            min_step_minutes: 960,
            ..CanaryConfig::default()
        };
        let rate = false_alarm_rate(&audits, 2000, 18);
        assert!(rate <= audits.alpha, "false alarms with audits: {rate}");
        let rates_only = CanaryConfig {
            min_audits: 0,
            ..audits.clone()
        };
        let rate = false_alarm_rate(&rates_only, 2000, 19);
        assert!(rate <= rates_only.alpha, "false alarms on rates: {rate}");
        // The same looks with a fixed-n z-test at 1.96 alarm far more often:
        // the sequential test is what keeps the rate down.
        let mut rng = ChaCha8Rng::seed_from_u64(20);
        let naive = (0..500)
            .filter(|_| {
                let (mut c, mut p) = ((0, 0), (0, 0));
                (0..48).any(|_| {
                    let on_canary = binomial(&mut rng, 100, 0.25);
                    c.0 += binomial(&mut rng, on_canary, 0.85);
                    c.1 += on_canary;
                    p.0 += binomial(&mut rng, 100 - on_canary, 0.85);
                    p.1 += 100 - on_canary;
                    z_alarm(c, p)
                })
            })
            .count();
        assert!(naive as f64 / 500.0 > 0.1, "naive peeking: {naive} of 500");
    }

    /// The figures the README quotes, printed (hand-run:
    /// `cargo test --lib canary::tests::simulated_rollout_figures -- --ignored --nocapture`).
    #[test]
    #[ignore = "a measurement: prints the README's simulated rollout figures"]
    fn simulated_rollout_figures() {
        let audits = CanaryConfig {
            min_requests: 50,
            min_audits: 10,
            ..CanaryConfig::default()
        };
        let rates_only = CanaryConfig {
            min_audits: 0,
            ..audits.clone()
        };
        let worse = Quality {
            accuracy: 0.70,
            negative: 0.12,
        };
        for (name, config, seed) in [("audits", &audits, 18), ("rates alone", &rates_only, 19)] {
            let aa = false_alarm_rate(config, 2000, seed);
            let (caught, hour) = rollback_rate(config, worse, 300, seed + 3);
            println!(
                "{name}: A/A rolled back {:.2} % of 2000; 15 points worse caught {:.1} % of 300 (mean hour {hour:.1})",
                aa * 100.0,
                caught * 100.0
            );
        }
    }

    /// A two-sided fixed-n z-test at 95 %.
    fn z_alarm((k, n): (u64, u64), (j, m): (u64, u64)) -> bool {
        if n < 30 || m < 30 {
            return false;
        }
        let (n, m) = (n as f64, m as f64);
        let pooled = (k + j) as f64 / (n + m);
        let se = (pooled * (1.0 - pooled) * (1.0 / n + 1.0 / m)).sqrt();
        se > 0.0 && ((k as f64 / n - j as f64 / m) / se).abs() > 1.96
    }
}
