//! Element-wise activations and their derivatives.
//!
//! CONTRACT: `x`, `y`, `gy`, `gx` all have the same length (checked). Formulas are
//! PyTorch's: softplus(x) = log(1 + exp(beta x)) / beta, and x itself where
//! beta x > threshold; softsign(x) = x / (1 + |x|); leaky_relu(x) = x if x > 0 else slope x;
//! relu'(0) = 0; elu(x) = x if x > 0 else alpha (e^x - 1), elu'(0) = alpha; gelu(x) = x Φ(x)
//! with Φ(x) = erfc(-x / √2) / 2 (exact) or 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))
//! (`GeluTanh`, computed as x σ(2 √(2/π) (x + 0.044715 x³)), the same function, which
//! does not cancel for negative x). GELU's Φ comes from a Taylor series near 0 and a
//! continued fraction for erfc beyond, with e^{-x²/2} computed from an exactly split x²: f64
//! within a few 1e-15 relative, f32 within 6 ulps, also in the negative tail. NaN
//! propagates.
//!
//! Implementation: one generic kernel per function over [`crate::vmath::Simd`] (AVX-512,
//! AVX2+FMA or scalar, chosen at run time). Tails shorter than a vector go through the same
//! vector code with padded (masked) lanes, so an element's value never depends on where it
//! falls. Inputs of at least `PAR_MIN / cost` elements are split into chunks of
//! `CHUNK / cost` elements (more for large inputs: at most about
//! `threading::MAX_TASKS` chunks) run on the kernel pool, `cost` being the op's relative cost
//! per element ([`cost`]); smaller ones run on the calling thread. The split never
//! changes a value (see above).

use crate::error::KernelError;
use crate::simd::{self, Level};
use crate::threading;
use crate::vmath::{cast, cast_mut, dispatch, Kernel, Simd};
use crate::{Float, Result};

/// Which element-wise function.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Unary {
    Relu,
    LeakyRelu {
        negative_slope: f64,
    },
    Sigmoid,
    Tanh,
    Softsign,
    Softplus {
        beta: f64,
        threshold: f64,
    },
    Exp,
    Log,
    /// x if x > 0 else alpha (e^x - 1).
    Elu {
        alpha: f64,
    },
    /// x Φ(x), Φ the standard normal CDF (exact, through erfc).
    Gelu,
    /// x σ(2 √(2/π) (x + 0.044715 x³)) = 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))).
    GeluTanh,
}

impl Unary {
    /// The op's name in error messages.
    pub fn name(&self) -> &'static str {
        match self {
            Unary::Relu => "relu",
            Unary::LeakyRelu { .. } => "leaky_relu",
            Unary::Sigmoid => "sigmoid",
            Unary::Tanh => "tanh",
            Unary::Softsign => "softsign",
            Unary::Softplus { .. } => "softplus",
            Unary::Exp => "exp",
            Unary::Log => "log",
            Unary::Elu { .. } => "elu",
            Unary::Gelu => "gelu",
            Unary::GeluTanh => "gelu_tanh",
        }
    }
}

/// Inputs of the cheapest ops (cost 1) with fewer elements run on the calling thread;
/// an op of cost c goes parallel from `PAR_MIN / c` elements.
pub const PAR_MIN: usize = 32 * 1024;
/// Elements per parallel task of the cheapest ops; `CHUNK / c` for an op of cost c (a
/// multiple of 64; results do not depend on it).
pub const CHUNK: usize = 16 * 1024;

/// Relative cost per element (a power of two: 1 for relu's forward), from serial times
/// measured on Zen 4 (f32 AVX-512, ns per element: relu 0.08, simple backward 0.12,
/// exp 0.2, sigmoid 0.27, log / elu / gelu_tanh 0.4, tanh 0.43, softplus 1.0, gelu 9).
/// Two threads beat one from about 2.5 us of serial work; measured break-even sizes:
/// relu forward 16-32K, simple backward 12-16K, exp 4-8K, tanh 4K, gelu below 4K.
pub(crate) fn cost(op: Unary, backward: bool) -> usize {
    use Unary::*;
    match (op, backward) {
        (Relu | LeakyRelu { .. }, false) => 1,
        (Softsign, false) => 2,
        (Relu | LeakyRelu { .. } | Sigmoid | Tanh | Exp | Log | Softsign, true) => 2,
        (Exp | Sigmoid | Log | Elu { .. } | GeluTanh, false) => 4,
        (Elu { .. } | GeluTanh | Softplus { .. }, true) => 4,
        (Tanh, false) => 8,
        (Softplus { .. }, false) => 8,
        (Gelu, _) => 16,
    }
}

/// (parallel threshold, elements per task) of `op` over `len` elements.
fn split(op: Unary, backward: bool, len: usize) -> (usize, usize) {
    let c = cost(op, backward);
    (
        PAR_MIN / c,
        threading::task_len(len, CHUNK / c).next_multiple_of(64),
    )
}

fn check_same(op: Unary, what: &str, a: usize, b: usize) -> Result<()> {
    if a != b {
        return Err(KernelError::ShapeMismatch {
            op: op.name(),
            detail: format!("x has {a} elements but {what} has {b}"),
        });
    }
    Ok(())
}

/// y = f(x).
pub fn forward<T: Float>(op: Unary, x: &[T], y: &mut [T]) -> Result<()> {
    forward_at(simd::level(), op, x, y)
}

/// gx = gy * f'(x). `y` must be the output of [`forward`] on `x` (sigmoid, tanh and exp
/// read their derivative from it).
pub fn backward<T: Float>(op: Unary, x: &[T], y: &[T], gy: &[T], gx: &mut [T]) -> Result<()> {
    backward_at(simd::level(), op, x, y, gy, gx)
}

/// f'(x) itself (`y` = f(x) as for [`backward`]): `backward` with a gradient of ones.
pub fn derivative<T: Float>(op: Unary, x: &[T], y: &[T], d: &mut [T]) -> Result<()> {
    check_same(op, "y", x.len(), y.len())?;
    check_same(op, "d", x.len(), d.len())?;
    let ones = vec![T::ONE; x.len()];
    backward_at(simd::level(), op, x, y, &ones, d)
}

/// y = f(y), in place (the same values [`forward`] gives).
pub fn forward_inplace<T: Float>(op: Unary, y: &mut [T]) -> Result<()> {
    let level = simd::level();
    let run = |yc: &mut [T]| dispatch::<T, _>(level, FwdInPlace { op, y: yc });
    let (par_min, chunk) = split(op, false, y.len());
    if y.len() < par_min {
        run(y);
    } else {
        threading::for_each_chunk_mut(y, chunk, |_, yc| run(yc));
    }
    Ok(())
}

