//! Human review of uncertain predictions: [`decisions`] records what a
//! human decided, from any face (the console, Label Studio, audits), and
//! [`annotations`] turns a Label Studio task into such a decision (pull
//! and webhook alike);
//! [`order`] says what they should review next, by the [`value`] of a
//! label, and [`rescore`] hands that order to Label Studio's stream.
//! Label Studio is the external review tool; everything that speaks HTTP to
//! it lives in [`label_studio`] (STYLE: no HTTP outside the client and
//! `serve`), including building its client from the configuration.

pub mod annotations;
pub mod decisions;
pub mod label_studio;
pub mod order;
pub mod rescore;
pub mod value;
