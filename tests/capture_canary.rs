//! Serve honours the canary split (DESIGN §1 lifecycle): over 10 000
//! requests the canary's share is 10 % ± 1.5, each session sees one
//! version, and a promotion is picked up by the running server without a
//! restart.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use flywheel::lifecycle::{self, Target};
use serde_json::{Value, json};
use support::TestDb;
use support::fixtures::install_rules_model;
use support::processes::eventually;
use support::serve::{Server, client};

const REQUESTS: usize = 10_000;
const WORKERS: usize = 64;

async fn classify(http: &reqwest::Client, url: &str, session: &str) -> String {
    let answer: Value = http
        .post(url)
        .json(&json!({"text": "ek pizza chahiye", "sessionId": session}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["model_version"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_share_is_sticky_and_promotions_apply_live() {
    for db in TestDb::all() {
        let store = db.store().await;
        install_rules_model(&db, &store).await;
        // A second model, registered as testing, then canary at 10 %.
        let v2 = db.data_path().join("models/rules-v2");
        std::fs::create_dir_all(&v2).unwrap();
        std::fs::write(
            v2.join("keywords.json"),
            r#"{"version": "rules-v2", "intents": {"order_food": ["pizza"], "greet": ["hello"]}}"#,
        )
        .unwrap();
        support::exec(
            &store,
            "INSERT INTO model_versions (version, status, artifact_path) VALUES ('rules-v2', 'testing', 'models/rules-v2')",
        )
        .await;
        lifecycle::promote(&store, "rules-v2", Target::Canary { traffic: 10 }, "test")
            .await
            .unwrap();

        let server = Server::start(&db, &[], &[]);
        let url = server.url("/nlu/classify");
        let http = client();
        // The server loads the canary within its refresh interval.
        eventually("the canary to be served", Duration::from_secs(20), || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                for i in 0..200 {
                    if classify(&http, &url, &format!("warmup-{i}")).await == "rules-v2" {
                        return Some(());
                    }
                }
                None
            }
        })
        .await;

        let mut tasks = tokio::task::JoinSet::new();
        for worker in 0..WORKERS {
            let (http, url) = (http.clone(), url.clone());
            tasks.spawn(async move {
                let mut seen = Vec::new();
                for i in (worker..REQUESTS).step_by(WORKERS) {
                    // 2 000 sessions of 5 requests each.
                    let session = format!("session-{}", i % 2_000);
                    seen.push((session.clone(), classify(&http, &url, &session).await));
                }
                seen
            });
        }
        let mut by_session: HashMap<String, Vec<String>> = HashMap::new();
        let mut canary = 0usize;
        while let Some(seen) = tasks.join_next().await {
            for (session, version) in seen.unwrap() {
                canary += usize::from(version == "rules-v2");
                by_session.entry(session).or_default().push(version);
            }
        }
        let share = canary as f64 * 100.0 / REQUESTS as f64;
        assert!((8.5..=11.5).contains(&share), "canary share {share:.2} %");
        for (session, versions) in &by_session {
            assert!(
                versions.iter().all(|v| v == &versions[0]),
                "{session} saw {versions:?}"
            );
        }

        // Promote without restarting serve: everyone moves to rules-v2.
        lifecycle::promote(&store, "rules-v2", Target::Production, "test")
            .await
            .unwrap();
        eventually(
            "the promotion to reach serve",
            Duration::from_secs(20),
            || {
                let (http, url) = (http.clone(), url.clone());
                async move {
                    for i in 0..50 {
                        if classify(&http, &url, &format!("after-{i}")).await != "rules-v2" {
                            return None;
                        }
                    }
                    Some(())
                }
            },
        )
        .await;
        drop(server);
        store.close().await;
    }
}
