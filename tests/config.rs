//! Configuration layering (DESIGN §4) and its errors.

mod common;

use std::collections::HashMap;
use std::path::Path;

use flywheel::config::{Config, LoadOptions, Origin};
use flywheel::error::ErrorKind;
use predicates::prelude::*;

fn options(dir: &Path, env: &[(&str, &str)]) -> LoadOptions {
    LoadOptions {
        working_dir: dir.to_path_buf(),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>(),
        ignore_default_config_file: true,
        ..LoadOptions::default()
    }
}

#[test]
fn each_layer_overrides_the_one_below() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(
        &file,
        "[auto_filter]\nauto_approve_confidence = 0.9\nreview_confidence = 0.6\n\n[label_studio]\nurl = \"http://file:8080\"\nproject_id = 1\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join(".env.labelstudio"),
        "LABEL_STUDIO_URL=http://seed:8080\nLABEL_STUDIO_API_KEY=seedkey\nLABEL_STUDIO_USERNAME=ignored@example.com\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "LABEL_STUDIO_URL=http://dotenv:8080\n",
    )
    .unwrap();

    let mut opts = options(
        dir.path(),
        &[
            ("LABEL_STUDIO_PROJECT_ID", "7"),
            ("FLYWHEEL_AUTO_FILTER__REVIEW_CONFIDENCE", "0.65"),
            ("FLYWHEEL_AUTO_FILTER__TRUSTED_PROVIDERS", "router,rasa"),
            ("DATABASE_URL", "postgres://env/db"),
        ],
    );
    opts.config_file = Some(file.clone());
    opts.database_url = Some("postgres://u:pw@flag/db".into());
    opts.data_dir = Some("relative-data".into());
    let loaded = Config::load(&opts).unwrap();
    let c = &loaded.config;
    assert_eq!(c.auto_filter.auto_approve_confidence, 0.9); // file
    assert_eq!(c.auto_filter.review_confidence, 0.65); // env over file
    assert_eq!(c.auto_filter.trusted_providers, ["router", "rasa"]);
    assert_eq!(c.label_studio.url.as_deref(), Some("http://dotenv:8080")); // .env over .env.labelstudio over file
    assert_eq!(c.label_studio.api_key.as_ref().unwrap().expose(), "seedkey");
    assert_eq!(c.label_studio.project_id, Some(7)); // env over file
    assert_eq!(
        c.database_url.as_ref().unwrap().expose(),
        "postgres://u:pw@flag/db"
    ); // flag over env
    assert_eq!(c.data_dir, dir.path().join("relative-data"));
    assert_eq!(c.auto_filter.medium_priority, 5); // default
    assert_eq!(
        loaded.origin_of("label_studio.project_id"),
        Some(&Origin::Environment("LABEL_STUDIO_PROJECT_ID".into()))
    );
    assert_eq!(
        loaded.origin_of("auto_filter.auto_approve_confidence"),
        Some(&Origin::File(file))
    );
    // Masked output.
    let shown = loaded.to_masked_toml();
    assert!(
        !shown.contains("seedkey") && !shown.contains(":pw@"),
        "{shown}"
    );
    assert!(shown.contains("postgres://u:********@flag/db"), "{shown}");
}

#[test]
fn malformed_file_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(&file, "# comment\n[training]\nmin_samples = \"lots\"\n").unwrap();
    let mut opts = options(dir.path(), &[]);
    opts.config_file = Some(file.clone());
    let err = Config::load(&opts).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    let msg = err.message();
    assert!(msg.contains(&file.display().to_string()), "{msg}");
    assert!(msg.contains("line 3"), "{msg}");
    assert!(msg.contains("training.min_samples"), "{msg}");

    std::fs::write(&file, "[serve]\nadress = \"0.0.0.0:1\"\n").unwrap();
    let msg = Config::load(&opts).unwrap_err().message().to_string();
    assert!(
        msg.contains("line 2") && msg.contains("serve.adress") && msg.contains("unknown field"),
        "{msg}"
    );

    std::fs::write(&file, "[serve\n").unwrap();
    let msg = Config::load(&opts).unwrap_err().message().to_string();
    assert!(msg.contains("line 1"), "{msg}");
}

#[test]
fn bad_environment_values_name_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let err =
        Config::load(&options(dir.path(), &[("LABEL_STUDIO_PROJECT_ID", "two")])).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(
        err.message().contains("LABEL_STUDIO_PROJECT_ID"),
        "{}",
        err.message()
    );
    let err = Config::load(&options(dir.path(), &[("FLYWHEEL_SERVE__ADRESS", "x")])).unwrap_err();
    assert!(
        err.message().contains("FLYWHEEL_SERVE__ADRESS"),
        "{}",
        err.message()
    );
    // Non-config FLYWHEEL_ variables are left alone.
    Config::load(&options(
        dir.path(),
        &[("FLYWHEEL_LOG", "debug"), ("FLYWHEEL_TEST_X", "1")],
    ))
    .unwrap();
    // A named --config that does not exist is an error, not a silent default.
    let mut opts = options(dir.path(), &[]);
    opts.config_file = Some("missing.toml".into());
    let err = Config::load(&opts).unwrap_err();
    assert!(err.message().contains("missing.toml") && err.message().contains("does not exist"));
}

#[test]
fn config_show_masks_every_secret_and_names_origins() {
    let home = tempfile::tempdir().unwrap();
    let out = common::flywheel_cmd(home.path())
        .args(["config", "show"])
        .env("LABEL_STUDIO_API_KEY", "ls-secret-0123456789")
        .env("FLYWHEEL_API_TOKEN", "bearer-secret-xyz")
        .env("DATABASE_URL", "postgres://fw:dbpass@localhost/fw")
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    for secret in ["ls-secret-0123456789", "bearer-secret-xyz", "dbpass"] {
        assert!(!stdout.contains(secret), "{secret} leaked:\n{stdout}");
    }
    assert!(
        stdout.contains("label_studio.api_key from environment variable LABEL_STUDIO_API_KEY"),
        "{stdout}"
    );
    assert!(
        stdout.contains("auto_approve_confidence = 0.85"),
        "{stdout}"
    );

    let json = common::flywheel_cmd(home.path())
        .args(["config", "show", "--json"])
        .env("LABEL_STUDIO_API_KEY", "ls-secret-0123456789")
        .output()
        .unwrap();
    let value = common::json_stdout(&json);
    assert_eq!(value["config"]["label_studio"]["api_key"], "********");

    common::flywheel_cmd(home.path())
        .args(["config", "show"])
        .env("FLYWHEEL_TRAINING__MIN_SAMPLES", "many")
        .assert()
        .code(78)
        .stderr(predicate::str::contains("FLYWHEEL_TRAINING__MIN_SAMPLES"));
}
