//! One fake Label Studio for the tests that need a misbehaving one (the
//! real one, for everything else, is [`super::label_studio`]).
//!
//! It knows one key: a legacy token (`Authorization: Token <key>`) or, when
//! the key is a JWT, a personal access token traded at
//! `/api/token/refresh/` for short-lived access tokens (`Bearer …`; only
//! the latest one issued is accepted). It keeps the tasks imported into it
//! and pages through them as Label Studio does (no `total`, a 404
//! "Invalid page." past the end). Faults are injected per route and per
//! call: [`FakeLabelStudio::inject`] — "a 500 on the first two whoami
//! calls", "a 503 on the first import, a 500 from the third on" — and
//! lifted with [`FakeLabelStudio::heal`]. Every request is counted per
//! route, faulty or not.

use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// How long a [`Fault::Slow`] answer takes: longer than any client timeout
/// the tests set (at most 1 s).
pub const SLOW: Duration = Duration::from_secs(4);

/// The `updated_at` of every task: microseconds, as Label Studio writes them.
pub const UPDATED_AT: &str = "2026-03-10T12:00:00.000004Z";

/// A misbehaviour of the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// 401, echoing the request's Authorization header back in the detail
    /// (as a careless proxy might): the key must still reach no message.
    Unauthorized,
    /// 429 with `Retry-After: 1`.
    TooManyRequests,
    /// 500 with Django's HTML error page: the request may have been processed.
    ServerError,
    /// 502 with the JSON detail "upstream down".
    BadGateway,
    /// 503: not processed, safe to repeat.
    Unavailable,
    /// 200 with an nginx page and control bytes instead of JSON.
    Garbage,
    /// 200 with JSON cut off in the middle.
    Truncated,
    /// An import that is processed but answers one task id too few.
    MissingTaskId,
    /// Processed, but answered only after [`SLOW`].
    Slow,
    /// Never answered.
    Hang,
    /// This status and body (JSON content type), whatever was asked.
    Answer(u16, Vec<u8>),
}

/// The routes of the fake; `Anywhere` matches them all in [`FakeLabelStudio::inject`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Where {
    /// `GET /api/current-user/whoami`: checking the key.
    Whoami,
    /// `POST /api/token/refresh/`: an access token for a personal access token.
    Refresh,
    /// `GET`/`PATCH /api/projects/{id}`.
    Project,
    /// `POST /api/projects/{id}/import`: a batch of tasks.
    Import,
    /// `GET /api/tasks`: a page of tasks.
    Tasks,
    /// Anything else (404).
    Other,
    Anywhere,
}

impl Where {
    fn of(method: &Method, path: &str) -> Where {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (method.as_str(), segments.as_slice()) {
            ("GET", ["api", "current-user", "whoami"]) => Where::Whoami,
            ("POST", ["api", "token", "refresh"]) => Where::Refresh,
            ("GET" | "PATCH", ["api", "projects", id]) if id.parse::<i64>().is_ok() => {
                Where::Project
            }
            ("POST", ["api", "projects", id, "import"]) if id.parse::<i64>().is_ok() => {
                Where::Import
            }
            ("GET", ["api", "tasks"]) => Where::Tasks,
            _ => Where::Other,
        }
    }

    const ROUTES: [Where; 6] = [
        Where::Whoami,
        Where::Refresh,
        Where::Project,
        Where::Import,
        Where::Tasks,
        Where::Other,
    ];

    fn index(self) -> usize {
        Self::ROUTES
            .iter()
            .position(|w| *w == self)
            .expect("a route, not Anywhere")
    }
}

struct Injected {
    fault: Fault,
    at: Where,
    /// 1-based call numbers of the route.
    from: usize,
    to: Option<usize>,
}

struct Inner {
    key: String,
    /// Seconds an access token lives.
    access_lifetime: AtomicI64,
    /// The latest access token issued.
    access: Mutex<Option<String>>,
    faults: Mutex<Vec<Injected>>,
    healed: AtomicBool,
    hits: Mutex<[usize; 6]>,
    /// Requests that carried valid credentials.
    authorized: Mutex<usize>,
    /// Tasks: (task id, sample id), in id order.
    tasks: Mutex<Vec<(i64, i64)>>,
    /// The `data` of every task imported, in import order.
    imported: Mutex<Vec<Value>>,
}

/// A running fake, on a free loopback port until the test's runtime ends.
#[derive(Clone)]
pub struct FakeLabelStudio {
    pub url: String,
    inner: Arc<Inner>,
}

