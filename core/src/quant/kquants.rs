//! Q4_K and Q6_K: 256-value super-blocks, ported from ggml's reference quantisers
//! (`quantize_row_q4_K_ref`, `quantize_row_q6_K_ref`, their helpers `make_qkx2_quants`,
//! `make_qx_quants`, `nearest_int`, `get_scale_min_k4`, and `dequantize_row_q4_K` /
//! `dequantize_row_q6_K` in ggml/src/ggml-quants.c; `block_q4_K` / `block_q6_K` in
//! ggml/src/ggml-common.h). Same float operations in the same order. A C compiler allowed to
//! contract `a*b + c` into FMA may differ from these bytes in rare last-bit cases.

use super::blocks::GROUP_MAX_EPS;
#[cfg(target_arch = "x86_64")]
pub use super::blocks::QK_K;
use super::kquants_lanes;
#[cfg(target_arch = "x86_64")]
use super::lanes::{V3, kernel};
use crate::floats::{f16_to_f32, f32_to_f16};

/// ggml's `nearest_int`: round to nearest, ties to even, for |x| ≤ 4194303 (the 1.5·2^23
/// trick of ggml-quants.c).
#[inline]
pub(crate) fn nearest_int(x: f32) -> i32 {
    let val = x + 12_582_912.0;
    (val.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// `block_q4_K`: `ggml_half d, dmin; uint8_t scales[12]; uint8_t qs[128];`
pub const Q4_K_BYTES: usize = 2 + 2 + 12 + QK_K / 2;
/// `block_q6_K`: `uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; ggml_half d;`
pub const Q6_K_BYTES: usize = QK_K / 2 + QK_K / 4 + QK_K / 16 + 2;

#[allow(clippy::too_many_arguments)]
fn make_qkx2_quants(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    l_out: &mut [u8],
    laux: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    use_mad: bool,
) -> (f32, f32) {
    let n = x.len();
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l_out.fill(0);
        return (0.0, -min);
    }
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for i in 0..n {
        let l = nearest_int(iscale * (x[i] - min));
        l_out[i] = l.clamp(0, nmax) as u8;
        let mut diff = scale * f32::from(l_out[i]) + min - x[i];
        diff = if use_mad { diff.abs() } else { diff * diff };
        best_error += weights[i] * diff;
    }
    if nstep < 1 {
        return (scale, -min);
    }
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            laux[i] = l as u8;
            let w = weights[i];
            let lf = l as f32;
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * x[i];
        }
        let d = sum_w * sum_l2 - sum_l * sum_l;
        if d > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / d;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / d;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0.0f32;
            for i in 0..n {
                let mut diff = this_scale * f32::from(laux[i]) + this_min - x[i];
                diff = if use_mad { diff.abs() } else { diff * diff };
                cur_error += weights[i] * diff;
            }
            if cur_error < best_error {
                l_out[..n].copy_from_slice(&laux[..n]);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// `make_qx_quants` with `rmse_type == 1` and no importance weights (the Q6_K reference).
fn make_qx_quants_rmse1(nmax: i32, x: &[f32], l_out: &mut [i8]) -> f32 {
    let n = x.len();
    let mut max = 0.0f32;
    let mut amax = 0.0f32;
    for &v in x {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l_out[..n].fill(0);
        return 0.0;
    }
    let mut iscale = -(nmax as f32) / max;
    let mut sumlx = 0.0f32;
    let mut suml2 = 0.0f32;
    for i in 0..n {
        let l = nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1);
        l_out[i] = (l + nmax) as i8;
        let w = x[i] * x[i];
        let lf = l as f32;
        sumlx += w * x[i] * lf;
        suml2 += w * lf * lf;
    }
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        sumlx = 0.0;
        suml2 = 0.0;
        for &xi in x {
            let l = nearest_int(iscale * xi).clamp(-nmax, nmax - 1);
            let w = xi * xi;
            let lf = l as f32;
            sumlx += w * xi * lf;
            suml2 += w * lf * lf;
        }
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for i in 0..n {
                let l = nearest_int(iscale * x[i]);
                l_out[i] = (nmax + l.clamp(-nmax, nmax - 1)) as i8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

fn get_scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// The scalar Q4_K search of one super-block (`x`: 256 values), `quantize_row_q4_K_ref`'s
/// first loop: per sub-block of 32 its scale and min (`make_qkx2_quants`, weights
/// av_x + |x|) and its levels in `l`. The reference for `kquants_lanes::search_q4_k`.
pub(crate) fn search_q4_k(
    x: &[f32],
    l: &mut [u8; QK_K],
    scales: &mut [f32; QK_K / 32],
    mins: &mut [f32; QK_K / 32],
) {
    let mut laux = [0u8; 32];
    let mut weights = [0f32; 32];
    for j in 0..QK_K / 32 {
        let xs = &x[32 * j..32 * j + 32];
        let mut sum_x2 = 0.0f32;
        for &v in xs {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        for (w, &v) in weights.iter_mut().zip(xs) {
            *w = av_x + v.abs();
        }
        let (s, m) = make_qkx2_quants(
            15,
            xs,
            &weights,
            &mut l[32 * j..32 * j + 32],
            &mut laux,
            -1.0,
            0.1,
            20,
            false,
        );
        scales[j] = s;
        mins[j] = m;
    }
}

/// Append the Q4_K super-blocks of `x` (`x.len()` a multiple of 256) to `out`, the scale
/// searches eight sub-blocks at a time (`kquants_lanes`) on the CPU's widest vectors.
pub fn quantize_q4_k(x: &[f32], out: &mut Vec<u8>) {
    debug_assert_eq!(x.len() % QK_K, 0);
    #[cfg(target_arch = "x86_64")]
    if let Some(s) = V3::try_new() {
        return s.vectorize(Q4KLanes { s, x, out });
    }
    quantize_q4_k_with::<Scalar>(NoToken, x, out);
}

#[cfg(target_arch = "x86_64")]
kernel!(Q4KLanes<'a>(s: V3, x: &'a [f32], out: &'a mut Vec<u8>) -> () {
    quantize_q4_k_with::<Lanes>(s, x, out);
});

/// [`quantize_q4_k`] with the scalar search: the reference.
pub fn quantize_q4_k_reference(x: &[f32], out: &mut Vec<u8>) {
    quantize_q4_k_with::<Scalar>(NoToken, x, out);
}

/// Where the super-block searches come from: the lanes (eight sub-blocks per vector) or the
/// scalar reference (static calls, so that the lanes inline into a vectorised kernel).
trait Search {
    /// What the search needs to run (the AVX2 token for the lanes).
    type Token: Copy;
    fn q4_k(t: Self::Token, x: &[f32], l: &mut [u8; QK_K], sc: &mut [f32; 8], m: &mut [f32; 8]);
    fn q6_k(t: Self::Token, x: &[f32], l: &mut [i8; QK_K], sc: &mut [f32; QK_K / 16]);
}

#[cfg(target_arch = "x86_64")]
struct Lanes;

#[cfg(target_arch = "x86_64")]
impl Search for Lanes {
    type Token = V3;
    #[inline(always)]
    fn q4_k(s: V3, x: &[f32], l: &mut [u8; QK_K], sc: &mut [f32; 8], m: &mut [f32; 8]) {
        kquants_lanes::search_q4_k(s, x, l, sc, m);
    }
    #[inline(always)]
    fn q6_k(s: V3, x: &[f32], l: &mut [i8; QK_K], sc: &mut [f32; QK_K / 16]) {
        kquants_lanes::search_q6_k(s, x, l, sc);
    }
}

struct Scalar;

#[derive(Clone, Copy)]
struct NoToken;

impl Search for Scalar {
    type Token = NoToken;
    fn q4_k(_: NoToken, x: &[f32], l: &mut [u8; QK_K], sc: &mut [f32; 8], m: &mut [f32; 8]) {
        search_q4_k(x, l, sc, m);
    }
    fn q6_k(_: NoToken, x: &[f32], l: &mut [i8; QK_K], sc: &mut [f32; QK_K / 16]) {
        search_q6_k(x, l, sc);
    }
}

#[inline(always)]
fn quantize_q4_k_with<S: Search>(t: S::Token, x: &[f32], out: &mut Vec<u8>) {
    let mut l = [0u8; QK_K];
    let mut mins = [0f32; QK_K / 32];
    let mut scales = [0f32; QK_K / 32];
    out.reserve(x.len() / QK_K * Q4_K_BYTES);
    for x in x.chunks_exact(QK_K) {
        S::q4_k(t, x, &mut l, &mut scales, &mut mins);
        let mut max_scale = 0.0f32;
        let mut max_min = 0.0f32;
        for j in 0..QK_K / 32 {
            if scales[j] > max_scale {
                max_scale = scales[j];
            }
            if mins[j] > max_min {
                max_min = mins[j];
            }
        }
        let inv_scale = if max_scale > 0.0 {
            63.0 / max_scale
        } else {
            0.0
        };
        let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
        let mut sc = [0u8; 12];
        for j in 0..QK_K / 32 {
            let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
            let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
            if j < 4 {
                sc[j] = ls;
                sc[j + 4] = lm;
            } else {
                sc[j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
                sc[j - 4] |= (ls >> 4) << 6;
                sc[j] |= (lm >> 4) << 6;
            }
        }
        let d16 = f32_to_f16(max_scale / 63.0);
        let dmin16 = f32_to_f16(max_min / 63.0);
        for j in 0..QK_K / 32 {
            let (s, m) = get_scale_min_k4(j, &sc);
            let d = f16_to_f32(d16) * f32::from(s);
            if d == 0.0 {
                continue;
            }
            let dm = f16_to_f32(dmin16) * f32::from(m);
            for ii in 0..32 {
                let q = nearest_int((x[32 * j + ii] + dm) / d);
                l[32 * j + ii] = q.clamp(0, 15) as u8;
            }
        }
        out.extend_from_slice(&d16.to_le_bytes());
        out.extend_from_slice(&dmin16.to_le_bytes());
        out.extend_from_slice(&sc);
        for j in (0..QK_K).step_by(64) {
            out.extend((0..32).map(|i| l[j + i] | (l[j + i + 32] << 4)));
        }
    }
}

/// Decode Q4_K super-blocks.
pub fn dequantize_q4_k(bytes: &[u8], out: &mut Vec<f32>) {
    for b in bytes.chunks_exact(Q4_K_BYTES) {
        let d = f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
        let min = f16_to_f32(u16::from_le_bytes([b[2], b[3]]));
        let sc = &b[4..16];
        let qs = &b[16..];
        for (k, q) in qs.chunks_exact(32).enumerate() {
            let (s1, m1) = get_scale_min_k4(2 * k, sc);
            let (s2, m2) = get_scale_min_k4(2 * k + 1, sc);
            let (d1, m1) = (d * f32::from(s1), min * f32::from(m1));
            let (d2, m2) = (d * f32::from(s2), min * f32::from(m2));
            out.extend(q.iter().map(|&v| d1 * f32::from(v & 0xf) - m1));
            out.extend(q.iter().map(|&v| d2 * f32::from(v >> 4) - m2));
        }
    }
}

/// The scalar Q6_K search of one super-block (`x`: 256 values), `quantize_row_q6_K_ref`'s
/// first loop: per sub-block of 16 its scale (`make_qx_quants`, rmse_type 1) and its levels
/// in `l`. The reference for `kquants_lanes::search_q6_k`.
pub(crate) fn search_q6_k(x: &[f32], l: &mut [i8; QK_K], scales: &mut [f32; QK_K / 16]) {
    for ib in 0..QK_K / 16 {
        scales[ib] = make_qx_quants_rmse1(32, &x[16 * ib..16 * ib + 16], &mut l[16 * ib..]);
    }
}

/// Append the Q6_K super-blocks of `x` (`x.len()` a multiple of 256) to `out`, the scale
/// searches eight sub-blocks at a time (`kquants_lanes`) on the CPU's widest vectors.
pub fn quantize_q6_k(x: &[f32], out: &mut Vec<u8>) {
    debug_assert_eq!(x.len() % QK_K, 0);
    #[cfg(target_arch = "x86_64")]
    if let Some(s) = V3::try_new() {
        return s.vectorize(Q6KLanes { s, x, out });
    }
    quantize_q6_k_with::<Scalar>(NoToken, x, out);
}

#[cfg(target_arch = "x86_64")]
kernel!(Q6KLanes<'a>(s: V3, x: &'a [f32], out: &'a mut Vec<u8>) -> () {
    quantize_q6_k_with::<Lanes>(s, x, out);
});

/// [`quantize_q6_k`] with the scalar search: the reference.
pub fn quantize_q6_k_reference(x: &[f32], out: &mut Vec<u8>) {
    quantize_q6_k_with::<Scalar>(NoToken, x, out);
}

#[inline(always)]
fn quantize_q6_k_with<S: Search>(t: S::Token, x: &[f32], out: &mut Vec<u8>) {
    let mut l = [0i8; QK_K];
    let mut scales = [0f32; QK_K / 16];
    out.reserve(x.len() / QK_K * Q6_K_BYTES);
    for x in x.chunks_exact(QK_K) {
        S::q6_k(t, x, &mut l, &mut scales);
        let mut max_scale = 0.0f32;
        let mut max_abs_scale = 0.0f32;
        for &s in &scales {
            if s.abs() > max_abs_scale {
                max_abs_scale = s.abs();
                max_scale = s;
            }
        }
        if max_abs_scale < GROUP_MAX_EPS {
            out.extend(std::iter::repeat_n(0u8, Q6_K_BYTES));
            continue;
        }
        let iscale = -128.0f32 / max_scale;
        let d16 = f32_to_f16(1.0 / iscale);
        let mut sc = [0i8; QK_K / 16];
        for ib in 0..QK_K / 16 {
            sc[ib] = nearest_int(iscale * scales[ib]).min(127) as i8;
        }
        for j in 0..QK_K / 16 {
            let d = f16_to_f32(d16) * f32::from(sc[j]);
            if d == 0.0 {
                continue;
            }
            for ii in 0..16 {
                let q = nearest_int(x[16 * j + ii] / d).clamp(-32, 31);
                l[16 * j + ii] = (q + 32) as i8;
            }
        }
        let mut ql = [0u8; QK_K / 2];
        let mut qh = [0u8; QK_K / 4];
        for (half, j) in (0..QK_K).step_by(128).enumerate() {
            let (ql, qh) = (&mut ql[64 * half..], &mut qh[32 * half..]);
            for i in 0..32 {
                let q = |k: usize| l[j + i + k] as u8;
                ql[i] = (q(0) & 0xf) | ((q(64) & 0xf) << 4);
                ql[i + 32] = (q(32) & 0xf) | ((q(96) & 0xf) << 4);
                qh[i] =
                    (q(0) >> 4) | ((q(32) >> 4) << 2) | ((q(64) >> 4) << 4) | ((q(96) >> 4) << 6);
            }
        }
        out.extend_from_slice(&ql);
        out.extend_from_slice(&qh);
        out.extend(sc.iter().map(|&s| s as u8));
        out.extend_from_slice(&d16.to_le_bytes());
    }
}

/// Decode Q6_K super-blocks.
pub fn dequantize_q6_k(bytes: &[u8], out: &mut Vec<f32>) {
    for b in bytes.chunks_exact(Q6_K_BYTES) {
        let (ql, rest) = b.split_at(QK_K / 2);
        let (qh, rest) = rest.split_at(QK_K / 4);
        let (sc, d) = rest.split_at(QK_K / 16);
        let d = f16_to_f32(u16::from_le_bytes([d[0], d[1]]));
        for n in 0..2 {
            let (ql, qh, sc) = (&ql[64 * n..], &qh[32 * n..], &sc[8 * n..]);
            let start = out.len();
            out.resize(start + 128, 0.0);
            let y = &mut out[start..];
            for l in 0..32 {
                let is = l / 16;
                let q1 = ((ql[l] & 0xf) | ((qh[l] & 3) << 4)) as i8 - 32;
                let q2 = ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
                let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
                let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
                let s = |k: usize| f32::from(sc[is + k] as i8);
                y[l] = d * s(0) * f32::from(q1);
                y[l + 32] = d * s(2) * f32::from(q2);
                y[l + 64] = d * s(4) * f32::from(q3);
                y[l + 96] = d * s(6) * f32::from(q4);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::nearest_int;

    #[test]
    fn nearest_int_ties_to_even() {
        assert_eq!(nearest_int(0.5), 0);
        assert_eq!(nearest_int(1.5), 2);
        assert_eq!(nearest_int(2.5), 2);
        assert_eq!(nearest_int(-0.5), 0);
        assert_eq!(nearest_int(-1.5), -2);
        assert_eq!(nearest_int(-7.49), -7);
        assert_eq!(nearest_int(31.6), 32);
    }
}