/// [`forward`] at a given SIMD level (capped to what the CPU supports).
pub(crate) fn forward_at<T: Float>(level: Level, op: Unary, x: &[T], y: &mut [T]) -> Result<()> {
    check_same(op, "y", x.len(), y.len())?;
    let run = |xc: &[T], yc: &mut [T]| dispatch::<T, _>(level, Fwd { op, x: xc, y: yc });
    let (par_min, chunk) = split(op, false, x.len());
    if x.len() < par_min {
        run(x, y);
    } else {
        threading::for_each_chunk_mut(y, chunk, |c, yc| {
            let lo = c * chunk;
            run(&x[lo..lo + yc.len()], yc)
        });
    }
    Ok(())
}

/// [`backward`] at a given SIMD level (capped to what the CPU supports).
pub(crate) fn backward_at<T: Float>(
    level: Level,
    op: Unary,
    x: &[T],
    y: &[T],
    gy: &[T],
    gx: &mut [T],
) -> Result<()> {
    check_same(op, "y", x.len(), y.len())?;
    check_same(op, "gy", x.len(), gy.len())?;
    check_same(op, "gx", x.len(), gx.len())?;
    // The derivative reads either x or y.
    let a = match op {
        Unary::Sigmoid | Unary::Tanh | Unary::Exp => y,
        _ => x,
    };
    let run = |ac: &[T], gc: &[T], oc: &mut [T]| {
        dispatch::<T, _>(
            level,
            Bwd {
                op,
                a: ac,
                gy: gc,
                gx: oc,
            },
        )
    };
    let (par_min, chunk) = split(op, true, x.len());
    if x.len() < par_min {
        run(a, gy, gx);
    } else {
        threading::for_each_chunk_mut(gx, chunk, |c, oc| {
            let r = c * chunk..c * chunk + oc.len();
            run(&a[r.clone()], &gy[r], oc)
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Kernels.

/// One-input vector function.
trait F1<V: Simd> {
    unsafe fn f(&self, v: V) -> V;
}
/// Two-input vector function (a = x or y, g = gy).
trait F2<V: Simd> {
    unsafe fn f(&self, a: V, g: V) -> V;
}

/// y[i] = f(x[i]); the tail is a padded vector.
#[inline(always)]
unsafe fn map1<V: Simd, F: F1<V>>(f: F, x: &[V::E], y: &mut [V::E]) {
    let n = x.len().min(y.len());
    let (px, py) = (x.as_ptr(), y.as_mut_ptr());
    let mut i = 0;
    // SAFETY (all pointer uses): i + LANES <= n in the loop, n - i < LANES in the tail.
    while i + 2 * V::LANES <= n {
        let a = f.f(V::load(px.add(i)));
        let b = f.f(V::load(px.add(i + V::LANES)));
        a.store(py.add(i));
        b.store(py.add(i + V::LANES));
        i += 2 * V::LANES;
    }
    while i + V::LANES <= n {
        f.f(V::load(px.add(i))).store(py.add(i));
        i += V::LANES;
    }
    if i < n {
        f.f(V::load_partial(px.add(i), n - i, V::E::ZERO))
            .store_partial(py.add(i), n - i);
    }
}

/// y[i] = f(y[i]) in place; the tail is a padded vector.
#[inline(always)]
unsafe fn map1_inplace<V: Simd, F: F1<V>>(f: F, y: &mut [V::E]) {
    let n = y.len();
    let p = y.as_mut_ptr();
    let mut i = 0;
    // SAFETY (all pointer uses): i + LANES <= n in the loop, n - i < LANES in the tail;
    // each vector is loaded before the same positions are stored.
    while i + V::LANES <= n {
        f.f(V::load(p.add(i))).store(p.add(i));
        i += V::LANES;
    }
    if i < n {
        f.f(V::load_partial(p.add(i), n - i, V::E::ZERO))
            .store_partial(p.add(i), n - i);
    }
}

/// o[i] = f(a[i], g[i]); the tail is a padded vector.
#[inline(always)]
unsafe fn map2<V: Simd, F: F2<V>>(f: F, a: &[V::E], g: &[V::E], o: &mut [V::E]) {
    let n = a.len().min(g.len()).min(o.len());
    let (pa, pg, po) = (a.as_ptr(), g.as_ptr(), o.as_mut_ptr());
    let mut i = 0;
    // SAFETY (all pointer uses): i + LANES <= n in the loop, n - i < LANES in the tail.
    while i + V::LANES <= n {
        f.f(V::load(pa.add(i)), V::load(pg.add(i))).store(po.add(i));
        i += V::LANES;
    }
    if i < n {
        let z = V::E::ZERO;
        let r = f.f(
            V::load_partial(pa.add(i), n - i, z),
            V::load_partial(pg.add(i), n - i, z),
        );
        r.store_partial(po.add(i), n - i);
    }
}

#[inline(always)]
unsafe fn sigmoid_v<V: Simd>(x: V) -> V {
    let one = V::splat(V::E::ONE);
    one.div(one.add(V::splat(V::E::ZERO).sub(x).exp()))
}

struct Relu;
struct Leaky<V>(V);
struct Sigmoid;
struct Tanh;
struct Softsign;
struct Softplus<V> {
    beta: V,
    threshold: V,
    unit: bool,
}
struct Exp;
struct Log;

impl<V: Simd> F1<V> for Relu {
    #[inline(always)]
    unsafe fn f(&self, x: V) -> V {
        // 0 > x ? 0 : x — keeps NaN.
        V::splat(V::E::ZERO).max(x)
    }
}
impl<V: Simd> F2<V> for Relu {
    #[inline(always)]
    unsafe fn f(&self, x: V, g: V) -> V {
        let z = V::splat(V::E::ZERO);
        V::select(x.gt(z), g, z)
    }
}
impl<V: Simd> F1<V> for Leaky<V> {
    #[inline(always)]
    unsafe fn f(&self, x: V) -> V {
        V::select(x.gt(V::splat(V::E::ZERO)), x, x.mul(self.0))
    }
}
impl<V: Simd> F2<V> for Leaky<V> {
    #[inline(always)]
    unsafe fn f(&self, x: V, g: V) -> V {
        V::select(x.gt(V::splat(V::E::ZERO)), g, g.mul(self.0))
    }
}
impl<V: Simd> F1<V> for Sigmoid {
    #[inline(always)]
    unsafe fn f(&self, x: V) -> V {
        sigmoid_v(x)
    }
}
impl<V: Simd> F2<V> for Sigmoid {
    #[inline(always)]
    unsafe fn f(&self, y: V, g: V) -> V {
        g.mul(y.mul(V::splat(V::E::ONE).sub(y)))
    }
}
impl<V: Simd> F1<V> for Tanh {
    #[inline(always)]
    unsafe fn f(&self, x: V) -> V {
        x.tanh()
    }
}
impl<V: Simd> F2<V> for Tanh {
    #[inline(always)]
    unsafe fn f(&self, y: V, g: V) -> V {
        g.mul(V::splat(V::E::ONE).sub(y.mul(y)))
    }
}
impl<V: Simd> F1<V> for Softsign {
    #[inline(always)]
    unsafe fn f(&self, x: V) -> V {
        x.div(V::splat(V::E::ONE).add(x.abs()))
    }
}
impl<V: Simd> F2<V> for Softsign {
    #[inline(always)]
    unsafe fn f(&self, x: V, g: V) -> V {
        let d = V::splat(V::E::ONE).add(x.abs());
        g.div(d.mul(d))
    }
}
impl<V: Simd> F1<V> for Softplus<V> {
    #[inline(always)]
    unsafe fn f(&self, x: V) -> V {
        // log1p(exp(z)) = max(z, 0) + log1p(exp(-|z|)), which never overflows.
        let z = x.mul(self.beta);
        let zero = V::splat(V::E::ZERO);
        let sp = zero.max(z).add(zero.sub(z.abs()).exp().ln_1p());
        // x / 1 == x: skip the division in the common case (same bits).
        let sp = if self.unit { sp } else { sp.div(self.beta) };
        V::select(z.gt(self.threshold), x, sp)
    }
}
impl<V: Simd> F2<V> for Softplus<V> {
    #[inline(always)]
    unsafe fn f(&self, x: V, g: V) -> V {
        let z = x.mul(self.beta);
        V::select(z.gt(self.threshold), g, g.mul(sigmoid_v(z)))
    }
}
impl<V: Simd> F1<V> for Exp {
    #[inline(always)]
    unsafe fn f(&self, x: V) -> V {
        x.exp()
    }
}
impl<V: Simd> F2<V> for Exp {
    #[inline(always)]
    unsafe fn f(&self, y: V, g: V) -> V {
        g.mul(y)
    }
}
impl<V: Simd> F1<V> for Log {
    #[inline(always)]
    unsafe fn f(&self, x: V) -> V {
        x.ln()
    }
}
impl<V: Simd> F2<V> for Log {
    #[inline(always)]
    unsafe fn f(&self, x: V, g: V) -> V {
        g.div(x)
    }
}

/// e^x - 1. `f64`: std's `exp_m1` lane by lane. `f32`: x (1 + x/2! + ... + x^7/8!) for
/// |x| < 0.35 (truncation < 2e-8 relative), e^x - 1 beyond (cancellation at most ~3.4x).
#[inline(always)]
unsafe fn expm1_v<V: Simd>(x: V) -> V {
    if V::E::IS_F64 {
        return x.map_lanes(|v| V::E::from_f64(v.to_f64().exp_m1()));
    }
    let c = |v: f64| V::splat(V::E::from_f64(v));
    let mut p = c(1.0 / 40320.0);
    for f in [5040.0, 720.0, 120.0, 24.0, 6.0, 2.0, 1.0] {
        p = p.mul_add(x, c(1.0 / f));
    }
    let small = x.mul(p);
    let big = x.exp().sub(c(1.0));
    V::select(x.abs().lt(c(0.35)), small, big)
}

/// Coefficients of Φ(x) = 1/2 + x Σ_n r_n x^{2n} (the Taylor series of erf(x / √2) / 2),
/// r_n = (-1)^n / (√(2π) n! (2n + 1) 2^n).
const fn phi_series() -> [f64; 24] {
    let mut r = [0.0; 24];
    let mut fact_pow = 1.0; // n! 2^n
    let mut n = 0;
    while n < 24 {
        let sign = if n % 2 == 0 { 1.0 } else { -1.0 };
        r[n] = sign * 0.398_942_280_401_432_7 / (fact_pow * (2 * n + 1) as f64);
        n += 1;
        fact_pow *= (2 * n) as f64;
    }
    r
}
const PHI_SERIES: [f64; 24] = phi_series();
/// |x| above which Φ(x) is 0 or 1 in f64 (erfc(40 / √2) ~ 1e-350).
const GELU_CLAMP: f64 = 40.0;

/// e^{-x²/2} for |x| <= [`GELU_CLAMP`], with x² split exactly (Veltkamp): x = xh + xl,
/// xh² exact, so the only rounding of the exponent is in the small part.
#[inline(always)]
unsafe fn exp_neg_half_sq<V: Simd>(x: V) -> V {
    let c = |v: f64| V::splat(V::E::from_f64(v));
    let split = if V::E::IS_F64 { 134_217_729.0 } else { 4097.0 };
    let t = x.mul(c(split));
    let xh = t.sub(t.sub(x));
    let xl = x.sub(xh);
    let hi = xh.mul(xh).mul(c(0.5));
    let lo = xh.add(xh).add(xl).mul(xl).mul(c(0.5));
    c(0.0).sub(hi).exp().mul(c(0.0).sub(lo).exp())
}

/// (Φ(x), x clamped to ±[`GELU_CLAMP`], e^{-x²/2}) with Φ the standard normal CDF.
///
/// With z = |x| / √2: for z < T, Φ from the Taylor series above (in x itself, so x / √2
/// is never rounded); for z >= T, erfc(z) = e^{-z²} / √π · 2z / (2z² + 1 - 1·2 / (2z² + 5 -
/// 3·4 / (2z² + 9 - ...))), a continued fraction of fixed depth D evaluated from the tail,
/// and Φ(x) = erfc(z) / 2 for x < 0, 1 - erfc(z) / 2 for x > 0. f32: T = 0.75 (1 - erf(z) cancels at most 3.5x), D = 44, 14
/// terms; f64: T = 1 (at most 6.4x), D = 100, 24 terms (truncation below 1e-8 resp. 1e-16
/// relative).
#[inline(always)]
unsafe fn ncdf<V: Simd>(x: V) -> (V, V, V) {
    let c = |v: f64| V::splat(V::E::from_f64(v));
    let (t_switch, depth, terms) = if V::E::IS_F64 {
        (1.0, 100, 20)
    } else {
        (0.75, 44, 12)
    };
    // NaN-preserving clamp (max/min return their second operand for NaN).
    let xc = c(GELU_CLAMP).min(c(-GELU_CLAMP).max(x));
    let e = exp_neg_half_sq(xc);
    let z = xc.abs().mul(c(std::f64::consts::FRAC_1_SQRT_2));
    let w = xc.mul(xc);
    let mut p = c(PHI_SERIES[terms - 1]);
    for &k in PHI_SERIES[..terms - 1].iter().rev() {
        p = p.mul_add(w, c(k));
    }
    let phi_small = xc.mul_add(p, c(0.5));
    let u = w; // 2 z²
    let mut t = u.add(c((1 + 4 * depth) as f64));
    for n in (1..=depth).rev() {
        let a = ((2 * n - 1) * (2 * n)) as f64;
        t = u.add(c((1 + 4 * (n - 1)) as f64)).sub(c(a).div(t));
    }
    let erfc_big = c(std::f64::consts::FRAC_2_SQRT_PI).mul(e).mul(z).div(t);
    let half = c(0.5);
    let tail = half.mul(erfc_big);
    let big = V::select(xc.lt(c(0.0)), tail, c(1.0).sub(tail));
    let phi = V::select(z.lt(c(t_switch)), phi_small, big);
    (phi, xc, e)
}

/// 2 √(2/π) and 0.044715 of the tanh approximation.
const GELU_K: f64 = 1.595_769_121_605_730_7;
const GELU_KAPPA: f64 = 0.044_715;

struct Elu<V>(V);
struct Gelu;
struct GeluTanh;

impl<V: Simd> F1<V> for Elu<V> {
    #[inline(always)]
    unsafe fn f(&self, x: V) -> V {
        V::select(x.gt(V::splat(V::E::ZERO)), x, expm1_v(x).mul(self.0))
    }
}
impl<V: Simd> F2<V> for Elu<V> {
    #[inline(always)]
    unsafe fn f(&self, x: V, g: V) -> V {
        // PyTorch: alpha e^x for x <= 0 (so elu'(0) = alpha).
        V::select(x.gt(V::splat(V::E::ZERO)), g, g.mul(self.0).mul(x.exp()))
    }
}
impl<V: Simd> F1<V> for Gelu {
    #[inline(always)]
    unsafe fn f(&self, x: V) -> V {
        x.mul(ncdf(x).0)
    }
}
impl<V: Simd> F2<V> for Gelu {
    #[inline(always)]
    unsafe fn f(&self, x: V, g: V) -> V {
        // Φ(x) + x φ(x), φ(x) = e^{-x²/2} / √(2π).
        let (phi, xc, e) = ncdf(x);
        let inv_sqrt_2pi = V::splat(V::E::from_f64(0.398_942_280_401_432_7));
        g.mul(xc.mul(e).mul_add(inv_sqrt_2pi, phi))
    }
}
impl<V: Simd> F1<V> for GeluTanh {
    #[inline(always)]
    unsafe fn f(&self, x: V) -> V {
        let c = |v: f64| V::splat(V::E::from_f64(v));
        let v = x
            .mul(c(GELU_K))
            .mul(x.mul(x).mul_add(c(GELU_KAPPA), c(1.0)));
        x.mul(sigmoid_v(v))
    }
}
impl<V: Simd> F2<V> for GeluTanh {
    #[inline(always)]
    unsafe fn f(&self, x: V, g: V) -> V {
        // d/dx x σ(v) = σ + x σ (1 - σ) v', v' = k (1 + 3 κ x²).
        let c = |v: f64| V::splat(V::E::from_f64(v));
        let x2 = x.mul(x);
        let v = x.mul(c(GELU_K)).mul(x2.mul_add(c(GELU_KAPPA), c(1.0)));
        let s = sigmoid_v(v);
        let dv = c(GELU_K).mul(x2.mul_add(c(3.0 * GELU_KAPPA), c(1.0)));
        let d = x.mul(s).mul(c(1.0).sub(s)).mul_add(dv, s);
        g.mul(d)
    }
}

struct Fwd<'a, T> {
    op: Unary,
    x: &'a [T],
    y: &'a mut [T],
}

impl<T: Float> Kernel for Fwd<'_, T> {
    type Out = ();
    #[inline(always)]
    unsafe fn run<V: Simd>(self) {
        let x: &[V::E] = cast(self.x);
        let y: &mut [V::E] = cast_mut(self.y);
        let c = |v: f64| V::splat(V::E::from_f64(v));
        match self.op {
            Unary::Relu => map1::<V, _>(Relu, x, y),
            Unary::LeakyRelu { negative_slope } => map1(Leaky(c(negative_slope)), x, y),
            Unary::Sigmoid => map1::<V, _>(Sigmoid, x, y),
            Unary::Tanh => map1::<V, _>(Tanh, x, y),
            Unary::Softsign => map1::<V, _>(Softsign, x, y),
            Unary::Softplus { beta, threshold } => map1(
                Softplus {
                    beta: c(beta),
                    threshold: c(threshold),
                    unit: V::E::from_f64(beta) == V::E::ONE,
                },
                x,
                y,
            ),
            Unary::Exp => map1::<V, _>(Exp, x, y),
            Unary::Log => map1::<V, _>(Log, x, y),
            Unary::Elu { alpha } => map1(Elu(c(alpha)), x, y),
            Unary::Gelu => map1::<V, _>(Gelu, x, y),
            Unary::GeluTanh => map1::<V, _>(GeluTanh, x, y),
        }
    }
}

struct FwdInPlace<'a, T> {
    op: Unary,
    y: &'a mut [T],
}

impl<T: Float> Kernel for FwdInPlace<'_, T> {
    type Out = ();
    #[inline(always)]
    unsafe fn run<V: Simd>(self) {
        let y: &mut [V::E] = cast_mut(self.y);
        let c = |v: f64| V::splat(V::E::from_f64(v));
        match self.op {
            Unary::Relu => map1_inplace::<V, _>(Relu, y),
            Unary::LeakyRelu { negative_slope } => map1_inplace(Leaky(c(negative_slope)), y),
            Unary::Sigmoid => map1_inplace::<V, _>(Sigmoid, y),
            Unary::Tanh => map1_inplace::<V, _>(Tanh, y),
            Unary::Softsign => map1_inplace::<V, _>(Softsign, y),
            Unary::Softplus { beta, threshold } => map1_inplace(
                Softplus {
                    beta: c(beta),
                    threshold: c(threshold),
                    unit: V::E::from_f64(beta) == V::E::ONE,
                },
                y,
            ),
            Unary::Exp => map1_inplace::<V, _>(Exp, y),
            Unary::Log => map1_inplace::<V, _>(Log, y),
            Unary::Elu { alpha } => map1_inplace(Elu(c(alpha)), y),
            Unary::Gelu => map1_inplace::<V, _>(Gelu, y),
            Unary::GeluTanh => map1_inplace::<V, _>(GeluTanh, y),
        }
    }
}

