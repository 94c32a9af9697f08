//! Q8_0 and Q4_0 in one pass with their error sums: each 32-value block is four AVX2
//! vectors, encoded as `blocks.rs` encodes it (the same float operations per element, so
//! the same bytes) and decoded in the registers it was encoded from, so the error report
//! costs no second pass (encode, then decode into a buffer, then compare, as the other
//! types do). The sums are those of `error_sums` in `mod.rs` over the decoded blocks, bit
//! for bit: f32 partial sums per lane over each 64 values (two blocks), gathered in f64 in
//! lane order. The scales of eight blocks are found together (one vector of maxima, one
//! division), off each block's encoding chain.
//!
//! What needs care to stay byte-identical to the scalar code (`tests` below check each on
//! edge blocks against it):
//! * a block's maximum magnitude: the scalar Q8_0 loop's running maximum restarts after a
//!   NaN, so a block holding a NaN is encoded by the scalar code; Q4_0's loop skips NaNs
//!   (their magnitudes are taken as 0 here);
//! * Q4_0's signed extreme is the first value of that magnitude, in element order;
//! * `(int8_t)` of a float is `cvttps2dq` (which gives `i32::MIN` out of range, as C on
//!   x86-64 does) and the low byte.

use std::arch::x86_64::{__m256, __m256i};

use super::blocks::{Q4_0_BYTES, Q8_0_BYTES, QK, q8_0_block};
use super::lanes::{V3, kernel};
use crate::floats::{f16_to_f32, f32_to_f16};

/// `_mm256_cmp_ps` predicates: ordered less-than / greater-or-equal / less-or-equal /
/// equal, and unordered (either is NaN).
const LT: i32 = 0x11;
const GE: i32 = 0x1d;
const LE: i32 = 0x12;
const EQ: i32 = 0x00;
const UNORD: i32 = 0x03;
/// Ordered (neither NaN); not-equal, unordered (true for NaN, as Rust's `!=`).
const ORD: i32 = 0x07;
const NEQ: i32 = 0x04;

/// Append the Q8_0 blocks of `x` to `out`; returns Σ(x̂ − x)² and Σx² as `error_sums` gives them
/// for the decoded blocks. `x.len()` a multiple of 32.
pub(crate) fn quantize_q8_0(s: V3, x: &[f32], out: &mut Vec<u8>) -> (f64, f64) {
    let at = out.len();
    out.resize(at + x.len() / QK * Q8_0_BYTES, 0);
    s.vectorize(Q8_0Lanes {
        s,
        x,
        out: &mut out[at..],
    })
}

/// [`quantize_q8_0`] for Q4_0.
pub(crate) fn quantize_q4_0(s: V3, x: &[f32], out: &mut Vec<u8>) -> (f64, f64) {
    let at = out.len();
    out.resize(at + x.len() / QK * Q4_0_BYTES, 0);
    s.vectorize(Q4_0Lanes {
        s,
        x,
        out: &mut out[at..],
    })
}

kernel!(Q8_0Lanes<'a>(s: V3, x: &'a [f32], out: &'a mut [u8]) -> (f64, f64) {
    with_sums(s, x, out, Q8_0_BYTES, q8_0_scales, q8_0)
});

kernel!(Q4_0Lanes<'a>(s: V3, x: &'a [f32], out: &'a mut [u8]) -> (f64, f64) {
    with_sums(s, x, out, Q4_0_BYTES, q4_0_scales, q4_0)
});

/// One block's four vectors.
type Block = [__m256; 4];

/// Blocks whose scales are found together: one vector of maxima, one division each.
const GROUP: usize = 8;

/// A block's scale: `d` as stored (f16 bits) and as decoded, and `id` = 1/d (0 for 0), as
/// the scalar code computes them; `scalar` for a block the scalar code encodes (Q8_0 with
/// a NaN).
#[derive(Clone, Copy, Default)]
struct Scale {
    h: u16,
    dd: f32,
    id: f32,
    scalar: bool,
}

