//! Configuration layering (DESIGN §4) and its errors.

mod support;

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
        &[
            ("FLYWHEEL_LOG", "debug"),
            ("FLYWHEEL_TEST_X", "1"),
            // build.rs's facts, which cargo sets for `cargo run` and `cargo bench`
            ("FLYWHEEL_GIT_COMMIT", "0123456789ab"),
            ("FLYWHEEL_SCHEMA_VERSION", "16"),
            ("FLYWHEEL_BENCH_DATA", "/data"),
        ],
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
    let out = support::environment::flywheel_cmd(home.path())
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

    let json = support::environment::flywheel_cmd(home.path())
        .args(["config", "show", "--json"])
        .env("LABEL_STUDIO_API_KEY", "ls-secret-0123456789")
        .output()
        .unwrap();
    let value = support::json_stdout(&json);
    assert_eq!(value["config"]["label_studio"]["api_key"], "********");

    support::environment::flywheel_cmd(home.path())
        .args(["config", "show"])
        .env("FLYWHEEL_TRAINING__MIN_SAMPLES", "many")
        .assert()
        .code(78)
        .stderr(predicate::str::contains("FLYWHEEL_TRAINING__MIN_SAMPLES"));
}

/// `flywheel export --split train` with a configuration from `home`, its
/// data dir one that does not exist: the run's exit code and stderr.
fn export_with_bad_config(
    home: &Path,
    configure: impl FnOnce(&mut assert_cmd::Command),
) -> (i32, String) {
    let data_dir = home.join("no-such-data-dir");
    let mut cmd = support::environment::flywheel_cmd(home);
    cmd.arg("--data-dir")
        .arg(&data_dir)
        .args(["export", "--split", "train", "--output"])
        .arg(home.join("out.jsonl"));
    configure(&mut cmd);
    let out = cmd.output().unwrap();
    assert!(
        !data_dir.exists(),
        "an invalid configuration must stop before the data dir is made"
    );
    assert!(!home.join("out.jsonl").exists());
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Issue 13 item 6: thresholds out of range were accepted (a confidence of
/// -3 auto-approved a 0.0 fallback; export printed "test share 150 %").
/// Every layer's bad value is exit 78 naming key, value, range and layer,
/// even where the data dir does not exist yet.
#[test]
fn out_of_range_values_are_refused_at_start_up_naming_key_value_range_and_layer() {
    // config file: the file and the line
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("flywheel.toml");
    std::fs::write(
        &file,
        "# thresholds\n[auto_filter]\nreview_confidence = 0.5\nauto_approve_confidence = 1.5\n",
    )
    .unwrap();
    let (code, stderr) = export_with_bad_config(home.path(), |cmd| {
        cmd.arg("--config").arg(&file);
    });
    assert_eq!(code, 78, "{stderr}");
    for part in [
        format!("config file {}, line 4", file.display()),
        "`auto_filter.auto_approve_confidence` = 1.5".into(),
        "0 to 1".into(),
    ] {
        assert!(stderr.contains(&part), "{part:?} missing from {stderr}");
    }

    // environment variables, NaN included
    for (variable, value, key, range) in [
        (
            "FLYWHEEL_AUTO_FILTER__AUTO_APPROVE_CONFIDENCE",
            "-3",
            "auto_filter.auto_approve_confidence",
            "0 to 1",
        ),
        (
            "FLYWHEEL_HEALTH__MAX_FALLBACK_RATE",
            "nan",
            "health.max_fallback_rate",
            "0 to 1",
        ),
        (
            "FLYWHEEL_TRAINING__CANARY_TRAFFIC",
            "500",
            "training.canary_traffic",
            "1 to 99",
        ),
        (
            "FLYWHEEL_PRIVACY__MIN_DIGITS",
            "1",
            "privacy.min_digits",
            "3 to 15",
        ),
    ] {
        let home = tempfile::tempdir().unwrap();
        let (code, stderr) = export_with_bad_config(home.path(), |cmd| {
            cmd.env(variable, value);
        });
        assert_eq!(code, 78, "{variable}={value}: {stderr}");
        for part in [
            format!("environment variable {variable}"),
            format!("`{key}` = {value}"),
            range.to_string(),
        ] {
            // NaN is shown as NaN
            assert!(
                stderr.to_lowercase().contains(&part.to_lowercase()),
                "{part:?} missing from {stderr}"
            );
        }
    }

    // .env: the file and the line
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join(".env"),
        "LABEL_STUDIO_URL=http://localhost:8080\nFLYWHEEL_TRAINING__TEST_SPLIT_PERCENT=150\n",
    )
    .unwrap();
    let (code, stderr) = export_with_bad_config(home.path(), |_| {});
    assert_eq!(code, 78, "{stderr}");
    let dotenv = home.path().join(".env");
    for part in [
        format!("{}, line 2", dotenv.display()),
        "`training.test_split_percent` = 150".into(),
        "1 to 50".into(),
    ] {
        assert!(stderr.contains(&part), "{part:?} missing from {stderr}");
    }
}

/// review_confidence above auto_approve_confidence leaves no "needs review"
/// band at all: refused, naming both keys and where each came from.
#[test]
fn review_confidence_above_auto_approve_confidence_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("flywheel.toml");
    std::fs::write(&file, "[auto_filter]\nauto_approve_confidence = 0.6\n").unwrap();
    let (code, stderr) = export_with_bad_config(home.path(), |cmd| {
        cmd.arg("--config")
            .arg(&file)
            .env("FLYWHEEL_AUTO_FILTER__REVIEW_CONFIDENCE", "0.8");
    });
    assert_eq!(code, 78, "{stderr}");
    for part in [
        "environment variable FLYWHEEL_AUTO_FILTER__REVIEW_CONFIDENCE".to_string(),
        "`auto_filter.review_confidence` = 0.8".into(),
        "`auto_filter.auto_approve_confidence` = 0.6".into(),
        format!("config file {}, line 2", file.display()),
    ] {
        assert!(stderr.contains(&part), "{part:?} missing from {stderr}");
    }
}

