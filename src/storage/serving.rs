//! The model rows `serve` loads: production (and, with lifecycle, the canary).

use super::{Store, db_error, on_pool};
use crate::domain::ModelStatus;
use crate::error::Result;

/// A live model and where its artifact is.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ServingModel {
    pub version: String,
    pub status: ModelStatus,
    pub artifact_path: Option<String>,
    pub traffic_percentage: i32,
}

impl Store {
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
}
