//! The tests' one support module: every test file declares `mod support;`.
//!
//! - [`backends`]: a fresh database per test on SQLite and on PostgreSQL,
//!   `for_each_backend`, the SQL helpers for poking a database directly;
//! - [`environment`]: the binary isolated from the developer's environment;
//! - [`processes`]: running the binary, to completion or in the background;
//! - [`serve`]: a real `flywheel serve` and HTTP clients for it;
//! - [`fixtures`]: conversations, samples and models to start from;
//! - [`state`]: what the stages leave, to compare a re-run with a clean run;
//! - [`fuzz`]: generators of the property-based tests;
//! - [`label_studio`]: a real Label Studio; [`fake_label_studio`]: one that
//!   misbehaves on purpose.
// Each test file is a crate of its own and uses a different subset.
#![allow(dead_code, unused_imports)]

pub mod backends;
pub mod environment;
pub mod fake_label_studio;
pub mod fixtures;
pub mod fuzz;
pub mod label_studio;
mod label_studio_process;
pub mod processes;
pub mod serve;
pub mod state;

pub use backends::{
    Backend, TestDb, block_on, column, exec, for_each_backend, for_each_backend_with_config, rows,
    scalar, value,
};
pub use processes::{Exits, json_stdout};