/// `=abc` for a number said "invalid type: sequence, expected f64" (the
/// error of the last reading tried, a list of one): name the variable, the
/// value and the expected type.
#[test]
fn a_variable_of_the_wrong_type_names_the_variable_and_the_type() {
    let home = tempfile::tempdir().unwrap();
    let (code, stderr) = export_with_bad_config(home.path(), |cmd| {
        cmd.env("FLYWHEEL_AUTO_FILTER__AUTO_APPROVE_CONFIDENCE", "abc");
    });
    assert_eq!(code, 78, "{stderr}");
    assert!(!stderr.contains("sequence"), "{stderr}");
    for part in [
        "environment variable FLYWHEEL_AUTO_FILTER__AUTO_APPROVE_CONFIDENCE",
        "\"abc\"",
        "expected a number",
    ] {
        assert!(stderr.contains(part), "{part:?} missing from {stderr}");
    }
}

#[test]
fn schedules_are_cron_expressions_read_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    let mut opts = options(dir.path(), &[]);
    opts.config_file = Some(file.clone());
    std::fs::write(&file, "[schedule]\nweekly_training = \"0 4 * * sat\"\n").unwrap();
    let loaded = Config::load(&opts).unwrap().config;
    assert_eq!(loaded.schedule.weekly_training.to_string(), "0 4 * * sat");
    assert_eq!(
        loaded.schedule.daily_capture.to_string(),
        "0 2 * * *",
        "default"
    );

    std::fs::write(&file, "\n[schedule]\nweekly_training = \"0 3 * * 8\"\n").unwrap();
    let err = Config::load(&opts).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    let msg = err.message();
    assert!(
        msg.contains("line 3")
            && msg.contains("schedule.weekly_training")
            && msg.contains("day-of-week field `8` is outside 0–7"),
        "{msg}"
    );
}

#[test]
fn the_console_is_read_only_from_the_file_or_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = Config::load(&options(dir.path(), &[])).unwrap().config;
    assert!(!loaded.console.read_only, "off by default");
    let loaded = Config::load(&options(
        dir.path(),
        &[("FLYWHEEL_CONSOLE__READ_ONLY", "true")],
    ))
    .unwrap()
    .config;
    assert!(loaded.console.read_only);
    let file = dir.path().join("config.toml");
    std::fs::write(&file, "[console]\nread_only = true\n").unwrap();
    let mut opts = options(dir.path(), &[]);
    opts.config_file = Some(file);
    assert!(Config::load(&opts).unwrap().config.console.read_only);
    let err = Config::load(&options(
        dir.path(),
        &[("FLYWHEEL_CONSOLE__READ_ONLY", "sometimes")],
    ))
    .unwrap_err();
    assert!(err.message().contains("console.read_only"), "{err}");
}
