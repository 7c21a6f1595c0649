//! The HTTP routes of `flywheel serve` (DESIGN §6) and their middleware:
//! bearer-token auth and request metrics. Every error, 404 and 405
//! included, is `{"error": …, "field"?: …}` (`api_error`).
//!
//! `POST /nlu/classify` and `POST /v1/conversations` take an optional
//! `Idempotency-Key` header (bulk records instead may each carry a
//! `request_id`): a repeat within [`IDEMPOTENCY_WINDOW`] is answered with the
//! original answer and stores nothing new, so a client may retry whatever
//! happened to its first attempt.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::api_error::{ApiError, method_not_allowed, not_found, storage_error};
use super::classifier::{Classification, ModelRouter, classify_served};
use super::metrics::{Gauges, Metrics};
use super::record::{
    ClassifyRequest, FeedbackRequest, FieldError, conversation_record, record_request_id,
};
use super::request_body::{IDEMPOTENCY_KEY, idempotency_key, json_body};
use super::user_hash::UserHasher;
use super::webhook::label_studio_webhook;
use super::writer::{Committed, IDEMPOTENCY_WINDOW, WriteError, WriteQueue};
use crate::config::ROUTER_PROVIDER;
use crate::monitor::loop_metrics::LoopMetricsCache;
use crate::storage::conversations::{Conversation, NewConversation};
use crate::storage::idempotency::{IdempotencyKey, KeyScope};
use crate::storage::{Store, Timestamp};

/// Body limits: one utterance, and a bulk batch of records.
pub const CLASSIFY_BODY_LIMIT: usize = 64 * 1024;
pub const BULK_BODY_LIMIT: usize = 8 * 1024 * 1024;
/// Records per `POST /v1/conversations`; more is answered 413.
pub const MAX_BULK_RECORDS: usize = 10_000;
/// Set on an answer repeated for a key seen before.
const REPLAYED: &str = "Idempotent-Replayed";

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub queue: WriteQueue,
    pub models: Arc<RwLock<Arc<ModelRouter>>>,
    /// Why no production model is loaded, when one should be.
    pub model_problem: Arc<RwLock<Option<String>>>,
    pub hasher: Arc<UserHasher>,
    pub metrics: Arc<Metrics>,
    /// The loop's gauges, read from the database at most every few seconds.
    pub loop_metrics: Arc<LoopMetricsCache>,
    /// SHA-256 of the API token; compared digest to digest in constant time.
    pub token_digest: Option<[u8; 32]>,
    /// A body must arrive within this once its headers have (`serve.body_read_timeout_secs`).
    pub body_read_timeout: Duration,
    /// SHA-256 of `label_studio.webhook_secret`; the webhook route answers
    /// 404 while it is unset.
    pub webhook_secret_digest: Option<[u8; 32]>,
}

