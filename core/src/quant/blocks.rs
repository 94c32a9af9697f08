//! Q8_0 and Q4_0: 32-value blocks, ported from ggml's reference quantisers
//! (`quantize_row_q8_0_ref`, `quantize_row_q4_0_ref` and the matching `dequantize_row_*` in
//! ggml/src/ggml-quants.c; block structs in ggml/src/ggml-common.h). Byte-identical output:
//! the same float operations in the same order, the same f16 rounding.

use super::lanes::{kernel, vectorized};
use crate::floats::{f16_to_f32, f32_to_f16};

/// Values per Q8_0 / Q4_0 block.
pub const QK: usize = 32;

/// Values per K-quant super-block (`QK_K`).
pub const QK_K: usize = 256;

/// ggml's `GROUP_MAX_EPS`: below it a K-quant group's scale search gives up (all zero).
pub(crate) const GROUP_MAX_EPS: f32 = 1e-15;
/// `block_q8_0`: `ggml_half d; int8_t qs[32];`
pub const Q8_0_BYTES: usize = 2 + QK;
/// `block_q4_0`: `ggml_half d; uint8_t qs[16];`
pub const Q4_0_BYTES: usize = 2 + QK / 2;

/// Append the Q8_0 blocks of `x` (`x.len()` a multiple of 32) to `out`.
/// d = amax / 127 (as f16), q = round(x / d), half away from zero. Compiled for the CPU's
/// widest vectors (each block's loops are element-wise: the bytes do not change).
pub fn quantize_q8_0(x: &[f32], out: &mut Vec<u8>) {
    debug_assert_eq!(x.len() % QK, 0);
    let at = out.len();
    out.resize(at + x.len() / QK * Q8_0_BYTES, 0);
    vectorized(Q8_0Blocks {
        x,
        out: &mut out[at..],
    });
}

kernel!(Q8_0Blocks<'a>(x: &'a [f32], out: &'a mut [u8]) -> () {
        for (block, o) in x.chunks_exact(QK).zip(out.chunks_exact_mut(Q8_0_BYTES)) {
            q8_0_block(block, o);
        }
});

/// One Q8_0 block (32 values) into its 34 bytes.
#[inline(always)]
pub(crate) fn q8_0_block(block: &[f32], o: &mut [u8]) {
    let mut amax = 0.0f32;
    for &v in block {
        // MAX(amax, fabsf(v))
        let a = v.abs();
        amax = if amax > a { amax } else { a };
    }
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    o[..2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
    for (q, &v) in o[2..].iter_mut().zip(block) {
        *q = round_to_i8(v * id) as u8;
    }
}

/// `(int8_t) roundf(v)` as llama.cpp's build computes it: C's `roundf` (half away from zero),
/// then the float → `int8_t` conversion of x86-64 compilers, `cvttss2si` to 32 bits (which
/// gives `i32::MIN` for NaN, infinities and values out of range) and the low byte (so 128
/// wraps to −128 and ±inf becomes 0). In-range values never meet either rule; a block of
/// subnormals does (its `1/d` is infinite), and core/tests/quant_golden.rs holds us to
/// llama.cpp's bytes there. Without a libm call and branch-free (the block loop vectorises):
/// truncate, step away from zero when the exact remainder is at least one half.
#[inline]
fn round_to_i8(v: f32) -> i8 {
    let fits = v.abs() < 2_147_483_648.0; // false for NaN
    let x = if fits { v } else { 0.0 };
    let t = x as i32; // truncates toward zero; exact: |x| < 2^31
    let f = x - t as f32; // exact: below 2^23 x has a fraction, above it is an integer
    let r = t + i32::from(f >= 0.5) - i32::from(f <= -0.5);
    c_low_byte(fits, r)
}

/// `(int8_t) x` of C on x86-64 for a float `x` already truncated toward zero by the caller's
/// `as i32` when `fits` (|x| < 2^31), else `i32::MIN`: the low byte.
#[inline]
fn c_low_byte(fits: bool, r: i32) -> i8 {
    (if fits { r } else { i32::MIN }) as i8
}

/// `(int8_t) x` of C on x86-64 (truncation toward zero, through 32 bits; see [`round_to_i8`]).
#[inline]
fn trunc_to_i8(x: f32) -> i8 {
    let fits = x.abs() < 2_147_483_648.0;
    c_low_byte(fits, if fits { x as i32 } else { 0 })
}

/// Decode Q8_0 blocks.
pub fn dequantize_q8_0(bytes: &[u8], out: &mut Vec<f32>) {
    for block in bytes.chunks_exact(Q8_0_BYTES) {
        let d = f16_to_f32(u16::from_le_bytes([block[0], block[1]]));
        out.extend(block[2..].iter().map(|&q| f32::from(q as i8) * d));
    }
}

/// Append the Q4_0 blocks of `x` (`x.len()` a multiple of 32) to `out`.
/// d = (signed value of largest magnitude) / −8; element j in the low nibble of byte j,
/// element j+16 in the high nibble.
pub fn quantize_q4_0(x: &[f32], out: &mut Vec<u8>) {
    debug_assert_eq!(x.len() % QK, 0);
    let at = out.len();
    out.resize(at + x.len() / QK * Q4_0_BYTES, 0);
    vectorized(Q4_0Blocks {
        x,
        out: &mut out[at..],
    });
}

kernel!(Q4_0Blocks<'a>(x: &'a [f32], out: &'a mut [u8]) -> () {
        for (block, o) in x.chunks_exact(QK).zip(out.chunks_exact_mut(Q4_0_BYTES)) {
            q4_0_block(block, o);
        }
});

