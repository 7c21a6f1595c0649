//! Helpers of the capture tests: a real `flywheel serve` process on a free
//! port, a rule model in production, polling with deadlines, SQL for
//! checking what was stored.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use flywheel::storage::{Backend as Pool, Store};

use crate::common::TestDb;

/// Poll `check` until it returns `Some`, or panic after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A running `flywheel serve`.
pub struct Server {
    child: Child,
    pub base: String,
    pub log: PathBuf,
}

/// The binary with the test's database and nothing from the environment.
pub fn flywheel(db: &TestDb) -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("flywheel"));
    for (key, _) in std::env::vars() {
        if key == "DATABASE_URL" || key.starts_with("LABEL_STUDIO_") || key.starts_with("FLYWHEEL_")
        {
            cmd.env_remove(key);
        }
    }
    let home = db.data_path();
    cmd.env("HOME", home)
        .env("XDG_DATA_HOME", home.join("xdg-data"))
        .env("XDG_CONFIG_HOME", home.join("xdg-config"))
        .current_dir(home)
        .arg("--data-dir")
        .arg(home);
    if let Some(url) = &db.database_url {
        cmd.arg("--database-url").arg(url);
    }
    cmd
}

impl Server {
    /// Start serve on a free port with `args` and `env`, and wait until it listens.
    /// Tests choose their own models, so this passes `--no-bootstrap`.
    pub fn start(db: &TestDb, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::spawn(db, args, env, false)
    }

    /// Start serve as an operator would, bootstrapping a fresh installation.
    pub fn start_bootstrapping(db: &TestDb, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::spawn(db, args, env, true)
    }

    fn spawn(db: &TestDb, args: &[&str], env: &[(&str, &str)], bootstrap: bool) -> Self {
        static STARTS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = db.data_path().join(format!("serve-{n}.stderr"));
        let mut cmd = flywheel(db);
        cmd.args(["-vv", "serve", "--addr", "127.0.0.1:0"])
            .args(args);
        if !bootstrap {
            cmd.arg("--no-bootstrap");
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn flywheel serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("flywheel serve listening on ") {
                    let _ = tx.send(addr.to_string());
                }
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                panic!(
                    "serve did not start:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            });
        Self { child, base, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Wait for the process to end (deadline 30 s).
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "serve did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Put a keyword model in production as `rules-v1`.
pub async fn install_rules_model(db: &TestDb, store: &Store) {
    let dir = db.data_path().join("models/rules-v1");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("keywords.json"),
        r#"{"version": "rules-v1", "intents": {"order_food": ["pizza", "burger", "khana"], "greet": ["hello", "namaste"], "track_order": ["where is my order", "track"]}}"#,
    )
    .unwrap();
    exec(
        store,
        "INSERT INTO model_versions (version, status, artifact_path, traffic_percentage) \
         VALUES ('rules-v1', 'production', 'models/rules-v1', 100)",
    )
    .await;
}

pub async fn exec(store: &Store, sql: &str) {
    match store.backend() {
        Pool::Sqlite(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
        Pool::Postgres(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
    }
    .unwrap_or_else(|err| panic!("{sql}: {err}"));
}

pub async fn count(store: &Store, where_clause: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM conversation_logs WHERE {where_clause}");
    match store.backend() {
        Pool::Sqlite(p) => sqlx::query_scalar(&sql).fetch_one(p).await,
        Pool::Postgres(p) => sqlx::query_scalar(&sql).fetch_one(p).await,
    }
    .unwrap_or_else(|err| panic!("{sql}: {err}"))
}

/// Every text column of every row, joined: to prove a value is stored nowhere.
pub async fn all_text(store: &Store) -> String {
    let sql = "SELECT COALESCE(session_id,'') || '|' || COALESCE(user_hash,'') || '|' || user_message || '|' || \
               COALESCE(routing_decision,'') || '|' || COALESCE(model_version,'') || '|' || COALESCE(nlu_intent,'') \
               FROM conversation_logs";
    let rows: Vec<String> = match store.backend() {
        Pool::Sqlite(p) => sqlx::query_scalar(sql).fetch_all(p).await,
        Pool::Postgres(p) => sqlx::query_scalar(sql).fetch_all(p).await,
    }
    .unwrap();
    rows.join("\n")
}

/// A client with a short timeout: a hung server fails the test instead of blocking it.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(64)
        .build()
        .unwrap()
}
