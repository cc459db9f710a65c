//! Self-organizing map kernels: batched best-matching-unit search, neighbourhood-weighted
//! updates (online and batch), the U-matrix.
//!
//! CONTRACT. A map of `x * y` units, each a weight vector of `dim` elements, stored
//! row-major as `(x, y, dim)`: unit `u = i * y + j` sits at grid position `(i, j)`. The
//! formulas are MiniSom's (2.3), so a model moves between the two:
//! - Unit coordinates: rectangular `(i, j)`; hexagonal `(i - 0.5, j * 1.5 / sqrt(3))` for
//!   the rows `j` with `(y - 1 - j)` even, `(i, j * 1.5 / sqrt(3))` for the others.
//! - Neighbourhood of centre `c` with spread `s`, `d = 2 s^2`, `dx`/`dy` the coordinate
//!   differences: gaussian `exp(-dx^2 / d) * exp(-dy^2 / d)`; mexican hat
//!   `exp(-p / d) * (1 - 2 / d * p)` with `p = dx^2 + dy^2` (the exponential evaluated as
//!   the product of its two factors, equal within rounding); bubble `[|i - ic| < s] *
//!   [|j - jc| < s]` and triangle `max(0, s - |i - ic|) * max(0, s - |j - jc|)` on the
//!   integer grid (for either topology, as MiniSom).
//! - Online update with rate `eta`: `w_u += eta * h_u * (x - w_u)` (units with `h_u == 0`
//!   are left as they are, which is the same value).
//! - Batch epoch (Kohonen's batch map; MiniSom's `train_batch_offline` with `lr`): with
//!   `S_c` the sum of the samples whose BMU is `c` and `n_c` their count,
//!   `num_u = sum_c h(u; c) S_c`, `den_u = sum_c h(u; c) n_c`, and where `den_u > 0`,
//!   `w_u = (1 - lr) w_u + lr * num_u / den_u` (`lr = 1`: the pure batch map).
//! - Distances: euclidean `||x - w||` (argmin on the squared distance), cosine
//!   `1 - x.w / (||x|| ||w|| + 1e-8)`, manhattan `sum |x - w|`, chebyshev `max |x - w|`.
//!   (MiniSom 2.3's chebyshev omits the absolute value; this is the true Chebyshev
//!   distance.)
//! - Ties in an argmin go to the smallest unit index.
//! - U-matrix: for each unit the euclidean distances to its grid neighbours (8 on a
//!   rectangular map; 6 on a hexagonal one, MiniSom's offset tables by row parity), summed
//!   or averaged, then divided by the largest cell (MiniSom's `distance_map`).
//!
//! DETERMINISM. Online training is sequential in sample order; within one update the units
//! are split into blocks of a size fixed by the map (never by the thread count), each
//! block's weights updated and its distances to the next sample computed in one pass (on a
//! transposed copy of the weights, units in SIMD lanes, so no unit's arithmetic depends on
//! its lane or block), and the BMU taken by exact comparisons (smallest index on ties), so
//! the result does not depend on the split. Batch search cuts the samples into fixed blocks of [`ROWS`] rows;
//! squared euclidean distances come from one GEMM per block (`||w||^2 - 2 x.w`, whose
//! reduction order the GEMM fixes). Batch accumulation sorts the samples by BMU (stable)
//! and sums each unit's samples in sample order; `num = H S` is a GEMM. Bitwise identical
//! for any thread count.

use crate::error::{check_len, checked_product};
use crate::gemm::{gemm_with_level, Mode};
use crate::simd::{self, Level};
use crate::threading::{self, SendPtr};
use crate::vmath::{cast, cast_mut, dispatch, Kernel, Simd};
use crate::{Float, KernelError, Result};

/// Neighbourhood functions (MiniSom's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Neighborhood {
    Gaussian,
    MexicanHat,
    Bubble,
    Triangle,
}

/// Grid topologies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    Rectangular,
    Hexagonal,
}

/// Distances between a sample and a unit's weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distance {
    Euclidean,
    Cosine,
    Manhattan,
    Chebyshev,
}

/// The shape of a map: `x * y` units of `dim` weights.
#[derive(Debug, Clone, Copy)]
pub struct Map {
    pub x: usize,
    pub y: usize,
    pub dim: usize,
    pub topology: Topology,
    pub neighborhood: Neighborhood,
}

/// Rows of samples per block of a batched BMU search (one GEMM each).
pub const ROWS: usize = 64;

/// Below this many weight elements an online update runs on the calling thread.
const ONLINE_PAR_MIN: usize = 16 * 1024;

/// Weight elements per task of an online update (at least).
const ONLINE_TASK: usize = 8 * 1024;

/// Elements of the neighbourhood matrix built at once in a batch epoch.
const H_BLOCK: usize = 1 << 20;

impl Map {
    /// The number of units, after checking that every size is at least 1.
    pub fn check(&self, op: &'static str) -> Result<usize> {
        if self.x == 0 || self.y == 0 || self.dim == 0 {
            return Err(KernelError::InvalidArgument {
                op,
                detail: format!(
                    "map sizes x, y and input_len must be at least 1, given x={}, y={}, input_len={}",
                    self.x, self.y, self.dim
                ),
            });
        }
        let units = checked_product(op, &[self.x, self.y])?;
        checked_product(op, &[units, self.dim])?;
        Ok(units)
    }

    fn hex(&self) -> bool {
        self.topology == Topology::Hexagonal
    }

    /// Whether row `j` is shifted by half a unit (hexagonal maps only).
    #[inline(always)]
    fn shifted(&self, j: usize) -> bool {
        self.hex() && (self.y - 1 - j).is_multiple_of(2)
    }

