//! Reading a request: its body as JSON within a size limit and a time
//! limit, and its `Idempotency-Key` header.

use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;

use super::api_error::ApiError;
use super::record::{FieldError, MAX_FIELD_BYTES};

/// The request header naming a retry-safe request.
pub(super) const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// Past its limit a body is still read (and thrown away) up to this, so
/// the client, still sending, gets its 413 instead of a reset connection.
const DRAIN_LIMIT: u64 = 64 * 1024 * 1024;

/// The body as JSON: 413 past `limit` (holding at most `limit` bytes),
/// 408 when it has not arrived within `timeout`, 400 naming the problem when
/// it is not JSON.
pub(super) async fn json_body(
    body: Body,
    limit: usize,
    timeout: Duration,
) -> Result<Value, ApiError> {
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
    let read = async {
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
        Ok::<(), ApiError>(())
    };
    // A client trickling its body would otherwise hold a connection (and
    // serve's shutdown) for as long as it likes.
    tokio::time::timeout(timeout, read).await.map_err(|_| {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within {} s (serve.body_read_timeout_secs); \
                 nothing was stored",
                timeout.as_secs_f64()
            ),
        )
    })??;
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

/// The `Idempotency-Key` header, if sent.
pub(super) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let refuse = |why: String| ApiError::from(FieldError::new(IDEMPOTENCY_KEY, why));
    let key = value
        .to_str()
        .map_err(|_| refuse("must be printable ASCII".into()))?
        .trim();
    if key.is_empty() {
        return Err(refuse("must not be empty".into()));
    }
    if key.len() > MAX_FIELD_BYTES {
        return Err(refuse(format!(
            "is {} bytes long; the limit is {MAX_FIELD_BYTES}",
            key.len()
        )));
    }
    Ok(Some(key.to_string()))
}
