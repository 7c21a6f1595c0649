//! The Label Studio client against a misbehaving server (DESIGN §10 "bad
//! input everywhere"): a tiny axum app per test scripts each failure.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use flywheel::error::ErrorKind;
use flywheel::review::label_studio::{ClientOptions, LabelStudioClient, ModelPrediction, NewTask};
use secrecy::SecretString;
use serde_json::{Value, json};

const LEGACY: &str = "0123456789abcdef0123456789abcdef01234567";

/// Requests seen per route, shared with the handlers.
#[derive(Default)]
struct Hits {
    whoami: AtomicUsize,
    refresh: AtomicUsize,
    import: AtomicUsize,
}

type Shared = Arc<Hits>;

async fn serve(app: Router<Shared>) -> (String, Shared) {
    let hits = Shared::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = app.with_state(hits.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, hits)
}

fn options() -> ClientOptions {
    ClientOptions {
        timeout: Duration::from_millis(800),
        connect_timeout: Duration::from_millis(500),
        retries: 3,
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(100),
    }
}

fn client(url: &str, key: &str) -> LabelStudioClient {
    LabelStudioClient::new(url, SecretString::from(key.to_owned()), options()).unwrap()
}

fn user() -> Value {
    json!({"id": 1, "email": "a@b.c", "username": "a"})
}

fn count(n: &AtomicUsize) -> usize {
    n.fetch_add(1, Ordering::SeqCst) + 1
}

