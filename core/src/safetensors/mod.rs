//! Strict, header-first safetensors.
//!
//! [`read_header`] parses and validates the header from any reader without touching the
//! tensor data; [`TensorFile`] reads one tensor's bytes by name without loading the rest.
//! Every rule of the format is enforced, and each violation is its own [`SafetensorsError`]
//! variant with a stable [`SafetensorsError::code`] (the reference parser silently keeps one
//! of two duplicate keys; we refuse).
//!
//! Beyond the reference reader we refuse: duplicate keys at any depth, leading whitespace and
//! padding other than trailing spaces (0x20) (see [`read_header`]), unknown fields in a tensor
//! entry, and a file whose length differs from what the header implies.

mod dtype;
mod error;
mod floats;
mod header;
mod reader;
mod validate;

pub use dtype::Dtype;
pub use error::SafetensorsError;
pub use header::{Header, Limits, TensorInfo, read_header, read_header_file};
pub use reader::{FloatStats, TensorFile};
