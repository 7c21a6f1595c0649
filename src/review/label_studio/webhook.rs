//! What a Label Studio webhook says, typed (pure: no HTTP here; serve's
//! route receives it). Shapes from Label Studio 1.23.2
//! `webhooks/models.py` (`WebhookAction.ACTIONS`) and `webhooks/utils.py`:
//! the body is `{"action": …}` plus, with `send_payload`, the action's key
//! serialised with every model field, `project` (the project object) and
//! the nested `task`:
//!
//! - `ANNOTATION_CREATED` / `ANNOTATION_UPDATED`: `annotation` (one
//!   object, `task` and `project` as ids) and `task` (one object);
//! - `ANNOTATIONS_CREATED` (bulk import): `annotation` and `task` as lists,
//!   in the same order;
//! - `ANNOTATIONS_DELETED`: `annotations: [{"id"}]` only.
//!
//! Label Studio delivers once, with a 1 s timeout and no retry (§11): a
//! webhook speeds a review up, the sync's pull stays the source of truth.

use serde::Deserialize;
use serde_json::Value;

use super::types::{TaskWithAnnotations, WireAnnotation, WireTask};

/// The header Label Studio is told to send with each webhook, carrying
/// `label_studio.webhook_secret`.
pub const WEBHOOK_SECRET_HEADER: &str = "X-Flywheel-Webhook-Secret";

/// The actions Flywheel asks Label Studio for.
pub const WEBHOOK_ACTIONS: [&str; 4] = [
    "ANNOTATION_CREATED",
    "ANNOTATIONS_CREATED",
    "ANNOTATION_UPDATED",
    "ANNOTATIONS_DELETED",
];

/// One webhook delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookEvent {
    /// Annotations created or updated: each task with the annotations the
    /// webhook carries (not necessarily all the task has).
    Annotated {
        action: String,
        project: i64,
        tasks: Vec<TaskWithAnnotations>,
    },
    /// Annotations deleted (only their ids are sent).
    AnnotationsDeleted {
        project: i64,
        annotation_ids: Vec<i64>,
    },
    /// Any other action (a project or task event): nothing to apply.
    Other { action: String },
}

#[derive(Deserialize)]
struct IdOnly {
    id: i64,
}

/// Decode a webhook body; `Err` names what is missing or malformed.
pub fn decode_webhook(body: &Value) -> Result<WebhookEvent, String> {
    let action = body
        .get("action")
        .and_then(Value::as_str)
        .ok_or("`action` is missing or not a string")?
        .to_string();
    match action.as_str() {
        "ANNOTATION_CREATED" | "ANNOTATION_UPDATED" | "ANNOTATIONS_CREATED" => {
            let annotations = one_or_many(body, "annotation")?;
            let tasks = one_or_many(body, "task")?;
            if annotations.len() != tasks.len() {
                return Err(format!(
                    "{} annotations but {} tasks",
                    annotations.len(),
                    tasks.len()
                ));
            }
            let mut out: Vec<TaskWithAnnotations> = Vec::new();
            for (i, (annotation, task)) in annotations.iter().zip(&tasks).enumerate() {
                let wire_task: WireTask = serde_json::from_value((*task).clone())
                    .map_err(|err| format!("`task`[{i}]: {err}"))?;
                let wire_annotation: WireAnnotation = serde_json::from_value((*annotation).clone())
                    .map_err(|err| format!("`annotation`[{i}]: {err}"))?;
                let annotation = wire_annotation.into_annotation();
                match out.iter_mut().find(|t| t.id == wire_task.id) {
                    Some(existing) => existing.annotations.push(annotation),
                    None => {
                        let mut task = wire_task.into_task();
                        task.annotations = vec![annotation];
                        out.push(task);
                    }
                }
            }
            let project = project_of(body, annotations.first().copied())?;
            Ok(WebhookEvent::Annotated {
                action,
                project,
                tasks: out,
            })
        }
        "ANNOTATIONS_DELETED" => {
            let ids: Vec<IdOnly> = serde_json::from_value(
                body.get("annotations")
                    .cloned()
                    .ok_or("`annotations` is missing")?,
            )
            .map_err(|err| format!("`annotations`: {err}"))?;
            Ok(WebhookEvent::AnnotationsDeleted {
                project: project_of(body, None)?,
                annotation_ids: ids.into_iter().map(|a| a.id).collect(),
            })
        }
        _ => Ok(WebhookEvent::Other { action }),
    }
}

