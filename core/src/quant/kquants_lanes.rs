//! The K-quant scale searches on eight sub-blocks at once: lane `j` runs, for sub-block `j`,
//! exactly the float operations of the scalar `make_qkx2_quants` / `make_qx_quants` in
//! `kquants.rs` (the references), in the same order; a lane's branches become selects (both
//! sides computed, the scalar's choice kept). The levels, scales and mins are bit for bit
//! the scalar ones (`tests` below and core/tests/quant_lanes.rs check it on random,
//! constant, zero, subnormal and huge blocks); the rest of each super-block (6-bit scales,
//! f16 `d`, the final levels, packing) is the scalar code, shared.

use super::blocks::{GROUP_MAX_EPS, QK_K};
use super::lanes::{F8, I8, LANES, V3};

/// Q4_K: values per sub-block.
const Q4: usize = 32;
/// Q6_K: values per sub-block.
const Q6: usize = 16;

/// `x` (one super-block) as `N` vectors per group of eight sub-blocks of `N` values: value
/// `i` of sub-block `8g + j` in lane `j` of vector `i` of group `g`.
#[inline(always)]
fn transpose<const N: usize>(s: V3, x: &[f32], group: usize) -> [F8; N] {
    let mut t = [[0f32; LANES]; N];
    for (j, sub) in x[group * LANES * N..(group + 1) * LANES * N]
        .chunks_exact(N)
        .enumerate()
    {
        for (i, &v) in sub.iter().enumerate() {
            t[i][j] = v;
        }
    }
    t.map(|a| F8::from_array(s, a))
}

/// The levels back in sub-block order: `l[N·(8g + j) + i]` = lane `j` of `lt[i]`.
#[inline(always)]
fn untranspose<T: Copy, const N: usize>(
    lt: &[I8; N],
    group: usize,
    l: &mut [T; QK_K],
    conv: impl Fn(i32) -> T,
) {
    for (i, li) in lt.iter().enumerate() {
        for (j, v) in li.to_array().into_iter().enumerate() {
            l[N * (group * LANES + j) + i] = conv(v);
        }
    }
}

/// `make_qkx2_quants(32, 15, x, weights, L, &min, Laux, -1, 0.1, 20, false)` on eight
/// sub-blocks: returns (scale, −min) per lane and the levels `l[i]` per lane.
#[inline(always)]
fn make_qkx2_quants(s: V3, x: &[F8; Q4], weights: &[F8; Q4], l: &mut [I8; Q4]) -> (F8, F8) {
    const NMAX: i32 = 15;
    let (rmin, rdelta, nstep) = (-1.0f32, 0.1f32, 20);
    let zero = F8::splat(s, 0.0);
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w.mul(x[0]);
    for i in 1..Q4 {
        min = x[i].lt(min).select(x[i], min);
        max = x[i].gt(max).select(x[i], max);
        let w = weights[i];
        sum_w = sum_w.add(w);
        sum_x = sum_x.add(w.mul(x[i]));
    }
    min = min.gt(zero).select(zero, min);
    // Lanes where max == min: levels 0, scale 0, −min (the scalar's early return).
    let flat = max.eq(min);
    let flat_min = min;
    let mut iscale = F8::splat(s, NMAX as f32).div(max.sub(min));
    let mut scale = F8::splat(s, 1.0).div(iscale);
    let mut best_error = zero;
    for i in 0..Q4 {
        let li = iscale.mul(x[i].sub(min)).nearest_int().clamp(0, NMAX);
        l[i] = li;
        let diff = scale.mul(li.to_f32()).add(min).sub(x[i]);
        let diff = diff.mul(diff);
        best_error = best_error.add(weights[i].mul(diff));
    }
    let mut laux = [I8::splat(s, 0); Q4];
    for is in 0..=nstep {
        let step = rmin + rdelta * is as f32 + NMAX as f32;
        // `min` moves when a step wins: the next steps see the new one, as in the scalar.
        iscale = F8::splat(s, step).div(max.sub(min));
        let (mut sum_l, mut sum_l2, mut sum_xl) = (zero, zero, zero);
        for i in 0..Q4 {
            let li = iscale.mul(x[i].sub(min)).nearest_int().clamp(0, NMAX);
            laux[i] = li;
            let w = weights[i];
            let lf = li.to_f32();
            sum_l = sum_l.add(w.mul(lf));
            sum_l2 = sum_l2.add(w.mul(lf).mul(lf));
            sum_xl = sum_xl.add(w.mul(lf).mul(x[i]));
        }
        let d = sum_w.mul(sum_l2).sub(sum_l.mul(sum_l));
        let positive = d.gt(zero);
        let this_scale = sum_w.mul(sum_xl).sub(sum_x.mul(sum_l)).div(d);
        let this_min = sum_l2.mul(sum_x).sub(sum_l.mul(sum_xl)).div(d);
        let clipped = this_min.gt(zero);
        let this_min = clipped.select(zero, this_min);
        let this_scale = clipped.select(sum_xl.div(sum_l2), this_scale);
        let mut cur_error = zero;
        for i in 0..Q4 {
            let diff = this_scale.mul(laux[i].to_f32()).add(this_min).sub(x[i]);
            let diff = diff.mul(diff);
            cur_error = cur_error.add(weights[i].mul(diff));
        }
        let better = positive.and(cur_error.lt(best_error));
        for (l, &a) in l.iter_mut().zip(&laux) {
            *l = better.select_i(a, *l);
        }
        best_error = better.select(cur_error, best_error);
        scale = better.select(this_scale, scale);
        min = better.select(this_min, min);
    }
    for l in l.iter_mut() {
        *l = flat.select_i(I8::splat(s, 0), *l);
    }
    (flat.select(zero, scale), flat.select(flat_min, min).neg())
}

