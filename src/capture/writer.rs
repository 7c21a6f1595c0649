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

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::metrics::Metrics;
use crate::error::{Error, ErrorKind};
use crate::storage::Store;
use crate::storage::conversations::NewConversation;

/// Why rows were not stored.
#[derive(Debug)]
pub enum WriteError {
    /// The queue is full: retry shortly.
    QueueFull,
    /// The database is down (or just failed); the service keeps probing it.
    Unavailable(String),
    /// Shutting down, or another failure of the write.
    Failed(String),
}

struct Job {
    rows: Vec<NewConversation>,
    reply: oneshot::Sender<Result<Vec<i64>, WriteError>>,
}

/// Handle the request handlers share.
#[derive(Clone)]
pub struct WriteQueue {
    tx: mpsc::Sender<Job>,
    capacity: usize,
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
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            queue_capacity: 4096,
            max_batch_rows: 2048,
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

    /// Store `rows` durably; their ids once committed.
    pub async fn submit(&self, rows: Vec<NewConversation>) -> Result<Vec<i64>, WriteError> {
        if !self.db_up.load(Ordering::Relaxed) {
            return Err(WriteError::Unavailable(
                "the database is unavailable".into(),
            ));
        }
        let (reply, answer) = oneshot::channel();
        self.tx
            .try_send(Job { rows, reply })
            .map_err(|err| match err {
                mpsc::error::TrySendError::Full(_) => WriteError::QueueFull,
                mpsc::error::TrySendError::Closed(_) => {
                    WriteError::Failed("the service is shutting down".into())
                }
            })?;
        answer.await.unwrap_or_else(|_| {
            Err(WriteError::Failed(
                "the writer stopped before answering".into(),
            ))
        })
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
        while let Some(first) = self.rx.recv().await {
            let mut rows = first.rows.len();
            let mut batch = vec![first];
            while rows < self.max_batch_rows {
                match self.rx.try_recv() {
                    Ok(job) => {
                        rows += job.rows.len();
                        batch.push(job);
                    }
                    Err(_) => break,
                }
            }
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
        if let Err(err) = self.store.checkpoint_wal().await {
            tracing::debug!("final WAL checkpoint skipped: {err}");
        }
        tracing::debug!("write queue drained; writer stopped");
    }

    async fn commit(&self, mut batch: Vec<Job>) {
        let sizes: Vec<usize> = batch.iter().map(|j| j.rows.len()).collect();
        let mut rows: Vec<NewConversation> = Vec::with_capacity(sizes.iter().sum());
        for job in &mut batch {
            rows.append(&mut job.rows);
        }
        let started = std::time::Instant::now();
        match self
            .store
            .insert_conversations_deferring_checkpoints(&rows)
            .await
        {
            Ok(ids) => {
                self.metrics.record_commit(&rows, started.elapsed());
                let mut ids = ids.into_iter();
                for (job, n) in batch.into_iter().zip(sizes) {
                    let _ = job.reply.send(Ok(ids.by_ref().take(n).collect()));
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
                let mut rest = rows;
                let mut single = Vec::with_capacity(batch.len());
                for (mut job, n) in batch.into_iter().zip(sizes) {
                    let tail = rest.split_off(n);
                    job.rows = std::mem::replace(&mut rest, tail);
                    single.push(job);
                }
                for job in single {
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
