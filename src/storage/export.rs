//! Reading approved samples for `flywheel export`, a page at a time in id
//! order, so memory stays constant and the output order is deterministic.

use super::samples::Markers;
use super::{Backend, Store, bulk, db_error};
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
        let mut markers = Markers::new(self.is_postgres());
        let mut sql = format!(
            "SELECT id, text, intent, language, confidence, source, occurrences \
             FROM training_samples WHERE review_status = 'approved' AND id > {}",
            markers.next()
        );
        if filter.unused_only {
            sql.push_str(" AND model_version_target IS NULL");
        }
        if filter.min_confidence.is_some() {
            sql.push_str(&format!(
                " AND (confidence IS NULL OR confidence >= {})",
                markers.next()
            ));
        }
        if !filter.languages.is_empty() {
            sql.push_str(&format!(
                " AND language IN {}",
                markers.tuple(filter.languages.len())
            ));
        }
        sql.push_str(&format!(" ORDER BY id LIMIT {}", markers.next()));
        let err = |err| db_error("reading approved samples", err);
        match self.backend() {
            Backend::Sqlite(pool) => {
                // One JSON value per page (see `bulk::json_rows`): most of
                // a 1 M export's time was sqlx handing rows across threads.
                let sql = format!(
                    "SELECT json_group_array(json_array(id, text, intent, language, confidence, \
                     source, occurrences)) FROM ({sql})"
                );
                let mut query = sqlx::query_scalar::<_, String>(&sql).bind(after_id);
                if let Some(min) = filter.min_confidence {
                    query = query.bind(min);
                }
                for language in &filter.languages {
                    query = query.bind(language);
                }
                let json = query.bind(limit).fetch_one(pool).await.map_err(err)?;
                bulk::json_rows(&json, "reading approved samples", |r: &ExportRow| r.id)
            }
            Backend::Postgres(pool) => {
                let mut query = sqlx::query_as::<_, ExportRow>(&sql).bind(after_id);
                if let Some(min) = filter.min_confidence {
                    query = query.bind(min);
                }
                for language in &filter.languages {
                    query = query.bind(language);
                }
                query.bind(limit).fetch_all(pool).await.map_err(err)
            }
        }
    }
}
