//! Retention of `conversation_logs` (`flywheel prune`) and the online copy
//! of the embedded database (`flywheel backup`). Samples and model versions
//! are never pruned: a sample outlives its conversations (its
//! `conversation_id` becomes NULL through the foreign key's ON DELETE SET
//! NULL).

use std::path::Path;

use super::{Backend, Store, Timestamp, db_error, on_pool};
use crate::error::{Error, Result};

/// Conversations older than a cutoff: all of them, and how many of those
/// daily capture never processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct PruneCounts {
    pub conversations: i64,
    pub pending: i64,
}

impl Store {
    pub async fn conversations_before(&self, cutoff: Timestamp) -> Result<PruneCounts> {
        let (conversations, pending): (i64, Option<i64>) = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT COUNT(*), SUM(CASE WHEN review_status = 'pending' THEN 1 ELSE 0 END) \
                 FROM conversation_logs WHERE created_at < $1",
            )
            .bind(cutoff)
            .fetch_one(pool)
            .await
        })
        .map_err(|err| db_error("counting old conversations", err))?;
        Ok(PruneCounts {
            conversations,
            pending: pending.unwrap_or(0),
        })
    }

    /// Delete up to `limit` conversations older than `cutoff`, oldest ids
    /// first, in one short transaction (serve keeps writing meanwhile);
    /// returns how many went.
    pub async fn delete_conversations_before(&self, cutoff: Timestamp, limit: i64) -> Result<u64> {
        // The batch's review links go with it, and its samples forget it:
        // on PostgreSQL no foreign key does either (see migration 0004).
        const BATCH: &str =
            "SELECT id FROM conversation_logs WHERE created_at < $1 ORDER BY id LIMIT $2";
        on_pool!(self, |pool| async {
            let mut tx = pool.begin().await?;
            sqlx::query(&format!(
                "DELETE FROM review_links WHERE conversation_id IN ({BATCH})"
            ))
            .bind(cutoff)
            .bind(limit)
            .execute(&mut *tx)
            .await?;
            sqlx::query(&format!(
                "UPDATE training_samples SET conversation_id = NULL \
                 WHERE conversation_id IN ({BATCH})"
            ))
            .bind(cutoff)
            .bind(limit)
            .execute(&mut *tx)
            .await?;
            let done = sqlx::query(&format!(
                "DELETE FROM conversation_logs WHERE id IN ({BATCH})"
            ))
            .bind(cutoff)
            .bind(limit)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(done.rows_affected())
        }
        .await)
        .map_err(|err| db_error("deleting old conversations", err))
    }

    /// A consistent copy of the embedded database at `target` while it is
    /// in use (`VACUUM INTO`: compacted, readers and writers carry on).
    pub async fn backup_sqlite(&self, target: &Path) -> Result<u64> {
        let Backend::Sqlite(pool) = self.backend() else {
            return Err(Error::usage(
                "backup copies the embedded SQLite database; for PostgreSQL use pg_dump \
                 (e.g. `pg_dump -Fc DATABASE_URL > flywheel.dump`, restore with pg_restore)",
            ));
        };
        if target.exists() {
            return Err(Error::usage(format!(
                "{} already exists; backup never overwrites a file",
                target.display()
            )));
        }
        let text = target
            .to_str()
            .ok_or_else(|| Error::usage(format!("{} is not a UTF-8 path", target.display())))?;
        sqlx::query("VACUUM INTO $1")
            .bind(text)
            .execute(pool)
            .await
            .map_err(|err| db_error(&format!("backing up to {}", target.display()), err))?;
        Ok(std::fs::metadata(target).map(|m| m.len()).unwrap_or(0))
    }
}
