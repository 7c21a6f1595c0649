//! Snapshots of what the stages leave in the database and the data dir, so
//! a re-run after a fault can be compared with a clean run; and the stages'
//! recorded job runs.

use flywheel::domain::Stage;
use flywheel::storage::Store;

use super::backends::{Backend, TestDb, rows, scalar};
use super::environment::files_under;
use super::fixtures::{DAY, seed_conversations};
use super::processes::run;

fn stage(name: &str) -> Stage {
    name.parse().unwrap_or_else(|e| panic!("{name}: {e:?}"))
}

/// `(id, status, error)` of a stage's job runs, oldest first.
pub async fn job_runs(store: &Store, name: &str) -> Vec<(i64, String, Option<String>)> {
    let mut runs: Vec<_> = store
        .stage_job_runs(name, i64::MAX)
        .await
        .unwrap_or_else(|e| panic!("job runs of {name}: {e}"))
        .into_iter()
        .map(|r| (r.id, r.status.to_string(), r.error))
        .collect();
    runs.sort_by_key(|r| r.0);
    runs
}

/// How many runs of a stage are recorded.
pub async fn job_run_count(store: &Store, name: &str) -> i64 {
    job_runs(store, name).await.len() as i64
}

/// Wait (bounded) until nobody holds `name`'s stage lock. After its
/// holder is killed a PostgreSQL advisory lock lives on until the server
/// notices the session's socket closed, a moment after the process is
/// gone: a re-run started in that moment is refused as "already running".
pub async fn until_stage_unlocked(store: &Store, name: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let lock = store
            .try_lock_stage(name)
            .await
            .unwrap_or_else(|e| panic!("the {name} lock: {e}"));
        if let Some(lock) = lock {
            lock.release().await;
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name}'s lock still held 30 s after its holder ended"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// Whether a run of `name` is recorded as `running` right now.
pub async fn stage_running(store: &Store, name: &str) -> bool {
    new_run_running(store, name, 0).await
}

/// Whether a run of `name` newer than run `after` is recorded as `running`
/// (an older `running` row may be a killed run nobody has marked yet).
pub async fn new_run_running(store: &Store, name: &str, after: i64) -> bool {
    store
        .running_job_run(stage(name))
        .await
        .unwrap_or_else(|e| panic!("running job run of {name}: {e}"))
        .is_some_and(|r| r.id > after)
}

/// The newest job run id (0 when none).
pub async fn last_job_run_id(store: &Store) -> i64 {
    store
        .recent_job_runs(1)
        .await
        .expect("recent job runs")
        .first()
        .map_or(0, |r| r.id)
}

/// What daily capture leaves, independent of sample ids (a killed
/// transaction on PostgreSQL burns sequence values): every conversation
/// with its status and its sample's text, every sample's content.
#[derive(Debug, PartialEq, Eq)]
pub struct CaptureState {
    pub conversations: Vec<(i64, String, Option<String>)>,
    pub samples: Vec<SampleState>,
}

/// (normalized_text, intent, review_status, occurrences, priority, source, representative conversation)
pub type SampleState = (String, String, String, i64, i64, String, Option<i64>);

pub async fn capture_state(store: &Store) -> CaptureState {
    CaptureState {
        conversations: rows(
            store,
            "SELECT CAST(c.id AS BIGINT), c.review_status, s.normalized_text \
             FROM conversation_logs c LEFT JOIN training_samples s ON s.id = c.sample_id ORDER BY c.id",
        )
        .await,
        samples: rows(
            store,
            "SELECT normalized_text, intent, review_status, CAST(occurrences AS BIGINT), \
             CAST(priority AS BIGINT), source, CAST(conversation_id AS BIGINT) \
             FROM training_samples ORDER BY normalized_text",
        )
        .await,
    }
}

/// The invariants of a finished capture of `n` seeded conversations:
/// every conversation processed exactly once, every folded conversation
/// counted once in its sample's occurrences, no duplicate sample, each
/// sample in exactly one review state that matches its conversations.
pub async fn assert_capture_invariants(store: &Store, n: i64) {
    let state = capture_state(store).await;
    assert_eq!(state.conversations.len() as i64, n);
    let pending = state
        .conversations
        .iter()
        .filter(|c| c.1 == "pending")
        .count();
    assert_eq!(pending, 0, "every conversation processed");
    for (id, status, sample) in &state.conversations {
        match status.as_str() {
            "ignored" => assert!(sample.is_none(), "ignored conversation {id} has a sample"),
            "auto-approved" | "needs-review" => {
                assert!(
                    sample.is_some(),
                    "conversation {id} ({status}) has no sample"
                )
            }
            other => panic!("conversation {id} in unexpected state {other}"),
        }
    }
    let folded = state.conversations.iter().filter(|c| c.2.is_some()).count() as i64;
    let occurrences: i64 = state.samples.iter().map(|s| s.3).sum();
    assert_eq!(
        occurrences, folded,
        "occurrences sum equals conversations folded"
    );
    let mut texts: Vec<&String> = state.samples.iter().map(|s| &s.0).collect();
    texts.dedup();
    assert_eq!(texts.len(), state.samples.len(), "no duplicate samples");
    let by_status = scalar(
        store,
        "SELECT COUNT(*) FROM training_samples WHERE review_status IN ('approved', 'needs-review')",
    )
    .await;
    assert_eq!(by_status, state.samples.len() as i64);
    // A sample is approved exactly when one of its conversations was auto-approved.
    for sample in &state.samples {
        let any_auto = state
            .conversations
            .iter()
            .any(|c| c.2.as_ref() == Some(&sample.0) && c.1 == "auto-approved");
        assert_eq!(
            sample.2 == "approved",
            any_auto,
            "sample {:?} is {} but its conversations disagree",
            sample.0,
            sample.2
        );
    }
}

/// The state a clean daily capture of the same seed produces, on a fresh
/// database of the same backend.
pub async fn clean_capture_state(backend: Backend, n: i64, batch: usize) -> CaptureState {
    let db = TestDb::of(backend);
    let store = db.store().await;
    seed_conversations(&store, n).await;
    let out = run(
        &db,
        &[
            "daily-capture",
            "--date",
            DAY,
            "--batch-size",
            &batch.to_string(),
        ],
    )
    .await;
    assert_eq!(out.code(), Some(0), "clean run: {}", out.output());
    let state = capture_state(&store).await;
    store.close().await;
    state
}

/// What weekly training leaves: versions with status, samples marked used
/// per version, training runs per status, the models dir's entries.
#[derive(Debug, PartialEq, Eq)]
pub struct TrainingState {
    pub versions: Vec<(String, String)>,
    pub used: Vec<(String, i64)>,
    pub runs_running: i64,
    pub runs_succeeded: i64,
    pub model_dirs: Vec<String>,
}

pub async fn training_state(db: &TestDb, store: &Store) -> TrainingState {
    let mut versions: Vec<(String, String)> = store
        .list_model_versions()
        .await
        .expect("model versions")
        .into_iter()
        .map(|m| (m.version, m.status.to_string()))
        .collect();
    versions.sort();
    let runs = store
        .recent_training_runs(i64::MAX)
        .await
        .expect("training runs");
    let runs_with = |status: &str| runs.iter().filter(|r| r.status == status).count() as i64;
    let mut model_dirs: Vec<String> = std::fs::read_dir(db.data_path().join("models"))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    model_dirs.sort();
    TrainingState {
        versions,
        used: rows(
            store,
            "SELECT model_version_target, COUNT(*) FROM training_samples \
             WHERE model_version_target IS NOT NULL GROUP BY model_version_target ORDER BY 1",
        )
        .await,
        runs_running: runs_with("running"),
        runs_succeeded: runs_with("succeeded"),
        model_dirs,
    }
}

/// The state one clean weekly training of `n` seeded samples leaves on a
/// fresh installation: v1.0.0 in testing, every sample used by it.
pub fn clean_training_state(n: i64) -> TrainingState {
    TrainingState {
        versions: vec![("router-v1.0.0".into(), "testing".into())],
        used: vec![("router-v1.0.0".into(), n)],
        runs_running: 0,
        runs_succeeded: 1,
        model_dirs: vec!["router-v1.0.0".into()],
    }
}

/// The training report is whole, and no temporary file is left in logs/.
pub fn assert_training_report_whole(db: &TestDb) {
    let logs = db.data_path().join("logs");
    let report = logs.join("training-router-v1.0.0.json");
    let text =
        std::fs::read_to_string(&report).unwrap_or_else(|e| panic!("{}: {e}", report.display()));
    let json: serde_json::Value = serde_json::from_str(&text).expect("a whole training report");
    assert_eq!(json["version"], "router-v1.0.0");
    let leftovers: Vec<_> = files_under(&logs)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}
