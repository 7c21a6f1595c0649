//! The review backlog re-judged by the model serving now: by daily
//! capture once a new version is in production ([`rejudge_with_production`]),
//! and by weekly training before it reads the approved samples.
//!
//! A sample waits for review with the prediction of the version that
//! served its conversation. Weeks later a better model serves, and those
//! predictions are stale: the review order ranks by a doubt the serving
//! model no longer has, and reviewers accept or correct answers it would
//! not give. Here the production model predicts every sample queued here
//! that it has not predicted yet; the sample keeps waiting with the new
//! prediction, its confidence and the priority the auto-filter
//! ([`super::auto_filter`]) gives it.
//!
//! It approves nothing. Measured in the loop bench, what it would have
//! auto-approved was 0.88 precise, not the 0.97 auto-approval promises:
//! a sample that once waited for review is a hard one, and the
//! auto-filter's thresholds come from audits of all traffic, not of hard
//! samples.
//!
//! Samples pushed to Label Studio are re-judged too while their task waits
//! for an annotation: almost all of the backlog is there once a sync runs,
//! and the labelling stream serves it in the product's order, which the
//! next sync re-scores from the new doubts (a re-scored task preselects
//! the new intent). Left alone: audits (their label must be a human's and
//! their served answer is what they measure), a task being pushed,
//! annotated or in error, and anything a human decided.

use std::sync::Arc;

use serde::Serialize;

use super::approval_thresholds::ApprovalThresholds;
use super::auto_filter::{AutoFilter, Verdict};
use crate::config::{Config, ROUTER_PROVIDER};
use crate::error::{Error, Result};
use crate::lang::Language;
use crate::progress::Reporter;
use crate::router::Model;
use crate::storage::backlog::{BacklogSample, Rejudged};
use crate::storage::{Store, Timestamp};

/// What re-judging did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RejudgeReport {
    /// The production version that judged; `None`: none, or switched off.
    pub version: Option<String>,
    /// Backlog samples it predicted.
    pub judged: usize,
    /// Of those, the ones it is now sure of (the auto-filter would approve
    /// them); they wait behind the doubtful ones.
    pub now_sure: usize,
}

/// Re-predict the backlog queued here with `production` (its version and
/// model; `None`: no production model, or it did not load) when
/// `auto_filter.rejudge_backlog` is on.
pub async fn rejudge_backlog(
    store: &Store,
    config: &Config,
    production: Option<(&str, Arc<Model>)>,
    reporter: &Reporter,
) -> Result<RejudgeReport> {
    let Some((version, model)) = production.filter(|_| config.auto_filter.rejudge_backlog) else {
        return Ok(RejudgeReport::default());
    };
    let backlog = store.backlog_not_judged_by(version).await?;
    judge(store, config, version, model, backlog, reporter).await
}

/// Re-predict the backlog with the version in production now, as daily
/// capture does after filing its window, so a promotion reaches the
/// review order within a day rather than at the next weekly training. A
/// week-old confidence sends reviewers to what the new model already
/// knows (README, "The loop", measures what that costs).
///
/// The model is loaded (as `serve` loads it: a relative artifact path is
/// relative to the data dir) only when some of the backlog has not met
/// it; one that does not load leaves the backlog as it was, with a
/// warning: capture must not stop for it.
pub async fn rejudge_with_production(
    store: &Store,
    config: &Config,
    reporter: &Reporter,
) -> Result<RejudgeReport> {
    if !config.auto_filter.rejudge_backlog {
        return Ok(RejudgeReport::default());
    }
    let Some(production) = store.production_model().await? else {
        return Ok(RejudgeReport::default());
    };
    let version = production.version;
    let backlog = store.backlog_not_judged_by(&version).await?;
    if backlog.is_empty() {
        return Ok(RejudgeReport {
            version: Some(version),
            ..RejudgeReport::default()
        });
    }
    let dir = config
        .data_dir
        .join(production.artifact_path.unwrap_or_default());
    let loaded = tokio::task::spawn_blocking(move || Model::load(&dir))
        .await
        .map_err(|e| Error::failure(format!("loading the production model: {e}")))?;
    match loaded {
        Ok(model) => judge(store, config, &version, Arc::new(model), backlog, reporter).await,
        Err(err) => {
            tracing::warn!(version = %version, error = %err, "the review backlog keeps its predictions: the production model did not load");
            Ok(RejudgeReport::default())
        }
    }
}

/// Predict `backlog` with `version`'s `model` and store what it says.
async fn judge(
    store: &Store,
    config: &Config,
    version: &str,
    model: Arc<Model>,
    backlog: Vec<BacklogSample>,
    reporter: &Reporter,
) -> Result<RejudgeReport> {
    let version = version.to_string();
    if backlog.is_empty() {
        return Ok(RejudgeReport {
            version: Some(version),
            ..RejudgeReport::default()
        });
    }
    reporter.phase("re-judging the review backlog", Some(backlog.len() as u64));
    let texts: Vec<(String, Option<Language>)> = backlog
        .iter()
        .map(|s| {
            (
                s.text.clone(),
                s.language.as_deref().and_then(Language::parse),
            )
        })
        .collect();
    let predictions = tokio::task::spawn_blocking(move || {
        let refs: Vec<(&str, Option<Language>)> =
            texts.iter().map(|(t, l)| (t.as_str(), *l)).collect();
        model.classify_batch(&refs)
    })
    .await
    .map_err(|e| Error::failure(format!("re-judging the review backlog: {e}")))??;
    let filter = AutoFilter {
        config: &config.auto_filter,
        thresholds: ApprovalThresholds::as_of(store, &config.auto_filter, Timestamp::now()).await?,
    };
    let mut now_sure = 0;
    let rows: Vec<Rejudged> = backlog
        .iter()
        .zip(&predictions)
        .map(|(sample, p)| {
            let confidence = f64::from(p.confidence);
            let priority =
                match filter.classify(Some(&p.intent), Some(confidence), Some(ROUTER_PROVIDER)) {
                    Verdict::AutoApproved => {
                        now_sure += 1;
                        config.auto_filter.medium_priority
                    }
                    Verdict::NeedsReview { priority } => priority,
                };
            Rejudged {
                id: sample.id,
                intent: p.intent.clone(),
                confidence,
                version: version.clone(),
                priority,
            }
        })
        .collect();
    store.store_rejudged(&rows).await?;
    reporter.advance(backlog.len() as u64);
    tracing::info!(version = %version, judged = rows.len(), now_sure, "re-judged the review backlog");
    Ok(RejudgeReport {
        version: Some(version),
        judged: rows.len(),
        now_sure,
    })
}
