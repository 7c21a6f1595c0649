//! `flywheel demo --headless` from nothing: it bootstraps the first model,
//! backfills history with an outage, serves synthetic users, runs a daily
//! capture — all in `DATA_DIR/demo`, never in the operator's own database —
//! and a second run reuses what the first built.

mod support;

use serde_json::Value;
use support::{Exits, TestDb, json_stdout};

fn demo(db: &TestDb) -> Value {
    let output = db
        .cmd()
        // Unoptimised test build: a few epochs keep the bootstrap short.
        .env("FLYWHEEL_TRAINING__EPOCHS", "4")
        // A database the demo must ignore: it runs on its own SQLite file.
        .args(["--database-url", "postgres://nobody@127.0.0.1:1/not-used"])
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
    json_stdout(&output)["demo"].clone()
}

#[test]
fn headless_demo_brings_the_loop_alive_in_its_own_data_dir() {
    let db = TestDb::sqlite();
    let first = demo(&db);
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
    let second = demo(&db);
    assert_eq!(second["bootstrap"]["outcome"], "not_needed", "{second}");
    assert_eq!(second["bootstrap"]["production"], "router-v1.0.0");
    assert_eq!(second["history_conversations"], 0, "{second}");
}
