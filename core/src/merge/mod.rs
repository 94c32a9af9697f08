//! Merging a LoRA adapter into its base, exactly as PEFT's `merge_and_unload()` would, without
//! loading the model: see `docs/MERGE.md`.
//!
//! Three steps a job or the CLI can drive separately:
//! 1. [`plan`] from headers and config files alone: refusals (non-LoRA types, init methods
//!    that rewrote the base, an incompatible base), the output tensors, shards and headers.
//! 2. [`write_shard`] streams one shard to any writer, reading tensors one at a time from a
//!    [`TensorSource`] (a local directory, a blob store).
//! 3. [`merge_dir`] does both for local directories, into a temporary directory renamed into
//!    place at the end.

mod device;
mod kernel;
mod local;
mod plan;
mod write;

// The float conversions the merge uses, also reachable here (adapterctl's tests and the
// benches import them from `merge`).
pub use crate::floats::{bf16_to_f32, decode, f32_to_bf16};
pub use device::{CUDA_BUILT, Device, check_device_name};
pub use kernel::{Matrix, add_bias, add_delta, apply_dora};
pub use local::{DirSource, MergeSummary, OutputFile, is_copied_file, merge_dir};
pub use plan::{
    BiasAdd, DEFAULT_SHARD_SIZE, Delta, MergeOptions, MergePlan, ModuleScaleUsed, ShardPlan,
    Source, TensorPlan, plan,
};
pub use write::{Progress, TensorSource, write_shard};

/// Why a merge did not happen.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// Bad options (dtype, shard size, output path).
    #[error("{0}")]
    Usage(String),
    /// The adapter cannot be merged faithfully (its type, its init method, its layers).
    #[error("cannot merge: {0}")]
    Refused(String),
    /// The compatibility check's verdict is `incompatible`.
    #[error("cannot merge: the adapter is incompatible with the base: {}", .0.join("; "))]
    Incompatible(Vec<String>),
    /// A tensor's bytes disagree with its header or its partners.
    #[error("{0}")]
    Input(String),
    #[error("{path}: {source}")]
    Path {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The compute device failed (CUDA out of memory, a driver error).
    #[error("device: {0}")]
    Device(String),
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    #[error(transparent)]
    Peft(#[from] crate::peft::PeftError),
}

impl MergeError {
    /// A stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Usage(_) => "invalid_merge_options",
            Self::Refused(_) => "merge_refused",
            Self::Incompatible(_) => "incompatible",
            Self::Input(_) => "invalid_merge_input",
            Self::Path { .. } | Self::Io(_) => "io_error",
            Self::Device(_) => "device_error",
            Self::Model(_) => "invalid_model",
            Self::Peft(_) => "invalid_adapter",
        }
    }

    /// The same error, naming the tensor it is about.
    pub(crate) fn about(self, tensor: &str) -> Self {
        match self {
            Self::Input(m) => Self::Input(format!("{tensor}: {m}")),
            other => other,
        }
    }
}
