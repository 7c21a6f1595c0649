//! Fuzzing configuration loading (issue 8): the TOML file, `.env` files and
//! environment variables through `Config::load` with an explicit
//! environment. Arbitrary input never panics; a valid generated file loads
//! to exactly the values written; an unknown key is refused naming it; a
//! value of the wrong type is refused naming the line and the dotted key.

mod fuzz_support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use flywheel::config::{Config, LoadOptions, LoadedConfig, Origin};
use flywheel::error::{Error, ErrorKind};
use fuzz_support::{config, mutation, tricky_string};
use proptest::prelude::*;
use serde_json::Value as Json;
use toml::{Table, Value};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Float,
    Int { min: i64, max: i64 },
    Bool,
    Text,
    Secret,
    DatabaseUrl,
    Path,
    TextList,
}

const I32: Kind = Kind::Int {
    min: i32::MIN as i64,
    max: i32::MAX as i64,
};
const U32: Kind = Kind::Int {
    min: 0,
    max: u32::MAX as i64,
};
const I64: Kind = Kind::Int {
    min: i64::MIN,
    max: i64::MAX,
};
const U64: Kind = Kind::Int {
    min: 0,
    max: i64::MAX,
};

/// Every configuration key and the kind of value it takes.
const KEYS: &[(&str, Kind)] = &[
    ("data_dir", Kind::Path),
    ("database_url", Kind::DatabaseUrl),
    ("nlu_health_url", Kind::Text),
    ("auto_filter.auto_approve_confidence", Kind::Float),
    ("auto_filter.review_confidence", Kind::Float),
    ("auto_filter.trusted_providers", Kind::TextList),
    ("auto_filter.medium_priority", I32),
    ("auto_filter.high_priority", I32),
    ("auto_filter.ready_for_training", I64),
    ("label_studio.url", Kind::Text),
    ("label_studio.api_key", Kind::Secret),
    ("label_studio.project_id", I64),
    ("label_studio.batch_size", U64),
    ("label_studio.timeout_secs", U64),
    ("serve.addr", Kind::Text),
    ("serve.api_token", Kind::Secret),
    ("serve.bootstrap", Kind::Bool),
    ("training.min_samples", I64),
    ("training.min_improvement", Kind::Float),
    ("training.test_split_percent", U32),
    ("training.epochs", U32),
    ("training.seed", U64),
    ("training.canary_traffic", U32),
    ("health.min_test_accuracy", Kind::Float),
    ("health.max_fallback_rate", Kind::Float),
    ("health.min_auto_approval_rate", Kind::Float),
    ("health.max_auto_approval_rate", Kind::Float),
    ("health.quiet_period_minutes", U64),
];

fn value_of(kind: Kind) -> BoxedStrategy<Value> {
    match kind {
        Kind::Float => prop_oneof![
            any::<f64>().prop_filter("finite", |f| f.is_finite()),
            0.0f64..=1.0,
        ]
        .prop_map(Value::Float)
        .boxed(),
        Kind::Int { min, max } => prop_oneof![
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
        Kind::Float | Kind::Int { .. } | Kind::Bool | Kind::TextList => {
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
            && !["auto_filter", "label_studio", "serve", "training", "health"].contains(&k.as_str())
    })
}

const SECTIONS: &[&str] = &[
    "",
    "auto_filter",
    "label_studio",
    "serve",
    "training",
    "health",
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
        value in prop_oneof![value_of(Kind::Text), value_of(Kind::Float), value_of(Kind::Bool)],
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
        let leaf = key.rsplit('.').next().unwrap_or(key);
        let (section, _) = key.rsplit_once('.').unwrap_or(("", key));
        // Find the line: after the section header (if any), the line assigning the leaf.
        let lines: Vec<&str> = text.lines().collect();
        let start = if section.is_empty() { 0 } else {
            lines.iter().position(|l| l.trim() == format!("[{section}]")).map_or(0, |p| p + 1)
        };
        let line = lines.iter().enumerate().skip(start)
            .find(|(_, l)| l.trim_start().starts_with(&format!("{leaf} =")))
            .map(|(n, _)| n + 1);
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
        Kind::Float => (-1.0e6f64..1.0e6)
            .prop_map(|f| (f.to_string(), Json::from(f)))
            .boxed(),
        Kind::Int { min, max } => (min.max(-1_000_000)..=max.min(1_000_000))
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
        fuzz_support::json_number_text(),
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
