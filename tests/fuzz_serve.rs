//! Fuzzing the request parsers of `flywheel serve` (issue 8):
//! `POST /nlu/classify`, `/v1/conversations` and `/v1/feedback`, driven
//! in-process through the real axum router (`tower::ServiceExt::oneshot`)
//! against a SQLite store, and the pure parsers behind them. Whatever the
//! body — random bytes, arbitrary JSON, a valid request mutated — the answer
//! is 2xx or 4xx, never 5xx; a 400 for a JSON body names the field.

mod support;

use flywheel::monitor::loop_metrics::{CACHE_TTL, LoopMetricsCache};
use std::sync::{Arc, OnceLock, RwLock};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::Utc;
use flywheel::capture::classifier::{Classification, IntentClassifier, ModelRouter};
use flywheel::capture::handlers::{AppState, CLASSIFY_BODY_LIMIT, app};
use flywheel::capture::metrics::Metrics;
use flywheel::capture::record::{ClassifyRequest, FeedbackRequest, conversation_record};
use flywheel::capture::user_hash::UserHasher;
use flywheel::capture::writer::{WriteQueue, WriterOptions};
use flywheel::lang::Language;
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde_json::{Value, json};
use support::fuzz::{
    config, installation, json_value, mutation, runtime, tricky_string, utterance, without_nul,
};
use tower::ServiceExt;

/// A stand-in model: always the same intent, the language given or `en`.
struct FixedModel;

impl IntentClassifier for FixedModel {
    fn classify(&self, _text: &str, language: Option<Language>) -> Classification {
        Classification {
            intent: "order_food".into(),
            confidence: 0.9,
            fallback: false,
            language: language.unwrap_or(Language::En),
        }
    }

    fn version(&self) -> &str {
        "fixed-v1"
    }
}

struct Fixture {
    runtime: tokio::runtime::Runtime,
    app: Router,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let (dir, config) = installation();
        let runtime = runtime(2);
        let app = runtime.block_on(async {
            let store = flywheel::storage::open(&config).await.expect("store");
            let metrics = Arc::new(Metrics::default());
            let (queue, _writer) =
                WriteQueue::start(store.clone(), WriterOptions::default(), metrics.clone());
            let model: Arc<dyn IntentClassifier> = Arc::new(FixedModel);
            let loop_metrics = Arc::new(LoopMetricsCache::new(
                store.clone(),
                config.clone(),
                CACHE_TTL,
            ));
            app(AppState {
                store,
                queue,
                loop_metrics,
                models: Arc::new(RwLock::new(Arc::new(ModelRouter::new(Some(model), None)))),
                model_problem: Arc::new(RwLock::new(None)),
                hasher: Arc::new(UserHasher::from_key([9; 32])),
                metrics,
                token_digest: None,
                body_read_timeout: std::time::Duration::from_secs(10),
                webhook_secret_digest: None,
            })
        });
        Fixture {
            runtime,
            app,
            _dir: dir,
        }
    })
}

const ROUTES: &[&str] = &["/nlu/classify", "/v1/conversations", "/v1/feedback"];

/// Post `body` to `route`: the status and the JSON answer.
fn post(route: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let f = fixture();
    f.runtime.block_on(async {
        let request = Request::post(route)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .expect("request");
        let response = f.app.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| json!({"not_json": String::from_utf8_lossy(&bytes)}));
        (status, value)
    })
}

/// Never 5xx; an error answer is JSON with an `error` message, and a 400
/// for a body that is JSON names the field at fault.
fn check_answer(
    route: &str,
    body: &[u8],
    status: StatusCode,
    answer: &Value,
) -> Result<(), TestCaseError> {
    prop_assert!(
        !status.is_server_error(),
        "{route} answered {status} to {:?}: {answer}",
        String::from_utf8_lossy(body)
    );
    if status.is_client_error() {
        prop_assert!(answer["error"].is_string(), "{route} {status}: {answer}");
        let is_json = serde_json::from_slice::<Value>(body).is_ok();
        if status == StatusCode::BAD_REQUEST {
            if is_json {
                prop_assert!(
                    answer["field"].as_str().is_some_and(|f| !f.is_empty()),
                    "{route}: a 400 without a field: {answer} for {}",
                    String::from_utf8_lossy(body)
                );
            } else {
                prop_assert!(
                    answer["error"]
                        .as_str()
                        .is_some_and(|e| e.contains("not valid JSON")),
                    "{answer}"
                );
            }
        }
        if status == StatusCode::NOT_FOUND {
            prop_assert_eq!(route, "/v1/feedback");
            prop_assert_eq!(&answer["field"], "conversation_id");
        }
    } else {
        prop_assert_eq!(status, StatusCode::OK, "{}", answer);
    }
    Ok(())
}

