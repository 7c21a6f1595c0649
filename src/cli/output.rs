//! How commands speak: one JSON summary object on stdout with `--json`,
//! human text otherwise; diagnostics go to stderr and the log file.

use std::io::IsTerminal;

use serde::Serialize;

use crate::progress::Reporter;

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
                Ok(text) => println!("{text}"),
                Err(err) => eprintln!("error: could not encode the summary as JSON: {err}"),
            }
        } else if !self.quiet {
            let text = human();
            if !text.is_empty() {
                println!("{}", text.trim_end());
            }
        }
    }

    /// A reporter for a stage plus the thread that renders its events: an
    /// indicatif bar on a TTY, log lines otherwise. Call
    /// [`ProgressDisplay::finish`] when the stage returns.
    pub fn progress(&self) -> (Reporter, ProgressDisplay) {
        super::progress_display::start(self.tty && !self.json && !self.quiet)
    }
}

pub use super::progress_display::ProgressDisplay;
