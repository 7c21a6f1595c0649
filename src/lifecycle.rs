//! The model lifecycle of DESIGN §1:
//! `training → testing → canary (N %) → production (100 %)`, plus
//! `archived`, `failed`, `rejected`; at most one canary and one production;
//! rollback restores the previous production.
//!
//! The rules are pure planners over the current rows; storage applies a plan
//! atomically and records each step with its actor in `model_transitions`.

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

fn with_status<'a>(models: &'a [ModelVersion], status: &str) -> Option<&'a ModelVersion> {
    models.iter().find(|m| m.status == status)
}

fn change(m: &ModelVersion, to: &str, traffic: u32, reason: impl Into<String>) -> ModelChange {
    ModelChange {
        version: m.version.clone(),
        from_status: m.status.clone(),
        to_status: to.to_string(),
        traffic_percentage: traffic as i32,
        reason: Some(reason.into()),
    }
}

/// Plan `models promote VERSION --to TARGET`.
pub fn plan_promotion(
    models: &[ModelVersion],
    version: &str,
    target: Target,
) -> Result<Vec<ModelChange>> {
    let model = find(models, version)?;
    let production = with_status(models, "production");
    let canary = with_status(models, "canary");
    match target {
        Target::Canary { traffic } => {
            if !(1..=99).contains(&traffic) {
                return Err(Error::usage(format!(
                    "canary traffic must be between 1 and 99 % (got {traffic}); use --to production for 100 %"
                )));
            }
            if !matches!(model.status.as_str(), "testing" | "canary") {
                return Err(Error::failure(format!(
                    "only a testing version can become the canary; {version} is {}",
                    model.status
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
            let reason = if model.status == "canary" {
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
                    "production",
                    100 - traffic,
                    format!("{version} takes {traffic} %"),
                ),
                change(model, "canary", traffic, reason),
            ])
        }
        Target::Production => {
            if !matches!(model.status.as_str(), "testing" | "canary") {
                return Err(Error::failure(format!(
                    "only a testing or canary version can be promoted to production; {version} is {}",
                    model.status
                )));
            }
            // A different canary keeps its share; the new production gets the rest.
            let other_canary = canary.filter(|c| c.version != version);
            let traffic = 100 - other_canary.map_or(0, |c| c.traffic_percentage.max(0) as u32);
            let mut steps = Vec::new();
            if let Some(old) = production {
                steps.push(change(old, "archived", 0, format!("replaced by {version}")));
            }
            steps.push(change(
                model,
                "production",
                traffic,
                "promoted to production",
            ));
            Ok(steps)
        }
    }
}

/// Plan `models rollback`: the current production is archived and the most
/// recent earlier production version (still archived) takes its place.
pub fn plan_rollback(
    models: &[ModelVersion],
    history: &[ModelTransition],
) -> Result<Vec<ModelChange>> {
    let Some(current) = with_status(models, "production") else {
        return Err(Error::failure(
            "there is no production model to roll back; `flywheel models promote VERSION --to production`",
        ));
    };
    let previous = history
        .iter()
        .filter(|t| t.to_status == "production" && t.version != current.version)
        .find_map(|t| models.iter().find(|m| m.version == t.version && m.status == "archived"))
        .ok_or_else(|| {
            Error::failure(format!(
                "{} is the only version that has been in production; there is nothing to roll back to",
                current.version
            ))
        })?;
    let canary_share =
        with_status(models, "canary").map_or(0, |c| c.traffic_percentage.max(0) as u32);
    Ok(vec![
        change(
            current,
            "archived",
            0,
            format!("rolled back to {}", previous.version),
        ),
        change(
            previous,
            "production",
            100 - canary_share,
            format!("rollback from {}", current.version),
        ),
    ])
}

/// Plan `models archive VERSION`.
pub fn plan_archive(models: &[ModelVersion], version: &str) -> Result<Vec<ModelChange>> {
    let model = find(models, version)?;
    match model.status.as_str() {
        "production" => Err(Error::failure(format!(
            "{version} is in production; promote another version or `flywheel models rollback` first"
        ))),
        "archived" => Err(Error::failure(format!("{version} is already archived"))),
        "canary" => {
            let mut steps = vec![change(model, "archived", 0, "canary stopped")];
            if let Some(production) = with_status(models, "production") {
                steps.push(change(
                    production,
                    "production",
                    100,
                    format!("{version} archived"),
                ));
            }
            Ok(steps)
        }
        _ => Ok(vec![change(model, "archived", 0, "archived")]),
    }
}

pub async fn promote(
    store: &Store,
    version: &str,
    target: Target,
    actor: &str,
) -> Result<Vec<ModelChange>> {
    store
        .change_models(actor, |models, _| plan_promotion(models, version, target))
        .await
}

pub async fn rollback(store: &Store, actor: &str) -> Result<Vec<ModelChange>> {
    store.change_models(actor, plan_rollback).await
}

pub async fn archive(store: &Store, version: &str, actor: &str) -> Result<Vec<ModelChange>> {
    store
        .change_models(actor, |models, _| plan_archive(models, version))
        .await
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
