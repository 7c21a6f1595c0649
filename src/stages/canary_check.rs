//! `flywheel canary-check` (issue 18): compare the canary with production on
//! the traffic each served since the canary started ([`crate::canary`]) and
//! decide — wait, advance the canary's traffic, promote it, or roll it
//! back. In `recommend` mode (the default) the run says what it would do;
//! in `auto` mode it also applies the decision as a lifecycle transition
//! (actor `flywheel canary-check`, the evidence as its reason) in the same
//! exclusive transaction as `models promote`, so the registry is never left
//! half-changed. A decision taken, rollback included, is a success.

use serde::Serialize;

use crate::canary::{self, Analysis, Decision, Rollout};
use crate::config::{CanaryMode, Config};
use crate::domain::ModelStatus;
use crate::error::{Error, Result};
use crate::jobs::{Stage, StageContext, StageJob};
use crate::lifecycle::{self, Gate, Target};
use crate::monitor::notify;
use crate::storage::models::{ModelChange, ModelVersion};
use crate::storage::{Store, Timestamp};

/// Who the transitions of an automatic decision name.
pub const ACTOR: &str = "flywheel canary-check";

/// The canary-check stage. Its fields are its options.
#[derive(Debug, Clone, Copy)]
pub struct CanaryCheck {
    pub mode: CanaryMode,
    /// Analyse and decide; change nothing, record nothing.
    pub dry_run: bool,
}

/// Where the rollout stood when the check looked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Watched {
    pub canary: String,
    pub production: String,
    /// The canary's traffic share, percent.
    pub traffic: u32,
    /// When it became the canary: the evidence is counted from here.
    pub since: Timestamp,
    /// When its traffic last changed, and how long ago in minutes.
    pub step_since: Timestamp,
    pub minutes_at_step: u64,
    pub canary_served: canary::Served,
    pub production_served: canary::Served,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CanaryCheckSummary {
    pub mode: CanaryMode,
    pub dry_run: bool,
    /// `None`: no canary (or no production to compare it with) — nothing to do.
    pub watched: Option<Watched>,
    /// Why there was nothing to check, when there was not.
    pub note: Option<String>,
    pub analysis: Option<Analysis>,
    /// The transitions applied (auto mode, a decision that changes something).
    pub changes: Vec<ModelChange>,
}

impl CanaryCheckSummary {
    pub fn decision(&self) -> Option<&Decision> {
        self.analysis.as_ref().map(|a| &a.decision)
    }

    pub fn applied(&self) -> bool {
        !self.changes.is_empty()
    }
}

/// What `job_runs.counts` records of a check.
#[derive(Serialize)]
struct RecordedCounts<'a> {
    canary: Option<&'a str>,
    decision: &'a str,
    applied: bool,
    traffic: Option<u32>,
    /// The figures and the test result, as the transition's reason has them.
    evidence: Option<String>,
}

impl StageJob for CanaryCheck {
    const STAGE: Stage = Stage::CanaryCheck;
    type Outcome = CanaryCheckSummary;

    /// A dry run takes no lock and records nothing.
    fn recorded(&self) -> bool {
        !self.dry_run
    }

    async fn work(self, ctx: &StageContext<'_>) -> Result<CanaryCheckSummary> {
        let (store, config) = (ctx.store, ctx.config);
        let mut summary = CanaryCheckSummary {
            mode: self.mode,
            dry_run: self.dry_run,
            watched: None,
            note: None,
            analysis: None,
            changes: Vec::new(),
        };
        ctx.reporter.phase("canary-check", None);
        let versions = store.list_model_versions().await?;
        let canary = versions.iter().find(|m| m.status == ModelStatus::Canary);
        let production = versions
            .iter()
            .find(|m| m.status == ModelStatus::Production);
        let (canary, production) = match (canary, production) {
            (None, _) => {
                summary.note = Some("no canary: nothing to check".into());
                return Ok(summary);
            }
            (Some(c), None) => {
                summary.note = Some(format!(
                    "{} is the canary but no version is in production to compare it with",
                    c.version
                ));
                return Ok(summary);
            }
            (Some(c), Some(p)) => (c, p),
        };
        let watched = watch(store, canary, production, config.canary.slow_ms).await?;
        let analysis = analyse(&watched, config);
        tracing::info!(
            canary = %watched.canary,
            decision = analysis.decision.kind(),
            "{}",
            analysis.evidence()
        );
        if self.mode == CanaryMode::Auto && !self.dry_run {
            summary.changes = apply(store, &watched, &analysis).await?;
        }
        summary.watched = Some(watched);
        summary.analysis = Some(analysis);
        Ok(summary)
    }

