//! The one storage API: every query Flywheel runs lives under this module.
//!
//! Two backends, chosen by the database URL: embedded SQLite (the default, a
//! file in the data dir) and PostgreSQL. We keep a typed pool per backend
//! rather than `sqlx::Any`: stage SQL is the same text on both (with `$N`
//! placeholders, which sqlx's SQLite driver accepts), but each backend keeps
//! its native types — `TIMESTAMPTZ` and advisory locks on PostgreSQL, WAL and
//! ISO-8601 text timestamps on SQLite — which `Any` would erase. The
//! [`on_pool!`] macro runs one generic body against whichever pool is live
//! ([`on_tx!`] against an open transaction); where the two really differ,
//! [`backend`] has one implementation each.
//!
//! Grouped by concept, one query per question: `conversations` (and
//! `capture_stats`, `idempotency`, `retention`), `samples` and what is
//! `waiting` for review, `daily_capture` batches, `models` (versions, transitions,
//! registration, the live rows serve loads), `model_performance`,
//! `training_runs`, `jobs`, `label_studio_tasks`, `audits`, `suspects`;
//! `snapshot` only asks them.

pub mod alert_states;
pub mod audits;
mod backend;
pub mod backlog;
pub mod capture_stats;
mod connect;
pub mod conversations;
pub mod counters;
pub mod daily_capture;
pub mod idempotency;
pub mod jobs;
pub mod label_studio_tasks;
mod locks;
pub mod model_performance;
pub mod models;
pub mod retention;
pub mod samples;
pub mod snapshot;
pub mod suspects;
mod timestamp;
pub mod training_runs;
pub mod waiting;

use std::path::PathBuf;

use sqlx::{PgPool, SqlitePool};

pub use connect::{
    LARGE_TABLE_ROWS, LargeTable, MigrationState, MigrationStep, OpenMode, newest_schema_version,
    no_installation_error, open, open_existing, open_unmigrated,
};
pub use locks::StageLock;
pub use timestamp::Timestamp;

use crate::error::Error;

/// A connection pool to one of the two backends.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Handle to Flywheel's database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
    /// Where stage lock files live (SQLite); unused on PostgreSQL.
    lock_dir: PathBuf,
    /// What to show operators: the redacted URL or the SQLite file path.
    description: String,
}

/// Run `$body` with `$pool` bound to the live backend's pool. The body is
/// compiled once per backend, so queries are typed natively on each.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match $store.backend() {
            $crate::storage::Backend::Sqlite($pool) => $body,
            $crate::storage::Backend::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// An open transaction on the live backend, for work that spans calls (an
/// all-or-nothing import, the group commit with its idempotency keys).
pub enum Tx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// Run `$body` with `$tx` bound to the open transaction and `$db` to its
/// database type; like [`on_pool!`], compiled once per backend.
macro_rules! on_tx {
    ($open:expr, |$tx:ident, $db:ident| $body:expr) => {
        match $open {
            $crate::storage::Tx::Sqlite($tx) => {
                #[allow(dead_code)]
                type $db = sqlx::Sqlite;
                $body
            }
            $crate::storage::Tx::Postgres($tx) => {
                #[allow(dead_code)]
                type $db = sqlx::Postgres;
                $body
            }
        }
    };
}
pub(crate) use on_tx;

impl Store {
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// "sqlite /path/flywheel.db" or the redacted PostgreSQL URL.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Start a transaction on the live backend.
    pub(crate) async fn begin(&self) -> Result<Tx, sqlx::Error> {
        match self.backend() {
            Backend::Sqlite(pool) => pool.begin().await.map(Tx::Sqlite),
            Backend::Postgres(pool) => pool.begin().await.map(Tx::Postgres),
        }
    }

    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await)
    }

    /// Cheap round trip, for health checks.
    pub async fn ping(&self) -> Result<(), Error> {
        on_pool!(self, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map(|_| ()))
        .map_err(|err| db_error("database ping", err))
    }
}

/// Turn a sqlx error into an operator-facing one: connection trouble is
/// "unavailable" (exit 69), the rest a failure naming the operation.
pub(crate) fn db_error(operation: &str, err: sqlx::Error) -> Error {
    use sqlx::Error as E;
    match &err {
        E::Io(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed | E::Tls(_) => {
            Error::unavailable(format!("{operation}: database unavailable: {err}"))
        }
        E::Database(db) if is_server_going_away(db.code().as_deref()) => Error::unavailable(
            format!("{operation}: database unavailable: {}", db.message()),
        ),
        E::Database(db) => {
            let message = db.message();
            if message.contains("readonly") || message.contains("read-only") {
                Error::failure(format!(
                    "{operation}: the database is read-only ({message}); check the file's permissions"
                ))
            } else if message.contains("terminating connection")
                || message.contains("the database system is")
                // 55000 from a database with ALLOW_CONNECTIONS false (being
                // maintained, restored or dropped): it went away.
                || message.contains("not currently accepting connections")
            {
                Error::unavailable(format!("{operation}: database unavailable: {message}"))
            } else {
                Error::failure(format!("{operation}: {message}"))
            }
        }
        _ => Error::failure(format!("{operation}: {err}")),
    }
}

/// PostgreSQL SQLSTATEs that mean "the server or the connection is going
/// away" (admin shutdown, crash, connection failure, database dropped):
/// retryable unavailability, not a bug in the statement.
fn is_server_going_away(code: Option<&str>) -> bool {
    matches!(code, Some(c) if c.starts_with("08") || c.starts_with("57P") || c == "3D000" || c == "53300")
}

#[cfg(test)]
mod tests {
    #[test]
    fn server_going_away_codes_are_unavailability() {
        for code in ["57P01", "57P03", "08006", "08003", "3D000", "53300"] {
            assert!(super::is_server_going_away(Some(code)), "{code}");
        }
        for code in ["23505", "42P01", "22P02"] {
            assert!(!super::is_server_going_away(Some(code)), "{code}");
        }
        assert!(!super::is_server_going_away(None));
    }
}
