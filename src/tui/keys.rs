//! Every key of the console, as data: [`BINDINGS`] drives both the key
//! dispatch ([`action_for`]) and the help overlay, so a key cannot work
//! without being listed, nor be listed without working. Dialogs read their
//! own keys (typing a filter or a traffic share); their rows here are the
//! help's description of them.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::data::Pane;

/// Where a key works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Even over a dialog.
    Always,
    /// Everywhere but where text is typed (a filter, a traffic share):
    /// over the panes, menus, confirmations, help and detail views.
    UnlessTyping,
    /// Over any open dialog, typing ones included.
    OverDialog,
    /// In every pane, when no dialog is open.
    Anywhere,
    Pane(Pane),
    /// Read by the open dialog itself (help only).
    Dialog,
}

/// What is open over the panes, as far as keys are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialog {
    None,
    /// Reads single keys (a menu, a confirmation, help, a detail view).
    Menu,
    /// Reads typed text.
    Typing,
}

/// What a key does; [`crate::tui::app::App::perform`] carries it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Tab: the next pane; Shift-Tab: the previous one.
    SwitchPane,
    /// The pane of the digit pressed.
    GoToPane,
    /// Down or up by one, by the key pressed.
    MoveSelection,
    Refresh,
    CancelJob,
    Help,
    /// Quit (asks first while a job runs).
    Quit,
    /// Quit now, whatever is open or running.
    QuitNow,
    /// Close the open dialog or detail view.
    Close,
    /// Move between the lists of a pane (the capture feed and its gaps).
    FocusList,
    /// Enter in the capture pane: the selected conversation, or gap, in full.
    Open,
    /// Enter in the jobs pane: the selected run in full.
    ShowRun,
    CopyId,
    CopyText,
    /// Filter the list in focus.
    Filter,
    /// `:` the command line.
    CommandLine,
    /// `g`: jump to a conversation, sample or version by id.
    GoTo,
    Accept,
    ChooseIntent,
    Reject,
    Skip,
    Undo,
    SyncNow,
    TrainNow,
    Promote,
    RollBack,
    CheckCanary,
    JobMenu,
}

impl Action {
    /// Every action, for the test that each has a key.
    pub const ALL: [Action; 28] = [
        Action::SwitchPane,
        Action::GoToPane,
        Action::MoveSelection,
        Action::Refresh,
        Action::CancelJob,
        Action::Help,
        Action::Quit,
        Action::QuitNow,
        Action::Close,
        Action::FocusList,
        Action::Open,
        Action::ShowRun,
        Action::CopyId,
        Action::CopyText,
        Action::Filter,
        Action::CommandLine,
        Action::GoTo,
        Action::Accept,
        Action::ChooseIntent,
        Action::Reject,
        Action::Skip,
        Action::Undo,
        Action::SyncNow,
        Action::TrainNow,
        Action::Promote,
        Action::RollBack,
        Action::CheckCanary,
        Action::JobMenu,
    ];

    /// Whether the action changes the store or starts a stage: a
    /// read-only console refuses it.
    pub fn writes(self) -> bool {
        match self {
            Action::Accept
            | Action::ChooseIntent
            | Action::Reject
            | Action::Undo
            | Action::SyncNow
            | Action::TrainNow
            | Action::Promote
            | Action::RollBack
            | Action::CheckCanary
            | Action::JobMenu => true,
            Action::SwitchPane
            | Action::GoToPane
            | Action::MoveSelection
            | Action::Refresh
            | Action::CancelJob
            | Action::Help
            | Action::Quit
            | Action::QuitNow
            | Action::Close
            | Action::FocusList
            | Action::Open
            | Action::ShowRun
            | Action::CopyId
            | Action::CopyText
            | Action::Filter
            | Action::CommandLine
            | Action::GoTo
            | Action::Skip => false,
        }
    }
}

/// A key as pressed: its code and whether Ctrl was held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub code: KeyCode,
    pub ctrl: bool,
}

const fn plain(code: KeyCode) -> Key {
    Key { code, ctrl: false }
}

const fn ch(c: char) -> Key {
    plain(KeyCode::Char(c))
}

