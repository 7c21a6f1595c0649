//! Batch statements that take a whole batch as one or a few parameters: a
//! JSON array read with `json_each` on SQLite, typed arrays read with
//! `UNNEST` on PostgreSQL.
//!
//! Why not `VALUES (?, …), (?, …)`: with thousands of scalars per statement
//! the binding costs more than the database work. sqlx copies every value
//! into the statement (twice on SQLite: once to own it for its worker
//! thread, once into SQLite), and PostgreSQL parses and plans a VALUES list
//! of 14 000 parameters on every execution. Measured on daily capture (200 000
//! conversations, SQLite): ~100 µs per conversation with VALUES against
//! ~12 µs of actual database work. One JSON text or 12 arrays make it cheap.

use serde::de::DeserializeOwned;
use sqlx::{PgConnection, SqliteConnection};

use super::Timestamp;
use super::samples::{NewSample, Relabel, StoredLabel, UpsertedSample};
use crate::domain::{ConversationStatus, ReviewStatus};

/// Rows that SQLite handed over as one `json_group_array(json_array(…))`
/// value (instead of a result row each: sqlx passes every row from its
/// SQLite thread to ours separately, the larger cost at a million rows).
/// `T` deserialises from an array in column order; rows come back sorted by
/// `key`, because an aggregate keeps its subquery's order only in practice.
pub(super) fn json_rows<T: DeserializeOwned, K: Ord>(
    json: &str,
    what: &str,
    key: impl FnMut(&T) -> K,
) -> crate::error::Result<Vec<T>> {
    let mut rows: Vec<T> = serde_json::from_str(json)
        .map_err(|e| crate::error::Error::failure(format!("{what}: {e}")))?;
    rows.sort_unstable_by_key(key);
    Ok(rows)
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

/// Upsert `samples` (distinct normalised texts: one statement cannot touch
/// a row twice) and return the stored rows, in no particular order.
pub(super) async fn upsert_samples_sqlite(
    conn: &mut SqliteConnection,
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
        .execute(&mut *conn)
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
    .fetch_one(&mut *conn)
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

/// [`upsert_samples_sqlite`] for PostgreSQL.
pub(super) async fn upsert_samples_postgres(
    conn: &mut PgConnection,
    samples: &[NewSample],
    now: Timestamp,
) -> sqlx::Result<Vec<UpsertedSample>> {
    let column = |f: fn(&NewSample) -> Option<&str>| samples.iter().map(f).collect::<Vec<_>>();
    let sql = format!(
        "INSERT INTO training_samples ({COLUMNS}) \
         SELECT t.*, $13, $13 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], \
                $5::text[], $6::float8[], $7::text[], $8::int4[], $9::int4[], $10::text[], \
                $11::text[], $12::int8[]) AS t \
         {ON_CONFLICT} {RETURNING}"
    );
    sqlx::query_as::<_, UpsertedSample>(&sql)
        .bind(column(|s| Some(s.text.as_str())))
        .bind(column(|s| Some(s.normalized_text.as_str())))
        .bind(column(|s| Some(s.intent.as_str())))
        .bind(column(|s| s.language.as_deref()))
        .bind(column(|s| Some(s.source.as_str())))
        .bind(samples.iter().map(|s| s.confidence).collect::<Vec<_>>())
        .bind(column(|s| Some(s.review_status.as_str())))
        .bind(samples.iter().map(|s| s.priority).collect::<Vec<_>>())
        .bind(samples.iter().map(|s| s.occurrences).collect::<Vec<_>>())
        .bind(column(|s| s.predicted_intent.as_deref()))
        .bind(column(|s| s.predicted_by_version.as_deref()))
        .bind(
            samples
                .iter()
                .map(|s| s.conversation_id)
                .collect::<Vec<_>>(),
        )
        .bind(now)
        .fetch_all(conn)
        .await
}

const STORED_LABEL_COLUMNS: &str = "id, normalized_text, intent, source, review_status";

/// The stored labels of these normalised texts (those that have a sample).
pub(super) async fn stored_labels_sqlite(
    conn: &mut SqliteConnection,
    texts: &[&str],
) -> sqlx::Result<Vec<StoredLabel>> {
    let texts = serde_json::to_string(texts).map_err(|err| sqlx::Error::Encode(err.into()))?;
    let json: String = sqlx::query_scalar(&format!(
        "SELECT json_group_array(json_object('id', id, 'normalized_text', normalized_text, \
                'intent', intent, 'source', source, 'review_status', review_status)) \
         FROM (SELECT {STORED_LABEL_COLUMNS} FROM training_samples \
               WHERE normalized_text IN (SELECT value FROM json_each(?1)))"
    ))
    .bind(texts)
    .fetch_one(conn)
    .await?;
    serde_json::from_str(&json).map_err(|err| sqlx::Error::Decode(err.into()))
}

/// [`stored_labels_sqlite`] for PostgreSQL.
pub(super) async fn stored_labels_postgres(
    conn: &mut PgConnection,
    texts: &[&str],
) -> sqlx::Result<Vec<StoredLabel>> {
    sqlx::query_as(&format!(
        "SELECT {STORED_LABEL_COLUMNS} FROM training_samples WHERE normalized_text = ANY($1)"
    ))
    .bind(texts)
    .fetch_all(conn)
    .await
}

/// What a relabelled sample's conversations become: approved without a
/// human, like an auto-approval (their review is no longer needed).
const RELABELLED_CONVERSATIONS: &str = "UPDATE conversation_logs SET review_status = 'auto-approved' \
     WHERE review_status = 'needs-review' \
       AND id IN (SELECT conversation_id FROM review_links WHERE sample_id IN ";

/// Give stored samples an import's label (see [`Relabel`]).
pub(super) async fn relabel_sqlite(
    conn: &mut SqliteConnection,
    relabels: &[Relabel],
    now: Timestamp,
) -> sqlx::Result<()> {
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
    .execute(&mut *conn)
    .await?;
    sqlx::query(&format!(
        "{RELABELLED_CONVERSATIONS}(SELECT value->>0 FROM json_each(?1)))"
    ))
    .bind(&rows)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// [`relabel_sqlite`] for PostgreSQL.
pub(super) async fn relabel_postgres(
    conn: &mut PgConnection,
    relabels: &[Relabel],
    now: Timestamp,
) -> sqlx::Result<()> {
    if relabels.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = relabels.iter().map(|r| r.id).collect();
    let intents: Vec<&str> = relabels.iter().map(|r| r.intent.as_str()).collect();
    let corrected: Vec<Option<&str>> = relabels
        .iter()
        .map(|r| r.corrected_from.as_deref())
        .collect();
    sqlx::query(
        "UPDATE training_samples t SET intent = r.intent, corrected_from = r.corrected_from, \
             source = 'import', review_status = 'approved', updated_at = $4 \
         FROM UNNEST($1::int8[], $2::text[], $3::text[]) AS r(id, intent, corrected_from) \
         WHERE t.id = r.id",
    )
    .bind(&ids)
    .bind(&intents)
    .bind(&corrected)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    sqlx::query(&format!(
        "{RELABELLED_CONVERSATIONS}(SELECT UNNEST($1::int8[])))"
    ))
    .bind(&ids)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// One conversation's new state after daily capture.
pub(super) struct ConversationMark {
    pub id: i64,
    pub status: ConversationStatus,
    pub sample_id: Option<i64>,
}

/// Set status, `sample_id` and `processed_at` of `marks`; returns the rows
/// changed.
pub(super) async fn mark_conversations_sqlite(
    conn: &mut SqliteConnection,
    marks: &[ConversationMark],
    now: Timestamp,
) -> sqlx::Result<u64> {
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
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// [`mark_conversations_sqlite`] for PostgreSQL.
pub(super) async fn mark_conversations_postgres(
    conn: &mut PgConnection,
    marks: &[ConversationMark],
    now: Timestamp,
) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "UPDATE conversation_logs SET review_status = v.status, sample_id = v.sample_id, \
         processed_at = $1 \
         FROM UNNEST($2::int8[], $3::text[], $4::int8[]) AS v(id, status, sample_id) \
         WHERE conversation_logs.id = v.id",
    )
    .bind(now)
    .bind(marks.iter().map(|m| m.id).collect::<Vec<_>>())
    .bind(marks.iter().map(|m| m.status.as_str()).collect::<Vec<_>>())
    .bind(marks.iter().map(|m| m.sample_id).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Link the marks that wait on (or were decided by) a human review to their
/// sample in `review_links`, where a review decision finds them.
fn review_links(marks: &[ConversationMark]) -> impl Iterator<Item = (i64, i64)> + '_ {
    marks.iter().filter_map(|m| {
        matches!(
            m.status,
            ConversationStatus::NeedsReview | ConversationStatus::Reviewed
        )
        .then_some(m.sample_id.map(|sample| (m.id, sample)))
        .flatten()
    })
}

/// [`review_links`] written on SQLite.
pub(super) async fn link_reviews_sqlite(
    conn: &mut SqliteConnection,
    marks: &[ConversationMark],
) -> sqlx::Result<()> {
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
    .execute(conn)
    .await?;
    Ok(())
}

/// [`review_links`] written on PostgreSQL.
pub(super) async fn link_reviews_postgres(
    conn: &mut PgConnection,
    marks: &[ConversationMark],
) -> sqlx::Result<()> {
    let (conversations, samples): (Vec<i64>, Vec<i64>) = review_links(marks).unzip();
    if conversations.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO review_links (conversation_id, sample_id) \
         SELECT * FROM UNNEST($1::int8[], $2::int8[]) \
         ON CONFLICT (conversation_id) DO UPDATE SET sample_id = excluded.sample_id",
    )
    .bind(conversations)
    .bind(samples)
    .execute(conn)
    .await?;
    Ok(())
}
