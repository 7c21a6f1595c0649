//! What makes a real message hard for a model trained on clean templates:
//! sent before it was finished, two requests in one message, or typed in
//! texting shorthand. Traffic without these is answered so surely that
//! nearly everything is auto-approved and review has nothing to do; with
//! them, the share that is left for review looks like production's.

use rand::Rng;
use rand::seq::IndexedRandom;

use crate::lang::Language;

/// Ways a message comes out hard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hardness {
    /// Sent after the first words ("where is", "mera order").
    Unfinished,
    /// Two requests at once: the first is what the user wants first.
    TwoRequests,
    /// Vowels dropped and letters slipped ("plz cncl my ordr").
    Shorthand,
}

/// A hardness for a message of `intent` in `language`: shorthand most
/// often (where the script has it), a message cut short only when it is a
/// request (a greeting cut short is still a greeting).
pub(crate) fn pick<R: Rng>(intent: &str, language: Language, rng: &mut R) -> Hardness {
    let roll: f64 = rng.random();
    let request = !matches!(intent, "greeting" | "goodbye" | "thanks");
    // Devanagari has no shorthand of this kind here.
    if language == Language::Hi {
        return if request && roll < 0.5 {
            Hardness::Unfinished
        } else {
            Hardness::TwoRequests
        };
    }
    if request && roll < 0.3 {
        Hardness::Unfinished
    } else if roll < 0.55 {
        Hardness::TwoRequests
    } else {
        Hardness::Shorthand
    }
}

/// The first one or two words of `text` (all of it when shorter).
pub(crate) fn unfinished<R: Rng>(text: &str, rng: &mut R) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let keep = rng.random_range(1..=2).min(words.len());
    words[..keep].join(" ")
}

/// `first` and `second` joined as one message.
pub(crate) fn two_requests<R: Rng>(
    first: &str,
    second: &str,
    language: Language,
    rng: &mut R,
) -> String {
    let joins: &[&str] = match language {
        Language::Hi => &[" और ", " फिर ", ", "],
        Language::Hinglish => &[" aur ", " and ", " bhi ", ", "],
        _ => &[" and ", " and also ", ", also ", ". "],
    };
    let join = joins.choose(rng).copied().unwrap_or(" and ");
    format!("{first}{join}{}", second.to_lowercase())
}

/// Inner vowels dropped from most longer words, one letter slipped.
pub(crate) fn shorthand<R: Rng>(text: &str, rng: &mut R) -> String {
    let words: Vec<String> = text
        .split(' ')
        .map(|word| {
            let ascii = word.len() >= 4 && word.bytes().all(|b| b.is_ascii_alphabetic());
            if !ascii || !rng.random_bool(0.85) {
                return word.to_string();
            }
            let last = word.len() - 1;
            word.char_indices()
                .filter(|&(i, c)| i == 0 || i == last || !"aeiouAEIOU".contains(c))
                .map(|(_, c)| c)
                .collect()
        })
        .collect();
    let mut out = words.join(" ");
    if out.len() > 6 && rng.random_bool(0.5) {
        // A neighbouring key's worth of slip: two letters swapped.
        let bytes = out.as_bytes();
        let at = rng.random_range(1..out.len() - 2);
        if bytes[at].is_ascii_alphabetic() && bytes[at + 1].is_ascii_alphabetic() {
            let mut bytes = bytes.to_vec();
            bytes.swap(at, at + 1);
            out = String::from_utf8(bytes).unwrap_or(out);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn each_hardness_changes_the_message_as_named() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let text = "please cancel my order from saravana bhavan";
        for _ in 0..20 {
            let cut = unfinished(text, &mut rng);
            assert!(
                text.starts_with(&cut) && cut.split(' ').count() <= 3,
                "{cut}"
            );
        }
        let both = two_requests(
            "Cancel my order",
            "Where Is My Refund",
            Language::En,
            &mut rng,
        );
        assert!(both.starts_with("Cancel my order") && both.ends_with("where is my refund"));
        let short = shorthand(text, &mut rng);
        assert!(short.len() < text.len(), "{short}");
        assert_eq!(short.split(' ').count(), text.split(' ').count(), "{short}");
        assert_eq!(shorthand("क्या हाल है", &mut rng), "क्या हाल है");
        for _ in 0..50 {
            assert_ne!(
                pick("greeting", Language::En, &mut rng),
                Hardness::Unfinished
            );
            assert_ne!(
                pick("track_order", Language::Hi, &mut rng),
                Hardness::Shorthand
            );
        }
    }
}
