//! Notifications (`[alerts] webhook_url`): stages post a JSON event to a
//! webhook when something needs a person — ready for training, a stage
//! failed, a health check turned bad (or good again), a canary decision —
//! before the stage exits. The body carries a Slack-compatible `text`, so
//! an incoming-webhook URL works as it is.
//!
//! Delivery is best effort and bounded: retries with backoff until
//! `alerts.timeout_secs` have passed for all the events of a run, then a
//! logged warning. A notification never fails the stage it reports on.
//! The URL is a [`Secret`] (a Slack webhook's path is its key): it is
//! shown as its host only.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{Config, Secret};
use crate::domain::Stage;
use crate::health::{self, Warning};
use crate::storage::Store;

/// `[alerts]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Where events are posted (also `FLYWHEEL_ALERT_WEBHOOK`); unset, no
    /// notification is sent.
    pub webhook_url: Option<Secret>,
    /// The whole time one run may spend delivering its events, retries
    /// included.
    pub timeout_secs: u64,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            webhook_url: None,
            timeout_secs: 5,
        }
    }
}

/// What an event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    ReadyForTraining,
    StageFailed,
    HealthCheckFailed,
    HealthCheckRecovered,
    CanaryDecision,
    /// `flywheel doctor --test-alert`.
    Test,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
    Resolved,
}

/// One notification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub event: EventKind,
    pub severity: Severity,
    /// The stage that sent it.
    pub stage: Option<Stage>,
    /// The health check it is about (`health-check-*` events).
    pub check: Option<&'static str>,
    pub summary: String,
    /// What to do, when something is to be done.
    pub fix: Option<String>,
}

impl Event {
    pub fn new(event: EventKind, severity: Severity, summary: impl Into<String>) -> Self {
        Self {
            event,
            severity,
            stage: None,
            check: None,
            summary: summary.into(),
            fix: None,
        }
    }

    fn sent_by(self, stage: Stage) -> Self {
        Self {
            stage: Some(stage),
            ..self
        }
    }

    /// The JSON posted: the event, and `text` for Slack-compatible hooks.
    pub fn body(&self, host: &str, at: chrono::DateTime<chrono::Utc>) -> serde_json::Value {
        let mut text = format!("[flywheel {}] {}", self.severity_word(), self.summary);
        if let Some(fix) = &self.fix {
            text.push_str(&format!(" — {fix}"));
        }
        let mut body = serde_json::to_value(self).expect("an event serialises");
        body["text"] = text.into();
        body["host"] = host.into();
        body["at"] = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true).into();
        body
    }

    fn severity_word(&self) -> &'static str {
        match self.severity {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "CRITICAL",
            Severity::Resolved => "resolved",
        }
    }
}

/// The stage failed: `error` is its message.
pub fn stage_failed(stage: Stage, error: &str) -> Event {
    Event {
        fix: Some(format!(
            "`flywheel jobs --stage {stage} --failed` shows the run; fix, then run it again"
        )),
        ..Event::new(
            EventKind::StageFailed,
            Severity::Critical,
            format!("{stage} failed: {}", first_line(error)),
        )
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

/// Where events go: built only when a webhook is configured.
#[derive(Debug, Clone)]
pub struct Notifier {
    url: Secret,
    timeout: Duration,
    client: reqwest::Client,
}

/// Why a delivery did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undelivered {
    pub reason: String,
}

impl Notifier {
    pub fn from_config(config: &Config) -> Option<Self> {
        let url = config.alerts.webhook_url.clone()?;
        let timeout = Duration::from_secs(config.alerts.timeout_secs.max(1));
        let client = reqwest::Client::builder().timeout(timeout).build().ok()?;
        Some(Self {
            url,
            timeout,
            client,
        })
    }

    /// The webhook as it may be shown: scheme and host, never its path.
    pub fn shown_url(&self) -> String {
        shown_url(self.url.expose())
    }

    /// Post every event, retrying failures with backoff, all within the
    /// timeout. Returns how many were delivered; never an error — what was
    /// not delivered is logged.
    pub async fn send(&self, events: &[Event]) -> usize {
        if events.is_empty() {
            return 0;
        }
        let host = hostname();
        let mut delivered = 0;
        let deadline = tokio::time::Instant::now() + self.timeout;
        for event in events {
            let body = event.body(&host, chrono::Utc::now());
            match tokio::time::timeout_at(deadline, self.post_with_retries(&body)).await {
                Ok(Ok(())) => delivered += 1,
                Ok(Err(why)) => {
                    tracing::warn!(webhook = %self.shown_url(), event = ?event.event, "alert not delivered: {}", why.reason);
                }
                Err(_) => {
                    tracing::warn!(
                        webhook = %self.shown_url(),
                        undelivered = events.len() - delivered,
                        "alerts not delivered within alerts.timeout_secs ({} s)",
                        self.timeout.as_secs()
                    );
                    break;
                }
            }
        }
        delivered
    }

    /// One event, retried on a connection error or a 5xx / 429 answer (a
    /// 4xx other than 429 will not change on retry).
    async fn post_with_retries(&self, body: &serde_json::Value) -> Result<(), Undelivered> {
        let mut backoff = Duration::from_millis(200);
        loop {
            let reason = match self.client.post(self.url.expose()).json(body).send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) if r.status().is_server_error() || r.status().as_u16() == 429 => {
                    format!("HTTP {}", r.status().as_u16())
                }
                Ok(r) => {
                    return Err(Undelivered {
                        reason: format!("HTTP {}", r.status().as_u16()),
                    });
                }
                // reqwest's error text can carry the URL: keep its kind only.
                Err(err) if err.is_timeout() => "timed out".to_string(),
                Err(err) if err.is_connect() => "connection refused or unreachable".to_string(),
                Err(_) => "request failed".to_string(),
            };
            tracing::debug!(webhook = %self.shown_url(), "alert delivery failed ({reason}); retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    /// A test event, for `doctor --test-alert`: delivered or why not.
    pub async fn send_test(&self) -> Result<(), Undelivered> {
        let event = Event::new(
            EventKind::Test,
            Severity::Info,
            "test alert from `flywheel doctor`: this webhook receives Flywheel's alerts",
        );
        let body = event.body(&hostname(), chrono::Utc::now());
        tokio::time::timeout(self.timeout, self.post_with_retries(&body))
            .await
            .unwrap_or_else(|_| {
                Err(Undelivered {
                    reason: format!("no answer within {} s", self.timeout.as_secs()),
                })
            })
    }
}

/// `https://hooks.example.com/…`: scheme and host only.
pub fn shown_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}/…",
            u.scheme(),
            u.host_str().unwrap_or("?"),
            u.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => "(an invalid URL)".into(),
    }
}

