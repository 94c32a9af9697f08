//! Eight f32 lanes (one AVX2 register) that each perform exactly the float operations of the
//! scalar code, in the same order, so that an encoder can work on eight blocks at once and
//! still produce the scalar (and so the C reference's) bytes. Every operation is one IEEE
//! instruction per lane (`+ − × ÷ √`, ordered comparisons, blends, integer min/max, int →
//! float): no fused multiply-add, no reassociation.
//!
//! The instructions come through `pulp`'s safe wrappers around `std::arch`: a [`V3`] token
//! exists only when the CPU has AVX2 (`is_x86_feature_detected!` at run time), and code
//! inlined into `V3::vectorize` is compiled for it. Without AVX2 (or off x86-64) the encoders
//! use the scalar reference instead. [`vectorized`] runs the element-wise encoders (Q8_0,
//! Q4_0, the error sums) compiled for the widest vectors there are, AVX2 or the SSE2 baseline.

#[cfg(target_arch = "x86_64")]
pub(crate) use pulp::x86::V3;

/// Lanes per vector.
pub(crate) const LANES: usize = 8;

/// Run `kernel` compiled for the widest vector instructions this CPU has (runtime detection);
/// the result does not depend on which. Only code inlined into the dispatched function is
/// compiled for the detected instructions, and LLVM does not reliably inline a closure's or
/// a function item's call there: a kernel is a struct of its arguments whose `with_simd`
/// (made by [`kernel!`]) and everything its hot loops call are `#[inline(always)]`.
#[inline(always)]
pub(crate) fn vectorized<K: pulp::WithSimd>(kernel: K) -> K::Output {
    pulp::Arch::new().dispatch(kernel)
}

/// `kernel!(Name<'a>(arg: Type, …) -> Output { body })`: a kernel for [`vectorized`] (and,
/// as a `NullaryFnOnce`, for `V3::vectorize`).
macro_rules! kernel {
    ($name:ident<$lt:lifetime>($($arg:ident: $ty:ty),* $(,)?) -> $out:ty $body:block) => {
        struct $name<$lt> {
            $($arg: $ty),*
        }

        impl<$lt> $name<$lt> {
            #[inline(always)]
            fn run(self) -> $out {
                let Self { $($arg),* } = self;
                $body
            }
        }

        // (pulp makes every `NullaryFnOnce` a `WithSimd` too.)
        impl<$lt> pulp::NullaryFnOnce for $name<$lt> {
            type Output = $out;
            #[inline(always)]
            fn call(self) -> $out {
                self.run()
            }
        }
    };
}
pub(crate) use kernel;

