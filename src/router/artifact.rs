//! The artifact directory (DESIGN §7, issue 3 item 3):
//!
//! | file | holds |
//! |---|---|
//! | `model.safetensors` | vocabulary hashes and IDF, per member the n-gram table (f16) and output layer (f32), the linear member's weights (8-bit with a scale per n-gram) and bias |
//! | `labels.json` | intent names, in output order |
//! | `features.json` | tokeniser / hashing settings, hidden size, member count |
//! | `metadata.json` | version, data hash, counts, metrics, seed, timings, temperature, fallback threshold, and the SHA-256 of every other file |
//! | `training-report.json` | per-epoch history (informative; not needed to load) |
//!
//! `metadata.json` is written last and lists checksums, so a half-written or
//! altered directory is refused at load time instead of classifying badly.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::eval::EvalReport;
use super::features::{FeatureConfig, Vocab};
use super::model::{Linear, Member, Model};
use super::table::Table;
use crate::error::{Error, Result};

/// Bumped when the layout changes incompatibly.
pub const FORMAT: u32 = 1;

pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const LABELS_FILE: &str = "labels.json";
pub const FEATURES_FILE: &str = "features.json";
pub const METADATA_FILE: &str = "metadata.json";
pub const REPORT_FILE: &str = "training-report.json";

/// Everything about a model that is not a weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    pub format: u32,
    pub version: String,
    pub created_at: String,
    pub seed: u64,
    /// SHA-256 over the training samples (text and intent, in input order).
    pub data_hash: String,
    pub train_samples: usize,
    pub validation_samples: usize,
    pub samples_per_intent: BTreeMap<String, usize>,
    pub samples_per_language: BTreeMap<String, usize>,
    /// Softmax temperature fitted on validation data (1 without validation).
    pub temperature: f32,
    /// Weight of the linear member's probabilities in the mix (0: none;
    /// artifacts from before it had none).
    #[serde(default)]
    pub linear_share: f32,
    /// The linear member's own softmax temperature, fitted like `temperature`.
    #[serde(default = "one")]
    pub linear_temperature: f32,
    pub fallback_threshold: f32,
    /// `validation, out-of-scope level` or `validation, no-idea level` (see
    /// `calibrate::choose_threshold`), `override` (--fallback-threshold) or
    /// `default` (no validation data).
    pub fallback_threshold_source: String,
    pub epochs_run: u32,
    pub train_seconds: f64,
    /// Metrics on the validation data, when there was any.
    pub validation_metrics: Option<EvalReport>,
    /// SHA-256 of the other files, checked on load.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
}

fn one() -> f32 {
    1.0
}

#[derive(Serialize, Deserialize)]
struct FeaturesFile {
    features: FeatureConfig,
    dim: usize,
    members: usize,
    /// Whether there is a linear member (absent in older artifacts).
    #[serde(default)]
    linear: bool,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn write(dir: &Path, name: &str, bytes: &[u8], files: &mut BTreeMap<String, String>) -> Result<()> {
    std::fs::write(dir.join(name), bytes)
        .map_err(|e| Error::failure(format!("writing {}: {e}", dir.join(name).display())))?;
    files.insert(name.to_string(), sha256_hex(bytes));
    Ok(())
}

fn json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(value).map_err(|e| Error::failure(format!("encoding JSON: {e}")))
}

/// Round the table through f16 so the in-memory model equals what a load of
/// the saved artifact gives (the file stores the table as f16 to halve it).
pub(crate) fn round_to_f16(values: Vec<f32>) -> Result<Vec<f32>> {
    let n = values.len();
    Tensor::from_vec(values, n, &Device::Cpu)
        .and_then(|t| t.to_dtype(DType::F16)?.to_dtype(DType::F32)?.to_vec1())
        .map_err(|e| Error::failure(format!("rounding weights: {e}")))
}

