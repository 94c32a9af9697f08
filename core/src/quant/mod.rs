//! Quantisation: ggml block formats (Q8_0, Q4_0, Q4_K, Q6_K) with a GGUF v3 writer and
//! reader, and NF4 in the bitsandbytes layout. See docs/QUANTISE.md.
//!
//! Pure Rust, no dependency: the encoders are ports of ggml's reference quantisers (cited
//! per module) so that the bytes match llama.cpp's; everything streams one tensor at a time
//! so that the same code serves `adapterctl quantise --local` and a server job: the
//! streaming entry points [`write_gguf`] / [`write_nf4`] read a [`ModelInput`] through any
//! `TensorSource` and write to any `Write`; `convert::to_gguf` / `to_nf4` wrap them for a
//! local directory.

mod blocks;
pub mod convert;
pub mod gguf;
pub mod half;
mod input;
mod kquants;
pub mod llama;
pub mod nf4;
pub mod nf4_double;
pub mod st_write;
pub mod stream;
pub mod tokenizer;

use std::fmt;
use std::str::FromStr;

pub use blocks::{Q4_0_BYTES, Q8_0_BYTES, QK};
pub use convert::{Options, QuantReport, TensorReport};
pub use kquants::{Q4_K_BYTES, Q6_K_BYTES, QK_K};
pub use stream::{ModelInput, write_gguf, write_nf4};

/// Why a quantisation could not be done.
#[derive(Debug, thiserror::Error)]
pub enum QuantError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unsupported(String),
    /// The tensor source failed or yielded the wrong bytes for this tensor.
    #[error("tensor `{tensor}`: {source}")]
    Source {
        tensor: String,
        #[source]
        source: Box<crate::merge::MergeError>,
    },
}

/// The ggml tensor types we write (ids from ggml.h `enum ggml_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q8_0,
    Q4K,
    Q6K,
    BF16,
}

impl GgmlType {
    pub const QUANTISED: [GgmlType; 4] =
        [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4K, GgmlType::Q6K];

    pub fn id(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q4_0 => 2,
            GgmlType::Q8_0 => 8,
            GgmlType::Q4K => 12,
            GgmlType::Q6K => 14,
            GgmlType::BF16 => 30,
        }
    }

    pub fn from_id(id: u32) -> Option<Self> {
        [
            GgmlType::F32,
            GgmlType::F16,
            GgmlType::Q4_0,
            GgmlType::Q8_0,
            GgmlType::Q4K,
            GgmlType::Q6K,
            GgmlType::BF16,
        ]
        .into_iter()
        .find(|t| t.id() == id)
    }

    pub fn name(self) -> &'static str {
        match self {
            GgmlType::F32 => "f32",
            GgmlType::F16 => "f16",
            GgmlType::Q4_0 => "q4_0",
            GgmlType::Q8_0 => "q8_0",
            GgmlType::Q4K => "q4_k",
            GgmlType::Q6K => "q6_k",
            GgmlType::BF16 => "bf16",
        }
    }

    /// Values per block.
    pub fn block_size(self) -> u64 {
        match self {
            GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => 1,
            GgmlType::Q4_0 | GgmlType::Q8_0 => QK as u64,
            GgmlType::Q4K | GgmlType::Q6K => QK_K as u64,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> u64 {
        match self {
            GgmlType::F32 => 4,
            GgmlType::F16 | GgmlType::BF16 => 2,
            GgmlType::Q4_0 => Q4_0_BYTES as u64,
            GgmlType::Q8_0 => Q8_0_BYTES as u64,
            GgmlType::Q4K => Q4_K_BYTES as u64,
            GgmlType::Q6K => Q6_K_BYTES as u64,
        }
    }

    /// Bytes of one row of `n` values (`n` a multiple of the block size).
    pub fn row_bytes(self, n: u64) -> u64 {
        n / self.block_size() * self.block_bytes()
    }

    /// llama.cpp's `general.file_type` (`enum llama_ftype`) for a file mostly of this type.
    pub fn file_type(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q4_0 => 2,
            GgmlType::Q8_0 => 7,
            GgmlType::Q4K => 14, // LLAMA_FTYPE_MOSTLY_Q4_K_S: every matrix Q4_K
            GgmlType::Q6K => 18,
            GgmlType::BF16 => 32,
        }
    }

    /// The type a matrix whose rows are `row_len` long gets when `self` was asked for:
    /// itself when the row is a multiple of its block, else Q8_0 when 32 divides the row
    /// (the next finer type that fits), else F16.
    pub fn fitting(self, row_len: u64) -> GgmlType {
        if row_len.is_multiple_of(self.block_size()) {
            self
        } else if row_len.is_multiple_of(QK as u64) {
            GgmlType::Q8_0
        } else {
            GgmlType::F16
        }
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for GgmlType {
    type Err = QuantError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            GgmlType::F32,
            GgmlType::F16,
            GgmlType::Q4_0,
            GgmlType::Q8_0,
            GgmlType::Q4K,
            GgmlType::Q6K,
            GgmlType::BF16,
        ]
        .into_iter()
        .find(|t| t.name().eq_ignore_ascii_case(s))
        .ok_or_else(|| QuantError::Unsupported(format!("unknown ggml type `{s}`")))
    }
}

