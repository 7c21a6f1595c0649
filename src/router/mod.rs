//! The router model (DESIGN §7, issue 3): a fastText-shaped intent
//! classifier over hashed word and character n-grams, trained and run with
//! candle on the CPU.
//!
//! - [`train`] builds a [`TrainedModel`] from samples; [`TrainedModel::save`]
//!   writes the artifact directory.
//! - [`Model::load`] reads and validates an artifact; [`Model::classify`] and
//!   [`Model::classify_batch`] answer with a [`Prediction`].
//! - The linear member (`svm.rs`) is mixed into the n-gram members'
//!   probabilities when the selection data says it helps.
//! - [`evaluate`] scores a model on labelled samples ([`EvalReport`]).

mod artifact;
mod calibrate;
mod eval;
pub mod features;
mod model;
mod sgd;
mod svm;
mod table;
mod train;

use std::path::Path;

pub use artifact::{Metadata, REPORT_FILE};
pub use eval::{Confusion, EvalReport, IntentMetrics, LanguageMetrics, evaluate};
pub use model::{Alternative, Model, OOS_LABEL, Prediction};
pub use train::{
    DEFAULT_FALLBACK_THRESHOLD, DEFAULT_LINEAR_SHARE, EpochRecord, LINEAR_SHARES, TrainParams,
    TrainedModel, TrainingReport, split_validation, train,
};

impl Model {
    /// Load an artifact directory, validating every file (checksums, shapes,
    /// finite weights). Errors are `BadInput` and name the file at fault.
    pub fn load(dir: impl AsRef<Path>) -> crate::Result<Model> {
        artifact::load(dir.as_ref())
    }

    /// Write the artifact files (without a training report).
    pub fn save(&self, dir: impl AsRef<Path>) -> crate::Result<()> {
        artifact::save(self, dir.as_ref())
    }
}
