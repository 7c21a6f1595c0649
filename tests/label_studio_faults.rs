//! The Label Studio client against a misbehaving server (DESIGN §10 "bad
//! input everywhere"): the tests' fake Label Studio, with each failure
//! injected where and when the test needs it.

mod support;

use std::time::{Duration, Instant};

use flywheel::error::ErrorKind;
use flywheel::review::label_studio::{ClientOptions, LabelStudioClient, ModelPrediction, NewTask};
use secrecy::SecretString;
use support::fake_label_studio::{FakeLabelStudio, Fault, Where};

const LEGACY: &str = "0123456789abcdef0123456789abcdef01234567";

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

#[tokio::test]
async fn a_rejected_legacy_key_is_a_config_error_without_retries_or_the_key() {
    // The fake's 401 echoes the Authorization header back, as a careless
    // proxy might: the key must still not reach the message.
    let fake = FakeLabelStudio::with_fault(LEGACY, Fault::Unauthorized, Where::Whoami).await;
    let err = client(&fake.url, LEGACY).whoami().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert_eq!(err.kind().exit_code(), 78);
    assert!(
        err.message()
            .starts_with("Label Studio rejected the API key"),
        "{err}"
    );
    assert!(err.message().contains("whoami"), "names the call: {err}");
    assert!(!err.message().contains(LEGACY), "{err}");
    assert_eq!(fake.hits(Where::Whoami), 1);
}

#[tokio::test]
async fn a_transient_500_is_retried_until_it_succeeds() {
    let fake = FakeLabelStudio::start(LEGACY).await;
    fake.inject(Fault::ServerError, Where::Whoami, ..=2);
    assert_eq!(client(&fake.url, LEGACY).whoami().await.unwrap().id, 1);
    assert_eq!(fake.hits(Where::Whoami), 3);
}

#[tokio::test]
async fn a_500_forever_gives_up_as_unavailable_in_bounded_time() {
    let fake = FakeLabelStudio::with_fault(LEGACY, Fault::BadGateway, Where::Whoami).await;
    let t0 = Instant::now();
    let err = client(&fake.url, LEGACY).whoami().await.unwrap_err();
    // 3 backoffs of at most 100 ms each, plus request time.
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(err.kind().exit_code(), 69);
    assert!(err.message().contains("HTTP 502 (upstream down)"), "{err}");
    assert!(err.message().contains("4 attempts"), "{err}");
    assert_eq!(fake.hits(Where::Whoami), 4);
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
        suspect: None,
    }]
}

#[tokio::test]
async fn import_is_not_repeated_after_an_ambiguous_500_but_is_after_503() {
    let fake = FakeLabelStudio::start(LEGACY).await;
    fake.inject(Fault::Unavailable, Where::Import, 1..=1);
    fake.inject(Fault::ServerError, Where::Import, 3..);
    let c = client(&fake.url, LEGACY);
    // 503 = not processed: retried, and the import goes through.
    let ids = c.import_tasks(3, &one_task()).await.unwrap();
    assert_eq!(fake.tasks(), [(ids[0], 7)], "imported once");
    assert_eq!(fake.hits(Where::Import), 2);
    // 500 may have committed: one attempt only, and the error says so.
    let err = c.import_tasks(3, &one_task()).await.unwrap_err();
    assert_eq!(fake.hits(Where::Import), 3);
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(
        err.message().contains("import 1 tasks into project 3"),
        "{err}"
    );
    assert!(err.message().contains("outcome is unknown"), "{err}");
}