    /// The euclidean-plane coordinates of unit (i, j) (MiniSom's `_xx`, `_yy`).
    #[inline(always)]
    pub fn coords(&self, i: usize, j: usize) -> (f64, f64) {
        if self.hex() {
            let xs = if self.shifted(j) {
                i as f64 - 0.5
            } else {
                i as f64
            };
            (xs, j as f64 * (1.5 / 3f64.sqrt()))
        } else {
            (i as f64, j as f64)
        }
    }
}

/// The neighbourhood of one centre as separable tables: `h(i, j) = fx[row kind][i] * fy[j]`
/// (times the mexican hat's factor).
struct Tables {
    /// `fx[i]` for unshifted rows, `fx[x + i]` for shifted ones.
    fx: Vec<f64>,
    fy: Vec<f64>,
    /// Squared coordinate differences (mexican hat only), laid out as `fx` and `fy`.
    dx2: Vec<f64>,
    dy2: Vec<f64>,
    /// 2 / d (mexican hat).
    two_over_d: f64,
}

impl Tables {
    fn new(map: &Map) -> Tables {
        let mex = map.neighborhood == Neighborhood::MexicanHat;
        Tables {
            fx: vec![0.0; 2 * map.x],
            fy: vec![0.0; map.y],
            dx2: if mex {
                vec![0.0; 2 * map.x]
            } else {
                Vec::new()
            },
            dy2: if mex { vec![0.0; map.y] } else { Vec::new() },
            two_over_d: 0.0,
        }
    }

    /// Fills the tables for centre unit `c` and spread `sigma`.
    fn set(&mut self, map: &Map, c: usize, sigma: f64) {
        let (ic, jc) = (c / map.y, c % map.y);
        let (x, y) = (map.x, map.y);
        match map.neighborhood {
            Neighborhood::Gaussian | Neighborhood::MexicanHat => {
                let d = 2.0 * sigma * sigma;
                let (cx, cy) = map.coords(ic, jc);
                for s in 0..2 {
                    for i in 0..x {
                        let xi = if s == 1 { i as f64 - 0.5 } else { i as f64 };
                        let dx = xi - cx;
                        self.fx[s * x + i] = (-(dx * dx) / d).exp();
                        if !self.dx2.is_empty() {
                            self.dx2[s * x + i] = dx * dx;
                        }
                    }
                }
                for j in 0..y {
                    let dy = map.coords(0, j).1 - cy;
                    self.fy[j] = (-(dy * dy) / d).exp();
                    if !self.dy2.is_empty() {
                        self.dy2[j] = dy * dy;
                    }
                }
                self.two_over_d = 2.0 / d;
            }
            Neighborhood::Bubble => {
                let (icf, jcf) = (ic as f64, jc as f64);
                for i in 0..x {
                    let v = f64::from(u8::from(i as f64 > icf - sigma && (i as f64) < icf + sigma));
                    self.fx[i] = v;
                    self.fx[x + i] = v;
                }
                for j in 0..y {
                    self.fy[j] =
                        f64::from(u8::from(j as f64 > jcf - sigma && (j as f64) < jcf + sigma));
                }
            }
            Neighborhood::Triangle => {
                for i in 0..x {
                    let v = (sigma - (ic as f64 - i as f64).abs()).max(0.0);
                    self.fx[i] = v;
                    self.fx[x + i] = v;
                }
                for j in 0..y {
                    self.fy[j] = (sigma - (jc as f64 - j as f64).abs()).max(0.0);
                }
            }
        }
    }

    /// `out[u] = h(u) * scale` for every unit, in unit order (same values as [`Tables::h`]).
    fn fill<T: Float>(&self, map: &Map, scale: f64, out: &mut [T]) {
        for (i, row) in out.chunks_exact_mut(map.y).enumerate().take(map.x) {
            for (j, o) in row.iter_mut().enumerate() {
                let s = if map.shifted(j) { map.x } else { 0 };
                let v = self.fx[s + i] * self.fy[j];
                let h = if self.dx2.is_empty() {
                    v
                } else {
                    v * (1.0 - self.two_over_d * (self.dx2[s + i] + self.dy2[j]))
                };
                *o = T::from_f64(h * scale);
            }
        }
    }

    /// The neighbourhood value at unit `u`.
    #[inline(always)]
    fn h(&self, map: &Map, u: usize) -> f64 {
        let (i, j) = (u / map.y, u % map.y);
        let s = if map.shifted(j) { map.x } else { 0 };
        let v = self.fx[s + i] * self.fy[j];
        if self.dx2.is_empty() {
            v
        } else {
            let p = self.dx2[s + i] + self.dy2[j];
            v * (1.0 - self.two_over_d * p)
        }
    }
}

