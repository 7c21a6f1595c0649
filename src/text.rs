//! Text normalisation shared by the stages that compare utterances, and
//! the quoting every message uses to show a user's text.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// The key two utterances are deduplicated on (DESIGN §1: a repeat raises an
/// occurrence count instead of creating a second sample).
///
/// Folds what a user does not mean: Unicode compatibility forms (NFKC, so a
/// full-width "ｈｉ" or a precomposed nukta letter matches its plain
/// spelling), letter case, punctuation and symbols (each becomes a word
/// break), and runs of whitespace (one space, none at the ends).
/// Apostrophes are dropped without a break so "what's" matches "whats".
/// Letters, digits and combining marks of every script are kept, so
/// Devanagari vowel signs and viramas survive: "मेरा ऑर्डर" stays itself.
pub fn normalize_for_dedup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    if text.is_ascii() {
        // ASCII is already NFKC: skip the normaliser on the common path.
        fold_into(text.chars(), &mut out);
    } else {
        fold_into(text.nfkc(), &mut out);
    }
    out
}

fn fold_into(chars: impl Iterator<Item = char>, out: &mut String) {
    let mut pending_space = false;
    for c in chars {
        if c.is_alphanumeric() || is_combining_mark(c) {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.extend(c.to_lowercase());
        } else if is_joiner(c) {
            // Inside a word: "what's" = "whats"; ZWJ/ZWNJ only change how
            // Devanagari conjuncts are drawn.
        } else {
            pending_space = true;
        }
    }
}

/// The key near-duplicates share, from a [`normalize_for_dedup`] text:
/// its distinct words in sorted order, every run of digits read as `#`.
/// "where is order 1234" and "order 98 where is" share one; "where is my
/// order" does not (a word more). The review order puts a near-duplicate
/// behind the first of its kind ([`crate::review::order`]).
pub fn near_duplicate_key(normalized: &str) -> String {
    let mut words: Vec<String> = normalized
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut word = String::with_capacity(w.len());
            for c in w.chars() {
                if c.is_numeric() {
                    if !word.ends_with('#') {
                        word.push('#');
                    }
                } else {
                    word.push(c);
                }
            }
            word
        })
        .collect();
    words.sort_unstable();
    words.dedup();
    words.join(" ")
}

/// Characters dropped without breaking the word.
fn is_joiner(c: char) -> bool {
    matches!(
        c,
        '\'' | '\u{2019}' | '\u{2018}' | '`' | '\u{200C}' | '\u{200D}' | '\u{00AD}' | '\u{FEFF}'
    )
}

/// Longest text [`quoted`] shows, in characters.
const MAX_QUOTED_CHARS: usize = 60;

/// `text` in double quotes for a message an operator reads: every script
/// and emoji as itself (`"खाना_ऑर्डर"`, not `"खाना_ऑर\u{94d}डर"` as `{:?}`
/// prints it), only control characters, quotes and backslashes escaped,
/// and a long text cut with `…`.
pub fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(4 * MAX_QUOTED_CHARS) + 2);
    out.push('"');
    for (i, c) in text.chars().enumerate() {
        if i == MAX_QUOTED_CHARS {
            out.push('…');
            break;
        }
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::normalize_for_dedup as norm;
    use super::{near_duplicate_key, quoted};

    #[test]
    fn quoted_shows_text_as_text() {
        assert_eq!(quoted("खाना_ऑर्डर"), "\"खाना_ऑर्डर\"");
        assert_eq!(quoted("order food 🍕"), "\"order food 🍕\"");
        assert_eq!(quoted("a\"b\\c\n\u{7}"), r#""a\"b\\c\n\u{7}""#);
        let long = "x".repeat(100);
        assert_eq!(quoted(&long), format!("\"{}…\"", "x".repeat(60)));
    }

    #[test]
    fn near_duplicates_share_a_key_that_ignores_numbers_and_word_order() {
        let key = |t: &str| near_duplicate_key(&norm(t));
        assert_eq!(key("Where is order #1234?"), key("order 98, where is"));
        assert_eq!(key("where is order 1234"), "# is order where");
        assert_ne!(key("where is my order"), key("where is order"));
        assert_eq!(key("room 12b please"), key("room 7b please"));
        assert_eq!(key(""), "");
    }

    #[test]
    fn folds_case_whitespace_and_punctuation() {
        assert_eq!(norm("  Where is   my ORDER?? "), "where is my order");
        assert_eq!(norm("where is my order"), norm("Where is my order!"));
        assert_eq!(
            norm("cancel order #4829173, please."),
            "cancel order 4829173 please"
        );
        assert_eq!(norm("pick-up\tfrom\nAndheri"), "pick up from andheri");
        assert_eq!(norm("what's up"), norm("whats up"));
        assert_eq!(norm("what’s up"), "whats up");
    }

    #[test]
    fn keeps_words_apart_and_meaning_distinct() {
        assert_ne!(norm("cancel my order"), norm("cancel my orders"));
        assert_ne!(norm("order 12"), norm("order 1 2"));
        assert_eq!(norm("a.b"), "a b");
    }

    #[test]
    fn empty_and_symbol_only_texts_normalise_to_empty() {
        assert_eq!(norm(""), "");
        assert_eq!(norm(" ?!… 🙏 "), "");
    }

    #[test]
    fn devanagari_survives_with_its_vowel_signs_and_viramas() {
        assert_eq!(norm("मेरा ऑर्डर कहाँ है?"), "मेरा ऑर्डर कहाँ है");
        assert_eq!(norm("पैसे कट गए।"), "पैसे कट गए");
        // The virama (्) and nukta forms are combining marks, not punctuation.
        assert_eq!(norm("क्या"), "क्या");
        // A precomposed nukta letter (U+0958) equals its decomposed spelling.
        assert_eq!(norm("\u{0958}"), norm("\u{0915}\u{093C}"));
        // ZWJ/ZWNJ only change rendering.
        assert_eq!(norm("क्\u{200D}या"), norm("क्या"));
    }

    #[test]
    fn compatibility_forms_fold() {
        assert_eq!(norm("ｈｅｌｌｏ"), "hello");
        assert_eq!(norm("Café"), norm("Cafe\u{0301}"));
        assert_eq!(norm("ÉCOLE"), "école");
    }
}
