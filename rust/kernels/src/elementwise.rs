//! Element-wise activations and their derivatives.
//!
//! CONTRACT: `x`, `y`, `gy`, `gx` all have the same length (checked). Formulas are
//! PyTorch's: softplus(x) = log(1 + exp(beta x)) / beta, and x itself where
//! beta x > threshold; softsign(x) = x / (1 + |x|); leaky_relu(x) = x if x > 0 else slope x;
//! relu'(0) = 0. NaN propagates.
//!
//! Implementation: one generic kernel per function over [`crate::vmath::Simd`] (AVX-512,
//! AVX2+FMA or scalar, chosen at run time). Tails shorter than a vector go through the same
//! vector code with padded (masked) lanes, so an element's value never depends on where it
//! falls. Inputs of at least [`PAR_MIN`] elements are split into chunks of [`CHUNK`]
//! elements run on the kernel pool; smaller ones run on the calling thread.

use crate::error::KernelError;
use crate::simd::{self, Level};
use crate::vmath::{cast, cast_mut, dispatch, Kernel, Simd};
use crate::{Float, Result};
use rayon::prelude::*;

/// Which element-wise function.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Unary {
    Relu,
    LeakyRelu { negative_slope: f64 },
    Sigmoid,
    Tanh,
    Softsign,
    Softplus { beta: f64, threshold: f64 },
    Exp,
    Log,
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
        }
    }
}

/// Inputs with fewer elements run on the calling thread.
pub const PAR_MIN: usize = 32 * 1024;
/// Elements per parallel task (a multiple of 64; results do not depend on it).
pub const CHUNK: usize = 16 * 1024;

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

/// [`forward`] at a given SIMD level (capped to what the CPU supports).
pub(crate) fn forward_at<T: Float>(level: Level, op: Unary, x: &[T], y: &mut [T]) -> Result<()> {
    check_same(op, "y", x.len(), y.len())?;
    let run = |xc: &[T], yc: &mut [T]| dispatch::<T, _>(level, Fwd { op, x: xc, y: yc });
    if x.len() < PAR_MIN {
        run(x, y);
    } else {
        crate::threading::install(|| {
            y.par_chunks_mut(CHUNK)
                .zip(x.par_chunks(CHUNK))
                .for_each(|(yc, xc)| run(xc, yc))
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
    if x.len() < PAR_MIN {
        run(a, gy, gx);
    } else {
        crate::threading::install(|| {
            gx.par_chunks_mut(CHUNK)
                .zip(a.par_chunks(CHUNK))
                .zip(gy.par_chunks(CHUNK))
                .for_each(|((oc, ac), gc)| run(ac, gc, oc))
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
        let pools: Vec<_> = [1, 2, 3]
            .iter()
            .map(|&t| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(t)
                    .build()
                    .unwrap()
            })
            .collect();
        let n = 3 * PAR_MIN + 77;
        for op in OPS {
            let x: Vec<f32> = inputs(op, n, 1).iter().map(|&v| v as f32).collect();
            let gy: Vec<f32> = inputs(Unary::Tanh, n, 2)
                .iter()
                .map(|&v| v as f32)
                .collect();
            let mut outs = Vec::new();
            for p in &pools {
                let mut y = vec![0f32; n];
                let mut gx = vec![0f32; n];
                p.install(|| {
                    forward(op, &x, &mut y).unwrap();
                    backward(op, &x, &y, &gy, &mut gx).unwrap();
                });
                outs.push((y, gx));
            }
            for o in &outs[1..] {
                assert!(o
                    .0
                    .iter()
                    .zip(&outs[0].0)
                    .all(|(a, b)| a.to_bits() == b.to_bits()));
                assert!(o
                    .1
                    .iter()
                    .zip(&outs[0].1)
                    .all(|(a, b)| a.to_bits() == b.to_bits()));
            }
        }
    }
}
