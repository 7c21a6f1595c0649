//! `training_samples`: the one place samples are created and decided.
//!
//! Samples are keyed by normalised text ([`crate::text::normalize_for_dedup`]):
//! an upsert of a text we already hold raises its `occurrences` instead of
//! creating a second sample or review task. A human decision — from the
//! Label Studio pull or the console's review pane — goes through
//! [`Store::apply_review`], and the console's undo through
//! [`Store::undo_review`].

use serde::Serialize;

use super::backend::{ApprovedPage, Dialect, ExclusiveBegin};
use super::{Store, Timestamp, Tx, db_error, on_pool, on_tx};
use crate::domain::{Provenance, ReviewStatus, ReviewVerdict};
use crate::error::Result;
use crate::gold::{GoldLabel, GoldSummary};

/// One row of `training_samples`.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Sample {
    pub id: i64,
    pub text: String,
    pub normalized_text: String,
    pub intent: String,
    pub language: Option<String>,
    pub source: Provenance,
    pub confidence: Option<f64>,
    pub review_status: ReviewStatus,
    pub priority: i32,
    pub occurrences: i32,
    /// What the model said; the base a review accepts or corrects.
    pub predicted_intent: Option<String>,
    pub predicted_by_version: Option<String>,
    /// The intent a reviewer replaced (NULL when accepted as predicted).
    pub corrected_from: Option<String>,
    pub annotator: Option<String>,
    pub conversation_id: Option<i64>,
    pub model_version_target: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub reviewed_at: Option<Timestamp>,
}

pub(super) const SAMPLE_COLUMNS: &str = "id, text, normalized_text, intent, language, source, \
    confidence, review_status, priority, occurrences, predicted_intent, predicted_by_version, \
    corrected_from, annotator, conversation_id, model_version_target, created_at, updated_at, reviewed_at";

