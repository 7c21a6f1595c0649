//! `training_runs` and registering a trained version: the storage side of
//! weekly training. Registration is one transaction — the version row, its
//! audit entry, the run's end and the samples it used — so a failure or a
//! SIGKILL halfway leaves no half-registered version and no samples marked.

use serde::Serialize;

use super::backend::Dialect;
use super::models::{INSERT_TRANSITION, ModelVersion, NewModelVersion, insert_version_sql};
use super::{Store, Timestamp, db_error, on_pool};
use crate::error::Result;

/// An approved sample as training reads it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct TrainingSample {
    pub id: i64,
    pub text: String,
    pub intent: String,
    pub language: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct TrainingRun {
    pub id: i64,
    pub version: String,
    pub status: String,
    pub parameters: Option<String>,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub epoch: Option<i32>,
    pub epochs: Option<i32>,
    pub loss: Option<f64>,
    pub accuracy: Option<f64>,
    pub report_path: Option<String>,
    pub error: Option<String>,
}

const RUN_COLUMNS: &str = "id, version, status, parameters, started_at, finished_at, epoch, epochs, loss, accuracy, report_path, error";

impl Store {
    /// Every approved sample, in id order (deterministic training input).
    pub async fn approved_samples(&self) -> Result<Vec<TrainingSample>> {
        on_pool!(self, |pool| sqlx::query_as::<_, TrainingSample>(
            "SELECT id, text, intent, language FROM training_samples WHERE review_status = 'approved' ORDER BY id"
        )
        .fetch_all(pool)
        .await)
        .map_err(|err| db_error("reading approved samples", err))
    }

    pub async fn start_training_run(
        &self,
        version: &str,
        parameters: &str,
        epochs: i32,
    ) -> Result<i64> {
        on_pool!(self, |pool| sqlx::query_scalar::<_, i64>(
            "INSERT INTO training_runs (version, status, parameters, started_at, epochs) \
             VALUES ($1, 'running', $2, $3, $4) RETURNING id"
        )
        .bind(version)
        .bind(parameters)
        .bind(Timestamp::now())
        .bind(epochs)
        .fetch_one(pool)
        .await)
        .map_err(|err| db_error("recording the training run", err))
    }

    /// Live progress for the console.
    pub async fn update_training_progress(
        &self,
        run: i64,
        epoch: i32,
        loss: f64,
        accuracy: Option<f64>,
    ) -> Result<()> {
        on_pool!(self, |pool| sqlx::query(
            "UPDATE training_runs SET epoch = $2, loss = $3, accuracy = COALESCE($4, accuracy) WHERE id = $1"
        )
        .bind(run)
        .bind(epoch)
        .bind(loss)
        .bind(accuracy)
        .execute(pool)
        .await
        .map(|_| ()))
        .map_err(|err| db_error("recording training progress", err))
    }

    pub async fn finish_training_run(
        &self,
        run: i64,
        status: &str,
        report_path: Option<&str>,
        error: Option<&str>,
    ) -> Result<()> {
        on_pool!(self, |pool| sqlx::query(
            "UPDATE training_runs SET status = $2, finished_at = $3, report_path = COALESCE($4, report_path), error = $5 \
             WHERE id = $1"
        )
        .bind(run)
        .bind(status)
        .bind(Timestamp::now())
        .bind(report_path)
        .bind(error)
        .execute(pool)
        .await
        .map(|_| ()))
        .map_err(|err| db_error("finishing the training run", err))
    }

    /// Runs left `running` by a process that died (the caller holds the
    /// weekly-training lock, so nothing else is training).
    pub async fn fail_stale_training_runs(&self) -> Result<u64> {
        on_pool!(self, |pool| sqlx::query(
            "UPDATE training_runs SET status = 'failed', finished_at = $1, \
             error = 'the training process ended without finishing (killed or crashed)' WHERE status = 'running'"
        )
        .bind(Timestamp::now())
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))
        .map_err(|err| db_error("closing stale training runs", err))
    }

    pub async fn recent_training_runs(&self, limit: i64) -> Result<Vec<TrainingRun>> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM training_runs ORDER BY started_at DESC, id DESC LIMIT $1"
        );
        on_pool!(self, |pool| sqlx::query_as::<_, TrainingRun>(&sql)
            .bind(limit)
            .fetch_all(pool)
            .await)
        .map_err(|err| db_error("reading training runs", err))
    }

    /// Register a trained version, close its run and mark the samples it
    /// used (`model_version_target`), all or nothing.
    pub async fn register_trained_version(
        &self,
        new: &NewModelVersion,
        actor: &str,
        run: i64,
        report_path: &str,
        used_sample_ids: &[i64],
    ) -> Result<ModelVersion> {
        let now = Timestamp::now();
        let insert_sql = insert_version_sql();
        let result = on_pool!(self, |pool| {
            async {
                let mut tx = pool.begin().await?;
                let row = sqlx::query_as::<_, ModelVersion>(&insert_sql)
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
                    .bind("training")
                    .bind(new.status)
                    .bind(new.traffic_percentage)
                    .bind(actor)
                    .bind("weekly training")
                    .bind(now)
                    .bind(false)
                    .execute(&mut *tx)
                    .await?;
            if new.status == crate::domain::ModelStatus::Testing {
                tx.mark_samples_used(&new.version, now, used_sample_ids)
                    .await?;
            }
            sqlx::query(
                "UPDATE training_runs SET status = 'succeeded', finished_at = $2, report_path = $3 WHERE id = $1",
            )
            .bind(run)
            .bind(now)
            .bind(report_path)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(row)
        }
        .await
        });
        result.map_err(|err| db_error("registering the trained version", err))
    }
}
