//! Classifying float values by their bits: NaN, infinity, zero, for every float dtype of
//! safetensors (the 8-bit ones too, which the `half` crate does not cover); each rule below
//! names the source it was checked against.

use super::Dtype;

/// What one value is, as far as [`super::FloatStats`] cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Nan,
    Inf,
    Zero,
    Finite,
}

/// Classifies one element, calling the sink once per value (twice for C64).
type Classify = fn(&[u8], &mut dyn FnMut(Class));

/// How a float dtype's bytes split into classified values.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    /// Bytes per element.
    pub element_bytes: usize,
    /// Classify one element; C64 yields two values (real, imaginary).
    classify: Classify,
}

impl Layout {
    /// Layout for a dtype we decode, `None` for integers, bool and F4/F6.
    pub fn of(dtype: Dtype) -> Option<Layout> {
        let (element_bytes, classify): (usize, Classify) = match dtype {
            Dtype::F16 => (2, |b, f| f(f16(u16::from_le_bytes([b[0], b[1]])))),
            Dtype::BF16 => (2, |b, f| f(bf16(u16::from_le_bytes([b[0], b[1]])))),
            Dtype::F32 => (4, |b, f| f(f32_bits(le_u32(b)))),
            Dtype::F64 => (8, |b, f| f(f64_bits(le_u64(b)))),
            Dtype::C64 => (8, |b, f| {
                f(f32_bits(le_u32(&b[..4])));
                f(f32_bits(le_u32(&b[4..])));
            }),
            Dtype::F8E5M2 => (1, |b, f| f(f8_e5m2(b[0]))),
            Dtype::F8E4M3 => (1, |b, f| f(f8_e4m3fn(b[0]))),
            Dtype::F8E4M3Fnuz | Dtype::F8E5M2Fnuz => (1, |b, f| f(f8_fnuz(b[0]))),
            Dtype::F8E8M0 => (1, |b, f| f(f8_e8m0(b[0]))),
            Dtype::Bool
            | Dtype::U8
            | Dtype::I8
            | Dtype::I16
            | Dtype::U16
            | Dtype::I32
            | Dtype::U32
            | Dtype::I64
            | Dtype::U64
            | Dtype::F4
            | Dtype::F6E2M3
            | Dtype::F6E3M2 => return None,
        };
        Some(Layout {
            element_bytes,
            classify,
        })
    }

