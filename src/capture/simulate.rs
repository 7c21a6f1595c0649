//! `flywheel simulate`: synthetic users talking to a running `serve`, for
//! demos and for seeing the capture pane and gap detection work. Traffic has
//! a language mix (English, Hinglish, Devanagari Hindi), returning users
//! with sticky sessions, repeated utterances, bursts, and optionally an
//! injected outage (`--gap`) in the middle of the run.
//!
//! The conversations come from [`crate::synth::traffic`]: the same
//! templates the seed set was generated from, so the bootstrap model knows
//! most of what it hears, and users with phone numbers (stored only as an
//! HMAC) and multi-turn sessions.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::error::{Error, Result};
use crate::progress::Reporter;
use crate::synth::{Traffic, TrafficConfig};

#[derive(Debug, Clone)]
pub struct SimulateOptions {
    /// Base URL of `serve`, e.g. `http://127.0.0.1:3200`.
    pub target: String,
    pub token: Option<String>,
    /// Requests per second outside bursts.
    pub rate: f64,
    pub duration: Duration,
    /// Silence injected a third of the way in.
    pub gap: Option<Duration>,
    pub seed: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SimulateReport {
    pub sent: u64,
    pub ok: u64,
    pub refused: u64,
    pub failed: u64,
    pub seconds: f64,
    /// Seconds from the start when the injected gap began, and its length.
    pub gap_started_after: Option<f64>,
    pub gap_seconds: Option<f64>,
}

/// Run the simulation until `duration` has passed or the reporter is cancelled.
pub async fn simulate(options: SimulateOptions, reporter: &Reporter) -> Result<SimulateReport> {
    if !options.rate.is_finite() || options.rate <= 0.0 {
        return Err(Error::usage("--rate must be above 0"));
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|err| Error::failure(format!("cannot build the HTTP client: {err}")))?;
    let url = format!("{}/nlu/classify", options.target.trim_end_matches('/'));
    let mut rng = StdRng::seed_from_u64(options.seed);
    let counters = Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]);
    let in_flight = Arc::new(Semaphore::new(64));
    let started = Instant::now();
    let gap_start = options.gap.map(|_| options.duration / 3);
    let mut report = SimulateReport::default();
    let mut traffic = Traffic::new(options.seed, TrafficConfig::default());
    let mut next = Instant::now();
    reporter.phase("simulate", Some(options.duration.as_secs()));
    while started.elapsed() < options.duration && !reporter.is_cancelled() {
        let elapsed = started.elapsed();
        if let (Some(at), Some(gap)) = (gap_start, options.gap)
            && elapsed >= at
            && report.gap_seconds.is_none()
        {
            reporter.note(format!("injecting a {}s capture gap", gap.as_secs()));
            tokio::time::sleep(gap.min(options.duration.saturating_sub(elapsed))).await;
            report.gap_started_after = Some(at.as_secs_f64());
            report.gap_seconds = Some(gap.as_secs_f64());
            next = Instant::now();
            continue;
        }
        // Bursts: 10 s at three times the rate, once a minute.
        let burst = elapsed.as_secs() % 60 >= 50;
        let rate = if burst {
            options.rate * 3.0
        } else {
            options.rate
        };
        let event = traffic.next().expect("traffic is endless");
        let mut body = serde_json::json!({
            "text": event.utterance.text,
            "sessionId": event.session_id,
            "phoneNumber": event.phone_number,
        });
        // Half the callers say the language; serve detects it for the rest.
        if rng.random_bool(0.5) {
            body["language"] = event.utterance.language.as_str().into();
        }
        let permit = in_flight
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore open");
        let mut request = http.post(&url).json(&body);
        if let Some(token) = &options.token {
            request = request.bearer_auth(token);
        }
        let counters = counters.clone();
        tokio::spawn(async move {
            let slot = match request.send().await {
                Ok(r) if r.status().is_success() => 0,
                Ok(r) if r.status().as_u16() == 503 || r.status().as_u16() == 429 => 1,
                _ => 2,
            };
            counters[slot].fetch_add(1, Ordering::Relaxed);
            drop(permit);
        });
        report.sent += 1;
        if report.sent.is_multiple_of(100) {
            reporter.advance(started.elapsed().as_secs());
        }
        // Exponential gaps between arrivals: a Poisson stream at `rate`.
        let wait = -(1.0 - rng.random::<f64>()).ln() / rate;
        next += Duration::from_secs_f64(wait);
        tokio::time::sleep_until(next.into()).await;
    }
    // Let the last requests finish.
    let _ = in_flight.acquire_many(64).await;
    report.ok = counters[0].load(Ordering::Relaxed);
    report.refused = counters[1].load(Ordering::Relaxed);
    report.failed = counters[2].load(Ordering::Relaxed);
    report.seconds = started.elapsed().as_secs_f64();
    if report.sent > 0 && report.ok == 0 {
        return Err(Error::unavailable(format!(
            "none of {} requests to {url} succeeded ({} refused, {} failed); is `flywheel serve` running there with a production model?",
            report.sent, report.refused, report.failed
        )));
    }
    Ok(report)
}
