//! Loop health, one definition (issue 19): an installation whose capture
//! stopped two hours ago, whose weekly training last ran nine days ago and
//! whose production model audits say is mostly wrong shows exactly those
//! three in `status`, `doctor`'s loop section, the console's Jobs pane and
//! `/metrics`' health checks; and a stage ending posts one webhook event
//! per check that turned bad (again only on a change), on both backends.

mod support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use chrono::{Duration, Utc};
use flywheel::domain::{JobStatus, Stage};
use flywheel::monitor::exposition;
use support::backends::timestamp_at;
use support::fixtures::{audit_as, finished_run, served_then_silent};
use support::{TestDb, exec, json_stdout};

const BAD: [&str; 3] = ["capture", "production-accuracy", "stage-overdue"];

fn seed(db: &TestDb) {
    db.with_store(|store| async move {
        served_then_silent(&store, &[false; 4], Duration::hours(2)).await;
        // Four gold labels, audited: production served `order_food`, right once.
        for (id, intent) in [
            (1, "order_food"),
            (2, "track_order"),
            (3, "track_order"),
            (4, "refund"),
        ] {
            let at = timestamp_at(&store, Utc::now() - Duration::hours(5));
            exec(
                &store,
                &format!(
                    "INSERT INTO training_samples (id, text, normalized_text, intent, source, review_status, priority, created_at) \
                     VALUES ({id}, 'g{id}', 'g{id}', '{intent}', 'human', 'approved', 5, {at})"
                ),
            )
            .await;
            // Drawn from conversations sent to review: production's
            // accuracy, not auto-approval's precision.
            audit_as(&store, id, 150, "needs-review").await;
        }
        for (stage, ago) in [
            (Stage::DailyCapture, Duration::hours(1)),
            (Stage::CanaryCheck, Duration::minutes(10)),
            (Stage::WeeklyTraining, Duration::days(9)),
        ] {
            finished_run(&store, stage, JobStatus::Succeeded, ago, Duration::seconds(5)).await;
        }
    });
}

