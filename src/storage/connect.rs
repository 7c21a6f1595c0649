//! Opening the database and applying migrations.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::{Backend, Store, db_error, on_pool};
use crate::config::Config;
use crate::error::{Error, Result};

static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// How long a writer waits for SQLite's lock before giving up: long enough
/// for a daily-capture batch to commit while `serve` keeps writing.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether opening may create an embedded database that is not there yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Stages, `serve`, `migrate`: create the data dir and SQLite file.
    Create,
    /// Commands that only read (`status`, `stats`, `models`, the console,
    /// `doctor`): a missing SQLite file is an error saying so, so a typo in
    /// `--data-dir` never makes an empty installation.
    Existing,
}

/// Open the configured database (creating an embedded one) and bring its
/// schema up to date.
pub async fn open(config: &Config) -> Result<Store> {
    let store = open_unmigrated(config, OpenMode::Create).await?;
    store.migrate().await?;
    Ok(store)
}

/// Open a database that must already exist, and bring its schema up to date.
pub async fn open_existing(config: &Config) -> Result<Store> {
    let store = open_unmigrated(config, OpenMode::Existing).await?;
    store.migrate().await?;
    Ok(store)
}

/// Open the configured database without touching its schema (`doctor`, `migrate`).
pub async fn open_unmigrated(config: &Config, mode: OpenMode) -> Result<Store> {
    match &config.database_url {
        None => open_sqlite_file(&config.sqlite_path(), mode).await,
        Some(url) => {
            let raw = url.expose();
            if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
                open_postgres(raw, &url.redacted(), &config.data_dir).await
            } else if raw.starts_with("sqlite:") {
                let options = SqliteConnectOptions::from_str(raw).map_err(|err| {
                    Error::config(format!(
                        "database URL {} is not valid: {err}",
                        url.redacted()
                    ))
                })?;
                let path = options.get_filename().to_path_buf();
                open_sqlite(options, &path, &config.data_dir, mode).await
            } else {
                let scheme = raw.split(':').next().unwrap_or_default();
                Err(Error::config(format!(
                    "database URL must start with postgres:// or sqlite:// (got `{scheme}:`); \
                     fix DATABASE_URL or --database-url"
                )))
            }
        }
    }
}

async fn open_sqlite_file(path: &Path, mode: OpenMode) -> Result<Store> {
    let options = SqliteConnectOptions::new().filename(path);
    let data_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    open_sqlite(options, path, &data_dir, mode).await
}

async fn open_sqlite(
    options: SqliteConnectOptions,
    path: &Path,
    data_dir: &Path,
    mode: OpenMode,
) -> Result<Store> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| data_dir.to_path_buf(), Path::to_path_buf);
    match mode {
        OpenMode::Create => std::fs::create_dir_all(&dir).map_err(|err| {
            Error::config(format!(
                "cannot create the data directory {}: {err}; set --data-dir or FLYWHEEL_HOME to a writable directory",
                dir.display()
            ))
        })?,
        OpenMode::Existing if !path.exists() => return Err(no_installation_error(path)),
        OpenMode::Existing => {}
    }
    let options = options
        .create_if_missing(mode == OpenMode::Create)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(SQLITE_BUSY_TIMEOUT)
        // sqlx logs a slow statement in full at WARN: for a 5000-row batch
        // that is a line of hundreds of kilobytes. Keep it to debug logs.
        .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1));
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .acquire_timeout(SQLITE_BUSY_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(|err| sqlite_open_error(path, err))?;
    Ok(Store {
        backend: Backend::Sqlite(pool),
        lock_dir: dir.join("locks"),
        description: format!("sqlite {}", path.display()),
    })
}

/// A reader pointed at a data dir where nothing has run.
pub fn no_installation_error(path: &Path) -> Error {
    Error::config(format!(
        "there is no Flywheel database at {}: nothing has run with this data dir (check \
         --data-dir / FLYWHEEL_HOME / DATABASE_URL for a typo). To make an installation here: \
         `flywheel serve` (creates it and bootstraps a model) or `flywheel migrate` (an empty one)",
        path.display()
    ))
}

fn sqlite_open_error(path: &Path, err: sqlx::Error) -> Error {
    let text = err.to_string();
    if text.contains("readonly") || text.contains("read-only") {
        Error::failure(format!(
            "the SQLite database {} is read-only; make it writable (chmod u+w) or point --data-dir elsewhere",
            path.display()
        ))
    } else if text.contains("unable to open") {
        Error::config(format!(
            "cannot open the SQLite database {}: {text}; check that the directory exists and is writable",
            path.display()
        ))
    } else {
        Error::failure(format!(
            "cannot open the SQLite database {}: {text}",
            path.display()
        ))
    }
}