/// Encode `x` block by block into `out` and return the error sums of `error_sums`: per 64
/// values, eight f32 lanes of Σ(x̂ − x)² and Σx² (added vector by vector, as the scalar loop
/// adds element by element), then each lane in f64. The scales of each [`GROUP`] of
/// blocks come first (`scales`, each block's from its own values only), then each block
/// is encoded and decoded (`block`) in registers.
#[inline(always)]
fn with_sums(
    s: V3,
    x: &[f32],
    out: &mut [u8],
    bytes: usize,
    scales: impl Fn(V3, &[f32], &mut [Scale; GROUP]),
    block: impl Fn(V3, &Block, Scale, &[f32], &mut [u8]) -> Block,
) -> (f64, f64) {
    let (avx, zero) = (s.avx, s.avx._mm256_setzero_ps());
    let (mut err, mut norm) = (0f64, 0f64);
    let mut sc = [Scale::default(); GROUP];
    for (group, o) in x.chunks(GROUP * QK).zip(out.chunks_mut(GROUP * bytes)) {
        scales(s, group, &mut sc);
        let mut k = 0;
        for (pair, o) in group.chunks(2 * QK).zip(o.chunks_mut(2 * bytes)) {
            let (mut e, mut m) = (zero, zero);
            for (b, o) in pair.chunks_exact(QK).zip(o.chunks_exact_mut(bytes)) {
                let v = load(b);
                let back = block(s, &v, sc[k], b, o);
                k += 1;
                for i in 0..4 {
                    let d = avx._mm256_sub_ps(back[i], v[i]);
                    e = avx._mm256_add_ps(e, avx._mm256_mul_ps(d, d));
                    m = avx._mm256_add_ps(m, avx._mm256_mul_ps(v[i], v[i]));
                }
            }
            err += lanes_in_f64(e);
            norm += lanes_in_f64(m);
        }
    }
    (err, norm)
}

/// Lane `b` of the result: the largest lane of `m[b]` (lanes of different vectors never
/// meet; for a vector without NaN the order of `max` does not matter).
#[inline(always)]
fn max_lanes(s: V3, m: &[__m256; GROUP]) -> __m256 {
    let avx = s.avx;
    // Neighbouring lanes, then pairs of those, then the two halves.
    let x01 = max_pairs(s, m[0], m[1]);
    let x23 = max_pairs(s, m[2], m[3]);
    let x45 = max_pairs(s, m[4], m[5]);
    let x67 = max_pairs(s, m[6], m[7]);
    let y0123 = max_pairs(s, x01, x23);
    let y4567 = max_pairs(s, x45, x67);
    avx._mm256_max_ps(
        avx._mm256_permute2f128_ps::<0x20>(y0123, y4567),
        avx._mm256_permute2f128_ps::<0x31>(y0123, y4567),
    )
}

/// Per 128-bit half: the maxima of `a`'s lanes 0–1 and 2–3, then of `b`'s (a plain fn, not
/// a closure, so that it inlines into the AVX2 kernel).
#[inline(always)]
fn max_pairs(s: V3, a: __m256, b: __m256) -> __m256 {
    let avx = s.avx;
    avx._mm256_max_ps(
        avx._mm256_shuffle_ps::<0x88>(a, b),
        avx._mm256_shuffle_ps::<0xdd>(a, b),
    )
}

/// The scales of the first `n` blocks from their `d` (lane `b`: block `b`'s): `id` = 1/d,
/// or 0 for d = 0, and `d` rounded to f16 and decoded back.
#[inline(always)]
fn scales_of(s: V3, d: __m256, n: usize, sc: &mut [Scale; GROUP]) {
    let avx = s.avx;
    let id = avx._mm256_div_ps(avx._mm256_set1_ps(1.0), d);
    let id = avx._mm256_and_ps(id, avx._mm256_cmp_ps::<NEQ>(d, avx._mm256_setzero_ps()));
    let (d, id): ([f32; GROUP], [f32; GROUP]) = (pulp::cast(d), pulp::cast(id));
    for b in 0..n {
        let h = f32_to_f16(d[b]);
        sc[b] = Scale {
            h,
            dd: f16_to_f32(h),
            id: id[b],
            scalar: false,
        };
    }
}

