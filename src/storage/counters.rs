//! Running counts (migration 0014), read instead of counting rows: what the
//! console's Capture and Review panes show on every refresh. Triggers keep
//! them in the write's own transaction — whoever writes, prune's deletes
//! included — so each is exact as of the reader's snapshot:
//!
//! - `capture_counts`: conversations per UTC minute of `created_at` and
//!   value of provider, language and intent;
//! - `sample_counts`: samples per review status and priority.
//!
//! On PostgreSQL each writing backend adds to rows of its own shard (its
//! pid) so concurrent captures never wait on one counter row; readers sum
//! the shards, and [`Store::fold_counter_shards`] moves the rows of
//! backends that are gone into shard 0. SQLite has one writer: shard 0.

use chrono::{DateTime, DurationRound, Utc};

use super::backend::Dialect;
use super::capture_stats::{BucketCount, MixDimension};
use super::{Store, Timestamp, db_error, on_pool};
use crate::domain::ReviewStatus;
use crate::error::{Error, Result};

/// Captures of one value of a dimension over a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueCount {
    pub dimension: MixDimension,
    /// `None` when the column is NULL.
    pub value: Option<String>,
    pub count: i64,
}

/// Samples of one review status and priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct StatusCount {
    pub review_status: ReviewStatus,
    pub priority: i32,
    pub samples: i64,
}

/// The counters' key of the minute `at` falls in: `2026-11-25T02:13`.
fn minute_key(at: Timestamp) -> String {
    let minute =
        at.0.duration_trunc(chrono::Duration::minutes(1))
            .unwrap_or(at.0);
    minute.format("%Y-%m-%dT%H:%M").to_string()
}

fn parse_minute(key: &str) -> Result<Timestamp> {
    chrono::NaiveDateTime::parse_from_str(key, "%Y-%m-%dT%H:%M")
        .map(|naive| Timestamp(DateTime::<Utc>::from_naive_utc_and_offset(naive, Utc)))
        .map_err(|err| {
            Error::failure(format!(
                "capture_counts.minute holds `{key}`, which is not a UTC minute: {err}"
            ))
        })
}

fn dimension_of(name: &str) -> Result<MixDimension> {
    match name {
        "provider" => Ok(MixDimension::Provider),
        "language" => Ok(MixDimension::Language),
        "intent" => Ok(MixDimension::Intent),
        other => Err(Error::failure(format!(
            "capture_counts.dimension holds `{other}`; expected provider, language or intent"
        ))),
    }
}

impl Store {
    /// Captures per minute from the minute `since` falls in, oldest first;
    /// minutes without a capture are absent.
    pub async fn counted_captures_per_minute(&self, since: Timestamp) -> Result<Vec<BucketCount>> {
        let rows: Vec<(String, i64)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT minute, CAST(SUM(captures) AS BIGINT) FROM capture_counts \
                 WHERE minute >= $1 AND dimension = 'provider' \
                 GROUP BY minute HAVING SUM(captures) <> 0 ORDER BY minute",
            )
            .bind(minute_key(since))
            .fetch_all(pool)
            .await
        })
        .map_err(|err| db_error("reading the capture counters", err))?;
        rows.into_iter()
            .map(|(minute, count)| {
                Ok(BucketCount {
                    start: parse_minute(&minute)?,
                    count,
                })
            })
            .collect()
    }

    /// Captures per value of provider, language and intent from the minute
    /// `since` falls in (so up to a minute more than `since` itself).
    pub async fn counted_capture_mix(&self, since: Timestamp) -> Result<Vec<ValueCount>> {
        let rows: Vec<(String, String, i64)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT dimension, value, CAST(SUM(captures) AS BIGINT) FROM capture_counts \
                 WHERE minute >= $1 GROUP BY dimension, value HAVING SUM(captures) <> 0",
            )
            .bind(minute_key(since))
            .fetch_all(pool)
            .await
        })
        .map_err(|err| db_error("reading the capture mix counters", err))?;
        rows.into_iter()
            .map(|(dimension, value, count)| {
                Ok(ValueCount {
                    dimension: dimension_of(&dimension)?,
                    value: (!value.is_empty()).then_some(value),
                    count,
                })
            })
            .collect()
    }

    /// Samples per review status and priority (those with any).
    pub async fn counted_samples(&self) -> Result<Vec<StatusCount>> {
        on_pool!(self, |pool| {
            sqlx::query_as::<_, StatusCount>(
                "SELECT review_status, priority, CAST(SUM(samples) AS BIGINT) AS samples \
                 FROM sample_counts GROUP BY review_status, priority \
                 HAVING SUM(samples) <> 0 ORDER BY priority, review_status",
            )
            .fetch_all(pool)
            .await
        })
        .map_err(|err| db_error("reading the sample counters", err))
    }

    /// Fold the counter rows of writers that are gone into shard 0 and drop
    /// the rows that reached zero, so the counters stay as small as what
    /// they count; returns the rows folded. Totals never change, so a
    /// failed fold loses nothing: the next one folds what this one left
    /// (see [`Store::fold_counter_shards_or_warn`]).
    pub async fn fold_counter_shards(&self) -> Result<u64> {
        on_pool!(self, |pool| async {
            let mut conn = pool.acquire().await?;
            conn.fold_counter_shards().await
        }
        .await)
        .map_err(|err| db_error("folding the running counts", err))
    }

    /// [`Store::fold_counter_shards`] as housekeeping at the end of a
    /// stage: its failure (a full disk, a statement timeout) is a warning,
    /// never the stage's failure — what the stage wrote is committed and
    /// every count is still exact.
    pub async fn fold_counter_shards_or_warn(&self) {
        if let Err(err) = self.fold_counter_shards().await {
            tracing::warn!("{err}; the next prune or daily capture folds them");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn minute_keys_truncate_and_read_back() {
        let at = Timestamp(Utc.with_ymd_and_hms(2026, 11, 25, 2, 13, 59).unwrap());
        assert_eq!(minute_key(at), "2026-11-25T02:13");
        assert_eq!(
            parse_minute("2026-11-25T02:13").unwrap().0,
            Utc.with_ymd_and_hms(2026, 11, 25, 2, 13, 0).unwrap()
        );
        let err = parse_minute("yesterday").unwrap_err();
        assert!(err.message().contains("capture_counts.minute"), "{err}");
        assert!(dimension_of("fallback").is_err());
    }
}
