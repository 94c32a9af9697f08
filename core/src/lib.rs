//! `adapter-core`: the shared vocabulary of the adapter registry.
//!
//! Formats and math only: no HTTP, no SQL. The server and `adapterctl` both depend on this
//! crate so that they can never disagree about what a safetensors file, a PEFT adapter, a
//! reference or a digest is.

#![forbid(unsafe_code)]

pub mod api;
pub mod buffers;
pub mod compat;
pub mod diag;
pub mod digest;
pub mod floats;
pub mod forgetting;
pub mod json;
pub mod manifest;
pub mod merge;
pub mod model;
pub mod name;
pub mod peft;
pub mod private_file;
pub mod quant;
pub mod reference;
pub mod safetensors;
pub mod time;
