//! PII redaction of utterance texts before they leave Flywheel (Label
//! Studio tasks, exported JSONL): phone numbers, e-mail addresses and long
//! digit runs (account, card and order numbers) become placeholders.
//!
//! Users type these into a chat all the time ("my number is 98765 43210").
//! The database is the trusted zone and keeps the text as captured, so the
//! router still sees real traffic; what reaches annotators or a file on
//! someone's laptop does not carry it. A placeholder rather than deletion
//! keeps the sentence's shape, which is what an annotator and a model need.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

pub const PHONE: &str = "<phone>";
pub const EMAIL: &str = "<email>";
pub const NUMBER: &str = "<number>";

/// `[privacy]` in the configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Redact texts pushed to Label Studio and exported (on by default).
    pub redact: bool,
    /// A run of at least this many digits is redacted (one space, hyphen,
    /// dot or comma between two digits does not break a run).
    pub min_digits: usize,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        Self {
            redact: true,
            min_digits: 7,
        }
    }
}

/// Redacts texts by one [`PrivacyConfig`].
#[derive(Debug, Clone, Copy)]
pub struct Redactor {
    enabled: bool,
    min_digits: usize,
}

/// Redacting by the default `[privacy]`: what leaves is redacted unless
/// the configuration says otherwise.
impl Default for Redactor {
    fn default() -> Self {
        Self::new(&PrivacyConfig::default())
    }
}

impl Redactor {
    pub fn new(config: &PrivacyConfig) -> Self {
        Self {
            enabled: config.redact,
            // Fewer than 3 would eat times and quantities ("2 pizzas").
            min_digits: config.min_digits.max(3),
        }
    }

    /// A redactor that changes nothing (`privacy.redact = false`).
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            min_digits: usize::MAX,
        }
    }

    /// `text` with e-mail addresses, phone numbers and long digit runs
    /// replaced by `<email>`, `<phone>` and `<number>`.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if !self.enabled || !text.chars().any(|c| c == '@' || is_digit(c)) {
            return Cow::Borrowed(text);
        }
        let chars: Vec<char> = text.chars().collect();
        let mut out = String::with_capacity(text.len());
        let mut i = 0;
        while i < chars.len() {
            if let Some(end) = email_at(&chars, i) {
                out.push_str(EMAIL);
                i = end;
            } else if let Some((end, placeholder)) = self.number_at(&chars, i) {
                out.push_str(placeholder);
                i = end;
            } else {
                out.push(chars[i]);
                i += 1;
            }
        }
        if out == text {
            Cow::Borrowed(text)
        } else {
            Cow::Owned(out)
        }
    }

    /// A digit run starting at `i` that is long enough to redact: its end
    /// and placeholder. A run is digits of any script where one space,
    /// hyphen, dot or comma between two digits does not break it, with a
    /// leading `+`. Letters touching it do not protect it ("at9876543210",
    /// "9876543210ko"): users glue numbers to words, and a run that short
    /// of an identifier is still a number someone can call or charge.
    fn number_at(&self, chars: &[char], i: usize) -> Option<(usize, &'static str)> {
        let plus = chars[i] == '+';
        let mut j = i + usize::from(plus);
        let (mut digits, mut end) = (0usize, j);
        while j < chars.len() {
            if is_digit(chars[j]) {
                digits += 1;
                j += 1;
                end = j;
            } else if digits > 0
                && matches!(chars[j], ' ' | '-' | '.' | ',')
                && chars.get(j + 1).is_some_and(|c| is_digit(*c))
            {
                j += 1;
            } else {
                break;
            }
        }
        if digits < self.min_digits {
            return None;
        }
        let phone = plus || (10..=15).contains(&digits);
        Some((end, if phone { PHONE } else { NUMBER }))
    }
}

