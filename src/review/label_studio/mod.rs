//! The Label Studio client (DESIGN §11): both kinds of API key, bounded
//! retries, errors an operator can act on, and the calls the review sync
//! needs. Reviewed tasks become [`Decision`]s through pure logic in
//! [`decision`], so the rules are tested without a server.
//!
//! - `auth`: key kinds, access tokens of personal access tokens
//! - `http`: one call with timeouts, retries and error mapping
//! - `client`: [`LabelStudioClient`], authentication around `http`
//! - `api`: the API methods (projects, import, task listing)
//! - `types`: what goes over the wire, typed
//! - `label_config`: the annotation interface and its intent list
//! - `webhook`: what Label Studio's webhooks say, typed (serve receives them)

mod api;
mod auth;
mod client;
pub mod decision;
mod http;
pub mod label_config;
mod types;
pub mod webhook;

pub use api::{REVIEW_ORDER_VERSION, TIMESTAMP_FORMAT, UNCERTAINTY_SAMPLING, WebhookRegistration};
pub use auth::KeyKind;
pub use client::{ClientOptions, LabelStudioClient};
pub use decision::{Decision, Unusable, decide};
pub use label_config::{DEFAULT_LABEL_CONFIG, REJECT_CHOICE, label_config_with_intents};
pub use types::{
    Annotation, ModelPrediction, NewTask, Project, TaskPrediction, TaskWithAnnotations, User,
    decode_task_page,
};
