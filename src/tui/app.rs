//! The console's state and how keys and background results change it.
//! Pure: no terminal, no database. A key or an event updates the state and
//! returns the [`Command`]s the UI loop must carry out (refresh, record a
//! review, start a job), so every key is tested on this type alone.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind};

use super::data::*;
use super::event::UiEvent;
use super::job::Job;
use super::keys::{self, Action, Dialog};
use crate::capture::gaps::Gap;
use crate::domain::ModelStatus;
use crate::domain::ReviewVerdict;
use crate::privacy::Redactor;
use crate::progress::ProgressEvent;
use crate::review::decisions::short;
use crate::review::order::Queued;
use crate::run_words::counts_in_words;
use crate::storage::conversations::Conversation;
use crate::storage::jobs::JobRun;
use crate::storage::models::ModelVersion;

/// Whether a row with these fields passes `filter`: each of its words is
/// in one of them, ignoring case. An empty filter passes everything.
pub fn matches(filter: &str, fields: &[&str]) -> bool {
    let fields: Vec<String> = fields.iter().map(|f| f.to_lowercase()).collect();
    filter
        .to_lowercase()
        .split_whitespace()
        .all(|word| fields.iter().any(|f| f.contains(word)))
}

/// What the UI loop must do after a key or an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Reload the current pane now.
    Refresh,
    Review {
        sample_id: i64,
        verdict: ReviewVerdict,
    },
    Undo {
        sample_id: i64,
    },
    Start(Job),
    CancelJob,
    LoadGap(Gap),
    LoadConversation(i64),
    /// Put this text on the clipboard (OSC 52).
    Copy(String),
    Quit,
}

/// A dialog over the pane; while one is open it gets every key.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Overlay {
    #[default]
    None,
    Help,
    ChooseIntent {
        filter: String,
        selected: usize,
    },
    Confirm(Confirm),
    /// Promote `version`: type the traffic percentage (100 = production).
    Traffic {
        version: String,
        input: String,
    },
    JobMenu {
        selected: usize,
    },
    Gap(GapView),
    Conversation(ConversationView),
    /// A stage run in full: every count and the whole error.
    Run(Box<JobRun>),
    /// Typing the focused list's filter (applied as it is typed).
    Filter,
    /// `:` the command line, with completion over [`COMMANDS`].
    CommandLine {
        input: String,
        selected: usize,
    },
    /// `g`: typing what to jump to.
    GoTo {
        input: String,
    },
}

/// What the `:` command line runs, with its help; completion offers them.
pub const COMMANDS: &[(&str, &str)] = &[
    ("capture", "go to the Capture pane"),
    ("review", "go to the Review pane"),
    ("label-studio", "go to the Label Studio pane"),
    ("training", "go to the Training pane"),
    ("jobs", "go to the Jobs & logs pane"),
    ("daily-capture", "run daily capture (last 24 h)"),
    ("label-studio-sync", "sync with Label Studio now"),
    ("export", "export approved samples"),
    ("train", "weekly training now (asks first)"),
    ("canary-check", "check the canary now"),
    ("rollback", "roll back production (asks first)"),
    ("filter", "filter WORDS: filter the list"),
    (
        "goto",
        "goto ID: a conversation, s42 a sample, or a version",
    ),
    ("help", "the keys of this pane"),
    ("quit", "quit the console"),
];

/// The commands whose name starts with `input`'s first word.
pub fn completions(input: &str) -> Vec<(&'static str, &'static str)> {
    let word = input.split_whitespace().next().unwrap_or("");
    COMMANDS
        .iter()
        .copied()
        .filter(|(name, _)| name.starts_with(word))
        .collect()
}

impl Overlay {
    /// How the open dialog reads keys.
    pub fn dialog(&self) -> Dialog {
        match self {
            Overlay::None => Dialog::None,
            Overlay::ChooseIntent { .. }
            | Overlay::Traffic { .. }
            | Overlay::Filter
            | Overlay::CommandLine { .. }
            | Overlay::GoTo { .. } => Dialog::Typing,
            Overlay::Help
            | Overlay::Confirm(_)
            | Overlay::JobMenu { .. }
            | Overlay::Gap(_)
            | Overlay::Conversation(_)
            | Overlay::Run(_) => Dialog::Menu,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ConversationView {
    Loading(i64),
    Loaded(Box<ConversationDetail>),
    Failed(String),
}

/// Which list of the capture pane the arrows and Enter work on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CaptureList {
    #[default]
    Feed,
    Gaps,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Confirm {
    Start(Job),
    /// Quit although a job runs (it is cancelled).
    Quit,
}

#[derive(Debug, Clone, PartialEq)]
pub enum GapView {
    Loading(Gap),
    Loaded(GapDetail),
    Failed(String),
}

/// One finished epoch of a training run started from the console.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochPoint {
    pub epoch: u32,
    pub epochs: u32,
    pub loss: f32,
    pub accuracy: Option<f32>,
}

/// The job started from the console and what it has reported.
#[derive(Debug, Clone, PartialEq)]
pub struct JobView {
    pub job: Job,
    pub phase: Option<String>,
    pub total: Option<u64>,
    pub done: u64,
    pub note: Option<String>,
    pub cancelling: bool,
}

/// The status line's latest message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub ok: bool,
    pub text: String,
}

#[derive(Debug, Clone, Default)]
pub struct App {
    pub pane: Pane,
    /// The time panes are drawn against: the loop sets it each tick, tests fix it.
    pub now: DateTime<Utc>,
    pub capture: Option<CaptureData>,
    pub review: Option<ReviewData>,
    pub label_studio: Option<LabelStudioData>,
    pub training: Option<TrainingData>,
    pub jobs: Option<JobsData>,
    pub connection: Option<Connection>,
    /// The latest load that failed (slow or unreachable database).
    pub load_error: Option<(Pane, String)>,
    pub overlay: Overlay,
    /// Selection per pane (capture: the feed; review: queue; training: versions; jobs: runs).
    pub cursor: [usize; 5],
    /// The capture pane's list in focus, and its selected gap.
    pub capture_focus: CaptureList,
    pub gap_cursor: usize,
    /// Opened with `--read-only` / `[console] read_only`: whatever writes is refused.
    pub read_only: bool,
    /// `[privacy]`: a sample's text copied out (`Y` in Review) leaves
    /// Flywheel, so it is redacted as Label Studio tasks and exports are
    /// (the capture feed's texts are redacted when loaded).
    pub redactor: Redactor,
    /// Per pane, the filter of its list (`/`): rows whose words contain
    /// every word of it (case-insensitive).
    pub filters: [String; 5],
    /// Skipped this session: left in the queue, hidden until the console restarts.
    pub skipped: HashSet<i64>,
    /// Decided here and hidden until a load shows the queue without them.
    pub pending: HashSet<i64>,
    /// Samples decided in this session, newest last: what `u` undoes.
    pub decided: Vec<i64>,
    pub job: Option<JobView>,
    /// Epochs of the latest training started here (kept after it ends).
    pub epochs: Vec<EpochPoint>,
    pub message: Option<Message>,
    /// Proposed traffic when promoting a testing version.
    pub canary_traffic: u32,
    pub quit: bool,
}

impl App {
    pub fn new(now: DateTime<Utc>, canary_traffic: u32) -> Self {
        Self {
            now,
            canary_traffic,
            ..Self::default()
        }
    }

