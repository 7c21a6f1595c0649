//! Fuzzing the JSONL readers (issue 8): the sample reader of train, eval and
//! classify (`dataset`), `samples import`, and `ingest`'s conversation lines.
//! Arbitrary bytes never panic; every error names its line (and the field,
//! when the line is a JSON object); valid generated lines read back with the
//! fields written.

mod support;

use std::sync::OnceLock;

use flywheel::capture::ingest::Ingest;
use flywheel::capture::user_hash::UserHasher;
use flywheel::config::Config;
use flywheel::dataset::{RecordReader, Sample, samples};
use flywheel::error::ErrorKind;
use flywheel::jobs::{self, Launch, Trigger};
use flywheel::lang::Language;
use flywheel::stages::samples_import::{ImportSource, validate};
use flywheel::storage::Store;
use proptest::prelude::*;
use serde_json::{Value, json};
use support::fuzz::{
    config, installation, json_number_text, json_value, mutation, runtime, tricky_string,
    utterance, without_nul,
};

const LANGUAGES: &[(&str, Language)] = &[
    ("en", Language::En),
    ("hinglish", Language::Hinglish),
    ("hi", Language::Hi),
    ("mr", Language::Mr),
    ("other", Language::Other),
];

/// A sample line as generated, with what it must read back as.
#[derive(Debug, Clone)]
struct GenSample {
    sample: Sample,
    /// How the language was spelled (`" HI "` is Hindi too).
    language_spelling: Option<String>,
    extra: Vec<(String, Value)>,
}

impl GenSample {
    fn line(&self) -> String {
        let mut obj = serde_json::Map::new();
        for (k, v) in &self.extra {
            obj.insert(k.clone(), v.clone());
        }
        obj.insert("text".into(), json!(self.sample.text));
        obj.insert("intent".into(), json!(self.sample.intent));
        if let Some(l) = &self.language_spelling {
            obj.insert("language".into(), json!(l));
        }
        if let Some(c) = self.sample.confidence {
            obj.insert("confidence".into(), json!(c));
        }
        if let Some(s) = &self.sample.source {
            obj.insert("source".into(), json!(s));
        }
        Value::Object(obj).to_string()
    }
}

fn intent_name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_.:-]{0,30}"
}

fn gen_sample() -> impl Strategy<Value = GenSample> {
    (
        utterance(),
        intent_name(),
        proptest::option::of((0..LANGUAGES.len(), any::<bool>(), any::<bool>())),
        proptest::option::of(0.0f32..=1.0),
        proptest::option::of(tricky_string(10)),
        prop::collection::vec(("x_[a-z]{1,6}", json_value(2)), 0..3),
    )
        .prop_map(|(text, intent, lang, confidence, source, extra)| {
            let (language, language_spelling) = match lang {
                None => (None, None),
                Some((i, upper, padded)) => {
                    let (code, language) = LANGUAGES[i];
                    let mut s = if upper {
                        code.to_uppercase()
                    } else {
                        code.to_string()
                    };
                    if padded {
                        s = format!(" {s}\t");
                    }
                    (Some(language), Some(s))
                }
            };
            GenSample {
                sample: Sample {
                    text,
                    intent,
                    language,
                    confidence,
                    source,
                },
                language_spelling,
                extra,
            }
        })
}

/// One line of a hostile file (never containing `\n` itself).
fn hostile_line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => gen_sample().prop_map(|s| s.line().into_bytes()),
        2 => json_value(4).prop_map(|v| v.to_string().into_bytes()),
        2 => (gen_sample(), mutation()).prop_map(|(s, m)| m.apply(s.line().as_bytes())),
        1 => prop::collection::vec(any::<u8>(), 0..40),
        1 => tricky_string(30).prop_map(String::into_bytes),
        1 => json_number_text().prop_map(|n| format!("{{\"text\": \"x\", \"intent\": \"i\", \"confidence\": {n}}}").into_bytes()),
        1 => (1usize..200).prop_map(|d| support::fuzz::deep_nesting(d).into_bytes()),
        1 => Just(Vec::new()),
        1 => Just(b" \t\r".to_vec()),
    ]
    .prop_map(|mut line| {
        line.retain(|&b| b != b'\n');
        line
    })
}

fn join(lines: &[Vec<u8>], crlf: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for line in lines {
        out.extend_from_slice(line);
        out.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
    }
    out
}

