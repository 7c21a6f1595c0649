//! `migrate`, `status`, `doctor` through the real binary, and the bad inputs
//! of the foundation issue: each one clear sentence and its exit code.

mod support;

use predicates::prelude::*;
use support::environment::flywheel_cmd;
use support::processes::doctor_check;
use support::{Exits, TestDb, block_on, json_stdout};

#[test]
fn migrate_then_status_on_sqlite_with_no_configuration() {
    let home = tempfile::tempdir().unwrap();
    flywheel_cmd(home.path()).arg("migrate").assert().success();
    let db_file = home.path().join("xdg-data/flywheel/flywheel.db");
    assert!(
        db_file.is_file(),
        "default SQLite file missing at {}",
        db_file.display()
    );
    let out = flywheel_cmd(home.path())
        .args(["status", "--json"])
        .succeeds();
    let status = json_stdout(&out);
    assert_eq!(status["ok"], true);
    assert_eq!(status["queue"]["needs_review"], 0);
    assert_eq!(status["approved_unused"], 0);
    assert_eq!(status["today"]["captured"], 0);
    assert!(status["database"].as_str().unwrap().contains("flywheel.db"));
    let codes: Vec<&str> = status["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["no-production-model"]);
    // Human output names the sections.
    flywheel_cmd(home.path())
        .arg("status")
        .assert()
        .success()
        .stdout(
            predicate::str::contains("Review queue")
                .and(predicate::str::contains("Production       none")),
        );
    // The log file landed in the data dir's logs/.
    let logs: Vec<_> = std::fs::read_dir(home.path().join("xdg-data/flywheel/logs"))
        .unwrap()
        .collect();
    assert!(!logs.is_empty());
}

#[test]
fn migrate_then_status_on_postgres_from_database_url() {
    let Some(db) = TestDb::postgres() else { return };
    let url = db.database_url.clone().unwrap();
    let home = tempfile::tempdir().unwrap();
    flywheel_cmd(home.path())
        .arg("migrate")
        .env("DATABASE_URL", &url)
        .assert()
        .success()
        .stdout(predicate::str::contains("migration(s) applied now"));
    let out = flywheel_cmd(home.path())
        .args(["status", "--json"])
        .env("DATABASE_URL", &url)
        .succeeds();
    let status = json_stdout(&out);
    assert_eq!(status["ok"], true);
    assert!(
        status["database"]
            .as_str()
            .unwrap()
            .starts_with("postgres://")
    );
    // No SQLite file was created on the side.
    assert!(!home.path().join("xdg-data/flywheel/flywheel.db").exists());
}

#[test]
fn doctor_shows_unreachable_label_studio_with_its_fix() {
    let db = TestDb::sqlite();
    // doctor only looks: the installation must exist.
    db.cmd().arg("migrate").assert().success();
    // A port nobody listens on: bind, read the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let out = db
        .cmd()
        .args(["doctor", "--json"])
        .env("LABEL_STUDIO_URL", &url)
        .env(
            "LABEL_STUDIO_API_KEY",
            "0123456789abcdef0123456789abcdef01234567",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "a failing check exits 1");
    let report = json_stdout(&out);
    assert_eq!(report["ok"], false);
    let ls = doctor_check(&report, "label studio");
    assert_eq!(ls["status"], "fail");
    assert!(
        ls["detail"].as_str().unwrap().contains("unreachable"),
        "{ls}"
    );
    assert!(
        ls["fix"].as_str().unwrap().contains("LABEL_STUDIO_URL"),
        "{ls}"
    );
    let database = doctor_check(&report, "database");
    assert_eq!(database["status"], "pass");
    // The key never appears in doctor's output.
    assert!(!String::from_utf8_lossy(&out.stdout).contains("0123456789abcdef"));

    db.cmd()
        .arg("doctor")
        .env("LABEL_STUDIO_URL", &url)
        .env("LABEL_STUDIO_API_KEY", "k")
        .assert()
        .code(1)
        .stdout(
            predicate::str::contains("[FAIL] label studio")
                .and(predicate::str::contains("fix: start Label Studio")),
        );
}

#[test]
fn doctor_passes_without_label_studio_configured() {
    let db = TestDb::sqlite();
    db.cmd().arg("migrate").assert().success();
    let out = db.cmd().args(["doctor", "--json"]).output().unwrap();
    let report = json_stdout(&out);
    let ls = doctor_check(&report, "label studio");
    assert_eq!(ls["status"], "warn");
    assert_eq!(out.status.code(), Some(0), "{report}");
}

#[test]
fn bad_database_urls_get_one_sentence_and_their_exit_code() {
    let home = tempfile::tempdir().unwrap();
    let run = |url: &str| {
        flywheel_cmd(home.path())
            .args(["status", "--database-url", url])
            .output()
            .unwrap()
    };
    let out = run("mysql://root@localhost/x");
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("must start with postgres:// or sqlite://"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = run(&format!("postgres://fw:s3cret@127.0.0.1:{port}/fw"));
    assert_eq!(out.status.code(), Some(69));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot connect to PostgreSQL"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "password leaked: {stderr}");
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "one clear sentence: {stderr}"
    );
}

#[test]
fn data_dir_that_cannot_be_created_is_a_config_error() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    flywheel_cmd(home.path())
        .args(["migrate", "--data-dir"])
        .arg(file.join("data"))
        .assert()
        .code(78)
        .stderr(predicate::str::contains("cannot create the data directory"));
}

