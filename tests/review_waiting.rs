//! What waits for review has one definition (issue 17 item 6), and
//! `status`, `stats queue`, the console and `/metrics` all read it: the
//! review queue here (`needs-review`, the seed's `training_queue`), the
//! tasks waiting in Label Studio (`in-review`), audits of samples the
//! model approved still awaiting their label, and suspect labels, here or
//! pushed — split by where it waits and by priority. Both backends.

mod support;

use chrono::Utc;
use flywheel::storage::Store;
use flywheel::storage::suspects::NewSuspect;
use flywheel::tui::data::{Pane, PaneData};
use flywheel::tui::refresh::Loader;
use serde_json::json;
use support::fixtures::{audit, pushed_task};
use support::serve::{Server, client, metrics};
use support::{TestDb, exec, json_stdout, scalar};

/// One sample; an `audited` one gets an audit row, a `pushed` one a Label
/// Studio task awaiting its annotation. Returns its id.
async fn sample(
    store: &Store,
    text: &str,
    status: &str,
    source: &str,
    priority: i32,
    audited: bool,
    pushed: bool,
) -> i64 {
    exec(store, &format!(
        "INSERT INTO training_samples (text, normalized_text, intent, predicted_intent, source, confidence, \
           review_status, priority) \
         VALUES ('{text}', '{text}', 'order_food', 'order_food', '{source}', 0.6, '{status}', {priority})"
    ))
    .await;
    let id = scalar(
        store,
        &format!("SELECT id FROM training_samples WHERE text = '{text}'"),
    )
    .await;
    if audited {
        audit(store, id, 0).await;
    }
    if pushed {
        pushed_task(store, id).await;
    }
    id
}

/// Flag samples `ids` (labelled `order_food`) as suspect labels.
async fn suspect(store: &Store, ids: &[i64]) {
    let flags: Vec<NewSuspect> = ids
        .iter()
        .map(|id| NewSuspect {
            sample_id: *id,
            flagged_intent: "order_food".into(),
            suggested_intent: "track_order".into(),
            score: 0.8,
        })
        .collect();
    store
        .replace_suspects("router-v1.1.0", &flags)
        .await
        .unwrap();
}

#[test]
fn status_stats_queue_the_console_and_metrics_count_what_waits_alike() {
    for db in TestDb::all() {
        db.with_store(|store| async move {
            // Waiting here: two queued, one audited too (counted once), one
            // approved audit not pushed yet.
            sample(&store, "a", "needs-review", "auto", 2, false, false).await;
            sample(&store, "b", "needs-review", "auto", 5, false, false).await;
            sample(&store, "k", "needs-review", "auto", 2, true, false).await;
            sample(&store, "f", "approved", "auto", 5, true, false).await;
            // Waiting in Label Studio: three pushed, one approved audit pushed.
            sample(&store, "c", "in-review", "auto", 2, false, true).await;
            sample(&store, "d", "in-review", "auto", 5, false, true).await;
            sample(&store, "e", "in-review", "auto", 5, false, true).await;
            sample(&store, "g", "approved", "auto", 5, true, true).await;
            // Not waiting: a human's audited label, an unaudited approval,
            // a rejection.
            sample(&store, "h", "approved", "human", 5, true, false).await;
            sample(&store, "i", "approved", "auto", 5, false, false).await;
            sample(&store, "j", "rejected", "human", 2, false, false).await;
            // Suspect labels: one here, one pushed, one drawn for audit too
            // (counted once, as an audit); a human's label is no suspect.
            let suspects = [
                sample(&store, "s", "approved", "import", 5, false, false).await,
                sample(&store, "t", "approved", "auto", 5, false, true).await,
                sample(&store, "u", "approved", "auto", 5, true, false).await,
                sample(&store, "v", "approved", "human", 5, false, false).await,
            ];
            suspect(&store, &suspects).await;
        });
        let expected = json!({
            "total": 11, "here": 6, "label_studio": 5, "urgent": 3, "urgent_priority": 2,
            "needs_review": 3, "in_review": 3, "approved_audits": 3, "suspects": 2,
            "by_priority": [
                {"priority": 2, "count": 3, "here": 2, "label_studio": 1},
                {"priority": 5, "count": 8, "here": 4, "label_studio": 4},
            ],
        });

        // The seed's view keeps its meaning: needs-review samples.
        let training_queue = db.with_store(|store| async move {
            scalar(
                &store,
                "SELECT COUNT(*) FROM training_queue WHERE review_status='needs-review'",
            )
            .await
        });
        assert_eq!(training_queue, 3);

        let status = json_stdout(&db.cmd().args(["status", "--json"]).output().unwrap());
        assert_eq!(status["queue"], expected, "status");
        let text = db.cmd().arg("status").output().unwrap();
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(
            text.contains(
                "Review queue     11 samples waiting for review (3 urgent): 6 here, 5 in Label Studio; \
                 2 suspect labels among them"
            ),
            "{text}"
        );

        let queue = json_stdout(
            &db.cmd()
                .args(["stats", "queue", "--json"])
                .output()
                .unwrap(),
        );
        assert_eq!(queue["waiting"], expected, "stats queue");
        assert_eq!(queue["by_priority"], expected["by_priority"]);
        // What it ranks is what it counts: each waiting sample once.
        let items = queue["items"].as_array().unwrap();
        let mut ranked: Vec<&str> = items.iter().map(|i| i["text"].as_str().unwrap()).collect();
        ranked.sort_unstable();
        assert_eq!(
            ranked,
            ["a", "b", "c", "d", "e", "f", "g", "k", "s", "t", "u"]
        );
        let reason = |text: &str| {
            let item = items.iter().find(|i| i["text"] == text).unwrap();
            item["reason"].as_str().unwrap().to_string()
        };
        assert_eq!(
            (reason("s"), reason("t"), reason("u")),
            (
                "suspect: model says track_order".to_string(),
                "suspect: model says track_order".to_string(),
                "audit".to_string()
            )
        );
        let text = db.cmd().args(["stats", "queue"]).output().unwrap();
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(
            text.contains("11 waiting for review (6 here, 5 in Label Studio)")
                && text.contains("priority 5: 8 (4 here, 4 in Label Studio)")
                && text.contains(
                    "besides the review queue: 3 audits of approved samples, 2 suspect labels"
                ),
            "{text}"
        );

        let config = db.config();
        let console = db.with_store(move |store| async move {
            let mut loader = Loader::new(store, config);
            match loader.load(Pane::Review, Utc::now()).await.unwrap() {
                PaneData::Review(data) => data.waiting,
                other => panic!("review data, got {other:?}"),
            }
        });
        assert_eq!(serde_json::to_value(&console).unwrap(), expected, "console");

        let server = Server::start(&db, &[], &[]);
        let scraped = tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(metrics(&client(), &server));
        for (place, priority, n) in [
            ("here", 2, 2),
            ("label-studio", 2, 1),
            ("here", 5, 4),
            ("label-studio", 5, 4),
        ] {
            let line = format!(
                "flywheel_review_waiting{{where=\"{place}\",priority=\"{priority}\"}} {n}\n"
            );
            assert!(scraped.contains(&line), "{line} in:\n{scraped}");
        }
    }
}
