//! Fuzzing the Label Studio response decoding (issue 8): the task-page
//! decoder the sync reads annotations with, the client's handling of
//! arbitrary answers (any status, any body) from a local server, and the
//! annotation → decision rules. Decoders never panic; a well-formed task
//! with annotations always gets exactly one decision, the latest
//! annotation's; garbage is an error that names the call.

mod support;

use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use flywheel::domain::ReviewVerdict;
use flywheel::error::ErrorKind;
use flywheel::review::label_studio::{
    ClientOptions, Decision, LabelStudioClient, ModelPrediction, NewTask, REJECT_CHOICE,
    TIMESTAMP_FORMAT, TaskWithAnnotations, Unusable, decide, decode_task_page,
};
use proptest::prelude::*;
use secrecy::SecretString;
use serde_json::{Value, json};
use support::fake_label_studio::FakeLabelStudio;
use support::fuzz::{config, json_value, mutation, runtime, tricky_string};

const PREDICTED: &str = "order_food";
const KNOWN: &[&str] = &["order_food", "greet", "bye", "track_order"];

fn is_known(intent: &str) -> bool {
    KNOWN.contains(&intent)
}

/// An annotation as generated, with what it must decode to.
#[derive(Debug, Clone)]
struct GenAnnotation {
    id: i64,
    choices: Vec<String>,
    /// Non-string junk mixed into the choices (ignored by the decoder).
    junk: Vec<Value>,
    corrected: Option<Vec<String>>,
    cancelled: Option<bool>,
    completed_by: Option<(i64, bool)>,
    created_at: Option<DateTime<Utc>>,
    updated_at: Option<DateTime<Utc>>,
    result_null: bool,
    other_region: bool,
}

fn timestamp() -> impl Strategy<Value = Option<DateTime<Utc>>> {
    // Few distinct instants, so ties on updated_at happen.
    proptest::option::of((0i64..4, 0u32..3).prop_map(|(minute, micro)| {
        Utc.with_ymd_and_hms(2026, 11, 25, 1, 0, 0).unwrap()
            + chrono::Duration::minutes(minute)
            + chrono::Duration::microseconds(i64::from(micro))
    }))
}

fn choice() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(KNOWN).prop_map(str::to_string),
        1 => Just(REJECT_CHOICE.to_string()),
        1 => Just("pizza_party".to_string()),
        1 => tricky_string(8),
    ]
}

