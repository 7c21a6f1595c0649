//! `conversation_logs`: batched inserts for `serve`'s group commit and
//! `ingest`, user feedback, and reads by id, the newest, the live feed
//! tailed by id and the edges of a capture gap (each an index look-up or a
//! short range, so a console tick stays cheap on millions of rows).

use serde::Serialize;
use sqlx::QueryBuilder;

use super::idempotency::{KeyedOutcome, KeyedRows, insert_keyed};
use super::{Backend, Store, Timestamp, Tx, db_error, on_pool, on_tx};
use crate::domain::ConversationStatus;
use crate::error::{Error, Result};

/// A conversation to log. Validated before it gets here (see
/// `capture::record`); the database's CHECKs are the last line only.
#[derive(Debug, Clone, PartialEq)]
pub struct NewConversation {
    pub created_at: Timestamp,
    pub session_id: Option<String>,
    /// HMAC of the phone number, never the number itself.
    pub user_hash: Option<String>,
    pub user_message: String,
    pub language: Option<String>,
    /// Who answered (provider and model) and what: the intent, how sure,
    /// whether it fell back, where the conversation was routed.
    pub nlu_provider: Option<String>,
    pub model_version: Option<String>,
    pub nlu_intent: Option<String>,
    pub nlu_confidence: Option<f64>,
    pub fallback: bool,
    pub routing_decision: Option<String>,
    /// How long our router took to classify it (ms), and why it could not
    /// when it failed (answered as a fallback): the canary's latency and
    /// error signals. `None` for conversations another service logged.
    pub classify_ms: Option<f64>,
    pub classify_error: Option<String>,
}

/// Rows per INSERT statement: 13 binds each stays far below SQLite's
/// 32 766 and PostgreSQL's 65 535 bind limits, and a statement this size
/// already amortises the round trip.
const ROWS_PER_STATEMENT: usize = 500;

const INSERT_HEAD: &str = "INSERT INTO conversation_logs (created_at, session_id, user_hash, user_message, \
     language, nlu_intent, nlu_confidence, nlu_provider, model_version, fallback, routing_decision, \
     classify_ms, classify_error) ";

const CONVERSATION_SELECT: &str = "SELECT id, created_at, session_id, user_message, language, \
     nlu_intent, nlu_confidence, nlu_provider, model_version, fallback, routing_decision, \
     feedback, review_status FROM conversation_logs";

/// One stored conversation, as `stats recent` and the console show it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Conversation {
    pub id: i64,
    pub created_at: Timestamp,
    pub session_id: Option<String>,
    pub user_message: String,
    pub language: Option<String>,
    pub nlu_intent: Option<String>,
    pub nlu_confidence: Option<f64>,
    pub nlu_provider: Option<String>,
    pub model_version: Option<String>,
    pub fallback: bool,
    pub routing_decision: Option<String>,
    pub feedback: Option<String>,
    pub review_status: ConversationStatus,
}

/// Insert `rows` with multi-row INSERTs on an open transaction; the new ids
/// in the order of `rows`.
pub(super) async fn insert_rows<R>(tx: &mut Tx, rows: &[R]) -> Result<Vec<i64>>
where
    R: std::borrow::Borrow<NewConversation> + Sync,
{
    let mut ids: Vec<i64> = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut chunk_ids: Vec<i64> = on_tx!(tx, |tx, Db| {
            let mut qb = QueryBuilder::<Db>::new(INSERT_HEAD);
            qb.push_values(chunk, |mut b, row| {
                let row: &NewConversation = std::borrow::Borrow::borrow(row);
                b.push_bind(row.created_at)
                    .push_bind(row.session_id.as_deref())
                    .push_bind(row.user_hash.as_deref())
                    .push_bind(row.user_message.as_str())
                    .push_bind(row.language.as_deref())
                    .push_bind(row.nlu_intent.as_deref())
                    .push_bind(row.nlu_confidence)
                    .push_bind(row.nlu_provider.as_deref())
                    .push_bind(row.model_version.as_deref())
                    .push_bind(row.fallback)
                    .push_bind(row.routing_decision.as_deref())
                    .push_bind(row.classify_ms)
                    .push_bind(row.classify_error.as_deref());
            });
            qb.push(" RETURNING id");
            qb.build_query_scalar::<i64>().fetch_all(&mut **tx).await
        })
        .map_err(|err| write_error("storing conversations", err))?;
        // RETURNING's row order is not promised by either database, but
        // ids are assigned in VALUES order within one statement, so
        // sorting restores the order of `rows`.
        chunk_ids.sort_unstable();
        ids.extend(chunk_ids);
    }
    Ok(ids)
}