/// Q8_0 scales: d = amax / 127; a block holding a NaN is the scalar code's.
#[inline(always)]
fn q8_0_scales(s: V3, group: &[f32], sc: &mut [Scale; GROUP]) {
    let avx = s.avx;
    let sign = avx._mm256_set1_ps(-0.0);
    let mut m = [avx._mm256_setzero_ps(); GROUP];
    let mut nan = 0u32;
    for (b, x) in group.chunks_exact(QK).enumerate() {
        let v = load(x);
        let unordered = avx._mm256_or_ps(
            avx._mm256_cmp_ps::<UNORD>(v[0], v[1]),
            avx._mm256_cmp_ps::<UNORD>(v[2], v[3]),
        );
        nan |= u32::from(avx._mm256_movemask_ps(unordered) != 0) << b;
        // (A block's maximum is its lane alone in `max_lanes`: a NaN block's is not used.)
        let v01 = avx._mm256_max_ps(
            avx._mm256_andnot_ps(sign, v[0]),
            avx._mm256_andnot_ps(sign, v[1]),
        );
        let v23 = avx._mm256_max_ps(
            avx._mm256_andnot_ps(sign, v[2]),
            avx._mm256_andnot_ps(sign, v[3]),
        );
        m[b] = avx._mm256_max_ps(v01, v23);
    }
    let amax = max_lanes(s, &m);
    let n = group.len() / QK;
    scales_of(s, avx._mm256_div_ps(amax, avx._mm256_set1_ps(127.0)), n, sc);
    for (b, sc) in sc.iter_mut().enumerate().take(n) {
        sc.scalar = nan >> b & 1 != 0;
    }
}

/// Q4_0 scales: d = (the first value of the largest magnitude) / −8, NaNs skipped.
#[inline(always)]
fn q4_0_scales(s: V3, group: &[f32], sc: &mut [Scale; GROUP]) {
    let avx = s.avx;
    let sign = avx._mm256_set1_ps(-0.0);
    let mut a = [[avx._mm256_setzero_ps(); 4]; GROUP];
    let mut m = [avx._mm256_setzero_ps(); GROUP];
    for (b, x) in group.chunks_exact(QK).enumerate() {
        let v = load(x);
        for i in 0..4 {
            // |v|, 0 for NaN (the scalar loop skips a NaN: `amax < NaN` is false).
            a[b][i] = avx._mm256_and_ps(
                avx._mm256_andnot_ps(sign, v[i]),
                avx._mm256_cmp_ps::<ORD>(v[i], v[i]),
            );
        }
        m[b] = avx._mm256_max_ps(
            avx._mm256_max_ps(a[b][0], a[b][1]),
            avx._mm256_max_ps(a[b][2], a[b][3]),
        );
    }
    let amax: [f32; GROUP] = pulp::cast(max_lanes(s, &m));
    let mut max = [0f32; GROUP];
    for (b, x) in group.chunks_exact(QK).enumerate() {
        // The scalar loop keeps the first value of the largest magnitude (and 0 when every
        // magnitude is 0 or NaN).
        if amax[b] > 0.0 {
            let at = avx._mm256_set1_ps(amax[b]);
            let mut bits = 0u32;
            for (i, &a) in a[b].iter().enumerate() {
                let hit = avx._mm256_movemask_ps(avx._mm256_cmp_ps::<EQ>(a, at)) as u32;
                bits |= hit << (8 * i);
            }
            max[b] = x[bits.trailing_zeros() as usize];
        }
    }
    let d = avx._mm256_div_ps(pulp::cast(max), avx._mm256_set1_ps(-8.0));
    scales_of(s, d, group.len() / QK, sc);
}

#[inline(always)]
fn load(b: &[f32]) -> Block {
    let a: &[[f32; 8]] = pulp::as_arrays::<8, f32>(b).0;
    [
        pulp::cast(a[0]),
        pulp::cast(a[1]),
        pulp::cast(a[2]),
        pulp::cast(a[3]),
    ]
}