fn hostname() -> String {
    crate::jobs::hostname().unwrap_or_default()
}

/// After a recorded stage ends: its own events, `stage-failed` when it
/// failed, and each health check that changed state since the last
/// notification (claimed in the database, so two stages ending together
/// send it once). Does nothing without a webhook; never fails.
pub async fn after_stage(
    store: &Store,
    config: &Config,
    stage: Stage,
    own: Vec<Event>,
    error: Option<&str>,
) {
    let Some(notifier) = Notifier::from_config(config) else {
        return;
    };
    let mut events: Vec<Event> = own.into_iter().map(|e| e.sent_by(stage)).collect();
    if let Some(error) = error {
        events.push(stage_failed(stage, error).sent_by(stage));
    }
    match health_changes(store, config).await {
        Ok(changes) => events.extend(changes.into_iter().map(|e| e.sent_by(stage))),
        Err(err) => tracing::warn!("alerts: could not read the loop's health: {err}"),
    }
    notifier.send(&events).await;
}

/// Health checks whose state differs from the one last notified, as events,
/// with the new state recorded.
async fn health_changes(store: &Store, config: &Config) -> crate::error::Result<Vec<Event>> {
    let warnings = health::LoopHealth::read(store, config, chrono::Utc::now())
        .await?
        .warnings;
    let mut events = Vec::new();
    for (check, passes) in health::check_results(&warnings) {
        if !store.claim_alert_state(check, !passes).await? {
            continue;
        }
        let raised: Vec<&Warning> = warnings
            .iter()
            .filter(|w| health::codes_of(check).contains(&w.code))
            .collect();
        events.push(match raised.first() {
            Some(first) => Event {
                check: Some(check),
                fix: Some(health::fix(first.code).to_string()),
                ..Event::new(
                    EventKind::HealthCheckFailed,
                    Severity::Warning,
                    raised
                        .iter()
                        .map(|w| w.message.as_str())
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            },
            None => Event {
                check: Some(check),
                ..Event::new(
                    EventKind::HealthCheckRecovered,
                    Severity::Resolved,
                    format!("{check} is healthy again"),
                )
            },
        });
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shown_url_keeps_the_host_and_drops_the_key() {
        assert_eq!(
            shown_url("https://hooks.slack.com/services/T000/B000/XXXXSECRET"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            shown_url("http://127.0.0.1:9000/hook?token=abc"),
            "http://127.0.0.1:9000/…"
        );
    }

    #[test]
    fn the_body_has_a_slack_text_and_the_fix() {
        let body = stage_failed(Stage::DailyCapture, "database unavailable\nmore detail")
            .sent_by(Stage::DailyCapture)
            .body("host1", chrono::DateTime::UNIX_EPOCH);
        assert_eq!(body["event"], "stage-failed");
        assert_eq!(body["severity"], "critical");
        assert_eq!(body["stage"], "daily-capture");
        assert_eq!(
            body["text"],
            "[flywheel CRITICAL] daily-capture failed: database unavailable — `flywheel jobs --stage daily-capture --failed` shows the run; fix, then run it again"
        );
        assert_eq!(body["at"], "1970-01-01T00:00:00Z");
    }
}