fn failing_checks_of_doctor(doctor: &serde_json::Value) -> BTreeSet<String> {
    doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["section"] == "loop" && c["status"] != "pass")
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn status_doctor_and_metrics_name_exactly_what_is_wrong() {
    for db in TestDb::all() {
        seed(&db);
        let status = db.json(&["status", "--json"]);
        let codes: BTreeSet<&str> = status["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["code"].as_str().unwrap())
            .collect();
        assert_eq!(
            codes,
            BTreeSet::from(["capture-quiet", "low-production-accuracy", "stage-overdue"]),
            "{status}"
        );

        let out = db.cmd().args(["doctor", "--json"]).output().unwrap();
        let doctor = json_stdout(&out);
        assert_eq!(
            failing_checks_of_doctor(&doctor),
            BAD.iter().map(|c| c.to_string()).collect(),
            "{doctor}"
        );
        let overdue = doctor["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "stage-overdue")
            .unwrap();
        assert!(
            overdue["detail"]
                .as_str()
                .unwrap()
                .starts_with("weekly-training has not run since"),
            "{overdue}"
        );
        assert!(overdue["fix"].as_str().unwrap().contains("crontab.conf"));
        let text = String::from_utf8(db.cmd().arg("doctor").output().unwrap().stdout).unwrap();
        let loop_section = text.split("Loop health\n").nth(1).expect("a loop section");
        assert!(loop_section.contains("[WARN] capture "), "{text}");
        assert!(loop_section.contains("[pass] disk-space"), "{text}");

        // The console's Jobs pane leads with the same warnings.
        let config = db.config();
        let console: BTreeSet<String> = db.with_store(|store| async move {
            let mut loader = flywheel::tui::refresh::Loader::new(store, config);
            let data = loader
                .load(flywheel::tui::data::Pane::Jobs, Utc::now())
                .await
                .unwrap();
            let flywheel::tui::data::PaneData::Jobs(jobs) = data else {
                panic!("the jobs pane's data");
            };
            jobs.health
                .unwrap()
                .iter()
                .map(|w| w.code.to_string())
                .collect()
        });
        assert_eq!(
            console,
            codes.iter().map(|c| c.to_string()).collect(),
            "the console"
        );

        let metrics = db.cmd().arg("metrics").output().unwrap();
        let m = exposition::parse(&String::from_utf8(metrics.stdout).unwrap()).unwrap();
        let failing: BTreeSet<String> = m
            .samples
            .iter()
            .filter(|s| s.name == "flywheel_health_check" && s.value == 0.0)
            .map(|s| s.labels["check"].clone())
            .collect();
        assert_eq!(failing, BAD.iter().map(|c| c.to_string()).collect());
    }
}

/// A local receiver of webhook posts answering `status` to each.
struct Receiver {
    url: String,
    posts: Arc<Mutex<Vec<serde_json::Value>>>,
    _runtime: tokio::runtime::Runtime,
}

impl Receiver {
    fn start(status: StatusCode) -> Self {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let posts: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
        let kept = posts.clone();
        let app = axum::Router::new().route(
            "/hooks/T0SECRETPATH",
            axum::routing::post(move |axum::Json(body): axum::Json<serde_json::Value>| {
                let kept = kept.clone();
                async move {
                    kept.lock().unwrap().push(body);
                    status
                }
            }),
        );
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            url: format!("http://{addr}/hooks/T0SECRETPATH"),
            posts,
            _runtime: runtime,
        }
    }

    fn take(&self) -> Vec<serde_json::Value> {
        std::mem::take(&mut *self.posts.lock().unwrap())
    }
}

fn kinds(posts: &[serde_json::Value]) -> BTreeSet<(String, String)> {
    posts
        .iter()
        .map(|p| {
            (
                p["event"].as_str().unwrap().to_string(),
                p["check"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn a_stage_posts_one_event_per_check_that_turned_bad_and_one_when_it_recovers() {
    for db in TestDb::all() {
        seed(&db);
        let receiver = Receiver::start(StatusCode::OK);
        let run = || {
            db.cmd()
                .args(["canary-check", "--json"])
                .env("FLYWHEEL_ALERT_WEBHOOK", &receiver.url)
                .output()
                .unwrap()
        };
        let out = run();
        assert!(out.status.success(), "{out:?}");
        let posts = receiver.take();
        assert_eq!(
            kinds(&posts),
            BAD.iter()
                .map(|c| ("health-check-failed".to_string(), c.to_string()))
                .collect(),
            "{posts:#?}"
        );
        assert_eq!(posts.len(), 3, "one event each: {posts:#?}");
        let capture = posts.iter().find(|p| p["check"] == "capture").unwrap();
        assert_eq!(capture["stage"], "canary-check");
        assert!(
            capture["text"]
                .as_str()
                .unwrap()
                .starts_with("[flywheel warning] no conversation captured for 2 h"),
            "{capture}"
        );
        // Nothing changed: nothing is posted again.
        assert!(run().status.success());
        assert_eq!(receiver.take(), Vec::<serde_json::Value>::new());
        // Capture resumes: one recovery.
        db.with_store(|store| async move {
            let now = timestamp_at(&store, Utc::now());
            exec(
                &store,
                &format!(
                    "INSERT INTO conversation_logs (user_message, nlu_intent, nlu_confidence, nlu_provider, model_version, fallback, created_at) \
                     VALUES ('hello again', 'greeting', 0.9, 'flywheel-router', 'router-v1.0.0', FALSE, {now})"
                ),
            )
            .await;
        });
        assert!(run().status.success());
        let posts = receiver.take();
        assert_eq!(
            kinds(&posts),
            BTreeSet::from([("health-check-recovered".into(), "capture".into())]),
            "{posts:#?}"
        );
        assert_eq!(posts[0]["severity"], "resolved");
    }
}

/// A stage that fails says so, and a webhook that keeps failing neither
/// fails the stage nor shows its secret path in the logs.
#[test]
fn a_failed_stage_is_posted_and_a_failing_webhook_never_fails_a_stage() {
    for db in TestDb::all() {
        seed(&db);
        let receiver = Receiver::start(StatusCode::OK);
        let out = db
            .cmd()
            .args(["label-studio-sync"])
            .env("FLYWHEEL_ALERT_WEBHOOK", &receiver.url)
            .env("LABEL_STUDIO_URL", "http://127.0.0.1:9")
            .env("LABEL_STUDIO_API_KEY", "k")
            .env("LABEL_STUDIO_PROJECT_ID", "1")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{out:?}");
        let posts = receiver.take();
        let failed: Vec<_> = posts
            .iter()
            .filter(|p| p["event"] == "stage-failed")
            .collect();
        assert_eq!(failed.len(), 1, "{posts:#?}");
        assert_eq!(failed[0]["stage"], "label-studio-sync");
        assert_eq!(failed[0]["severity"], "critical");
        assert!(
            kinds(&posts).contains(&("health-check-failed".into(), "stage-failed".into())),
            "{posts:#?}"
        );

        // A webhook answering 503 to everything: retried, then given up
        // within alerts.timeout_secs; the stage still succeeds.
        let broken = Receiver::start(StatusCode::SERVICE_UNAVAILABLE);
        db.with_store(|store| async move {
            exec(&store, "DELETE FROM alert_states").await;
        });
        let out = db
            .cmd()
            .args(["canary-check"])
            .env("FLYWHEEL_ALERT_WEBHOOK", &broken.url)
            .env("FLYWHEEL_ALERTS__TIMEOUT_SECS", "1")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert!(broken.take().len() >= 2, "retried");
        let logs = String::from_utf8_lossy(&out.stderr);
        assert!(logs.contains("not delivered"), "{logs}");
        assert!(!logs.contains("T0SECRETPATH"), "{logs}");
    }
}

/// `doctor --json --test-alert` with the webhook at `url`: its exit
/// status and its `alert webhook` check.
fn doctor_test_alert(db: &TestDb, url: &str) -> (bool, serde_json::Value) {
    let out = db
        .cmd()
        .args(["doctor", "--json", "--test-alert"])
        .env("FLYWHEEL_ALERT_WEBHOOK", url)
        .output()
        .unwrap();
    let doctor = json_stdout(&out);
    let check = doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "alert webhook")
        .unwrap()
        .clone();
    (out.status.success(), check)
}

#[test]
fn doctor_sends_a_test_alert() {
    let db = TestDb::sqlite();
    let receiver = Receiver::start(StatusCode::OK);
    let (_, check) = doctor_test_alert(&db, &receiver.url);
    assert_eq!(check["status"], "pass", "{check}");
    assert!(!check.to_string().contains("T0SECRETPATH"), "{check}");
    let posts = receiver.take();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0]["event"], "test");

    let broken = Receiver::start(StatusCode::NOT_FOUND);
    let (ok, check) = doctor_test_alert(&db, &broken.url);
    assert!(!ok);
    assert_eq!(check["status"], "fail");
    assert!(
        check["detail"].as_str().unwrap().contains("HTTP 404"),
        "{check}"
    );
}
