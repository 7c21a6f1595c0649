//! Test databases on both backends — embedded SQLite and the real
//! PostgreSQL at 127.0.0.1:5432 — and the few SQL helpers tests use to poke
//! a database directly. This is the one place in the tests that matches on
//! the backend: everything else asks the storage API or these helpers.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use flywheel::config::{Config, DatabaseUrl};
use flywheel::storage::{Backend as Pool, Store};
use sqlx::Connection;
use tempfile::TempDir;

/// Admin connection used to create and drop per-test databases.
pub fn admin_url() -> String {
    std::env::var("FLYWHEEL_TEST_PG_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn in_ci() -> bool {
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
        let create = format!("CREATE DATABASE {name}");
        if let Err(err) = block_on(admin(create)) {
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

    /// A fresh database of `backend` (PostgreSQL must be reachable).
    pub fn of(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => Self::sqlite(),
            Backend::Postgres => Self::postgres().expect("PostgreSQL for this test"),
        }
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

    /// The PostgreSQL database's name (panics on SQLite).
    pub fn pg_name(&self) -> &str {
        self.pg_name.as_deref().expect("a PostgreSQL TestDb")
    }

    pub fn config(&self) -> Config {
        Config {
            data_dir: self.data_dir.path().to_path_buf(),
            database_url: self.database_url.clone().map(DatabaseUrl::new),
            ..Config::default()
        }
    }

    /// Open (creating and migrating) this database.
    pub async fn store(&self) -> Store {
        flywheel::storage::open(&self.config())
            .await
            .expect("open test store")
    }

    /// Run `body` with this database's open store on a runtime of its own;
    /// the store is closed afterwards.
    pub fn with_store<F, Fut, T>(&self, body: F) -> T
    where
        F: FnOnce(Store) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = T> + Send,
        T: Send + 'static,
    {
        let config = self.config();
        block_on(async move {
            let store = flywheel::storage::open(&config)
                .await
                .expect("open test store");
            let out = body(store.clone()).await;
            store.close().await;
            out
        })
    }
}

/// Run `body` once per backend (SQLite, then PostgreSQL when reachable)
/// with a fresh database and its open store.
pub fn for_each_backend<F, Fut>(body: F)
where
    F: Fn(Store) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    for db in TestDb::all() {
        db.with_store(body.clone());
    }
}

/// [`for_each_backend`], with the installation's configuration too.
pub fn for_each_backend_with_config<F, Fut>(body: F)
where
    F: Fn(Store, Config) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    for db in TestDb::all() {
        let config = db.config();
        let body = body.clone();
        db.with_store(move |store| body(store, config));
    }
}

/// One statement on the maintenance database.
async fn admin(sql: String) -> Result<(), sqlx::Error> {
    let mut conn = sqlx::PgConnection::connect(&admin_url()).await?;
    sqlx::query(&sql).execute(&mut conn).await?;
    conn.close().await
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            let _ = block_on(admin(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )));
        }
    }
}

// ---------------------------------------------------------------- SQL

/// A row type both backends can decode.
pub trait Row:
    for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
    + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
    + Send
    + Unpin
{
}

impl<T> Row for T where
    T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + Send
        + Unpin
{
}

/// Every row of a query, or the database's error.
pub async fn try_rows<T: Row>(store: &Store, sql: &str) -> Result<Vec<T>, sqlx::Error> {
    match store.backend() {
        Pool::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await,
        Pool::Postgres(p) => sqlx::query_as(sql).fetch_all(p).await,
    }
}

