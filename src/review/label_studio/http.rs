//! Sending one Label Studio call: timeouts, bounded retries with jittered
//! exponential backoff, and errors that name the call. Authentication is the
//! client's business; this layer only carries the header it is given.

use std::time::Duration;

use rand::Rng as _;
use reqwest::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use super::ClientOptions;
use crate::error::{Error, Result};

/// One API call, rebuildable for every attempt.
pub(crate) struct Call {
    /// What the operator reads in an error: "import 500 tasks into project 3".
    pub what: String,
    pub method: Method,
    pub path: String,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<Vec<u8>>,
    /// Safe to send again when its outcome is unknown (timeout, 500, cut
    /// connection). Import is not: a repeat creates duplicate tasks (§11).
    pub idempotent: bool,
    /// Operator message for a 404, e.g. "Label Studio project 3 not found".
    pub not_found: Option<String>,
}

impl Call {
    pub fn new(what: impl Into<String>, method: Method, path: impl Into<String>) -> Self {
        let idempotent = matches!(
            method,
            Method::GET | Method::PATCH | Method::PUT | Method::DELETE
        );
        Self {
            what: what.into(),
            method,
            path: path.into(),
            query: Vec::new(),
            body: None,
            idempotent,
            not_found: None,
        }
    }
    pub fn json(mut self, body: &impl serde::Serialize) -> Self {
        self.body = Some(serde_json::to_vec(body).expect("request bodies are plain data"));
        self
    }
    pub fn query(mut self, key: &'static str, value: impl ToString) -> Self {
        self.query.push((key, value.to_string()));
        self
    }
    pub fn not_found(mut self, message: impl Into<String>) -> Self {
        self.not_found = Some(message.into());
        self
    }
}

/// A response that was not worth retrying (any 2xx or 4xx, or a 5xx left
/// after the last attempt is turned into an error instead).
pub(crate) struct Answer {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

pub(crate) struct Transport {
    pub http: reqwest::Client,
    pub base: Url,
    pub options: ClientOptions,
    /// Only to scrub it out of anything echoed back into an error.
    pub key: SecretString,
}

/// Why one attempt failed, and whether another may be tried.
struct Failed {
    reason: String,
    retry: bool,
    retry_after: Option<Duration>,
    timeout: bool,
}

impl Transport {
    pub fn url(&self, path: &str) -> Result<Url> {
        self.base
            .join(path.trim_start_matches('/'))
            .map_err(|e| Error::config(format!("bad Label Studio URL {}{path}: {e}", self.base)))
    }

