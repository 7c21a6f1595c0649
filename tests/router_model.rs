//! Router library behaviour on a tiny synthetic set: learning, determinism,
//! artifact round trip, corrupt artifacts, awkward training data.

use flywheel::dataset::Sample;
use flywheel::error::ErrorKind;
use flywheel::lang::Language;
use flywheel::progress::Reporter;
use flywheel::router::{self, Model, TrainParams, TrainedModel};

/// Four intents, English and Hinglish, built from templates so the test
/// needs no data files. `offset` picks a disjoint slice for held-out text.
fn synthetic(per_intent: usize, offset: usize) -> Vec<Sample> {
    let intents: [(&str, &[&str], &[&str]); 4] = [
        (
            "order_food",
            &["order", "i want", "mujhe chahiye", "send me", "get me"],
            &[
                "pizza",
                "biryani",
                "burger",
                "paneer tikka",
                "dosa",
                "noodles",
            ],
        ),
        (
            "track_order",
            &[
                "where is my",
                "track my",
                "mera kahan hai",
                "status of my",
                "when will my",
            ],
            &[
                "order",
                "parcel",
                "delivery",
                "package",
                "food order",
                "grocery order",
            ],
        ),
        (
            "greeting",
            &["hello", "hi there", "namaste", "good morning", "hey"],
            &["friend", "bot", "ji", "team", "buddy", "assistant"],
        ),
        (
            "cancel_order",
            &[
                "cancel my",
                "please cancel the",
                "mera cancel karo",
                "stop my",
                "i dont want my",
            ],
            &[
                "order",
                "pizza order",
                "parcel",
                "booking",
                "delivery",
                "subscription",
            ],
        ),
    ];
    let mut out = Vec::new();
    for (intent, heads, tails) in intents {
        for k in offset..offset + per_intent {
            let text = format!(
                "{} {}",
                heads[k % heads.len()],
                tails[(k / heads.len() + k) % tails.len()]
            );
            out.push(Sample::new(text, intent));
        }
    }
    out
}

fn small_params(seed: u64) -> TrainParams {
    TrainParams {
        epochs: 15,
        seed,
        dim: 16,
        learning_rate: 0.5,
        batch_size: 8,
        features: router::features::FeatureConfig {
            min_count: 1,
            ..Default::default()
        },
        ..TrainParams::default()
    }
}

fn train(seed: u64) -> TrainedModel {
    let val = synthetic(5, 30);
    router::train(
        &synthetic(30, 0),
        Some(&val),
        &small_params(seed),
        &Reporter::silent(),
    )
    .expect("training")
}

#[test]
fn learns_synthetic_intents_and_is_deterministic_for_a_seed() {
    let a = train(7);
    let b = train(7);
    let c = train(8);
    let val = a.report.validation.as_ref().expect("validation report");
    assert!(val.accuracy >= 0.9, "validation accuracy {}", val.accuracy);
    // Same seed: identical metrics and identical weights on disk.
    assert_eq!(a.report.validation, b.report.validation);
    let curve = |t: &TrainedModel| {
        t.report
            .epochs
            .iter()
            .map(|e| (e.epoch, e.loss, e.validation_accuracy))
            .collect::<Vec<_>>()
    };
    assert_eq!(curve(&a), curve(&b));
    let (da, db, dc) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    a.save(da.path()).unwrap();
    b.save(db.path()).unwrap();
    c.save(dc.path()).unwrap();
    let weights =
        |d: &tempfile::TempDir| std::fs::read(d.path().join("model.safetensors")).unwrap();
    assert_eq!(weights(&da), weights(&db));
    assert_ne!(
        weights(&da),
        weights(&dc),
        "another seed should give other weights"
    );
}

#[test]
fn artifact_round_trip_and_batch_path_agree() {
    let trained = train(3);
    let dir = tempfile::tempdir().unwrap();
    trained.save(dir.path()).unwrap();
    assert!(dir.path().join(router::REPORT_FILE).is_file());
    let loaded = Model::load(dir.path()).unwrap();
    assert_eq!(loaded.version(), "router-v1.0.0");
    assert_eq!(
        loaded.fallback_threshold(),
        trained.model.fallback_threshold()
    );
    let texts = [
        "order a pizza please",
        "where is my parcel",
        "namaste ji",
        "cancel my booking",
        "xyzzy",
    ];
    let batch: Vec<_> = texts.iter().map(|t| (*t, None)).collect();
    let batched = loaded.classify_batch(&batch).unwrap();
    for (text, b) in texts.iter().zip(&batched) {
        let before = trained.model.classify(text, None);
        let after = loaded.classify(text, None);
        assert_eq!(before, after, "{text}");
        assert_eq!(after.intent, b.intent);
        assert!((after.confidence - b.confidence).abs() < 1e-4);
        assert_eq!(after.alternatives.len(), 3);
        assert_eq!(after.alternatives[0].intent, after.intent);
    }
    assert_eq!(
        loaded.classify("get me a dosa please", None).intent,
        "order_food"
    );
    assert_eq!(
        loaded
            .classify("mera order kahan hai", Some(Language::Hinglish))
            .language,
        Language::Hinglish
    );
    // Same metrics from the loaded model as at training time.
    let val = synthetic(5, 30);
    assert_eq!(
        router::evaluate(&loaded, &val),
        trained.report.validation.clone().unwrap()
    );
}

