//! Label Studio's labelling stream serves tasks in the product's review
//! order (issue 17 items 1 and 2), against a real Label Studio 1.23.2 on
//! both backends: the most valuable label first, audits and suspect labels
//! given their shares, and a new week's valuable items ahead of last
//! week's leftovers —
//! re-scoring only the tasks whose place changed. An annotator takes every
//! task from `/api/projects/{id}/next` and the sequence must be the order
//! `stats queue --json` ranks.

mod support;

use flywheel::review::label_studio::{REVIEW_ORDER_VERSION, UNCERTAINTY_SAMPLING};
use flywheel::storage::Store;
use serde_json::Value;
use support::fixtures::audit;
use support::{Exits, TestDb, block_on, column, exec, json_stdout, scalar};

/// A sample waiting for review (`needs-review`), or, with `audited_minutes_ago`,
/// an auto-approved one whose conversation was drawn for audit then.
async fn sample(
    store: &Store,
    text: &str,
    priority: i32,
    occurrences: i32,
    audited_minutes_ago: Option<i64>,
) -> i64 {
    let status = if audited_minutes_ago.is_some() {
        "approved"
    } else {
        "needs-review"
    };
    exec(store, &format!(
        "INSERT INTO training_samples (text, normalized_text, intent, predicted_intent, predicted_by_version, \
           language, source, confidence, review_status, priority, occurrences) \
         VALUES ('{text}', '{text}', 'order_food', 'order_food', 'router-v1.0.0', 'en', 'auto', 0.6, '{status}', \
           {priority}, {occurrences})"
    ))
    .await;
    let id = scalar(
        store,
        &format!("SELECT id FROM training_samples WHERE text = '{text}'"),
    )
    .await;
    if let Some(minutes) = audited_minutes_ago {
        audit(store, id, minutes).await;
    }
    id
}

/// An approved sample whose label the model confidently disagrees with
/// (a suspect: `order_food`, the model says `track_order`).
async fn suspect(store: &Store, text: &str) -> i64 {
    exec(store, &format!(
        "INSERT INTO training_samples (text, normalized_text, intent, predicted_intent, predicted_by_version, \
           language, source, confidence, review_status, priority, occurrences) \
         VALUES ('{text}', '{text}', 'order_food', 'order_food', 'router-v1.0.0', 'en', 'auto', 0.9, 'approved', 5, 1)"
    ))
    .await;
    let id = scalar(
        store,
        &format!("SELECT id FROM training_samples WHERE text = '{text}'"),
    )
    .await;
    store
        .replace_suspects(
            "router-v1.1.0",
            &[flywheel::storage::suspects::NewSuspect {
                sample_id: id,
                flagged_intent: "order_food".into(),
                suggested_intent: "track_order".into(),
                score: 0.8,
            }],
        )
        .await
        .unwrap();
    id
}

/// Audits' share of the order, pinned (suspects keep the default 20 % of
/// the rest): the re-scoring counts below follow from it.
const SHARE: u32 = 20;

fn sync(db: &TestDb, url: &str, key: &str) -> Value {
    let out = db
        .cmd()
        .args(["label-studio-sync", "--json"])
        .env("FLYWHEEL_AUDIT__SHARE", SHARE.to_string())
        .env("LABEL_STUDIO_URL", url)
        .env("LABEL_STUDIO_API_KEY", key)
        .succeeds();
    let report = json_stdout(&out)["sync"].clone();
    assert_eq!(report["errors"], serde_json::json!([]), "{report}");
    report
}

/// The sample ids of what waits at `place` (`here`, `label-studio`), in
/// the product's order as `stats queue --json` ranks it.
fn product_order(db: &TestDb, place: &str) -> Vec<i64> {
    let out = db
        .cmd()
        .args(["stats", "queue", "--limit", "1000", "--json"])
        .env("FLYWHEEL_AUDIT__SHARE", SHARE.to_string())
        .succeeds();
    let items = json_stdout(&out)["items"].as_array().unwrap().clone();
    let ranks: Vec<i64> = items.iter().map(|i| i["rank"].as_i64().unwrap()).collect();
    assert_eq!(
        ranks,
        (1..=items.len() as i64).collect::<Vec<_>>(),
        "ranks 1, 2, …"
    );
    items
        .iter()
        .filter(|i| i["where"] == place)
        .map(|i| i["sample_id"].as_i64().unwrap())
        .collect()
}

