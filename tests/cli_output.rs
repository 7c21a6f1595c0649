//! What the command line prints, through the real binary (issue 13 items
//! 12 and 13): a closed stdout ends a command quietly with exit 141 (an
//! export's run recorded `cancelled`), JSON output holds JSON objects, a
//! usage error under `--json` is a JSON error object, `--limit 0` is zero
//! rows, and an unknown export language is warned about.

mod support;

use std::io::{BufRead, BufReader, PipeReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use flywheel::storage::models::NewModelVersion;
use support::environment::{flywheel_cmd, flywheel_command, path_string};
use support::processes::succeeded;
use support::state::job_runs;
use support::{TestDb, exec, json_stdout};

/// The exit code of a command whose stdout's reader went away.
const OUTPUT_CLOSED: i32 = 141;

/// `cmd` with stdout a pipe; `read` gets the read end and drops it when it
/// is done (the `| head -1` of a shell), then the command runs to its end.
fn with_stdout_pipe(cmd: &mut Command, read: impl FnOnce(PipeReader)) -> Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn flywheel");
    // The write end now lives only in the child (replacing it drops `cmd`'s):
    // once `read` drops the read end, every write of the child fails.
    cmd.stdout(Stdio::null());
    read(reader);
    child.wait_with_output().expect("wait for flywheel")
}

/// Read nothing: the pipe is closed before the command writes anything.
fn closed_at_once(cmd: &mut Command) -> Output {
    with_stdout_pipe(cmd, drop)
}

/// Read one line, then close (`| head -1`).
fn one_line_then_closed(cmd: &mut Command) -> Output {
    with_stdout_pipe(cmd, |reader| {
        let mut line = String::new();
        BufReader::new(reader)
            .read_line(&mut line)
            .expect("read a line");
        assert!(line.starts_with('{'), "{line:?}");
    })
}

fn assert_ended_quietly(out: &Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(OUTPUT_CLOSED),
        "{what}: {:?}\n{stderr}",
        out.status
    );
    for noise in ["error", "panicked", "Broken pipe", "backtrace"] {
        assert!(
            !stderr.contains(noise),
            "{what}: {noise:?} on stderr:\n{stderr}"
        );
    }
}

fn write_samples(dir: &Path, n: usize) -> PathBuf {
    let mut lines = String::new();
    for i in 0..n {
        let intent = ["greeting", "order_food", "track_order"][i % 3];
        lines.push_str(&format!(
            "{{\"text\": \"sample utterance number {i} with some padding to make the line longer\", \"intent\": \"{intent}\", \"language\": \"en\"}}\n"
        ));
    }
    let path = dir.join("samples.jsonl");
    std::fs::write(&path, lines).unwrap();
    path
}

fn import(db: &TestDb, file: &Path) {
    succeeded(db.output(&["samples", "import", &path_string(file)]));
}

/// `flywheel export | head -1` exited 1 with "Broken pipe" and recorded a
/// failed export. Now: exit 141, nothing on stderr, the run `cancelled`.
/// 30 000 samples (~3 MB) are more than any pipe buffers, so the export is
/// still writing when the reader closes.
#[test]
fn export_into_a_closed_pipe_ends_quietly_and_is_recorded_cancelled() {
    for db in TestDb::all() {
        let file = write_samples(db.data_path(), 30_000);
        import(&db, &file);
        let out = one_line_then_closed(db.command().arg("export"));
        assert_ended_quietly(&out, &format!("export | head -1 on {:?}", db.backend));
        let out = closed_at_once(db.command().args(["--json", "export", "--output", "-"]));
        assert_ended_quietly(&out, &format!("export >&- on {:?}", db.backend));

        let runs = db.with_store(move |store| async move { job_runs(&store, "export").await });
        let count = |status: &str| runs.iter().filter(|r| r.1 == status).count();
        assert_eq!(count("cancelled"), 2, "{runs:?}");
        assert_eq!(count("failed"), 0, "{runs:?}");
        // Nothing was left beside the data (an export to stdout has no file).
        let partial: Vec<_> = std::fs::read_dir(db.data_path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
            .collect();
        assert!(partial.is_empty(), "{partial:?}");
    }
}

/// A model to classify and evaluate with, trained once per test from a
/// small file through the binary.
fn trained_model(dir: &Path) -> (PathBuf, PathBuf) {
    let data = dir.join("train.jsonl");
    let mut lines = String::new();
    for (intent, phrases) in [
        (
            "greeting",
            ["hello there", "namaste ji", "good morning", "hey"],
        ),
        (
            "order_food",
            [
                "order a pizza",
                "i want biryani",
                "get me food",
                "burger please",
            ],
        ),
    ] {
        for round in 0..6 {
            for phrase in phrases {
                lines.push_str(&format!(
                    "{{\"text\": \"{phrase} {round}\", \"intent\": \"{intent}\"}}\n"
                ));
            }
        }
    }
    std::fs::write(&data, lines).unwrap();
    let model = dir.join("model");
    succeeded(
        flywheel_command(dir)
            .args(["train", "--epochs", "2", "--input"])
            .arg(&data)
            .arg("--output")
            .arg(&model)
            .output()
            .unwrap(),
    );
    (model, data)
}

/// `classify … | head` exited 1 with an error; `eval … --json | head`
/// panicked with a backtrace; any command's summary into a closed pipe
/// panicked too (`println!`).
#[test]
fn classify_eval_and_summaries_into_a_closed_pipe_end_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let (model, data) = trained_model(dir.path());
    // Enough lines that classify is still writing when the reader closes.
    let many = dir.path().join("many.jsonl");
    let text = std::fs::read_to_string(&data).unwrap();
    std::fs::write(&many, text.repeat(400)).unwrap();

    let mut classify = flywheel_command(dir.path());
    classify
        .arg("classify")
        .arg("--model")
        .arg(&model)
        .arg("--input")
        .arg(&many);
    assert_ended_quietly(&one_line_then_closed(&mut classify), "classify | head -1");

    let mut eval = flywheel_command(dir.path());
    eval.args(["eval", "--json", "--model"])
        .arg(&model)
        .arg("--input")
        .arg(&data);
    assert_ended_quietly(&closed_at_once(&mut eval), "eval --json >&-");

    assert_ended_quietly(
        &closed_at_once(flywheel_command(dir.path()).args(["config", "show"])),
        "config show >&-",
    );
}