    /// Send `call`, retrying transient failures. Returns every answer that is
    /// not transient (including 4xx) for the caller to interpret.
    pub async fn send(&self, call: &Call, auth: Option<HeaderValue>) -> Result<Answer> {
        let url = self.url(&call.path)?;
        let attempts = self.options.retries + 1;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let failed = match self.attempt(call, url.clone(), auth.clone()).await {
                Ok(answer) => return Ok(answer),
                Err(failed) => failed,
            };
            if !failed.retry || attempt >= attempts {
                return Err(self.give_up(call, failed, attempt));
            }
            let delay = backoff(&self.options, attempt - 1, failed.retry_after);
            tracing::warn!(
                call = %call.what, attempt, delay_ms = delay.as_millis() as u64,
                "Label Studio call failed, retrying: {}", failed.reason
            );
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt(
        &self,
        call: &Call,
        url: Url,
        auth: Option<HeaderValue>,
    ) -> std::result::Result<Answer, Failed> {
        let mut request = self.http.request(call.method.clone(), url);
        if !call.query.is_empty() {
            request = request.query(&call.query);
        }
        if let Some(auth) = auth {
            request = request.header(AUTHORIZATION, auth);
        }
        if let Some(body) = &call.body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let response = request
            .send()
            .await
            .map_err(|e| network_failure(call, &e))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response
            .bytes()
            .await
            .map_err(|e| network_failure(call, &e))?
            .to_vec();
        // 429 and 503 mean "not processed, come back later", safe even for
        // import; other 5xx may have happened after a commit.
        let transient = match status.as_u16() {
            429 | 503 => Some(true),
            500 | 502 | 504 => Some(call.idempotent),
            _ => None,
        };
        match transient {
            Some(retry) => Err(Failed {
                reason: format!("HTTP {} ({})", status.as_u16(), self.detail(&body)),
                retry,
                retry_after,
                timeout: false,
            }),
            None => Ok(Answer { status, body }),
        }
    }

    fn give_up(&self, call: &Call, failed: Failed, attempts: u32) -> Error {
        let tries = if attempts == 1 {
            "1 attempt".to_owned()
        } else {
            format!("{attempts} attempts")
        };
        let unknown = if call.idempotent {
            ""
        } else {
            "; the outcome is unknown, so look for what it may have created before repeating it"
        };
        let what = &call.what;
        let base = &self.base;
        if failed.timeout {
            Error::unavailable(format!(
                "Label Studio at {base} did not answer {what} within {:?} ({tries}){unknown}",
                self.options.timeout
            ))
        } else {
            Error::unavailable(format!(
                "Label Studio at {base} failed to {what}: {} ({tries}){unknown}",
                failed.reason
            ))
        }
    }

    /// Turn a non-2xx answer into the operator's error.
    pub fn status_error(&self, call: &Call, answer: &Answer) -> Error {
        let detail = self.detail(&answer.body);
        let what = &call.what;
        match answer.status.as_u16() {
            401 => {
                let hint = if detail.contains("legacy token") {
                    "; legacy tokens are disabled in this organisation: use a personal access token (Account & Settings), or enable legacy tokens in the organisation's settings"
                } else {
                    "; check LABEL_STUDIO_API_KEY (Account & Settings → Personal Access Token)"
                };
                Error::config(format!(
                    "Label Studio rejected the API key: {what} answered 401 ({detail}){hint}"
                ))
            }
            403 => Error::config(format!(
                "Label Studio refused to {what}: 403 ({detail}); the key's user lacks permission"
            )),
            404 if call.not_found.is_some() => {
                Error::config(call.not_found.clone().unwrap_or_default())
            }
            code => Error::failure(format!(
                "Label Studio refused to {what}: HTTP {code} ({detail})"
            )),
        }
    }

    /// Parse a 2xx body, naming the call and the problem when it is not the
    /// JSON we expect (a proxy's HTML page, a cut-off body).
    pub fn parse<T: DeserializeOwned>(&self, call: &Call, answer: &Answer) -> Result<T> {
        serde_json::from_slice(&answer.body).map_err(|e| {
            let problem = if e.is_eof() {
                "a truncated JSON body"
            } else if e.is_syntax() {
                "a body that is not JSON"
            } else {
                "JSON of an unexpected shape"
            };
            Error::unavailable(format!(
                "Label Studio at {} answered {} with {problem} ({e}; {} bytes, starting {:?})",
                self.base,
                call.what,
                answer.body.len(),
                self.scrub(&String::from_utf8_lossy(
                    &answer.body[..answer.body.len().min(80)]
                ))
            ))
        })
    }

    /// The useful part of an error body: Label Studio's `detail` (plus
    /// validation errors), an HTML page's title, or the start of the text.
    pub fn detail(&self, body: &[u8]) -> String {
        let text = String::from_utf8_lossy(body);
        let detail = if let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) {
            let mut d = json
                .get("detail")
                .and_then(|d| d.as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| json.to_string());
            if let Some(v) = json.get("validation_errors") {
                d.push_str(&format!("; validation errors: {v}"));
            }
            d
        } else if let Some(start) = text.find("<title>") {
            let title = text[start + 7..]
                .split("</title>")
                .next()
                .unwrap_or_default();
            format!("an HTML page titled {:?}", title.trim())
        } else if text.trim().is_empty() {
            "empty body".to_owned()
        } else {
            text.trim().to_owned()
        };
        let mut detail = self.scrub(&detail);
        if detail.len() > 300 {
            let cut = (0..=300)
                .rev()
                .find(|&i| detail.is_char_boundary(i))
                .unwrap_or(0);
            detail.truncate(cut);
            detail.push('…');
        }
        detail
    }

    /// Defence in depth: never let the key reach an error message, even if a
    /// server or proxy echoes the request back.
    fn scrub(&self, text: &str) -> String {
        let key = self.key.expose_secret();
        if key.len() >= 6 && text.contains(key) {
            text.replace(key, "[redacted]")
        } else {
            text.to_owned()
        }
    }
}

fn network_failure(call: &Call, e: &reqwest::Error) -> Failed {
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        reason.push_str(": ");
        reason.push_str(&s.to_string());
        source = s.source();
    }
    // A refused connection never reached the server: always safe to repeat.
    // Anything later (timeout, reset mid-answer) may have been processed.
    let retry = e.is_connect() || call.idempotent;
    Failed {
        reason,
        retry,
        retry_after: None,
        timeout: e.is_timeout(),
    }
}

/// Exponential backoff with "equal jitter" (half fixed, half random), capped
/// so the whole retry budget stays bounded; a server's Retry-After is
/// honoured up to the same cap.
pub(crate) fn backoff(
    options: &ClientOptions,
    retry: u32,
    retry_after: Option<Duration>,
) -> Duration {
    let exp = options
        .backoff_base
        .saturating_mul(1u32.checked_shl(retry.min(16)).unwrap_or(u32::MAX))
        .min(options.backoff_max);
    let half = exp / 2;
    let jitter = if half.is_zero() {
        Duration::ZERO
    } else {
        rand::rng().random_range(Duration::ZERO..=half)
    };
    (half + jitter)
        .max(retry_after.unwrap_or_default())
        .min(options.backoff_max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_jittered_and_capped() {
        let o = ClientOptions {
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
            ..ClientOptions::default()
        };
        for _ in 0..50 {
            let first = backoff(&o, 0, None);
            assert!((Duration::from_millis(50)..=Duration::from_millis(100)).contains(&first));
            let third = backoff(&o, 2, None);
            assert!((Duration::from_millis(200)..=Duration::from_millis(400)).contains(&third));
            assert!(backoff(&o, 40, None) <= Duration::from_secs(2));
        }
        assert_eq!(
            backoff(&o, 0, Some(Duration::from_secs(1))),
            Duration::from_secs(1)
        );
        assert_eq!(
            backoff(&o, 0, Some(Duration::from_secs(60))),
            Duration::from_secs(2)
        );
    }
}
