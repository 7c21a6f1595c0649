//! Safe retries (issue 13): a request repeated with its `Idempotency-Key`
//! (or a bulk record with its `request_id`) within 24 h is answered with the
//! original answer and stores nothing new, also when the first attempt was
//! still waiting behind a lock on `conversation_logs` or its client gave up
//! on it. On both backends.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::backends::{WriteBlock, timestamp_at};
use support::fixtures::{count, install_rules_model};
use support::serve::{Server, client, queue_reaches};
use support::{TestDb, exec};

fn record(text: &str, request_id: Option<&str>) -> Value {
    let mut record = json!({"user_message": text, "nlu_intent": "order_food", "nlu_confidence": 0.8,
                            "nlu_provider": "php-nlu", "phone_number": "+91 98765 43210"});
    if let Some(id) = request_id {
        record["request_id"] = json!(id);
    }
    record
}

fn post(
    http: &reqwest::Client,
    server: &Server,
    path: &str,
    key: Option<&str>,
    body: &Value,
) -> tokio::task::JoinHandle<reqwest::Result<reqwest::Response>> {
    let mut request = http.post(server.url(path)).json(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    tokio::spawn(request.send())
}

async fn answer(
    request: tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>,
) -> (StatusCode, bool, Value) {
    let response = request.await.unwrap().unwrap();
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true");
    (response.status(), replayed, response.json().await.unwrap())
}

fn ids(body: &Value) -> Vec<i64> {
    body["ids"]
        .as_array()
        .unwrap_or_else(|| panic!("no ids: {body}"))
        .iter()
        .map(|id| id.as_i64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_retries_store_each_request_once_and_get_the_original_answer() {
    for db in TestDb::all() {
        let store = db.store().await;
        install_rules_model(&db, &store).await;
        let server = Server::start(&db, &[], &[]);
        let http = client();
        let classify = json!({"text": "pizza once", "sessionId": "s-1"});
        let bulk = json!([record("bulk 0", None), record("bulk 1", None)]);
        let per_record = json!([
            record("record 1", Some("r-1")),
            record("record 2", Some("r-2"))
        ]);

        // Sent while another client holds the table: the writer waits on the lock.
        let block = WriteBlock::take(&db).await;
        let first = post(&http, &server, "/nlu/classify", Some("k-1"), &classify);
        queue_reaches(&http, &server, "in_flight_rows", 1).await;
        // A retry while the first attempt is still waiting, and bulk requests,
        // one of them twice in the queue.
        let repeat = post(&http, &server, "/nlu/classify", Some("k-1"), &classify);
        let bulk_first = post(&http, &server, "/v1/conversations", Some("b-1"), &bulk);
        let records_first = post(&http, &server, "/v1/conversations", None, &per_record);
        let bulk_twice = post(&http, &server, "/v1/conversations", Some("b-1"), &bulk);
        queue_reaches(&http, &server, "depth", 4).await;
        // Their clients give up, as they would on the uncertain 503.
        first.abort();
        bulk_first.abort();
        block.release().await;

        let (status, _, original) = answer(repeat).await;
        assert_eq!(status, StatusCode::OK, "{:?}: {original}", db.backend);
        let id = original["conversation_id"].as_i64().unwrap();
        // The same request, with the same key, once more.
        let resend = || {
            answer(post(
                &http,
                &server,
                "/nlu/classify",
                Some("k-1"),
                &classify,
            ))
        };
        let (status, replayed, again) = resend().await;
        assert_eq!((status, replayed), (StatusCode::OK, true), "{again}");
        assert_eq!(again, original, "the original answer, same conversation_id");
        assert_eq!(count(&store, "user_message = 'pizza once'").await, 1);
        assert_eq!(
            count(
                &store,
                &format!("user_message = 'pizza once' AND id = {id}")
            )
            .await,
            1
        );

        let (status, replayed, bulk_answer) = answer(post(
            &http,
            &server,
            "/v1/conversations",
            Some("b-1"),
            &bulk,
        ))
        .await;
        assert_eq!((status, replayed), (StatusCode::OK, true), "{bulk_answer}");
        assert_eq!(bulk_answer["stored"], 2);
        let bulk_ids = ids(&bulk_answer);
        let (status, _, twice_answer) = answer(bulk_twice).await;
        assert_eq!(status, StatusCode::OK, "{twice_answer}");
        assert_eq!(ids(&twice_answer), bulk_ids);
        assert_eq!(count(&store, "user_message LIKE 'bulk %'").await, 2);
        assert_eq!(
            count(
                &store,
                &format!(
                    "(user_message = 'bulk 0' AND id = {}) OR (user_message = 'bulk 1' AND id = {})",
                    bulk_ids[0], bulk_ids[1]
                )
            )
            .await,
            2
        );

        // Per-record keys: the repeated records get their first ids, the new one is stored.
        let (status, _, records_answer) = answer(records_first).await;
        assert_eq!(status, StatusCode::OK, "{records_answer}");
        let record_ids = ids(&records_answer);
        let more = json!([
            record("record 1", Some("r-1")),
            record("record 2", Some("r-2")),
            record("record 3", Some("r-3"))
        ]);
        let (status, _, more_answer) =
            answer(post(&http, &server, "/v1/conversations", None, &more)).await;
        assert_eq!(status, StatusCode::OK, "{more_answer}");
        assert_eq!(more_answer["stored"], 3);
        assert_eq!(more_answer["replayed"], 2);
        assert_eq!(ids(&more_answer)[..2], record_ids[..]);
        assert_eq!(count(&store, "user_message LIKE 'record %'").await, 3);

        // A key reused for another request is refused, naming the key.
        let (status, _, refused) = answer(post(
            &http,
            &server,
            "/nlu/classify",
            Some("k-1"),
            &json!({"text": "burger instead"}),
        ))
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
        assert_eq!(refused["field"], "Idempotency-Key");
        // Two records with one request_id in a request are a mistake of the sender.
        let twice = json!([record("x", Some("r-9")), record("y", Some("r-9"))]);
        let (status, _, refused) =
            answer(post(&http, &server, "/v1/conversations", None, &twice)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
        assert_eq!(refused["field"], "[1].request_id");
        // One key per request: a keyed bulk request may not also key its records.
        let (status, _, refused) = answer(post(
            &http,
            &server,
            "/v1/conversations",
            Some("b-2"),
            &per_record,
        ))
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
        assert_eq!(count(&store, "1 = 1").await, 6);
        // Two requests with one key were never in one group commit.
        assert!(
            !server.stderr().contains("one by one"),
            "{}",
            server.stderr()
        );

        // After 24 h a key is forgotten: the same request is stored again.
        let aged = timestamp_at(&store, chrono::Utc::now() - chrono::Duration::hours(25));
        exec(
            &store,
            &format!("UPDATE idempotency_keys SET created_at = {aged}"),
        )
        .await;
        let (status, replayed, fresh) = resend().await;
        assert_eq!((status, replayed), (StatusCode::OK, false), "{fresh}");
        assert_ne!(fresh["conversation_id"], original["conversation_id"]);
        assert_eq!(count(&store, "user_message = 'pizza once'").await, 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_sent_to_two_replicas_at_once_is_stored_once() {
    for db in TestDb::all() {
        let store = db.store().await;
        install_rules_model(&db, &store).await;
        let replicas = [Server::start(&db, &[], &[]), Server::start(&db, &[], &[])];
        let http = client();
        let body = json!({"text": "pizza twice"});
        // Both replicas insert their row and then claim the key, in parallel.
        let block = WriteBlock::take(&db).await;
        let sent: Vec<_> = replicas
            .iter()
            .map(|server| post(&http, server, "/nlu/classify", Some("k-r"), &body))
            .collect();
        for server in &replicas {
            queue_reaches(&http, server, "in_flight_rows", 1).await;
        }
        block.release().await;
        let mut answers = Vec::new();
        for request in sent {
            let (status, _, body) = answer(request).await;
            assert_eq!(status, StatusCode::OK, "{:?}: {body}", db.backend);
            answers.push(body);
        }
        assert_eq!(answers[0], answers[1], "{:?}", db.backend);
        assert_eq!(count(&store, "user_message = 'pizza twice'").await, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_obeying_the_uncertain_503_stores_each_row_once() {
    for db in TestDb::all() {
        let store = db.store().await;
        install_rules_model(&db, &store).await;
        let server = Server::start(&db, &["--commit-wait", "1s"], &[]);
        let http = client();
        let classify = json!({"text": "pizza unsure"});
        let bulk = json!([record("bulk unsure", None)]);
        let block = WriteBlock::take(&db).await;
        let first = [
            post(&http, &server, "/nlu/classify", Some("u-1"), &classify),
            post(&http, &server, "/v1/conversations", Some("u-2"), &bulk),
        ];
        for request in first {
            let response = request.await.unwrap().unwrap();
            assert_eq!(
                response.status(),
                StatusCode::SERVICE_UNAVAILABLE,
                "{:?}",
                db.backend
            );
            assert_eq!(response.headers()["retry-after"], "1");
            let error: Value = response.json().await.unwrap();
            let message = error["error"].as_str().unwrap();
            assert!(message.contains("may or may not be stored"), "{message}");
            assert!(
                message.contains("Retry with the same Idempotency-Key"),
                "{message}"
            );
        }
        block.release().await;
        // As told: the same requests with the same keys.
        let (status, _, classified) = answer(post(
            &http,
            &server,
            "/nlu/classify",
            Some("u-1"),
            &classify,
        ))
        .await;
        assert_eq!(status, StatusCode::OK, "{classified}");
        let (status, _, logged) = answer(post(
            &http,
            &server,
            "/v1/conversations",
            Some("u-2"),
            &bulk,
        ))
        .await;
        assert_eq!(status, StatusCode::OK, "{logged}");
        let id = classified["conversation_id"].as_i64().unwrap();
        assert_eq!(count(&store, "user_message = 'pizza unsure'").await, 1);
        assert_eq!(
            count(
                &store,
                &format!("user_message = 'pizza unsure' AND id = {id}")
            )
            .await,
            1
        );
        let bulk_id = ids(&logged)[0];
        assert_eq!(count(&store, "user_message = 'bulk unsure'").await, 1);
        assert_eq!(
            count(
                &store,
                &format!("user_message = 'bulk unsure' AND id = {bulk_id}")
            )
            .await,
            1
        );
    }
}
