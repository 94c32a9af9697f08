//! Q8_0 and Q4_0: 32-value blocks, ported from ggml's reference quantisers
//! (`quantize_row_q8_0_ref`, `quantize_row_q4_0_ref` and the matching `dequantize_row_*` in
//! ggml/src/ggml-quants.c; block structs in ggml/src/ggml-common.h). Byte-identical output:
//! the same float operations in the same order, the same f16 rounding.

use super::half::{f16_to_f32, f32_to_f16};

/// Values per Q8_0 / Q4_0 block.
pub const QK: usize = 32;
/// `block_q8_0`: `ggml_half d; int8_t qs[32];`
pub const Q8_0_BYTES: usize = 2 + QK;
/// `block_q4_0`: `ggml_half d; uint8_t qs[16];`
pub const Q4_0_BYTES: usize = 2 + QK / 2;

/// Append the Q8_0 blocks of `x` (`x.len()` a multiple of 32) to `out`.
/// d = amax / 127 (as f16), q = round(x / d), half away from zero.
pub fn quantize_q8_0(x: &[f32], out: &mut Vec<u8>) {
    debug_assert_eq!(x.len() % QK, 0);
    for block in x.chunks_exact(QK) {
        let mut amax = 0.0f32;
        for &v in block {
            // MAX(amax, fabsf(v))
            let a = v.abs();
            amax = if amax > a { amax } else { a };
        }
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&f32_to_f16(d).to_le_bytes());
        out.extend(block.iter().map(|&v| (v * id).round() as i8 as u8));
    }
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
    for block in x.chunks_exact(QK) {
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
        out.extend_from_slice(&f32_to_f16(d).to_le_bytes());
        for j in 0..QK / 2 {
            let x0 = block[j] * id;
            let x1 = block[QK / 2 + j] * id;
            // MIN(15, (int8_t)(x + 8.5f)): C truncates toward zero.
            let q0 = ((x0 + 8.5) as i8).min(15) as u8;
            let q1 = ((x1 + 8.5) as i8).min(15) as u8;
            out.push(q0 | (q1 << 4));
        }
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
