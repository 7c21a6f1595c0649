//! Router benchmark (issue 3 item 8): trains and evaluates on the validation
//! splits in `../shared/data` (or `$FLYWHEEL_BENCH_DATA`) and prints the
//! numbers the quality bars of DESIGN §9 are judged on.
//!
//! Run: `cargo bench --bench router`

use std::path::{Path, PathBuf};
use std::time::Instant;

use flywheel::dataset::{Sample, read_samples};
use flywheel::progress::Reporter;
use flywheel::router::{self, Model, TrainParams};

fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("FLYWHEEL_BENCH_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    dir.join("clinc150_train.jsonl").is_file().then_some(dir)
}

/// Peak resident memory of this process so far (Linux), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
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

struct Run {
    model: Model,
    report: router::EvalReport,
    train_seconds: f64,
    train_cpu_seconds: f64,
    artifact_bytes: u64,
}

fn run(name: &str, train: &[Sample], val: &[Sample], params: &TrainParams) -> Run {
    let t0 = Instant::now();
    let cpu0 = cpu_seconds();
    let trained = router::train(train, Some(val), params, &Reporter::silent()).expect("training");
    let train_seconds = t0.elapsed().as_secs_f64();
    let train_cpu_seconds = cpu_seconds() - cpu0;
    if std::env::var_os("ROUTER_BENCH_VERBOSE").is_some() {
        for e in &trained.report.epochs {
            eprintln!(
                "  epoch {:>2} loss {:.4} val {:?} {:.2}s",
                e.epoch, e.loss, e.validation_accuracy, e.seconds
            );
        }
    }
    let dir = tempfile::tempdir().expect("temp dir");
    trained.save(dir.path()).expect("save");
    let artifact_bytes = dir_size(dir.path());
    let model = Model::load(dir.path()).expect("load");
    let report = router::evaluate(&model, val);
    if std::env::var_os("ROUTER_BENCH_VERBOSE").is_some() {
        let mut m = model.clone();
        for t in [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7] {
            m.set_fallback_threshold(t);
            let r = router::evaluate(&m, val);
            eprintln!(
                "  threshold {t:.1}: acc {:.4} in-scope {:?} oos {:?}",
                r.accuracy, r.in_scope_accuracy, r.oos_recall
            );
        }
    }
    eprintln!(
        "{name}: {} features, {} epochs, threshold {:.2}, temperature {:.2}",
        trained.report.features,
        model.metadata().epochs_run,
        model.fallback_threshold(),
        model.metadata().temperature
    );
    Run {
        model,
        report,
        train_seconds,
        train_cpu_seconds,
        artifact_bytes,
    }
}