/// The neighbourhood of centre unit `center` with spread `sigma` at every unit, into
/// `out` (`x * y` values).
pub fn neighborhood(map: &Map, center: usize, sigma: f64, out: &mut [f64]) -> Result<()> {
    const OP: &str = "som_neighborhood";
    let units = map.check(OP)?;
    check_len(OP, "out", units, out.len())?;
    if center >= units {
        return Err(KernelError::InvalidArgument {
            op: OP,
            detail: format!("center must be below {units} (the number of units), given {center}"),
        });
    }
    let mut t = Tables::new(map);
    t.set(map, center, sigma);
    for (u, o) in out[..units].iter_mut().enumerate() {
        *o = t.h(map, u);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Distances of one sample to rows of weights.

/// The distance of `x` to the row `w` (squared for euclidean).
#[inline(always)]
unsafe fn distance_row<V: Simd>(
    w: *const V::E,
    x: *const V::E,
    dim: usize,
    metric: Distance,
    xnorm: V::E,
) -> V::E {
    let zero = V::splat(V::E::ZERO);
    let (mut a0, mut a1, mut b0) = (zero, zero, zero);
    let mut k = 0;
    let step = |a: &mut V, b: &mut V, wv: V, xv: V| match metric {
        Distance::Euclidean => {
            let d = xv.sub(wv);
            *a = d.mul_add(d, *a);
        }
        Distance::Cosine => {
            *a = xv.mul_add(wv, *a);
            *b = wv.mul_add(wv, *b);
        }
        Distance::Manhattan => *a = a.add(xv.sub(wv).abs()),
        Distance::Chebyshev => *a = a.max(xv.sub(wv).abs()),
    };
    let mut b1 = zero;
    while k + 2 * V::LANES <= dim {
        step(&mut a0, &mut b0, V::load(w.add(k)), V::load(x.add(k)));
        step(
            &mut a1,
            &mut b1,
            V::load(w.add(k + V::LANES)),
            V::load(x.add(k + V::LANES)),
        );
        k += 2 * V::LANES;
    }
    while k + V::LANES <= dim {
        step(&mut a0, &mut b0, V::load(w.add(k)), V::load(x.add(k)));
        k += V::LANES;
    }
    if k < dim {
        let n = dim - k;
        step(
            &mut a1,
            &mut b1,
            V::load_partial(w.add(k), n, V::E::ZERO),
            V::load_partial(x.add(k), n, V::E::ZERO),
        );
    }
    match metric {
        Distance::Chebyshev => a0.max(a1).hmax(),
        Distance::Cosine => {
            let dot = a0.add(a1).hsum();
            let ww = b0.add(b1).hsum();
            let eps = V::E::from_f64(1e-8);
            V::E::ONE - dot / (ww.sqrt() * xnorm + eps)
        }
        _ => a0.add(a1).hsum(),
    }
}

/// Index and value of the smallest of `d` (first on ties; NaN never wins).
#[inline]
fn argmin<T: Float>(d: &[T]) -> (usize, T) {
    let mut best = (0, T::INFINITY);
    let mut found = false;
    for (i, &v) in d.iter().enumerate() {
        if v < best.1 || (!found && !v.is_nan()) {
            best = (i, v);
            found = true;
        }
    }
    best
}

fn check_metric_data<T: Float>(op: &'static str, data: &[T], n: usize, dim: usize) -> Result<()> {
    let need = checked_product(op, &[n, dim])?;
    check_len(op, "data", need, data.len())
}

/// Online (MiniSom `train`) training: for `t` in `0..order.len()`, sample
/// `data[order[t]]`, winner by `metric` (or `forced[t]` when `forced` is non-empty and
/// `forced[t] >= 0`), update with rate `eta[t]` and spread `sigma[t]`. `weights` is
/// `(x * y, dim)`, updated in place. Returns the number of updates made.
#[allow(clippy::too_many_arguments)]
pub fn train_online<T: Float>(
    map: &Map,
    metric: Distance,
    weights: &mut [T],
    data: &[T],
    n: usize,
    order: &[i64],
    eta: &[f64],
    sigma: &[f64],
    forced: &[i64],
) -> Result<usize> {
    const OP: &str = "som_train";
    let units = map.check(OP)?;
    let dim = map.dim;
    check_len(OP, "weights", units * dim, weights.len())?;
    check_metric_data(OP, data, n, dim)?;
    let steps = order.len();
    if eta.len() != steps || sigma.len() != steps || (!forced.is_empty() && forced.len() != steps) {
        return Err(KernelError::ShapeMismatch {
            op: OP,
            detail: format!(
                "order, eta, sigma (and forced, when given) must have one entry per step: \
                 lengths {}, {}, {}, {}",
                steps,
                eta.len(),
                sigma.len(),
                forced.len()
            ),
        });
    }
    if let Some(&bad) = order.iter().find(|&&o| o < 0 || o as usize >= n) {
        return Err(KernelError::InvalidArgument {
            op: OP,
            detail: format!("sample index {bad} is out of range for {n} samples"),
        });
    }
    if let Some(&bad) = forced.iter().find(|&&f| f >= units as i64) {
        return Err(KernelError::InvalidArgument {
            op: OP,
            detail: format!("forced winner {bad} is out of range for {units} units"),
        });
    }
    if steps == 0 {
        return Ok(0);
    }
    let level = simd::level();
    let weights = &mut weights[..units * dim];
    let sample = |t: usize| &data[order[t] as usize * dim..][..dim];
    // The weights are updated in a transposed copy (dim, units): one update and the
    // distances to the next sample then run across units in SIMD lanes, with no
    // horizontal sums (each unit's arithmetic is the same whatever lane or block it is
    // in, so the split never changes a value).
    let mut wt = vec![T::ZERO; units * dim];
    for (u, row) in weights.chunks_exact(dim).enumerate() {
        for (k, &v) in row.iter().enumerate() {
            wt[k * units + u] = v;
        }
    }
    let block = if units * dim < ONLINE_PAR_MIN {
        units
    } else {
        threading::task_len(units, ONLINE_TASK.div_ceil(dim)).next_multiple_of(16)
    };
    let nblocks = units.div_ceil(block);
    let mut tables = Tables::new(map);
    let mut g = vec![T::ZERO; units];
    // Per-block winners, combined in block order.
    let mut best = vec![(0usize, T::ZERO); nblocks];

    // One pass of all blocks: update towards `upd` with rates g, distances to `x`.
    let pass = |wt: &mut [T], g: &[T], upd: &[T], x: &[T], best: &mut [(usize, T)]| {
        let xnorm = if metric == Distance::Cosine && !x.is_empty() {
            x.iter().fold(T::ZERO, |a, &v| a + v * v).sqrt()
        } else {
            T::ZERO
        };
        let wp = SendPtr::new(wt);
        let run_block = |b: usize| -> (usize, T) {
            let lo = b * block;
            let hi = (lo + block).min(units);
            dispatch::<T, _>(
                level,
                PassT {
                    wt: wp,
                    stride: units,
                    lo,
                    hi,
                    g,
                    upd,
                    x,
                    xnorm,
                    dim,
                    metric,
                },
            )
        };
        if nblocks == 1 {
            best[0] = run_block(0);
        } else {
            threading::for_each_mut(best, |b, slot| *slot = run_block(b));
        }
        combine(best)
    };

    let mut bmu = pass(&mut wt, &g, &[], sample(0), &mut best);
    for t in 0..steps {
        let c = match forced.get(t) {
            Some(&f) if f >= 0 => f as usize,
            _ => bmu,
        };
        tables.set(map, c, sigma[t]);
        tables.fill(map, eta[t], &mut g);
        let next: &[T] = if t + 1 < steps { sample(t + 1) } else { &[] };
        bmu = pass(&mut wt, &g, sample(t), next, &mut best);
    }
    for (u, row) in weights.chunks_exact_mut(dim).enumerate() {
        for (k, v) in row.iter_mut().enumerate() {
            *v = wt[k * units + u];
        }
    }
    Ok(steps)
}

/// One online step over units `lo..hi` of transposed weights `wt` (dim rows of `stride`
/// units): `w_u += g_u (upd - w_u)` (skipped when `upd` is empty), then the distance of
/// each unit to `x` (when non-empty), 16 or 8 units per vector. Returns the block's first
/// smallest distance (squared for euclidean) and its unit.
struct PassT<'a, T> {
    wt: SendPtr<T>,
    stride: usize,
    lo: usize,
    hi: usize,
    g: &'a [T],
    upd: &'a [T],
    x: &'a [T],
    xnorm: T,
    dim: usize,
    metric: Distance,
}

impl<T: Float> Kernel for PassT<'_, T> {
    type Out = (usize, T);
    #[inline(always)]
    unsafe fn run<V: Simd>(self) -> (usize, T) {
        let g: &[V::E] = cast(self.g);
        let upd: &[V::E] = cast(self.upd);
        let x: &[V::E] = cast(self.x);
        let wt = self.wt.get() as *mut V::E;
        let (dim, stride, metric) = (self.dim, self.stride, self.metric);
        let zero = V::splat(V::E::ZERO);
        let xnorm: V::E = crate::vmath::cast_val(self.xnorm);
        let eps = V::E::from_f64(1e-8);
        let mut best = (self.lo, V::E::INFINITY);
        let mut found = false;
        let mut c = self.lo;
        while c < self.hi {
            let n = V::LANES.min(self.hi - c);
            let full = n == V::LANES;
            // SAFETY: every access below touches wt[k * stride + c .. + n] for k < dim:
            // columns c..c + n lie in this task's block [lo, hi) (disjoint from every
            // other task's), in bounds because hi <= stride and wt holds dim * stride
            // elements; g holds stride values and upd, x hold dim values when non-empty.
            let gv = if full {
                V::load(g.as_ptr().add(c))
            } else {
                V::load_partial(g.as_ptr().add(c), n, V::E::ZERO)
            };
            let (mut a, mut b) = (zero, zero);
            for k in 0..dim {
                let p = wt.add(k * stride + c);
                let mut w = if full {
                    V::load(p)
                } else {
                    V::load_partial(p, n, V::E::ZERO)
                };
                if !upd.is_empty() {
                    w = gv.mul_add(V::splat(upd[k]).sub(w), w);
                    if full {
                        w.store(p);
                    } else {
                        w.store_partial(p, n);
                    }
                }
                if !x.is_empty() {
                    let xv = V::splat(x[k]);
                    match metric {
                        Distance::Euclidean => {
                            let d = xv.sub(w);
                            a = d.mul_add(d, a);
                        }
                        Distance::Cosine => {
                            a = xv.mul_add(w, a);
                            b = w.mul_add(w, b);
                        }
                        Distance::Manhattan => a = a.add(xv.sub(w).abs()),
                        Distance::Chebyshev => a = a.max(xv.sub(w).abs()),
                    }
                }
            }
            if !x.is_empty() {
                let (av, bv) = (a.to_array(), b.to_array());
                for l in 0..n {
                    let v = if metric == Distance::Cosine {
                        V::E::ONE - av[l] / (bv[l].sqrt() * xnorm + eps)
                    } else {
                        av[l]
                    };
                    if v < best.1 || (!found && !v.is_nan()) {
                        best = (c + l, v);
                        found = true;
                    }
                }
            }
            c += n;
        }
        (best.0, crate::vmath::cast_val(best.1))
    }
}

