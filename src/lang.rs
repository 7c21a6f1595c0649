//! Language detection (script + lexicon) for utterances that arrive without
//! a language.

use serde::{Deserialize, Serialize};

/// The languages the router distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    En,
    Hinglish,
    Hi,
    Mr,
    Other,
}

impl Language {
    pub fn as_str(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::Hinglish => "hinglish",
            Language::Hi => "hi",
            Language::Mr => "mr",
            Language::Other => "other",
        }
    }

    /// Parse a stored or user-given language code.
    pub fn parse(code: &str) -> Option<Self> {
        match code.trim().to_ascii_lowercase().as_str() {
            "en" => Some(Language::En),
            "hinglish" => Some(Language::Hinglish),
            "hi" => Some(Language::Hi),
            "mr" => Some(Language::Mr),
            "other" => Some(Language::Other),
            _ => None,
        }
    }
}

impl std::fmt::Display for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Detect the language of `text`. (Placeholder until the real detector lands:
/// Devanagari → hi, otherwise en.)
pub fn detect(text: &str) -> Language {
    if text.chars().any(|c| ('\u{0900}'..='\u{097F}').contains(&c)) {
        Language::Hi
    } else {
        Language::En
    }
}
