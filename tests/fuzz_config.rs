//! Fuzzing configuration loading (issue 8): the TOML file, `.env` files and
//! environment variables through `Config::load` with an explicit
//! environment. Arbitrary input never panics; a valid generated file loads
//! to exactly the values written; an unknown key is refused naming it; a
//! value of the wrong type is refused naming the line and the dotted key.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use flywheel::config::{Config, LoadOptions, LoadedConfig, Origin};
use flywheel::error::{Error, ErrorKind};
use proptest::prelude::*;
use serde_json::Value as Json;
use support::fuzz::{config, mutation, tricky_string};
use toml::{Table, Value};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// A number in `min..=max`.
    Float {
        min: f64,
        max: f64,
    },
    /// A whole number in `min..=max`, within a type of `type_min..=type_max`.
    Int {
        min: i64,
        max: i64,
        type_min: i64,
        type_max: i64,
    },
    Bool,
    Text,
    Secret,
    DatabaseUrl,
    Path,
    TextList,
}

const fn float(min: f64, max: f64) -> Kind {
    Kind::Float { min, max }
}

const fn int(min: i64, max: i64, (type_min, type_max): (i64, i64)) -> Kind {
    Kind::Int {
        min,
        max,
        type_min,
        type_max,
    }
}

const I32: (i64, i64) = (i32::MIN as i64, i32::MAX as i64);
const U32: (i64, i64) = (0, u32::MAX as i64);
const I64: (i64, i64) = (i64::MIN, i64::MAX);
const U64: (i64, i64) = (0, i64::MAX);

/// Every configuration key and the values it takes (issue 13: ranges are
/// checked at load). Keys that must not be above another are drawn from
/// ranges that keep that order among themselves and with the defaults:
/// review_confidence ≤ 0.7 ≤ auto_approve_confidence, high_priority ≤ 2 ≤
/// medium_priority, min_auto_approval_rate ≤ 50 ≤ max_auto_approval_rate.
const KEYS: &[(&str, Kind)] = &[
    ("data_dir", Kind::Path),
    ("database_url", Kind::DatabaseUrl),
    ("nlu_health_url", Kind::Text),
    ("auto_filter.auto_approve_confidence", float(0.7, 1.0)),
    ("auto_filter.review_confidence", float(0.0, 0.7)),
    ("auto_filter.trusted_providers", Kind::TextList),
    ("auto_filter.medium_priority", int(2, 100, I32)),
    ("auto_filter.high_priority", int(0, 2, I32)),
    ("auto_filter.ready_for_training", int(1, i64::MAX, I64)),
    ("auto_filter.min_precision", float(0.0, 1.0)),
    ("auto_filter.threshold_evidence", int(0, 100_000, U32)),
    ("auto_filter.rejudge_backlog", Kind::Bool),
    ("audit.percent", int(0, 100, U32)),
    ("audit.share", int(0, 100, U32)),
    ("audit.needs_review_multiplier", int(1, 20, U32)),
    ("suspects.enabled", Kind::Bool),
    ("suspects.share", int(0, 100, U32)),
    ("label_studio.url", Kind::Text),
    ("label_studio.api_key", Kind::Secret),
    ("label_studio.project_id", int(1, i64::MAX, I64)),
    ("label_studio.batch_size", int(1, 10_000, U64)),
    ("label_studio.timeout_secs", int(1, 3600, U64)),
    ("serve.addr", Kind::Text),
    ("serve.api_token", Kind::Secret),
    ("serve.bootstrap", Kind::Bool),
    ("training.min_samples", int(0, i64::MAX, I64)),
    ("training.gate_tolerance", float(0.0, 1.0)),
    ("training.oos_tolerance", float(0.0, 1.0)),
    ("training.min_gold_test", int(1, u32::MAX as i64, U32)),
    ("training.test_split_percent", int(1, 50, U32)),
    ("training.epochs", int(1, 1000, U32)),
    ("training.seed", int(0, i64::MAX, U64)),
    ("training.canary_traffic", int(1, 99, U32)),
    ("health.min_test_accuracy", float(0.0, 1.0)),
    ("health.max_fallback_rate", float(0.0, 1.0)),
    ("health.min_production_accuracy", float(0.0, 1.0)),
    ("health.min_auto_approval_rate", float(0.0, 50.0)),
    ("health.max_auto_approval_rate", float(50.0, 100.0)),
    ("health.quiet_period_minutes", int(1, 525_600, U64)),
    ("privacy.redact", Kind::Bool),
    ("privacy.min_digits", int(3, 15, U64)),
    ("canary.min_step_minutes", int(0, 525_600, U64)),
    ("canary.min_requests", int(1, 100_000_000, U64)),
    ("canary.min_audits", int(0, 1_000_000, U64)),
    ("canary.alpha", float(0.0001, 0.2)),
];