const fn ctrl(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        ctrl: true,
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Binding {
    pub keys: &'static [Key],
    /// The keys as the help shows them.
    pub label: &'static str,
    pub scope: Scope,
    /// `None`: a dialog's own key, listed for the help.
    pub action: Option<Action>,
    pub help: &'static str,
}

const fn bind(
    keys: &'static [Key],
    label: &'static str,
    scope: Scope,
    action: Action,
    help: &'static str,
) -> Binding {
    Binding {
        keys,
        label,
        scope,
        action: Some(action),
        help,
    }
}

const fn dialog(keys: &'static [Key], label: &'static str, help: &'static str) -> Binding {
    Binding {
        keys,
        label,
        scope: Scope::Dialog,
        action: None,
        help,
    }
}

use Action::*;
use Scope::{Always, Anywhere, OverDialog, UnlessTyping};

/// In help order. The first binding that matches a key in scope wins.
pub const BINDINGS: &[Binding] = &[
    bind(
        &[plain(KeyCode::Tab), plain(KeyCode::BackTab)],
        "Tab  Shift-Tab",
        Anywhere,
        SwitchPane,
        "next / previous pane",
    ),
    bind(
        &[ch('1'), ch('2'), ch('3'), ch('4'), ch('5')],
        "1-5",
        Anywhere,
        GoToPane,
        "go to a pane",
    ),
    bind(
        &[plain(KeyCode::Down), ch('j'), plain(KeyCode::Up), ch('k')],
        "↑ ↓  j k",
        Anywhere,
        MoveSelection,
        "move the selection",
    ),
    bind(&[ch('R')], "R", Anywhere, Refresh, "refresh now"),
    bind(
        &[ch('x')],
        "x",
        Anywhere,
        CancelJob,
        "cancel the running job",
    ),
    bind(&[ch('?')], "?", Anywhere, Help, "this help"),
    bind(
        &[ch('q')],
        "q",
        UnlessTyping,
        Quit,
        "quit, from menus too (asks while a job runs)",
    ),
    bind(
        &[plain(KeyCode::Esc)],
        "Esc",
        OverDialog,
        Close,
        "close the dialog or detail view",
    ),
    bind(
        &[ch('/')],
        "/",
        Anywhere,
        Filter,
        "filter the list (Enter keeps, Esc clears)",
    ),
    bind(
        &[ch(':')],
        ":",
        Anywhere,
        CommandLine,
        "command line (Tab completes stages, panes)",
    ),
    bind(
        &[ch('g')],
        "g",
        Anywhere,
        GoTo,
        "go to: 42 conversation · s42 sample · version",
    ),
    bind(
        &[ch('y')],
        "y",
        Anywhere,
        CopyId,
        "copy the selected row's id (OSC 52)",
    ),
    bind(
        &[ch('Y')],
        "Y",
        Anywhere,
        CopyText,
        "copy the selected row's text (OSC 52)",
    ),
    bind(
        &[ctrl('c')],
        "Ctrl-C",
        Always,
        QuitNow,
        "quit now, from anywhere",
    ),
    bind(
        &[
            plain(KeyCode::Left),
            ch('h'),
            plain(KeyCode::Right),
            ch('l'),
        ],
        "← →  h l",
        Scope::Pane(Pane::Capture),
        FocusList,
        "focus the live feed / the gaps",
    ),
    bind(
        &[plain(KeyCode::Enter)],
        "Enter",
        Scope::Pane(Pane::Capture),
        Open,
        "open the selected conversation or gap",
    ),
    bind(
        &[ch('a')],
        "a",
        Scope::Pane(Pane::Review),
        Accept,
        "accept the prediction",
    ),
    bind(
        &[ch('c')],
        "c",
        Scope::Pane(Pane::Review),
        ChooseIntent,
        "choose another intent (type to filter)",
    ),
    bind(&[ch('r')], "r", Scope::Pane(Pane::Review), Reject, "reject"),
    bind(
        &[ch('s')],
        "s",
        Scope::Pane(Pane::Review),
        Skip,
        "skip: leave it in the queue for later",
    ),
    bind(
        &[ch('u')],
        "u",
        Scope::Pane(Pane::Review),
        Undo,
        "undo the last decision",
    ),
    bind(
        &[ch('S')],
        "S",
        Scope::Pane(Pane::LabelStudio),
        SyncNow,
        "sync now",
    ),
    bind(
        &[ch('t')],
        "t",
        Scope::Pane(Pane::Training),
        TrainNow,
        "train now (asks first)",
    ),
    bind(
        &[ch('p')],
        "p",
        Scope::Pane(Pane::Training),
        Promote,
        "promote the selected version (asks traffic %)",
    ),
    bind(
        &[ch('b')],
        "b",
        Scope::Pane(Pane::Training),
        RollBack,
        "roll back production (asks first)",
    ),
    bind(
        &[ch('C')],
        "C",
        Scope::Pane(Pane::Training),
        CheckCanary,
        "check the canary now (as [canary] mode says)",
    ),
    bind(
        &[plain(KeyCode::Enter)],
        "Enter",
        Scope::Pane(Pane::Jobs),
        ShowRun,
        "the selected run in full (or the menu)",
    ),
    bind(
        &[ch('m')],
        "m",
        Scope::Pane(Pane::Jobs),
        JobMenu,
        "run a stage from the menu",
    ),
    dialog(
        &[ch('y'), plain(KeyCode::Enter), ch('n')],
        "y Enter / n",
        "confirm / cancel",
    ),
];

/// The action bound to `key` in `pane` with `dialog` open; an open dialog
/// reads the keys not looked up here.
pub fn action_for(pane: Pane, dialog: Dialog, key: &KeyEvent) -> Option<Action> {
    let pressed = Key {
        code: key.code,
        ctrl: key.modifiers.contains(KeyModifiers::CONTROL),
    };
    let open = dialog != Dialog::None;
    BINDINGS
        .iter()
        .filter(|b| match b.scope {
            Always => true,
            UnlessTyping => dialog != Dialog::Typing,
            OverDialog => open,
            Anywhere => !open,
            Scope::Pane(p) => !open && p == pane,
            Scope::Dialog => false,
        })
        .find(|b| b.keys.contains(&pressed))
        .and_then(|b| b.action)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No binding is shadowed by an earlier one: each of its keys reaches
    /// its own action in its scope.
    #[test]
    fn every_listed_key_reaches_its_action() {
        for binding in BINDINGS {
            let Some(action) = binding.action else {
                continue;
            };
            let panes: Vec<Pane> = match binding.scope {
                Scope::Pane(p) => vec![p],
                _ => Pane::ALL.to_vec(),
            };
            let (home, over_menu, over_typing) = match binding.scope {
                Always => (Dialog::None, true, true),
                UnlessTyping => (Dialog::None, true, false),
                OverDialog => (Dialog::Menu, true, true),
                _ => (Dialog::None, false, false),
            };
            for key in binding.keys {
                let mut event = KeyEvent::new(key.code, KeyModifiers::NONE);
                if key.ctrl {
                    event.modifiers = KeyModifiers::CONTROL;
                }
                for pane in &panes {
                    assert_eq!(
                        action_for(*pane, home, &event),
                        Some(action),
                        "{} in {pane:?}",
                        binding.label
                    );
                }
                assert_eq!(
                    action_for(Pane::Review, Dialog::Menu, &event).is_some(),
                    over_menu,
                    "{}: over a menu",
                    binding.label
                );
                assert_eq!(
                    action_for(Pane::Review, Dialog::Typing, &event).is_some(),
                    over_typing,
                    "{}: while typing",
                    binding.label
                );
            }
        }
    }

    /// Every action has a key (and so a line in the help).
    #[test]
    fn every_action_is_bound() {
        let all = Action::ALL;
        for action in all {
            // A new action without a key fails this match to compile first.
            match action {
                SwitchPane | GoToPane | MoveSelection | Refresh | CancelJob | Help | Quit
                | QuitNow | Close | FocusList | Open | ShowRun | CopyId | CopyText | Filter
                | CommandLine | GoTo | Accept | ChooseIntent | Reject | Skip | Undo | SyncNow
                | TrainNow | Promote | RollBack | CheckCanary | JobMenu => {}
            }
            assert!(
                BINDINGS.iter().any(|b| b.action == Some(action)),
                "{action:?} has no key"
            );
        }
    }
}
