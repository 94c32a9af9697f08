//! What the converters take and give back: [`Options`] and the [`QuantReport`] of a
//! conversion, one [`TensorReport`] per output tensor.

use std::path::PathBuf;

use serde::Serialize;

/// One output tensor in the report.
#[derive(Debug, Clone, Serialize)]
pub struct TensorReport {
    /// The source (Hugging Face) name.
    pub name: String,
    /// The name in the output (GGUF name; the same name for NF4).
    pub output_name: String,
    pub shape: Vec<u64>,
    pub source_dtype: String,
    /// The stored type: a ggml type name, `nf4`, or the unchanged source dtype.
    pub stored_as: String,
    /// Set when the requested type did not fit the row length: why, and what was used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// ‖decoded − source‖ / ‖source‖ over the tensor (0 for unchanged tensors).
    pub relative_rmse: f64,
}

/// What a conversion did.
#[derive(Debug, Clone, Serialize)]
pub struct QuantReport {
    pub format: String,
    /// The requested type (`q8_0`, …, `nf4`).
    pub quant_type: String,
    pub output: PathBuf,
    pub output_bytes: u64,
    pub source_bytes: u64,
    pub tensors: Vec<TensorReport>,
    /// Source tensors not written (e.g. `rotary_emb.inv_freq`).
    pub skipped: Vec<String>,
}

/// Options shared by the converters.
#[derive(Debug, Clone)]
pub struct Options {
    /// Encoder threads (1 = single-threaded).
    pub threads: usize,
    /// Extra metadata written to the output (GGUF string keys; safetensors `__metadata__`),
    /// e.g. lineage digests.
    pub lineage: Vec<(String, String)>,
    /// NF4 only: double quantisation of the absmax values (bitsandbytes
    /// `bnb_4bit_use_double_quant`, `compress_statistics=True`).
    pub double_quant: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, usize::from),
            lineage: Vec::new(),
            double_quant: false,
        }
    }
}