#[cfg(target_arch = "x86_64")]
pub(crate) use avx2::{F8, I8};

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{__m256, __m256i};

    use super::{LANES, V3};

    /// Eight f32 lanes (and the token that proves AVX2).
    #[derive(Clone, Copy)]
    pub(crate) struct F8 {
        s: V3,
        v: __m256,
    }

    /// Eight i32 lanes.
    #[derive(Clone, Copy)]
    pub(crate) struct I8 {
        s: V3,
        v: __m256i,
    }

    /// Eight lane masks (all ones or all zeros), a comparison's result.
    #[derive(Clone, Copy)]
    pub(crate) struct M8 {
        s: V3,
        v: __m256,
    }

    // _CMP_EQ_OQ, _CMP_LT_OQ, _CMP_GT_OQ (ordered: false on NaN, as Rust's `==`, `<`, `>`),
    // _CMP_NEQ_UQ (unordered: true on NaN, as Rust's `!=`).
    const EQ: i32 = 0x00;
    const LT: i32 = 0x11;
    const GT: i32 = 0x1e;
    const NE: i32 = 0x04;

    impl std::fmt::Debug for F8 {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            self.to_array().fmt(f)
        }
    }

    impl F8 {
        #[inline(always)]
        pub fn splat(s: V3, v: f32) -> Self {
            Self {
                s,
                v: s.avx._mm256_set1_ps(v),
            }
        }
        #[inline(always)]
        pub fn from_array(s: V3, a: [f32; LANES]) -> Self {
            Self {
                s,
                v: pulp::cast(a),
            }
        }
        #[inline(always)]
        pub fn to_array(self) -> [f32; LANES] {
            pulp::cast(self.v)
        }
        #[inline(always)]
        fn with(self, v: __m256) -> Self {
            Self { s: self.s, v }
        }
        #[inline(always)]
        pub fn add(self, o: Self) -> Self {
            self.with(self.s.avx._mm256_add_ps(self.v, o.v))
        }
        #[inline(always)]
        pub fn sub(self, o: Self) -> Self {
            self.with(self.s.avx._mm256_sub_ps(self.v, o.v))
        }
        #[inline(always)]
        pub fn mul(self, o: Self) -> Self {
            self.with(self.s.avx._mm256_mul_ps(self.v, o.v))
        }
        #[inline(always)]
        pub fn div(self, o: Self) -> Self {
            self.with(self.s.avx._mm256_div_ps(self.v, o.v))
        }
        #[inline(always)]
        pub fn sqrt(self) -> Self {
            self.with(self.s.avx._mm256_sqrt_ps(self.v))
        }
        /// The sign bit cleared (`f32::abs`).
        #[inline(always)]
        pub fn abs(self) -> Self {
            let sign = self.s.avx._mm256_set1_ps(-0.0);
            self.with(self.s.avx._mm256_andnot_ps(sign, self.v))
        }
        /// The sign bit flipped (unary `-`).
        #[inline(always)]
        pub fn neg(self) -> Self {
            let sign = self.s.avx._mm256_set1_ps(-0.0);
            self.with(self.s.avx._mm256_xor_ps(sign, self.v))
        }
        #[inline(always)]
        fn cmp<const OP: i32>(self, o: Self) -> M8 {
            M8 {
                s: self.s,
                v: self.s.avx._mm256_cmp_ps::<OP>(self.v, o.v),
            }
        }
        #[inline(always)]
        pub fn lt(self, o: Self) -> M8 {
            self.cmp::<LT>(o)
        }
        #[inline(always)]
        pub fn gt(self, o: Self) -> M8 {
            self.cmp::<GT>(o)
        }
        #[inline(always)]
        pub fn eq(self, o: Self) -> M8 {
            self.cmp::<EQ>(o)
        }
        #[inline(always)]
        pub fn ne(self, o: Self) -> M8 {
            self.cmp::<NE>(o)
        }
        /// ggml's `nearest_int` per lane (see `kquants::nearest_int`): the bits of
        /// x + 1.5·2²³, masked to the mantissa, minus 2²².
        #[inline(always)]
        pub fn nearest_int(self) -> I8 {
            let (avx, avx2) = (self.s.avx, self.s.avx2);
            let biased = avx._mm256_add_ps(self.v, avx._mm256_set1_ps(12_582_912.0));
            let mantissa = avx2._mm256_and_si256(
                avx._mm256_castps_si256(biased),
                avx._mm256_set1_epi32(0x007f_ffff),
            );
            I8 {
                s: self.s,
                v: avx2._mm256_sub_epi32(mantissa, avx._mm256_set1_epi32(0x0040_0000)),
            }
        }
    }

    impl I8 {
        #[inline(always)]
        pub fn splat(s: V3, v: i32) -> Self {
            Self {
                s,
                v: s.avx._mm256_set1_epi32(v),
            }
        }
        #[inline(always)]
        pub fn to_array(self) -> [i32; LANES] {
            pulp::cast(self.v)
        }
        #[inline(always)]
        fn with(self, v: __m256i) -> Self {
            Self { s: self.s, v }
        }
        /// `i32::clamp(lo, hi)` per lane.
        #[inline(always)]
        pub fn clamp(self, lo: i32, hi: i32) -> Self {
            let (avx, avx2) = (self.s.avx, self.s.avx2);
            let v = avx2._mm256_max_epi32(self.v, avx._mm256_set1_epi32(lo));
            self.with(avx2._mm256_min_epi32(v, avx._mm256_set1_epi32(hi)))
        }
        #[inline(always)]
        pub fn add(self, v: i32) -> Self {
            let avx = self.s.avx;
            self.with(
                self.s
                    .avx2
                    ._mm256_add_epi32(self.v, avx._mm256_set1_epi32(v)),
            )
        }
        /// `as f32` per lane.
        #[inline(always)]
        pub fn to_f32(self) -> F8 {
            F8 {
                s: self.s,
                v: self.s.avx._mm256_cvtepi32_ps(self.v),
            }
        }
    }

    impl M8 {
        #[inline(always)]
        pub fn and(self, o: Self) -> Self {
            Self {
                s: self.s,
                v: self.s.avx._mm256_and_ps(self.v, o.v),
            }
        }
        /// `a` where the lane is set, else `b`.
        #[inline(always)]
        pub fn select(self, a: F8, b: F8) -> F8 {
            b.with(self.s.avx._mm256_blendv_ps(b.v, a.v, self.v))
        }
        #[inline(always)]
        pub fn select_i(self, a: I8, b: I8) -> I8 {
            let mask = self.s.avx._mm256_castps_si256(self.v);
            b.with(self.s.avx2._mm256_blendv_epi8(b.v, a.v, mask))
        }
        #[cfg(test)]
        pub fn to_array(self) -> [bool; LANES] {
            let bits: [u32; LANES] = pulp::cast(self.v);
            bits.map(|b| b != 0)
        }
    }
}

