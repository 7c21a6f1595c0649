//! Router benchmark (issue 15): the product's training path on the train
//! files of `../shared/data` (or `$FLYWHEEL_BENCH_DATA`), scored on the
//! validation files, which nothing chose anything on, over several seeds;
//! the TF-IDF + LinearSVC and fastText anchors (`scripts/router-anchors.py`)
//! are trained and scored in the same run on the same files.
//!
//! `router::train(train, None, TrainParams { seed, ..default })` is exactly
//! what `flywheel train --input train.jsonl --seed S` runs: it carves its own
//! selection share out of the train file for epochs, temperature and
//! threshold, then refits on the whole file.
//!
//! Run: `cargo bench --bench router`. Environment:
//! - `ROUTER_BENCH_SEEDS=1,2,3` seeds (at least three for the README table);
//! - `ROUTER_BENCH_ONLY=clinc|hinglish` one data set;
//! - `ROUTER_BENCH_ANCHORS=0` skips the anchors;
//! - `ROUTER_PARAMS='{"dim":96}'` overrides default parameters (experiments
//!   only: the README's figures use the defaults).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use flywheel::dataset::{Sample, read_samples};
use flywheel::progress::Reporter;
use flywheel::router::{self, Model, OOS_LABEL, TrainParams};

fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("FLYWHEEL_BENCH_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    dir.join("clinc150_train.jsonl").is_file().then_some(dir)
}

/// CPU seconds (user + system) this process has used so far (Linux): on a
/// shared machine the wall clock also measures the neighbours.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// The bench's figures for one system on one data set and seed.
#[derive(Default, Clone)]
struct Scores {
    /// In-scope samples answered with their intent (a fallback is wrong).
    in_scope_accuracy: f64,
    /// In-scope samples whose best intent is right, fallback or not.
    in_scope_ignoring_fallback: f64,
    /// Share of in-scope samples sent to the fallback.
    in_scope_fallback: f64,
    /// `oos` samples answered with the fallback (or the `oos` class).
    oos_recall: Option<f64>,
    train_seconds: f64,
    train_cpu_seconds: f64,
}

/// Scores of Flywheel's predictions: what `flywheel classify` prints for
/// each validation line (intent and fallback flag).
fn score(model: &Model, samples: &[Sample]) -> Scores {
    let inputs: Vec<_> = samples.iter().map(|s| (s.text.as_str(), None)).collect();
    let predictions = model.classify_batch(&inputs).expect("classify");
    let (mut ins, mut ok, mut ok_any, mut fallback, mut oos, mut oos_ok) = (0, 0, 0, 0, 0, 0);
    for (s, p) in samples.iter().zip(&predictions) {
        if s.intent == OOS_LABEL {
            oos += 1;
            oos_ok += usize::from(p.fallback);
        } else {
            ins += 1;
            ok += usize::from(!p.fallback && p.intent == s.intent);
            ok_any += usize::from(p.intent == s.intent);
            fallback += usize::from(p.fallback);
        }
    }
    let share = |a: usize, b: usize| a as f64 / b.max(1) as f64;
    Scores {
        in_scope_accuracy: share(ok, ins),
        in_scope_ignoring_fallback: share(ok_any, ins),
        in_scope_fallback: share(fallback, ins),
        oos_recall: (oos > 0).then(|| share(oos_ok, oos)),
        ..Scores::default()
    }
}

struct Trained {
    model: Model,
    scores: Scores,
    artifact_bytes: u64,
}

