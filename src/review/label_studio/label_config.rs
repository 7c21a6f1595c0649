//! The annotation interface (`assets/label-studio-config.xml`) and the
//! rendering of its intent list. Control names are a contract with the
//! parsing in `types.rs`: Label Studio keys every result by them.

use crate::error::{Error, Result};

/// The shipped template; its intent list is a placeholder until rendered.
pub const DEFAULT_LABEL_CONFIG: &str = include_str!("../../../assets/label-studio-config.xml");

/// The `<Choices>` control annotators pick the intent in.
pub const INTENT_CONTROL: &str = "intent";
/// The `<Text>` object holding the utterance (`$text`).
pub const TEXT_OBJECT: &str = "text";
/// The optional `<TextArea>` for a cleaned-up utterance.
pub const CORRECTED_TEXT_CONTROL: &str = "corrected_text";
/// The choice that rejects a sample outright. Reserved: an intent of this
/// name is refused, so a reject can never be mistaken for a correction.
pub const REJECT_CHOICE: &str = "__reject__";

const BEGIN: &str = "<!-- flywheel:intents -->";
const END: &str = "<!-- /flywheel:intents -->";

/// Replace the intent list between the `flywheel:intents` markers of
/// `template` with one `<Choice>` per intent (in the given order, duplicates
/// dropped, XML-escaped). Fails when the markers are missing or an intent is
/// empty or the reserved [`REJECT_CHOICE`].
pub fn label_config_with_intents<S: AsRef<str>>(template: &str, intents: &[S]) -> Result<String> {
    let (Some(begin), Some(end)) = (template.find(BEGIN), template.find(END)) else {
        return Err(Error::config(format!(
            "the Label Studio label config has no `{BEGIN}` … `{END}` markers around its intent list"
        )));
    };
    if end < begin {
        return Err(Error::config(
            "the Label Studio label config has its intent markers in the wrong order",
        ));
    }
    // Indent rendered choices like the marker line, for a readable diff in
    // Label Studio's settings page.
    let line_start = template[..begin].rfind('\n').map_or(0, |i| i + 1);
    let indent = &template[line_start..begin];

    let mut seen = std::collections::HashSet::new();
    let mut out = String::with_capacity(template.len() + intents.len() * 40);
    out.push_str(&template[..begin + BEGIN.len()]);
    for intent in intents {
        let intent = intent.as_ref();
        if intent.trim().is_empty() || intent == REJECT_CHOICE {
            return Err(Error::bad_input(format!(
                "{intent:?} cannot be an intent in Label Studio (empty or reserved)"
            )));
        }
        if seen.insert(intent) {
            out.push('\n');
            out.push_str(indent);
            out.push_str("<Choice value=\"");
            out.push_str(&xml_escape(intent));
            out.push_str("\"/>");
        }
    }
    out.push('\n');
    out.push_str(indent);
    out.push_str(&template[end..]);
    Ok(out)
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_choices_in_order_without_duplicates_and_keeps_reject() {
        let xml =
            label_config_with_intents(DEFAULT_LABEL_CONFIG, &["order_food", "greet", "order_food"])
                .unwrap();
        let order = xml.find("value=\"order_food\"").unwrap();
        let greet = xml.find("value=\"greet\"").unwrap();
        assert!(order < greet);
        assert_eq!(xml.matches("value=\"order_food\"").count(), 1);
        assert!(!xml.contains("unknown_intent_placeholder"));
        assert!(xml.contains(&format!("value=\"{REJECT_CHOICE}\"")));
        // Rendering twice (a later sync adding an intent) keeps the markers.
        let again = label_config_with_intents(&xml, &["order_food", "greet", "bye"]).unwrap();
        assert_eq!(again.matches("<Choice value=\"greet\"/>").count(), 1);
        assert!(again.contains("<Choice value=\"bye\"/>"));
    }

    #[test]
    fn escapes_xml_and_refuses_reserved_or_empty_intents() {
        let xml = label_config_with_intents(DEFAULT_LABEL_CONFIG, &["a&b\"<c>"]).unwrap();
        assert!(xml.contains("value=\"a&amp;b&quot;&lt;c&gt;\""));
        assert!(label_config_with_intents(DEFAULT_LABEL_CONFIG, &[REJECT_CHOICE]).is_err());
        assert!(label_config_with_intents(DEFAULT_LABEL_CONFIG, &[" "]).is_err());
        let err = label_config_with_intents("<View/>", &["x"]).unwrap_err();
        assert!(err.message().contains("markers"), "{err}");
    }

    #[test]
    fn shipped_template_names_the_controls_the_parser_expects() {
        for needle in [
            "<Choices name=\"intent\" toName=\"text\"",
            "<Text name=\"text\" value=\"$text\"",
            "<TextArea name=\"corrected_text\"",
        ] {
            assert!(DEFAULT_LABEL_CONFIG.contains(needle), "missing {needle}");
        }
    }
}