/// One Q4_0 block (32 values) into its 18 bytes.
#[inline(always)]
fn q4_0_block(block: &[f32], o: &mut [u8]) {
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in block {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    let d = max / -8.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    // MIN(15, (int8_t)(x·id + 8.5f)), truncating toward zero: the product rounded to
    // f32, then the sum, as llama.cpp's build of the reference does (ggml-quants.c is
    // compiled without FMA; core/tests/quant_golden.rs). gguf-py instead emulates a
    // fused multiply-add (one rounding), which differs on a few blocks per million.
    let nibble = |v: f32| trunc_to_i8(v * id + 8.5).min(15) as u8;
    o[..2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
    for (j, q) in o[2..].iter_mut().enumerate() {
        *q = nibble(block[j]) | (nibble(block[QK / 2 + j]) << 4);
    }
}

/// Decode Q4_0 blocks.
pub fn dequantize_q4_0(bytes: &[u8], out: &mut Vec<f32>) {
    for block in bytes.chunks_exact(Q4_0_BYTES) {
        let d = f16_to_f32(u16::from_le_bytes([block[0], block[1]]));
        let qs = &block[2..];
        let start = out.len();
        out.resize(start + QK, 0.0);
        for (j, &q) in qs.iter().enumerate() {
            out[start + j] = f32::from((q & 0x0f) as i8 - 8) * d;
            out[start + j + QK / 2] = f32::from((q >> 4) as i8 - 8) * d;
        }
    }
}

#[cfg(test)]
mod tests {

    /// A block where `x·id + 8.5` rounded once (a fused multiply-add; gguf-py 0.17.1's
    /// `quantize(x, Q4_0)` emulates that and gives 0x98 for byte 6) and the product rounded
    /// first (llama.cpp's build: 0xa8, element 20's nibble 10 instead of 9) differ. We give
    /// llama.cpp's bytes (its own file has this block: core/tests/quant_golden.rs).
    #[test]
    fn q4_0_rounds_the_product_then_the_sum_as_llama_cpp() {
        const BITS: [u32; 32] = [
            0x3d054602, 0xbca24a03, 0xbbf34eb3, 0xbcbebe9a, 0xb9f43a67, 0xbc8b24a0, 0x3c23bd8d,
            0x3b89eac0, 0xbd021e93, 0xbc533f1a, 0x3cc41033, 0x3a9b809a, 0xbd18653d, 0x3af1f400,
            0xbd37e928, 0x3b78ec4d, 0xbd0325fb, 0xbce5824d, 0xbc68bd8d, 0x3d1e0145, 0xbc11d3c7,
            0x3bacc58d, 0x3d186078, 0x3d1683f8, 0x3d09858a, 0xbd241822, 0x3cb17960, 0x3d426fb8,
            0x3c8650b3, 0xbaf5c533, 0x3c9321ea, 0x3c8ac7fa,
        ];
        let x: Vec<f32> = BITS.iter().map(|&b| f32::from_bits(b)).collect();
        let mut out = Vec::new();
        quantize_q4_0(&x, &mut out);
        assert_eq!(
            out,
            [
                19, 158, 211, 219, 169, 28, 168, 123, 38, 39, 45, 250, 68, 8, 94, 136, 95, 87
            ]
        );
    }

    use super::{quantize_q4_0, round_to_i8};

    #[test]
    fn round_to_i8_is_roundf_then_c_s_conversion_to_int8() {
        let mut vals = vec![
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.5,
            -1.5,
            2.5,
            0.49999997,
            -0.49999997,
            126.5,
            127.49,
            127.5,
            -128.5,
            -127.5,
            1e10,
            -1e10,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            8388607.5,
        ];
        // Every value within 16 ulps of each integer and half-integer in ±260.
        for k in -520..=520 {
            let mut lo = k as f32 / 2.0;
            let mut hi = lo;
            for _ in 0..16 {
                lo = lo.next_down();
                hi = hi.next_up();
                vals.extend([lo, hi]);
            }
        }
        // And a pseudo-random sweep of the range.
        let mut s = 0x9e37_79b9u32;
        for _ in 0..200_000 {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            vals.push((s as f32 / u32::MAX as f32 - 0.5) * 300.0);
        }
        for v in vals {
            // roundf, then cvttss2si (i32::MIN out of range) and the low byte.
            let r = v.round();
            let want = if r.abs() < 2_147_483_648.0 {
                r as i32
            } else {
                i32::MIN
            } as i8;
            assert_eq!(round_to_i8(v), want, "{v:e}");
        }
        assert_eq!(round_to_i8(127.5), -128);
        assert_eq!(round_to_i8(f32::INFINITY), 0);
        assert_eq!(round_to_i8(-1e10), 0);
    }
}
