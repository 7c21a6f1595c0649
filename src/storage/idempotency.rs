//! Idempotency keys of `serve`'s writes (`idempotency_keys`): a request (or
//! a bulk record) sent again under a key already stored within the window is
//! answered with the conversation ids stored the first time, and its rows are
//! not stored again.
//!
//! The key is claimed in the transaction that inserts its rows, after them:
//! the claim is an upsert that only succeeds for a new key (or one older than
//! the window), so two replicas inserting the same key serialise on its
//! primary key and the second sees the first's committed ids. The rows of a
//! lost claim are deleted again before the commit, so they are never seen.

use std::collections::HashSet;
use std::ops::Range;

use sqlx::QueryBuilder;

use super::conversations::{NewConversation, insert_rows, write_error};
use super::{Store, Timestamp, Tx, db_error, on_pool, on_tx};
use crate::error::{Error, Result};

/// What a key is unique within: a classify request, a bulk request, or one
/// bulk record (`request_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyScope {
    Classify,
    Conversations,
    Record,
}

impl KeyScope {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyScope::Classify => "classify",
            KeyScope::Conversations => "conversations",
            KeyScope::Record => "record",
        }
    }
}

/// An idempotency key over some rows of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    pub scope: KeyScope,
    pub key: String,
    /// A keyed hash of what was sent under the key: the same key with other
    /// content is refused rather than answered with the first answer.
    pub fingerprint: String,
    /// The rows of the request it covers.
    pub rows: Range<usize>,
}

/// One request's rows and the keys over them (none: stored unconditionally).
#[derive(Debug, Clone, Copy)]
pub struct KeyedRows<'a> {
    pub rows: &'a [NewConversation],
    pub keys: &'a [IdempotencyKey],
}

/// What became of one request of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyedOutcome {
    /// The id of each row in order; `replayed` of them had been stored by an
    /// earlier request under the same key (their ids are the earlier ones).
    Stored { ids: Vec<i64>, replayed: usize },
    /// `keys[i]` was used within the window for different content: nothing
    /// of this request is stored.
    KeyReused(usize),
}

/// Keys claimed per statement: 5 binds each.
const KEYS_PER_STATEMENT: usize = 500;
/// Ids deleted per statement.
const IDS_PER_STATEMENT: usize = 1000;

