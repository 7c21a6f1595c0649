//! Renders a stage's progress events for the command line.

use std::thread::JoinHandle;

use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::oneshot;

use crate::progress::{CancellationToken, Progress, ProgressEvent, Reporter};

/// The rendering thread and the sender whose events it draws.
pub struct ProgressDisplay {
    progress: Progress,
    finished: oneshot::Sender<()>,
    handle: JoinHandle<()>,
}

impl ProgressDisplay {
    /// Where a stage sends the events this display draws.
    pub fn progress(&self) -> Progress {
        self.progress.clone()
    }

    /// A reporter for work run outside the job framework (training a
    /// model from a file, the demo). Nothing on the command line cancels
    /// it: Ctrl-C ends the process.
    pub fn reporter(&self) -> Reporter {
        Reporter::new(self.progress(), CancellationToken::new())
    }

    /// The stage has returned: draw what it sent, then stop. Senders still
    /// alive do not hold this up.
    pub fn finish(self) {
        let _ = self.finished.send(());
        let _ = self.handle.join();
    }
}

pub(super) fn start(bar: bool) -> ProgressDisplay {
    let (progress, mut rx) = Progress::channel();
    let (finished, finished_rx) = oneshot::channel::<()>();
    let handle = std::thread::spawn(move || {
        // Waiting on the events and the end at once needs an executor;
        // a current-thread one without drivers costs next to nothing.
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().build() else {
            return;
        };
        let mut drawing = Drawing { bar, current: None };
        // Ends on `finish`, or when the display is dropped unfinished (a
        // command that returned early): either way, stop drawing.
        let _ = runtime.block_on(rx.forward_until(finished_rx, |event| drawing.draw(event)));
        if let Some(pb) = drawing.current.take() {
            pb.finish_and_clear();
        }
    });
    ProgressDisplay {
        progress,
        finished,
        handle,
    }
}

struct Drawing {
    /// Bars on a terminal; log lines otherwise.
    bar: bool,
    current: Option<ProgressBar>,
}

impl Drawing {
    fn draw(&mut self, event: ProgressEvent) {
        match event {
            ProgressEvent::Phase { name, total } => {
                if let Some(pb) = self.current.take() {
                    pb.finish_and_clear();
                }
                tracing::info!(phase = %name, total, "phase started");
                if self.bar {
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
                    self.current = Some(pb);
                }
            }
            ProgressEvent::Advance { done } => {
                if let Some(pb) = &self.current {
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
                if let Some(pb) = &self.current {
                    pb.set_position(u64::from(epoch));
                }
            }
            ProgressEvent::Note { message } => {
                tracing::info!("{message}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `finish` returns although a clone of the sender is still alive (it
    /// used to wait for every clone to be dropped, forever if one leaked).
    #[test]
    fn finish_does_not_wait_for_the_senders() {
        let display = start(false);
        let leaked = display.progress();
        leaked.phase("work", Some(1));
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            display.finish();
            let _ = done_tx.send(());
        });
        done_rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the display finished with a sender still alive");
        leaked.advance(1);
    }
}
