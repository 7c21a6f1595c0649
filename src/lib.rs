//! Flywheel: the operator console and headless job runner for an NLU
//! router's training loop (capture → auto-filter → review → export → train →
//! evaluate → version → canary → production → capture).
//!
//! The binary is a thin face over this library: every stage is a type
//! ([`jobs::StageJob`]) run through [`jobs::run`] with a
//! [`storage::Store`], the [`config::Config`], a progress sender and a
//! cancel token, so the CLI and the console run the same code the same way.
#![forbid(unsafe_code)]

pub mod audit;
pub mod canary;
pub mod capture;
pub mod cli;
pub mod config;
pub mod dataset;
pub mod demo;
pub mod doctor;
pub mod domain;
pub mod error;
pub mod estimate;
pub mod gold;
pub mod health;
pub mod jobs;
pub mod lang;
pub mod lifecycle;
pub mod lines;
pub mod logging;
pub mod monitor;
pub mod privacy;
pub mod progress;
pub mod review;
pub mod router;
pub mod run_words;
pub mod schedule;
pub mod stages;
pub mod storage;
pub mod suspects;
pub mod synth;
pub mod text;
pub mod tui;

pub use error::{Error, Result};
