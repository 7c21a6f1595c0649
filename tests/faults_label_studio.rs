//! Fault injection (issue 8): `flywheel label-studio-sync`, the real binary,
//! against the tests' fake Label Studio answering 401, 429, 500, garbage or
//! too slowly — first when the key is checked, then in the middle of a
//! push. Each time: the documented exit code (78 for a refused key, 69 for
//! the rest), nothing changed locally (samples still needs-review, no task
//! confirmed), `job_runs` records the error, the key appears nowhere
//! (stdout, stderr, the database, any file in the data dir); and a re-run
//! against a healed server pushes every sample exactly once.
//!
//! The client's retries against a misbehaving server are in
//! label_studio_faults.rs; here the stage is what is under test. Every
//! scenario runs at once on both backends: most of the time is backoff.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;
use support::environment::files_under;
use support::fake_label_studio::{FakeLabelStudio, Fault, Where};
use support::processes::{Finished, Run, spawn};
use support::state::job_runs;
use support::{TestDb, exec, rows};

/// A legacy token (`Authorization: Token …`), never to be printed.
const KEY: &str = "f4u1t5ecret0123456789abcdef0123456789abc";
const PROJECT: i64 = 7;

const QUEUE: [(&str, &str); 3] = [
    ("pizza bhejo jaldi", "order_food"),
    ("where is my parcel", "track_order"),
    ("hello ji", "greeting"),
];

async fn seed_queue(db: &TestDb) {
    let store = db.store().await;
    for (text, intent) in QUEUE {
        exec(&store, &format!(
            "INSERT INTO training_samples (text, normalized_text, intent, predicted_intent, predicted_by_version, \
               language, source, confidence, review_status, priority) \
             VALUES ('{text}', '{text}', '{intent}', '{intent}', 'router-v1.0.0', 'en', 'auto', 0.6, 'needs-review', 2)"
        ))
        .await;
    }
    store.close().await;
}

fn sync(db: &TestDb, url: &str) -> Run {
    let project = PROJECT.to_string();
    spawn(
        db,
        &["label-studio-sync", "--json"],
        &[
            ("LABEL_STUDIO_URL", url),
            ("LABEL_STUDIO_API_KEY", KEY),
            ("LABEL_STUDIO_PROJECT_ID", &project),
            ("FLYWHEEL_LABEL_STUDIO__TIMEOUT_SECS", "1"),
        ],
    )
}

struct Scenario {
    db: TestDb,
    fault: Fault,
    at: Where,
    fake: FakeLabelStudio,
}

impl Scenario {
    fn name(&self) -> String {
        format!("{:?} at {:?} on {:?}", self.fault, self.at, self.db.backend)
    }

    fn expected_exit(&self) -> i32 {
        match &self.fault {
            Fault::Unauthorized => 78,
            _ => 69,
        }
    }
}

/// (sample text, review_status, label_studio_tasks.sync_state or "")
async fn local_state(db: &TestDb) -> Vec<(String, String, String)> {
    let store = db.store().await;
    let rows = rows(
        &store,
        "SELECT s.text, s.review_status, COALESCE(t.sync_state, '') \
         FROM training_samples s LEFT JOIN label_studio_tasks t ON t.sample_id = s.id ORDER BY s.text",
    )
    .await;
    store.close().await;
    rows
}

