//! [`Dialect`] on SQLite: whole batches as one JSON text read with
//! `json_each`, and rows handed back as one `json_group_array` value.

use serde::de::DeserializeOwned;
use sqlx::{Sqlite, SqliteConnection, SqlitePool, Transaction};

use super::*;
use crate::domain::ReviewStatus;

/// Rows that SQLite handed over as one `json_group_array(json_array(…))`
/// value (instead of a result row each: sqlx passes every row from its
/// SQLite thread to ours separately, the larger cost at a million rows).
/// `T` deserialises from an array in column order; rows come back sorted by
/// `key`, because an aggregate keeps its subquery's order only in practice.
fn json_rows<T: DeserializeOwned, K: Ord>(
    json: &str,
    what: &str,
    key: impl FnMut(&T) -> K,
) -> sqlx::Result<Vec<T>> {
    let mut rows: Vec<T> = serde_json::from_str(json)
        .map_err(|e| sqlx::Error::Decode(format!("{what}: {e}").into()))?;
    rows.sort_unstable_by_key(key);
    Ok(rows)
}

impl Dialect for SqliteConnection {
    async fn upsert_samples(
        &mut self,
        samples: &[NewSample],
        now: Timestamp,
    ) -> sqlx::Result<Vec<UpsertedSample>> {
        // Serialised straight from borrowed tuples (each an array): no
        // intermediate `Value` with a copy of every string.
        let rows: Vec<_> = samples
            .iter()
            .map(|s| {
                (
                    &s.text,
                    &s.normalized_text,
                    &s.intent,
                    &s.language,
                    s.source,
                    s.confidence,
                    s.review_status,
                    s.priority,
                    s.occurrences,
                    &s.predicted_intent,
                    &s.predicted_by_version,
                    s.conversation_id,
                )
            })
            .collect();
        let rows = serde_json::to_string(&rows).map_err(|err| sqlx::Error::Encode(err.into()))?;
        // MATERIALIZED: json_each re-renders `value` as text on every
        // reference, so without it each row would be rendered (and parsed
        // again) twelve times. `WHERE true`: SQLite needs it to parse
        // ON CONFLICT after a SELECT.
        let sql = format!(
            "WITH r(v) AS MATERIALIZED (SELECT value FROM json_each(?1)) \
             INSERT INTO training_samples ({COLUMNS}) \
             SELECT v->>0, v->>1, v->>2, v->>3, v->>4, v->>5, v->>6, v->>7, v->>8, v->>9, v->>10, \
                    v->>11, ?2, ?2 \
             FROM r WHERE true {ON_CONFLICT}"
        );
        sqlx::query(&sql)
            .bind(&rows)
            .bind(now)
            .execute(&mut *self)
            .await?;
        // Read the stored rows back as one JSON value rather than RETURNING
        // them: sqlx hands every result row from its SQLite thread to ours
        // separately, which costs more than the lookup.
        let stored: String = sqlx::query_scalar(
            "SELECT json_group_array(json_array(id, normalized_text, occurrences, priority, \
                    review_status, reviewed_at)) \
             FROM training_samples WHERE normalized_text IN (SELECT value->>1 FROM json_each(?1))",
        )
        .bind(&rows)
        .fetch_one(&mut *self)
        .await?;
        type Row = (i64, String, i32, i32, ReviewStatus, Option<String>);
        let parsed: Vec<Row> =
            serde_json::from_str(&stored).map_err(|err| sqlx::Error::Decode(err.into()))?;
        parsed
            .into_iter()
            .map(
                |(id, normalized_text, occurrences, priority, review_status, reviewed_at)| {
                    Ok(UpsertedSample {
                        id,
                        normalized_text,
                        occurrences,
                        priority,
                        review_status,
                        reviewed_at: reviewed_at
                            .map(|t| Timestamp::parse_sqlite_text(&t))
                            .transpose()
                            .map_err(sqlx::Error::Decode)?,
                        created: false,
                    })
                },
            )
            .collect()
    }

    async fn stored_labels(&mut self, texts: &[&str]) -> sqlx::Result<Vec<StoredLabel>> {
        let texts = serde_json::to_string(texts).map_err(|err| sqlx::Error::Encode(err.into()))?;
        let json: String = sqlx::query_scalar(&format!(
            "SELECT json_group_array(json_object('id', id, 'normalized_text', normalized_text, \
                    'intent', intent, 'source', source, 'review_status', review_status)) \
             FROM (SELECT {STORED_LABEL_COLUMNS} FROM training_samples \
                   WHERE normalized_text IN (SELECT value FROM json_each(?1)))"
        ))
        .bind(texts)
        .fetch_one(self)
        .await?;
        serde_json::from_str(&json).map_err(|err| sqlx::Error::Decode(err.into()))
    }

    async fn relabel(&mut self, relabels: &[Relabel], now: Timestamp) -> sqlx::Result<()> {
        if relabels.is_empty() {
            return Ok(());
        }
        let rows: Vec<_> = relabels
            .iter()
            .map(|r| (r.id, &r.intent, &r.corrected_from))
            .collect();
        let rows = serde_json::to_string(&rows).map_err(|err| sqlx::Error::Encode(err.into()))?;
        sqlx::query(
            "UPDATE training_samples SET intent = r.value->>1, corrected_from = r.value->>2, \
                 source = 'import', review_status = 'approved', updated_at = ?2 \
             FROM json_each(?1) AS r WHERE training_samples.id = r.value->>0",
        )
        .bind(&rows)
        .bind(now)
        .execute(&mut *self)
        .await?;
        sqlx::query(&format!(
            "{RELABELLED_CONVERSATIONS}(SELECT value->>0 FROM json_each(?1)))"
        ))
        .bind(&rows)
        .execute(&mut *self)
        .await?;
        Ok(())
    }

