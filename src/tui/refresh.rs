//! Loading pane data off the render path. The [`Loader`] reads one pane
//! from the store, incrementally where the data only grows: the live feed is
//! tailed by id, the per-minute counts re-read from the newest minute on.
//! [`spawn`] runs it as the console's one refresh task: requests arrive on a
//! `watch` channel (the latest wins; a burst of ticks is one load), each load
//! has a deadline, and results go back to the UI loop as events.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, DurationRound, Utc};
use tokio::sync::{mpsc, watch};

use super::data::*;
use super::event::UiEvent;
use crate::capture::gaps::{self, Gap, GapRules};
use crate::config::{Config, ROUTER_PROVIDER};
use crate::domain::Stage;
use crate::error::{Error, ErrorKind, Result};
use crate::gold::GoldSummary;
use crate::health::Warning;
use crate::lang::Language;
use crate::privacy::Redactor;
use crate::review::order::{Queued, head, review_order};
use crate::stages::canary_check;
use crate::storage::capture_stats::{BucketCount, MixDimension};
use crate::storage::conversations::Conversation;
use crate::storage::model_performance::ModelPerformance;
use crate::storage::models::ModelVersion;
use crate::storage::snapshot::AuditStatus;
use crate::storage::{Store, Timestamp};

/// A load that takes longer than this is reported as a slow database; the
/// pane keeps its last data.
pub const LOAD_TIMEOUT: StdDuration = StdDuration::from_secs(3);
/// Window of the per-hour bars and of gap detection.
const CAPTURE_WINDOW: Duration = Duration::hours(48);
/// The per-minute counts are re-read in full this often (rows backfilled
/// into the past by `ingest` are missed by the incremental tail).
const FULL_RELOAD_EVERY: Duration = Duration::minutes(10);
const FEED_LEN: usize = 100;
const QUEUE_HEAD: usize = 100;
/// Heavier, slowly changing reads: per-version performance and the intent list.
const SLOW_EVERY: StdDuration = StdDuration::from_secs(60);
/// The order of what waits for review changes with every decision:
/// re-ranked this often, in the background (ranking reads and weighs every
/// waiting sample; how many wait is counted on every refresh).
const WAITING_EVERY: StdDuration = StdDuration::from_secs(5);
const LOG_TAIL_BYTES: u64 = 32 * 1024;
const LOG_TAIL_LINES: usize = 200;
/// Conversations shown on each side of a gap when drilling into it.
const GAP_CONTEXT: i64 = 10;

/// What the UI asks the refresh task for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RefreshRequest {
    pub pane: Pane,
    /// Bumped on every request, so an identical request still wakes the task.
    pub seq: u64,
}

#[derive(Debug, Default)]
struct CaptureCache {
    /// Captures per minute start, over the window.
    minutes: BTreeMap<DateTime<Utc>, i64>,
    full_at: Option<DateTime<Utc>>,
    feed: Vec<Conversation>,
    max_id: i64,
}

/// Reads pane data from the store, keeping what lets the next read be incremental.
pub struct Loader {
    store: Store,
    config: Config,
    capture: CaptureCache,
    performance: Slow<Vec<ModelPerformance>>,
    /// The gold set and what audits measured: whole-table reads.
    judged_by: Slow<(Box<GoldSummary>, Box<AuditStatus>)>,
    intents: Slow<Vec<String>>,
    /// Audits awaiting a label: a count over every audit.
    audits_awaiting: Slow<i64>,
    /// The head of what waits for review, ranked: every waiting sample is
    /// read and weighed.
    queue: Slow<Vec<Queued>>,
    /// Keyed by canary, its start and production: a new pair reloads at once.
    canary_watch: Option<(String, Slow<CanaryWatch>)>,
    /// The loop's health warnings, as `status` and `doctor` judge it: the
    /// whole status snapshot behind them.
    health: Slow<Vec<Warning>>,
}

/// A heavy read: loaded once, then refreshed every [`SLOW_EVERY`] (or its
/// own period) in a task of its own while loads return the last value, so
/// the refresh that happens to be due never pays for it. A read that takes
/// long waits ten times its duration before the next, so the console never
/// spends more than a tenth of a core on one, however large the data.
struct Slow<T> {
    value: Option<T>,
    at: Option<Instant>,
    every: StdDuration,
    /// How long the last read took.
    took: StdDuration,
    pending: Option<tokio::task::JoinHandle<(Result<T>, StdDuration)>>,
}

