//! One variant per violated rule.

/// Why a safetensors file was refused.
#[derive(Debug, thiserror::Error)]
pub enum SafetensorsError {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}
