//! SECURITY.md held to account: an end-to-end run at `-vv` (serve with a
//! token, users known by phone number, phone numbers and e-mails inside the
//! texts, daily capture, a push to the real Label Studio, export, status,
//! doctor, config show) and a search of every byte it wrote for a secret, a
//! raw phone number or an e-mail address; and the file-mode check of files
//! that hold secrets.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use serde_json::{Value, json};
use support::environment::{files_under, path_string};
use support::processes::{doctor_check, text_of};
use support::serve::{Server, client};
use support::{TestDb, block_on};

const API_TOKEN: &str = "tok-3f9a7c1e5b2d4f6a8c0e";
const DB_PASSWORD: &str = "db-pass-71c3e9a5";
const WEBHOOK_SECRET: &str = "hook-5e2b8d0f4a6c";
/// Phone numbers as users give them, and the digits as stored anywhere.
const USER_PHONE: &str = "+91 98111 22333";
const TEXTS: [(&str, &[&str]); 4] = [
    (
        "please call me back on +91 99887 76655 about my refund",
        &["99887", "9988776655"],
    ),
    (
        "my email is priya.sharma@example.com where is my parcel",
        &["priya.sharma", "example.com"],
    ),
    ("card 4111 1111 1111 1111 got blocked help", &["4111 1111"]),
    (
        "order 88812345 never arrived, reach me at 98765-43210",
        &["88812345", "98765-", "-43210"],
    ),
];

/// Confident and from a trusted provider: auto-approved, so exported.
const APPROVED_TEXT: &str = "thanks, write to rahul.k@example.org or call 91234 56789";
/// Pieces of the number carry their separator: a bare 5-digit run turns up
/// by chance in TRACE logs' pointer tokens (`Token(94620189123456)`).
const APPROVED_PIECES: [&str; 4] = ["rahul.k", "91234 ", " 56789", "9123456789"];

/// Everything under `dir` that is text (logs, reports, exports), with its path.
fn texts_under(dir: &Path) -> Vec<(String, String)> {
    assert!(dir.is_dir(), "{} is no directory", dir.display());
    files_under(dir)
        .into_iter()
        .filter_map(|path| Some((path_string(&path), std::fs::read_to_string(&path).ok()?)))
        .collect()
}

fn assert_clean(what: &str, text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !text.contains(secret),
            "{what} contains {secret:?}:\n{}",
            &text[text.find(secret).unwrap().saturating_sub(200)..]
                .chars()
                .take(400)
                .collect::<String>()
        );
    }
}