/// The product path: train on the train file (selection carved inside),
/// save, load the artifact back, classify the validation file.
fn train_and_score(name: &str, train: &[Sample], val: &[Sample], params: &TrainParams) -> Trained {
    let t0 = Instant::now();
    let cpu0 = cpu_seconds();
    let trained = router::train(train, None, params, &Reporter::silent()).expect("training");
    let train_seconds = t0.elapsed().as_secs_f64();
    let train_cpu_seconds = cpu_seconds() - cpu0;
    let dir = tempfile::tempdir().expect("temp dir");
    trained.save(dir.path()).expect("save");
    let artifact_bytes = dir_size(dir.path());
    let model = Model::load(dir.path()).expect("load");
    let meta = model.metadata();
    if std::env::var_os("ROUTER_BENCH_VERBOSE").is_some() {
        for e in &trained.report.epochs {
            eprintln!(
                "    member {} epoch {:>2}{} loss {:.4} selection accuracy {:?} {:.2} s",
                e.member,
                e.epoch,
                if e.refit { " (refit)" } else { "" },
                e.loss,
                e.validation_accuracy,
                e.seconds
            );
        }
    }
    eprintln!(
        "  {name} seed {}: {} features, refit {} epochs, threshold {:.2} ({}), temperature {:.2}, linear member's share {:.2}, {:.1} s",
        params.seed,
        trained.report.features,
        meta.epochs_run,
        meta.fallback_threshold,
        meta.fallback_threshold_source,
        meta.temperature,
        meta.linear_share,
        train_seconds
    );
    if let Some(path) = std::env::var_os("ROUTER_BENCH_DUMP") {
        let inputs: Vec<_> = val.iter().map(|s| (s.text.as_str(), None)).collect();
        let lines: Vec<String> = model
            .classify_batch(&inputs)
            .expect("classify")
            .iter()
            .zip(val)
            .map(|(p, s)| serde_json::json!({"label": s.intent, "p": p}).to_string())
            .collect();
        std::fs::write(path, lines.join("\n")).expect("dump");
    }
    let scores = Scores {
        train_seconds,
        train_cpu_seconds,
        ..score(&model, val)
    };
    Trained {
        model,
        scores,
        artifact_bytes,
    }
}

/// In-scope accuracy / fallback share / OOS recall of `model` on `val` at
/// fallback thresholds other than the one it chose.
fn trade_off_curve(name: &str, model: &Model, val: &[Sample]) {
    let chosen = model.fallback_threshold();
    println!("\n{name}: fallback threshold trade-off (seed of the first run; * = chosen)\n");
    println!("| threshold | in-scope accuracy | in-scope to fallback | OOS recall |");
    println!("|---|---|---|---|");
    let mut m = model.clone();
    let mut thresholds: Vec<f32> = (0..=9).map(|t| t as f32 / 10.0).collect();
    thresholds.push(chosen);
    thresholds.sort_by(f32::total_cmp);
    thresholds.dedup();
    for t in thresholds {
        m.set_fallback_threshold(t);
        let s = score(&m, val);
        println!(
            "| {t:.2}{} | {:.4} | {:.4} | {} |",
            if t == chosen { " *" } else { "" },
            s.in_scope_accuracy,
            s.in_scope_fallback,
            s.oos_recall.map_or("-".into(), |r| format!("{r:.3}"))
        );
    }
}

/// Mean and sample standard deviation.
fn mean_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 {
        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

fn fmt(values: &[f64], digits: usize) -> String {
    if values.is_empty() {
        return "-".into();
    }
    let (m, sd) = mean_sd(values);
    format!("{m:.digits$} ± {sd:.digits$}")
}

/// Run the anchors script; `None` (with the reason printed) when it cannot.
fn anchors(train: &Path, val: &Path, seeds: &[u64]) -> Option<BTreeMap<String, Vec<Scores>>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/router-anchors.py");
    let seeds = seeds
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let output = Command::new("python3")
        .arg(&script)
        .args(["--train".as_ref(), train.as_os_str()])
        .args(["--eval".as_ref(), val.as_os_str()])
        .args(["--seeds", &seeds])
        .stderr(std::process::Stdio::inherit())
        .output();
    let output = match output {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            println!(
                "anchors skipped: {} exited with {}",
                script.display(),
                o.status
            );
            return None;
        }
        Err(e) => {
            println!("anchors skipped: cannot run python3 ({e})");
            return None;
        }
    };
    let mut rows: BTreeMap<String, Vec<Scores>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let f = |k: &str| v[k].as_f64();
        // Anchors never fall back: in-scope accuracy is plain accuracy
        // when there is no `oos` label.
        let accuracy = f("in_scope_accuracy").or(f("accuracy")).unwrap_or_default();
        rows.entry(v["anchor"].as_str().unwrap_or("?").to_string())
            .or_default()
            .push(Scores {
                in_scope_accuracy: accuracy,
                in_scope_ignoring_fallback: accuracy,
                in_scope_fallback: 0.0,
                oos_recall: f("oos_recall"),
                train_seconds: f("train_seconds").unwrap_or_default(),
                train_cpu_seconds: f("train_cpu_seconds").unwrap_or_default(),
            });
    }
    Some(rows)
}

/// `ROUTER_BENCH_DEV=1`: train on 80 % of the train file and score on the
/// other 20 % (the anchors too), for trying ideas without touching
/// validation.
fn dev_mode() -> bool {
    std::env::var("ROUTER_BENCH_DEV").is_ok_and(|v| v == "1")
}