    fn counts(summary: &CanaryCheckSummary) -> impl Serialize {
        RecordedCounts {
            canary: summary.watched.as_ref().map(|w| w.canary.as_str()),
            decision: summary.decision().map_or("none", Decision::kind),
            applied: summary.applied(),
            traffic: summary.watched.as_ref().map(|w| w.traffic),
            evidence: summary.analysis.as_ref().map(Analysis::evidence),
        }
    }

    /// Every decision but "wait": applied in auto mode, recommended else.
    fn alerts(summary: &CanaryCheckSummary, _config: &Config) -> Vec<notify::Event> {
        let (Some(watched), Some(decision)) = (&summary.watched, summary.decision()) else {
            return Vec::new();
        };
        if matches!(decision, Decision::Wait(_)) {
            return Vec::new();
        }
        let severity = match decision {
            Decision::Rollback(_) => notify::Severity::Warning,
            _ => notify::Severity::Info,
        };
        let verb = if summary.applied() {
            "did"
        } else {
            "recommends (mode recommend)"
        };
        vec![notify::Event {
            fix: (!summary.applied()).then(|| {
                "apply it with `flywheel models promote`/`rollback`, or set [canary] mode = \"auto\"".into()
            }),
            ..notify::Event::new(
                notify::EventKind::CanaryDecision,
                severity,
                format!(
                    "canary {} ({} % of traffic) vs production {}: canary-check {verb}: {}",
                    watched.canary,
                    watched.traffic,
                    watched.production,
                    decision.describe()
                ),
            )
        }]
    }
}

/// What a check of `watched` decides under `config` (the console shows it
/// as "next check").
pub fn analyse(watched: &Watched, config: &Config) -> Analysis {
    let rollout = Rollout {
        canary: watched.canary_served,
        production: watched.production_served,
        traffic: watched.traffic,
        minutes_at_step: watched.minutes_at_step,
    };
    canary::analyse(&rollout, &config.canary, config.health.max_fallback_rate)
}

/// Where the rollout of `canary` against `production` stands now, with
/// what each served since the canary started.
pub async fn watch(
    store: &Store,
    canary: &ModelVersion,
    production: &ModelVersion,
    slow_ms: f64,
) -> Result<Watched> {
    let since = canary.canary_at.unwrap_or(canary.updated_at);
    // Its newest transition is the last change of its traffic.
    let step_since = store
        .model_transitions(Some(&canary.version), 1)
        .await?
        .first()
        .map_or(since, |t| t.at);
    let minutes_at_step = (chrono::Utc::now() - step_since.0).num_minutes().max(0) as u64;
    Ok(Watched {
        canary: canary.version.clone(),
        production: production.version.clone(),
        traffic: canary.traffic_percentage.clamp(0, 100) as u32,
        since,
        step_since,
        minutes_at_step,
        canary_served: store.served_since(&canary.version, since, slow_ms).await?,
        production_served: store
            .served_since(&production.version, since, slow_ms)
            .await?,
    })
}

/// Apply the decision in the lifecycle's exclusive transaction.
async fn apply(store: &Store, watched: &Watched, analysis: &Analysis) -> Result<Vec<ModelChange>> {
    if matches!(analysis.decision, Decision::Wait(_)) {
        return Ok(Vec::new());
    }
    store
        .change_models(ACTOR, |models, _| plan(models, watched, analysis))
        .await
}