/// The line numbers (1-based) of lines the readers do not skip as blank.
fn non_blank(lines: &[Vec<u8>]) -> Vec<usize> {
    lines
        .iter()
        .enumerate()
        .filter(|(_, l)| std::str::from_utf8(l).map_or(true, |t| !t.trim().is_empty()))
        .map(|(i, _)| i + 1)
        .collect()
}

/// Every item the record reader yields, with the line it must be about.
/// The reader gets its input through a buffer of `capacity` bytes, so
/// lines and characters straddle buffer boundaries.
fn check_record_reader(
    lines: &[Vec<u8>],
    crlf: bool,
    capacity: usize,
) -> Result<(), TestCaseError> {
    let bytes = join(lines, crlf);
    let input = std::io::BufReader::with_capacity(capacity, &bytes[..]);
    let items: Vec<_> = RecordReader::new("in.jsonl", input).collect();
    let expected = non_blank(lines);
    prop_assert_eq!(items.len(), expected.len());
    for (item, number) in items.iter().zip(&expected) {
        if let Err(err) = item {
            prop_assert_eq!(err.kind(), ErrorKind::BadInput);
            let prefix = format!("in.jsonl:{number}: ");
            prop_assert!(
                err.message().starts_with(&prefix),
                "{:?} does not start with {:?}",
                err.message(),
                prefix
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn record_reader_never_panics_and_names_the_line(
        lines in prop::collection::vec(hostile_line(), 0..12),
        crlf in any::<bool>(),
        capacity in prop_oneof![1usize..16, Just(8192)],
    ) {
        check_record_reader(&lines, crlf, capacity)?;
    }

    #[test]
    fn record_reader_survives_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        for item in RecordReader::new("in.jsonl", &bytes[..]) {
            if let Err(err) = item {
                prop_assert!(err.message().starts_with("in.jsonl:"), "{}", err.message());
            }
        }
    }

    #[test]
    fn valid_sample_lines_read_back_with_the_same_fields(
        generated in prop::collection::vec(gen_sample(), 1..10),
        blank_every in 0usize..4,
        crlf in any::<bool>(),
    ) {
        let mut lines = Vec::new();
        for (i, s) in generated.iter().enumerate() {
            if blank_every > 0 && i % blank_every == 0 {
                lines.push(b"   ".to_vec());
            }
            lines.push(s.line().into_bytes());
        }
        let bytes = join(&lines, crlf);
        let read: Vec<Sample> = samples(RecordReader::new("ok.jsonl", &bytes[..]))
            .collect::<Result<_, _>>()
            .map_err(|e| TestCaseError::fail(e.message().to_string()))?;
        let expected: Vec<Sample> = generated.into_iter().map(|g| g.sample).collect();
        prop_assert_eq!(read, expected);
    }

    #[test]
    fn a_broken_line_among_valid_ones_is_named_with_its_field(
        before in prop::collection::vec(gen_sample(), 0..5),
        broken in broken_sample_line(),
        after in prop::collection::vec(gen_sample(), 0..5),
    ) {
        let (line, field) = broken;
        let mut lines: Vec<Vec<u8>> = before.iter().map(|s| s.line().into_bytes()).collect();
        lines.push(line);
        lines.extend(after.iter().map(|s| s.line().into_bytes()));
        let number = before.len() + 1;
        let bytes = join(&lines, false);
        let err = samples(RecordReader::new("f.jsonl", &bytes[..]))
            .collect::<Result<Vec<_>, _>>()
            .expect_err("a broken line must fail the read");
        let prefix = format!("f.jsonl:{number}: ");
        prop_assert!(err.message().starts_with(&prefix), "{} vs {}", err.message(), prefix);
        if let Some(field) = field {
            prop_assert!(err.message().contains(&format!("`{field}`")), "{}", err.message());
        }
    }
}

/// A line that is certainly not a valid sample, and the field to blame
/// (`None` when the line is not a JSON object at all).
fn broken_sample_line() -> impl Strategy<Value = (Vec<u8>, Option<&'static str>)> {
    prop_oneof![
        (
            gen_sample(),
            json_value(2).prop_filter("not a string", |v| !v.is_string() && !v.is_null())
        )
            .prop_map(|(s, v)| (replace_field(&s, "text", v), Some("text"))),
        (
            gen_sample(),
            json_value(2).prop_filter("not a string", |v| !v.is_string() && !v.is_null())
        )
            .prop_map(|(s, v)| (replace_field(&s, "intent", v), Some("intent"))),
        (gen_sample(), "[ \t]{0,3}")
            .prop_map(|(s, ws)| (replace_field(&s, "text", json!(ws)), Some("text"))),
        (
            gen_sample(),
            "[a-z]{3,8}".prop_filter("unknown", |c| Language::parse(c).is_none())
        )
            .prop_map(|(s, code)| (replace_field(&s, "language", json!(code)), Some("language"))),
        (
            gen_sample(),
            json_value(1).prop_filter("not a number", |v| !v.is_number() && !v.is_null())
        )
            .prop_map(|(s, v)| (replace_field(&s, "confidence", v), Some("confidence"))),
        gen_sample().prop_map(|s| (remove_field(&s, "text"), Some("text"))),
        gen_sample().prop_map(|s| (remove_field(&s, "intent"), Some("intent"))),
        (gen_sample(), 1usize..40).prop_map(|(s, cut)| {
            let line = s.line();
            let cut = line.len().saturating_sub(cut).max(1);
            let mut bytes = line.into_bytes();
            bytes.truncate(cut);
            (bytes, None)
        }),
        json_value(3)
            .prop_filter("not an object", |v| !v.is_object())
            .prop_map(|v| (v.to_string().into_bytes(), None)),
        gen_sample().prop_map(|s| {
            let mut bytes = s.line().into_bytes();
            bytes.insert(2, 0xff);
            (bytes, None)
        }),
    ]
}

fn replace_field(s: &GenSample, field: &str, value: Value) -> Vec<u8> {
    let mut v: Value = serde_json::from_str(&s.line()).expect("generated lines are JSON");
    v[field] = value;
    v.to_string().into_bytes()
}

fn remove_field(s: &GenSample, field: &str) -> Vec<u8> {
    let mut v: Value = serde_json::from_str(&s.line()).expect("generated lines are JSON");
    v.as_object_mut().expect("object").remove(field);
    v.to_string().into_bytes()
}

// ---- samples import ------------------------------------------------------

/// What `samples import` accepts: a valid reader sample whose intent is a
/// name and whose text has a letter, made unique by a numbered first word.
fn importable(i: usize, s: &GenSample) -> GenSample {
    let mut s = s.clone();
    s.sample.text = format!("s{i}q {}", s.sample.text.trim());
    s
}

fn import_file(lines: &[Vec<u8>]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("samples.jsonl");
    std::fs::write(&path, join(lines, false)).expect("write");
    (dir, path)
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn samples_import_names_file_line_and_field_for_every_problem(
        lines in prop::collection::vec(hostile_line(), 1..12),
    ) {
        let (_dir, path) = import_file(&lines);
        match validate(&path, ImportSource::Import) {
            Ok(validated) => prop_assert_eq!(validated.summary.lines as usize, non_blank(&lines).len()),
            Err(err) => {
                prop_assert_eq!(err.kind(), ErrorKind::BadInput);
                let file = path.display().to_string();
                let mut listed = err.message().lines();
                let head = listed.next().unwrap_or_default();
                prop_assert!(head.starts_with(&format!("{file}: ")), "{}", head);
                for entry in listed {
                    let entry = entry.trim_start();
                    if entry.starts_with('…') {
                        continue;
                    }
                    let rest = entry.strip_prefix(&format!("{file}:"));
                    prop_assert!(rest.is_some(), "{}", entry);
                    let rest = rest.unwrap_or_default();
                    let (number, message) = rest.split_once(": ").unwrap_or(("", ""));
                    let number: usize = number.parse().map_err(|_| TestCaseError::fail(format!("no line number in {entry:?}")))?;
                    prop_assert!(number >= 1 && number <= lines.len(), "{}", entry);
                    prop_assert!(
                        message.starts_with("field `")
                            || message.starts_with("not valid UTF-8")
                            || message.starts_with("invalid JSON")
                            || message.starts_with("expected a JSON object"),
                        "{}", entry
                    );
                }
            }
        }
    }

    #[test]
    fn samples_import_reads_valid_lines_back(generated in prop::collection::vec(gen_sample(), 1..10)) {
        let generated: Vec<GenSample> = generated.iter().enumerate().map(|(i, s)| importable(i, s)).collect();
        let lines: Vec<Vec<u8>> = generated.iter().map(|s| s.line().into_bytes()).collect();
        let (_dir, path) = import_file(&lines);
        let validated = validate(&path, ImportSource::Synthetic)
            .map_err(|e| TestCaseError::fail(e.message().to_string()))?;
        let (read, summary) = (validated.samples, validated.summary);
        prop_assert_eq!(summary.lines as usize, generated.len());
        prop_assert_eq!(read.len(), generated.len());
        for (got, want) in read.iter().zip(&generated) {
            prop_assert_eq!(&got.text, want.sample.text.trim());
            prop_assert_eq!(&got.intent, &want.sample.intent);
            prop_assert_eq!(got.language.as_deref(), want.sample.language.map(|l| l.as_str()));
            // serde_json (without its `float_roundtrip` feature) may read a
            // float back one unit in the last place off: compare closely.
            match (got.confidence, want.sample.confidence.map(f64::from)) {
                (Some(a), Some(b)) => prop_assert!((a - b).abs() <= 1e-12, "{} vs {}", a, b),
                (a, b) => prop_assert_eq!(a, b),
            }
            prop_assert_eq!(got.source, "synthetic");
        }
    }

    #[test]
    fn samples_import_names_the_broken_line(
        before in prop::collection::vec(gen_sample(), 0..5),
        broken in broken_sample_line(),
    ) {
        let mut lines: Vec<Vec<u8>> = before.iter().enumerate().map(|(i, s)| importable(i, s).line().into_bytes()).collect();
        lines.push(broken.0);
        let (_dir, path) = import_file(&lines);
        let err = validate(&path, ImportSource::Import).expect_err("a broken line");
        let entry = format!("{}:{}: ", path.display(), lines.len());
        prop_assert!(err.message().contains(&entry), "{} lacks {}", err.message(), entry);
        if let Some(field) = broken.1 {
            prop_assert!(err.message().contains(&format!("{entry}field `{field}`")), "{}", err.message());
        }
    }
}

// ---- ingest (conversation records) ----------------------------------------

struct IngestFixture {
    runtime: tokio::runtime::Runtime,
    store: Store,
    config: Config,
    hasher: UserHasher,
    _dir: tempfile::TempDir,
}

impl IngestFixture {
    /// `ingest --dry-run` of `input` through the job framework.
    async fn dry_ingest(
        &self,
        input: impl tokio::io::AsyncBufRead + Unpin + Send,
        skip_invalid: bool,
    ) -> flywheel::Result<flywheel::capture::ingest::IngestReport> {
        let stage = Ingest {
            input,
            hasher: self.hasher.clone(),
            dry_run: true,
            skip_invalid,
        };
        jobs::run(stage, &Launch::new(&self.store, &self.config, Trigger::Cli)).await
    }
}

fn fixture() -> &'static IngestFixture {
    static FIXTURE: OnceLock<IngestFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let (dir, config) = installation();
        let runtime = runtime(1);
        let store = runtime
            .block_on(flywheel::storage::open(&config))
            .expect("store");
        IngestFixture {
            runtime,
            store,
            config,
            hasher: UserHasher::from_key([3; 32]),
            _dir: dir,
        }
    })
}