fn annotation(id: i64) -> impl Strategy<Value = GenAnnotation> {
    (
        prop::collection::vec(choice(), 0..3),
        prop::collection::vec(
            prop_oneof![
                Just(Value::Null),
                any::<i64>().prop_map(Value::from),
                Just(json!({"a": 1}))
            ],
            0..2,
        ),
        proptest::option::of(prop::collection::vec(tricky_string(12), 0..3)),
        proptest::option::of(prop::bool::weighted(0.2)),
        proptest::option::of((1i64..50, any::<bool>())),
        timestamp(),
        timestamp(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            move |(
                choices,
                junk,
                corrected,
                cancelled,
                completed_by,
                created_at,
                updated_at,
                null,
                other,
            )| {
                let result_null =
                    null && choices.is_empty() && junk.is_empty() && corrected.is_none() && !other;
                GenAnnotation {
                    id,
                    result_null,
                    choices,
                    junk,
                    other_region: other,
                    corrected,
                    cancelled,
                    completed_by,
                    created_at,
                    updated_at,
                }
            },
        )
}

impl GenAnnotation {
    fn json(&self) -> Value {
        let mut result = Vec::new();
        if !self.choices.is_empty() || !self.junk.is_empty() {
            let mut values: Vec<Value> = self.choices.iter().map(|c| json!(c)).collect();
            values.extend(self.junk.iter().cloned());
            result.push(
                json!({"from_name": "intent", "to_name": "text", "type": "choices",
                               "value": {"choices": values}}),
            );
        }
        if let Some(text) = &self.corrected {
            result.push(
                json!({"from_name": "corrected_text", "to_name": "text", "type": "textarea",
                               "value": {"text": text}}),
            );
        }
        if self.other_region {
            result.push(
                json!({"from_name": "sentiment", "to_name": "text", "type": "choices",
                               "value": {"choices": ["greet"]}}),
            );
        }
        let mut a = json!({"id": self.id, "result": if self.result_null { Value::Null } else { Value::Array(result) },
                           "lead_time": 1.5, "ground_truth": false});
        if let Some(c) = self.cancelled {
            a["was_cancelled"] = json!(c);
        }
        if let Some((user, as_object)) = self.completed_by {
            a["completed_by"] = if as_object {
                json!({"id": user, "email": "x@y.z"})
            } else {
                json!(user)
            };
        }
        if let Some(t) = self.created_at {
            a["created_at"] = json!(t.format(TIMESTAMP_FORMAT).to_string());
        }
        if let Some(t) = self.updated_at {
            a["updated_at"] = json!(t.format(TIMESTAMP_FORMAT).to_string());
        }
        a
    }

    fn updated(&self) -> DateTime<Utc> {
        self.updated_at
            .or(self.created_at)
            .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
    }

    fn corrected_text(&self) -> Option<String> {
        let joined = self.corrected.as_ref()?.join("\n");
        let trimmed = joined.trim();
        (!trimmed.is_empty()).then(|| trimmed.to_string())
    }

    /// The verdict by the rules of DESIGN §11 and the review sync (`None`:
    /// unusable), and whether it rejects by a skip.
    fn expected_verdict(&self) -> (Option<ReviewVerdict>, bool) {
        if self.cancelled == Some(true) {
            (Some(ReviewVerdict::Reject), true)
        } else if self.choices.iter().any(|c| c == REJECT_CHOICE) {
            (Some(ReviewVerdict::Reject), false)
        } else {
            let verdict = match self.choices.as_slice() {
                [one] if one == PREDICTED => Some(ReviewVerdict::Accept),
                [one] if is_known(one) => Some(ReviewVerdict::Choose(one.clone())),
                _ => None,
            };
            (verdict, false)
        }
    }
}

#[derive(Debug, Clone)]
struct GenTask {
    id: i64,
    sample_id: Option<Value>,
    annotations: Vec<GenAnnotation>,
    annotations_null: bool,
}

fn task(id: i64) -> impl Strategy<Value = GenTask> {
    (
        (0usize..5).prop_flat_map(|n| {
            Just((1..=n as i64).collect::<Vec<_>>())
                .prop_shuffle()
                .prop_flat_map(|ids| ids.into_iter().map(annotation).collect::<Vec<_>>())
        }),
        proptest::option::of(prop_oneof![
            (1i64..1_000_000).prop_map(Value::from),
            (1i64..1_000_000).prop_map(|n| Value::from(n.to_string())),
            json_value(1),
        ]),
        any::<bool>(),
    )
        .prop_map(move |(annotations, sample_id, null)| GenTask {
            id,
            sample_id,
            annotations_null: null && annotations.is_empty(),
            annotations,
        })
}

fn page() -> impl Strategy<Value = Vec<GenTask>> {
    (0usize..4).prop_flat_map(|n| (1..=n as i64).map(task).collect::<Vec<_>>())
}

fn page_json(tasks: &[GenTask], total: Option<i64>) -> Value {
    let tasks: Vec<Value> = tasks
        .iter()
        .map(|t| {
            let mut data = json!({"text": "ek pizza", "language": "hinglish"});
            if let Some(s) = &t.sample_id {
                data["sample_id"] = s.clone();
            }
            json!({"id": t.id, "data": data, "updated_at": "2026-11-25T01:02:03.456789Z",
                   "annotations": if t.annotations_null { Value::Null } else {
                       Value::Array(t.annotations.iter().map(GenAnnotation::json).collect()) },
                   "predictions": [], "total_annotations": t.annotations.len()})
        })
        .collect();
    let mut page = json!({"tasks": tasks, "total_annotations": 0, "total_predictions": 0});
    if let Some(t) = total {
        page["total"] = json!(t);
    }
    page
}

/// Two verdicts agree when they would do the same to the sample; two
/// unusable annotations agree whatever their reason says.
/// Two readings do the same to the sample (whether a reject was a skip
/// does not matter; unusable ones all leave it alone).
fn same(a: &Option<ReviewVerdict>, b: &Option<ReviewVerdict>) -> bool {
    a == b
}

fn check_decision(task: &TaskWithAnnotations, generated: &GenTask) -> Result<(), TestCaseError> {
    let decision: Option<Decision> = decide(task, PREDICTED, is_known);
    if generated.annotations.is_empty() {
        prop_assert_eq!(decision, None);
        return Ok(());
    }
    let decision =
        decision.ok_or_else(|| TestCaseError::fail("annotated task without a decision"))?;
    let latest = generated
        .annotations
        .iter()
        .max_by_key(|a| (a.updated(), a.id))
        .expect("non-empty");
    prop_assert_eq!(decision.annotation_id, latest.id);
    prop_assert_eq!(decision.annotation_updated_at, latest.updated());
    prop_assert_eq!(decision.annotator, latest.completed_by.map(|(id, _)| id));
    prop_assert_eq!(&decision.corrected_text, &latest.corrected_text());
    prop_assert_eq!(decision.annotations, generated.annotations.len());
    let (want, skipped) = latest.expected_verdict();
    prop_assert!(
        same(&decision.verdict.clone().ok(), &want),
        "{:?} vs {:?}",
        decision.verdict,
        want
    );
    prop_assert_eq!(decision.skipped, skipped);
    if let Err(Unusable { reason }) = &decision.verdict {
        let prefix = format!("annotation {} ", latest.id);
        prop_assert!(reason.starts_with(&prefix), "{}", reason);
    }
    let disagree = generated
        .annotations
        .iter()
        .any(|a| !same(&a.expected_verdict().0, &want));
    prop_assert_eq!(
        decision.disagreement,
        disagree,
        "{:?}",
        generated.annotations
    );
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn well_formed_pages_decode_and_every_annotated_task_gets_one_decision(
        tasks in page(),
        total in proptest::option::of(0i64..10),
    ) {
        let body = page_json(&tasks, total).to_string();
        let (decoded, got_total) = decode_task_page(body.as_bytes())
            .map_err(|e| TestCaseError::fail(format!("{e}: {body}")))?;
        prop_assert_eq!(got_total, total);
        prop_assert_eq!(decoded.len(), tasks.len());
        for (task, generated) in decoded.iter().zip(&tasks) {
            prop_assert_eq!(task.id, generated.id);
            let sample_id = match &generated.sample_id {
                Some(Value::Number(n)) => n.as_i64(),
                Some(Value::String(s)) => s.parse().ok(),
                _ => None,
            };
            prop_assert_eq!(task.sample_id, sample_id);
            prop_assert_eq!(task.annotations.len(), generated.annotations.len());
            for (a, g) in task.annotations.iter().zip(&generated.annotations) {
                prop_assert_eq!(a.id, g.id);
                prop_assert_eq!(&a.choices, &g.choices);
                prop_assert_eq!(a.was_cancelled, g.cancelled == Some(true));
                prop_assert_eq!(a.updated_at, g.updated());
                prop_assert_eq!(&a.corrected_text, &g.corrected_text());
            }
            check_decision(task, generated)?;
        }
    }

    #[test]
    fn arbitrary_json_never_panics_the_decoder(value in prop_oneof![
        json_value(6),
        json_value(4).prop_map(|v| json!({"tasks": [v]})),
        json_value(3).prop_map(|v| json!({"tasks": [{"id": 1, "annotations": [v]}]})),
        json_value(3).prop_map(|v| json!({"tasks": [{"id": 1, "annotations": [{"id": 2, "result": [v]}]}]})),
        json_value(2).prop_map(|v| json!({"tasks": [{"id": 1, "annotations": [{"id": 2, "result": [{"from_name": "intent", "value": v}]}]}]})),
    ]) {
        if let Ok((tasks, _)) = decode_task_page(value.to_string().as_bytes()) {
            for task in &tasks {
                let decision = decide(task, PREDICTED, is_known);
                prop_assert_eq!(decision.is_some(), !task.annotations.is_empty());
            }
        }
    }

    #[test]
    fn mutated_pages_and_random_bytes_never_panic_the_decoder(
        tasks in page(),
        mutations in prop::collection::vec(mutation(), 1..5),
        bytes in prop::collection::vec(any::<u8>(), 0..128),
    ) {
        let mut body = page_json(&tasks, Some(3)).to_string().into_bytes();
        for m in &mutations {
            body = m.apply(&body);
        }
        for input in [&body, &bytes] {
            if let Ok((tasks, _)) = decode_task_page(input) {
                for task in &tasks {
                    prop_assert_eq!(decide(task, PREDICTED, is_known).is_some(), !task.annotations.is_empty());
                }
            }
        }
    }
}

// ---- the client against a server answering anything ------------------------

struct Fixture {
    runtime: tokio::runtime::Runtime,
    server: FakeLabelStudio,
    client: LabelStudioClient,
}

const KEY: &str = "0123456789abcdef0123456789abcdef01234567";

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = runtime(1);
        let server = runtime.block_on(FakeLabelStudio::start(KEY));
        let options = ClientOptions {
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(1),
            retries: 0,
            backoff_base: Duration::from_millis(1),
            backoff_max: Duration::from_millis(1),
        };
        let client =
            LabelStudioClient::new(&server.url, SecretString::from(KEY), options).expect("client");
        Fixture {
            runtime,
            server,
            client,
        }
    })
}