/// `body[key]` as a list: one object or an array of them.
fn one_or_many<'a>(body: &'a Value, key: &str) -> Result<Vec<&'a Value>, String> {
    match body.get(key) {
        Some(Value::Array(items)) => Ok(items.iter().collect()),
        Some(item @ Value::Object(_)) => Ok(vec![item]),
        Some(_) => Err(format!("`{key}` is not an object or a list")),
        None => Err(format!(
            "`{key}` is missing (create the webhook with send_payload: true)"
        )),
    }
}

/// The project: `project.id`, or the annotation's `project` id.
fn project_of(body: &Value, annotation: Option<&Value>) -> Result<i64, String> {
    body.get("project")
        .and_then(|p| p.get("id").or(Some(p)))
        .and_then(Value::as_i64)
        .or_else(|| annotation?.get("project")?.as_i64())
        .ok_or_else(|| "`project` is missing".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn annotation(id: i64, task: i64, intent: &str) -> Value {
        json!({"id": id, "task": task, "project": 3, "completed_by": 1, "was_cancelled": false,
               "updated_at": "2026-11-25T01:02:03.456789Z", "created_at": "2026-11-25T01:02:03.456789Z",
               "result": [{"from_name": "intent", "to_name": "text", "type": "choices",
                           "value": {"choices": [intent]}}]})
    }

    fn task(id: i64, sample: i64) -> Value {
        json!({"id": id, "project": 3, "data": {"sample_id": sample, "text": "hi"},
               "updated_at": "2026-11-25T01:02:03.500000Z", "is_labeled": true})
    }

    #[test]
    fn a_created_annotation_comes_with_its_task_and_project() {
        let body = json!({"action": "ANNOTATION_CREATED", "annotation": annotation(9, 5, "greet"),
                          "task": task(5, 42), "project": {"id": 3, "title": "x"}});
        let WebhookEvent::Annotated { project, tasks, .. } = decode_webhook(&body).unwrap() else {
            panic!("not annotated");
        };
        assert_eq!(project, 3);
        assert_eq!(tasks.len(), 1);
        assert_eq!((tasks[0].id, tasks[0].sample_id), (5, Some(42)));
        assert_eq!(tasks[0].annotations[0].choices, vec!["greet"]);
        assert_eq!(tasks[0].annotations[0].completed_by, Some(1));
    }

    #[test]
    fn bulk_created_annotations_pair_with_their_tasks_in_order() {
        let body = json!({"action": "ANNOTATIONS_CREATED",
            "annotation": [annotation(1, 5, "greet"), annotation(2, 6, "bye"), annotation(3, 5, "bye")],
            "task": [task(5, 42), task(6, 43), task(5, 42)], "project": {"id": 3}});
        let WebhookEvent::Annotated { tasks, .. } = decode_webhook(&body).unwrap() else {
            panic!("not annotated");
        };
        assert_eq!(tasks.len(), 2);
        assert_eq!(tasks[0].annotations.len(), 2);
        assert_eq!(tasks[1].annotations[0].choices, vec!["bye"]);
    }

    #[test]
    fn deleted_annotations_are_ids_and_other_actions_are_named() {
        let body = json!({"action": "ANNOTATIONS_DELETED", "annotations": [{"id": 7}, {"id": 8}],
                          "project": {"id": 3}});
        assert_eq!(
            decode_webhook(&body).unwrap(),
            WebhookEvent::AnnotationsDeleted {
                project: 3,
                annotation_ids: vec![7, 8]
            }
        );
        assert_eq!(
            decode_webhook(&json!({"action": "PROJECT_UPDATED", "project": {"id": 3}})).unwrap(),
            WebhookEvent::Other {
                action: "PROJECT_UPDATED".into()
            }
        );
    }

    #[test]
    fn malformed_bodies_say_what_is_wrong() {
        for (body, says) in [
            (json!({}), "`action`"),
            (
                json!({"action": "ANNOTATION_CREATED", "project": {"id": 3}}),
                "send_payload",
            ),
            (
                json!({"action": "ANNOTATION_CREATED", "annotation": {"id": "x"}, "task": task(5, 1), "project": {"id": 3}}),
                "`annotation`[0]",
            ),
            (
                json!({"action": "ANNOTATION_UPDATED", "annotation": {"id": 1}, "task": task(5, 1)}),
                "`project`",
            ),
            (
                json!({"action": "ANNOTATIONS_DELETED", "annotations": [{"x": 1}], "project": 3}),
                "`annotations`",
            ),
        ] {
            let err = decode_webhook(&body).unwrap_err();
            assert!(err.contains(says), "{body}: {err}");
        }
    }
}