struct Bwd<'a, T> {
    op: Unary,
    a: &'a [T],
    gy: &'a [T],
    gx: &'a mut [T],
}

impl<T: Float> Kernel for Bwd<'_, T> {
    type Out = ();
    #[inline(always)]
    unsafe fn run<V: Simd>(self) {
        let a: &[V::E] = cast(self.a);
        let g: &[V::E] = cast(self.gy);
        let o: &mut [V::E] = cast_mut(self.gx);
        let c = |v: f64| V::splat(V::E::from_f64(v));
        match self.op {
            Unary::Relu => map2::<V, _>(Relu, a, g, o),
            Unary::LeakyRelu { negative_slope } => map2(Leaky(c(negative_slope)), a, g, o),
            Unary::Sigmoid => map2::<V, _>(Sigmoid, a, g, o),
            Unary::Tanh => map2::<V, _>(Tanh, a, g, o),
            Unary::Softsign => map2::<V, _>(Softsign, a, g, o),
            Unary::Softplus { beta, threshold } => map2(
                Softplus {
                    beta: c(beta),
                    threshold: c(threshold),
                    unit: V::E::from_f64(beta) == V::E::ONE,
                },
                a,
                g,
                o,
            ),
            Unary::Exp => map2::<V, _>(Exp, a, g, o),
            Unary::Log => map2::<V, _>(Log, a, g, o),
            Unary::Elu { alpha } => map2(Elu(c(alpha)), a, g, o),
            Unary::Gelu => map2::<V, _>(Gelu, a, g, o),
            Unary::GeluTanh => map2::<V, _>(GeluTanh, a, g, o),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vmath::testutil::{rel64, sizes, ulps32, Rng, LEVELS};

    const OPS: [Unary; 9] = [
        Unary::Relu,
        Unary::LeakyRelu {
            negative_slope: 0.01,
        },
        Unary::Sigmoid,
        Unary::Tanh,
        Unary::Softsign,
        Unary::Softplus {
            beta: 1.0,
            threshold: 20.0,
        },
        Unary::Softplus {
            beta: 2.5,
            threshold: 10.0,
        },
        Unary::Exp,
        Unary::Log,
    ];

    fn reference(op: Unary, x: f64) -> f64 {
        match op {
            Unary::Relu => {
                if x.is_nan() || x > 0.0 {
                    x
                } else {
                    0.0
                }
            }
            Unary::LeakyRelu { negative_slope } => {
                if x > 0.0 {
                    x
                } else {
                    x * negative_slope
                }
            }
            Unary::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Unary::Tanh => x.tanh(),
            Unary::Softsign => x / (1.0 + x.abs()),
            Unary::Softplus { beta, threshold } => {
                let z = beta * x;
                if z > threshold {
                    x
                } else {
                    z.exp().ln_1p() / beta
                }
            }
            Unary::Exp => x.exp(),
            Unary::Log => x.ln(),
            Unary::Elu { alpha } => {
                if x > 0.0 {
                    x
                } else {
                    alpha * x.exp_m1()
                }
            }
            Unary::Gelu => x * ncdf_ref(x),
            Unary::GeluTanh => {
                let u = 0.797_884_560_802_865_4 * (x + 0.044_715 * x * x * x);
                0.5 * x * (1.0 + u.tanh())
            }
        }
    }

    /// Φ(x) by the erf series / erfc continued fraction carried far beyond the kernel's
    /// truncation (a slow reference; the table test checks both against mpmath).
    fn ncdf_ref(x: f64) -> f64 {
        let z = x.abs() / std::f64::consts::SQRT_2;
        let erfc = if z < 0.5 {
            let (mut term, mut sum) = (z, z);
            for n in 1..400 {
                term *= 2.0 * z * z / (2 * n + 1) as f64;
                sum += term;
            }
            1.0 - std::f64::consts::FRAC_2_SQRT_PI * (-z * z).exp() * sum
        } else {
            let u = 2.0 * z * z;
            let d = 4000;
            let mut t = u + (1 + 4 * d) as f64;
            for n in (1..=d).rev() {
                t = u + (1 + 4 * (n - 1)) as f64 - ((2 * n - 1) * (2 * n)) as f64 / t;
            }
            std::f64::consts::FRAC_2_SQRT_PI * (-z * z).exp() * z / t
        };
        if x < 0.0 {
            0.5 * erfc
        } else {
            1.0 - 0.5 * erfc
        }
    }

    fn dreference(op: Unary, x: f64) -> f64 {
        match op {
            Unary::Relu => (x > 0.0) as u8 as f64,
            Unary::LeakyRelu { negative_slope } => {
                if x > 0.0 {
                    1.0
                } else {
                    negative_slope
                }
            }
            Unary::Sigmoid => {
                let s = reference(op, x);
                s * (1.0 - s)
            }
            Unary::Tanh => 1.0 - x.tanh() * x.tanh(),
            Unary::Softsign => 1.0 / ((1.0 + x.abs()) * (1.0 + x.abs())),
            Unary::Softplus { beta, threshold } => {
                let z = beta * x;
                if z > threshold {
                    1.0
                } else {
                    1.0 / (1.0 + (-z).exp())
                }
            }
            Unary::Exp => x.exp(),
            Unary::Log => 1.0 / x,
            Unary::Elu { alpha } => {
                if x > 0.0 {
                    1.0
                } else {
                    alpha * x.exp()
                }
            }
            Unary::Gelu => ncdf_ref(x) + x * (-0.5 * x * x).exp() * 0.398_942_280_401_432_7,
            Unary::GeluTanh => {
                let u = 0.797_884_560_802_865_4 * (x + 0.044_715 * x * x * x);
                let t = u.tanh();
                0.5 * (1.0 + t)
                    + 0.5 * x * (1.0 - t * t) * 0.797_884_560_802_865_4 * (1.0 + 0.134_145 * x * x)
            }
        }
    }

    fn inputs(op: Unary, n: usize, seed: u64) -> Vec<f64> {
        let mut r = Rng::new(seed);
        match op {
            Unary::Log => (0..n).map(|_| (r.uniform(-80.0, 80.0)).exp2()).collect(),
            Unary::Exp => r.vec(n, -100.0, 88.0),
            _ => r.vec(n, -30.0, 30.0),
        }
    }

    /// Max ulp error of f32 forward at `level` over random inputs of size n.
    fn check_f32(level: Level, op: Unary, n: usize, max_ulps: u64) {
        let xs = inputs(op, n, n as u64 + 7);
        let x: Vec<f32> = xs.iter().map(|&v| v as f32).collect();
        let mut y = vec![0f32; n];
        forward_at(level, op, &x, &mut y).unwrap();
        for i in 0..n {
            let want = match op {
                // PyTorch (and this kernel) round beta * x to f32 first.
                Unary::Softplus { beta, threshold } => {
                    let z = (x[i] * beta as f32) as f64;
                    if z > threshold {
                        x[i]
                    } else {
                        (z.exp().ln_1p() / beta) as f32
                    }
                }
                _ => reference(op, x[i] as f64) as f32,
            };
            let u = ulps32(y[i], want);
            assert!(
                u <= max_ulps || (y[i] - want).abs() < 1e-38,
                "{op:?} {level:?} n={n} x={} got {} want {} ({u} ulps)",
                x[i],
                y[i],
                want
            );
        }
    }

    #[test]
    fn forward_f32_all_levels_all_sizes() {
        for level in LEVELS {
            for op in OPS {
                for n in sizes() {
                    check_f32(level, op, n, 3);
                }
            }
        }
    }

    #[test]
    fn forward_f64_all_levels() {
        for level in LEVELS {
            for op in OPS {
                for n in [0, 1, 3, 4, 5, 8, 9, 17, 1000, 40_001] {
                    let x = inputs(op, n, 11);
                    let mut y = vec![0f64; n];
                    forward_at(level, op, &x, &mut y).unwrap();
                    for i in 0..n {
                        let want = reference(op, x[i]);
                        assert!(
                            rel64(y[i], want) < 2e-15 || (y[i] - want).abs() < 1e-300,
                            "{op:?} {level:?} x={} got {} want {}",
                            x[i],
                            y[i],
                            want
                        );
                    }
                }
            }
        }
    }

    /// Dense sweep: exp and log over many f32 values, including subnormals.
    #[test]
    fn exp_log_accuracy_sweep() {
        for level in LEVELS {
            let mut x = Vec::new();
            let mut v = -110.0f32;
            while v < 90.0 {
                x.push(v);
                v += 0.000_37;
            }
            let mut y = vec![0f32; x.len()];
            forward_at(level, Unary::Exp, &x, &mut y).unwrap();
            let mut worst = 0;
            for i in 0..x.len() {
                let want = (x[i] as f64).exp() as f32;
                worst = worst.max(ulps32(y[i], want));
            }
            assert!(worst <= 2, "exp {level:?}: {worst} ulps");
            // log over every 97th bit pattern of positive floats (normal and subnormal).
            let x: Vec<f32> = (1u32..0x7f80_0000)
                .step_by(97)
                .map(f32::from_bits)
                .collect();
            let mut y = vec![0f32; x.len()];
            forward_at(level, Unary::Log, &x, &mut y).unwrap();
            let mut worst = 0;
            for i in 0..x.len() {
                let want = (x[i] as f64).ln() as f32;
                worst = worst.max(ulps32(y[i], want));
            }
            assert!(worst <= 2, "log {level:?}: {worst} ulps");
        }
    }

    #[test]
    fn special_values_f32() {
        let inf = f32::INFINITY;
        let nan = f32::NAN;
        let x = [
            nan, inf, -inf, 0.0, -0.0, 1e-45, -1e-45, 1e-30, 88.7, 88.73, 89.5, -87.0, -103.0,
            -104.5, 3e38, -3e38, 1.0,
        ];
        for level in LEVELS {
            let f = |op: Unary| {
                let mut y = vec![0f32; x.len()];
                forward_at(level, op, &x, &mut y).unwrap();
                y
            };
            let e = f(Unary::Exp);
            assert!(e[0].is_nan());
            assert_eq!(e[1], inf);
            assert_eq!(e[2], 0.0);
            assert_eq!(e[3], 1.0);
            assert_eq!(e[4], 1.0);
            assert_eq!(e[8], (88.7f32 as f64).exp() as f32);
            assert_eq!(e[9], inf);
            assert_eq!(e[10], inf);
            assert_eq!(e[12], (-103.0f32 as f64).exp() as f32);
            assert_eq!(e[13], 0.0);
            assert_eq!(e[14], inf);
            assert_eq!(e[15], 0.0);
            let l = f(Unary::Log);
            assert!(l[0].is_nan());
            assert_eq!(l[1], inf);
            assert!(l[2].is_nan());
            assert_eq!(l[3], -inf);
            assert_eq!(l[4], -inf);
            assert_eq!(l[5], (1e-45f32 as f64).ln() as f32);
            assert!(l[6].is_nan());
            assert_eq!(l[16], 0.0);
            let s = f(Unary::Sigmoid);
            assert!(s[0].is_nan());
            assert_eq!(s[1], 1.0);
            assert_eq!(s[2], 0.0);
            assert_eq!(s[3], 0.5);
            assert_eq!(s[14], 1.0);
            assert_eq!(s[15], 0.0);
            let t = f(Unary::Tanh);
            assert!(t[0].is_nan());
            assert_eq!(t[1], 1.0);
            assert_eq!(t[2], -1.0);
            assert_eq!(t[3].to_bits(), 0.0f32.to_bits());
            assert_eq!(t[4].to_bits(), (-0.0f32).to_bits());
            assert_eq!(t[7], 1e-30);
            let r = f(Unary::Relu);
            assert!(r[0].is_nan());
            assert_eq!(r[1], inf);
            assert_eq!(r[2], 0.0);
            let sp = f(Unary::Softplus {
                beta: 1.0,
                threshold: 20.0,
            });
            assert!(sp[0].is_nan());
            assert_eq!(sp[1], inf);
            assert_eq!(sp[2], 0.0);
            assert_eq!(sp[3], std::f32::consts::LN_2);
            assert_eq!(sp[14], 3e38);
            assert_eq!(sp[15], 0.0);
            let ss = f(Unary::Softsign);
            assert!(ss[0].is_nan());
            assert!(ss[1].is_nan(), "PyTorch: inf / inf");
            assert_eq!(ss[14], 3e38f32 / (1.0 + 3e38f32));
        }
    }

    #[test]
    fn backward_matches_reference() {
        for level in LEVELS {
            for op in OPS {
                for n in [0, 1, 5, 16, 17, 33, 100, 40_000] {
                    let xs = inputs(op, n, 3);
                    let mut r = Rng::new(5);
                    let gys = r.vec(n, -2.0, 2.0);
                    // f64
                    let mut y = vec![0f64; n];
                    forward_at(level, op, &xs, &mut y).unwrap();
                    let mut gx = vec![0f64; n];
                    backward_at(level, op, &xs, &y, &gys, &mut gx).unwrap();
                    for i in 0..n {
                        let want = gys[i] * dreference(op, xs[i]);
                        assert!(
                            (gx[i] - want).abs() <= 1e-13 * want.abs() + 1e-300,
                            "{op:?} x={} got {} want {want}",
                            xs[i],
                            gx[i]
                        );
                    }
                    // f32
                    let x: Vec<f32> = xs.iter().map(|&v| v as f32).collect();
                    let gy: Vec<f32> = gys.iter().map(|&v| v as f32).collect();
                    let mut y = vec![0f32; n];
                    forward_at(level, op, &x, &mut y).unwrap();
                    let mut gx = vec![0f32; n];
                    backward_at(level, op, &x, &y, &gy, &mut gx).unwrap();
                    for i in 0..n {
                        let yi = y[i] as f64;
                        let d = match op {
                            // The derivative is read from the rounded output, as in PyTorch.
                            Unary::Sigmoid => yi * (1.0 - yi),
                            Unary::Tanh => 1.0 - yi * yi,
                            Unary::Exp => yi,
                            Unary::Softplus { beta, threshold } => {
                                let z = (x[i] * beta as f32) as f64;
                                if z > threshold {
                                    1.0
                                } else {
                                    1.0 / (1.0 + (-z).exp())
                                }
                            }
                            _ => dreference(op, x[i] as f64),
                        };
                        let want = gy[i] as f64 * d;
                        // 1 - y^2 and y (1 - y) cancel in f32 (as in PyTorch).
                        let tol = 4e-6 * want.abs() + 2e-7 * (gy[i] as f64).abs() + 1e-37;
                        assert!(
                            (gx[i] as f64 - want).abs() <= tol,
                            "{op:?} {level:?} x={} got {} want {want}",
                            x[i],
                            gx[i]
                        );
                    }
                }
            }
        }
    }

    const NEW_OPS: [Unary; 4] = [
        Unary::Elu { alpha: 1.0 },
        Unary::Elu { alpha: 0.3 },
        Unary::Gelu,
        Unary::GeluTanh,
    ];

    /// (x, gelu(x), gelu'(x)) computed by mpmath with 40 digits.
    #[allow(clippy::excessive_precision, clippy::approx_constant)]
    const GELU_TABLE: [(f64, f64, f64); 33] = [
        (
            -38.0,
            -1.0964627768261380372e-314,
            -4.1665545692687844561e-313,
        ),
        (
            -30.0,
            -1.4720141781444561179e-196,
            -4.4160316907084943701e-195,
        ),
        (
            -20.0,
            -5.5072482372124673902e-88,
            -1.1014360483133464042e-86,
        ),
        (
            -12.5,
            -4.6657053735971417215e-35,
            -5.8316685544801553657e-34,
        ),
        (-9.0, -1.015729565358456583e-18, -9.138937373906639251e-18),
        (
            -7.25,
            -1.5107971650372503376e-12,
            -1.0946014325702036997e-11,
        ),
        (-5.0, -1.4332578593959695584e-6, -7.1469460017922946279e-6),
        (-3.3, -0.0015952996698664656876, -0.0052010533564933699861),
        (-2.9, -0.0054108585711137114234, -0.015396530716965941492),
        (-2.83, -0.0065865425850502979343, -0.018259263173978092244),
        (-2.5, -0.015524163314440337917, -0.037611085908145208238),
        (-2.12, -0.036046408012981533379, -0.072389124111320263791),
        (-2.0, -0.045500263896358414401, -0.085231801078196896701),
        (-1.7, -0.07576128668952317225, -0.11531796878216473361),
        (-1.4142, -0.11122908422663374104, -0.12890414514697740627),
        (-1.0, -0.15865525393145705141, -0.083315470587686298383),
        (-0.75, -0.1699705142826511495, 0.00077427826076489562831),
        (-0.3, -0.11462657334331420584, 0.2676722331728901451),
        (-0.001, -0.00049960105778608894781, 0.49920211570515859505),
        (-1e-08, -4.9999999601057720645e-9, 0.49999999202115439197),
        (0.0, 0.0, 0.5),
        (1e-08, 5.0000000398942281448e-9, 0.50000000797884560803),
        (0.2, 0.11585194188782061191, 0.65746824823419420715),
        (0.5, 0.34573123063700655182, 0.86749512465616284253),
        (1.0, 0.84134474606854294859, 1.0833154705876862984),
        (1.3, 1.1741593700387066169, 1.1259786850765392333),
        (2.0, 1.9544997361036415856, 1.0852318010781968967),
        (2.1, 2.0624847168180853262, 1.0745011309960805413),
        (2.9, 2.8945891414288861998, 1.0153965307169659415),
        (3.5, 3.4991857982233756624, 1.0028217603536246352),
        (5.0, 4.999998566742140604, 1.0000071469460017923),
        (8.0, 7.9999999999999950232, 1.0000000000000397961),
        (12.0, 12.0, 1.0),
    ];

    #[test]
    fn gelu_matches_mpmath_table() {
        for level in LEVELS {
            let x: Vec<f64> = GELU_TABLE.iter().map(|r| r.0).collect();
            let mut y = vec![0f64; x.len()];
            forward_at(level, Unary::Gelu, &x, &mut y).unwrap();
            let ones = vec![1f64; x.len()];
            let mut d = vec![0f64; x.len()];
            backward_at(level, Unary::Gelu, &x, &y, &ones, &mut d).unwrap();
            // f32: against the f64 kernel (checked above) at the f32-rounded inputs.
            let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            let mut y32 = vec![0f32; x.len()];
            forward_at(level, Unary::Gelu, &x32, &mut y32).unwrap();
            let x32w: Vec<f64> = x32.iter().map(|&v| v as f64).collect();
            let mut y32w = vec![0f64; x.len()];
            forward_at(level, Unary::Gelu, &x32w, &mut y32w).unwrap();
            for (i, &(xi, g, dg)) in GELU_TABLE.iter().enumerate() {
                let tiny = 1e-300;
                assert!(
                    rel64(y[i], g) < 4e-15 || (y[i] - g).abs() < tiny,
                    "gelu f64 {level:?} x={xi}: {} vs {g}",
                    y[i]
                );
                // Φ + x φ cancels near x = -0.75: compare absolutely there.
                assert!(
                    rel64(d[i], dg) < 4e-15 || (d[i] - dg).abs() < 1e-16,
                    "gelu' f64 {level:?} x={xi}: {} vs {dg}",
                    d[i]
                );
                let u = ulps32(y32[i], y32w[i] as f32);
                assert!(
                    u <= 6 || (y32[i] as f64 - y32w[i]).abs() < 1e-44,
                    "gelu f32 {level:?} x={xi}: {} vs {} ({u} ulps)",
                    y32[i],
                    y32w[i]
                );
            }
        }
    }

    #[test]
    fn new_ops_forward_and_backward() {
        for level in LEVELS {
            for op in NEW_OPS {
                for n in [0, 1, 5, 16, 17, 33, 100, 3000] {
                    let xs = {
                        let mut r = Rng::new(n as u64 + 3);
                        // Dense near 0 (the expm1 / series switch) and wide.
                        (0..n)
                            .map(|i| {
                                if i % 2 == 0 {
                                    r.uniform(-3.0, 3.0)
                                } else {
                                    r.uniform(-20.0, 20.0)
                                }
                            })
                            .collect::<Vec<f64>>()
                    };
                    let mut y = vec![0f64; n];
                    forward_at(level, op, &xs, &mut y).unwrap();
                    let mut r = Rng::new(5);
                    let gys = r.vec(n, -2.0, 2.0);
                    let mut gx = vec![0f64; n];
                    backward_at(level, op, &xs, &y, &gys, &mut gx).unwrap();
                    for i in 0..n {
                        let want = reference(op, xs[i]);
                        // The tanh form cancels in 1 + tanh for very negative x; the
                        // kernel's sigmoid form does not, so compare absolutely there.
                        // The reference rounds x² in e^{-x²/2} (relative error ~x² 1e-16);
                        // the kernel splits it (the mpmath table checks it to 4e-15).
                        let slack = 1e-14 + 4e-16 * xs[i] * xs[i];
                        let ok = rel64(y[i], want) < slack
                            || (y[i] - want).abs() < 1e-300
                            || (op == Unary::GeluTanh && (y[i] - want).abs() < 1e-15);
                        assert!(ok, "{op:?} {level:?} x={} got {} want {want}", xs[i], y[i]);
                        let dw = gys[i] * dreference(op, xs[i]);
                        assert!(
                            (gx[i] - dw).abs() <= slack * 10.0 * (dw.abs() + gys[i].abs() * 1e-2),
                            "{op:?}' {level:?} x={} got {} want {dw}",
                            xs[i],
                            gx[i]
                        );
                    }
                    let x32: Vec<f32> = xs.iter().map(|&v| v as f32).collect();
                    let mut y32 = vec![0f32; n];
                    forward_at(level, op, &x32, &mut y32).unwrap();
                    for i in 0..n {
                        let want = reference(op, x32[i] as f64);
                        let u = ulps32(y32[i], want as f32);
                        // GELU f32 composes e^{-x²/2}, the series or continued fraction
                        // and three products: within 6 ulps (erf alone is within ~3).
                        let ok = u <= if op == Unary::Gelu { 6 } else { 4 }
                            || (y32[i] as f64 - want).abs() < 1e-37
                            || (op == Unary::GeluTanh && (y32[i] as f64 - want).abs() < 1e-7);
                        assert!(
                            ok,
                            "{op:?} f32 {level:?} x={} got {} want {want} ({u} ulps)",
                            x32[i], y32[i]
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn new_ops_special_values() {
        let x = [
            f32::NAN,
            f32::INFINITY,
            -f32::INFINITY,
            0.0,
            -0.0,
            1e30,
            -1e30,
        ];
        for level in LEVELS {
            let mut y = [0f32; 7];
            forward_at(level, Unary::Gelu, &x, &mut y).unwrap();
            assert!(y[0].is_nan());
            assert_eq!(y[1], f32::INFINITY);
            assert_eq!(y[3], 0.0);
            assert_eq!(y[5], 1e30);
            assert_eq!(y[6], 0.0);
            forward_at(level, Unary::Elu { alpha: 1.0 }, &x, &mut y).unwrap();
            assert!(y[0].is_nan());
            assert_eq!(y[1], f32::INFINITY);
            assert_eq!(y[2], -1.0);
            assert_eq!(y[4].to_bits(), (-0.0f32).to_bits());
            assert_eq!(y[6], -1.0);
            forward_at(level, Unary::GeluTanh, &x, &mut y).unwrap();
            assert!(y[0].is_nan());
            assert_eq!(y[1], f32::INFINITY);
            assert_eq!(y[5], 1e30);
            assert_eq!(y[6], 0.0);
        }
    }

    #[test]
    fn forward_inplace_matches_forward() {
        for op in OPS.iter().chain(NEW_OPS.iter()) {
            for n in [0, 3, 17, 100, 3 * PAR_MIN + 5] {
                let x: Vec<f32> = inputs(*op, n, 4).iter().map(|&v| v as f32).collect();
                let mut y = vec![0f32; n];
                forward(*op, &x, &mut y).unwrap();
                let mut z = x.clone();
                forward_inplace(*op, &mut z).unwrap();
                assert!(
                    y.iter().zip(&z).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{op:?}"
                );
            }
        }
    }

    #[test]
    fn derivative_is_backward_of_ones() {
        let x = [-2.0f32, -0.0, 0.0, 0.5, 3.0];
        let mut y = [0f32; 5];
        forward(Unary::Relu, &x, &mut y).unwrap();
        let mut d = [9f32; 5];
        derivative(Unary::Relu, &x, &y, &mut d).unwrap();
        assert_eq!(d, [0.0, 0.0, 0.0, 1.0, 1.0]);
        forward(Unary::Sigmoid, &x, &mut y).unwrap();
        derivative(Unary::Sigmoid, &x, &y, &mut d).unwrap();
        assert_eq!(d[2], 0.25);
    }

    #[test]
    fn length_mismatch_is_an_error() {
        let x = [1.0f32; 5];
        let mut y = [0f32; 4];
        assert!(forward(Unary::Exp, &x, &mut y).is_err());
        let y5 = [0f32; 5];
        let mut gx = [0f32; 5];
        assert!(backward(Unary::Tanh, &x, &y5, &x[..4], &mut gx).is_err());
        assert!(backward(Unary::Tanh, &x, &y5[..3], &x, &mut gx).is_err());
        assert!(backward(Unary::Tanh, &x, &y5, &x, &mut gx[..2]).is_err());
        let e = forward(Unary::Log, &x, &mut y).unwrap_err();
        assert!(e.to_string().starts_with("log:"), "{e}");
    }

    /// An element's value does not depend on its position (vector body or padded tail).
    #[test]
    fn position_independent() {
        for level in LEVELS {
            for op in OPS {
                let xs: Vec<f32> = inputs(op, 300, 9).iter().map(|&v| v as f32).collect();
                let mut full = vec![0f32; 300];
                forward_at(level, op, &xs, &mut full).unwrap();
                for s in [1, 3, 8, 15, 16, 17, 250, 299] {
                    let mut part = vec![0f32; 300 - s];
                    forward_at(level, op, &xs[s..], &mut part).unwrap();
                    for i in 0..part.len() {
                        assert_eq!(part[i].to_bits(), full[i + s].to_bits(), "{op:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn threads_do_not_change_bits() {
        for op in OPS {
            let p = PAR_MIN / cost(op, false).max(cost(op, true));
            let q = PAR_MIN / cost(op, false).min(cost(op, true));
            for n in [p - 1, p, p + CHUNK / 16 + 1, q - 1, q, 3 * PAR_MIN + 77] {
                let x: Vec<f32> = inputs(op, n, 1).iter().map(|&v| v as f32).collect();
                let gy: Vec<f32> = inputs(Unary::Tanh, n, 2)
                    .iter()
                    .map(|&v| v as f32)
                    .collect();
                let mut outs = Vec::new();
                for t in [1, 2, 3] {
                    let mut y = vec![0f32; n];
                    let mut gx = vec![0f32; n];
                    let mut yi = x.clone();
                    crate::threading::with_threads(t, || {
                        forward(op, &x, &mut y).unwrap();
                        backward(op, &x, &y, &gy, &mut gx).unwrap();
                        forward_inplace(op, &mut yi).unwrap();
                    });
                    outs.push((y, gx, yi));
                }
                let bits = |v: &[f32]| v.iter().map(|a| a.to_bits()).collect::<Vec<u32>>();
                for o in &outs[1..] {
                    assert_eq!(bits(&o.0), bits(&outs[0].0), "{op:?} n={n}");
                    assert_eq!(bits(&o.1), bits(&outs[0].1), "{op:?} n={n}");
                    assert_eq!(bits(&o.2), bits(&outs[0].2), "{op:?} n={n}");
                }
                assert_eq!(bits(&outs[0].2), bits(&outs[0].0), "{op:?} n={n}");
            }
        }
    }
}
