//! What we send to and read from Label Studio, typed. Wire shapes that only
//! exist to be serialised stay private; what the sync stage decides on is
//! public and free of Label Studio's JSON quirks.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::label_config::{INTENT_CONTROL, TEXT_OBJECT};
use crate::suspects::Suspicion;

/// The user a key belongs to (`GET /api/current-user/whoami`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct User {
    pub id: i64,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub username: String,
}

/// The parts of a project the sync stage looks at.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Project {
    pub id: i64,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub label_config: String,
    /// Annotators see a prediction only when its `model_version` equals this
    /// (DESIGN §11); empty when never set.
    #[serde(default, deserialize_with = "null_as_default")]
    pub model_version: String,
    #[serde(default)]
    pub task_number: Option<i64>,
    /// How the labelling stream picks the next task ("Sequential sampling"
    /// when never set).
    #[serde(default, deserialize_with = "null_as_default")]
    pub sampling: String,
}

/// A prediction for a task already in Label Studio.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskPrediction {
    pub task_id: i64,
    pub prediction: ModelPrediction,
}

/// One review task to import: a needs-review sample plus the model's guess.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    /// Our `training_samples.id`; stored in the task data so tasks can be
    /// found again after a crash (task ids alone are not stable, §11).
    pub sample_id: i64,
    pub text: String,
    pub language: String,
    pub occurrences: i64,
    pub priority: i64,
    pub prediction: ModelPrediction,
    /// Set when the task asks a human to confirm or correct a suspect
    /// label ([`crate::suspects`]); the prediction is then the stored label.
    pub suspect: Option<Suspicion>,
}

/// The model's prediction shown (preselected) to the annotator.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelPrediction {
    pub model_version: String,
    pub intent: String,
    pub score: f64,
}

/// A task read back with its annotations (`GET /api/tasks?fields=all`).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskWithAnnotations {
    pub id: i64,
    /// `None` for a task that Flywheel did not create.
    pub sample_id: Option<i64>,
    pub updated_at: DateTime<Utc>,
    pub annotations: Vec<Annotation>,
}

/// One annotation, reduced to what a review decision needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    pub id: i64,
    /// Values picked in the `intent` control (normally zero or one).
    pub choices: Vec<String>,
    /// Text typed into the optional `corrected_text` area, if any.
    pub corrected_text: Option<String>,
    /// A skip: `was_cancelled: true`, usually with an empty result.
    pub was_cancelled: bool,
    pub completed_by: Option<i64>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

// ---- wire shapes -------------------------------------------------------

#[derive(Serialize)]
pub(crate) struct WireNewTask<'a> {
    data: WireTaskData<'a>,
    predictions: [WirePrediction<'a>; 1],
}

#[derive(Serialize)]
struct WireTaskData<'a> {
    sample_id: i64,
    text: &'a str,
    language: &'a str,
    occurrences: i64,
    priority: i64,
    /// Shown as plain text as well, so the model's guess is visible even when
    /// the project's `model_version` lags behind the prediction's. For a
    /// suspect, the stored label and what the model says instead.
    predicted_intent: Cow<'a, str>,
    /// A suspect label: `true`, with the intent the model suggests.
    #[serde(skip_serializing_if = "Option::is_none")]
    suspect: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    suggested: Option<&'a str>,
}

#[derive(Serialize)]
struct WirePrediction<'a> {
    model_version: &'a str,
    score: f64,
    result: [WireResult<'a>; 1],
}

#[derive(Serialize)]
struct WireResult<'a> {
    from_name: &'static str,
    to_name: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    value: WireChoices<'a>,
}

#[derive(Serialize)]
struct WireChoices<'a> {
    choices: [&'a str; 1],
}

impl<'a> From<&'a NewTask> for WireNewTask<'a> {
    fn from(t: &'a NewTask) -> Self {
        WireNewTask {
            data: WireTaskData {
                sample_id: t.sample_id,
                text: &t.text,
                language: &t.language,
                occurrences: t.occurrences,
                priority: t.priority,
                predicted_intent: match &t.suspect {
                    None => Cow::Borrowed(&t.prediction.intent),
                    Some(x) => Cow::Owned(format!(
                        "{} (suspect: model says {})",
                        t.prediction.intent, x.suggested
                    )),
                },
                suspect: t.suspect.as_ref().map(|_| true),
                suggested: t.suspect.as_ref().map(|x| x.suggested.as_str()),
            },
            predictions: [WirePrediction::from(&t.prediction)],
        }
    }
}

