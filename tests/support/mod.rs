//! Shared test helpers. Include with `mod support;` from a test file.
#![allow(dead_code)] // each test binary uses a different subset

pub mod label_studio;
mod label_studio_process;
