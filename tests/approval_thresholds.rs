//! Per-intent auto-approval thresholds (issue 17 item 4) on both backends:
//! audits that find one intent's confident answers often wrong raise that
//! intent's threshold — `stats thresholds` shows it with its evidence, and
//! the next daily capture sends its 0.9 answers to review while another
//! intent's 0.9 answers are still auto-approved; the operator's floor holds;
//! a past day captured late is judged by the evidence of its own time.

mod support;

use chrono::{Duration, Utc};
use flywheel::domain::ReviewVerdict;
use flywheel::storage::conversations::NewConversation;
use flywheel::storage::samples::ReviewDecision;
use flywheel::storage::{Store, Timestamp};
use support::fixtures::{router_answer, spelled};
use support::{Exits, TestDb, block_on, json_stdout, rows};

/// `count` distinct conversations of `intent` at `confidence`, `minutes_ago`
/// and older, with texts tagged by `tag`.
fn conversations(
    tag: &str,
    intent: &str,
    confidence: f64,
    count: usize,
    minutes_ago: i64,
) -> Vec<NewConversation> {
    let now = Utc::now();
    (0..count)
        .map(|i| {
            router_answer(
                &format!("{tag} {intent} request {}", spelled(i)),
                intent,
                confidence,
                Timestamp(now - Duration::minutes(minutes_ago + i as i64)),
            )
        })
        .collect()
}

async fn insert(store: &Store, batch: &[NewConversation]) {
    store.insert_conversations(batch).await.unwrap();
}

fn daily_capture(db: &TestDb) {
    db.cmd()
        .env("FLYWHEEL_AUDIT__PERCENT", "100")
        .args(["daily-capture", "--since", "2d", "--json"])
        .succeeds();
}

#[test]
fn audits_raise_the_threshold_of_an_intent_they_find_wrong() {
    for db in TestDb::all() {
        let config = db.config();
        block_on(async move {
            let store = flywheel::storage::open(&config).await.unwrap();
            insert(&store, &conversations("old", "track_order", 0.9, 200, 600)).await;
            insert(&store, &conversations("old", "book_table", 0.9, 200, 600)).await;
            insert(&store, &conversations("old", "cancel_order", 0.9, 20, 600)).await;
            store.close().await;
        });
        // Everything at 0.9 is auto-approved by the floor (0.85), and every
        // conversation drawn for audit.
        daily_capture(&db);
        let config = db.config();
        block_on(async move {
            let store = flywheel::storage::open(&config).await.unwrap();
            let audited: Vec<(i64, String)> = rows(
                &store,
                "SELECT a.sample_id, s.intent FROM audits a \
                 JOIN training_samples s ON s.id = a.sample_id ORDER BY a.sample_id",
            )
            .await;
            assert_eq!(audited.len(), 420);
            // Humans agree with every answer but half of cancel_order's.
            let mut wrong = 0;
            for (sample, intent) in audited {
                let verdict = if intent == "cancel_order" && wrong < 10 {
                    wrong += 1;
                    ReviewVerdict::Choose("refund".into())
                } else {
                    ReviewVerdict::Accept
                };
                let decision = ReviewDecision {
                    verdict,
                    annotator: Some("auditor".into()),
                    decided_at: Timestamp::now(),
                };
                store.apply_review(sample, &decision).await.unwrap();
            }
            store.close().await;
        });

        let out = db.cmd().args(["stats", "thresholds", "--json"]).succeeds();
        let t = json_stdout(&out);
        assert_eq!(t["floor"], 0.85, "{t}");
        assert_eq!(t["pooled"]["basis"], "evidence", "{t}");
        assert_eq!(t["pooled"]["threshold"], 0.85, "410 of 420 right: {t}");
        let intent = |name: &str| {
            t["intents"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["intent"] == name)
                .unwrap_or_else(|| panic!("{name} in {t}"))["threshold"]
                .clone()
        };
        let cancel = intent("cancel_order");
        assert_eq!(cancel["audits"], 20, "{t}");
        assert_eq!(cancel["right"], 10, "{t}");
        assert_eq!(cancel["basis"], "evidence", "{t}");
        let raised = cancel["threshold"].as_f64().unwrap();
        assert!(raised > 0.9 && raised < 1.0, "{t}");
        assert_eq!(intent("track_order")["threshold"], 0.85, "{t}");
        let human = db.cmd().args(["stats", "thresholds"]).succeeds();
        let text = String::from_utf8(human.stdout).unwrap();
        assert!(
            text.contains("cancel_order") && text.contains("10/20"),
            "{text}"
        );

        // The next capture applies them: cancel_order at 0.9 waits for a
        // human, track_order at 0.9 is approved; above the raised threshold
        // cancel_order is approved again.
        let config = db.config();
        block_on(async move {
            let store = flywheel::storage::open(&config).await.unwrap();
            insert(&store, &conversations("new", "cancel_order", 0.9, 3, 10)).await;
            insert(&store, &conversations("new", "track_order", 0.9, 3, 10)).await;
            insert(&store, &conversations("top", "cancel_order", 0.995, 3, 10)).await;
            store.close().await;
        });
        daily_capture(&db);
        let config = db.config();
        block_on(async move {
            let store = flywheel::storage::open(&config).await.unwrap();
            let statuses: Vec<(String, String)> = rows(
                &store,
                "SELECT user_message, review_status FROM conversation_logs \
                 WHERE user_message NOT LIKE 'old %' ORDER BY user_message",
            )
            .await;
            for (text, status) in &statuses {
                let expected = if text.starts_with("new cancel_order") {
                    "needs-review"
                } else {
                    "auto-approved"
                };
                assert_eq!(status, expected, "{text}: {statuses:?}");
            }
            assert_eq!(statuses.len(), 9);
            store.close().await;
        });

        // A day long past, captured late, is judged by the evidence of its
        // own time: there was none, so the floor approves cancel_order at
        // 0.9 there (judged by today's audits it would wait for review).
        let noon = (Utc::now() - Duration::days(40))
            .date_naive()
            .and_hms_opt(12, 0, 0)
            .unwrap()
            .and_utc();
        let config = db.config();
        block_on(async move {
            let store = flywheel::storage::open(&config).await.unwrap();
            let minutes_ago = (Utc::now() - noon).num_minutes();
            insert(
                &store,
                &conversations("past", "cancel_order", 0.9, 3, minutes_ago),
            )
            .await;
            store.close().await;
        });
        db.cmd()
            .args([
                "daily-capture",
                "--date",
                &noon.date_naive().to_string(),
                "--json",
            ])
            .succeeds();
        let config = db.config();
        block_on(async move {
            let store = flywheel::storage::open(&config).await.unwrap();
            let statuses: Vec<(String,)> = rows(
                &store,
                "SELECT review_status FROM conversation_logs WHERE user_message LIKE 'past %'",
            )
            .await;
            assert_eq!(statuses.len(), 3);
            assert!(
                statuses.iter().all(|(s,)| s == "auto-approved"),
                "{statuses:?}"
            );
            store.close().await;
        });

        // Switched off, the floor alone decides.
        let off = db
            .cmd()
            .env("FLYWHEEL_AUTO_FILTER__THRESHOLD_EVIDENCE", "0")
            .args(["stats", "thresholds", "--json"])
            .succeeds();
        let off = json_stdout(&off);
        assert_eq!(off["pooled"]["basis"], "no-evidence", "{off}");
        assert_eq!(off["intents"].as_array().unwrap().len(), 0, "{off}");
    }
}
