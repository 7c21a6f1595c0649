//! `flywheel ingest` through the real binary on both backends: a good file
//! imports whole and is recorded as a job run; a bad line refuses the whole
//! file with line-numbered errors (exit 65, nothing imported); --skip-invalid
//! and --dry-run; stdin.

mod support;

use serde_json::json;
use support::fixtures::count;
use support::{Exits, TestDb, json_stdout};

fn line(i: usize) -> String {
    json!({"user_message": format!("backfill {i}"), "nlu_intent": "order_food", "nlu_confidence": 0.9,
           "nlu_provider": "php-nlu", "phone_number": "+91 98765 43210",
           "created_at": "2026-11-01T10:00:00Z", "extra": 1})
    .to_string()
}

fn write(db: &TestDb, name: &str, lines: &[Vec<u8>]) -> std::path::PathBuf {
    let path = db.data_path().join(name);
    let mut data = Vec::new();
    for l in lines {
        data.extend_from_slice(l);
        data.push(b'\n');
    }
    std::fs::write(&path, data).unwrap();
    path
}

/// `ingest --skip-invalid --json FILE`, which must succeed: its report.
fn ingest_skipping_invalid(db: &TestDb, file: &std::path::Path) -> serde_json::Value {
    let out = db
        .command()
        .args(["ingest", "--skip-invalid", "--json"])
        .arg(file)
        .succeeds();
    json_stdout(&out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_line_refuses_the_whole_file_and_names_line_and_field() {
    for db in TestDb::all() {
        let store = db.store().await;
        let mut lines: Vec<Vec<u8>> = (0..5000).map(|i| line(i).into_bytes()).collect();
        lines[2500] = br#"{"user_message": "x", "nlu_intent": "a", "nlu_confidence": 7, "nlu_provider": "p"}"#.to_vec();
        lines[4000] = b"{\"user_message\": \"caf\xff\"}".to_vec();
        lines[4500] = b"not json".to_vec();
        let file = write(&db, "bad.jsonl", &lines);
        let out = db.command().arg("ingest").arg(&file).output().unwrap();
        assert_eq!(out.status.code(), Some(65), "{:?}", db.backend);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("3 of 5000 lines are invalid"), "{stderr}");
        assert!(
            stderr.contains("line 2501: `nlu_confidence` must be between 0 and 1"),
            "{stderr}"
        );
        assert!(stderr.contains("line 4001: not valid UTF-8"), "{stderr}");
        assert!(stderr.contains("line 4501: not valid JSON"), "{stderr}");
        assert_eq!(
            count(&store, "1 = 1").await,
            0,
            "a refused file was half-imported"
        );

        // --skip-invalid imports the rest and lists what it skipped.
        let report = ingest_skipping_invalid(&db, &file);
        assert_eq!(
            (
                report["valid"].as_u64(),
                report["invalid"].as_u64(),
                report["imported"].as_u64()
            ),
            (Some(4997), Some(3), Some(4997))
        );
        let skipped: Vec<u64> = report["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["line"].as_u64().unwrap())
            .collect();
        assert_eq!(skipped, [2501, 4001, 4501]);
        assert_eq!(report["errors"][0]["field"], "nlu_confidence");
        assert_eq!(count(&store, "user_message LIKE 'backfill %' AND nlu_provider = 'php-nlu' AND length(user_hash) = 64").await, 4997);
        assert_eq!(
            count(
                &store,
                "user_hash LIKE '%9876543210%' OR user_message LIKE '%9876543210%'"
            )
            .await,
            0
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_files_and_stdin_import_whole_and_dry_runs_store_nothing() {
    for db in TestDb::all() {
        let store = db.store().await;
        let lines: Vec<Vec<u8>> = (0..4321)
            .map(|i| line(i).into_bytes())
            .chain([b"".to_vec(), b"  ".to_vec()])
            .collect();
        let file = write(&db, "good.jsonl", &lines);
        let out = db
            .command()
            .args(["ingest", "--dry-run", "--json"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success());
        let report = json_stdout(&out);
        assert_eq!(
            (
                report["valid"].as_u64(),
                report["imported"].as_u64(),
                report["dry_run"].as_bool()
            ),
            (Some(4321), Some(0), Some(true))
        );
        assert_eq!(count(&store, "1 = 1").await, 0);

        let out = db
            .command()
            .args(["ingest", "--json"])
            .arg(&file)
            .succeeds();
        assert_eq!(json_stdout(&out)["imported"], 4321);
        assert_eq!(count(&store, "created_at < '2026-11-02'").await, 4321);

        let out = db
            .command()
            .args(["ingest", "-", "--json"])
            .stdin(std::fs::File::open(&file).unwrap())
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(count(&store, "1 = 1").await, 8642);

        // Each real run is a recorded `ingest` job run; the refused one failed.
        let bad = write(&db, "bad.jsonl", &[b"{}".to_vec()]);
        assert_eq!(
            db.command()
                .arg("ingest")
                .arg(&bad)
                .output()
                .unwrap()
                .status
                .code(),
            Some(65)
        );
        let runs = store.recent_job_runs(10).await.unwrap();
        let statuses: Vec<(&str, &str)> = runs
            .iter()
            .map(|r| (r.stage.as_str(), r.status.as_str()))
            .collect();
        assert_eq!(
            statuses,
            [
                ("ingest", "failed"),
                ("ingest", "succeeded"),
                ("ingest", "succeeded")
            ]
        );
        assert!(
            runs[1]
                .counts
                .as_deref()
                .unwrap()
                .contains("\"imported\":4321")
        );

        let missing = db
            .command()
            .args(["ingest", "/nonexistent.jsonl"])
            .output()
            .unwrap();
        assert_eq!(missing.status.code(), Some(65));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_character_is_refused_alike_by_the_dry_run_and_the_run_naming_the_line() {
    for db in TestDb::all() {
        let store = db.store().await;
        let mut lines: Vec<Vec<u8>> = (0..10).map(|i| line(i).into_bytes()).collect();
        let mut nul: serde_json::Value = serde_json::from_slice(&lines[6]).unwrap();
        nul["session_id"] = json!("s\u{0}6");
        lines[6] = nul.to_string().into_bytes();
        let file = write(&db, "nul.jsonl", &lines);
        for dry_run in [true, false] {
            let mut cmd = db.command();
            cmd.arg("ingest").arg(&file);
            if dry_run {
                cmd.arg("--dry-run");
            }
            let out = cmd.output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(65),
                "{:?} dry run {dry_run}: {stderr}",
                db.backend
            );
            assert!(stderr.contains("1 of 10 lines are invalid"), "{stderr}");
            assert!(
                stderr.contains("line 7: `session_id` contains U+0000"),
                "{stderr}"
            );
        }
        assert_eq!(count(&store, "1 = 1").await, 0);
        let report = ingest_skipping_invalid(&db, &file);
        assert_eq!(report["imported"], 9);
        assert_eq!(report["errors"][0]["line"], 7);
        assert_eq!(report["errors"][0]["field"], "session_id");
        assert_eq!(count(&store, "1 = 1").await, 9);
    }
}
