//! The shipped Prometheus rules (`assets/prometheus/flywheel-alerts.yml`):
//! `promtool check rules` accepts them, their unit tests
//! (`flywheel-alerts.test.yml`) pass, every metric they and their tests
//! name is one the binary exports, and on a real installation with a
//! stopped capture, an overdue weekly training and a production model
//! audits say is mostly wrong, exactly those three alerts fire.
//!
//! promtool comes with Debian's `prometheus` package (scripts/test.sh
//! installs it). Without it these tests fail in CI and are skipped, with
//! a message, elsewhere.

mod support;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::Duration;
use flywheel::capture::metrics::{Gauges, Metrics};
use flywheel::domain::{JobStatus, Stage};
use flywheel::monitor::exposition;
use support::backends::in_ci;
use support::fixtures::{audit_as, finished_run, served_then_silent};
use support::{TestDb, exec};

fn assets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/prometheus")
}

const RULES: &str = "flywheel-alerts.yml";
const RULE_TESTS: &str = "flywheel-alerts.test.yml";

/// promtool, or `None` (said on stderr) outside CI when it is missing.
fn promtool() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("promtool"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            !in_ci(),
            "promtool is required in CI (Debian: apt-get install --no-install-recommends prometheus)"
        );
        eprintln!(
            "skipping: promtool is not installed (apt-get install --no-install-recommends prometheus)"
        );
    }
    found
}

fn run(promtool: &Path, args: &[&str], dir: &Path) -> String {
    let out = Command::new(promtool)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

#[test]
fn shipped_rules_pass_promtool_check_and_their_unit_tests() {
    let Some(promtool) = promtool() else { return };
    let checked = run(&promtool, &["check", "rules", RULES], &assets());
    assert!(checked.contains("SUCCESS: 9 rules found"), "{checked}");
    let tested = run(&promtool, &["test", "rules", RULE_TESTS], &assets());
    assert!(tested.contains("SUCCESS"), "{tested}");
}

/// Every family the binary exports: serve's own and the loop's.
fn exported_families() -> BTreeSet<String> {
    let db = TestDb::sqlite();
    seed_unhealthy(&db);
    let out = db.cmd().arg("metrics").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let loop_text = String::from_utf8(out.stdout).unwrap();
    let serve_text = Metrics::default().render(&Gauges {
        queue_depth: 0,
        queue_capacity: 1,
        database_up: true,
        production_version: None,
        loop_text: Some(loop_text.into()),
    });
    exposition::parse(&serve_text)
        .unwrap()
        .types
        .into_keys()
        .collect()
}

fn metric_names(text: &str) -> BTreeSet<String> {
    let pattern = regex::Regex::new(r"\bflywheel_[a-z0-9_]+").unwrap();
    pattern
        .find_iter(text)
        .map(|m| m.as_str().to_string())
        .filter(|name| name != "flywheel_alerts") // the file's own name
        .collect()
}

#[test]
fn rules_and_their_tests_name_only_exported_metrics() {
    let exported = exported_families();
    for file in [RULES, RULE_TESTS] {
        let text = std::fs::read_to_string(assets().join(file)).unwrap();
        let used = metric_names(&text);
        assert!(used.len() >= 3, "{file}: {used:?}");
        for name in &used {
            assert!(
                exported.contains(name),
                "{file} uses {name}, which the binary does not export ({exported:?})"
            );
        }
    }
}

/// Every runbook link of the rules points at a heading of docs/runbook.md.
#[test]
fn runbook_links_point_at_runbook_headings() {
    let runbook =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/runbook.md"))
            .unwrap();
    // GitHub's anchors: lower case, punctuation dropped, spaces to dashes.
    let anchors: BTreeSet<String> = runbook
        .lines()
        .filter_map(|l| {
            l.strip_prefix('#')
                .map(|h| h.trim_start_matches('#').trim())
        })
        .map(|h| {
            h.to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect()
        })
        .collect();
    let rules = std::fs::read_to_string(assets().join(RULES)).unwrap();
    let links: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("runbook_url: docs/runbook.md#"))
        .collect();
    assert_eq!(links.len(), 9, "one runbook link per alert");
    for link in links {
        assert!(
            anchors.contains(link),
            "no heading for #{link} in docs/runbook.md"
        );
    }
}

/// The issue's installation: capture stopped two hours ago, weekly
/// training last ran nine days ago, production right on 1 of 6 audits.
fn seed_unhealthy(db: &TestDb) {
    db.with_store(|store| async move {
        served_then_silent(&store, &[false], Duration::hours(2)).await;
        for id in 1..=6 {
            let intent = if id == 1 { "order_food" } else { "refund" };
            exec(
                &store,
                &format!(
                    "INSERT INTO training_samples (id, text, normalized_text, intent, source, review_status, model_version_target) \
                     VALUES ({id}, 'g{id}', 'g{id}', '{intent}', 'human', 'approved', 'router-v1.0.0')"
                ),
            )
            .await;
            audit_as(&store, id, 180, "needs-review").await;
        }
        finished_run(
            &store,
            Stage::WeeklyTraining,
            JobStatus::Succeeded,
            Duration::days(9),
            Duration::minutes(5),
        )
        .await;
    });
}

/// `flywheel metrics` of the installation, held for three hours, as
/// promtool input; after two, exactly the three alerts fire.
#[test]
fn an_unhealthy_installation_fires_exactly_its_alerts() {
    let Some(promtool) = promtool() else { return };
    for db in TestDb::all() {
        seed_unhealthy(&db);
        let out = db.cmd().arg("metrics").output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        let scraped = exposition::parse(&text).unwrap();

        let mut test = format!(
            "rule_files:\n  - {}\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n",
            assets().join(RULES).display()
        );
        for s in &scraped.samples {
            let labels: Vec<String> = s
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={}", serde_json::Value::from(v.as_str())))
                .collect();
            let _ = writeln!(
                test,
                "      - series: '{}{{{}}}'\n        values: '{}x180'",
                s.name,
                labels.join(","),
                s.value
            );
        }
        test.push_str(
            "    promql_expr_test:\n      - expr: ALERTS{alertstate=\"firing\"}\n        eval_time: 2h\n        exp_samples:\n",
        );
        for (alert, check, severity) in [
            ("FlywheelCaptureStopped", "capture", "page"),
            (
                "FlywheelProductionAccuracyLow",
                "production-accuracy",
                "page",
            ),
            ("FlywheelStageOverdue", "stage-overdue", "warning"),
        ] {
            let _ = writeln!(
                test,
                "          - labels: 'ALERTS{{alertname=\"{alert}\",alertstate=\"firing\",check=\"{check}\",severity=\"{severity}\"}}'\n            value: 1"
            );
        }
        let file = db.data_path().join("installation.test.yml");
        std::fs::write(&file, &test).unwrap();
        let result = Command::new(&promtool)
            .args(["test", "rules"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            result.status.success(),
            "{}\n{}\nscraped:\n{text}",
            String::from_utf8_lossy(&result.stdout),
            String::from_utf8_lossy(&result.stderr)
        );
    }
}
