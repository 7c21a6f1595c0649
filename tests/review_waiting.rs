//! What waits for review has one definition (issue 17 item 6), and
//! `status`, `stats queue`, the console and `/metrics` all read it: the
//! review queue here (`needs-review`, the seed's `training_queue`), the
//! tasks waiting in Label Studio (`in-review`), and audits of samples the
//! model approved still awaiting their label, here or pushed — split by
//! where it waits and by priority. Both backends.

mod support;

use chrono::Utc;
use flywheel::storage::Store;
use flywheel::tui::data::{Pane, PaneData};
use flywheel::tui::refresh::Loader;
use serde_json::json;
use support::fixtures::{audit, pushed_task};
use support::serve::{Server, client, metrics};
use support::{TestDb, exec, json_stdout, scalar};

/// One sample; an `audited` one gets an audit row, a `pushed` one a Label
/// Studio task awaiting its annotation.
async fn sample(
    store: &Store,
    text: &str,
    status: &str,
    source: &str,
    priority: i32,
    audited: bool,
    pushed: bool,
) {
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
        });
        let expected = json!({
            "total": 8, "here": 4, "label_studio": 4, "urgent": 3, "urgent_priority": 2,
            "needs_review": 3, "in_review": 3, "approved_audits": 2,
            "by_priority": [
                {"priority": 2, "count": 3, "here": 2, "label_studio": 1},
                {"priority": 5, "count": 5, "here": 2, "label_studio": 3},
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
                "Review queue     8 waiting for review (3 urgent): 4 here, 4 in Label Studio"
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
        let text = db.cmd().args(["stats", "queue"]).output().unwrap();
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(
            text.contains("8 waiting for review (4 here, 4 in Label Studio)")
                && text.contains("priority 5: 5 (2 here, 3 in Label Studio)"),
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
            ("here", 5, 2),
            ("label-studio", 5, 3),
        ] {
            let line = format!(
                "flywheel_review_waiting{{where=\"{place}\",priority=\"{priority}\"}} {n}\n"
            );
            assert!(scraped.contains(&line), "{line} in:\n{scraped}");
        }
    }
}
