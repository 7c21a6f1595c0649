//! The gold set (issue 16 item 1) and the gate's use of it (item 3),
//! through the binary on both backends: auto-approved labels train but
//! never judge, `status` and the training report count the gold set, the
//! exported test split holds gold samples only, and too few gold items
//! register a candidate only with `--force`.

mod support;

use flywheel::gold::in_test_split;
use flywheel::storage::Store;
use support::fixtures::promote_to_production;
use support::{Exits, TestDb, block_on, column, exec, json_stdout};

const INTENTS: [(&str, &[&str]); 4] = [
    (
        "order_food",
        &["i want to order", "get me some", "please deliver"],
    ),
    (
        "track_order",
        &["where is my", "track the", "how long for the"],
    ),
    (
        "cancel_order",
        &["cancel the", "stop my", "i no longer want the"],
    ),
    (
        "refund_request",
        &["refund for the", "money back for the", "bad"],
    ),
];
const FOODS: [&str; 10] = [
    "pizza", "biryani", "dosa", "burger", "noodles", "momos", "thali", "pasta", "samosa", "idli",
];

/// `count` approved samples of `source`, texts made unique by `tag`.
async fn add(store: &Store, source: &str, tag: &str, count: usize) {
    let mut made = 0;
    'all: for round in 0.. {
        for (intent, forms) in INTENTS {
            for form in forms {
                for food in FOODS {
                    if made == count {
                        break 'all;
                    }
                    let text = format!("{form} {food} {tag} {round}");
                    exec(
                        store,
                        &format!(
                            "INSERT INTO training_samples (text, normalized_text, intent, language, source, review_status) \
                             VALUES ('{text}', '{text}', '{intent}', 'en', '{source}', 'approved')"
                        ),
                    )
                    .await;
                    made += 1;
                }
            }
        }
    }
}

async fn ids_of(store: &Store, source: &str) -> Vec<i64> {
    column(
        store,
        &format!("SELECT id FROM training_samples WHERE source = '{source}' ORDER BY id"),
    )
    .await
}

fn weekly(db: &TestDb, args: &[&str]) -> serde_json::Value {
    let out = db
        .cmd()
        .arg("weekly-training")
        .args(args)
        .arg("--json")
        .succeeds();
    json_stdout(&out)["result"].clone()
}

#[test]
fn auto_approved_labels_train_but_never_judge() {
    for db in TestDb::all() {
        let config = db.config();
        let (human, auto) = block_on(async move {
            let store = flywheel::storage::open(&config).await.unwrap();
            add(&store, "human", "h", 200).await;
            add(&store, "auto", "a", 200).await;
            add(&store, "synthetic", "s", 40).await;
            let ids = (ids_of(&store, "human").await, ids_of(&store, "auto").await);
            store.close().await;
            ids
        });
        let percent = 15;
        let gold_test = human
            .iter()
            .filter(|id| in_test_split(**id, percent))
            .count();
        // Auto-approved samples do fall in the hash split: the rule, not
        // luck, keeps them out.
        assert!(auto.iter().any(|id| in_test_split(*id, percent)));

        let r = weekly(&db, &["--force"]);
        assert_eq!(
            r["test_samples"].as_u64().unwrap() as usize,
            gold_test,
            "{r}"
        );
        assert_eq!(
            r["train_samples"].as_u64().unwrap() as usize,
            440 - gold_test,
            "everything that does not judge trains: {r}"
        );
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(r["report_path"].as_str().unwrap()).unwrap())
                .unwrap();
        assert_eq!(report["gold"]["samples"], 200, "{}", report["gold"]);
        assert_eq!(
            report["gold"]["test_samples"].as_u64().unwrap() as usize,
            gold_test
        );
        assert_eq!(report["gold"]["intents"], 4);
        assert_eq!(report["gold"]["per_language"]["en"], 200);
        assert_eq!(
            report["new_model"]["samples"].as_u64().unwrap() as usize,
            gold_test
        );

        // status reports the same gold set.
        let out = db.cmd().args(["status", "--json"]).output().unwrap();
        let status = json_stdout(&out);
        assert_eq!(status["gold"]["samples"], 200, "{}", status["gold"]);
        assert_eq!(
            status["gold"]["test_samples"].as_u64().unwrap() as usize,
            gold_test
        );
        assert_eq!(status["gold"]["intents_judged"], 4);
        let text = db.cmd().arg("status").output().unwrap();
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(
            text.contains(&format!(
                "Gold set         200 labels ({gold_test} test) · 4/4 intents judged · en 200"
            )),
            "{text}"
        );

        // The exported test split is the one the gate judges on.
        let out = db
            .cmd()
            .args(["export", "--split", "test"])
            .output()
            .unwrap();
        assert!(out.status.success());
        let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), gold_test);
        assert!(lines.iter().all(|l| l["source"] == "human"), "{lines:?}");
    }
}

#[test]
fn too_few_gold_items_register_a_candidate_only_with_force() {
    for db in TestDb::all() {
        db.with_store(move |store| async move {
            add(&store, "auto", "a", 200).await;
            add(&store, "human", "h", 12).await;
        });
        // No production yet: nothing to compare with, a human decides.
        let first = weekly(&db, &["--force"]);
        assert_eq!(first["status"], "testing", "{first}");
        assert_eq!(first["reason"], "no production model to compare with");
        db.with_store(move |store| async move {
            promote_to_production(&store, "router-v1.0.0").await;
        });

        let judged = weekly(&db, &["--min-samples", "0"]);
        assert_eq!(judged["status"], "rejected", "{judged}");
        let reason = judged["reason"].as_str().unwrap();
        assert!(
            reason.starts_with("too few gold items to judge"),
            "{reason}"
        );
        assert!(reason.contains(" of the 30 needed"), "{reason}");

        let forced = weekly(&db, &["--force"]);
        assert_eq!(forced["status"], "testing", "{forced}");
        assert!(
            forced["reason"]
                .as_str()
                .unwrap()
                .contains("because of --force"),
            "{forced}"
        );
    }
}