async fn open_postgres(raw: &str, redacted: &str, data_dir: &Path) -> Result<Store> {
    let options = PgConnectOptions::from_str(raw).map_err(|err| {
        Error::config(format!(
            "database URL {redacted} is not a valid PostgreSQL URL: {err}"
        ))
    })?;
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(|err| match err {
            sqlx::Error::Database(db) => Error::config(format!(
                "PostgreSQL at {redacted} refused the connection: {}; check the user, password and database in DATABASE_URL",
                db.message()
            )),
            other => Error::unavailable(format!(
                "cannot connect to PostgreSQL at {redacted}: {other}; is the server running and DATABASE_URL right?"
            )),
        })?;
    Ok(Store {
        backend: Backend::Postgres(pool),
        lock_dir: data_dir.join("locks"),
        description: redacted.to_string(),
    })
}

/// The newest migration this binary carries: the schema version it
/// migrates a database to (the same number on both backends).
pub fn newest_schema_version() -> i64 {
    SQLITE_MIGRATOR
        .iter()
        .chain(POSTGRES_MIGRATOR.iter())
        .map(|m| m.version)
        .max()
        .unwrap_or_default()
}

/// Migrations that read or rewrite every row of a table, and what they do
/// with it: on a big installation they take minutes, and say so first.
/// Add a migration here when it backfills, copies or indexes a table that
/// grows with traffic (conversations, samples).
const READS_WHOLE_TABLE: [(i64, &str, &str); 3] = [
    (
        4,
        "conversation_logs",
        "copies the review links of every conversation into review_links",
    ),
    (
        11,
        "training_samples",
        "indexes every sample by review status",
    ),
    (
        13,
        "label_studio_tasks",
        "indexes every Label Studio task twice",
    ),
];

/// From this many rows a migration reading the whole table is announced as
/// long (on the order of a minute on SQLite and PostgreSQL).
pub const LARGE_TABLE_ROWS: i64 = 100_000;

/// One migration about to be applied.
#[derive(Debug, Clone)]
pub struct MigrationStep {
    pub version: i64,
    /// sqlx's description: the file name after the number, `_` as spaces.
    pub description: String,
    /// The large table it reads, when it reads one.
    pub large_table: Option<LargeTable>,
}

#[derive(Debug, Clone)]
pub struct LargeTable {
    pub table: &'static str,
    pub rows: i64,
    /// What the migration does with every row.
    pub work: &'static str,
}

impl MigrationStep {
    /// `applying migration 0004 (review links)`, and when it reads a large
    /// table, how large and that it takes a while.
    pub fn message(&self) -> String {
        let mut text = format!(
            "applying migration {:04} ({})",
            self.version, self.description
        );
        if let Some(large) = &self.large_table {
            text.push_str(&format!(
                ": it {}, and {} holds {} rows: this may take minutes; let it finish \
                 (it is one transaction: interrupted, it leaves the schema as it was)",
                large.work, large.table, large.rows
            ));
        }
        text
    }
}

/// Migrations handed to sqlx as they are (a prefix of the compiled-in set).
#[derive(Debug)]
struct FirstMigrations(Vec<sqlx::migrate::Migration>);

impl<'s> sqlx::migrate::MigrationSource<'s> for FirstMigrations {
    fn resolve(
        self,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = std::result::Result<
                        Vec<sqlx::migrate::Migration>,
                        sqlx::error::BoxDynError,
                    >,
                > + Send
                + 's,
        >,
    > {
        Box::pin(async move { Ok(self.0) })
    }
}

fn migrate_error(err: MigrateError) -> Error {
    match err {
        MigrateError::VersionMissing(version) => Error::config(format!(
            "the database was migrated by a newer Flywheel (migration {version} is unknown here); upgrade flywheel"
        )),
        MigrateError::VersionMismatch(version) => Error::config(format!(
            "migration {version} was changed after it was applied to this database; restore the original migration files"
        )),
        MigrateError::Execute(err) => db_error("applying migrations", err),
        other => Error::failure(format!("applying migrations: {other}")),
    }
}

/// What `doctor` reports about the schema.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MigrationState {
    pub known: Vec<i64>,
    pub applied: Vec<i64>,
}

impl MigrationState {
    pub fn pending(&self) -> Vec<i64> {
        self.known
            .iter()
            .copied()
            .filter(|v| !self.applied.contains(v))
            .collect()
    }
    /// Applied by a newer Flywheel than this one.
    pub fn unknown(&self) -> Vec<i64> {
        self.applied
            .iter()
            .copied()
            .filter(|v| !self.known.contains(v))
            .collect()
    }
}