fn assert_key_nowhere(s: &Scenario, out: &Finished) {
    assert!(!out.stdout.contains(KEY), "{}: key on stdout", s.name());
    assert!(!out.stderr.contains(KEY), "{}: key on stderr", s.name());
    for file in files_under(s.db.data_path()) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(KEY),
            "{}: key in {}",
            s.name(),
            file.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_studio_faults_change_nothing_and_a_rerun_pushes_each_sample_once() {
    let faults = [
        (Fault::Unauthorized, Where::Whoami),
        (Fault::TooManyRequests, Where::Whoami),
        (Fault::ServerError, Where::Whoami),
        (Fault::Garbage, Where::Whoami),
        (Fault::Slow, Where::Whoami),
        (Fault::TooManyRequests, Where::Import),
        (Fault::ServerError, Where::Import),
        (Fault::Garbage, Where::Import),
        (Fault::Slow, Where::Import),
    ];
    let mut scenarios = Vec::new();
    for (fault, at) in faults {
        for db in TestDb::all() {
            seed_queue(&db).await;
            let fake = FakeLabelStudio::with_fault(KEY, fault.clone(), at).await;
            scenarios.push(Scenario {
                db,
                fault: fault.clone(),
                at,
                fake,
            });
        }
    }
    // Every faulty sync at once: the retries' backoff overlaps.
    let runs: Vec<Run> = scenarios.iter().map(|s| sync(&s.db, &s.fake.url)).collect();
    let started = std::time::Instant::now();
    let mut outs = Vec::new();
    for run in runs {
        outs.push(run.finish(Duration::from_secs(60)).await);
    }
    eprintln!("faulty syncs: {:?}", started.elapsed());

    for (s, out) in scenarios.iter().zip(&outs) {
        let name = s.name();
        assert_eq!(
            out.code(),
            Some(s.expected_exit()),
            "{name}: {}",
            out.output()
        );
        assert!(
            out.stderr.contains("Label Studio"),
            "{name}: the error names Label Studio: {}",
            out.output()
        );
        assert!(s.fake.authorized() > 0, "{name}: the key was sent");
        assert_key_nowhere(s, out);
        let local = local_state(&s.db).await;
        assert_eq!(local.len(), QUEUE.len(), "{name}: {local:?}");
        for (text, status, sync_state) in &local {
            assert_eq!(status, "needs-review", "{name}: {text}");
            // A push whose outcome is unknown stays reserved for the next
            // run to reconcile; none is ever confirmed.
            let allowed: &[&str] = match s.at {
                Where::Whoami => &[""],
                Where::Import => &["pushing"],
                other => unreachable!("no fault injected at {other:?}"),
            };
            assert!(
                allowed.contains(&sync_state.as_str()),
                "{name}: {text} is {sync_state:?}"
            );
        }
        let store = s.db.store().await;
        let runs = job_runs(&store, "label-studio-sync").await;
        store.close().await;
        assert_eq!(runs.len(), 1, "{name}: {runs:?}");
        assert_eq!(runs[0].1, "failed", "{name}: {runs:?}");
        let error = runs[0].2.as_deref().unwrap_or_default();
        assert!(
            error.contains("Label Studio") && !error.contains(KEY),
            "{name}: {error}"
        );
    }

    // Healed: one re-run each pushes every sample exactly once, including
    // the batch a slow server imported without answering in time.
    for s in &scenarios {
        s.fake.heal();
    }
    let runs: Vec<Run> = scenarios.iter().map(|s| sync(&s.db, &s.fake.url)).collect();
    let started = std::time::Instant::now();
    let mut reruns = Vec::new();
    for run in runs {
        reruns.push(run.finish(Duration::from_secs(60)).await);
    }
    eprintln!("re-runs: {:?}", started.elapsed());
    for (s, out) in scenarios.iter().zip(&reruns) {
        let name = s.name();
        assert_eq!(out.code(), Some(0), "{name} re-run: {}", out.output());
        assert_key_nowhere(s, out);
        let local = local_state(&s.db).await;
        assert!(
            local
                .iter()
                .all(|(_, status, state)| status == "in-review" && state == "pushed"),
            "{name}: {local:?}"
        );
        let mut per_sample: HashMap<i64, usize> = HashMap::new();
        for (_, sample) in s.fake.tasks() {
            *per_sample.entry(sample).or_default() += 1;
        }
        assert_eq!(per_sample.len(), QUEUE.len(), "{name}: {per_sample:?}");
        assert!(
            per_sample.values().all(|n| *n == 1),
            "{name}: a sample was imported twice: {per_sample:?}"
        );
        let report: Value = serde_json::from_str(&out.stdout).unwrap();
        let expected_reconciled = usize::from(s.fault == Fault::Slow && s.at == Where::Import);
        assert_eq!(
            report["sync"]["reconciled"].as_u64().unwrap_or_default() as usize,
            expected_reconciled * QUEUE.len(),
            "{name}: {report}"
        );
        let store = s.db.store().await;
        let runs = job_runs(&store, "label-studio-sync").await;
        store.close().await;
        assert_eq!(runs.len(), 2, "{name}");
        assert_eq!(runs[1].1, "succeeded", "{name}: {runs:?}");
    }
}