/// The overall winner of per-block winners (first block wins ties; NaN never wins).
fn combine<T: Float>(best: &[(usize, T)]) -> usize {
    let mut r = best[0];
    for &(i, v) in &best[1..] {
        if v < r.1 || (r.1.is_nan() && !v.is_nan()) {
            r = (i, v);
        }
    }
    r.0
}

// ---------------------------------------------------------------------------------------
// Batched distances and BMU search.

/// `out` (rows x units) = x (rows x dim) times the transpose of `w` (units x dim), on the
/// calling thread.
fn x_wt<T: Float>(
    level: Level,
    x: &[T],
    rows: usize,
    w: &[T],
    units: usize,
    dim: usize,
    out: &mut [T],
) -> Result<()> {
    gemm_with_level(
        level,
        Mode::Inline,
        false,
        true,
        rows,
        units,
        dim,
        T::ONE,
        x,
        dim,
        w,
        dim,
        T::ZERO,
        out,
        units,
    )
}

/// Distances of `rows` samples (`x`, rows x dim) to all units into `out` (rows x units):
/// for euclidean the value `||w||^2 - 2 x.w` when `partial`, else MiniSom's
/// `sqrt(max(0, ||x||^2 - 2 x.w + ||w||^2))`.
#[allow(clippy::too_many_arguments)]
fn block_distances<T: Float>(
    level: Level,
    metric: Distance,
    x: &[T],
    rows: usize,
    w: &[T],
    wsq: &[T],
    units: usize,
    dim: usize,
    partial: bool,
    out: &mut [T],
) -> Result<()> {
    match metric {
        Distance::Euclidean | Distance::Cosine => {
            x_wt(level, x, rows, w, units, dim, out)?;
            let two = T::from_f64(2.0);
            for r in 0..rows {
                let xr = &x[r * dim..][..dim];
                let o = &mut out[r * units..][..units];
                let xsq = xr.iter().fold(T::ZERO, |a, &v| a + v * v);
                if metric == Distance::Euclidean {
                    for (ov, &ws) in o.iter_mut().zip(wsq) {
                        let p = ws - two * *ov;
                        *ov = if partial {
                            p
                        } else {
                            let s = p + xsq;
                            (if s > T::ZERO { s } else { T::ZERO }).sqrt()
                        };
                    }
                } else {
                    let xn = xsq.sqrt();
                    let eps = T::from_f64(1e-8);
                    for (ov, &ws) in o.iter_mut().zip(wsq) {
                        *ov = T::ONE - *ov / (ws.sqrt() * xn + eps);
                    }
                }
            }
        }
        Distance::Manhattan | Distance::Chebyshev => {
            for r in 0..rows {
                let xr = &x[r * dim..][..dim];
                dispatch::<T, _>(
                    level,
                    DistOnly {
                        w,
                        x: xr,
                        dim,
                        metric,
                        out: &mut out[r * units..][..units],
                    },
                );
            }
        }
    }
    Ok(())
}

