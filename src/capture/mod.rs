//! Capture (DESIGN §1, §6): the classify service `flywheel serve`, bulk
//! logging from other NLU services, `flywheel ingest` backfills, and the
//! capture-gap analysis behind `flywheel stats capture-gaps`.
//!
//! Map: [`record`] validates what callers send; [`user_hash`] turns phone
//! numbers into HMACs; [`classifier`] is the routing point between the
//! service and the models; [`writer`] is the group commit; [`handlers`] the
//! HTTP routes (with `api_error`, their error answers, `request_body`,
//! how they read bodies and the `Idempotency-Key` header, and `webhook`,
//! Label Studio's reviews arriving as they happen); [`listener`] the
//! connections, their read timeouts and the bounded drain; [`server`]
//! start-up, model reloads and graceful shutdown; [`ingest`] the JSONL
//! backfill; [`gaps`] the gap analysis; [`simulate`] synthetic users for
//! demos.
//!
//! Plugging in the router model: implement [`classifier::IntentClassifier`]
//! for an adapter over `router::Model` and call it from
//! [`classifier::load_artifact`] (or pass another [`classifier::Loader`] in
//! [`server::ServeOptions`]).

mod api_error;
pub mod classifier;
pub mod gaps;
pub mod handlers;
pub mod ingest;
pub mod listener;
pub mod metrics;
pub mod record;
mod request_body;
pub mod server;
pub mod simulate;
pub mod user_hash;
mod webhook;
pub mod writer;
