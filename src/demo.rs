//! `flywheel demo`: the whole loop alive on a laptop in under a minute, on
//! the embedded database of a separate demo data dir (never the operator's
//! real database). It bootstraps the first model, backfills two days of
//! synthetic history (with an outage, so gap detection has something to
//! find), runs a daily capture over it so the review queue has work, and
//! starts `serve` and synthetic users in-process. The console (or
//! `--headless`) then watches it; [`DemoSession::stop`] shuts it all down
//! cleanly.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde::Serialize;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::capture::classifier::{IntentClassifier, load_artifact};
use crate::capture::server::{ServeOptions, ServeSummary, serve};
use crate::capture::simulate::{SimulateOptions, SimulateReport, simulate};
use crate::capture::user_hash::UserHasher;
use crate::capture::writer::WriterOptions;
use crate::config::{Config, ROUTER_PROVIDER};
use crate::error::{Error, Result};
use crate::jobs::{self, Launch, Trigger};
use crate::progress::{CancellationToken, Progress, Reporter};
use crate::stages::bootstrap::{self, BootstrapOutcome};
use crate::stages::daily_capture::{DailyCapture, Window};
use crate::storage::conversations::NewConversation;
use crate::storage::{Store, Timestamp};
use crate::synth::{Traffic, TrafficConfig};

/// The demo's own data dir, inside the configured one.
pub const DEMO_DIR: &str = "demo";
/// Hours of synthetic history written before serve starts.
const HISTORY_HOURS: i64 = 48;
/// An outage in that history: it starts this many hours ago and lasts
/// [`OUTAGE_HOURS`], so the capture pane and `stats capture-gaps` show one.
const OUTAGE_STARTS_HOURS_AGO: i64 = 20;
const OUTAGE_HOURS: i64 = 3;
const SEED: u64 = 7;

#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where serve listens; a busy address falls back to a free port.
    pub addr: String,
    /// Synthetic requests per second.
    pub rate: f64,
}

/// The demo's configuration: `base` with the data dir moved to
/// `DATA_DIR/demo` and the database forced to that dir's SQLite file.
pub fn demo_config(base: &Config) -> Config {
    let mut config = base.clone();
    config.data_dir = base.data_dir.join(DEMO_DIR);
    config.database_url = None;
    config
}

/// What setting up the demo did.
#[derive(Debug, Clone, Serialize)]
pub struct DemoSetup {
    pub data_dir: String,
    pub bootstrap: BootstrapOutcome,
    pub history_conversations: u64,
    pub serve_addr: String,
    pub daily_capture: DailyCaptureCounts,
}

/// What the daily capture over the history did. Conversations and samples
/// are different counts: repeated texts fold into one sample.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DailyCaptureCounts {
    /// Conversations processed.
    pub captured: u64,
    /// Conversations auto-approved.
    pub auto_approved: u64,
    /// Conversations sent to review.
    pub needs_review: u64,
    /// Samples created (approved or to review).
    pub new_samples: u64,
    /// Of those, samples waiting for review: what the review queue gained.
    pub samples_to_review: u64,
}

impl DailyCaptureCounts {
    /// Share of the processed conversations auto-approved, in percent.
    pub fn auto_approval_percent(&self) -> Option<f64> {
        (self.captured > 0).then(|| 100.0 * self.auto_approved as f64 / self.captured as f64)
    }
}

/// The running demo: serve and the synthetic users in background tasks.
pub struct DemoSession {
    pub setup: DemoSetup,
    serve: JoinHandle<Result<ServeSummary>>,
    stop_serve: Arc<Notify>,
    users: JoinHandle<Result<SimulateReport>>,
    stop_users: CancellationToken,
}

/// What the demo did by the time it stopped.
#[derive(Debug, Clone, Serialize)]
pub struct DemoSummary {
    #[serde(flatten)]
    pub setup: DemoSetup,
    pub simulated: SimulateReport,
    /// Conversations serve stored from the synthetic users (not yet
    /// processed: the next daily capture takes them).
    pub captured_live: u64,
    /// Samples waiting for a human label when the demo stopped: `status`'s
    /// review queue.
    pub review_queue_samples: i64,
}

