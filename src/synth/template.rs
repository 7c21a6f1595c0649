//! A tiny template language, so one line of a table stands for many
//! phrasings:
//!
//! - `(a|b|c)` picks one alternative (alternatives may be empty: `(a|)`),
//! - `[text]` keeps `text` half of the time,
//! - `{slot}` asks the caller for a filler (a dish, an order id, …).
//!
//! Groups nest. Templates are static tables checked by tests, so a malformed
//! one is a bug: [`check`] reports it, [`render`] renders what it can.

use rand::Rng;

/// Render `template`, calling `fill(slot, rng)` for every `{slot}`.
pub(crate) fn render<R: Rng>(
    template: &str,
    rng: &mut R,
    fill: &mut dyn FnMut(&str, &mut R) -> String,
) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    render_seq(template.as_bytes(), &mut 0, rng, fill, &mut out, true);
    tidy(&out)
}

/// Why a template is malformed, if it is: unbalanced or unclosed groups.
#[cfg(test)]
pub(crate) fn check(template: &str) -> Result<(), String> {
    if let Some(i) = template.find(")?") {
        return Err(format!(
            "regex-style ')?' at byte {i} in {template:?}: use [optional]"
        ));
    }
    let mut stack = Vec::new();
    for (i, c) in template.char_indices() {
        match c {
            '(' | '[' | '{' => stack.push((c, i)),
            ')' | ']' | '}' => {
                let want = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                match stack.pop() {
                    Some((open, _)) if open == want => {}
                    _ => return Err(format!("unbalanced {c:?} at byte {i} in {template:?}")),
                }
            }
            '|' if !matches!(stack.last(), Some(('(', _))) => {
                return Err(format!("'|' outside (…) at byte {i} in {template:?}"));
            }
            _ => {}
        }
    }
    match stack.pop() {
        Some((open, i)) => Err(format!("unclosed {open:?} at byte {i} in {template:?}")),
        None => Ok(()),
    }
}

/// The slot names a template uses.
#[cfg(test)]
pub(crate) fn slots(template: &str) -> Vec<&str> {
    template
        .split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
        .collect()
}

/// Render from `*pos` until the end of the enclosing group (`)`, `]` or
/// `|`), leaving `*pos` on that byte. With `emit` false, skip instead.
fn render_seq<R: Rng>(
    t: &[u8],
    pos: &mut usize,
    rng: &mut R,
    fill: &mut dyn FnMut(&str, &mut R) -> String,
    out: &mut String,
    emit: bool,
) {
    let mut literal_start = *pos;
    let flush = |out: &mut String, from: usize, to: usize| {
        if emit && from < to {
            // Group delimiters are ASCII, so these are char boundaries.
            out.push_str(std::str::from_utf8(&t[from..to]).unwrap_or_default());
        }
    };
    while *pos < t.len() {
        match t[*pos] {
            b')' | b']' | b'|' => break,
            b'(' => {
                flush(out, literal_start, *pos);
                *pos += 1;
                let choices = count_alternatives(t, *pos);
                let pick = if emit {
                    rng.random_range(0..choices)
                } else {
                    usize::MAX
                };
                let mut index = 0;
                loop {
                    render_seq(t, pos, rng, fill, out, emit && index == pick);
                    if *pos >= t.len() || t[*pos] == b')' {
                        break;
                    }
                    *pos += 1; // past '|'
                    index += 1;
                }
                *pos += 1; // past ')'
                literal_start = *pos;
            }
            b'[' => {
                flush(out, literal_start, *pos);
                *pos += 1;
                let keep = emit && rng.random_bool(0.5);
                render_seq(t, pos, rng, fill, out, keep);
                *pos += 1; // past ']'
                literal_start = *pos;
            }
            b'{' => {
                flush(out, literal_start, *pos);
                let start = *pos + 1;
                let end = t[start..]
                    .iter()
                    .position(|&b| b == b'}')
                    .map_or(t.len(), |n| start + n);
                if emit {
                    let name = std::str::from_utf8(&t[start..end]).unwrap_or_default();
                    out.push_str(&fill(name, rng));
                }
                *pos = (end + 1).min(t.len());
                literal_start = *pos;
            }
            _ => *pos += 1,
        }
    }
    flush(out, literal_start, *pos);
}

/// How many `|`-separated alternatives the group starting at `pos` has.
fn count_alternatives(t: &[u8], mut pos: usize) -> usize {
    let mut depth = 0usize;
    let mut count = 1;
    while pos < t.len() {
        match t[pos] {
            b'(' | b'[' => depth += 1,
            b')' | b']' if depth == 0 => break,
            b')' | b']' => depth -= 1,
            b'|' if depth == 0 => count += 1,
            _ => {}
        }
        pos += 1;
    }
    count
}

/// Collapse the spaces an omitted group leaves behind, and the space it
/// leaves before a comma.
fn tidy(text: &str) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    joined
        .replace(" ,", ",")
        .trim_matches([' ', ','])
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use std::collections::BTreeSet;

    fn all_renderings(template: &str) -> BTreeSet<String> {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        (0..400)
            .map(|_| render(template, &mut rng, &mut |slot, _| slot.to_uppercase()))
            .collect()
    }

    #[test]
    fn renders_every_combination_and_nothing_else() {
        let got = all_renderings("(hi|hello)[ there], order {dish}[ (now|please)]");
        let mut want = BTreeSet::new();
        for greet in ["hi", "hello"] {
            for there in ["", " there"] {
                for tail in ["", " now", " please"] {
                    want.insert(format!("{greet}{there}, order DISH{tail}"));
                }
            }
        }
        assert_eq!(got, want);
    }

    #[test]
    fn empty_alternatives_and_leftover_spaces_are_tidied() {
        let got = all_renderings("[please ]( |)cancel  (it|)");
        let want: BTreeSet<String> = ["please cancel it", "please cancel", "cancel it", "cancel"]
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn devanagari_passes_through() {
        let got = all_renderings("मुझे {dish} (चाहिए|मंगवाना है)");
        assert!(
            got.contains("मुझे DISH चाहिए") && got.contains("मुझे DISH मंगवाना है"),
            "{got:?}"
        );
    }

    #[test]
    fn check_finds_malformed_templates() {
        assert!(check("(a|b)[c]{d}").is_ok());
        assert!(check("(a|b").is_err());
        assert!(check("a]").is_err());
        assert!(check("a|b").is_err());
        assert!(check("[a|b]").is_err());
        assert!(check("(a )?b").is_err());
        assert_eq!(slots("{a} x [{b}]"), vec!["a", "b"]);
    }
}
