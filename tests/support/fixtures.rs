//! Data tests start from: conversations written the way capture writes
//! them, bulk seeds of conversations and approved samples, a rule model in
//! production; and the stages run through the library.

use chrono::{DateTime, Utc};
use flywheel::config::{Config, ROUTER_PROVIDER};
use flywheel::jobs::{self, Launch, Trigger};
use flywheel::stages::daily_capture::{DailyCapture, Window};
use flywheel::stages::daily_report::DailyReport;
use flywheel::storage::conversations::NewConversation;
use flywheel::storage::models::NewModelVersion;
use flywheel::storage::samples::Sample;
use flywheel::storage::{Store, Timestamp};

use super::backends::{
    TestDb, column, exec, numbers, rows, scalar, timestamp_at, timestamp_literal,
};

/// The day most fixtures are captured on.
pub const DAY: &str = "2026-03-10";

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

/// `text` at `at` in English, answered `intent` at `confidence` by the
/// router's `router-v1.0.0` without falling back; tests change the rest
/// with `..router_answer(…)`.
pub fn router_answer(text: &str, intent: &str, confidence: f64, at: Timestamp) -> NewConversation {
    NewConversation {
        created_at: at,
        session_id: None,
        user_hash: None,
        user_message: text.into(),
        language: Some("en".into()),
        nlu_provider: Some(ROUTER_PROVIDER.into()),
        model_version: Some("router-v1.0.0".into()),
        nlu_intent: Some(intent.into()),
        nlu_confidence: Some(confidence),
        fallback: false,
        routing_decision: None,
        classify_ms: None,
        classify_error: None,
    }
}

impl Conv {
    /// As capture stores it, answered by `router-v1.0.0`.
    pub fn to_new(&self) -> NewConversation {
        NewConversation {
            language: self.language.map(Into::into),
            nlu_provider: self.provider.map(Into::into),
            nlu_intent: self.intent.map(Into::into),
            nlu_confidence: self.confidence,
            ..router_answer(self.text, "", 0.0, ts(self.at))
        }
    }
}

/// Insert conversations as `pending` in one transaction; returns their ids in order.
pub async fn insert(store: &Store, rows: &[Conv]) -> Vec<i64> {
    let rows: Vec<NewConversation> = rows.iter().map(Conv::to_new).collect();
    store
        .insert_conversations(&rows)
        .await
        .expect("insert conversations")
}

/// (id, review_status, sample_id) of every conversation, by id.
pub async fn conversations(store: &Store) -> Vec<(i64, String, Option<i64>)> {
    rows(
        store,
        "SELECT id, review_status, sample_id FROM conversation_logs ORDER BY id",
    )
    .await
}

/// Every sample, by id.
pub async fn samples(store: &Store) -> Vec<Sample> {
    let mut out = Vec::new();
    for id in column::<i64>(store, "SELECT id FROM training_samples ORDER BY id").await {
        out.push(store.sample(id).await.unwrap().unwrap());
    }
    out
}

/// Conversations matching `where_clause`.
pub async fn count(store: &Store, where_clause: &str) -> i64 {
    scalar(
        store,
        &format!("SELECT COUNT(*) FROM conversation_logs WHERE {where_clause}"),
    )
    .await
}

/// Every text column of every conversation, joined: to prove a value is stored nowhere.
pub async fn all_text(store: &Store) -> String {
    column::<String>(
        store,
        "SELECT COALESCE(session_id,'') || '|' || COALESCE(user_hash,'') || '|' || user_message || '|' || \
         COALESCE(routing_decision,'') || '|' || COALESCE(model_version,'') || '|' || COALESCE(nlu_intent,'') \
         FROM conversation_logs",
    )
    .await
    .join("\n")
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

/// Put a keyword model in production as `rules-v1`.
pub async fn install_rules_model(db: &TestDb, store: &Store) {
    let dir = db.data_path().join("models/rules-v1");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("keywords.json"),
        r#"{"version": "rules-v1", "intents": {"order_food": ["pizza", "burger", "khana"], "greet": ["hello", "namaste"], "track_order": ["where is my order", "track"]}}"#,
    )
    .unwrap();
    exec(
        store,
        "INSERT INTO model_versions (version, status, artifact_path, traffic_percentage) \
         VALUES ('rules-v1', 'production', 'models/rules-v1', 100)",
    )
    .await;
}

