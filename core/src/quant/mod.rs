//! Quantisation: ggml block formats (Q8_0, Q4_0, Q4_K, Q6_K) with a GGUF v3 writer and
//! reader, and NF4 in the bitsandbytes layout. See docs/QUANTISE.md.
//!
//! Pure Rust, no dependency but `half` (f16 / bf16, through `crate::floats`): the encoders
//! are ports of ggml's reference quantisers (cited per module) so that the bytes match
//! llama.cpp's; everything streams one tensor at a time so that the same code serves
//! `adapterctl quantise --local` and a server job: the streaming entry points
//! [`write_gguf`] / [`write_nf4`] read a [`ModelInput`] through any `TensorSource` and write
//! to any `Write`; `convert::to_gguf` / `to_nf4` wrap them for a local directory.

mod blocks;
#[cfg(target_arch = "x86_64")]
mod blocks_lanes;
pub mod convert;
pub mod gguf;
mod input;
mod kquants;
#[cfg(target_arch = "x86_64")]
mod kquants_lanes;
mod lanes;
pub mod llama;
pub mod nf4;
pub mod nf4_double;
pub mod nf4_state;
mod pipeline;
mod report;
pub mod st_write;
pub mod stream;
pub mod tokenizer;

use std::fmt;
use std::str::FromStr;

use crate::floats;
use crate::safetensors::Dtype;

pub use blocks::{Q4_0_BYTES, Q8_0_BYTES, QK};
pub use kquants::{Q4_K_BYTES, Q6_K_BYTES, QK_K};
pub use report::{Options, QuantReport, TensorReport};
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
    encode_parts(ty, x, row_len, threads)
}

fn encode_parts(ty: GgmlType, x: &[f32], row_len: usize, threads: usize) -> Vec<u8> {
    let one = |chunk: &[f32]| {
        let mut out = Vec::with_capacity(ty.row_bytes(chunk.len() as u64) as usize);
        encode_into(ty, chunk, &mut out);
        out
    };
    let rows = x.len() / row_len.max(1);
    let threads = threads.clamp(1, rows.max(1));
    if threads == 1 || x.len() < 1 << 16 {
        return one(x);
    }
    let per = rows.div_ceil(threads) * row_len;
    let parts: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> = x
            .chunks(per)
            .map(|chunk| s.spawn(move || one(chunk)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("encoder thread panicked"))
            .collect()
    });
    parts.concat()
}

/// Values per piece of [`encode_chunk`]: the piece and its decoding stay in the L1/L2 cache.
const PIECE: usize = 8 << 10;

/// [`encode`] on one thread with the scalar K-quant searches (`make_qkx2_quants`,
/// `make_qx_quants` one sub-block at a time, as ggml's C) instead of the eight-lane ones: the
/// reference [`encode`] must equal byte for byte (Q8_0, Q4_0 and the float types have no
/// separate scalar path: their loops are element-wise). For tests and benchmarks.
pub fn encode_reference(ty: GgmlType, x: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    match ty {
        GgmlType::Q4K => kquants::quantize_q4_k_reference(x, &mut out),
        GgmlType::Q6K => kquants::quantize_q6_k_reference(x, &mut out),
        other => encode_into(other, x, &mut out),
    }
    out
}

/// Append the encoding of `x` (whole rows of `row_len`) to `out`; returns Σ(x̂ − x)² and Σx²
/// of the decoded encoding against `x` (several chunks' sums add up; [`ratio`] makes them
/// the relative RMSE). One pass over `x`: each piece of rows (about [`PIECE`] values) is
/// encoded, decoded and compared while it is in cache.
pub(crate) fn encode_chunk(
    ty: GgmlType,
    x: &[f32],
    row_len: usize,
    out: &mut Vec<u8>,
) -> (f64, f64) {
    let row_len = row_len.max(1);
    out.reserve(ty.row_bytes(x.len() as u64) as usize);
    let mut back = Vec::new();
    let (mut err, mut norm) = (0f64, 0f64);
    for piece in x.chunks((PIECE / row_len).max(1) * row_len) {
        let (e, n) = encode_piece(ty, piece, out, &mut back);
        err += e;
        norm += n;
    }
    (err, norm)
}

/// One piece of [`encode_chunk`]: Q8_0 and Q4_0 are encoded and compared in one pass
/// (`blocks_lanes`, AVX2); the other types are encoded, decoded into `back` and compared.
fn encode_piece(ty: GgmlType, piece: &[f32], out: &mut Vec<u8>, back: &mut Vec<f32>) -> (f64, f64) {
    #[cfg(target_arch = "x86_64")]
    if let (GgmlType::Q8_0 | GgmlType::Q4_0, Some(s)) = (ty, lanes::V3::try_new()) {
        return match ty {
            GgmlType::Q8_0 => blocks_lanes::quantize_q8_0(s, piece, out),
            _ => blocks_lanes::quantize_q4_0(s, piece, out),
        };
    }
    let at = out.len();
    encode_into(ty, piece, out);
    back.clear();
    decode_into(ty, &out[at..], back);
    lanes::vectorized(Sums {
        exact: piece,
        approx: back,
    })
}

lanes::kernel!(Sums<'a>(exact: &'a [f32], approx: &'a [f32]) -> (f64, f64) {
    error_sums(exact, approx)
});

/// √(Σ(x̂ − x)² / Σx²): the relative RMSE (0 when both are 0).
pub(crate) fn ratio(err: f64, norm: f64) -> f64 {
    if norm == 0.0 {
        if err == 0.0 { 0.0 } else { f64::INFINITY }
    } else {
        (err / norm).sqrt()
    }
}

