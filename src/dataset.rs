//! The JSONL sample format (DESIGN §5): one object per line,
//! `{"text", "intent", "language"?, "confidence"?, "source"?}`; extra fields
//! are ignored. Export writes it; train, eval and classify read it.
//!
//! Reading streams line by line so a million-line file costs constant memory,
//! and every error names the file, the line and the field, because the
//! operator fixing the file needs exactly those three things.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::lang::Language;
use crate::lines::{LineRead, LineReader, MAX_LINE_BYTES};
use crate::text::quoted;

/// Longest intent name, in characters.
pub const MAX_INTENT_CHARS: usize = 100;

/// The one rule for an intent name, whichever reader meets it (train, eval
/// and classify files, `samples import`, `ingest` and serve's records):
/// trimmed, not empty, at most [`MAX_INTENT_CHARS`] characters, no control
/// characters. Letters of any script with their combining marks
/// (`खाना_ऑर्डर`), spaces, punctuation and emoji (`order food 🍕`) are all
/// names teams give intents. The error completes "field `intent` …".
pub fn intent_name(raw: &str) -> std::result::Result<&str, String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("is empty".into());
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(format!(
            "{} holds a control character (U+{:04X})",
            quoted(name),
            u32::from(c)
        ));
    }
    let chars = name.chars().count();
    if chars > MAX_INTENT_CHARS {
        return Err(format!(
            "{} is {chars} characters long; an intent name has at most {MAX_INTENT_CHARS}",
            quoted(name)
        ));
    }
    Ok(name)
}

/// One labelled utterance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub text: String,
    pub intent: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<Language>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl Sample {
    pub fn new(text: impl Into<String>, intent: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            intent: intent.into(),
            language: None,
            confidence: None,
            source: None,
        }
    }
}

/// A line of a file to classify: like a [`Sample`] but the intent is optional.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub text: String,
    pub intent: Option<String>,
    pub language: Option<Language>,
    pub confidence: Option<f32>,
    pub source: Option<String>,
}

/// Streams [`Record`]s from JSONL, skipping blank lines (lines split as
/// [`crate::lines`] does for every reader).
pub struct RecordReader<R> {
    name: String,
    lines: LineReader<R>,
}

impl RecordReader<BufReader<Box<dyn Read + Send>>> {
    /// Open a file, or standard input for `-`.
    pub fn open(path: &Path) -> Result<Self> {
        let (name, inner): (String, Box<dyn Read + Send>) = if path == Path::new("-") {
            ("<stdin>".into(), Box::new(std::io::stdin()))
        } else {
            let file = File::open(path)
                .map_err(|e| Error::bad_input(format!("cannot open {}: {e}", path.display())))?;
            (path.display().to_string(), Box::new(file))
        };
        Ok(Self::new(name, BufReader::new(inner)))
    }
}

impl<R: BufRead> RecordReader<R> {
    /// `name` is what errors call the input (usually the path).
    pub fn new(name: impl Into<String>, reader: R) -> Self {
        Self {
            name: name.into(),
            lines: LineReader::new(reader),
        }
    }

    fn err(&self, message: impl std::fmt::Display) -> Error {
        Error::bad_input(format!("{}:{}: {message}", self.name, self.lines.number()))
    }
}

impl<R: BufRead> Iterator for RecordReader<R> {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let parsed = match self.lines.next_line() {
                Ok(None) => return None,
                Ok(Some((_, LineRead::TooLong))) => {
                    Err(format!("line longer than {MAX_LINE_BYTES} bytes"))
                }
                // Bytes first: a line of invalid UTF-8 must be reported as
                // such, not as "malformed JSON".
                Ok(Some((_, LineRead::Line(bytes)))) => match std::str::from_utf8(bytes) {
                    Ok(text) if text.trim().is_empty() => continue,
                    Ok(text) => parse_record(text.trim()),
                    Err(e) => Err(format!(
                        "invalid UTF-8 at byte {} of the line",
                        e.valid_up_to()
                    )),
                },
                Err(e) => {
                    return Some(Err(Error::bad_input(format!(
                        "{}: read error after line {}: {e}",
                        self.name,
                        self.lines.number()
                    ))));
                }
            };
            return Some(parsed.map_err(|m| self.err(m)));
        }
    }
}

