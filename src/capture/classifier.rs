//! The routing point between `serve` and the models: the one trait the
//! service needs from a classifier, and the [`ModelRouter`] that picks the
//! production model or (once lifecycle lands) the canary for a request,
//! sticky per session/user so one user sees one model.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::lang::{self, Language};

/// What a classifier says about one utterance.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    pub intent: String,
    pub confidence: f64,
    /// Below the model's fallback threshold: the caller should fall back.
    pub fallback: bool,
    /// The language given, or the one detected.
    pub language: Language,
}

/// One classification as served: the answer, how long the model took, and
/// why it could not answer when it could not.
#[derive(Debug, Clone, PartialEq)]
pub struct ServedClassification {
    pub classification: Classification,
    pub classify_ms: f64,
    /// The model panicked: the request was answered as a fallback instead
    /// (out of scope, confidence 0), and the canary's error rate counts it.
    pub error: Option<String>,
}

/// Classify with `model`, timed; a panic inside the model (a corrupt
/// artifact, a shape it never saw) becomes a fallback answer and an error
/// on record instead of a dropped request. The model is only read, so
/// nothing it holds is left half-changed by the unwind.
pub fn classify_served(
    model: &dyn IntentClassifier,
    text: &str,
    language: Option<Language>,
) -> ServedClassification {
    let started = std::time::Instant::now();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        model.classify(text, language)
    }));
    let classify_ms = started.elapsed().as_secs_f64() * 1000.0;
    match outcome {
        Ok(classification) => ServedClassification {
            classification,
            classify_ms,
            error: None,
        },
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic without a message".into());
            let error = format!(
                "the model panicked: {}",
                message.lines().next().unwrap_or("")
            );
            tracing::error!(version = model.version(), "{error}; answered as a fallback");
            ServedClassification {
                classification: Classification {
                    intent: crate::router::OOS_LABEL.to_string(),
                    confidence: 0.0,
                    fallback: true,
                    language: language.unwrap_or_else(|| lang::detect(text)),
                },
                classify_ms,
                error: Some(error),
            }
        }
    }
}

/// All `serve` needs from a model. Implemented by the router model (an
/// adapter over `router::Model`) and by [`KeywordClassifier`].
pub trait IntentClassifier: Send + Sync {
    fn classify(&self, text: &str, language: Option<Language>) -> Classification;
    /// The `model_versions.version` this classifier is (`router-v1.2.0`).
    fn version(&self) -> &str;
}

/// Loads the classifier stored in a model artifact directory.
pub type Loader = fn(&Path) -> Result<Arc<dyn IntentClassifier>>;

/// The default loader: a [`KeywordClassifier`] when the directory holds
/// `keywords.json`, otherwise the router model.
pub fn load_artifact(dir: &Path) -> Result<Arc<dyn IntentClassifier>> {
    if dir.join(KeywordClassifier::FILE).is_file() {
        return Ok(Arc::new(KeywordClassifier::load(dir)?));
    }
    Ok(Arc::new(RouterClassifier(crate::router::Model::load(dir)?)))
}

/// The candle router model behind the serve routing point.
struct RouterClassifier(crate::router::Model);

impl IntentClassifier for RouterClassifier {
    fn classify(&self, text: &str, language: Option<Language>) -> Classification {
        let p = self.0.classify(text, language);
        Classification {
            intent: p.intent,
            confidence: f64::from(p.confidence),
            fallback: p.fallback,
            language: p.language,
        }
    }

    fn version(&self) -> &str {
        self.0.version()
    }
}

/// The canary and its share of traffic.
#[derive(Clone)]
pub struct Canary {
    pub classifier: Arc<dyn IntentClassifier>,
    /// 0–100.
    pub traffic_percent: u8,
}

/// Which model answers which request. Cheap to clone; `serve` swaps in a
/// new one when the live models change.
#[derive(Clone, Default)]
pub struct ModelRouter {
    production: Option<Arc<dyn IntentClassifier>>,
    canary: Option<Canary>,
}

impl ModelRouter {
    pub fn new(production: Option<Arc<dyn IntentClassifier>>, canary: Option<Canary>) -> Self {
        Self { production, canary }
    }