fn encode_into(ty: GgmlType, x: &[f32], out: &mut Vec<u8>) {
    match ty {
        GgmlType::F32 => floats::encode(Dtype::F32, x, out),
        GgmlType::F16 => floats::encode(Dtype::F16, x, out),
        GgmlType::BF16 => floats::encode(Dtype::BF16, x, out),
        GgmlType::Q8_0 => blocks::quantize_q8_0(x, out),
        GgmlType::Q4_0 => blocks::quantize_q4_0(x, out),
        GgmlType::Q4K => kquants::quantize_q4_k(x, out),
        GgmlType::Q6K => kquants::quantize_q6_k(x, out),
    }
}

/// Decode `ty`'s bytes back to f32.
pub fn decode(ty: GgmlType, bytes: &[u8]) -> Vec<f32> {
    let mut out = Vec::new();
    decode_into(ty, bytes, &mut out);
    out
}

/// Append the decoding of `ty`'s bytes to `out`.
fn decode_into(ty: GgmlType, bytes: &[u8], out: &mut Vec<f32>) {
    match ty {
        GgmlType::F32 => floats::decode(Dtype::F32, bytes, out),
        GgmlType::F16 => floats::decode(Dtype::F16, bytes, out),
        GgmlType::BF16 => floats::decode(Dtype::BF16, bytes, out),
        GgmlType::Q8_0 => blocks::dequantize_q8_0(bytes, out),
        GgmlType::Q4_0 => blocks::dequantize_q4_0(bytes, out),
        GgmlType::Q4K => kquants::dequantize_q4_k(bytes, out),
        GgmlType::Q6K => kquants::dequantize_q6_k(bytes, out),
    }
}

/// Relative RMSE of `approx` against `exact`: ‖approx − exact‖₂ / ‖exact‖₂ (0 when both are
/// zero).
pub fn relative_rmse(exact: &[f32], approx: &[f32]) -> f64 {
    let (err, norm) = error_sums(exact, approx);
    ratio(err, norm)
}

/// Σ(approx − exact)² and Σexact²: f32 partial sums over 8 lanes × 64 values (which the
/// compiler vectorises), gathered in f64.
#[inline(always)]
pub(crate) fn error_sums(exact: &[f32], approx: &[f32]) -> (f64, f64) {
    let n = exact.len().min(approx.len());
    let (exact, approx) = (&exact[..n], &approx[..n]);
    let (mut err, mut norm) = (0f64, 0f64);
    for (xs, ys) in exact.chunks(64).zip(approx.chunks(64)) {
        let (mut e, mut m) = ([0f32; 8], [0f32; 8]);
        for (x8, y8) in xs.chunks(8).zip(ys.chunks(8)) {
            for ((&a, &b), (e, m)) in x8.iter().zip(y8).zip(e.iter_mut().zip(m.iter_mut())) {
                let d = b - a;
                *e += d * d;
                *m += a * a;
            }
        }
        err += e.iter().map(|&v| f64::from(v)).sum::<f64>();
        norm += m.iter().map(|&v| f64::from(v)).sum::<f64>();
    }
    (err, norm)
}

#[cfg(test)]
mod error_tests {
    use super::*;

    /// Encode `x` in `pieces` runs of whole rows, as the GGUF pipeline does: the bytes and
    /// the relative RMSE from the added sums.
    fn in_pieces(ty: GgmlType, x: &[f32], row_len: usize, pieces: usize) -> (Vec<u8>, f64) {
        let rows = x.len() / row_len;
        let (mut bytes, mut err, mut norm) = (Vec::new(), 0.0, 0.0);
        for part in x.chunks(rows.div_ceil(pieces) * row_len) {
            let (e, n) = encode_chunk(ty, part, row_len, &mut bytes);
            err += e;
            norm += n;
        }
        (bytes, ratio(err, norm))
    }

    /// The error computed while encoding (per piece, per slice) is the error of the decoded
    /// whole, and the bytes are those of `encode`.
    #[test]
    fn encode_chunk_errors_match_decode_then_compare() {
        let mut s = 7u64;
        let x: Vec<f32> = (0..512 * 300)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
            })
            .collect();
        for ty in [
            GgmlType::Q8_0,
            GgmlType::Q4_0,
            GgmlType::Q4K,
            GgmlType::Q6K,
            GgmlType::F16,
        ] {
            for pieces in [1, 3] {
                let (bytes, err) = in_pieces(ty, &x, 512, pieces);
                assert_eq!(bytes, encode(ty, &x, 512, 1), "{ty}");
                let want = relative_rmse(&x, &decode(ty, &bytes));
                assert!((err - want).abs() <= want * 1e-9, "{ty}: {err} vs {want}");
                // And the f32 partial sums agree with a plain f64 sum.
                let back = decode(ty, &bytes);
                let (e64, n64) = x.iter().zip(&back).fold((0f64, 0f64), |(e, n), (&a, &b)| {
                    let d = f64::from(b) - f64::from(a);
                    (e + d * d, n + f64::from(a) * f64::from(a))
                });
                let exact = (e64 / n64).sqrt();
                assert!(
                    (err - exact).abs() <= exact * 1e-4,
                    "{ty}: {err} vs {exact}"
                );
                assert!(err > 0.0, "{ty}");
            }
        }
        assert_eq!(in_pieces(GgmlType::Q8_0, &[0.0; 64], 32, 2).1, 0.0);
    }
}
