//! Reading and merging the configuration layers.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::{Table, Value};

use super::{Config, LoadedConfig, absolute, default_config_file, validate};
use crate::error::{Error, Result};

/// Environment variables with a fixed meaning (DESIGN §4), and the key each sets.
const NAMED_VARIABLES: &[(&str, &str)] = &[
    ("DATABASE_URL", "database_url"),
    ("LABEL_STUDIO_URL", "label_studio.url"),
    ("LABEL_STUDIO_API_KEY", "label_studio.api_key"),
    ("LABEL_STUDIO_PROJECT_ID", "label_studio.project_id"),
    ("FLYWHEEL_HOME", "data_dir"),
    ("FLYWHEEL_API_TOKEN", "serve.api_token"),
    ("FLYWHEEL_ALERT_WEBHOOK", "alerts.webhook_url"),
];

/// `FLYWHEEL_*` variables that are not configuration keys: the config
/// file and log filter; the build facts of `--version` (build.rs sets them
/// for the compiler, and cargo also sets them for what it runs: `cargo run`,
/// `cargo bench`), and the benches' data dir.
const NON_CONFIG_VARIABLES: &[&str] = &[
    "FLYWHEEL_CONFIG",
    "FLYWHEEL_LOG",
    "FLYWHEEL_GIT_COMMIT",
    "FLYWHEEL_SCHEMA_VERSION",
    "FLYWHEEL_BENCH_DATA",
];

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "layer", content = "name", rename_all = "snake_case")]
pub enum Origin {
    File(PathBuf),
    DotEnv(PathBuf),
    Environment(String),
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(path) => write!(f, "config file {}", path.display()),
            Origin::DotEnv(path) => write!(f, "{}", path.display()),
            Origin::Environment(name) => write!(f, "environment variable {name}"),
            Origin::Flag(name) => write!(f, "flag {name}"),
        }
    }
}

/// Everything the loader reads, made explicit so tests need not touch the
/// process environment.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `--config`: must exist when given.
    pub config_file: Option<PathBuf>,
    /// Where `.env` and `.env.labelstudio` are looked for.
    pub working_dir: PathBuf,
    pub env: HashMap<String, String>,
    /// `--database-url`
    pub database_url: Option<String>,
    /// `--data-dir`
    pub data_dir: Option<PathBuf>,
    /// Skip the platform config file when no explicit one is named (tests).
    pub ignore_default_config_file: bool,
}

impl LoadOptions {
    /// The process's own environment and working directory.
    pub fn from_process() -> Self {
        Self {
            working_dir: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            env: std::env::vars().collect(),
            ..Self::default()
        }
    }
}

pub(super) fn load(options: &LoadOptions) -> Result<LoadedConfig> {
    let mut merged = Merged::default();

    let explicit_file = options
        .config_file
        .clone()
        .map(|p| (p, "--config".to_string()))
        .or_else(|| {
            options
                .env
                .get("FLYWHEEL_CONFIG")
                .map(|p| (PathBuf::from(p), "FLYWHEEL_CONFIG".to_string()))
        });
    let config_file = match explicit_file {
        Some((path, named_by)) => {
            let path = absolute(&options.working_dir, &path);
            if !path.is_file() {
                return Err(Error::config(format!(
                    "config file {} (from {named_by}) does not exist",
                    path.display()
                )));
            }
            Some(path)
        }
        None if options.ignore_default_config_file => None,
        None => default_config_file().filter(|p| p.is_file()),
    };
    if let Some(path) = &config_file {
        merged.apply_file(path)?;
    }

    // .env.labelstudio first so a project's own .env wins over the seed file.
    for name in [".env.labelstudio", ".env"] {
        let path = options.working_dir.join(name);
        if path.is_file() {
            let vars = read_dotenv(&path)?;
            merged.apply_variables(&vars, |_| Origin::DotEnv(path.clone()))?;
        }
    }

    merged.apply_variables(&options.env, |name| Origin::Environment(name.to_string()))?;

    if let Some(url) = &options.database_url {
        merged.set(
            "database_url",
            Value::String(url.clone()),
            Origin::Flag("--database-url".into()),
        )?;
    }
    if let Some(dir) = &options.data_dir {
        let dir = absolute(&options.working_dir, dir);
        merged.set(
            "data_dir",
            Value::String(dir.display().to_string()),
            Origin::Flag("--data-dir".into()),
        )?;
    }

    let mut config = merged.build()?;
    config.data_dir = absolute(&options.working_dir, &config.data_dir);
    let problems = validate::problems(&config, &merged.origins);
    if !problems.is_empty() {
        return Err(Error::config(problems.join("; ")));
    }
    Ok(LoadedConfig {
        config,
        origins: merged.origins,
        config_file,
    })
}

