//! `POST /v1/label-studio/webhook`: Label Studio's reviews reach the
//! product within seconds instead of at the next sync. Authenticated by a
//! shared secret (`label_studio.webhook_secret`) that Label Studio sends in
//! the [`WEBHOOK_SECRET_HEADER`] header, compared digest to digest in
//! constant time; 404 while no secret is configured.
//!
//! A created or updated annotation goes through the pull's own path
//! ([`apply_task`]), so a replay, or the next sync reading the same
//! annotation, changes nothing. Label Studio does not retry (§11): what it
//! fails to deliver, or what is not ours, is answered 200 and left to the
//! sync's pull, the source of truth. A deleted annotation is left to the
//! pull as well: the decision it made stands, like the pull leaves it.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::api_error::{ApiError, storage_error};
use super::handlers::{AppState, BULK_BODY_LIMIT, constant_time_eq, token_digest};
use super::request_body::json_body;
use crate::review::annotations::{Applied, apply_task};
use crate::review::label_studio::webhook::{WEBHOOK_SECRET_HEADER, WebhookEvent, decode_webhook};

/// What one delivery did, as answered (and logged).
#[derive(Debug, Default, serde::Serialize)]
struct Tally {
    /// Decisions recorded on samples.
    applied: usize,
    /// Annotations seen before and unchanged (a replay, or pulled already).
    unchanged: usize,
    /// Annotations that cannot be applied (no choice, unknown intent…).
    unusable: usize,
    /// Tasks or annotations that are not ours, or nothing to apply.
    ignored: usize,
}

pub(super) async fn label_studio_webhook(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Some(expected) = &state.webhook_secret_digest else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "Label Studio webhooks are off: set label_studio.webhook_secret \
             (FLYWHEEL_LABEL_STUDIO__WEBHOOK_SECRET) for serve, and label_studio.webhook_url for \
             label-studio-sync to register the webhook",
        ));
    };
    let given = headers
        .get(WEBHOOK_SECRET_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|v| token_digest(v.trim()));
    if !given.is_some_and(|digest| constant_time_eq(&digest, expected)) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            format!(
                "missing or wrong {WEBHOOK_SECRET_HEADER} header (label_studio.webhook_secret); \
                 nothing was applied"
            ),
        ));
    }
    let value = json_body(body, BULK_BODY_LIMIT, state.body_read_timeout).await?;
    let event = decode_webhook(&value).map_err(|why| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("not a Label Studio webhook body: {why}"),
        )
    })?;
    let store = &state.store;
    let mut tally = Tally::default();
    let action = match event {
        WebhookEvent::Annotated {
            action,
            project,
            tasks,
        } => {
            let intents = store
                .sample_intents()
                .await
                .map_err(|err| storage_error(&err))?;
            let is_known = |intent: &str| intents.iter().any(|i| i == intent);
            for task in &tasks {
                let applied = apply_task(store, project, task, is_known)
                    .await
                    .map_err(|err| storage_error(&err))?;
                match &applied {
                    Applied::Recorded {
                        sample_id,
                        verdict,
                        applied: true,
                        ..
                    } => {
                        tally.applied += 1;
                        tracing::info!(
                            project,
                            task = task.id,
                            sample = sample_id,
                            ?verdict,
                            "review from a Label Studio webhook applied"
                        );
                    }
                    Applied::Recorded { .. } | Applied::Unchanged => tally.unchanged += 1,
                    Applied::Unusable { reason, .. } => {
                        tally.unusable += 1;
                        tracing::warn!(project, task = task.id, "webhook annotation: {reason}");
                    }
                    Applied::Mismatch { .. } | Applied::NotOurs | Applied::NoAnnotation => {
                        tally.ignored += 1;
                        tracing::debug!(project, task = task.id, ?applied, "webhook task ignored");
                    }
                }
            }
            action
        }
        WebhookEvent::AnnotationsDeleted {
            project,
            annotation_ids,
        } => {
            let links = store
                .task_links_by_annotation(project, &annotation_ids)
                .await
                .map_err(|err| storage_error(&err))?;
            tally.ignored = annotation_ids.len();
            if !links.is_empty() {
                tracing::info!(
                    project,
                    samples = ?links.iter().map(|l| l.sample_id).collect::<Vec<_>>(),
                    "annotations that decided samples were deleted in Label Studio; their \
                     decisions stand and the next sync reads the tasks again"
                );
            }
            "ANNOTATIONS_DELETED".to_string()
        }
        WebhookEvent::Other { action } => {
            tracing::debug!(action, "Label Studio webhook action ignored");
            tally.ignored += 1;
            action
        }
    };
    Ok(Json(json!({ "action": action, "result": tally })).into_response())
}
