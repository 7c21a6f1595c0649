//! Human review of uncertain predictions: [`decisions`] records what a
//! human decided, from any face (the console, Label Studio, audits), and
//! [`order`] what they should review next.
//! Label Studio is the external review tool; everything that speaks HTTP to
//! it lives in [`label_studio`] (STYLE: no HTTP outside the client and
//! `serve`), including building its client from the configuration.

pub mod decisions;
pub mod label_studio;
pub mod order;
