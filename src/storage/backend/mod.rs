//! Where SQLite and PostgreSQL really differ, in one place: how a whole
//! batch travels (one JSON text on SQLite, typed arrays on PostgreSQL), how
//! many rows come back at once, how an exclusive transaction is taken, bind
//! markers and write parallelism. [`Dialect`] is implemented
//! once per backend's connection ([`sqlite`], [`postgres`]); callers write
//! one body with `on_pool!` and call these methods on its transaction,
//! which resolve to the backend in use. Statements that are the same text
//! on both backends stay with their concept (`conversations`, `samples`, …).
//!
//! Why whole batches as one or a few parameters, not `VALUES (?, …), (?, …)`:
//! with thousands of scalars per statement the binding costs more than the
//! database work. sqlx copies every value into the statement (twice on
//! SQLite: once to own it for its worker thread, once into SQLite), and
//! PostgreSQL parses and plans a VALUES list of 14 000 parameters on every
//! execution. Measured on daily capture (200 000 conversations, SQLite):
//! ~100 µs per conversation with VALUES against ~12 µs of actual database
//! work. One JSON text or 12 arrays make it cheap.

mod postgres;
mod sqlite;

use std::future::Future;

use super::Timestamp;
use super::daily_capture::PendingConversation;
use super::samples::{ExportFilter, ExportRow, NewSample, Relabel, StoredLabel, UpsertedSample};
use super::{Backend, Store};
use crate::domain::ConversationStatus;

/// The operations whose SQL (or whose way of moving rows) differs by
/// backend, on an open connection or transaction.
pub(super) trait Dialect: Send {
    /// Upsert `samples` (distinct normalised texts: one statement cannot
    /// touch a row twice) and return the stored rows, in no particular order.
    fn upsert_samples(
        &mut self,
        samples: &[NewSample],
        now: Timestamp,
    ) -> impl Future<Output = sqlx::Result<Vec<UpsertedSample>>> + Send;

    /// The stored labels of these normalised texts (those that have a sample).
    fn stored_labels(
        &mut self,
        texts: &[&str],
    ) -> impl Future<Output = sqlx::Result<Vec<StoredLabel>>> + Send;

    /// Give stored samples an import's label (see [`Relabel`]).
    fn relabel(
        &mut self,
        relabels: &[Relabel],
        now: Timestamp,
    ) -> impl Future<Output = sqlx::Result<()>> + Send;

    /// Set status, `sample_id` and `processed_at` of `marks`; the rows changed.
    fn mark_conversations(
        &mut self,
        marks: &[Mark],
        now: Timestamp,
    ) -> impl Future<Output = sqlx::Result<u64>> + Send;

    /// Write [`review_links`] of `marks`.
    fn link_reviews(&mut self, marks: &[Mark]) -> impl Future<Output = sqlx::Result<()>> + Send;

    /// Settings for a transaction that writes a daily-capture batch.
    fn prepare_capture_batch(&mut self) -> impl Future<Output = sqlx::Result<()>> + Send;

    /// Mark these approved samples as used by `version` (one statement).
    fn mark_used(
        &mut self,
        version: &str,
        now: Timestamp,
        ids: &[i64],
    ) -> impl Future<Output = sqlx::Result<()>> + Send;

    /// The pending conversations of `span`, in id order.
    fn pending(
        &mut self,
        span: &PendingSpan,
    ) -> impl Future<Output = sqlx::Result<Vec<PendingConversation>>> + Send;

    /// One page of approved samples, in id order.
    fn approved_samples_page(
        &mut self,
        page: &ApprovedPage<'_>,
    ) -> impl Future<Output = sqlx::Result<Vec<ExportRow>>> + Send;

    /// Move the running counts ([`super::counters`]) of writers that are
    /// gone into shard 0 and drop rows at zero; the rows moved. PostgreSQL
    /// shards by writing backend; SQLite's one writer has nothing to fold.
    fn fold_counter_shards(&mut self) -> impl Future<Output = sqlx::Result<u64>> + Send;
}

/// Up to `limit` pending conversations of the window `[start, end)` with id
/// in (`after_id`, `max_id`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct PendingSpan {
    pub start: Timestamp,
    pub end: Timestamp,
    pub after_id: i64,
    pub max_id: i64,
    pub limit: i64,
}

/// Up to `limit` approved samples with id > `after_id` passing `filter`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ApprovedPage<'a> {
    pub filter: &'a ExportFilter,
    pub after_id: i64,
    pub limit: i64,
}

/// Serialises model-lifecycle changes across processes: SQLite takes the
/// write lock before reading (`BEGIN IMMEDIATE`), PostgreSQL a transaction
/// advisory lock.
pub(super) trait ExclusiveBegin {
    type Database: sqlx::Database;
    fn begin_exclusive(
        &self,
        key: i64,
    ) -> impl Future<Output = sqlx::Result<sqlx::Transaction<'static, Self::Database>>> + Send;