    /// Classify every whole element of `bytes` (its length must be a multiple of
    /// `element_bytes`; a ragged tail is ignored).
    pub fn classify_all(&self, bytes: &[u8], sink: &mut dyn FnMut(Class)) {
        for element in bytes.chunks_exact(self.element_bytes) {
            (self.classify)(element, sink);
        }
    }
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn le_u64(b: &[u8]) -> u64 {
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// IEEE-style rule shared by every format with an infinity: exponent all ones means
/// infinity when the mantissa is 0, NaN otherwise; exponent and mantissa all zero is ±0.
fn ieee(bits: u64, exp_mask: u64, mant_mask: u64) -> Class {
    let (exp, mant) = (bits & exp_mask, bits & mant_mask);
    if exp == exp_mask {
        if mant == 0 { Class::Inf } else { Class::Nan }
    } else if exp == 0 && mant == 0 {
        Class::Zero
    } else {
        Class::Finite
    }
}

/// IEEE 754 binary16: 1 sign, 5 exponent (0x7C00), 10 mantissa (0x03FF) bits.
pub(crate) fn f16(bits: u16) -> Class {
    ieee(u64::from(bits), 0x7C00, 0x03FF)
}

/// bfloat16 is the top half of an IEEE binary32: 1 sign, 8 exponent (0x7F80), 7 mantissa
/// (0x007F) bits, same special values as binary32.
pub(crate) fn bf16(bits: u16) -> Class {
    ieee(u64::from(bits), 0x7F80, 0x007F)
}

/// IEEE 754 binary32: 8 exponent (0x7F80_0000), 23 mantissa bits.
fn f32_bits(bits: u32) -> Class {
    ieee(u64::from(bits), 0x7F80_0000, 0x007F_FFFF)
}

/// IEEE 754 binary64: 11 exponent, 52 mantissa bits.
fn f64_bits(bits: u64) -> Class {
    ieee(bits, 0x7FF0_0000_0000_0000, 0x000F_FFFF_FFFF_FFFF)
}

/// F8_E5M2 (S.EEEEE.MM, bias 15) follows IEEE 754 conventions: exponent 11111 is infinity
/// with mantissa 00, NaN otherwise. Source: Micikevicius et al., "FP8 Formats for Deep
/// Learning" (arXiv:2209.05433, Table 1), the paper safetensors cites for this dtype; ml_dtypes
/// `float8_e5m2` has the same encoding.
pub(crate) fn f8_e5m2(bits: u8) -> Class {
    ieee(u64::from(bits), 0x7C, 0x03)
}

/// F8_E4M3 is torch/ml_dtypes `float8_e4m3fn` (S.EEEE.MMM, bias 7): no infinity, NaN only
/// for S.1111.111 (0x7F, 0xFF), ±0 for S.0000.000. Sources: arXiv:2209.05433 Table 1 and
/// the OCP 8-bit floating point spec (E4M3); TensorFlow's `float8_e4m3fn` docs ("no
/// representation for inf, and only two NaN values: 0xFF ... and 0x7F"); CUDA
/// `__nv_fp8_e4m3` ("doesn't support Infinity. NaNs are limited to 0x7F and 0xFF").
pub(crate) fn f8_e4m3fn(bits: u8) -> Class {
    match bits & 0x7F {
        0x7F => Class::Nan,
        0x00 => Class::Zero,
        _ => Class::Finite,
    }
}

/// F8_E4M3FNUZ and F8_E5M2FNUZ ("finite, NaN, unsigned zero"): no infinity, no negative
/// zero; the single NaN is 0x80 (the pattern IEEE would use for -0), the single zero 0x00.
/// Sources: arXiv:2206.02915 (the paper safetensors cites); PyTorch
/// `c10/util/Float8_e4m3fnuz.h` / `Float8_e5m2fnuz.h` ("no infinities or negative zero, NaN
/// only when sign bit is 1, rest all 0s"); zarr-extensions `float8_e4m3fnuz` /
/// `float8_e5m2fnuz` ("NaN represented by 0b1000'0000").
pub(crate) fn f8_fnuz(bits: u8) -> Class {
    match bits {
        0x80 => Class::Nan,
        0x00 => Class::Zero,
        _ => Class::Finite,
    }
}

/// F8_E8M0 (torch `float8_e8m0fnu`): an unsigned power of two 2^(e-127) with no sign and no
/// mantissa; 0xFF is NaN, 0x00 is 2^-127 (there is no zero and no infinity). Sources: OCP
/// Microscaling Formats (MX) v1.0 spec, section 5.4.1; PyTorch `c10/util/Float8_e8m0fnu.h`
/// (`isnan()` is `x == 0b11111111`; `x == 0` converts to 2^-127; `has_infinity = false`).
pub(crate) fn f8_e8m0(bits: u8) -> Class {
    if bits == 0xFF {
        Class::Nan
    } else {
        Class::Finite
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_special_values() {
        assert_eq!(f16(0x0000), Class::Zero);
        assert_eq!(f16(0x8000), Class::Zero); // -0
        assert_eq!(f16(0x7C00), Class::Inf);
        assert_eq!(f16(0xFC00), Class::Inf);
        assert_eq!(f16(0x7E00), Class::Nan);
        assert_eq!(f16(0x7C01), Class::Nan);
        assert_eq!(f16(0x3C00), Class::Finite); // 1.0
        assert_eq!(f16(0x0001), Class::Finite); // smallest subnormal
        assert_eq!(f16(0x7BFF), Class::Finite); // 65504
    }

    #[test]
    fn bf16_agrees_with_f32_top_half() {
        // bf16 is the top 16 bits of an f32: check every pattern against f32's own rules.
        for bits in 0..=u16::MAX {
            let wide = f32::from_bits(u32::from(bits) << 16);
            let expected = if wide.is_nan() {
                Class::Nan
            } else if wide.is_infinite() {
                Class::Inf
            } else if wide == 0.0 {
                Class::Zero
            } else {
                Class::Finite
            };
            assert_eq!(bf16(bits), expected, "bf16 bits {bits:#06x}");
        }
    }

    #[test]
    fn f8_special_values() {
        assert_eq!(f8_e5m2(0x7C), Class::Inf);
        assert_eq!(f8_e5m2(0xFC), Class::Inf);
        assert_eq!(f8_e5m2(0x7D), Class::Nan);
        assert_eq!(f8_e5m2(0x80), Class::Zero);
        assert_eq!(f8_e5m2(0x7B), Class::Finite); // 57344, the largest finite

        assert_eq!(f8_e4m3fn(0x7F), Class::Nan);
        assert_eq!(f8_e4m3fn(0xFF), Class::Nan);
        assert_eq!(f8_e4m3fn(0x78), Class::Finite); // 256: exponent all ones is finite
        assert_eq!(f8_e4m3fn(0x7E), Class::Finite); // 448, the largest finite
        assert_eq!(f8_e4m3fn(0x80), Class::Zero);

        assert_eq!(f8_fnuz(0x80), Class::Nan);
        assert_eq!(f8_fnuz(0x00), Class::Zero);
        assert_eq!(f8_fnuz(0x7F), Class::Finite);
        assert_eq!(f8_fnuz(0xFF), Class::Finite);

        assert_eq!(f8_e8m0(0xFF), Class::Nan);
        assert_eq!(f8_e8m0(0x00), Class::Finite); // 2^-127, not zero
        assert_eq!(f8_e8m0(0x7F), Class::Finite); // 1.0
    }

    #[test]
    fn f16_nan_count_matches_definition() {
        // 2 signs × (2^10 - 1) non-zero mantissas with exponent all ones.
        let nans = (0..=u16::MAX).filter(|&b| f16(b) == Class::Nan).count();
        assert_eq!(nans, 2 * 1023);
        let infs = (0..=u16::MAX).filter(|&b| f16(b) == Class::Inf).count();
        assert_eq!(infs, 2);
    }
}
