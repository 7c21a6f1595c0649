//! Copying out of the console through the terminal: OSC 52 ("set the
//! clipboard to this base64 text"), which works over SSH and inside tmux
//! with `set-clipboard on` (tmux takes it into its paste buffer and passes
//! it on to the outer terminal). Written as the plain sequence, never
//! wrapped in tmux's `DCS tmux;` passthrough: tmux understands OSC 52
//! itself, and a wrapped sequence would bypass its buffer.

use std::io::Write;

use base64::Engine;

/// The OSC 52 sequence that puts `text` on the clipboard (`c`), ended by BEL.
pub fn osc52(text: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
    format!("\x1b]52;c;{encoded}\x07")
}

/// Send `text` to the terminal's clipboard.
pub fn copy(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(osc52(text).as_bytes())?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sequence_is_plain_osc_52_with_base64_text() {
        assert_eq!(osc52("42"), "\x1b]52;c;NDI=\x07");
        let hindi = osc52("तुम्हारा नाम");
        assert!(hindi.starts_with("\x1b]52;c;") && hindi.ends_with('\x07'));
        assert!(!hindi.contains("tmux;"), "not wrapped for passthrough");
    }
}
