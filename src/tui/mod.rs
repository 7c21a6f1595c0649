//! The operator console (DESIGN §8): five live panes over the same store
//! and stage functions the CLI uses.
//!
//! Shape: [`app::App`] is the pure state (keys and background results in,
//! commands out); [`ui`] draws it; [`refresh`] loads pane data in one
//! background task (latest request wins, each load with a deadline);
//! [`runner`] runs stages, lifecycle changes and review decisions in
//! background tasks: progress comes back as events, and the loop keeps the
//! running job's [`CancellationToken`] to stop it. The loop
//! here merges terminal input, a tick, background events and SIGTERM /
//! SIGHUP, and redraws only when something changed. The render path never
//! awaits the database or the network.

pub mod app;
pub mod clipboard;
pub mod data;
pub mod event;
pub mod job;
pub mod keys;
pub mod refresh;
pub mod runner;
pub mod ui;

use std::time::{Duration, Instant};

use chrono::Utc;
use crossterm::event::{Event, EventStream};
use futures_util::StreamExt;
use ratatui::DefaultTerminal;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::progress::CancellationToken;
use crate::storage::Store;
use app::{App, Command};
use data::Pane;
use event::UiEvent;
use refresh::{Loader, RefreshRequest};
use runner::Runner;
use ui::theme::Theme;

/// How often panes reload and relative times move on.
const TICK: Duration = Duration::from_secs(1);
/// How often Label Studio is asked whether it is up (while its pane shows).
const PROBE_EVERY: Duration = Duration::from_secs(30);

/// Open the console on this process's terminal and run it until the
/// operator quits or SIGTERM / SIGHUP arrives. The terminal is restored on
/// every way out, panics included (ratatui's hook).
pub async fn run(store: Store, config: Config) -> Result<()> {
    let theme = Theme::from_env();
    let mut terminal = ratatui::try_init()
        .map_err(|err| Error::failure(format!("cannot set up the terminal: {err}")))?;
    let result = event_loop(&mut terminal, store, config, theme).await;
    ratatui::restore();
    result
}

async fn event_loop(
    terminal: &mut DefaultTerminal,
    store: Store,
    config: Config,
    theme: Theme,
) -> Result<()> {
    let io = |err: std::io::Error| Error::failure(format!("console: {err}"));
    let (events_tx, mut events) = mpsc::unbounded_channel::<UiEvent>();
    let (refresh_tx, refresh_rx) = watch::channel(RefreshRequest::default());
    let _refresher = refresh::spawn(
        Loader::new(store.clone(), config.clone()),
        refresh_rx,
        events_tx.clone(),
    );
    let runner = Runner::new(store, config.clone(), events_tx.clone());
    let mut app = App::new(Utc::now(), config.training.canary_traffic);
    app.read_only = config.console.read_only;
    app.redactor = crate::privacy::Redactor::new(&config.privacy);
    let mut keys = EventStream::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut sigterm = signal(SignalKind::terminate()).map_err(io)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(io)?;
    let mut loop_state = LoopState {
        seq: 0,
        refresh_tx,
        job: None,
        last_probe: None,
        config,
        events_tx,
    };
    let mut dirty = true;
    loop {
        if dirty {
            terminal
                .draw(|frame| ui::draw(frame, &app, &theme))
                .map_err(io)?;
            dirty = false;
        }
        let commands = tokio::select! {
            _ = tick.tick() => {
                app.now = Utc::now();
                dirty = true;
                vec![Command::Refresh]
            }
            input = keys.next() => match input {
                Some(Ok(Event::Key(key))) => {
                    dirty = true;
                    app.handle_key(key)
                }
                Some(Ok(Event::Resize(..))) => {
                    dirty = true;
                    Vec::new()
                }
                Some(Ok(_)) => Vec::new(),
                Some(Err(err)) => return Err(io(err)),
                None => break,
            },
            Some(event) = events.recv() => {
                dirty = true;
                // Coalesce a burst (progress, loads) into one frame.
                let mut commands = loop_state.apply(&mut app, event);
                while let Ok(event) = events.try_recv() {
                    commands.extend(loop_state.apply(&mut app, event));
                }
                commands
            }
            _ = sigterm.recv() => break,
            _ = sighup.recv() => break,
        };
        for command in commands {
            loop_state.execute(&app, &runner, command);
        }
        if app.quit {
            break;
        }
    }
    if let Some(job) = &loop_state.job {
        job.cancel();
    }
    Ok(())
}

/// The loop's handles: where refresh requests go and the running job.
struct LoopState {
    seq: u64,
    refresh_tx: watch::Sender<RefreshRequest>,
    /// Cancels the job started from the console.
    job: Option<CancellationToken>,
    last_probe: Option<Instant>,
    config: Config,
    events_tx: mpsc::UnboundedSender<UiEvent>,
}

impl LoopState {
    fn apply(&mut self, app: &mut App, event: UiEvent) -> Vec<Command> {
        if matches!(event, UiEvent::JobFinished { .. }) {
            self.job = None;
        }
        app.apply(event)
    }

    fn execute(&mut self, app: &App, runner: &Runner, command: Command) {
        match command {
            Command::Refresh => {
                self.seq += 1;
                self.refresh_tx.send_replace(RefreshRequest {
                    pane: app.pane,
                    seq: self.seq,
                });
                if app.pane == Pane::LabelStudio {
                    self.probe_label_studio();
                }
            }
            Command::Review { sample_id, verdict } => runner.review(sample_id, verdict),
            Command::Undo { sample_id } => runner.undo(sample_id),
            Command::Start(job) => {
                let cancel = CancellationToken::new();
                runner.start(job, cancel.clone());
                self.job = Some(cancel);
            }
            Command::CancelJob => {
                if let Some(job) = &self.job {
                    job.cancel();
                }
            }
            Command::LoadGap(gap) => runner.load_gap(gap),
            Command::LoadConversation(id) => runner.load_conversation(id),
            Command::Copy(text) => {
                // Between frames: the sequence draws nothing.
                if let Err(err) = clipboard::copy(&text) {
                    tracing::warn!("console: copying to the clipboard failed: {err}");
                }
            }
            Command::Quit => {}
        }
    }

    /// Network work: its own task, at most every [`PROBE_EVERY`].
    fn probe_label_studio(&mut self) {
        if self.last_probe.is_some_and(|at| at.elapsed() < PROBE_EVERY) {
            return;
        }
        self.last_probe = Some(Instant::now());
        let config = self.config.clone();
        let events = self.events_tx.clone();
        tokio::spawn(async move {
            if let Some(connection) = refresh::probe_label_studio(&config).await {
                let _ = events.send(UiEvent::Connection(connection));
            }
        });
    }
}
