//! The shipped seed set: generated, not hand-edited, and learnable.
//!
//! `FLYWHEEL_REGENERATE_SEED=1 cargo test --test synth_seed` rewrites
//! `assets/seed/seed.jsonl` after a deliberate change to the generator.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use flywheel::lang::{Language, detect};
use flywheel::synth::{self, INTENTS, SEED_FILE_SEED};
use flywheel::text::normalize_for_dedup;

fn seed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/seed/seed.jsonl")
}

#[test]
fn committed_seed_file_is_the_generators_output() {
    let generated = synth::to_jsonl(&synth::seed_set(SEED_FILE_SEED));
    let path = seed_path();
    if std::env::var("FLYWHEEL_REGENERATE_SEED").as_deref() == Ok("1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &generated).unwrap();
        println!("regenerated {}", path.display());
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; regenerate with FLYWHEEL_REGENERATE_SEED=1",
            path.display()
        )
    });
    assert!(
        committed == generated,
        "{} differs from synth::seed_set({SEED_FILE_SEED}); regenerate with FLYWHEEL_REGENERATE_SEED=1",
        path.display()
    );
}

#[test]
fn seed_lines_are_in_the_sample_format() {
    let content = std::fs::read_to_string(seed_path()).unwrap();
    for (n, line) in content.lines().enumerate() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        let object = value.as_object().unwrap();
        let keys: Vec<&str> = object.keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 4, "line {}: {line}", n + 1);
        for key in ["text", "intent", "language", "source"] {
            assert!(object[key].is_string(), "line {}: {key} in {line}", n + 1);
        }
        assert_eq!(object["source"], "synthetic");
        assert!(INTENTS.contains(&object["intent"].as_str().unwrap()));
        assert!(Language::parse(object["language"].as_str().unwrap()).is_some());
    }
}

#[test]
fn seed_set_is_balanced_learnable_and_duplicate_free() {
    let set = synth::seed_set(SEED_FILE_SEED);
    assert!((1400..=1600).contains(&set.len()), "{} samples", set.len());

    let mut per_intent: BTreeMap<&str, BTreeMap<Language, usize>> = BTreeMap::new();
    for s in &set {
        *per_intent
            .entry(s.intent)
            .or_default()
            .entry(s.language)
            .or_default() += 1;
    }
    assert_eq!(per_intent.len(), INTENTS.len());
    for (intent, languages) in &per_intent {
        let total: usize = languages.values().sum();
        assert!(total >= 60, "{intent}: {total}");
        for language in [Language::En, Language::Hinglish, Language::Hi] {
            assert!(
                languages.get(&language).copied().unwrap_or(0) >= 10,
                "{intent}: {languages:?}"
            );
        }
    }

    let share =
        |language| set.iter().filter(|s| s.language == language).count() as f64 / set.len() as f64;
    assert!((0.40..=0.50).contains(&share(Language::En)));
    assert!((0.35..=0.45).contains(&share(Language::Hinglish)));
    assert!((0.12..=0.18).contains(&share(Language::Hi)));

    let mut seen = HashSet::new();
    for s in &set {
        assert!(
            seen.insert(normalize_for_dedup(&s.text)),
            "duplicate: {:?}",
            s.text
        );
    }

    // Shuffled: no long run of one intent (a class-ordered file hurts SGD).
    let longest_run = set.windows(2).fold((1, 1), |(best, run), w| {
        let run = if w[0].intent == w[1].intent {
            run + 1
        } else {
            1
        };
        (best.max(run), run)
    });
    assert!(
        longest_run.0 < 8,
        "longest run of one intent: {}",
        longest_run.0
    );
}

/// Typos ("itnna") can hide the only Hindi word of a short Hinglish line, so
/// agreement is high but not total.
#[test]
fn detector_agrees_with_the_generated_labels() {
    let set = synth::seed_set(SEED_FILE_SEED);
    for language in [Language::En, Language::Hinglish, Language::Hi] {
        let of_language: Vec<_> = set.iter().filter(|s| s.language == language).collect();
        let wrong: Vec<_> = of_language
            .iter()
            .filter(|s| detect(&s.text) != language)
            .collect();
        let agreement = 1.0 - wrong.len() as f64 / of_language.len() as f64;
        println!("{language}: detector agrees on {agreement:.4}");
        let sample: Vec<&str> = wrong.iter().take(10).map(|s| s.text.as_str()).collect();
        assert!(
            agreement >= 0.98,
            "{language}: {agreement:.4}, e.g. {sample:?}"
        );
    }
}

#[test]
fn seed_set_is_deterministic_and_depends_on_the_seed() {
    assert_eq!(synth::seed_set(3), synth::seed_set(3));
    assert_ne!(synth::seed_set(3), synth::seed_set(4));
}