fn status() -> impl Strategy<Value = u16> {
    prop_oneof![
        4 => Just(200u16),
        1 => Just(201u16),
        1 => prop::sample::select(vec![204u16, 400, 401, 403, 404, 409, 429, 500, 502, 503, 504]),
        1 => 200u16..600,
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        json_value(4).prop_map(|v| v.to_string().into_bytes()),
        page().prop_map(|t| page_json(&t, None).to_string().into_bytes()),
        (page(), mutation()).prop_map(|(t, m)| m.apply(page_json(&t, None).to_string().as_bytes())),
        json_value(2).prop_map(|v| json!({"detail": v, "validation_errors": {"x": [v]}})
            .to_string()
            .into_bytes()),
        tricky_string(40).prop_map(|t| format!("<html><title>{t}</title></html>").into_bytes()),
        prop::collection::vec(any::<u8>(), 0..200),
        (1usize..2000).prop_map(|n| format!("{{\"detail\": \"{}\"}}", "ह".repeat(n)).into_bytes()),
    ]
}

proptest! {
    #![proptest_config(config(96))]

    #[test]
    fn the_client_turns_any_answer_into_data_or_an_error_naming_the_call(
        status in status(),
        body in body(),
        call in 0usize..4,
    ) {
        let f = fixture();
        f.server.answer_everything(status, body.clone());
        let (result, what): (Result<(), flywheel::Error>, &str) = f.runtime.block_on(async {
            match call {
                0 => (f.client.tasks_updated_since(7, None).await.map(|tasks| {
                    for t in &tasks {
                        let _ = decide(t, PREDICTED, is_known);
                    }
                }), "project 7"),
                1 => (f.client.whoami().await.map(|_| ()), "identify the key's user"),
                2 => (f.client.get_project(7).await.map(|_| ()), "project 7"),
                _ => {
                    let task = NewTask {
                        sample_id: 1,
                        text: "ek pizza".into(),
                        language: "hinglish".into(),
                        occurrences: 1,
                        priority: 2,
                        prediction: ModelPrediction { model_version: "v1".into(), intent: "order_food".into(), score: 0.5 },
                        suspect: None,
                    };
                    (f.client.import_tasks(7, &[task]).await.map(|_| ()), "project 7")
                }
            }
        });
        if let Err(err) = result {
            prop_assert!(err.message().contains(what), "{:?}: {}", err.kind(), err.message());
            prop_assert!(!err.message().contains(KEY));
            if (200..300).contains(&status) {
                prop_assert_eq!(err.kind(), ErrorKind::Unavailable, "{}", err.message());
            }
            if status == 401 || status == 403 {
                prop_assert_eq!(err.kind(), ErrorKind::Config, "{}", err.message());
            }
        } else {
            prop_assert!((200..300).contains(&status) || (status == 404 && call == 0), "{} accepted", status);
        }
    }
}