    /// A transaction that reads, then writes what its reads decided. SQLite
    /// takes the write lock first (`BEGIN IMMEDIATE`): a deferred one whose
    /// snapshot another writer moved past fails at its first write with
    /// "database is locked", which no busy timeout waits out. PostgreSQL's
    /// row locks and upserts need nothing more than a plain transaction.
    fn begin_writing(
        &self,
    ) -> impl Future<Output = sqlx::Result<sqlx::Transaction<'static, Self::Database>>> + Send;
}

impl Store {
    /// Bind markers for generated multi-row statements (see [`Markers`]).
    pub(super) fn markers(&self) -> Markers {
        Markers {
            postgres: matches!(self.backend(), Backend::Postgres(_)),
            next: 0,
        }
    }

    /// Daily-capture batches written at once: PostgreSQL has a core per
    /// session and two batches touch different conversations and samples
    /// (neighbours share at most the one sample split between them, which
    /// only waits for the other's commit); SQLite has one writer.
    pub fn capture_writers(&self) -> usize {
        match self.backend() {
            Backend::Sqlite(_) => 1,
            Backend::Postgres(_) => 2,
        }
    }
}

/// Bind markers for generated multi-row statements, numbered in text order.
/// PostgreSQL gets `$1, $2, …`; SQLite gets anonymous `?`, because it finds
/// a numbered or named marker by a linear search of all markers (on prepare
/// and again in `sqlite3_bind_parameter_name`, which sqlx calls per bind), so
/// thousands of `$N` make every statement quadratic. Bind in text order.
pub(super) struct Markers {
    postgres: bool,
    next: usize,
}

impl Markers {
    pub(super) fn next(&mut self) -> String {
        self.next += 1;
        if self.postgres {
            format!("${}", self.next)
        } else {
            "?".to_string()
        }
    }

    /// `(m, m, …)` with `n` markers.
    pub(super) fn tuple(&mut self, n: usize) -> String {
        let markers: Vec<String> = (0..n).map(|_| self.next()).collect();
        format!("({})", markers.join(","))
    }
}

/// What the PostgreSQL upsert returns; SQLite reads the same columns back.
const RETURNING: &str =
    "RETURNING id, normalized_text, occurrences, priority, review_status, reviewed_at";

/// An existing sample only gains occurrences (and, while it waits for
/// review, the more urgent priority); text, intent and status stay.
const ON_CONFLICT: &str = "ON CONFLICT (normalized_text) DO UPDATE SET \
       occurrences = training_samples.occurrences + excluded.occurrences, \
       priority = CASE WHEN training_samples.review_status = 'needs-review' \
                        AND excluded.priority < training_samples.priority \
                       THEN excluded.priority ELSE training_samples.priority END, \
       updated_at = excluded.updated_at";

const COLUMNS: &str = "text, normalized_text, intent, language, source, confidence, review_status, \
     priority, occurrences, predicted_intent, predicted_by_version, conversation_id, \
     created_at, updated_at";

const STORED_LABEL_COLUMNS: &str = "id, normalized_text, intent, source, review_status";

/// What a relabelled sample's conversations become: approved without a
/// human, like an auto-approval (their review is no longer needed).
const RELABELLED_CONVERSATIONS: &str = "UPDATE conversation_logs SET review_status = 'auto-approved' \
     WHERE review_status = 'needs-review' \
       AND id IN (SELECT conversation_id FROM review_links WHERE sample_id IN ";

/// One conversation's new state after daily capture.
pub(crate) struct Mark {
    pub id: i64,
    pub status: ConversationStatus,
    pub sample_id: Option<i64>,
}

/// Link the marks that wait on (or were decided by) a human review to their
/// sample in `review_links`, where a review decision finds them.
fn review_links(marks: &[Mark]) -> impl Iterator<Item = (i64, i64)> + '_ {
    marks.iter().filter_map(|m| {
        matches!(
            m.status,
            ConversationStatus::NeedsReview | ConversationStatus::Reviewed
        )
        .then_some(m.sample_id.map(|sample| (m.id, sample)))
        .flatten()
    })
}

/// The `WHERE` of an approved-samples page after `id > marker`, with its
/// markers drawn from `markers`; bind the filter's values in this order.
pub(super) fn approved_page_sql(filter: &ExportFilter, markers: &mut Markers) -> String {
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
    sql
}

/// The columns of a pending conversation the auto-filter needs, in the
/// order of [`PendingConversation`]'s fields (SQLite hands rows over as
/// JSON arrays).
const PENDING_COLUMNS: &str =
    "id, nlu_intent, nlu_confidence, nlu_provider, model_version, user_message, language";
