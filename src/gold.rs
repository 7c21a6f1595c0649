//! The gold set: the labels that judge models.
//!
//! A label judges only when a human gave it (a review in Label Studio or
//! the console) or a team imported it as data it already trusts
//! ([`Provenance::is_gold`]). The production model's own auto-approved
//! answers train but never judge: grading a model on labels it gave itself
//! reads 0.95 where held-out data says 0.75. The stable test split is a
//! hash of the sample id (it never changes as samples are added, so a
//! candidate and production are scored on the same items) taken over gold
//! samples only; every other approved sample trains.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::domain::Provenance;

/// Whether sample `id` falls in the `percent` % hash split (before asking
/// whether its label may judge; see [`judges`]).
pub fn in_test_split(sample_id: i64, percent: u32) -> bool {
    let digest = Sha256::digest(sample_id.to_le_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first) % 100 < u64::from(percent)
}

/// Whether an approved sample belongs to the test split that judges
/// models: gold and in the hash split. Everything else trains.
pub fn judges(sample_id: i64, source: Provenance, percent: u32) -> bool {
    source.is_gold() && in_test_split(sample_id, percent)
}

/// Gold samples of one intent, by split.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct SplitCount {
    pub train: usize,
    pub test: usize,
}

/// The gold set at a glance, for `status`, the training report and the
/// console: how much the gate can judge, and where it is blind.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GoldSummary {
    /// Approved samples labelled by a human or an import.
    pub samples: usize,
    /// Of those, the ones in the test split: what the gate judges on.
    pub test_samples: usize,
    /// Intents among all approved samples.
    pub intents: usize,
    /// Of those, the ones with at least one gold test item.
    pub intents_judged: usize,
    pub per_intent: BTreeMap<String, SplitCount>,
    /// Gold samples per language (`unknown` when none was recorded).
    pub per_language: BTreeMap<String, usize>,
}

/// One approved gold sample, as the summary counts it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct GoldLabel {
    pub id: i64,
    pub intent: String,
    pub language: Option<String>,
}

impl GoldSummary {
    /// Summarise `gold` (approved gold samples) against the `intents`
    /// known among all approved samples.
    pub fn of<'a>(
        gold: impl IntoIterator<Item = &'a GoldLabel>,
        intents: usize,
        percent: u32,
    ) -> Self {
        let mut summary = GoldSummary {
            intents,
            ..GoldSummary::default()
        };
        for label in gold {
            summary.samples += 1;
            let count = summary.per_intent.entry(label.intent.clone()).or_default();
            if in_test_split(label.id, percent) {
                summary.test_samples += 1;
                count.test += 1;
            } else {
                count.train += 1;
            }
            *summary
                .per_language
                .entry(label.language.clone().unwrap_or_else(|| "unknown".into()))
                .or_default() += 1;
        }
        summary.intents_judged = summary.per_intent.values().filter(|c| c.test > 0).count();
        summary
    }

    /// One line for terminals: "1234 labels (180 test) · 140/150 intents
    /// judged · en 1000, hi 234".
    pub fn line(&self) -> String {
        let languages = self
            .per_language
            .iter()
            .map(|(language, n)| format!("{language} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut line = format!(
            "{} labels ({} test) · {}/{} intents judged",
            self.samples, self.test_samples, self.intents_judged, self.intents
        );
        if !languages.is_empty() {
            line.push_str(&format!(" · {languages}"));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_is_stable_and_near_its_percentage() {
        let test = (1..=10_000).filter(|id| in_test_split(*id, 15)).count();
        assert!((1_300..=1_700).contains(&test), "{test}");
        assert_eq!(in_test_split(42, 15), in_test_split(42, 15));
        assert!((1..=1000).all(|id| !in_test_split(id, 0)));
        assert!((1..=1000).all(|id| in_test_split(id, 100)));
    }

    #[test]
    fn only_human_and_imported_labels_judge() {
        let in_split = (1..).find(|id| in_test_split(*id, 50)).unwrap();
        assert!(judges(in_split, Provenance::Human, 50));
        assert!(judges(in_split, Provenance::Import, 50));
        assert!(!judges(in_split, Provenance::Auto, 50));
        assert!(!judges(in_split, Provenance::Synthetic, 50));
        let out_of_split = (1..).find(|id| !in_test_split(*id, 50)).unwrap();
        assert!(!judges(out_of_split, Provenance::Human, 50));
    }

    #[test]
    fn the_summary_counts_splits_intents_and_languages() {
        let label = |id, intent: &str, language: Option<&str>| GoldLabel {
            id,
            intent: intent.into(),
            language: language.map(Into::into),
        };
        let test_id = (1..).find(|id| in_test_split(*id, 20)).unwrap();
        let train_ids: Vec<i64> = (1..).filter(|id| !in_test_split(*id, 20)).take(2).collect();
        let gold = [
            label(test_id, "greeting", Some("en")),
            label(train_ids[0], "greeting", Some("hi")),
            label(train_ids[1], "goodbye", None),
        ];
        let summary = GoldSummary::of(&gold, 5, 20);
        assert_eq!(summary.samples, 3);
        assert_eq!(summary.test_samples, 1);
        assert_eq!((summary.intents, summary.intents_judged), (5, 1));
        assert_eq!(
            summary.per_intent["greeting"],
            SplitCount { train: 1, test: 1 }
        );
        assert_eq!(
            summary.per_intent["goodbye"],
            SplitCount { train: 1, test: 0 }
        );
        assert_eq!(summary.per_language["unknown"], 1);
        assert_eq!(
            summary.line(),
            "3 labels (1 test) · 1/5 intents judged · en 1, hi 1, unknown 1"
        );
    }
}
