//! Every key of the console, as data: the help overlay lists this table
//! and a test presses each entry's key in its pane, so the two cannot drift.

use super::data::Pane;

/// Where a key works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Anywhere,
    Pane(Pane),
    Dialog,
}

#[derive(Debug, Clone, Copy)]
pub struct KeyHelp {
    /// As shown in the help.
    pub keys: &'static str,
    pub scope: Scope,
    pub action: &'static str,
    /// A key that triggers the entry, for the test (`None`: not a plain key).
    pub example: Option<char>,
}

const fn key(
    keys: &'static str,
    scope: Scope,
    action: &'static str,
    example: Option<char>,
) -> KeyHelp {
    KeyHelp {
        keys,
        scope,
        action,
        example,
    }
}

pub const KEYS: &[KeyHelp] = &[
    key(
        "Tab  Shift-Tab",
        Scope::Anywhere,
        "next / previous pane",
        None,
    ),
    key("1-5", Scope::Anywhere, "go to a pane", Some('3')),
    key("↑ ↓  j k", Scope::Anywhere, "move the selection", Some('j')),
    key("R", Scope::Anywhere, "refresh now", Some('R')),
    key("x", Scope::Anywhere, "cancel the running job", Some('x')),
    key("?", Scope::Anywhere, "this help", Some('?')),
    key("q  Ctrl-C", Scope::Anywhere, "quit", Some('q')),
    key(
        "Enter",
        Scope::Pane(Pane::Capture),
        "drill into the selected gap",
        None,
    ),
    key(
        "a",
        Scope::Pane(Pane::Review),
        "accept the prediction",
        Some('a'),
    ),
    key(
        "c",
        Scope::Pane(Pane::Review),
        "choose another intent (type to filter)",
        Some('c'),
    ),
    key("r", Scope::Pane(Pane::Review), "reject", Some('r')),
    key(
        "s",
        Scope::Pane(Pane::Review),
        "skip: leave it in the queue for later",
        Some('s'),
    ),
    key(
        "u",
        Scope::Pane(Pane::Review),
        "undo the last decision",
        Some('u'),
    ),
    key("S", Scope::Pane(Pane::LabelStudio), "sync now", Some('S')),
    key(
        "t",
        Scope::Pane(Pane::Training),
        "train now (asks first)",
        Some('t'),
    ),
    key(
        "p",
        Scope::Pane(Pane::Training),
        "promote the selected version (asks traffic %)",
        Some('p'),
    ),
    key(
        "b",
        Scope::Pane(Pane::Training),
        "roll back production (asks first)",
        Some('b'),
    ),
    key(
        "Enter  m",
        Scope::Pane(Pane::Jobs),
        "run a stage from the menu",
        Some('m'),
    ),
    key("y  Enter", Scope::Dialog, "confirm", None),
    key("n  Esc", Scope::Dialog, "cancel / close", None),
];
