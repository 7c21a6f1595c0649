//! `model_versions` and its audit trail `model_transitions`.
//!
//! Lifecycle changes run in one exclusive transaction: the caller's planner
//! (pure rules in `crate::lifecycle`) sees the current rows and the history,
//! and its changes are applied atomically, so two operators promoting at once
//! cannot leave two canaries or a half-finished swap.

use serde::Serialize;

use super::backend::{Dialect, ExclusiveBegin};
use super::{Store, Timestamp, db_error, on_pool};
use crate::domain::ModelStatus;
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ModelVersion {
    pub id: i64,
    pub version: String,
    pub status: ModelStatus,
    pub artifact_path: Option<String>,
    pub train_samples: Option<i32>,
    pub test_samples: Option<i32>,
    pub test_accuracy: Option<f64>,
    pub production_accuracy: Option<f64>,
    pub fallback_rate: Option<f64>,
    pub traffic_percentage: i32,
    /// JSON: the evaluation report (in JSON output the object itself, not
    /// a string holding it).
    #[serde(serialize_with = "stored_json")]
    pub metrics: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub tested_at: Option<Timestamp>,
    pub canary_at: Option<Timestamp>,
    pub production_at: Option<Timestamp>,
    pub archived_at: Option<Timestamp>,
}

#[cfg(test)]
impl ModelVersion {
    /// A registered version with only its name, status and traffic known
    /// (unit tests of the planners and the console).
    pub fn example(version: &str, status: ModelStatus, traffic: i32) -> Self {
        let now = Timestamp::now();
        ModelVersion {
            id: 1,
            version: version.into(),
            status,
            artifact_path: None,
            train_samples: None,
            test_samples: None,
            test_accuracy: None,
            production_accuracy: None,
            fallback_rate: None,
            traffic_percentage: traffic,
            metrics: None,
            created_at: now,
            updated_at: now,
            tested_at: None,
            canary_at: None,
            production_at: None,
            archived_at: None,
        }
    }
}

/// A column holding JSON text, written out as the JSON it holds; text
/// that is not JSON stays a string.
fn stored_json<S: serde::Serializer>(
    text: &Option<String>,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    match text
        .as_deref()
        .map(serde_json::from_str::<serde_json::Value>)
    {
        Some(Ok(value)) => value.serialize(serializer),
        _ => text.serialize(serializer),
    }
}

const VERSION_COLUMNS: &str = "id, version, status, artifact_path, train_samples, test_samples, \
    test_accuracy, production_accuracy, fallback_rate, traffic_percentage, metrics, created_at, \
    updated_at, tested_at, canary_at, production_at, archived_at";

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ModelTransition {
    pub id: i64,
    pub version: String,
    pub from_status: Option<ModelStatus>,
    pub to_status: ModelStatus,
    pub traffic_percentage: i32,
    pub actor: String,
    pub reason: Option<String>,
    pub at: Timestamp,
    /// An operator overrode the promotion gate (`models promote --force`).
    pub forced: bool,
}

const TRANSITION_COLUMNS: &str =
    "id, version, from_status, to_status, traffic_percentage, actor, reason, at, forced";

/// A live model and where its artifact is.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ServingModel {
    pub version: String,
    pub status: ModelStatus,
    pub artifact_path: Option<String>,
    pub traffic_percentage: i32,
}

/// The training run a version came from, and the samples it used.
#[derive(Debug, Clone, Copy)]
pub struct TrainedBy<'a> {
    pub run: i64,
    pub report_path: &'a str,
    pub used_sample_ids: &'a [i64],
}

/// A version to register (weekly training, bootstrap, manual import).
#[derive(Debug, Clone, Default)]
pub struct NewModelVersion {
    pub version: String,
    pub status: ModelStatus,
    pub traffic_percentage: i32,
    /// Where the model's files are (relative paths are under the data dir).
    pub artifact_path: Option<String>,
    /// How it scored: accuracy on the test split and the whole report (JSON).
    pub test_accuracy: Option<f64>,
    pub metrics: Option<String>,
    pub train_samples: Option<i32>,
    pub test_samples: Option<i32>,
}

/// One step of a lifecycle change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelChange {
    pub version: String,
    pub from_status: ModelStatus,
    pub to_status: ModelStatus,
    pub traffic_percentage: i32,
    pub reason: Option<String>,
    /// Promoted although the gate rejected it (recorded in the transition).
    pub forced: bool,
}

/// How many transitions a planner sees (enough to find the last production).
const HISTORY_FOR_PLANNING: i64 = 500;