/// Every row of a query; panics with the SQL.
pub async fn rows<T: Row>(store: &Store, sql: &str) -> Vec<T> {
    try_rows(store, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The first column of every row.
pub async fn column<T>(store: &Store, sql: &str) -> Vec<T>
where
    (T,): Row,
{
    rows::<(T,)>(store, sql)
        .await
        .into_iter()
        .map(|(v,)| v)
        .collect()
}

/// The one value a query returns.
pub async fn value<T>(store: &Store, sql: &str) -> T
where
    (T,): Row,
{
    let mut values = column(store, sql).await;
    assert_eq!(values.len(), 1, "{sql}: not one row");
    values.remove(0)
}

/// The single integer a query returns (a `COUNT(*)`, usually).
pub async fn scalar(store: &Store, sql: &str) -> i64 {
    value(store, sql).await
}

/// Run one statement, or return the database's error.
pub async fn try_exec(store: &Store, sql: &str) -> Result<(), sqlx::Error> {
    match store.backend() {
        Pool::Sqlite(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
        Pool::Postgres(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
    }
}

/// Run one statement; panics with the SQL.
pub async fn exec(store: &Store, sql: &str) {
    try_exec(store, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// How many rows a query returns, or the database's error.
pub async fn try_row_count(store: &Store, sql: &str) -> Result<usize, sqlx::Error> {
    match store.backend() {
        Pool::Sqlite(p) => sqlx::query(sql).fetch_all(p).await.map(|r| r.len()),
        Pool::Postgres(p) => sqlx::query(sql).fetch_all(p).await.map(|r| r.len()),
    }
}

/// "A sequence of integers 1..=n" as a table `seq(i)`, in each backend's
/// idiom: a recursive CTE on SQLite, generate_series on PostgreSQL.
pub fn numbers(store: &Store, n: i64) -> String {
    if store.is_postgres() {
        format!("(SELECT i FROM generate_series(1, {n}) AS g(i)) AS seq")
    } else {
        format!(
            "(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) SELECT i FROM s) AS seq"
        )
    }
}

// ---------------------------------------------------------------- locks

/// Another client holding the write lock of `conversation_logs`, so the
/// writer blocks on its commit until [`WriteBlock::release`].
pub enum WriteBlock {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl WriteBlock {
    pub async fn take(db: &TestDb) -> Self {
        match &db.database_url {
            None => {
                let url = format!("sqlite://{}", db.data_path().join("flywheel.db").display());
                let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
                // The writer waits on SQLite's busy timeout (10 s) meanwhile.
                sqlx::query("BEGIN IMMEDIATE")
                    .execute(&mut conn)
                    .await
                    .unwrap();
                WriteBlock::Sqlite(conn)
            }
            Some(url) => {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
                sqlx::query("LOCK TABLE conversation_logs IN SHARE MODE")
                    .execute(&mut conn)
                    .await
                    .unwrap();
                WriteBlock::Postgres(conn)
            }
        }
    }

    pub async fn release(self) {
        match self {
            WriteBlock::Sqlite(mut c) => sqlx::query("ROLLBACK").execute(&mut c).await.map(|_| ()),
            WriteBlock::Postgres(mut c) => {
                sqlx::query("ROLLBACK").execute(&mut c).await.map(|_| ())
            }
        }
        .unwrap();
    }
}

// ---------------------------------------------------------------- PostgreSQL admin

/// A connection to the maintenance database, outside the test's database.
pub struct PgAdmin(sqlx::PgConnection);

impl PgAdmin {
    pub async fn connect() -> Self {
        Self(
            sqlx::PgConnection::connect(&admin_url())
                .await
                .expect("admin connection"),
        )
    }

    async fn count(&mut self, sql: &str, database: &str) -> i64 {
        sqlx::query_scalar(sql)
            .bind(database)
            .fetch_one(&mut self.0)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
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
        self.count(&sql, database).await
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
        self.count(&sql, database).await
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

    pub async fn close(self) {
        self.0.close().await.expect("close the admin connection");
    }

    /// "The database went away": no new connections, every existing one killed.
    /// A connection that was being set up while connections were turned off
    /// can still arrive after the first sweep, and a terminated backend
    /// answers for a moment before it exits: sweep, waiting for each to
    /// end, until a sweep finds none.
    pub async fn take_away(&mut self, database: &str) {
        self.allow_connections(database, false).await;
        while self
            .count(
                "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid()) AS t",
                database,
            )
            .await
            > 0
        {}
    }
}

/// `at` as a literal of each backend (see [`timestamp_literal`]).
pub fn timestamp_at(store: &Store, at: chrono::DateTime<chrono::Utc>) -> String {
    timestamp_literal(store, &at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

/// A timestamp literal (RFC 3339, UTC, milliseconds: `2026-03-10T12:00:00.000Z`)
/// as each backend stores it: ISO-8601 text on SQLite, `TIMESTAMPTZ` on
/// PostgreSQL (where an untyped literal in a SELECT list would be text).
pub fn timestamp_literal(store: &Store, rfc3339: &str) -> String {
    if store.is_postgres() {
        format!("TIMESTAMPTZ '{rfc3339}'")
    } else {
        format!("'{rfc3339}'")
    }
}
