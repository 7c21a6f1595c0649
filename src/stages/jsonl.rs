//! A tiny line-numbered JSONL reader for labelled samples (DESIGN §5
//! format). Blank lines are skipped; every other line must be a JSON object.
//! (The router's `dataset` module will own this format; reconcile then.)

use std::io::BufRead;
use std::path::Path;

use crate::error::{Error, Result};
use crate::lines::{LineRead, LineReader, MAX_LINE_BYTES};

/// One non-blank line: its 1-based number and the parsed object.
pub struct Line {
    pub number: usize,
    pub value: serde_json::Map<String, serde_json::Value>,
}

/// Read every line of `path`. Lines that are not UTF-8 or not a JSON object
/// become `Err(message)` entries, so the caller can report them all at once.
pub fn read_lines(path: &Path) -> Result<Vec<std::result::Result<Line, (usize, String)>>> {
    let file = std::fs::File::open(path)
        .map_err(|err| Error::bad_input(format!("cannot open {}: {err}", path.display())))?;
    read_lines_from(&path.display().to_string(), std::io::BufReader::new(file))
}

/// [`read_lines`] over any reader; `name` is what errors call it. Lines
/// are split as [`crate::lines`] does for every reader (a line over 1 MiB
/// is refused unread, a byte order mark at the start is dropped).
pub fn read_lines_from(
    name: &str,
    reader: impl BufRead,
) -> Result<Vec<std::result::Result<Line, (usize, String)>>> {
    let mut out = Vec::new();
    let mut lines = LineReader::new(reader);
    while let Some((number, read)) = lines
        .next_line()
        .map_err(|err| Error::failure(format!("reading {name}: {err}")))?
    {
        let number = number as usize;
        let bytes = match read {
            LineRead::Line(bytes) => bytes,
            LineRead::TooLong => {
                out.push(Err((
                    number,
                    format!("line longer than {MAX_LINE_BYTES} bytes"),
                )));
                continue;
            }
        };
        let Ok(text) = std::str::from_utf8(bytes) else {
            out.push(Err((number, "not valid UTF-8".to_string())));
            continue;
        };
        if text.trim().is_empty() {
            continue;
        }
        out.push(match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(value)) => Ok(Line { number, value }),
            Ok(other) => Err((
                number,
                format!("expected a JSON object, got {}", kind(&other)),
            )),
            Err(err) => Err((number, format!("invalid JSON: {err}"))),
        });
    }
    Ok(out)
}

pub fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}
