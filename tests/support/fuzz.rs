//! Generators and settings shared by the property-based fuzz tests
//! (`tests/fuzz_*.rs`).
//!
//! Every test runs `PROPTEST_CASES` cases (its own small default otherwise,
//! so `cargo test` stays quick); `scripts/fuzz.sh` raises the count for long
//! runs. Failures are kept in `tests/fuzz_*.proptest-regressions` and replayed
//! first on every run; the ones found so far are also explicit `#[test]`s.

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};
use serde_json::{Map, Number, Value};

/// A runner configuration: `PROPTEST_CASES` when set, else `default_cases`.
pub fn config(default_cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default_cases);
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        // Shrinking a slow case (a database round trip) must not run for minutes.
        max_shrink_iters: 2_000,
        ..Config::default()
    }
}

/// A runtime for the synchronous property tests to drive async code on,
/// built once and shared by their cases.
pub fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("runtime")
}

/// An embedded SQLite installation in a directory of its own (gone with the
/// `TempDir`), and its configuration.
pub fn installation() -> (tempfile::TempDir, flywheel::config::Config) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = flywheel::config::Config {
        data_dir: dir.path().to_path_buf(),
        ..flywheel::config::Config::default()
    };
    (dir, config)
}

/// Characters that break naive text handling: Devanagari with its vowel
/// signs and virama, combining marks, zero-width joiners, right-to-left
/// text, emoji, quotes, backslashes, control characters and line breaks.
pub fn tricky_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => proptest::char::range('a', 'z'),
        2 => proptest::char::range('\u{0900}', '\u{097F}'), // Devanagari
        1 => proptest::char::range('\u{0300}', '\u{036F}'), // combining diacritics
        1 => prop::sample::select(vec![
            ' ', '\t', '\n', '\r', '"', '\\', '\'', '=', '#', '[', ']', '{', '}', ',', ':', '.',
            '\0', '\u{7f}', '\u{200b}', '\u{200c}', '\u{200d}', '\u{feff}', '\u{2028}',
            '\u{202e}', 'ß', 'İ', 'ﬁ', '😀', '👍', '\u{1F1EE}', '\u{10FFFF}', '\u{FFFD}',
        ]),
        1 => any::<char>(),
    ]
}

/// `s` without U+0000, which conversation records refuse (400 / an invalid
/// line naming the field: PostgreSQL cannot store it): for generators of
/// valid records.
pub fn without_nul(s: String) -> String {
    s.replace('\0', "")
}

/// A string of [`tricky_char`]s, `max` characters at most.
pub fn tricky_string(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(tricky_char(), 0..=max).prop_map(|c| c.into_iter().collect())
}

/// Text a user might really send: mostly letters, Devanagari and
/// combining marks, never empty and never only whitespace.
pub fn utterance() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            proptest::char::range('a', 'z'),
            proptest::char::range('\u{0915}', '\u{0939}'), // Devanagari consonants
            proptest::char::range('0', '9'),
        ],
        tricky_string(40),
    )
        .prop_map(|(first, rest)| format!("{first}{rest}"))
}

/// Numbers JSON parsers trip over: huge, tiny, negative zero, beyond i64
/// and u64, and ordinary ones.
pub fn json_number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| f.to_string()),
        Just("-0".to_string()),
        Just("1e400".to_string()),
        Just("-1e400".to_string()),
        Just("1e-400".to_string()),
        Just("123456789012345678901234567890".to_string()),
        Just("0.99999999999999999999999".to_string()),
        Just("1.0000000000000000001".to_string()),
        (0u32..3000).prop_map(|n| format!("1{}", "0".repeat(n as usize))),
    ]
}

/// An arbitrary JSON value, nested at most `depth` levels.
pub fn json_value(depth: u32) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        (0.0f64..=1.0).prop_map(Value::from),
        tricky_string(24).prop_map(Value::String),
    ];
    leaf.prop_recursive(depth, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => tricky_string(8),
        1 => prop::sample::select(vec![
            "text", "intent", "language", "confidence", "source", "user_message",
            "nlu_intent", "nlu_confidence", "nlu_provider", "phoneNumber", "sessionId",
            "conversation_id", "feedback", "id", "result", "annotations", "tasks",
        ])
        .prop_map(str::to_string),
    ]
}

/// JSON nested `depth` arrays deep, as text (serde_json refuses past 128).
pub fn deep_nesting(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// Ways to break a valid document: cut it, flip a byte, splice in bytes,
/// or replace one field's value.
#[derive(Debug, Clone)]
pub enum Mutation {
    Truncate(prop::sample::Index),
    FlipByte(prop::sample::Index, u8),
    Insert(prop::sample::Index, Vec<u8>),
    Delete(prop::sample::Index, prop::sample::Index),
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::FlipByte(i, b)),
        (
            any::<prop::sample::Index>(),
            prop_oneof![
                prop::collection::vec(any::<u8>(), 1..8),
                tricky_string(6).prop_map(String::into_bytes),
                json_number_text().prop_map(String::into_bytes),
            ]
        )
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<prop::sample::Index>(), any::<prop::sample::Index>())
            .prop_map(|(a, b)| Mutation::Delete(a, b)),
    ]
}

impl Mutation {
    pub fn apply(&self, doc: &[u8]) -> Vec<u8> {
        let mut out = doc.to_vec();
        if out.is_empty() {
            return out;
        }
        match self {
            Mutation::Truncate(i) => out.truncate(i.index(out.len())),
            Mutation::FlipByte(i, b) => {
                let i = i.index(out.len());
                out[i] ^= b | 1;
            }
            Mutation::Insert(i, bytes) => {
                let i = i.index(out.len() + 1);
                out.splice(i..i, bytes.iter().copied());
            }
            Mutation::Delete(a, b) => {
                let (a, b) = (a.index(out.len()), b.index(out.len()));
                out.drain(a.min(b)..a.max(b));
            }
        }
        out
    }
}