/// The full allowed range of a numeric key as the error names it (the
/// generators above may use a narrower one), when it has one.
fn allowed(key: &str) -> Option<&'static str> {
    Some(match key {
        "auto_filter.auto_approve_confidence"
        | "auto_filter.review_confidence"
        | "health.min_test_accuracy"
        | "health.max_fallback_rate"
        | "auto_filter.min_precision"
        | "health.min_production_accuracy" => "0 to 1",
        "audit.percent" | "audit.share" | "suspects.share" => "0 to 100",
        "audit.needs_review_multiplier" => "1 to 20",
        "auto_filter.threshold_evidence" => "0 to 100000",
        "health.min_auto_approval_rate" | "health.max_auto_approval_rate" => "0 to 100",
        "training.gate_tolerance" | "training.oos_tolerance" => "0 to 1",
        "training.min_gold_test" => "at least 1",
        "auto_filter.medium_priority" | "auto_filter.high_priority" => "0 to 100",
        "auto_filter.ready_for_training" | "label_studio.project_id" => "at least 1",
        "label_studio.batch_size" => "1 to 10000",
        "label_studio.timeout_secs" => "1 to 3600",
        "training.min_samples" => "at least 0",
        "training.test_split_percent" => "1 to 50",
        "training.epochs" => "1 to 1000",
        "training.canary_traffic" => "1 to 99",
        "health.quiet_period_minutes" => "1 to 525600",
        "privacy.min_digits" => "3 to 15",
        "canary.min_step_minutes" => "0 to 525600",
        "canary.min_requests" => "1 to 100000000",
        "canary.min_audits" => "0 to 1000000",
        "canary.alpha" => "0.0001 to 0.2",
        _ => return None,
    })
}

/// A value of the key's type outside its allowed range (`allowed`).
fn out_of_range(key: &str, kind: Kind) -> Option<BoxedStrategy<Value>> {
    let range = allowed(key)?;
    let (low, high): (f64, Option<f64>) = match range.strip_prefix("at least ") {
        Some(min) => (min.parse().ok()?, None),
        None => {
            let (min, max) = range.split_once(" to ")?;
            (min.parse().ok()?, Some(max.parse().ok()?))
        }
    };
    Some(match kind {
        Kind::Float { .. } => {
            let mut options = vec![
                Just(f64::NAN).boxed(),
                (-1.0e9..low).boxed(),
                Just(f64::NEG_INFINITY).boxed(),
            ];
            if let Some(high) = high {
                options.push(((high + 1e-9)..1.0e9).boxed());
            }
            prop::strategy::Union::new(options)
                .prop_map(Value::Float)
                .boxed()
        }
        Kind::Int {
            type_min, type_max, ..
        } => {
            let mut options = Vec::new();
            if type_min < low as i64 {
                options.push((type_min..low as i64).boxed());
            }
            if let Some(high) = high
                && (high as i64) < type_max
            {
                options.push(((high as i64 + 1)..=type_max).boxed());
            }
            if options.is_empty() {
                return None;
            }
            prop::strategy::Union::new(options)
                .prop_map(Value::Integer)
                .boxed()
        }
        _ => return None,
    })
}

fn value_of(kind: Kind) -> BoxedStrategy<Value> {
    match kind {
        Kind::Float { min, max } => prop_oneof![min..=max, Just(min), Just(max)]
            .prop_map(Value::Float)
            .boxed(),
        Kind::Int { min, max, .. } => prop_oneof![
            (min..=max),
            Just(min),
            Just(max),
            (min.max(-1000)..=max.min(1000)),
        ]
        .prop_map(Value::Integer)
        .boxed(),
        Kind::Bool => any::<bool>().prop_map(Value::Boolean).boxed(),
        Kind::Text | Kind::Secret | Kind::DatabaseUrl | Kind::Path => {
            tricky_string(30).prop_map(Value::String).boxed()
        }
        Kind::TextList => prop::collection::vec(tricky_string(12).prop_map(Value::String), 0..4)
            .prop_map(Value::Array)
            .boxed(),
    }
}