fn classify_body() -> impl Strategy<Value = Value> {
    (
        utterance().prop_map(without_nul),
        proptest::option::of("[+]?[0-9 -]{0,14}[0-9]"),
        proptest::option::of(tricky_string(20).prop_map(without_nul)),
        proptest::option::of(prop::sample::select(vec![
            "en", "hinglish", "hi", "mr", "other", " HI ",
        ])),
    )
        .prop_map(|(text, phone, session, language)| {
            let mut v = json!({"text": text});
            if let Some(p) = phone {
                v["phoneNumber"] = json!(p);
            }
            if let Some(s) = session {
                v["sessionId"] = json!(s);
            }
            if let Some(l) = language {
                v["language"] = json!(l);
            }
            v
        })
}

fn conversation() -> impl Strategy<Value = Value> {
    (
        utterance().prop_map(without_nul),
        "[a-z_]{1,20}",
        0.0f64..=1.0,
        "[a-z-]{1,12}",
        proptest::option::of(tricky_string(12).prop_map(without_nul)),
    )
        .prop_map(|(text, intent, confidence, provider, session)| {
            let mut v = json!({"user_message": text, "nlu_intent": intent,
                               "nlu_confidence": confidence, "nlu_provider": provider,
                               "created_at": Utc::now().to_rfc3339()});
            if let Some(s) = session {
                v["session_id"] = json!(s);
            }
            v
        })
}

fn feedback_body() -> impl Strategy<Value = Value> {
    (1i64..1_000_000_000, any::<bool>(), proptest::option::of("[a-z_]{1,12}")).prop_map(
        |(id, positive, intent)| {
            let mut v = json!({"conversation_id": id, "feedback": if positive { "positive" } else { "negative" }});
            if let Some(i) = intent {
                v["correct_intent"] = json!(i);
            }
            v
        },
    )
}

/// A valid body for a route, as JSON.
fn valid_body() -> impl Strategy<Value = (usize, Value)> {
    prop_oneof![
        classify_body().prop_map(|v| (0, v)),
        prop::collection::vec(conversation(), 0..5).prop_map(|v| (1, Value::Array(v))),
        feedback_body().prop_map(|v| (2, v)),
    ]
}

