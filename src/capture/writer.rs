//! Group commit: request handlers put their rows on a bounded queue and
//! wait; one writer task takes everything pending (up to a batch size),
//! commits it in one transaction and answers each handler with its ids. A
//! response therefore always follows its commit, while one commit serves
//! hundreds of concurrent requests.
//!
//! The queue is bounded: when it is full a handler is told so at once (503
//! with `Retry-After`) rather than queueing without limit or dropping rows.
//! When the database fails the writer marks it down; handlers then answer
//! 503 without queueing, and a probe marks it up again when a ping succeeds.
//!
//! Requests may carry idempotency keys, settled in the same transaction as
//! their rows (see [`crate::storage::idempotency`]). One batch never holds a
//! key twice: a request repeating a key already in the batch waits for the
//! next one, where the first's commit answers it.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::metrics::Metrics;
use crate::error::{Error, ErrorKind};
use crate::storage::conversations::NewConversation;
use crate::storage::idempotency::{IdempotencyKey, KeyScope, KeyedOutcome, KeyedRows};
use crate::storage::{Store, Timestamp};

/// How long an idempotency key is remembered: a repeat within this is
/// answered with the original answer.
pub const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);
/// How often keys older than the window are deleted.
const KEY_PRUNE_INTERVAL: Duration = Duration::from_secs(60 * 60);

/// Why rows were not stored.
#[derive(Debug)]
pub enum WriteError {
    /// The queue is full: retry shortly.
    QueueFull,
    /// The database is down (or just failed); the service keeps probing it.
    Unavailable(String),
    /// Shutting down, or another failure of the write.
    Failed(String),
    /// The request's `keys[i]` was used within the window for different
    /// content; nothing was stored.
    KeyReused(usize),
    /// No answer within the commit wait: the rows are still queued or being
    /// committed, so they may or may not end up stored.
    Uncertain,
}

/// What a committed request got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The id of each row, in order.
    pub ids: Vec<i64>,
    /// Rows an earlier request with the same key had stored (their ids are
    /// the earlier ones; nothing new was stored for them).
    pub replayed: usize,
}

struct Job {
    rows: Vec<NewConversation>,
    keys: Vec<IdempotencyKey>,
    reply: oneshot::Sender<Result<Committed, WriteError>>,
}

/// Handle the request handlers share.
#[derive(Clone)]
pub struct WriteQueue {
    tx: mpsc::Sender<Job>,
    capacity: usize,
    commit_wait: Duration,
    db_up: Arc<AtomicBool>,
    /// Rows the writer has taken but not yet committed.
    in_flight: Arc<AtomicUsize>,
}

/// Tuning of the writer.
#[derive(Debug, Clone, Copy)]
pub struct WriterOptions {
    /// Requests that may wait for the writer before 503.
    pub queue_capacity: usize,
    /// Rows committed per transaction at most (a bulk request may exceed it alone).
    pub max_batch_rows: usize,
    /// How long a request waits for its commit before it is answered 503
    /// ("may or may not be stored").
    pub commit_wait: Duration,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            queue_capacity: 4096,
            max_batch_rows: 2048,
            commit_wait: Duration::from_secs(30),
        }
    }
}

