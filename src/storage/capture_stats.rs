//! Capture-health queries for `stats capture-gaps`: captures per minute /
//! hour, time of the last capture and the provider / language / intent /
//! fallback mix per hour; and the `daily_training_stats` view behind
//! `stats daily`. (The console's Capture pane reads the same per-minute
//! counts and mix from the running counts, [`super::counters`].)
//!
//! Every query is bounded by a `created_at >= $1` range on the
//! `conversation_logs_created_at` index. Counting by bucket reads only that
//! index (SQLite groups by a prefix of the fixed-width ISO text, PostgreSQL
//! by `date_trunc`); the mix reads the rows of its window only.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::Serialize;

use super::snapshot::DayCounts;
use super::{Backend, Store, Timestamp, db_error, on_pool};
use crate::error::{Error, Result};

/// Width of a counting bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Minute,
    Hour,
}

/// Captures in one bucket. Buckets with no capture are absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BucketCount {
    pub start: Timestamp,
    pub count: i64,
}

/// Which column a mix breaks captures down by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MixDimension {
    Provider,
    Language,
    Intent,
    /// `fallback` / `classified`.
    Fallback,
}

impl MixDimension {
    pub const ALL: [MixDimension; 4] = [
        MixDimension::Provider,
        MixDimension::Language,
        MixDimension::Intent,
        MixDimension::Fallback,
    ];

    /// SQL for the value; a fixed string per variant, never user input.
    fn expression(self) -> &'static str {
        match self {
            MixDimension::Provider => "nlu_provider",
            MixDimension::Language => "language",
            MixDimension::Intent => "nlu_intent",
            MixDimension::Fallback => "CASE WHEN fallback THEN 'fallback' ELSE 'classified' END",
        }
    }
}

/// Captures of one value of a dimension in one hour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MixCount {
    pub hour: Timestamp,
    /// `None` when the column is NULL (e.g. a language nobody gave).
    pub value: Option<String>,
    pub count: i64,
}

fn bucket_sql(backend: &Backend, bucket: Bucket) -> &'static str {
    match (backend, bucket) {
        (Backend::Sqlite(_), Bucket::Minute) => "substr(created_at, 1, 16)",
        (Backend::Sqlite(_), Bucket::Hour) => "substr(created_at, 1, 13) || ':00'",
        (Backend::Postgres(_), Bucket::Minute) => {
            "to_char(date_trunc('minute', created_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD\"T\"HH24:MI')"
        }
        (Backend::Postgres(_), Bucket::Hour) => {
            "to_char(date_trunc('hour', created_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD\"T\"HH24:MI')"
        }
    }
}

/// `2026-11-25T02:13` (or SQLite's `2026-11-25 02:13` from hand-written rows).
fn parse_bucket(text: &str) -> Result<Timestamp> {
    let normalised = text.replacen(' ', "T", 1);
    NaiveDateTime::parse_from_str(&normalised, "%Y-%m-%dT%H:%M")
        .map(|naive| Timestamp(DateTime::<Utc>::from_naive_utc_and_offset(naive, Utc)))
        .map_err(|err| {
            Error::failure(format!(
                "conversation_logs.created_at holds `{text}`, which is not a UTC timestamp: {err}"
            ))
        })
}

/// A row of the `daily_training_stats` view.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct DailyStats {
    pub date: NaiveDate,
    pub captured: i64,
    pub auto_approved: i64,
    pub needs_review: i64,
    pub reviewed: i64,
    pub approved: i64,
    pub rejected: i64,
    /// [`crate::health::auto_approval_rate`] over the conversations judged
    /// (not the view's column, which also counts those not judged yet).
    #[sqlx(skip)]
    pub auto_approval_rate: Option<f64>,
}

impl Store {
    /// Captures per bucket since `since`, oldest first.
    pub async fn capture_counts(
        &self,
        since: Timestamp,
        bucket: Bucket,
    ) -> Result<Vec<BucketCount>> {
        let sql = format!(
            "SELECT {b} AS bucket, COUNT(*) FROM conversation_logs \
             WHERE created_at >= $1 GROUP BY 1 ORDER BY 1",
            b = bucket_sql(self.backend(), bucket)
        );
        let rows: Vec<(String, i64)> = on_pool!(self, |pool| {
            sqlx::query_as(&sql).bind(since).fetch_all(pool).await
        })
        .map_err(|err| db_error("counting captures", err))?;
        rows.into_iter()
            .map(|(start, count)| {
                Ok(BucketCount {
                    start: parse_bucket(&start)?,
                    count,
                })
            })
            .collect()
    }