fn conversation_record() -> impl Strategy<Value = Value> {
    (
        utterance().prop_map(without_nul),
        intent_name(),
        0.0f64..=1.0,
        "[a-z-]{1,20}",
        proptest::option::of(0..LANGUAGES.len()),
        proptest::option::of("[+]?[0-9 ]{1,15}[0-9]"),
        proptest::option::of(utterance().prop_map(without_nul)),
        proptest::option::of(any::<bool>()),
        proptest::option::of(0i64..1_700_000_000),
    )
        .prop_map(
            |(text, intent, confidence, provider, lang, phone, session, fallback, at)| {
                let mut v = json!({"user_message": text, "nlu_intent": intent,
                               "nlu_confidence": confidence, "nlu_provider": provider});
                if let Some(i) = lang {
                    v["language"] = json!(LANGUAGES[i].0);
                }
                if let Some(p) = phone {
                    v["phone_number"] = json!(p);
                }
                if let Some(s) = session {
                    v["session_id"] = json!(s.chars().take(50).collect::<String>());
                }
                if let Some(f) = fallback {
                    v["fallback"] = json!(f);
                }
                if let Some(secs) = at {
                    let at = chrono::DateTime::from_timestamp(secs, 0).expect("in range");
                    v["created_at"] = json!(at.to_rfc3339());
                }
                v
            },
        )
}