/// `n` pending conversations on [`DAY`], in one statement: 997 distinct
/// texts (so later batches fold into earlier samples), confidences from
/// 0.40 to 1.00 (auto-approved, both review priorities), every 101st
/// conversation punctuation only (ignored).
pub async fn seed_conversations(store: &Store, n: i64) {
    exec(
        store,
        &format!(
            "INSERT INTO conversation_logs \
               (user_message, nlu_intent, nlu_confidence, nlu_provider, language, model_version, created_at) \
             SELECT CASE WHEN i % 101 = 0 THEN '?!' ELSE 'fault utterance ' || (i % 997) END, \
               'intent_' || (i % 997 % 5), 0.40 + (i % 13) * 0.05, 'flywheel-router', 'en', 'router-v1.0.0', {} \
             FROM {}",
            timestamp_literal(store, &format!("{DAY}T12:00:00.000Z")),
            numbers(store, n)
        ),
    )
    .await;
}

/// `n` approved samples of five learnable intents, in one statement.
pub async fn seed_approved_samples(store: &Store, n: i64) {
    let text = "(CASE i % 5 WHEN 0 THEN 'order some pizza' WHEN 1 THEN 'track my parcel' \
         WHEN 2 THEN 'cancel the booking' WHEN 3 THEN 'refund my money' ELSE 'hello there friend' END) \
         || ' number ' || i";
    let intent = "CASE i % 5 WHEN 0 THEN 'order_food' WHEN 1 THEN 'track_order' WHEN 2 THEN 'cancel_order' \
         WHEN 3 THEN 'refund_request' ELSE 'greeting' END";
    exec(
        store,
        &format!(
            "INSERT INTO training_samples (text, normalized_text, intent, language, source, review_status) \
             SELECT {text}, {text}, {intent}, 'en', 'human', 'approved' FROM {}",
            numbers(store, n)
        ),
    )
    .await;
}

/// Every stored conversation's text by id, through the storage API.
pub async fn stored_texts(store: &Store) -> std::collections::HashMap<i64, String> {
    store
        .recent_conversations(i64::MAX)
        .await
        .expect("read the conversations")
        .into_iter()
        .map(|c| (c.id, c.user_message))
        .collect()
}

/// Promote `version` to production through the lifecycle (as "tests").
pub async fn promote_to_production(store: &Store, version: &str) {
    flywheel::lifecycle::promote(
        store,
        version,
        flywheel::lifecycle::Target::Production,
        "tests",
    )
    .await
    .unwrap_or_else(|e| panic!("promote {version}: {e}"));
}

/// A model version to register: `version` in `status` with `traffic`%,
/// nothing else known (fill in more with `..model(…)`).
pub fn model(version: &str, status: &str, traffic: i32) -> NewModelVersion {
    NewModelVersion {
        version: version.into(),
        status: status.parse().unwrap_or_else(|e| panic!("{status}: {e:?}")),
        traffic_percentage: traffic,
        ..Default::default()
    }
}

/// Register a model version, as "test@host".
pub async fn register_model(store: &Store, version: NewModelVersion) {
    store
        .insert_model_version(&version, "test@host")
        .await
        .unwrap_or_else(|e| panic!("register {}: {e}", version.version));
}

/// Draw sample `sample_id` for audit as if its conversation (id 1000 +
/// sample id), auto-approved and served as `order_food`, happened
/// `minutes_ago`.
pub async fn audit(store: &Store, sample_id: i64, minutes_ago: i64) {
    audit_as(store, sample_id, minutes_ago, "auto-approved").await;
}

