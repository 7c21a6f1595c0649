//! `flywheel export` through the real binary on both backends: format,
//! deterministic order, the stable split, filters and the few-samples warning.

mod support;

use support::{Exits, TestDb, exec, json_stdout};

/// 40 × greeting (en, 0.9), 15 × order_food (hinglish, 0.8), 5 × rare (en, 0.5).
fn seed(db: &TestDb) {
    let mut lines = String::new();
    for i in 0..60 {
        let (intent, language, confidence) = match i {
            0..40 => ("greeting", "en", 0.9),
            40..55 => ("order_food", "hinglish", 0.8),
            _ => ("rare", "en", 0.5),
        };
        lines.push_str(&format!(
            "{{\"text\": \"utterance {i}\", \"intent\": \"{intent}\", \"language\": \"{language}\", \"confidence\": {confidence}}}\n"
        ));
    }
    let file = db.data_path().join("seed.jsonl");
    std::fs::write(&file, lines).unwrap();
    db.cmd().args(["samples", "import"]).arg(&file).succeeds();
}

fn export(db: &TestDb, args: &[&str]) -> (serde_json::Value, Vec<serde_json::Value>) {
    let file = db.data_path().join("out.jsonl");
    let out = db
        .cmd()
        .args(["--json", "export", "--output"])
        .arg(&file)
        .args(args)
        .succeeds();
    let lines = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (json_stdout(&out), lines)
}

fn ids(lines: &[serde_json::Value]) -> Vec<i64> {
    lines
        .iter()
        .map(|l| l["sample_id"].as_i64().unwrap())
        .collect()
}

#[test]
fn exports_every_approved_sample_in_order_with_counts_and_warnings() {
    for db in TestDb::all() {
        seed(&db);
        let (summary, lines) = export(&db, &[]);
        assert_eq!(summary["export"]["exported"], 60);
        assert_eq!(summary["export"]["per_intent"]["greeting"], 40);
        assert_eq!(summary["export"]["per_language"]["hinglish"], 15);
        let warnings = summary["export"]["warnings"].as_array().unwrap();
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0]
                .as_str()
                .unwrap()
                .contains("intent rare has only 5")
        );
        assert_eq!(lines.len(), 60);
        let first = &lines[0];
        assert_eq!(first["text"], "utterance 0");
        assert_eq!(first["intent"], "greeting");
        assert_eq!(first["language"], "en");
        assert_eq!(first["confidence"], 0.9);
        assert_eq!(first["source"], "import");
        assert_eq!(first["occurrences"], 1);
        let order = ids(&lines);
        assert!(order.windows(2).all(|w| w[0] < w[1]), "id order");

        // Deterministic: the same bytes again.
        let file = db.data_path().join("out.jsonl");
        let before = std::fs::read(&file).unwrap();
        export(&db, &[]);
        assert_eq!(std::fs::read(&file).unwrap(), before);
    }
}

#[test]
fn train_and_test_splits_partition_the_samples_stably() {
    for db in TestDb::all() {
        seed(&db);
        let (_, all) = export(&db, &["--split", "all"]);
        let (_, test) = export(&db, &["--split", "test"]);
        let (_, train) = export(&db, &["--split", "train"]);
        let (test, train) = (ids(&test), ids(&train));
        assert!(
            !test.is_empty() && test.len() < 20,
            "{} test samples",
            test.len()
        );
        assert!(test.iter().all(|id| !train.contains(id)), "disjoint");
        let mut union: Vec<i64> = test.iter().chain(&train).copied().collect();
        union.sort();
        assert_eq!(union, ids(&all));
        // The split is a property of the id, not of what else is exported.
        let (_, test_en) = export(&db, &["--split", "test", "--languages", "en"]);
        assert!(ids(&test_en).iter().all(|id| test.contains(id)));
    }
}

#[test]
fn filters_limit_and_stdout() {
    for db in TestDb::all() {
        seed(&db);
        let (s, lines) = export(&db, &["--languages", "hinglish"]);
        assert_eq!(
            (s["export"]["exported"].as_u64(), lines.len()),
            (Some(15), 15)
        );
        let (_, lines) = export(
            &db,
            &["--languages", "en,hinglish", "--min-confidence", "0.7"],
        );
        assert_eq!(lines.len(), 55, "the 0.5 samples are left out");
        let (_, lines) = export(&db, &["--limit", "7"]);
        assert_eq!(lines.len(), 7);

        // Samples a training run used are left out with --unused-only.
        db.with_store(move |store| async move {
            exec(
                &store,
                "UPDATE training_samples SET model_version_target = 'router-v1.1.0' \
                 WHERE intent = 'greeting'",
            )
            .await
        });
        let (_, lines) = export(&db, &["--unused-only"]);
        assert_eq!(lines.len(), 20);

        let out = db.cmd().args(["export", "--limit", "3"]).output().unwrap();
        assert!(out.status.success());
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(stdout.lines().count(), 3, "{stdout}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("exported 3 sample(s)"));
    }
}
