//! What a reviewed task means for its sample: pure logic, so the rules are
//! tested without a server. The most recent annotation wins (annotators fix
//! their own mistakes by updating, and a lead's later verdict overrides);
//! disagreement between annotations is reported, not resolved by voting.

use chrono::{DateTime, Utc};

use super::label_config::REJECT_CHOICE;
use super::types::{Annotation, TaskWithAnnotations};
use crate::domain::ReviewVerdict;

/// An annotation the sync cannot apply (no choice, several choices, or an
/// intent the router does not know: Label Studio does not validate choice
/// values, §11). The sync reports it and leaves the sample alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unusable {
    pub reason: String,
}

/// A verdict plus what the sync records about where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// What the most recent annotation decides, or why it cannot be applied.
    pub verdict: std::result::Result<ReviewVerdict, Unusable>,
    /// It rejects by a skip (`was_cancelled`) rather than the reject choice.
    pub skipped: bool,
    /// The annotation that decided; stored as "last annotation seen" so an
    /// annotation updated later is re-applied.
    pub annotation_id: i64,
    pub annotation_updated_at: DateTime<Utc>,
    pub annotator: Option<i64>,
    pub corrected_text: Option<String>,
    /// How many annotations the task has.
    pub annotations: usize,
    /// True when the annotations do not all reach the same verdict.
    pub disagreement: bool,
}

/// Decide a task. `predicted_intent` is the model's intent for the sample;
/// `is_known_intent` tells whether a chosen intent exists in the router.
/// `None` when the task has no annotation yet.
pub fn decide(
    task: &TaskWithAnnotations,
    predicted_intent: &str,
    is_known_intent: impl Fn(&str) -> bool,
) -> Option<Decision> {
    // Ties on updated_at (same microsecond) go to the later-created id.
    let latest = task
        .annotations
        .iter()
        .max_by_key(|a| (a.updated_at, a.id))?;
    let verdict_of = |a: &Annotation| verdict(a, predicted_intent, &is_known_intent);
    let winner = verdict_of(latest);
    let disagreement = task
        .annotations
        .iter()
        .any(|a| !same_outcome(&verdict_of(a), &winner));
    Some(Decision {
        verdict: winner,
        skipped: latest.was_cancelled,
        annotation_id: latest.id,
        annotation_updated_at: latest.updated_at,
        annotator: latest.completed_by,
        corrected_text: latest.corrected_text.clone(),
        annotations: task.annotations.len(),
        disagreement,
    })
}

type Reading = std::result::Result<ReviewVerdict, Unusable>;

/// Two readings agree when they do the same to the sample (a skip and the
/// reject choice both reject it). Unusable ones all leave it alone: their
/// reasons differ if only by naming the annotation.
fn same_outcome(a: &Reading, b: &Reading) -> bool {
    matches!((a, b), (Err(_), Err(_))) || a == b
}

fn verdict(a: &Annotation, predicted: &str, is_known: &impl Fn(&str) -> bool) -> Reading {
    let unusable = |reason: String| Err(Unusable { reason });
    if a.was_cancelled || a.choices.iter().any(|c| c == REJECT_CHOICE) {
        return Ok(ReviewVerdict::Reject);
    }
    match a.choices.as_slice() {
        [] => unusable(format!("annotation {} picks no intent", a.id)),
        [intent] if intent == predicted => Ok(ReviewVerdict::Accept),
        [intent] if is_known(intent) => Ok(ReviewVerdict::Choose(intent.clone())),
        [intent] => unusable(format!(
            "annotation {} picks unknown intent {}",
            a.id,
            crate::text::quoted(intent)
        )),
        many => unusable(format!("annotation {} picks {} intents", a.id, many.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn ann(id: i64, minute: u32, choices: &[&str], cancelled: bool) -> Annotation {
        Annotation {
            id,
            choices: choices.iter().map(|c| c.to_string()).collect(),
            corrected_text: None,
            was_cancelled: cancelled,
            completed_by: Some(100 + id),
            created_at: None,
            updated_at: Utc.with_ymd_and_hms(2026, 11, 25, 1, minute, 0).unwrap(),
        }
    }

    fn task(annotations: Vec<Annotation>) -> TaskWithAnnotations {
        TaskWithAnnotations {
            id: 1,
            sample_id: Some(9),
            updated_at: Utc::now(),
            annotations,
        }
    }

    fn known(i: &str) -> bool {
        ["order_food", "greet", "bye"].contains(&i)
    }

    fn decide_one(a: Vec<Annotation>) -> Decision {
        decide(&task(a), "order_food", known).unwrap()
    }

    #[test]
    fn no_annotation_means_no_decision_yet() {
        assert_eq!(decide(&task(vec![]), "order_food", known), None);
    }

    #[test]
    fn same_choice_as_model_is_accepted_other_known_choice_is_corrected() {
        let d = decide_one(vec![ann(1, 0, &["order_food"], false)]);
        assert_eq!(d.verdict, Ok(ReviewVerdict::Accept));
        assert!(!d.disagreement);
        assert_eq!(d.annotator, Some(101));
        let d = decide_one(vec![ann(1, 0, &["greet"], false)]);
        assert_eq!(d.verdict, Ok(ReviewVerdict::Choose("greet".into())));
    }

    #[test]
    fn skip_and_reject_choice_both_reject() {
        let d = decide_one(vec![ann(1, 0, &[], true)]);
        assert_eq!((d.verdict, d.skipped), (Ok(ReviewVerdict::Reject), true));
        let d = decide_one(vec![ann(1, 0, &[REJECT_CHOICE], false)]);
        assert_eq!((d.verdict, d.skipped), (Ok(ReviewVerdict::Reject), false));
    }

    #[test]
    fn unknown_empty_or_multiple_choices_are_unusable() {
        for choices in [&["pizza_party"][..], &[][..], &["greet", "bye"][..]] {
            let d = decide_one(vec![ann(1, 0, choices, false)]);
            assert!(d.verdict.is_err(), "{choices:?}: {d:?}");
        }
    }

    #[test]
    fn most_recent_annotation_wins_and_disagreement_is_flagged() {
        // Listed out of order on purpose: recency, not position, decides.
        let d = decide_one(vec![
            ann(3, 30, &["greet"], false),
            ann(1, 10, &["order_food"], false),
            ann(2, 20, &[], true),
        ]);
        assert_eq!(d.annotation_id, 3);
        assert_eq!(d.annotations, 3);
        assert!(d.disagreement);
        assert_eq!(d.verdict, Ok(ReviewVerdict::Choose("greet".into())));
    }

    #[test]
    fn agreeing_annotations_are_no_disagreement_and_ties_go_to_higher_id() {
        let d = decide_one(vec![
            ann(5, 10, &["greet"], false),
            ann(4, 10, &["greet"], false),
        ]);
        assert_eq!(d.annotation_id, 5);
        assert!(!d.disagreement);
    }
}
