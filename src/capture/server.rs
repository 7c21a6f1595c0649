//! `flywheel serve`: binds, loads the live models, starts the group-commit
//! writer, serves until SIGTERM/SIGINT, then drains: no new connections,
//! in-flight requests get up to `serve.drain_timeout_secs` to finish (the
//! connections left are then closed), every queued row is committed, exit 0.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Notify;

use super::classifier::{Canary, Classification, IntentClassifier, Loader, ModelRouter};
use super::handlers::{AppState, app, token_digest};
use super::listener::{ConnectionLimits, serve_connections};
use super::metrics::Metrics;
use super::user_hash::UserHasher;
use super::writer::{WriteQueue, WriterOptions};
use crate::config::{Config, Secret};
use crate::error::{Error, Result};
use crate::jobs::{Launch, Trigger};
use crate::lang::Language;
use crate::monitor::loop_metrics::{self, LoopMetricsCache};
use crate::stages::bootstrap::{self, BootstrapOutcome};
use crate::storage::Store;
use crate::storage::models::ServingModel;

/// How often the live models are re-read (a promotion reaches `serve` this fast).
const MODEL_POLL: Duration = Duration::from_secs(5);

pub struct ServeOptions {
    pub addr: String,
    /// On a fresh installation (no model version ever), train and deploy
    /// the bootstrap model in the background (`serve.bootstrap`).
    pub bootstrap: bool,
    /// Stops serve like SIGTERM does (drain, commit, return) when notified;
    /// for callers that run it in-process (`demo`).
    pub shutdown: Option<Arc<Notify>>,
    pub api_token: Option<Secret>,
    pub writer: WriterOptions,
    pub loader: Loader,
}

/// What a finished `serve` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServeSummary {
    pub addr: String,
    pub captured_rows: u64,
}

/// Run the service until a shutdown signal; `on_listening` gets the bound
/// address (useful with port 0).
pub async fn serve(
    store: Store,
    config: &Config,
    options: ServeOptions,
    on_listening: impl FnOnce(SocketAddr),
) -> Result<ServeSummary> {
    let hasher = Arc::new(UserHasher::load_or_create(&config.data_dir)?);
    let listener = TcpListener::bind(&options.addr).await.map_err(|err| {
        Error::config(format!(
            "cannot listen on {}: {err}; pick another --addr (or serve.addr)",
            options.addr
        ))
    })?;
    let local = listener.local_addr()?;
    let metrics = Arc::new(Metrics::default());
    let (queue, writer) = WriteQueue::start(store.clone(), options.writer, metrics.clone());
    let models = Arc::new(RwLock::new(Arc::new(ModelRouter::default())));
    let model_problem = Arc::new(RwLock::new(None));
    let mut live = LiveModels {
        store: store.clone(),
        models_base: config.data_dir.clone(),
        loader: options.loader,
        models: models.clone(),
        problem: model_problem.clone(),
        current: (None, None),
        refresh_now: Arc::new(Notify::new()),
    };
    // Load before listening so the first request already has its model.
    if let Err(err) = live.refresh().await {
        tracing::warn!("could not read the live models: {err}");
    }
    let bootstrap = options.bootstrap.then(|| {
        tokio::spawn(bootstrap_in_background(
            store.clone(),
            config.clone(),
            model_problem.clone(),
            live.refresh_now.clone(),
        ))
    });
    let reload = tokio::spawn(live.run());
    let state = AppState {
        store: store.clone(),
        queue,
        models,
        model_problem,
        hasher,
        metrics: metrics.clone(),
        loop_metrics: Arc::new(LoopMetricsCache::new(
            store.clone(),
            config.clone(),
            loop_metrics::CACHE_TTL,
        )),
        token_digest: options.api_token.as_ref().map(|t| token_digest(t.expose())),
        body_read_timeout: Duration::from_secs(config.serve.body_read_timeout_secs),
        webhook_secret_digest: config
            .label_studio
            .webhook_secret
            .as_ref()
            .map(|s| token_digest(s.expose())),
    };
    let limits = ConnectionLimits {
        header_read: Duration::from_secs(config.serve.header_read_timeout_secs),
        drain: Duration::from_secs(config.serve.drain_timeout_secs),
    };
    if state.token_digest.is_none() && !local.ip().is_loopback() {
        tracing::warn!(addr = %local, "serving on a non-loopback address without an API token");
    }
    tracing::info!(addr = %local, database = store.description(), "serve listening");
    on_listening(local);
    serve_connections(
        listener,
        app(state),
        limits,
        shutdown_signal(options.shutdown.clone()),
    )
    .await;
    // Every handler (and its queue handle) is gone: the writer now commits
    // what is left in the queue, answered or not, and stops.
    reload.abort();
    if let Some(bootstrap) = bootstrap {
        // Its training is crash-safe: an aborted run registers nothing.
        bootstrap.abort();
    }
    tracing::info!("shutting down: committing queued rows");
    writer
        .await
        .map_err(|err| Error::failure(format!("the writer task failed: {err}")))?;
    tracing::info!(captured = metrics.captured_rows(), "serve stopped");
    Ok(ServeSummary {
        addr: local.to_string(),
        captured_rows: metrics.captured_rows(),
    })
}

async fn shutdown_signal(requested: Option<Arc<Notify>>) {
    let requested = async move {
        match requested {
            Some(notify) => notify.notified().await,
            None => std::future::pending().await,
        }
    };
    let ctrl_c = async {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = requested => {},
        }
    };
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
        }
        Err(err) => {
            tracing::warn!("cannot watch SIGTERM ({err}); only Ctrl-C stops serve gracefully");
            let _ = ctrl_c.await;
        }
    }
    tracing::info!("shutdown signal received; draining");
}

