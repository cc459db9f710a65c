//! A small SIMD vocabulary shared by the element-wise, softmax and reduction kernels.
//!
//! [`Simd`] is one vector of `f32` or `f64` at one [`Level`]: `S32`/`S64` (one lane, plain
//! Rust, every architecture), `Avx2F32`/`Avx2F64` (256-bit) and `Avx512F32`/`Avx512F64`
//! (512-bit). Kernels are written once, generic over `V: Simd`, as `#[inline(always)]`
//! functions; [`dispatch`] runs a [`Kernel`] inside a `#[target_feature]` function of the
//! level chosen at run time, so that everything inlines into code compiled for that level.
//!
//! Math: `f32` exp / ln / tanh / ln_1p are vector range reductions + polynomials (Cephes
//! coefficients), the same code for every lane width, so a value never depends on whether
//! it was computed in a vector body or a (padded) tail. `f64` transcendental functions call
//! std's libm lane by lane.
//!
//! # Safety
//! Every `unsafe fn` of [`Simd`] requires that the CPU supports the instruction set of the
//! implementing type (AVX2+FMA for `Avx2*`, AVX-512F for `Avx512*`); [`dispatch`] only
//! instantiates a type after that was detected. Pointer arguments follow the usual rules:
//! `load`/`store` touch exactly `LANES` elements, `*_partial` exactly `n <= LANES`.

#![allow(clippy::missing_safety_doc)]
// AVX-512 intrinsics are stable since Rust 1.89, above the workspace's declared
// rust-version (1.80); the toolchain here is newer. Raise rust-version to 1.89 to drop this.
#![allow(clippy::incompatible_msrv)]

use crate::simd::Level;
use crate::Float;
use std::any::TypeId;

/// The widest vector in elements (16 x f32 in AVX-512).
pub(crate) const MAX_LANES: usize = 16;

/// One SIMD vector of [`Simd::E`] (see the module docs for the safety contract).
pub(crate) trait Simd: Copy {
    type E: Float;
    type M: Copy;
    const LANES: usize;
    unsafe fn splat(v: Self::E) -> Self;
    unsafe fn load(p: *const Self::E) -> Self;
    unsafe fn store(self, p: *mut Self::E);
    unsafe fn add(self, b: Self) -> Self;
    unsafe fn sub(self, b: Self) -> Self;
    unsafe fn mul(self, b: Self) -> Self;
    unsafe fn div(self, b: Self) -> Self;
    /// `self * b + c`, fused when the level has FMA.
    unsafe fn mul_add(self, b: Self, c: Self) -> Self;
    /// `self > b ? self : b` (x86 MAXPS semantics: `b` when either is NaN).
    unsafe fn max(self, b: Self) -> Self;
    /// `self < b ? self : b` (x86 MINPS semantics: `b` when either is NaN).
    unsafe fn min(self, b: Self) -> Self;
    unsafe fn abs(self) -> Self;
    unsafe fn gt(self, b: Self) -> Self::M;
    unsafe fn lt(self, b: Self) -> Self::M;
    unsafe fn eq(self, b: Self) -> Self::M;
    unsafe fn is_nan(self) -> Self::M;
    unsafe fn mask_or(a: Self::M, b: Self::M) -> Self::M;
    /// `a & !b`.
    unsafe fn mask_andnot(a: Self::M, b: Self::M) -> Self::M;
    /// Whether any lane of `m` is set.
    unsafe fn any(m: Self::M) -> bool;
    /// `m ? a : b` lane by lane.
    unsafe fn select(m: Self::M, a: Self, b: Self) -> Self;
    unsafe fn exp(self) -> Self;
    unsafe fn ln(self) -> Self;
    /// ln(1 + x), accurate for x in [0, 1] (the range softplus needs) and beyond.
    unsafe fn ln_1p(self) -> Self;
    unsafe fn tanh(self) -> Self;