/// Encode `x` (rows of `row_len`, `row_len` a multiple of the type's block) into `ty`'s bytes,
/// splitting the rows over up to `threads` threads (the bytes do not depend on the split).
pub fn encode(ty: GgmlType, x: &[f32], row_len: usize, threads: usize) -> Vec<u8> {
    let rows = x.len() / row_len.max(1);
    let threads = threads.clamp(1, rows.max(1));
    if threads == 1 || x.len() < 1 << 16 {
        let mut out = Vec::with_capacity(ty.row_bytes(x.len() as u64) as usize);
        encode_into(ty, x, &mut out);
        return out;
    }
    let per = rows.div_ceil(threads) * row_len;
    let parts: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> = x
            .chunks(per)
            .map(|chunk| {
                s.spawn(move || {
                    let mut out = Vec::with_capacity(ty.row_bytes(chunk.len() as u64) as usize);
                    encode_into(ty, chunk, &mut out);
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("encoder thread panicked"))
            .collect()
    });
    parts.concat()
}

fn encode_into(ty: GgmlType, x: &[f32], out: &mut Vec<u8>) {
    match ty {
        GgmlType::F32 => out.extend(x.iter().flat_map(|v| v.to_le_bytes())),
        GgmlType::F16 => out.extend(x.iter().flat_map(|&v| half::f32_to_f16(v).to_le_bytes())),
        GgmlType::BF16 => out.extend(x.iter().flat_map(|&v| f32_to_bf16(v).to_le_bytes())),
        GgmlType::Q8_0 => blocks::quantize_q8_0(x, out),
        GgmlType::Q4_0 => blocks::quantize_q4_0(x, out),
        GgmlType::Q4K => kquants::quantize_q4_k(x, out),
        GgmlType::Q6K => kquants::quantize_q6_k(x, out),
    }
}

/// bf16 by round to nearest even (NaN stays NaN).
fn f32_to_bf16(v: f32) -> u16 {
    let b = v.to_bits();
    if v.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// Decode `ty`'s bytes back to f32.
pub fn decode(ty: GgmlType, bytes: &[u8]) -> Vec<f32> {
    let mut out = Vec::new();
    match ty {
        GgmlType::F32 => out.extend(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        ),
        GgmlType::F16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|c| half::f16_to_f32(u16::from_le_bytes([c[0], c[1]]))),
        ),
        GgmlType::BF16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|c| half::bf16_to_f32(u16::from_le_bytes([c[0], c[1]]))),
        ),
        GgmlType::Q8_0 => blocks::dequantize_q8_0(bytes, &mut out),
        GgmlType::Q4_0 => blocks::dequantize_q4_0(bytes, &mut out),
        GgmlType::Q4K => kquants::dequantize_q4_k(bytes, &mut out),
        GgmlType::Q6K => kquants::dequantize_q6_k(bytes, &mut out),
    }
    out
}

/// Relative RMSE of `approx` against `exact`: ‖approx − exact‖₂ / ‖exact‖₂ (0 when both are
/// zero).
pub fn relative_rmse(exact: &[f32], approx: &[f32]) -> f64 {
    let (mut err, mut norm) = (0f64, 0f64);
    for (&a, &b) in exact.iter().zip(approx) {
        let d = f64::from(a) - f64::from(b);
        err += d * d;
        norm += f64::from(a) * f64::from(a);
    }
    if norm == 0.0 {
        if err == 0.0 { 0.0 } else { f64::INFINITY }
    } else {
        (err / norm).sqrt()
    }
}