/// A value the key's type cannot take.
fn wrong_value_of(kind: Kind) -> BoxedStrategy<Value> {
    match kind {
        Kind::Float { .. } | Kind::Int { .. } | Kind::Bool | Kind::TextList => {
            tricky_string(10).prop_map(Value::String).boxed()
        }
        Kind::Text | Kind::Secret | Kind::DatabaseUrl | Kind::Path => prop_oneof![
            any::<i64>().prop_map(Value::Integer),
            any::<bool>().prop_map(Value::Boolean),
            Just(Value::Array(vec![Value::Integer(1)])),
        ]
        .boxed(),
    }
}

/// A set of (key index, value) pairs, each key at most once.
fn settings() -> impl Strategy<Value = Vec<(usize, Value)>> {
    prop::sample::subsequence((0..KEYS.len()).collect::<Vec<_>>(), 0..=KEYS.len()).prop_flat_map(
        |keys| {
            keys.into_iter()
                .map(|i| value_of(KEYS[i].1).prop_map(move |v| (i, v)))
                .collect::<Vec<_>>()
        },
    )
}

fn insert_dotted(table: &mut Table, key: &str, value: Value) {
    match key.split_once('.') {
        None => {
            table.insert(key.to_string(), value);
        }
        Some((head, rest)) => {
            let inner = table
                .entry(head.to_string())
                .or_insert_with(|| Value::Table(Table::new()));
            if let Value::Table(inner) = inner {
                insert_dotted(inner, rest, value);
            }
        }
    }
}

fn toml_text(settings: &[(usize, Value)]) -> String {
    let mut table = Table::new();
    for (i, value) in settings {
        insert_dotted(&mut table, KEYS[*i].0, value.clone());
    }
    toml::to_string(&table).expect("generated tables serialise")
}

fn options(dir: &Path, file: Option<PathBuf>, env: HashMap<String, String>) -> LoadOptions {
    LoadOptions {
        config_file: file,
        working_dir: dir.to_path_buf(),
        env,
        ignore_default_config_file: true,
        ..LoadOptions::default()
    }
}

fn load_file(text: &[u8]) -> (tempfile::TempDir, PathBuf, Result<LoadedConfig, Error>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).expect("write");
    let loaded = Config::load(&options(dir.path(), Some(path.clone()), HashMap::new()));
    (dir, path, loaded)
}

/// The loaded value of `key`, as JSON, secrets exposed.
fn loaded_value(config: &Config, key: &str) -> Json {
    match key {
        "database_url" => config
            .database_url
            .as_ref()
            .map_or(Json::Null, |u| u.expose().into()),
        "label_studio.api_key" => config
            .label_studio
            .api_key
            .as_ref()
            .map_or(Json::Null, |s| s.expose().into()),
        "serve.api_token" => config
            .serve
            .api_token
            .as_ref()
            .map_or(Json::Null, |s| s.expose().into()),
        "data_dir" => config.data_dir.to_string_lossy().into_owned().into(),
        _ => {
            let all = serde_json::to_value(config).expect("config serialises");
            key.split('.').fold(all, |v, part| v[part].clone())
        }
    }
}

/// What a written TOML value must load as.
fn expected_value(dir: &Path, key: &str, value: &Value) -> Json {
    match (key, value) {
        ("data_dir", Value::String(s)) => {
            let p = Path::new(s);
            let p = if p.is_absolute() {
                p.to_path_buf()
            } else {
                dir.join(p)
            };
            p.to_string_lossy().into_owned().into()
        }
        _ => serde_json::to_value(value).expect("toml values are JSON"),
    }
}

/// The 1-based line of a generated file that assigns `key`: after its
/// section header (if any), the line assigning the leaf.
fn line_of(text: &str, key: &str) -> Option<usize> {
    let (section, leaf) = key.rsplit_once('.').unwrap_or(("", key));
    let lines: Vec<&str> = text.lines().collect();
    let start = if section.is_empty() {
        0
    } else {
        lines
            .iter()
            .position(|l| l.trim() == format!("[{section}]"))
            .map_or(0, |p| p + 1)
    };
    lines
        .iter()
        .enumerate()
        .skip(start)
        .find(|(_, l)| l.trim_start().starts_with(&format!("{leaf} =")))
        .map(|(n, _)| n + 1)
}