#[inline(always)]
fn lanes_in_f64(v: __m256) -> f64 {
    let a: [f32; 8] = pulp::cast(v);
    let mut sum = -0.0f64; // as `Iterator::sum` of f64 starts
    for l in a {
        sum += f64::from(l);
    }
    sum
}

/// `(int8_t)` lanes (the low byte, sign-extended) of i32 lanes.
#[inline(always)]
fn low_byte_signed(s: V3, v: __m256i) -> __m256i {
    let avx2 = s.avx2;
    avx2._mm256_srai_epi32::<24>(avx2._mm256_slli_epi32::<24>(v))
}

/// The low bytes of four vectors of i32 lanes (each in 0..=255), in order.
#[inline(always)]
fn pack_bytes(s: V3, r: [__m256i; 4]) -> [u8; 32] {
    let avx2 = s.avx2;
    let lo = avx2._mm256_packus_epi32(r[0], r[1]);
    let hi = avx2._mm256_packus_epi32(r[2], r[3]);
    let b = avx2._mm256_packus_epi16(lo, hi);
    let order = s.avx._mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    pulp::cast(avx2._mm256_permutevar8x32_epi32(b, order))
}

/// `round_to_i8(x)` per lane (see `blocks.rs`): truncate, then a step away from zero when
/// the remainder is at least a half; out of range (and NaN) `cvttps2dq` gives i32::MIN,
/// kept as is; then the low byte, sign-extended.
#[inline(always)]
fn round_to_i8(s: V3, x: __m256) -> __m256i {
    let (avx, avx2) = (s.avx, s.avx2);
    let magnitude = avx._mm256_andnot_ps(avx._mm256_set1_ps(-0.0), x);
    let fits = avx._mm256_cmp_ps::<LT>(magnitude, avx._mm256_set1_ps(2_147_483_648.0));
    let t = avx._mm256_cvttps_epi32(x);
    let f = avx._mm256_sub_ps(x, avx._mm256_cvtepi32_ps(t));
    let up = avx._mm256_castps_si256(avx._mm256_cmp_ps::<GE>(f, avx._mm256_set1_ps(0.5)));
    let down = avx._mm256_castps_si256(avx._mm256_cmp_ps::<LE>(f, avx._mm256_set1_ps(-0.5)));
    // Masks are −1: t + up − down is t − mask(up) + mask(down).
    let step = avx2._mm256_and_si256(
        avx2._mm256_sub_epi32(down, up),
        avx._mm256_castps_si256(fits),
    );
    low_byte_signed(s, avx2._mm256_add_epi32(t, step))
}

/// One Q8_0 block into `o`; returns its decoding.
#[inline(always)]
fn q8_0(s: V3, v: &Block, sc: Scale, x: &[f32], o: &mut [u8]) -> Block {
    let (avx, avx2) = (s.avx, s.avx2);
    if sc.scalar {
        q8_0_block(x, o);
        return decode_q8_0(o);
    }
    o[..2].copy_from_slice(&sc.h.to_le_bytes());
    let id = avx._mm256_set1_ps(sc.id);
    let r = [
        round_to_i8(s, avx._mm256_mul_ps(v[0], id)),
        round_to_i8(s, avx._mm256_mul_ps(v[1], id)),
        round_to_i8(s, avx._mm256_mul_ps(v[2], id)),
        round_to_i8(s, avx._mm256_mul_ps(v[3], id)),
    ];
    let ff = avx._mm256_set1_epi32(0xff);
    let q = pack_bytes(
        s,
        [
            avx2._mm256_and_si256(r[0], ff),
            avx2._mm256_and_si256(r[1], ff),
            avx2._mm256_and_si256(r[2], ff),
            avx2._mm256_and_si256(r[3], ff),
        ],
    );
    o[2..].copy_from_slice(&q);
    let dd = avx._mm256_set1_ps(sc.dd);
    [
        avx._mm256_mul_ps(avx._mm256_cvtepi32_ps(r[0]), dd),
        avx._mm256_mul_ps(avx._mm256_cvtepi32_ps(r[1]), dd),
        avx._mm256_mul_ps(avx._mm256_cvtepi32_ps(r[2]), dd),
        avx._mm256_mul_ps(avx._mm256_cvtepi32_ps(r[3]), dd),
    ]
}

