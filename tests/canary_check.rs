//! `flywheel canary-check` (issue 18) through the binary on both backends:
//! a worse canary is rolled back at the first check with the minimum
//! evidence, production untouched and the evidence in the transition; an
//! equal canary advances 10 → 25 → 50 → 100 over successive checks and
//! ends in production; no check decides before the minimum evidence.
//!
//! Traffic is synthetic but served by real models — keyword models, and
//! routers trained on the seed set (the worse one on labels with four
//! intents swapped in pairs) — loaded as serve loads them and split per
//! session by serve's router at the canary's current share. Negative
//! feedback, review corrections and audits follow the true intents, as
//! users and reviewers would.

mod support;

use chrono::Utc;
use flywheel::capture::classifier::{Canary, ModelRouter, load_artifact};
use flywheel::jobs::{JobRunGuard, Stage, Trigger};
use flywheel::lifecycle::{self, Target};
use flywheel::router::{self as router_model, OOS_LABEL, TrainParams};
use flywheel::storage::Store;
use flywheel::synth::{Generator, INTENTS, seed_set};
use serde_json::Value;
use support::backends::timestamp_at;
use support::fixtures::spelled;
use support::{Exits, TestDb, exec, json_stdout, rows};

/// Utterances by true intent: the production model knows them all.
const UTTERANCES: [(&str, &str); 3] = [
    ("order_food", "ek pizza chahiye"),
    ("track_order", "where is my order"),
    ("greet", "hello there"),
];

const RIGHT: &str =
    r#"{"order_food": ["pizza"], "track_order": ["where is my order"], "greet": ["hello"]}"#;
/// Two intents' labels swapped, as a model trained on swapped labels answers.
const SWAPPED: &str =
    r#"{"order_food": ["where is my order"], "track_order": ["pizza"], "greet": ["hello"]}"#;

/// Register `version` (keyword model with `intents`) as `status`.
async fn install(db: &TestDb, store: &Store, version: &str, intents: &str, status: &str) {
    let dir = db.data_path().join("models").join(version);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("keywords.json"),
        format!(r#"{{"version": "{version}", "intents": {intents}}}"#),
    )
    .unwrap();
    let traffic = if status == "production" { 100 } else { 0 };
    exec(
        store,
        &format!(
            "INSERT INTO model_versions (version, status, artifact_path, traffic_percentage) \
             VALUES ('{version}', '{status}', 'models/{version}', {traffic})"
        ),
    )
    .await;
}

/// The router serve would build now: the live versions at their shares.
async fn router(db: &TestDb, store: &Store) -> ModelRouter {
    let live = store.serving_models().await.unwrap();
    // Relative artifact paths are under the data dir, as serve reads them.
    let load = |artifact: &Option<String>| {
        load_artifact(&db.data_path().join(artifact.as_deref().unwrap())).unwrap()
    };
    let production = live.iter().find(|m| m.status.as_str() == "production");
    let canary = live.iter().find(|m| m.status.as_str() == "canary");
    ModelRouter::new(
        production.map(|m| load(&m.artifact_path)),
        canary.map(|m| Canary {
            classifier: load(&m.artifact_path),
            traffic_percent: m.traffic_percentage as u8,
        }),
    )
}

/// What a user says in request `id`: its true intent and its text.
type Users<'a> = &'a mut dyn FnMut(i64) -> (String, String);

/// The keyword models' users: the three [`UTTERANCES`] in turn.
fn keyword_user(id: i64) -> (String, String) {
    let (intent, text) = UTTERANCES[(id % 3) as usize];
    (intent.into(), format!("{text} {}", spelled(id as usize)))
}

/// `n` requests from new sessions, served by the live models; a user gives
/// negative feedback on a wrong answer (and on every 40th right one); every
/// conversation is reviewed and every 4th audited, labelled with its true
/// intent. Ids continue from `next_id`.
async fn traffic(db: &TestDb, store: &Store, n: i64, next_id: &mut i64) {
    traffic_of(db, store, n, next_id, &mut keyword_user).await;
}