/// An e-mail address starting at `i`: local part, `@`, a domain with a dot.
fn email_at(chars: &[char], i: usize) -> Option<usize> {
    let local = |c: char| c.is_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-');
    if !local(chars[i]) || (i > 0 && local(chars[i - 1])) {
        return None;
    }
    let mut j = i;
    while j < chars.len() && local(chars[j]) {
        j += 1;
    }
    if j == i || chars.get(j) != Some(&'@') {
        return None;
    }
    let domain_start = j + 1;
    let mut k = domain_start;
    while k < chars.len() && (chars[k].is_alphanumeric() || matches!(chars[k], '.' | '-')) {
        k += 1;
    }
    // a trailing full stop ends the sentence, not the domain
    while k > domain_start && chars[k - 1] == '.' {
        k -= 1;
    }
    let domain: String = chars[domain_start..k].iter().collect();
    let dot = domain.find('.')?;
    (dot > 0 && dot + 1 < domain.len()).then_some(k)
}

/// A decimal digit of any script (general category Nd): ASCII, full-width
/// `９`, Arabic-Indic `٩`, Devanagari `९`, …
fn is_digit(c: char) -> bool {
    // `is_numeric` is a quick table test that rejects letters of every
    // script before the slower general-category lookup.
    c.is_ascii_digit()
        || (!c.is_ascii()
            && c.is_numeric()
            && c.general_category() == GeneralCategory::DecimalNumber)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(text: &str) -> String {
        Redactor::new(&PrivacyConfig::default())
            .redact(text)
            .into_owned()
    }

    #[test]
    fn phone_numbers_in_many_spellings() {
        assert_eq!(redact("call me on +91 98765 43210"), "call me on <phone>");
        assert_eq!(redact("my number is 9876543210."), "my number is <phone>.");
        assert_eq!(redact("022-2345 6789 pls"), "<phone> pls");
        // a parenthesis is not a joiner: the area code stays, the rest goes
        assert_eq!(redact("(022) 2345-6789 pls"), "(022) <number> pls");
        assert_eq!(redact("+44 20 7946 0958"), "<phone>");
        assert_eq!(redact("मेरा नंबर ९८७६५४३२१० है"), "मेरा नंबर <phone> है");
    }

    #[test]
    fn long_digit_runs_become_numbers_short_ones_stay() {
        assert_eq!(redact("where is order 12345678"), "where is order <number>");
        assert_eq!(redact("card 4111 1111 1111 1111"), "card <number>");
        assert_eq!(redact("where is order 12345"), "where is order 12345");
        assert_eq!(redact("2 pizzas at 7:30"), "2 pizzas at 7:30");
        assert_eq!(redact("in 2026"), "in 2026");
    }

    #[test]
    fn emails() {
        assert_eq!(redact("mail a.b+x@example.co.in now"), "mail <email> now");
        assert_eq!(redact("write to me@x.org."), "write to <email>.");
        assert_eq!(redact("@handle and a@b"), "@handle and a@b");
    }

    #[test]
    fn letters_touching_a_run_do_not_protect_it() {
        assert_eq!(redact("ticket ABC1234567"), "ticket ABC<number>");
        assert_eq!(redact("1234567abc"), "<number>abc");
        assert_eq!(redact("pay 9876543210@ybl"), "pay <phone>@ybl");
    }

    #[test]
    fn one_joiner_between_digits_keeps_a_run_two_break_it() {
        assert_eq!(redact("98765,43210"), "<phone>");
        assert_eq!(redact("1,00,00,000 rupees"), "<number> rupees");
        assert_eq!(redact("123  4567"), "123  4567");
        assert_eq!(redact("1, 2, 3, 4, 5, 6, 7"), "1, 2, 3, 4, 5, 6, 7");
        assert_eq!(redact("12/05/2024"), "12/05/2024");
    }

    #[test]
    fn disabled_and_threshold() {
        let off = Redactor::new(&PrivacyConfig {
            redact: false,
            min_digits: 7,
        });
        assert_eq!(off.redact("9876543210"), "9876543210");
        let five = Redactor::new(&PrivacyConfig {
            redact: true,
            min_digits: 5,
        });
        assert_eq!(five.redact("order 12345"), "order <number>");
    }

    #[test]
    fn text_without_digits_or_at_signs_is_returned_unchanged() {
        let text = "  Where is my ORDER?!  ";
        assert_eq!(redact(text), text);
    }
}