impl WriteQueue {
    /// Start the writer task. It ends once every [`WriteQueue`] clone is
    /// dropped and the queue is drained: that is graceful shutdown.
    pub fn start(
        store: Store,
        options: WriterOptions,
        metrics: Arc<Metrics>,
    ) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(options.queue_capacity.max(1));
        let queue = Self {
            tx,
            capacity: options.queue_capacity.max(1),
            commit_wait: options.commit_wait,
            db_up: Arc::new(AtomicBool::new(true)),
            in_flight: Arc::new(AtomicUsize::new(0)),
        };
        let writer = Writer {
            store,
            rx,
            max_batch_rows: options.max_batch_rows.max(1),
            db_up: queue.db_up.clone(),
            in_flight: queue.in_flight.clone(),
            metrics,
        };
        (queue, tokio::spawn(writer.run()))
    }

    /// Store `rows` durably under `keys` (none: unconditionally); their ids
    /// once committed, or [`WriteError::Uncertain`] after the commit wait.
    pub async fn submit(
        &self,
        rows: Vec<NewConversation>,
        keys: Vec<IdempotencyKey>,
    ) -> Result<Committed, WriteError> {
        if !self.db_up.load(Ordering::Relaxed) {
            return Err(WriteError::Unavailable(
                "the database is unavailable".into(),
            ));
        }
        let (reply, answer) = oneshot::channel();
        self.tx
            .try_send(Job { rows, keys, reply })
            .map_err(|err| match err {
                mpsc::error::TrySendError::Full(_) => WriteError::QueueFull,
                mpsc::error::TrySendError::Closed(_) => {
                    WriteError::Failed("the service is shutting down".into())
                }
            })?;
        match tokio::time::timeout(self.commit_wait, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(WriteError::Failed(
                "the writer stopped before answering".into(),
            )),
            Err(_) => Err(WriteError::Uncertain),
        }
    }

    /// Requests waiting for the writer.
    pub fn depth(&self) -> usize {
        self.capacity - self.tx.capacity()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Rows taken by the writer and not yet committed.
    pub fn in_flight_rows(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub fn database_up(&self) -> bool {
        self.db_up.load(Ordering::Relaxed)
    }
}

struct Writer {
    store: Store,
    rx: mpsc::Receiver<Job>,
    max_batch_rows: usize,
    db_up: Arc<AtomicBool>,
    in_flight: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
}

/// How often a down database is pinged.
const PROBE_INTERVAL: Duration = Duration::from_millis(250);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the WAL is checkpointed while serving (SQLite).
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

impl Writer {
    async fn run(mut self) {
        // Commits leave the WAL checkpoints to this task (see
        // `insert_conversations_deferring_checkpoints`).
        let checkpoints = tokio::spawn({
            let store = self.store.clone();
            async move {
                let mut tick = tokio::time::interval(CHECKPOINT_INTERVAL);
                loop {
                    tick.tick().await;
                    if let Err(err) = store.checkpoint_wal().await {
                        tracing::debug!("WAL checkpoint skipped: {err}");
                    }
                }
            }
        });
        let prune = tokio::spawn(prune_keys(self.store.clone()));
        let mut carried: Option<Job> = None;
        while let Some((batch, rows)) = self.next_batch(&mut carried).await {
            if !self.db_up.load(Ordering::Relaxed) {
                // Queued before the failure was noticed: fail fast as well.
                for job in batch {
                    let _ = job.reply.send(Err(WriteError::Unavailable(
                        "the database is unavailable".into(),
                    )));
                }
                continue;
            }
            self.in_flight.store(rows, Ordering::Relaxed);
            self.commit(batch).await;
            self.in_flight.store(0, Ordering::Relaxed);
        }
        checkpoints.abort();
        prune.abort();
        if let Err(err) = self.store.checkpoint_wal().await {
            tracing::debug!("final WAL checkpoint skipped: {err}");
        }
        tracing::debug!("write queue drained; writer stopped");
    }

    /// Everything pending, up to the batch size, with its row count; `None`
    /// once the queue is closed and empty. A job repeating a key of the
    /// batch is left in `carried` and starts the next batch.
    async fn next_batch(&mut self, carried: &mut Option<Job>) -> Option<(Vec<Job>, usize)> {
        let first = match carried.take() {
            Some(job) => job,
            None => self.rx.recv().await?,
        };
        let key_of = |k: &IdempotencyKey| (k.scope, k.key.clone());
        let mut keys: HashSet<(KeyScope, String)> = first.keys.iter().map(key_of).collect();
        let mut rows = first.rows.len();
        let mut batch = vec![first];
        while rows < self.max_batch_rows {
            let Ok(job) = self.rx.try_recv() else {
                break;
            };
            if job.keys.iter().any(|k| keys.contains(&key_of(k))) {
                *carried = Some(job);
                break;
            }
            keys.extend(job.keys.iter().map(key_of));
            rows += job.rows.len();
            batch.push(job);
        }
        Some((batch, rows))
    }

    async fn commit(&self, batch: Vec<Job>) {
        let requests: Vec<KeyedRows<'_>> = batch
            .iter()
            .map(|job| KeyedRows {
                rows: &job.rows,
                keys: &job.keys,
            })
            .collect();
        let started = std::time::Instant::now();
        let committed = self
            .store
            .insert_conversations_deferring_checkpoints(&requests, keys_fresh_since())
            .await;
        drop(requests);
        match committed {
            Ok(outcomes) => {
                let stored = outcomes
                    .iter()
                    .map(|o| match o {
                        KeyedOutcome::Stored { ids, replayed } => ids.len() - replayed,
                        KeyedOutcome::KeyReused(_) => 0,
                    })
                    .sum();
                self.metrics.record_commit(stored, started.elapsed());
                for (job, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = job.reply.send(match outcome {
                        KeyedOutcome::Stored { ids, replayed } => Ok(Committed { ids, replayed }),
                        KeyedOutcome::KeyReused(k) => Err(WriteError::KeyReused(k)),
                    });
                }
            }
            Err(err) if err.kind() == ErrorKind::Unavailable => {
                self.metrics.record_db_error();
                self.mark_down(&err);
                for job in batch {
                    let _ = job
                        .reply
                        .send(Err(WriteError::Unavailable(err.message().to_string())));
                }
            }
            Err(err) if batch.len() > 1 => {
                // Validation should make this unreachable; if one request's
                // rows are refused anyway, they must not fail the others.
                tracing::warn!("a group commit failed ({err}); committing its requests one by one");
                for job in batch {
                    Box::pin(self.commit(vec![job])).await;
                }
            }
            Err(err) => {
                self.metrics.record_db_error();
                tracing::error!("storing conversations failed: {err}");
                for job in batch {
                    let _ = job
                        .reply
                        .send(Err(WriteError::Failed(err.message().to_string())));
                }
            }
        }
    }

    /// Mark the database down and probe it until it answers again.
    fn mark_down(&self, err: &Error) {
        if self.db_up.swap(false, Ordering::SeqCst) {
            tracing::error!("database unavailable, answering 503 until it is back: {err}");
            let store = self.store.clone();
            let db_up = self.db_up.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(PROBE_INTERVAL).await;
                    if let Ok(Ok(())) = tokio::time::timeout(PROBE_TIMEOUT, store.ping()).await {
                        db_up.store(true, Ordering::SeqCst);
                        tracing::info!("database reachable again; accepting writes");
                        return;
                    }
                }
            });
        }
    }
}

/// Keys stored before this are forgotten.
fn keys_fresh_since() -> Timestamp {
    let window = chrono::Duration::from_std(IDEMPOTENCY_WINDOW).expect("a day fits");
    Timestamp::from(chrono::Utc::now() - window)
}

/// Delete expired idempotency keys now and then (they are ignored anyway;
/// this keeps the table at about a day of keys).
async fn prune_keys(store: Store) {
    let mut tick = tokio::time::interval(KEY_PRUNE_INTERVAL);
    loop {
        tick.tick().await;
        match store.prune_idempotency_keys(keys_fresh_since()).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(keys = n, "pruned expired idempotency keys"),
            Err(err) => tracing::debug!("pruning idempotency keys skipped: {err}"),
        }
    }
}