pub(crate) fn save(model: &Model, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::failure(format!("creating {}: {e}", dir.display())))?;
    let cand = |e: candle_core::Error| Error::failure(format!("encoding weights: {e}"));
    let (f, d, c) = (model.vocab.len(), model.dim, model.labels.len());
    let cpu = &Device::Cpu;
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    // safetensors has no u64 through candle: store the bits as i64.
    let hashes: Vec<i64> = model.vocab.hashes.iter().map(|&h| h as i64).collect();
    tensors.insert(
        "vocab.hashes".into(),
        Tensor::from_vec(hashes, f, cpu).map_err(cand)?,
    );
    tensors.insert(
        "vocab.idf".into(),
        Tensor::from_slice(&model.vocab.idf, f, cpu).map_err(cand)?,
    );
    for (i, m) in model.members.iter().enumerate() {
        let emb =
            Tensor::from_slice(&m.embedding, (f, d), cpu).and_then(|t| t.to_dtype(DType::F16));
        tensors.insert(format!("m{i}.embedding"), emb.map_err(cand)?);
        tensors.insert(
            format!("m{i}.output.weight"),
            Tensor::from_slice(&m.weight, (d, c), cpu).map_err(cand)?,
        );
        tensors.insert(
            format!("m{i}.output.bias"),
            Tensor::from_slice(&m.bias, c, cpu).map_err(cand)?,
        );
    }
    if let Some(linear) = &model.linear {
        // safetensors through candle has no i8: store q + 128 as u8.
        let values: Vec<u8> = linear
            .table
            .values()
            .iter()
            .map(|&q| (i16::from(q) + 128) as u8)
            .collect();
        tensors.insert(
            "linear.values".into(),
            Tensor::from_vec(values, (f, c), cpu).map_err(cand)?,
        );
        tensors.insert(
            "linear.scales".into(),
            Tensor::from_slice(linear.table.scales(), f, cpu).map_err(cand)?,
        );
        tensors.insert(
            "linear.bias".into(),
            Tensor::from_slice(&linear.bias, c, cpu).map_err(cand)?,
        );
    }
    let path = dir.join(WEIGHTS_FILE);
    candle_core::safetensors::save(&tensors, &path).map_err(cand)?;
    let weights = std::fs::read(&path)?;
    let mut files = BTreeMap::new();
    files.insert(WEIGHTS_FILE.to_string(), sha256_hex(&weights));
    write(dir, LABELS_FILE, &json(&model.labels)?, &mut files)?;
    let features = FeaturesFile {
        features: model.features.clone(),
        dim: d,
        members: model.members.len(),
        linear: model.linear.is_some(),
    };
    write(dir, FEATURES_FILE, &json(&features)?, &mut files)?;
    let mut metadata = model.metadata.clone();
    metadata.files = files;
    let bytes = json(&metadata)?;
    std::fs::write(dir.join(METADATA_FILE), bytes).map_err(|e| {
        Error::failure(format!(
            "writing {}: {e}",
            dir.join(METADATA_FILE).display()
        ))
    })
}

fn bad(dir: &Path, name: &str, what: impl std::fmt::Display) -> Error {
    Error::bad_input(format!(
        "model {}: {name}: {what}; retrain the model or restore the directory from a backup",
        dir.display()
    ))
}

fn read(dir: &Path, name: &str) -> Result<Vec<u8>> {
    std::fs::read(dir.join(name)).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => bad(dir, name, "file is missing"),
        _ => bad(dir, name, format_args!("cannot read: {e}")),
    })
}

