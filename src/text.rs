//! Text folding shared by every stage that deduplicates utterances.

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};

/// The dedup key of an utterance (DESIGN §1): compatibility-normalised
/// (NFKC, so full-width letters and ligatures fold), lower-cased, punctuation
/// and symbols removed, whitespace runs collapsed to one space and trimmed.
/// Letters, digits and combining marks of every script survive, so
/// Devanagari vowel signs are kept. Apostrophes join rather than split
/// ("don't" == "dont"); other punctuation separates words ("a,b" == "a b").
/// Returns an empty string for text with no letters or digits.
pub fn normalize_for_dedup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // A separator is only written before the next kept character, so runs
    // of whitespace/punctuation and the ends of the text leave nothing.
    let mut pending_space = false;
    for ch in text.nfkc().flat_map(char::to_lowercase) {
        if matches!(ch, '\'' | '\u{2019}' | '\u{2018}' | '`' | '\u{00b4}') {
            continue;
        }
        let separator = ch.is_whitespace()
            || ch.is_control()
            || matches!(
                ch.general_category_group(),
                GeneralCategoryGroup::Punctuation | GeneralCategoryGroup::Symbol
            );
        // Zero-width joiners and format characters vanish without splitting.
        if !separator && ch.general_category_group() == GeneralCategoryGroup::Other {
            continue;
        }
        if separator {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::normalize_for_dedup as n;

    #[test]
    fn folds_case_whitespace_and_punctuation() {
        assert_eq!(n("  Where is my ORDER?? "), "where is my order");
        assert_eq!(n("where\tis my\n order"), "where is my order");
        assert_eq!(n("pizza, chahiye!!!"), n("Pizza chahiye"));
        assert_eq!(n("don't"), "dont");
        assert_eq!(n("I’m hungry"), "im hungry");
        assert_eq!(n("a,b"), "a b");
        assert_eq!(n("?!..."), "");
        assert_eq!(n(""), "");
    }

    #[test]
    fn is_unicode_aware() {
        // Full-width letters fold to ASCII; Devanagari keeps its vowel signs
        // and the danda is punctuation.
        assert_eq!(n("ＰＩＺＺＡ"), "pizza");
        assert_eq!(n("मुझे खाना चाहिए।"), "मुझे खाना चाहिए");
        assert_ne!(n("खाना"), n("खना"));
        assert_eq!(n("ÉCOLE"), "école");
        assert_eq!(n("order\u{200b}status"), "orderstatus");
        assert_eq!(n("pay 100 ₹"), "pay 100");
    }
}
