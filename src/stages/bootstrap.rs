//! Bootstrap (issue 6): a fresh installation has nothing to serve, so on
//! first need (`serve` with no model, `demo`) Flywheel imports the built-in
//! synthetic seed set, trains `router-v1.0.0` on it and puts it in
//! production, saying so in the log.
//!
//! "Fresh" means no model version was ever registered. An installation whose
//! operator archived or rejected every version is not fresh; it gets advice,
//! not a synthetic model it did not ask for. The work runs under the
//! weekly-training lock and re-checks inside it, so two `serve` replicas
//! starting on one empty database train one model, not two.

use serde::Serialize;

use super::samples_import::{self, SEED_SET_NAME};
use super::weekly_training::{WeeklyOutcome, WeeklyTraining};
use crate::error::{Error, ErrorKind, Result};
use crate::jobs::{self, Launch, Stage, StageContext, StageJob};
use crate::lifecycle::{self, Target};
use crate::storage::Store;

/// Who the audit trail says promoted the bootstrap model.
pub const BOOTSTRAP_ACTOR: &str = "flywheel-bootstrap";

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum BootstrapOutcome {
    /// Model versions exist already; nothing was done.
    NotNeeded { production: Option<String> },
    /// Another process holds the weekly-training lock (probably
    /// bootstrapping right now); the model will appear when it finishes.
    RunningElsewhere,
    /// This call trained and deployed the bootstrap model.
    Deployed {
        version: String,
        /// On gold test items; the seed set is synthetic, so usually none.
        test_accuracy: Option<f32>,
        seed_samples_created: u64,
        seconds: f64,
    },
}

impl BootstrapOutcome {
    /// One line for people.
    pub fn describe(&self) -> String {
        match self {
            BootstrapOutcome::NotNeeded {
                production: Some(version),
            } => format!("{version} is in production"),
            BootstrapOutcome::NotNeeded { production: None } => {
                "model versions exist but none is in production; promote one".into()
            }
            BootstrapOutcome::RunningElsewhere => {
                "another process is training the bootstrap model".into()
            }
            BootstrapOutcome::Deployed {
                version,
                test_accuracy,
                seconds,
                ..
            } => format!(
                "trained {version} from the built-in seed set in {seconds:.0} s ({}) and put it in production",
                match test_accuracy {
                    Some(accuracy) => format!("test accuracy {accuracy:.3}"),
                    None => "no gold labels to score it on yet".into(),
                }
            ),
        }
    }
}

/// Make sure a fresh installation has a production model.
pub async fn ensure_production_model(launch: &Launch<'_>) -> Result<BootstrapOutcome> {
    // Cheap check first: the common case (models exist) takes no lock.
    if let Some(outcome) = not_fresh(launch.store).await? {
        return Ok(outcome);
    }
    match jobs::run(Bootstrap, launch).await {
        Err(err) if err.kind() == ErrorKind::Locked => {
            tracing::info!(
                "bootstrap: another run holds the weekly-training lock; waiting for its model"
            );
            Ok(BootstrapOutcome::RunningElsewhere)
        }
        other => other,
    }
}

/// Bootstrap's work: weekly training's, under its lock, recorded as one
/// of its runs.
struct Bootstrap;

/// What `job_runs.counts` records of a bootstrap.
#[derive(Serialize)]
struct RecordedCounts<'a> {
    bootstrap: &'a BootstrapOutcome,
}

impl StageJob for Bootstrap {
    const STAGE: Stage = Stage::WeeklyTraining;
    type Outcome = BootstrapOutcome;

    async fn work(self, ctx: &StageContext<'_>) -> Result<BootstrapOutcome> {
        bootstrap_locked(ctx).await
    }

    fn counts(outcome: &BootstrapOutcome) -> impl Serialize {
        RecordedCounts { bootstrap: outcome }
    }
}

async fn not_fresh(store: &Store) -> Result<Option<BootstrapOutcome>> {
    let versions = store.list_model_versions().await?;
    if versions.is_empty() {
        return Ok(None);
    }
    let production = versions
        .iter()
        .find(|v| v.status == crate::domain::ModelStatus::Production)
        .map(|v| v.version.clone());
    Ok(Some(BootstrapOutcome::NotNeeded { production }))
}

async fn bootstrap_locked(ctx: &StageContext<'_>) -> Result<BootstrapOutcome> {
    let store = ctx.store;
    // Someone may have finished while we waited to start.
    if let Some(outcome) = not_fresh(store).await? {
        return Ok(outcome);
    }
    let started = std::time::Instant::now();
    tracing::info!(
        "bootstrap: fresh installation with no model; training router-v1.0.0 from the {SEED_SET_NAME} and putting it in production"
    );
    // A bootstrap that died after importing must not import twice.
    let seed_samples_created = if store.sample_count_by_source("synthetic").await? == 0 {
        let summary = samples_import::import_seed_set(store, ctx.reporter).await?;
        tracing::info!(
            created = summary.created,
            "bootstrap: imported the seed set as approved synthetic samples"
        );
        summary.created
    } else {
        0
    };
    // The seed set is the product's own synthetic data and there is no
    // model yet: nothing to suspect, and a fresh installation stays quick.
    let training = WeeklyTraining {
        min_samples: 0,
        force: true,
        major: false,
        suspects: false,
    };
    let summary = match training.work(ctx).await? {
        WeeklyOutcome::Trained(summary) => summary,
        WeeklyOutcome::Skipped { .. } => {
            return Err(Error::failure(
                "bootstrap: weekly training skipped although forced",
            ));
        }
    };
    if summary.status != "testing" {
        return Err(Error::failure(format!(
            "bootstrap: {} was registered as {}, not testing; see {}",
            summary.version,
            summary.status,
            summary.report_path.display()
        )));
    }
    lifecycle::promote(store, &summary.version, Target::Production, BOOTSTRAP_ACTOR).await?;
    tracing::info!(
        version = %summary.version,
        test_accuracy = ?summary.accuracy,
        "bootstrap: {} is in production",
        summary.version
    );
    Ok(BootstrapOutcome::Deployed {
        version: summary.version,
        test_accuracy: summary.accuracy,
        seed_samples_created,
        seconds: started.elapsed().as_secs_f64(),
    })
}
