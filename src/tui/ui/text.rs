//! Text as the terminal draws it: widths by grapheme cluster (what a
//! reader sees as one character), never by `char`.
//!
//! ratatui 0.29 keeps a grapheme cluster in one buffer cell and, when it
//! diffs two frames, assumes a cluster covers at most two columns. A
//! Devanagari conjunct with its vowel sign (`म्हा` = म ् ह ा) covers
//! three, and the diff then rewrites its third column with a blank: the
//! terminal shows `तुम्ह रा` for `तुम्हारा` (ratatui fixed this upstream
//! after 0.29, ratatui/ratatui#2416). [`split_wide_clusters`] hands such
//! a cluster to the terminal as consecutive pieces of at most two
//! columns each; the terminal lays them out exactly as the whole cluster
//! (it advances by each code point's width), and the diff stays right.

use ratatui::buffer::Buffer;
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// Columns `text` takes on the terminal.
pub fn width(text: &str) -> usize {
    text.width()
}

/// A one-line text cut to `width` columns: control characters become
/// spaces, and a cut text ends in `…`. Cut between grapheme clusters, so a
/// base letter never loses its marks.
pub fn cut(text: &str, width: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.width() <= width {
        return flat;
    }
    let room = width.saturating_sub(1);
    let mut out = String::new();
    let mut used = 0;
    for cluster in flat.graphemes(true) {
        let w = cluster.width();
        if used + w > room {
            break;
        }
        used += w;
        out.push_str(cluster);
    }
    if width > 0 {
        out.push('…');
    }
    out
}

/// `text` padded with spaces to `width` columns (as `{:<width$}` would,
/// were it counting columns instead of chars).
pub fn pad(text: &str, width: usize) -> String {
    let mut out = text.to_string();
    out.extend(std::iter::repeat_n(' ', width.saturating_sub(text.width())));
    out
}

/// Split every cell whose cluster is wider than two columns into pieces of
/// one visible code point (with the marks that follow it), each in the
/// cell where it lands. Run over a finished frame, before it is flushed.
pub fn split_wide_clusters(buffer: &mut Buffer) {
    let area = buffer.area;
    for y in area.top()..area.bottom() {
        let mut x = area.left();
        while x < area.right() {
            let symbol = buffer[(x, y)].symbol();
            let w = symbol.width();
            if w <= 2 {
                x += 1;
                continue;
            }
            let pieces = pieces(symbol);
            let style = buffer[(x, y)].style();
            let mut at = x;
            for piece in pieces {
                if at >= area.right() {
                    break;
                }
                buffer[(at, y)].set_symbol(&piece).set_style(style);
                at += piece.width().max(1) as u16;
            }
            x += w as u16;
        }
    }
}

/// `symbol` cut before every code point that takes a column.
fn pieces(symbol: &str) -> Vec<String> {
    let mut pieces: Vec<String> = Vec::new();
    for c in symbol.chars() {
        match pieces.last_mut() {
            Some(last) if c.width().unwrap_or(0) == 0 => last.push(c),
            _ => pieces.push(c.to_string()),
        }
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::layout::Rect;

    const HINDI: &str = "तुम्हारा नाम क्या है";

    #[test]
    fn widths_count_columns_not_chars() {
        assert_eq!(HINDI.chars().count(), 20);
        assert_eq!(width(HINDI), 16);
        assert_eq!(cut(HINDI, 16), HINDI, "it fits: nothing is cut");
        // Cut between clusters: the conjunct keeps its vowel sign.
        assert_eq!(cut(HINDI, 7), "तुम्हारा…");
        assert_eq!(cut("日本語のテキスト", 7), "日本語…");
        assert_eq!(width(&pad(HINDI, 20)), 20);
    }

    #[test]
    fn a_three_column_cluster_is_drawn_in_pieces_that_end_where_it_ends() {
        let mut buffer = Buffer::empty(Rect::new(0, 0, 20, 1));
        buffer.set_string(0, 0, HINDI, ratatui::style::Style::default());
        // ratatui put म्हा (3 columns) in one cell.
        assert_eq!(buffer[(1, 0)].symbol(), "म\u{94d}हा");
        split_wide_clusters(&mut buffer);
        let cells: Vec<&str> = (0..8).map(|x| buffer[(x, 0)].symbol()).collect();
        assert_eq!(cells, ["तु", "म्", "ह", "ा", "रा", " ", " ", "ना"]);
        // Every cell from the diff of the split frame lands where the
        // terminal's cursor would be after printing the text.
        let blank = Buffer::empty(buffer.area);
        let updates = blank.diff(&buffer);
        let mut column = 0;
        let mut printed = String::new();
        for (x, _, cell) in updates {
            assert!(x as usize >= column, "cell {x} rewrites column {column}");
            printed.push_str(&" ".repeat(x as usize - column));
            printed.push_str(cell.symbol());
            column = x as usize + cell.symbol().width();
        }
        assert_eq!(printed.trim_end(), HINDI);
    }
}
