//! Header parsing and validation. (Interface fixed; the implementation is being written.)

use std::io::Read;
use std::path::Path;

use serde::Serialize;

use super::{Dtype, SafetensorsError};

/// Limits that bound what a header may cost to parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted header length N (bytes of JSON after the 8-byte prefix).
    pub max_header_len: u64,
    /// Largest accepted number of tensors.
    pub max_tensors: usize,
}

impl Limits {
    /// The reference implementation's header cap (100,000,000 bytes).
    pub const REFERENCE: Limits = Limits {
        max_header_len: 100_000_000,
        max_tensors: 1_000_000,
    };
    /// Tighter default for the server, which parses headers uploaded by strangers.
    pub const SERVER: Limits = Limits {
        max_header_len: 16 * 1024 * 1024,
        max_tensors: 200_000,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::REFERENCE
    }
}

/// One tensor's entry in the header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<u64>,
    /// `[begin, end)` relative to the start of the data section.
    pub data_offsets: (u64, u64),
}

impl TensorInfo {
    /// Product of the shape (1 for rank 0).
    pub fn num_elements(&self) -> u64 {
        self.shape.iter().product()
    }

    /// `end - begin`.
    pub fn byte_len(&self) -> u64 {
        self.data_offsets.1 - self.data_offsets.0
    }
}

/// A validated header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Header {
    /// N, the header length declared in the 8-byte prefix (including any trailing spaces).
    pub header_len: u64,
    /// `__metadata__`, in file order.
    pub metadata: Option<Vec<(String, String)>>,
    /// Tensors sorted by their data offset (the order of the data section).
    pub tensors: Vec<TensorInfo>,
}

impl Header {
    /// Byte offset in the file where the data section begins: `8 + N`.
    pub fn data_start(&self) -> u64 {
        8 + self.header_len
    }

    /// Length of the data section (end offset of the last tensor, 0 if none).
    pub fn data_len(&self) -> u64 {
        self.tensors.last().map_or(0, |t| t.data_offsets.1)
    }

    /// Total file length implied by the header.
    pub fn file_len(&self) -> u64 {
        self.data_start() + self.data_len()
    }

    /// Look a tensor up by name.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

/// Parse and validate a header from `reader`, consuming exactly `8 + N` bytes.
/// `file_len`, when known, must equal the length the header implies.
pub fn read_header<R: Read>(
    reader: R,
    limits: &Limits,
    file_len: Option<u64>,
) -> Result<Header, SafetensorsError> {
    let _ = (reader, limits, file_len);
    todo!("being implemented")
}

/// [`read_header`] on a file, with its length checked.
pub fn read_header_file(path: &Path, limits: &Limits) -> Result<Header, SafetensorsError> {
    let _ = (path, limits);
    todo!("being implemented")
}
