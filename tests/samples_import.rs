//! `flywheel samples import` through the real binary on both backends:
//! approved samples folded by normalised text, and all-or-nothing validation
//! with errors naming file, line and field (exit 65).

mod support;

use std::path::Path;

use support::fixtures::samples;
use support::state::job_run_count;
use support::{Exits, TestDb, json_stdout};

/// `samples import FILE` with `extra` arguments (`--json` among them: it
/// is global).
fn import(db: &TestDb, file: &Path, extra: &[&str]) -> assert_cmd::Command {
    let mut cmd = db.cmd();
    cmd.args(["samples", "import"]).arg(file).args(extra);
    cmd
}

fn write(db: &TestDb, name: &str, content: &[u8]) -> std::path::PathBuf {
    let path = db.data_path().join(name);
    std::fs::write(&path, content).unwrap();
    path
}

#[test]
fn imports_approved_samples_folding_duplicates() {
    for db in TestDb::all() {
        let file = write(
            &db,
            "seed.jsonl",
            concat!(
                r#"{"text": "Pizza chahiye", "intent": "order_food", "language": "hinglish", "confidence": 1.0, "extra": [1]}"#,
                "\n\n",
                r#"{"text": "pizza chahiye!!", "intent": "order_food"}"#,
                "\n",
                r#"{"text": "where is my order", "intent": "track_order", "language": "en"}"#,
                "\n",
            )
            .as_bytes(),
        );
        let out = import(&db, &file, &["--json", "--source", "synthetic"]).succeeds();
        let json = json_stdout(&out);
        assert_eq!(json["import"]["lines"], 3);
        assert_eq!(json["import"]["created"], 2);
        assert_eq!(json["import"]["duplicates_in_file"], 1);
        assert_eq!(json["import"]["per_intent"]["order_food"], 2);

        // The same text again folds into the stored sample.
        let again = write(
            &db,
            "more.jsonl",
            br#"{"text": "WHERE is my order?", "intent": "track_order"}"#,
        );
        let out = import(&db, &again, &["--json"]).succeeds();
        assert_eq!(json_stdout(&out)["import"]["folded_into_existing"], 1);

        db.with_store(move |store| async move {
            let all = samples(&store).await;
            assert_eq!(all.len(), 2);
            let pizza = &all[0];
            assert_eq!(pizza.text, "Pizza chahiye");
            assert_eq!(
                (pizza.source.as_str(), pizza.review_status.as_str()),
                ("synthetic", "approved")
            );
            assert_eq!(pizza.language.as_deref(), Some("hinglish"));
            assert_eq!(pizza.occurrences, 2);
            assert_eq!(all[1].occurrences, 2);
            assert_eq!(store.approved_unused_count().await.unwrap(), 2);
            assert_eq!(job_run_count(&store, "samples-import").await, 2);
        });
    }
}

#[test]
fn a_bad_file_imports_nothing_and_names_every_bad_line_and_field() {
    for db in TestDb::all() {
        let mut content = Vec::new();
        content.extend_from_slice(b"{\"text\": \"good one\", \"intent\": \"greeting\"}\n");
        content.extend_from_slice(b"{\"text\": \"no intent\"}\n");
        content.extend_from_slice(b"{\"text\": 42, \"intent\": \"x\"}\n");
        content.extend_from_slice(
            b"{\"text\": \"bad conf\", \"intent\": \"x\", \"confidence\": 1.5}\n",
        );
        content.extend_from_slice(b"{\"text\": \"good one!\", \"intent\": \"farewell\"}\n");
        content.extend_from_slice(b"{\"text\": \"not \xff utf8\", \"intent\": \"x\"}\n");
        content.extend_from_slice(b"{\"text\": \"truncated\n");
        content.extend_from_slice(
            b"{\"text\": \"lang\", \"intent\": \"x\", \"language\": \"klingon\"}\n",
        );
        content.extend_from_slice(b"[1, 2]\n");
        let file = write(&db, "bad.jsonl", &content);
        let out = import(&db, &file, &[]).output().unwrap();
        assert_eq!(out.status.code(), Some(65));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let name = file.display().to_string();
        for expected in [
            format!("{name}:2: field `intent`: missing"),
            format!("{name}:3: field `text`: expected a string, got a number"),
            format!("{name}:4: field `confidence`: 1.5 is not between 0 and 1"),
            format!("{name}:5: field `intent`: \"farewell\" contradicts line 1"),
            format!("{name}:6: not valid UTF-8"),
            format!("{name}:7: invalid JSON"),
            format!("{name}:8: field `language`: unknown language \"klingon\""),
            format!("{name}:9: expected a JSON object, got an array"),
            "nothing was imported".to_string(),
        ] {
            assert!(
                stderr.contains(&expected),
                "missing {expected:?} in:\n{stderr}"
            );
        }
        assert!(!stderr.contains(":1:"), "line 1 is fine:\n{stderr}");
        db.with_store(move |store| async move {
            assert!(samples(&store).await.is_empty(), "all or nothing");
        });
    }
}

