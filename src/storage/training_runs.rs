//! `training_runs`: each training attempt with its live progress (epoch,
//! loss, accuracy) for the console. Registering the version a run produced
//! is `models::register_trained_version`.

use serde::Serialize;

use super::{Store, Timestamp, db_error, on_pool};
use crate::error::Result;

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
}