    /// Loads `n <= LANES` elements, the other lanes set to `fill`.
    #[inline(always)]
    unsafe fn load_partial(p: *const Self::E, n: usize, fill: Self::E) -> Self {
        let mut buf = [fill; MAX_LANES];
        // SAFETY: the caller guarantees `p` is valid for `n <= LANES <= MAX_LANES` reads.
        std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), n.min(Self::LANES));
        Self::load(buf.as_ptr())
    }
    /// Stores the first `n <= LANES` lanes.
    #[inline(always)]
    unsafe fn store_partial(self, p: *mut Self::E, n: usize) {
        let buf = self.to_array();
        // SAFETY: the caller guarantees `p` is valid for `n <= LANES` writes.
        std::ptr::copy_nonoverlapping(buf.as_ptr(), p, n.min(Self::LANES));
    }
    #[inline(always)]
    unsafe fn to_array(self) -> [Self::E; MAX_LANES] {
        let mut buf = [Self::E::ZERO; MAX_LANES];
        // SAFETY: buf holds MAX_LANES >= LANES elements.
        self.store(buf.as_mut_ptr());
        buf
    }
    /// Applies a scalar function lane by lane.
    #[inline(always)]
    unsafe fn map_lanes(self, f: impl Fn(Self::E) -> Self::E) -> Self {
        let mut buf = self.to_array();
        for v in buf.iter_mut().take(Self::LANES) {
            *v = f(*v);
        }
        Self::load(buf.as_ptr())
    }
    /// Sum of the lanes, pairwise in a fixed order.
    /// 1 / self for finite non-zero lanes. f32 vector levels: the hardware reciprocal
    /// estimate refined by one Newton step (within about 2 ulp, and several times the
    /// throughput of a division: the RNN gate kernels take five per vector); elsewhere
    /// an exact division. Zero or infinite lanes may give NaN.
    #[inline(always)]
    unsafe fn recip(self) -> Self {
        Self::splat(Self::E::ONE).div(self)
    }
    #[inline(always)]
    unsafe fn hsum(self) -> Self::E {
        let mut a = self.to_array();
        let mut w = Self::LANES / 2;
        while w > 0 {
            for i in 0..w {
                a[i] += a[i + w];
            }
            w /= 2;
        }
        a[0]
    }
    /// Largest lane by `max` semantics, in a fixed order.
    #[inline(always)]
    unsafe fn hmax(self) -> Self::E {
        let a = self.to_array();
        let mut m = a[0];
        for &v in a.iter().take(Self::LANES).skip(1) {
            m = if m > v { m } else { v };
        }
        m
    }
}

/// Extra bit-level operations of `f32` vectors used by the `f32` math functions.
pub(crate) trait SimdF32: Simd<E = f32> {
    /// 2^n for lanes holding integers in [-126, 127].
    unsafe fn pow2i(self) -> Self;
    /// For positive normal lanes: (mantissa in [0.5, 1), exponent) with self = m * 2^e.
    unsafe fn frexp(self) -> (Self, Self);
    /// |self| with the sign of `s`.
    unsafe fn copysign(self, s: Self) -> Self;
    /// Rounds to the nearest integer, ties to even (|self| < 2^22).
    #[inline(always)]
    unsafe fn round_even(self) -> Self {
        let m = Self::splat(ROUND_MAGIC);
        self.add(m).sub(m)
    }
    /// self * 2^n for integral n in [-152, 130], rounded once (into subnormals or inf).
    #[inline(always)]
    unsafe fn ldexp(self, n: Self) -> Self {
        // 2^n = 2^n1 * 2^n2 with n1, n2 in [-76, 65]: the first product is exact, the
        // second rounds once.
        let n1 = n.mul(Self::splat(0.5)).round_even();
        let n2 = n.sub(n1);
        self.mul(n1.pow2i()).mul(n2.pow2i())
    }
}

// ---------------------------------------------------------------------------------------
// f32 math (Cephes-style), generic over the lane width.

/// 1.5 * 2^23: adding and subtracting it rounds an f32 of magnitude < 2^22 to an integer.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// e^x for f32 lanes: |error| <= ~1 ulp; inf -> inf, -inf -> 0, NaN -> NaN, overflow to inf,
/// gradual underflow to subnormals and 0.
#[inline(always)]
pub(crate) unsafe fn exp_f32<V: SimdF32>(x: V) -> V {
    // Clamp (NaN-preserving: max/min return their second operand for NaN).
    let x = V::splat(89.0).min(V::splat(-104.0).max(x));
    let n = x.mul(V::splat(std::f32::consts::LOG2_E)).round_even();
    // Cody-Waite: ln 2 = C1 + C2 with C1 exact in 9 bits.
    let r = n.mul_add(V::splat(-0.693_359_4), x);
    let r = n.mul_add(V::splat(2.121_944_4e-4), r);
    let z = r.mul(r);
    let mut p = V::splat(1.987_569_1e-4);
    p = p.mul_add(r, V::splat(1.398_2e-3));
    p = p.mul_add(r, V::splat(8.333_452e-3));
    p = p.mul_add(r, V::splat(4.166_579_6e-2));
    p = p.mul_add(r, V::splat(1.666_666_5e-1));
    p = p.mul_add(r, V::splat(5e-1));
    let p = p.mul_add(z, r).add(V::splat(1.0));
    p.ldexp(n)
}

/// ln(x) for f32 lanes: ~1 ulp; ln(0) = -inf, ln(x < 0) = NaN, ln(inf) = inf, NaN -> NaN,
/// subnormal inputs handled.
#[inline(always)]
pub(crate) unsafe fn ln_f32<V: SimdF32>(x0: V) -> V {
    let tiny = x0.lt(V::splat(f32::MIN_POSITIVE));
    let inf = x0.eq(V::splat(f32::INFINITY));
    let special = V::mask_or(V::mask_or(tiny, inf), x0.is_nan());
    if !V::any(special) {
        // Fast path: every lane positive, normal and finite (same arithmetic as below).
        return ln_core(x0, V::splat(0.0));
    }
    let x = V::select(tiny, x0.mul(V::splat(8_388_608.0)), x0);
    let r = ln_core(x, V::select(tiny, V::splat(-23.0), V::splat(0.0)));
    let r = V::select(inf, x0, r);
    let r = V::select(x0.lt(V::splat(0.0)), V::splat(f32::NAN), r);
    let r = V::select(x0.eq(V::splat(0.0)), V::splat(f32::NEG_INFINITY), r);
    V::select(x0.is_nan(), x0, r)
}

