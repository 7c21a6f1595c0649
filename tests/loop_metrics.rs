//! The loop's gauges (`flywheel metrics`, and `/metrics` of `serve`) against
//! a seeded installation on both backends: a capture that stopped two hours
//! ago, a production model whose audits say it is mostly wrong and which
//! falls back too often, a canary on 20 %, a failed Label Studio sync, and
//! a review queue whose oldest sample is ten days old. Each figure is read
//! back from the exposition text by name and labels.

mod support;

use std::collections::BTreeSet;

use chrono::{Duration, Utc};
use flywheel::domain::{JobStatus, Stage};
use flywheel::lifecycle::{self, Target};
use flywheel::monitor::exposition::{self, Exposition};
use support::backends::timestamp_at;
use support::fixtures::{audit, finished_run, model, register_model, served_then_silent};
use support::serve::{Server, client, metrics};
use support::{TestDb, exec, json_stdout};

fn seed(db: &TestDb) {
    db.with_store(|store| async move {
        let now = Utc::now();
        let at = |d: Duration| timestamp_at(&store, now - d);
        // The last conversations, two hours ago (the quiet period is 30
        // min); production fell back on 2 of 4.
        served_then_silent(&store, &[true, true, false, false], Duration::hours(2)).await;
        register_model(&store, model("router-v1.1.0", "testing", 0)).await;
        lifecycle::promote(&store, "router-v1.1.0", Target::Canary { traffic: 20 }, "t")
            .await
            .unwrap();
        // The review queue: 3 at priority 2, 2 at priority 5, the oldest
        // ten days old; 4 gold labels (audited: 1 of 4 served right) and
        // 2 auto-approved samples, none used by training yet.
        let samples = [
            ("q1", "needs-review", "auto", "order_food", 2, Duration::days(10)),
            ("q2", "needs-review", "auto", "order_food", 2, Duration::days(1)),
            ("q3", "in-review", "auto", "order_food", 2, Duration::hours(3)),
            ("q4", "needs-review", "auto", "order_food", 5, Duration::hours(2)),
            ("q5", "needs-review", "auto", "order_food", 5, Duration::hours(1)),
            ("g1", "approved", "human", "order_food", 5, Duration::hours(5)),
            ("g2", "approved", "human", "track_order", 5, Duration::hours(5)),
            ("g3", "approved", "import", "track_order", 5, Duration::hours(5)),
            ("g4", "approved", "human", "refund", 5, Duration::hours(5)),
            ("a1", "approved", "auto", "order_food", 5, Duration::hours(5)),
            ("a2", "approved", "auto", "order_food", 5, Duration::hours(5)),
        ];
        for (i, (text, status, source, intent, priority, age)) in samples.iter().enumerate() {
            let id = i + 1;
            exec(
                &store,
                &format!(
                    "INSERT INTO training_samples (id, text, normalized_text, intent, source, review_status, priority, created_at) \
                     VALUES ({id}, '{text}', '{text}', '{intent}', '{source}', '{status}', {priority}, {})",
                    at(*age)
                ),
            )
            .await;
            if text.starts_with('g') {
                audit(&store, id as i64, 360).await;
            }
        }
        finished_run(
            &store,
            Stage::DailyCapture,
            JobStatus::Succeeded,
            Duration::seconds(3600),
            Duration::seconds(12),
        )
        .await;
        // The hourly check ran on time: only the failed sync is wrong.
        finished_run(
            &store,
            Stage::CanaryCheck,
            JobStatus::Succeeded,
            Duration::minutes(10),
            Duration::seconds(1),
        )
        .await;
        finished_run(
            &store,
            Stage::LabelStudioSync,
            JobStatus::Failed,
            Duration::seconds(60),
            Duration::seconds(4),
        )
        .await;
    });
}

fn check(m: &Exposition, name: &str, labels: &[(&str, &str)], expected: f64) {
    let got = m
        .value(name, labels)
        .unwrap_or_else(|| panic!("{name}{labels:?} missing"));
    assert!(
        (got - expected).abs() < 1e-6,
        "{name}{labels:?}: {got}, expected {expected}"
    );
}

