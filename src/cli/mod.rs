//! Command line face.
pub mod output;
mod progress_display;
pub mod router;

use std::process::ExitCode;
pub fn main() -> ExitCode { ExitCode::SUCCESS }
