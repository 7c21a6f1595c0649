//! Fault injection (issue 8): the disk full, through the real binary.
//!
//! Tests run as root, so a read-only directory does not stop a write. The
//! mechanism is RLIMIT_FSIZE on the child (`prlimit`, with SIGXFSZ
//! ignored): a write past the limit fails with EFBIG exactly where a full
//! disk fails with ENOSPC, it needs no privilege and no mount, and for a
//! running `serve` it can be lifted (`prlimit --pid`) — the space coming
//! back. Covered: daily-capture (SQLite: its batches cannot be written;
//! PostgreSQL: its report cannot), export writing its file, serve writing
//! to SQLite. Each time: an error naming what failed, nothing
//! half-written, and a re-run (or the same serve) converges once there is
//! room again.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::environment::files_under;
use support::fixtures::{
    DAY, install_rules_model, seed_approved_samples, seed_conversations, stored_texts,
};
use support::processes::{
    lift_limit, run, run_limited, run_with_full_dir, spawn_limited, until_or_exit,
};
use support::serve::client;
use support::state::{assert_capture_invariants, capture_state, clean_capture_state, job_runs};
use support::{Backend, TestDb};

const CONVERSATIONS: i64 = 2_000;
const BATCH: usize = 200;
/// Room for a few SQLite WAL frames and the stage's own bookkeeping, not
/// for a day's batches, a report or an export.
const ROOM: u64 = 64 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_capture_on_a_full_disk_fails_cleanly_and_a_rerun_converges() {
    for db in TestDb::all() {
        let store = db.store().await;
        seed_conversations(&store, CONVERSATIONS).await;
        if db.backend == Backend::Sqlite {
            // Start from an empty WAL, as a database that has been idle
            // does: what a full disk refuses is then this run's writes, not
            // whatever seeding left in the log.
            support::exec(&store, "PRAGMA wal_checkpoint(TRUNCATE)").await;
        }
        store.close().await;
        let batch = BATCH.to_string();
        let args = ["daily-capture", "--date", DAY, "--batch-size", &batch];
        // PostgreSQL's files are the server's: only the report is ours, and
        // it is smaller than 64 KiB.
        let room = match db.backend {
            Backend::Sqlite => ROOM,
            Backend::Postgres => 256,
        };
        let out = run_limited(&db, room, &args);
        let logs = db.data_path().join("logs");
        let report = logs.join(format!("daily-report-{DAY}.json"));
        match db.backend {
            Backend::Sqlite => {
                assert!(
                    matches!(out.code(), Some(1 | 69)),
                    "{:?}: {}",
                    db.backend,
                    out.output()
                );
                assert!(
                    out.stderr.contains("disk I/O error") || out.stderr.contains("disk is full"),
                    "names the problem: {}",
                    out.output()
                );
            }
            Backend::Postgres => {
                assert_eq!(out.code(), Some(1), "{}", out.output());
                let named = format!("writing {}", report.display());
                assert!(
                    out.stderr.contains(&named) && out.stderr.contains("File too large"),
                    "names the file: {}",
                    out.output()
                );
            }
        }
        assert!(!report.exists(), "no report from the failed run");
        let reports: Vec<_> = files_under(&logs)
            .into_iter()
            .filter(|p| p.to_string_lossy().contains("daily-report"))
            .collect();
        assert!(reports.is_empty(), "nothing half-written: {reports:?}");

        let rerun = run(&db, &args).await;
        assert_eq!(rerun.code(), Some(0), "{}", rerun.output());
        let whole: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap())
            .expect("a whole report");
        assert!(whole["captured"].is_number());
        let store = db.store().await;
        let runs = job_runs(&store, "daily-capture").await;
        assert_eq!(
            runs.len(),
            2,
            "{:?} {runs:?}; the failed run: {}",
            db.backend,
            out.output()
        );
        match db.backend {
            // Recording the failure needs the disk too: the re-run marks it.
            Backend::Sqlite => assert!(
                matches!(runs[0].1.as_str(), "failed" | "crashed"),
                "{runs:?}"
            ),
            Backend::Postgres => {
                assert_eq!(runs[0].1, "failed", "{runs:?}");
                assert!(
                    runs[0].2.as_deref().unwrap().contains("File too large"),
                    "{runs:?}"
                );
            }
        }
        assert_eq!(runs[1].1, "succeeded");
        assert_capture_invariants(&store, CONVERSATIONS).await;
        let state = capture_state(&store).await;
        store.close().await;
        assert!(
            state == clean_capture_state(db.backend, CONVERSATIONS, BATCH).await,
            "{:?}: the re-run did not converge to a clean run's state",
            db.backend
        );
    }
}

