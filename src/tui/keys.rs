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
    /// In every pane, when no dialog is open.
    Anywhere,
    Pane(Pane),
    /// Read by the open dialog itself (help only).
    Dialog,
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
    DrillIntoGap,
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
    pub const ALL: [Action; 20] = [
        Action::SwitchPane,
        Action::GoToPane,
        Action::MoveSelection,
        Action::Refresh,
        Action::CancelJob,
        Action::Help,
        Action::Quit,
        Action::QuitNow,
        Action::DrillIntoGap,
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
use Scope::{Always, Anywhere};

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
        Anywhere,
        Quit,
        "quit (asks first while a job runs)",
    ),
    bind(
        &[ctrl('c')],
        "Ctrl-C",
        Always,
        QuitNow,
        "quit now, from anywhere",
    ),
    bind(
        &[plain(KeyCode::Enter)],
        "Enter",
        Scope::Pane(Pane::Capture),
        DrillIntoGap,
        "drill into the selected gap",
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
        &[plain(KeyCode::Enter), ch('m')],
        "Enter  m",
        Scope::Pane(Pane::Jobs),
        JobMenu,
        "run a stage from the menu",
    ),
    dialog(
        &[ch('y'), plain(KeyCode::Enter), ch('n'), plain(KeyCode::Esc)],
        "y Enter / n Esc",
        "confirm / cancel or close",
    ),
];

/// The action bound to `key` in `pane`; with a dialog open only keys that
/// work [`Scope::Always`] are looked up (the dialog reads the rest).
pub fn action_for(pane: Pane, dialog_open: bool, key: &KeyEvent) -> Option<Action> {
    let pressed = Key {
        code: key.code,
        ctrl: key.modifiers.contains(KeyModifiers::CONTROL),
    };
    BINDINGS
        .iter()
        .filter(|b| match b.scope {
            Always => true,
            Anywhere => !dialog_open,
            Scope::Pane(p) => !dialog_open && p == pane,
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
            for key in binding.keys {
                let mut event = KeyEvent::new(key.code, KeyModifiers::NONE);
                if key.ctrl {
                    event.modifiers = KeyModifiers::CONTROL;
                }
                for pane in &panes {
                    assert_eq!(
                        action_for(*pane, false, &event),
                        Some(action),
                        "{} in {pane:?}",
                        binding.label
                    );
                }
                assert_eq!(
                    action_for(Pane::Review, true, &event).is_some(),
                    binding.scope == Always,
                    "{}: only Always keys get past an open dialog",
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
                | QuitNow | DrillIntoGap | Accept | ChooseIntent | Reject | Skip | Undo
                | SyncNow | TrainNow | Promote | RollBack | CheckCanary | JobMenu => {}
            }
            assert!(
                BINDINGS.iter().any(|b| b.action == Some(action)),
                "{action:?} has no key"
            );
        }
    }
}
