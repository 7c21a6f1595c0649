//! Redaction of texts leaving Flywheel (SECURITY.md, issue 13 item 5): any
//! text with a phone-like run of at least `min_digits` digits comes out with
//! no such run left, and a text without one comes out unchanged.
//!
//! A run is `min_digits` or more Unicode decimal digits of any script, where
//! one space, hyphen, dot or comma between two digits does not break it; a
//! leading `+` belongs to it; letters touching it do not protect it. The
//! oracle below is a regular expression over Unicode `\d` (general category
//! Nd), independent of the scanner in `src/privacy.rs`.

mod support;

use std::sync::OnceLock;

use flywheel::privacy::{PrivacyConfig, Redactor};
use proptest::prelude::*;
use regex::Regex;
use support::fuzz::config;

/// Zero of each digit script the generators draw from (all general category Nd).
const ZEROS: &[char] = &[
    '0',         // ASCII
    '\u{FF10}',  // full-width
    '\u{0660}',  // Arabic-Indic
    '\u{06F0}',  // extended Arabic-Indic (Persian, Urdu)
    '\u{0966}',  // Devanagari
    '\u{09E6}',  // Bengali
    '\u{0AE6}',  // Gujarati
    '\u{0BE6}',  // Tamil
    '\u{0E50}',  // Thai
    '\u{1D7CE}', // mathematical bold
];

/// One separator that does not break a run.
const JOINERS: &[&str] = &[" ", "-", ".", ","];

/// Gaps that do break a run: two joiners, other punctuation, letters.
const BREAKS: &[&str] = &[
    "  ", ", ", ". ", " - ", "--", ": ", ":", "/", "(", ")", " (", ") ", "#", "\n", "\t", "x",
    " is ", "और", "و", "中", "🍕", "²", "½",
];

/// Words that may touch a number on either side, in several scripts.
const WORDS: &[&str] = &[
    "call me at",
    "pls",
    "ko",
    "hai",
    "mera no",
    "whatsapp kar do",
    "order",
    "मेरा",
    "नंबर",
    "رقم",
    "电话",
    "🙏",
    "ok",
    "Rs",
    "a",
    "",
];

/// A digit: ASCII half the time (the common case), else of any script.
fn digit() -> impl Strategy<Value = char> {
    let zero = prop_oneof![Just('0'), prop::sample::select(ZEROS)];
    (zero, 0u32..10).prop_map(|(zero, n)| char::from_u32(zero as u32 + n).expect("a digit"))
}

/// `digits` digits (each of any script), with a joiner or nothing between two.
fn digit_run(digits: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    prop::collection::vec(
        (
            digit(),
            prop::option::weighted(0.4, prop::sample::select(JOINERS)),
        ),
        digits,
    )
    .prop_map(|parts| {
        let mut run = String::new();
        let last = parts.len().saturating_sub(1);
        for (i, (d, joiner)) in parts.into_iter().enumerate() {
            run.push(d);
            if i < last
                && let Some(j) = joiner
            {
                run.push_str(j);
            }
        }
        run
    })
}

/// Filler around numbers: words, breaking gaps, short digit groups
/// (fewer than `min_digits` digits, each closed by a breaking gap).
fn filler(min_digits: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            3 => prop::sample::select(WORDS).prop_map(str::to_string),
            2 => prop::sample::select(BREAKS).prop_map(str::to_string),
            2 => (digit_run(1..min_digits), prop::sample::select(BREAKS))
                .prop_map(|(run, gap)| format!("{gap}{run}{gap}")),
        ],
        0..6,
    )
    .prop_map(|parts| parts.concat())
}

/// Runs of at least `min_digits` digits left in `text`, by the definition.
fn runs_left(text: &str, min_digits: usize) -> Vec<String> {
    static RUN: OnceLock<Regex> = OnceLock::new();
    let run = RUN.get_or_init(|| Regex::new(r"\+?\d(?:[ \-.,]?\d)*").expect("regex"));
    static DIGIT: OnceLock<Regex> = OnceLock::new();
    let digit = DIGIT.get_or_init(|| Regex::new(r"\d").expect("regex"));
    run.find_iter(text)
        .map(|m| m.as_str())
        .filter(|m| digit.find_iter(m).count() >= min_digits)
        .map(str::to_string)
        .collect()
}

fn redactor(min_digits: usize) -> Redactor {
    Redactor::new(&PrivacyConfig {
        redact: true,
        min_digits,
    })
}

/// `(min_digits, text)`: filler, a word, a run of at least `min_digits`
/// digits (maybe after `+`, maybe touching the words), a word, filler.
fn text_with_run() -> impl Strategy<Value = (usize, String)> {
    (3usize..=12)
        .prop_flat_map(|min| {
            (
                Just(min),
                (filler(min), prop::sample::select(WORDS), any::<bool>()),
                (any::<bool>(), digit_run(min..min + 8)),
                (any::<bool>(), prop::sample::select(WORDS), filler(min)),
            )
        })
        .prop_map(
            |(min, (head, before, glue_before), (plus, run), (glue_after, after, tail))| {
                let text = format!(
                    "{head}{before}{}{}{run}{}{after}{tail}",
                    if glue_before { "" } else { " " },
                    if plus { "+" } else { "" },
                    if glue_after { "" } else { " " },
                );
                (min, text)
            },
        )
}

/// `(min_digits, text)` without a run: filler, or short digit groups one
/// after another with a breaking gap between each two ("12  345 - 6").
fn text_without_run() -> impl Strategy<Value = (usize, String)> {
    (3usize..=12).prop_flat_map(|min| {
        let groups = prop::collection::vec((digit_run(1..min), prop::sample::select(BREAKS)), 1..6)
            .prop_map(|groups| {
                groups
                    .into_iter()
                    .map(|(run, gap)| format!("{run}{gap}"))
                    .collect::<String>()
            });
        (Just(min), prop_oneof![filler(min), groups])
    })
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn a_phone_like_run_never_survives((min_digits, text) in text_with_run()) {
        let out = redactor(min_digits).redact(&text).into_owned();
        let left = runs_left(&out, min_digits);
        prop_assert!(left.is_empty(), "{:?} → {:?} still holds {:?}", text, out, left);
        prop_assert!(out.contains("<phone>") || out.contains("<number>"), "{:?} → {:?}", text, out);
    }

    #[test]
    fn text_without_a_run_is_unchanged((min_digits, text) in text_without_run()) {
        prop_assert!(runs_left(&text, min_digits).is_empty(), "the generator made a run: {:?}", text);
        let out = redactor(min_digits).redact(&text);
        prop_assert_eq!(out.as_ref(), text.as_str());
    }
}

#[test]
fn the_issue_examples_are_redacted() {
    let r = redactor(7);
    for (text, want) in [
        ("call me at9876543210", "call me at<phone>"),
        ("9876543210pls call", "<phone>pls call"),
        ("whatsapp kar do 9876543210ko", "whatsapp kar do <phone>ko"),
        ("mera no 9876543210hai", "mera no <phone>hai"),
        ("９８７６５４３２１０", "<phone>"),
        ("٩٨٧٦٥٤٣٢١٠", "<phone>"),
        ("९८७६५४३२१०", "<phone>"),
        ("98765,43210", "<phone>"),
        ("98765 43210", "<phone>"),
        ("98-765-43210", "<phone>"),
        ("ticket ABC1234567", "ticket ABC<number>"),
    ] {
        assert_eq!(r.redact(text), want, "{text}");
    }
}