/// One data set: Flywheel over the seeds, the anchors, the table.
struct DataSet {
    name: &'static str,
    train_file: &'static str,
    val_file: &'static str,
}

const CLINC150: DataSet = DataSet {
    name: "CLINC150",
    train_file: "clinc150_train.jsonl",
    val_file: "clinc150_val.jsonl",
};

const HINGLISH_TOP: DataSet = DataSet {
    name: "Hinglish-TOP",
    train_file: "hinglish_top_train.jsonl",
    val_file: "hinglish_top_val.jsonl",
};

struct Measured {
    flywheel: Vec<Scores>,
    anchors: Option<BTreeMap<String, Vec<Scores>>>,
    first: Trained,
    val: Vec<Sample>,
}

fn measure(dir: &Path, set: &DataSet, params: &TrainParams, seeds: &[u64]) -> Measured {
    let load = |f: &str| read_samples(&dir.join(f)).expect("benchmark data");
    let (train, val) = if dev_mode() {
        // Development: score on a split of the train file, never on validation.
        router::split_validation(load(set.train_file), 0.2, 0xde5)
    } else {
        (load(set.train_file), load(set.val_file))
    };
    eprintln!(
        "{}: {} train, {} validation samples",
        set.name,
        train.len(),
        val.len()
    );
    let mut first = None;
    let mut flywheel = Vec::new();
    for &seed in seeds {
        let p = TrainParams {
            seed,
            ..params.clone()
        };
        let t = train_and_score(set.name, &train, &val, &p);
        flywheel.push(t.scores.clone());
        first.get_or_insert(t);
    }
    let anchors = if std::env::var("ROUTER_BENCH_ANCHORS").is_ok_and(|v| v == "0") {
        println!("anchors skipped: ROUTER_BENCH_ANCHORS=0");
        None
    } else if dev_mode() {
        // The anchors get the same development split, written out.
        let tmp = tempfile::tempdir().expect("temp dir");
        let write = |name: &str, samples: &[Sample]| {
            let path = tmp.path().join(name);
            let lines: Vec<String> = samples
                .iter()
                .map(|s| serde_json::to_string(s).expect("sample"))
                .collect();
            std::fs::write(&path, lines.join("\n")).expect("dev split file");
            path
        };
        anchors(
            &write("train.jsonl", &train),
            &write("dev.jsonl", &val),
            seeds,
        )
    } else {
        anchors(&dir.join(set.train_file), &dir.join(set.val_file), seeds)
    };
    Measured {
        flywheel,
        anchors,
        first: first.expect("at least one seed"),
        val,
    }
}