/// `GET path` of Label Studio's API.
fn get(ls: &'static support::label_studio::LabelStudio, path: &str) -> Value {
    let path = path.to_string();
    block_on(async move {
        support::label_studio::api(&ls.url, reqwest::Method::GET, &path, None)
            .await
            .unwrap()
    })
}

/// Take tasks from the labelling stream as an annotator does, annotating
/// each (which releases it), until `n` are done; their sample ids in order.
fn label_from_the_stream(
    ls: &'static support::label_studio::LabelStudio,
    project: i64,
    n: usize,
) -> Vec<i64> {
    block_on(async move {
        let mut served = Vec::new();
        while served.len() < n {
            let task = support::label_studio::api(
                &ls.url,
                reqwest::Method::GET,
                &format!("/api/projects/{project}/next"),
                None,
            )
            .await
            .unwrap_or_else(|e| panic!("the stream stopped after {served:?}: {e}"));
            served.push(task["data"]["sample_id"].as_i64().unwrap());
            ls.annotate(task["id"].as_i64().unwrap(), "order_food", None)
                .await;
        }
        served
    })
}

#[test]
fn the_labelling_stream_serves_the_product_order_across_weeks() {
    let Some(ls) = support::label_studio::label_studio() else {
        return;
    };
    for db in TestDb::all() {
        // Week 1: three uncertain samples, two audits, a suspect label.
        let suspected = db.with_store(move |store| async move {
            sample(&store, "w1 a", 5, 1, None).await;
            sample(&store, "w1 b", 5, 2, None).await;
            sample(&store, "w1 c", 2, 1, None).await;
            sample(&store, "w1 d", 5, 1, Some(60)).await;
            sample(&store, "w1 e", 5, 1, Some(30)).await;
            suspect(&store, "w1 s").await
        });
        let to_push = product_order(&db, "here");
        // The newest audit first, then the suspect at the head of its share.
        assert_eq!(to_push[1], suspected, "{to_push:?}");
        let first = sync(&db, &ls.url, &ls.pat);
        assert_eq!(first["pushed"], 6, "{first}");
        let pushed: Vec<i64> = db.with_store(|store| async move {
            column(
                &store,
                "SELECT sample_id FROM label_studio_tasks ORDER BY task_id",
            )
            .await
        });
        assert_eq!(pushed, to_push, "pushed in review order");
        assert_eq!(first["reordered"], 6, "every task gets its place");
        let project = first["project_id"].as_i64().unwrap();
        // The suspect's task says so, its stored label preselected.
        let task_id = db.with_store(move |store| async move {
            scalar(
                &store,
                &format!("SELECT task_id FROM label_studio_tasks WHERE sample_id = {suspected}"),
            )
            .await
        });
        let task = get(ls, &format!("/api/tasks/{task_id}"));
        assert_eq!(task["data"]["suspect"], true, "{task}");
        assert_eq!(task["data"]["suggested"], "track_order", "{task}");
        assert_eq!(
            task["data"]["predicted_intent"],
            "order_food (suspect: model says track_order)"
        );
        let settings = get(ls, &format!("/api/projects/{project}"));
        assert_eq!(settings["sampling"], UNCERTAINTY_SAMPLING);
        assert_eq!(settings["model_version"], REVIEW_ORDER_VERSION);
        // A sync with nothing new moves nothing.
        assert_eq!(sync(&db, &ls.url, &ls.pat)["reordered"], 0);

        // Week 2: samples said more often (more valuable) and a newer audit arrive.
        db.with_store(move |store| async move {
            sample(&store, "w2 f", 2, 5, None).await;
            sample(&store, "w2 g", 5, 9, None).await;
            sample(&store, "w2 h", 5, 1, Some(1)).await;
        });
        let second = sync(&db, &ls.url, &ls.pat);
        assert_eq!(second["pushed"], 3, "{second}");
        // Only the new tasks and the audit the newer one moved back needed
        // a place; the rest kept theirs.
        assert_eq!(second["reordered"], 4, "{second}");

        let expected = product_order(&db, "label-studio");
        assert_eq!(expected.len(), 9);
        let served = label_from_the_stream(ls, project, expected.len());
        assert_eq!(
            served, expected,
            "Label Studio's stream vs the product's order"
        );
    }
}
