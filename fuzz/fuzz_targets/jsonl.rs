//! The JSONL readers on arbitrary bytes: the sample reader (train, eval,
//! classify), `samples import`'s validation, and ingest's per-line record
//! parsing. Errors must name their line.
#![no_main]

use std::sync::OnceLock;

use flywheel::capture::record::conversation_record;
use flywheel::capture::user_hash::UserHasher;
use flywheel::dataset::RecordReader;
use flywheel::stages::samples_import::{ImportSource, validate};
use libfuzzer_sys::fuzz_target;

fn workdir() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("tempdir"))
}

fuzz_target!(|data: &[u8]| {
    let lines = data.split(|&b| b == b'\n').count();
    for item in RecordReader::new("in.jsonl", data) {
        if let Err(err) = item {
            let rest = err
                .message()
                .strip_prefix("in.jsonl:")
                .expect("names the input");
            let number: usize = rest
                .split(':')
                .next()
                .unwrap()
                .parse()
                .expect("a line number");
            assert!((1..=lines).contains(&number), "{}", err.message());
        }
    }

    let path = workdir().path().join("samples.jsonl");
    std::fs::write(&path, data).expect("write");
    if let Err(err) = validate(&path, ImportSource::Import) {
        assert!(
            err.message().starts_with(&path.display().to_string()),
            "{}",
            err.message()
        );
    }

    let hasher = UserHasher::from_key([5; 32]);
    let now = chrono::Utc::now();
    for line in data.split(|&b| b == b'\n') {
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(line) {
            if let Err(err) = conversation_record(&value, &hasher, now) {
                assert!(!err.field.is_empty());
            }
        }
    }
});