impl AppState {
    fn router(&self) -> Arc<ModelRouter> {
        self.models
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The service's routes with their limits and middleware.
pub fn app(state: AppState) -> Router {
    // One Arc for the whole state: extractors and middleware clone it per request.
    let state = Arc::new(state);
    let protected = Router::new()
        .route("/nlu/classify", post(classify))
        .route("/v1/conversations", post(conversations))
        .route("/v1/feedback", post(feedback))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/health", get(health))
        // Its own shared secret instead of the bearer token: Label Studio
        // sends fixed headers, and this is the one it is given.
        .route("/v1/label-studio/webhook", post(label_studio_webhook))
        .merge(protected)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

/// Store `rows` under `keys` (`fields[i]` names where `keys[i]` came from).
async fn store_rows(
    state: &AppState,
    rows: Vec<NewConversation>,
    keys: Vec<IdempotencyKey>,
    fields: &[String],
) -> Result<Committed, ApiError> {
    match state.queue.submit(rows, keys).await {
        Ok(committed) => Ok(committed),
        Err(WriteError::KeyReused(k)) => {
            let field = fields
                .get(k)
                .cloned()
                .unwrap_or_else(|| IDEMPOTENCY_KEY.into());
            Err(ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                message: format!(
                    "`{field}` was used within the last {} h for a different request; nothing was \
                     stored. Use a new key for a new request",
                    IDEMPOTENCY_WINDOW.as_secs() / 3600
                ),
                field: Some(field),
            })
        }
        Err(err) => {
            if matches!(err, WriteError::QueueFull) {
                state.metrics.record_queue_full();
            }
            Err(err.into())
        }
    }
}

/// Mark an answer as the repeat of an earlier one.
fn replayed(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    response
}

async fn classify(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let value = json_body(body, CLASSIFY_BODY_LIMIT, state.body_read_timeout).await?;
    let request = ClassifyRequest::parse(&value, &state.hasher)?;
    let router = state.router();
    let Some((row, c)) = answer(&router, request, Timestamp::now()) else {
        let problem = state
            .model_problem
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            problem.unwrap_or_else(no_model_message),
        ));
    };
    let version = row.model_version.clone().unwrap_or_default();
    let keys: Vec<IdempotencyKey> = key
        .into_iter()
        .map(|key| IdempotencyKey {
            scope: KeyScope::Classify,
            key,
            fingerprint: state.hasher.fingerprint(value.to_string().as_bytes()),
            rows: 0..1,
        })
        .collect();
    let mut answer = ClassifyAnswer::of(&row);
    let committed = store_rows(&state, vec![row], keys, &[IDEMPOTENCY_KEY.into()]).await?;
    let id = committed.ids[0];
    if committed.replayed > 0 {
        return original_answer(&state, id).await;
    }
    state.metrics.record_classification(&version, c.fallback);
    answer.conversation_id = id;
    Ok(Json(answer).into_response())
}

/// Classify's work without HTTP: the model `router` picks for `request`
/// answers it, and the answer becomes the conversation row logged at
/// `created_at`; `None` when no model is live. (The loop bench,
/// `benches/loop.rs`, answers its simulated traffic through it.)
pub fn answer(
    router: &ModelRouter,
    request: ClassifyRequest,
    created_at: Timestamp,
) -> Option<(NewConversation, Classification)> {
    let model = router.pick(request.sticky_key())?;
    let served = classify_served(model.as_ref(), &request.text, request.language);
    let c = served.classification;
    let row = NewConversation {
        created_at,
        session_id: request.session_id,
        user_hash: request.user_hash,
        user_message: request.text,
        language: Some(c.language.as_str().to_string()),
        nlu_intent: Some(c.intent.clone()),
        nlu_confidence: Some(c.confidence.clamp(0.0, 1.0)),
        nlu_provider: Some(ROUTER_PROVIDER.to_string()),
        model_version: Some(model.version().to_string()),
        fallback: c.fallback,
        routing_decision: None,
        classify_ms: Some(served.classify_ms),
        classify_error: served.error,
    };
    Some((row, c))
}

/// A repeated classify request is answered as the first time, from what
/// the first attempt stored (the model may have changed since).
async fn original_answer(state: &AppState, id: i64) -> Result<Response, ApiError> {
    let original = state
        .store
        .conversation(id)
        .await
        .map_err(|err| storage_error(&err))?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "the conversation {id} stored under this Idempotency-Key has been deleted; use \
                     a new key"
                ),
            )
        })?;
    Ok(replayed(
        Json(ClassifyAnswer::stored(&original)).into_response(),
    ))
}

/// Classify's answer: what was stored for the conversation, so that a
/// repeat answered from the stored row says the same.
#[derive(serde::Serialize)]
struct ClassifyAnswer {
    intent: Option<String>,
    confidence: Option<f64>,
    provider: Option<String>,
    model_version: Option<String>,
    fallback: bool,
    language: Option<String>,
    conversation_id: i64,
}

impl ClassifyAnswer {
    /// For a row about to be stored (its id is set once it is).
    fn of(row: &NewConversation) -> Self {
        Self {
            intent: row.nlu_intent.clone(),
            confidence: row.nlu_confidence,
            provider: row.nlu_provider.clone(),
            model_version: row.model_version.clone(),
            fallback: row.fallback,
            language: row.language.clone(),
            conversation_id: 0,
        }
    }

