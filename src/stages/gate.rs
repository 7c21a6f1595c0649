//! The promotion gate of weekly training: is a candidate registered
//! `testing` (a human may promote it) or `rejected`? A pure function of
//! both models' scores on the same test split, so every outcome is tested
//! without training anything.

use crate::domain::ModelStatus;

/// What the gate knows of the production model.
#[derive(Debug, Clone, PartialEq)]
pub enum ProductionScore<'a> {
    /// No model is in production.
    None,
    /// It is in production but could not be loaded (`why`).
    Unloadable { version: &'a str, why: &'a str },
    /// Its accuracy on the candidate's test split.
    Scored { version: &'a str, accuracy: f32 },
}

/// The gate's verdict and its reason in one sentence (for the report).
#[derive(Debug, Clone, PartialEq)]
pub struct GateDecision {
    pub status: ModelStatus,
    pub reason: String,
}

/// A candidate is `testing` when there is nothing to compare with, when
/// production cannot be scored (a human decides), or when it beats
/// production by more than `margin`; otherwise `rejected`.
pub fn decide(candidate: f32, production: &ProductionScore<'_>, margin: f32) -> GateDecision {
    let (status, reason) = match *production {
        ProductionScore::None => (
            ModelStatus::Testing,
            "no production model to compare with".to_string(),
        ),
        ProductionScore::Unloadable { version, why } => (
            ModelStatus::Testing,
            format!(
                "production model {version} could not be loaded ({why}); registered for a human decision"
            ),
        ),
        ProductionScore::Scored { version, accuracy } if candidate > accuracy + margin => (
            ModelStatus::Testing,
            format!("{candidate:.4} beats {version} at {accuracy:.4} by more than {margin}"),
        ),
        ProductionScore::Scored { version, accuracy } => (
            ModelStatus::Rejected,
            format!(
                "{candidate:.4} does not beat {version} at {accuracy:.4} by more than {margin}"
            ),
        ),
    };
    GateDecision { status, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scored(accuracy: f32) -> ProductionScore<'static> {
        ProductionScore::Scored {
            version: "router-v1.0.0",
            accuracy,
        }
    }

    #[test]
    fn better_by_more_than_the_margin_is_testing_else_rejected() {
        let d = decide(0.91, &scored(0.90), 0.005);
        assert_eq!(d.status, ModelStatus::Testing);
        assert_eq!(
            d.reason,
            "0.9100 beats router-v1.0.0 at 0.9000 by more than 0.005"
        );
        assert_eq!(
            decide(0.9049, &scored(0.90), 0.005).status,
            ModelStatus::Rejected
        );
        // A tie is not better.
        let tie = decide(0.90, &scored(0.90), 0.0);
        assert_eq!(tie.status, ModelStatus::Rejected);
        assert!(tie.reason.contains("does not beat"), "{}", tie.reason);
        // A negative margin lets a slightly worse candidate through.
        assert_eq!(
            decide(0.899, &scored(0.90), -0.01).status,
            ModelStatus::Testing
        );
    }

    #[test]
    fn without_a_scored_production_a_human_decides() {
        let none = decide(0.5, &ProductionScore::None, 0.0);
        assert_eq!(none.status, ModelStatus::Testing);
        assert_eq!(none.reason, "no production model to compare with");
        let broken = ProductionScore::Unloadable {
            version: "router-v1.0.0",
            why: "weights.safetensors is missing",
        };
        let d = decide(0.1, &broken, 0.0);
        assert_eq!(d.status, ModelStatus::Testing);
        assert!(
            d.reason.contains("weights.safetensors is missing"),
            "{}",
            d.reason
        );
    }
}
