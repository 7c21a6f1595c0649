//! The review order (issue 17 item 1), on both backends: what waits — here
//! or already in Label Studio — ranked by how much a label is expected to
//! help (doubt, how often the text was said, how little gold its intent
//! has), near-duplicates behind the first of their kind, audits in their
//! share; `stats queue --json` lists it in exactly that order with rank,
//! reason and where, and the console's Review pane reads the same order.

mod support;

use chrono::{Duration, Utc};
use flywheel::storage::Store;
use flywheel::tui::data::{Pane, PaneData};
use flywheel::tui::refresh::Loader;
use serde_json::Value;
use support::fixtures::{audit, pushed_task};
use support::{Exits, TestDb, backends::timestamp_at, exec, json_stdout, scalar};

/// Audits' share of the order, pinned: the expected order follows from it.
const SHARE: u32 = 20;

/// A sample; `reviewed_days_ago` makes it a human's label of then.
#[allow(clippy::too_many_arguments)]
async fn sample(
    store: &Store,
    text: &str,
    intent: &str,
    status: &str,
    confidence: f64,
    occurrences: i32,
    reviewed_days_ago: Option<i64>,
) -> i64 {
    let (source, reviewed) = match reviewed_days_ago {
        Some(days) => (
            "human",
            timestamp_at(store, Utc::now() - Duration::days(days)),
        ),
        None => ("auto", "NULL".to_string()),
    };
    let priority = if confidence < 0.7 { 2 } else { 5 };
    exec(store, &format!(
        "INSERT INTO training_samples (text, normalized_text, intent, predicted_intent, language, source, \
           confidence, review_status, priority, occurrences, reviewed_at) \
         VALUES ('{text}', '{text}', '{intent}', '{intent}', 'en', '{source}', {confidence}, '{status}', \
           {priority}, {occurrences}, {reviewed})"
    ))
    .await;
    scalar(
        store,
        &format!("SELECT id FROM training_samples WHERE text = '{text}'"),
    )
    .await
}

#[test]
fn stats_queue_and_the_console_list_what_waits_in_review_order_with_why() {
    for db in TestDb::all() {
        let expected: Vec<(i64, String, &str)> = db.with_store(|store| async move {
            // The gold set: refund and order_status, labelled a month ago.
            for i in 0..6 {
                sample(
                    &store,
                    &format!("gold refund {i}"),
                    "refund",
                    "approved",
                    0.9,
                    1,
                    Some(30),
                )
                .await;
                sample(
                    &store,
                    &format!("gold status {i}"),
                    "order_status",
                    "approved",
                    0.9,
                    1,
                    Some(30),
                )
                .await;
            }
            // A human labelled this today.
            let f = sample(
                &store,
                "cancel my plan 7",
                "refund",
                "approved",
                0.5,
                1,
                Some(0),
            )
            .await;
            let a = sample(&store, "refund it", "refund", "needs-review", 0.40, 1, None).await;
            let b = sample(
                &store,
                "where is it",
                "order_status",
                "in-review",
                0.80,
                16,
                None,
            )
            .await;
            pushed_task(&store, b).await;
            let c = sample(
                &store,
                "stop it",
                "cancel_order",
                "needs-review",
                0.80,
                1,
                None,
            )
            .await;
            let d = sample(
                &store,
                "where is order 1234",
                "refund",
                "needs-review",
                0.30,
                1,
                None,
            )
            .await;
            let e = sample(
                &store,
                "order 98 where is",
                "refund",
                "in-review",
                0.30,
                1,
                None,
            )
            .await;
            pushed_task(&store, e).await;
            let g = sample(
                &store,
                "cancel my plan 12",
                "refund",
                "needs-review",
                0.20,
                1,
                None,
            )
            .await;
            // Audits: an approved one (newest) and an uncertain one.
            let h = sample(&store, "hi there", "greeting", "approved", 0.95, 1, None).await;
            audit(&store, h, 10).await;
            let i = sample(&store, "hmm", "refund", "needs-review", 0.50, 1, None).await;
            audit(&store, i, 60).await;
            // Not waiting: a rejection.
            sample(&store, "asdf", "refund", "rejected", 0.1, 1, Some(1)).await;
            // The queue by value: b 0.2×5, c 0.2×4 (no gold for its intent),
            // d 0.7, a 0.6, g 0.8/4 and e 0.7/4 (near-duplicates); audits
            // newest first in one place of five.
            vec![
                (h, "audit".to_string(), "here"),
                (b, "seen 16 times".to_string(), "label-studio"),
                (
                    c,
                    "few gold for intent cancel_order (0)".to_string(),
                    "here",
                ),
                (d, "uncertain: confidence 0.30".to_string(), "here"),
                (a, "uncertain: confidence 0.40".to_string(), "here"),
                (i, "audit".to_string(), "here"),
                (g, format!("like #{f}, labelled this week"), "here"),
                (e, format!("like #{d}, queued ahead"), "label-studio"),
            ]
        });

        let out = db
            .cmd()
            .args(["stats", "queue", "--limit", "100", "--json"])
            .env("FLYWHEEL_AUDIT__SHARE", SHARE.to_string())
            .succeeds();
        let queue = json_stdout(&out);
        let items = queue["items"].as_array().unwrap();
        let got: Vec<(i64, String, &str)> = items
            .iter()
            .map(|i| {
                (
                    i["sample_id"].as_i64().unwrap(),
                    i["reason"].as_str().unwrap().to_string(),
                    i["where"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(got, expected, "{queue}");
        let ranks: Vec<i64> = items.iter().map(|i| i["rank"].as_i64().unwrap()).collect();
        assert_eq!(ranks, (1..=8).collect::<Vec<_>>());
        assert_eq!(
            queue["waiting"]["total"], 8,
            "the list is what the count counts"
        );
        // The fields it had: the sample's own, priority included.
        assert_eq!(items[1]["priority"], 5);
        assert_eq!(items[1]["text"], "where is it");
        assert!(items[2]["score"].as_f64().unwrap() > items[3]["score"].as_f64().unwrap());
        assert_eq!(items[0]["score"], Value::Null, "audits go by time");

        // The human text says the same, rank and why.
        let text = db
            .cmd()
            .args(["stats", "queue"])
            .env("FLYWHEEL_AUDIT__SHARE", SHARE.to_string())
            .succeeds();
        let text = String::from_utf8_lossy(&text.stdout);
        let line = text.lines().find(|l| l.contains("stop it")).unwrap();
        assert!(
            line.trim_start().starts_with("3 ")
                && line.contains("few gold for intent cancel_order"),
            "{text}"
        );

        // The console's Review pane: the same order.
        let mut config = db.config();
        config.audit.share = SHARE;
        let console: Vec<(i64, String)> = db.with_store(move |store| async move {
            match Loader::new(store, config)
                .load(Pane::Review, Utc::now())
                .await
                .unwrap()
            {
                PaneData::Review(data) => data
                    .queue
                    .iter()
                    .map(|q| (q.sample.id, q.ranked.reason.to_string()))
                    .collect(),
                other => panic!("review data, got {other:?}"),
            }
        });
        let expected: Vec<(i64, String)> =
            expected.into_iter().map(|(id, why, _)| (id, why)).collect();
        assert_eq!(console, expected, "the console");
    }
}