/// ln(x * 2^eadj) for positive normal x (Cephes logf reduction and polynomial).
#[inline(always)]
unsafe fn ln_core<V: SimdF32>(x: V, eadj: V) -> V {
    let (m, e) = x.frexp();
    let e = e.add(eadj);
    let small = m.lt(V::splat(std::f32::consts::FRAC_1_SQRT_2));
    let e = V::select(small, e.sub(V::splat(1.0)), e);
    let f = V::select(small, m.add(m), m).sub(V::splat(1.0));
    let z = f.mul(f);
    let mut p = V::splat(7.037_683_6e-2);
    p = p.mul_add(f, V::splat(-1.151_461e-1));
    p = p.mul_add(f, V::splat(1.167_699_9e-1));
    p = p.mul_add(f, V::splat(-1.242_014_1e-1));
    p = p.mul_add(f, V::splat(1.424_932_3e-1));
    p = p.mul_add(f, V::splat(-1.666_805_8e-1));
    p = p.mul_add(f, V::splat(2.000_071_4e-1));
    p = p.mul_add(f, V::splat(-2.499_999_4e-1));
    p = p.mul_add(f, V::splat(3.333_333e-1));
    let y = p.mul(f).mul(z);
    let y = e.mul_add(V::splat(-2.121_944_4e-4), y);
    let y = z.mul_add(V::splat(-0.5), y);
    let r = f.add(y);
    e.mul_add(V::splat(0.693_359_4), r)
}

/// ln(1 + t) for f32 lanes, t >= -1: ln(u) + (t - (u - 1)) / u with u = 1 + t, which
/// corrects the rounding of u.
#[inline(always)]
pub(crate) unsafe fn ln_1p_f32<V: SimdF32>(t: V) -> V {
    let one = V::splat(1.0);
    let u = one.add(t);
    let c = t.sub(u.sub(one)).div(u);
    let r = ln_f32(u).add(c);
    // u = inf (t huge or inf): the correction is NaN or 0; the answer is ln(u).
    V::select(u.eq(V::splat(f32::INFINITY)), u, r)
}

/// tanh(x) for f32 lanes: odd polynomial for |x| < 0.625, 1 - 2 / (e^{2|x|} + 1) beyond.
#[inline(always)]
pub(crate) unsafe fn tanh_f32<V: SimdF32>(x: V) -> V {
    let a = x.abs();
    let z = x.mul(x);
    let mut p = V::splat(-5.704_988_7e-3);
    p = p.mul_add(z, V::splat(2.063_909e-2));
    p = p.mul_add(z, V::splat(-5.373_971_6e-2));
    p = p.mul_add(z, V::splat(1.333_144_2e-1));
    p = p.mul_add(z, V::splat(-3.333_328e-1));
    // Odd: computed on |x| and signed afterwards, so tanh(-0) = -0.
    let small = p.mul(z).mul_add(a, a).copysign(x);
    let e = exp_f32(a.add(a));
    let one = V::splat(1.0);
    let big = one.sub(V::splat(2.0).div(e.add(one))).copysign(x);
    V::select(a.lt(V::splat(0.625)), small, big)
}

// ---------------------------------------------------------------------------------------
// Scalar implementations (one lane; every architecture).

#[derive(Clone, Copy)]
pub(crate) struct S32(f32);
#[derive(Clone, Copy)]
pub(crate) struct S64(f64);

macro_rules! scalar_common {
    ($t:ty, $w:ident) => {
        type E = $t;
        type M = bool;
        const LANES: usize = 1;
        #[inline(always)]
        unsafe fn splat(v: $t) -> Self {
            $w(v)
        }
        #[inline(always)]
        unsafe fn load(p: *const $t) -> Self {
            $w(*p)
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut $t) {
            *p = self.0
        }
        #[inline(always)]
        unsafe fn add(self, b: Self) -> Self {
            $w(self.0 + b.0)
        }
        #[inline(always)]
        unsafe fn sub(self, b: Self) -> Self {
            $w(self.0 - b.0)
        }
        #[inline(always)]
        unsafe fn mul(self, b: Self) -> Self {
            $w(self.0 * b.0)
        }
        #[inline(always)]
        unsafe fn div(self, b: Self) -> Self {
            $w(self.0 / b.0)
        }
        #[inline(always)]
        unsafe fn mul_add(self, b: Self, c: Self) -> Self {
            // Not fused: a software fma would be far slower than the vector levels.
            $w(self.0 * b.0 + c.0)
        }
        #[inline(always)]
        unsafe fn max(self, b: Self) -> Self {
            if self.0 > b.0 {
                self
            } else {
                b
            }
        }
        #[inline(always)]
        unsafe fn min(self, b: Self) -> Self {
            if self.0 < b.0 {
                self
            } else {
                b
            }
        }
        #[inline(always)]
        unsafe fn abs(self) -> Self {
            $w(self.0.abs())
        }
        #[inline(always)]
        unsafe fn gt(self, b: Self) -> bool {
            self.0 > b.0
        }
        #[inline(always)]
        unsafe fn lt(self, b: Self) -> bool {
            self.0 < b.0
        }
        #[inline(always)]
        unsafe fn eq(self, b: Self) -> bool {
            self.0 == b.0
        }
        #[inline(always)]
        unsafe fn is_nan(self) -> bool {
            self.0.is_nan()
        }
        #[inline(always)]
        unsafe fn mask_or(a: bool, b: bool) -> bool {
            a | b
        }
        #[inline(always)]
        unsafe fn mask_andnot(a: bool, b: bool) -> bool {
            a & !b
        }
        #[inline(always)]
        unsafe fn any(m: bool) -> bool {
            m
        }
        #[inline(always)]
        unsafe fn select(m: bool, a: Self, b: Self) -> Self {
            if m {
                a
            } else {
                b
            }
        }
    };
}