const SAMPLES: i64 = 2_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_on_a_full_disk_leaves_no_file_and_a_rerun_is_whole() {
    for db in TestDb::all() {
        let store = db.store().await;
        seed_approved_samples(&store, SAMPLES).await;
        store.close().await;
        let output = db.data_path().join("out").join("train.jsonl");
        let out_arg = output.display().to_string();
        let (out, left) = run_with_full_dir(
            &db,
            output.parent().unwrap(),
            ROOM,
            &["export", "--output", &out_arg],
        );
        assert_eq!(out.code(), Some(1), "{:?}: {}", db.backend, out.output());
        assert!(
            out.stderr.contains("No space left on device") && out.stderr.contains(&out_arg),
            "names the problem and the file: {}",
            out.output()
        );
        assert!(
            left.is_empty(),
            "never a truncated file under the final name, and the failed run \
             removes its partial file: {left:?}"
        );

        let rerun = run(&db, &["export", "--output", &out_arg]).await;
        assert_eq!(rerun.code(), Some(0), "{}", rerun.output());
        let text = std::fs::read_to_string(&output).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("whole JSON lines"))
            .collect();
        assert_eq!(lines.len() as i64, SAMPLES);
        assert!(
            !output.with_extension("jsonl.partial").exists(),
            "the re-run leaves no partial file"
        );
        let store = db.store().await;
        let runs = job_runs(&store, "export").await;
        assert_eq!(runs.len(), 2, "{:?} {runs:?}", db.backend);
        assert!(
            matches!(runs[0].1.as_str(), "failed" | "crashed"),
            "{runs:?}"
        );
        assert_eq!(runs[1].1, "succeeded");
        store.close().await;
    }
}

/// Serve on SQLite keeps answering while its database file cannot grow:
/// 503 with Retry-After instead of an acknowledgement it cannot keep, and
/// it recovers by itself once there is room again, with every
/// acknowledged conversation stored exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_a_full_disk_answers_503_and_recovers_when_space_returns() {
    let db = TestDb::sqlite();
    let store = db.store().await;
    install_rules_model(&db, &store).await;
    // An empty WAL: the room left is the same on every run.
    support::exec(&store, "PRAGMA wal_checkpoint(TRUNCATE)").await;
    let mut serve = spawn_limited(
        &db,
        ROOM,
        &["serve", "--addr", "127.0.0.1:0", "--no-bootstrap"],
        &[],
    );
    let stdout = serve.stdout.clone();
    assert!(
        until_or_exit(&mut serve, Duration::from_secs(60), || {
            let stdout = stdout.clone();
            async move {
                std::fs::read_to_string(&stdout)
                    .is_ok_and(|s| s.contains("flywheel serve listening on "))
            }
        })
        .await,
        "serve did not start: {}",
        serve.stderr_now()
    );
    let base = std::fs::read_to_string(&stdout)
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("flywheel serve listening on ")
                .map(str::to_owned)
        })
        .unwrap();
    let url = format!("{base}/nlu/classify");
    let http = client();
    let mut acked: HashMap<i64, String> = HashMap::new();
    let mut sent = 0;
    let classify = |text: String| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let answer = http
                .post(&url)
                .json(&json!({ "text": text }))
                .send()
                .await
                .unwrap();
            let status = answer.status();
            let retry_after = answer.headers().get("retry-after").is_some();
            let body: Value = answer.json().await.unwrap_or(Value::Null);
            (status, retry_after, body)
        }
    };

    // Fill the disk: writes go on until one is refused.
    let refused = loop {
        assert!(sent < 5_000, "the full disk was never noticed");
        let text = format!("pizza number {sent}");
        sent += 1;
        let (status, retry_after, body) = classify(text.clone()).await;
        if status == StatusCode::OK {
            acked.insert(body["conversation_id"].as_i64().unwrap(), text);
            continue;
        }
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "a full disk is a 503: {body}"
        );
        assert!(retry_after, "503 carries Retry-After");
        break body;
    };
    assert!(
        !acked.is_empty(),
        "some writes fitted before the disk filled"
    );
    eprintln!("refused after {} acknowledged: {refused}", acked.len());

    // Room again: serve recovers without a restart.
    lift_limit(serve.pid());
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut recovered = 0;
    while recovered < 20 {
        assert!(
            Instant::now() < deadline,
            "serve did not recover: {}",
            serve.stderr_now()
        );
        let text = format!("pizza number {sent}");
        sent += 1;
        let (status, _, body) = classify(text.clone()).await;
        if status == StatusCode::OK {
            acked.insert(body["conversation_id"].as_i64().unwrap(), text);
            recovered += 1;
        } else {
            tokio::task::yield_now().await;
        }
    }
    let stderr = serve.stderr_now();
    assert!(
        stderr.contains("disk I/O error") || stderr.contains("disk is full"),
        "the log says what failed: {stderr}"
    );
    drop(serve);

    let stored = stored_texts(&store).await;
    for (id, text) in &acked {
        assert_eq!(stored.get(id), Some(text), "acknowledged row {id} lost");
    }
    let mut texts: Vec<&String> = stored.values().collect();
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), stored.len(), "no conversation stored twice");
    store.close().await;
}