// ---- regressions found by the properties above ----------------------------

/// Found by `well_formed_pages_decode_and_every_annotated_task_gets_one_decision`:
/// two annotations that both pick no intent were reported as a
/// disagreement, because their "unusable" reasons name different annotations.
#[test]
fn regression_two_empty_annotations_are_no_disagreement() {
    let body = br#"{"tasks": [{"id": 1, "data": {"text": "ek pizza"},
        "annotations": [{"id": 1, "result": []}, {"id": 2, "result": []}]}]}"#;
    let (tasks, _) = decode_task_page(body).expect("decodes");
    let decision = decide(&tasks[0], PREDICTED, is_known).expect("annotated");
    assert!(decision.verdict.is_err(), "{decision:?}");
    assert!(!decision.disagreement, "{decision:?}");
    // A usable annotation against an unusable one still disagrees.
    let body = br#"{"tasks": [{"id": 1, "data": {},
        "annotations": [{"id": 1, "result": []},
                        {"id": 2, "updated_at": "2026-11-25T01:00:00.000000Z", "result": [
                          {"from_name": "intent", "value": {"choices": ["greet"]}}]}]}]}"#;
    let (tasks, _) = decode_task_page(body).expect("decodes");
    let decision = decide(&tasks[0], PREDICTED, is_known).expect("annotated");
    assert_eq!(decision.annotation_id, 2);
    assert!(decision.disagreement, "{decision:?}");
}
