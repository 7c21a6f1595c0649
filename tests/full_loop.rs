//! The whole loop from a fresh install, through the command line alone
//! (issue 6, "done when"), on SQLite and PostgreSQL: serve bootstraps
//! router-v1.0.0 → simulate talks to it → daily-capture → a human review →
//! weekly-training registers router-v1.1.0 → canary at 10 % splits serve's
//! traffic → production → rollback restores router-v1.0.0.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use flywheel::domain::ReviewVerdict;
use flywheel::storage::samples::ReviewDecision;
use flywheel::storage::{Store, Timestamp};
use serde_json::{Value, json};
use support::fixtures::count;
use support::processes::eventually;
use support::serve::{Server, client};
use support::{Exits, TestDb, scalar};

/// Training in a test build is unoptimised; a few epochs are enough for the
/// loop. With one human review there are too few gold items to judge, so
/// `--force` registers v1.1.0 as `testing`: this test is about the loop,
/// `src/stages/gate.rs` and `gold_split.rs` about the comparison.
const ENV: [(&str, &str); 1] = [("FLYWHEEL_TRAINING__EPOCHS", "4")];

fn run(db: &TestDb, args: &[&str]) -> Value {
    let output = db
        .command()
        .envs(ENV)
        .arg("--json")
        .args(args)
        .output()
        .expect("run flywheel");
    assert!(
        output.status.success(),
        "flywheel {args:?} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "flywheel {args:?} printed no JSON ({err}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// The version that answered, or None when classify is not 200.
async fn answer(http: &reqwest::Client, url: &str, session: &str) -> Option<Value> {
    let response = http
        .post(url)
        .json(&json!({"text": "ek paneer pizza order karna hai", "sessionId": session}))
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().await.ok()
}

async fn version_of(http: &reqwest::Client, url: &str, session: &str) -> String {
    let answer = answer(http, url, session).await.expect("classify answered");
    answer["model_version"].as_str().unwrap().to_string()
}

/// Wait until serve answers `version` for a fresh session.
async fn until_serving(http: &reqwest::Client, url: &str, version: &str) {
    let mut n = 0;
    eventually(
        &format!("serve answering with {version}"),
        Duration::from_secs(30),
        || {
            n += 1;
            let session = format!("probe-{version}-{n}");
            async move { (version_of(http, url, &session).await == version).then_some(()) }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_loop_runs_from_a_fresh_install() {
    for db in TestDb::all() {
        let store = db.store().await;
        let http = client();

        // 1. serve on an empty database bootstraps router-v1.0.0; meanwhile
        //    classify says what is happening.
        let server = Server::start_bootstrapping(&db, &[], &ENV);
        let url = server.url("/nlu/classify");
        let early = http
            .post(&url)
            .json(&json!({"text": "hello"}))
            .send()
            .await
            .unwrap();
        if early.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE {
            let body: Value = early.json().await.unwrap();
            assert!(
                body["error"].as_str().unwrap().contains("bootstrap"),
                "{body}"
            );
        }
        let first = eventually("the bootstrap model", Duration::from_secs(600), || async {
            answer(&http, &url, "first").await
        })
        .await;
        assert_eq!(first["model_version"], "router-v1.0.0", "{first}");
        assert!(
            server
                .stderr()
                .contains("bootstrap: router-v1.0.0 is in production"),
            "the log {} does not say the bootstrap model was deployed:\n{}",
            server.log.display(),
            server.stderr()
        );
        let models = run(&db, &["models", "list"]);
        assert_eq!(
            statuses(&models),
            [("router-v1.0.0".into(), "production".into())]
        );

        // 2. Synthetic users talk to it.
        let target = server.url("");
        db.command()
            .args(["simulate", "--rate", "60", "--duration", "3s", "--target"])
            .arg(target.trim_end_matches('/'))
            .succeeds();
        let captured = count(&store, "model_version = 'router-v1.0.0'").await;
        assert!(captured >= 100, "only {captured} conversations captured");

        // A team's own NLU logs two uncertain predictions in bulk, so the
        // review queue has work whatever the bootstrap model's confidence.
        let bulk = http
            .post(server.url("/v1/conversations"))
            .json(&json!([
                {"user_message": "mera parcel galat address pe gaya", "nlu_intent": "change_address",
                 "nlu_confidence": 0.41, "nlu_provider": "php-nlu"},
                {"user_message": "the rider was rude to me", "nlu_intent": "greeting",
                 "nlu_confidence": 0.38, "nlu_provider": "php-nlu"}
            ]))
            .send()
            .await
            .unwrap();
        assert!(bulk.status().is_success(), "{:?}", bulk.text().await);

        // 3. Daily capture turns them into samples and a review queue.
        let report = run(&db, &["daily-capture", "--since", "1h"])["report"].clone();
        assert!(report["captured"].as_u64().unwrap() >= 100, "{report}");
        let auto_approved = report["auto_approved"].as_u64().unwrap();
        assert!(auto_approved > 0, "{report}");
        assert_eq!(
            count(&store, "review_status = 'pending'").await,
            0,
            "daily capture left pending conversations"
        );

        // 4. A human reviews: one acceptance, one correction (the call the
        //    console and Label Studio pulls share).
        //    The first two in review order, as `stats queue` lists them.
        let queue: Vec<i64> = run(&db, &["stats", "queue", "--limit", "2"])["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["sample_id"].as_i64().unwrap())
            .collect();
        assert_eq!(queue.len(), 2, "daily capture queued fewer than 2 samples");
        review(&store, queue[0], ReviewVerdict::Accept).await;
        review(&store, queue[1], ReviewVerdict::Choose("complaint".into())).await;

        // 5. Weekly training registers router-v1.1.0 from the seed set and
        //    what was captured, and marks its samples used.
        let trained = run(&db, &["weekly-training", "--force"])["result"].clone();
        assert_eq!(trained["version"], "router-v1.1.0", "{trained}");
        assert_eq!(trained["status"], "testing", "{trained}");
        let unused = scalar(
            &store,
            "SELECT COUNT(*) FROM training_samples WHERE review_status = 'approved' AND model_version_target IS NULL",
        )
        .await;
        assert_eq!(unused, 0, "training left approved samples unused");
        assert!(
            db.data_path()
                .join("logs/training-router-v1.1.0.json")
                .exists()
        );

        // 6. Canary at 10 %: serve splits traffic, sticky per session.
        run(
            &db,
            &[
                "models",
                "promote",
                "router-v1.1.0",
                "--to",
                "canary",
                "--traffic",
                "10",
            ],
        );
        until_serving(&http, &url, "router-v1.1.0").await;
        let mut seen: HashMap<String, String> = HashMap::new();
        for i in 0..2000 {
            let session = format!("loop-{i}");
            seen.insert(session.clone(), version_of(&http, &url, &session).await);
        }
        let canary = seen.values().filter(|v| *v == "router-v1.1.0").count();
        // 2 000 sessions: σ ≈ 0.67 %, so ±3 % is a 4.5σ bound.
        assert!(
            (140..=260).contains(&canary),
            "canary answered {canary} of 2000 sessions, not ~10 %"
        );
        for (session, version) in seen.iter().take(200) {
            assert_eq!(
                &version_of(&http, &url, session).await,
                version,
                "session {session} switched versions"
            );
        }

        // 7. Production, then rollback restores the previous production.
        run(
            &db,
            &["models", "promote", "router-v1.1.0", "--to", "production"],
        );
        eventually(
            "every session on router-v1.1.0",
            Duration::from_secs(30),
            || {
                let http = &http;
                let url = &url;
                async move {
                    for i in 0..20 {
                        if version_of(http, url, &format!("after-{i}")).await != "router-v1.1.0" {
                            return None;
                        }
                    }
                    Some(())
                }
            },
        )
        .await;
        run(&db, &["models", "rollback"]);
        until_serving(&http, &url, "router-v1.0.0").await;
        let models = run(&db, &["models", "list"]);
        let statuses = statuses(&models);
        assert!(
            statuses.contains(&("router-v1.0.0".into(), "production".into())),
            "{statuses:?}"
        );
        assert!(
            !statuses
                .iter()
                .any(|(v, s)| v == "router-v1.1.0" && s == "production"),
            "{statuses:?}"
        );
        // The audit trail tells the story, bootstrap included.
        let history = run(&db, &["models", "history"]);
        let actors: Vec<&str> = history["transitions"]
            .as_array()
            .unwrap_or_else(|| panic!("{history}"))
            .iter()
            .filter_map(|t| t["actor"].as_str())
            .collect();
        assert!(actors.contains(&"flywheel-bootstrap"), "{history}");
        assert!(count(&store, "model_version = 'router-v1.1.0'").await > 0);
        drop(server);
    }
}

async fn review(store: &Store, sample_id: i64, verdict: ReviewVerdict) {
    let decision = ReviewDecision {
        verdict,
        annotator: Some("full-loop-test".into()),
        decided_at: Timestamp::now(),
    };
    store.apply_review(sample_id, &decision).await.unwrap();
}

fn statuses(models: &Value) -> Vec<(String, String)> {
    models["models"]
        .as_array()
        .unwrap_or_else(|| panic!("models list --json: {models}"))
        .iter()
        .map(|m| {
            (
                m["version"].as_str().unwrap().to_string(),
                m["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}