    /// The review queue as shown: without skipped and just-decided
    /// samples, and as the filter says.
    pub fn visible_queue(&self) -> Vec<&Queued> {
        let filter = &self.filters[Pane::Review.index()];
        self.review
            .as_ref()
            .map(|r| {
                r.queue
                    .iter()
                    .filter(|q| {
                        !self.skipped.contains(&q.sample.id) && !self.pending.contains(&q.sample.id)
                    })
                    .filter(|q| {
                        let s = &q.sample;
                        filter.trim().is_empty()
                            || matches(
                                filter,
                                &[
                                    &s.text,
                                    &s.intent,
                                    s.predicted_intent.as_deref().unwrap_or(""),
                                    s.language.as_deref().unwrap_or(""),
                                    s.predicted_by_version.as_deref().unwrap_or(""),
                                    s.review_status.as_str(),
                                    &q.ranked.reason.to_string(),
                                ],
                            )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The live feed as the filter shows it.
    pub fn visible_feed(&self) -> Vec<&Conversation> {
        let filter = &self.filters[Pane::Capture.index()];
        let Some(capture) = &self.capture else {
            return Vec::new();
        };
        capture
            .feed
            .iter()
            .filter(|c| {
                filter.trim().is_empty()
                    || matches(
                        filter,
                        &[
                            &c.user_message,
                            c.nlu_intent.as_deref().unwrap_or(""),
                            c.language.as_deref().unwrap_or(""),
                            c.model_version.as_deref().unwrap_or(""),
                            c.nlu_provider.as_deref().unwrap_or(""),
                            c.review_status.as_str(),
                            if c.fallback { "fallback" } else { "" },
                        ],
                    )
            })
            .collect()
    }

    /// The model versions as the filter shows them.
    pub fn visible_versions(&self) -> Vec<&ModelVersion> {
        let filter = &self.filters[Pane::Training.index()];
        self.training
            .iter()
            .flat_map(|t| t.versions.iter())
            .filter(|v| matches(filter, &[&v.version, v.status.as_str()]))
            .collect()
    }

    /// The stage runs as the filter shows them.
    pub fn visible_runs(&self) -> Vec<&JobRun> {
        let filter = &self.filters[Pane::Jobs.index()];
        self.jobs
            .iter()
            .flat_map(|j| j.runs.iter())
            .filter(|r| {
                if filter.trim().is_empty() {
                    return true;
                }
                let counts = r.counts.as_deref().map(counts_in_words);
                matches(
                    filter,
                    &[
                        r.stage.as_str(),
                        r.status.as_str(),
                        r.trigger.as_str(),
                        r.error.as_deref().unwrap_or(""),
                        counts.as_deref().unwrap_or(""),
                    ],
                )
            })
            .collect()
    }

    /// The filtered list of `pane` as (shown, of all), for its title.
    pub fn filter_count(&self, pane: Pane) -> Option<(usize, usize)> {
        if self.filters[pane.index()].is_empty() {
            return None;
        }
        let total = match pane {
            Pane::Capture => self.capture.as_ref().map_or(0, |c| c.feed.len()),
            Pane::Review => self.review.as_ref().map_or(0, |r| r.queue.len()),
            Pane::Training => self.training.as_ref().map_or(0, |t| t.versions.len()),
            Pane::Jobs => self.jobs.as_ref().map_or(0, |j| j.runs.len()),
            Pane::LabelStudio => return None,
        };
        Some((self.list_len(pane), total))
    }

    /// Intents matching the chooser's filter (case-insensitive substring).
    pub fn filtered_intents(&self, filter: &str) -> Vec<&str> {
        let needle = filter.to_lowercase();
        self.review
            .iter()
            .flat_map(|r| r.intents.iter())
            .filter(|i| i.to_lowercase().contains(&needle))
            .map(String::as_str)
            .collect()
    }

    pub fn selected(&self) -> usize {
        self.cursor[self.pane.index()]
    }

    fn list_len(&self, pane: Pane) -> usize {
        match pane {
            Pane::Capture => self.visible_feed().len(),
            Pane::Review => self.visible_queue().len(),
            Pane::LabelStudio => self.label_studio.as_ref().map_or(0, |l| l.syncs.len()),
            Pane::Training => self.visible_versions().len(),
            Pane::Jobs => self.visible_runs().len(),
        }
    }

    fn gap_count(&self) -> usize {
        self.capture.as_ref().map_or(0, |c| c.gaps.len())
    }

    fn clamp_cursors(&mut self) {
        for pane in Pane::ALL {
            let len = self.list_len(pane);
            let c = &mut self.cursor[pane.index()];
            *c = (*c).min(len.saturating_sub(1));
        }
        self.gap_cursor = self.gap_cursor.min(self.gap_count().saturating_sub(1));
    }

    fn say(&mut self, ok: bool, text: impl Into<String>) {
        self.message = Some(Message {
            ok,
            text: text.into(),
        });
    }

    /// A key press. Releases are ignored. A key bound in [`keys::BINDINGS`]
    /// does its action; with a dialog open, the dialog reads the others.
    pub fn handle_key(&mut self, key: KeyEvent) -> Vec<Command> {
        if key.kind == KeyEventKind::Release {
            return Vec::new();
        }
        let dialog = self.overlay.dialog();
        match keys::action_for(self.pane, dialog, &key) {
            Some(action) => self.perform(action, &key),
            None if dialog != Dialog::None => self.overlay_key(key),
            None => Vec::new(),
        }
    }

    /// Carry out a bound key's action; a read-only console refuses the
    /// ones that write, saying why.
    pub fn perform(&mut self, action: Action, key: &KeyEvent) -> Vec<Command> {
        let none = Vec::new;
        if self.read_only && action.writes() {
            let what = keys::BINDINGS
                .iter()
                .find(|b| b.action == Some(action))
                .map_or("that", |b| b.help);
            self.refuse_writing(what);
            return none();
        }
        match action {
            Action::QuitNow => {
                self.quit = true;
                vec![Command::Quit]
            }
            // A second q over "a job runs; quit?" means yes.
            Action::Quit if self.overlay == Overlay::Confirm(Confirm::Quit) => {
                self.quit = true;
                vec![Command::CancelJob, Command::Quit]
            }
            Action::Quit => {
                if self.job.is_some() {
                    self.overlay = Overlay::Confirm(Confirm::Quit);
                    none()
                } else {
                    self.quit = true;
                    vec![Command::Quit]
                }
            }
            Action::Help => {
                self.overlay = Overlay::Help;
                none()
            }
            Action::SwitchPane => {
                let step = if key.code == KeyCode::BackTab { 4 } else { 1 };
                self.switch(Pane::ALL[(self.pane.index() + step) % 5])
            }
            Action::GoToPane => match key.code {
                KeyCode::Char(c @ '1'..='5') => self.switch(Pane::ALL[c as usize - '1' as usize]),
                _ => none(),
            },
            Action::MoveSelection => {
                let up = matches!(key.code, KeyCode::Up | KeyCode::Char('k'));
                self.move_cursor(if up { -1 } else { 1 });
                none()
            }
            Action::Refresh => vec![Command::Refresh],
            Action::CancelJob => match &mut self.job {
                Some(job) => {
                    job.cancelling = true;
                    vec![Command::CancelJob]
                }
                None => {
                    self.say(false, "no job is running");
                    none()
                }
            },
            Action::Close => {
                if matches!(self.overlay, Overlay::Confirm(_)) {
                    self.say(true, "cancelled; nothing was done");
                }
                if self.overlay == Overlay::Filter {
                    self.filters[self.pane.index()].clear();
                    self.cursor[self.pane.index()] = 0;
                }
                self.overlay = Overlay::None;
                none()
            }
            Action::FocusList => {
                self.capture_focus = match self.capture_focus {
                    CaptureList::Feed => CaptureList::Gaps,
                    CaptureList::Gaps => CaptureList::Feed,
                };
                none()
            }
            Action::Open if self.capture_focus == CaptureList::Gaps => {
                let gap = self
                    .capture
                    .as_ref()
                    .and_then(|c| c.gaps.get(self.gap_cursor))
                    .cloned();
                match gap {
                    Some(gap) => {
                        self.overlay = Overlay::Gap(GapView::Loading(gap.clone()));
                        vec![Command::LoadGap(gap)]
                    }
                    None => {
                        self.say(false, "no capture gap in the last 48 h to drill into");
                        none()
                    }
                }
            }
            Action::Open => match self.selected_conversation() {
                Some(id) => {
                    self.overlay = Overlay::Conversation(ConversationView::Loading(id));
                    vec![Command::LoadConversation(id)]
                }
                None => {
                    self.say(false, "no conversation in the feed to open");
                    none()
                }
            },
            Action::ShowRun => {
                let run = self
                    .visible_runs()
                    .get(self.cursor[Pane::Jobs.index()])
                    .map(|r| (*r).clone());
                match run {
                    Some(run) => self.overlay = Overlay::Run(Box::new(run)),
                    // Nothing to show yet: Enter keeps offering the stages.
                    None if self.read_only => self.refuse_writing("run a stage from the menu"),
                    None => self.overlay = Overlay::JobMenu { selected: 0 },
                }
                none()
            }
            Action::CommandLine => {
                self.overlay = Overlay::CommandLine {
                    input: String::new(),
                    selected: 0,
                };
                none()
            }
            Action::GoTo => {
                self.overlay = Overlay::GoTo {
                    input: String::new(),
                };
                none()
            }
            Action::Filter => {
                if self.pane == Pane::LabelStudio {
                    self.say(false, "the Label Studio pane has no list to filter");
                } else {
                    self.overlay = Overlay::Filter;
                }
                none()
            }
            Action::CopyId | Action::CopyText => match self.copyable(action == Action::CopyText) {
                Some((what, text)) => {
                    self.say(true, format!("copied {what} to the clipboard (OSC 52)"));
                    vec![Command::Copy(text)]
                }
                None => {
                    self.say(false, "nothing selected to copy");
                    none()
                }
            },
            Action::Accept => self.decide(ReviewVerdict::Accept),
            Action::Reject => self.decide(ReviewVerdict::Reject),
            Action::ChooseIntent => {
                if self.current().is_some() {
                    self.overlay = Overlay::ChooseIntent {
                        filter: String::new(),
                        selected: 0,
                    };
                } else {
                    self.say(false, "the review queue is empty");
                }
                none()
            }
            Action::Skip => {
                if let Some(q) = self.current() {
                    let (id, text) = (q.sample.id, short(&q.sample.text));
                    self.skipped.insert(id);
                    self.say(true, format!("skipped “{text}”; it stays in the queue"));
                    self.clamp_cursors();
                } else {
                    self.say(false, "the review queue is empty");
                }
                none()
            }
            Action::Undo => match self.decided.pop() {
                Some(sample_id) => {
                    self.pending.remove(&sample_id);
                    vec![Command::Undo { sample_id }]
                }
                None => {
                    self.say(false, "nothing to undo in this session");
                    none()
                }
            },
            Action::SyncNow => self.start(Job::LabelStudioSync),
            Action::CheckCanary => self.start(Job::CanaryCheck),
            Action::TrainNow => {
                self.overlay = Overlay::Confirm(Confirm::Start(Job::TrainNow));
                none()
            }
            Action::RollBack => {
                self.overlay = Overlay::Confirm(Confirm::Start(Job::Rollback));
                none()
            }
            Action::Promote => {
                self.ask_promotion();
                none()
            }
            Action::JobMenu => {
                self.overlay = Overlay::JobMenu { selected: 0 };
                none()
            }
        }
    }

    fn switch(&mut self, pane: Pane) -> Vec<Command> {
        self.pane = pane;
        vec![Command::Refresh]
    }

    fn move_cursor(&mut self, delta: isize) {
        if self.pane == Pane::Capture && self.capture_focus == CaptureList::Gaps {
            let len = self.gap_count();
            self.gap_cursor = self
                .gap_cursor
                .saturating_add_signed(delta)
                .min(len.saturating_sub(1));
            return;
        }
        let len = self.list_len(self.pane);
        let c = &mut self.cursor[self.pane.index()];
        *c = c.saturating_add_signed(delta).min(len.saturating_sub(1));
    }

    /// Run a command of the `:` line (its name, or a prefix only one has).
    fn run_command(&mut self, line: &str) -> Vec<Command> {
        let mut words = line.split_whitespace();
        let word = words.next().unwrap_or("");
        let rest = words.collect::<Vec<_>>().join(" ");
        let name = match completions(word).as_slice() {
            _ if COMMANDS.iter().any(|(n, _)| *n == word) => word.to_string(),
            [(only, _)] => only.to_string(),
            [] => {
                self.say(false, format!("no command “{word}”; : then Tab lists them"));
                return Vec::new();
            }
            many => {
                let names: Vec<&str> = many.iter().map(|(n, _)| *n).collect();
                self.say(false, format!("“{word}” could be {}", names.join(", ")));
                return Vec::new();
            }
        };
        let key = KeyEvent::from(KeyCode::Null);
        match name.as_str() {
            "capture" => self.switch(Pane::Capture),
            "review" => self.switch(Pane::Review),
            "label-studio" => self.switch(Pane::LabelStudio),
            "training" => self.switch(Pane::Training),
            "jobs" => self.switch(Pane::Jobs),
            "daily-capture" => self.start(Job::DailyCapture),
            "export" => self.start(Job::Export),
            "label-studio-sync" => self.perform(Action::SyncNow, &key),
            "train" => self.perform(Action::TrainNow, &key),
            "canary-check" => self.perform(Action::CheckCanary, &key),
            "rollback" => self.perform(Action::RollBack, &key),
            "filter" => {
                self.filters[self.pane.index()] = rest;
                self.cursor[self.pane.index()] = 0;
                Vec::new()
            }
            "goto" => self.go_to(&rest),
            "help" => self.perform(Action::Help, &key),
            _ => self.perform(Action::Quit, &key),
        }
    }

    /// Jump to `target`: digits (or `c` and digits) a conversation, `s` and
    /// digits a sample in the review queue, anything else a model version.
    fn go_to(&mut self, target: &str) -> Vec<Command> {
        let target = target.trim();
        let number = |prefix: char| {
            target
                .strip_prefix(prefix)
                .unwrap_or(target)
                .parse::<i64>()
                .ok()
        };
        if target.is_empty() {
            self.say(
                false,
                "goto what? a conversation id, s42 for a sample, or a version",
            );
            return Vec::new();
        }
        if let Some(id) = number('c').filter(|_| !target.starts_with('s')) {
            self.overlay = Overlay::Conversation(ConversationView::Loading(id));
            return vec![Command::LoadConversation(id)];
        }
        if let (true, Some(id)) = (target.starts_with('s'), number('s')) {
            self.filters[Pane::Review.index()].clear();
            let at = self.visible_queue().iter().position(|q| q.sample.id == id);
            return match at {
                Some(at) => {
                    self.cursor[Pane::Review.index()] = at;
                    self.switch(Pane::Review)
                }
                None => {
                    self.say(
                        false,
                        format!("sample {id} is not in the review queue's head (its first 100)"),
                    );
                    Vec::new()
                }
            };
        }
        self.filters[Pane::Training.index()].clear();
        let at = self
            .visible_versions()
            .iter()
            .position(|v| v.version == target)
            .or_else(|| {
                self.visible_versions()
                    .iter()
                    .position(|v| v.version.contains(target))
            });
        match at {
            Some(at) => {
                self.cursor[Pane::Training.index()] = at;
                self.switch(Pane::Training)
            }
            None => {
                self.say(false, format!("no model version matches “{target}”"));
                Vec::new()
            }
        }
    }

    fn refuse_writing(&mut self, what: &str) {
        self.say(
            false,
            format!(
                "read-only console: “{what}” writes, so it is refused (--read-only / [console] read_only)"
            ),
        );
    }

    /// The id of the conversation selected in the live feed.
    pub fn selected_conversation(&self) -> Option<i64> {
        self.visible_feed()
            .get(self.cursor[Pane::Capture.index()])
            .map(|c| c.id)
    }

    /// What `y` (the id) or `Y` (the text) copies from the selected row, and
    /// how the confirmation names it.
    fn copyable(&self, text: bool) -> Option<(String, String)> {
        let cursor = self.selected();
        let run = |r: &JobRun| {
            if text {
                let words = r
                    .error
                    .clone()
                    .or_else(|| r.counts.as_deref().map(counts_in_words))
                    .unwrap_or_default();
                (format!("the counts of run {}", r.id), words)
            } else {
                (format!("run id {}", r.id), r.id.to_string())
            }
        };
        match self.pane {
            Pane::Capture if self.capture_focus == CaptureList::Gaps => {
                let g = self.capture.as_ref()?.gaps.get(self.gap_cursor)?;
                let span = format!("{} – {}", g.start.0.to_rfc3339(), g.end.0.to_rfc3339());
                Some(("the gap's time span".into(), span))
            }
            Pane::Capture => {
                let c = *self.visible_feed().get(cursor)?;
                Some(if text {
                    (
                        format!("the text of conversation {}", c.id),
                        c.user_message.clone(),
                    )
                } else {
                    (format!("conversation id {}", c.id), c.id.to_string())
                })
            }
            Pane::Review => {
                let s = &self.current()?.sample;
                Some(if text {
                    (
                        format!("the text of sample {}", s.id),
                        self.redactor.redact(&s.text).into_owned(),
                    )
                } else {
                    (format!("sample id {}", s.id), s.id.to_string())
                })
            }
            Pane::LabelStudio => self.label_studio.as_ref()?.syncs.get(cursor).map(run),
            Pane::Training => {
                let v = *self.visible_versions().get(cursor)?;
                Some((format!("version {}", v.version), v.version.clone()))
            }
            Pane::Jobs => self.visible_runs().get(cursor).map(|r| run(r)),
        }
    }

    /// `p` on a testing or canary version: ask its traffic share.
    fn ask_promotion(&mut self) {
        let version = self
            .visible_versions()
            .get(self.selected())
            .map(|v| (v.version.clone(), v.status, v.traffic_percentage));
        match version {
            Some((version, status, traffic))
                if matches!(status, ModelStatus::Testing | ModelStatus::Canary) =>
            {
                let proposal = if status == ModelStatus::Canary {
                    100
                } else {
                    self.canary_traffic.max(traffic.max(0) as u32)
                };
                self.overlay = Overlay::Traffic {
                    version,
                    input: proposal.to_string(),
                };
            }
            Some((version, status, _)) => self.say(
                false,
                format!("{version} is {status}; only testing and canary versions can be promoted"),
            ),
            None => self.say(false, "no model version selected"),
        }
    }

    fn current(&self) -> Option<&Queued> {
        let cursor = self.cursor[Pane::Review.index()];
        self.visible_queue().get(cursor).copied()
    }

    fn decide(&mut self, verdict: ReviewVerdict) -> Vec<Command> {
        if self.read_only {
            self.refuse_writing("record a review decision");
            return Vec::new();
        }
        let Some(current) = self.current() else {
            self.say(false, "the review queue is empty");
            return Vec::new();
        };
        let sample_id = current.sample.id;
        // Accepting records the intent shown, not whatever the sample
        // carries when the write lands: a re-judge may change the
        // prediction in between, and a suspect's accept confirms its stored
        // label whatever a model once predicted for it. Choosing the
        // predicted intent records the same as accepting it.
        let verdict = match verdict {
            ReviewVerdict::Accept => ReviewVerdict::Choose(current.sample.intent.clone()),
            other => other,
        };
        self.pending.insert(sample_id);
        self.decided.push(sample_id);
        self.clamp_cursors();
        vec![Command::Review { sample_id, verdict }]
    }

    fn start(&mut self, job: Job) -> Vec<Command> {
        if self.read_only {
            self.refuse_writing(&job.label());
            return Vec::new();
        }
        if let Some(running) = &self.job {
            let text = format!("{} is still running; x cancels it", running.job.label());
            self.say(false, text);
            return Vec::new();
        }
        if job == Job::LabelStudioSync
            && let Some(missing) = self
                .label_studio
                .as_ref()
                .and_then(|l| l.missing_settings.clone())
        {
            self.say(
                false,
                format!("Label Studio is not configured: set {missing}"),
            );
            return Vec::new();
        }
        if job == Job::TrainNow {
            self.epochs.clear();
        }
        self.job = Some(JobView {
            job: job.clone(),
            phase: None,
            total: None,
            done: 0,
            note: None,
            cancelling: false,
        });
        self.say(true, format!("started: {}", job.label()));
        vec![Command::Start(job)]
    }

    fn overlay_key(&mut self, key: KeyEvent) -> Vec<Command> {
        let overlay = std::mem::take(&mut self.overlay);
        let keep = |app: &mut App, o: Overlay| {
            app.overlay = o;
            Vec::new()
        };
        match overlay {
            Overlay::None => Vec::new(),
            Overlay::GoTo { mut input } => match key.code {
                KeyCode::Enter => self.go_to(&input),
                KeyCode::Backspace => {
                    input.pop();
                    keep(self, Overlay::GoTo { input })
                }
                KeyCode::Char(c) => {
                    input.push(c);
                    keep(self, Overlay::GoTo { input })
                }
                _ => keep(self, Overlay::GoTo { input }),
            },
            Overlay::CommandLine {
                mut input,
                mut selected,
            } => {
                let offered = completions(&input);
                match key.code {
                    KeyCode::Enter => {
                        // A partly typed name runs the completion shown.
                        let line = match offered.get(selected) {
                            Some((name, _)) if !input.contains(' ') => name.to_string(),
                            _ => input,
                        };
                        return self.run_command(&line);
                    }
                    KeyCode::Tab => {
                        if let Some((name, _)) = offered.get(selected) {
                            input = format!("{name} ");
                            selected = 0;
                        }
                    }
                    KeyCode::Down => selected = (selected + 1).min(offered.len().saturating_sub(1)),
                    KeyCode::Up => selected = selected.saturating_sub(1),
                    KeyCode::Backspace => {
                        input.pop();
                        selected = 0;
                    }
                    KeyCode::Char(c) => {
                        input.push(c);
                        selected = 0;
                    }
                    _ => {}
                }
                keep(self, Overlay::CommandLine { input, selected })
            }
            Overlay::Filter => {
                let filter = &mut self.filters[self.pane.index()];
                match key.code {
                    // Enter keeps the filter; Esc (a bound key) clears it.
                    KeyCode::Enter => return Vec::new(),
                    KeyCode::Backspace => {
                        filter.pop();
                    }
                    KeyCode::Char(c) => filter.push(c),
                    _ => {}
                }
                self.cursor[self.pane.index()] = 0;
                keep(self, Overlay::Filter)
            }
            // Any key closes the help.
            Overlay::Help => Vec::new(),
            Overlay::Gap(_) | Overlay::Conversation(_) | Overlay::Run(_)
                if key.code == KeyCode::Enter =>
            {
                Vec::new()
            }
            view @ (Overlay::Gap(_) | Overlay::Conversation(_) | Overlay::Run(_)) => {
                keep(self, view)
            }
            Overlay::Confirm(confirm) => match key.code {
                KeyCode::Char('y') | KeyCode::Enter => match confirm {
                    Confirm::Start(job) => self.start(job),
                    Confirm::Quit => {
                        self.quit = true;
                        vec![Command::CancelJob, Command::Quit]
                    }
                },
                KeyCode::Char('n') => {
                    self.say(true, "cancelled; nothing was done");
                    Vec::new()
                }
                _ => keep(self, Overlay::Confirm(confirm)),
            },
            Overlay::Traffic { version, mut input } => match key.code {
                KeyCode::Char(c) if c.is_ascii_digit() && input.len() < 3 => {
                    input.push(c);
                    keep(self, Overlay::Traffic { version, input })
                }
                KeyCode::Backspace => {
                    input.pop();
                    keep(self, Overlay::Traffic { version, input })
                }
                KeyCode::Enter => match input.parse::<u32>() {
                    Ok(traffic @ 1..=100) => {
                        self.overlay =
                            Overlay::Confirm(Confirm::Start(Job::Promote { version, traffic }));
                        Vec::new()
                    }
                    _ => {
                        self.say(
                            false,
                            "traffic must be 1–99 % for a canary, or 100 for production",
                        );
                        keep(self, Overlay::Traffic { version, input })
                    }
                },
                _ => keep(self, Overlay::Traffic { version, input }),
            },
            Overlay::JobMenu { selected } => match key.code {
                KeyCode::Down | KeyCode::Char('j') => keep(
                    self,
                    Overlay::JobMenu {
                        selected: (selected + 1).min(Job::MENU.len() - 1),
                    },
                ),
                KeyCode::Up | KeyCode::Char('k') => keep(
                    self,
                    Overlay::JobMenu {
                        selected: selected.saturating_sub(1),
                    },
                ),
                KeyCode::Enter => {
                    let job = Job::MENU[selected].clone();
                    self.start(job)
                }
                _ => keep(self, Overlay::JobMenu { selected }),
            },
            Overlay::ChooseIntent {
                mut filter,
                mut selected,
            } => match key.code {
                KeyCode::Enter => {
                    let intent = self
                        .filtered_intents(&filter)
                        .get(selected)
                        .map(|s| s.to_string())
                        // An intent nobody has used yet: take what was typed.
                        .or_else(|| (!filter.trim().is_empty()).then(|| filter.trim().to_string()));
                    match intent {
                        Some(intent) => self.decide(ReviewVerdict::Choose(intent)),
                        None => keep(self, Overlay::ChooseIntent { filter, selected }),
                    }
                }
                KeyCode::Down => {
                    let len = self.filtered_intents(&filter).len();
                    selected = (selected + 1).min(len.saturating_sub(1));
                    keep(self, Overlay::ChooseIntent { filter, selected })
                }
                KeyCode::Up => {
                    selected = selected.saturating_sub(1);
                    keep(self, Overlay::ChooseIntent { filter, selected })
                }
                KeyCode::Backspace => {
                    filter.pop();
                    keep(
                        self,
                        Overlay::ChooseIntent {
                            filter,
                            selected: 0,
                        },
                    )
                }
                KeyCode::Char(c) => {
                    filter.push(c);
                    keep(
                        self,
                        Overlay::ChooseIntent {
                            filter,
                            selected: 0,
                        },
                    )
                }
                _ => keep(self, Overlay::ChooseIntent { filter, selected }),
            },
        }
    }

    /// A result or progress from a background task.
    pub fn apply(&mut self, event: UiEvent) -> Vec<Command> {
        match event {
            UiEvent::Loaded { data, at: _ } => {
                if self
                    .load_error
                    .as_ref()
                    .is_some_and(|(p, _)| *p == data.pane())
                {
                    self.load_error = None;
                }
                match data {
                    PaneData::Capture(d) => self.capture = Some(d),
                    PaneData::Review(d) => {
                        let present: HashSet<i64> = d.queue.iter().map(|q| q.sample.id).collect();
                        self.pending.retain(|id| present.contains(id));
                        self.review = Some(d);
                    }
                    PaneData::LabelStudio(d) => self.label_studio = Some(d),
                    PaneData::Training(d) => self.training = Some(d),
                    PaneData::Jobs(d) => self.jobs = Some(d),
                }
                self.clamp_cursors();
                Vec::new()
            }
            UiEvent::LoadFailed { pane, message } => {
                self.load_error = Some((pane, message));
                Vec::new()
            }
            UiEvent::Connection(connection) => {
                self.connection = Some(connection);
                Vec::new()
            }
            UiEvent::GapLoaded(result) => {
                if matches!(self.overlay, Overlay::Gap(GapView::Loading(_))) {
                    self.overlay = Overlay::Gap(match result {
                        Ok(detail) => GapView::Loaded(detail),
                        Err(err) => GapView::Failed(err),
                    });
                }
                Vec::new()
            }
            UiEvent::ConversationLoaded(result) => {
                if matches!(
                    self.overlay,
                    Overlay::Conversation(ConversationView::Loading(_))
                ) {
                    self.overlay = Overlay::Conversation(match result {
                        Ok(detail) => ConversationView::Loaded(detail),
                        Err(err) => ConversationView::Failed(err),
                    });
                }
                Vec::new()
            }
            UiEvent::Reviewed { sample_id, result } => {
                match result {
                    Ok(text) => self.say(true, text),
                    Err(err) => {
                        self.pending.remove(&sample_id);
                        self.decided.retain(|id| *id != sample_id);
                        self.say(false, err);
                    }
                }
                vec![Command::Refresh]
            }
            UiEvent::Undone { sample_id, result } => {
                match result {
                    Ok(text) => {
                        self.skipped.remove(&sample_id);
                        self.say(true, text);
                    }
                    Err(err) => self.say(false, err),
                }
                vec![Command::Refresh]
            }
            UiEvent::Progress(event) => {
                let Some(job) = &mut self.job else {
                    return Vec::new();
                };
                match event {
                    ProgressEvent::Phase { name, total } => {
                        job.phase = Some(name);
                        job.total = total;
                        job.done = 0;
                        vec![Command::Refresh]
                    }
                    ProgressEvent::Advance { done } => {
                        job.done = done;
                        Vec::new()
                    }
                    ProgressEvent::Epoch {
                        epoch,
                        epochs,
                        loss,
                        validation_accuracy: accuracy,
                    } => {
                        self.epochs.push(EpochPoint {
                            epoch,
                            epochs,
                            loss,
                            accuracy,
                        });
                        vec![Command::Refresh]
                    }
                    ProgressEvent::Note { message } => {
                        job.note = Some(message);
                        Vec::new()
                    }
                }
            }
            UiEvent::JobFinished { job, result } => {
                self.job = None;
                match result {
                    Ok(text) => self.say(true, text),
                    Err(err) => self.say(false, format!("{} failed: {err}", job.label())),
                }
                vec![Command::Refresh]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::WaitingPlace;
    use crate::storage::Timestamp;
    use crate::storage::samples::Sample;
    use crate::storage::waiting::{Waiting, WaitingBucket};
    use crate::tui::keys::Scope;
    use crossterm::event::KeyModifiers;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn ch(c: char) -> KeyEvent {
        key(KeyCode::Char(c))
    }

    /// `sample` ranked at its id.
    fn queued(id: i64, text: &str) -> Queued {
        let sample = sample(id, text);
        Queued {
            ranked: crate::review::order::Ranked {
                rank: id as usize,
                item: crate::storage::waiting::WaitingItem {
                    sample_id: id,
                    normalized_text: sample.normalized_text.clone(),
                    intent: sample.intent.clone(),
                    language: sample.language.clone(),
                    confidence: sample.confidence,
                    priority: sample.priority,
                    occurrences: sample.occurrences,
                    place: WaitingPlace::Here,
                    audit_at: None,
                    has_task: false,
                    suggested_intent: None,
                    suspect_score: None,
                },
                score: Some(0.5),
                reason: crate::review::value::Reason::Uncertain {
                    confidence: sample.confidence,
                },
            },
            sample,
        }
    }

    fn sample(id: i64, text: &str) -> Sample {
        Sample {
            id,
            text: text.into(),
            normalized_text: text.into(),
            intent: "refund".into(),
            language: Some("en".into()),
            source: crate::domain::Provenance::Auto,
            confidence: Some(0.5),
            review_status: crate::domain::ReviewStatus::NeedsReview,
            priority: 2,
            occurrences: 1,
            predicted_intent: Some("refund".into()),
            predicted_by_version: Some("router-v1.0.0".into()),
            corrected_from: None,
            annotator: None,
            conversation_id: None,
            model_version_target: None,
            created_at: Timestamp::now(),
            updated_at: Timestamp::now(),
            reviewed_at: None,
        }
    }

    fn review_app() -> App {
        let mut app = App::new(Utc::now(), 10);
        app.apply(UiEvent::Loaded {
            data: PaneData::Review(ReviewData {
                queue: vec![queued(1, "one"), queued(2, "two"), queued(3, "three")],
                waiting: Waiting {
                    buckets: vec![WaitingBucket {
                        place: WaitingPlace::Here,
                        priority: 2,
                        kind: crate::domain::WaitingKind::Review,
                        count: 3,
                    }],
                    urgent_priority: 2,
                },
                intents: vec!["greeting".into(), "refund".into(), "order_status".into()],
                audits: 0,
            }),
            at: Utc::now(),
        });
        app.pane = Pane::Review;
        app
    }

    #[test]
    fn tab_numbers_and_q_switch_and_quit() {
        let mut app = App::new(Utc::now(), 10);
        assert_eq!(app.handle_key(key(KeyCode::Tab)), vec![Command::Refresh]);
        assert_eq!(app.pane, Pane::Review);
        app.handle_key(key(KeyCode::BackTab));
        app.handle_key(key(KeyCode::BackTab));
        assert_eq!(app.pane, Pane::Jobs);
        app.handle_key(ch('3'));
        assert_eq!(app.pane, Pane::LabelStudio);
        app.handle_key(ch('?'));
        assert_eq!(app.overlay, Overlay::Help);
        // Any key but q closes the help, and does nothing else.
        assert!(app.handle_key(ch('a')).is_empty());
        assert_eq!(app.overlay, Overlay::None);
        assert!(!app.quit);
        // q quits from the help too.
        app.handle_key(ch('?'));
        assert_eq!(app.handle_key(ch('q')), vec![Command::Quit]);
        assert!(app.quit);
    }

    #[test]
    fn key_releases_are_ignored_and_ctrl_c_quits_from_a_dialog() {
        let mut app = review_app();
        let mut release = ch('a');
        release.kind = KeyEventKind::Release;
        assert!(app.handle_key(release).is_empty());
        assert!(app.pending.is_empty());
        app.overlay = Overlay::Help;
        let commands = app.handle_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
        assert_eq!(commands, vec![Command::Quit]);
    }

    #[test]
    fn accept_reject_hide_the_sample_and_undo_brings_back_the_last() {
        let mut app = review_app();
        // Accept records the intent shown.
        assert_eq!(
            app.handle_key(ch('a')),
            vec![Command::Review {
                sample_id: 1,
                verdict: ReviewVerdict::Choose("refund".into())
            }]
        );
        assert_eq!(app.visible_queue()[0].sample.id, 2);
        assert_eq!(
            app.handle_key(ch('r')),
            vec![Command::Review {
                sample_id: 2,
                verdict: ReviewVerdict::Reject
            }]
        );
        assert_eq!(app.visible_queue().len(), 1);
        assert_eq!(
            app.handle_key(ch('u')),
            vec![Command::Undo { sample_id: 2 }]
        );
        assert_eq!(app.visible_queue().len(), 2);
        assert_eq!(
            app.handle_key(ch('u')),
            vec![Command::Undo { sample_id: 1 }]
        );
        assert!(app.handle_key(ch('u')).is_empty());
        assert!(!app.message.as_ref().unwrap().ok);
    }

    #[test]
    fn skip_leaves_the_sample_in_the_queue_without_a_decision() {
        let mut app = review_app();
        assert!(app.handle_key(ch('s')).is_empty());
        assert_eq!(app.visible_queue()[0].sample.id, 2);
        assert!(app.decided.is_empty(), "a skip is not a decision");
    }

    #[test]
    fn choose_filters_intents_as_you_type_and_records_the_choice() {
        let mut app = review_app();
        app.handle_key(key(KeyCode::Down));
        app.handle_key(ch('c'));
        for c in "ord".chars() {
            app.handle_key(ch(c));
        }
        assert_eq!(app.filtered_intents("ord"), vec!["order_status"]);
        assert_eq!(
            app.handle_key(key(KeyCode::Enter)),
            vec![Command::Review {
                sample_id: 2,
                verdict: ReviewVerdict::Choose("order_status".into())
            }]
        );
        assert_eq!(app.overlay, Overlay::None);
        // Escape abandons without deciding; typed keys do not leak to the pane.
        app.handle_key(ch('c'));
        app.handle_key(ch('q'));
        app.handle_key(key(KeyCode::Esc));
        assert!(!app.quit);
        assert_eq!(app.decided, vec![2]);
    }

    #[test]
    fn accepting_a_suspect_confirms_its_stored_label() {
        let mut app = review_app();
        let mut suspect = queued(4, "four");
        suspect.sample.intent = "greeting".into();
        suspect.sample.review_status = crate::domain::ReviewStatus::Approved;
        suspect.ranked.item.intent = "greeting".into();
        suspect.ranked.item.suggested_intent = Some("refund".into());
        suspect.ranked.item.suspect_score = Some(0.8);
        if let Some(review) = app.review.as_mut() {
            review.queue.insert(0, suspect);
        }
        // The model once predicted "refund"; accepting keeps "greeting".
        assert_eq!(
            app.handle_key(ch('a')),
            vec![Command::Review {
                sample_id: 4,
                verdict: ReviewVerdict::Choose("greeting".into())
            }]
        );
        // Not a suspect: its prediction, as shown.
        assert_eq!(
            app.handle_key(ch('a')),
            vec![Command::Review {
                sample_id: 1,
                verdict: ReviewVerdict::Choose("refund".into())
            }]
        );
    }

    #[test]
    fn a_failed_decision_puts_the_sample_back() {
        let mut app = review_app();
        app.handle_key(ch('a'));
        let commands = app.apply(UiEvent::Reviewed {
            sample_id: 1,
            result: Err("database unavailable".into()),
        });
        assert_eq!(commands, vec![Command::Refresh]);
        assert_eq!(app.visible_queue()[0].sample.id, 1);
        assert!(app.decided.is_empty());
        assert!(!app.message.as_ref().unwrap().ok);
    }

    #[test]
    fn a_reload_without_the_decided_sample_forgets_it() {
        let mut app = review_app();
        app.handle_key(ch('a'));
        app.apply(UiEvent::Loaded {
            data: PaneData::Review(ReviewData {
                queue: vec![queued(2, "two"), queued(3, "three")],
                ..Default::default()
            }),
            at: Utc::now(),
        });
        assert!(app.pending.is_empty());
        assert_eq!(app.decided, vec![1], "still undoable");
    }

    #[test]
    fn promote_asks_traffic_then_confirmation() {
        let mut app = App::new(Utc::now(), 10);
        let version = |v: &str, status: &str| {
            crate::storage::models::ModelVersion::example(v, status.parse().unwrap(), 0)
        };
        app.apply(UiEvent::Loaded {
            data: PaneData::Training(TrainingData {
                versions: vec![
                    version("router-v1.1.0", "testing"),
                    version("router-v1.0.0", "production"),
                ],
                ..Default::default()
            }),
            at: Utc::now(),
        });
        app.pane = Pane::Training;
        app.handle_key(ch('p'));
        assert_eq!(
            app.overlay,
            Overlay::Traffic {
                version: "router-v1.1.0".into(),
                input: "10".into()
            }
        );
        app.handle_key(key(KeyCode::Backspace));
        app.handle_key(key(KeyCode::Backspace));
        app.handle_key(ch('2'));
        app.handle_key(ch('5'));
        assert!(app.handle_key(key(KeyCode::Enter)).is_empty());
        let job = Job::Promote {
            version: "router-v1.1.0".into(),
            traffic: 25,
        };
        assert_eq!(app.overlay, Overlay::Confirm(Confirm::Start(job.clone())));
        assert_eq!(app.handle_key(ch('y')), vec![Command::Start(job)]);
        assert!(app.job.is_some());

        // Production cannot be promoted; the status line says why.
        app.job = None;
        app.handle_key(key(KeyCode::Down));
        assert!(app.handle_key(ch('p')).is_empty());
        assert_eq!(app.overlay, Overlay::None);
        assert!(
            app.message
                .as_ref()
                .unwrap()
                .text
                .contains("only testing and canary")
        );
    }

    #[test]
    fn capital_c_in_the_training_pane_runs_the_canary_check() {
        let mut app = App::new(Utc::now(), 10);
        app.pane = Pane::Review;
        assert!(
            !app.handle_key(ch('C'))
                .contains(&Command::Start(Job::CanaryCheck))
        );
        app.pane = Pane::Training;
        assert_eq!(
            app.handle_key(ch('C')),
            vec![Command::Start(Job::CanaryCheck)]
        );
    }

    #[test]
    fn confirmations_can_be_declined_and_one_job_runs_at_a_time() {
        let mut app = App::new(Utc::now(), 10);
        app.pane = Pane::Training;
        app.handle_key(ch('b'));
        assert!(app.handle_key(ch('n')).is_empty());
        assert!(app.job.is_none());
        app.handle_key(ch('t'));
        assert_eq!(
            app.handle_key(key(KeyCode::Enter)),
            vec![Command::Start(Job::TrainNow)]
        );
        app.pane = Pane::Jobs;
        app.handle_key(key(KeyCode::Enter));
        assert!(
            app.handle_key(key(KeyCode::Enter)).is_empty(),
            "refused while training runs"
        );
        assert!(app.message.as_ref().unwrap().text.contains("still running"));
        // Quitting with a job running asks first, and cancels it.
        app.handle_key(ch('q'));
        assert_eq!(app.overlay, Overlay::Confirm(Confirm::Quit));
        assert_eq!(
            app.handle_key(ch('y')),
            vec![Command::CancelJob, Command::Quit]
        );
    }

    #[test]
    fn progress_fills_the_job_and_the_epoch_chart_and_finish_clears_it() {
        let mut app = App::new(Utc::now(), 10);
        app.pane = Pane::Training;
        app.handle_key(ch('t'));
        app.handle_key(ch('y'));
        app.apply(UiEvent::Progress(ProgressEvent::Phase {
            name: "train".into(),
            total: Some(3),
        }));
        app.apply(UiEvent::Progress(ProgressEvent::Advance { done: 2 }));
        app.apply(UiEvent::Progress(ProgressEvent::Epoch {
            epoch: 1,
            epochs: 3,
            loss: 0.9,
            validation_accuracy: Some(0.7),
        }));
        let job = app.job.as_ref().unwrap();
        assert_eq!(
            (job.phase.as_deref(), job.total, job.done),
            (Some("train"), Some(3), 2)
        );
        assert_eq!(app.epochs.len(), 1);
        assert_eq!(app.handle_key(ch('x')), vec![Command::CancelJob]);
        assert!(app.job.as_ref().unwrap().cancelling);
        app.apply(UiEvent::JobFinished {
            job: Job::TrainNow,
            result: Err("cancelled by the operator".into()),
        });
        assert!(app.job.is_none());
        assert_eq!(app.epochs.len(), 1, "the chart stays after the run");
        assert!(
            app.message
                .as_ref()
                .unwrap()
                .text
                .contains("cancelled by the operator")
        );
    }

    #[test]
    fn sync_without_label_studio_configured_says_what_to_set() {
        let mut app = App::new(Utc::now(), 10);
        app.apply(UiEvent::Loaded {
            data: PaneData::LabelStudio(LabelStudioData {
                missing_settings: Some("LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY".into()),
                ..Default::default()
            }),
            at: Utc::now(),
        });
        app.pane = Pane::LabelStudio;
        assert!(app.handle_key(ch('S')).is_empty());
        assert!(
            app.message
                .as_ref()
                .unwrap()
                .text
                .contains("LABEL_STUDIO_URL")
        );
    }

    #[test]
    fn gap_drill_opens_loading_then_shows_the_detail() {
        let mut app = App::new(Utc::now(), 10);
        let gap = Gap {
            start: Timestamp::now(),
            end: Timestamp::now(),
            minutes: 40,
            ongoing: false,
        };
        app.apply(UiEvent::Loaded {
            data: PaneData::Capture(CaptureData {
                gaps: vec![gap.clone()],
                ..Default::default()
            }),
            at: Utc::now(),
        });
        // Enter works on the list in focus: the (empty) feed, then the gaps.
        assert!(app.handle_key(key(KeyCode::Enter)).is_empty());
        assert!(
            app.message
                .as_ref()
                .unwrap()
                .text
                .contains("no conversation")
        );
        app.handle_key(key(KeyCode::Right));
        assert_eq!(
            app.handle_key(key(KeyCode::Enter)),
            vec![Command::LoadGap(gap.clone())]
        );
        app.apply(UiEvent::GapLoaded(Err("database unavailable".into())));
        assert_eq!(
            app.overlay,
            Overlay::Gap(GapView::Failed("database unavailable".into()))
        );
        app.handle_key(key(KeyCode::Esc));
        assert_eq!(app.overlay, Overlay::None);
    }

    /// Every key the help lists changes something in its pane: a command,
    /// a dialog, the pane, or a message (the review app has a queue, so
    /// review keys act; the others say why they cannot).
    #[test]
    fn every_key_in_the_help_does_something() {
        for binding in crate::tui::keys::BINDINGS {
            if binding.action.is_none() {
                continue;
            }
            for k in binding.keys {
                let mut app = review_app();
                // Mid-queue, so both up and down can move.
                app.cursor[Pane::Review.index()] = 1;
                if let Scope::Pane(pane) = binding.scope {
                    app.pane = pane;
                }
                if binding.scope == Scope::OverDialog {
                    app.overlay = Overlay::Help;
                }
                let before = (app.pane, app.overlay.clone(), app.cursor, app.capture_focus);
                let mut event = key(k.code);
                if k.ctrl {
                    event.modifiers = KeyModifiers::CONTROL;
                }
                let commands = app.handle_key(event);
                let changed = !commands.is_empty()
                    || (app.pane, app.overlay.clone(), app.cursor, app.capture_focus) != before
                    || app.message.is_some();
                assert!(changed, "{} ({}) did nothing", binding.label, binding.help);
            }
        }
    }

    fn conversation(id: i64, text: &str) -> crate::storage::conversations::Conversation {
        crate::storage::conversations::Conversation {
            id,
            created_at: Timestamp::now(),
            session_id: Some("s1".into()),
            user_message: text.into(),
            language: Some("en".into()),
            nlu_intent: Some("refund".into()),
            nlu_confidence: Some(0.5),
            nlu_provider: Some("flywheel-router".into()),
            model_version: Some("router-v1.0.0".into()),
            fallback: false,
            routing_decision: None,
            feedback: None,
            review_status: crate::domain::ConversationStatus::Pending,
        }
    }

    fn jobs_app(runs: Vec<JobRun>) -> App {
        let mut app = App::new(Utc::now(), 10);
        app.apply(UiEvent::Loaded {
            data: PaneData::Jobs(JobsData {
                runs,
                ..Default::default()
            }),
            at: Utc::now(),
        });
        app.pane = Pane::Jobs;
        app
    }

    fn failed_run(id: i64) -> JobRun {
        JobRun {
            id,
            stage: crate::domain::Stage::LabelStudioSync,
            trigger: crate::jobs::Trigger::Cron,
            status: crate::domain::JobStatus::Failed,
            started_at: Timestamp::now(),
            finished_at: Some(Timestamp::now()),
            counts: Some(r#"{"pulled":2}"#.into()),
            error: Some("Label Studio is unreachable\ncaused by: connection refused".into()),
            host: None,
            pid: None,
            heartbeat_at: None,
        }
    }

    #[test]
    fn enter_on_the_feed_opens_the_conversation_and_esc_closes_it() {
        let mut app = App::new(Utc::now(), 10);
        app.apply(UiEvent::Loaded {
            data: PaneData::Capture(CaptureData {
                feed: vec![conversation(9, "newest"), conversation(8, "older")],
                ..Default::default()
            }),
            at: Utc::now(),
        });
        app.handle_key(key(KeyCode::Down));
        assert_eq!(
            app.handle_key(key(KeyCode::Enter)),
            vec![Command::LoadConversation(8)]
        );
        assert_eq!(
            app.overlay,
            Overlay::Conversation(ConversationView::Loading(8))
        );
        let detail = ConversationDetail {
            conversation: conversation(8, "older"),
            sample: None,
            alternatives: Alternatives::Unavailable("no artifact".into()),
        };
        app.apply(UiEvent::ConversationLoaded(Ok(Box::new(detail.clone()))));
        assert_eq!(
            app.overlay,
            Overlay::Conversation(ConversationView::Loaded(Box::new(detail)))
        );
        // Keys the view does not read leave it open; Esc closes it.
        assert!(app.handle_key(ch('j')).is_empty());
        assert!(matches!(app.overlay, Overlay::Conversation(_)));
        app.handle_key(key(KeyCode::Esc));
        assert_eq!(app.overlay, Overlay::None);
        assert!(!app.quit);
    }

    #[test]
    fn enter_shows_the_whole_run_m_opens_the_menu_and_q_quits_from_either() {
        let run = failed_run(7);
        let mut app = jobs_app(vec![run.clone()]);
        assert!(app.handle_key(key(KeyCode::Enter)).is_empty());
        assert_eq!(app.overlay, Overlay::Run(Box::new(run)));
        app.handle_key(key(KeyCode::Esc));
        app.handle_key(ch('m'));
        assert_eq!(app.overlay, Overlay::JobMenu { selected: 0 });
        // Esc closes the menu; q inside it quits the console.
        app.handle_key(key(KeyCode::Esc));
        assert_eq!(app.overlay, Overlay::None);
        assert!(!app.quit);
        app.handle_key(ch('m'));
        assert_eq!(app.handle_key(ch('q')), vec![Command::Quit]);
        assert!(app.quit);
        // With no run to show, Enter offers the stages as before.
        let mut app = jobs_app(Vec::new());
        app.handle_key(key(KeyCode::Enter));
        assert_eq!(app.overlay, Overlay::JobMenu { selected: 0 });
    }

    #[test]
    fn q_over_the_quit_question_quits_and_cancels_the_job() {
        let mut app = jobs_app(Vec::new());
        app.handle_key(ch('m'));
        app.handle_key(key(KeyCode::Enter));
        assert!(app.job.is_some());
        app.handle_key(ch('q'));
        assert_eq!(app.overlay, Overlay::Confirm(Confirm::Quit));
        assert_eq!(
            app.handle_key(ch('q')),
            vec![Command::CancelJob, Command::Quit]
        );
    }

    #[test]
    fn read_only_refuses_every_key_that_writes_with_a_reason() {
        let writing: Vec<_> = crate::tui::keys::BINDINGS
            .iter()
            .filter(|b| b.action.is_some_and(Action::writes))
            .collect();
        assert!(writing.len() >= 10);
        for binding in writing {
            let mut app = review_app();
            app.read_only = true;
            if let Scope::Pane(pane) = binding.scope {
                app.pane = pane;
            }
            let commands = app.handle_key(key(binding.keys[0].code));
            assert!(commands.is_empty(), "{}: {commands:?}", binding.label);
            assert_eq!(app.overlay, Overlay::None, "{}", binding.label);
            let message = app.message.clone().unwrap();
            assert!(!message.ok);
            assert!(
                message.text.starts_with("read-only console:") && !message.text.contains('\n'),
                "{}: {}",
                binding.label,
                message.text
            );
        }
        // Enter on an empty jobs list would open the stage menu: refused too.
        let mut app = jobs_app(Vec::new());
        app.read_only = true;
        app.handle_key(key(KeyCode::Enter));
        assert_eq!(app.overlay, Overlay::None);
        // Looking still works: skip (session only), select, copy, help.
        let mut app = review_app();
        app.read_only = true;
        app.handle_key(ch('s'));
        assert!(app.message.as_ref().unwrap().ok);
        assert_eq!(app.handle_key(ch('y')), vec![Command::Copy("2".into())]);
    }

    #[test]
    fn y_copies_the_id_and_capital_y_the_text_of_the_selected_row() {
        let mut app = review_app();
        assert_eq!(app.handle_key(ch('y')), vec![Command::Copy("1".into())]);
        assert_eq!(
            app.message.as_ref().unwrap().text,
            "copied sample id 1 to the clipboard (OSC 52)"
        );
        assert_eq!(app.handle_key(ch('Y')), vec![Command::Copy("one".into())]);
        // A sample's text leaves redacted, as Label Studio tasks do.
        let mut app = review_app();
        if let Some(review) = app.review.as_mut() {
            review.queue[0].sample.text = "call me on 98765 43210".into();
        }
        assert_eq!(
            app.handle_key(ch('Y')),
            vec![Command::Copy(format!(
                "call me on {}",
                crate::privacy::PHONE
            ))]
        );
        let mut app = jobs_app(vec![failed_run(7)]);
        assert_eq!(app.handle_key(ch('y')), vec![Command::Copy("7".into())]);
        assert_eq!(
            app.handle_key(ch('Y')),
            vec![Command::Copy(
                "Label Studio is unreachable\ncaused by: connection refused".into()
            )]
        );
        // Nothing selected: said, nothing sent.
        let mut app = jobs_app(Vec::new());
        assert!(app.handle_key(ch('y')).is_empty());
        assert!(!app.message.as_ref().unwrap().ok);
    }

    fn typed(app: &mut App, text: &str) -> Vec<Command> {
        let mut commands = Vec::new();
        for c in text.chars() {
            commands.extend(app.handle_key(ch(c)));
        }
        commands
    }

    #[test]
    fn slash_filters_the_list_in_focus_as_typed_enter_keeps_esc_clears() {
        assert!(matches("refund  ONE", &["refund", "one more"]));
        assert!(!matches("refund two", &["refund", "one"]));
        assert!(matches("", &[]));
        let mut app = review_app();
        app.handle_key(ch('/'));
        assert_eq!(app.overlay.dialog(), Dialog::Typing);
        // Typed keys filter; they do not act (`t`, `r`, `q`, `a`).
        assert!(typed(&mut app, "tw").is_empty());
        assert_eq!(app.visible_queue().len(), 1);
        assert_eq!(app.filter_count(Pane::Review), Some((1, 3)));
        app.handle_key(key(KeyCode::Enter));
        assert_eq!(app.overlay, Overlay::None);
        // Kept: the decision goes to the one shown.
        assert_eq!(
            app.handle_key(ch('a')),
            vec![Command::Review {
                sample_id: 2,
                verdict: ReviewVerdict::Choose("refund".into())
            }]
        );
        app.handle_key(ch('/'));
        app.handle_key(key(KeyCode::Backspace));
        assert_eq!(app.filters[Pane::Review.index()], "t");
        app.handle_key(key(KeyCode::Esc));
        assert_eq!(app.filter_count(Pane::Review), None);
        assert_eq!(app.visible_queue().len(), 2, "all but the decided one");
        // Every word must match somewhere: text and language here.
        app.filters[Pane::Review.index()] = "thr EN".into();
        assert_eq!(app.visible_queue()[0].sample.id, 3);
        // Job runs by stage, status or error.
        let mut app = jobs_app(vec![failed_run(7)]);
        app.filters[Pane::Jobs.index()] = "unreachable".into();
        assert_eq!(app.visible_runs().len(), 1);
        app.filters[Pane::Jobs.index()] = "export".into();
        assert!(app.visible_runs().is_empty());
        assert!(
            app.handle_key(ch('y')).is_empty(),
            "nothing shown, nothing copied"
        );
    }

    #[test]
    fn the_command_line_completes_and_runs_stages_and_panes() {
        assert_eq!(
            completions("la").iter().map(|c| c.0).collect::<Vec<_>>(),
            ["label-studio", "label-studio-sync"]
        );
        assert_eq!(completions("").len(), COMMANDS.len());
        let mut app = App::new(Utc::now(), 10);
        app.handle_key(ch(':'));
        typed(&mut app, "tra");
        // Offered: training (the pane), train; Down then Tab completes
        // "train", and Enter asks first.
        app.handle_key(key(KeyCode::Down));
        app.handle_key(key(KeyCode::Tab));
        assert_eq!(
            app.overlay,
            Overlay::CommandLine {
                input: "train ".into(),
                selected: 0
            }
        );
        assert!(app.handle_key(key(KeyCode::Enter)).is_empty());
        assert_eq!(app.overlay, Overlay::Confirm(Confirm::Start(Job::TrainNow)));
        app.handle_key(key(KeyCode::Esc));
        // A unique prefix runs its command; Down picks another offer.
        app.handle_key(ch(':'));
        typed(&mut app, "jo");
        assert_eq!(app.handle_key(key(KeyCode::Enter)), vec![Command::Refresh]);
        assert_eq!(app.pane, Pane::Jobs);
        app.handle_key(ch(':'));
        typed(&mut app, "la");
        app.handle_key(key(KeyCode::Down));
        app.handle_key(key(KeyCode::Enter));
        // label-studio-sync, refused: Label Studio's pane never loaded says nothing
        // missing, so the sync starts.
        assert_eq!(
            app.job.as_ref().map(|j| j.job.clone()),
            Some(Job::LabelStudioSync)
        );
        // Unknown and ambiguous words say so.
        app.run_command("frobnicate");
        assert!(
            app.message
                .as_ref()
                .unwrap()
                .text
                .contains("no command “frobnicate”")
        );
        // Read-only: a stage from the command line is refused too.
        let mut app = App::new(Utc::now(), 10);
        app.read_only = true;
        assert!(app.run_command("daily-capture").is_empty());
        assert!(
            app.message
                .as_ref()
                .unwrap()
                .text
                .starts_with("read-only console:")
        );
        assert!(app.run_command("rollback").is_empty());
        assert_eq!(app.overlay, Overlay::None);
    }

    #[test]
    fn g_jumps_to_a_conversation_a_sample_or_a_version() {
        let mut app = review_app();
        app.apply(UiEvent::Loaded {
            data: PaneData::Training(TrainingData {
                versions: vec![
                    crate::storage::models::ModelVersion::example(
                        "router-v1.1.0",
                        ModelStatus::Testing,
                        0,
                    ),
                    crate::storage::models::ModelVersion::example(
                        "router-v1.0.0",
                        ModelStatus::Production,
                        100,
                    ),
                ],
                ..Default::default()
            }),
            at: Utc::now(),
        });
        app.pane = Pane::Capture;
        app.handle_key(ch('g'));
        assert_eq!(typed(&mut app, "s3"), Vec::new());
        assert_eq!(app.handle_key(key(KeyCode::Enter)), vec![Command::Refresh]);
        assert_eq!((app.pane, app.selected()), (Pane::Review, 2));
        app.handle_key(ch('g'));
        typed(&mut app, "v1.0");
        app.handle_key(key(KeyCode::Enter));
        assert_eq!((app.pane, app.selected()), (Pane::Training, 1));
        app.handle_key(ch('g'));
        typed(&mut app, "1234");
        assert_eq!(
            app.handle_key(key(KeyCode::Enter)),
            vec![Command::LoadConversation(1234)]
        );
        app.handle_key(key(KeyCode::Esc));
        assert!(app.go_to("s99").is_empty());
        assert!(
            app.message
                .as_ref()
                .unwrap()
                .text
                .contains("sample 99 is not in")
        );
        assert!(app.go_to("router-v9").is_empty());
        assert!(
            app.message
                .as_ref()
                .unwrap()
                .text
                .contains("no model version")
        );
    }
}
