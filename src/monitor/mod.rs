//! Monitoring the loop from outside: the Prometheus exposition of its
//! state ([`loop_metrics`]), read from the database and shared by `serve`'s
//! `/metrics` and `flywheel metrics` (node-exporter's textfile collector).

pub mod exposition;
pub mod loop_metrics;
pub mod notify;