#[test]
fn missing_or_corrupt_artifact_files_are_refused_with_the_file_named() {
    let trained = train(1);
    let base = tempfile::tempdir().unwrap();
    trained.save(base.path()).unwrap();
    for file in [
        "model.safetensors",
        "labels.json",
        "features.json",
        "metadata.json",
    ] {
        for damage in ["missing", "corrupt"] {
            let dir = tempfile::tempdir().unwrap();
            for entry in std::fs::read_dir(base.path()).unwrap() {
                let entry = entry.unwrap();
                std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
            }
            let path = dir.path().join(file);
            if damage == "missing" {
                std::fs::remove_file(&path).unwrap();
            } else {
                let mut bytes = std::fs::read(&path).unwrap();
                let mid = bytes.len() / 2;
                bytes[mid] ^= 0x5a;
                bytes.truncate(bytes.len() - 3);
                std::fs::write(&path, bytes).unwrap();
            }
            let err = Model::load(dir.path()).expect_err(&format!("{damage} {file} must not load"));
            assert_eq!(err.kind(), ErrorKind::BadInput);
            assert!(
                err.message().contains(file),
                "{damage} {file}: {}",
                err.message()
            );
            let word = if damage == "missing" {
                "missing"
            } else {
                "corrupt"
            };
            assert!(
                err.message().contains(word),
                "{damage} {file}: {}",
                err.message()
            );
        }
    }
    let err = Model::load(base.path().join("nope")).unwrap_err();
    assert!(err.message().contains("does not exist"));
}

#[test]
fn awkward_training_data() {
    // One intent: nothing to learn, clear error.
    let one: Vec<Sample> = (0..5)
        .map(|i| Sample::new(format!("hello {i}"), "greeting"))
        .collect();
    let err = router::train(&one, None, &small_params(1), &Reporter::silent())
        .err()
        .expect("one intent fails");
    assert_eq!(err.kind(), ErrorKind::BadInput);
    assert!(
        err.message().contains("at least two intents"),
        "{}",
        err.message()
    );
    // A label with one example: trains, with a warning naming it.
    let mut data = synthetic(10, 0);
    data.push(Sample::new("refund my money", "refund_request"));
    let no_selection = TrainParams {
        selection_share: 0.0,
        ..small_params(1)
    };
    let trained = router::train(&data, None, &no_selection, &Reporter::silent()).unwrap();
    assert!(
        trained
            .report
            .warnings
            .iter()
            .any(|w| w.contains("refund_request"))
    );
    assert!(
        trained
            .model
            .labels()
            .contains(&"refund_request".to_string())
    );
    // No validation and no selection share: the default threshold is stored.
    assert_eq!(
        trained.model.fallback_threshold(),
        router::DEFAULT_FALLBACK_THRESHOLD
    );
    // Unknown intents at eval time are errors and listed.
    let mut eval = synthetic(3, 30);
    eval.push(Sample::new("book a flight to goa", "book_flight"));
    let report = router::evaluate(&trained.model, &eval);
    assert_eq!(report.unknown_intents.get("book_flight"), Some(&1));
    assert!(report.accuracy < 1.0);
    assert!(report.per_intent["book_flight"].recall == 0.0);
}