impl Store {
    fn migrator(&self) -> &'static Migrator {
        match self.backend() {
            Backend::Sqlite(_) => &SQLITE_MIGRATOR,
            Backend::Postgres(_) => &POSTGRES_MIGRATOR,
        }
    }

    /// Apply pending migrations, each named in the log before it runs (a
    /// warning when it reads a large table). Creating a new database's
    /// schema is quick and says nothing but at debug level.
    pub async fn migrate(&self) -> Result<MigrationState> {
        let upgrade = !self.migration_state().await?.applied.is_empty();
        self.migrate_with(None, &mut |step| {
            if step.large_table.is_some() {
                tracing::warn!("{}", step.message());
            } else if upgrade {
                tracing::info!("{}", step.message());
            } else {
                tracing::debug!("{}", step.message());
            }
        })
        .await
    }

    /// Apply pending migrations up to `up_to` (all when `None`) one at a
    /// time, calling `before_each` before each. sqlx runs a migration as one
    /// statement batch in one transaction, so there is no per-row progress
    /// to report: the step names the migration and, when it reads a table
    /// holding [`LARGE_TABLE_ROWS`] rows or more, that table and its rows.
    ///
    /// PostgreSQL serialises concurrent callers with an advisory lock inside
    /// sqlx; for SQLite we hold a file lock so two processes starting at
    /// once do not both try.
    pub async fn migrate_with(
        &self,
        up_to: Option<i64>,
        before_each: &mut (dyn FnMut(&MigrationStep) + Send),
    ) -> Result<MigrationState> {
        let _guard = match self.backend() {
            Backend::Sqlite(_) => Some(self.lock_file_blocking("migrate").await?),
            Backend::Postgres(_) => None,
        };
        let migrator = self.migrator();
        let state = self.migration_state().await?;
        if let Some(&version) = state.unknown().first() {
            return Err(migrate_error(MigrateError::VersionMissing(version)));
        }
        for migration in migrator.iter() {
            if up_to.is_some_and(|last| migration.version > last)
                || state.applied.contains(&migration.version)
            {
                continue;
            }
            let large_table = self.large_table_read_by(migration.version).await?;
            before_each(&MigrationStep {
                version: migration.version,
                description: migration.description.to_string(),
                large_table,
            });
            // sqlx applies what it is given in order and checks the
            // checksums of what was applied: give it the migrations up to
            // this one.
            let first = sqlx::migrate::Migrator::new(FirstMigrations(
                migrator
                    .iter()
                    .filter(|m| m.version <= migration.version)
                    .cloned()
                    .collect(),
            ))
            .await
            .map_err(migrate_error)?;
            on_pool!(self, |pool| first.run(pool).await).map_err(migrate_error)?;
        }
        // nothing pending: still check what was applied is what we carry
        on_pool!(self, |pool| match up_to {
            None => migrator.run(pool).await,
            Some(_) => Ok(()),
        })
        .map_err(migrate_error)?;
        self.migration_state().await
    }

    /// The large table migration `version` reads, if it is large here.
    async fn large_table_read_by(&self, version: i64) -> Result<Option<LargeTable>> {
        let Some(&(_, table, work)) = READS_WHOLE_TABLE.iter().find(|(v, ..)| *v == version) else {
            return Ok(None);
        };
        // `table` is one of READS_WHOLE_TABLE's names, never input.
        let sql = format!("SELECT COUNT(*) FROM {table}");
        let rows = on_pool!(self, |pool| {
            sqlx::query_scalar::<_, i64>(&sql).fetch_one(pool).await
        })
        .map_err(|err| db_error("counting the rows a migration reads", err))?;
        Ok((rows >= LARGE_TABLE_ROWS).then_some(LargeTable { table, rows, work }))
    }

    /// Which migrations this binary knows and which the database has.
    pub async fn migration_state(&self) -> Result<MigrationState> {
        let known: Vec<i64> = self.migrator().iter().map(|m| m.version).collect();
        let table_exists = on_pool!(self, |pool| {
            sqlx::query_scalar::<_, i64>(match self.backend() {
                Backend::Sqlite(_) => {
                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'"
                }
                Backend::Postgres(_) => {
                    "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = '_sqlx_migrations' AND table_schema = current_schema()"
                }
            })
            .fetch_one(pool)
            .await
        })
        .map_err(|err| db_error("reading the schema version", err))?;
        let applied = if table_exists == 0 {
            Vec::new()
        } else {
            on_pool!(self, |pool| {
                sqlx::query_scalar::<_, i64>(
                    "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version",
                )
                .fetch_all(pool)
                .await
            })
            .map_err(|err| db_error("reading the schema version", err))?
        };
        Ok(MigrationState { known, applied })
    }

    /// Directory of the SQLite stage lock files.
    pub(super) fn lock_dir(&self) -> &PathBuf {
        &self.lock_dir
    }
}
