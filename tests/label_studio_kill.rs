//! SIGKILL during a push to a real Label Studio (issue 5 bar), on SQLite and
//! PostgreSQL: the sync process is killed while some batches are imported
//! and one is in flight; the re-run pushes the rest, and Label Studio ends
//! with exactly one task per sample — none lost, none duplicated — and every
//! sample in exactly one state.

mod support;

use std::collections::HashSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::backends::numbers;
use support::{Exits, TestDb, exec, json_stdout, scalar};

const SAMPLES: i64 = 1200;

#[test]
fn a_push_killed_midway_resumes_without_duplicates_or_losses() {
    let Some(ls) = support::label_studio::label_studio() else {
        return;
    };
    // The sync runs as a child process; this test's own queries need a
    // runtime that may borrow locals.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for db in TestDb::all() {
        let store = runtime.block_on(db.store());
        runtime.block_on(async {
            // One statement.
            exec(
                &store,
                &format!(
                    "INSERT INTO training_samples (text, normalized_text, intent, predicted_intent, \
                       predicted_by_version, language, source, confidence, review_status, priority) \
                     SELECT 'kill test ' || i, 'kill test ' || i, 'order_food', 'order_food', \
                       'router-v1.0.0', 'en', 'auto', 0.6, 'needs-review', 2 + 3 * (i % 2) FROM {}",
                    numbers(&store, SAMPLES)
                ),
            )
            .await;
        });

        // Small batches, so the kill lands while the push is under way.
        let sync = |extra: &[&str]| {
            let mut cmd = db.command();
            cmd.env("LABEL_STUDIO_URL", &ls.url)
                .env("LABEL_STUDIO_API_KEY", &ls.pat)
                .env("FLYWHEEL_LABEL_STUDIO__BATCH_SIZE", "50")
                .args(["--json", "label-studio-sync", "--push-only"])
                .args(extra);
            cmd
        };
        let mut victim = sync(&[])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill once some batches are confirmed and another is reserved
        // (imported or being imported, not yet confirmed).
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (pushed, pushing) = runtime.block_on(async {
                (
                    scalar(
                        &store,
                        "SELECT COUNT(*) FROM label_studio_tasks WHERE sync_state = 'pushed'",
                    )
                    .await,
                    scalar(
                        &store,
                        "SELECT COUNT(*) FROM label_studio_tasks WHERE sync_state = 'pushing'",
                    )
                    .await,
                )
            });
            if pushed >= 100 && pushing > 0 {
                victim.kill().unwrap(); // SIGKILL
                break;
            }
            assert!(
                victim.try_wait().unwrap().is_none(),
                "the push finished before it could be killed ({pushed} pushed)"
            );
            assert!(Instant::now() < deadline, "the push never got going");
            std::thread::sleep(Duration::from_millis(5));
        }
        victim.wait().unwrap();
        let confirmed_before = runtime.block_on(scalar(
            &store,
            "SELECT COUNT(*) FROM label_studio_tasks WHERE sync_state = 'pushed'",
        ));
        assert!(confirmed_before < SAMPLES, "nothing was left to resume");

        // The re-run reconciles the in-flight batch and pushes the rest.
        let output = sync(&[]).succeeds();
        let report = json_stdout(&output)["sync"].clone();
        let project = report["project_id"].as_i64().unwrap();
        let resumed = report["pushed"].as_i64().unwrap() + report["reconciled"].as_i64().unwrap();
        assert_eq!(confirmed_before + resumed, SAMPLES, "{report}");

        // Label Studio: one task per sample.
        let sample_ids = runtime.block_on(task_sample_ids(&ls.url, project));
        assert_eq!(sample_ids.len() as i64, SAMPLES, "tasks in Label Studio");
        let distinct: HashSet<i64> = sample_ids.iter().copied().collect();
        assert_eq!(distinct.len() as i64, SAMPLES, "a sample has two tasks");

        // Our side: every sample in exactly one state, every link confirmed.
        runtime.block_on(async {
            let states = [
                ("review_status = 'in-review'", SAMPLES),
                ("review_status <> 'in-review'", 0),
            ];
            for (condition, expected) in states {
                let n = scalar(
                    &store,
                    &format!("SELECT COUNT(*) FROM training_samples WHERE {condition}"),
                )
                .await;
                assert_eq!(n, expected, "samples with {condition}");
            }
            let links = scalar(
                &store,
                "SELECT COUNT(*) FROM label_studio_tasks WHERE sync_state = 'pushed'",
            )
            .await;
            assert_eq!(links, SAMPLES);
            let crashed = scalar(&store, "SELECT COUNT(*) FROM job_runs WHERE stage = 'label-studio-sync' AND status = 'crashed'").await;
            assert_eq!(crashed, 1, "the killed run is not recorded as crashed");
        });
        runtime.block_on(store.close());
    }
}

/// Our sample id of every task in the project (paged through the API).
async fn task_sample_ids(url: &str, project: i64) -> Vec<i64> {
    let mut ids = Vec::new();
    for page in 1.. {
        let path = format!("/api/tasks?project={project}&page={page}&page_size=500&fields=all");
        let Ok(body) = support::label_studio::api(url, reqwest::Method::GET, &path, None).await
        else {
            break; // past the last page Label Studio answers 404
        };
        let tasks: Vec<Value> = body["tasks"].as_array().cloned().unwrap_or_default();
        if tasks.is_empty() {
            break;
        }
        ids.extend(tasks.iter().filter_map(|t| t["data"]["sample_id"].as_i64()));
        if tasks.len() < 500 {
            break;
        }
    }
    ids
}