fn unknown_key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_][a-z0-9_]{0,12}",
        tricky_string(8).prop_filter("not empty", |s| !s.is_empty()),
        Just("labelstudio".to_string()),
        Just("database-url".to_string()),
        Just("Data_Dir".to_string()),
    ]
    .prop_filter("not a real key", |k| {
        !KEYS
            .iter()
            .any(|(key, _)| key.split('.').any(|part| part == k))
            && !SECTIONS.contains(&k.as_str())
    })
}

const SECTIONS: &[&str] = &[
    "",
    "auto_filter",
    "label_studio",
    "serve",
    "training",
    "health",
    "privacy",
];

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn a_valid_file_loads_to_the_values_written(settings in settings()) {
        let text = toml_text(&settings);
        let (dir, path, loaded) = load_file(text.as_bytes());
        let loaded = loaded.map_err(|e| TestCaseError::fail(format!("{}\n{text}", e.message())))?;
        for (i, value) in &settings {
            let key = KEYS[*i].0;
            prop_assert_eq!(loaded_value(&loaded.config, key), expected_value(dir.path(), key, value), "key {}", key);
            prop_assert_eq!(loaded.origin_of(key), Some(&Origin::File(path.clone())), "key {}", key);
        }
    }

    #[test]
    fn an_unknown_key_is_refused_by_name(
        settings in settings(),
        section in prop::sample::select(SECTIONS),
        key in unknown_key(),
        value in prop_oneof![value_of(Kind::Text), value_of(float(0.0, 1.0)), value_of(Kind::Bool)],
    ) {
        let mut table: Table = toml::from_str(&toml_text(&settings)).expect("valid");
        let dotted = if section.is_empty() { key.clone() } else { format!("{section}.{key}") };
        if section.is_empty() {
            table.insert(key.clone(), value);
        } else {
            let entry = table.entry(section.to_string()).or_insert_with(|| Value::Table(Table::new()));
            if let Value::Table(inner) = entry {
                inner.insert(key.clone(), value);
            }
        }
        let text = toml::to_string(&table).expect("serialises");
        let (_dir, path, loaded) = load_file(text.as_bytes());
        let err = loaded.expect_err("an unknown key must be refused");
        prop_assert_eq!(err.kind(), ErrorKind::Config);
        let message = err.message();
        prop_assert!(message.contains(&path.display().to_string()), "{}", message);
        // Error messages are one line: a newline in the key reads as "; ".
        let named = format!("unknown field `{}`", key.replace('\n', "; "));
        prop_assert!(message.contains(&named), "{} (key {:?})\n{}", message, dotted, text);
        // The line named is the line the key is on.
        let line = text.lines().position(|l| {
            let l = l.trim_start();
            l.starts_with(&format!("{key} ="))
                || l.starts_with(&format!("\"{key}\" ="))
                || l.starts_with(&format!("'{key}' ="))
                || l.starts_with(&toml::Value::String(key.clone()).to_string())
        });
        if let Some(line) = line {
            let named = format!("line {}", line + 1);
            prop_assert!(message.contains(&named), "{} lacks {}\n{}", message, named, text);
        }
    }

    #[test]
    fn a_wrong_type_is_refused_naming_line_and_key(
        settings in settings(),
        wrong in (0..KEYS.len()).prop_flat_map(|i| wrong_value_of(KEYS[i].1).prop_map(move |v| (i, v))),
    ) {
        let (index, value) = wrong;
        let key = KEYS[index].0;
        let mut settings: Vec<(usize, Value)> = settings.into_iter().filter(|(i, _)| *i != index).collect();
        settings.push((index, value));
        let text = toml_text(&settings);
        let (_dir, _path, loaded) = load_file(text.as_bytes());
        let err = loaded.expect_err("a wrong type must be refused");
        prop_assert_eq!(err.kind(), ErrorKind::Config);
        let line = line_of(&text, key);
        prop_assert!(err.message().contains(&format!("key `{key}`")), "{}\n{}", err.message(), text);
        if let Some(line) = line {
            prop_assert!(err.message().contains(&format!("line {line},")), "{}\n{}", err.message(), text);
        }
    }

    #[test]
    fn arbitrary_file_text_never_panics(
        text in prop_oneof![
            tricky_string(200).prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..200),
            (settings(), prop::collection::vec(mutation(), 1..4)).prop_map(|(s, ms)| {
                let mut bytes = toml_text(&s).into_bytes();
                for m in &ms {
                    bytes = m.apply(&bytes);
                }
                bytes
            }),
        ],
    ) {
        let (_dir, path, loaded) = load_file(&text);
        if let Err(err) = loaded {
            prop_assert_eq!(err.kind(), ErrorKind::Config);
            let message = err.message();
            prop_assert!(message.contains(&path.display().to_string()), "{}", message);
            if let Some(rest) = message.split(", line ").nth(1) {
                let number: usize = rest.split(|c: char| !c.is_ascii_digit()).next().unwrap_or("").parse().unwrap_or(0);
                let lines = String::from_utf8_lossy(&text).lines().count().max(1);
                prop_assert!(number >= 1 && number <= lines + 1, "line {} of {}: {}", number, lines, message);
            }
        }
    }
}

