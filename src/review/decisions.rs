//! Review decisions, wherever a human makes them — the console's review
//! pane, a Label Studio annotation pulled by the sync, audits next — all
//! recorded the same way: accept → `approved` with the predicted intent,
//! another intent → `approved` with `corrected_from` the prediction, reject
//! → `rejected`; source `human`, annotator and time recorded, the sample's
//! conversations `reviewed`. The most recent decision wins; an older one is
//! [`ReviewOutcome::Stale`] and changes nothing.

use crate::domain::ReviewVerdict;
use crate::error::Result;
use crate::storage::samples::{ReviewDecision, ReviewOutcome, Sample};
use crate::storage::{Store, Timestamp};

/// Record `verdict` on a sample, decided by `annotator` at `decided_at`.
pub async fn record(
    store: &Store,
    sample_id: i64,
    verdict: ReviewVerdict,
    annotator: Option<String>,
    decided_at: Timestamp,
) -> Result<ReviewOutcome> {
    let decision = ReviewDecision {
        verdict,
        annotator,
        decided_at,
    };
    store.apply_review(sample_id, &decision).await
}

/// Put a human-decided sample back in the queue; `None` when the sample is
/// missing or was not decided by a human.
pub async fn undo(store: &Store, sample_id: i64) -> Result<Option<Sample>> {
    store.undo_review(sample_id).await
}

/// One line for the operator on what recording a decision did: `Ok` when
/// it took effect, `Err` saying why not.
pub fn describe(sample_id: i64, outcome: &ReviewOutcome) -> std::result::Result<String, String> {
    match outcome {
        ReviewOutcome::Applied(s) => Ok(format!(
            "{} “{}” as {}",
            s.review_status,
            short(&s.text),
            s.intent
        )),
        ReviewOutcome::Stale(s) => Err(format!(
            "“{}” was decided more recently elsewhere ({}); nothing changed",
            short(&s.text),
            s.review_status
        )),
        ReviewOutcome::NotFound => Err(format!("sample {sample_id} no longer exists")),
    }
}

/// The first 40 characters of a text, for one-line messages.
pub fn short(text: &str) -> String {
    let mut out: String = text.chars().take(40).collect();
    if text.chars().count() > 40 {
        out.push('…');
    }
    out
}