#[test]
fn read_only_sqlite_database_is_refused_clearly() {
    let home = tempfile::tempdir().unwrap();
    // An empty database that needs migrating, opened read-only (root ignores
    // file modes, so use SQLite's own read-only mode).
    let path = home.path().join("ro.db");
    std::fs::write(&path, b"").unwrap();
    let out = flywheel_cmd(home.path())
        .args(["migrate", "--database-url"])
        .arg(format!("sqlite://{}?mode=ro", path.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("read-only"), "{stderr}");
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "one clear sentence: {stderr}"
    );
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        0,
        "nothing written"
    );
}

#[test]
fn database_migrated_by_a_newer_version_is_refused() {
    for db in TestDb::all() {
        db.cmd().arg("migrate").assert().success();
        let config = db.config();
        block_on(async move {
            let store =
                flywheel::storage::open_unmigrated(&config, flywheel::storage::OpenMode::Create)
                    .await
                    .unwrap();
            // A one-byte checksum, in each backend's literal for bytes.
            let checksum = if store.is_postgres() {
                "'\\x00'::bytea"
            } else {
                "X'00'"
            };
            support::exec(
                &store,
                &format!(
                    "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                     VALUES (99990101000000, 'from the future', TRUE, {checksum}, 0)"
                ),
            )
            .await;
            store.close().await;
        });
        db.cmd()
            .arg("status")
            .assert()
            .code(78)
            .stderr(predicate::str::contains("migrated by a newer Flywheel"));
        let out = db.cmd().args(["doctor", "--json"]).output().unwrap();
        let report = json_stdout(&out);
        let schema = doctor_check(&report, "schema");
        assert_eq!(schema["status"], "fail", "{report}");
    }
}

#[test]
fn usage_errors_exit_2() {
    let home = tempfile::tempdir().unwrap();
    flywheel_cmd(home.path())
        .arg("no-such-command")
        .assert()
        .code(2);
    flywheel_cmd(home.path())
        .args(["status", "-q", "-v"])
        .assert()
        .code(2);
}

/// Commands that only read never create an installation: a typo in
/// `--data-dir` gets "there is no Flywheel database here" and how to make
/// one, and the directory is still not there afterwards.
#[test]
fn readers_never_create_a_data_dir_or_database() {
    let home = tempfile::tempdir().unwrap();
    let typo = home.path().join("flywhel-typo");
    let readers: [&[&str]; 6] = [
        &["status"],
        &["stats", "queue"],
        &["models", "list"],
        &["models", "history"],
        &["tui"],
        &["backup", "copy.db"],
    ];
    for args in readers {
        let out = flywheel_cmd(home.path())
            .args(args)
            .arg("--data-dir")
            .arg(&typo)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if args == ["tui"] {
            // No terminal here: refused before it looks for the database.
            assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        } else {
            assert_eq!(out.status.code(), Some(78), "{args:?}: {stderr}");
            assert!(
                stderr.contains("there is no Flywheel database at")
                    && stderr.contains("flywheel migrate"),
                "{args:?}: {stderr}"
            );
        }
        assert!(!typo.exists(), "{args:?} created {}", typo.display());
    }
    let out = flywheel_cmd(home.path())
        .args(["doctor", "--json", "--data-dir"])
        .arg(&typo)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let doctor = json_stdout(&out);
    let check = |name: &str| doctor_check(&doctor, name);
    assert_eq!(check("data dir")["status"], "fail");
    assert!(
        check("data dir")["detail"]
            .as_str()
            .unwrap()
            .contains("does not exist")
    );
    assert_eq!(check("database")["status"], "fail");
    flywheel_cmd(home.path())
        .args(["config", "show", "--data-dir"])
        .arg(&typo)
        .assert()
        .success();
    assert!(
        !typo.exists(),
        "doctor or config show created {}",
        typo.display()
    );
    // A creating command still makes the installation.
    flywheel_cmd(home.path())
        .args(["migrate", "--data-dir"])
        .arg(&typo)
        .assert()
        .success();
    assert!(typo.join("flywheel.db").is_file());
}

/// "No model in production" advice fixes this installation: never the
/// demo, which works in a data dir of its own.
#[test]
fn no_model_advice_points_at_what_fixes_this_installation() {
    for db in TestDb::all() {
        db.cmd().arg("migrate").assert().success();
        let status = db.cmd().arg("status").output().unwrap();
        let doctor = db.cmd().arg("doctor").output().unwrap();
        let list = db.cmd().args(["models", "list"]).output().unwrap();
        for (what, out) in [
            ("status", status),
            ("doctor", doctor),
            ("models list", list),
        ] {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.contains("`flywheel serve` trains and deploys the bootstrap model"),
                "{what}: {text}"
            );
            assert!(!text.contains("flywheel demo"), "{what}: {text}");
        }
    }
}