#[tokio::test]
async fn a_rejected_legacy_key_is_a_config_error_without_retries_or_the_key() {
    // The server echoes the Authorization header back, as a careless proxy
    // might: the key must still not reach the message.
    let app = Router::new().route(
        "/api/current-user/whoami",
        get(|State(h): State<Shared>, headers: HeaderMap| async move {
            count(&h.whoami);
            let auth = headers["authorization"].to_str().unwrap().to_owned();
            (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"detail": format!("Invalid token {auth}")})),
            )
        }),
    );
    let (url, hits) = serve(app).await;
    let err = client(&url, LEGACY).whoami().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert_eq!(err.kind().exit_code(), 78);
    assert!(
        err.message()
            .starts_with("Label Studio rejected the API key"),
        "{err}"
    );
    assert!(err.message().contains("whoami"), "names the call: {err}");
    assert!(!err.message().contains(LEGACY), "{err}");
    assert_eq!(hits.whoami.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_transient_500_is_retried_until_it_succeeds() {
    let app = Router::new().route(
        "/api/current-user/whoami",
        get(|State(h): State<Shared>| async move {
            match count(&h.whoami) {
                1 | 2 => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
                _ => axum::Json(user()).into_response(),
            }
        }),
    );
    let (url, hits) = serve(app).await;
    assert_eq!(client(&url, LEGACY).whoami().await.unwrap().id, 1);
    assert_eq!(hits.whoami.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_500_forever_gives_up_as_unavailable_in_bounded_time() {
    let app = Router::new().route(
        "/api/current-user/whoami",
        get(|State(h): State<Shared>| async move {
            count(&h.whoami);
            (
                StatusCode::BAD_GATEWAY,
                axum::Json(json!({"detail": "upstream down"})),
            )
        }),
    );
    let (url, hits) = serve(app).await;
    let t0 = Instant::now();
    let err = client(&url, LEGACY).whoami().await.unwrap_err();
    // 3 backoffs of at most 100 ms each, plus request time.
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(err.kind().exit_code(), 69);
    assert!(err.message().contains("HTTP 502 (upstream down)"), "{err}");
    assert!(err.message().contains("4 attempts"), "{err}");
    assert_eq!(hits.whoami.load(Ordering::SeqCst), 4);
}

fn one_task() -> Vec<NewTask> {
    vec![NewTask {
        sample_id: 7,
        text: "hello".into(),
        language: "en".into(),
        occurrences: 1,
        priority: 5,
        prediction: ModelPrediction {
            model_version: "v1".into(),
            intent: "greet".into(),
            score: 0.7,
        },
    }]
}

#[tokio::test]
async fn import_is_not_repeated_after_an_ambiguous_500_but_is_after_503() {
    let app = Router::new().route(
        "/api/projects/{id}/import",
        post(|State(h): State<Shared>| async move {
            match count(&h.import) {
                1 => (StatusCode::SERVICE_UNAVAILABLE, "busy").into_response(),
                2 => (
                    StatusCode::CREATED,
                    axum::Json(json!({"task_count": 1, "task_ids": [41]})),
                )
                    .into_response(),
                _ => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
            }
        }),
    );
    let (url, hits) = serve(app).await;
    let c = client(&url, LEGACY);
    // 503 = not processed: retried, and the import goes through.
    assert_eq!(c.import_tasks(3, &one_task()).await.unwrap(), vec![41]);
    assert_eq!(hits.import.load(Ordering::SeqCst), 2);
    // 500 may have committed: one attempt only, and the error says so.
    let err = c.import_tasks(3, &one_task()).await.unwrap_err();
    assert_eq!(hits.import.load(Ordering::SeqCst), 3);
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(
        err.message().contains("import 1 tasks into project 3"),
        "{err}"
    );
    assert!(err.message().contains("outcome is unknown"), "{err}");
}

#[tokio::test]
async fn truncated_or_non_json_bodies_name_the_call_and_the_problem() {
    let app = Router::new()
        .route(
            "/api/current-user/whoami",
            get(|| async { ([("content-type", "application/json")], r#"{"id": 1, "ema"#) }),
        )
        .route(
            "/api/projects/{id}",
            get(|| async { "<html><title>Gateway</title></html>" }),
        )
        .route(
            "/api/projects/{id}/import",
            post(|| async {
                (
                    StatusCode::CREATED,
                    axum::Json(json!({"task_count": 2, "task_ids": [1]})),
                )
            }),
        );
    let (url, _) = serve(app).await;
    let c = client(&url, LEGACY);

    let err = c.whoami().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.message().contains("identify the key's user"), "{err}");
    assert!(err.message().contains("truncated JSON"), "{err}");

    let err = c.get_project(5).await.unwrap_err();
    assert!(err.message().contains("read project 5"), "{err}");
    assert!(err.message().contains("not JSON"), "{err}");

    // A 201 whose ids do not match the batch is not taken at its word.
    let mut two = one_task();
    two.extend(one_task());
    let err = c.import_tasks(1, &two).await.unwrap_err();
    assert!(
        err.message().contains("returned 1 task ids for 2 tasks"),
        "{err}"
    );
}

#[tokio::test]
async fn a_slow_server_hits_the_timeout_and_is_unavailable() {
    let app = Router::new().route(
        "/api/current-user/whoami",
        get(|State(h): State<Shared>| async move {
            count(&h.whoami);
            tokio::time::sleep(Duration::from_secs(30)).await; // the fault under test
            axum::Json(user())
        }),
    );
    let (url, hits) = serve(app).await;
    let mut o = options();
    o.retries = 1;
    let c = LabelStudioClient::new(&url, SecretString::from(LEGACY.to_owned()), o).unwrap();
    let t0 = Instant::now();
    let err = c.whoami().await.unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.message().contains("did not answer"), "{err}");
    assert_eq!(hits.whoami.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    // Bind then drop: nothing listens on the port any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = client(&format!("http://127.0.0.1:{port}"), LEGACY)
        .whoami()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(
        err.message().contains("failed to identify the key's user"),
        "{err}"
    );
    assert!(err.message().contains("4 attempts"), "{err}");
}

#[tokio::test]
async fn bad_configuration_is_refused_up_front() {
    for (url, key) in [
        ("not a url", LEGACY),
        ("ftp://x", LEGACY),
        ("http://x", "  "),
    ] {
        let err =
            LabelStudioClient::new(url, SecretString::from(key.to_owned()), options()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{url:?}: {err}");
    }
}

// ---- personal access tokens -------------------------------------------

fn jwt(exp_in: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let payload =
        URL_SAFE_NO_PAD.encode(json!({"token_type": "access", "exp": now + exp_in}).to_string());
    format!("eyJhbGciOiJIUzI1NiJ9.{payload}.sig{}", now + exp_in)
}

const PAT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCJ9.refresh-signature";

/// A server issuing access tokens that live `lifetime` seconds; whoami
/// accepts only the most recently issued one, and answers 401 to the first
/// `reject_first` requests whatever the token.
async fn pat_server(lifetime: i64, reject_first: usize) -> (String, Shared) {
    let issued = Arc::new(std::sync::Mutex::new(String::new()));
    let issued2 = issued.clone();
    let app = Router::new()
        .route(
            "/api/token/refresh/",
            post(
                move |State(h): State<Shared>, axum::Json(body): axum::Json<Value>| {
                    let issued = issued.clone();
                    async move {
                        count(&h.refresh);
                        if body["refresh"] != PAT {
                            return (
                                StatusCode::UNAUTHORIZED,
                                axum::Json(json!({"detail": "Token is invalid"})),
                            );
                        }
                        let token = jwt(lifetime);
                        *issued.lock().unwrap() = token.clone();
                        (StatusCode::OK, axum::Json(json!({"access": token})))
                    }
                },
            ),
        )
        .route(
            "/api/current-user/whoami",
            get(move |State(h): State<Shared>, headers: HeaderMap| {
                let issued = issued2.clone();
                async move {
                    let n = count(&h.whoami);
                    let expected = format!("Bearer {}", issued.lock().unwrap());
                    let ok = n > reject_first
                        && headers
                            .get("authorization")
                            .is_some_and(|v| v == expected.as_str());
                    let resp: Response = if ok {
                        axum::Json(user()).into_response()
                    } else {
                        (
                            StatusCode::UNAUTHORIZED,
                            axum::Json(
                                json!({"detail": "Authentication credentials were not provided."}),
                            ),
                        )
                            .into_response()
                    };
                    resp
                }
            }),
        );
    serve(app).await
}

#[tokio::test]
async fn a_pat_is_traded_for_an_access_token_that_is_reused_while_fresh() {
    let (url, hits) = pat_server(300, 0).await;
    let c = client(&url, PAT);
    for _ in 0..3 {
        c.whoami().await.unwrap();
    }
    assert_eq!(hits.refresh.load(Ordering::SeqCst), 1);
    assert_eq!(hits.whoami.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn an_access_token_near_expiry_is_refreshed_before_use() {
    // 20 s left is inside the 30 s margin: every call refreshes first, and
    // no call ever meets a 401.
    let (url, hits) = pat_server(20, 0).await;
    let c = client(&url, PAT);
    c.whoami().await.unwrap();
    c.whoami().await.unwrap();
    assert_eq!(hits.refresh.load(Ordering::SeqCst), 2);
    assert_eq!(hits.whoami.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_401_refreshes_once_and_retries_once_then_reports_the_key() {
    let (url, hits) = pat_server(300, 1).await;
    let c = client(&url, PAT);
    c.whoami().await.unwrap(); // 401, refresh, retry succeeds
    assert_eq!(hits.refresh.load(Ordering::SeqCst), 2);
    assert_eq!(hits.whoami.load(Ordering::SeqCst), 2);

    // A server that keeps refusing: one refresh, one retry, then a clear error.
    let (url, hits) = pat_server(300, usize::MAX).await;
    let err = client(&url, PAT).whoami().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(
        err.message()
            .starts_with("Label Studio rejected the API key"),
        "{err}"
    );
    assert_eq!(hits.refresh.load(Ordering::SeqCst), 2);
    assert_eq!(hits.whoami.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_refused_pat_says_so_without_showing_it() {
    let (url, _) = pat_server(300, 0).await;
    let other = "eyJhbGciOiJIUzI1NiJ9.eyJvdGhlciI6MX0.other-signature";
    let c = client(&url, other);
    let err = c.whoami().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(
        err.message().contains("personal access token was refused"),
        "{err}"
    );
    assert!(!err.message().contains(other) && !format!("{c:?}").contains(other));
}

// ---- paging ------------------------------------------------------------

#[derive(serde::Deserialize)]
struct PageQuery {
    page: usize,
    page_size: usize,
}

#[tokio::test]
async fn paging_stops_at_invalid_page() {
    // Two full pages and no `total`: only the 404 "Invalid page." ends it.
    let app = Router::new().route(
        "/api/tasks",
        get(|Query(q): Query<PageQuery>| async move {
            if q.page > 2 {
                return (StatusCode::NOT_FOUND, axum::Json(json!({"detail": "Invalid page."}))).into_response();
            }
            let tasks: Vec<Value> = (0..q.page_size)
                .map(|i| {
                    let id = (q.page - 1) * q.page_size + i + 1;
                    json!({"id": id, "data": {"sample_id": id * 10}, "updated_at": "2026-11-25T01:02:03.000004Z", "annotations": []})
                })
                .collect();
            axum::Json(json!({"tasks": tasks})).into_response()
        }),
    );
    let (url, _) = serve(app).await;
    let tasks = client(&url, LEGACY)
        .tasks_updated_since(1, None)
        .await
        .unwrap();
    assert_eq!(tasks.len(), 1000);
    assert_eq!(tasks[999].sample_id, Some(10_000));
}
