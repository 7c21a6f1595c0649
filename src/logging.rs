//! Logging: a daily rolling file in the logs dir (kept 14 days) plus
//! human-readable lines on stderr. stdout is reserved for command output.
//! A log file that cannot be opened is a warning, never a crash.

use std::path::Path;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{Builder, Rotation};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::MakeWriterExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Quiet crates that are chatty at INFO.
const BASE_FILTER: &str = "sqlx=warn,hyper=warn,reqwest=warn,h2=warn,rustls=warn";

/// Keep this alive until exit so buffered file lines are flushed.
pub struct LogGuard {
    _file: Option<WorkerGuard>,
}

/// What log lines go to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stderr {
    /// None: the console draws on the terminal.
    Off,
    /// INFO and up (DEBUG with `-v`, TRACE with `-vv`).
    Log,
    /// A command whose output is its own summary (`demo --headless`):
    /// warnings and errors, the INFO lines with `-v`, DEBUG with `-vv`.
    Summary,
}

/// `verbosity`: -1 quiet, 0 default, 1 `-v`, 2+ `-vv`. `FLYWHEEL_LOG`
/// (EnvFilter syntax) overrides the level of both outputs.
pub fn init(logs_dir: Option<&Path>, verbosity: i8, stderr: Stderr) -> LogGuard {
    use tracing::Level;
    // A summary command shows one level less: its INFO lines need `-v`.
    let shown = match stderr {
        Stderr::Summary if verbosity >= 0 => verbosity - 1,
        _ => verbosity,
    };
    let stderr_level = match (shown, verbosity) {
        (_, i8::MIN..=-1) => Level::ERROR,
        (-1, _) => Level::WARN,
        (0, _) => Level::INFO,
        (1, _) => Level::DEBUG,
        _ => Level::TRACE,
    };
    let file_level = if verbosity >= 1 {
        Level::DEBUG
    } else {
        Level::INFO
    };
    let custom = std::env::var("FLYWHEEL_LOG")
        .ok()
        .and_then(|spec| EnvFilter::try_new(spec).ok());
    // One global filter, and each output's level applied by its writer.
    // Per-layer filters (`Layer::with_filter`) would be simpler, but their
    // thread-local state is corrupted by `tracing::enabled!` checks that
    // are not followed by an event (sqlx does this on PostgreSQL at debug
    // level), which silently dropped unrelated INFO lines such as serve's
    // "listening" and the bootstrap's. Seen with tracing-subscriber 0.3.
    let (filter, stderr_level, file_level) = match custom {
        Some(filter) => (filter, Level::TRACE, Level::TRACE),
        None => {
            let most = stderr_level.max(file_level);
            let filter = EnvFilter::new(format!(
                "{},{BASE_FILTER}",
                most.as_str().to_ascii_lowercase()
            ));
            (filter, stderr_level, file_level)
        }
    };

    let mut warning = None;
    let (file_writer, guard) = match logs_dir.map(open_rolling) {
        Some(Ok(appender)) => {
            let (writer, guard) = tracing_appender::non_blocking(appender);
            (Some(writer), Some(guard))
        }
        Some(Err(err)) => {
            warning = Some(err);
            (None, None)
        }
        None => (None, None),
    };

    let file_layer = file_writer.map(|writer| {
        tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(writer.with_max_level(file_level))
    });
    let stderr_layer = (stderr != Stderr::Off).then(|| {
        tracing_subscriber::fmt::layer()
            // Colour only for a person at a terminal: cron appends stderr to files.
            .with_ansi(
                std::io::IsTerminal::is_terminal(&std::io::stderr())
                    && std::env::var_os("NO_COLOR").is_none(),
            )
            .with_writer(std::io::stderr.with_max_level(stderr_level))
            .with_target(false)
            .without_time()
    });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(file_layer)
        .with(stderr_layer)
        .try_init();
    if let Some(err) = warning {
        tracing::warn!("logging to stderr only: {err}");
    }
    LogGuard { _file: guard }
}

fn open_rolling(dir: &Path) -> Result<tracing_appender::rolling::RollingFileAppender, String> {
    std::fs::create_dir_all(dir)
        .map_err(|err| format!("cannot create the logs directory {}: {err}", dir.display()))?;
    Builder::new()
        .rotation(Rotation::DAILY)
        .filename_prefix("flywheel")
        .filename_suffix("log")
        .max_log_files(14)
        .build(dir)
        .map_err(|err| format!("cannot open a log file in {}: {err}", dir.display()))
}
