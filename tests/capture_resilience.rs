//! `serve` under pressure: a full write queue answers 503 with Retry-After,
//! SIGTERM drains queued rows and exits 0 (within its drain bound even with
//! slow clients), slow clients are cut off by the read timeouts, and a
//! database that goes away is answered with fast 503s until it returns,
//! without a restart.

mod support;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::backends::{PgAdmin, WriteBlock};
use support::fixtures::{count, install_rules_model};
use support::processes::eventually;
use support::serve::{Server, Trickled, client, metrics, queue_reaches, trickle};
use support::{Backend, TestDb};

fn classify(
    http: &reqwest::Client,
    server: &Server,
    text: &str,
) -> tokio::task::JoinHandle<reqwest::Result<reqwest::Response>> {
    let request = http
        .post(server.url("/nlu/classify"))
        .json(&json!({ "text": text }));
    tokio::spawn(request.send())
}

/// Start one request the writer holds (blocked on the lock) and one queued behind it.
async fn one_in_flight_one_queued(
    http: &reqwest::Client,
    server: &Server,
) -> Vec<tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>> {
    let first = classify(http, server, "pizza one");
    queue_reaches(http, server, "in_flight_rows", 1).await;
    let second = classify(http, server, "pizza two");
    queue_reaches(http, server, "depth", 1).await;
    vec![first, second]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_write_queue_answers_503_with_retry_after_and_drops_nothing_it_accepted() {
    for db in TestDb::all() {
        let store = db.store().await;
        install_rules_model(&db, &store).await;
        let server = Server::start(&db, &["--queue-capacity", "1", "--max-batch", "1"], &[]);
        let http = client();
        let block = WriteBlock::take(&db).await;
        let accepted = one_in_flight_one_queued(&http, &server).await;
        let refused = http
            .post(server.url("/nlu/classify"))
            .json(&json!({"text": "pizza three"}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            refused.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "{:?}",
            db.backend
        );
        assert_eq!(refused.headers()["retry-after"], "1");
        let body: Value = refused.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("queue is full"));
        block.release().await;
        for request in accepted {
            assert_eq!(request.await.unwrap().unwrap().status(), StatusCode::OK);
        }
        assert_eq!(count(&store, "user_message LIKE 'pizza %'").await, 2);
        assert_eq!(count(&store, "user_message = 'pizza three'").await, 0);
        let metrics = metrics(&http, &server).await;
        assert!(
            metrics.contains("flywheel_write_queue_full_total 1"),
            "{metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_accepting_commits_what_was_queued_and_exits_0() {
    for db in TestDb::all() {
        let store = db.store().await;
        install_rules_model(&db, &store).await;
        let mut server = Server::start(&db, &["--max-batch", "1"], &[]);
        let http = client();
        let block = WriteBlock::take(&db).await;
        let pending = one_in_flight_one_queued(&http, &server).await;
        server.signal("TERM");
        let addr = server.base.trim_start_matches("http://").to_string();
        eventually(
            "serve to stop accepting connections",
            Duration::from_secs(10),
            || {
                let addr = addr.clone();
                async move {
                    tokio::net::TcpStream::connect(addr)
                        .await
                        .is_err()
                        .then_some(())
                }
            },
        )
        .await;
        block.release().await;
        for request in pending {
            let answer = request.await.unwrap().unwrap();
            assert_eq!(answer.status(), StatusCode::OK, "{:?}", db.backend);
        }
        let status = tokio::task::block_in_place(|| server.wait());
        assert!(
            status.success(),
            "serve exited with {status}: {}",
            server.stderr()
        );
        assert_eq!(count(&store, "user_message LIKE 'pizza %'").await, 2);
    }
}

/// A classify request whose headers arrive at once and whose body trickles.
fn slow_body() -> (Vec<u8>, Vec<u8>) {
    let body = format!(r#"{{"text": "pizza {}"}}"#, "a".repeat(10_000));
    let head = format!(
        "POST /nlu/classify HTTP/1.1\r\nHost: flywheel\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    (head.into_bytes(), body.into_bytes())
}

/// A request whose header lines trickle.
fn slow_headers() -> (Vec<u8>, Vec<u8>) {
    let head = b"POST /nlu/classify HTTP/1.1\r\nHost: flywheel\r\n".to_vec();
    let tail = format!("X-Padding: {}\r\n\r\n", "a".repeat(10_000)).into_bytes();
    (head, tail)
}

/// Start a [`trickle`] client; resolves once it has sent a few slow bytes.
async fn start_slow_client(
    server: &Server,
    (head, tail): (Vec<u8>, Vec<u8>),
    give_up: Duration,
) -> tokio::task::JoinHandle<Trickled> {
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let client = tokio::spawn(trickle(
        server.addr().to_string(),
        head,
        tail,
        give_up,
        sent.clone(),
    ));
    eventually(
        "the slow client to send",
        Duration::from_secs(10),
        || async { (sent.load(std::sync::atomic::Ordering::SeqCst) >= 3).then_some(()) },
    )
    .await;
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_slow_clients_exits_within_the_drain_bound_and_keeps_every_200() {
    const DRAIN_SECS: u64 = 2;
    for db in TestDb::all() {
        let store = db.store().await;
        install_rules_model(&db, &store).await;
        // Read timeouts far past the test: only the drain bound can end the slow clients.
        let mut server = Server::start(
            &db,
            &[],
            &[
                (
                    "FLYWHEEL_SERVE__DRAIN_TIMEOUT_SECS",
                    &DRAIN_SECS.to_string(),
                ),
                ("FLYWHEEL_SERVE__HEADER_READ_TIMEOUT_SECS", "600"),
                ("FLYWHEEL_SERVE__BODY_READ_TIMEOUT_SECS", "600"),
            ],
        );
        let http = client();
        let give_up = Duration::from_secs(90);
        let slow = vec![
            start_slow_client(&server, slow_body(), give_up).await,
            start_slow_client(&server, slow_headers(), give_up).await,
        ];
        let mut acknowledged = Vec::new();
        for i in 0..5 {
            let answer = classify(&http, &server, &format!("pizza fast {i}"))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(answer.status(), StatusCode::OK, "{:?}", db.backend);
            let body: Value = answer.json().await.unwrap();
            acknowledged.push(body["conversation_id"].as_i64().unwrap());
        }

        server.signal("TERM");
        let status =
            tokio::task::block_in_place(|| server.wait_within(Duration::from_secs(DRAIN_SECS + 5)));
        assert!(
            status.success(),
            "serve exited with {status}: {}",
            server.stderr()
        );
        for client in slow {
            let seen = client.await.unwrap();
            assert!(seen.ended_by_server, "{seen:?}");
            assert!(!seen.answer.starts_with("HTTP/1.1 200"), "{seen:?}");
        }
        let ids: Vec<String> = acknowledged.iter().map(ToString::to_string).collect();
        assert_eq!(
            count(&store, &format!("id IN ({})", ids.join(","))).await,
            acknowledged.len() as i64,
            "every answered row is stored"
        );
        assert_eq!(count(&store, "1 = 1").await, acknowledged.len() as i64);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_bodies_are_cut_off_by_the_read_timeouts() {
    let db = TestDb::sqlite();
    let store = db.store().await;
    install_rules_model(&db, &store).await;
    let server = Server::start(
        &db,
        &[],
        &[
            ("FLYWHEEL_SERVE__HEADER_READ_TIMEOUT_SECS", "1"),
            ("FLYWHEEL_SERVE__BODY_READ_TIMEOUT_SECS", "1"),
        ],
    );
    // Each slow client would need over 1000 s; the server ends it well before it gives up.
    let give_up = Duration::from_secs(20);
    let body = start_slow_client(&server, slow_body(), give_up)
        .await
        .await
        .unwrap();
    assert!(body.ended_by_server, "{body:?}");
    assert!(body.answer.starts_with("HTTP/1.1 408"), "{body:?}");
    let json = body.answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let error: Value = serde_json::from_str(json).unwrap_or_else(|err| panic!("{err}: {body:?}"));
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("serve.body_read_timeout_secs"),
        "{error}"
    );
    let headers = start_slow_client(&server, slow_headers(), give_up)
        .await
        .await
        .unwrap();
    assert!(headers.ended_by_server, "{headers:?}");
    assert!(!headers.answer.starts_with("HTTP/1.1 200"), "{headers:?}");
    // The service still answers everyone else.
    let ok = classify(&client(), &server, "pizza after")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(count(&store, "1 = 1").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_goes_away_gets_fast_503s_and_serve_recovers_by_itself() {
    let Some(db) = TestDb::postgres() else { return };
    assert_eq!(db.backend, Backend::Postgres);
    let store = db.store().await;
    install_rules_model(&db, &store).await;
    store.close().await;
    let server = Server::start(&db, &[], &[]);
    let http = client();
    let ok = classify(&http, &server, "pizza before")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);

    let name = db.pg_name();
    let mut admin = PgAdmin::connect().await;
    admin.allow_connections(name, false).await;
    admin.terminate(name, false).await;

    // The first request notices (its connection died); every later one is refused at once.
    let first = classify(&http, &server, "pizza during")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(first.headers()["retry-after"], "1");
    for _ in 0..5 {
        let started = Instant::now();
        let answer = classify(&http, &server, "pizza during")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "503 took {:?}",
            started.elapsed()
        );
    }
    let down = http.get(server.url("/health")).send().await.unwrap();
    assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);

    admin.allow_connections(name, true).await;
    admin.close().await;
    eventually("serve to store again", Duration::from_secs(30), || async {
        let answer = classify(&http, &server, "pizza after")
            .await
            .unwrap()
            .unwrap();
        (answer.status() == StatusCode::OK).then_some(())
    })
    .await;
    let store = db.store().await;
    assert_eq!(count(&store, "user_message = 'pizza before'").await, 1);
    assert_eq!(count(&store, "user_message = 'pizza during'").await, 0);
    assert!(count(&store, "user_message = 'pizza after'").await >= 1);
    let up = http.get(server.url("/health")).send().await.unwrap();
    assert_eq!(up.status(), StatusCode::OK);
}
