//! The auto-filter rule of DESIGN §1, as a pure function of one
//! conversation's prediction and the configuration.

use super::approval_thresholds::ApprovalThresholds;
use crate::config::AutoFilterConfig;

/// Where the rule sends a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Confident prediction from a trusted provider: an approved sample.
    AutoApproved,
    /// A human must look; lower priority number = more urgent.
    NeedsReview { priority: i32 },
}

/// The rule as daily capture applies it: the operator's settings and the
/// per-intent thresholds audits gave when the run started.
pub struct AutoFilter<'a> {
    pub config: &'a AutoFilterConfig,
    pub thresholds: ApprovalThresholds,
}

impl<'a> AutoFilter<'a> {
    /// The operator's floor alone (no audit evidence consulted).
    pub fn floor_only(config: &'a AutoFilterConfig) -> Self {
        Self {
            config,
            thresholds: ApprovalThresholds::floor_only(config),
        }
    }

    /// `confidence >=` the intent's auto-approval threshold (at least
    /// `auto_approve_confidence`, see [`ApprovalThresholds`]) from a trusted
    /// provider → auto-approved; `>= review_confidence` → needs review at
    /// medium priority; otherwise (including no confidence or no predicted
    /// intent, where the model gave nothing usable) → needs review at high
    /// priority.
    pub fn classify(
        &self,
        intent: Option<&str>,
        confidence: Option<f64>,
        provider: Option<&str>,
    ) -> Verdict {
        let config = self.config;
        let confidence = confidence.filter(|c| c.is_finite()).unwrap_or(0.0);
        let trusted = provider.is_some_and(|p| config.trusted_providers.iter().any(|t| t == p));
        let Some(intent) = intent.filter(|i| !i.trim().is_empty()) else {
            return Verdict::NeedsReview {
                priority: config.high_priority,
            };
        };
        if trusted && confidence >= self.thresholds.for_intent(intent) {
            Verdict::AutoApproved
        } else if confidence >= config.review_confidence {
            Verdict::NeedsReview {
                priority: config.medium_priority,
            }
        } else {
            Verdict::NeedsReview {
                priority: config.high_priority,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_follow_the_configured_thresholds() {
        let c = AutoFilterConfig::default();
        let f = AutoFilter::floor_only(&c);
        let router = Some(crate::config::ROUTER_PROVIDER);
        let v = |conf: f64, provider| f.classify(Some("order_food"), Some(conf), provider);
        assert_eq!(v(0.85, router), Verdict::AutoApproved);
        assert_eq!(v(0.8499, router), Verdict::NeedsReview { priority: 5 });
        assert_eq!(
            v(0.99, Some("other-nlu")),
            Verdict::NeedsReview { priority: 5 }
        );
        assert_eq!(v(0.99, None), Verdict::NeedsReview { priority: 5 });
        assert_eq!(
            v(0.70, Some("other-nlu")),
            Verdict::NeedsReview { priority: 5 }
        );
        assert_eq!(v(0.6999, router), Verdict::NeedsReview { priority: 2 });
        assert_eq!(
            f.classify(None, Some(0.99), router),
            Verdict::NeedsReview { priority: 2 }
        );
        assert_eq!(
            f.classify(Some("x"), None, router),
            Verdict::NeedsReview { priority: 2 }
        );
        assert_eq!(
            f.classify(Some("x"), Some(f64::NAN), router),
            Verdict::NeedsReview { priority: 2 }
        );
    }

    #[test]
    fn an_intent_with_a_raised_threshold_goes_to_review_below_it() {
        use super::super::approval_thresholds::{IntentThreshold, ThresholdBasis};
        let c = AutoFilterConfig::default();
        let mut f = AutoFilter::floor_only(&c);
        f.thresholds.intents.insert(
            "shaky".into(),
            IntentThreshold {
                threshold: 0.95,
                basis: ThresholdBasis::Evidence,
                audits: 40,
                right: 30,
                estimated_precision: Some(0.97),
            },
        );
        let router = Some(crate::config::ROUTER_PROVIDER);
        let v = |intent, conf| f.classify(Some(intent), Some(conf), router);
        assert_eq!(v("shaky", 0.9), Verdict::NeedsReview { priority: 5 });
        assert_eq!(v("shaky", 0.95), Verdict::AutoApproved);
        assert_eq!(v("steady", 0.9), Verdict::AutoApproved);
    }
}