#[test]
fn a_missing_file_is_bad_input() {
    let db = TestDb::sqlite();
    let out = db
        .cmd()
        .args(["samples", "import", "nope.jsonl"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open nope.jsonl"));
}

/// A labelled import beats a label the model gave itself (counted as a
/// correction, or a confirmation when it agrees); a conflict with a human
/// review is refused whole (exit 65 naming the line and the stored label)
/// unless `--on-conflict keep|replace` says otherwise.
#[test]
fn an_import_replaces_model_labels_and_refuses_conflicts_with_human_ones() {
    use flywheel::domain::ReviewVerdict;
    use flywheel::storage::Timestamp;
    use flywheel::storage::samples::{NewSample, ReviewDecision};
    for db in TestDb::all() {
        db.with_store(move |store| async move {
            let model = |text: &str, intent: &str, status: &str| NewSample {
                text: text.into(),
                normalized_text: flywheel::text::normalize_for_dedup(text),
                intent: intent.into(),
                language: Some("en".into()),
                source: flywheel::domain::Provenance::Auto,
                confidence: Some(0.9),
                review_status: status.parse().unwrap(),
                priority: 5,
                occurrences: 1,
                predicted_intent: Some(intent.into()),
                predicted_by_version: Some("router-v1.0.0".into()),
                conversation_id: None,
            };
            let stored = store
                .upsert_samples(&[
                    model("see you later", "goodbye", "approved"),
                    model("hey there", "greeting", "needs-review"),
                    model("bye bye", "goodbye", "needs-review"),
                ])
                .await
                .unwrap();
            let decision = ReviewDecision {
                verdict: ReviewVerdict::Accept,
                annotator: Some("ana".into()),
                decided_at: Timestamp::now(),
            };
            store.apply_review(stored[2].id, &decision).await.unwrap();
        });
        let file = write(
            &db,
            "labelled.jsonl",
            concat!(
                r#"{"text": "See you later!", "intent": "greeting"}"#,
                "\n",
                r#"{"text": "hey there", "intent": "greeting"}"#,
                "\n",
                r#"{"text": "bye bye", "intent": "farewell"}"#,
                "\n",
            )
            .as_bytes(),
        );
        let label = |text: &'static str| {
            db.with_store(move |store| async move {
                let normalized = flywheel::text::normalize_for_dedup(text);
                let s = store
                    .sample_by_normalized_text(&normalized)
                    .await
                    .unwrap()
                    .unwrap();
                (
                    s.intent,
                    s.source.to_string(),
                    s.review_status.to_string(),
                    s.corrected_from,
                )
            })
        };

        let out = import(&db, &file, &[]).output().unwrap();
        assert_eq!(out.status.code(), Some(65), "{:?}", db.backend);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("labelled.jsonl:3"), "{stderr}");
        assert!(
            stderr.contains(r#"stored as "goodbye" (by a human review)"#),
            "{stderr}"
        );
        assert!(
            !stderr.contains("labelled.jsonl:1"),
            "model labels are no conflict: {stderr}"
        );
        assert_eq!(
            label("see you later").0,
            "goodbye",
            "refused whole: nothing changed"
        );

        let out = import(&db, &file, &["--json", "--on-conflict", "keep"]).succeeds();
        let report = &json_stdout(&out)["import"];
        assert_eq!(report["folded_into_existing"], 3, "{report}");
        assert_eq!(report["corrected"], 1, "{report}");
        assert_eq!(report["confirmed"], 1, "{report}");
        assert_eq!(report["conflicts_kept"], 1, "{report}");
        assert_eq!(
            label("see you later"),
            (
                "greeting".into(),
                "import".into(),
                "approved".into(),
                Some("goodbye".into())
            )
        );
        assert_eq!(
            label("hey there"),
            ("greeting".into(), "import".into(), "approved".into(), None)
        );
        assert_eq!(label("bye bye").0, "goodbye", "kept");

        let out = import(&db, &file, &["--json", "--on-conflict", "replace"]).succeeds();
        let report = &json_stdout(&out)["import"];
        assert_eq!(report["conflicts_replaced"], 1, "{report}");
        assert_eq!(
            report["corrected"], 0,
            "imported labels are not the model's: {report}"
        );
        assert_eq!(
            label("bye bye"),
            (
                "farewell".into(),
                "import".into(),
                "approved".into(),
                Some("goodbye".into())
            )
        );
    }
}

/// An import reads the stored labels, then writes: on SQLite, a deferred
/// transaction whose snapshot another writer (serve, daily capture) moved
/// past fails at its first write with "database is locked", which no busy
/// timeout waits out. Imports racing a steady writer all succeed.
#[test]
fn an_import_racing_other_writers_waits_instead_of_failing() {
    use flywheel::domain::Provenance;
    use flywheel::storage::samples::NewSample;
    use support::fixtures::approved_sample;
    let sample = |text: String, source| approved_sample(&text, "track_order", source);
    for db in TestDb::all() {
        db.with_store(move |store| async move {
            let writer = {
                let store = store.clone();
                tokio::spawn(async move {
                    for i in 0..400 {
                        let batch = vec![sample(format!("captured {i}"), Provenance::Auto)];
                        store.upsert_samples(&batch).await.unwrap();
                    }
                })
            };
            let mut failures = Vec::new();
            for round in 0..40 {
                let batch: Vec<NewSample> = (0..20)
                    .map(|i| sample(format!("imported {round} {i}"), Provenance::Import))
                    .collect();
                if let Err(err) = store.import_samples(&batch, |_| Ok(Vec::new())).await {
                    failures.push(err.to_string());
                }
            }
            writer.await.unwrap();
            assert!(
                failures.is_empty(),
                "{} failed: {:?}",
                failures.len(),
                &failures[..1]
            );
        });
    }
}