/// JSON values aimed at the parsers: known field names with wrong values.
fn hostile_object() -> impl Strategy<Value = Value> {
    let field = prop::sample::select(vec![
        "text",
        "phoneNumber",
        "sessionId",
        "language",
        "user_message",
        "nlu_intent",
        "nlu_confidence",
        "nlu_provider",
        "phone_number",
        "session_id",
        "routing_decision",
        "model_version",
        "fallback",
        "created_at",
        "conversation_id",
        "feedback",
        "correct_intent",
    ]);
    (
        valid_body(),
        prop::collection::vec((field, json_value(2)), 1..4),
    )
        .prop_map(|((route, mut v), edits)| {
            let target = match &mut v {
                Value::Array(items) if !items.is_empty() => &mut items[0],
                other => other,
            };
            if let Value::Object(map) = target {
                for (k, value) in edits {
                    map.insert(k.to_string(), value);
                }
            }
            let _ = route;
            v
        })
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn random_bytes_never_get_a_5xx(
        route in prop::sample::select(ROUTES),
        body in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let (status, answer) = post(route, body.clone());
        check_answer(route, &body, status, &answer)?;
    }

    #[test]
    fn arbitrary_json_never_gets_a_5xx_and_400s_name_the_field(
        route in prop::sample::select(ROUTES),
        value in prop_oneof![json_value(5), hostile_object()],
    ) {
        let body = value.to_string().into_bytes();
        let (status, answer) = post(route, body.clone());
        check_answer(route, &body, status, &answer)?;
        if status == StatusCode::BAD_REQUEST {
            let field = answer["field"].as_str().unwrap_or_default();
            match route {
                "/v1/conversations" => prop_assert!(field == "body" || field.starts_with('['), "{}", field),
                "/nlu/classify" => prop_assert!(["body", "text", "phoneNumber", "sessionId", "language"].contains(&field), "{}", field),
                _ => prop_assert!(["body", "conversation_id", "feedback", "correct_intent"].contains(&field), "{}", field),
            }
        }
    }

    #[test]
    fn mutated_valid_bodies_never_get_a_5xx(
        (route, value) in valid_body(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let mut body = value.to_string().into_bytes();
        for m in &mutations {
            body = m.apply(&body);
        }
        let route = ROUTES[route];
        let (status, answer) = post(route, body.clone());
        check_answer(route, &body, status, &answer)?;
    }

    #[test]
    fn valid_requests_are_answered_and_stored((route, value) in valid_body()) {
        let route = ROUTES[route];
        let body = value.to_string().into_bytes();
        let (status, answer) = post(route, body.clone());
        check_answer(route, &body, status, &answer)?;
        match route {
            "/nlu/classify" => {
                prop_assert_eq!(status, StatusCode::OK);
                prop_assert!(answer["conversation_id"].as_i64().is_some_and(|id| id > 0), "{}", answer);
                let language = value["language"].as_str().map_or("en".to_string(), |l| l.trim().to_lowercase());
                prop_assert_eq!(answer["language"].as_str(), Some(language.as_str()));
                // Feedback on the conversation just logged is accepted.
                let id = answer["conversation_id"].clone();
                let fb = json!({"conversation_id": id, "feedback": "positive"}).to_string().into_bytes();
                let (status, answer) = post("/v1/feedback", fb);
                prop_assert_eq!(status, StatusCode::OK, "{}", answer);
            }
            "/v1/conversations" => {
                prop_assert_eq!(status, StatusCode::OK);
                let n = value.as_array().map_or(0, Vec::len) as u64;
                prop_assert_eq!(answer["stored"].as_u64(), Some(n));
            }
            _ => prop_assert!(status == StatusCode::OK || status == StatusCode::NOT_FOUND, "{}", status),
        }
    }

    #[test]
    fn pure_parsers_name_a_field_they_know(value in prop_oneof![json_value(4), hostile_object()]) {
        let hasher = UserHasher::from_key([1; 32]);
        if let Err(e) = ClassifyRequest::parse(&value, &hasher) {
            prop_assert!(["body", "text", "phoneNumber", "sessionId", "language"].contains(&e.field.as_str()), "{:?}", e);
            let prefix = format!("`{}` ", e.field);
            prop_assert!(e.to_string().starts_with(&prefix), "{}", e);
        }
        if let Err(e) = FeedbackRequest::parse(&value) {
            prop_assert!(["body", "conversation_id", "feedback", "correct_intent"].contains(&e.field.as_str()), "{:?}", e);
        }
        if let Err(e) = conversation_record(&value, &hasher, Utc::now()) {
            prop_assert!([
                "record", "user_message", "nlu_intent", "nlu_confidence", "nlu_provider", "language",
                "session_id", "phone_number", "routing_decision", "model_version", "fallback", "created_at",
            ].contains(&e.field.as_str()), "{:?}", e);
        }
    }
}

proptest! {
    #![proptest_config(config(8))]

    #[test]
    fn oversized_bodies_get_413_not_5xx(extra in 1usize..4096, route in prop::sample::select(vec!["/nlu/classify", "/v1/feedback"])) {
        let text = "a".repeat(CLASSIFY_BODY_LIMIT + extra);
        let body = json!({"text": text}).to_string().into_bytes();
        let (status, answer) = post(route, body);
        prop_assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{}", answer);
    }
}

#[test]
fn example_deep_nesting_is_a_400_not_a_crash() {
    for route in ROUTES {
        for depth in [100, 127, 128, 129, 10_000] {
            let body = support::fuzz::deep_nesting(depth).into_bytes();
            let (status, answer) = post(route, body.clone());
            assert!(
                status.is_client_error(),
                "{route} depth {depth}: {status} {answer}"
            );
        }
    }
}
