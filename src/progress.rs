//! One progress type for every stage. A stage reports through a
//! [`Reporter`]; the CLI turns the events into an indicatif bar or log lines,
//! the console into a gauge. The reporter also carries the cancel flag that
//! long stages check between expensive steps.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::error::{Error, Result};

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

/// Sender side handed to a stage. Cloning is cheap; a silent reporter drops
/// every event (tests, nested calls).
#[derive(Debug, Clone, Default)]
pub struct Reporter {
    tx: Option<UnboundedSender<ProgressEvent>>,
    cancelled: Arc<AtomicBool>,
}

impl Reporter {
    /// A reporter nobody listens to.
    pub fn silent() -> Self {
        Self::default()
    }

    /// A reporter and the receiver its events arrive on.
    pub fn channel() -> (Self, UnboundedReceiver<ProgressEvent>) {
        let (tx, rx) = unbounded_channel();
        (
            Self {
                tx: Some(tx),
                cancelled: Arc::default(),
            },
            rx,
        )
    }

    /// A new reporter whose events arrive on the returned receiver (for a
    /// caller that wants to see them before passing them on) but which
    /// shares this reporter's cancel flag.
    pub fn intercept(&self) -> (Self, UnboundedReceiver<ProgressEvent>) {
        let (tx, rx) = unbounded_channel();
        (
            Self {
                tx: Some(tx),
                cancelled: Arc::clone(&self.cancelled),
            },
            rx,
        )
    }

    pub fn send(&self, event: ProgressEvent) {
        if let Some(tx) = &self.tx {
            // A receiver that went away (console closed) is not the stage's problem.
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

    /// Ask the stage to stop at its next check.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// Stages call this between expensive steps.
    pub fn check_cancelled(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::failure("cancelled by the operator"))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_arrive_in_order_and_cancel_is_shared() {
        let (reporter, mut rx) = Reporter::channel();
        let clone = reporter.clone();
        reporter.phase("export", Some(10));
        clone.advance(4);
        assert_eq!(
            rx.try_recv().unwrap(),
            ProgressEvent::Phase {
                name: "export".into(),
                total: Some(10)
            }
        );
        assert_eq!(rx.try_recv().unwrap(), ProgressEvent::Advance { done: 4 });
        assert!(reporter.check_cancelled().is_ok());
        clone.cancel();
        assert!(reporter.check_cancelled().is_err());
    }
}
