//! How much a human label on a waiting sample is expected to help: its
//! [`ExpectedValue`], the product of three factors read from what is
//! stored, and the [`Reason`] an operator is shown.
//!
//! - **doubt**: the chance the model's label is wrong, 1 − confidence (the
//!   router's confidence is calibrated; predictions store no margin), 1
//!   without a usable prediction;
//! - **frequency**: 1 + log₂ occurrences — a text many users say is worth
//!   more, with diminishing returns (one sample trains the model however
//!   often it was said);
//! - **coverage**: 1 to 4 — how far the gold set ([`crate::gold`]) of the
//!   sample's intent, or of its language, falls below the average one: a
//!   label there also lets the gate judge what it could not.
//!
//! Near-duplicates and the shares of audits and suspects are the order's business
//! ([`super::order`]).

use std::collections::{HashMap, HashSet};
use std::fmt;

use crate::storage::waiting::{GoldCount, WaitingItem};

/// Coverage's largest factor (no gold at all where the average has some).
const MAX_COVERAGE: f64 = 4.0;

/// What a label is expected to be worth, and its parts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExpectedValue {
    pub doubt: f64,
    pub frequency: f64,
    pub coverage: f64,
}

impl ExpectedValue {
    pub fn score(&self) -> f64 {
        self.doubt * self.frequency * self.coverage
    }
}

/// Why an item ranks where it does, as one short phrase (its `Display`).
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    /// Drawn for audit: the audits' share of the order, newest traffic first.
    Audit,
    /// A suspect label ([`crate::suspects`]): the suspects' share of the
    /// order, most suspicious first.
    Suspect {
        suggested: String,
    },
    /// Like an item ahead of it, or one a human labelled this week: it
    /// goes behind it.
    NearDuplicate {
        of: i64,
        labelled: bool,
    },
    /// The model is unsure (no confidence: no usable prediction).
    Uncertain {
        confidence: Option<f64>,
    },
    Frequent {
        occurrences: i32,
    },
    FewGoldForIntent {
        intent: String,
        gold: i64,
    },
    FewGoldInLanguage {
        language: String,
        gold: i64,
    },
    /// Nothing lifts it: the model is more likely right than not.
    LikelyRight {
        confidence: f64,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Audit => f.write_str("audit"),
            Reason::Suspect { suggested } => write!(f, "suspect: model says {suggested}"),
            Reason::NearDuplicate {
                of,
                labelled: false,
            } => write!(f, "like #{of}, queued ahead"),
            Reason::NearDuplicate { of, labelled: true } => {
                write!(f, "like #{of}, labelled this week")
            }
            Reason::Uncertain {
                confidence: Some(c),
            } => write!(f, "uncertain: confidence {c:.2}"),
            Reason::Uncertain { confidence: None } => f.write_str("uncertain: no prediction"),
            Reason::Frequent { occurrences } => write!(f, "seen {occurrences} times"),
            Reason::FewGoldForIntent { intent, gold } => {
                write!(f, "few gold for intent {intent} ({gold})")
            }
            Reason::FewGoldInLanguage { language, gold } => {
                write!(f, "few gold in {language} ({gold})")
            }
            Reason::LikelyRight { confidence } => {
                write!(f, "likely right: confidence {confidence:.2}")
            }
        }
    }
}

impl serde::Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The gold set's size per intent and per language, against the average
/// of each: what coverage is measured by.
#[derive(Debug, Clone, Default)]
struct GoldShare {
    by_key: HashMap<String, i64>,
    mean: f64,
}

impl GoldShare {
    /// `counts` of gold per key, over `known` keys (those without gold count as 0).
    fn new(counts: impl Iterator<Item = (String, i64)>, known: HashSet<String>) -> Self {
        let mut by_key: HashMap<String, i64> = HashMap::new();
        for (key, n) in counts {
            *by_key.entry(key).or_default() += n;
        }
        let keys = known.len().max(by_key.len()).max(1);
        let mean = by_key.values().sum::<i64>() as f64 / keys as f64;
        Self { by_key, mean }
    }

    fn gold(&self, key: &str) -> i64 {
        self.by_key.get(key).copied().unwrap_or(0)
    }

    /// 1 at or above the average, up to [`MAX_COVERAGE`] with no gold at all.
    fn coverage(&self, key: &str) -> f64 {
        if self.mean <= 0.0 {
            return 1.0;
        }
        let short = (1.0 - self.gold(key) as f64 / self.mean).max(0.0);
        1.0 + (MAX_COVERAGE - 1.0) * short
    }
}

/// What the value of a label is weighed against: the gold set, and the
/// confidence below which the model is struggling.
#[derive(Debug, Clone)]
pub struct Weighing {
    /// Doubt at the auto-filter's `review_confidence`: more lifts an item.
    usual_doubt: f64,
    intents: GoldShare,
    languages: GoldShare,
}

impl Weighing {
    /// `review_confidence` is `auto_filter.review_confidence` (the
    /// boundary of the urgent bucket). Intents and languages of `waiting`
    /// samples count as known even without gold.
    pub fn new(gold: &[GoldCount], waiting: &[WaitingItem], review_confidence: f64) -> Self {
        let intents = gold
            .iter()
            .map(|g| g.intent.clone())
            .chain(waiting.iter().map(|w| w.intent.clone()))
            .collect();
        let languages = gold
            .iter()
            .filter_map(|g| g.language.clone())
            .chain(waiting.iter().filter_map(|w| w.language.clone()))
            .collect();
        Self {
            usual_doubt: (1.0 - review_confidence).clamp(0.05, 1.0),
            intents: GoldShare::new(gold.iter().map(|g| (g.intent.clone(), g.count)), intents),
            languages: GoldShare::new(
                gold.iter()
                    .filter_map(|g| g.language.clone().map(|l| (l, g.count))),
                languages,
            ),
        }
    }

