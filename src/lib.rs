//! Flywheel: the operator console and headless job runner for an NLU
//! router's training loop (capture → auto-filter → review → export → train →
//! evaluate → version → canary → production → capture).
//!
//! The binary is a thin face over this library: every stage is a function
//! taking a [`storage::Store`], the [`config::Config`] and a
//! [`progress::Reporter`] (a progress sender and a cancel token), so the
//! CLI and the console call the same code.
#![forbid(unsafe_code)]

pub mod capture;
pub mod cli;
pub mod config;
pub mod dataset;
pub mod demo;
pub mod doctor;
pub mod domain;
pub mod error;
pub mod health;
pub mod jobs;
pub mod lang;
pub mod lifecycle;
pub mod lines;
pub mod logging;
pub mod privacy;
pub mod progress;
pub mod review;
pub mod router;
pub mod stages;
pub mod storage;
pub mod synth;
pub mod text;
pub mod tui;

pub use error::{Error, Result};
