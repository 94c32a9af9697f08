//! Header parsing and validation: the 8-byte prefix, the N header bytes, then every rule
//! of the format (field rules and layout live in `validate`).

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::Path;

use serde::Serialize;

use super::validate::{self, Entries};
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
    /// What the server takes for an adapter's weights. Checking an adapter costs about
    /// 1.5 KB per tensor (its module, the findings), so a hostile header is refused by its
    /// count before that work: 20,000 tensors stay within the server's 64 MiB budget for one
    /// hostile request (docs/RELIABILITY.md). LoRA on attention and MLP of a dense 70B
    /// model has 1,120 tensors, on every expert of Mixtral 8x7B 1,536; LoRA on every expert
    /// of a large mixture-of-experts model (Qwen3-30B-A3B: 36,864) is over it.
    pub const SERVER_ADAPTER: Limits = Limits {
        max_header_len: 16 * 1024 * 1024,
        max_tensors: 20_000,
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
///
/// Whitespace: the header must begin with `{` (no leading whitespace) and may be padded after
/// its closing `}` with spaces (0x20) only, as the format README of huggingface/safetensors
/// (0.8.0, "Format") states: "The header data MUST begin with a `{` character (0x7B)" and
/// "MAY be trailing padded with whitespace (0x20)"; its writer pads with 0x20 to a multiple
/// of 8. The reference *reader* is laxer (it hands the bytes to `serde_json::from_str`, so it
/// also takes leading whitespace and `\t`, `\n`, `\r` padding); we follow the written rule.
/// Whitespace between JSON tokens inside the object is ordinary JSON and accepted.
pub fn read_header<R: Read>(
    reader: R,
    limits: &Limits,
    file_len: Option<u64>,
) -> Result<Header, SafetensorsError> {
    let mut reader = reader;
    if let Some(len) = file_len
        && len < PREFIX_LEN
    {
        return Err(SafetensorsError::PrefixTruncated { got: len });
    }
    let mut prefix = [0u8; 8];
    let got = read_full(&mut reader, &mut prefix)?;
    if got < prefix.len() {
        return Err(SafetensorsError::PrefixTruncated { got: got as u64 });
    }
    let n = u64::from_le_bytes(prefix);
    // Checked before anything is allocated.
    if n > limits.max_header_len || n > u64::MAX - PREFIX_LEN {
        return Err(SafetensorsError::HeaderTooLarge {
            len: n,
            max: limits.max_header_len,
        });
    }
    if n == 0 {
        return Err(SafetensorsError::HeaderEmpty);
    }
    let initial_capacity = match file_len {
        Some(len) if len - PREFIX_LEN < n => {
            return Err(SafetensorsError::HeaderTruncated {
                declared: n,
                available: len - PREFIX_LEN,
            });
        }
        // The file holds all N bytes: reserve them at once.
        Some(_) => n,
        // A stream may lie about N: let the buffer grow with the bytes that really arrive.
        None => n.min(64 * 1024),
    };
    let mut bytes = Vec::with_capacity(usize::try_from(initial_capacity).unwrap_or(0));
    reader.by_ref().take(n).read_to_end(&mut bytes)?;
    if (bytes.len() as u64) < n {
        return Err(SafetensorsError::HeaderTruncated {
            declared: n,
            available: bytes.len() as u64,
        });
    }

    let content = header_content(&bytes)?;
    let Entries { metadata, tensors } = validate::entries(content, limits)?;
    let header = Header {
        header_len: n,
        metadata,
        tensors,
    };
    let implied = match header.tensors.last() {
        None => PREFIX_LEN + n,
        Some(last) => (PREFIX_LEN + n)
            .checked_add(last.data_offsets.1)
            .ok_or_else(|| SafetensorsError::OffsetOverflow {
                tensor: last.name.clone(),
                end: last.data_offsets.1,
            })?,
    };
    if let Some(actual) = file_len {
        if actual > implied {
            return Err(SafetensorsError::TrailingBytes {
                expected: implied,
                actual,
            });
        }
        if actual < implied {
            return Err(SafetensorsError::DataTruncated {
                expected: implied,
                actual,
            });
        }
    }
    Ok(header)
}

/// [`read_header`] on a file, with its length checked.
pub fn read_header_file(path: &Path, limits: &Limits) -> Result<Header, SafetensorsError> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    read_header(file, limits, Some(len))
}

const PREFIX_LEN: u64 = 8;

/// Fill `buf` as far as the reader allows; returns how many bytes were read.
fn read_full<R: Read>(reader: &mut R, buf: &mut [u8]) -> Result<usize, SafetensorsError> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(k) => filled += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(filled)
}

/// The N header bytes without their 0x20 padding, after the start byte and UTF-8 checks
/// (the JSON itself is parsed entry by entry by `validate::entries`).
fn header_content(bytes: &[u8]) -> Result<&[u8], SafetensorsError> {
    match bytes.first() {
        Some(b'{') => {}
        Some(&found) => return Err(SafetensorsError::HeaderBadStart { found }),
        None => return Err(SafetensorsError::HeaderEmpty),
    }
    std::str::from_utf8(bytes).map_err(|e| SafetensorsError::HeaderNotUtf8 {
        detail: e.to_string(),
    })?;
    let content_len = bytes.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
    Ok(&bytes[..content_len])
}