    async fn mark_conversations(&mut self, marks: &[Mark], now: Timestamp) -> sqlx::Result<u64> {
        let rows: Vec<_> = marks
            .iter()
            .map(|m| (m.id, m.status, m.sample_id))
            .collect();
        let rows = serde_json::to_string(&rows).map_err(|err| sqlx::Error::Encode(err.into()))?;
        let done = sqlx::query(
            "UPDATE conversation_logs SET review_status = v.value->>1, sample_id = v.value->>2, \
             processed_at = ?1 FROM json_each(?2) AS v WHERE conversation_logs.id = v.value->>0",
        )
        .bind(now)
        .bind(rows)
        .execute(self)
        .await?;
        Ok(done.rows_affected())
    }

    async fn link_reviews(&mut self, marks: &[Mark]) -> sqlx::Result<()> {
        let rows: Vec<(i64, i64)> = review_links(marks).collect();
        if rows.is_empty() {
            return Ok(());
        }
        let rows = serde_json::to_string(&rows).map_err(|err| sqlx::Error::Encode(err.into()))?;
        sqlx::query(
            "INSERT INTO review_links (conversation_id, sample_id) \
             SELECT value->>0, value->>1 FROM json_each(?1) WHERE true \
             ON CONFLICT (conversation_id) DO UPDATE SET sample_id = excluded.sample_id",
        )
        .bind(rows)
        .execute(self)
        .await?;
        Ok(())
    }

    /// A million-conversation window touches far more index pages than
    /// SQLite's default 2 MiB page cache holds, and the default checkpoint
    /// every 1000 WAL pages turns one batch into several checkpoints. Both
    /// settings are per connection; the pool's connections keep them, which
    /// only costs memory they actually use.
    async fn prepare_capture_batch(&mut self) -> sqlx::Result<()> {
        for pragma in [
            "PRAGMA cache_size = -65536",
            "PRAGMA wal_autocheckpoint = 16384",
        ] {
            sqlx::query(pragma).execute(&mut *self).await?;
        }
        Ok(())
    }

    async fn mark_used(&mut self, version: &str, now: Timestamp, ids: &[i64]) -> sqlx::Result<()> {
        let ids_json = serde_json::to_string(ids).map_err(|err| sqlx::Error::Encode(err.into()))?;
        sqlx::query(
            "UPDATE training_samples SET model_version_target = $1, updated_at = $2 \
             WHERE model_version_target IS NULL AND review_status = 'approved' \
               AND id IN (SELECT value FROM json_each($3))",
        )
        .bind(version)
        .bind(now)
        .bind(ids_json)
        .execute(&mut *self)
        .await
        .map(|_| ())
    }

    /// Walks the primary key: `+` keeps it off the created_at and partial
    /// `pending` indexes, with which every batch would rescan (and sort) the
    /// rest of the window.
    async fn pending(&mut self, span: &PendingSpan) -> sqlx::Result<Vec<PendingConversation>> {
        let json: String = sqlx::query_scalar(&format!(
            "SELECT json_group_array(json_array({PENDING_COLUMNS})) \
             FROM (SELECT {PENDING_COLUMNS} FROM conversation_logs \
                   WHERE id > $3 AND id <= $4 AND +review_status = 'pending' \
                     AND +created_at >= $1 AND +created_at < $2 \
                   ORDER BY id LIMIT $5)"
        ))
        .bind(span.start)
        .bind(span.end)
        .bind(span.after_id)
        .bind(span.max_id)
        .bind(span.limit)
        .fetch_one(&mut *self)
        .await?;
        json_rows(
            &json,
            "reading pending conversations",
            |r: &PendingConversation| r.id,
        )
    }

    /// One JSON value per page: most of a 1 M export's time was sqlx
    /// handing rows across threads.
    async fn approved_samples_page(
        &mut self,
        page: &ApprovedPage<'_>,
    ) -> sqlx::Result<Vec<ExportRow>> {
        let mut markers = Markers {
            postgres: false,
            next: 0,
        };
        let sql = format!(
            "SELECT json_group_array(json_array(id, text, intent, language, confidence, \
             source, occurrences)) FROM ({})",
            approved_page_sql(page.filter, &mut markers)
        );
        let mut query = sqlx::query_scalar::<_, String>(&sql).bind(page.after_id);
        if let Some(min) = page.filter.min_confidence {
            query = query.bind(min);
        }
        for language in &page.filter.languages {
            query = query.bind(language);
        }
        let json = query.bind(page.limit).fetch_one(&mut *self).await?;
        json_rows(&json, "reading approved samples", |r: &ExportRow| r.id)
    }

    async fn fold_counter_shards(&mut self) -> sqlx::Result<u64> {
        Ok(0)
    }
}

impl ExclusiveBegin for SqlitePool {
    type Database = Sqlite;
    async fn begin_exclusive(&self, _key: i64) -> sqlx::Result<Transaction<'static, Sqlite>> {
        self.begin_with("BEGIN IMMEDIATE").await
    }
    async fn begin_writing(&self) -> sqlx::Result<Transaction<'static, Sqlite>> {
        self.begin_with("BEGIN IMMEDIATE").await
    }
}
