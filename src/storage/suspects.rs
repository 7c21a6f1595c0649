//! `label_suspects`: approved labels the model confidently disagrees with
//! ([`crate::suspects`]). Weekly training replaces the whole set each run.
//! A suspicion holds while its sample is approved, still carries the label
//! flagged and no human has decided it ([`live`]): a confirmation or
//! correction from the console or Label Studio (source `human`), a reject,
//! or an import's new label ends it at once, wherever it is read.

use serde::Serialize;

use super::samples::{SAMPLE_COLUMNS, Sample};
use super::{Store, Timestamp, db_error, on_pool};
use crate::error::Result;

/// Rows per insert statement (six binds each).
const INSERT_CHUNK: usize = 1000;

/// `s` (the sample) is still suspected by `x` (its `label_suspects` row).
pub(super) fn live() -> &'static str {
    "s.review_status = 'approved' AND s.source <> 'human' AND s.intent = x.flagged_intent"
}

/// A flag to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSuspect {
    pub sample_id: i64,
    /// The label flagged (the sample's at the time).
    pub flagged_intent: String,
    pub suggested_intent: String,
    pub score: f64,
}

/// A current suspect: its sample as stored and what the model says.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Suspect {
    #[sqlx(flatten)]
    pub sample: Sample,
    /// The intent the model prefers to the stored one.
    pub suggested_intent: String,
    /// `p(suggested) − p(stored)`: higher is more suspicious.
    pub score: f64,
    /// The version whose training run flagged it.
    pub flagged_by: String,
    pub flagged_at: Timestamp,
}

/// The columns of [`Suspect`] over `s` and `x`.
fn suspect_columns() -> String {
    let sample = SAMPLE_COLUMNS
        .split(", ")
        .map(|c| format!("s.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    format!("{sample}, x.suggested_intent, x.score, x.model_version AS flagged_by, x.flagged_at")
}

impl Store {
    /// Replace every suspect with those `version`'s training run flagged,
    /// in one transaction.
    pub async fn replace_suspects(&self, version: &str, suspects: &[NewSuspect]) -> Result<()> {
        let now = Timestamp::now();
        let statements: Vec<String> = suspects
            .chunks(INSERT_CHUNK)
            .map(|chunk| {
                let mut markers = self.markers();
                let rows: Vec<String> = chunk.iter().map(|_| markers.tuple(6)).collect();
                format!(
                    "INSERT INTO label_suspects (sample_id, flagged_intent, suggested_intent, score, \
                         model_version, flagged_at) VALUES {}",
                    rows.join(", ")
                )
            })
            .collect();
        on_pool!(self, |pool| async {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM label_suspects")
                .execute(&mut *tx)
                .await?;
            for (sql, chunk) in statements.iter().zip(suspects.chunks(INSERT_CHUNK)) {
                let mut query = sqlx::query(sql);
                for s in chunk {
                    query = query
                        .bind(s.sample_id)
                        .bind(&s.flagged_intent)
                        .bind(&s.suggested_intent)
                        .bind(s.score)
                        .bind(version)
                        .bind(now);
                }
                query.execute(&mut *tx).await?;
            }
            tx.commit().await
        }
        .await)
        .map_err(|err| db_error("recording suspect labels", err))
    }

    /// Up to `limit` current suspects, most suspicious first.
    pub async fn suspects(&self, limit: i64) -> Result<Vec<Suspect>> {
        let sql = format!(
            "SELECT {} FROM label_suspects x JOIN training_samples s ON s.id = x.sample_id \
             WHERE {} ORDER BY x.score DESC, x.sample_id LIMIT $1",
            suspect_columns(),
            live()
        );
        on_pool!(self, |pool| {
            sqlx::query_as::<_, Suspect>(&sql)
                .bind(limit)
                .fetch_all(pool)
                .await
        })
        .map_err(|err| db_error("reading suspect labels", err))
    }

    /// How many suspects wait for a human.
    pub async fn suspect_count(&self) -> Result<i64> {
        let sql = format!(
            "SELECT COUNT(*) FROM label_suspects x JOIN training_samples s ON s.id = x.sample_id \
             WHERE {}",
            live()
        );
        on_pool!(self, |pool| sqlx::query_scalar(&sql).fetch_one(pool).await)
            .map_err(|err| db_error("counting suspect labels", err))
    }
}