    pub fn value(&self, item: &WaitingItem) -> ExpectedValue {
        let doubt = item
            .confidence
            .filter(|c| c.is_finite())
            .map_or(1.0, |c| (1.0 - c).clamp(0.0, 1.0));
        let language = item
            .language
            .as_deref()
            .map_or(1.0, |l| self.languages.coverage(l));
        ExpectedValue {
            doubt,
            frequency: 1.0 + f64::from(item.occurrences.max(1)).log2(),
            coverage: self.intents.coverage(&item.intent).max(language),
        }
    }

    /// The factor that lifts `item` most above the usual (doubt at
    /// `review_confidence`, one occurrence, average gold); when none does,
    /// it is likely right.
    pub fn reason(&self, item: &WaitingItem, value: &ExpectedValue) -> Reason {
        let doubt = value.doubt / self.usual_doubt;
        let lift = doubt.max(value.frequency).max(value.coverage);
        let confidence = item.confidence.filter(|c| c.is_finite());
        if lift <= 1.0 {
            return match confidence {
                Some(confidence) => Reason::LikelyRight { confidence },
                None => Reason::Uncertain { confidence },
            };
        }
        if lift == doubt {
            Reason::Uncertain { confidence }
        } else if lift == value.frequency {
            Reason::Frequent {
                occurrences: item.occurrences,
            }
        } else if self.intents.coverage(&item.intent) >= value.coverage {
            Reason::FewGoldForIntent {
                intent: item.intent.clone(),
                gold: self.intents.gold(&item.intent),
            }
        } else {
            let language = item.language.clone().unwrap_or_default();
            Reason::FewGoldInLanguage {
                gold: self.languages.gold(&language),
                language,
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::WaitingPlace;

    pub(crate) fn item(
        id: i64,
        intent: &str,
        language: &str,
        confidence: Option<f64>,
        occurrences: i32,
    ) -> WaitingItem {
        WaitingItem {
            sample_id: id,
            normalized_text: format!("text {id}"),
            intent: intent.into(),
            language: Some(language.into()),
            confidence,
            priority: 5,
            occurrences,
            place: WaitingPlace::Here,
            audit_at: None,
            has_task: false,
            suggested_intent: None,
            suspect_score: None,
        }
    }

    fn gold(intent: &str, language: &str, count: i64) -> GoldCount {
        GoldCount {
            intent: intent.into(),
            language: Some(language.into()),
            count,
        }
    }

    #[test]
    fn each_factor_lifts_the_value_and_names_the_reason() {
        let gold = [
            gold("order_status", "en", 40),
            gold("refund", "en", 40),
            gold("order_status", "hinglish", 40),
        ];
        let waiting = [item(9, "cancel_order", "en", Some(0.9), 1)];
        let w = Weighing::new(&gold, &waiting, 0.70);
        let explain = |i: &WaitingItem| {
            let v = w.value(i);
            (v.score(), w.reason(i, &v).to_string())
        };
        // Doubt: 1 − confidence; lifted above the usual at < 0.70.
        let (unsure, why) = explain(&item(1, "refund", "en", Some(0.4), 1));
        assert!((unsure - 0.6).abs() < 1e-9, "{unsure}");
        assert_eq!(why, "uncertain: confidence 0.40");
        assert_eq!(
            explain(&item(2, "refund", "en", None, 1)).1,
            "uncertain: no prediction"
        );
        // Frequency: 1 + log2(occurrences).
        let (often, why) = explain(&item(3, "refund", "en", Some(0.8), 8));
        assert!((often - 0.2 * 4.0).abs() < 1e-9, "{often}");
        assert_eq!(why, "seen 8 times");
        // Coverage: an intent without gold (the mean is 40 over 3 known intents).
        let (rare, why) = explain(&item(4, "cancel_order", "en", Some(0.8), 1));
        assert!((rare - 0.2 * 4.0).abs() < 1e-9, "{rare}");
        assert_eq!(why, "few gold for intent cancel_order (0)");
        // A language below its average (en 80, hinglish 40, hi none: mean 40).
        let hi = Weighing::new(&gold, &[item(5, "refund", "hi", Some(0.8), 1)], 0.70);
        let i = item(5, "refund", "hi", Some(0.8), 1);
        assert_eq!(
            hi.reason(&i, &hi.value(&i)).to_string(),
            "few gold in hi (0)"
        );
        // Nothing above the usual: likely right.
        let (sure, why) = explain(&item(6, "refund", "en", Some(0.95), 1));
        assert!(sure < unsure && sure < often);
        assert_eq!(why, "likely right: confidence 0.95");
    }

    #[test]
    fn without_any_gold_coverage_lifts_nothing() {
        let w = Weighing::new(&[], &[item(1, "refund", "en", Some(0.5), 1)], 0.70);
        let v = w.value(&item(1, "refund", "en", Some(0.5), 1));
        assert_eq!(v.coverage, 1.0);
    }
}
