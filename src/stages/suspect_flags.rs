//! Weekly training's first step ([`crate::suspects`]): out-of-fold
//! predictions over every approved sample, confident learning over them,
//! and the suspects found stored in place of the last run's. Training then
//! leaves them out until a human decides them.

use std::collections::HashSet;

use crate::dataset::Sample;
use crate::domain::Provenance;
use crate::error::{Error, Result};
use crate::progress::Reporter;
use crate::router::TrainParams;
use crate::storage::Store;
use crate::storage::samples::TrainingSample;
use crate::storage::suspects::NewSuspect;
use crate::suspects::{self, FOLDS, Judged};

/// Flag the suspects among `approved` (all approved samples, training
/// input form alongside) with models trained as `params` says; store them
/// under `params.version`. Returns their sample ids. With `enabled` false
/// nothing is trained and the stored suspects are cleared.
pub(super) async fn flag_suspects(
    store: &Store,
    approved: &[TrainingSample],
    inputs: &[Sample],
    params: &TrainParams,
    enabled: bool,
    reporter: &Reporter,
) -> Result<HashSet<i64>> {
    let found = if enabled {
        let inputs = inputs.to_vec();
        let params = params.clone();
        let fold_reporter = reporter.clone();
        let predicted = tokio::task::spawn_blocking(move || {
            suspects::out_of_fold(&inputs, FOLDS, &params, &fold_reporter)
        })
        .await
        .map_err(|err| Error::failure(format!("the suspect-label task failed: {err}")))??;
        flags_of(approved, &predicted)
    } else {
        Vec::new()
    };
    store.replace_suspects(&params.version, &found).await?;
    if !found.is_empty() {
        tracing::info!(
            suspects = found.len(),
            "labels the model confidently disagrees with are left out of training until a human decides them (flywheel stats suspects)"
        );
    }
    Ok(found.iter().map(|s| s.sample_id).collect())
}

/// The suspects among `approved`, given each one's out-of-fold prediction
/// (none at all: no suspects). A human's label is never suspected.
fn flags_of(
    approved: &[TrainingSample],
    predicted: &[Vec<crate::router::Alternative>],
) -> Vec<NewSuspect> {
    if predicted.len() != approved.len() {
        return Vec::new();
    }
    let judged: Vec<Judged<'_>> = approved
        .iter()
        .zip(predicted)
        .map(|(s, p)| Judged {
            label: &s.intent,
            flaggable: s.source != Provenance::Human,
            predicted: p,
        })
        .collect();
    suspects::flag(&judged)
        .into_iter()
        .map(|f| NewSuspect {
            sample_id: approved[f.index].id,
            flagged_intent: approved[f.index].intent.clone(),
            suggested_intent: f.suggested,
            score: f64::from(f.score),
        })
        .collect()
}
