//! Why an adapter could not be read at all. Problems *in* a readable adapter are findings.

use std::path::PathBuf;

use crate::safetensors::SafetensorsError;

/// An adapter that could not be read or whose config cannot be interpreted.
#[derive(Debug, thiserror::Error)]
pub enum PeftError {
    /// `adapter_config.json` is not valid (strict) JSON or not an object.
    #[error("adapter_config.json: {0}")]
    ConfigJson(String),
    /// A field has the wrong type or a value PEFT refuses.
    #[error("adapter_config.json: field `{field}`: {message}")]
    Config { field: String, message: String },
    /// A pattern field that the `regex` crate cannot compile (e.g. Python-only look-behind).
    #[error(
        "adapter_config.json: field `{field}`: pattern `{pattern}` cannot be compiled \
         (Python-only syntax such as look-around or backreferences is not supported): {message}"
    )]
    Regex {
        field: String,
        pattern: String,
        message: String,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Safetensors {
        path: PathBuf,
        #[source]
        source: SafetensorsError,
    },
    #[error("{}: not found", path.display())]
    Missing { path: PathBuf },
    /// Only a pickle checkpoint: refused, never unpickled.
    #[error(
        "{}: pickle checkpoints are not accepted (loading one can run arbitrary code); convert it \
         to safetensors first, e.g. in Python: `import torch; from safetensors.torch import \
         save_file; save_file(torch.load(\"adapter_model.bin\", weights_only=True), \
         \"adapter_model.safetensors\")`",
        path.display()
    )]
    PickleOnly { path: PathBuf },
}

impl PeftError {
    pub(crate) fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Config {
            field: field.into(),
            message: message.into(),
        }
    }
}
