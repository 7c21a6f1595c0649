//! A stage's two lines to whoever started it, kept apart: progress goes
//! out through a [`Progress`] sender (one event type for every stage: the
//! CLI draws an indicatif bar or log lines, the console a gauge), and
//! cancellation comes in through a [`CancellationToken`] the face keeps.
//!
//! A display of the progress ends when its stage ends
//! ([`ProgressReceiver::forward_until`]), draining what was sent before,
//! never by waiting for every clone of the sender to be dropped.

use std::future::Future;

use serde::Serialize;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
pub use tokio_util::sync::CancellationToken;

use crate::error::{Error, ErrorKind, Result};

/// What a running stage tells its caller.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ProgressEvent {
    /// A phase of the stage begins ("export", "train", "push"); `total` units
    /// when known, for a bar.
    Phase { name: String, total: Option<u64> },
    /// Units of the current phase done so far (absolute, not a delta).
    Advance { done: u64 },
    /// One training epoch finished.
    Epoch {
        epoch: u32,
        epochs: u32,
        loss: f32,
        validation_accuracy: Option<f32>,
    },
    /// A human-readable line for the log or the console's status area.
    Note { message: String },
}

/// Where a stage's progress events go. Cloning is cheap; a silent sender
/// drops every event (tests, nested calls), and so does one whose display
/// has ended.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    tx: Option<UnboundedSender<ProgressEvent>>,
}

impl Progress {
    /// A sender nobody listens to.
    pub fn silent() -> Self {
        Self::default()
    }

    /// A sender and the receiver its events arrive on.
    pub fn channel() -> (Self, ProgressReceiver) {
        let (tx, rx) = unbounded_channel();
        (Self { tx: Some(tx) }, ProgressReceiver { rx })
    }

    pub fn send(&self, event: ProgressEvent) {
        if let Some(tx) = &self.tx {
            // A display that went away (console closed) is not the stage's problem.
            let _ = tx.send(event);
        }
    }

    pub fn phase(&self, name: impl Into<String>, total: Option<u64>) {
        self.send(ProgressEvent::Phase {
            name: name.into(),
            total,
        });
    }

    pub fn advance(&self, done: u64) {
        self.send(ProgressEvent::Advance { done });
    }

    pub fn note(&self, message: impl Into<String>) {
        self.send(ProgressEvent::Note {
            message: message.into(),
        });
    }
}

/// The display's end of a [`Progress`] channel.
#[derive(Debug)]
pub struct ProgressReceiver {
    rx: UnboundedReceiver<ProgressEvent>,
}

impl ProgressReceiver {
    /// The next event; `None` once every sender is gone.
    pub async fn recv(&mut self) -> Option<ProgressEvent> {
        self.rx.recv().await
    }

    /// Hand every event to `each` until `done` completes (the stage ended),
    /// then the events sent before that; returns `done`'s output. Senders
    /// still alive then (a clone in a task that outlives the stage) do not
    /// hold the display up: what they send later is dropped.
    pub async fn forward_until<T>(
        &mut self,
        done: impl Future<Output = T>,
        mut each: impl FnMut(ProgressEvent),
    ) -> T {
        let mut done = std::pin::pin!(done);
        loop {
            tokio::select! {
                biased;
                Some(event) = self.rx.recv() => each(event),
                output = &mut done => {
                    while let Ok(event) = self.rx.try_recv() {
                        each(event);
                    }
                    self.rx.close();
                    return output;
                }
            }
        }
    }
}

/// What long work is handed: where its progress goes and the token that
/// stops it, two separate things the face created separately (it keeps the
/// token, or a clone of it, to cancel; its display owns the receiver).
#[derive(Debug, Clone, Default)]
pub struct Reporter {
    progress: Progress,
    cancel: CancellationToken,
}

impl Reporter {
    pub fn new(progress: Progress, cancel: CancellationToken) -> Self {
        Self { progress, cancel }
    }

    /// Progress nobody listens to, and a token nobody else holds.
    pub fn silent() -> Self {
        Self::default()
    }

    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// The same token, with progress going to a new receiver (for a caller
    /// that wants to see the events before passing them on).
    pub fn intercept(&self) -> (Self, ProgressReceiver) {
        let (progress, rx) = Progress::channel();
        (Self::new(progress, self.cancel.clone()), rx)
    }

    pub fn send(&self, event: ProgressEvent) {
        self.progress.send(event);
    }

    pub fn phase(&self, name: impl Into<String>, total: Option<u64>) {
        self.progress.phase(name, total);
    }

    pub fn advance(&self, done: u64) {
        self.progress.advance(done);
    }

    pub fn note(&self, message: impl Into<String>) {
        self.progress.note(message);
    }

    /// Ask the work to stop at its next check.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Stages call this between expensive steps.
    pub fn check_cancelled(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(cancelled())
        } else {
            Ok(())
        }
    }
}

/// The error a cancelled stage ends with (recorded `cancelled`).
pub fn cancelled() -> Error {
    Error::new(ErrorKind::Cancelled, "cancelled by the operator")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_arrive_in_order_and_cancel_is_shared() {
        let (progress, mut rx) = Progress::channel();
        let reporter = Reporter::new(progress, CancellationToken::new());
        let clone = reporter.clone();
        reporter.phase("export", Some(10));
        clone.advance(4);
        assert_eq!(
            rx.rx.try_recv().unwrap(),
            ProgressEvent::Phase {
                name: "export".into(),
                total: Some(10)
            }
        );
        assert_eq!(
            rx.rx.try_recv().unwrap(),
            ProgressEvent::Advance { done: 4 }
        );
        assert!(reporter.check_cancelled().is_ok());
        clone.cancel();
        let err = reporter.check_cancelled().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Cancelled);
    }

    /// The display ends with its stage, although a clone of the sender
    /// lives on (the CLI's display used to wait for every clone to drop).
    #[tokio::test]
    async fn forwarding_ends_when_the_stage_does_with_everything_sent_before() {
        let (progress, mut rx) = Progress::channel();
        let outliving = progress.clone();
        let stage = async move {
            progress.phase("work", Some(3));
            for done in 1..=3 {
                progress.advance(done);
                tokio::task::yield_now().await;
            }
            "finished"
        };
        let mut seen = Vec::new();
        let output = rx.forward_until(stage, |event| seen.push(event)).await;
        assert_eq!(output, "finished");
        assert_eq!(seen.len(), 4, "{seen:?}");
        assert_eq!(seen[3], ProgressEvent::Advance { done: 3 });
        outliving.note("after the end: dropped, not waited for");
    }
}
