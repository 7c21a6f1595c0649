//! Helpers of the fault-injection suite (`tests/faults_*.rs`): the binary
//! run as a child that can be SIGKILLed or limited, a PostgreSQL admin
//! connection that kills a stage's backends, bulk seeds, and snapshots of
//! the state a stage leaves so a re-run can be compared with a clean run.
//!
//! Callers declare `mod common; mod capture_support;` next to this module.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use flywheel::storage::{Backend as Pool, Store};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::capture_support::flywheel;
use crate::common::{Backend, TestDb};

/// A seeded RNG for a fault's position; the seed is printed so a failure
/// can be replayed with `FLYWHEEL_FAULT_SEED=N`.
pub fn fault_rng(test: &str) -> StdRng {
    let seed = std::env::var("FLYWHEEL_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("{test}: fault seed {seed} (replay with FLYWHEEL_FAULT_SEED={seed})");
    StdRng::seed_from_u64(seed)
}

/// A `flywheel` child process with its output in files.
pub struct Run {
    child: Child,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    pub what: String,
}

/// What a finished run left.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
    /// stdout and stderr, for assertion messages.
    pub fn output(&self) -> String {
        format!("stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr)
    }
}

static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Start the binary on `db` with `args` (as `capture_support::flywheel` builds it).
pub fn spawn(db: &TestDb, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = flywheel(db);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    spawn_command(db, cmd, &args.join(" "))
}

/// Start the binary on `db` with every file it writes limited to `bytes`
/// (RLIMIT_FSIZE, with SIGXFSZ ignored, so a write past the limit fails
/// with EFBIG the way a full disk fails with ENOSPC).
pub fn spawn_limited(db: &TestDb, bytes: u64, args: &[&str], env: &[(&str, &str)]) -> Run {
    let cmd = limited_command(db, bytes, args, env);
    spawn_command(db, cmd, &format!("{} (files ≤ {bytes} B)", args.join(" ")))
}

/// Run the binary to completion with every file limited to `bytes`; its
/// output goes through pipes, which the limit does not cover.
pub fn run_limited(db: &TestDb, bytes: u64, args: &[&str]) -> Finished {
    let out = limited_command(db, bytes, args, &[])
        .stdin(Stdio::null())
        .output()
        .expect("run flywheel");
    Finished {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Run flywheel with `dir` on a full disk: a `bytes`-sized tmpfs mounted
/// there in a private mount namespace (gone with the process), so only
/// what is written under `dir` runs out of space; the database file can
/// still rewrite its pages, as on a real full disk. (RLIMIT_FSIZE would
/// also refuse SQLite's checkpoint into its own larger file.) Returns the
/// run and the names left in `dir` when it ended.
pub fn run_with_full_dir(
    db: &TestDb,
    dir: &std::path::Path,
    bytes: u64,
    args: &[&str],
) -> (Finished, Vec<String>) {
    std::fs::create_dir_all(dir).unwrap();
    let listing = db.data_path().join("full-dir-listing");
    let mut inner = flywheel(db);
    inner.args(args);
    let mut cmd = Command::new("unshare");
    cmd.args(["--map-root-user", "--mount", "sh", "-c"])
        .arg(
            r#"mount -t tmpfs -o size="$0" tmpfs "$1" || exit 111
               dir="$1"; out="$2"; shift 3
               "$@"; rc=$?
               ls -A "$dir" > "$out"; exit $rc"#,
        )
        .arg(bytes.to_string())
        .arg(dir)
        .arg(&listing)
        .arg("--");
    run_inside(&mut cmd, &inner);
    let out = cmd.stdin(Stdio::null()).output().expect("run unshare");
    assert_ne!(
        out.status.code(),
        Some(111),
        "could not mount a tmpfs in a private namespace: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left = std::fs::read_to_string(&listing)
        .unwrap_or_else(|e| panic!("{}: {e}", listing.display()))
        .lines()
        .map(str::to_string)
        .collect();
    let finished = Finished {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    (finished, left)
}

/// Lift the file-size limit of a running process: the disk has room again.
pub fn lift_limit(pid: u32) {
    let status = Command::new("prlimit")
        .args(["--pid", &pid.to_string(), "--fsize=unlimited:unlimited"])
        .status()
        .expect("prlimit");
    assert!(status.success());
}

fn limited_command(db: &TestDb, bytes: u64, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut inner = flywheel(db);
    inner.args(args);
    for (k, v) in env {
        inner.env(k, v);
    }
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"trap '' XFSZ; exec prlimit --fsize="$0": -- "$@""#)
        .arg(bytes.to_string());
    run_inside(&mut cmd, &inner);
    cmd
}

/// Make `wrapper` end by running `inner` (its program and arguments last),
/// with `inner`'s environment and working directory.
fn run_inside(wrapper: &mut Command, inner: &Command) {
    wrapper.arg(inner.get_program()).args(inner.get_args());
    for (key, value) in inner.get_envs() {
        match value {
            Some(value) => wrapper.env(key, value),
            None => wrapper.env_remove(key),
        };
    }
    if let Some(dir) = inner.get_current_dir() {
        wrapper.current_dir(dir);
    }
}

fn spawn_command(db: &TestDb, mut cmd: Command, what: &str) -> Run {
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = db.data_path().join("fault-runs");
    std::fs::create_dir_all(&dir).unwrap();
    let stdout = dir.join(format!("{n}.stdout"));
    let stderr = dir.join(format!("{n}.stderr"));
    let child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap_or_else(|err| panic!("spawning flywheel {what}: {err}"));
    Run {
        child,
        stdout,
        stderr,
        what: what.to_string(),
    }
}

impl Run {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    pub fn stderr_now(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// SIGKILL (no-op when it already ended).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
    }

    /// Wait for the end, at most `timeout`.
    pub async fn finish(mut self, timeout: Duration) -> Finished {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "flywheel {} did not end within {timeout:?}:\n{}",
                    self.what,
                    self.stderr_now()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        Finished {
            status,
            stdout: std::fs::read_to_string(&self.stdout).unwrap_or_default(),
            stderr: std::fs::read_to_string(&self.stderr).unwrap_or_default(),
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run the binary to completion (60 s at most).
pub async fn run(db: &TestDb, args: &[&str]) -> Finished {
    spawn(db, args, &[]).finish(Duration::from_secs(60)).await
}

/// Wait (bounded) until `check` holds or the run ends; true when `check` held.
pub async fn until_or_exit<F, Fut>(run: &mut Run, timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if run.exited().is_some() {
            return check().await;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting on flywheel {}:\n{}",
            run.what,
            run.stderr_now()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// ---------------------------------------------------------------- SQL

pub async fn scalar(store: &Store, sql: &str) -> i64 {
    crate::common::scalar(store, sql).await
}

/// `(id, status, error)` of a stage's job runs, oldest first.
pub async fn job_runs(store: &Store, stage: &str) -> Vec<(i64, String, Option<String>)> {
    let sql = format!(
        "SELECT CAST(id AS BIGINT), status, error FROM job_runs WHERE stage = '{stage}' ORDER BY id"
    );
    match store.backend() {
        Pool::Sqlite(p) => sqlx::query_as(&sql).fetch_all(p).await,
        Pool::Postgres(p) => sqlx::query_as(&sql).fetch_all(p).await,
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Whether a run of `stage` is recorded as `running` right now.
pub async fn stage_running(store: &Store, stage: &str) -> bool {
    scalar(
        store,
        &format!("SELECT COUNT(*) FROM job_runs WHERE stage = '{stage}' AND status = 'running'"),
    )
    .await
        > 0
}

/// Whether a run of `stage` newer than run `after` is recorded as `running`
/// (an older `running` row may be a killed run nobody has marked yet).
pub async fn new_run_running(store: &Store, stage: &str, after: i64) -> bool {
    scalar(
        store,
        &format!(
            "SELECT COUNT(*) FROM job_runs WHERE stage = '{stage}' AND status = 'running' AND id > {after}"
        ),
    )
    .await
        > 0
}

/// The newest job run id (0 when none).
pub async fn last_job_run_id(store: &Store) -> i64 {
    scalar(
        store,
        "SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) FROM job_runs",
    )
    .await
}

pub const DAY: &str = "2026-03-10";

/// `n` pending conversations on [`DAY`], in one statement: 997 distinct
/// texts (so later batches fold into earlier samples), confidences from
/// 0.40 to 1.00 (auto-approved, both review priorities), every 101st
/// conversation punctuation only (ignored).
pub async fn seed_conversations(store: &Store, n: i64) {
    let columns = "INSERT INTO conversation_logs \
        (user_message, nlu_intent, nlu_confidence, nlu_provider, language, model_version, created_at)";
    let values = |i: &str| {
        format!(
            "CASE WHEN {i} % 101 = 0 THEN '?!' ELSE 'fault utterance ' || ({i} % 997) END, \
             'intent_' || ({i} % 997 % 5), 0.40 + ({i} % 13) * 0.05, 'flywheel-router', 'en', 'router-v1.0.0'"
        )
    };
    let sql = match store.backend() {
        Pool::Sqlite(_) => format!(
            "{columns} WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < {n}) \
             SELECT {}, '{DAY}T12:00:00.000Z' FROM seq",
            values("i")
        ),
        Pool::Postgres(_) => format!(
            "{columns} SELECT {}, TIMESTAMPTZ '{DAY} 12:00:00+00' FROM generate_series(1, {n}) AS g(i)",
            values("i")
        ),
    };
    crate::common::exec(store, &sql).await;
}

/// `n` approved samples of five learnable intents, in one statement.
pub async fn seed_approved_samples(store: &Store, n: i64) {
    let columns = "INSERT INTO training_samples (text, normalized_text, intent, language, source, review_status)";
    let text = |i: &str| {
        format!(
            "(CASE {i} % 5 WHEN 0 THEN 'order some pizza' WHEN 1 THEN 'track my parcel' \
             WHEN 2 THEN 'cancel the booking' WHEN 3 THEN 'refund my money' ELSE 'hello there friend' END) \
             || ' number ' || {i}"
        )
    };
    let intent = |i: &str| {
        format!(
            "CASE {i} % 5 WHEN 0 THEN 'order_food' WHEN 1 THEN 'track_order' WHEN 2 THEN 'cancel_order' \
             WHEN 3 THEN 'refund_request' ELSE 'greeting' END"
        )
    };
    let sql = match store.backend() {
        Pool::Sqlite(_) => format!(
            "{columns} WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < {n}) \
             SELECT {t}, {t}, {it}, 'en', 'human', 'approved' FROM seq",
            t = text("i"),
            it = intent("i")
        ),
        Pool::Postgres(_) => format!(
            "{columns} SELECT {t}, {t}, {it}, 'en', 'human', 'approved' FROM generate_series(1, {n}) AS g(i)",
            t = text("i"),
            it = intent("i")
        ),
    };
    crate::common::exec(store, &sql).await;
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
    const CONVERSATIONS: &str = "SELECT CAST(c.id AS BIGINT), c.review_status, s.normalized_text \
        FROM conversation_logs c LEFT JOIN training_samples s ON s.id = c.sample_id ORDER BY c.id";
    const SAMPLES: &str = "SELECT normalized_text, intent, review_status, CAST(occurrences AS BIGINT), \
        CAST(priority AS BIGINT), source, CAST(conversation_id AS BIGINT) \
        FROM training_samples ORDER BY normalized_text";
    match store.backend() {
        Pool::Sqlite(p) => CaptureState {
            conversations: sqlx::query_as(CONVERSATIONS).fetch_all(p).await.unwrap(),
            samples: sqlx::query_as(SAMPLES).fetch_all(p).await.unwrap(),
        },
        Pool::Postgres(p) => CaptureState {
            conversations: sqlx::query_as(CONVERSATIONS).fetch_all(p).await.unwrap(),
            samples: sqlx::query_as(SAMPLES).fetch_all(p).await.unwrap(),
        },
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
    let db = match backend {
        Backend::Sqlite => TestDb::sqlite(),
        Backend::Postgres => TestDb::postgres().expect("PostgreSQL for the reference run"),
    };
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

// ---------------------------------------------------------------- PostgreSQL

fn admin_url() -> String {
    std::env::var("FLYWHEEL_TEST_PG_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The test database's name (the last path segment of its URL).
pub fn pg_name(db: &TestDb) -> String {
    let url = db.database_url.as_deref().expect("a PostgreSQL TestDb");
    url.rsplit('/').next().unwrap().to_string()
}

/// A connection to the maintenance database, outside the test's database.
pub struct PgAdmin(sqlx::PgConnection);

impl PgAdmin {
    pub async fn connect() -> Self {
        use sqlx::Connection;
        Self(
            sqlx::PgConnection::connect(&admin_url())
                .await
                .expect("admin connection"),
        )
    }

    /// Terminate the backends connected to `database` (only those running
    /// a statement when `active_only`); returns how many.
    pub async fn terminate(&mut self, database: &str, active_only: bool) -> i64 {
        let sql = format!(
            "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid(){}) AS t",
            if active_only {
                " AND state = 'active'"
            } else {
                ""
            }
        );
        sqlx::query_scalar(&sql)
            .bind(database)
            .fetch_one(&mut self.0)
            .await
            .unwrap()
    }

    /// Terminate the sessions of `database` that hold an advisory lock
    /// (`lock_holders`: a stage's lock), or all the others; returns how many.
    pub async fn terminate_by_lock(&mut self, database: &str, lock_holders: bool) -> i64 {
        let sql = format!(
            "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a \
             WHERE a.datname = $1 AND a.pid <> pg_backend_pid() AND {} EXISTS \
               (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.locktype = 'advisory')) AS t",
            if lock_holders { "" } else { "NOT" }
        );
        sqlx::query_scalar(&sql)
            .bind(database)
            .fetch_one(&mut self.0)
            .await
            .unwrap()
    }

    /// The database refuses (false) or accepts (true) new connections.
    pub async fn allow_connections(&mut self, database: &str, allow: bool) {
        sqlx::query(&format!(
            "ALTER DATABASE {database} ALLOW_CONNECTIONS {allow}"
        ))
        .execute(&mut self.0)
        .await
        .unwrap();
    }

    /// "The database went away": no new connections, every existing one killed.
    /// A connection that was being set up while connections were turned off
    /// can still arrive after the first sweep, and a terminated backend
    /// answers for a moment before it exits: sweep, waiting for each to
    /// end, until a sweep finds none.
    pub async fn take_away(&mut self, database: &str) {
        self.allow_connections(database, false).await;
        loop {
            let killed: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid()) AS t",
            )
            .bind(database)
            .fetch_one(&mut self.0)
            .await
            .unwrap();
            if killed == 0 {
                break;
            }
        }
    }
}

// ---------------------------------------------------------------- files

/// Every regular file under `dir` (recursively), for "nothing half-written" checks.
pub fn files_under(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

// ---------------------------------------------------------------- weekly training

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
    const VERSIONS: &str = "SELECT version, status FROM model_versions ORDER BY version";
    const USED: &str = "SELECT model_version_target, COUNT(*) FROM training_samples \
        WHERE model_version_target IS NOT NULL GROUP BY model_version_target ORDER BY 1";
    let (versions, used) = match store.backend() {
        Pool::Sqlite(p) => (
            sqlx::query_as(VERSIONS).fetch_all(p).await.unwrap(),
            sqlx::query_as(USED).fetch_all(p).await.unwrap(),
        ),
        Pool::Postgres(p) => (
            sqlx::query_as(VERSIONS).fetch_all(p).await.unwrap(),
            sqlx::query_as(USED).fetch_all(p).await.unwrap(),
        ),
    };
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
        used,
        runs_running: scalar(
            store,
            "SELECT COUNT(*) FROM training_runs WHERE status = 'running'",
        )
        .await,
        runs_succeeded: scalar(
            store,
            "SELECT COUNT(*) FROM training_runs WHERE status = 'succeeded'",
        )
        .await,
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
