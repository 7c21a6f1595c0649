//! A Label Studio task's annotations applied to its sample: the one path
//! shared by the sync's pull and serve's webhook, so a review reaching us
//! twice (a webhook, then the safety-net pull) is decided once. The task
//! is matched to our record of it (`label_studio_tasks`), the most recent
//! annotation decides ([`decide`]), and an annotation already applied and
//! unchanged since is skipped.

use crate::domain::ReviewVerdict;
use crate::error::Result;
use crate::review::decisions;
use crate::review::label_studio::{TaskWithAnnotations, Unusable, decide};
use crate::storage::samples::ReviewOutcome;
use crate::storage::{Store, Timestamp};

/// What applying one task did.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// No task of ours (another tool's task, or another project), or its
    /// sample is gone.
    NotOurs,
    /// The task carries another sample id than the one we pushed: task
    /// ids can be reused after deletions (§11); our sample id is trusted.
    Mismatch { carries: Option<i64>, ours: i64 },
    /// Nothing annotated yet (or every annotation was deleted).
    NoAnnotation,
    /// The deciding annotation was applied before and has not changed.
    Unchanged,
    /// The deciding annotation cannot be applied (no choice, unknown
    /// intent…); the sample is left alone.
    Unusable { reason: String, disagreement: bool },
    /// The verdict was recorded; `applied` is false when a more recent
    /// decision made elsewhere (the console) already stands.
    Recorded {
        sample_id: i64,
        verdict: ReviewVerdict,
        applied: bool,
        disagreement: bool,
    },
}

impl Applied {
    /// The task had a decision to look at (what the pull reports as `pulled`).
    pub fn was_annotated(&self) -> bool {
        matches!(
            self,
            Applied::Unchanged | Applied::Unusable { .. } | Applied::Recorded { .. }
        )
    }
}

/// Apply `task` of `project`; `is_known` tells whether an intent exists.
pub async fn apply_task(
    store: &Store,
    project: i64,
    task: &TaskWithAnnotations,
    is_known: impl Fn(&str) -> bool,
) -> Result<Applied> {
    let Some(link) = store.task_link(project, task.id).await? else {
        return Ok(Applied::NotOurs);
    };
    if task.sample_id.is_some_and(|s| s != link.sample_id) {
        return Ok(Applied::Mismatch {
            carries: task.sample_id,
            ours: link.sample_id,
        });
    }
    let Some(sample) = store.sample(link.sample_id).await? else {
        return Ok(Applied::NotOurs);
    };
    let predicted = sample
        .predicted_intent
        .clone()
        .unwrap_or_else(|| sample.intent.clone());
    let Some(decision) = decide(task, &predicted, is_known) else {
        return Ok(Applied::NoAnnotation);
    };
    let seen = Timestamp::from(decision.annotation_updated_at);
    if link.last_annotation_id == Some(decision.annotation_id)
        && link.last_annotation_updated_at == Some(seen)
    {
        return Ok(Applied::Unchanged);
    }
    let verdict = match decision.verdict {
        Ok(verdict) => verdict,
        Err(Unusable { reason }) => {
            return Ok(Applied::Unusable {
                reason,
                disagreement: decision.disagreement,
            });
        }
    };
    let annotator = decision
        .annotator
        .map(|id| format!("label-studio:user/{id}"));
    // Record the intent the annotator chose, not "whatever the sample
    // carries now": a re-judge ([`crate::stages::rejudge`]) may change the
    // prediction between the read above and this write. Choosing the
    // predicted intent records the same as accepting it.
    let chosen = match &verdict {
        ReviewVerdict::Accept => ReviewVerdict::Choose(predicted),
        other => other.clone(),
    };
    let outcome = decisions::record(store, link.sample_id, chosen, annotator, seen).await?;
    store
        .record_annotation(project, task.id, Some(decision.annotation_id), seen)
        .await?;
    Ok(Applied::Recorded {
        sample_id: link.sample_id,
        verdict,
        applied: matches!(outcome, ReviewOutcome::Applied(_)),
        disagreement: decision.disagreement,
    })
}
