//! Strict, header-first safetensors.
//!
//! [`read_header`] parses and validates the header from any reader without touching the
//! tensor data; [`TensorFile`] reads one tensor's bytes by name without loading the rest.
//! Every rule of the format is enforced, and each violation is its own [`SafetensorsError`]
//! variant (the reference parser silently keeps one of two duplicate keys; we refuse).

mod dtype;
mod error;
mod header;
mod reader;

pub use dtype::Dtype;
pub use error::SafetensorsError;
pub use header::{Header, Limits, TensorInfo, read_header, read_header_file};
pub use reader::{FloatStats, TensorFile};