/// A Q8_0 block's decoding (`dequantize_q8_0`).
#[inline(always)]
fn decode_q8_0(o: &[u8]) -> Block {
    let dd = f16_to_f32(u16::from_le_bytes([o[0], o[1]]));
    let mut y = [0f32; QK];
    for (y, q) in y.iter_mut().zip(&o[2..]) {
        *y = f32::from(*q as i8) * dd;
    }
    load(&y)
}

/// `MIN(15, (int8_t)(x·id + 8.5f))` per lane: the product rounded, then the sum, then
/// truncated (`cvttps2dq`, i32::MIN out of range) to the low byte.
#[inline(always)]
fn q4_level(s: V3, v: __m256, id: __m256) -> __m256i {
    let avx = s.avx;
    let t = avx
        ._mm256_cvttps_epi32(avx._mm256_add_ps(avx._mm256_mul_ps(v, id), avx._mm256_set1_ps(8.5)));
    s.avx2
        ._mm256_min_epi32(low_byte_signed(s, t), avx._mm256_set1_epi32(15))
}

/// A Q4_0 byte per lane: `lo` in the low nibble, `hi` in the high one (as u8 arithmetic).
#[inline(always)]
fn q4_byte(s: V3, lo: __m256i, hi: __m256i) -> __m256i {
    let avx2 = s.avx2;
    avx2._mm256_and_si256(
        avx2._mm256_or_si256(lo, avx2._mm256_slli_epi32::<4>(hi)),
        s.avx._mm256_set1_epi32(0xff),
    )
}

/// The decoding of a Q4_0 nibble per lane (the low four bits of `b`): (q & 15) − 8, times
/// `dd`.
#[inline(always)]
fn q4_decode(s: V3, b: __m256i, dd: __m256) -> __m256 {
    let (avx, avx2) = (s.avx, s.avx2);
    let l = avx2._mm256_sub_epi32(
        avx2._mm256_and_si256(b, avx._mm256_set1_epi32(0x0f)),
        avx._mm256_set1_epi32(8),
    );
    avx._mm256_mul_ps(avx._mm256_cvtepi32_ps(l), dd)
}