#[test]
fn out_of_scope_class_and_threshold_drive_fallback() {
    let mut data = synthetic(30, 0);
    let chit_chat = [
        "what is the meaning of life",
        "tell me a joke",
        "who won the match",
        "is it raining",
        "sing a song",
        "how tall is everest",
    ];
    for (i, t) in chit_chat.iter().cycle().take(30).enumerate() {
        data.push(Sample::new(
            format!("{t} {}", ["", "please", "now"][i % 3]),
            "oos",
        ));
    }
    let mut val = synthetic(5, 30);
    val.push(Sample::new("what is the capital of peru", "oos"));
    let trained = router::train(&data, Some(&val), &small_params(5), &Reporter::silent()).unwrap();
    let report = trained.report.validation.clone().unwrap();
    assert!(report.in_scope_accuracy.is_some() && report.oos_recall.is_some());
    // Issue 15 item 3: with out-of-scope examples the threshold is a fixed
    // level of calibrated confidence, not fitted to the few `oos` samples
    // a selection split holds, so it cannot swing between seeds.
    let other_seed =
        router::train(&data, Some(&val), &small_params(6), &Reporter::silent()).unwrap();
    for t in [&trained, &other_seed] {
        let meta = t.model.metadata();
        assert_eq!(
            meta.fallback_threshold_source,
            "validation, out-of-scope level"
        );
        assert_eq!(meta.fallback_threshold, 0.3);
    }
    let p = trained.model.classify("tell me a joke please", None);
    assert_eq!(p.intent, "oos");
    assert!(p.fallback, "the out-of-scope class always falls back");
    // A threshold override is stored and used.
    let params = TrainParams {
        fallback_threshold: Some(0.999),
        ..small_params(5)
    };
    let strict = router::train(&data, Some(&val), &params, &Reporter::silent()).unwrap();
    assert_eq!(strict.model.fallback_threshold(), 0.999);
    for text in ["order pizza", "where is my parcel", "tell me a joke"] {
        let p = strict.model.classify(text, None);
        assert_eq!(
            p.fallback,
            p.confidence < 0.999 || p.intent == "oos",
            "{text}: {p:?}"
        );
    }
    let mut model = strict.model;
    model.set_fallback_threshold(1.01);
    assert!(
        model.classify("order pizza", None).fallback,
        "nothing reaches a threshold above 1"
    );
}

#[test]
fn without_validation_data_selection_is_carved_out_and_the_model_refit_on_everything() {
    // What `flywheel train` and weekly training run (issue 15 item 2).
    let data = synthetic(30, 0);
    let params = small_params(9);
    let a = router::train(&data, None, &params, &Reporter::silent()).unwrap();
    let meta = a.model.metadata();
    assert_eq!(
        meta.train_samples,
        data.len(),
        "the final model saw every label"
    );
    assert_eq!(meta.samples_per_intent["greeting"], 30);
    assert_eq!(meta.validation_samples, 12, "10 % of each intent chose");
    assert!(meta.validation_metrics.is_some());
    assert_eq!(meta.fallback_threshold_source, "validation, no-idea level");
    let refit = a.report.refit_epochs.expect("a refit");
    assert_eq!(meta.epochs_run, refit);
    let refit_records: Vec<_> = a.report.epochs.iter().filter(|e| e.refit).collect();
    assert_eq!(refit_records.len(), refit as usize * params.members);
    assert!(
        refit_records
            .iter()
            .all(|e| e.validation_accuracy.is_none())
    );
    assert!(
        a.report
            .epochs
            .iter()
            .any(|e| !e.refit && e.validation_accuracy.is_some())
    );
    // Deterministic for a seed, selection and refit alike.
    let b = router::train(&data, None, &params, &Reporter::silent()).unwrap();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    a.save(da.path()).unwrap();
    b.save(db.path()).unwrap();
    let weights =
        |d: &tempfile::TempDir| std::fs::read(d.path().join("model.safetensors")).unwrap();
    assert_eq!(weights(&da), weights(&db));
    assert_eq!(meta.temperature, b.model.metadata().temperature);
    assert_eq!(
        meta.fallback_threshold,
        b.model.metadata().fallback_threshold
    );
}