impl<T> Default for Slow<T> {
    fn default() -> Self {
        Self::every(SLOW_EVERY)
    }
}

impl<T> Slow<T> {
    fn every(every: StdDuration) -> Self {
        Self {
            value: None,
            at: None,
            every,
            took: StdDuration::ZERO,
            pending: None,
        }
    }
}

/// `read`'s result and how long it took.
async fn timed<T>(read: impl std::future::Future<Output = T>) -> (T, StdDuration) {
    let start = Instant::now();
    let value = read.await;
    (value, start.elapsed())
}

impl<T: Clone + Send + 'static> Slow<T> {
    async fn get<Fut>(&mut self, fetch: impl FnOnce() -> Fut) -> Result<T>
    where
        Fut: std::future::Future<Output = Result<T>> + Send + 'static,
    {
        if self.pending.as_ref().is_some_and(|h| h.is_finished())
            && let Some(handle) = self.pending.take()
            && let Ok((read, took)) = handle.await
        {
            self.took = took;
            // A failed background read keeps the last value; the next
            // attempt comes after another period.
            if let Ok(value) = read {
                self.value = Some(value);
            }
        }
        match &self.value {
            None => {
                let (read, took) = timed(fetch()).await;
                let value = read?;
                self.took = took;
                self.value = Some(value.clone());
                self.at = Some(Instant::now());
                Ok(value)
            }
            Some(value) => {
                let period = self.every.max(self.took * 10);
                let due = self.at.is_none_or(|at| at.elapsed() >= period);
                if due && self.pending.is_none() {
                    self.at = Some(Instant::now());
                    self.pending = Some(tokio::spawn(timed(fetch())));
                }
                Ok(value.clone())
            }
        }
    }
}

