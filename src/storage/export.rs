//! Reading approved samples for `flywheel export`, a page at a time in id
//! order, so memory stays constant and the output order is deterministic.

use super::backend::Dialect;
use super::{Store, db_error, on_pool};
use crate::error::Result;

/// One approved sample as exported (DESIGN §5 plus id, source, occurrences).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Deserialize)]
pub struct ExportRow {
    pub id: i64,
    pub text: String,
    pub intent: String,
    pub language: Option<String>,
    pub confidence: Option<f64>,
    pub source: String,
    pub occurrences: i32,
}

/// Which approved samples to read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExportFilter {
    /// Only these languages (empty: all).
    pub languages: Vec<String>,
    /// Samples with a confidence below this are left out; samples without
    /// one (human-labelled imports) are kept.
    pub min_confidence: Option<f64>,
    /// Only samples no training run has used yet.
    pub unused_only: bool,
}

impl Store {
    /// Up to `limit` approved samples with id > `after_id`, in id order.
    pub async fn approved_samples_page(
        &self,
        filter: &ExportFilter,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<ExportRow>> {
        on_pool!(self, |pool| async {
            let mut conn = pool.acquire().await?;
            conn.approved_samples_page(filter, after_id, limit).await
        }
        .await)
        .map_err(|err| db_error("reading approved samples", err))
    }
}
