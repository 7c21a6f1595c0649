//! Per-stage locks that the operating system or the database releases when
//! the holder dies, so a crashed run never leaves a lock behind: a
//! PostgreSQL advisory lock held on a dedicated connection, or an exclusive
//! `flock` on a file beside the SQLite database. A held lock is a truthful
//! liveness signal; a pid file is not.

use std::fs::{File, OpenOptions, TryLockError};

use sha2::{Digest, Sha256};
use sqlx::{Connection, PgConnection};

use super::{Backend, Store, db_error};
use crate::error::{Error, Result};

/// Proof that this process runs a stage; dropping it releases the lock.
#[derive(Debug)]
pub enum StageLock {
    File(File),
    Postgres(PgConnection),
}

/// How often a PostgreSQL lock's session is checked while its stage runs.
const LIVENESS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

impl StageLock {
    /// Resolves only when the lock is gone: the PostgreSQL session that
    /// holds it ended (killed, server restarted, network cut), so another
    /// run may already have taken it. A file lock lives as long as this
    /// process, so for SQLite this never resolves.
    pub async fn lost(&mut self) {
        match self {
            StageLock::File(_) => std::future::pending().await,
            StageLock::Postgres(conn) => loop {
                tokio::time::sleep(LIVENESS_INTERVAL).await;
                let alive = tokio::time::timeout(LIVENESS_INTERVAL, conn.ping()).await;
                if !matches!(alive, Ok(Ok(()))) {
                    return;
                }
            },
        }
    }

    /// Release now rather than on drop (drop releases too).
    pub async fn release(self) {
        if let StageLock::Postgres(conn) = self {
            // Closing the session releases every advisory lock it holds.
            let _ = conn.close().await;
        }
    }
}

/// The advisory-lock key of a stage: stable across processes and versions.
pub fn advisory_key(name: &str) -> i64 {
    let digest = Sha256::digest(format!("flywheel.stage.{name}").as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

impl Store {
    /// Take the lock of `name` if nobody holds it; `None` when another run does.
    pub async fn try_lock_stage(&self, name: &str) -> Result<Option<StageLock>> {
        match self.backend() {
            Backend::Postgres(pool) => {
                let mut conn = pool
                    .acquire()
                    .await
                    .map_err(|err| db_error("taking the stage lock", err))?
                    .detach();
                let acquired: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                    .bind(advisory_key(name))
                    .fetch_one(&mut conn)
                    .await
                    .map_err(|err| db_error("taking the stage lock", err))?;
                if acquired {
                    Ok(Some(StageLock::Postgres(conn)))
                } else {
                    let _ = conn.close().await;
                    Ok(None)
                }
            }
            Backend::Sqlite(_) => {
                let file = self.open_lock_file(name)?;
                match file.try_lock() {
                    Ok(()) => Ok(Some(StageLock::File(file))),
                    Err(TryLockError::WouldBlock) => Ok(None),
                    Err(TryLockError::Error(err)) => Err(Error::failure(format!(
                        "taking the lock file for {name}: {err}"
                    ))),
                }
            }
        }
    }

    /// Wait for the lock file `name` (short critical sections like migrations).
    pub(super) async fn lock_file_blocking(&self, name: &str) -> Result<File> {
        let file = self.open_lock_file(name)?;
        tokio::task::spawn_blocking(move || file.lock().map(|()| file))
            .await
            .map_err(|err| Error::failure(format!("lock task failed: {err}")))?
            .map_err(|err| Error::failure(format!("waiting for the {name} lock: {err}")))
    }

    fn open_lock_file(&self, name: &str) -> Result<File> {
        let dir = self.lock_dir();
        std::fs::create_dir_all(dir).map_err(|err| {
            Error::failure(format!(
                "cannot create the lock directory {}: {err}",
                dir.display()
            ))
        })?;
        let path = dir.join(format!("{name}.lock"));
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|err| {
                Error::failure(format!("cannot open lock file {}: {err}", path.display()))
            })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn advisory_keys_are_stable_and_distinct() {
        assert_eq!(
            super::advisory_key("daily-capture"),
            super::advisory_key("daily-capture")
        );
        assert_ne!(
            super::advisory_key("daily-capture"),
            super::advisory_key("export")
        );
    }
}