/// Insert every request's rows on `tx` and settle their keys; keys stored
/// before `fresh_since` count as unused. One outcome per request.
pub(crate) async fn insert_keyed(
    tx: &mut Tx,
    requests: &[KeyedRows<'_>],
    fresh_since: Timestamp,
) -> Result<Vec<KeyedOutcome>> {
    let rows: Vec<&NewConversation> = requests.iter().flat_map(|r| r.rows).collect();
    let mut inserted = insert_rows(tx, &rows).await?.into_iter();
    let inserted: Vec<Vec<i64>> = requests
        .iter()
        .map(|r| inserted.by_ref().take(r.rows.len()).collect())
        .collect();
    // (request, key) pairs in key order: two replicas claiming the same keys
    // take their locks in the same order and cannot deadlock.
    let mut claims: Vec<(usize, usize)> = requests
        .iter()
        .enumerate()
        .flat_map(|(r, request)| (0..request.keys.len()).map(move |k| (r, k)))
        .collect();
    let key_of = |(r, k): (usize, usize)| &requests[r].keys[k];
    claims.sort_by(|a, b| {
        let (a, b) = (key_of(*a), key_of(*b));
        (a.scope, &a.key).cmp(&(b.scope, &b.key))
    });
    if claims
        .windows(2)
        .any(|w| (key_of(w[0]).scope, &key_of(w[0]).key) == (key_of(w[1]).scope, &key_of(w[1]).key))
    {
        return Err(Error::failure(
            "one batch holds an idempotency key twice (the writer keeps them apart)",
        ));
    }
    let entries: Vec<(&IdempotencyKey, String)> = claims
        .iter()
        .map(|&(r, k)| {
            let key = key_of((r, k));
            let ids = serde_json::to_string(&inserted[r][key.rows.clone()]).expect("ids serialise");
            (key, ids)
        })
        .collect();
    let won = claim(tx, &entries, fresh_since).await?;

    let mut answers = inserted.clone();
    let mut replayed = vec![0usize; requests.len()];
    let mut refused: Vec<Option<usize>> = vec![None; requests.len()];
    let mut discard: Vec<i64> = Vec::new();
    for &(r, k) in &claims {
        let key = key_of((r, k));
        if won.contains(&(key.scope.as_str().to_string(), key.key.clone())) {
            continue;
        }
        let earlier = stored_ids(tx, key).await?;
        match earlier {
            Some(earlier) if earlier.len() == key.rows.len() => {
                answers[r][key.rows.clone()].copy_from_slice(&earlier);
                discard.extend_from_slice(&inserted[r][key.rows.clone()]);
                replayed[r] += key.rows.len();
            }
            _ => {
                refused[r].get_or_insert(k);
            }
        }
    }
    for (r, refusal) in refused.iter().enumerate() {
        if refusal.is_none() {
            continue;
        }
        // Nothing of a refused request may stay: its rows and the keys it won.
        discard.extend_from_slice(&inserted[r]);
        for key in requests[r].keys {
            if won.contains(&(key.scope.as_str().to_string(), key.key.clone())) {
                forget(tx, key).await?;
            }
        }
    }
    discard.sort_unstable();
    discard.dedup();
    delete_conversations(tx, &discard).await?;
    Ok(answers
        .into_iter()
        .zip(replayed)
        .zip(refused)
        .map(|((ids, replayed), refused)| match refused {
            Some(k) => KeyedOutcome::KeyReused(k),
            None => KeyedOutcome::Stored { ids, replayed },
        })
        .collect())
}

/// Claim each key with its ids; the (scope, key) pairs won.
async fn claim(
    tx: &mut Tx,
    entries: &[(&IdempotencyKey, String)],
    fresh_since: Timestamp,
) -> Result<HashSet<(String, String)>> {
    let mut won = HashSet::new();
    let now = Timestamp::now();
    for chunk in entries.chunks(KEYS_PER_STATEMENT) {
        let claimed: Vec<(String, String)> = on_tx!(tx, |tx, Db| {
            let mut qb = QueryBuilder::<Db>::new(
                "INSERT INTO idempotency_keys \
                 (scope, idempotency_key, fingerprint, conversation_ids, created_at) ",
            );
            qb.push_values(chunk, |mut b, (key, ids)| {
                b.push_bind(key.scope.as_str())
                    .push_bind(key.key.as_str())
                    .push_bind(key.fingerprint.as_str())
                    .push_bind(ids.as_str())
                    .push_bind(now);
            });
            qb.push(
                " ON CONFLICT (scope, idempotency_key) DO UPDATE SET \
                 fingerprint = excluded.fingerprint, conversation_ids = excluded.conversation_ids, \
                 created_at = excluded.created_at WHERE idempotency_keys.created_at < ",
            )
            .push_bind(fresh_since)
            .push(" RETURNING scope, idempotency_key");
            qb.build_query_as::<(String, String)>()
                .fetch_all(&mut **tx)
                .await
        })
        .map_err(|err| write_error("storing idempotency keys", err))?;
        won.extend(claimed);
    }
    Ok(won)
}

/// The ids stored under `key` by an earlier request, if any.
async fn stored_ids(tx: &mut Tx, key: &IdempotencyKey) -> Result<Option<Vec<i64>>> {
    const SQL: &str = "SELECT fingerprint, conversation_ids FROM idempotency_keys \
                       WHERE scope = $1 AND idempotency_key = $2";
    let row: Option<(String, String)> = on_tx!(tx, |tx, Db| {
        sqlx::query_as::<Db, (String, String)>(SQL)
            .bind(key.scope.as_str())
            .bind(key.key.as_str())
            .fetch_optional(&mut **tx)
            .await
    })
    .map_err(|err| write_error("reading an idempotency key", err))?;
    let Some((fingerprint, ids)) = row else {
        return Ok(None);
    };
    if fingerprint != key.fingerprint {
        return Ok(None);
    }
    serde_json::from_str(&ids).map(Some).map_err(|err| {
        Error::failure(format!(
            "idempotency key {:?} holds unreadable ids ({err})",
            key.key
        ))
    })
}

async fn forget(tx: &mut Tx, key: &IdempotencyKey) -> Result<()> {
    const SQL: &str = "DELETE FROM idempotency_keys WHERE scope = $1 AND idempotency_key = $2";
    on_tx!(tx, |tx, Db| {
        sqlx::query::<Db>(SQL)
            .bind(key.scope.as_str())
            .bind(key.key.as_str())
            .execute(&mut **tx)
            .await
            .map(|_| ())
    })
    .map_err(|err| write_error("releasing an idempotency key", err))
}

/// Delete rows this transaction inserted and must not keep.
async fn delete_conversations(tx: &mut Tx, ids: &[i64]) -> Result<()> {
    for chunk in ids.chunks(IDS_PER_STATEMENT) {
        on_tx!(tx, |tx, Db| {
            let mut qb = QueryBuilder::<Db>::new("DELETE FROM conversation_logs WHERE id IN (");
            let mut list = qb.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            qb.push(")");
            qb.build().execute(&mut **tx).await.map(|_| ())
        })
        .map_err(|err| write_error("dropping repeated conversations", err))?;
    }
    Ok(())
}

impl Store {
    /// Forget keys stored before `before`; how many.
    pub async fn prune_idempotency_keys(&self, before: Timestamp) -> Result<u64> {
        on_pool!(self, |pool| {
            sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
                .bind(before)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(|err| db_error("pruning idempotency keys", err))
    }
}
