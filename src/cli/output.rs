//! How commands speak: one JSON summary object on stdout with `--json`,
//! human text otherwise; diagnostics go to stderr and the log file.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

/// Output settings shared by every command.
#[derive(Debug, Clone, Copy, Default)]
pub struct Output {
    /// `--json`: print exactly one JSON object on stdout.
    pub json: bool,
    /// `-q`: no human summary.
    pub quiet: bool,
    /// stderr is a terminal: progress bars instead of log lines.
    pub tty: bool,
}

impl Output {
    pub fn new(json: bool, quiet: bool) -> Self {
        Self {
            json,
            quiet,
            tty: std::io::stderr().is_terminal(),
        }
    }

    /// Print a command's result: the JSON object with `--json`, otherwise the
    /// human text (unless `-q`).
    pub fn summary<T: Serialize>(&self, value: &T, human: impl FnOnce() -> String) {
        if self.json {
            match serde_json::to_string_pretty(value) {
                Ok(text) => print_line(&text),
                Err(err) => eprintln!("error: could not encode the summary as JSON: {err}"),
            }
        } else if !self.quiet {
            let text = human();
            if !text.is_empty() {
                print_line(text.trim_end());
            }
        }
    }

    /// The thread that renders a stage's progress events: an indicatif bar
    /// on a TTY, log lines otherwise. Call [`ProgressDisplay::finish`] when
    /// the stage returns.
    pub fn progress(&self) -> ProgressDisplay {
        super::progress_display::start(self.tty && !self.json && !self.quiet)
    }
}

pub use super::progress_display::ProgressDisplay;

/// Set once a write to stdout found its reader gone.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// `text` and a newline on stdout. A reader that went away (`| head -1`)
/// is remembered for the exit code ([`stdout_closed`]), not a panic as
/// with `println!`; another failure is said on stderr.
pub fn print_line(text: &str) {
    let mut stdout = std::io::stdout().lock();
    if let Err(err) = writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
        } else {
            eprintln!("error: writing stdout: {err}");
        }
    }
}

/// Whether [`print_line`] found stdout closed by its reader: the command
/// then ends with exit 141 and says nothing more.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}