    pub fn production(&self) -> Option<&Arc<dyn IntentClassifier>> {
        self.production.as_ref()
    }

    pub fn canary(&self) -> Option<&Canary> {
        self.canary.as_ref()
    }

    /// The model for a request. With a sticky key (session id, else user
    /// hash) the choice is a pure function of the key, so a user stays on
    /// one model for the whole canary; without one the request is a coin
    /// toss at the canary's share. `None` when no model is live.
    pub fn pick(&self, sticky_key: Option<&str>) -> Option<&Arc<dyn IntentClassifier>> {
        if let Some(canary) = &self.canary {
            let bucket = sticky_key.map_or_else(|| rand::random_range(0..100), traffic_bucket);
            if bucket < canary.traffic_percent || self.production.is_none() {
                return Some(&canary.classifier);
            }
        }
        self.production.as_ref()
    }

    /// Versions live now, production first (to notice changes).
    pub fn versions(&self) -> (Option<String>, Option<(String, u8)>) {
        (
            self.production.as_ref().map(|p| p.version().to_string()),
            self.canary
                .as_ref()
                .map(|c| (c.classifier.version().to_string(), c.traffic_percent)),
        )
    }
}

/// A stable bucket in 0..100 for a sticky key.
pub fn traffic_bucket(key: &str) -> u8 {
    let digest = Sha256::digest(key.as_bytes());
    let head = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    (head % 100) as u8
}

/// A rule model: an intent wins when the utterance contains one of its
/// keywords. It serves before a trained router exists and keeps the capture
/// tests independent of training. Artifact: `keywords.json` =
/// `{"version": "rules-v1", "intents": {"order_food": ["pizza", …]}}`.
#[derive(Debug, Clone, Deserialize)]
pub struct KeywordClassifier {
    version: String,
    intents: BTreeMap<String, Vec<String>>,
}

impl KeywordClassifier {
    pub const FILE: &'static str = "keywords.json";
    /// Intent and confidence when nothing matches.
    const UNKNOWN: (&'static str, f64) = ("unknown", 0.2);

    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(Self::FILE);
        let text = std::fs::read_to_string(&path)
            .map_err(|err| Error::config(format!("cannot read {}: {err}", path.display())))?;
        let mut model: Self = serde_json::from_str(&text).map_err(|err| {
            Error::bad_input(format!("{} is not a keyword model: {err}", path.display()))
        })?;
        for words in model.intents.values_mut() {
            for word in words.iter_mut() {
                *word = word.to_lowercase();
            }
        }
        Ok(model)
    }
}

impl IntentClassifier for KeywordClassifier {
    fn classify(&self, text: &str, language: Option<Language>) -> Classification {
        let lower = text.to_lowercase();
        let best = self
            .intents
            .iter()
            .map(|(intent, words)| {
                (
                    intent,
                    words.iter().filter(|w| lower.contains(w.as_str())).count(),
                )
            })
            .filter(|(_, hits)| *hits > 0)
            .max_by_key(|(_, hits)| *hits);
        let (intent, confidence) = match best {
            Some((intent, hits)) => (intent.clone(), if hits > 1 { 0.95 } else { 0.9 }),
            None => (Self::UNKNOWN.0.to_string(), Self::UNKNOWN.1),
        };
        Classification {
            intent,
            fallback: confidence < 0.5,
            confidence,
            language: language.unwrap_or_else(|| lang::detect(text)),
        }
    }