impl Simd for S32 {
    scalar_common!(f32, S32);
    #[inline(always)]
    unsafe fn exp(self) -> Self {
        exp_f32(self)
    }
    #[inline(always)]
    unsafe fn ln(self) -> Self {
        ln_f32(self)
    }
    #[inline(always)]
    unsafe fn ln_1p(self) -> Self {
        ln_1p_f32(self)
    }
    #[inline(always)]
    unsafe fn tanh(self) -> Self {
        tanh_f32(self)
    }
}

impl SimdF32 for S32 {
    #[inline(always)]
    unsafe fn pow2i(self) -> Self {
        S32(f32::from_bits((((self.0 as i32) + 127) as u32) << 23))
    }
    #[inline(always)]
    unsafe fn frexp(self) -> (Self, Self) {
        let b = self.0.to_bits();
        let e = ((b >> 23) as i32) - 126;
        (
            S32(f32::from_bits((b & 0x007f_ffff) | 0x3f00_0000)),
            S32(e as f32),
        )
    }
    #[inline(always)]
    unsafe fn copysign(self, s: Self) -> Self {
        S32(self.0.copysign(s.0))
    }
}

impl Simd for S64 {
    scalar_common!(f64, S64);
    #[inline(always)]
    unsafe fn exp(self) -> Self {
        S64(self.0.exp())
    }
    #[inline(always)]
    unsafe fn ln(self) -> Self {
        S64(self.0.ln())
    }
    #[inline(always)]
    unsafe fn ln_1p(self) -> Self {
        S64(self.0.ln_1p())
    }
    #[inline(always)]
    unsafe fn tanh(self) -> Self {
        S64(self.0.tanh())
    }
}

