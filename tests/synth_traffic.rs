//! Synthetic traffic for `flywheel simulate`.

use std::collections::{BTreeMap, HashMap, HashSet};

use flywheel::lang::Language;
use flywheel::synth::{Generator, INTENTS, Traffic, TrafficConfig, TrafficEvent};
use flywheel::text::normalize_for_dedup;

fn events(seed: u64, n: usize) -> Vec<TrafficEvent> {
    Traffic::new(seed, TrafficConfig::default())
        .take(n)
        .collect()
}

#[test]
fn same_seed_same_stream() {
    assert_eq!(events(9, 500), events(9, 500));
    assert_ne!(events(9, 50), events(10, 50));
}

#[test]
fn phone_numbers_look_indian_and_users_recur() {
    let stream = events(1, 3000);
    let mut per_phone: HashMap<&str, usize> = HashMap::new();
    for e in &stream {
        let p = &e.phone_number;
        assert!(p.len() == 13 && p.starts_with("+91"), "{p}");
        assert!(
            p[3..].bytes().all(|b| b.is_ascii_digit()) && matches!(p.as_bytes()[3], b'6'..=b'9'),
            "{p}"
        );
        *per_phone.entry(p).or_default() += 1;
    }
    assert!(per_phone.len() > 50, "only {} users", per_phone.len());
    assert!(per_phone.values().any(|&n| n >= 20), "no heavy user");
}

#[test]
fn sessions_have_ordered_turns_of_one_user() {
    let stream = events(2, 3000);
    let mut sessions: HashMap<&str, Vec<&TrafficEvent>> = HashMap::new();
    for e in &stream {
        assert!(e.session_id.starts_with("sess-"));
        sessions.entry(&e.session_id).or_default().push(e);
    }
    let multi_turn = sessions.values().filter(|turns| turns.len() > 1).count();
    assert!(
        multi_turn * 2 > sessions.len(),
        "{multi_turn} of {} sessions have several turns",
        sessions.len()
    );
    for turns in sessions.values() {
        for (i, e) in turns.iter().enumerate() {
            assert_eq!(e.turn as usize, i);
            assert_eq!(e.phone_number, turns[0].phone_number);
        }
    }
    // Turns of concurrent sessions interleave.
    let switches = stream
        .windows(2)
        .filter(|w| w[0].session_id != w[1].session_id)
        .count();
    assert!(switches > stream.len() / 2);
}

#[test]
fn popular_phrases_repeat_and_the_mix_is_realistic() {
    let stream = events(3, 5000);
    let distinct: HashSet<String> = stream
        .iter()
        .map(|e| normalize_for_dedup(&e.utterance.text))
        .collect();
    let repeat_share = 1.0 - distinct.len() as f64 / stream.len() as f64;
    assert!(repeat_share >= 0.25, "repeat share {repeat_share:.2}");

    let mut languages: BTreeMap<Language, usize> = BTreeMap::new();
    let mut intents: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &stream {
        *languages.entry(e.utterance.language).or_default() += 1;
        *intents.entry(e.utterance.intent).or_default() += 1;
    }
    let share = |l| languages.get(&l).copied().unwrap_or(0) as f64 / stream.len() as f64;
    assert!(
        (0.30..=0.60).contains(&share(Language::En)),
        "{languages:?}"
    );
    assert!(
        (0.25..=0.55).contains(&share(Language::Hinglish)),
        "{languages:?}"
    );
    assert!(
        (0.05..=0.30).contains(&share(Language::Hi)),
        "{languages:?}"
    );
    assert_eq!(intents.len(), INTENTS.len(), "{intents:?}");
    assert!(
        intents["track_order"] > intents["store_hours"],
        "{intents:?}"
    );
}

#[test]
fn generator_samples_cover_every_intent_and_language() {
    let mut generator = Generator::new(5);
    let mut seen = HashSet::new();
    for _ in 0..4000 {
        let s = generator.sample();
        seen.insert((s.intent, s.language));
    }
    assert_eq!(seen.len(), INTENTS.len() * 3);
}
