//! The model lifecycle of DESIGN §1:
//! `training → testing → canary (N %) → production (100 %)`, plus
//! `archived`, `failed`, `rejected`; at most one canary and one production;
//! rollback walks back through production history, one version per call.
//!
//! The rules are pure planners over the current rows; storage applies a plan
//! atomically and records each step with its actor in `model_transitions`.

use crate::domain::ModelStatus;
use crate::error::{Error, Result};
use crate::storage::Store;
use crate::storage::models::{ModelChange, ModelTransition, ModelVersion};

/// Where `promote` moves a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Serve `traffic` percent of requests (1–99); production keeps the rest.
    Canary {
        traffic: u32,
    },
    Production,
}

fn find<'a>(models: &'a [ModelVersion], version: &str) -> Result<&'a ModelVersion> {
    models.iter().find(|m| m.version == version).ok_or_else(|| {
        Error::failure(format!(
            "no model version {version}; `flywheel models list` shows the versions"
        ))
    })
}

fn with_status(models: &[ModelVersion], status: ModelStatus) -> Option<&ModelVersion> {
    models.iter().find(|m| m.status == status)
}

fn change(
    m: &ModelVersion,
    to: ModelStatus,
    traffic: u32,
    reason: impl Into<String>,
) -> ModelChange {
    ModelChange {
        version: m.version.clone(),
        from_status: m.status,
        to_status: to,
        traffic_percentage: traffic as i32,
        reason: Some(reason.into()),
        forced: false,
    }
}

/// Whether `promote` respects the weekly-training gate's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Gate {
    /// A `rejected` version is refused (the default).
    #[default]
    Respect,
    /// `--force`: an operator promotes a `rejected` version on purpose; the
    /// transition is recorded as forced.
    Override,
}

/// Plan `models promote VERSION --to TARGET`.
pub fn plan_promotion(
    models: &[ModelVersion],
    version: &str,
    target: Target,
    gate: Gate,
) -> Result<Vec<ModelChange>> {
    let found = find(models, version)?;
    // An overridden rejection is planned as if the version were testing,
    // then its step is marked forced.
    let overridden;
    let model = if found.status == ModelStatus::Rejected && gate == Gate::Override {
        overridden = ModelVersion {
            status: ModelStatus::Testing,
            ..found.clone()
        };
        &overridden
    } else {
        found
    };
    let mut steps = plan_promotion_of(models, model, target)?;
    if model.status != found.status {
        for step in steps.iter_mut().filter(|s| s.version == version) {
            step.from_status = found.status;
            step.forced = true;
            step.reason = Some(format!(
                "forced: {} although the weekly-training gate rejected it",
                step.reason.as_deref().unwrap_or("promoted")
            ));
        }
    }
    Ok(steps)
}

fn plan_promotion_of(
    models: &[ModelVersion],
    model: &ModelVersion,
    target: Target,
) -> Result<Vec<ModelChange>> {
    let version = model.version.as_str();
    let production = with_status(models, ModelStatus::Production);
    let canary = with_status(models, ModelStatus::Canary);
    match target {
        Target::Canary { traffic } => {
            if !(1..=99).contains(&traffic) {
                return Err(Error::usage(format!(
                    "canary traffic must be between 1 and 99 % (got {traffic}); use --to production for 100 %"
                )));
            }
            if !matches!(model.status, ModelStatus::Testing | ModelStatus::Canary) {
                return Err(Error::failure(format!(
                    "only a testing version can become the canary; {version} is {}{}",
                    model.status,
                    force_hint(model)
                )));
            }
            if let Some(other) = canary.filter(|c| c.version != version) {
                return Err(Error::failure(format!(
                    "{} is already the canary ({} %); promote it to production or archive it first",
                    other.version, other.traffic_percentage
                )));
            }
            let Some(production) = production else {
                return Err(Error::failure(format!(
                    "there is no production model to share traffic with; promote {version} --to production instead"
                )));
            };
            let reason = if model.status == ModelStatus::Canary {
                format!(
                    "canary traffic {} % → {traffic} %",
                    model.traffic_percentage
                )
            } else {
                format!("canary at {traffic} %")
            };
            Ok(vec![
                change(
                    production,
                    ModelStatus::Production,
                    100 - traffic,
                    format!("{version} takes {traffic} %"),
                ),
                change(model, ModelStatus::Canary, traffic, reason),
            ])
        }
        Target::Production => {
            if !matches!(model.status, ModelStatus::Testing | ModelStatus::Canary) {
                return Err(Error::failure(format!(
                    "only a testing or canary version can be promoted to production; {version} is {}{}",
                    model.status,
                    force_hint(model)
                )));
            }
            // A different canary keeps its share; the new production gets the rest.
            let other_canary = canary.filter(|c| c.version != version);
            let traffic = 100 - other_canary.map_or(0, |c| c.traffic_percentage.max(0) as u32);
            let mut steps = Vec::new();
            if let Some(old) = production {
                steps.push(change(
                    old,
                    ModelStatus::Archived,
                    0,
                    format!("replaced by {version}"),
                ));
            }
            steps.push(change(
                model,
                ModelStatus::Production,
                traffic,
                "promoted to production",
            ));
            Ok(steps)
        }
    }
}