/// [`audit`] of a conversation daily capture left in `conversation_status`
/// (`auto-approved` or `needs-review`).
pub async fn audit_as(store: &Store, sample_id: i64, minutes_ago: i64, conversation_status: &str) {
    let at = timestamp_at(store, Utc::now() - chrono::Duration::minutes(minutes_ago));
    exec(
        store,
        &format!(
            "INSERT INTO audits (conversation_id, sample_id, model_version, served_intent, conversation_status, \
               conversation_at, drawn_at) \
             VALUES ({}, {sample_id}, 'router-v1.0.0', 'order_food', '{conversation_status}', {at}, {at})",
            1000 + sample_id
        ),
    )
    .await;
}

/// `router-v1.0.0` in production (test accuracy 0.9), which answered one
/// conversation per entry of `fallbacks` (falling back where true), all
/// `ago`, and nothing since.
pub async fn served_then_silent(store: &Store, fallbacks: &[bool], ago: chrono::Duration) {
    register_model(
        store,
        NewModelVersion {
            test_accuracy: Some(0.9),
            ..model("router-v1.0.0", "production", 100)
        },
    )
    .await;
    let at = timestamp_at(store, Utc::now() - ago);
    for (i, fallback) in fallbacks.iter().enumerate() {
        let fallback = if *fallback { "TRUE" } else { "FALSE" };
        exec(
            store,
            &format!(
                "INSERT INTO conversation_logs (user_message, nlu_intent, nlu_confidence, nlu_provider, model_version, fallback, created_at) \
                 VALUES ('hi {i}', 'greeting', 0.9, 'flywheel-router', 'router-v1.0.0', {fallback}, {at})"
            ),
        )
        .await;
    }
}

/// A cron run of `stage` that started `ago` and took `took`, ended `status`.
pub async fn finished_run(
    store: &Store,
    stage: flywheel::domain::Stage,
    status: flywheel::domain::JobStatus,
    ago: chrono::Duration,
    took: chrono::Duration,
) {
    let run = store
        .insert_job_run(stage, Trigger::Cron, None, None)
        .await
        .unwrap();
    let error = (status != flywheel::domain::JobStatus::Succeeded).then_some("it failed");
    store
        .finish_job_run(run.id, status, Some("{}"), error)
        .await
        .unwrap();
    let now = Utc::now();
    exec(
        store,
        &format!(
            "UPDATE job_runs SET started_at = {}, finished_at = {} WHERE id = {}",
            timestamp_at(store, now - ago),
            timestamp_at(store, now - ago + took),
            run.id
        ),
    )
    .await;
}

/// Sample `sample_id` as task 500 + its id of Label Studio project 1,
/// awaiting its annotation.
pub async fn pushed_task(store: &Store, sample_id: i64) {
    exec(
        store,
        &format!(
            "INSERT INTO label_studio_tasks (sample_id, project_id, task_id, sync_state) \
             VALUES ({sample_id}, 1, {}, 'pushed')",
            500 + sample_id
        ),
    )
    .await;
}

/// `i` spelled out digit by digit ("one two"): distinct texts without digit
/// runs, which redaction would turn into the same text.
pub fn spelled(i: usize) -> String {
    const WORDS: [&str; 10] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    ];
    i.to_string()
        .chars()
        .map(|c| WORDS[c.to_digit(10).unwrap() as usize])
        .collect::<Vec<_>>()
        .join(" ")
}

/// An approved sample of `text` labelled `intent` by `source` (an import,
/// or an auto-approval), as `samples import` and daily capture write it.
pub fn approved_sample(
    text: &str,
    intent: &str,
    source: flywheel::domain::Provenance,
) -> flywheel::storage::samples::NewSample {
    flywheel::storage::samples::NewSample {
        text: text.into(),
        normalized_text: flywheel::text::normalize_for_dedup(text),
        language: Some("en".into()),
        intent: intent.into(),
        source,
        review_status: flywheel::domain::ReviewStatus::Approved,
        priority: 5,
        predicted_intent: None,
        predicted_by_version: None,
        confidence: None,
        occurrences: 1,
        conversation_id: None,
    }
}
