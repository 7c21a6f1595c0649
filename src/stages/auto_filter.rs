//! The auto-filter rule of DESIGN §1, as a pure function of one
//! conversation's prediction and the configuration.

use crate::config::AutoFilterConfig;

/// Where the rule sends a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Confident prediction from a trusted provider: an approved sample.
    AutoApproved,
    /// A human must look; lower priority number = more urgent.
    NeedsReview { priority: i32 },
}

/// `confidence >= auto_approve_confidence` from a trusted provider →
/// auto-approved; `>= review_confidence` → needs review at medium priority;
/// otherwise (including no confidence or no predicted intent, where the
/// model gave nothing usable) → needs review at high priority.
pub fn classify(
    config: &AutoFilterConfig,
    intent: Option<&str>,
    confidence: Option<f64>,
    provider: Option<&str>,
) -> Verdict {
    let has_intent = intent.is_some_and(|i| !i.trim().is_empty());
    let confidence = confidence.filter(|c| c.is_finite()).unwrap_or(0.0);
    let trusted = provider.is_some_and(|p| config.trusted_providers.iter().any(|t| t == p));
    if !has_intent {
        Verdict::NeedsReview {
            priority: config.high_priority,
        }
    } else if trusted && confidence >= config.auto_approve_confidence {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_follow_the_configured_thresholds() {
        let c = AutoFilterConfig::default();
        let router = Some(crate::config::ROUTER_PROVIDER);
        let v = |conf: f64, provider| classify(&c, Some("order_food"), Some(conf), provider);
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
            classify(&c, None, Some(0.99), router),
            Verdict::NeedsReview { priority: 2 }
        );
        assert_eq!(
            classify(&c, Some("x"), None, router),
            Verdict::NeedsReview { priority: 2 }
        );
        assert_eq!(
            classify(&c, Some("x"), Some(f64::NAN), router),
            Verdict::NeedsReview { priority: 2 }
        );
    }
}