impl<'a> From<&'a ModelPrediction> for WirePrediction<'a> {
    fn from(p: &'a ModelPrediction) -> Self {
        WirePrediction {
            model_version: &p.model_version,
            score: p.score,
            result: [WireResult {
                from_name: INTENT_CONTROL,
                to_name: TEXT_OBJECT,
                kind: "choices",
                value: WireChoices {
                    choices: [&p.intent],
                },
            }],
        }
    }
}

/// `POST /api/projects/{id}/import/predictions` takes the prediction with
/// its task id beside it.
#[derive(Serialize)]
pub(crate) struct WireTaskPrediction<'a> {
    task: i64,
    #[serde(flatten)]
    prediction: WirePrediction<'a>,
}

impl<'a> From<&'a TaskPrediction> for WireTaskPrediction<'a> {
    fn from(p: &'a TaskPrediction) -> Self {
        WireTaskPrediction {
            task: p.task_id,
            prediction: WirePrediction::from(&p.prediction),
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct WireImportAnswer {
    #[serde(default)]
    pub task_count: Option<i64>,
    #[serde(default)]
    pub task_ids: Option<Vec<i64>>,
}

#[derive(Deserialize)]
pub(crate) struct WireTaskPage {
    pub tasks: Vec<WireTask>,
    #[serde(default)]
    pub total: Option<i64>,
}

#[derive(Deserialize)]
pub(crate) struct WireTask {
    pub id: i64,
    #[serde(default)]
    pub data: Value,
    pub updated_at: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub annotations: Vec<WireAnnotation>,
}

#[derive(Deserialize)]
pub(crate) struct WireAnnotation {
    id: i64,
    #[serde(default, deserialize_with = "null_as_default")]
    result: Vec<WireRegion>,
    #[serde(default)]
    was_cancelled: bool,
    #[serde(default)]
    completed_by: Option<UserRef>,
    created_at: Option<DateTime<Utc>>,
    updated_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct WireRegion {
    #[serde(default)]
    from_name: String,
    #[serde(default)]
    value: Value,
}

/// `completed_by` is an id in most answers, a user object in some.
#[derive(Deserialize)]
#[serde(untagged)]
enum UserRef {
    Id(i64),
    User { id: i64 },
}

impl WireTask {
    pub fn into_task(self) -> TaskWithAnnotations {
        // sample_id is ours and numeric, but an operator editing tasks by
        // hand may have turned it into a string.
        let sample_id = match self.data.get("sample_id") {
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        };
        let updated_at = self
            .updated_at
            .or(self.created_at)
            .unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
        TaskWithAnnotations {
            id: self.id,
            sample_id,
            updated_at,
            annotations: self
                .annotations
                .into_iter()
                .map(WireAnnotation::into_annotation)
                .collect(),
        }
    }
}

impl WireAnnotation {
    pub(crate) fn into_annotation(self) -> Annotation {
        let mut choices = Vec::new();
        let mut corrected_text = None;
        for region in self.result {
            if region.from_name == INTENT_CONTROL {
                if let Some(values) = region.value.get("choices").and_then(Value::as_array) {
                    choices.extend(values.iter().filter_map(Value::as_str).map(str::to_owned));
                }
            } else if region.from_name == super::label_config::CORRECTED_TEXT_CONTROL {
                // A TextArea result holds `{"text": ["…"]}`.
                let text = region.value.get("text").and_then(Value::as_array);
                let joined: Vec<&str> = text
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let joined = joined.join("\n");
                if !joined.trim().is_empty() {
                    corrected_text = Some(joined.trim().to_owned());
                }
            }
        }
        let completed_by = self.completed_by.map(|u| match u {
            UserRef::Id(id) | UserRef::User { id } => id,
        });
        Annotation {
            id: self.id,
            choices,
            corrected_text,
            was_cancelled: self.was_cancelled,
            completed_by,
            created_at: self.created_at,
            updated_at: self
                .updated_at
                .or(self.created_at)
                .unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
        }
    }
}

/// Decode one page of `GET /api/tasks?fields=all` exactly as the sync does
/// (tasks with their annotations, and the total when one is sent). Public
/// so the fuzz tests and targets drive the real decoder without a server.
pub fn decode_task_page(
    body: &[u8],
) -> serde_json::Result<(Vec<TaskWithAnnotations>, Option<i64>)> {
    let page: WireTaskPage = serde_json::from_slice(body)?;
    Ok((
        page.tasks.into_iter().map(WireTask::into_task).collect(),
        page.total,
    ))
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_task_serialises_to_label_studio_import_shape() {
        let task = NewTask {
            sample_id: 42,
            text: "ek pizza order karo".into(),
            language: "hinglish".into(),
            occurrences: 3,
            priority: 2,
            prediction: ModelPrediction {
                model_version: "router-v1.2.0".into(),
                intent: "order_food".into(),
                score: 0.64,
            },
            suspect: None,
        };
        let json = serde_json::to_value(WireNewTask::from(&task)).unwrap();
        assert_eq!(json["data"]["sample_id"], 42);
        assert_eq!(json["data"]["priority"], 2);
        assert_eq!(json["data"]["predicted_intent"], "order_food");
        assert!(json["data"].get("suspect").is_none(), "{json}");
        let p = &json["predictions"][0];
        assert_eq!(p["model_version"], "router-v1.2.0");
        assert_eq!(p["score"], 0.64);
        assert_eq!(p["result"][0]["from_name"], "intent");
        assert_eq!(p["result"][0]["to_name"], "text");
        assert_eq!(p["result"][0]["type"], "choices");
        assert_eq!(p["result"][0]["value"]["choices"][0], "order_food");
    }

    #[test]
    fn a_suspect_task_carries_the_suggestion_and_preselects_the_stored_label() {
        let task = NewTask {
            sample_id: 7,
            text: "where is my parcel".into(),
            language: "en".into(),
            occurrences: 1,
            priority: 5,
            prediction: ModelPrediction {
                model_version: "router-v1.1.0".into(),
                intent: "order_food".into(),
                score: 0.0,
            },
            suspect: Some(Suspicion {
                suggested: "track_order".into(),
                score: 0.9,
            }),
        };
        let json = serde_json::to_value(WireNewTask::from(&task)).unwrap();
        assert_eq!(json["data"]["suspect"], true);
        assert_eq!(json["data"]["suggested"], "track_order");
        assert_eq!(
            json["data"]["predicted_intent"],
            "order_food (suspect: model says track_order)"
        );
        assert_eq!(
            json["predictions"][0]["result"][0]["value"]["choices"][0],
            "order_food"
        );
    }

    #[test]
    fn task_with_annotations_parses_choices_skips_and_user_objects() {
        let raw = serde_json::json!({
            "id": 7,
            "data": {"sample_id": "42", "text": "hi"},
            "updated_at": "2026-11-25T01:02:03.456789Z",
            "annotations": [
                {"id": 1, "was_cancelled": false, "completed_by": 3,
                 "updated_at": "2026-11-25T01:00:00.000001Z",
                 "result": [
                    {"from_name": "intent", "to_name": "text", "type": "choices",
                     "value": {"choices": ["greet"]}},
                    {"from_name": "corrected_text", "to_name": "text", "type": "textarea",
                     "value": {"text": ["  hello  "]}}]},
                {"id": 2, "was_cancelled": true, "completed_by": {"id": 4, "email": "b@x"},
                 "created_at": "2026-11-25T01:01:00Z", "result": null}
            ]
        });
        let task = serde_json::from_value::<WireTask>(raw).unwrap().into_task();
        assert_eq!(task.id, 7);
        assert_eq!(task.sample_id, Some(42));
        assert_eq!(task.annotations[0].choices, vec!["greet"]);
        assert_eq!(task.annotations[0].corrected_text.as_deref(), Some("hello"));
        assert_eq!(task.annotations[1].completed_by, Some(4));
        assert!(task.annotations[1].was_cancelled);
        // No updated_at: falls back to created_at rather than failing.
        assert_eq!(
            task.annotations[1].updated_at.to_rfc3339(),
            "2026-11-25T01:01:00+00:00"
        );
    }
}
