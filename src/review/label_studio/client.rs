//! [`LabelStudioClient`]: authentication on top of the transport, and the
//! generic "call and parse" path the API methods (`api.rs`) share.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderValue;
use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;

use super::auth::{AccessToken, KeyKind, legacy_header};
use super::http::{Answer, Call, Transport};
use crate::config::Config;
use crate::error::{Error, Result};

/// Timeouts and retry budget. The defaults suit a sync run from cron; tests
/// shrink them.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Whole-request timeout (connect + send + read the body).
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Extra attempts after the first for transient failures.
    pub retries: u32,
    /// First backoff; doubles per retry, jittered, capped at `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            retries: 4,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(10),
        }
    }
}

/// A Label Studio API client; cheap to clone (shared connection pool and
/// access token).
#[derive(Clone)]
pub struct LabelStudioClient {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Transport,
    kind: KeyKind,
    /// Legacy keys: the ready-made header. PATs: the refresh token stays in
    /// `transport.key` and the current access token lives here.
    legacy: Option<HeaderValue>,
    access: Mutex<Option<AccessToken>>,
}

impl fmt::Debug for LabelStudioClient {
    // Hand-written so no key or token can ever reach a log through `{:?}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LabelStudioClient")
            .field("base_url", &self.inner.transport.base.as_str())
            .field("key_kind", &self.inner.kind)
            .finish_non_exhaustive()
    }
}

impl LabelStudioClient {
    /// The configured client (`label_studio.*`), or a configuration error
    /// saying what to set.
    pub fn from_config(config: &Config) -> Result<Self> {
        let ls = &config.label_studio;
        let (Some(url), Some(key)) = (&ls.url, &ls.api_key) else {
            return Err(Error::config(
                "Label Studio is not configured: set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY \
                 (environment, .env or .env.labelstudio), or review in the console instead",
            ));
        };
        Self::new(
            url,
            SecretString::from(key.expose().to_string()),
            ClientOptions {
                timeout: Duration::from_secs(ls.timeout_secs.max(1)),
                ..ClientOptions::default()
            },
        )
    }