async fn traffic_of(db: &TestDb, store: &Store, n: i64, next_id: &mut i64, users: Users<'_>) {
    let router = router(db, store).await;
    // A second ahead: never before the canary's start, whatever the clocks' rounding.
    let at = timestamp_at(store, Utc::now() + chrono::Duration::seconds(1));
    let (mut conversations, mut samples, mut audits) = (vec![], vec![], vec![]);
    for _ in 0..n {
        let id = *next_id;
        *next_id += 1;
        let (intent, text) = users(id);
        let session = format!("session-{id}");
        let model = router.pick(Some(&session)).unwrap();
        let mut served = model.classify(&text, None);
        if served.fallback {
            // What the user got, as audits record it.
            served.intent = OOS_LABEL.into();
        }
        let version = model.version();
        let right = served.intent == intent;
        let text = text.replace('\'', "''");
        let feedback = if !right || id % 40 == 0 {
            "'negative'"
        } else {
            "NULL"
        };
        conversations.push(format!(
            "({id}, {at}, '{session}', '{text}', '{}', {}, 'flywheel-router', '{version}', {}, {feedback}, \
              'auto-approved', {id})",
            served.intent, served.confidence, served.fallback
        ));
        let corrected = if right {
            "NULL".to_string()
        } else {
            format!("'{}'", served.intent)
        };
        samples.push(format!(
            "({id}, '{text}', '{text} #{id}', '{intent}', 'human', 'approved', '{}', '{version}', {corrected}, {at}, {id})",
            served.intent
        ));
        if id % 4 == 0 {
            audits.push(format!(
                "({id}, {id}, '{version}', '{}', 'auto-approved', {at}, {at})",
                served.intent
            ));
        }
    }
    exec(
        store,
        &format!(
            "INSERT INTO conversation_logs (id, created_at, session_id, user_message, nlu_intent, nlu_confidence, \
               nlu_provider, model_version, fallback, feedback, review_status, sample_id) VALUES {}",
            conversations.join(", ")
        ),
    )
    .await;
    exec(
        store,
        &format!(
            "INSERT INTO training_samples (id, text, normalized_text, intent, source, review_status, \
               predicted_intent, predicted_by_version, corrected_from, reviewed_at, conversation_id) VALUES {}",
            samples.join(", ")
        ),
    )
    .await;
    exec(
        store,
        &format!(
            "INSERT INTO audits (conversation_id, sample_id, model_version, served_intent, conversation_status, \
               conversation_at, drawn_at) VALUES {}",
            audits.join(", ")
        ),
    )
    .await;
}

/// The check in auto mode with the test's minimum evidence.
fn check_command(db: &TestDb) -> assert_cmd::Command {
    let mut cmd = db.cmd();
    cmd.env("FLYWHEEL_CANARY__MIN_REQUESTS", "100")
        .env("FLYWHEEL_CANARY__MIN_AUDITS", "20")
        .env("FLYWHEEL_CANARY__MIN_STEP_MINUTES", "0")
        .args(["canary-check", "--mode", "auto", "--json"]);
    cmd
}

/// Run the check in auto mode with the test's minimum evidence.
fn check(db: &TestDb) -> Value {
    json_stdout(&check_command(db).succeeds())
}

async fn statuses(store: &Store) -> Vec<(String, String, i32)> {
    rows(
        store,
        "SELECT version, status, traffic_percentage FROM model_versions ORDER BY version",
    )
    .await
}

/// Production `rules-v1` (right) and canary `rules-v2` (answering with
/// `intents`) at 10 %.
async fn canary_at_10(db: &TestDb, intents: &str) -> Store {
    let store = db.store().await;
    install(db, &store, "rules-v1", RIGHT, "production").await;
    install(db, &store, "rules-v2", intents, "testing").await;
    lifecycle::promote(&store, "rules-v2", Target::Canary { traffic: 10 }, "test")
        .await
        .unwrap();
    store
}