/// Distances of one sample to many rows, without updating them.
struct DistOnly<'a, T> {
    w: &'a [T],
    x: &'a [T],
    dim: usize,
    metric: Distance,
    out: &'a mut [T],
}

impl<T: Float> Kernel for DistOnly<'_, T> {
    type Out = ();
    #[inline(always)]
    unsafe fn run<V: Simd>(self) {
        let w: &[V::E] = cast(self.w);
        let x: &[V::E] = cast(self.x);
        let out: &mut [V::E] = cast_mut(self.out);
        let z = V::E::ZERO;
        for (u, o) in out.iter_mut().enumerate() {
            // SAFETY: w holds out.len() rows of dim elements, x holds dim.
            *o = distance_row::<V>(
                w.as_ptr().add(u * self.dim),
                x.as_ptr(),
                self.dim,
                self.metric,
                z,
            );
        }
    }
}

/// The first smallest `ws[u] - 2 g[u]` of a row (the euclidean BMU from the GEMM form),
/// lane-parallel: per lane the first strict minimum, then the smallest value with the
/// smallest index across lanes, which is the first minimum of the row. The values are
/// computed as in [`block_distances`] (`ws - 2 g`), so both paths agree bitwise.
struct ArgminRow<'a, T> {
    g: &'a [T],
    ws: &'a [T],
}

impl<T: Float> Kernel for ArgminRow<'_, T> {
    type Out = (usize, T);
    #[inline(always)]
    unsafe fn run<V: Simd>(self) -> (usize, T) {
        let g: &[V::E] = cast(self.g);
        let ws: &[V::E] = cast(self.ws);
        let n = g.len().min(ws.len());
        let inf = V::E::INFINITY;
        let two = V::splat(V::E::from_f64(2.0));
        let step = V::splat(V::E::from_usize(V::LANES));
        let mut lane = [V::E::ZERO; crate::vmath::MAX_LANES];
        for (k, l) in lane.iter_mut().enumerate() {
            *l = V::E::from_usize(k);
        }
        let mut idx = V::load(lane.as_ptr());
        let mut best = V::splat(inf);
        let mut besti = V::splat(V::E::ZERO);
        let mut k = 0;
        // SAFETY: k + LANES <= n in the loop; the tail loads n - k < LANES elements.
        while k + V::LANES <= n {
            let v = V::load(ws.as_ptr().add(k)).sub(V::load(g.as_ptr().add(k)).mul(two));
            let m = v.lt(best);
            best = V::select(m, v, best);
            besti = V::select(m, idx, besti);
            idx = idx.add(step);
            k += V::LANES;
        }
        if k < n {
            let v = V::load_partial(ws.as_ptr().add(k), n - k, inf)
                .sub(V::load_partial(g.as_ptr().add(k), n - k, V::E::ZERO).mul(two));
            let m = v.lt(best);
            best = V::select(m, v, best);
            besti = V::select(m, idx, besti);
        }
        let (bv, bi) = (best.to_array(), besti.to_array());
        let mut r = (0usize, inf);
        let mut found = false;
        for l in 0..V::LANES {
            let i = bi[l].to_f64() as usize;
            if bv[l] < r.1 || (bv[l] == r.1 && found && i < r.0) || (!found && bv[l] < inf) {
                r = (i, bv[l]);
                found = true;
            }
        }
        (r.0, crate::vmath::cast_val(r.1))
    }
}

/// Squared norms of the units (for the GEMM form of the euclidean and cosine distances).
fn unit_sq<T: Float>(w: &[T], units: usize, dim: usize) -> Vec<T> {
    (0..units)
        .map(|u| w[u * dim..][..dim].iter().fold(T::ZERO, |a, &v| a + v * v))
        .collect()
}