/// Sets the status, traffic and the timestamp of the status reached.
const APPLY_CHANGE: &str = "UPDATE model_versions SET status = $2, traffic_percentage = $3, updated_at = $4, \
    tested_at = CASE WHEN $2 = 'testing' THEN $4 ELSE tested_at END, \
    canary_at = CASE WHEN $2 = 'canary' AND status <> 'canary' THEN $4 ELSE canary_at END, \
    production_at = CASE WHEN $2 = 'production' AND status <> 'production' THEN $4 ELSE production_at END, \
    archived_at = CASE WHEN $2 = 'archived' AND status <> 'archived' THEN $4 ELSE archived_at END \
    WHERE version = $1 AND status = $5";

/// Registers a version; binds version, status, artifact path, train and
/// test samples, test accuracy, traffic, metrics, now.
fn insert_version_sql() -> String {
    format!(
        "INSERT INTO model_versions (version, status, artifact_path, train_samples, test_samples, \
           test_accuracy, traffic_percentage, metrics, created_at, updated_at, tested_at, production_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, \
           CASE WHEN $2 = 'testing' THEN $9 END, CASE WHEN $2 = 'production' THEN $9 END) \
         RETURNING {VERSION_COLUMNS}"
    )
}

/// Binds version, from status, to status, traffic, actor, reason, now, forced.
const INSERT_TRANSITION: &str = "INSERT INTO model_transitions \
    (version, from_status, to_status, traffic_percentage, actor, reason, at, forced) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// Serialises lifecycle changes across processes (PostgreSQL).
const LIFECYCLE_LOCK_KEY: i64 = 0x666c_7977_6865_656c; // "flywheel"

