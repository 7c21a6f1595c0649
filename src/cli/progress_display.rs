//! Renders a stage's progress events for the command line.

use std::thread::JoinHandle;

use indicatif::{ProgressBar, ProgressStyle};

use crate::progress::{ProgressEvent, Reporter};

/// The rendering thread; dropped or finished when the stage ends.
pub struct ProgressDisplay {
    handle: Option<JoinHandle<()>>,
}

impl ProgressDisplay {
    /// Wait for the last events to be drawn. The reporter (and all its
    /// clones) must have been dropped first, or this waits forever.
    pub fn finish(mut self) {
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

pub(super) fn start(bar: bool) -> (Reporter, ProgressDisplay) {
    let (reporter, mut rx) = Reporter::channel();
    let handle = std::thread::spawn(move || {
        let mut current: Option<ProgressBar> = None;
        while let Some(event) = rx.blocking_recv() {
            match event {
                ProgressEvent::Phase { name, total } => {
                    if let Some(pb) = current.take() {
                        pb.finish_and_clear();
                    }
                    tracing::info!(phase = %name, total, "phase started");
                    if bar {
                        let pb = match total {
                            Some(total) => ProgressBar::new(total).with_style(
                                ProgressStyle::with_template(
                                    "{msg:>12} [{bar:30}] {pos}/{len} ({eta})",
                                )
                                .expect("static template")
                                .progress_chars("=> "),
                            ),
                            None => ProgressBar::new_spinner(),
                        };
                        pb.set_message(name);
                        current = Some(pb);
                    }
                }
                ProgressEvent::Advance { done } => {
                    if let Some(pb) = &current {
                        pb.set_position(done);
                    }
                }
                ProgressEvent::Epoch {
                    epoch,
                    epochs,
                    loss,
                    validation_accuracy,
                } => {
                    tracing::info!(epoch, epochs, loss, validation_accuracy, "epoch finished");
                    if let Some(pb) = &current {
                        pb.set_position(u64::from(epoch));
                    }
                }
                ProgressEvent::Note { message } => {
                    tracing::info!("{message}");
                }
            }
        }
        if let Some(pb) = current.take() {
            pb.finish_and_clear();
        }
    });
    (
        reporter,
        ProgressDisplay {
            handle: Some(handle),
        },
    )
}