/// Set up and start the demo. `store` must be the demo's store (see
/// [`demo_config`]).
pub async fn start(
    store: &Store,
    config: &Config,
    options: &DemoOptions,
    reporter: &Reporter,
) -> Result<DemoSession> {
    let launch = Launch::new(store, config, Trigger::Cli).with_reporter(reporter.clone());
    reporter.note("training the bootstrap model (first run only)");
    let bootstrap = bootstrap::ensure_production_model(&launch).await?;
    let production = store.production_model().await?.ok_or_else(|| {
        Error::failure(format!(
            "the demo has no production model (bootstrap: {bootstrap:?}); \
                 remove {} to start the demo afresh",
            config.data_dir.display()
        ))
    })?;

    reporter.note("writing two days of synthetic history");
    let history_conversations = if store.recent_conversations(1).await?.is_empty() {
        let artifact = config
            .data_dir
            .join(production.artifact_path.as_deref().unwrap_or_default());
        let model = tokio::task::spawn_blocking(move || load_artifact(&artifact))
            .await
            .map_err(|err| Error::failure(format!("loading the model panicked: {err}")))??;
        write_history(store, config, model, &production.version).await?
    } else {
        0
    };

    // Before live traffic starts, so its counts are exactly the history's.
    reporter.note("running a daily capture over the history");
    let capture = DailyCapture {
        window: Window::Since(chrono::Duration::hours(HISTORY_HOURS + 1)),
        ..DailyCapture::default()
    };
    let outcome = jobs::run(capture, &launch).await?;
    reporter.note("starting serve and synthetic users");
    let stop_serve = Arc::new(Notify::new());
    let (listening_tx, listening_rx) = tokio::sync::oneshot::channel::<SocketAddr>();
    let serve_options = ServeOptions {
        addr: free_or_any(&options.addr),
        bootstrap: false,
        shutdown: Some(stop_serve.clone()),
        api_token: config.serve.api_token.clone(),
        writer: WriterOptions::default(),
        loader: load_artifact,
    };
    let serve_task = {
        let store = store.clone();
        let config = config.clone();
        tokio::spawn(async move {
            serve(store, &config, serve_options, |addr| {
                let _ = listening_tx.send(addr);
            })
            .await
        })
    };
    let serve_addr = match listening_rx.await {
        Ok(addr) => addr,
        // serve returned before listening: its error says why.
        Err(_) => {
            return Err(match serve_task.await {
                Ok(Err(err)) => err,
                _ => Error::failure("serve stopped before it listened"),
            });
        }
    };
    let stop_users = CancellationToken::new();
    let simulate_options = SimulateOptions {
        target: format!("http://{serve_addr}"),
        token: config
            .serve
            .api_token
            .as_ref()
            .map(|t| t.expose().to_string()),
        rate: options.rate,
        // Until stopped.
        duration: Duration::from_secs(7 * 24 * 3600),
        gap: None,
        seed: SEED,
    };
    let users = {
        let reporter = Reporter::new(Progress::silent(), stop_users.clone());
        tokio::spawn(async move { simulate(simulate_options, &reporter).await })
    };

    Ok(DemoSession {
        setup: DemoSetup {
            data_dir: config.data_dir.display().to_string(),
            bootstrap,
            history_conversations,
            serve_addr: serve_addr.to_string(),
            daily_capture: DailyCaptureCounts {
                captured: outcome.report.counts.captured,
                auto_approved: outcome.report.counts.auto_approved,
                needs_review: outcome.report.counts.needs_review,
                new_samples: outcome.report.new_samples.approved
                    + outcome.report.new_samples.needs_review,
                samples_to_review: outcome.report.new_samples.needs_review,
            },
        },
        serve: serve_task,
        stop_serve,
        users,
        stop_users,
    })
}

impl DemoSession {
    /// Stop the synthetic users, then serve (which commits what it holds),
    /// and read what waits for review from `store`, the demo's.
    pub async fn stop(self, store: &Store, config: &Config) -> Result<DemoSummary> {
        self.stop_users.cancel();
        let simulated = match self.users.await {
            Ok(result) => result?,
            Err(err) => return Err(Error::failure(format!("the synthetic users failed: {err}"))),
        };
        self.stop_serve.notify_one();
        let served = match self.serve.await {
            Ok(result) => result?,
            Err(err) => return Err(Error::failure(format!("serve failed: {err}"))),
        };
        let waiting = store.waiting(config.auto_filter.high_priority).await?;
        Ok(DemoSummary {
            setup: self.setup,
            simulated,
            captured_live: served.captured_rows,
            review_queue_samples: waiting.total(),
        })
    }
}

/// `addr` when it can be bound now, else any free loopback port: a demo
/// must not fail because a real serve already has 3200.
fn free_or_any(addr: &str) -> String {
    match std::net::TcpListener::bind(addr) {
        Ok(_) => addr.to_string(),
        Err(_) => "127.0.0.1:0".to_string(),
    }
}

/// Two days of synthetic conversations, classified by the production
/// model: a daily rhythm (quiet nights, busy evenings) and one outage.
async fn write_history(
    store: &Store,
    config: &Config,
    model: Arc<dyn IntentClassifier>,
    version: &str,
) -> Result<u64> {
    let hasher = UserHasher::load_or_create(&config.data_dir)?;
    let now = Utc::now();
    let mut traffic = Traffic::new(SEED, TrafficConfig::default());
    let mut rows = Vec::new();
    for hours_ago in (1..=HISTORY_HOURS).rev() {
        let outage = (OUTAGE_STARTS_HOURS_AGO - OUTAGE_HOURS + 1..=OUTAGE_STARTS_HOURS_AGO)
            .contains(&hours_ago);
        if outage {
            continue;
        }
        let hour_start = now - chrono::Duration::hours(hours_ago);
        let per_hour = hourly_volume(hour_start);
        for i in 0..per_hour {
            let event = traffic.next().expect("traffic is endless");
            let offset =
                chrono::Duration::milliseconds(i64::from(i) * 3_600_000 / i64::from(per_hour));
            let text = event.utterance.text;
            let result = model.classify(&text, None);
            rows.push(NewConversation {
                created_at: Timestamp::from(hour_start + offset),
                session_id: Some(event.session_id),
                user_hash: hasher.hash(&event.phone_number),
                user_message: text,
                language: Some(result.language.as_str().to_string()),
                nlu_intent: Some(result.intent),
                nlu_confidence: Some(result.confidence),
                nlu_provider: Some(ROUTER_PROVIDER.to_string()),
                model_version: Some(version.to_string()),
                fallback: result.fallback,
                routing_decision: None,
                classify_ms: None,
                classify_error: None,
            });
        }
    }
    store.insert_conversations(&rows).await?;
    Ok(rows.len() as u64)
}

/// Conversations in the hour starting at `at`: ~60 at night, ~420 at the
/// evening peak (UTC+5:30 local time, like the data sets' users).
fn hourly_volume(at: chrono::DateTime<Utc>) -> u32 {
    use chrono::Timelike;
    let local_hour = (at + chrono::Duration::minutes(330)).hour();
    let shape = [
        2, 1, 1, 1, 1, 2, 3, 5, 7, 8, 8, 9, 10, 9, 8, 8, 9, 11, 13, 14, 12, 9, 6, 4,
    ];
    60 + shape[local_hour as usize] * 26
}