/// Distances of every sample to every unit: `out` is (n, units). Euclidean as MiniSom's
/// `_distance_from_weights` (GEMM form, clipped at 0); the others as defined above.
pub fn distances<T: Float>(
    metric: Distance,
    data: &[T],
    n: usize,
    weights: &[T],
    units: usize,
    dim: usize,
    out: &mut [T],
) -> Result<()> {
    const OP: &str = "som_distances";
    check_metric_data(OP, data, n, dim)?;
    check_len(
        OP,
        "weights",
        checked_product(OP, &[units, dim])?,
        weights.len(),
    )?;
    check_len(OP, "out", checked_product(OP, &[n, units])?, out.len())?;
    if n == 0 || units == 0 {
        return Ok(());
    }
    let level = simd::level();
    let wsq = unit_sq(weights, units, dim);
    let out = &mut out[..n * units];
    let errs = std::sync::Mutex::new(None);
    threading::for_each_chunk_mut(out, ROWS * units, |b, o| {
        let rows = o.len() / units;
        let x = &data[b * ROWS * dim..][..rows * dim];
        if let Err(e) = block_distances(level, metric, x, rows, weights, &wsq, units, dim, false, o)
        {
            *errs.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
        }
    });
    match errs.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Best (and optionally second-best) matching units of every sample. `best`/`best_d` hold
/// n values: the BMU's index and its distance (euclidean: the exact `||x - w||`). When
/// `second` is non-empty it (and `second_d`) receive the runner-up likewise (equal to the
/// best when there is a single unit).
#[allow(clippy::too_many_arguments)]
pub fn bmu<T: Float>(
    metric: Distance,
    data: &[T],
    n: usize,
    weights: &[T],
    units: usize,
    dim: usize,
    best: &mut [i64],
    best_d: &mut [T],
    second: &mut [i64],
    second_d: &mut [T],
) -> Result<()> {
    const OP: &str = "som_bmu";
    check_metric_data(OP, data, n, dim)?;
    if units == 0 || dim == 0 {
        return Err(KernelError::InvalidArgument {
            op: OP,
            detail: format!(
                "expected at least one unit of at least one weight, given {units} x {dim}"
            ),
        });
    }
    check_len(
        OP,
        "weights",
        checked_product(OP, &[units, dim])?,
        weights.len(),
    )?;
    check_len(OP, "best", n, best.len())?;
    check_len(OP, "best_d", n, best_d.len())?;
    let two = !second.is_empty();
    if two {
        check_len(OP, "second", n, second.len())?;
        check_len(OP, "second_d", n, second_d.len())?;
    }
    if n == 0 {
        return Ok(());
    }
    let level = simd::level();
    let wsq = unit_sq(weights, units, dim);
    let nblocks = n.div_ceil(ROWS);
    let per = threading::task_len(nblocks, 1);
    let fused = metric == Distance::Euclidean && !two && units < (1 << 24);
    let (bp, bdp) = (SendPtr::new(best), SendPtr::new(best_d));
    let (sp, sdp) = (SendPtr::new(second), SendPtr::new(second_d));
    let errs = std::sync::Mutex::new(None);
    threading::run_tasks(nblocks.div_ceil(per), |task| {
        let mut buf = vec![T::ZERO; ROWS * units];
        for blk in task * per..((task + 1) * per).min(nblocks) {
            let lo = blk * ROWS;
            let rows = ROWS.min(n - lo);
            let x = &data[lo * dim..][..rows * dim];
            let o = &mut buf[..rows * units];
            let res = if fused {
                // The GEMM x.w only; ||w||^2 - 2 x.w is formed inside the argmin.
                x_wt(level, x, rows, weights, units, dim, o)
            } else {
                block_distances(level, metric, x, rows, weights, &wsq, units, dim, true, o)
            };
            if let Err(e) = res {
                *errs.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                return;
            }
            for r in 0..rows {
                let d = &o[r * units..][..units];
                let (b1, v1) = if fused {
                    dispatch::<T, _>(level, ArgminRow { g: d, ws: &wsq })
                } else {
                    argmin(d)
                };
                let (b2, v2) = if two && units > 1 {
                    let mut s = (usize::MAX, T::INFINITY);
                    for (i, &v) in d.iter().enumerate() {
                        if i != b1 && (v < s.1 || s.0 == usize::MAX) {
                            s = (i, v);
                        }
                    }
                    s
                } else {
                    (b1, v1)
                };
                let xr = &x[r * dim..][..dim];
                let exact = |b: usize, v: T| -> T {
                    if metric == Distance::Euclidean {
                        let wr = &weights[b * dim..][..dim];
                        xr.iter()
                            .zip(wr)
                            .fold(T::ZERO, |a, (&p, &q)| a + (p - q) * (p - q))
                            .sqrt()
                    } else {
                        v
                    }
                };
                let i = lo + r;
                // SAFETY: i < n and each sample index belongs to exactly one block, run by
                // exactly one task; best/best_d (and second/second_d when used) hold n
                // values and are exclusively borrowed for this call.
                unsafe {
                    *bp.get().add(i) = b1 as i64;
                    *bdp.get().add(i) = exact(b1, v1);
                    if two {
                        *sp.get().add(i) = b2 as i64;
                        *sdp.get().add(i) = exact(b2, v2);
                    }
                }
            }
        }
    });
    match errs.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------
// Batch training.

/// Batch training: one epoch per entry of `sigma`/`lr` (see the module docs). `weights`
/// is `(x * y, dim)`, updated in place.
pub fn train_batch<T: Float>(
    map: &Map,
    metric: Distance,
    weights: &mut [T],
    data: &[T],
    n: usize,
    sigma: &[f64],
    lr: &[f64],
) -> Result<()> {
    const OP: &str = "som_train_batch";
    let units = map.check(OP)?;
    let dim = map.dim;
    check_len(OP, "weights", units * dim, weights.len())?;
    check_metric_data(OP, data, n, dim)?;
    if sigma.len() != lr.len() {
        return Err(KernelError::ShapeMismatch {
            op: OP,
            detail: format!(
                "sigma and lr must have one entry per epoch, lengths {} and {}",
                sigma.len(),
                lr.len()
            ),
        });
    }
    if n == 0 {
        return Ok(());
    }
    let level = simd::level();
    let weights = &mut weights[..units * dim];
    let mut bmus = vec![0i64; n];
    let mut bd = vec![T::ZERO; n];
    let mut counts = vec![0usize; units];
    let mut start = vec![0usize; units + 1];
    let mut sorted = vec![0usize; n];
    let mut sums = vec![T::ZERO; units * dim];
    let mut cnt_t = vec![T::ZERO; units];
    let rb = (H_BLOCK / units).clamp(1, units);
    let mut hblk = vec![T::ZERO; rb * units];
    let mut num = vec![T::ZERO; rb * dim];
    let mut den = vec![T::ZERO; rb];
    for (&s, &l) in sigma.iter().zip(lr) {
        bmu(
            metric,
            data,
            n,
            weights,
            units,
            dim,
            &mut bmus,
            &mut bd,
            &mut [],
            &mut [],
        )?;
        // Stable counting sort of the samples by BMU.
        counts.iter_mut().for_each(|c| *c = 0);
        for &b in &bmus {
            counts[b as usize] += 1;
        }
        start[0] = 0;
        for u in 0..units {
            start[u + 1] = start[u] + counts[u];
        }
        let mut fill = start.clone();
        for (i, &b) in bmus.iter().enumerate() {
            sorted[fill[b as usize]] = i;
            fill[b as usize] += 1;
        }
        // Per-unit sums, each in sample order.
        let chunk = threading::task_len(units, 16) * dim;
        threading::for_each_chunk_mut(&mut sums, chunk, |c, part| {
            let u0 = c * chunk / dim;
            for (k, row) in part.chunks_exact_mut(dim).enumerate() {
                let u = u0 + k;
                row.iter_mut().for_each(|v| *v = T::ZERO);
                for &i in &sorted[start[u]..start[u + 1]] {
                    for (r, &xv) in row.iter_mut().zip(&data[i * dim..][..dim]) {
                        *r += xv;
                    }
                }
            }
        });
        for (c, &k) in cnt_t.iter_mut().zip(&counts) {
            *c = T::from_usize(k);
        }
        // Row blocks of H (symmetric: row u is the neighbourhood centred on u).
        for r0 in (0..units).step_by(rb) {
            let rows = rb.min(units - r0);
            let hb = &mut hblk[..rows * units];
            let db = &mut den[..rows];
            let dp = SendPtr::new(db);
            threading::for_each_chunk_mut(hb, units * threading::task_len(rows, 4), |c, part| {
                let per = threading::task_len(rows, 4);
                let mut t = Tables::new(map);
                for (k, hrow) in part.chunks_exact_mut(units).enumerate() {
                    let r = c * per + k;
                    t.set(map, r0 + r, s);
                    let mut acc = T::ZERO;
                    for (cidx, hv) in hrow.iter_mut().enumerate() {
                        *hv = T::from_f64(t.h(map, cidx));
                        acc += *hv * cnt_t[cidx];
                    }
                    // SAFETY: r < rows indexes this block's den; each r is one row of
                    // exactly one chunk.
                    unsafe { *dp.get().add(r) = acc };
                }
            });
            let nb = &mut num[..rows * dim];
            gemm_with_level(
                level,
                Mode::Auto,
                false,
                false,
                rows,
                dim,
                units,
                T::ONE,
                hb,
                units,
                &sums,
                dim,
                T::ZERO,
                nb,
                dim,
            )?;
            let lt = T::from_f64(l);
            let keep = T::ONE - lt;
            let wb = &mut weights[r0 * dim..(r0 + rows) * dim];
            for (r, wrow) in wb.chunks_exact_mut(dim).enumerate() {
                let d = den[r];
                if d > T::ZERO {
                    for (wv, &nv) in wrow.iter_mut().zip(&nb[r * dim..][..dim]) {
                        *wv = keep * *wv + lt * (nv / d);
                    }
                }
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// U-matrix.

/// MiniSom's `distance_map`: `out` (x * y) receives, for each unit, the sum (or the mean,
/// `mean = true`) of the euclidean distances to its grid neighbours, divided by the
/// largest such value.
pub fn umatrix<T: Float>(map: &Map, weights: &[T], mean: bool, out: &mut [T]) -> Result<()> {
    const OP: &str = "som_distance_map";
    let units = map.check(OP)?;
    let dim = map.dim;
    check_len(OP, "weights", units * dim, weights.len())?;
    check_len(OP, "out", units, out.len())?;
    const RII: [i64; 8] = [0, -1, -1, -1, 0, 1, 1, 1];
    const RJJ: [i64; 8] = [-1, -1, 0, 1, 1, 1, 0, -1];
    // Hexagonal offsets: [odd row, even row] as MiniSom indexes them by `y % 2 == 0`.
    const HII: [[i64; 6]; 2] = [[1, 1, 1, 0, -1, 0], [0, 1, 0, -1, -1, -1]];
    const HJJ: [[i64; 6]; 2] = [[1, 0, -1, -1, 0, 1], [1, 0, -1, -1, 0, 1]];
    let (x, y) = (map.x as i64, map.y as i64);
    let out = &mut out[..units];
    threading::for_each_chunk_mut(out, threading::task_len(units, 64), |c, part| {
        let u0 = c * threading::task_len(units, 64);
        for (k, o) in part.iter_mut().enumerate() {
            let u = u0 + k;
            let (i, j) = ((u / map.y) as i64, (u % map.y) as i64);
            let (ii, jj): (&[i64], &[i64]) = if map.hex() {
                let e = usize::from(j % 2 == 0);
                (&HII[e], &HJJ[e])
            } else {
                (&RII, &RJJ)
            };
            let w2 = &weights[u * dim..][..dim];
            let (mut acc, mut cnt) = (T::ZERO, 0usize);
            for (&di, &dj) in ii.iter().zip(jj) {
                let (a, b) = (i + di, j + dj);
                if a >= 0 && a < x && b >= 0 && b < y {
                    let w1 = &weights[(a * y + b) as usize * dim..][..dim];
                    let d2 = w2
                        .iter()
                        .zip(w1)
                        .fold(T::ZERO, |s, (&p, &q)| s + (p - q) * (p - q));
                    acc += d2.sqrt();
                    cnt += 1;
                }
            }
            *o = if mean {
                if cnt == 0 {
                    T::NAN
                } else {
                    acc / T::from_usize(cnt)
                }
            } else {
                acc
            };
        }
    });
    let mut mx = T::NEG_INFINITY;
    for &v in out.iter() {
        if v > mx {
            mx = v;
        }
    }
    for v in out.iter_mut() {
        *v = *v / mx;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::threading::with_threads;
    use crate::vmath::testutil::Rng;

    fn map(x: usize, y: usize, dim: usize, hex: bool, nb: Neighborhood) -> Map {
        Map {
            x,
            y,
            dim,
            topology: if hex {
                Topology::Hexagonal
            } else {
                Topology::Rectangular
            },
            neighborhood: nb,
        }
    }

    #[test]
    fn online_same_for_any_thread_count() {
        let m = map(13, 11, 37, true, Neighborhood::Gaussian);
        let units = 13 * 11;
        let mut rng = Rng::new(3);
        let data: Vec<f32> = rng
            .vec(200 * 37, -1.0, 1.0)
            .iter()
            .map(|&v| v as f32)
            .collect();
        let w0: Vec<f32> = rng
            .vec(units * 37, -1.0, 1.0)
            .iter()
            .map(|&v| v as f32)
            .collect();
        let order: Vec<i64> = (0..300).map(|t| (t * 7 % 200) as i64).collect();
        let eta: Vec<f64> = (0..300).map(|t| 0.5 / (1.0 + t as f64 / 150.0)).collect();
        let sig: Vec<f64> = (0..300).map(|t| 2.0 / (1.0 + t as f64 / 150.0)).collect();
        for metric in [
            Distance::Euclidean,
            Distance::Cosine,
            Distance::Manhattan,
            Distance::Chebyshev,
        ] {
            let mut r = Vec::new();
            for th in 1..=3 {
                let mut w = w0.clone();
                with_threads(th, || {
                    train_online(&m, metric, &mut w, &data, 200, &order, &eta, &sig, &[]).unwrap()
                });
                r.push(w);
            }
            assert_eq!(r[0], r[1]);
            assert_eq!(r[0], r[2]);
        }
    }

    #[test]
    fn bmu_matches_brute_force_and_errors() {
        let mut rng = Rng::new(5);
        let (n, units, dim) = (150, 23, 9);
        let data = rng.vec(n * dim, -1.0, 1.0);
        let w = rng.vec(units * dim, -1.0, 1.0);
        let (mut b, mut bd, mut s, mut sd) = (vec![0; n], vec![0.0; n], vec![0; n], vec![0.0; n]);
        bmu(
            Distance::Euclidean,
            &data,
            n,
            &w,
            units,
            dim,
            &mut b,
            &mut bd,
            &mut s,
            &mut sd,
        )
        .unwrap();
        for i in 0..n {
            let mut d: Vec<(f64, usize)> = (0..units)
                .map(|u| {
                    let s: f64 = (0..dim)
                        .map(|k| (data[i * dim + k] - w[u * dim + k]).powi(2))
                        .sum();
                    (s.sqrt(), u)
                })
                .collect();
            d.sort_by(|a, b| a.partial_cmp(b).unwrap());
            assert_eq!(b[i] as usize, d[0].1);
            assert_eq!(s[i] as usize, d[1].1);
            assert!((bd[i] - d[0].0).abs() < 1e-12);
        }
        assert!(bmu(
            Distance::Euclidean,
            &data,
            n,
            &w[..10],
            units,
            dim,
            &mut b,
            &mut bd,
            &mut [],
            &mut []
        )
        .is_err());
        let bad = map(0, 3, 2, false, Neighborhood::Bubble);
        assert!(bad.check("t").is_err());
    }

    #[test]
    fn batch_same_for_any_thread_count() {
        let m = map(7, 6, 5, false, Neighborhood::MexicanHat);
        let mut rng = Rng::new(9);
        let data = rng.vec(300 * 5, 0.0, 1.0);
        let w0 = rng.vec(42 * 5, 0.0, 1.0);
        let mut r = Vec::new();
        for th in 1..=3 {
            let mut w = w0.clone();
            with_threads(th, || {
                train_batch(
                    &m,
                    Distance::Euclidean,
                    &mut w,
                    &data,
                    300,
                    &[3.0, 2.0, 1.0],
                    &[1.0, 0.5, 0.5],
                )
                .unwrap()
            });
            r.push(w);
        }
        assert_eq!(r[0], r[1]);
        assert_eq!(r[0], r[2]);
    }
}