// ---- environment and .env --------------------------------------------------

/// The variable that sets a key (`FLYWHEEL_SERVE__ADDR`, or a named one).
fn variable_for(key: &str) -> String {
    match key {
        "database_url" => "DATABASE_URL".into(),
        "label_studio.url" => "LABEL_STUDIO_URL".into(),
        "label_studio.api_key" => "LABEL_STUDIO_API_KEY".into(),
        "label_studio.project_id" => "LABEL_STUDIO_PROJECT_ID".into(),
        "data_dir" => "FLYWHEEL_HOME".into(),
        "serve.api_token" => "FLYWHEEL_API_TOKEN".into(),
        _ => format!("FLYWHEEL_{}", key.to_uppercase().replace('.', "__")),
    }
}

/// A value as an environment variable's text, and the value it must load as.
fn env_setting(kind: Kind) -> BoxedStrategy<(String, Json)> {
    // Plain words: no quotes, `$`, `#`, `\` or `,`, which .env syntax and
    // list splitting give a meaning of their own.
    let word = "[a-zA-Z0-9:/._@-]{0,20}|[\u{0915}-\u{0939}][\u{093E}-\u{094D}]?[a-z]{0,5}";
    match kind {
        Kind::Float { min, max } => (min..=max)
            .prop_map(|f| (f.to_string(), Json::from(f)))
            .boxed(),
        Kind::Int { min, max, .. } => (min.max(-1_000_000)..=max.min(1_000_000))
            .prop_map(|n| (n.to_string(), Json::from(n)))
            .boxed(),
        Kind::Bool => any::<bool>()
            .prop_map(|b| (b.to_string(), Json::from(b)))
            .boxed(),
        Kind::Text | Kind::Secret | Kind::DatabaseUrl => word
            .prop_filter("not blank and not a TOML literal", |s| {
                !s.is_empty()
                    && s.parse::<f64>().is_err()
                    && !["true", "false", "inf", "nan"].contains(&s.as_str())
            })
            .prop_map(|s| (s.clone(), Json::from(s)))
            .boxed(),
        Kind::Path => "/[a-z0-9._-]{1,12}/[a-z0-9]{1,8}"
            .prop_map(|s| (s.clone(), Json::from(s)))
            .boxed(),
        Kind::TextList => prop::collection::vec("[a-z][a-z0-9_-]{0,10}", 1..4)
            .prop_map(|items| (items.join(","), Json::from(items)))
            .boxed(),
    }
}

fn env_settings() -> impl Strategy<Value = Vec<(usize, String, Json)>> {
    prop::sample::subsequence((0..KEYS.len()).collect::<Vec<_>>(), 1..=8).prop_flat_map(|keys| {
        keys.into_iter()
            .map(|i| env_setting(KEYS[i].1).prop_map(move |(raw, v)| (i, raw, v)))
            .collect::<Vec<_>>()
    })
}

