//! Fixtures for the daily-capture and samples tests: conversations written
//! the way capture writes them, and snapshots of what the stages left.
#![allow(dead_code)]

use chrono::{DateTime, Utc};
use flywheel::config::{Config, ROUTER_PROVIDER};
use flywheel::jobs::{self, Launch, Trigger};
use flywheel::stages::daily_capture::{DailyCapture, Window};
use flywheel::stages::daily_report::DailyReport;
use flywheel::storage::samples::Sample;
use flywheel::storage::{Backend, Store, Timestamp};

/// One captured utterance.
#[derive(Debug, Clone)]
pub struct Conv {
    pub text: &'static str,
    pub intent: Option<&'static str>,
    pub confidence: Option<f64>,
    pub provider: Option<&'static str>,
    pub language: Option<&'static str>,
    /// RFC 3339.
    pub at: &'static str,
}

/// A router conversation: trusted provider, English.
pub fn conv(text: &'static str, intent: &'static str, confidence: f64, at: &'static str) -> Conv {
    Conv {
        text,
        intent: Some(intent),
        confidence: Some(confidence),
        provider: Some(ROUTER_PROVIDER),
        language: Some("en"),
        at,
    }
}

pub fn ts(rfc3339: &str) -> Timestamp {
    Timestamp::from(
        DateTime::parse_from_rfc3339(rfc3339)
            .expect("RFC 3339 in test data")
            .with_timezone(&Utc),
    )
}

const INSERT: &str = "INSERT INTO conversation_logs \
    (user_message, nlu_intent, nlu_confidence, nlu_provider, language, model_version, created_at) \
    VALUES ($1, $2, $3, $4, $5, 'router-v1.0.0', $6) RETURNING id";

/// Insert conversations as `pending` in one transaction; returns their ids in order.
pub async fn insert(store: &Store, rows: &[Conv]) -> Vec<i64> {
    macro_rules! insert_all {
        ($pool:expr) => {{
            let mut tx = $pool.begin().await.unwrap();
            let mut ids = Vec::new();
            for c in rows {
                let id: i64 = sqlx::query_scalar(INSERT)
                    .bind(c.text)
                    .bind(c.intent)
                    .bind(c.confidence)
                    .bind(c.provider)
                    .bind(c.language)
                    .bind(ts(c.at))
                    .fetch_one(&mut *tx)
                    .await
                    .unwrap();
                ids.push(id);
            }
            tx.commit().await.unwrap();
            ids
        }};
    }
    match store.backend() {
        Backend::Sqlite(pool) => insert_all!(pool),
        Backend::Postgres(pool) => insert_all!(pool),
    }
}

/// (id, review_status, sample_id) of every conversation, by id.
pub async fn conversations(store: &Store) -> Vec<(i64, String, Option<i64>)> {
    const SQL: &str = "SELECT id, review_status, sample_id FROM conversation_logs ORDER BY id";
    match store.backend() {
        Backend::Sqlite(pool) => sqlx::query_as(SQL).fetch_all(pool).await.unwrap(),
        Backend::Postgres(pool) => sqlx::query_as(SQL).fetch_all(pool).await.unwrap(),
    }
}

/// Every sample, by id.
pub async fn samples(store: &Store) -> Vec<Sample> {
    const SQL: &str = "SELECT id FROM training_samples ORDER BY id";
    let ids: Vec<i64> = match store.backend() {
        Backend::Sqlite(pool) => sqlx::query_scalar(SQL).fetch_all(pool).await.unwrap(),
        Backend::Postgres(pool) => sqlx::query_scalar(SQL).fetch_all(pool).await.unwrap(),
    };
    let mut out = Vec::new();
    for id in ids {
        out.push(store.sample(id).await.unwrap().unwrap());
    }
    out
}

pub async fn job_run_count(store: &Store, stage: &str) -> i64 {
    const SQL: &str = "SELECT COUNT(*) FROM job_runs WHERE stage = $1";
    match store.backend() {
        Backend::Sqlite(pool) => sqlx::query_scalar(SQL)
            .bind(stage)
            .fetch_one(pool)
            .await
            .unwrap(),
        Backend::Postgres(pool) => sqlx::query_scalar(SQL)
            .bind(stage)
            .fetch_one(pool)
            .await
            .unwrap(),
    }
}

/// Daily capture of one UTC day through the library (a recorded run, as
/// every run is).
pub async fn capture_day(store: &Store, config: &Config, date: &str, batch: usize) -> DailyReport {
    let stage = DailyCapture {
        window: Window::Date(date.parse().unwrap()),
        dry_run: false,
        batch_size: batch,
    };
    jobs::run(stage, &Launch::new(store, config, Trigger::Cli))
        .await
        .expect("daily capture")
        .report
}
