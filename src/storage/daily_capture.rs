//! The set-based SQL of daily capture: stream a window's `pending`
//! conversations by id, and write each batch's samples and conversation
//! marks in one transaction, so a crash loses nothing and a re-run finds
//! nothing left to do.

use super::backend::{Dialect, Mark, PendingSpan};
use super::samples::{NewSample, UPSERT_CHUNK, UpsertedSample, match_upserted};
use super::{Store, Timestamp, db_error, on_pool};
use crate::domain::{ConversationStatus, ReviewStatus};
use crate::error::{Error, Result};

/// The columns of a pending conversation the auto-filter needs.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Deserialize)]
pub struct PendingConversation {
    pub id: i64,
    /// What the NLU answered: the intent, how sure, who answered.
    pub nlu_intent: Option<String>,
    pub nlu_confidence: Option<f64>,
    pub nlu_provider: Option<String>,
    pub model_version: Option<String>,
    pub user_message: String,
    pub language: Option<String>,
}

/// Where a batch's counts are recorded: its run and the day of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TallyKey {
    pub job_run_id: i64,
    pub report_date: chrono::NaiveDate,
}

/// One conversation of a batch and the sample (index into the batch's
/// samples) it folds into; `None` for text with nothing to learn from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapturedConversation {
    pub id: i64,
    pub sample: Option<usize>,
}

/// A conversation's status mirrors where its sample stands after the
/// upsert, so every `needs-review` conversation has a review task behind it:
/// a human already decided the sample → `reviewed`; the sample is approved
/// (auto-approved now or earlier, imported) → `auto-approved`; it waits for
/// review → `needs-review`; no sample → `ignored`.
pub fn conversation_status(sample: Option<&UpsertedSample>) -> ConversationStatus {
    match sample {
        None => ConversationStatus::Ignored,
        Some(s) if s.reviewed_at.is_some() => ConversationStatus::Reviewed,
        Some(s) if s.review_status == ReviewStatus::Approved => ConversationStatus::AutoApproved,
        Some(_) => ConversationStatus::NeedsReview,
    }
}