    /// `base_url` is where Label Studio answers (`http://host:8080`, or with
    /// a path prefix behind a proxy). Fails (exit 78) on a malformed URL or
    /// an empty key.
    pub fn new(base_url: &str, api_key: SecretString, options: ClientOptions) -> Result<Self> {
        let mut base = Url::parse(base_url.trim()).map_err(|e| {
            Error::config(format!("LABEL_STUDIO_URL {base_url:?} is not a URL: {e}"))
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(Error::config(format!(
                "LABEL_STUDIO_URL {base_url:?} must start with http:// or https://"
            )));
        }
        // Url::join drops the last segment unless the path ends in '/'.
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let key = api_key.expose_secret().trim();
        if key.is_empty() {
            return Err(Error::config(
                "no Label Studio API key: set LABEL_STUDIO_API_KEY (Account & Settings → Personal Access Token)",
            ));
        }
        let kind = KeyKind::of(key);
        let key = SecretString::from(key.to_owned());
        let legacy = match kind {
            KeyKind::Legacy => Some(legacy_header(&key)?),
            KeyKind::PersonalAccessToken => None,
        };
        let http = reqwest::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(options.connect_timeout)
            .user_agent(concat!("flywheel/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::failure(format!("building the Label Studio HTTP client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                transport: Transport {
                    http,
                    base,
                    options,
                    key,
                },
                kind,
                legacy,
                access: Mutex::new(None),
            }),
        })
    }

    pub fn base_url(&self) -> &Url {
        &self.inner.transport.base
    }

    pub fn key_kind(&self) -> KeyKind {
        self.inner.kind
    }

    /// Replace the cached access token with one Label Studio will refuse but
    /// that looks fresh, so the next call takes the refresh-on-401 path.
    /// Only for tests of that path; false for legacy keys.
    #[doc(hidden)]
    pub async fn poison_access_token(&self) -> Result<bool> {
        if self.inner.kind == KeyKind::Legacy {
            return Ok(false);
        }
        // header.payload(exp far away).signature — a well-formed JWT that
        // fails signature checks.
        let fake = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjQxMDI0NDQ4MDB9.invalid";
        *self.inner.access.lock().await = Some(AccessToken::new(fake)?);
        Ok(true)
    }

    /// The Authorization header to send. For a PAT, a cached access token
    /// unless it is near expiry or is `stale` (the one that just got a 401);
    /// the lock makes concurrent callers share one refresh.
    async fn authorization(&self, stale: Option<&HeaderValue>) -> Result<HeaderValue> {
        if let Some(legacy) = &self.inner.legacy {
            return Ok(legacy.clone());
        }
        let mut cached = self.inner.access.lock().await;
        if let Some(token) = cached.as_ref() {
            let header = token.header();
            if token.is_fresh() && Some(&header) != stale {
                return Ok(header);
            }
        }
        let token = self.refresh_access_token().await?;
        let header = token.header();
        *cached = Some(token);
        Ok(header)
    }

    async fn refresh_access_token(&self) -> Result<AccessToken> {
        #[derive(Deserialize)]
        struct Refreshed {
            access: String,
        }
        let t = &self.inner.transport;
        let call = Call::new(
            "refresh the access token (POST /api/token/refresh/)",
            Method::POST,
            "api/token/refresh/",
        )
        .json(&serde_json::json!({ "refresh": t.key.expose_secret() }));
        // Refreshing creates nothing, so it may be retried like a read.
        let call = Call {
            idempotent: true,
            ..call
        };
        let answer = t.send(&call, None).await?;
        match answer.status {
            s if s.is_success() => {
                let refreshed: Refreshed = t.parse(&call, &answer)?;
                tracing::debug!("Label Studio access token refreshed");
                AccessToken::new(&refreshed.access)
            }
            // simplejwt answers 401 "Token is invalid or expired"; some
            // versions answer 400 for a malformed token.
            StatusCode::UNAUTHORIZED | StatusCode::BAD_REQUEST => Err(Error::config(format!(
                "Label Studio rejected the API key: the personal access token was refused by /api/token/refresh/ ({}); create a new one under Account & Settings → Personal Access Token",
                t.detail(&answer.body)
            ))),
            _ => Err(t.status_error(&call, &answer)),
        }
    }

    /// Send an authenticated call. With a PAT, a 401 triggers one refresh
    /// and one retry: an expired access token answers the same generic 401
    /// as a missing one (§11).
    pub(crate) async fn execute(&self, call: &Call) -> Result<Answer> {
        let t = &self.inner.transport;
        let auth = self.authorization(None).await?;
        let answer = t.send(call, Some(auth.clone())).await?;
        if answer.status != StatusCode::UNAUTHORIZED || self.inner.kind == KeyKind::Legacy {
            return Ok(answer);
        }
        tracing::debug!(call = %call.what, "401 with an access token; refreshing once");
        let fresh = self.authorization(Some(&auth)).await?;
        t.send(call, Some(fresh)).await
    }

    /// An unauthenticated call (e.g. `/health`).
    pub(crate) async fn execute_anonymous(&self, call: &Call) -> Result<Answer> {
        self.inner.transport.send(call, None).await
    }

    /// Send, require a 2xx, parse the body.
    pub(crate) async fn call<T: DeserializeOwned>(&self, call: Call) -> Result<T> {
        let answer = self.execute(&call).await?;
        self.expect_success(&call, &answer)?;
        self.inner.transport.parse(&call, &answer)
    }

    /// Send, require a 2xx, ignore the body.
    pub(crate) async fn call_unit(&self, call: Call) -> Result<()> {
        let answer = self.execute(&call).await?;
        self.expect_success(&call, &answer)
    }

    pub(crate) fn expect_success(&self, call: &Call, answer: &Answer) -> Result<()> {
        if answer.status.is_success() {
            Ok(())
        } else {
            Err(self.inner.transport.status_error(call, answer))
        }
    }

    pub(crate) fn parse<T: DeserializeOwned>(&self, call: &Call, answer: &Answer) -> Result<T> {
        self.inner.transport.parse(call, answer)
    }

    pub(crate) fn detail(&self, body: &[u8]) -> String {
        self.inner.transport.detail(body)
    }
}
