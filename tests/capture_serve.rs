//! `flywheel serve` end to end through real HTTP, on SQLite and PostgreSQL:
//! classify + log, bulk logs, feedback, health, metrics, auth and every bad
//! input of issue 4 (nothing partial stored).

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::fixtures::{all_text, count, install_rules_model};
use support::serve::{Server, client, health, metrics, post_json};
use support::{Exits, TestDb};

const PHONE: &str = "+91 98765 43210";
const PHONE_DIGITS: &str = "9876543210";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classify_logs_the_conversation_and_feedback_lands_on_it() {
    for db in TestDb::all() {
        let store = db.store().await;
        install_rules_model(&db, &store).await;
        let server = Server::start(&db, &[], &[]);
        let http = client();
        let answer = http
            .post(server.url("/nlu/classify"))
            .json(&json!({"text": "one pizza please", "phoneNumber": PHONE, "sessionId": "s-1", "surprise": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK, "{:?}", db.backend);
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["intent"], "order_food");
        assert_eq!(body["provider"], "flywheel-router");
        assert_eq!(body["model_version"], "rules-v1");
        assert_eq!(body["fallback"], false);
        assert_eq!(body["language"], "en");
        assert!(body["confidence"].as_f64().unwrap() > 0.5);
        let id = body["conversation_id"].as_i64().unwrap();

        // Stored before the answer, with the phone number only as an HMAC.
        assert_eq!(count(&store, &format!("id = {id} AND nlu_intent = 'order_food' AND session_id = 's-1' AND model_version = 'rules-v1'")).await, 1);
        assert_eq!(
            count(&store, &format!("id = {id} AND length(user_hash) = 64")).await,
            1
        );

        let fallback = post_json(
            &http,
            &server,
            "/nlu/classify",
            &json!({"text": "नमस्ते दुनिया", "language": "hi"}),
        )
        .await;
        assert_eq!(fallback["fallback"], true);
        assert_eq!(fallback["language"], "hi");

        let fb = http
            .post(server.url("/v1/feedback"))
            .json(&json!({"conversation_id": id, "feedback": "negative", "correct_intent": "track_order"}))
            .send()
            .await
            .unwrap();
        assert_eq!(fb.status(), StatusCode::OK);
        assert_eq!(count(&store, &format!("id = {id} AND feedback = 'negative' AND correct_intent = 'track_order' AND feedback_at IS NOT NULL")).await, 1);
        let missing = http
            .post(server.url("/v1/feedback"))
            .json(&json!({"conversation_id": id + 1000, "feedback": "positive"}))
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);

        let health = health(&http, &server).await;
        assert_eq!(health["status"], "ok");
        assert_eq!(health["model"]["version"], "rules-v1");
        assert_eq!(health["queue"]["depth"], 0);
        let metrics = metrics(&http, &server).await;
        assert!(
            metrics
                .contains("flywheel_http_requests_total{route=\"/nlu/classify\",status=\"200\"} 2"),
            "{metrics}"
        );
        assert!(
            metrics.contains("flywheel_captured_rows_total 2"),
            "{metrics}"
        );
        assert!(
            metrics.contains("flywheel_fallbacks_total{model_version=\"rules-v1\"} 1"),
            "{metrics}"
        );
        assert!(metrics.contains(
            "flywheel_http_request_duration_seconds_bucket{route=\"/nlu/classify\",le=\"+Inf\"} 2"
        ));

        // The raw number is nowhere: not in any column, not in the logs.
        assert!(!all_text(&store).await.contains(PHONE_DIGITS));
        let mut logs = server.stderr();
        for entry in std::fs::read_dir(db.data_path().join("logs")).unwrap() {
            logs.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default());
        }
        assert!(logs.contains("INFO"), "the log capture works");
        assert!(!logs.contains(PHONE_DIGITS) && !logs.contains(PHONE));
        if db.backend == support::Backend::Sqlite {
            for file in ["flywheel.db", "flywheel.db-wal"] {
                let bytes = std::fs::read(db.data_path().join(file)).unwrap_or_default();
                let text = String::from_utf8_lossy(&bytes);
                assert!(!text.contains(PHONE_DIGITS), "raw phone number in {file}");
            }
        }

        // `stats recent` shows it.
        let out = db.command().args(["stats", "recent", "--json"]).succeeds();
        let recent = support::json_stdout(&out);
        let rows = recent["conversations"].as_array().unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1]["user_message"], "one pizza please");
        assert_eq!(rows[1]["feedback"], "negative");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_classify_requests_get_400_or_413_naming_the_problem() {
    for db in TestDb::all() {
        let store = db.store().await;
        install_rules_model(&db, &store).await;
        let server = Server::start(&db, &[], &[]);
        let http = client();
        let url = server.url("/nlu/classify");
        let cases: Vec<(Vec<u8>, StatusCode, Option<&str>)> = vec![
            (
                br#"{"text": ""}"#.to_vec(),
                StatusCode::BAD_REQUEST,
                Some("text"),
            ),
            (
                br#"{"text": "   "}"#.to_vec(),
                StatusCode::BAD_REQUEST,
                Some("text"),
            ),
            (br#"{}"#.to_vec(), StatusCode::BAD_REQUEST, Some("text")),
            (
                br#"{"text": 42}"#.to_vec(),
                StatusCode::BAD_REQUEST,
                Some("text"),
            ),
            (
                br#"{"text": "hi", "sessionId": ["a"]}"#.to_vec(),
                StatusCode::BAD_REQUEST,
                Some("sessionId"),
            ),
            (
                br#"{"text": "hi", "language": "xx"}"#.to_vec(),
                StatusCode::BAD_REQUEST,
                Some("language"),
            ),
            (
                br#"{"text": "hi", "phoneNumber": 98765}"#.to_vec(),
                StatusCode::BAD_REQUEST,
                Some("phoneNumber"),
            ),
            (
                br#"["text"]"#.to_vec(),
                StatusCode::BAD_REQUEST,
                Some("body"),
            ),
            (br#"{"text": "hi""#.to_vec(), StatusCode::BAD_REQUEST, None),
            (
                b"{\"text\": \"caf\xff\"}".to_vec(),
                StatusCode::BAD_REQUEST,
                None,
            ),
            (
                format!(r#"{{"text": "{}"}}"#, "a".repeat(1024 * 1024)).into_bytes(),
                StatusCode::PAYLOAD_TOO_LARGE,
                None,
            ),
            (
                format!(r#"{{"text": "{}"}}"#, "a".repeat(20 * 1024)).into_bytes(),
                StatusCode::BAD_REQUEST,
                Some("text"),
            ),
        ];
        for (body, status, field) in cases {
            let shown = String::from_utf8_lossy(&body[..body.len().min(60)]).to_string();
            let answer = http
                .post(&url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), status, "{shown}");
            let error: Value = answer.json().await.unwrap();
            assert!(
                error["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{shown}: {error}"
            );
            if let Some(field) = field {
                assert_eq!(error["field"], field, "{shown}: {error}");
                assert!(error["error"].as_str().unwrap().contains(field));
            }
        }
        assert_eq!(
            count(&store, "1 = 1").await,
            0,
            "a refused request stored something"
        );
    }
}

fn record(i: usize) -> Value {
    json!({"user_message": format!("message {i}"), "nlu_intent": "order_food", "nlu_confidence": 0.8,
           "nlu_provider": "php-nlu", "language": "hinglish", "session_id": format!("s{i}"),
           "phone_number": PHONE, "routing_decision": "opensearch", "model_version": "php-2",
           "created_at": "2026-11-01T10:00:00Z", "unknown_field": {"ignored": true}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_logs_are_stored_whole_or_refused_whole() {
    for db in TestDb::all() {
        let store = db.store().await;
        // No model in production: classify is 503 with advice, bulk still works.
        let server = Server::start(&db, &[], &[]);
        let http = client();
        let classify = http
            .post(server.url("/nlu/classify"))
            .json(&json!({"text": "hello"}))
            .send()
            .await
            .unwrap();
        assert_eq!(classify.status(), StatusCode::SERVICE_UNAVAILABLE);
        let advice: Value = classify.json().await.unwrap();
        assert!(
            advice["error"]
                .as_str()
                .unwrap()
                .contains("flywheel models promote"),
            "{advice}"
        );
        let health = health(&http, &server).await;
        assert_eq!(health["status"], "degraded");

        let url = server.url("/v1/conversations");
        let good: Vec<Value> = (0..3).map(record).collect();
        let answer = http.post(&url).json(&good).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["stored"], 3);
        assert_eq!(body["ids"].as_array().unwrap().len(), 3);
        assert_eq!(
            count(&store, "nlu_provider = 'php-nlu' AND routing_decision = 'opensearch' AND language = 'hinglish' AND length(user_hash) = 64").await,
            3
        );
        let stored_at = support::fixtures::count(&store, "created_at < '2026-11-02'").await;
        assert_eq!(stored_at, 3, "created_at from the record is kept");

        let future = (chrono::Utc::now() + chrono::Duration::days(2)).to_rfc3339();
        let bad_field = |field: &str, value: Value| {
            let mut records: Vec<Value> = (10..15).map(record).collect();
            records[3][field] = value;
            records
        };
        let cases = [
            (
                bad_field("nlu_confidence", json!(1.5)),
                StatusCode::BAD_REQUEST,
                "[3].nlu_confidence",
            ),
            (
                bad_field("nlu_confidence", json!(-0.01)),
                StatusCode::BAD_REQUEST,
                "[3].nlu_confidence",
            ),
            (
                bad_field("nlu_confidence", json!("high")),
                StatusCode::BAD_REQUEST,
                "[3].nlu_confidence",
            ),
            (
                bad_field("created_at", json!(future)),
                StatusCode::BAD_REQUEST,
                "[3].created_at",
            ),
            (
                bad_field("created_at", json!("last tuesday")),
                StatusCode::BAD_REQUEST,
                "[3].created_at",
            ),
            (
                bad_field("user_message", json!("")),
                StatusCode::BAD_REQUEST,
                "[3].user_message",
            ),
            (
                bad_field("user_message", json!("x".repeat(1024 * 1024))),
                StatusCode::BAD_REQUEST,
                "[3].user_message",
            ),
            (
                bad_field("nlu_intent", json!(7)),
                StatusCode::BAD_REQUEST,
                "[3].nlu_intent",
            ),
            (
                vec![json!("not a record")],
                StatusCode::BAD_REQUEST,
                "[0].record",
            ),
        ];
        for (records, status, field) in cases {
            let answer = http.post(&url).json(&records).send().await.unwrap();
            assert_eq!(answer.status(), status, "{field}");
            let error: Value = answer.json().await.unwrap();
            assert_eq!(error["field"], field, "{error}");
        }
        let not_array = http.post(&url).json(&record(1)).send().await.unwrap();
        assert_eq!(not_array.status(), StatusCode::BAD_REQUEST);
        // 100 000 tiny items fit the body limit but not the record limit.
        let many = format!("[{}]", vec!["{}"; 100_000].join(","));
        let answer = http
            .post(&url)
            .header("content-type", "application/json")
            .body(many)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::PAYLOAD_TOO_LARGE);
        // 100 000 real records are past the body limit.
        let huge: Vec<Value> = (0..100_000).map(record).collect();
        let answer = http.post(&url).json(&huge).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let invalid_utf8 = http
            .post(&url)
            .body(b"[{\"user_message\": \"\xc3\x28\"}]".to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(invalid_utf8.status(), StatusCode::BAD_REQUEST);

        assert_eq!(
            count(&store, "1 = 1").await,
            3,
            "a refused batch stored something"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_token_guards_every_route_but_health() {
    let db = TestDb::sqlite();
    let store = db.store().await;
    install_rules_model(&db, &store).await;
    let server = Server::start(&db, &[], &[("FLYWHEEL_API_TOKEN", "s3cret-token")]);
    let http = client();
    let classify = |token: Option<&'static str>| {
        let mut request = http
            .post(server.url("/nlu/classify"))
            .json(&json!({"text": "hello"}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(
        classify(None).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let wrong = classify(Some("s3cret-tokem")).await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.headers()["www-authenticate"], "Bearer");
    assert_eq!(
        classify(Some("s3cret-token")).await.unwrap().status(),
        StatusCode::OK
    );
    // The scheme is case-insensitive (RFC 7235), the token is not.
    for (header, status) in [
        ("bearer s3cret-token", StatusCode::OK),
        ("BEARER  s3cret-token", StatusCode::OK),
        ("bearer S3CRET-TOKEN", StatusCode::UNAUTHORIZED),
        ("Basic s3cret-token", StatusCode::UNAUTHORIZED),
        ("Bearers3cret-token", StatusCode::UNAUTHORIZED),
    ] {
        let answer = http
            .post(server.url("/nlu/classify"))
            .header("authorization", header)
            .json(&json!({"text": "hello"}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), status, "{header}");
    }
    for (path, post) in [
        ("/v1/conversations", true),
        ("/v1/feedback", true),
        ("/metrics", false),
    ] {
        let request = if post {
            http.post(server.url(path)).json(&json!([]))
        } else {
            http.get(server.url(path))
        };
        assert_eq!(
            request.send().await.unwrap().status(),
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
    }
    let metrics = http
        .get(server.url("/metrics"))
        .bearer_auth("s3cret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    assert_eq!(
        http.get(server.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(count(&store, "1 = 1").await, 3);
    assert!(!server.stderr().contains("s3cret-token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_methods_get_the_json_error_shape() {
    let db = TestDb::sqlite();
    let server = Server::start(&db, &[], &[]);
    let http = client();
    let cases = [
        (
            http.get(server.url("/nope")),
            StatusCode::NOT_FOUND,
            "/nope",
        ),
        (
            http.post(server.url("/v2/classify")),
            StatusCode::NOT_FOUND,
            "/v2/classify",
        ),
        (
            http.get(server.url("/nlu/classify")),
            StatusCode::METHOD_NOT_ALLOWED,
            "POST",
        ),
        (
            http.delete(server.url("/health")),
            StatusCode::METHOD_NOT_ALLOWED,
            "GET",
        ),
    ];
    for (request, status, named) in cases {
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status(), status);
        if status == StatusCode::METHOD_NOT_ALLOWED {
            assert!(
                answer.headers().contains_key("allow"),
                "{:?}",
                answer.headers()
            );
        }
        assert_eq!(answer.headers()["content-type"], "application/json");
        let error: Value = answer.json().await.unwrap();
        let message = error["error"].as_str().unwrap_or_default();
        assert!(message.contains(named), "{error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_characters_are_refused_with_400_naming_the_field() {
    for db in TestDb::all() {
        let store = db.store().await;
        install_rules_model(&db, &store).await;
        let server = Server::start(&db, &[], &[]);
        let http = client();
        let mut cases = vec![
            (
                "/nlu/classify",
                json!({"text": "pizza\u{0}please"}),
                "text".to_string(),
            ),
            (
                "/nlu/classify",
                json!({"text": "pizza", "sessionId": "s\u{0}1"}),
                "sessionId".to_string(),
            ),
            (
                "/v1/feedback",
                json!({"conversation_id": 1, "feedback": "negative", "correct_intent": "greet\u{0}"}),
                "correct_intent".to_string(),
            ),
        ];
        for field in [
            "user_message",
            "session_id",
            "nlu_intent",
            "nlu_provider",
            "routing_decision",
        ] {
            let mut records: Vec<Value> = (0..3).map(record).collect();
            records[2][field] = json!("bad\u{0}value");
            cases.push(("/v1/conversations", json!(records), format!("[2].{field}")));
        }
        for (route, body, field) in cases {
            let answer = http
                .post(server.url(route))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(
                answer.status(),
                StatusCode::BAD_REQUEST,
                "{:?} {field}",
                db.backend
            );
            let error: Value = answer.json().await.unwrap();
            assert_eq!(error["field"], field, "{error}");
            assert!(
                error["error"].as_str().unwrap().contains("U+0000"),
                "{error}"
            );
        }
        assert_eq!(
            count(&store, "1 = 1").await,
            0,
            "a refused request stored something"
        );
        // Refusals never reach the database, so good requests around them commit as usual.
        let ok = http
            .post(server.url("/v1/conversations"))
            .json(&(0..3).map(record).collect::<Vec<_>>())
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), StatusCode::OK);
        assert!(
            !server.stderr().contains("one by one"),
            "{}",
            server.stderr()
        );
    }
}