/// The Q4_K search of one super-block (`x`: 256 values): the levels `l` (0..=15) and per
/// sub-block the scale and the min, as the scalar `kquants::search_q4_k` gives them.
#[inline(always)]
pub(crate) fn search_q4_k(
    s: V3,
    x: &[f32],
    l: &mut [u8; QK_K],
    scales: &mut [f32; 8],
    mins: &mut [f32; 8],
) {
    let xt = transpose::<Q4>(s, x, 0);
    let mut sum_x2 = F8::splat(s, 0.0);
    for v in &xt {
        sum_x2 = sum_x2.add(v.mul(*v));
    }
    let av_x = sum_x2.div(F8::splat(s, 32.0)).sqrt();
    let mut weights = [F8::splat(s, 0.0); Q4];
    for (w, v) in weights.iter_mut().zip(&xt) {
        *w = av_x.add(v.abs());
    }
    let mut lt = [I8::splat(s, 0); Q4];
    let (sc, m) = make_qkx2_quants(s, &xt, &weights, &mut lt);
    *scales = sc.to_array();
    *mins = m.to_array();
    untranspose(&lt, 0, l, |v| v as u8);
}

/// `make_qx_quants(16, 32, x, L, 1, NULL)` on eight sub-blocks: the scale per lane, the
/// levels `l[i]` (0..=63) per lane.
#[inline(always)]
fn make_qx_quants(s: V3, x: &[F8; Q6], l: &mut [I8; Q6]) -> F8 {
    const NMAX: i32 = 32;
    let zero = F8::splat(s, 0.0);
    let mut max = zero;
    let mut amax = zero;
    for &v in x {
        let ax = v.abs();
        let bigger = ax.gt(amax);
        amax = bigger.select(ax, amax);
        max = bigger.select(v, max);
    }
    let empty = amax.lt(F8::splat(s, GROUP_MAX_EPS));
    let level = |iscale: F8, v: F8| iscale.mul(v).nearest_int().clamp(-NMAX, NMAX - 1);
    let iscale = F8::splat(s, -(NMAX as f32)).div(max);
    let (mut sumlx, mut suml2) = (zero, zero);
    for i in 0..Q6 {
        let li = level(iscale, x[i]);
        l[i] = li.add(NMAX);
        let w = x[i].mul(x[i]);
        let lf = li.to_f32();
        sumlx = sumlx.add(w.mul(x[i]).mul(lf));
        suml2 = suml2.add(w.mul(lf).mul(lf));
    }
    let mut scale = suml2.ne(zero).select(sumlx.div(suml2), zero);
    let mut best = scale.mul(sumlx);
    let mut laux = [I8::splat(s, 0); Q6];
    for is in (-9..=9).filter(|&is| is != 0) {
        let iscale = F8::splat(s, -(NMAX as f32 + 0.1 * is as f32)).div(max);
        sumlx = zero;
        suml2 = zero;
        for i in 0..Q6 {
            let li = level(iscale, x[i]);
            laux[i] = li;
            let w = x[i].mul(x[i]);
            let lf = li.to_f32();
            sumlx = sumlx.add(w.mul(x[i]).mul(lf));
            suml2 = suml2.add(w.mul(lf).mul(lf));
        }
        let better = suml2.gt(zero).and(sumlx.mul(sumlx).gt(best.mul(suml2)));
        for (l, a) in l.iter_mut().zip(&laux) {
            *l = better.select_i(a.add(NMAX), *l);
        }
        scale = better.select(sumlx.div(suml2), scale);
        best = better.select(scale.mul(sumlx), best);
    }
    for l in l.iter_mut() {
        *l = empty.select_i(I8::splat(s, 0), *l);
    }
    empty.select(zero, scale)
}