fn hostile_env() -> impl Strategy<Value = HashMap<String, String>> {
    let name = prop_oneof![
        (0..KEYS.len()).prop_map(|i| variable_for(KEYS[i].0)),
        "FLYWHEEL_[A-Z_]{0,20}",
        tricky_string(10),
        Just("FLYWHEEL_CONFIG_X".to_string()),
        Just("FLYWHEEL___".to_string()),
        Just("FLYWHEEL_SERVE__ADDR__X".to_string()),
    ];
    let value = prop_oneof![
        tricky_string(20),
        support::fuzz::json_number_text(),
        Just("[1, 2".to_string()),
        Just("{a = 1}".to_string()),
        Just("\"unterminated".to_string()),
        Just(",,,".to_string()),
    ];
    prop::collection::hash_map(name, value, 0..6)
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn environment_variables_load_to_their_values(settings in env_settings()) {
        let dir = tempfile::tempdir().expect("tempdir");
        let env: HashMap<String, String> = settings.iter().map(|(i, raw, _)| (variable_for(KEYS[*i].0), raw.clone())).collect();
        let loaded = Config::load(&options(dir.path(), None, env.clone()))
            .map_err(|e| TestCaseError::fail(format!("{} with {env:?}", e.message())))?;
        for (i, raw, want) in &settings {
            let key = KEYS[*i].0;
            prop_assert_eq!(&loaded_value(&loaded.config, key), want, "{}={:?}", variable_for(key), raw);
            prop_assert_eq!(loaded.origin_of(key), Some(&Origin::Environment(variable_for(key))));
        }
    }

    #[test]
    fn dotenv_files_load_and_the_environment_wins(settings in env_settings(), override_last in any::<bool>()) {
        let dir = tempfile::tempdir().expect("tempdir");
        let dotenv: String = settings.iter().map(|(i, raw, _)| format!("{}={raw}\n", variable_for(KEYS[*i].0))).collect();
        std::fs::write(dir.path().join(".env"), &dotenv).expect("write");
        let mut env = HashMap::new();
        let overridden = if override_last {
            let (i, _, _) = settings.last().expect("at least one");
            // The same value through the environment: the origin says which won.
            let (_, raw, _) = &settings[settings.len() - 1];
            env.insert(variable_for(KEYS[*i].0), raw.clone());
            Some(*i)
        } else {
            None
        };
        let loaded = Config::load(&options(dir.path(), None, env))
            .map_err(|e| TestCaseError::fail(format!("{}\n{dotenv}", e.message())))?;
        for (i, _, want) in &settings {
            let key = KEYS[*i].0;
            prop_assert_eq!(&loaded_value(&loaded.config, key), want, "{}", key);
            let origin = if overridden == Some(*i) {
                Origin::Environment(variable_for(key))
            } else {
                Origin::DotEnv(dir.path().join(".env"))
            };
            prop_assert_eq!(loaded.origin_of(key), Some(&origin));
        }
    }

    #[test]
    fn hostile_environments_never_panic_and_name_the_variable(env in hostile_env()) {
        let dir = tempfile::tempdir().expect("tempdir");
        if let Err(err) = Config::load(&options(dir.path(), None, env.clone())) {
            prop_assert_eq!(err.kind(), ErrorKind::Config);
            prop_assert!(
                env.keys().any(|name| err.message().contains(&format!("environment variable {name}:"))),
                "{} names none of {:?}", err.message(), env.keys().collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn hostile_dotenv_files_never_panic_and_name_the_file(
        text in prop_oneof![
            tricky_string(120).prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..120),
            hostile_env().prop_map(|env| env.iter().map(|(k, v)| format!("{k}={v}\n")).collect::<String>().into_bytes()),
        ],
        name in prop::sample::select(vec![".env", ".env.labelstudio"]),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(name);
        std::fs::write(&path, &text).expect("write");
        if let Err(err) = Config::load(&options(dir.path(), None, HashMap::new())) {
            prop_assert_eq!(err.kind(), ErrorKind::Config);
            prop_assert!(err.message().contains(&path.display().to_string()), "{}", err.message());
        }
    }
}

// ---- ranges (issue 13 item 6) ---------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Layer {
    File,
    DotEnv,
    Environment,
}

/// A numeric key, a value of its type outside its range, and a layer.
fn out_of_range_setting() -> impl Strategy<Value = (usize, Value, Layer)> {
    let keys: Vec<usize> = (0..KEYS.len())
        .filter(|i| out_of_range(KEYS[*i].0, KEYS[*i].1).is_some())
        .collect();
    prop::sample::select(keys).prop_flat_map(|i| {
        let (key, kind) = KEYS[i];
        (
            Just(i),
            out_of_range(key, kind).expect("filtered"),
            prop::sample::select(vec![Layer::File, Layer::DotEnv, Layer::Environment]),
        )
    })
}

/// A value as a variable's text: TOML spells NaN and infinity its own way.
fn variable_text(value: &Value) -> String {
    match value {
        Value::Float(f) if f.is_nan() => "nan".into(),
        Value::Float(f) if f.is_infinite() => if *f > 0.0 { "inf" } else { "-inf" }.into(),
        other => other.to_string(),
    }
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn an_out_of_range_value_is_refused_naming_key_value_range_and_layer(
        (index, value, layer) in out_of_range_setting(),
        others in settings(),
    ) {
        let key = KEYS[index].0;
        let dir = tempfile::tempdir().expect("tempdir");
        // Valid settings of other keys in the file, to be reported past.
        let others: Vec<(usize, Value)> = others.into_iter().filter(|(i, _)| *i != index).collect();
        let mut file_settings = others.clone();
        let mut env = HashMap::new();
        let variable = variable_for(key);
        let layer_named = match layer {
            Layer::File => {
                file_settings.push((index, value.clone()));
                None
            }
            Layer::DotEnv => {
                let path = dir.path().join(".env");
                std::fs::write(&path, format!("# comment\n{variable}={}\n", variable_text(&value))).expect("write");
                Some(format!("{}, line 2", path.display()))
            }
            Layer::Environment => {
                env.insert(variable.clone(), variable_text(&value));
                Some(format!("environment variable {variable}"))
            }
        };
        let text = toml_text(&file_settings);
        let path = dir.path().join("config.toml");
        std::fs::write(&path, &text).expect("write");
        let layer_named = layer_named.unwrap_or_else(|| {
            let line = line_of(&text, key).unwrap_or(0);
            format!("config file {}, line {line}", path.display())
        });
        let err = Config::load(&options(dir.path(), Some(path.clone()), env))
            .expect_err("an out-of-range value must be refused");
        prop_assert_eq!(err.kind(), ErrorKind::Config);
        let shown = match &value {
            Value::Float(f) => f.to_string(),
            other => other.to_string(),
        };
        let message = err.message();
        for part in [
            format!("{layer_named}: `{key}` = {shown} is out of range"),
            format!("(allowed: {})", allowed(key).expect("numeric")),
        ] {
            prop_assert!(message.contains(&part), "{:?} missing from {}\n{}", part, message, text);
        }
    }
}

// ---- regressions found by the properties above ----------------------------

/// Found by `environment_variables_load_to_their_values`: a list key set
/// from the environment with a single item was refused ("invalid type:
/// string, expected a sequence"); only a comma made it a list.
#[test]
fn regression_a_single_trusted_provider_from_the_environment() {
    for (env, dotenv) in [(true, false), (false, true)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut vars = HashMap::new();
        if env {
            vars.insert(
                "FLYWHEEL_AUTO_FILTER__TRUSTED_PROVIDERS".to_string(),
                "a".to_string(),
            );
        }
        if dotenv {
            std::fs::write(
                dir.path().join(".env"),
                "FLYWHEEL_AUTO_FILTER__TRUSTED_PROVIDERS=a\n",
            )
            .expect("write");
        }
        let loaded = Config::load(&options(dir.path(), None, vars)).expect("a list of one loads");
        assert_eq!(
            loaded.config.auto_filter.trusted_providers,
            vec!["a".to_string()]
        );
    }
    // Several items, and a scalar key that merely contains a comma, as before.
    let dir = tempfile::tempdir().expect("tempdir");
    let vars = HashMap::from([
        (
            "FLYWHEEL_AUTO_FILTER__TRUSTED_PROVIDERS".to_string(),
            "a, b".to_string(),
        ),
        ("FLYWHEEL_SERVE__ADDR".to_string(), "x,y".to_string()),
    ]);
    let loaded = Config::load(&options(dir.path(), None, vars)).expect("loads");
    assert_eq!(
        loaded.config.auto_filter.trusted_providers,
        vec!["a".to_string(), "b".to_string()]
    );
    assert_eq!(loaded.config.serve.addr, "x,y");
}