    /// For a replayed request: the row stored the first time.
    fn stored(row: &Conversation) -> Self {
        Self {
            conversation_id: row.id,
            language: row.language.clone(),
            intent: row.nlu_intent.clone(),
            confidence: row.nlu_confidence,
            fallback: row.fallback,
            provider: row.nlu_provider.clone(),
            model_version: row.model_version.clone(),
        }
    }
}

/// What classify says when no model is in production.
pub fn no_model_message() -> String {
    "no model is in production yet, so /nlu/classify cannot answer (bulk logging with \
     POST /v1/conversations still works): promote a version (`flywheel models promote VERSION \
     --to production`); on an installation with no model versions, start serve with its \
     bootstrap on (without --no-bootstrap; serve.bootstrap = true) to train router-v1.0.0, or \
     `flywheel samples import FILE` then `flywheel weekly-training --force` and promote; serve \
     picks it up within seconds"
        .to_string()
}

async fn conversations(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let value = json_body(body, BULK_BODY_LIMIT, state.body_read_timeout).await?;
    let Value::Array(records) = &value else {
        return Err(ApiError::from(FieldError::new(
            "body",
            "must be a JSON array of records",
        )));
    };
    if records.len() > MAX_BULK_RECORDS {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{} records in one request; send at most {MAX_BULK_RECORDS} per request",
                records.len()
            ),
        ));
    }
    let now = chrono::Utc::now();
    // Validate everything before storing anything: one bad record refuses the request.
    let mut rows = Vec::with_capacity(records.len());
    let mut keys = Vec::new();
    let mut fields = Vec::new();
    let mut first_with_id: HashMap<String, usize> = HashMap::new();
    for (i, record) in records.iter().enumerate() {
        let within = |e: FieldError| ApiError::from(e.within(&format!("[{i}].")));
        rows.push(conversation_record(record, &state.hasher, now).map_err(within)?);
        let Some(request_id) = record_request_id(record).map_err(within)? else {
            continue;
        };
        if key.is_some() {
            return Err(within(FieldError::new(
                "request_id",
                "cannot be combined with an Idempotency-Key header: key the request or its \
                 records, not both",
            )));
        }
        if let Some(first) = first_with_id.insert(request_id.clone(), i) {
            return Err(within(FieldError::new(
                "request_id",
                format!("repeats the request_id of record [{first}]"),
            )));
        }
        keys.push(IdempotencyKey {
            scope: KeyScope::Record,
            key: request_id,
            fingerprint: state.hasher.fingerprint(record.to_string().as_bytes()),
            rows: i..i + 1,
        });
        fields.push(format!("[{i}].request_id"));
    }
    let whole_request_keyed = key.is_some();
    if let Some(key) = key {
        keys.push(IdempotencyKey {
            scope: KeyScope::Conversations,
            key,
            fingerprint: state.hasher.fingerprint(value.to_string().as_bytes()),
            rows: 0..rows.len(),
        });
        fields.push(IDEMPOTENCY_KEY.into());
    }
    let Committed {
        ids,
        replayed: repeats,
    } = store_rows(&state, rows, keys, &fields).await?;
    if whole_request_keyed {
        // The original answer, word for word.
        let answer =
            Json(json!({ "stored": ids.len(), "ids": ids, "replayed": 0 })).into_response();
        return Ok(if repeats > 0 {
            replayed(answer)
        } else {
            answer
        });
    }
    Ok(Json(json!({ "stored": ids.len(), "ids": ids, "replayed": repeats })).into_response())
}