impl Loader {
    pub fn new(store: Store, config: Config) -> Self {
        Self {
            store,
            config,
            capture: CaptureCache::default(),
            performance: Slow::default(),
            judged_by: Slow::default(),
            intents: Slow::default(),
            audits_awaiting: Slow::default(),
            queue: Slow::every(WAITING_EVERY),
            canary_watch: None,
            health: Slow::default(),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// One pane's data as of `now`.
    pub async fn load(&mut self, pane: Pane, now: DateTime<Utc>) -> Result<PaneData> {
        Ok(match pane {
            Pane::Capture => PaneData::Capture(self.capture(now).await?),
            Pane::Review => PaneData::Review(self.review().await?),
            Pane::LabelStudio => PaneData::LabelStudio(self.label_studio().await?),
            Pane::Training => PaneData::Training(self.training().await?),
            Pane::Jobs => PaneData::Jobs(self.jobs(now).await?),
        })
    }

    async fn capture(&mut self, now: DateTime<Utc>) -> Result<CaptureData> {
        let minute = Duration::minutes(1);
        let now_minute = trunc(now, minute);
        let since = now_minute - CAPTURE_WINDOW;
        let cache = &mut self.capture;
        let full = cache
            .full_at
            .is_none_or(|at| now - at >= FULL_RELOAD_EVERY || now < at);
        let from = match (full, cache.minutes.last_key_value()) {
            (false, Some((last, _))) => *last,
            (false, None) => trunc(cache.full_at.unwrap_or(now), minute),
            (true, _) => since,
        };
        let counts = self
            .store
            .counted_captures_per_minute(Timestamp(from))
            .await?;
        if full {
            cache.minutes.clear();
            cache.full_at = Some(now);
        }
        for b in counts {
            cache.minutes.insert(b.start.0, b.count);
        }
        cache.minutes = cache.minutes.split_off(&since);

        // The first load reads the newest by time; later ones tail by id
        // (whatever the table's size) and merge by time.
        let fresh = if cache.max_id == 0 {
            self.store.recent_conversations(FEED_LEN as i64).await?
        } else {
            self.store
                .conversations_after(cache.max_id, FEED_LEN as i64)
                .await?
        };
        if let Some(newest) = fresh.iter().map(|c| c.id).max() {
            cache.max_id = cache.max_id.max(newest);
        }
        // The feed shows texts as they would leave Flywheel.
        let redactor = Redactor::new(&self.config.privacy);
        let mut feed: Vec<Conversation> =
            fresh.into_iter().map(|c| redacted(&redactor, c)).collect();
        feed.append(&mut cache.feed);
        // Newest first by time: `ingest` backfills rows into the past
        // with new ids.
        feed.sort_by_key(|c| std::cmp::Reverse((c.created_at, c.id)));
        feed.truncate(FEED_LEN);
        cache.feed = feed;

        let last_capture_at = self.store.last_capture_at().await?;
        // The same 60 minutes as the per-minute counts ("N in 1 h").
        let counted = self
            .store
            .counted_capture_mix(Timestamp(now_minute - Duration::minutes(59)))
            .await?;
        let mix = [
            ("provider", MixDimension::Provider),
            ("language", MixDimension::Language),
            ("intent", MixDimension::Intent),
        ]
        .into_iter()
        .map(|(name, dimension)| {
            let rows = counted.iter().filter(|c| c.dimension == dimension);
            (name, top_values(rows.map(|c| (c.value.clone(), c.count))))
        })
        .collect();

        let minute_counts: Vec<BucketCount> = cache
            .minutes
            .iter()
            .map(|(start, count)| BucketCount {
                start: Timestamp(*start),
                count: *count,
            })
            .collect();
        let per_hour = hours_of(&cache.minutes, now);
        let per_minute = (0..60)
            .map(|i| {
                let at = now_minute - Duration::minutes(59 - i);
                cache.minutes.get(&at).copied().unwrap_or(0).max(0) as u64
            })
            .collect();
        let report = gaps::analyse(
            Timestamp(since),
            now,
            last_capture_at,
            &minute_counts,
            per_hour.clone(),
            GapRules::from_health(&self.config.health),
        );
        Ok(CaptureData {
            feed: cache.feed.clone(),
            per_minute,
            per_hour,
            last_capture_at,
            gaps: report.gaps,
            low_hours: report.low_hours,
            quiet_period_minutes: report.quiet_period_minutes,
            mix,
        })
    }

    async fn review(&mut self) -> Result<ReviewData> {
        let store = self.store.clone();
        let audits = self
            .audits_awaiting
            .get(|| async move { store.audit_queue_size().await })
            .await?;
        let (store, config) = (self.store.clone(), self.config.clone());
        let queue = self
            .queue
            .get(|| async move {
                let order = review_order(&store, &config).await?;
                head(&store, &order, QUEUE_HEAD).await
            })
            .await?;
        // Running counts: read fresh on every refresh.
        let waiting = self
            .store
            .waiting(self.config.auto_filter.high_priority)
            .await?;
        let store = self.store.clone();
        let intents = self
            .intents
            .get(|| async move { store.sample_intents().await })
            .await?;
        Ok(ReviewData {
            queue,
            waiting,
            audits,
            intents,
        })
    }

    async fn label_studio(&mut self) -> Result<LabelStudioData> {
        let ls = &self.config.label_studio;
        let missing_settings = match (&ls.url, &ls.api_key) {
            (None, None) => Some("LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY".to_string()),
            (None, Some(_)) => Some("LABEL_STUDIO_URL".to_string()),
            (Some(_), None) => Some("LABEL_STUDIO_API_KEY".to_string()),
            (Some(_), Some(_)) => None,
        };
        let project = match ls.project_id {
            Some(id) => Some(id),
            None => self.store.latest_label_studio_project().await?,
        };
        let counts = match project {
            Some(id) => Some(self.store.label_studio_task_counts(id).await?),
            None => None,
        };
        let syncs = self
            .store
            .stage_job_runs(Stage::LabelStudioSync.as_str(), 8)
            .await?;
        Ok(LabelStudioData {
            missing_settings,
            url: ls.url.clone(),
            project,
            counts,
            syncs,
        })
    }

    async fn training(&mut self) -> Result<TrainingData> {
        let versions = self.store.list_model_versions().await?;
        let runs = self.store.recent_training_runs(10).await?;
        // The view aggregates every conversation per version (~0.4 s at a
        // million rows): read it rarely and in the background.
        let store = self.store.clone();
        let performance = self
            .performance
            .get(|| async move { store.model_performance().await })
            .await?;
        let canary_watch = self.canary_watch(&versions).await?;
        let store = self.store.clone();
        let split = self.config.training.test_split_percent;
        let (gold, audits) = self
            .judged_by
            .get(|| async move {
                Ok((
                    Box::new(store.gold_summary(split).await?),
                    Box::new(store.audit_status().await?),
                ))
            })
            .await?;
        let audit_warnings = crate::health::audit_warnings(&audits, &self.config);
        Ok(TrainingData {
            versions,
            runs,
            performance,
            canary_watch,
            gold,
            audits,
            audit_warnings,
        })
    }

    /// Canary vs production since the canary started, when both exist. It
    /// reads every conversation of both since then: a slow read.
    async fn canary_watch(&mut self, versions: &[ModelVersion]) -> Result<Option<CanaryWatch>> {
        let canary = versions
            .iter()
            .find(|v| v.status == crate::domain::ModelStatus::Canary);
        let production = versions
            .iter()
            .find(|v| v.status == crate::domain::ModelStatus::Production);
        let (Some(canary), Some(production)) = (canary, production) else {
            self.canary_watch = None;
            return Ok(None);
        };
        let since = canary.canary_at.unwrap_or(canary.updated_at);
        // A new step is a new watch: its traffic and time at step change.
        let key = format!(
            "{}@{}/{}/{}",
            canary.version, since, canary.traffic_percentage, production.version
        );
        if self.canary_watch.as_ref().is_none_or(|(k, _)| *k != key) {
            self.canary_watch = Some((key, Slow::default()));
        }
        let (store, config) = (self.store.clone(), self.config.clone());
        let (canary_version, canary_traffic) = (canary.version.clone(), canary.traffic_percentage);
        let production_version = production.version.clone();
        let (canary, production) = (canary.clone(), production.clone());
        let slow = &mut self.canary_watch.as_mut().expect("set above").1;
        let watch = slow
            .get(|| async move {
                let watched =
                    canary_check::watch(&store, &canary, &production, config.canary.slow_ms)
                        .await?;
                let analysis = canary_check::analyse(&watched, &config);
                Ok(CanaryWatch {
                    check: Box::new((watched, analysis)),
                    min_step_minutes: config.canary.min_step_minutes,
                    since,
                    canary: store.version_window_stats(&canary_version, since).await?,
                    production: store
                        .version_window_stats(&production_version, since)
                        .await?,
                    canary_version,
                    canary_traffic,
                    production_version,
                })
            })
            .await?;
        Ok(Some(watch))
    }

    async fn jobs(&mut self, now: DateTime<Utc>) -> Result<JobsData> {
        let runs = self.store.recent_job_runs(30).await?;
        let logs_dir = self.config.logs_dir();
        let tail = tokio::task::spawn_blocking(move || log_tail(&logs_dir))
            .await
            .map_err(|err| Error::failure(format!("reading the log: {err}")))?;
        let (log_file, log_tail, log_problem) = match tail {
            Ok((file, lines)) => (file, lines, None),
            Err(problem) => (None, Vec::new(), Some(problem)),
        };
        let (store, config) = (self.store.clone(), self.config.clone());
        let health = self
            .health
            .get(|| async move {
                Ok(crate::health::LoopHealth::read(&store, &config, now)
                    .await?
                    .warnings)
            })
            .await?;
        Ok(JobsData {
            runs,
            log_file,
            log_tail,
            log_problem,
            health: Some(health),
        })
    }

    /// The conversations at the edges of `gap` and the job runs during it.
    pub async fn gap_detail(&self, gap: Gap) -> Result<GapDetail> {
        let conversations = self
            .store
            .conversations_around(gap.start, gap.end, GAP_CONTEXT)
            .await?;
        let job_runs = self
            .store
            .job_runs_overlapping(gap.start, gap.end, 20)
            .await?;
        Ok(GapDetail {
            gap,
            conversations,
            job_runs,
        })
    }

    /// Conversation `id` in full: its text redacted, the sample it was
    /// folded into (by its review link, else by its normalised text) and the
    /// intents the version that answered it weighed.
    pub async fn conversation_detail(&self, id: i64) -> Result<ConversationDetail> {
        let conversation = self.store.conversation(id).await?.ok_or_else(|| {
            Error::bad_input(format!(
                "conversation {id} is not in the database (retention may have deleted it)"
            ))
        })?;
        let linked = match self.store.review_link_sample(id).await? {
            Some(sample_id) => self.store.sample(sample_id).await?,
            None => None,
        };
        let sample = match linked {
            Some(sample) => Some(sample),
            None => {
                let normalized = crate::text::normalize_for_dedup(&conversation.user_message);
                self.store.sample_by_normalized_text(&normalized).await?
            }
        };
        let alternatives = self.alternatives(&conversation).await;
        let redactor = Redactor::new(&self.config.privacy);
        Ok(ConversationDetail {
            conversation: redacted(&redactor, conversation),
            sample,
            alternatives,
        })
    }

    /// The served version's scores for `c`'s text (the model is
    /// deterministic: what it weighed when it answered).
    async fn alternatives(&self, c: &Conversation) -> Alternatives {
        let unavailable = |why: String| Alternatives::Unavailable(why);
        let (Some(version), Some(ROUTER_PROVIDER)) =
            (c.model_version.clone(), c.nlu_provider.as_deref())
        else {
            return unavailable(format!(
                "answered by {}, not a Flywheel model: no alternatives recorded",
                c.nlu_provider.as_deref().unwrap_or("an unknown provider")
            ));
        };
        let artifact = match self.store.model_version(&version).await {
            Ok(Some(v)) => v.artifact_path,
            Ok(None) => {
                return unavailable(format!(
                    "{version} is not in model_versions: nothing to score with"
                ));
            }
            Err(err) => return unavailable(err.message().to_string()),
        };
        let Some(artifact) = artifact.filter(|a| !a.is_empty()) else {
            return unavailable(format!("{version} has no artifact to score with"));
        };
        let dir = self.config.data_dir.join(artifact);
        let text = c.user_message.clone();
        let language = c.language.as_deref().and_then(Language::parse);
        let scored = tokio::task::spawn_blocking(move || {
            crate::router::Model::load(&dir).map(|m| m.classify(&text, language))
        })
        .await;
        match scored {
            Ok(Ok(prediction)) => Alternatives::Scored {
                version,
                intents: prediction
                    .alternatives
                    .into_iter()
                    .map(|a| (a.intent, a.confidence))
                    .collect(),
            },
            Ok(Err(err)) => unavailable(format!("{version}: {}", err.message())),
            Err(err) => unavailable(format!("scoring with {version} panicked: {err}")),
        }
    }
}

/// `c` with its text redacted by `redactor`.
fn redacted(redactor: &Redactor, mut c: Conversation) -> Conversation {
    if let std::borrow::Cow::Owned(text) = redactor.redact(&c.user_message) {
        c.user_message = text;
    }
    c
}

fn trunc(t: DateTime<Utc>, unit: Duration) -> DateTime<Utc> {
    t.duration_trunc(unit).unwrap_or(t)
}

/// Per-hour sums of the minute counts: 48 hours ending with the current one.
fn hours_of(minutes: &BTreeMap<DateTime<Utc>, i64>, now: DateTime<Utc>) -> Vec<BucketCount> {
    let hour = Duration::hours(1);
    let current = trunc(now, hour);
    let first = current - Duration::hours(47);
    let mut sums: BTreeMap<DateTime<Utc>, i64> = (0..48).map(|i| (first + hour * i, 0)).collect();
    for (start, count) in minutes.range(first..) {
        *sums.entry(trunc(*start, hour)).or_default() += count;
    }
    sums.into_iter()
        .map(|(start, count)| BucketCount {
            start: Timestamp(start),
            count,
        })
        .collect()
}

/// Sum per value and keep the four largest.
fn top_values(rows: impl Iterator<Item = (Option<String>, i64)>) -> Vec<(String, i64)> {
    let mut sums: BTreeMap<String, i64> = BTreeMap::new();
    for (value, count) in rows {
        *sums.entry(value.unwrap_or_else(|| "?".into())).or_default() += count;
    }
    let mut top: Vec<(String, i64)> = sums.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top.truncate(4);
    top
}

/// The newest `flywheel*.log` in `dir` and its last lines.
fn log_tail(dir: &Path) -> std::result::Result<(Option<PathBuf>, Vec<String>), String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok((None, Vec::new())),
        Err(err) => return Err(format!("cannot read {}: {err}", dir.display())),
    };
    let newest = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("flywheel"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .max();
    let Some((_, path)) = newest else {
        return Ok((None, Vec::new()));
    };
    let read = || -> std::io::Result<Vec<u8>> {
        let mut file = std::fs::File::open(&path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL_BYTES)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(bytes)
    };
    let bytes = read().map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if bytes.len() as u64 == LOG_TAIL_BYTES && !lines.is_empty() {
        lines.remove(0); // most likely cut in the middle
    }
    let skip = lines.len().saturating_sub(LOG_TAIL_LINES);
    Ok((Some(path), lines.split_off(skip)))
}

/// Is Label Studio up, and does it take our key? `None` when not configured.
pub async fn probe_label_studio(config: &Config) -> Option<Connection> {
    let client = crate::review::label_studio::LabelStudioClient::from_config(config).ok()?;
    let timeout = StdDuration::from_secs(config.label_studio.timeout_secs.clamp(1, 10));
    Some(match tokio::time::timeout(timeout, client.whoami()).await {
        Ok(Ok(user)) => Connection::Ok { user: user.email },
        Ok(Err(err)) if err.kind() == ErrorKind::Unavailable => {
            Connection::Unreachable(err.message().to_string())
        }
        Ok(Err(err)) => Connection::KeyRefused(err.message().to_string()),
        Err(_) => Connection::Unreachable(format!("no answer within {timeout:?}")),
    })
}

/// Run the console's refresh task until the request channel closes.
pub fn spawn(
    mut loader: Loader,
    mut requests: watch::Receiver<RefreshRequest>,
    events: mpsc::UnboundedSender<UiEvent>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while requests.changed().await.is_ok() {
            let request = *requests.borrow_and_update();
            let now = Utc::now();
            let event =
                match tokio::time::timeout(LOAD_TIMEOUT, loader.load(request.pane, now)).await {
                    Ok(Ok(data)) => UiEvent::Loaded { data, at: now },
                    Ok(Err(err)) => UiEvent::LoadFailed {
                        pane: request.pane,
                        message: err.message().to_string(),
                    },
                    Err(_) => UiEvent::LoadFailed {
                        pane: request.pane,
                        message: format!(
                            "the database did not answer within {} s; showing the last data",
                            LOAD_TIMEOUT.as_secs()
                        ),
                    },
                };
            if events.send(event).is_err() {
                break;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn hours_sum_minutes_and_cover_48_hours_with_zeros() {
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 10, 30, 0).unwrap();
        let mut minutes = BTreeMap::new();
        minutes.insert(Utc.with_ymd_and_hms(2026, 11, 25, 10, 1, 0).unwrap(), 3);
        minutes.insert(Utc.with_ymd_and_hms(2026, 11, 25, 10, 29, 0).unwrap(), 4);
        minutes.insert(Utc.with_ymd_and_hms(2026, 11, 25, 8, 0, 0).unwrap(), 1);
        let hours = hours_of(&minutes, now);
        assert_eq!(hours.len(), 48);
        assert_eq!(hours.last().unwrap().count, 7);
        assert_eq!(hours[hours.len() - 3].count, 1);
        assert_eq!(hours[hours.len() - 2].count, 0);
        assert_eq!(
            hours[0].start.0,
            Utc.with_ymd_and_hms(2026, 11, 23, 11, 0, 0).unwrap()
        );
    }

    #[test]
    fn top_values_sum_across_hours_and_keep_four() {
        let rows = vec![
            (Some("a".to_string()), 1),
            (Some("b".to_string()), 5),
            (Some("a".to_string()), 5),
            (None, 2),
            (Some("c".to_string()), 1),
            (Some("d".to_string()), 1),
        ];
        let top = top_values(rows.into_iter());
        assert_eq!(
            top,
            vec![
                ("a".to_string(), 6),
                ("b".to_string(), 5),
                ("?".to_string(), 2),
                ("c".to_string(), 1)
            ]
        );
    }
}
