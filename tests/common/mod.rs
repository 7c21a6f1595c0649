//! Shared test fixtures: a fresh database per test on SQLite and on the real
//! PostgreSQL at 127.0.0.1:5432, and the `flywheel` binary pointed at it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use flywheel::config::{Config, DatabaseUrl};
use tempfile::TempDir;

/// Admin connection used to create and drop per-test databases.
fn admin_url() -> String {
    std::env::var("FLYWHEEL_TEST_PG_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Run a future to completion on a private runtime in its own thread, so it
/// works from sync tests, async tests and `Drop` alike.
pub fn block_on<F: std::future::Future + Send + 'static>(fut: F) -> F::Output
where
    F::Output: Send + 'static,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("test runtime")
            .block_on(fut)
    })
    .join()
    .expect("test runtime thread")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One test's database and data dir; the PostgreSQL database is dropped
/// when this goes out of scope.
pub struct TestDb {
    pub backend: Backend,
    pub data_dir: TempDir,
    /// `None` for the embedded SQLite default.
    pub database_url: Option<String>,
    pg_name: Option<String>,
}

impl TestDb {
    pub fn sqlite() -> Self {
        Self {
            backend: Backend::Sqlite,
            data_dir: tempfile::tempdir().expect("tempdir"),
            database_url: None,
            pg_name: None,
        }
    }

    /// A fresh PostgreSQL database, or `None` (with a message) when the
    /// server is unreachable outside CI. In CI an unreachable server fails.
    pub fn postgres() -> Option<Self> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "flywheel_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        );
        let admin = admin_url();
        let create = format!("CREATE DATABASE {name}");
        let result = block_on(async move {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&admin).await?;
            sqlx::query(&create).execute(&mut conn).await?;
            conn.close().await
        });
        if let Err(err) = result {
            if in_ci() {
                panic!("PostgreSQL at {} is required in CI: {err}", admin_url());
            }
            eprintln!("skipping the PostgreSQL half of this test: {err}");
            return None;
        }
        let base = admin_url();
        let url = match base.rfind('/') {
            Some(i) => format!("{}/{name}", &base[..i]),
            None => panic!("admin URL {base} has no database part"),
        };
        Some(Self {
            backend: Backend::Postgres,
            data_dir: tempfile::tempdir().expect("tempdir"),
            database_url: Some(url),
            pg_name: Some(name),
        })
    }

    /// SQLite, plus PostgreSQL when reachable (always in CI).
    pub fn all() -> Vec<Self> {
        let mut dbs = vec![Self::sqlite()];
        dbs.extend(Self::postgres());
        dbs
    }

    pub fn data_path(&self) -> &Path {
        self.data_dir.path()
    }

    pub fn config(&self) -> Config {
        Config {
            data_dir: self.data_dir.path().to_path_buf(),
            database_url: self.database_url.clone().map(DatabaseUrl::new),
            ..Config::default()
        }
    }

    pub async fn store(&self) -> flywheel::storage::Store {
        flywheel::storage::open(&self.config())
            .await
            .expect("open test store")
    }

    /// The `flywheel` binary with this database, an isolated HOME and no
    /// configuration leaking in from the developer's environment.
    pub fn cmd(&self) -> assert_cmd::Command {
        let mut cmd = flywheel_cmd(self.data_dir.path());
        cmd.arg("--data-dir").arg(self.data_dir.path());
        if let Some(url) = &self.database_url {
            cmd.arg("--database-url").arg(url);
        }
        cmd
    }
}

/// The binary with HOME, XDG dirs and the working directory inside `home`.
pub fn flywheel_cmd(home: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("flywheel").expect("flywheel binary");
    for (key, _) in std::env::vars() {
        if key == "DATABASE_URL" || key.starts_with("LABEL_STUDIO_") || key.starts_with("FLYWHEEL_")
        {
            cmd.env_remove(key);
        }
    }
    cmd.env("HOME", home)
        .env("XDG_DATA_HOME", home.join("xdg-data"))
        .env("XDG_CONFIG_HOME", home.join("xdg-config"))
        .current_dir(home);
    cmd
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            let admin = admin_url();
            let _ = block_on(async move {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&admin).await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await?;
                conn.close().await
            });
        }
    }
}

/// Parse a command's stdout as the one JSON object `--json` promises.
pub fn json_stdout(output: &std::process::Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(&text).unwrap_or_else(|err| {
        panic!(
            "stdout is not one JSON object ({err}):\n{text}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

pub fn path_string(p: &Path) -> String {
    PathBuf::from(p).display().to_string()
}

/// Run one statement against whichever backend `store` uses; panics with the SQL.
pub async fn exec(store: &flywheel::storage::Store, sql: &str) {
    use flywheel::storage::Backend as Pool;
    match store.backend() {
        Pool::Sqlite(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
        Pool::Postgres(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The single integer a query returns (a `COUNT(*)`, usually).
pub async fn scalar(store: &flywheel::storage::Store, sql: &str) -> i64 {
    use flywheel::storage::Backend as Pool;
    match store.backend() {
        Pool::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await,
        Pool::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await,
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}