fn read_json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn the_linear_member_is_chosen_on_selection_data_and_round_trips() {
    // Issue 15 item 4: the SVM member alone learns the intents, survives a
    // save and load bit for bit, and selection picks its share.
    let val = synthetic(5, 30);
    let only_linear = TrainParams {
        linear_share: Some(1.0),
        ..small_params(4)
    };
    let trained = router::train(
        &synthetic(30, 0),
        Some(&val),
        &only_linear,
        &Reporter::silent(),
    )
    .unwrap();
    let report = trained.report.validation.as_ref().unwrap();
    assert!(report.accuracy >= 0.9, "the SVM alone: {}", report.accuracy);
    assert_eq!(trained.model.metadata().linear_share, 1.0);
    let dir = tempfile::tempdir().unwrap();
    trained.save(dir.path()).unwrap();
    assert_eq!(read_json(&dir.path().join("features.json"))["linear"], true);
    let loaded = Model::load(dir.path()).unwrap();
    for text in ["order a pizza please", "mera order kahan hai", "xyzzy"] {
        assert_eq!(
            loaded.classify(text, None),
            trained.model.classify(text, None)
        );
    }
    assert_eq!(router::evaluate(&loaded, &val), *report);

    // A share outside (0, 1] in the metadata is refused, naming the file.
    let meta_path = dir.path().join("metadata.json");
    let mut meta = read_json(&meta_path);
    meta["linear_share"] = serde_json::json!(0.0);
    std::fs::write(&meta_path, meta.to_string()).unwrap();
    let err = Model::load(dir.path()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadInput);
    assert!(err.message().contains("metadata.json"), "{}", err.message());
    assert!(err.message().contains("linear_share"), "{}", err.message());

    // Without a linear member nothing of it is written.
    let none = TrainParams {
        linear_c: 0.0,
        ..small_params(4)
    };
    let plain = router::train(&synthetic(30, 0), Some(&val), &none, &Reporter::silent()).unwrap();
    assert_eq!(plain.model.metadata().linear_share, 0.0);
    let dir = tempfile::tempdir().unwrap();
    plain.save(dir.path()).unwrap();
    assert_eq!(
        read_json(&dir.path().join("features.json"))["linear"],
        false
    );

    // Chosen on the selection share: one of the tried shares, and the
    // refit keeps the member exactly when the share is positive.
    let chosen = router::train(
        &synthetic(30, 0),
        None,
        &small_params(4),
        &Reporter::silent(),
    )
    .unwrap();
    let share = chosen.model.metadata().linear_share;
    assert!(router::LINEAR_SHARES.contains(&share), "share {share}");
    let dir = tempfile::tempdir().unwrap();
    chosen.save(dir.path()).unwrap();
    assert_eq!(
        read_json(&dir.path().join("features.json"))["linear"],
        share > 0.0
    );
}

#[test]
fn an_artifact_from_before_the_linear_member_still_loads() {
    // Production models saved by earlier versions have no `linear` key in
    // features.json and no linear_* fields in metadata.json.
    let plain = router::train(
        &synthetic(30, 0),
        Some(&synthetic(5, 30)),
        &TrainParams {
            linear_c: 0.0,
            ..small_params(2)
        },
        &Reporter::silent(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    plain.save(dir.path()).unwrap();
    let features_path = dir.path().join("features.json");
    let mut features = read_json(&features_path);
    features.as_object_mut().unwrap().remove("linear");
    let bytes = serde_json::to_vec_pretty(&features).unwrap();
    std::fs::write(&features_path, &bytes).unwrap();
    let meta_path = dir.path().join("metadata.json");
    let mut meta = read_json(&meta_path);
    let object = meta.as_object_mut().unwrap();
    object.remove("linear_share");
    object.remove("linear_temperature");
    meta["files"]["features.json"] =
        serde_json::json!(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)));
    std::fs::write(&meta_path, meta.to_string()).unwrap();
    let loaded = Model::load(dir.path()).unwrap();
    assert_eq!(loaded.metadata().linear_share, 0.0);
    assert_eq!(
        loaded.classify("where is my parcel", None),
        plain.model.classify("where is my parcel", None)
    );
}

#[test]
fn without_out_of_scope_data_only_a_no_idea_answer_falls_back() {
    // Issue 15 item 3: with no `oos` examples the threshold must not trade
    // right answers for fallbacks; it sits at the confidence of a query
    // with no known n-gram (the class prior), so such a query falls back
    // and the held-out queries the model knows do not.
    let trained = train(4);
    let model = &trained.model;
    assert_eq!(
        model.metadata().fallback_threshold_source,
        "validation, no-idea level"
    );
    let unknown = model.classify("qqqq zzzz", None);
    assert!(unknown.fallback, "{unknown:?}");
    assert!(
        model.fallback_threshold() <= unknown.confidence + 0.01,
        "threshold {} is above the no-idea confidence {}",
        model.fallback_threshold(),
        unknown.confidence
    );
    let held_out = synthetic(5, 30);
    for s in &held_out {
        let p = model.classify(&s.text, None);
        assert!(!p.fallback, "{}: {p:?}", s.text);
    }
}

#[test]
fn cancellation_stops_training() {
    let reporter = Reporter::silent();
    reporter.cancel();
    let err = router::train(&synthetic(10, 0), None, &small_params(1), &reporter)
        .err()
        .expect("cancelled");
    assert!(err.message().contains("cancelled"));
}