impl FakeLabelStudio {
    /// A healthy fake that knows `key`.
    pub async fn start(key: &str) -> Self {
        let inner = Arc::new(Inner {
            key: key.to_owned(),
            access_lifetime: AtomicI64::new(300),
            access: Mutex::new(None),
            faults: Mutex::new(Vec::new()),
            healed: AtomicBool::new(false),
            hits: Mutex::new([0; 6]),
            authorized: Mutex::new(0),
            tasks: Mutex::new(Vec::new()),
            imported: Mutex::new(Vec::new()),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Label Studio");
        let url = format!("http://{}", listener.local_addr().expect("its address"));
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        Self { url, inner }
    }

    /// A fake that knows `key` and answers `fault` to every call `at`.
    pub async fn with_fault(key: &str, fault: Fault, at: Where) -> Self {
        let fake = Self::start(key).await;
        fake.inject(fault, at, ..);
        fake
    }

    /// Answer `fault` to the calls `at` numbered `calls` (1-based, counted
    /// per route): `..` every call, `..=2` the first two, `3..` from the
    /// third on. An earlier injection wins where two overlap.
    pub fn inject(&self, fault: Fault, at: Where, calls: impl RangeBounds<usize>) {
        let from = match calls.start_bound() {
            Bound::Included(n) => *n,
            Bound::Excluded(n) => n + 1,
            Bound::Unbounded => 1,
        };
        let to = match calls.end_bound() {
            Bound::Included(n) => Some(*n),
            Bound::Excluded(n) => Some(n - 1),
            Bound::Unbounded => None,
        };
        self.inner.faults.lock().unwrap().push(Injected {
            fault,
            at,
            from,
            to,
        });
    }

    /// Replace every injected fault with this one answer to anything.
    pub fn answer_everything(&self, status: u16, body: Vec<u8>) {
        let mut faults = self.inner.faults.lock().unwrap();
        faults.clear();
        faults.push(Injected {
            fault: Fault::Answer(status, body),
            at: Where::Anywhere,
            from: 1,
            to: None,
        });
    }

    /// Every fault stops: the server behaves from now on.
    pub fn heal(&self) {
        self.inner.healed.store(true, Ordering::SeqCst);
    }

    /// How long the access tokens it issues live (300 s unless set).
    pub fn set_access_lifetime(&self, seconds: i64) {
        self.inner.access_lifetime.store(seconds, Ordering::SeqCst);
    }

    /// Requests seen on a route so far.
    pub fn hits(&self, at: Where) -> usize {
        self.inner.hits.lock().unwrap()[at.index()]
    }

    /// Requests that carried the key (or an access token issued for it).
    pub fn authorized(&self) -> usize {
        *self.inner.authorized.lock().unwrap()
    }

    /// Tasks as (task id, sample id), in id order.
    pub fn tasks(&self) -> Vec<(i64, i64)> {
        self.inner.tasks.lock().unwrap().clone()
    }

    /// The `data` of every task imported, in import order.
    pub fn imported(&self) -> Vec<Value> {
        self.inner.imported.lock().unwrap().clone()
    }

    /// Add tasks for these samples, as an import would; their task ids.
    pub fn add_tasks(&self, sample_ids: impl IntoIterator<Item = i64>) -> Vec<i64> {
        self.inner.add_tasks(sample_ids)
    }
}

impl Inner {
    fn add_tasks(&self, sample_ids: impl IntoIterator<Item = i64>) -> Vec<i64> {
        let mut tasks = self.tasks.lock().unwrap();
        sample_ids
            .into_iter()
            .map(|sample| {
                let id = 1000 + tasks.len() as i64;
                tasks.push((id, sample));
                id
            })
            .collect()
    }

    /// Count the call; its number on its route.
    fn hit(&self, at: Where) -> usize {
        let mut hits = self.hits.lock().unwrap();
        hits[at.index()] += 1;
        hits[at.index()]
    }

    fn fault(&self, at: Where, call: usize) -> Option<Fault> {
        if self.healed.load(Ordering::SeqCst) {
            return None;
        }
        self.faults
            .lock()
            .unwrap()
            .iter()
            .find(|f| {
                (f.at == at || f.at == Where::Anywhere)
                    && call >= f.from
                    && f.to.is_none_or(|to| call <= to)
            })
            .map(|f| f.fault.clone())
    }

    fn authorizes(&self, headers: &HeaderMap) -> bool {
        let Some(auth) = headers.get("authorization").and_then(|h| h.to_str().ok()) else {
            return false;
        };
        let ok = auth == format!("Token {}", self.key)
            || self
                .access
                .lock()
                .unwrap()
                .as_ref()
                .is_some_and(|token| auth == format!("Bearer {token}"));
        if ok {
            *self.authorized.lock().unwrap() += 1;
        }
        ok
    }

    /// What a healthy Label Studio answers (and does: imports are kept).
    fn answer(&self, at: Where, uri: &Uri, authorized: bool, body: &[u8]) -> Response {
        if at == Where::Refresh {
            return self.refresh(body);
        }
        if !authorized {
            return detail(
                StatusCode::UNAUTHORIZED,
                "Authentication credentials were not provided.",
            );
        }
        match at {
            Where::Whoami => {
                json_answer(json!({"id": 1, "email": "ops@example.com", "username": "ops"}))
            }
            Where::Project => {
                let id = uri
                    .path()
                    .trim_matches('/')
                    .rsplit('/')
                    .next()
                    .unwrap_or("0");
                json_answer(json!({"id": id.parse::<i64>().unwrap_or(0),
                    "title": "Flywheel intent review", "label_config": "<View/>", "model_version": ""}))
            }
            Where::Import => {
                let ids = self.import(body);
                created(ids.len(), &ids)
            }
            Where::Tasks => self.page(uri),
            _ => detail(StatusCode::NOT_FOUND, "Not found."),
        }
    }

    /// Keep the tasks of an import's body; their new ids.
    fn import(&self, body: &[u8]) -> Vec<i64> {
        let batch: Vec<Value> = serde_json::from_slice(body).unwrap_or_default();
        self.imported
            .lock()
            .unwrap()
            .extend(batch.iter().map(|task| task["data"].clone()));
        self.add_tasks(
            batch
                .iter()
                .map(|task| task["data"]["sample_id"].as_i64().unwrap_or(-1)),
        )
    }

    fn refresh(&self, body: &[u8]) -> Response {
        let refresh: Value = serde_json::from_slice(body).unwrap_or_default();
        if refresh["refresh"] != self.key.as_str() {
            return detail(StatusCode::UNAUTHORIZED, "Token is invalid");
        }
        let token = jwt(self.access_lifetime.load(Ordering::SeqCst));
        *self.access.lock().unwrap() = Some(token.clone());
        json_answer(json!({"access": token}))
    }

    /// One page of tasks in id order; 404 "Invalid page." past the end.
    fn page(&self, uri: &Uri) -> Response {
        let query: Vec<(String, String)> = query_pairs(uri.query().unwrap_or_default());
        let get = |name: &str, default: usize| {
            query
                .iter()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(default)
        };
        let (page, size) = (get("page", 1).max(1), get("page_size", 100).max(1));
        let tasks = self.tasks.lock().unwrap();
        let start = (page - 1) * size;
        if page > 1 && start >= tasks.len() {
            return detail(StatusCode::NOT_FOUND, "Invalid page.");
        }
        let page: Vec<Value> = tasks
            .iter()
            .skip(start)
            .take(size)
            .map(|(id, sample)| {
                json!({"id": id, "data": {"sample_id": sample}, "annotations": [],
                       "created_at": "2026-03-10T12:00:00Z", "updated_at": UPDATED_AT})
            })
            .collect();
        json_answer(json!({ "tasks": page }))
    }
}

/// `a=1&b=2` → pairs (the values read here are numbers: no decoding needed).
fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// An import's answer: how many tasks were imported, and their ids.
fn created(task_count: usize, ids: &[i64]) -> Response {
    (
        StatusCode::CREATED,
        axum::Json(json!({"task_count": task_count, "task_ids": ids})),
    )
        .into_response()
}

fn json_answer(value: Value) -> Response {
    axum::Json(value).into_response()
}

fn detail(status: StatusCode, detail: &str) -> Response {
    (status, axum::Json(json!({ "detail": detail }))).into_response()
}

/// An access token (a JWT whose payload holds its expiry) living `lifetime` s.
fn jwt(lifetime: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let payload =
        URL_SAFE_NO_PAD.encode(json!({"token_type": "access", "exp": now + lifetime}).to_string());
    format!("eyJhbGciOiJIUzI1NiJ9.{payload}.sig{}", now + lifetime)
}

async fn handle(
    State(fake): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let at = Where::of(&method, uri.path());
    let call = fake.hit(at);
    let authorized = fake.authorizes(&headers);
    let Some(fault) = fake.fault(at, call) else {
        return fake.answer(at, &uri, authorized, &body);
    };
    match fault {
        Fault::Unauthorized => {
            let auth = headers
                .get("authorization")
                .and_then(|h| h.to_str().ok())
                .unwrap_or_default();
            detail(StatusCode::UNAUTHORIZED, &format!("Invalid token {auth}"))
        }
        Fault::TooManyRequests => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            axum::Json(json!({"detail": "Request was throttled."})),
        )
            .into_response(),
        Fault::ServerError => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "<h1>Server Error (500)</h1>",
        )
            .into_response(),
        Fault::BadGateway => detail(StatusCode::BAD_GATEWAY, "upstream down"),
        Fault::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "busy").into_response(),
        Fault::Garbage => (
            StatusCode::OK,
            "<html><title>Welcome to nginx</title>\u{0}\u{1}garbage",
        )
            .into_response(),
        Fault::Truncated => {
            ([("content-type", "application/json")], r#"{"id": 1, "ema"#).into_response()
        }
        Fault::MissingTaskId => {
            let mut ids = fake.import(&body);
            let imported = ids.len();
            ids.pop();
            created(imported, &ids)
        }
        Fault::Slow => {
            let answer = fake.answer(at, &uri, authorized, &body);
            tokio::time::sleep(SLOW).await; // the fault under test
            answer
        }
        Fault::Hang => std::future::pending().await,
        Fault::Answer(status, body) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            [("content-type", "application/json")],
            body,
        )
            .into_response(),
    }
}
