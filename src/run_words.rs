//! A stage run's record in words, for people: how long it took and what it
//! counted. `job_runs.counts` stores a JSON object per run (whatever the
//! stage's outcome serialises to); `flywheel jobs` and the console's job
//! runs show it as "10 370 captured, 9 991 auto-approved, ready for
//! training" instead of the raw JSON.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::health::human_duration;
use crate::storage::Timestamp;

/// Run time of something that started at `start` and ended at `end` (or
/// runs still, at `now`): "3.0 s" under a minute, then "5 min", "2 h 3 min".
pub fn took(start: Timestamp, end: Option<Timestamp>, now: DateTime<Utc>) -> String {
    let d = end.map_or(now, |e| e.0) - start.0;
    if d.num_seconds() < 60 {
        format!("{:.1} s", d.num_milliseconds().max(0) as f64 / 1000.0)
    } else {
        human_duration(d)
    }
}

/// `3266` → "3 266": digits grouped by three, as the README writes counts.
pub fn grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// A run's stored counts in words. Zero counts, `false`, nulls and empty
/// lists say nothing and are left out; nested objects (a bootstrap's
/// outcome) are read in place. Text that is not a JSON object is shown as
/// it is, so nothing recorded is hidden.
pub fn counts_in_words(counts: &str) -> String {
    let phrases = count_phrases(counts);
    if phrases.is_empty() {
        "nothing counted".into()
    } else {
        phrases.join(", ")
    }
}

/// The phrases of [`counts_in_words`], one per count (a run's detail
/// shows them a line each).
pub fn count_phrases(counts: &str) -> Vec<String> {
    match serde_json::from_str::<Value>(counts) {
        Ok(Value::Object(map)) => {
            let mut phrases = Vec::new();
            object_phrases(&map, &mut phrases);
            phrases
        }
        _ => vec![counts.to_string()],
    }
}

fn object_phrases(map: &serde_json::Map<String, Value>, out: &mut Vec<String>) {
    for (key, value) in map {
        let words = key_words(key);
        match value {
            Value::Null | Value::Bool(false) => {}
            Value::Bool(true) => out.push(words),
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    if i != 0 {
                        out.push(format!("{} {words}", grouped(i)));
                    }
                } else if let Some(x) = n.as_f64() {
                    out.push(if key == "seconds" {
                        format!("{x:.1} s")
                    } else if x.abs() <= 1.0 {
                        format!("{words} {x:.3}")
                    } else {
                        format!("{words} {x:.1}")
                    });
                }
            }
            // An outcome's name is the phrase itself ("skipped", "deployed").
            Value::String(s) if key == "outcome" => out.push(s.clone()),
            Value::String(s) => out.push(format!("{words} {s}")),
            Value::Array(items) if items.is_empty() => {}
            Value::Array(items) => {
                let texts: Vec<String> = items
                    .iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                    .collect();
                out.push(format!("{words}: {}", texts.join("; ")));
            }
            Value::Object(inner) => object_phrases(inner, out),
        }
    }
}

/// `approved_unused` → "approved unused"; a few names read better otherwise.
fn key_words(key: &str) -> String {
    match key {
        "auto_approved" => "auto-approved".into(),
        "needs_review" => "to review".into(),
        "folded_into_existing" => "folded into existing samples".into(),
        _ => key.replace('_', " "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_as_words_with_grouped_digits() {
        assert_eq!(
            counts_in_words(
                r#"{"already_reviewed":0,"approved_unused":3266,"auto_approved":9991,"needs_review":223,"ready_for_training":true,"audits_drawn":0}"#
            ),
            "3 266 approved unused, 9 991 auto-approved, 223 to review, ready for training"
        );
    }

    #[test]
    fn nested_outcomes_texts_and_errors_are_read_in_place() {
        // Stored keys come out sorted (jobs.rs writes them through a JSON value).
        assert_eq!(
            counts_in_words(
                r#"{"bootstrap":{"outcome":"deployed","seconds":40.24,"seed_samples_created":1200,"test_accuracy":0.9123,"version":"router-v1.0.0"}}"#
            ),
            "deployed, 40.2 s, 1 200 seed samples created, test accuracy 0.912, version router-v1.0.0"
        );
        assert_eq!(
            counts_in_words(
                r#"{"errors":["task 4: no choice","task 9: unknown intent"],"pulled":2,"pushed":0}"#
            ),
            "errors: task 4: no choice; task 9: unknown intent, 2 pulled"
        );
        assert_eq!(
            counts_in_words(r#"{"pushed":0,"errors":[]}"#),
            "nothing counted"
        );
        assert_eq!(counts_in_words("not json"), "not json");
    }

    #[test]
    fn digits_group_by_three() {
        for (n, text) in [
            (0, "0"),
            (999, "999"),
            (1000, "1 000"),
            (10370, "10 370"),
            (1234567, "1 234 567"),
            (-4500, "-4 500"),
        ] {
            assert_eq!(grouped(n), text);
        }
    }
}