async fn feedback(State(state): State<Arc<AppState>>, body: Body) -> Result<Response, ApiError> {
    let value = json_body(body, CLASSIFY_BODY_LIMIT, state.body_read_timeout).await?;
    let request = FeedbackRequest::parse(&value)?;
    let found = state
        .store
        .record_feedback(
            request.conversation_id,
            request.feedback,
            request.correct_intent.as_deref(),
        )
        .await
        .map_err(|err| storage_error(&err))?;
    if !found {
        return Err(ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!("no conversation with id {}", request.conversation_id),
            field: Some("conversation_id".into()),
        });
    }
    Ok(Json(json!({ "ok": true, "conversation_id": request.conversation_id })).into_response())
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    let database_up = state.queue.database_up()
        && matches!(
            tokio::time::timeout(Duration::from_secs(1), state.store.ping()).await,
            Ok(Ok(()))
        );
    let router = state.router();
    let version = router.production().map(|m| m.version().to_string());
    let problem = state
        .model_problem
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let (status, code) = match (database_up, version.is_some()) {
        (false, _) => ("unavailable", StatusCode::SERVICE_UNAVAILABLE),
        (true, true) => ("ok", StatusCode::OK),
        (true, false) => ("degraded", StatusCode::OK),
    };
    let body = json!({
        "status": status,
        "database": if database_up { "up" } else { "down" },
        "model": {
            "loaded": version.is_some(),
            "version": version,
            "canary": router.canary().map(|c| json!({"version": c.classifier.version(), "traffic_percentage": c.traffic_percent})),
            "problem": if version.is_none() { Some(problem.unwrap_or_else(no_model_message)) } else { None },
        },
        "queue": {
            "depth": state.queue.depth(),
            "capacity": state.queue.capacity(),
            "in_flight_rows": state.queue.in_flight_rows(),
        },
    });
    (code, Json(body)).into_response()
}

/// How long `/metrics` waits for the loop's figures before answering
/// without them (or with the last ones read).
const METRICS_DB_WAIT: Duration = Duration::from_secs(2);

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let gauges = Gauges {
        queue_depth: state.queue.depth(),
        queue_capacity: state.queue.capacity(),
        database_up: state.queue.database_up(),
        production_version: state.router().production().map(|m| m.version().to_string()),
        loop_text: state.loop_metrics.text(METRICS_DB_WAIT).await,
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(&gauges),
    )
        .into_response()
}

/// The token of an `Authorization: Bearer <token>` value; the scheme is
/// case-insensitive (RFC 7235), the token is not.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once([' ', '\t'])?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// `Authorization: Bearer <token>` when a token is configured.
async fn require_token(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = &state.token_digest else {
        return next.run(request).await;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .map(token_digest);
    if given.is_some_and(|digest| constant_time_eq(&digest, expected)) {
        next.run(request).await
    } else {
        let mut response = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (Authorization: Bearer <FLYWHEEL_API_TOKEN>)",
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        response
    }
}

/// The route as a static label (no allocation per request).
fn route_name(path: &str) -> &'static str {
    match path {
        "/nlu/classify" => "/nlu/classify",
        "/v1/conversations" => "/v1/conversations",
        "/v1/feedback" => "/v1/feedback",
        "/health" => "/health",
        "/metrics" => "/metrics",
        "/v1/label-studio/webhook" => "/v1/label-studio/webhook",
        _ => "other",
    }
}

pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Equal digests, in time independent of where they differ. Comparing
/// digests rather than tokens also hides the token's length.
pub(super) fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Count every request by route and status with its latency.
async fn track(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| route_name(p.as_str()));
    let started = Instant::now();
    let response = next.run(request).await;
    state
        .metrics
        .record_request(route, response.status().as_u16(), started.elapsed());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_the_token_is_not() {
        for value in [
            "Bearer t0k",
            "bearer t0k",
            "BEARER\tt0k",
            "  bEaReR   t0k  ",
        ] {
            assert_eq!(bearer_token(value), Some("t0k"), "{value:?}");
        }
        assert_eq!(bearer_token("bearer T0K"), Some("T0K"));
        for value in ["Bearert0k", "Basic t0k", "Bearer", "Bearer   ", "t0k", ""] {
            assert_eq!(bearer_token(value), None, "{value:?}");
        }
    }
}