/// Blocks of every kind the lanes must agree on with the scalar code, 32 values each: random
/// at several scales, constant (positive, negative, zero), subnormal, huge, one outlier,
/// values on rounding ties, all negative, all positive.
#[cfg(test)]
pub(crate) fn edge_blocks(seed: u64) -> Vec<[f32; 32]> {
    let mut s = seed | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let mut out = Vec::new();
    for scale in [1e-3f32, 0.05, 1.0, 300.0, 1e18] {
        out.push(std::array::from_fn(|_| next() * scale));
    }
    out.push([0.25; 32]);
    out.push([-0.75; 32]);
    out.push([0.0; 32]);
    out.push([-0.0; 32]);
    out.push(std::array::from_fn(|i| f32::from_bits(1 + 97 * i as u32))); // subnormal
    out.push(std::array::from_fn(|_| next() * 1e-40));
    out.push(std::array::from_fn(|i| {
        if i % 2 == 0 { 3.0e38 } else { -1.0e38 }
    }));
    out.push(std::array::from_fn(|i| {
        if i == 7 { 40.0 } else { next() * 0.01 }
    }));
    out.push(std::array::from_fn(|i| (i as f32 - 15.5) * 0.5)); // many ties
    out.push(std::array::from_fn(|i| i as f32 / 2.0)); // all ≥ 0
    out.push(std::array::from_fn(|_| -(next() + 0.5).abs()));
    out.push(std::array::from_fn(|_| (next() + 0.5).abs() + 1.0));
    out.push(std::array::from_fn(|i| if i == 0 { 1.0 } else { 0.0 }));
    out.push(std::array::from_fn(|i| if i == 31 { -1e-30 } else { 0.0 }));
    out
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::avx2::M8;
    use super::*;

    kernel!(Ops<'a>(s: V3, a: &'a [f32; 8], b: &'a [f32; 8]) -> Vec<[u32; 8]> {
        let (x, y) = (F8::from_array(s, *a), F8::from_array(s, *b));
        let bits = |v: F8| v.to_array().map(f32::to_bits);
        let mask = |m: M8| m.to_array().map(u32::from);
        vec![
            bits(x.add(y)),
            bits(x.sub(y)),
            bits(x.mul(y)),
            bits(x.div(y)),
            bits(x.abs()),
            bits(x.neg()),
            bits(x.abs().sqrt()),
            mask(x.lt(y)),
            mask(x.gt(y)),
            mask(x.eq(y)),
            mask(x.ne(y)),
            x.nearest_int().clamp(-3, 40).to_array().map(|v| v as u32),
            bits(x.lt(y).select(x, y)),
        ]
    });

    #[test]
    fn lanes_compute_what_scalars_do() {
        let Some(s) = V3::try_new() else {
            eprintln!("no AVX2 on this CPU: the lanes are not used here");
            return;
        };
        // Through black_box: a NaN folded at compile time and one made by the CPU (0/0) need
        // not have the same sign bit.
        let a = std::hint::black_box([1.5, -2.0, 0.0, -0.0, 31.6, f32::INFINITY, 1e-40, -7.49]);
        let b = std::hint::black_box([0.5, 4.0, 0.0, 1.0, -1.0, f32::NAN, 3.0, -7.49]);
        let got = s.vectorize(Ops { s, a: &a, b: &b });
        let nearest = |x: f32| super::super::kquants::nearest_int(x).clamp(-3, 40) as u32;
        for k in 0..LANES {
            let (x, y) = std::hint::black_box((a[k], b[k]));
            let want = [
                (x + y).to_bits(),
                (x - y).to_bits(),
                (x * y).to_bits(),
                (x / y).to_bits(),
                x.abs().to_bits(),
                (-x).to_bits(),
                x.abs().sqrt().to_bits(),
                u32::from(x < y),
                u32::from(x > y),
                u32::from(x == y),
                u32::from(x != y),
                nearest(x),
                if x < y { x } else { y }.to_bits(),
            ];
            for (op, (g, w)) in got.iter().zip(want).enumerate() {
                assert_eq!(g[k], w, "lane {k}, op {op}: {x} ∘ {y}");
            }
        }
    }
}
