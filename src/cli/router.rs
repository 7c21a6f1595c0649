//! `flywheel train`, `flywheel eval` and `flywheel classify` (issue 3 item 4).

use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;

use crate::cli::output::Output;
use crate::dataset::{self, RecordReader};
use crate::error::{Error, Result};
use crate::lang::Language;
use crate::router::{self, Model, TrainParams};

#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    /// Training samples (JSONL: text, intent, language?).
    #[arg(long)]
    pub input: PathBuf,
    /// Artifact directory to write.
    #[arg(long)]
    pub output: PathBuf,
    /// Maximum epochs.
    #[arg(long)]
    pub epochs: Option<u32>,
    /// Exit 1 unless validation accuracy reaches this (training stops early once it does).
    #[arg(long)]
    pub target_accuracy: Option<f32>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Validation samples (early stopping, calibration, fallback threshold);
    /// the model is then trained on --input alone.
    #[arg(long, conflicts_with = "validation_split")]
    pub validation: Option<PathBuf>,
    /// Without --validation: share of the input carved off (per intent) to
    /// choose epochs, calibration and fallback threshold, after which the
    /// model is refit on all of the input. 0 skips selection.
    #[arg(long, default_value_t = 0.1)]
    pub validation_split: f32,
    /// Fallback threshold to store instead of the one chosen on validation data.
    #[arg(long)]
    pub fallback_threshold: Option<f32>,
    /// Version recorded in the artifact.
    #[arg(long, default_value = "router-v1.0.0")]
    pub model_version: String,
}

#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    /// Artifact directory.
    #[arg(long)]
    pub model: PathBuf,
    /// Labelled samples (JSONL).
    #[arg(long)]
    pub input: PathBuf,
}

#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["text", "input"])))]
pub struct ClassifyArgs {
    /// Artifact directory.
    #[arg(long)]
    pub model: PathBuf,
    /// One utterance.
    #[arg(long)]
    pub text: Option<String>,
    /// JSONL with a `text` field per line, or `-` for standard input.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Language of --text (detected when absent).
    #[arg(long, value_parser = parse_language)]
    pub language: Option<Language>,
}

fn parse_language(code: &str) -> std::result::Result<Language, String> {
    Language::parse(code)
        .ok_or_else(|| format!("unknown language {code:?} (en, hinglish, hi, mr, other)"))
}

#[derive(Serialize)]
struct TrainSummary<'a> {
    version: &'a str,
    output: String,
    train_samples: usize,
    validation_samples: usize,
    features: usize,
    epochs_run: u32,
    train_seconds: f64,
    temperature: f32,
    fallback_threshold: f32,
    target_met: Option<bool>,
    validation: Option<&'a router::EvalReport>,
    warnings: &'a [String],
}

pub fn train(args: &TrainArgs, out: &Output) -> Result<()> {
    let samples = dataset::read_samples(&args.input)?;
    let validation = match &args.validation {
        Some(path) => Some(dataset::read_samples(path)?),
        None => None,
    };
    if !(0.0..1.0).contains(&args.validation_split) {
        return Err(Error::usage("--validation-split must be in [0, 1)"));
    }
    let defaults = TrainParams::default();
    let params = TrainParams {
        version: args.model_version.clone(),
        epochs: args.epochs.unwrap_or(defaults.epochs),
        seed: args.seed,
        target_accuracy: args.target_accuracy,
        fallback_threshold: args.fallback_threshold,
        selection_share: args.validation_split,
        ..defaults
    };
    let display = out.progress();
    let reporter = display.reporter();
    let result = router::train(&samples, validation.as_deref(), &params, &reporter);
    display.finish();
    let trained = result?;
    trained.save(&args.output)?;
    let meta = trained.model.metadata();
    let report = &trained.report;
    out.summary(
        &TrainSummary {
            version: &meta.version,
            output: args.output.display().to_string(),
            train_samples: meta.train_samples,
            validation_samples: meta.validation_samples,
            features: report.features,
            epochs_run: meta.epochs_run,
            train_seconds: meta.train_seconds,
            temperature: meta.temperature,
            fallback_threshold: meta.fallback_threshold,
            target_met: report.target_met,
            validation: report.validation.as_ref(),
            warnings: &report.warnings,
        },
        || {
            let mut s = format!(
                "trained {} on {} samples in {:.1} s ({} epochs, {} features) -> {}\nfallback threshold {:.2} ({}), temperature {:.2}\n",
                meta.version,
                meta.train_samples,
                meta.train_seconds,
                meta.epochs_run,
                report.features,
                args.output.display(),
                meta.fallback_threshold,
                meta.fallback_threshold_source,
                meta.temperature
            );
            if let Some(v) = &report.validation {
                s.push_str("validation:\n");
                s.push_str(&v.human());
            }
            s
        },
    );
    if report.target_met == Some(false) {
        return Err(Error::failure(format!(
            "target accuracy {:.4} not reached (best validation accuracy {:.4}); the model and its report were written to {} for inspection",
            params.target_accuracy.unwrap_or_default(),
            report.best_validation_accuracy.unwrap_or_default(),
            args.output.display()
        )));
    }
    Ok(())
}

pub fn eval(args: &EvalArgs, out: &Output) -> Result<()> {
    let model = Model::load(&args.model)?;
    let samples = dataset::read_samples(&args.input)?;
    if samples.is_empty() {
        return Err(Error::bad_input(format!(
            "{}: no samples",
            args.input.display()
        )));
    }
    let report = router::evaluate(&model, &samples);
    out.summary(&report, || {
        format!("model {}\n{}", model.version(), report.human())
    });
    Ok(())
}

/// Inputs classified per candle batch when reading a file.
const CLASSIFY_CHUNK: usize = 4096;

#[derive(Serialize)]
struct ClassifyLine<'a> {
    text: &'a str,
    #[serde(flatten)]
    prediction: &'a router::Prediction,
}

/// The JSON line `classify` prints for one input: `text`, `intent`,
/// `confidence`, `fallback`, `language`, `alternatives` (top 3).
pub fn prediction_line(text: &str, prediction: &router::Prediction) -> Result<String> {
    serde_json::to_string(&ClassifyLine { text, prediction })
        .map_err(|e| Error::failure(format!("encoding a prediction: {e}")))
}

pub fn classify(args: &ClassifyArgs, _out: &Output) -> Result<()> {
    let model = Model::load(&args.model)?;
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    let mut emit = |text: &str, p: &router::Prediction| -> Result<()> {
        let line = prediction_line(text, p)?;
        writeln!(w, "{line}").map_err(|e| Error::writing("stdout", &e))
    };
    if let Some(text) = &args.text {
        emit(text, &model.classify(text, args.language))?;
    } else if let Some(path) = &args.input {
        let reader = RecordReader::open(path)?;
        let mut chunk = Vec::with_capacity(CLASSIFY_CHUNK);
        let mut records = reader.peekable();
        while records.peek().is_some() {
            chunk.clear();
            for record in records.by_ref().take(CLASSIFY_CHUNK) {
                chunk.push(record?);
            }
            let inputs: Vec<(&str, Option<Language>)> = chunk
                .iter()
                .map(|r| (r.text.as_str(), r.language.or(args.language)))
                .collect();
            for (r, p) in chunk.iter().zip(model.classify_batch(&inputs)?) {
                emit(&r.text, &p)?;
            }
        }
    }
    w.flush().map_err(|e| Error::writing("stdout", &e))
}