    fn version(&self) -> &str {
        &self.version
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model that fails on some inputs (as a corrupt artifact would).
    struct PanicsOnLongText;
    impl IntentClassifier for PanicsOnLongText {
        fn classify(&self, text: &str, _: Option<Language>) -> Classification {
            assert!(text.len() < 10, "index {} out of range", text.len());
            Classification {
                intent: "greeting".into(),
                confidence: 0.9,
                fallback: false,
                language: Language::En,
            }
        }
        fn version(&self) -> &str {
            "router-v9"
        }
    }

    #[test]
    fn a_panicking_model_is_answered_as_a_timed_fallback_with_its_error() {
        let ok = classify_served(&PanicsOnLongText, "hi", None);
        assert_eq!(ok.classification.intent, "greeting");
        assert!(ok.error.is_none());
        assert!(ok.classify_ms >= 0.0);
        let failed = classify_served(&PanicsOnLongText, "hello there, world", Some(Language::En));
        assert_eq!(failed.classification.intent, crate::router::OOS_LABEL);
        assert!(failed.classification.fallback);
        assert_eq!(failed.classification.confidence, 0.0);
        assert_eq!(
            failed.error.as_deref(),
            Some("the model panicked: index 18 out of range")
        );
    }

    struct Fixed(&'static str);
    impl IntentClassifier for Fixed {
        fn classify(&self, _: &str, _: Option<Language>) -> Classification {
            Classification {
                intent: self.0.into(),
                confidence: 1.0,
                fallback: false,
                language: Language::En,
            }
        }
        fn version(&self) -> &str {
            self.0
        }
    }

    #[test]
    fn canary_share_is_sticky_per_key_and_close_to_its_percentage() {
        let router = ModelRouter::new(
            Some(Arc::new(Fixed("prod"))),
            Some(Canary {
                classifier: Arc::new(Fixed("canary")),
                traffic_percent: 10,
            }),
        );
        let mut canary = 0;
        for user in 0..10_000 {
            let key = format!("session-{user}");
            let first = router.pick(Some(&key)).unwrap().version().to_string();
            for _ in 0..3 {
                assert_eq!(router.pick(Some(&key)).unwrap().version(), first);
            }
            canary += usize::from(first == "canary");
        }
        assert!(
            (800..1200).contains(&canary),
            "{canary} of 10000 on the canary"
        );
        assert!(ModelRouter::default().pick(Some("x")).is_none());
        let prod_only = ModelRouter::new(Some(Arc::new(Fixed("prod"))), None);
        assert_eq!(prod_only.pick(None).unwrap().version(), "prod");
    }

    /// Issue 18: as a canary's share grows step by step, the sessions it
    /// already serves stay on it (the split is monotone in the share).
    #[test]
    fn sessions_on_the_canary_stay_on_it_as_its_share_grows() {
        let at = |traffic_percent| {
            ModelRouter::new(
                Some(Arc::new(Fixed("prod"))),
                Some(Canary {
                    classifier: Arc::new(Fixed("canary")),
                    traffic_percent,
                }),
            )
        };
        let steps = [at(10), at(25), at(50), at(99)];
        let mut on_canary = [0usize; 4];
        for session in 0..10_000 {
            let key = format!("session-{session}");
            let served: Vec<&str> = steps
                .iter()
                .map(|router| router.pick(Some(&key)).unwrap().version())
                .collect();
            for (count, version) in on_canary.iter_mut().zip(&served) {
                *count += usize::from(*version == "canary");
            }
            // Once on the canary, on it at every later step.
            if let Some(first) = served.iter().position(|v| *v == "canary") {
                assert!(
                    served[first..].iter().all(|v| *v == "canary"),
                    "{key} left the canary as its share grew: {served:?}"
                );
            }
        }
        // Each step really moved sessions over.
        assert!(
            on_canary.windows(2).all(|w| w[0] + 1000 < w[1]),
            "{on_canary:?}"
        );
    }

    #[test]
    fn keyword_model_matches_words_and_falls_back_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(KeywordClassifier::FILE),
            r#"{"version": "rules-v1", "intents": {"order_food": ["Pizza", "burger"], "greet": ["hello"]}}"#,
        )
        .unwrap();
        let model = load_artifact(dir.path()).unwrap();
        assert_eq!(model.version(), "rules-v1");
        let c = model.classify("one PIZZA and a burger", None);
        assert_eq!(
            (c.intent.as_str(), c.confidence, c.fallback),
            ("order_food", 0.95, false)
        );
        let c = model.classify("नमस्ते", None);
        assert_eq!(
            (c.intent.as_str(), c.fallback, c.language),
            ("unknown", true, Language::Hi)
        );
    }
}
