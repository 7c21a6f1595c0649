//! The HTTP routes of `flywheel serve` (DESIGN §6) and their middleware:
//! bearer-token auth and request metrics.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::body::{Body, HttpBody};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::classifier::ModelRouter;
use super::metrics::{Gauges, Metrics};
use super::record::{ClassifyRequest, FeedbackRequest, FieldError, conversation_record};
use super::user_hash::UserHasher;
use super::writer::{WriteError, WriteQueue};
use crate::config::ROUTER_PROVIDER;
use crate::error::ErrorKind;
use crate::storage::conversations::NewConversation;
use crate::storage::{Store, Timestamp};

/// Body limits: one utterance, and a bulk batch of records.
pub const CLASSIFY_BODY_LIMIT: usize = 64 * 1024;
pub const BULK_BODY_LIMIT: usize = 8 * 1024 * 1024;
/// Records per `POST /v1/conversations`; more is answered 413.
pub const MAX_BULK_RECORDS: usize = 10_000;
/// How long a request waits for its commit before giving up with 503.
const COMMIT_WAIT: Duration = Duration::from_secs(30);

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
    /// SHA-256 of the API token; compared digest to digest in constant time.
    pub token_digest: Option<[u8; 32]>,
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
        .merge(protected)
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

/// An error answer: `{"error": …, "field": …}` with a status.
struct ApiError {
    status: StatusCode,
    message: String,
    field: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            field: None,
        }
    }
}

impl From<FieldError> for ApiError {
    fn from(err: FieldError) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: err.to_string(),
            field: Some(err.field),
        }
    }
}

impl From<WriteError> for ApiError {
    fn from(err: WriteError) -> Self {
        match err {
            WriteError::QueueFull => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the write queue is full; retry after a second",
            ),
            WriteError::Unavailable(why) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not stored, the database is unavailable ({why}); retry later"),
            ),
            WriteError::Failed(why) => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("not stored: {why}"),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message });
        if let Some(field) = self.field {
            body["field"] = Value::String(field);
        }
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// Past its limit a body is still read (and thrown away) up to this, so
/// the client, still sending, gets its 413 instead of a reset connection.
const DRAIN_LIMIT: u64 = 64 * 1024 * 1024;

/// The body as JSON: 413 past `limit` (holding at most `limit` bytes),
/// 400 naming the problem when it is not JSON.
async fn json_body(body: Body, limit: usize) -> Result<Value, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body is larger than the {} KiB this route accepts",
                limit / 1024
            ),
        )
    };
    let mut body = body;
    if body.size_hint().lower() > DRAIN_LIMIT {
        return Err(too_large());
    }
    let mut bytes: Vec<u8> = Vec::new();
    let mut seen: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| {
            ApiError::new(StatusCode::BAD_REQUEST, format!("reading the body: {err}"))
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen += data.len() as u64;
        if seen <= limit as u64 {
            bytes.extend_from_slice(&data);
        } else if seen > DRAIN_LIMIT {
            break;
        }
    }
    if seen > limit as u64 {
        return Err(too_large());
    }
    serde_json::from_slice(&bytes).map_err(|err| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the body is not valid JSON: {err}"),
        )
    })
}

async fn store_rows(state: &AppState, rows: Vec<NewConversation>) -> Result<Vec<i64>, ApiError> {
    let submitted = tokio::time::timeout(COMMIT_WAIT, state.queue.submit(rows)).await;
    match submitted {
        Ok(Ok(ids)) => Ok(ids),
        Ok(Err(err)) => {
            if matches!(err, WriteError::QueueFull) {
                state.metrics.record_queue_full();
            }
            Err(err.into())
        }
        Err(_) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the database did not commit in time; the row may or may not be stored",
        )),
    }
}

async fn classify(State(state): State<Arc<AppState>>, body: Body) -> Result<Response, ApiError> {
    let value = json_body(body, CLASSIFY_BODY_LIMIT).await?;
    let request = ClassifyRequest::parse(&value, &state.hasher)?;
    let router = state.router();
    let Some(model) = router.pick(request.sticky_key()) else {
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
    let c = model.classify(&request.text, request.language);
    let version = model.version().to_string();
    let row = NewConversation {
        created_at: Timestamp::now(),
        session_id: request.session_id,
        user_hash: request.user_hash,
        user_message: request.text,
        language: Some(c.language.as_str().to_string()),
        nlu_intent: Some(c.intent.clone()),
        nlu_confidence: Some(c.confidence.clamp(0.0, 1.0)),
        nlu_provider: Some(ROUTER_PROVIDER.to_string()),
        model_version: Some(version.clone()),
        fallback: c.fallback,
        routing_decision: None,
    };
    let ids = store_rows(&state, vec![row]).await?;
    state.metrics.record_classification(&version, c.fallback);
    Ok(Json(json!({
        "intent": c.intent,
        "confidence": c.confidence,
        "provider": ROUTER_PROVIDER,
        "model_version": version,
        "fallback": c.fallback,
        "language": c.language.as_str(),
        "conversation_id": ids[0],
    }))
    .into_response())
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
    body: Body,
) -> Result<Response, ApiError> {
    let value = json_body(body, BULK_BODY_LIMIT).await?;
    let Value::Array(records) = value else {
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
    let rows = records
        .iter()
        .enumerate()
        .map(|(i, record)| {
            conversation_record(record, &state.hasher, now)
                .map_err(|e| e.within(&format!("[{i}].")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let ids = store_rows(&state, rows).await?;
    Ok(Json(json!({ "stored": ids.len(), "ids": ids })).into_response())
}

async fn feedback(State(state): State<Arc<AppState>>, body: Body) -> Result<Response, ApiError> {
    let value = json_body(body, CLASSIFY_BODY_LIMIT).await?;
    let request = FeedbackRequest::parse(&value)?;
    let found = state
        .store
        .record_feedback(
            request.conversation_id,
            request.feedback,
            request.correct_intent.as_deref(),
        )
        .await
        .map_err(|err| match err.kind() {
            ErrorKind::Unavailable => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, err.message()),
            _ => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, err.message()),
        })?;
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

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let gauges = Gauges {
        queue_depth: state.queue.depth(),
        queue_capacity: state.queue.capacity(),
        database_up: state.queue.database_up(),
        production_version: state.router().production().map(|m| m.version().to_string()),
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
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|token| token_digest(token.trim()));
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
        _ => "other",
    }
}

pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Equal digests, in time independent of where they differ. Comparing
/// digests rather than tokens also hides the token's length.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
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