fn force_hint(model: &ModelVersion) -> &'static str {
    if model.status == ModelStatus::Rejected {
        " (the weekly-training gate rejected it; `--force` promotes it anyway, recorded as forced)"
    } else {
        ""
    }
}

/// The versions that served as production, oldest first, as rollbacks left
/// them: a promotion (or a registration straight into production) pushes
/// its version; a rollback (the only way an archived version returns to
/// production) pops back down to the version it restored. `history` is
/// newest first.
fn production_stack(history: &[ModelTransition]) -> Vec<&str> {
    let mut stack: Vec<&str> = Vec::new();
    for t in history.iter().rev() {
        if t.to_status != ModelStatus::Production || t.from_status == Some(ModelStatus::Production)
        {
            continue;
        }
        if t.from_status == Some(ModelStatus::Archived) {
            match stack.iter().rposition(|v| *v == t.version) {
                Some(at) => stack.truncate(at + 1),
                // Older than the history read: start from here.
                None => stack = vec![t.version.as_str()],
            }
        } else {
            stack.push(&t.version);
        }
    }
    stack
}

/// Retired with `models archive` after serving: rollback passes over it.
fn is_retired(history: &[ModelTransition], version: &str) -> bool {
    history.iter().any(|t| {
        t.version == version
            && t.from_status == Some(ModelStatus::Archived)
            && t.to_status == ModelStatus::Archived
    })
}

/// Plan `models rollback`: the current production is archived and the
/// version that served before it takes its place. Each rollback goes one
/// step further back (a rolled-back version is never restored by the next
/// rollback), skipping versions an operator retired with `models archive`.
pub fn plan_rollback(
    models: &[ModelVersion],
    history: &[ModelTransition],
) -> Result<Vec<ModelChange>> {
    let Some(current) = with_status(models, ModelStatus::Production) else {
        return Err(Error::failure(
            "there is no production model to roll back; `flywheel models promote VERSION --to production`",
        ));
    };
    let stack = production_stack(history);
    let previous = stack
        .iter()
        .rev()
        .filter(|v| **v != current.version && !is_retired(history, v))
        .find_map(|v| {
            models
                .iter()
                .find(|m| m.version == *v && m.status == ModelStatus::Archived)
        })
        .ok_or_else(|| {
            Error::failure(format!(
                "nothing to roll back to: no earlier production version of {} is left (each \
                 rollback goes one step further back; retired versions are skipped); promote a \
                 version instead",
                current.version
            ))
        })?;
    let canary_share =
        with_status(models, ModelStatus::Canary).map_or(0, |c| c.traffic_percentage.max(0) as u32);
    Ok(vec![
        change(
            current,
            ModelStatus::Archived,
            0,
            format!("rolled back to {}", previous.version),
        ),
        change(
            previous,
            ModelStatus::Production,
            100 - canary_share,
            format!("rollback from {}", current.version),
        ),
    ])
}

