//! A real Label Studio for tests (DESIGN §10, §11): one server per test
//! binary, started on first use and shared by its tests.
//!
//! - **Install**: `scripts/label-studio.sh install` puts `label-studio==1.23.2`
//!   into a cached virtualenv (`~/.cache/flywheel/label-studio-1.23.2`) under
//!   a file lock, once per machine (a few minutes the first time).
//! - **Template**: the first start ever migrates a data dir (fixed
//!   `SECRET_KEY`, an admin user, a legacy token and legacy tokens enabled
//!   on the organisation) and keeps it in the cache; minutes on a busy
//!   machine, once.
//! - **Start**: a copy of the template in a temporary dir, a free loopback
//!   port; ready when `/health` answers (polled, ~30 s). Then a personal
//!   access token is made through the login form, as a person would.
//! - **Teardown**: the server runs under a small bash watchdog that polls
//!   the test process's pid and, once it is gone, kills the server's process
//!   group and deletes the data dir. Statics are never dropped, so nothing
//!   in-process could do this; the watchdog also covers a test binary that
//!   panics or is killed.
//!
//! Without Python the tests are skipped with a loud message, except when
//! `CI=true`: there a missing Label Studio fails the run.

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::label_studio_process as process;

pub const VERSION: &str = "1.23.2";
/// A 40-hex legacy token, as `Token <key>` keys look in production.
pub const LEGACY_TOKEN: &str = "f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1";
pub const ADMIN_EMAIL: &str = "admin@flywheel.test";
pub const ADMIN_PASSWORD: &str = "flywheel-test-password";

/// A running Label Studio.
pub struct LabelStudio {
    pub url: String,
    pub legacy_token: String,
    pub pat: String,
    pub admin_id: i64,
    pub data_dir: PathBuf,
    pub install_time: Duration,
    pub start_time: Duration,
    // Never stopped from here (statics are not dropped): its watchdog ends
    // it when this process exits.
    _server: Mutex<process::Server>,
}

static SERVER: OnceLock<Result<Option<LabelStudio>, String>> = OnceLock::new();

/// The test binary's Label Studio, started on first call. `None` (after a
/// loud message) when Python is missing outside CI; panics in CI, or when
/// the server cannot be started.
pub fn label_studio() -> Option<&'static LabelStudio> {
    let result = SERVER.get_or_init(|| {
        // HTTP setup needs a runtime of its own: callers are #[tokio::test]s
        // whose runtimes cannot nest another.
        std::thread::spawn(|| start().map_err(|e| format!("{e:#}")))
            .join()
            .unwrap_or_else(|_| Err("the Label Studio start-up thread panicked".into()))
    });
    match result {
        Ok(server) => server.as_ref(),
        Err(e) => panic!("Label Studio for tests: {e}"),
    }
}

/// Skip the calling test (with a message) when no Label Studio can run here.
#[macro_export]
macro_rules! label_studio_or_skip {
    () => {
        match $crate::support::label_studio::label_studio() {
            Some(ls) => ls,
            None => return,
        }
    };
}

fn start() -> anyhow::Result<Option<LabelStudio>> {
    let t0 = Instant::now();
    let Some(bin) = process::install()? else {
        return Ok(None);
    };
    let template = process::migrated_template(&bin)?;
    let install_time = t0.elapsed();

    let data_dir = tempfile::Builder::new()
        .prefix("flywheel-label-studio-")
        .tempdir()?
        .keep();
    process::copy_dir(&template, &data_dir)?;
    let t1 = Instant::now();
    let server = process::start_server(&bin, &data_dir)?;
    let start_time = t1.elapsed();
    let url = format!("http://127.0.0.1:{}", server.port);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (pat, admin_id) = rt.block_on(async {
        let pat = create_pat(&url).await?;
        let me = api(&url, reqwest::Method::GET, "/api/current-user/whoami", None).await?;
        anyhow::Ok((pat, me["id"].as_i64().unwrap_or(1)))
    })?;
    eprintln!(
        "label-studio {VERSION} for tests at {url}: install/template check {:.1} s, start {:.1} s, data {}",
        install_time.as_secs_f64(),
        start_time.as_secs_f64(),
        data_dir.display()
    );
    Ok(Some(LabelStudio {
        url,
        legacy_token: LEGACY_TOKEN.into(),
        pat,
        admin_id,
        data_dir,
        install_time,
        start_time,
        _server: Mutex::new(server),
    }))
}