    /// When the oldest conversation still kept was logged (an index
    /// look-up): when this installation began capturing, as far as it knows.
    pub async fn first_capture_at(&self) -> Result<Option<Timestamp>> {
        on_pool!(self, |pool| {
            sqlx::query_scalar::<_, Timestamp>(
                "SELECT created_at FROM conversation_logs ORDER BY created_at ASC LIMIT 1",
            )
            .fetch_optional(pool)
            .await
        })
        .map_err(|err| db_error("reading the first capture", err))
    }

    /// Conversations logged in `[from, until)` (a range of the index).
    pub async fn captured_between(&self, from: Timestamp, until: Timestamp) -> Result<i64> {
        on_pool!(self, |pool| {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM conversation_logs WHERE created_at >= $1 AND created_at < $2",
            )
            .bind(from)
            .bind(until)
            .fetch_one(pool)
            .await
        })
        .map_err(|err| db_error("counting captures in a window", err))
    }

    /// When the newest conversation was logged (an index look-up).
    pub async fn last_capture_at(&self) -> Result<Option<Timestamp>> {
        on_pool!(self, |pool| {
            sqlx::query_scalar::<_, Timestamp>(
                "SELECT created_at FROM conversation_logs ORDER BY created_at DESC LIMIT 1",
            )
            .fetch_optional(pool)
            .await
        })
        .map_err(|err| db_error("reading the last capture", err))
    }

    /// Captures per hour and value of `dimension` since `since`.
    pub async fn capture_mix(
        &self,
        since: Timestamp,
        dimension: MixDimension,
    ) -> Result<Vec<MixCount>> {
        let sql = format!(
            "SELECT {b} AS hour, {v} AS value, COUNT(*) FROM conversation_logs \
             WHERE created_at >= $1 GROUP BY 1, 2 ORDER BY 1, 3 DESC",
            b = bucket_sql(self.backend(), Bucket::Hour),
            v = dimension.expression()
        );
        let rows: Vec<(String, Option<String>, i64)> = on_pool!(self, |pool| {
            sqlx::query_as(&sql).bind(since).fetch_all(pool).await
        })
        .map_err(|err| db_error("reading the capture mix", err))?;
        rows.into_iter()
            .map(|(hour, value, count)| {
                Ok(MixCount {
                    hour: parse_bucket(&hour)?,
                    value,
                    count,
                })
            })
            .collect()
    }

    /// `daily_training_stats` from `since` (a UTC date) on, newest first.
    pub async fn daily_stats(&self, since: NaiveDate) -> Result<Vec<DailyStats>> {
        on_pool!(self, |pool| sqlx::query_as::<_, DailyStats>(
            "SELECT date, captured, auto_approved, needs_review, reviewed, approved, rejected \
             FROM daily_training_stats WHERE date >= $1 ORDER BY date DESC"
        )
        .bind(since)
        .fetch_all(pool)
        .await)
        .map(|days| {
            days.into_iter()
                .map(|day| DailyStats {
                    auto_approval_rate: crate::health::auto_approval_rate(
                        day.auto_approved,
                        day.auto_approved + day.needs_review + day.reviewed,
                    ),
                    ..day
                })
                .collect()
        })
        .map_err(|err| db_error("reading daily stats", err))
    }

    /// Conversations logged since `since` by where daily capture put them.
    pub async fn day_counts(&self, since: Timestamp) -> Result<DayCounts> {
        let err = |e| db_error("counting conversations", e);
        let day: DayCounts = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT COUNT(*) AS captured, \
                    COUNT(CASE WHEN review_status = 'pending' THEN 1 END) AS pending, \
                    COUNT(CASE WHEN review_status = 'auto-approved' THEN 1 END) AS auto_approved, \
                    COUNT(CASE WHEN review_status = 'needs-review' THEN 1 END) AS needs_review, \
                    COUNT(CASE WHEN review_status = 'reviewed' THEN 1 END) AS reviewed \
                 FROM conversation_logs WHERE created_at >= $1",
            )
            .bind(since)
            .fetch_one(pool)
            .await
        })
        .map_err(err)?;
        Ok(day)
    }
}