/// The lifecycle steps of a decision, planned on the registry as it is
/// inside the transaction: when the canary, its traffic or production
/// changed since the analysis (an operator acted meanwhile), nothing.
fn plan(
    models: &[ModelVersion],
    watched: &Watched,
    analysis: &Analysis,
) -> Result<Vec<ModelChange>> {
    let still = models.iter().any(|m| {
        m.version == watched.canary
            && m.status == ModelStatus::Canary
            && m.traffic_percentage == watched.traffic as i32
    }) && models
        .iter()
        .any(|m| m.version == watched.production && m.status == ModelStatus::Production);
    if !still {
        return Err(Error::failure(format!(
            "the canary changed while {} was being checked; nothing was changed, run the check again",
            watched.canary
        )));
    }
    let evidence = analysis.evidence();
    let mut steps = match &analysis.decision {
        Decision::Wait(_) => Vec::new(),
        Decision::Advance { to, .. } => lifecycle::plan_promotion(
            models,
            &watched.canary,
            Target::Canary { traffic: *to },
            Gate::Respect,
        )?,
        Decision::Promote { .. } => {
            lifecycle::plan_promotion(models, &watched.canary, Target::Production, Gate::Respect)?
        }
        Decision::Rollback(_) => {
            lifecycle::plan_canary_rollback(models, &watched.canary, &evidence)?
        }
    };
    // The canary's own transition carries the evidence (what
    // `models history VERSION` shows).
    for step in steps.iter_mut().filter(|s| s.version == watched.canary) {
        step.reason = Some(evidence.clone());
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canary::{RollbackReason, Signal};

    fn version(name: &str, status: ModelStatus, traffic: i32) -> ModelVersion {
        ModelVersion::example(name, status, traffic)
    }

    fn watched(traffic: u32) -> Watched {
        let now = Timestamp::now();
        Watched {
            canary: "v2".into(),
            production: "v1".into(),
            traffic,
            since: now,
            step_since: now,
            minutes_at_step: 0,
            canary_served: canary::Served::default(),
            production_served: canary::Served::default(),
        }
    }

    fn decided(decision: Decision) -> Analysis {
        Analysis {
            signals: Vec::new(),
            decision,
        }
    }

    fn moves(steps: &[ModelChange]) -> Vec<(&str, ModelStatus, i32)> {
        steps
            .iter()
            .map(|s| (s.version.as_str(), s.to_status, s.traffic_percentage))
            .collect()
    }

    #[test]
    fn each_decision_is_planned_as_its_lifecycle_steps_with_the_evidence() {
        use ModelStatus::*;
        let models = [version("v1", Production, 90), version("v2", Canary, 10)];
        let advance = plan(
            &models,
            &watched(10),
            &decided(Decision::Advance { from: 10, to: 25 }),
        )
        .unwrap();
        assert_eq!(
            moves(&advance),
            [("v1", Production, 75), ("v2", Canary, 25)]
        );
        assert!(
            advance[1]
                .reason
                .as_deref()
                .unwrap()
                .starts_with("canary-check: advance")
        );
        let promote = plan(
            &models,
            &watched(10),
            &decided(Decision::Promote { from: 10 }),
        )
        .unwrap();
        assert_eq!(
            moves(&promote),
            [("v1", Archived, 0), ("v2", Production, 100)]
        );
        let rollback = decided(Decision::Rollback(RollbackReason::Regression {
            signal: Signal::AuditAccuracy,
        }));
        let back = plan(&models, &watched(10), &rollback).unwrap();
        assert_eq!(moves(&back), [("v2", Rejected, 0), ("v1", Production, 100)]);
        assert!(back[0].reason.as_deref().unwrap().contains("roll back"));
    }

    #[test]
    fn nothing_is_planned_when_an_operator_changed_the_canary_meanwhile() {
        use ModelStatus::*;
        let rollback = decided(Decision::Rollback(RollbackReason::Regression {
            signal: Signal::NegativeFeedback,
        }));
        // Its traffic was raised by hand after the analysis.
        let raised = [version("v1", Production, 75), version("v2", Canary, 25)];
        let err = plan(&raised, &watched(10), &rollback).unwrap_err();
        assert!(err.message().contains("nothing was changed"), "{err}");
        // It was archived by hand.
        let archived = [version("v1", Production, 100), version("v2", Archived, 0)];
        assert!(plan(&archived, &watched(10), &rollback).is_err());
    }
}