fn table(name: &str, m: &Measured, has_oos: bool) {
    let systems: Vec<(&str, &[Scores])> = std::iter::once(("Flywheel `train`", &m.flywheel[..]))
        .chain(m.anchors.iter().flat_map(|a| {
            [("svm", "TF-IDF + LinearSVC"), ("fasttext", "fastText")]
                .into_iter()
                .filter_map(|(k, label)| a.get(k).map(|v| (label, &v[..])))
        }))
        .collect();
    let col = |f: &dyn Fn(&Scores) -> Option<f64>, digits: usize| -> Vec<String> {
        systems
            .iter()
            .map(|(_, runs)| fmt(&runs.iter().filter_map(f).collect::<Vec<_>>(), digits))
            .collect()
    };
    let ratio = |f: &dyn Fn(&Scores) -> f64| -> Vec<String> {
        let mean = |runs: &[Scores]| runs.iter().map(f).sum::<f64>() / runs.len().max(1) as f64;
        let ours = mean(systems[0].1);
        systems
            .iter()
            .skip(1)
            .map(|(label, runs)| format!("{:.3}× {label}", ours / mean(runs)))
            .collect()
    };
    println!(
        "\n{name} (validation split; mean ± sd over {} seeds)\n",
        m.flywheel.len()
    );
    let header: Vec<&str> = systems.iter().map(|(l, _)| *l).collect();
    println!("| | {} | Flywheel ÷ anchor |", header.join(" | "));
    println!("|---|{}---|", "---|".repeat(systems.len()));
    let acc_label = if has_oos {
        "in-scope accuracy (fallback counted wrong)"
    } else {
        "accuracy (fallback counted wrong)"
    };
    let rows: Vec<(&str, Vec<String>, Vec<String>)> = {
        let mut rows = vec![(
            acc_label,
            col(&|s| Some(s.in_scope_accuracy), 4),
            ratio(&|s| s.in_scope_accuracy),
        )];
        if has_oos {
            rows.push((
                "OOS recall",
                col(&|s| s.oos_recall, 3),
                ratio(&|s| s.oos_recall.unwrap_or_default()),
            ));
        }
        rows.push((
            "accuracy ignoring fallback",
            col(&|s| Some(s.in_scope_ignoring_fallback), 4),
            Vec::new(),
        ));
        rows.push((
            "in-scope sent to fallback",
            col(&|s| Some(s.in_scope_fallback), 4),
            Vec::new(),
        ));
        rows.push((
            "train wall s",
            col(&|s| Some(s.train_seconds), 2),
            ratio(&|s| s.train_seconds),
        ));
        rows.push((
            "train CPU s",
            col(&|s| Some(s.train_cpu_seconds), 2),
            ratio(&|s| s.train_cpu_seconds),
        ));
        rows
    };
    for (label, cells, ratios) in rows {
        println!(
            "| {label} | {} | {} |",
            cells.join(" | "),
            ratios.join(", ")
        );
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// classify p50 / p99 for one utterance at a time, in process.
fn latency(model: &Model, samples: &[Sample]) -> (f64, f64) {
    let texts: Vec<&str> = samples.iter().map(|s| s.text.as_str()).collect();
    for t in &texts {
        std::hint::black_box(model.classify(t, None));
    }
    let mut lat = Vec::with_capacity(texts.len() * 3);
    for _ in 0..3 {
        for t in &texts {
            let t0 = Instant::now();
            std::hint::black_box(model.classify(t, None));
            lat.push(t0.elapsed().as_secs_f64() * 1e6);
        }
    }
    lat.sort_by(f64::total_cmp);
    (percentile(&lat, 0.5), percentile(&lat, 0.99))
}

/// `ROUTER_PARAMS='{"dim":150}'` overrides fields of the default parameters.
fn params_from_env() -> TrainParams {
    let mut value = serde_json::to_value(TrainParams::default()).expect("params encode");
    if let Ok(text) = std::env::var("ROUTER_PARAMS") {
        let patch: serde_json::Value = serde_json::from_str(&text).expect("ROUTER_PARAMS is JSON");
        merge(&mut value, patch);
        println!("parameters (not the defaults!): {value}");
    }
    serde_json::from_value(value).expect("ROUTER_PARAMS fields")
}

fn merge(base: &mut serde_json::Value, patch: serde_json::Value) {
    match (base, patch) {
        (serde_json::Value::Object(b), serde_json::Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this
    // binary without it (and unoptimised): nothing to measure there.
    if !std::env::args().any(|a| a == "--bench") {
        println!("router bench: run it with `cargo bench --bench router`");
        return;
    }
    let Some(dir) = data_dir() else {
        println!(
            "router bench skipped: no benchmark data (../shared/data or $FLYWHEEL_BENCH_DATA)"
        );
        return;
    };
    let params = params_from_env();
    let seeds: Vec<u64> = std::env::var("ROUTER_BENCH_SEEDS")
        .unwrap_or_else(|_| "1,2,3".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .expect("ROUTER_BENCH_SEEDS: comma-separated integers")
        })
        .collect();
    let only = std::env::var("ROUTER_BENCH_ONLY").ok();
    let wanted = |n: &str| only.as_deref().is_none_or(|o| o == n);
    let clinc = wanted("clinc").then(|| measure(&dir, &CLINC150, &params, &seeds));
    let hinglish = wanted("hinglish").then(|| measure(&dir, &HINGLISH_TOP, &params, &seeds));
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\nrouter bench, seeds {seeds:?}; load average at the end: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    if let Some(m) = &clinc {
        table("CLINC150", m, true);
        trade_off_curve("CLINC150", &m.first.model, &m.val);
        let (p50, p99) = latency(&m.first.model, &m.val);
        println!(
            "\nCLINC150 model: classify p50 {p50:.1} µs, p99 {p99:.1} µs (one utterance, in process; bar p50 ≤ 20 µs); artifact {:.1} MB (bar ≤ 20 MB)",
            m.first.artifact_bytes as f64 / 1e6
        );
    }
    if let Some(m) = &hinglish {
        table("Hinglish-TOP", m, false);
        trade_off_curve("Hinglish-TOP", &m.first.model, &m.val);
        println!(
            "\nHinglish-TOP model: artifact {:.1} MB",
            m.first.artifact_bytes as f64 / 1e6
        );
    }
}
