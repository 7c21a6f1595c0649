//! Capture-health queries on both backends (the console's per-minute /
//! per-hour counts and mix) and `flywheel stats capture-gaps` end to end.

mod support;

use chrono::{DurationRound, Utc};
use flywheel::storage::Timestamp;
use flywheel::storage::capture_stats::{Bucket, MixDimension};
use serde_json::json;
use support::{Exits, TestDb, json_stdout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_counts_mix_and_gaps_agree_on_both_backends() {
    let minute = Utc::now()
        .duration_trunc(chrono::Duration::minutes(1))
        .unwrap();
    let at = |ago: i64, second: i64| {
        (minute - chrono::Duration::minutes(ago) + chrono::Duration::seconds(second)).to_rfc3339()
    };
    // 10 at -120 min, 5 at -110, silence, 3 at -40, then nothing.
    let mut lines = Vec::new();
    for (ago, n, lang, intent, provider) in [
        (120, 10, "en", "order_food", "php-nlu"),
        (110, 5, "hi", "greet", "flywheel-router"),
        (40, 3, "en", "greet", "flywheel-router"),
    ] {
        for i in 0..n {
            lines.push(json!({"user_message": format!("m{ago}-{i}"), "nlu_intent": intent, "nlu_confidence": 0.4,
                              "nlu_provider": provider, "language": lang, "fallback": ago == 40, "created_at": at(ago, i)}).to_string());
        }
    }
    for db in TestDb::all() {
        let file = db.data_path().join("capture.jsonl");
        std::fs::write(&file, lines.join("\n")).unwrap();
        db.command().arg("ingest").arg(&file).succeeds();

        let store = db.store().await;
        let since = Timestamp::from(Utc::now() - chrono::Duration::hours(3));
        let minutes = store.capture_counts(since, Bucket::Minute).await.unwrap();
        let got: Vec<(i64, i64)> = minutes
            .iter()
            .map(|b| ((minute - b.start.0).num_minutes(), b.count))
            .collect();
        assert_eq!(got, [(120, 10), (110, 5), (40, 3)], "{:?}", db.backend);
        let hours = store.capture_counts(since, Bucket::Hour).await.unwrap();
        assert_eq!(hours.iter().map(|b| b.count).sum::<i64>(), 18);
        assert!(hours.iter().all(|b| b.start.0.timestamp() % 3600 == 0));
        let recent = store
            .capture_counts(
                Timestamp::from(Utc::now() - chrono::Duration::minutes(60)),
                Bucket::Minute,
            )
            .await
            .unwrap();
        assert_eq!(
            recent.iter().map(|b| b.count).sum::<i64>(),
            3,
            "the window bounds the count"
        );

        let last = store.last_capture_at().await.unwrap().unwrap();
        assert_eq!(
            last.0.timestamp(),
            (minute - chrono::Duration::minutes(40) + chrono::Duration::seconds(2)).timestamp()
        );

        let total = |dim| {
            let store = store.clone();
            async move {
                let mut totals = std::collections::BTreeMap::new();
                for m in store.capture_mix(since, dim).await.unwrap() {
                    *totals.entry(m.value.unwrap_or_default()).or_insert(0) += m.count;
                }
                totals.into_iter().collect::<Vec<(String, i64)>>()
            }
        };
        assert_eq!(
            total(MixDimension::Provider).await,
            [("flywheel-router".into(), 8), ("php-nlu".into(), 10)]
        );
        assert_eq!(
            total(MixDimension::Language).await,
            [("en".into(), 13), ("hi".into(), 5)]
        );
        assert_eq!(
            total(MixDimension::Intent).await,
            [("greet".into(), 8), ("order_food".into(), 10)]
        );
        assert_eq!(
            total(MixDimension::Fallback).await,
            [("classified".into(), 15), ("fallback".into(), 3)]
        );

        let out = db
            .command()
            .args(["stats", "capture-gaps", "--since", "3h", "--json"])
            .succeeds();
        let report = &json_stdout(&out)["report"];
        assert_eq!(report["captured"], 18);
        let gaps = report["gaps"].as_array().unwrap();
        assert_eq!(gaps.len(), 2, "{report}");
        assert_eq!(gaps[0]["minutes"], 69);
        assert_eq!(gaps[0]["ongoing"], false);
        assert_eq!(gaps[1]["ongoing"], true);
        assert!(report["seconds_since_last_capture"].as_i64().unwrap() >= 37 * 60);

        let human = db
            .command()
            .args(["stats", "capture-gaps", "--since", "3h"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&human.stdout);
        assert!(
            text.contains("69 min") && text.contains("(ongoing)"),
            "{text}"
        );
        let bad = db
            .command()
            .args(["stats", "capture-gaps", "--since", "soon"])
            .output()
            .unwrap();
        assert_eq!(bad.status.code(), Some(2));
    }
}