/// One Q4_0 block into `o`; returns its decoding.
#[inline(always)]
fn q4_0(s: V3, v: &Block, sc: Scale, _: &[f32], o: &mut [u8]) -> Block {
    let (avx, avx2) = (s.avx, s.avx2);
    o[..2].copy_from_slice(&sc.h.to_le_bytes());
    let id = avx._mm256_set1_ps(sc.id);
    // Byte j: element j in the low nibble, element j + 16 in the high one.
    let b0 = q4_byte(s, q4_level(s, v[0], id), q4_level(s, v[2], id));
    let b1 = q4_byte(s, q4_level(s, v[1], id), q4_level(s, v[3], id));
    let q = pack_bytes(s, [b0, b1, b0, b1]);
    o[2..].copy_from_slice(&q[..QK / 2]);
    // The decoding of those bytes.
    let dd = avx._mm256_set1_ps(sc.dd);
    [
        q4_decode(s, b0, dd),
        q4_decode(s, b1, dd),
        q4_decode(s, avx2._mm256_srli_epi32::<4>(b0), dd),
        q4_decode(s, avx2._mm256_srli_epi32::<4>(b1), dd),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::lanes::edge_blocks;
    use crate::quant::{GgmlType, decode, encode_reference, error_sums};

    fn check(ty: GgmlType, x: &[f32]) {
        let Some(s) = V3::try_new() else {
            eprintln!("no AVX2 on this CPU: the lanes are not used here");
            return;
        };
        let want = encode_reference(ty, x);
        let want_sums = error_sums(x, &decode(ty, &want));
        let mut got = Vec::new();
        let sums = match ty {
            GgmlType::Q8_0 => quantize_q8_0(s, x, &mut got),
            _ => quantize_q4_0(s, x, &mut got),
        };
        for (k, (g, w)) in got
            .chunks(ty.row_bytes(QK as u64) as usize)
            .zip(want.chunks(ty.row_bytes(QK as u64) as usize))
            .enumerate()
        {
            assert_eq!(g, w, "{ty} block {k}: {:?}", &x[k * QK..(k + 1) * QK]);
        }
        assert_eq!(got.len(), want.len());
        // Bit for bit, but for a NaN's sign (a block of infinities or NaNs makes both NaN).
        let same = |a: f64, b: f64| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
        assert!(
            same(sums.0, want_sums.0),
            "{ty} Σ(x̂ − x)²: {sums:?} vs {want_sums:?}"
        );
        assert!(
            same(sums.1, want_sums.1),
            "{ty} Σx²: {sums:?} vs {want_sums:?}"
        );
    }

    /// Blocks whose scaled values fall exactly on the rounding boundaries: Q8_0's scale is
    /// 1 with a maximum of 127, Q4_0's with a signed extreme of −8, and every half between.
    fn tie_blocks() -> Vec<[f32; QK]> {
        let halves = |i: usize| (i as f32 - 16.0) * 0.5;
        vec![
            std::array::from_fn(|i| if i == 9 { 127.0 } else { halves(i) }),
            std::array::from_fn(|i| if i == 30 { -127.0 } else { -halves(i) }),
            std::array::from_fn(halves),
            std::array::from_fn(|i| -halves(i) * 0.999_999_9),
        ]
    }

    /// Blocks the scalar code treats specially: NaN (Q8_0 carries it through its maximum,
    /// Q4_0 skips it), infinities, and a largest magnitude held by two values of opposite
    /// signs (Q4_0 keeps the first).
    fn special_blocks() -> Vec<[f32; QK]> {
        let mut out = tie_blocks();
        for at in [0, 5, 31] {
            out.push(std::array::from_fn(|i| {
                if i == at { f32::NAN } else { i as f32 - 9.0 }
            }));
            out.push(std::array::from_fn(|i| {
                if i == at {
                    f32::INFINITY
                } else {
                    0.5 - i as f32
                }
            }));
            out.push(std::array::from_fn(|i| {
                if i == at { f32::NEG_INFINITY } else { 0.0 }
            }));
        }
        out.push([f32::NAN; QK]);
        // Q8_0's running maximum restarts after a NaN: the 100 before it does not count.
        out.push(std::array::from_fn(|i| match i {
            0 => 100.0,
            2 => f32::NAN,
            _ => 0.1 * i as f32,
        }));
        // A NaN in the lane (of the four vectors) that holds the largest magnitude.
        out.push(std::array::from_fn(|i| match i {
            1 => f32::NAN,
            25 => -50.0,
            _ => i as f32 * 0.1,
        }));
        out.push(std::array::from_fn(|i| match i {
            3 => -2.0,
            20 => 2.0,
            _ => 0.1 * i as f32,
        }));
        out.push(std::array::from_fn(|i| match i {
            3 => 2.0,
            20 => -2.0,
            _ => -0.1,
        }));
        out
    }

    #[test]
    fn lanes_give_the_scalar_bytes_and_sums() {
        let mut finite: Vec<f32> = tie_blocks().concat();
        finite.extend((1..20).flat_map(|seed| edge_blocks(seed).concat()));
        let special = special_blocks().concat();
        for ty in [GgmlType::Q8_0, GgmlType::Q4_0] {
            // The sums are finite, so they are compared bit for bit; an odd number of
            // blocks makes the last pair one block.
            check(ty, &finite);
            check(ty, &finite[QK..]);
            check(ty, &special);
            check(ty, &[]);
        }
    }
}