#[tokio::test]
async fn truncated_or_non_json_bodies_name_the_call_and_the_problem() {
    let fake = FakeLabelStudio::start(LEGACY).await;
    fake.inject(Fault::Truncated, Where::Whoami, ..);
    fake.inject(Fault::Garbage, Where::Project, ..);
    fake.inject(Fault::MissingTaskId, Where::Import, ..);
    let c = client(&fake.url, LEGACY);

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
    let fake = FakeLabelStudio::with_fault(LEGACY, Fault::Slow, Where::Whoami).await;
    let mut o = options();
    o.retries = 1;
    let c = LabelStudioClient::new(&fake.url, SecretString::from(LEGACY.to_owned()), o).unwrap();
    let t0 = Instant::now();
    let err = c.whoami().await.unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.message().contains("did not answer"), "{err}");
    assert_eq!(fake.hits(Where::Whoami), 2);
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

const PAT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCJ9.refresh-signature";

/// A fake issuing access tokens that live `lifetime` seconds (whoami
/// accepts only the most recently issued one), and answering 401 to the
/// first `reject_first` whoami requests whatever the token.
async fn pat_server(lifetime: i64, reject_first: usize) -> FakeLabelStudio {
    let fake = FakeLabelStudio::start(PAT).await;
    fake.set_access_lifetime(lifetime);
    if reject_first > 0 {
        fake.inject(Fault::Unauthorized, Where::Whoami, ..=reject_first);
    }
    fake
}

#[tokio::test]
async fn a_pat_is_traded_for_an_access_token_that_is_reused_while_fresh() {
    let fake = pat_server(300, 0).await;
    let c = client(&fake.url, PAT);
    for _ in 0..3 {
        c.whoami().await.unwrap();
    }
    assert_eq!(fake.hits(Where::Refresh), 1);
    assert_eq!(fake.hits(Where::Whoami), 3);
}

#[tokio::test]
async fn an_access_token_near_expiry_is_refreshed_before_use() {
    // 20 s left is inside the 30 s margin: every call refreshes first, and
    // no call ever meets a 401.
    let fake = pat_server(20, 0).await;
    let c = client(&fake.url, PAT);
    c.whoami().await.unwrap();
    c.whoami().await.unwrap();
    assert_eq!(fake.hits(Where::Refresh), 2);
    assert_eq!(fake.hits(Where::Whoami), 2);
}

#[tokio::test]
async fn a_401_refreshes_once_and_retries_once_then_reports_the_key() {
    let fake = pat_server(300, 1).await;
    let c = client(&fake.url, PAT);
    c.whoami().await.unwrap(); // 401, refresh, retry succeeds
    assert_eq!(fake.hits(Where::Refresh), 2);
    assert_eq!(fake.hits(Where::Whoami), 2);

    // A server that keeps refusing: one refresh, one retry, then a clear error.
    let fake = pat_server(300, usize::MAX).await;
    let err = client(&fake.url, PAT).whoami().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(
        err.message()
            .starts_with("Label Studio rejected the API key"),
        "{err}"
    );
    assert_eq!(fake.hits(Where::Refresh), 2);
    assert_eq!(fake.hits(Where::Whoami), 2);
}

#[tokio::test]
async fn a_refused_pat_says_so_without_showing_it() {
    let fake = pat_server(300, 0).await;
    let other = "eyJhbGciOiJIUzI1NiJ9.eyJvdGhlciI6MX0.other-signature";
    let c = client(&fake.url, other);
    let err = c.whoami().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(
        err.message().contains("personal access token was refused"),
        "{err}"
    );
    assert!(!err.message().contains(other) && !format!("{c:?}").contains(other));
}

// ---- paging ------------------------------------------------------------

#[tokio::test]
async fn paging_stops_at_invalid_page() {
    // Two full pages and no `total`: only the 404 "Invalid page." ends it.
    let fake = FakeLabelStudio::start(LEGACY).await;
    fake.add_tasks((1..=1000).map(|i| i * 10));
    let tasks = client(&fake.url, LEGACY)
        .tasks_updated_since(1, None)
        .await
        .unwrap();
    assert_eq!(tasks.len(), 1000);
    assert_eq!(tasks[999].sample_id, Some(10_000));
    assert_eq!(fake.hits(Where::Tasks), 3, "two pages, then the 404");
}