#[derive(Default)]
struct Merged {
    table: Table,
    origins: BTreeMap<String, Origin>,
}

impl Merged {
    fn build(&self) -> Result<Config> {
        Config::deserialize(Value::Table(self.table.clone()))
            .map_err(|err| Error::config(format!("configuration: {}", err.message())))
    }

    fn apply_file(&mut self, path: &Path) -> Result<()> {
        let text = std::fs::read_to_string(path).map_err(|err| {
            Error::config(format!("cannot read config file {}: {err}", path.display()))
        })?;
        // Deserialise the file alone first: its errors carry a span we can
        // turn into a line and key.
        if let Err(err) = toml::from_str::<Config>(&text) {
            return Err(Error::config(describe_toml_error(path, &text, &err)));
        }
        let table: Table = toml::from_str(&text)
            .map_err(|err| Error::config(describe_toml_error(path, &text, &err)))?;
        for key in leaf_keys(&table, "") {
            self.origins.insert(key, Origin::File(path.to_path_buf()));
        }
        self.table = table;
        Ok(())
    }

    fn apply_variables(
        &mut self,
        vars: &HashMap<String, String>,
        origin: impl Fn(&str) -> Origin,
    ) -> Result<()> {
        // Sorted so that errors (and later wins) are deterministic.
        let mut names: Vec<&String> = vars.keys().collect();
        names.sort();
        for name in names {
            let Some(key) = key_for_variable(name) else {
                continue;
            };
            let raw = &vars[name];
            self.set_from_text(&key, raw, origin(name))?;
        }
        Ok(())
    }

    /// Set a key from text, trying the text as a TOML value (number, bool,
    /// array) and as a plain string, keeping whichever the schema accepts.
    fn set_from_text(&mut self, key: &str, raw: &str, origin: Origin) -> Result<()> {
        let mut candidates = Vec::new();
        if let Ok(Value::Table(t)) = format!("v = {raw}").parse::<Value>()
            && let Some(v) = t.get("v")
        {
            candidates.push(v.clone());
        }
        candidates.push(Value::String(raw.to_string()));
        // A list key given one item (`FLYWHEEL_AUTO_FILTER__TRUSTED_PROVIDERS=router`)
        // is a list of one, not a type error.
        // So is a bare comma-separated list of numbers
        // (`FLYWHEEL_CANARY__STEPS=10,25,50,100`).
        if !raw.trim().is_empty() {
            let items: Vec<&str> = raw.split(',').map(str::trim).collect();
            let numbers: Option<Vec<Value>> = items
                .iter()
                .map(|item| item.parse::<i64>().ok().map(Value::Integer))
                .collect();
            candidates.extend(numbers.map(Value::Array));
            candidates.push(Value::Array(
                items.iter().map(|s| Value::String(s.to_string())).collect(),
            ));
        }
        // When no reading fits, the first one's error says what is wrong:
        // "abc" for a number is a string, not the list of one tried last.
        let mut first_error = None;
        for value in candidates {
            match self.set(key, value, origin.clone()) {
                Ok(()) => return Ok(()),
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        Err(first_error.expect("at least one candidate"))
    }

    /// Set one dotted key; refused (and the table left unchanged) when the
    /// result no longer deserialises.
    fn set(&mut self, key: &str, value: Value, origin: Origin) -> Result<()> {
        let before = self.table.clone();
        insert_dotted(&mut self.table, key, value);
        if let Err(err) = Config::deserialize(Value::Table(self.table.clone())) {
            self.table = before;
            return Err(Error::config(format!(
                "{origin}: invalid value for `{key}`: {}",
                plain_message(key, err.message())
            )));
        }
        self.origins.insert(key.to_string(), origin);
        Ok(())
    }
}

/// `LABEL_STUDIO_URL` → `label_studio.url`; `FLYWHEEL_SERVE__ADDR` →
/// `serve.addr`; `FLYWHEEL_NLU_HEALTH_URL` → `nlu_health_url`.
pub(super) fn key_for_variable(name: &str) -> Option<String> {
    if let Some((_, key)) = NAMED_VARIABLES.iter().find(|(var, _)| *var == name) {
        return Some((*key).to_string());
    }
    let rest = name.strip_prefix("FLYWHEEL_")?;
    if NON_CONFIG_VARIABLES.contains(&name) || rest.starts_with("TEST_") || rest.is_empty() {
        return None;
    }
    Some(rest.to_ascii_lowercase().replace("__", "."))
}

fn insert_dotted(table: &mut Table, key: &str, value: Value) {
    match key.split_once('.') {
        None => {
            table.insert(key.to_string(), value);
        }
        Some((head, rest)) => {
            let entry = table
                .entry(head.to_string())
                .or_insert_with(|| Value::Table(Table::new()));
            if !entry.is_table() {
                *entry = Value::Table(Table::new());
            }
            if let Value::Table(inner) = entry {
                insert_dotted(inner, rest, value);
            }
        }
    }
}

fn leaf_keys(table: &Table, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Table(inner) => keys.extend(leaf_keys(inner, &key)),
            _ => keys.push(key),
        }
    }
    keys
}

