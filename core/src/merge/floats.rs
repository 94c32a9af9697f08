//! Exact conversions between the float dtypes a merge computes with: bf16 and f16 widen to
//! f32 exactly; f32 narrows with IEEE 754 round-to-nearest-even (ties to the even
//! significand), overflow to infinity, NaN kept NaN. No float crate: the rules are short and
//! tested exhaustively (`tests` below and `core/tests/merge_floats.rs`).

use crate::safetensors::Dtype;

/// bf16 is the top half of an f32: widening is a shift.
pub fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

/// f32 → bf16, round to nearest even; a NaN stays a (quiet) NaN with its sign.
pub fn f32_to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x0040) as u16;
    }
    let rounded = b.wrapping_add(0x7FFF + ((b >> 16) & 1));
    (rounded >> 16) as u16
}

/// IEEE binary16 → f32, exact (every f16 value, subnormals included, is an f32).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h & 0x8000) << 16;
    let exp = u32::from((h >> 10) & 0x1F);
    let mant = u32::from(h & 0x03FF);
    match exp {
        0 => {
            // Subnormal (or zero): mant · 2^-24, exact in f32.
            #[allow(clippy::cast_precision_loss)] // mant < 2^10
            let v = mant as f32 * f32::from_bits(0x3380_0000);
            f32::from_bits(sign | v.to_bits())
        }
        31 => f32::from_bits(sign | 0x7F80_0000 | (mant << 13)),
        _ => f32::from_bits(sign | ((exp + 112) << 23) | (mant << 13)),
    }
}

/// f32 → IEEE binary16, round to nearest even, overflow to ±infinity, underflow through
/// the subnormals to ±0; a NaN stays a quiet NaN.
pub fn f32_to_f16(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xFF) as i32;
    let mant = b & 0x007F_FFFF;
    if exp == 0xFF {
        let nan = if mant == 0 {
            0
        } else {
            0x0200 | (mant >> 13) as u16
        };
        return sign | 0x7C00 | nan;
    }
    let e = exp - 127 + 15;
    if e >= 31 {
        return sign | 0x7C00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        // In units of 2^-24 the value is m · 2^(exp - 126): shift right by 14 - e.
        let m = mant | 0x0080_0000;
        let shift = (14 - e) as u32;
        let q = m >> shift;
        let rem = m & ((1 << shift) - 1);
        let halfway = 1 << (shift - 1);
        let r = if rem > halfway || (rem == halfway && q & 1 == 1) {
            q + 1
        } else {
            q
        };
        // A carry into bit 10 is the smallest normal: the encoding is continuous.
        return sign | r as u16;
    }
    let q = ((e as u32) << 10) | (mant >> 13);
    let rem = mant & 0x1FFF;
    let r = if rem > 0x1000 || (rem == 0x1000 && q & 1 == 1) {
        q + 1
    } else {
        q
    };
    // A carry out of the mantissa bumps the exponent; into 31 it is infinity, as it should.
    sign | r as u16
}

/// The dtypes a merge decodes and encodes.
pub fn is_supported(dtype: Dtype) -> bool {
    matches!(dtype, Dtype::F16 | Dtype::BF16 | Dtype::F32)
}

/// Bytes per element of a supported dtype.
pub fn width(dtype: Dtype) -> usize {
    if dtype == Dtype::F32 { 4 } else { 2 }
}

/// Append the values of `bytes` (little-endian `dtype`, whole elements) to `out` as f32.
/// `dtype` must be [`is_supported`].
pub fn decode(dtype: Dtype, bytes: &[u8], out: &mut Vec<f32>) {
    match dtype {
        Dtype::F32 => out.extend(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        ),
        Dtype::BF16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|c| bf16_to_f32(u16::from_le_bytes([c[0], c[1]]))),
        ),
        Dtype::F16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]]))),
        ),
        other => unreachable!("decode of unsupported dtype {other:?}"),
    }
}

/// Append `values` rounded once to `dtype` (little-endian) to `out`.
pub fn encode(dtype: Dtype, values: &[f32], out: &mut Vec<u8>) {
    out.reserve(values.len() * width(dtype));
    match dtype {
        Dtype::F32 => values
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        Dtype::BF16 => values
            .iter()
            .for_each(|v| out.extend_from_slice(&f32_to_bf16(*v).to_le_bytes())),
        Dtype::F16 => values
            .iter()
            .for_each(|v| out.extend_from_slice(&f32_to_f16(*v).to_le_bytes())),
        other => unreachable!("encode of unsupported dtype {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_round_trips_every_value() {
        for h in 0..=u16::MAX {
            let x = f16_to_f32(h);
            if x.is_nan() {
                assert!(f16_to_f32(f32_to_f16(x)).is_nan());
            } else {
                assert_eq!(f32_to_f16(x), h, "{h:#06x}");
            }
        }
    }

    #[test]
    fn bf16_round_trips_every_value() {
        for h in 0..=u16::MAX {
            let x = bf16_to_f32(h);
            if x.is_nan() {
                assert!(bf16_to_f32(f32_to_bf16(x)).is_nan());
            } else {
                assert_eq!(f32_to_bf16(x), h, "{h:#06x}");
            }
        }
    }

    /// Midpoints between neighbours go to the even one; just above or below go to the
    /// nearer one. Checked against f64 arithmetic for every positive finite f16.
    #[test]
    fn f16_ties_go_to_even() {
        for h in 0..0x7BFFu16 {
            let (lo, hi) = (f64::from(f16_to_f32(h)), f64::from(f16_to_f32(h + 1)));
            #[allow(clippy::cast_possible_truncation)]
            let mid = ((lo + hi) / 2.0) as f32; // exact: f16 midpoints fit in f32
            let even = if h & 1 == 0 { h } else { h + 1 };
            assert_eq!(f32_to_f16(mid), even, "tie above {h:#06x}");
            assert_eq!(f32_to_f16(f32::from_bits(mid.to_bits() - 1)), h);
            assert_eq!(f32_to_f16(f32::from_bits(mid.to_bits() + 1)), h + 1);
        }
        assert_eq!(
            f32_to_f16(65520.0),
            0x7C00,
            "half-way above 65504 overflows"
        );
        assert_eq!(f32_to_f16(65519.99), 0x7BFF);
        assert_eq!(f32_to_f16(-1e9), 0xFC00);
        assert_eq!(
            f32_to_f16(f32::from_bits(0x3300_0000)),
            0,
            "2^-25 ties to 0"
        );
        assert_eq!(f32_to_f16(f32::from_bits(0x3300_0001)), 1);
    }

    #[test]
    fn bf16_ties_go_to_even() {
        for h in 0..0x7F7Fu16 {
            let (lo, hi) = (bf16_to_f32(h), bf16_to_f32(h + 1));
            let mid = f32::from_bits((lo.to_bits() + hi.to_bits()) / 2);
            let even = if h & 1 == 0 { h } else { h + 1 };
            assert_eq!(f32_to_bf16(mid), even, "tie above {h:#06x}");
            assert_eq!(f32_to_bf16(f32::from_bits(mid.to_bits() - 1)), h);
            assert_eq!(f32_to_bf16(f32::from_bits(mid.to_bits() + 1)), h + 1);
        }
        assert_eq!(f32_to_bf16(f32::MAX), 0x7F80, "rounds up to infinity");
    }
}