/// Parse one JSONL line; the error message names the offending field.
pub fn parse_record(line: &str) -> std::result::Result<Record, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("malformed JSON: {e}"))?;
    let Value::Object(obj) = value else {
        return Err("expected a JSON object".into());
    };
    let text = string_field(&obj, "text")?.ok_or("missing field `text`")?;
    if text.trim().is_empty() {
        return Err("field `text` is empty".into());
    }
    let intent = match string_field(&obj, "intent")? {
        Some(i) => Some(
            intent_name(&i)
                .map_err(|reason| format!("field `intent` {reason}"))?
                .to_string(),
        ),
        None => None,
    };
    let language = match string_field(&obj, "language")? {
        None => None,
        Some(code) => Some(Language::parse(&code).ok_or_else(|| {
            format!(
                "field `language`: unknown language {} (expected en, hinglish, hi, mr or other)",
                quoted(&code)
            )
        })?),
    };
    let confidence = match obj.get("confidence") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_f64().map(|c| c as f32),
        Some(_) => return Err("field `confidence` must be a number".into()),
    };
    let source = string_field(&obj, "source")?;
    Ok(Record {
        text,
        intent,
        language,
        confidence,
        source,
    })
}

fn string_field(
    obj: &Map<String, Value>,
    name: &str,
) -> std::result::Result<Option<String>, String> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("field `{name}` must be a string")),
    }
}

/// Streams labelled [`Sample`]s: like [`RecordReader`] but `intent` is required.
pub fn samples<R: BufRead>(reader: RecordReader<R>) -> impl Iterator<Item = Result<Sample>> {
    let mut reader = reader;
    std::iter::from_fn(move || {
        let record = reader.next()?;
        Some(record.and_then(|r| match r.intent {
            Some(intent) => Ok(Sample {
                text: r.text,
                intent,
                language: r.language,
                confidence: r.confidence,
                source: r.source,
            }),
            None => Err(reader.err("missing field `intent`")),
        }))
    })
}

/// Read every labelled sample of a file; the first bad line fails the whole
/// read, so nothing is half-used.
pub fn read_samples(path: &Path) -> Result<Vec<Sample>> {
    samples(RecordReader::open(path)?).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(input: &[u8]) -> Result<Vec<Sample>> {
        samples(RecordReader::new("f.jsonl", input)).collect()
    }

    #[test]
    fn reads_samples_ignoring_extra_fields_and_blank_lines() {
        let got = read(
            b"{\"text\":\"hi\",\"intent\":\"greet\",\"language\":\"en\",\"x\":1}\n\n{\"text\":\"bye\",\"intent\":\"bye\",\"confidence\":0.5}",
        )
        .unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].language, Some(Language::En));
        assert_eq!(got[1].confidence, Some(0.5));
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let cases: [(&[u8], &str); 7] = [
            (
                b"{\"text\":\"a\",\"intent\":\"x\"}\n{oops\n",
                "f.jsonl:2: malformed JSON",
            ),
            (b"{\"intent\":\"x\"}\n", "f.jsonl:1: missing field `text`"),
            (b"{\"text\":\"a\"}\n", "f.jsonl:1: missing field `intent`"),
            (
                b"{\"text\":\"  \",\"intent\":\"x\"}\n",
                "f.jsonl:1: field `text` is empty",
            ),
            (
                b"{\"text\":\"a\",\"intent\":\"\"}\n",
                "f.jsonl:1: field `intent` is empty",
            ),
            (
                b"{\"text\":7,\"intent\":\"x\"}\n",
                "f.jsonl:1: field `text` must be a string",
            ),
            (
                b"{\"text\":\"a\xff\",\"intent\":\"x\"}\n",
                "f.jsonl:1: invalid UTF-8",
            ),
        ];
        for (input, want) in cases {
            let err = read(input).unwrap_err();
            assert!(
                err.message().starts_with(want),
                "{} !~ {want}",
                err.message()
            );
            assert_eq!(err.kind(), crate::error::ErrorKind::BadInput);
        }
    }
}