/// `'human', 'import'`: the sources of gold labels, for an SQL `IN` list.
pub(super) fn gold_sources() -> String {
    Provenance::GOLD
        .iter()
        .map(|p| format!("'{}'", p.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A sample to create, or to fold into the existing one with the same
/// normalised text. Callers fold duplicates within one call themselves
/// (one entry per normalised text, `occurrences` = how many they folded).
#[derive(Debug, Clone, PartialEq)]
pub struct NewSample {
    pub text: String,
    pub normalized_text: String,
    pub language: Option<String>,
    /// The label, where it came from, and whether it waits for a human
    /// (`Approved` or `NeedsReview`, at `priority`).
    pub intent: String,
    pub source: Provenance,
    pub review_status: ReviewStatus,
    pub priority: i32,
    /// What the model said, and how sure it was.
    pub predicted_intent: Option<String>,
    pub predicted_by_version: Option<String>,
    pub confidence: Option<f64>,
    pub occurrences: i32,
    pub conversation_id: Option<i64>,
}

/// What an upsert did to one [`NewSample`].
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct UpsertedSample {
    pub id: i64,
    pub normalized_text: String,
    /// Occurrences after the upsert.
    pub occurrences: i32,
    pub priority: i32,
    /// Status of the stored sample (an existing sample keeps its own).
    pub review_status: ReviewStatus,
    /// Set when a human already decided the stored sample.
    pub reviewed_at: Option<Timestamp>,
    /// False when the text folded into a sample we already held.
    #[sqlx(skip)]
    pub created: bool,
}

/// Samples per upsert statement (one JSON text or 12 arrays): large enough
/// to amortise a round trip, small enough to keep statements modest.
pub(super) const UPSERT_CHUNK: usize = 5000;

/// Order the RETURNING rows like the input (the database does not promise
/// an order) and say which were created.
pub(super) fn match_upserted(
    input: &[NewSample],
    returned: Vec<UpsertedSample>,
) -> Result<Vec<UpsertedSample>> {
    let mut by_text: std::collections::HashMap<String, UpsertedSample> = returned
        .into_iter()
        .map(|r| (r.normalized_text.clone(), r))
        .collect();
    input
        .iter()
        .map(|s| {
            let mut row = by_text.remove(&s.normalized_text).ok_or_else(|| {
                crate::error::Error::failure(format!(
                    "upserting samples: no row came back for {:?}; were two entries given the same normalised text?",
                    s.normalized_text
                ))
            })?;
            // A stored sample has at least one occurrence, so only a fresh
            // row ends with exactly the occurrences we brought.
            row.created = row.occurrences == s.occurrences;
            Ok(row)
        })
        .collect()
}

/// An approved sample as training reads it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct TrainingSample {
    pub id: i64,
    pub text: String,
    pub intent: String,
    pub language: Option<String>,
    /// Whether it may judge models ([`crate::gold`]).
    pub source: Provenance,
}

/// One approved sample as exported (DESIGN §5 plus id, source, occurrences).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Deserialize)]
pub struct ExportRow {
    pub id: i64,
    pub text: String,
    pub intent: String,
    pub language: Option<String>,
    pub confidence: Option<f64>,
    pub source: Provenance,
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

/// A stored sample's label, as an import weighs it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Deserialize)]
pub struct StoredLabel {
    pub id: i64,
    pub normalized_text: String,
    pub intent: String,
    pub source: Provenance,
    pub review_status: ReviewStatus,
}

/// A new label an import gives a stored sample: it becomes `approved` with
/// source `import`; `corrected_from` keeps the label it replaced. Its
/// conversations that waited for review no longer do.
#[derive(Debug, Clone, PartialEq)]
pub struct Relabel {
    pub id: i64,
    pub intent: String,
    pub corrected_from: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewDecision {
    pub verdict: ReviewVerdict,
    /// Label Studio user (email or id) or the console's operator.
    pub annotator: Option<String>,
    /// When the human decided (the annotation's `updated_at`); a decision
    /// older than the one recorded is ignored, so the most recent wins.
    pub decided_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ReviewOutcome {
    /// The decision is now the sample's state.
    Applied(Sample),
    /// A more recent decision was already recorded; nothing changed.
    Stale(Sample),
    NotFound,
}

/// The intent a review starts from: the model's prediction, or for samples
/// without one (imports) the label as first stored.
const BASE_INTENT: &str = "COALESCE(predicted_intent, corrected_from, intent)";

impl Store {
    pub async fn sample(&self, id: i64) -> Result<Option<Sample>> {
        let sql = format!("SELECT {SAMPLE_COLUMNS} FROM training_samples WHERE id = $1");
        on_pool!(self, |pool| {
            sqlx::query_as::<_, Sample>(&sql)
                .bind(id)
                .fetch_optional(pool)
                .await
        })
        .map_err(|err| db_error("reading a sample", err))
    }

    /// The samples of `ids` (those that exist), in the order of `ids`.
    pub async fn samples_by_ids(&self, ids: &[i64]) -> Result<Vec<Sample>> {
        let mut found = std::collections::HashMap::with_capacity(ids.len());
        // A few hundred markers per statement keep SQLite's marker search cheap.
        for chunk in ids.chunks(500) {
            let sql = format!(
                "SELECT {SAMPLE_COLUMNS} FROM training_samples WHERE id IN {}",
                self.markers().tuple(chunk.len())
            );
            let rows = on_pool!(self, |pool| {
                let mut query = sqlx::query_as::<_, Sample>(&sql);
                for id in chunk {
                    query = query.bind(id);
                }
                query.fetch_all(pool).await
            })
            .map_err(|err| db_error("reading samples", err))?;
            found.extend(rows.into_iter().map(|s| (s.id, s)));
        }
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    /// The sample holding `text`'s normalised form, if any.
    pub async fn sample_by_normalized_text(&self, normalized: &str) -> Result<Option<Sample>> {
        let sql =
            format!("SELECT {SAMPLE_COLUMNS} FROM training_samples WHERE normalized_text = $1");
        on_pool!(self, |pool| {
            sqlx::query_as::<_, Sample>(&sql)
                .bind(normalized)
                .fetch_optional(pool)
                .await
        })
        .map_err(|err| db_error("reading a sample", err))
    }

    /// Samples approved and rejected by a review since `since`.
    pub async fn decisions_since(&self, since: Timestamp) -> Result<(i64, i64)> {
        let err = |e| db_error("counting review decisions", e);
        let (approved_today, rejected_today): (i64, i64) = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT COUNT(CASE WHEN review_status = 'approved' THEN 1 END), \
                        COUNT(CASE WHEN review_status = 'rejected' THEN 1 END) \
                 FROM training_samples WHERE reviewed_at >= $1",
            )
            .bind(since)
            .fetch_one(pool)
            .await
        })
        .map_err(err)?;
        Ok((approved_today, rejected_today))
    }

    /// Every approved sample, in id order (deterministic training input).
    pub async fn approved_samples(&self) -> Result<Vec<TrainingSample>> {
        on_pool!(self, |pool| sqlx::query_as::<_, TrainingSample>(
            "SELECT id, text, intent, language, source FROM training_samples WHERE review_status = 'approved' ORDER BY id"
        )
        .fetch_all(pool)
        .await)
        .map_err(|err| db_error("reading approved samples", err))
    }

    /// Up to `limit` approved samples with id > `after_id`, in id order.
    pub async fn approved_samples_page(
        &self,
        filter: &ExportFilter,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<ExportRow>> {
        on_pool!(self, |pool| async {
            let mut conn = pool.acquire().await?;
            let page = ApprovedPage {
                filter,
                after_id,
                limit,
            };
            conn.approved_samples_page(&page).await
        }
        .await)
        .map_err(|err| db_error("reading approved samples", err))
    }

    /// Approved samples no training run has used yet.
    pub async fn approved_unused_count(&self) -> Result<i64> {
        on_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM training_samples \
                 WHERE review_status = 'approved' AND model_version_target IS NULL",
            )
            .fetch_one(pool)
            .await
        })
        .map_err(|err| db_error("counting approved unused samples", err))
    }

    /// Approved samples whose label a human gave or a team imported: the
    /// gold set's size ([`crate::gold`]), counted without reading it.
    pub async fn gold_sample_count(&self) -> Result<i64> {
        let sql = format!(
            "SELECT COUNT(*) FROM training_samples \
             WHERE review_status = 'approved' AND source IN ({})",
            gold_sources()
        );
        on_pool!(self, |pool| {
            sqlx::query_scalar(&sql).fetch_one(pool).await
        })
        .map_err(|err| db_error("counting gold samples", err))
    }

    /// When the oldest sample still in the review queue (queued here or in
    /// Label Studio) was created; `None` when the queue is empty.
    pub async fn oldest_queued_sample_at(&self) -> Result<Option<Timestamp>> {
        on_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT MIN(created_at) FROM training_samples \
                 WHERE review_status IN ('needs-review', 'in-review')",
            )
            .fetch_one(pool)
            .await
        })
        .map_err(|err| db_error("reading the review queue's age", err))
    }

    /// Samples of one `source` (`auto`, `human`, `synthetic`, `import`), any status.
    pub async fn sample_count_by_source(&self, source: &str) -> Result<i64> {
        on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM training_samples WHERE source = $1")
                .bind(source)
                .fetch_one(pool)
                .await
        })
        .map_err(|err| db_error("counting samples by source", err))
    }

    /// The gold set at a glance ([`crate::gold`]): approved samples whose
    /// label a human gave or a team imported, against the intents known
    /// among all approved samples.
    pub async fn gold_summary(&self, test_split_percent: u32) -> Result<GoldSummary> {
        let gold_sql = format!(
            "SELECT id, intent, language FROM training_samples \
             WHERE review_status = 'approved' AND source IN ({})",
            gold_sources()
        );
        let (gold, intents): (Vec<GoldLabel>, i64) = on_pool!(self, |pool| async {
            let gold = sqlx::query_as::<_, GoldLabel>(&gold_sql)
                .fetch_all(pool)
                .await?;
            let intents = sqlx::query_scalar(
                "SELECT COUNT(DISTINCT intent) FROM training_samples WHERE review_status = 'approved'",
            )
            .fetch_one(pool)
            .await?;
            Ok::<_, sqlx::Error>((gold, intents))
        }
        .await)
        .map_err(|err| db_error("reading the gold set", err))?;
        Ok(GoldSummary::of(&gold, intents as usize, test_split_percent))
    }

    /// Create or fold `samples` in one transaction (all or nothing); stored
    /// samples keep their labels. Returns one row per input, in input order.
    pub async fn upsert_samples(&self, samples: &[NewSample]) -> Result<Vec<UpsertedSample>> {
        self.import_samples(samples, |_| Ok(Vec::new())).await
    }

    /// `samples import`: in one transaction (all or nothing), `plan` sees
    /// the stored labels of these texts and says which to replace; then
    /// `samples` are created or folded and the replacements applied. An
    /// error from `plan` leaves everything as it was.
    pub async fn import_samples<F>(
        &self,
        samples: &[NewSample],
        plan: F,
    ) -> Result<Vec<UpsertedSample>>
    where
        F: FnOnce(&[StoredLabel]) -> Result<Vec<Relabel>>,
    {
        let now = Timestamp::now();
        let err = |e| db_error("storing samples", e);
        let texts: Vec<&str> = samples.iter().map(|s| s.normalized_text.as_str()).collect();
        on_pool!(self, |pool| async {
            let mut tx = pool.begin_writing().await.map_err(err)?;
            let stored = tx.stored_labels(&texts).await.map_err(err)?;
            let relabels = plan(&stored)?;
            let mut out = Vec::with_capacity(samples.len());
            for chunk in samples.chunks(UPSERT_CHUNK) {
                let rows = tx.upsert_samples(chunk, now).await.map_err(err)?;
                out.extend(match_upserted(chunk, rows)?);
            }
            tx.relabel(&relabels, now).await.map_err(err)?;
            tx.commit().await.map_err(err)?;
            Ok(out)
        }
        .await)
    }

    /// Apply a human decision (DESIGN §1 review): accept → `approved` with
    /// the predicted intent; another intent → `approved` with that intent and
    /// `corrected_from` = the prediction; reject (skip, cancel) → `rejected`.
    /// Source becomes `human`; annotator and `reviewed_at` are recorded; the
    /// sample's conversations become `reviewed`. A later decision overrides
    /// an earlier one, the same decision again changes nothing, and a
    /// decision older than the recorded one is [`ReviewOutcome::Stale`].
    pub async fn apply_review(
        &self,
        sample_id: i64,
        decision: &ReviewDecision,
    ) -> Result<ReviewOutcome> {
        let (status, chosen) = match &decision.verdict {
            ReviewVerdict::Accept => ("approved", None),
            ReviewVerdict::Choose(intent) => ("approved", Some(intent.as_str())),
            ReviewVerdict::Reject => ("rejected", None),
        };
        let sql = format!(
            "UPDATE training_samples SET review_status = $2, \
                intent = COALESCE($3, {BASE_INTENT}), \
                corrected_from = CASE WHEN $3 IS NULL OR $3 = {BASE_INTENT} THEN NULL ELSE {BASE_INTENT} END, \
                source = 'human', annotator = $4, reviewed_at = $5, updated_at = $6 \
             WHERE id = $1 AND (reviewed_at IS NULL OR reviewed_at <= $5) \
             RETURNING {SAMPLE_COLUMNS}"
        );
        let err = |e| db_error("applying a review decision", e);
        let mut tx = self.begin().await.map_err(err)?;
        let updated = on_tx!(&mut tx, |tx, Db| {
            sqlx::query_as::<Db, Sample>(&sql)
                .bind(sample_id)
                .bind(status)
                .bind(chosen)
                .bind(&decision.annotator)
                .bind(decision.decided_at)
                .bind(Timestamp::now())
                .fetch_optional(&mut **tx)
                .await
        })
        .map_err(err)?;
        // Nothing updated: dropping the transaction ends it, nothing written.
        if updated.is_some() {
            conversations_follow(
                tx,
                sample_id,
                "UPDATE conversation_logs SET review_status = 'reviewed' \
                 WHERE id IN (SELECT conversation_id FROM review_links WHERE sample_id = $1) \
                   AND review_status <> 'ignored'",
            )
            .await
            .map_err(err)?;
        }
        match updated {
            Some(sample) => Ok(ReviewOutcome::Applied(sample)),
            None => Ok(match self.sample(sample_id).await? {
                Some(sample) => ReviewOutcome::Stale(sample),
                None => ReviewOutcome::NotFound,
            }),
        }
    }

    /// The console's undo: put a human-decided sample back in the queue
    /// (`needs-review`, predicted intent, no annotator or `reviewed_at`,
    /// source `auto`) and its conversations back to `needs-review`. Returns
    /// `None` when the sample is missing or was not decided by a human.
    pub async fn undo_review(&self, sample_id: i64) -> Result<Option<Sample>> {
        let sql = format!(
            "UPDATE training_samples SET review_status = 'needs-review', intent = {BASE_INTENT}, \
                corrected_from = NULL, annotator = NULL, reviewed_at = NULL, source = 'auto', \
                updated_at = $2 \
             WHERE id = $1 AND source = 'human' AND review_status IN ('approved', 'rejected') \
             RETURNING {SAMPLE_COLUMNS}"
        );
        let err = |e| db_error("undoing a review decision", e);
        let mut tx = self.begin().await.map_err(err)?;
        let row = on_tx!(&mut tx, |tx, Db| {
            sqlx::query_as::<Db, Sample>(&sql)
                .bind(sample_id)
                .bind(Timestamp::now())
                .fetch_optional(&mut **tx)
                .await
        })
        .map_err(err)?;
        if row.is_some() {
            conversations_follow(
                tx,
                sample_id,
                "UPDATE conversation_logs SET review_status = 'needs-review' \
                 WHERE id IN (SELECT conversation_id FROM review_links WHERE sample_id = $1) \
                   AND review_status = 'reviewed'",
            )
            .await
            .map_err(err)?;
        }
        Ok(row)
    }
}

/// Within the decision's transaction, move the conversations behind
/// `sample_id` along with it (`sql` binds the sample id as `$1`), then
/// commit.
async fn conversations_follow(mut tx: Tx, sample_id: i64, sql: &str) -> sqlx::Result<()> {
    on_tx!(&mut tx, |tx, Db| {
        sqlx::query::<Db>(sql)
            .bind(sample_id)
            .execute(&mut **tx)
            .await
            .map(|_| ())
    })?;
    on_tx!(tx, |tx, Db| tx.commit().await)
}
