//! f32 ↔ the 16-bit float dtypes (IEEE binary16 `F16`, bfloat16 `BF16`), through the `half`
//! crate, for every part of this crate that converts them (the merge, the quantisers).
//!
//! Widening is exact. Narrowing rounds to nearest, ties to even, overflows to ±infinity and
//! underflows through the subnormals to ±0. A NaN stays a NaN of the same sign and comes out
//! quiet (top mantissa bit set, as the F16C instructions do): widening keeps its whole
//! payload, narrowing the payload's top bits. The slice conversions use `half`'s, which run
//! on the CPU's F16C instructions when it has them, a block at a time through a buffer on
//! the stack (the bytes are little-endian).

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

use crate::safetensors::Dtype;

/// Values per step of the slice conversions (the stack buffer: 1 KiB).
const BLOCK: usize = 512;

// The scalar f16 conversions use `half`'s software rules (the `_const` functions: inlined, no
// CPU feature check per call), which give the F16C instructions' bits: the quantisers call
// them once per block inside their block loops.

/// IEEE binary16 bits → f32 (exact).
#[inline]
pub fn f16_to_f32(bits: u16) -> f32 {
    f16::from_bits(bits).to_f32_const()
}

/// f32 → IEEE binary16 bits, round to nearest even.
#[inline]
pub fn f32_to_f16(x: f32) -> u16 {
    f16::from_f32_const(x).to_bits()
}

/// bfloat16 bits → f32 (exact).
#[inline]
pub fn bf16_to_f32(bits: u16) -> f32 {
    bf16::from_bits(bits).to_f32()
}

/// f32 → bfloat16 bits, round to nearest even.
#[inline]
pub fn f32_to_bf16(x: f32) -> u16 {
    bf16::from_f32(x).to_bits()
}

/// Bytes per value of the float dtypes converted here (F32, F16, BF16); `None` for others.
pub fn width(dtype: Dtype) -> Option<usize> {
    match dtype {
        Dtype::F32 => Some(4),
        Dtype::F16 | Dtype::BF16 => Some(2),
        _ => None,
    }
}

/// Append the values of `bytes` (little-endian `dtype`, whole values) to `out` as f32.
///
/// # Panics
/// When `dtype` has no [`width`].
pub fn decode(dtype: Dtype, bytes: &[u8], out: &mut Vec<f32>) {
    let width = width(dtype).unwrap_or_else(|| unreachable!("decode of {dtype:?}"));
    let at = out.len();
    out.resize(at + bytes.len() / width, 0.0);
    decode_slice(dtype, bytes, &mut out[at..]);
}

/// Decode little-endian `dtype` values from `bytes` into `out`, as many as both hold.
///
/// # Panics
/// When `dtype` has no [`width`].
pub fn decode_slice(dtype: Dtype, bytes: &[u8], out: &mut [f32]) {
    match dtype {
        Dtype::F32 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        Dtype::F16 => widen(bytes, out, f16::from_le_bytes),
        Dtype::BF16 => widen(bytes, out, bf16::from_le_bytes),
        other => unreachable!("decode of {other:?}"),
    }
}

/// Append `values` rounded once to `dtype` (little-endian) to `out`.
///
/// # Panics
/// When `dtype` has no [`width`].
pub fn encode(dtype: Dtype, values: &[f32], out: &mut Vec<u8>) {
    let width = width(dtype).unwrap_or_else(|| unreachable!("encode of {dtype:?}"));
    let at = out.len();
    out.resize(at + values.len() * width, 0);
    let out = &mut out[at..];
    match dtype {
        Dtype::F32 => {
            for (c, v) in out.chunks_exact_mut(4).zip(values) {
                c.copy_from_slice(&v.to_le_bytes());
            }
        }
        Dtype::F16 => narrow(values, out, f16::to_le_bytes),
        Dtype::BF16 => narrow(values, out, bf16::to_le_bytes),
        other => unreachable!("encode of {other:?}"),
    }
}

/// 16-bit values from `bytes` into `out` (as many as both hold), through `half`'s slice
/// conversion.
fn widen<T>(bytes: &[u8], out: &mut [f32], from_le: fn([u8; 2]) -> T)
where
    T: Copy + Default,
    [T]: HalfFloatSliceExt,
{
    let n = out.len().min(bytes.len() / 2);
    let mut buf = [T::default(); BLOCK];
    for (o, b) in out[..n].chunks_mut(BLOCK).zip(bytes.chunks(2 * BLOCK)) {
        let buf = &mut buf[..o.len()];
        for (h, c) in buf.iter_mut().zip(b.chunks_exact(2)) {
            *h = from_le([c[0], c[1]]);
        }
        buf.convert_to_f32_slice(o);
    }
}