/// `ROUTER_PARAMS='{"dim":150}'` overrides fields of the default parameters
/// (for tuning runs; the README's figures use the defaults).
fn params_from_env() -> TrainParams {
    let mut value = serde_json::to_value(TrainParams::default()).expect("params encode");
    if let Ok(text) = std::env::var("ROUTER_PARAMS") {
        let patch: serde_json::Value = serde_json::from_str(&text).expect("ROUTER_PARAMS is JSON");
        merge(&mut value, patch);
        eprintln!("parameters: {value}");
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

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
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
    let load = |f: &str| read_samples(&dir.join(f)).expect("benchmark data");
    let params = params_from_env();

    if std::env::var("ROUTER_BENCH_ONLY").is_ok_and(|v| v == "hinglish") {
        let h = run(
            "hinglish-top",
            &load("hinglish_top_train.jsonl"),
            &load("hinglish_top_val.jsonl"),
            &params,
        );
        println!(
            "hinglish acc {:.4} train {:.2}s ece {:.4}",
            h.report.accuracy, h.train_seconds, h.report.expected_calibration_error
        );
        if std::env::var_os("ROUTER_BENCH_VERBOSE").is_some() {
            eprintln!("{}", h.report.human());
        }
        return;
    }
    let clinc_train = load("clinc150_train.jsonl");
    let clinc_val = load("clinc150_val.jsonl");
    let clinc = run("clinc150", &clinc_train, &clinc_val, &params);
    if std::env::var("ROUTER_BENCH_ONLY").is_ok_and(|v| v == "clinc") {
        let c = &clinc.report;
        println!(
            "clinc in-scope {:.4} oos {:.4} train {:.2}s acc {:.4} ece {:.4}",
            c.in_scope_accuracy.unwrap_or_default(),
            c.oos_recall.unwrap_or_default(),
            clinc.train_seconds,
            c.accuracy,
            c.expected_calibration_error
        );
        return;
    }
    let hing_train = load("hinglish_top_train.jsonl");
    let hing_val = load("hinglish_top_val.jsonl");
    let hing = run("hinglish-top", &hing_train, &hing_val, &params);

    // Latency: one utterance at a time, in process, after a warm-up pass.
    let texts: Vec<&str> = clinc_val.iter().map(|s| s.text.as_str()).collect();
    for t in &texts {
        std::hint::black_box(clinc.model.classify(t, None));
    }
    // Five passes; besides the plain distribution, keep each utterance's
    // fastest pass: on a shared machine that filters out time spent
    // preempted by the neighbours.
    let passes = 5;
    let mut lat: Vec<f64> = Vec::with_capacity(texts.len() * passes);
    let mut best = vec![f64::INFINITY; texts.len()];
    for _ in 0..passes {
        for (i, t) in texts.iter().enumerate() {
            let t0 = Instant::now();
            std::hint::black_box(clinc.model.classify(t, None));
            let us = t0.elapsed().as_secs_f64() * 1e6;
            lat.push(us);
            best[i] = best[i].min(us);
        }
    }
    lat.sort_by(f64::total_cmp);
    best.sort_by(f64::total_cmp);
    // Throughput: the batch path over the validation texts, several rounds.
    let batch: Vec<_> = texts.iter().map(|t| (*t, None)).collect();
    let rounds = 10;
    let t0 = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(clinc.model.classify_batch(&batch).expect("batch"));
    }
    let throughput = (rounds * batch.len()) as f64 / t0.elapsed().as_secs_f64();
    // For comparison: the plain-loop single path fanned out with rayon.
    let t0 = Instant::now();
    for _ in 0..rounds {
        use rayon::prelude::*;
        let out: Vec<_> = texts
            .par_iter()
            .map(|t| clinc.model.classify(t, None))
            .collect();
        std::hint::black_box(out);
    }
    let throughput_plain = (rounds * batch.len()) as f64 / t0.elapsed().as_secs_f64();

    let c = &clinc.report;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "load average at the end: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("| metric | value | bar |");
    println!("|---|---|---|");
    println!(
        "| CLINC150 val in-scope accuracy | {:.4} | ≥ 0.93 |",
        c.in_scope_accuracy.unwrap_or_default()
    );
    println!(
        "| CLINC150 val OOS recall | {:.4} | ≥ 0.40 |",
        c.oos_recall.unwrap_or_default()
    );
    println!(
        "| CLINC150 train time (15 100 rows) | {:.2} s wall, {:.2} s CPU | < 13.5 s |",
        clinc.train_seconds, clinc.train_cpu_seconds
    );
    println!(
        "| CLINC150 val ECE | {:.4} | |",
        c.expected_calibration_error
    );
    println!(
        "| Hinglish-TOP val accuracy | {:.4} | ≥ 0.90 |",
        hing.report.accuracy
    );
    println!(
        "| Hinglish-TOP train time | {:.2} s wall, {:.2} s CPU | |",
        hing.train_seconds, hing.train_cpu_seconds
    );
    println!(
        "| Hinglish-TOP val ECE | {:.4} | |",
        hing.report.expected_calibration_error
    );
    println!(
        "| classify p50 / p99 (1 utterance) | {:.1} µs / {:.1} µs | p50 ≤ 20 µs |",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );
    println!(
        "| classify p50 / p99, best of {passes} passes per utterance | {:.1} µs / {:.1} µs | |",
        percentile(&best, 0.5),
        percentile(&best, 0.99)
    );
    println!("| batch throughput (candle output layer) | {throughput:.0} utt/s | ≥ 50 000 |");
    println!("| batch throughput (plain loops, rayon) | {throughput_plain:.0} utt/s | |");
    println!(
        "| artifact size (CLINC150) | {:.1} MB | ≤ 20 MB |",
        clinc.artifact_bytes as f64 / 1e6
    );
    println!(
        "| artifact size (Hinglish-TOP) | {:.1} MB | |",
        hing.artifact_bytes as f64 / 1e6
    );
    println!(
        "| peak memory (RSS) | {:.0} MiB | |",
        peak_rss_mib().unwrap_or(f64::NAN)
    );
}
