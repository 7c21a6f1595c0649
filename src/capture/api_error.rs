//! Serve's error answers: `{"error": …, "field"?: …}` with a status, for
//! every error alike — refused input, storage trouble, and unknown routes
//! (404) and methods (405), which axum would answer with an empty body.

use axum::Json;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::record::FieldError;
use super::writer::WriteError;
use crate::error::{Error, ErrorKind};

/// What the 503 says when the commit outlasted the commit wait.
pub(super) const COMMIT_UNCERTAIN: &str = "the database did not commit in time; the rows may or may not be \
     stored. Retry with the same Idempotency-Key header (or the same request_id per record): a \
     repeat within 24 h is answered with the original answer and stores nothing new. Without a \
     key a retry may store them twice";

/// The routes, for the 404 answer.
const ROUTES: &str = "POST /nlu/classify, POST /v1/conversations, POST /v1/feedback, \
                      POST /v1/label-studio/webhook, GET /health, GET /metrics";

pub(super) async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route {method} {}; the routes are {ROUTES}", uri.path()),
    )
}

/// (axum adds the `Allow` header.)
pub(super) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    let allowed = match uri.path() {
        "/health" | "/metrics" => "GET",
        _ => "POST",
    };
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} takes {allowed}, not {method}", uri.path()),
    )
}

/// An error answer: `{"error": …, "field": …}` with a status.
pub(super) struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// The field at fault, when one is.
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
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
            WriteError::Uncertain => Self::new(StatusCode::SERVICE_UNAVAILABLE, COMMIT_UNCERTAIN),
            // `store_rows` names the key; this is the fallback.
            WriteError::KeyReused(_) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "an idempotency key was used for a different request; nothing was stored",
            ),
        }
    }
}

/// A storage error as an answer: 503 when the database is unavailable.
pub(super) fn storage_error(err: &Error) -> ApiError {
    match err.kind() {
        ErrorKind::Unavailable => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, err.message()),
        _ => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, err.message()),
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
        if self.status == StatusCode::REQUEST_TIMEOUT {
            // The rest of the body may still trickle in: do not wait for it.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}