impl Store {
    /// How many pending conversations the window holds, and the id range
    /// to walk (`None` when there are none).
    pub async fn pending_in_window(
        &self,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<(i64, Option<(i64, i64)>)> {
        let (count, min, max): (i64, Option<i64>, Option<i64>) = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT COUNT(*), MIN(id), MAX(id) FROM conversation_logs \
                 WHERE review_status = 'pending' AND created_at >= $1 AND created_at < $2",
            )
            .bind(start)
            .bind(end)
            .fetch_one(pool)
            .await
        })
        .map_err(|err| db_error("counting pending conversations", err))?;
        Ok((count, min.zip(max)))
    }

    /// The next `limit` pending conversations of the window with id in
    /// (`after_id`, `max_id`], in id order.
    pub async fn pending_conversations(
        &self,
        start: Timestamp,
        end: Timestamp,
        after_id: i64,
        max_id: i64,
        limit: i64,
    ) -> Result<Vec<PendingConversation>> {
        on_pool!(self, |pool| async {
            let mut conn = pool.acquire().await?;
            let span = PendingSpan {
                start,
                end,
                after_id,
                max_id,
                limit,
            };
            conn.pending(&span).await
        }
        .await)
        .map_err(|err| db_error("reading pending conversations", err))
    }

    /// For `--dry-run`: which of these normalised texts already have a
    /// sample, with that sample's status and review time.
    pub async fn existing_samples(&self, normalized: &[String]) -> Result<Vec<UpsertedSample>> {
        let mut out = Vec::new();
        for chunk in normalized.chunks(UPSERT_CHUNK) {
            let sql = format!(
                "SELECT id, normalized_text, occurrences, priority, review_status, reviewed_at \
                 FROM training_samples WHERE normalized_text IN {}",
                self.markers().tuple(chunk.len())
            );
            let rows = on_pool!(self, |pool| {
                let mut query = sqlx::query_as::<_, UpsertedSample>(&sql);
                for text in chunk {
                    query = query.bind(text);
                }
                query.fetch_all(pool).await
            })
            .map_err(|err| db_error("looking up existing samples", err))?;
            out.extend(rows);
        }
        Ok(out)
    }

    /// Upsert the batch's samples, mark its conversations (status,
    /// `sample_id`, `processed_at`) and link those that wait on a review
    /// (`review_links`), in one transaction. `samples` are
    /// distinct by normalised text (the batch is folded before). With a
    /// `tally_key`, what `tally` makes of the stored samples is recorded in
    /// the same transaction (the day's report sums these).
    pub async fn apply_capture_batch(
        &self,
        samples: &[NewSample],
        conversations: &[CapturedConversation],
        tally_key: Option<TallyKey>,
        tally: impl FnOnce(&[UpsertedSample]) -> String,
    ) -> Result<Vec<UpsertedSample>> {
        let tally_row = |upserted: &[UpsertedSample]| {
            tally_key.map(|key| (key.job_run_id, key.report_date.to_string(), tally(upserted)))
        };
        let now = Timestamp::now();
        let err = |e| db_error("storing a daily-capture batch", e);
        // In id order: a chunk's conversations come sample by sample, spread
        // over the day, and walking the table in order is cheaper than
        // jumping back and forth in it (~15 % of the update on SQLite).
        let marks = |upserted: &[UpsertedSample]| -> Vec<Mark> {
            let mut marks: Vec<_> = conversations
                .iter()
                .map(|c| {
                    let sample = c.sample.map(|i| &upserted[i]);
                    Mark {
                        id: c.id,
                        status: conversation_status(sample),
                        sample_id: sample.map(|s| s.id),
                    }
                })
                .collect();
            marks.sort_unstable_by_key(|m| m.id);
            marks
        };
        let upserted = on_pool!(self, |pool| async {
            let mut tx = pool.begin().await.map_err(err)?;
            tx.prepare_capture_batch().await.map_err(err)?;
            let rows = tx.upsert_samples(samples, now).await.map_err(err)?;
            let upserted = match_upserted(samples, rows)?;
            let marks = marks(&upserted);
            let marked = tx.mark_conversations(&marks, now).await.map_err(err)?;
            check_marked(marked, conversations.len())?;
            tx.link_reviews(&marks).await.map_err(err)?;
            if let Some((job_run_id, report_date, tally)) = tally_row(&upserted) {
                sqlx::query(
                    "INSERT INTO daily_capture_tallies (job_run_id, report_date, tally) \
                     VALUES ($1, $2, $3)",
                )
                .bind(job_run_id)
                .bind(report_date)
                .bind(tally)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
            }
            tx.commit().await.map_err(err)?;
            Ok::<_, Error>(upserted)
        }
        .await)?;
        Ok(upserted)
    }
}

impl Store {
    /// The tallies of one report day: (job run, tally JSON), oldest first.
    pub async fn daily_capture_tallies(
        &self,
        report_date: chrono::NaiveDate,
    ) -> Result<Vec<(i64, String)>> {
        on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT job_run_id, tally FROM daily_capture_tallies \
                 WHERE report_date = $1 ORDER BY id",
            )
            .bind(report_date.to_string())
            .fetch_all(pool)
            .await
        })
        .map_err(|err| db_error("reading the day's daily-capture tallies", err))
    }
}

/// Every conversation of the batch must be marked, or the batch is rolled
/// back (returning the error drops the transaction).
fn check_marked(marked: u64, expected: usize) -> Result<()> {
    if marked == expected as u64 {
        Ok(())
    } else {
        Err(Error::failure(format!(
            "daily capture: marked {marked} of {expected} conversations; the batch was rolled back"
        )))
    }
}