pub(crate) fn load(dir: &Path) -> Result<Model> {
    if !dir.is_dir() {
        return Err(Error::bad_input(format!(
            "model directory {} does not exist (train one with `flywheel train`)",
            dir.display()
        )));
    }
    let metadata: Metadata = serde_json::from_slice(&read(dir, METADATA_FILE)?)
        .map_err(|e| bad(dir, METADATA_FILE, format_args!("corrupt: {e}")))?;
    if metadata.format != FORMAT {
        return Err(bad(
            dir,
            METADATA_FILE,
            format_args!(
                "format {} is not supported (expected {FORMAT})",
                metadata.format
            ),
        ));
    }
    let mut contents = BTreeMap::new();
    for name in [WEIGHTS_FILE, LABELS_FILE, FEATURES_FILE] {
        let bytes = read(dir, name)?;
        match metadata.files.get(name) {
            Some(sum) if *sum == sha256_hex(&bytes) => {}
            Some(_) => {
                return Err(bad(
                    dir,
                    name,
                    "corrupt (checksum does not match metadata.json)",
                ));
            }
            None => {
                return Err(bad(
                    dir,
                    METADATA_FILE,
                    format_args!("has no checksum for {name}"),
                ));
            }
        }
        contents.insert(name, bytes);
    }
    let labels: Vec<String> = serde_json::from_slice(&contents[LABELS_FILE])
        .map_err(|e| bad(dir, LABELS_FILE, format_args!("corrupt: {e}")))?;
    let features: FeaturesFile = serde_json::from_slice(&contents[FEATURES_FILE])
        .map_err(|e| bad(dir, FEATURES_FILE, format_args!("corrupt: {e}")))?;
    let tensors = candle_core::safetensors::load_buffer(&contents[WEIGHTS_FILE], &Device::Cpu)
        .map_err(|e| bad(dir, WEIGHTS_FILE, format_args!("corrupt: {e}")))?;
    let (c, d) = (labels.len(), features.dim);
    let get = |name: &str, dims: &[usize]| -> Result<Tensor> {
        let t = tensors
            .get(name)
            .ok_or_else(|| bad(dir, WEIGHTS_FILE, format_args!("tensor {name} is missing")))?;
        if t.dims() != dims {
            return Err(bad(
                dir,
                WEIGHTS_FILE,
                format_args!("tensor {name} has shape {:?}, expected {dims:?}", t.dims()),
            ));
        }
        Ok(t.clone())
    };
    let f32s = |t: Tensor, name: &str| -> Result<Vec<f32>> {
        t.to_dtype(DType::F32)
            .and_then(|t| t.flatten_all()?.to_vec1::<f32>())
            .map_err(|e| bad(dir, WEIGHTS_FILE, format_args!("tensor {name}: {e}")))
    };
    let hashes_t = tensors
        .get("vocab.hashes")
        .ok_or_else(|| bad(dir, WEIGHTS_FILE, "tensor vocab.hashes is missing"))?;
    let f = hashes_t.dims1().map_err(|e| bad(dir, WEIGHTS_FILE, e))?;
    let hashes: Vec<u64> = hashes_t
        .to_vec1::<i64>()
        .map_err(|e| bad(dir, WEIGHTS_FILE, e))?
        .into_iter()
        .map(|h| h as u64)
        .collect();
    let idf = f32s(get("vocab.idf", &[f])?, "vocab.idf")?;
    let mut members = Vec::new();
    for i in 0..features.members {
        let member = Member {
            embedding: f32s(get(&format!("m{i}.embedding"), &[f, d])?, "embedding")?,
            weight: f32s(
                get(&format!("m{i}.output.weight"), &[d, c])?,
                "output.weight",
            )?,
            bias: f32s(get(&format!("m{i}.output.bias"), &[c])?, "output.bias")?,
        };
        let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
        if !(finite(&member.embedding) && finite(&member.weight) && finite(&member.bias)) {
            return Err(bad(
                dir,
                WEIGHTS_FILE,
                format_args!("member {i} holds non-finite weights"),
            ));
        }
        members.push(member);
    }
    if members.is_empty() || c < 2 {
        return Err(bad(
            dir,
            FEATURES_FILE,
            "a model needs at least one member and two labels",
        ));
    }
    let linear = if features.linear {
        Some(load_linear(dir, &get, &f32s, f, c, &metadata)?)
    } else {
        None
    };
    Model::new(
        metadata,
        labels,
        features.features,
        d,
        Vocab::from_parts(hashes, idf),
        members,
        linear,
    )
}

/// The linear member's tensors, checked like the members' (shapes, finite
/// values) and its mixing settings.
fn load_linear(
    dir: &Path,
    get: &dyn Fn(&str, &[usize]) -> Result<Tensor>,
    f32s: &dyn Fn(Tensor, &str) -> Result<Vec<f32>>,
    f: usize,
    c: usize,
    metadata: &Metadata,
) -> Result<Linear> {
    let values: Vec<i8> = get("linear.values", &[f, c])?
        .flatten_all()
        .and_then(|t| t.to_vec1::<u8>())
        .map_err(|e| bad(dir, WEIGHTS_FILE, format_args!("tensor linear.values: {e}")))?
        .into_iter()
        .map(|v| (i16::from(v) - 128) as i8)
        .collect();
    let scales = f32s(get("linear.scales", &[f])?, "linear.scales")?;
    let bias = f32s(get("linear.bias", &[c])?, "linear.bias")?;
    let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
    if !(finite(&scales) && finite(&bias)) {
        return Err(bad(
            dir,
            WEIGHTS_FILE,
            "the linear member holds non-finite weights",
        ));
    }
    let (share, t) = (metadata.linear_share, metadata.linear_temperature);
    if !(share > 0.0 && share <= 1.0 && t.is_finite() && t > 0.0) {
        return Err(bad(
            dir,
            METADATA_FILE,
            format_args!(
                "linear_share {share} must be in (0, 1] and linear_temperature {t} positive"
            ),
        ));
    }
    let table = Table::from_parts(c, scales, values).ok_or_else(|| {
        bad(
            dir,
            WEIGHTS_FILE,
            "linear.values does not match linear.scales",
        )
    })?;
    Ok(Linear { table, bias })
}