/// `models list --json` carried `metrics` as a JSON string inside the JSON.
#[test]
fn models_list_json_holds_metrics_as_an_object() {
    for db in TestDb::all() {
        db.with_store(move |store| async move {
            store
                .insert_model_version(
                    &NewModelVersion {
                        version: "router-v1.0.0".into(),
                        status: flywheel::domain::ModelStatus::Testing,
                        metrics: Some(
                            r#"{"accuracy": 0.9, "per_intent": {"greeting": 1.0}}"#.into(),
                        ),
                        ..Default::default()
                    },
                    "test",
                )
                .await
                .unwrap();
        });
        let value = db.json(&["--json", "models", "list"]);
        let metrics = &value["models"][0]["metrics"];
        assert!(metrics.is_object(), "{metrics}");
        assert_eq!(metrics["per_intent"]["greeting"], 1.0);
    }
}

/// A usage error under `--json` printed clap's text only: now also the JSON
/// error object every other error prints on stdout, with exit 2.
#[test]
fn a_usage_error_with_json_is_a_json_error_object() {
    let home = tempfile::tempdir().unwrap();
    for args in [
        &["--json", "export", "--split", "sideways"][..],
        &["export", "--no-such-flag", "--json"][..],
        &["--json", "no-such-command"][..],
        &["--json", "models"][..],
    ] {
        let out = flywheel_cmd(home.path()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let value = json_stdout(&out);
        assert_eq!(value["ok"], false, "{args:?}");
        assert_eq!(value["exit_code"], 2, "{args:?}");
        let error = value["error"].as_str().unwrap_or_default();
        assert!(!error.is_empty() && !error.starts_with("error:"), "{value}");
        // The human text stays on stderr, as for every other error.
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("error:"),
            "{args:?}"
        );
    }
    // Help and version are not errors.
    let out = flywheel_cmd(home.path())
        .args(["--json", "--version"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
}

/// `stats recent --limit 0` returned one row.
#[test]
fn stats_recent_limit_zero_is_no_rows() {
    for db in TestDb::all() {
        db.with_store(move |store| async move {
            for i in 0..3 {
                exec(&store, &format!(
                    "INSERT INTO conversation_logs (user_message, nlu_intent, nlu_confidence, nlu_provider, review_status) \
                     VALUES ('utterance {i}', 'greeting', 0.9, 'flywheel-router', 'pending')"
                ))
                .await;
            }
        });
        for (limit, rows) in [("0", 0), ("2", 2)] {
            let value = db.json(&["--json", "stats", "recent", "--limit", limit]);
            assert_eq!(
                value["conversations"].as_array().map(Vec::len),
                Some(rows),
                "--limit {limit}"
            );
        }
        let out = db
            .cmd()
            .args(["stats", "recent", "--limit", "-1"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
    }
}

/// `export --languages xx` exported nothing without a word.
#[test]
fn export_warns_about_an_unknown_language() {
    for db in TestDb::all() {
        let file = write_samples(db.data_path(), 12);
        import(&db, &file);
        let output = db.data_path().join("out.jsonl");
        let out = succeeded(db.output(&[
            "--json",
            "export",
            "--languages",
            "xx,EN",
            "--output",
            &path_string(&output),
        ]));
        let value = json_stdout(&out);
        // "EN" is English; "xx" is no language and is named.
        assert_eq!(value["export"]["exported"], 12, "{value}");
        let warnings = value["export"]["warnings"].to_string();
        assert!(
            warnings.contains("unknown language \\\"xx\\\""),
            "{warnings}"
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("unknown language"),
            "warned on stderr too"
        );
    }
}