/// A line for ingest: valid records, broken records and hostile bytes.
fn ingest_line() -> impl Strategy<Value = (Vec<u8>, Option<bool>)> {
    prop_oneof![
        3 => conversation_record().prop_map(|v| (v.to_string().into_bytes(), Some(true))),
        2 => (conversation_record(), prop::sample::select(vec!["user_message", "nlu_intent", "nlu_confidence", "nlu_provider"]))
            .prop_map(|(mut v, f)| { v.as_object_mut().expect("object").remove(f); (v.to_string().into_bytes(), Some(false)) }),
        2 => (conversation_record(), mutation()).prop_map(|(v, m)| (m.apply(v.to_string().as_bytes()), None)),
        2 => hostile_line().prop_map(|l| (l, None)),
    ]
    .prop_map(|(mut line, valid)| {
        line.retain(|&b| b != b'\n');
        (line, valid)
    })
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn ingest_counts_every_line_and_names_bad_ones(
        generated in prop::collection::vec(ingest_line(), 0..15),
        skip_invalid in any::<bool>(),
        crlf in any::<bool>(),
        capacity in prop_oneof![1usize..16, Just(8192)],
    ) {
        let f = fixture();
        let lines: Vec<Vec<u8>> = generated.iter().map(|(l, _)| l.clone()).collect();
        let bytes = join(&lines, crlf);
        // A small buffer: lines and characters straddle its refills.
        let input = tokio::io::BufReader::with_capacity(capacity, &bytes[..]);
        let result = f.runtime.block_on(f.dry_ingest(input, skip_invalid));
        let blank = |l: &Vec<u8>| l.iter().all(u8::is_ascii_whitespace);
        let counted = lines.iter().filter(|l| !blank(l)).count() as u64;
        match result {
            Ok(report) => {
                prop_assert_eq!(report.valid + report.invalid, counted);
                prop_assert!(skip_invalid || report.invalid == 0);
                prop_assert_eq!(report.imported, 0);
                let mut previous = 0;
                for e in &report.errors {
                    prop_assert!(e.line > previous && e.line as usize <= lines.len(), "{:?}", e);
                    previous = e.line;
                    let expected = generated[e.line as usize - 1].1;
                    prop_assert!(expected != Some(true), "a valid record was refused: {:?}", e);
                    if expected == Some(false) {
                        prop_assert!(e.field.is_some(), "{:?}", e);
                    }
                }
                for (i, (_, valid)) in generated.iter().enumerate() {
                    if *valid == Some(false) {
                        prop_assert!(report.errors.iter().any(|e| e.line as usize == i + 1));
                    }
                }
            }
            Err(err) => {
                prop_assert!(!skip_invalid, "skip-invalid must not fail: {}", err.message());
                prop_assert_eq!(err.kind(), ErrorKind::BadInput);
                prop_assert!(err.message().contains("line "), "{}", err.message());
            }
        }
    }
}

/// Lines past ingest's limit are refused by number without being held, and
/// the lines after them are still read.
#[test]
fn example_an_overlong_ingest_line_is_named() {
    let f = fixture();
    let good = r#"{"user_message": "hi", "nlu_intent": "greet", "nlu_confidence": 0.5, "nlu_provider": "x"}"#;
    let long = format!("{{\"user_message\": \"{}\"}}", "ह".repeat(400_000));
    assert!(long.len() > flywheel::capture::ingest::MAX_LINE_BYTES);
    let bytes = format!("{good}\n{long}\n{good}\n");
    let input = tokio::io::BufReader::with_capacity(4096, bytes.as_bytes());
    let report = f
        .runtime
        .block_on(f.dry_ingest(input, true))
        .expect("skip-invalid reports");
    assert_eq!((report.valid, report.invalid), (2, 1));
    assert_eq!(report.errors[0].line, 2);
    assert!(
        report.errors[0].message.contains("longer than"),
        "{:?}",
        report.errors
    );
}
