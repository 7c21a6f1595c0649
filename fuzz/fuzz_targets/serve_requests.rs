//! The request parsers of `flywheel serve` on arbitrary bodies, the way the
//! handlers call them: body → JSON → classify / feedback / bulk records.
//! A refused request always names a field.
#![no_main]

use flywheel::capture::record::{ClassifyRequest, FeedbackRequest, conversation_record};
use flywheel::capture::user_hash::UserHasher;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let hasher = UserHasher::from_key([5; 32]);
    if let Err(err) = ClassifyRequest::parse(&value, &hasher) {
        assert!(!err.field.is_empty());
    }
    if let Err(err) = FeedbackRequest::parse(&value) {
        assert!(!err.field.is_empty());
    }
    let now = chrono::Utc::now();
    if let Value::Array(records) = &value {
        for (i, record) in records.iter().enumerate() {
            if let Err(err) = conversation_record(record, &hasher, now) {
                let err = err.within(&format!("[{i}]."));
                assert!(err.field.starts_with(&format!("[{i}].")) && err.field.len() > 4);
            }
        }
    }
});