/// A personal access token the way a person gets one (§11): log in through
/// the form, then `POST /api/token/` with the session.
async fn create_pat(url: &str) -> anyhow::Result<String> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let mut jar = Cookies::default();
    let login = format!("{url}/user/login/");
    let page = http.get(&login).send().await?;
    jar.take(&page);
    let csrf = jar
        .get("csrftoken")
        .ok_or_else(|| anyhow::anyhow!("no csrftoken cookie on {login}"))?;
    let form = [
        ("csrfmiddlewaretoken", csrf.as_str()),
        ("email", ADMIN_EMAIL),
        ("password", ADMIN_PASSWORD),
    ];
    let res = http
        .post(&login)
        .header("Cookie", jar.header())
        .form(&form)
        .send()
        .await?;
    anyhow::ensure!(
        res.status().as_u16() == 302,
        "login form answered {}, not a redirect",
        res.status()
    );
    jar.take(&res);
    let csrf = jar.get("csrftoken").unwrap_or(csrf);
    let res = http
        .post(format!("{url}/api/token/"))
        .header("Cookie", jar.header())
        .header("X-CSRFToken", csrf)
        .send()
        .await?;
    let status = res.status();
    let body: Value = res.json().await?;
    anyhow::ensure!(
        status.is_success(),
        "POST /api/token/ answered {status}: {body}"
    );
    body["token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("POST /api/token/ gave no token: {body}"))
}

/// Just enough of a cookie jar for Django's session + CSRF cookies.
#[derive(Default)]
struct Cookies(Vec<(String, String)>);

impl Cookies {
    fn take(&mut self, res: &reqwest::Response) {
        for v in res.headers().get_all(reqwest::header::SET_COOKIE) {
            let Some((name, value)) = v
                .to_str()
                .ok()
                .and_then(|c| c.split(';').next()?.split_once('='))
            else {
                continue;
            };
            self.0.retain(|(n, _)| n != name);
            self.0
                .push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }
    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// A raw API call with the legacy token: what a person does in the web UI,
/// done the way the UI does it. Panics with the body on a non-2xx answer.
pub async fn api(
    url: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let mut req = reqwest::Client::new()
        .request(method.clone(), format!("{url}{path}"))
        .header("Authorization", format!("Token {LEGACY_TOKEN}"));
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await?;
    let status = res.status();
    let text = res.text().await?;
    anyhow::ensure!(
        status.is_success(),
        "{method} {path} answered {status}: {text}"
    );
    Ok(if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text)?
    })
}

impl LabelStudio {
    /// Annotate a task with one intent, as `user` (another annotator when
    /// not the admin). Returns the annotation id.
    pub async fn annotate(&self, task: i64, intent: &str, user: Option<i64>) -> i64 {
        let mut body = json!({"result": [choice(intent)]});
        if let Some(user) = user {
            body["completed_by"] = json!(user);
        }
        self.post_annotation(task, body).await
    }

    /// Skip a task, as the editor's Skip button does.
    pub async fn skip(&self, task: i64, user: Option<i64>) -> i64 {
        let mut body = json!({"result": [], "was_cancelled": true});
        if let Some(user) = user {
            body["completed_by"] = json!(user);
        }
        self.post_annotation(task, body).await
    }

    /// Change an existing annotation's intent.
    pub async fn update_annotation(&self, annotation: i64, intent: &str) {
        api(
            &self.url,
            reqwest::Method::PATCH,
            &format!("/api/annotations/{annotation}"),
            Some(json!({"result": [choice(intent)]})),
        )
        .await
        .expect("PATCH annotation");
    }

    /// Add a user to the organisation (for several annotators).
    pub async fn create_user(&self, email: &str) -> i64 {
        let user = api(
            &self.url,
            reqwest::Method::POST,
            "/api/users/",
            Some(json!({"email": email, "username": email})),
        )
        .await
        .expect("create user");
        user["id"].as_i64().expect("user id")
    }

    async fn post_annotation(&self, task: i64, body: Value) -> i64 {
        let a = api(
            &self.url,
            reqwest::Method::POST,
            &format!("/api/tasks/{task}/annotations"),
            Some(body),
        )
        .await
        .expect("create annotation");
        a["id"].as_i64().expect("annotation id")
    }
}

fn choice(intent: &str) -> Value {
    json!({"from_name": "intent", "to_name": "text", "type": "choices", "value": {"choices": [intent]}})
}