fn assert_seeded_figures(m: &Exposition) {
    check(m, "flywheel_review_queue_depth", &[("priority", "2")], 3.0);
    check(m, "flywheel_review_queue_depth", &[("priority", "5")], 2.0);
    check(
        m,
        "flywheel_review_waiting",
        &[("where", "label-studio"), ("priority", "2")],
        1.0,
    );
    let oldest = m
        .value("flywheel_review_queue_oldest_age_seconds", &[])
        .unwrap();
    assert!(
        (10.0 * 86400.0..10.0 * 86400.0 + 600.0).contains(&oldest),
        "{oldest}"
    );
    check(m, "flywheel_approved_unused_samples", &[], 6.0);
    check(m, "flywheel_gold_samples", &[], 4.0);
    check(m, "flywheel_canary_traffic_ratio", &[], 0.2);
    let production = [("version", "router-v1.0.0")];
    check(m, "flywheel_production_accuracy", &production, 0.25);
    check(m, "flywheel_production_accuracy_samples", &production, 4.0);
    check(m, "flywheel_auto_approval_precision", &production, 0.25);
    check(
        m,
        "flywheel_auto_approval_precision_samples",
        &production,
        4.0,
    );
    check(m, "flywheel_fallback_rate", &production, 0.5);
    // The canary has no audits yet: no false figure for it.
    assert!(
        m.value(
            "flywheel_production_accuracy",
            &[("version", "router-v1.1.0")]
        )
        .is_none()
    );
    check(
        m,
        "flywheel_stage_last_duration_seconds",
        &[("stage", "daily-capture")],
        12.0,
    );
    let success = m
        .value(
            "flywheel_stage_last_success_timestamp_seconds",
            &[("stage", "daily-capture")],
        )
        .unwrap();
    let expected = (Utc::now() - Duration::seconds(3588)).timestamp() as f64;
    assert!(
        (success - expected).abs() < 120.0,
        "{success} vs {expected}"
    );
    assert!(
        m.value(
            "flywheel_stage_last_success_timestamp_seconds",
            &[("stage", "label-studio-sync")]
        )
        .is_none(),
        "a stage that never succeeded has no success time"
    );
    for (name, ok) in [
        ("capture", 0.0),
        ("production-model", 1.0),
        ("test-accuracy", 1.0),
        ("production-accuracy", 0.0),
        ("auto-approval-precision", 0.0),
        ("fallback-rate", 0.0),
        ("auto-approval-rate", 1.0),
        ("stage-failed", 0.0),
        ("stage-overdue", 1.0),
        // Its oldest sample has waited ten days, over 7.
        ("review-queue-age", 0.0),
        ("capture-volume", 1.0),
        ("disk-space", 1.0),
        ("label-studio", 0.0),
    ] {
        check(m, "flywheel_health_check", &[("check", name)], ok);
    }
}

/// Every label of every loop family comes from a small fixed set: no
/// texts, no users, no ids.
fn assert_bounded_labels(m: &Exposition) {
    let allowed: BTreeSet<&str> = ["priority", "where", "version", "stage", "check"].into();
    for s in &m.samples {
        for (key, value) in &s.labels {
            assert!(allowed.contains(key.as_str()), "{} has label {key}", s.name);
            assert!(
                value.len() < 40 && !value.contains(' '),
                "{} {key}={value}",
                s.name
            );
        }
        assert!(m.types.contains_key(&s.name), "{} has no TYPE", s.name);
    }
    let versions: BTreeSet<&str> = m
        .samples
        .iter()
        .filter_map(|s| s.labels.get("version").map(String::as_str))
        .collect();
    assert!(versions.len() <= 2, "only live versions: {versions:?}");
}

#[test]
fn flywheel_metrics_prints_the_loop_gauges() {
    for db in TestDb::all() {
        seed(&db);
        let out = db.cmd().arg("metrics").output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        let m = exposition::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_seeded_figures(&m);
        assert_bounded_labels(&m);

        // --output writes the same families for the textfile collector.
        let file = db.data_path().join("flywheel.prom");
        let out = db
            .cmd()
            .args(["metrics", "--output"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let written = exposition::parse(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(written.types, m.types);
        assert!(!db.data_path().join("flywheel.prom.tmp").exists());

        let json = json_stdout(&db.cmd().args(["metrics", "--json"]).output().unwrap());
        let capture = json["samples"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "flywheel_health_check" && s["labels"]["check"] == "capture")
            .unwrap();
        assert_eq!(capture["value"], 0.0);
    }
}

#[test]
fn serve_metrics_carry_the_loop_gauges() {
    for db in TestDb::all() {
        seed(&db);
        let server = Server::start(&db, &[], &[]);
        let text = tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(metrics(&client(), &server));
        let m = exposition::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_seeded_figures(&m);
        // Serve's own families are still there, once each.
        assert!(m.types.contains_key("flywheel_http_requests_total"));
        let families: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| l.split(' ').next().unwrap())
            .collect();
        let unique: BTreeSet<&str> = families.iter().copied().collect();
        assert_eq!(families.len(), unique.len(), "a family declared twice");
    }
}

/// Scrapes within the TTL reuse one read; after it, the database is read again.
#[test]
fn the_cache_rereads_only_after_its_ttl() {
    use flywheel::monitor::loop_metrics::LoopMetricsCache;
    use std::time::Duration as StdDuration;
    for db in TestDb::all() {
        let config = db.config();
        db.with_store(move |store| async move {
            let gold = |text: &str| {
                exposition::parse(text)
                    .unwrap()
                    .value("flywheel_gold_samples", &[])
                    .unwrap()
            };
            let add_gold = |id: i64| {
                format!(
                    "INSERT INTO training_samples (id, text, normalized_text, intent, source, review_status) \
                     VALUES ({id}, 'g{id}', 'g{id}', 'refund', 'human', 'approved')"
                )
            };
            let wait = StdDuration::from_secs(10);
            let cached = LoopMetricsCache::new(store.clone(), config.clone(), StdDuration::from_secs(3600));
            assert_eq!(gold(&cached.text(wait).await.unwrap()), 0.0);
            exec(&store, &add_gold(1)).await;
            assert_eq!(gold(&cached.text(wait).await.unwrap()), 0.0, "within the TTL");
            let fresh = LoopMetricsCache::new(store.clone(), config, StdDuration::ZERO);
            assert_eq!(gold(&fresh.text(wait).await.unwrap()), 1.0);
            exec(&store, &add_gold(2)).await;
            assert_eq!(gold(&fresh.text(wait).await.unwrap()), 2.0, "after the TTL");
        });
    }
}