fn row(version: &str, status: &str, traffic: i32) -> (String, String, i32) {
    (version.into(), status.into(), traffic)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worse_canary_is_rolled_back_at_the_first_check_with_the_evidence() {
    for db in TestDb::all() {
        let store = canary_at_10(&db, SWAPPED).await;
        let mut next_id = 1;

        // Too little evidence: the check waits and says for what.
        traffic(&db, &store, 300, &mut next_id).await;
        let early = check(&db);
        assert_eq!(early["decision"], "wait", "{early}");
        assert_eq!(early["applied"], false);
        let missing = early["canary_check"]["analysis"]["decision"]["missing"].to_string();
        assert!(missing.contains("labelled audits"), "{missing}");
        assert_eq!(
            statuses(&store).await,
            [
                row("rules-v1", "production", 90),
                row("rules-v2", "canary", 10)
            ]
        );

        // Enough now: rolled back at this check.
        traffic(&db, &store, 1500, &mut next_id).await;
        let out = check(&db);
        assert_eq!(out["decision"], "rollback", "{out}");
        assert_eq!(out["applied"], true);
        assert_eq!(
            out["canary_check"]["analysis"]["decision"]["signal"],
            "audit-accuracy"
        );
        assert_eq!(
            statuses(&store).await,
            [
                row("rules-v1", "production", 100),
                row("rules-v2", "rejected", 0)
            ]
        );
        // Production untouched but for taking its traffic back.
        let production_moves: i64 = support::scalar(
            &store,
            "SELECT COUNT(*) FROM model_transitions WHERE version = 'rules-v1' AND to_status <> 'production'",
        )
        .await;
        assert_eq!(production_moves, 0);

        // The transition carries the evidence, shown by `models history`.
        let history = db.json(&["models", "history", "rules-v2", "--json"]);
        let newest = &history["transitions"][0];
        assert_eq!(newest["actor"], "flywheel canary-check");
        assert_eq!(newest["to_status"], "rejected");
        let reason = newest["reason"].as_str().unwrap();
        assert!(
            reason.contains("audit accuracy: canary 0.") && reason.contains("mSPRT Λ"),
            "{reason}"
        );
        assert!(reason.contains("(regression)"), "{reason}");
        let text = db.cmd().args(["models", "history", "rules-v2"]).succeeds();
        let text = String::from_utf8_lossy(&text.stdout).to_string();
        assert!(text.contains("by flywheel canary-check"), "{text}");

        // The job run is recorded with its counts.
        let counts: Vec<(String, Option<String>)> = rows(
            &store,
            "SELECT status, counts FROM job_runs WHERE stage = 'canary-check' ORDER BY id",
        )
        .await;
        assert_eq!(counts.len(), 2, "{counts:?}");
        let last = counts[1].1.as_deref().unwrap_or_default();
        assert_eq!(counts[1].0, "succeeded");
        assert!(last.contains("\"decision\":\"rollback\""), "{counts:?}");
        assert!(last.contains("\"applied\":true"), "{counts:?}");
        assert!(last.contains("audit accuracy: canary 0."), "{counts:?}");

        // Nothing to check any more: exit 0, nothing done.
        let none = check(&db);
        assert_eq!(none["decision"], Value::Null, "{none}");
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_equal_canary_advances_step_by_step_into_production() {
    for db in TestDb::all() {
        let store = canary_at_10(&db, RIGHT).await;
        let mut next_id = 1;

        // No evidence yet: no decision, however low the step time.
        let first = check(&db);
        assert_eq!(first["decision"], "wait", "{first}");
        assert_eq!(
            statuses(&store).await,
            [
                row("rules-v1", "production", 90),
                row("rules-v2", "canary", 10)
            ]
        );

        // Recommend mode says what it would do and changes nothing.
        traffic(&db, &store, 1600, &mut next_id).await;
        let recommended = db.json(&["canary-check", "--json", "--dry-run", "--mode", "recommend"]);
        assert_eq!(recommended["applied"], false, "{recommended}");
        assert_eq!(
            statuses(&store).await,
            [
                row("rules-v1", "production", 90),
                row("rules-v2", "canary", 10)
            ]
        );

        for (from, to) in [(10, 25), (25, 50)] {
            let out = check(&db);
            assert_eq!(out["decision"], "advance", "{out}");
            let decision = &out["canary_check"]["analysis"]["decision"];
            assert_eq!(
                (decision["from"].as_i64(), decision["to"].as_i64()),
                (Some(from), Some(to))
            );
            assert_eq!(
                statuses(&store).await,
                [
                    row("rules-v1", "production", 100 - to as i32),
                    row("rules-v2", "canary", to as i32)
                ]
            );
            traffic(&db, &store, 300, &mut next_id).await;
        }
        let out = check(&db);
        assert_eq!(out["decision"], "promote", "{out}");
        assert_eq!(
            statuses(&store).await,
            [
                row("rules-v1", "archived", 0),
                row("rules-v2", "production", 100)
            ]
        );
        let history = db.json(&["models", "history", "rules-v2", "--json"]);
        let by_check: Vec<&Value> = history["transitions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["actor"] == "flywheel canary-check")
            .collect();
        let reached: Vec<(i64, &str)> = by_check
            .iter()
            .rev()
            .map(|t| {
                (
                    t["traffic_percentage"].as_i64().unwrap(),
                    t["to_status"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            reached,
            [(25, "canary"), (50, "canary"), (100, "production")]
        );
        assert!(by_check.iter().all(|t| {
            t["reason"]
                .as_str()
                .unwrap()
                .contains("audit accuracy: canary")
        }));
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_come_from_the_environment_are_checked_and_runs_never_overlap() {
    for db in TestDb::all() {
        let store = canary_at_10(&db, RIGHT).await;
        let mut next_id = 1;
        traffic(&db, &store, 1600, &mut next_id).await;

        // A bare list from the environment; the next step up from 10 is 20.
        let out = json_stdout(
            &check_command(&db)
                .env("FLYWHEEL_CANARY__STEPS", "5,20,100")
                .succeeds(),
        );
        let decision = &out["canary_check"]["analysis"]["decision"];
        assert_eq!(
            (decision["decision"].as_str(), decision["to"].as_i64()),
            (Some("advance"), Some(20)),
            "{out}"
        );

        // Steps that never reach production are a configuration error (78).
        let bad = check_command(&db)
            .env("FLYWHEEL_CANARY__STEPS", "25,50")
            .exits_with(78);
        let stderr = String::from_utf8_lossy(&bad.stderr);
        assert!(
            stderr.contains("FLYWHEEL_CANARY__STEPS") && stderr.contains("must end at 100"),
            "{stderr}"
        );
        assert_eq!(
            statuses(&store).await,
            [
                row("rules-v1", "production", 80),
                row("rules-v2", "canary", 20)
            ]
        );

        // Another run holds the lock: exit 75, nothing changed.
        let held = JobRunGuard::start(&store, Stage::CanaryCheck, Trigger::Cron)
            .await
            .unwrap();
        let locked = check_command(&db).exits_with(75);
        assert!(String::from_utf8_lossy(&locked.stderr).contains("canary-check"));
        held.succeed(&serde_json::json!({})).await.unwrap();
        assert_eq!(
            statuses(&store).await,
            [
                row("rules-v1", "production", 80),
                row("rules-v2", "canary", 20)
            ]
        );
        store.close().await;
    }
}

/// The latency and error signals read from what serve records per
/// conversation (`classify_ms`, `classify_error`): a canary as accurate as
/// production whose model fails on one request in ten is rolled back by
/// the error guard, and both versions' slow-request rates are shown with n.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_whose_model_fails_is_rolled_back_by_the_error_guard() {
    for db in TestDb::all() {
        let store = canary_at_10(&db, RIGHT).await;
        let mut next_id = 1;
        traffic(&db, &store, 1500, &mut next_id).await;
        exec(
            &store,
            "UPDATE conversation_logs SET classify_ms = CASE WHEN id % 5 = 0 THEN 80.0 ELSE 2.0 END",
        )
        .await;
        exec(
            &store,
            "UPDATE conversation_logs SET classify_error = 'the model panicked: shape mismatch', fallback = TRUE \
             WHERE model_version = 'rules-v2' AND id % 10 = 0",
        )
        .await;
        let out = check(&db);
        assert_eq!(out["decision"], "rollback", "{out}");
        let decision = &out["canary_check"]["analysis"]["decision"];
        assert_eq!(decision["kind"], "error-guard", "{decision}");
        assert_eq!(
            statuses(&store).await,
            [
                row("rules-v1", "production", 100),
                row("rules-v2", "rejected", 0)
            ]
        );
        let slow = out["canary_check"]["analysis"]["signals"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["signal"] == "slow-rate")
            .unwrap()
            .clone();
        // Every fifth conversation took 80 ms, over slow_ms 50: each
        // version's share of those among what it served.
        for (side, version) in [("canary", "rules-v2"), ("production", "rules-v1")] {
            let counted: Vec<(i64, i64)> = rows(
                &store,
                &format!(
                    "SELECT COUNT(CASE WHEN classify_ms > 50 THEN 1 END), COUNT(*) \
                     FROM conversation_logs WHERE model_version = '{version}'"
                ),
            )
            .await;
            let (slow_n, n) = counted[0];
            assert_eq!(slow[side]["n"].as_i64().unwrap(), n, "{slow}");
            assert!(n > 100);
            let rate = slow[side]["value"].as_f64().unwrap();
            assert!((rate - slow_n as f64 / n as f64).abs() < 1e-9, "{slow}");
        }
        store.close().await;
    }
}

#[test]
fn without_a_canary_there_is_nothing_to_do() {
    for db in TestDb::all() {
        let out = check(&db);
        assert_eq!(out["ok"], true);
        assert_eq!(out["decision"], Value::Null, "{out}");
        assert_eq!(out["canary_check"]["note"], "no canary: nothing to check");
        let text = db.cmd().arg("canary-check").succeeds();
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(text.contains("no canary: nothing to check"), "{text}");
    }
}

/// Train a router `version` on the seed set with `swapped` pairs of
/// intents' labels exchanged, into `dir`.
fn train_router(version: &str, swapped: &[(&str, &str)], dir: &std::path::Path) {
    let samples: Vec<flywheel::dataset::Sample> = seed_set(7)
        .into_iter()
        .map(|u| {
            let intent = swapped
                .iter()
                .find_map(|(a, b)| {
                    (u.intent == *a)
                        .then_some(*b)
                        .or((u.intent == *b).then_some(*a))
                })
                .unwrap_or(u.intent);
            flywheel::dataset::Sample::new(u.text, intent)
        })
        .collect();
    let params = TrainParams {
        version: version.into(),
        ..TrainParams::default()
    };
    router_model::train(
        &samples,
        None,
        &params,
        &flywheel::progress::Reporter::silent(),
    )
    .unwrap()
    .save(dir)
    .unwrap();
}

/// Issue 18's first bar with trained routers: the canary learnt from
/// labels where four intents were swapped in pairs; users talk as the
/// synthetic generator does, and audits follow their true intents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_trained_on_swapped_labels_is_rolled_back() {
    let trained = tempfile::tempdir().unwrap();
    let (good, bad) = (trained.path().join("good"), trained.path().join("bad"));
    train_router("router-v1.0.0", &[], &good);
    train_router(
        "router-v1.1.0",
        &[
            ("order_food", "track_order"),
            ("refund_request", "payment_issue"),
        ],
        &bad,
    );
    assert!(INTENTS.contains(&"payment_issue"));
    for db in TestDb::all() {
        let store = db.store().await;
        for (version, dir, status, traffic) in [
            ("router-v1.0.0", &good, "production", 100),
            ("router-v1.1.0", &bad, "testing", 0),
        ] {
            exec(
                &store,
                &format!(
                    "INSERT INTO model_versions (version, status, artifact_path, traffic_percentage) \
                     VALUES ('{version}', '{status}', '{}', {traffic})",
                    dir.display()
                ),
            )
            .await;
        }
        lifecycle::promote(
            &store,
            "router-v1.1.0",
            Target::Canary { traffic: 10 },
            "test",
        )
        .await
        .unwrap();
        let mut generator = Generator::new(11);
        let mut users = |_id: i64| {
            let u = generator.sample();
            (u.intent.to_string(), u.text)
        };
        let mut next_id = 1;
        traffic_of(&db, &store, 300, &mut next_id, &mut users).await;
        let early = check(&db);
        assert_eq!(early["decision"], "wait", "{early}");
        traffic_of(&db, &store, 1700, &mut next_id, &mut users).await;
        let out = check(&db);
        assert_eq!(out["decision"], "rollback", "{out}");
        // Audit accuracy (0.76 against 0.98 when this was written) decided it.
        let accuracy = &out["canary_check"]["analysis"]["signals"][0];
        assert_eq!(accuracy["signal"], "audit-accuracy");
        assert_eq!(accuracy["test"]["regression"], true, "{accuracy}");
        let value = |who: &str| accuracy[who]["value"].as_f64().unwrap();
        let (canary, production) = (value("canary"), value("production"));
        assert!(
            production > 0.8 && canary < production - 0.1,
            "{canary} vs {production}"
        );
        assert_eq!(
            statuses(&store).await,
            [
                row("router-v1.0.0", "production", 100),
                row("router-v1.1.0", "rejected", 0)
            ]
        );
        store.close().await;
    }
}
