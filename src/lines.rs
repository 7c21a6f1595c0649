//! Splitting JSONL input into lines, the same way for every reader (train,
//! eval and classify files, `samples import`, `ingest`):
//!
//! - at most [`MAX_LINE_BYTES`] of a line is ever held: a longer line is
//!   reported as [`LineRead::TooLong`] and its bytes skipped, so a 100 MB
//!   line costs no more memory than a short one;
//! - a UTF-8 byte order mark at the start of the input is not part of the
//!   first line (editors on Windows write one);
//! - `\r\n` ends a line like `\n`.
//!
//! One splitter serves blocking readers ([`LineReader::next_line`]) and
//! tokio's ([`LineReader::next_line_async`]).

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// A line longer than this is refused without being held in memory.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

const BYTE_ORDER_MARK: &[u8] = b"\xEF\xBB\xBF";

/// One line of input.
#[derive(Debug, PartialEq, Eq)]
pub enum LineRead<'a> {
    /// The line's bytes, without its line end.
    Line(&'a [u8]),
    /// The line was longer than [`MAX_LINE_BYTES`]; its bytes were skipped.
    TooLong,
}

/// Reads `input` a line at a time; see the module docs.
pub struct LineReader<R> {
    input: R,
    line: PendingLine,
    /// The 1-based number of the line last returned.
    number: u64,
}

/// The line being read.
struct PendingLine {
    buf: Vec<u8>,
    /// It passed the cap: skip to its end.
    too_long: bool,
    /// Some of its bytes were seen (a last line without `\n` still counts).
    started: bool,
}

/// Where a chunk of input left the pending line.
enum End {
    /// The line ended at a `\n`.
    Line,
    /// The input ended: after part of a line, or between lines.
    Input,
}

impl PendingLine {
    fn clear(&mut self) {
        self.buf.clear();
        self.too_long = false;
        self.started = false;
    }

    /// Take what belongs to this line from `available` (empty: the input
    /// ended), holding at most [`MAX_LINE_BYTES`]: how many bytes were
    /// used, and whether the line or the input ended.
    fn take(&mut self, available: &[u8]) -> (usize, Option<End>) {
        if available.is_empty() {
            return (0, Some(End::Input));
        }
        self.started = true;
        let newline = available.iter().position(|&b| b == b'\n');
        let chunk = &available[..newline.unwrap_or(available.len())];
        if !self.too_long {
            if self.buf.len() + chunk.len() > MAX_LINE_BYTES {
                self.too_long = true;
                self.buf.clear();
                self.buf.shrink_to(4096);
            } else {
                self.buf.extend_from_slice(chunk);
            }
        }
        let used = chunk.len() + usize::from(newline.is_some());
        (used, newline.map(|_| End::Line))
    }
}

impl<R> LineReader<R> {
    pub fn new(input: R) -> Self {
        Self {
            input,
            line: PendingLine {
                buf: Vec::with_capacity(4096),
                too_long: false,
                started: false,
            },
            number: 0,
        }
    }

    /// The 1-based number of the line last returned (blank lines count).
    pub fn number(&self) -> u64 {
        self.number
    }

    /// The line that ended (if the input ended mid-line, the last one),
    /// with its number.
    fn finish(&mut self, end: End) -> Option<(u64, LineRead<'_>)> {
        if matches!(end, End::Input) && !self.line.started {
            return None;
        }
        self.number += 1;
        if self.line.too_long {
            return Some((self.number, LineRead::TooLong));
        }
        let buf = &mut self.line.buf;
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        let line = match self.number {
            1 => buf.strip_prefix(BYTE_ORDER_MARK).unwrap_or(buf),
            _ => buf,
        };
        Some((self.number, LineRead::Line(line)))
    }
}

impl<R: std::io::BufRead> LineReader<R> {
    /// The next line and its 1-based number, or `None` at the end of the input.
    pub fn next_line(&mut self) -> std::io::Result<Option<(u64, LineRead<'_>)>> {
        self.line.clear();
        loop {
            let (used, end) = self.line.take(self.input.fill_buf()?);
            self.input.consume(used);
            if let Some(end) = end {
                return Ok(self.finish(end));
            }
        }
    }
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    /// [`LineReader::next_line`] for tokio's readers (`ingest` from stdin).
    pub async fn next_line_async(&mut self) -> std::io::Result<Option<(u64, LineRead<'_>)>> {
        self.line.clear();
        loop {
            let (used, end) = self.line.take(self.input.fill_buf().await?);
            self.input.consume(used);
            if let Some(end) = end {
                return Ok(self.finish(end));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> String {
        let long = "x".repeat(MAX_LINE_BYTES + 10);
        format!("\u{feff}a\r\n\nb{long}\n\u{feff}c\nlast")
    }

    #[test]
    fn lines_are_split_bounded_and_the_bom_dropped() {
        let data = input();
        let mut lines = LineReader::new(std::io::BufReader::with_capacity(64, data.as_bytes()));
        assert_eq!(lines.next_line().unwrap(), Some((1, LineRead::Line(b"a"))));
        assert_eq!(lines.next_line().unwrap(), Some((2, LineRead::Line(b""))));
        assert_eq!(lines.next_line().unwrap(), Some((3, LineRead::TooLong)));
        assert!(lines.line.buf.capacity() <= 2 * MAX_LINE_BYTES);
        // Only the input's first line may start with the mark.
        let bom_c = "\u{feff}c".as_bytes();
        assert_eq!(lines.next_line().unwrap(), Some((4, LineRead::Line(bom_c))));
        assert_eq!(
            lines.next_line().unwrap(),
            Some((5, LineRead::Line(b"last")))
        );
        assert_eq!(lines.number(), 5);
        assert_eq!(lines.next_line().unwrap(), None);
    }

    #[tokio::test]
    async fn the_async_reader_splits_the_same_way() {
        let data = input();
        let mut lines = LineReader::new(tokio::io::BufReader::with_capacity(64, data.as_bytes()));
        let mut got = Vec::new();
        while let Some((_, line)) = lines.next_line_async().await.unwrap() {
            got.push(match line {
                LineRead::Line(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                LineRead::TooLong => "<too long>".into(),
            });
        }
        assert_eq!(got, ["a", "", "<too long>", "\u{feff}c", "last"]);
    }

    #[test]
    fn an_empty_input_has_no_lines_and_a_final_newline_adds_none() {
        let mut lines = LineReader::new(&b""[..]);
        assert_eq!(lines.next_line().unwrap(), None);
        let mut lines = LineReader::new(&b"a\n"[..]);
        assert_eq!(lines.next_line().unwrap(), Some((1, LineRead::Line(b"a"))));
        assert_eq!(lines.next_line().unwrap(), None);
    }
}