/// The Q6_K search of one super-block (`x`: 256 values): the levels `l` (0..=63) and the
/// scale of each of the 16 sub-blocks, as the scalar `kquants::search_q6_k` gives them.
#[inline(always)]
pub(crate) fn search_q6_k(s: V3, x: &[f32], l: &mut [i8; QK_K], scales: &mut [f32; QK_K / Q6]) {
    for g in 0..QK_K / Q6 / LANES {
        let xt = transpose::<Q6>(s, x, g);
        let mut lt = [I8::splat(s, 0); Q6];
        let sc = make_qx_quants(s, &xt, &mut lt);
        scales[g * LANES..(g + 1) * LANES].copy_from_slice(&sc.to_array());
        untranspose(&lt, g, l, |v| v as i8);
    }
}

#[cfg(test)]
mod tests {
    use super::super::kquants;
    use super::super::lanes::{edge_blocks, kernel};
    use super::*;

    /// Super-blocks whose eight (Q4_K) or sixteen (Q6_K) sub-blocks mix the kinds, so that
    /// every lane of a vector takes its own branches.
    fn super_blocks() -> Vec<Vec<f32>> {
        let mut out = Vec::new();
        for seed in 1..40u64 {
            let k = edge_blocks(seed);
            // Whole super-blocks of one kind, then mixtures.
            if seed == 1 {
                for kind in &k {
                    out.push(kind.repeat(QK_K / 32));
                }
            }
            let pick = |i: usize| k[(seed as usize * 7 + i * 5) % k.len()];
            out.push((0..QK_K / 32).flat_map(pick).collect());
        }
        out
    }

    kernel!(Q4<'a>(
        s: V3,
        x: &'a [f32],
        l: &'a mut [u8; QK_K],
        sc: &'a mut [f32; 8],
        m: &'a mut [f32; 8],
    ) -> () {
        search_q4_k(s, x, l, sc, m);
    });

    kernel!(Q6<'a>(s: V3, x: &'a [f32], l: &'a mut [i8; QK_K], sc: &'a mut [f32; 16]) -> () {
        search_q6_k(s, x, l, sc);
    });

    #[test]
    fn q4_k_lanes_equal_the_scalar_search_bit_for_bit() {
        let Some(s) = V3::try_new() else {
            eprintln!("no AVX2 on this CPU: the lanes are not used here");
            return;
        };
        for (n, x) in super_blocks().iter().enumerate() {
            let (mut l0, mut s0, mut m0) = ([0u8; QK_K], [0f32; 8], [0f32; 8]);
            kquants::search_q4_k(x, &mut l0, &mut s0, &mut m0);
            let (mut l1, mut s1, mut m1) = ([9u8; QK_K], [9f32; 8], [9f32; 8]);
            s.vectorize(Q4 {
                s,
                x,
                l: &mut l1,
                sc: &mut s1,
                m: &mut m1,
            });
            assert_eq!(l0, l1, "super-block {n}: levels");
            let bits = |v: &[f32; 8]| v.map(f32::to_bits);
            assert_eq!(bits(&s0), bits(&s1), "super-block {n}: scales");
            assert_eq!(bits(&m0), bits(&m1), "super-block {n}: mins");
        }
    }

    #[test]
    fn q6_k_lanes_equal_the_scalar_search_bit_for_bit() {
        let Some(s) = V3::try_new() else {
            eprintln!("no AVX2 on this CPU: the lanes are not used here");
            return;
        };
        for (n, x) in super_blocks().iter().enumerate() {
            let (mut l0, mut s0) = ([0i8; QK_K], [0f32; 16]);
            kquants::search_q6_k(x, &mut l0, &mut s0);
            let (mut l1, mut s1) = ([9i8; QK_K], [9f32; 16]);
            s.vectorize(Q6 {
                s,
                x,
                l: &mut l1,
                sc: &mut s1,
            });
            assert_eq!(l0, l1, "super-block {n}: levels");
            let bits = |v: &[f32; 16]| v.map(f32::to_bits);
            assert_eq!(bits(&s0), bits(&s1), "super-block {n}: scales");
        }
    }
}
