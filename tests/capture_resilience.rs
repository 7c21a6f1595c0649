//! `serve` under pressure: a full write queue answers 503 with Retry-After,
//! SIGTERM drains queued rows and exits 0, and a database that goes away is
//! answered with fast 503s until it returns, without a restart.

mod capture_support;
mod common;

use std::time::{Duration, Instant};

use capture_support::{Server, client, count, eventually, install_rules_model};
use common::{Backend, TestDb};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;

/// Another client holding the write lock of `conversation_logs`, so the
/// writer blocks on its commit until [`WriteBlock::release`].
enum WriteBlock {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl WriteBlock {
    async fn take(db: &TestDb) -> Self {
        match &db.database_url {
            None => {
                let url = format!("sqlite://{}", db.data_path().join("flywheel.db").display());
                let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
                // The writer waits on SQLite's busy timeout (10 s) meanwhile.
                sqlx::query("BEGIN IMMEDIATE")
                    .execute(&mut conn)
                    .await
                    .unwrap();
                WriteBlock::Sqlite(conn)
            }
            Some(url) => {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
                sqlx::query("LOCK TABLE conversation_logs IN SHARE MODE")
                    .execute(&mut conn)
                    .await
                    .unwrap();
                WriteBlock::Postgres(conn)
            }
        }
    }

    async fn release(self) {
        match self {
            WriteBlock::Sqlite(mut c) => sqlx::query("ROLLBACK").execute(&mut c).await.map(|_| ()),
            WriteBlock::Postgres(mut c) => {
                sqlx::query("ROLLBACK").execute(&mut c).await.map(|_| ())
            }
        }
        .unwrap();
    }
}

async fn health(http: &reqwest::Client, server: &Server) -> Value {
    http.get(server.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

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
    eventually(
        "the writer to hold a row",
        Duration::from_secs(5),
        || async { (health(http, server).await["queue"]["in_flight_rows"] == 1).then_some(()) },
    )
    .await;
    let second = classify(http, server, "pizza two");
    eventually(
        "a request to wait in the queue",
        Duration::from_secs(5),
        || async { (health(http, server).await["queue"]["depth"] == 1).then_some(()) },
    )
    .await;
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
        let metrics = http
            .get(server.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
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

    let name = db
        .database_url
        .as_deref()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let admin = std::env::var("FLYWHEEL_TEST_PG_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut admin = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()")
        .bind(&name)
        .execute(&mut admin)
        .await
        .unwrap();

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

    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
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