#[test]
fn no_secret_phone_number_or_email_leaves_in_any_output() {
    let Some(ls) = support::label_studio::label_studio() else {
        return;
    };
    for mut db in TestDb::all() {
        // trust auth ignores the password, but Flywheel must never show it
        if let Some(url) = db.database_url.as_mut() {
            *url = url.replacen("postgres@", &format!("postgres:{DB_PASSWORD}@"), 1);
        }
        let env = [
            ("FLYWHEEL_API_TOKEN", API_TOKEN),
            ("LABEL_STUDIO_URL", ls.url.as_str()),
            ("LABEL_STUDIO_API_KEY", ls.pat.as_str()),
            // serve accepts webhooks with it; the sync registers it in Label Studio
            ("FLYWHEEL_LABEL_STUDIO__WEBHOOK_SECRET", WEBHOOK_SECRET),
            (
                "FLYWHEEL_LABEL_STUDIO__WEBHOOK_URL",
                "http://127.0.0.1:9/v1/label-studio/webhook",
            ),
        ];
        let run = |args: &[&str]| -> Output {
            let out = db
                .command()
                .arg("-vv")
                .args(args)
                .envs(env)
                .output()
                .unwrap();
            assert!(
                out.status.success() || args == ["doctor"],
                "flywheel {args:?} failed: {}",
                text_of(&out)
            );
            out
        };
        let mut outputs: Vec<(String, String)> = Vec::new();
        outputs.push(("migrate".into(), text_of(&run(&["migrate"]))));

        let mut server = Server::start(&db, &[], &env);
        block_on({
            let base = server.base.clone();
            async move {
                let http = client();
                // without the token: refused, and the answer does not echo it
                let refused = http
                    .post(format!("{base}/v1/conversations"))
                    .bearer_auth("wrong-token")
                    .json(&json!([]))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(refused.status(), 401);
                let mut records: Vec<Value> = TEXTS
                    .iter()
                    .map(|(text, _)| {
                        json!({"user_message": text, "nlu_intent": "order_status",
                               "nlu_confidence": 0.41, "nlu_provider": "legacy-nlu",
                               "phone_number": USER_PHONE, "language": "en"})
                    })
                    .collect();
                records.push(
                    json!({"user_message": APPROVED_TEXT, "nlu_intent": "thanks",
                                    "nlu_confidence": 0.97, "nlu_provider": "flywheel-router",
                                    "phone_number": USER_PHONE, "language": "en"}),
                );
                let stored = http
                    .post(format!("{base}/v1/conversations"))
                    .bearer_auth(API_TOKEN)
                    .json(&records)
                    .send()
                    .await
                    .unwrap();
                assert!(
                    stored.status().is_success(),
                    "{}",
                    stored.text().await.unwrap()
                );
            }
        });
        server.signal("TERM");
        assert!(server.wait().success());
        outputs.push(("serve".into(), server.stderr()));

        outputs.push(("daily-capture".into(), text_of(&run(&["daily-capture"]))));
        let sync = run(&["--json", "label-studio-sync", "--push-only"]);
        let pushed: Value = serde_json::from_slice(&sync.stdout).unwrap();
        assert_eq!(pushed["sync"]["pushed"], 4, "{pushed}");
        assert_eq!(pushed["sync"]["webhook"], "created", "{pushed}");
        let project = pushed["sync"]["project_id"].as_i64().unwrap();
        outputs.push(("label-studio-sync".into(), text_of(&sync)));
        let export = db.data_path().join("export.jsonl");
        let export_arg = export.display().to_string();
        outputs.push((
            "export".into(),
            text_of(&run(&["export", "--output", &export_arg, "--split", "all"])),
        ));
        for args in [
            &["status"][..],
            &["doctor"],
            &["config", "show"],
            &["stats", "daily"],
        ] {
            outputs.push((args.join(" "), text_of(&run(args))));
        }

        // What Label Studio now holds, as an annotator sees it.
        let tasks = block_on({
            let url = ls.url.clone();
            async move {
                support::label_studio::api(
                    &url,
                    reqwest::Method::GET,
                    &format!("/api/tasks?project={project}&page_size=100"),
                    None,
                )
                .await
                .unwrap()
            }
        });
        let tasks = tasks.get("tasks").cloned().unwrap_or(tasks);
        let task_texts: Vec<String> = tasks
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["data"]["text"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(task_texts.len(), 4);
        assert!(
            task_texts.iter().any(|t| t.contains("<phone>")),
            "{task_texts:?}"
        );
        assert!(
            task_texts.iter().any(|t| t.contains("<email>")),
            "{task_texts:?}"
        );
        assert!(
            task_texts.iter().any(|t| t.contains("<number>")),
            "{task_texts:?}"
        );
        outputs.push(("Label Studio tasks".into(), tasks.to_string()));
        outputs.extend(texts_under(&db.data_path().join("logs")));
        outputs.push((
            "export file".into(),
            std::fs::read_to_string(&export).unwrap(),
        ));

        let mut forbidden: Vec<&str> = vec![
            API_TOKEN,
            DB_PASSWORD,
            WEBHOOK_SECRET,
            &ls.pat,
            &ls.legacy_token,
        ];
        forbidden.extend(["98111 22333", "9811122333"]);
        for (_, pieces) in TEXTS {
            forbidden.extend(pieces.iter().copied());
        }
        forbidden.extend(APPROVED_PIECES);
        assert!(outputs.len() > 12, "every output was collected");
        for (what, text) in &outputs {
            assert_clean(what, text, &forbidden);
        }
        // the texts themselves did get through, redacted
        let export_text = std::fs::read_to_string(&export).unwrap();
        assert!(
            export_text.contains("thanks, write to <email> or call <phone>"),
            "{export_text}"
        );
    }
}

#[test]
fn files_holding_secrets_must_be_private() {
    let db = TestDb::sqlite();
    let dotenv = db.data_path().join(".env");
    std::fs::write(&dotenv, "LABEL_STUDIO_API_KEY=abcdef0123456789abcdef\n").unwrap();
    // a file without secrets is nobody's business
    std::fs::write(
        db.data_path().join(".env.labelstudio"),
        "LABEL_STUDIO_PROJECT_ID=3\n",
    )
    .unwrap();
    std::fs::set_permissions(
        db.data_path().join(".env.labelstudio"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    std::fs::set_permissions(&dotenv, std::fs::Permissions::from_mode(0o644)).unwrap();

    let doctor = db.command().args(["--json", "doctor"]).output().unwrap();
    assert_eq!(doctor.status.code(), Some(1), "{}", text_of(&doctor));
    let report: Value = serde_json::from_slice(&doctor.stdout).unwrap();
    let check = doctor_check(&report, "secret files");
    assert_eq!(check["status"], "fail");
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .contains(".env (mode 644)"),
        "{check}"
    );
    assert!(
        !check["detail"]
            .as_str()
            .unwrap()
            .contains(".env.labelstudio"),
        "{check}"
    );
    assert_eq!(check["fix"], format!("chmod 600 {}", dotenv.display()));

    let status = db.command().arg("status").output().unwrap();
    let stderr = String::from_utf8_lossy(&status.stderr);
    assert!(
        stderr.contains("holds a secret and other users can read it (mode 644)")
            && stderr.contains(&format!("chmod 600 {}", dotenv.display())),
        "{stderr}"
    );

    std::fs::set_permissions(&dotenv, std::fs::Permissions::from_mode(0o600)).unwrap();
    let doctor = db.command().args(["--json", "doctor"]).output().unwrap();
    let report: Value = serde_json::from_slice(&doctor.stdout).unwrap();
    let check = doctor_check(&report, "secret files");
    assert_eq!(check["status"], "pass", "{check}");
    let status = db.command().arg("status").output().unwrap();
    assert!(!String::from_utf8_lossy(&status.stderr).contains("holds a secret"));
}