impl Store {
    pub async fn list_model_versions(&self) -> Result<Vec<ModelVersion>> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM model_versions ORDER BY created_at DESC, id DESC"
        );
        on_pool!(self, |pool| sqlx::query_as::<_, ModelVersion>(&sql)
            .fetch_all(pool)
            .await)
        .map_err(|err| db_error("reading model versions", err))
    }

    /// Production and canary rows, production first.
    pub async fn serving_models(&self) -> Result<Vec<ServingModel>> {
        on_pool!(self, |pool| {
            sqlx::query_as::<_, ServingModel>(
                "SELECT version, status, artifact_path, traffic_percentage FROM model_versions \
                 WHERE status IN ('production', 'canary') ORDER BY status DESC",
            )
            .fetch_all(pool)
            .await
        })
        .map_err(|err| db_error("reading the live models", err))
    }

    /// The version in production, if any.
    pub async fn production_model(&self) -> Result<Option<ServingModel>> {
        Ok(self
            .serving_models()
            .await?
            .into_iter()
            .find(|m| m.status == ModelStatus::Production))
    }

    /// Versions ever registered (none: a fresh installation).
    pub async fn model_version_count(&self) -> Result<i64> {
        let err = |e| db_error("counting model versions", e);
        let model_versions: i64 = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM model_versions")
                .fetch_one(pool)
                .await
        })
        .map_err(err)?;
        Ok(model_versions)
    }

    pub async fn model_version(&self, version: &str) -> Result<Option<ModelVersion>> {
        let sql = format!("SELECT {VERSION_COLUMNS} FROM model_versions WHERE version = $1");
        on_pool!(self, |pool| sqlx::query_as::<_, ModelVersion>(&sql)
            .bind(version)
            .fetch_optional(pool)
            .await)
        .map_err(|err| db_error("reading a model version", err))
    }

    /// Newest first; all versions when `version` is `None`.
    pub async fn model_transitions(
        &self,
        version: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ModelTransition>> {
        let sql = format!(
            "SELECT {TRANSITION_COLUMNS} FROM model_transitions \
             WHERE ($1 IS NULL OR version = $1) ORDER BY at DESC, id DESC LIMIT $2"
        );
        on_pool!(self, |pool| sqlx::query_as::<_, ModelTransition>(&sql)
            .bind(version)
            .bind(limit)
            .fetch_all(pool)
            .await)
        .map_err(|err| db_error("reading model transitions", err))
    }

    /// Register a new version and record its first transition (bootstrap,
    /// tests, a model registered by hand).
    pub async fn insert_model_version(
        &self,
        new: &NewModelVersion,
        actor: &str,
    ) -> Result<ModelVersion> {
        self.register_version(new, actor, None).await
    }

    /// Register a version a training run produced: the version row, its
    /// audit entry, the run's end and (when it is `testing`) the samples it
    /// used, all or nothing — a failure or a SIGKILL halfway leaves no
    /// half-registered version and no samples marked.
    pub async fn register_trained_version(
        &self,
        new: &NewModelVersion,
        actor: &str,
        trained: &TrainedBy<'_>,
    ) -> Result<ModelVersion> {
        self.register_version(new, actor, Some(trained)).await
    }

    async fn register_version(
        &self,
        new: &NewModelVersion,
        actor: &str,
        trained: Option<&TrainedBy<'_>>,
    ) -> Result<ModelVersion> {
        let now = Timestamp::now();
        let sql = insert_version_sql();
        let (from, reason) = match trained {
            Some(_) => (Some(ModelStatus::Training), "weekly training"),
            None => (None, "registered"),
        };
        let result = on_pool!(self, |pool| async {
            let mut tx = pool.begin().await?;
            let row = sqlx::query_as::<_, ModelVersion>(&sql)
                .bind(&new.version)
                .bind(new.status)
                .bind(&new.artifact_path)
                .bind(new.train_samples)
                .bind(new.test_samples)
                .bind(new.test_accuracy)
                .bind(new.traffic_percentage)
                .bind(&new.metrics)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
            sqlx::query(INSERT_TRANSITION)
                .bind(&new.version)
                .bind(from)
                .bind(new.status)
                .bind(new.traffic_percentage)
                .bind(actor)
                .bind(reason)
                .bind(now)
                .bind(false)
                .execute(&mut *tx)
                .await?;
            if let Some(trained) = trained {
                if new.status == ModelStatus::Testing {
                    tx.mark_used(&new.version, now, trained.used_sample_ids)
                        .await?;
                }
                sqlx::query(
                    "UPDATE training_runs SET status = 'succeeded', finished_at = $2, \
                     report_path = $3 WHERE id = $1",
                )
                .bind(trained.run)
                .bind(now)
                .bind(trained.report_path)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(row)
        }
        .await);
        result.map_err(|err| match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => Error::failure(format!(
                "cannot register {}: {}",
                new.version,
                if db.message().contains("one_live") || db.message().contains("status") {
                    "another version already holds that status".to_string()
                } else {
                    "that version already exists".to_string()
                }
            )),
            _ => db_error("registering a model version", err),
        })
    }

    /// Plan and apply a lifecycle change atomically. `plan` gets the current
    /// versions and recent transitions (newest first) and returns the steps
    /// in an order that keeps "one canary, one production" true after each.
    pub async fn change_models<F>(&self, actor: &str, plan: F) -> Result<Vec<ModelChange>>
    where
        F: FnOnce(&[ModelVersion], &[ModelTransition]) -> Result<Vec<ModelChange>>,
    {
        let versions_sql = format!(
            "SELECT {VERSION_COLUMNS} FROM model_versions ORDER BY created_at DESC, id DESC"
        );
        let history_sql = format!(
            "SELECT {TRANSITION_COLUMNS} FROM model_transitions ORDER BY at DESC, id DESC LIMIT $1"
        );
        let read = |e| db_error("reading model versions", e);
        let write = |e| db_error("applying the lifecycle change", e);
        on_pool!(self, |pool| async {
            // Exclusive before reading what we plan on.
            let mut tx = pool
                .begin_exclusive(LIFECYCLE_LOCK_KEY)
                .await
                .map_err(|err| db_error("starting a lifecycle change", err))?;
            let versions = sqlx::query_as::<_, ModelVersion>(&versions_sql)
                .fetch_all(&mut *tx)
                .await
                .map_err(read)?;
            let history = sqlx::query_as::<_, ModelTransition>(&history_sql)
                .bind(HISTORY_FOR_PLANNING)
                .fetch_all(&mut *tx)
                .await
                .map_err(read)?;
            let changes = plan(&versions, &history)?;
            let now = Timestamp::now();
            for change in &changes {
                let updated = sqlx::query(APPLY_CHANGE)
                    .bind(&change.version)
                    .bind(change.to_status)
                    .bind(change.traffic_percentage)
                    .bind(now)
                    .bind(change.from_status)
                    .execute(&mut *tx)
                    .await
                    .map_err(write)?
                    .rows_affected();
                if updated != 1 {
                    return Err(Error::failure(format!(
                        "{} is no longer {}; nothing was changed",
                        change.version, change.from_status
                    )));
                }
                sqlx::query(INSERT_TRANSITION)
                    .bind(&change.version)
                    .bind(change.from_status)
                    .bind(change.to_status)
                    .bind(change.traffic_percentage)
                    .bind(actor)
                    .bind(&change.reason)
                    .bind(now)
                    .bind(change.forced)
                    .execute(&mut *tx)
                    .await
                    .map_err(write)?;
            }
            tx.commit().await.map_err(write)?;
            Ok(changes)
        }
        .await)
    }
}
