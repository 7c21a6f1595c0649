//! Every JSONL reader reads lines and intents the same way (issue 13 items
//! 13 and 14): `samples import`, `ingest` and the train/eval/classify file
//! reader accept a UTF-8 byte order mark at the start, refuse a line over
//! 1 MiB naming it, take the same intent names (`order food 🍕`,
//! `खाना_ऑर्डर`), and show text in their messages as text.

mod support;

use std::path::{Path, PathBuf};

use chrono::Utc;
use flywheel::capture::record::conversation_record;
use flywheel::capture::user_hash::UserHasher;
use flywheel::dataset::parse_record;
use flywheel::stages::samples_import::{ImportSource, validate};
use proptest::prelude::*;
use serde_json::json;
use support::fuzz::{config, tricky_string};
use support::{TestDb, scalar};

const BOM: &str = "\u{feff}";

fn sample_line(text: &str, intent: &str) -> String {
    json!({"text": text, "intent": intent, "language": "en"}).to_string()
}

fn record_line(text: &str, intent: &str) -> String {
    json!({"user_message": text, "nlu_intent": intent, "nlu_confidence": 0.9,
           "nlu_provider": "other-nlu"})
    .to_string()
}

fn write(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// The exit code and stderr of `flywheel ARGS FILE` on `db`.
fn run(db: &TestDb, args: &[&str], file: &Path) -> (i32, String) {
    let out = db.cmd().args(args).arg(file).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A file saved with a byte order mark was refused: "line 1: not valid JSON".
#[test]
fn a_byte_order_mark_at_the_start_is_accepted_by_every_reader() {
    for db in TestDb::all() {
        let dir = db.data_path();
        let samples: Vec<String> = (0..24)
            .map(|i| sample_line(&format!("hello number {i}"), ["greet", "bye"][i % 2]))
            .collect();
        let mut with_bom = samples.clone();
        with_bom[0] = format!("{BOM}{}", with_bom[0]);
        let file = write(dir, "samples.jsonl", &with_bom);
        assert_eq!(run(&db, &["samples", "import"], &file).0, 0);
        let records = [format!("{BOM}{}", record_line("hi there", "greet"))];
        let file = write(dir, "records.jsonl", &records);
        let (code, stderr) = run(&db, &["ingest"], &file);
        assert_eq!(code, 0, "{stderr}");
        let model = dir.join("model");
        let file = write(dir, "train.jsonl", &with_bom);
        let (code, stderr) = run(
            &db,
            &[
                "train",
                "--epochs",
                "1",
                "--output",
                model.to_str().unwrap(),
                "--input",
            ],
            &file,
        );
        assert_eq!(code, 0, "{stderr}");

        db.with_store(move |store| async move {
            assert_eq!(
                scalar(&store, "SELECT COUNT(*) FROM training_samples").await,
                24
            );
            assert_eq!(
                scalar(&store, "SELECT COUNT(*) FROM conversation_logs").await,
                1
            );
        });
    }
}

/// `samples import` had no line cap (a 100 MB line peaked at 222 MB);
/// `ingest` capped at 1 MiB. One cap now, and the line is named.
#[test]
fn a_line_over_one_mebibyte_is_refused_by_every_reader_naming_it() {
    let db = TestDb::sqlite();
    let dir = db.data_path();
    let long = "x".repeat(2 * 1024 * 1024);
    for (args, lines) in [
        (
            &["samples", "import"][..],
            vec![sample_line("fine", "greet"), sample_line(&long, "greet")],
        ),
        (
            &["ingest"][..],
            vec![record_line("fine", "greet"), record_line(&long, "greet")],
        ),
        (
            &["train", "--output", "m", "--input"][..],
            vec![sample_line("fine", "greet"), sample_line(&long, "greet")],
        ),
    ] {
        let file = write(dir, "long.jsonl", &lines);
        let (code, stderr) = run(&db, args, &file);
        assert_eq!(code, 65, "{args:?}: {stderr}");
        assert!(
            stderr.contains("longer than 1048576 bytes") && stderr.contains('2'),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.contains(":2: line longer") || stderr.contains("line 2: longer"),
            "{args:?} names line 2: {stderr}"
        );
    }
}

/// `samples import` refused intents `ingest` accepted (`order food 🍕`)
/// and Devanagari ones, printing them escaped (`"खाना_ऑर\u{94d}डर"`).
#[test]
fn samples_import_takes_the_intents_ingest_takes_and_prints_them_as_text() {
    for db in TestDb::all() {
        let dir = db.data_path();
        let intents = ["order food 🍕", "खाना_ऑर्डर", "track.order:v2"];
        let lines: Vec<String> = intents
            .iter()
            .enumerate()
            .map(|(i, intent)| sample_line(&format!("utterance {i}"), intent))
            .collect();
        let file = write(dir, "intents.jsonl", &lines);
        let (code, stderr) = run(&db, &["samples", "import"], &file);
        assert_eq!(code, 0, "{stderr}");
        let file = write(
            dir,
            "records.jsonl",
            &intents
                .iter()
                .map(|i| record_line("same text", i))
                .collect::<Vec<_>>(),
        );
        let (code, stderr) = run(&db, &["ingest"], &file);
        assert_eq!(code, 0, "{stderr}");
        db.with_store(move |store| async move {
            let stored = scalar(
                &store,
                "SELECT COUNT(*) FROM training_samples WHERE intent IN ('order food 🍕', 'खाना_ऑर्डर', 'track.order:v2')",
            )
            .await;
            assert_eq!(stored, 3);
        });

        // A contradiction between two Devanagari labels is shown as text.
        let file = write(
            dir,
            "contradiction.jsonl",
            &[
                sample_line("khana chahiye", "खाना_ऑर्डर"),
                sample_line("Khana chahiye!", "खाना_रद्द"),
            ],
        );
        let (code, stderr) = run(&db, &["samples", "import"], &file);
        assert_eq!(code, 65, "{stderr}");
        assert!(
            stderr.contains("\"खाना_रद्द\" contradicts line 1") && stderr.contains("\"खाना_ऑर्डर\""),
            "{stderr}"
        );
        assert!(!stderr.contains("\\u{"), "{stderr}");
    }
}

/// What an intent name is, said independently of `dataset::intent_name`:
/// trimmed, 1 to 100 characters, no control character.
fn is_intent_name(raw: &str) -> bool {
    let name = raw.trim();
    !name.is_empty() && name.chars().count() <= 100 && !name.chars().any(char::is_control)
}

fn intent() -> impl Strategy<Value = String> {
    prop_oneof![
        tricky_string(12),
        "[a-z][a-z0-9_.:-]{0,20}",
        Just("order food 🍕".to_string()),
        Just("खाना_ऑर्डर".to_string()),
        (95usize..105).prop_map(|n| "ख".repeat(n)),
        (95usize..105).prop_map(|n| "a".repeat(n)),
    ]
}

proptest! {
    #![proptest_config(config(128))]

    /// One rule: the file reader of train/eval/classify, `samples import`
    /// and `ingest`'s records accept exactly the same intents, and a
    /// refusal shows the intent's letters as themselves.
    #[test]
    fn every_reader_takes_the_same_intent_names(raw in intent()) {
        let want = is_intent_name(&raw);

        let dataset = parse_record(&sample_line("some text", &raw));
        prop_assert_eq!(dataset.is_ok(), want, "dataset: {:?}", dataset);

        let record = conversation_record(
            &json!({"user_message": "some text", "nlu_intent": raw,
                    "nlu_confidence": 0.5, "nlu_provider": "x"}),
            &UserHasher::from_key([7; 32]),
            Utc::now(),
        );
        // A blank intent is "required" there, as a missing one.
        prop_assert_eq!(record.is_ok(), want, "ingest: {:?}", record.as_ref().err());

        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(dir.path(), "one.jsonl", &[sample_line("some text", &raw)]);
        let import = validate(&path, ImportSource::Import).err();
        prop_assert_eq!(import.is_none(), want, "samples import: {:?}", import);

        if let Some(err) = import {
            let message = err.message();
            prop_assert!(message.contains("field `intent`"), "{}", message);
            // Letters of any script print as themselves (only control
            // characters, quotes and backslashes are escaped).
            if !raw.chars().any(|c| c.is_control() || c == '"' || c == '\\') {
                let shown: String = raw.trim().chars().take(20).collect();
                prop_assert!(message.contains(&shown), "{} lacks {}", message, shown);
            }
        }
    }
}
