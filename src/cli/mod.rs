//! Command line face.
pub mod output;
mod progress_display;

use std::process::ExitCode;
pub fn main() -> ExitCode { ExitCode::SUCCESS }
