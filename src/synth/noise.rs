//! What real users add to a sentence: politeness, casing, trailing
//! punctuation and the odd typo. Applied after a template is rendered.

use rand::Rng;
use rand::seq::IndexedRandom;

use crate::lang::Language;

/// Intents that are requests, so "please …" reads naturally.
fn is_request(intent: &str) -> bool {
    !matches!(
        intent,
        "greeting" | "goodbye" | "thanks" | "complaint" | "oos"
    )
}

pub(crate) fn apply<R: Rng>(text: String, intent: &str, language: Language, rng: &mut R) -> String {
    let mut text = text;
    if is_request(intent) {
        text = politeness(text, language, rng);
    }
    if language != Language::Hi {
        if rng.random_bool(0.06) {
            text = typo(&text, rng);
        }
        text = casing(text, rng);
    }
    punctuation(text, language, rng)
}

fn politeness<R: Rng>(text: String, language: Language, rng: &mut R) -> String {
    let (prefixes, suffixes): (&[&str], &[&str]) = match language {
        Language::Hi => (&["कृपया", "प्लीज़", "भैया"], &["जी", "प्लीज़", "भैया"]),
        Language::Hinglish => (
            &["please", "plz", "bhaiya", "yaar", "sir"],
            &["please", "bhai", "yaar", "ji", "pls"],
        ),
        _ => (
            &["please", "pls", "kindly", "hey,", "hi,"],
            &["please", "pls", "plz", "thanks"],
        ),
    };
    let roll: f64 = rng.random();
    if roll < 0.12 {
        format!(
            "{} {text}",
            prefixes.choose(rng).copied().unwrap_or_default()
        )
    } else if roll < 0.22 {
        format!(
            "{text} {}",
            suffixes.choose(rng).copied().unwrap_or_default()
        )
    } else {
        text
    }
}

/// Swap, drop or double one letter of one longer word.
fn typo<R: Rng>(text: &str, rng: &mut R) -> String {
    let words: Vec<&str> = text.split(' ').collect();
    let candidates: Vec<usize> = (0..words.len())
        .filter(|&i| words[i].len() >= 4 && words[i].bytes().all(|b| b.is_ascii_lowercase()))
        .collect();
    let Some(&index) = candidates.choose(rng) else {
        return text.to_string();
    };
    let mut bytes = words[index].as_bytes().to_vec();
    let at = rng.random_range(1..bytes.len() - 1);
    match rng.random_range(0..3) {
        0 => bytes.swap(at, at + 1),
        1 => {
            bytes.remove(at);
        }
        _ => bytes.insert(at, bytes[at]),
    }
    let changed = String::from_utf8(bytes).unwrap_or_else(|_| words[index].to_string());
    let mut out: Vec<String> = words.iter().map(|w| w.to_string()).collect();
    out[index] = changed;
    out.join(" ")
}

fn casing<R: Rng>(text: String, rng: &mut R) -> String {
    let roll: f64 = rng.random();
    if roll < 0.25 {
        let mut chars = text.chars();
        match chars.next() {
            Some(first) => first.to_uppercase().chain(chars).collect(),
            None => text,
        }
    } else if roll < 0.28 {
        text.to_uppercase()
    } else {
        text
    }
}

/// Question words that earn a "?" now and then.
const QUESTION_STARTS: &[&str] = &[
    "what",
    "what's",
    "where",
    "when",
    "how",
    "is",
    "are",
    "can",
    "could",
    "does",
    "do",
    "which",
    "why",
    "kya",
    "kab",
    "kahan",
    "kitna",
    "kitne",
    "क्या",
    "कब",
    "कहाँ",
    "कैसे",
    "कितने",
];
const QUESTION_ENDS: &[&str] = &["kya", "hai kya", "क्या", "है क्या", "hai", "है"];

fn punctuation<R: Rng>(text: String, language: Language, rng: &mut R) -> String {
    let lower = text.to_lowercase();
    let first = lower.split(' ').next().unwrap_or_default();
    let question =
        QUESTION_STARTS.contains(&first) || QUESTION_ENDS.iter().any(|end| lower.ends_with(end));
    let roll: f64 = rng.random();
    let mark = if question && roll < 0.35 {
        "?"
    } else if roll < 0.10 {
        if language == Language::Hi { "।" } else { "." }
    } else if roll < 0.14 {
        "!"
    } else {
        ""
    };
    text + mark
}