/// An open all-or-nothing import (`flywheel ingest`): rows inserted through
/// it become visible together on [`ConversationImport::commit`], or never.
pub struct ConversationImport(pub(super) Tx);

impl ConversationImport {
    /// Insert `rows` (owned or borrowed); their new ids in order.
    pub async fn insert<R>(&mut self, rows: &[R]) -> Result<Vec<i64>>
    where
        R: std::borrow::Borrow<NewConversation> + Sync,
    {
        insert_rows(&mut self.0, rows).await
    }

    pub async fn commit(self) -> Result<()> {
        on_tx!(self.0, |tx, Db| tx.commit().await)
            .map_err(|err| write_error("committing the import", err))
    }

    /// Explicit rollback (dropping does the same, later).
    pub async fn rollback(self) -> Result<()> {
        on_tx!(self.0, |tx, Db| tx.rollback().await)
            .map_err(|err| write_error("rolling back the import", err))
    }
}

impl Store {
    /// Insert every row in one transaction; the new ids in the order of
    /// `rows`. This is the group commit: one call per batch of requests.
    pub async fn insert_conversations(&self, rows: &[NewConversation]) -> Result<Vec<i64>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_import().await?;
        let ids = tx.insert(rows).await?;
        tx.commit().await?;
        Ok(ids)
    }

    /// The group commit of `serve`'s writer: every request's rows in one
    /// transaction, each request's idempotency keys settled with them (see
    /// [`super::idempotency`]; keys stored before `keys_fresh_since` count as
    /// unused); one outcome per request. On SQLite the connection stops
    /// checkpointing the WAL on commit (a checkpoint fsyncs the database
    /// file, and a commit waiting on it stalls every request in the group);
    /// `serve` calls [`Store::checkpoint_wal`] from another task instead.
    pub async fn insert_conversations_deferring_checkpoints(
        &self,
        requests: &[KeyedRows<'_>],
        keys_fresh_since: Timestamp,
    ) -> Result<Vec<KeyedOutcome>> {
        if requests.iter().all(|r| r.rows.is_empty()) {
            return Ok(requests
                .iter()
                .map(|_| KeyedOutcome::Stored {
                    ids: Vec::new(),
                    replayed: 0,
                })
                .collect());
        }
        let mut tx = self.begin_import().await?;
        if let Tx::Sqlite(tx) = &mut tx.0 {
            sqlx::query("PRAGMA wal_autocheckpoint = 0")
                .execute(&mut **tx)
                .await
                .map_err(|err| write_error("storing conversations", err))?;
        }
        let outcomes = insert_keyed(&mut tx.0, requests, keys_fresh_since).await?;
        tx.commit().await?;
        Ok(outcomes)
    }

    /// Copy the SQLite WAL into the database without blocking writers
    /// (PASSIVE); nothing to do on PostgreSQL.
    pub async fn checkpoint_wal(&self) -> Result<()> {
        if let Backend::Sqlite(pool) = self.backend() {
            sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(pool)
                .await
                .map_err(|err| write_error("checkpointing the WAL", err))?;
        }
        Ok(())
    }

    /// Start an all-or-nothing import (`flywheel ingest`). On SQLite the
    /// import's connection gets a 64 MiB page cache: a million-row
    /// transaction cannot checkpoint, and with the default 2 MiB cache its
    /// index inserts turn into WAL look-ups that halve the insert rate.
    pub async fn begin_conversation_import(&self) -> Result<ConversationImport> {
        let mut import = self.begin_import().await?;
        if let Tx::Sqlite(tx) = &mut import.0 {
            sqlx::query("PRAGMA cache_size = -65536")
                .execute(&mut **tx)
                .await
                .map_err(|err| write_error("sizing the import cache", err))?;
        }
        Ok(import)
    }

    async fn begin_import(&self) -> Result<ConversationImport> {
        self.begin()
            .await
            .map(ConversationImport)
            .map_err(|err| write_error("starting a transaction", err))
    }

    /// Record user feedback on a conversation; `false` when no such id.
    pub async fn record_feedback(
        &self,
        id: i64,
        feedback: &str,
        correct_intent: Option<&str>,
    ) -> Result<bool> {
        on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE conversation_logs SET feedback = $2, correct_intent = $3, feedback_at = $4 \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(feedback)
            .bind(correct_intent)
            .bind(Timestamp::now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected() > 0)
        })
        .map_err(|err| write_error("recording feedback", err))
    }

    /// One conversation by id (a repeated classify request is answered from it).
    pub async fn conversation(&self, id: i64) -> Result<Option<Conversation>> {
        on_pool!(self, |pool| {
            sqlx::query_as::<_, Conversation>(&format!("{CONVERSATION_SELECT} WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await
        })
        .map_err(|err| db_error("reading a conversation", err))
    }

    /// The newest `limit` conversations (index on `created_at`).
    pub async fn recent_conversations(&self, limit: i64) -> Result<Vec<Conversation>> {
        on_pool!(self, |pool| {
            sqlx::query_as::<_, Conversation>(&format!(
                "{CONVERSATION_SELECT} ORDER BY created_at DESC, id DESC LIMIT $1"
            ))
            .bind(limit)
            .fetch_all(pool)
            .await
        })
        .map_err(|err| db_error("reading recent conversations", err))
    }

    /// Up to `limit` conversations logged after row `after_id`, newest first
    /// (the primary key: a tail, whatever the table's size).
    pub async fn conversations_after(
        &self,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<Conversation>> {
        let sql = format!(
            "{CONVERSATION_SELECT} WHERE id > $1 \
             ORDER BY id DESC LIMIT $2"
        );
        on_pool!(self, |pool| {
            sqlx::query_as::<_, Conversation>(&sql)
                .bind(after_id)
                .bind(limit)
                .fetch_all(pool)
                .await
        })
        .map_err(|err| db_error("reading the live feed", err))
    }

    /// The `each_side` conversations before `start` and after `end` of a
    /// gap (so the edges of the silence), oldest first.
    pub async fn conversations_around(
        &self,
        start: Timestamp,
        end: Timestamp,
        each_side: i64,
    ) -> Result<Vec<Conversation>> {
        let before = format!(
            "{CONVERSATION_SELECT} WHERE created_at < $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        );
        let after = format!(
            "{CONVERSATION_SELECT} WHERE created_at >= $1 \
             ORDER BY created_at, id LIMIT $2"
        );
        let err = |e| db_error("reading conversations around a gap", e);
        let mut rows = on_pool!(self, |pool| {
            sqlx::query_as::<_, Conversation>(&before)
                .bind(start)
                .bind(each_side)
                .fetch_all(pool)
                .await
        })
        .map_err(err)?;
        rows.reverse();
        let later = on_pool!(self, |pool| {
            sqlx::query_as::<_, Conversation>(&after)
                .bind(end)
                .bind(each_side)
                .fetch_all(pool)
                .await
        })
        .map_err(err)?;
        rows.extend(later);
        Ok(rows)
    }

    /// Rows whose `user_hash` equals `hash` (tests and support look-ups).
    pub async fn count_conversations_by_user_hash(&self, hash: &str) -> Result<i64> {
        on_pool!(self, |pool| {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM conversation_logs WHERE user_hash = $1",
            )
            .bind(hash)
            .fetch_one(pool)
            .await
        })
        .map_err(|err| db_error("counting conversations", err))
    }

    /// The sample conversation `id` waits in or was reviewed as (its
    /// review link, set by daily capture for samples a human sees).
    pub async fn review_link_sample(&self, id: i64) -> Result<Option<i64>> {
        on_pool!(self, |pool| {
            sqlx::query_scalar::<_, i64>(
                "SELECT sample_id FROM review_links WHERE conversation_id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await
        })
        .map_err(|err| db_error("reading a conversation's review link", err))
    }
}

/// Like [`db_error`], but also treats the errors of a database that is
/// going away or refusing connections as "unavailable", so `serve` answers
/// 503 and waits for it to come back instead of reporting a failure.
pub(crate) fn write_error(operation: &str, err: sqlx::Error) -> Error {
    if let sqlx::Error::Database(db) = &err {
        let code = db.code().unwrap_or_default();
        // 08: connection exception; 57P: operator intervention (shutdown,
        // terminated); 53: insufficient resources; 55000: database not
        // accepting connections; 3D000: database does not exist;
        // SQLite 5/6/10/13: busy, locked, I/O error, disk full — with
        // their extended codes (low byte), e.g. 778 SQLITE_IOERR_WRITE when
        // a write fails for lack of room (EFBIG) or a failing disk.
        let sqlite_primary = db
            .try_downcast_ref::<sqlx::sqlite::SqliteError>()
            .and_then(|_| code.parse::<i32>().ok())
            .map(|c| c & 0xff);
        let unavailable = code.starts_with("08")
            || code.starts_with("57P")
            || code.starts_with("53")
            || code == "55000"
            || code == "3D000"
            || matches!(sqlite_primary, Some(5 | 6 | 10 | 13));
        if unavailable {
            return Error::unavailable(format!(
                "{operation}: database unavailable: {}",
                db.message()
            ));
        }
    }
    db_error(operation, err)
}
