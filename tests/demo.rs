//! `flywheel demo --headless` from nothing: it bootstraps the first model,
//! backfills history with an outage, serves synthetic users, runs a daily
//! capture — all in `DATA_DIR/demo`, never in the operator's own database —
//! and a second run reuses what the first built.

mod support;

use serde_json::Value;
use support::{Exits, TestDb, json_stdout};

fn demo(db: &TestDb, verbose: bool) -> Value {
    let mut cmd = db.cmd();
    // Unoptimised test build: a few epochs keep the bootstrap short.
    cmd.env("FLYWHEEL_TRAINING__EPOCHS", "4")
        // A database the demo must ignore: it runs on its own SQLite file.
        .args(["--database-url", "postgres://nobody@127.0.0.1:1/not-used"]);
    if verbose {
        cmd.arg("-v");
    }
    let output = cmd
        .args([
            "--json",
            "demo",
            "--headless",
            "--duration",
            "2s",
            "--rate",
            "40",
        ])
        .args(["--addr", "127.0.0.1:0"])
        .succeeds();
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The stages' INFO lines are for -v; the summary is the output.
    assert_eq!(
        stderr.contains(" INFO "),
        verbose,
        "verbose {verbose}: {stderr}"
    );
    json_stdout(&output)["demo"].clone()
}

#[test]
fn headless_demo_brings_the_loop_alive_in_its_own_data_dir() {
    let db = TestDb::sqlite();
    let first = demo(&db, false);
    assert_eq!(first["bootstrap"]["outcome"], "deployed", "{first}");
    assert_eq!(first["bootstrap"]["version"], "router-v1.0.0", "{first}");
    let history = first["history_conversations"].as_u64().unwrap();
    assert!(history > 5_000, "{first}");
    assert!(first["captured_live"].as_u64().unwrap() > 10, "{first}");
    assert_eq!(
        first["simulated"]["ok"], first["simulated"]["sent"],
        "{first}"
    );
    let capture = &first["daily_capture"];
    assert_eq!(capture["captured"].as_u64(), Some(history), "{first}");
    assert!(capture["auto_approved"].as_u64().unwrap() > 0, "{first}");
    assert!(capture["needs_review"].as_u64().unwrap() > 0, "{first}");

    let demo_dir = db.data_path().join("demo");
    assert_eq!(first["data_dir"], demo_dir.display().to_string());
    assert!(demo_dir.join("flywheel.db").exists());
    assert!(
        !db.data_path().join("flywheel.db").exists(),
        "the demo wrote into the operator's data dir"
    );

    // The outage in the history is what `stats capture-gaps` finds.
    let gaps = support::environment::flywheel_cmd(db.data_path())
        .args(["--data-dir"])
        .arg(&demo_dir)
        .args(["--json", "stats", "capture-gaps", "--since", "2d"])
        .output()
        .unwrap();
    let gaps = json_stdout(&gaps);
    let longest = gaps["report"]["gaps"]
        .as_array()
        .unwrap_or_else(|| panic!("{gaps}"))
        .iter()
        .filter_map(|g| g["minutes"].as_i64())
        .max()
        .unwrap_or(0);
    assert!(longest >= 150, "no ~3 h outage among the gaps: {gaps}");

    // A second demo reuses the model and the history.
    let second = demo(&db, true);
    assert_eq!(second["bootstrap"]["outcome"], "not_needed", "{second}");
    assert_eq!(second["bootstrap"]["production"], "router-v1.0.0");
    assert_eq!(second["history_conversations"], 0, "{second}");
}

/// With the model as the demo trains it (no epoch cap), the synthetic
/// traffic is hard enough that auto-approval lands near the seed's
/// 60–70 % and the review queue holds real work; the summary is short and
/// says which counts are conversations and which are samples.
#[test]
fn headless_demo_summary_is_short_and_its_traffic_leaves_review_work() {
    let db = TestDb::sqlite();
    let output = db
        .cmd()
        .args(["demo", "--headless", "--duration", "2s", "--rate", "40"])
        .args(["--addr", "127.0.0.1:0"])
        .succeeds();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stdout.lines().count() <= 8, "{stdout}");
    assert!(
        stderr
            .lines()
            .all(|l| l.contains("WARN") || l.trim().is_empty()),
        "only warnings on stderr without -v: {stderr}"
    );
    let capture = stdout
        .lines()
        .find(|l| l.contains("daily capture of the history:"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        capture.contains(" conversations → ") && capture.contains(" new samples to review"),
        "{capture}"
    );
    let rate: f64 = capture
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(" %)"))
        .and_then(|(rate, _)| rate.parse().ok())
        .unwrap_or_else(|| panic!("no auto-approval rate in {capture}"));
    assert!(
        (55.0..=75.0).contains(&rate),
        "auto-approval {rate} % is not near the seed's 60–70 %: {capture}"
    );
    let queue: i64 = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("review queue: "))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no review queue line in {stdout}"));
    assert!(queue >= 500, "the review queue holds real work: {stdout}");
}