/// Train and deploy the bootstrap model on a fresh installation while
/// serve already answers (bulk logging works; classify says to retry).
async fn bootstrap_in_background(
    store: Store,
    config: Config,
    problem: Arc<RwLock<Option<String>>>,
    refresh_now: Arc<Notify>,
) {
    let set_problem = |message: Option<String>| {
        *problem.write().unwrap_or_else(|e| e.into_inner()) = message;
    };
    match store.list_model_versions().await {
        Ok(versions) if versions.is_empty() => {}
        // Not fresh (or unreadable, which refresh already reports).
        _ => return,
    }
    set_problem(Some(
        "no model is in production yet: the bootstrap model router-v1.0.0 is being trained from \
         the built-in seed set (about a minute); retry shortly"
            .into(),
    ));
    let launch = Launch::new(&store, &config, Trigger::Cli);
    let outcome = bootstrap::ensure_production_model(&launch).await;
    match outcome {
        Ok(BootstrapOutcome::Deployed { .. } | BootstrapOutcome::RunningElsewhere) => {}
        Ok(BootstrapOutcome::NotNeeded {
            production: Some(_),
        }) => {}
        Ok(BootstrapOutcome::NotNeeded { production: None }) => set_problem(None),
        Err(err) => {
            tracing::error!("bootstrap failed: {err}");
            set_problem(Some(format!(
                "no model is in production and training the bootstrap model failed ({err}); see \
                 the serve log, then `flywheel weekly-training --force` and `flywheel models \
                 promote VERSION --to production`"
            )));
            return;
        }
    }
    refresh_now.notify_one();
}

type LiveKey = Option<(String, String, i32)>;

/// Keeps the [`ModelRouter`] in step with `model_versions`.
struct LiveModels {
    store: Store,
    models_base: PathBuf,
    loader: Loader,
    models: Arc<RwLock<Arc<ModelRouter>>>,
    problem: Arc<RwLock<Option<String>>>,
    /// (version, artifact path, traffic) of production and canary loaded now.
    current: (LiveKey, LiveKey),
    /// Wakes the loop before its next tick (the bootstrap model is ready).
    refresh_now: Arc<Notify>,
}

impl LiveModels {
    async fn run(mut self) {
        let mut tick = tokio::time::interval(MODEL_POLL);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.refresh_now.notified() => {}
            }
            if let Err(err) = self.refresh().await {
                tracing::warn!("could not refresh the live models: {err}");
            }
        }
    }

    async fn refresh(&mut self) -> Result<()> {
        let rows = self.store.serving_models().await?;
        let production = rows
            .iter()
            .find(|r| r.status == crate::domain::ModelStatus::Production);
        let canary = rows
            .iter()
            .find(|r| r.status == crate::domain::ModelStatus::Canary);
        let key = |r: &ServingModel| {
            (
                r.version.clone(),
                r.artifact_path.clone().unwrap_or_default(),
                r.traffic_percentage,
            )
        };
        let wanted = (production.map(key), canary.map(key));
        if wanted == self.current {
            return Ok(());
        }
        let mut problem = None;
        let production_model = match &wanted.0 {
            None => None,
            Some((version, artifact, _)) => match self.load(version, artifact).await {
                Ok(model) => {
                    tracing::info!(version, "production model loaded");
                    Some(model)
                }
                Err(err) => {
                    tracing::error!(version, "cannot load the production model: {err}");
                    problem = Some(format!(
                        "the production model {version} cannot be loaded ({err}); fix its artifact or \
                         `flywheel models rollback`"
                    ));
                    None
                }
            },
        };
        // A canary that cannot be loaded is left out: production answers all
        // traffic rather than a share of requests failing.
        let canary_model = match &wanted.1 {
            None => None,
            Some((version, artifact, traffic)) => match self.load(version, artifact).await {
                Ok(model) => {
                    tracing::info!(version, traffic, "canary model loaded");
                    Some(Canary {
                        classifier: model,
                        traffic_percent: (*traffic).clamp(0, 100) as u8,
                    })
                }
                Err(err) => {
                    tracing::error!(
                        version,
                        "cannot load the canary model; production takes all traffic: {err}"
                    );
                    None
                }
            },
        };
        let router = ModelRouter::new(production_model, canary_model);
        *self.models.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(router);
        *self.problem.write().unwrap_or_else(|e| e.into_inner()) = problem;
        self.current = wanted;
        Ok(())
    }

    async fn load(&self, version: &str, artifact: &str) -> Result<Arc<dyn IntentClassifier>> {
        if artifact.is_empty() {
            return Err(Error::config("its model_versions row has no artifact_path"));
        }
        let dir = resolve(&self.models_base, Path::new(artifact));
        let loader = self.loader;
        let model = tokio::task::spawn_blocking(move || loader(&dir))
            .await
            .map_err(|err| Error::failure(format!("loading panicked: {err}")))??;
        Ok(Arc::new(AsVersion {
            inner: model,
            version: version.to_string(),
        }))
    }
}

/// Relative artifact paths are relative to the data dir.
fn resolve(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

/// Reports the `model_versions.version` the model was loaded as, so logged
/// rows join the lifecycle tables whatever the artifact calls itself.
struct AsVersion {
    inner: Arc<dyn IntentClassifier>,
    version: String,
}

impl IntentClassifier for AsVersion {
    fn classify(&self, text: &str, language: Option<Language>) -> Classification {
        self.inner.classify(text, language)
    }
    fn version(&self) -> &str {
        &self.version
    }
}