/// Plan `models archive VERSION`. Archiving a version that already left
/// production retires it: `models rollback` will not restore it.
pub fn plan_archive(
    models: &[ModelVersion],
    history: &[ModelTransition],
    version: &str,
) -> Result<Vec<ModelChange>> {
    let model = find(models, version)?;
    match model.status {
        ModelStatus::Production => Err(Error::failure(format!(
            "{version} is in production; promote another version or `flywheel models rollback` first"
        ))),
        ModelStatus::Archived if is_retired(history, version) => Err(Error::failure(format!(
            "{version} is already archived and retired"
        ))),
        ModelStatus::Archived if production_stack(history).contains(&version) => Ok(vec![change(
            model,
            ModelStatus::Archived,
            0,
            "retired: `models rollback` will not restore it",
        )]),
        ModelStatus::Archived => Err(Error::failure(format!("{version} is already archived"))),
        ModelStatus::Canary => {
            let mut steps = vec![change(model, ModelStatus::Archived, 0, "canary stopped")];
            if let Some(production) = with_status(models, ModelStatus::Production) {
                steps.push(change(
                    production,
                    ModelStatus::Production,
                    100,
                    format!("{version} archived"),
                ));
            }
            Ok(steps)
        }
        _ => Ok(vec![change(model, ModelStatus::Archived, 0, "archived")]),
    }
}

/// Plan the rollback of canary `version` by `flywheel canary-check`: it
/// becomes `rejected` — the verdict of evidence from its own traffic, as the
/// weekly-training gate's is from the test set, so `models promote` refuses
/// it again without `--force` — and production takes all traffic back.
pub fn plan_canary_rollback(
    models: &[ModelVersion],
    version: &str,
    reason: &str,
) -> Result<Vec<ModelChange>> {
    let model = find(models, version)?;
    if model.status != ModelStatus::Canary {
        return Err(Error::failure(format!(
            "{version} is no longer the canary (it is {}); nothing was changed",
            model.status
        )));
    }
    let mut steps = vec![change(model, ModelStatus::Rejected, 0, reason)];
    if let Some(production) = with_status(models, ModelStatus::Production) {
        steps.push(change(
            production,
            ModelStatus::Production,
            100,
            format!("{version} rolled back by canary-check"),
        ));
    }
    Ok(steps)
}

pub async fn promote(
    store: &Store,
    version: &str,
    target: Target,
    actor: &str,
) -> Result<Vec<ModelChange>> {
    promote_with(store, version, target, Gate::Respect, actor).await
}

pub async fn promote_with(
    store: &Store,
    version: &str,
    target: Target,
    gate: Gate,
    actor: &str,
) -> Result<Vec<ModelChange>> {
    store
        .change_models(actor, |models, _| {
            plan_promotion(models, version, target, gate)
        })
        .await
}

pub async fn rollback(store: &Store, actor: &str) -> Result<Vec<ModelChange>> {
    store.change_models(actor, plan_rollback).await
}

pub async fn archive(store: &Store, version: &str, actor: &str) -> Result<Vec<ModelChange>> {
    store
        .change_models(actor, |models, history| {
            plan_archive(models, history, version)
        })
        .await
}

/// What fixes "no model is in production" on this installation. (Never
/// `flywheel demo`: it works in a data dir of its own and leaves this
/// installation as it was.)
pub fn no_production_advice(any_model_version: bool) -> &'static str {
    if any_model_version {
        "promote one: `flywheel models list`, then `flywheel models promote VERSION --to production` \
         (or `flywheel models rollback` to the one before)"
    } else {
        "`flywheel serve` trains and deploys the bootstrap model router-v1.0.0 on its first start; \
         or import labelled data (`flywheel samples import FILE`), run `flywheel weekly-training \
         --force`, then `flywheel models promote VERSION --to production`"
    }
}

/// Who is acting, for the audit trail: `user@host` (the invoking user under sudo).
pub fn current_actor() -> String {
    let user = ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "unknown".into());
    match std::fs::read_to_string("/proc/sys/kernel/hostname") {
        Ok(host) if !host.trim().is_empty() => format!("{user}@{}", host.trim()),
        _ => user,
    }
}