fn read_dotenv(path: &Path) -> Result<HashMap<String, String>> {
    let iter = dotenvy::from_path_iter(path)
        .map_err(|err| Error::config(format!("cannot read {}: {err}", path.display())))?;
    let mut vars = HashMap::new();
    for item in iter {
        let (key, value) = item.map_err(|err| {
            let detail = match &err {
                dotenvy::Error::LineParse(line, index) => {
                    format!("cannot parse `{line}` at position {index}")
                }
                other => other.to_string(),
            };
            Error::config(format!("{}: {detail}", path.display()))
        })?;
        vars.insert(key, value);
    }
    Ok(vars)
}

/// "config file F, line L, key `a.b`: what is wrong".
fn describe_toml_error(path: &Path, text: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim().replace('\n', "; ");
    let Some(span) = err.span() else {
        return format!("config file {}: {message}", path.display());
    };
    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
    match key_at_line(text, line) {
        Some(key) => format!(
            "config file {}, line {line}, key `{key}`: {}",
            path.display(),
            plain_message(&key, &message)
        ),
        None => format!("config file {}, line {line}: {message}", path.display()),
    }
}

/// serde's "expected f64" in words an operator reads, with the key's
/// allowed range when it has one.
fn plain_message(key: &str, message: &str) -> String {
    let mut message = message.trim().to_string();
    for (rust, plain) in [
        ("expected f64", "expected a number"),
        ("expected f32", "expected a number"),
        ("expected i32", "expected a whole number"),
        ("expected i64", "expected a whole number"),
        ("expected u32", "expected a whole number"),
        ("expected u64", "expected a whole number"),
        ("expected usize", "expected a whole number"),
    ] {
        if let Some(stripped) = message.strip_suffix(rust) {
            message = format!("{stripped}{plain}");
        }
    }
    match validate::allowed_range(key) {
        Some(range) => format!("{message} (allowed: {range})"),
        None => message,
    }
}

/// The dotted key assigned on `line` (1-based), qualified by the table
/// header above it.
fn key_at_line(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let current = lines.get(line.checked_sub(1)?)?.trim();
    let (key, _) = current.split_once('=')?;
    let key = key.trim().trim_matches('"');
    let header = lines[..line - 1].iter().rev().find_map(|l| {
        let l = l.trim();
        (l.starts_with('[') && l.ends_with(']'))
            .then(|| l.trim_matches(['[', ']']).trim().to_string())
    });
    Some(match header {
        Some(h) => format!("{h}.{key}"),
        None => key.to_string(),
    })
}
