//! Language detection on hand-written examples and, when `../shared/data`
//! is present, on two labelled benchmark sets.

use std::path::PathBuf;
use std::time::Instant;

use flywheel::lang::{Language, detect};

fn assert_all(language: Language, texts: &[&str]) {
    for text in texts {
        assert_eq!(detect(text), language, "{text:?}");
    }
}

#[test]
fn english() {
    assert_all(
        Language::En,
        &[
            "where is my order",
            "I want to order a chicken biryani from Spice Garden",
            "cancel order #4829173 please",
            "what's the status of my refund?",
            "Can you connect me to a human agent",
            "the food arrived cold and the delivery guy was rude",
            "how's the lo mein rated at hun lee's",
            "tell me how to make chow mein",
            "order paneer butter masala and garlic naan",
            "hello",
            "café au lait, s'il vous plaît",
        ],
    );
}

#[test]
fn hinglish() {
    assert_all(
        Language::Hinglish,
        &[
            "mera order kahan hai",
            "bhai mujhe ek chicken biryani mangwa do",
            "Alarm create karo at 4 pm and 9 pm on tuesday",
            "refund kab tak milega",
            "paise kat gaye par order nahi hua",
            "Please Liz ke liye video message banaye",
            "kya aap Spice Garden se pizza mangwa sakte ho",
            "customer care se baat karao",
            "delivery address change kar do",
            "shukriya bhai",
            // Script mixing is code-mixing too.
            "mera order कहाँ hai yaar, it's been an hour",
        ],
    );
}

#[test]
fn hindi() {
    assert_all(
        Language::Hi,
        &[
            "मेरा ऑर्डर कहाँ है",
            "मुझे एक चिकन बिरयानी चाहिए",
            "पैसे कट गए पर ऑर्डर नहीं हुआ।",
            "क्या आप मेरा पता बदल सकते हैं?",
            "धन्यवाद",
            "नमस्ते",
            "ऑर्डर 4829173 रद्द करो",
            // Mostly Devanagari with an English word.
            "मेरा order कहाँ है",
        ],
    );
}

#[test]
fn marathi() {
    assert_all(
        Language::Mr,
        &[
            "माझी ऑर्डर कुठे आहे",
            "मला एक चिकन बिर्याणी पाहिजे",
            "पैसे कापले गेले पण ऑर्डर झाली नाही",
            "तुम्ही माझा पत्ता बदलू शकता का?",
            "ऑर्डर रद्द करा",
            "डिलिव्हरी कधी येईल",
            "जेवण थंड आले आणि उशिरा आले",
        ],
    );
}

#[test]
fn no_letters_or_another_script_is_other() {
    assert_all(
        Language::Other,
        &[
            "",
            "   ",
            "12345",
            "?!...",
            "+91 98765 43210",
            "🙏🙏",
            "எனது ஆர்டர் எங்கே",
            "我的订单在哪里",
        ],
    );
}

#[test]
fn parse_round_trips_as_str() {
    for language in [
        Language::En,
        Language::Hinglish,
        Language::Hi,
        Language::Mr,
        Language::Other,
    ] {
        assert_eq!(Language::parse(language.as_str()), Some(language));
    }
    assert_eq!(Language::parse(" HINGLISH "), Some(Language::Hinglish));
    assert_eq!(Language::parse("fr"), None);
}

fn shared_data(file: &str) -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(file);
    if path.exists() {
        Some(path)
    } else {
        println!("skipping: {} not found", path.display());
        None
    }
}

/// Share of the file's texts detected as `language`.
fn accuracy(path: &PathBuf, language: Language) -> f64 {
    let content = std::fs::read_to_string(path).unwrap();
    let mut total = 0;
    let mut right = 0;
    for line in content.lines().filter(|l| !l.trim().is_empty()) {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        let text = value["text"].as_str().unwrap();
        total += 1;
        if detect(text) == language {
            right += 1;
        }
    }
    assert!(total > 100, "{} has only {total} lines", path.display());
    right as f64 / total as f64
}

#[test]
fn accuracy_on_hinglish_top_validation() {
    let Some(path) = shared_data("hinglish_top_val.jsonl") else {
        return;
    };
    let acc = accuracy(&path, Language::Hinglish);
    println!("hinglish_top_val: {acc:.4} detected as hinglish");
    assert!(acc >= 0.95, "hinglish accuracy {acc:.4}");
}

#[test]
fn accuracy_on_clinc150_validation() {
    let Some(path) = shared_data("clinc150_val.jsonl") else {
        return;
    };
    let acc = accuracy(&path, Language::En);
    println!("clinc150_val: {acc:.4} detected as en");
    assert!(acc >= 0.99, "english accuracy {acc:.4}");
}

/// CPU time this thread has run, where Linux tells it: wall time would
/// count the time other processes held the (shared) cores.
fn thread_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

/// The per-request budget (≤ 2 µs for a typical utterance) only means
/// something in an optimised build:
/// `cargo test --release --test lang_detect -- --ignored --nocapture`.
#[test]
#[ignore = "timing; run in release"]
fn latency_per_utterance() {
    let texts = [
        "where is my order, it's been an hour",
        "bhai mujhe ek chicken biryani mangwa do Spice Garden se",
        "मेरा ऑर्डर कहाँ है, बहुत देर हो गई",
        "माझी ऑर्डर कुठे आहे",
    ];
    let rounds = 400_000;
    let cpu_start = thread_cpu_ns();
    let start = Instant::now();
    let mut hinglish = 0usize;
    for i in 0..rounds {
        if detect(std::hint::black_box(texts[i % texts.len()])) == Language::Hinglish {
            hinglish += 1;
        }
    }
    let wall = start.elapsed().as_secs_f64() * 1e9 / rounds as f64;
    let cpu = match (cpu_start, thread_cpu_ns()) {
        (Some(a), Some(b)) => (b - a) as f64 / rounds as f64,
        _ => wall,
    };
    println!("detect: {cpu:.0} ns CPU, {wall:.0} ns wall per utterance");
    assert_eq!(hinglish, rounds / 4);
    if !cfg!(debug_assertions) {
        assert!(cpu <= 2000.0, "{cpu:.0} ns per utterance");
    }
}