// ---------------------------------------------------------------------------------------
// x86-64 implementations.

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{Avx2F32, Avx2F64, Avx512F32, Avx512F64};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;
    use std::arch::x86_64::*;

    #[derive(Clone, Copy)]
    pub(crate) struct Avx2F32(__m256);
    #[derive(Clone, Copy)]
    pub(crate) struct Avx2F64(__m256d);
    #[derive(Clone, Copy)]
    pub(crate) struct Avx512F32(__m512);
    #[derive(Clone, Copy)]
    pub(crate) struct Avx512F64(__m512d);

    impl Simd for Avx2F32 {
        type E = f32;
        type M = __m256;
        const LANES: usize = 8;
        #[inline(always)]
        unsafe fn splat(v: f32) -> Self {
            Self(_mm256_set1_ps(v))
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            Self(_mm256_loadu_ps(p))
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            _mm256_storeu_ps(p, self.0)
        }
        #[inline(always)]
        unsafe fn add(self, b: Self) -> Self {
            Self(_mm256_add_ps(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn sub(self, b: Self) -> Self {
            Self(_mm256_sub_ps(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn mul(self, b: Self) -> Self {
            Self(_mm256_mul_ps(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn div(self, b: Self) -> Self {
            Self(_mm256_div_ps(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn recip(self) -> Self {
            // 12-bit estimate, one Newton step r (2 - x r) = r + r (1 - x r).
            let r = _mm256_rcp_ps(self.0);
            let e = _mm256_fnmadd_ps(self.0, r, _mm256_set1_ps(1.0));
            Self(_mm256_fmadd_ps(r, e, r))
        }
        #[inline(always)]
        unsafe fn mul_add(self, b: Self, c: Self) -> Self {
            Self(_mm256_fmadd_ps(self.0, b.0, c.0))
        }
        #[inline(always)]
        unsafe fn max(self, b: Self) -> Self {
            Self(_mm256_max_ps(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn min(self, b: Self) -> Self {
            Self(_mm256_min_ps(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn abs(self) -> Self {
            Self(_mm256_andnot_ps(_mm256_set1_ps(-0.0), self.0))
        }
        #[inline(always)]
        unsafe fn gt(self, b: Self) -> __m256 {
            _mm256_cmp_ps(self.0, b.0, _CMP_GT_OQ)
        }
        #[inline(always)]
        unsafe fn lt(self, b: Self) -> __m256 {
            _mm256_cmp_ps(self.0, b.0, _CMP_LT_OQ)
        }
        #[inline(always)]
        unsafe fn eq(self, b: Self) -> __m256 {
            _mm256_cmp_ps(self.0, b.0, _CMP_EQ_OQ)
        }
        #[inline(always)]
        unsafe fn is_nan(self) -> __m256 {
            _mm256_cmp_ps(self.0, self.0, _CMP_UNORD_Q)
        }
        #[inline(always)]
        unsafe fn mask_or(a: __m256, b: __m256) -> __m256 {
            _mm256_or_ps(a, b)
        }
        #[inline(always)]
        unsafe fn mask_andnot(a: __m256, b: __m256) -> __m256 {
            _mm256_andnot_ps(b, a)
        }
        #[inline(always)]
        unsafe fn any(m: __m256) -> bool {
            _mm256_movemask_ps(m) != 0
        }
        #[inline(always)]
        unsafe fn select(m: __m256, a: Self, b: Self) -> Self {
            Self(_mm256_blendv_ps(b.0, a.0, m))
        }
        #[inline(always)]
        unsafe fn exp(self) -> Self {
            exp_f32(self)
        }
        #[inline(always)]
        unsafe fn ln(self) -> Self {
            ln_f32(self)
        }
        #[inline(always)]
        unsafe fn ln_1p(self) -> Self {
            ln_1p_f32(self)
        }
        #[inline(always)]
        unsafe fn tanh(self) -> Self {
            tanh_f32(self)
        }
    }

    impl SimdF32 for Avx2F32 {
        #[inline(always)]
        unsafe fn pow2i(self) -> Self {
            let n = _mm256_cvtps_epi32(self.0);
            let b = _mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(127)), 23);
            Self(_mm256_castsi256_ps(b))
        }
        #[inline(always)]
        unsafe fn frexp(self) -> (Self, Self) {
            let b = _mm256_castps_si256(self.0);
            let e = _mm256_sub_epi32(_mm256_srli_epi32(b, 23), _mm256_set1_epi32(126));
            let m = _mm256_or_si256(
                _mm256_and_si256(b, _mm256_set1_epi32(0x007f_ffff)),
                _mm256_set1_epi32(0x3f00_0000),
            );
            (Self(_mm256_castsi256_ps(m)), Self(_mm256_cvtepi32_ps(e)))
        }
        #[inline(always)]
        unsafe fn copysign(self, s: Self) -> Self {
            let sign = _mm256_set1_ps(-0.0);
            Self(_mm256_or_ps(
                _mm256_andnot_ps(sign, self.0),
                _mm256_and_ps(sign, s.0),
            ))
        }
    }

    impl Simd for Avx2F64 {
        type E = f64;
        type M = __m256d;
        const LANES: usize = 4;
        #[inline(always)]
        unsafe fn splat(v: f64) -> Self {
            Self(_mm256_set1_pd(v))
        }
        #[inline(always)]
        unsafe fn load(p: *const f64) -> Self {
            Self(_mm256_loadu_pd(p))
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f64) {
            _mm256_storeu_pd(p, self.0)
        }
        #[inline(always)]
        unsafe fn add(self, b: Self) -> Self {
            Self(_mm256_add_pd(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn sub(self, b: Self) -> Self {
            Self(_mm256_sub_pd(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn mul(self, b: Self) -> Self {
            Self(_mm256_mul_pd(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn div(self, b: Self) -> Self {
            Self(_mm256_div_pd(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn mul_add(self, b: Self, c: Self) -> Self {
            Self(_mm256_fmadd_pd(self.0, b.0, c.0))
        }
        #[inline(always)]
        unsafe fn max(self, b: Self) -> Self {
            Self(_mm256_max_pd(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn min(self, b: Self) -> Self {
            Self(_mm256_min_pd(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn abs(self) -> Self {
            Self(_mm256_andnot_pd(_mm256_set1_pd(-0.0), self.0))
        }
        #[inline(always)]
        unsafe fn gt(self, b: Self) -> __m256d {
            _mm256_cmp_pd(self.0, b.0, _CMP_GT_OQ)
        }
        #[inline(always)]
        unsafe fn lt(self, b: Self) -> __m256d {
            _mm256_cmp_pd(self.0, b.0, _CMP_LT_OQ)
        }
        #[inline(always)]
        unsafe fn eq(self, b: Self) -> __m256d {
            _mm256_cmp_pd(self.0, b.0, _CMP_EQ_OQ)
        }
        #[inline(always)]
        unsafe fn is_nan(self) -> __m256d {
            _mm256_cmp_pd(self.0, self.0, _CMP_UNORD_Q)
        }
        #[inline(always)]
        unsafe fn mask_or(a: __m256d, b: __m256d) -> __m256d {
            _mm256_or_pd(a, b)
        }
        #[inline(always)]
        unsafe fn mask_andnot(a: __m256d, b: __m256d) -> __m256d {
            _mm256_andnot_pd(b, a)
        }
        #[inline(always)]
        unsafe fn any(m: __m256d) -> bool {
            _mm256_movemask_pd(m) != 0
        }
        #[inline(always)]
        unsafe fn select(m: __m256d, a: Self, b: Self) -> Self {
            Self(_mm256_blendv_pd(b.0, a.0, m))
        }
        #[inline(always)]
        unsafe fn exp(self) -> Self {
            self.map_lanes(f64::exp)
        }
        #[inline(always)]
        unsafe fn ln(self) -> Self {
            self.map_lanes(f64::ln)
        }
        #[inline(always)]
        unsafe fn ln_1p(self) -> Self {
            self.map_lanes(f64::ln_1p)
        }
        #[inline(always)]
        unsafe fn tanh(self) -> Self {
            self.map_lanes(f64::tanh)
        }
    }

    impl Simd for Avx512F32 {
        type E = f32;
        type M = __mmask16;
        const LANES: usize = 16;
        #[inline(always)]
        unsafe fn splat(v: f32) -> Self {
            Self(_mm512_set1_ps(v))
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            Self(_mm512_loadu_ps(p))
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            _mm512_storeu_ps(p, self.0)
        }
        #[inline(always)]
        unsafe fn load_partial(p: *const f32, n: usize, fill: f32) -> Self {
            let k: __mmask16 = ((1u32 << n.min(16)) - 1) as __mmask16;
            // SAFETY: masked-off lanes are not read (no fault), the caller guarantees n reads.
            Self(_mm512_mask_loadu_ps(_mm512_set1_ps(fill), k, p))
        }
        #[inline(always)]
        unsafe fn store_partial(self, p: *mut f32, n: usize) {
            let k: __mmask16 = ((1u32 << n.min(16)) - 1) as __mmask16;
            // SAFETY: only the first n lanes are written.
            _mm512_mask_storeu_ps(p, k, self.0)
        }
        #[inline(always)]
        unsafe fn add(self, b: Self) -> Self {
            Self(_mm512_add_ps(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn sub(self, b: Self) -> Self {
            Self(_mm512_sub_ps(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn mul(self, b: Self) -> Self {
            Self(_mm512_mul_ps(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn div(self, b: Self) -> Self {
            Self(_mm512_div_ps(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn recip(self) -> Self {
            // 14-bit estimate, one Newton step r (2 - x r) = r + r (1 - x r).
            let r = _mm512_rcp14_ps(self.0);
            let e = _mm512_fnmadd_ps(self.0, r, _mm512_set1_ps(1.0));
            Self(_mm512_fmadd_ps(r, e, r))
        }
        #[inline(always)]
        unsafe fn mul_add(self, b: Self, c: Self) -> Self {
            Self(_mm512_fmadd_ps(self.0, b.0, c.0))
        }
        #[inline(always)]
        unsafe fn max(self, b: Self) -> Self {
            Self(_mm512_max_ps(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn min(self, b: Self) -> Self {
            Self(_mm512_min_ps(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn abs(self) -> Self {
            Self(_mm512_abs_ps(self.0))
        }
        #[inline(always)]
        unsafe fn gt(self, b: Self) -> __mmask16 {
            _mm512_cmp_ps_mask(self.0, b.0, _CMP_GT_OQ)
        }
        #[inline(always)]
        unsafe fn lt(self, b: Self) -> __mmask16 {
            _mm512_cmp_ps_mask(self.0, b.0, _CMP_LT_OQ)
        }
        #[inline(always)]
        unsafe fn eq(self, b: Self) -> __mmask16 {
            _mm512_cmp_ps_mask(self.0, b.0, _CMP_EQ_OQ)
        }
        #[inline(always)]
        unsafe fn is_nan(self) -> __mmask16 {
            _mm512_cmp_ps_mask(self.0, self.0, _CMP_UNORD_Q)
        }
        #[inline(always)]
        unsafe fn mask_or(a: __mmask16, b: __mmask16) -> __mmask16 {
            a | b
        }
        #[inline(always)]
        unsafe fn mask_andnot(a: __mmask16, b: __mmask16) -> __mmask16 {
            a & !b
        }
        #[inline(always)]
        unsafe fn any(m: __mmask16) -> bool {
            m != 0
        }
        #[inline(always)]
        unsafe fn select(m: __mmask16, a: Self, b: Self) -> Self {
            Self(_mm512_mask_blend_ps(m, b.0, a.0))
        }
        #[inline(always)]
        unsafe fn exp(self) -> Self {
            exp_f32(self)
        }
        #[inline(always)]
        unsafe fn ln(self) -> Self {
            ln_f32(self)
        }
        #[inline(always)]
        unsafe fn ln_1p(self) -> Self {
            ln_1p_f32(self)
        }
        #[inline(always)]
        unsafe fn tanh(self) -> Self {
            tanh_f32(self)
        }
    }

    impl SimdF32 for Avx512F32 {
        // Same results as the generic versions, in one instruction each.
        #[inline(always)]
        unsafe fn round_even(self) -> Self {
            Self(_mm512_roundscale_ps(
                self.0,
                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC,
            ))
        }
        #[inline(always)]
        unsafe fn ldexp(self, n: Self) -> Self {
            Self(_mm512_scalef_ps(self.0, n.0))
        }
        #[inline(always)]
        unsafe fn pow2i(self) -> Self {
            let n = _mm512_cvtps_epi32(self.0);
            let b = _mm512_slli_epi32(_mm512_add_epi32(n, _mm512_set1_epi32(127)), 23);
            Self(_mm512_castsi512_ps(b))
        }
        #[inline(always)]
        unsafe fn frexp(self) -> (Self, Self) {
            let b = _mm512_castps_si512(self.0);
            let e = _mm512_sub_epi32(_mm512_srli_epi32(b, 23), _mm512_set1_epi32(126));
            let m = _mm512_or_si512(
                _mm512_and_si512(b, _mm512_set1_epi32(0x007f_ffff)),
                _mm512_set1_epi32(0x3f00_0000),
            );
            (Self(_mm512_castsi512_ps(m)), Self(_mm512_cvtepi32_ps(e)))
        }
        #[inline(always)]
        unsafe fn copysign(self, s: Self) -> Self {
            let sign = _mm512_set1_epi32(i32::MIN);
            let a = _mm512_castps_si512(self.0);
            let b = _mm512_castps_si512(s.0);
            Self(_mm512_castsi512_ps(_mm512_or_si512(
                _mm512_andnot_si512(sign, a),
                _mm512_and_si512(sign, b),
            )))
        }
    }

    impl Simd for Avx512F64 {
        type E = f64;
        type M = __mmask8;
        const LANES: usize = 8;
        #[inline(always)]
        unsafe fn splat(v: f64) -> Self {
            Self(_mm512_set1_pd(v))
        }
        #[inline(always)]
        unsafe fn load(p: *const f64) -> Self {
            Self(_mm512_loadu_pd(p))
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f64) {
            _mm512_storeu_pd(p, self.0)
        }
        #[inline(always)]
        unsafe fn load_partial(p: *const f64, n: usize, fill: f64) -> Self {
            let k: __mmask8 = ((1u32 << n.min(8)) - 1) as __mmask8;
            // SAFETY: masked-off lanes are not read (no fault), the caller guarantees n reads.
            Self(_mm512_mask_loadu_pd(_mm512_set1_pd(fill), k, p))
        }
        #[inline(always)]
        unsafe fn store_partial(self, p: *mut f64, n: usize) {
            let k: __mmask8 = ((1u32 << n.min(8)) - 1) as __mmask8;
            // SAFETY: only the first n lanes are written.
            _mm512_mask_storeu_pd(p, k, self.0)
        }
        #[inline(always)]
        unsafe fn add(self, b: Self) -> Self {
            Self(_mm512_add_pd(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn sub(self, b: Self) -> Self {
            Self(_mm512_sub_pd(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn mul(self, b: Self) -> Self {
            Self(_mm512_mul_pd(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn div(self, b: Self) -> Self {
            Self(_mm512_div_pd(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn mul_add(self, b: Self, c: Self) -> Self {
            Self(_mm512_fmadd_pd(self.0, b.0, c.0))
        }
        #[inline(always)]
        unsafe fn max(self, b: Self) -> Self {
            Self(_mm512_max_pd(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn min(self, b: Self) -> Self {
            Self(_mm512_min_pd(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn abs(self) -> Self {
            Self(_mm512_abs_pd(self.0))
        }
        #[inline(always)]
        unsafe fn gt(self, b: Self) -> __mmask8 {
            _mm512_cmp_pd_mask(self.0, b.0, _CMP_GT_OQ)
        }
        #[inline(always)]
        unsafe fn lt(self, b: Self) -> __mmask8 {
            _mm512_cmp_pd_mask(self.0, b.0, _CMP_LT_OQ)
        }
        #[inline(always)]
        unsafe fn eq(self, b: Self) -> __mmask8 {
            _mm512_cmp_pd_mask(self.0, b.0, _CMP_EQ_OQ)
        }
        #[inline(always)]
        unsafe fn is_nan(self) -> __mmask8 {
            _mm512_cmp_pd_mask(self.0, self.0, _CMP_UNORD_Q)
        }
        #[inline(always)]
        unsafe fn mask_or(a: __mmask8, b: __mmask8) -> __mmask8 {
            a | b
        }
        #[inline(always)]
        unsafe fn mask_andnot(a: __mmask8, b: __mmask8) -> __mmask8 {
            a & !b
        }
        #[inline(always)]
        unsafe fn any(m: __mmask8) -> bool {
            m != 0
        }
        #[inline(always)]
        unsafe fn select(m: __mmask8, a: Self, b: Self) -> Self {
            Self(_mm512_mask_blend_pd(m, b.0, a.0))
        }
        #[inline(always)]
        unsafe fn exp(self) -> Self {
            self.map_lanes(f64::exp)
        }
        #[inline(always)]
        unsafe fn ln(self) -> Self {
            self.map_lanes(f64::ln)
        }
        #[inline(always)]
        unsafe fn ln_1p(self) -> Self {
            self.map_lanes(f64::ln_1p)
        }
        #[inline(always)]
        unsafe fn tanh(self) -> Self {
            self.map_lanes(f64::tanh)
        }
    }
}

// ---------------------------------------------------------------------------------------
// Dispatch.

/// A kernel body generic over the vector type; `run` must be `#[inline(always)]` so that it
/// is compiled inside the `#[target_feature]` function that calls it.
pub(crate) trait Kernel {
    type Out;
    /// # Safety
    /// The CPU supports `V`'s instruction set.
    unsafe fn run<V: Simd>(self) -> Self::Out;
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn run_avx512<K: Kernel>(k: K, f64: bool) -> K::Out {
    if f64 {
        k.run::<Avx512F64>()
    } else {
        k.run::<Avx512F32>()
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2<K: Kernel>(k: K, f64: bool) -> K::Out {
    if f64 {
        k.run::<Avx2F64>()
    } else {
        k.run::<Avx2F32>()
    }
}

/// The level to use when `want` is asked for: never above what the CPU supports.
pub(crate) fn effective(want: Level) -> Level {
    let have = crate::simd::level();
    match want.min(have) {
        #[cfg(target_arch = "x86_64")]
        Level::Avx2Fma
            if !(std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")) =>
        {
            Level::Scalar
        }
        l => l,
    }
}

/// Runs `k` with the vector type of element type `T` at level `effective(level)`.
#[inline]
pub(crate) fn dispatch<T: Float, K: Kernel>(level: Level, k: K) -> K::Out {
    match effective(level) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: effective() returns Avx512 only when simd::level() detected avx512f.
        Level::Avx512 => unsafe { run_avx512(k, T::IS_F64) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: effective() returns Avx2Fma only when avx2 and fma were detected.
        Level::Avx2Fma => unsafe { run_avx2(k, T::IS_F64) },
        _ => {
            // SAFETY: the scalar types need no CPU feature.
            unsafe {
                if T::IS_F64 {
                    k.run::<S64>()
                } else {
                    k.run::<S32>()
                }
            }
        }
    }
}

/// Reinterprets `&[T]` as `&[U]` when they are the same type (empty otherwise, which
/// cannot happen for the `T`/`V::E` pairs [`dispatch`] creates).
#[inline(always)]
pub(crate) fn cast<T: 'static, U: 'static>(x: &[T]) -> &[U] {
    if TypeId::of::<T>() == TypeId::of::<U>() {
        // SAFETY: T and U are the same type, so layout and validity are identical.
        unsafe { std::slice::from_raw_parts(x.as_ptr() as *const U, x.len()) }
    } else {
        &[]
    }
}

/// Mutable version of [`cast`].
#[inline(always)]
pub(crate) fn cast_mut<T: 'static, U: 'static>(x: &mut [T]) -> &mut [U] {
    if TypeId::of::<T>() == TypeId::of::<U>() {
        // SAFETY: T and U are the same type; the borrow of `x` is moved into the result.
        unsafe { std::slice::from_raw_parts_mut(x.as_mut_ptr() as *mut U, x.len()) }
    } else {
        &mut []
    }
}

/// Converts a scalar between the same types (see [`cast`]).
#[inline(always)]
pub(crate) fn cast_val<T: Float, U: Float>(v: T) -> U {
    U::from_f64(v.to_f64())
}

#[cfg(test)]
pub(crate) mod testutil {
    use crate::simd::Level;

    /// Every level, each capped by `effective` to what this CPU has.
    pub(crate) const LEVELS: [Level; 3] = [Level::Scalar, Level::Avx2Fma, Level::Avx512];

    /// Sizes around every lane width, unroll, block and chunk size used by the kernels.
    pub(crate) fn sizes() -> Vec<usize> {
        let mut v = vec![
            0, 1, 2, 3, 4, 5, 7, 8, 9, 13, 15, 16, 17, 31, 32, 33, 47, 48, 49,
        ];
        v.extend([63, 64, 65, 97, 127, 128, 129, 1000, 2047, 2048, 2049, 4093]);
        v.extend([16383, 16384, 16385, 32767, 32768, 32769, 100_003]);
        v
    }

    /// A deterministic pseudo-random generator (xorshift), values in [lo, hi).
    pub(crate) struct Rng(u64);
    impl Rng {
        pub(crate) fn new(seed: u64) -> Self {
            Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
        }
        pub(crate) fn next_u64(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }
        pub(crate) fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
            let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            lo + (hi - lo) * u
        }
        pub(crate) fn vec(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f64> {
            (0..n).map(|_| self.uniform(lo, hi)).collect()
        }
    }

    /// Distance in units in the last place between two f32 (0 when both NaN).
    pub(crate) fn ulps32(a: f32, b: f32) -> u64 {
        if a.is_nan() && b.is_nan() {
            return 0;
        }
        if a.is_nan() || b.is_nan() {
            return u64::MAX;
        }
        let key = |x: f32| {
            let i = x.to_bits() as i32;
            (if i < 0 { i32::MIN - i } else { i }) as i64
        };
        (key(a) - key(b)).unsigned_abs()
    }

    /// Relative distance of two f64 (0 when equal or both NaN).
    pub(crate) fn rel64(a: f64, b: f64) -> f64 {
        if a == b || (a.is_nan() && b.is_nan()) {
            return 0.0;
        }
        if a.is_nan() || b.is_nan() {
            return f64::INFINITY;
        }
        (a - b).abs() / b.abs().max(f64::MIN_POSITIVE)
    }
}
