//! Configuration loading on arbitrary input: the bytes are split at the
//! first two 0xFF bytes into a config file, a `.env` file and
//! `NAME=value` environment lines. Errors are configuration errors.
#![no_main]

use std::collections::HashMap;
use std::sync::OnceLock;

use flywheel::config::{Config, LoadOptions};
use flywheel::error::ErrorKind;
use libfuzzer_sys::fuzz_target;

fn workdir() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("tempdir"))
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == 0xff);
    let file = parts.next().unwrap_or_default();
    let dotenv = parts.next();
    let env_text = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let dir = workdir().path();
    let config_path = dir.join("config.toml");
    std::fs::write(&config_path, file).expect("write");
    let dotenv_path = dir.join(".env");
    match dotenv {
        Some(text) => std::fs::write(&dotenv_path, text).expect("write"),
        None => {
            let _ = std::fs::remove_file(&dotenv_path);
        }
    }
    let env: HashMap<String, String> = env_text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let options = LoadOptions {
        config_file: Some(config_path),
        working_dir: dir.to_path_buf(),
        env,
        ignore_default_config_file: true,
        ..LoadOptions::default()
    };
    if let Err(err) = Config::load(&options) {
        assert_eq!(err.kind(), ErrorKind::Config, "{}", err.message());
    }
});