/// `values` rounded to 16-bit values into `out` (two bytes each), through `half`'s slice
/// conversion.
fn narrow<T>(values: &[f32], out: &mut [u8], to_le: fn(T) -> [u8; 2])
where
    T: Copy + Default,
    [T]: HalfFloatSliceExt,
{
    let mut buf = [T::default(); BLOCK];
    for (v, o) in values.chunks(BLOCK).zip(out.chunks_mut(2 * BLOCK)) {
        let buf = &mut buf[..v.len()];
        buf.convert_from_f32_slice(v);
        for (c, &h) in o.chunks_exact_mut(2).zip(buf.iter()) {
            c.copy_from_slice(&to_le(h));
        }
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
        // 1 + 2^-11 lies halfway between 1.0 (0x3c00) and 0x3c01: even wins; 1 + 3·2^-11
        // between 0x3c01 and 0x3c02: even (0x3c02) wins.
        assert_eq!(f32_to_f16(1.0 + 2f32.powi(-11)), 0x3C00);
        assert_eq!(f32_to_f16(1.0 + 3.0 * 2f32.powi(-11)), 0x3C02);
        assert_eq!(f32_to_f16(2f32.powi(-25) * 1.5), 0x0001);
        assert_eq!(f32_to_f16(-0.0), 0x8000);
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

    /// The rules this crate kept before it used `half` (its own shifts and masks, kept here
    /// as the reference): narrowing must give the same bits for every input.
    fn reference_f32_to_f16(x: f32) -> u16 {
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
            let m = mant | 0x0080_0000;
            let shift = (14 - e) as u32;
            let (q, rem, halfway) = (m >> shift, m & ((1 << shift) - 1), 1 << (shift - 1));
            return sign | (q + u32::from(rem > halfway || (rem == halfway && q & 1 == 1))) as u16;
        }
        let q = ((e as u32) << 10) | (mant >> 13);
        let rem = mant & 0x1FFF;
        sign | (q + u32::from(rem > 0x1000 || (rem == 0x1000 && q & 1 == 1))) as u16
    }

    fn reference_f32_to_bf16(x: f32) -> u16 {
        let b = x.to_bits();
        if x.is_nan() {
            return ((b >> 16) | 0x0040) as u16;
        }
        (b.wrapping_add(0x7FFF + ((b >> 16) & 1)) >> 16) as u16
    }

    /// Edge cases of every kind of f32 (zeros, the subnormals of both formats and their
    /// boundaries, every f16 and bf16 value and the f32s next to them, ties, overflow,
    /// infinities, quiet and signalling NaNs of both signs), scalar and through the slice
    /// conversions, against the reference rules.
    #[test]
    fn narrowing_matches_the_reference_bit_for_bit() {
        let mut xs: Vec<f32> = Vec::new();
        for h in 0..=u16::MAX {
            for wide in [f16_to_f32(h), f32::from_bits(u32::from(h) << 16)] {
                let b = wide.to_bits();
                xs.extend([b.wrapping_sub(1), b, b.wrapping_add(1)].map(f32::from_bits));
                // Halfway to the next f16 (bit 12) and the next bf16 (bit 15), and past it.
                xs.extend([b | 0x1000, b | 0x1001, b | 0x8000, b | 0x8001].map(f32::from_bits));
            }
        }
        for bits in [
            0x7F80_0001u32, // signalling NaN, smallest payload
            0x7FA0_0000,    // signalling NaN
            0xFF80_2000,    // negative signalling NaN
            0x7FC0_0000,    // quiet NaN
            0xFFFF_FFFF,    // negative quiet NaN, full payload
            0x7F7F_FFFF,    // f32::MAX
            0x0000_0001,    // smallest f32 subnormal
            0x3300_0000,    // 2^-25
            0x3380_0000,    // 2^-24, smallest f16 subnormal
            0x387F_E000,    // just under the smallest f16 normal
            0x477F_F000,    // 65520: rounds to infinity
        ] {
            xs.extend([bits, bits ^ 0x8000_0000].map(f32::from_bits));
        }
        let (mut halves, mut bhalves) = (Vec::new(), Vec::new());
        encode(Dtype::F16, &xs, &mut halves);
        encode(Dtype::BF16, &xs, &mut bhalves);
        for (i, &x) in xs.iter().enumerate() {
            let (want, bwant) = (reference_f32_to_f16(x), reference_f32_to_bf16(x));
            let bits = x.to_bits();
            assert_eq!(f32_to_f16(x), want, "f16 of {bits:#010x}");
            assert_eq!(f32_to_bf16(x), bwant, "bf16 of {bits:#010x}");
            let at = 2 * i;
            assert_eq!(
                halves[at..at + 2],
                want.to_le_bytes(),
                "f16 slice {bits:#010x}"
            );
            assert_eq!(
                bhalves[at..at + 2],
                bwant.to_le_bytes(),
                "bf16 slice {bits:#010x}"
            );
        }
    }

    /// Widening is exact: every f16 and bf16 value, scalar and through the slice conversion,
    /// equals the value its bits denote; a NaN keeps its sign and payload and comes out quiet.
    #[test]
    fn widening_is_exact_and_nan_keeps_sign_and_payload() {
        let bytes: Vec<u8> = (0..=u16::MAX).flat_map(u16::to_le_bytes).collect();
        let (mut wide16, mut wide_b) = (Vec::new(), Vec::new());
        decode(Dtype::F16, &bytes, &mut wide16);
        decode(Dtype::BF16, &bytes, &mut wide_b);
        for h in 0..=u16::MAX {
            let (x, xb) = (f16_to_f32(h), bf16_to_f32(h));
            assert_eq!(x.to_bits(), wide16[usize::from(h)].to_bits(), "{h:#06x}");
            assert_eq!(xb.to_bits(), wide_b[usize::from(h)].to_bits(), "{h:#06x}");
            let sign = u32::from(h & 0x8000) << 16;
            let (exp, mant) = (u32::from((h >> 10) & 0x1F), u32::from(h & 0x03FF));
            let want = match exp {
                // Subnormal (or zero): mant · 2^-24.
                #[allow(clippy::cast_precision_loss)] // mant < 2^10
                0 => f32::from_bits(sign | (mant as f32 * f32::from_bits(0x3380_0000)).to_bits()),
                31 if mant != 0 => f32::from_bits(sign | 0x7FC0_0000 | (mant << 13)),
                31 => f32::from_bits(sign | 0x7F80_0000),
                _ => f32::from_bits(sign | ((exp + 112) << 23) | (mant << 13)),
            };
            assert_eq!(x.to_bits(), want.to_bits(), "f16 {h:#06x}");
            let top = u32::from(h) << 16;
            let bwant = if xb.is_nan() { top | 0x0040_0000 } else { top };
            assert_eq!(xb.to_bits(), bwant, "bf16 {h:#06x}");
        }
    }

    /// Slices of every length around the block size, and a ragged tail of bytes, convert
    /// value for value like the scalars.
    #[test]
    fn slices_of_any_length_match_the_scalars() {
        for n in [0, 1, 7, 8, 9, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 5] {
            #[allow(clippy::cast_precision_loss)]
            let xs: Vec<f32> = (0..n).map(|i| (i as f32 - 300.0) * 0.37).collect();
            for dtype in [Dtype::F32, Dtype::F16, Dtype::BF16] {
                let mut bytes = vec![0xAB];
                encode(dtype, &xs, &mut bytes);
                let w = width(dtype).unwrap();
                assert_eq!(bytes.len(), 1 + n * w);
                let mut back = vec![1.0];
                decode(dtype, &bytes[1..], &mut back);
                assert_eq!(back.len(), 1 + n);
                for (i, &x) in xs.iter().enumerate() {
                    let want = match dtype {
                        Dtype::F16 => f16_to_f32(f32_to_f16(x)),
                        Dtype::BF16 => bf16_to_f32(f32_to_bf16(x)),
                        _ => x,
                    };
                    assert_eq!(back[1 + i].to_bits(), want.to_bits(), "{dtype:?} #{i}");
                }
                // A ragged last value is ignored.
                let mut short = Vec::new();
                decode(
                    dtype,
                    &bytes[1..(1 + n * w).saturating_sub(1).max(1)],
                    &mut short,
                );
                assert_eq!(short.len(), n.saturating_sub(1));
            }
        }
    }
}
