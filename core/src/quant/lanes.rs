//! Eight f32 lanes that each perform exactly the float operations of the scalar code, in the
//! same order, so that an encoder can work on eight blocks at once and still produce the
//! scalar (and so the C reference's) bytes. Every operation is a plain IEEE one per lane
//! (`+ − × ÷ √`, comparisons, selects, integer casts): no fused multiply-add (Rust never
//! contracts `a * b + c`), no reassociation. The compiler turns each into one vector
//! instruction; [`vectorized`] runs a kernel with the CPU's widest vector set (AVX2 on x86-64
//! when present, detected at run time through `pulp`, a safe wrapper around
//! `is_x86_feature_detected!` and `#[target_feature]`), else with the baseline (SSE2), where
//! the same code gives the same bytes, only slower.

/// Lanes per vector.
pub(crate) const LANES: usize = 8;

/// Eight f32 lanes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct F8(pub [f32; LANES]);

/// Eight i32 lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct I8(pub [i32; LANES]);

/// Eight booleans (a comparison's result).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct M8(pub [bool; LANES]);

macro_rules! lanewise {
    ($out:ident, |$k:ident| $e:expr) => {{
        let mut r = $out([Default::default(); LANES]);
        for $k in 0..LANES {
            r.0[$k] = $e;
        }
        r
    }};
}

impl F8 {
    #[inline(always)]
    pub fn splat(v: f32) -> Self {
        Self([v; LANES])
    }
    #[inline(always)]
    pub fn add(self, o: Self) -> Self {
        lanewise!(F8, |k| self.0[k] + o.0[k])
    }
    #[inline(always)]
    pub fn sub(self, o: Self) -> Self {
        lanewise!(F8, |k| self.0[k] - o.0[k])
    }
    #[inline(always)]
    pub fn mul(self, o: Self) -> Self {
        lanewise!(F8, |k| self.0[k] * o.0[k])
    }
    #[inline(always)]
    pub fn div(self, o: Self) -> Self {
        lanewise!(F8, |k| self.0[k] / o.0[k])
    }
    #[inline(always)]
    pub fn sqrt(self) -> Self {
        lanewise!(F8, |k| self.0[k].sqrt())
    }
    #[inline(always)]
    pub fn abs(self) -> Self {
        lanewise!(F8, |k| self.0[k].abs())
    }
    #[inline(always)]
    pub fn lt(self, o: Self) -> M8 {
        lanewise!(M8, |k| self.0[k] < o.0[k])
    }
    #[inline(always)]
    pub fn gt(self, o: Self) -> M8 {
        lanewise!(M8, |k| self.0[k] > o.0[k])
    }
    #[inline(always)]
    pub fn eq(self, o: Self) -> M8 {
        lanewise!(M8, |k| self.0[k] == o.0[k])
    }
    #[inline(always)]
    pub fn ne(self, o: Self) -> M8 {
        lanewise!(M8, |k| self.0[k] != o.0[k])
    }
    /// ggml's `nearest_int` per lane (see `kquants::nearest_int`).
    #[inline(always)]
    pub fn nearest_int(self) -> I8 {
        lanewise!(I8, |k| ((self.0[k] + 12_582_912.0).to_bits() & 0x007f_ffff)
            as i32
            - 0x0040_0000)
    }
}

impl I8 {
    #[inline(always)]
    pub fn clamp(self, lo: i32, hi: i32) -> Self {
        lanewise!(I8, |k| self.0[k].clamp(lo, hi))
    }
    #[inline(always)]
    pub fn add(self, v: i32) -> Self {
        lanewise!(I8, |k| self.0[k] + v)
    }
    #[inline(always)]
    pub fn to_f32(self) -> F8 {
        lanewise!(F8, |k| self.0[k] as f32)
    }
}

impl M8 {
    #[inline(always)]
    pub fn and(self, o: Self) -> Self {
        lanewise!(M8, |k| self.0[k] & o.0[k])
    }
    /// `a` where the lane is set, else `b`.
    #[inline(always)]
    pub fn select(self, a: F8, b: F8) -> F8 {
        lanewise!(F8, |k| if self.0[k] { a.0[k] } else { b.0[k] })
    }
    #[inline(always)]
    pub fn select_i(self, a: I8, b: I8) -> I8 {
        lanewise!(I8, |k| if self.0[k] { a.0[k] } else { b.0[k] })
    }
}

/// Run `kernel` compiled for the widest vector instructions this CPU has (runtime detection);
/// the result does not depend on which. Only code inlined into the dispatched function is
/// compiled for the detected instructions, and LLVM does not reliably inline a closure's or
/// a function item's call there: a kernel is a struct of its arguments whose `with_simd`
/// (made by [`kernel!`]) and everything its hot loops call are `#[inline(always)]`.
#[inline(always)]
pub(crate) fn vectorized<K: pulp::WithSimd>(kernel: K) -> K::Output {
    pulp::Arch::new().dispatch(kernel)
}

/// `kernel!(Name<'a>(arg: Type, …) -> Output { body })`: a kernel for [`vectorized`].
macro_rules! kernel {
    ($name:ident<$lt:lifetime>($($arg:ident: $ty:ty),* $(,)?) -> $out:ty $body:block) => {
        struct $name<$lt> {
            $($arg: $ty),*
        }

        impl<$lt> pulp::WithSimd for $name<$lt> {
            type Output = $out;
            #[inline(always)]
            fn with_simd<S: pulp::Simd>(self, _: S) -> $out {
                let Self { $($arg),* } = self;
                $body
            }
        }
    };
}
pub(crate) use kernel;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_compute_what_scalars_do() {
        // Through black_box: a NaN folded at compile time and one made by the CPU (0/0) need
        // not have the same sign bit.
        let a = std::hint::black_box(F8([1.5, -2.0, 0.0, -0.0, 3.25, f32::INFINITY, 1e-40, 7.0]));
        let b = std::hint::black_box(F8([0.5, 4.0, 0.0, 1.0, -1.0, 1.0, 3.0, 7.0]));
        for k in 0..LANES {
            let (x, y) = std::hint::black_box((a.0[k], b.0[k]));
            assert_eq!(a.add(b).0[k].to_bits(), (x + y).to_bits());
            assert_eq!(a.sub(b).0[k].to_bits(), (x - y).to_bits());
            assert_eq!(a.mul(b).0[k].to_bits(), (x * y).to_bits());
            assert_eq!(a.div(b).0[k].to_bits(), (x / y).to_bits());
            assert_eq!(a.lt(b).0[k], x < y);
            assert_eq!(a.gt(b).0[k], x > y);
            assert_eq!(a.eq(b).0[k], x == y);
        }
        kernel!(Round<'a>(v: &'a F8) -> I8 { v.nearest_int() });
        let v = F8([0.5, 1.5, 2.5, -0.5, -1.5, 31.6, -7.49, 3.0]);
        let r = vectorized(Round { v: &v });
        assert_eq!(r, I8([0, 2, 2, 0, -2, 32, -7, 3]));
    }
}
