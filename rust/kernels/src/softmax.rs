//! Softmax and log-softmax along the last axis of a (rows, cols) array, max-subtracted.
//!
//! CONTRACT: all buffers hold rows * cols elements (checked).
//! softmax backward: gx = y * (gy - sum_j gy_j y_j); log_softmax backward:
//! gx = gy - exp(y) * sum_j gy_j (y being the forward output).
//!
//! Implementation: each row is done by one SIMD kernel (lane-wise max, lane-wise sum of
//! exp(x - max) combined in a fixed pairwise order), so a row's result depends only on the
//! row and the SIMD level. Rows are shared out in blocks of whole rows when the array has
//! at least [`PAR_MIN`] elements (twice that for the backward) and more than one row. Like
//! PyTorch, a row holding +inf, NaN, or only -inf gives NaN.

use crate::error::{check_len, checked_product};
use crate::simd::{self, Level};
use crate::threading;
use crate::vmath::{cast, cast_mut, dispatch, Kernel, Simd};
use crate::{Float, Result};

/// y = softmax(x) (or log_softmax when `log`) along each row.
pub fn forward<T: Float>(x: &[T], y: &mut [T], rows: usize, cols: usize, log: bool) -> Result<()> {
    forward_at(simd::level(), x, y, rows, cols, log)
}

/// Gradient of [`forward`] given its output `y` and the output gradient `gy`.
pub fn backward<T: Float>(
    y: &[T],
    gy: &[T],
    gx: &mut [T],
    rows: usize,
    cols: usize,
    log: bool,
) -> Result<()> {
    backward_at(simd::level(), y, gy, gx, rows, cols, log)
}

fn op_name(log: bool, back: bool) -> &'static str {
    match (log, back) {
        (false, false) => "softmax",
        (true, false) => "log_softmax",
        (false, true) => "softmax_backward",
        (true, true) => "log_softmax_backward",
    }
}

/// Forward arrays with fewer elements run on the calling thread (measured on Zen 4: two
/// threads gain 1.5x at 8K elements; the backward, about half the work per element, goes
/// parallel from twice as many).
pub const PAR_MIN: usize = 8 * 1024;
/// Elements per parallel task of the forward (whole rows; results do not depend on it).
const TASK: usize = 4 * 1024;

/// Elements per task: whole rows, about `task` elements, at least one row.
fn block(cols: usize, task: usize) -> usize {
    (task / cols.max(1)).max(1) * cols
}

pub(crate) fn forward_at<T: Float>(
    level: Level,
    x: &[T],
    y: &mut [T],
    rows: usize,
    cols: usize,
    log: bool,
) -> Result<()> {
    let op = op_name(log, false);
    let total = checked_product(op, &[rows, cols])?;
    check_len(op, "x", total, x.len())?;
    check_len(op, "y", total, y.len())?;
    if total == 0 {
        return Ok(());
    }
    let (x, y) = (&x[..total], &mut y[..total]);
    let run = |xc: &[T], yc: &mut [T]| {
        dispatch::<T, _>(
            level,
            Fwd {
                x: xc,
                y: yc,
                cols,
                log,
            },
        )
    };
    if total < PAR_MIN || rows == 1 {
        run(x, y);
    } else {
        let block = block(cols, threading::task_len(total, TASK));
        threading::for_each_chunk_mut(y, block, |c, yc| {
            let lo = c * block;
            run(&x[lo..lo + yc.len()], yc)
        });
    }
    Ok(())
}

pub(crate) fn backward_at<T: Float>(
    level: Level,
    y: &[T],
    gy: &[T],
    gx: &mut [T],
    rows: usize,
    cols: usize,
    log: bool,
) -> Result<()> {
    let op = op_name(log, true);
    let total = checked_product(op, &[rows, cols])?;
    check_len(op, "y", total, y.len())?;
    check_len(op, "gy", total, gy.len())?;
    check_len(op, "gx", total, gx.len())?;
    if total == 0 {
        return Ok(());
    }
    let (y, gy, gx) = (&y[..total], &gy[..total], &mut gx[..total]);
    let run = |yc: &[T], gc: &[T], oc: &mut [T]| {
        dispatch::<T, _>(
            level,
            Bwd {
                y: yc,
                gy: gc,
                gx: oc,
                cols,
                log,
            },
        )
    };
    if total < 2 * PAR_MIN || rows == 1 {
        run(y, gy, gx);
    } else {
        let block = block(cols, threading::task_len(total, 2 * TASK));
        threading::for_each_chunk_mut(gx, block, |c, oc| {
            let r = c * block..c * block + oc.len();
            run(&y[r.clone()], &gy[r], oc)
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Kernels.

/// Lane-wise maximum of a row (MAXPS semantics; NaN is caught later by exp).
#[inline(always)]
unsafe fn row_max<V: Simd>(x: &[V::E]) -> V::E {
    let n = x.len();
    let p = x.as_ptr();
    let ninf = V::E::NEG_INFINITY;
    let mut m0 = V::splat(ninf);
    let mut m1 = V::splat(ninf);
    let mut i = 0;
    // SAFETY (all pointer uses): i + LANES <= n in the loops, n - i < LANES in the tail.
    while i + 2 * V::LANES <= n {
        m0 = m0.max(V::load(p.add(i)));
        m1 = m1.max(V::load(p.add(i + V::LANES)));
        i += 2 * V::LANES;
    }
    while i + V::LANES <= n {
        m0 = m0.max(V::load(p.add(i)));
        i += V::LANES;
    }
    if i < n {
        m1 = m1.max(V::load_partial(p.add(i), n - i, ninf));
    }
    m0.max(m1).hmax()
}

struct Fwd<'a, T> {
    x: &'a [T],
    y: &'a mut [T],
    cols: usize,
    log: bool,
}

impl<T: Float> Kernel for Fwd<'_, T> {
    type Out = ();
    #[inline(always)]
    unsafe fn run<V: Simd>(self) {
        let x: &[V::E] = cast(self.x);
        let y: &mut [V::E] = cast_mut(self.y);
        let cols = self.cols;
        for (xr, yr) in x.chunks_exact(cols).zip(y.chunks_exact_mut(cols)) {
            softmax_row::<V>(xr, yr, self.log);
        }
    }
}

/// Elements per inner summation block of a row (a multiple of 2 * 16 lanes).
const SUM_BLOCK: usize = 512;

#[inline(always)]
unsafe fn softmax_row<V: Simd>(x: &[V::E], y: &mut [V::E], log: bool) {
    let n = x.len().min(y.len());
    let (px, py) = (x.as_ptr(), y.as_mut_ptr());
    let m = V::splat(row_max::<V>(&x[..n]));
    let ninf = V::E::NEG_INFINITY;
    let zero = V::splat(V::E::ZERO);
    let mut s0 = zero;
    let mut s1 = zero;
    let mut i = 0;
    // SAFETY (all pointer uses): i + LANES <= n in the loops, n - i < LANES in the tails.
    // Blocks of SUM_BLOCK elements are summed into fresh accumulators first (two-level
    // summation keeps long rows accurate even with one lane).
    while i + SUM_BLOCK <= n {
        let (mut b0, mut b1) = (zero, zero);
        let end = i + SUM_BLOCK;
        while i < end {
            let e0 = V::load(px.add(i)).sub(m).exp();
            let e1 = V::load(px.add(i + V::LANES)).sub(m).exp();
            if !log {
                e0.store(py.add(i));
                e1.store(py.add(i + V::LANES));
            }
            b0 = b0.add(e0);
            b1 = b1.add(e1);
            i += 2 * V::LANES;
        }
        s0 = s0.add(b0);
        s1 = s1.add(b1);
    }
    let (mut b0, mut b1) = (zero, zero);
    while i + 2 * V::LANES <= n {
        let e0 = V::load(px.add(i)).sub(m).exp();
        let e1 = V::load(px.add(i + V::LANES)).sub(m).exp();
        if !log {
            e0.store(py.add(i));
            e1.store(py.add(i + V::LANES));
        }
        b0 = b0.add(e0);
        b1 = b1.add(e1);
        i += 2 * V::LANES;
    }
    s0 = s0.add(b0);
    s1 = s1.add(b1);
    while i + V::LANES <= n {
        let e = V::load(px.add(i)).sub(m).exp();
        if !log {
            e.store(py.add(i));
        }
        s0 = s0.add(e);
        i += V::LANES;
    }
    if i < n {
        // Padding lanes hold -inf: exp(-inf - m) = 0 (or NaN when m is not finite, in
        // which case the row is NaN anyway).
        let e = V::load_partial(px.add(i), n - i, ninf).sub(m).exp();
        if !log {
            e.store_partial(py.add(i), n - i);
        }
        s1 = s1.add(e);
    }
    let s = s0.add(s1).hsum();
    if log {
        let ls = V::splat(V::E::ZERO).sub(V::splat(s.ln()));
        let mut i = 0;
        while i + V::LANES <= n {
            V::load(px.add(i)).sub(m).add(ls).store(py.add(i));
            i += V::LANES;
        }
        if i < n {
            V::load_partial(px.add(i), n - i, V::E::ZERO)
                .sub(m)
                .add(ls)
                .store_partial(py.add(i), n - i);
        }
    } else {
        let r = V::splat(V::E::ONE / s);
        let mut i = 0;
        while i + V::LANES <= n {
            V::load(py.add(i)).mul(r).store(py.add(i));
            i += V::LANES;
        }
        if i < n {
            V::load_partial(py.add(i), n - i, V::E::ZERO)
                .mul(r)
                .store_partial(py.add(i), n - i);
        }
    }
}

struct Bwd<'a, T> {
    y: &'a [T],
    gy: &'a [T],
    gx: &'a mut [T],
    cols: usize,
    log: bool,
}

impl<T: Float> Kernel for Bwd<'_, T> {
    type Out = ();
    #[inline(always)]
    unsafe fn run<V: Simd>(self) {
        let y: &[V::E] = cast(self.y);
        let g: &[V::E] = cast(self.gy);
        let o: &mut [V::E] = cast_mut(self.gx);
        let cols = self.cols;
        for ((yr, gr), or) in y
            .chunks_exact(cols)
            .zip(g.chunks_exact(cols))
            .zip(o.chunks_exact_mut(cols))
        {
            backward_row::<V>(yr, gr, or, self.log);
        }
    }
}

#[inline(always)]
unsafe fn backward_row<V: Simd>(y: &[V::E], g: &[V::E], o: &mut [V::E], log: bool) {
    let n = y.len().min(g.len()).min(o.len());
    let (py, pg, po) = (y.as_ptr(), g.as_ptr(), o.as_mut_ptr());
    let z = V::E::ZERO;
    // s = sum_j gy_j y_j (softmax) or sum_j gy_j (log_softmax), lane-wise then pairwise.
    let mut s0 = V::splat(z);
    let mut i = 0;
    // SAFETY (all pointer uses): i + LANES <= n in the loops, n - i < LANES in the tails.
    while i + V::LANES <= n {
        let gv = V::load(pg.add(i));
        s0 = if log {
            s0.add(gv)
        } else {
            gv.mul_add(V::load(py.add(i)), s0)
        };
        i += V::LANES;
    }
    if i < n {
        let gv = V::load_partial(pg.add(i), n - i, z);
        s0 = if log {
            s0.add(gv)
        } else {
            gv.mul_add(V::load_partial(py.add(i), n - i, z), s0)
        };
    }
    let s = V::splat(s0.hsum());
    let mut i = 0;
    while i + V::LANES <= n {
        grad::<V>(V::load(py.add(i)), V::load(pg.add(i)), s, log).store(po.add(i));
        i += V::LANES;
    }
    if i < n {
        grad::<V>(
            V::load_partial(py.add(i), n - i, z),
            V::load_partial(pg.add(i), n - i, z),
            s,
            log,
        )
        .store_partial(po.add(i), n - i);
    }
}

/// gx = gy - exp(y) s (log_softmax) or y (gy - s) (softmax).
#[inline(always)]
unsafe fn grad<V: Simd>(y: V, g: V, s: V, log: bool) -> V {
    if log {
        g.sub(y.exp().mul(s))
    } else {
        y.mul(g.sub(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vmath::testutil::{Rng, LEVELS};

    fn reference(x: &[f64], cols: usize, log: bool) -> Vec<f64> {
        let mut y = vec![0.0; x.len()];
        for (xr, yr) in x.chunks(cols).zip(y.chunks_mut(cols)) {
            let m = xr.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = xr.iter().map(|v| (v - m).exp()).sum();
            for (a, b) in xr.iter().zip(yr.iter_mut()) {
                *b = if log {
                    a - m - s.ln()
                } else {
                    (a - m).exp() / s
                };
            }
        }
        y
    }

    fn shapes() -> Vec<(usize, usize)> {
        let mut v = vec![(0, 5), (5, 0), (1, 1), (3, 1), (1, 7)];
        for c in [2, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 1000, 4099] {
            v.push((3, c));
        }
        v.push((1, 40_000));
        v.push((700, 64));
        v.push((5000, 10));
        v
    }

    #[test]
    fn forward_and_backward_match_reference() {
        for level in LEVELS {
            for (rows, cols) in shapes() {
                for log in [false, true] {
                    let mut r = Rng::new((rows * 31 + cols) as u64);
                    let x = r.vec(rows * cols, -15.0, 15.0);
                    let gy = r.vec(rows * cols, -1.0, 1.0);
                    let want = reference(&x, cols.max(1), log);
                    // f64
                    let mut y = vec![0.0; x.len()];
                    forward_at(level, &x, &mut y, rows, cols, log).unwrap();
                    for i in 0..x.len() {
                        assert!((y[i] - want[i]).abs() <= 1e-14 * want[i].abs().max(1.0));
                    }
                    let mut gx = vec![0.0; x.len()];
                    backward_at(level, &y, &gy, &mut gx, rows, cols, log).unwrap();
                    for (k, (yr, gr)) in y
                        .chunks(cols.max(1))
                        .zip(gy.chunks(cols.max(1)))
                        .enumerate()
                    {
                        let s: f64 = if log {
                            gr.iter().sum()
                        } else {
                            gr.iter().zip(yr).map(|(g, y)| g * y).sum()
                        };
                        for j in 0..yr.len() {
                            let w = if log {
                                gr[j] - yr[j].exp() * s
                            } else {
                                yr[j] * (gr[j] - s)
                            };
                            let got = gx[k * cols + j];
                            assert!((got - w).abs() <= 1e-13, "{got} {w}");
                        }
                    }
                    // f32
                    let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
                    // x - max is rounded to f32 (as in PyTorch): subtract in f32 first.
                    let mut shifted = Vec::with_capacity(x.len());
                    for xr in x32.chunks(cols.max(1)) {
                        let m = xr.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                        shifted.extend(xr.iter().map(|&v| (v - m) as f64));
                    }
                    let want = reference(&shifted, cols.max(1), log);
                    let mut y32 = vec![0f32; x.len()];
                    forward_at(level, &x32, &mut y32, rows, cols, log).unwrap();
                    for i in 0..x.len() {
                        let tol = if log {
                            4e-6 * want[i].abs().max(1.0)
                        } else {
                            2e-6 * want[i] + 1e-30
                        };
                        assert!(
                            (y32[i] as f64 - want[i]).abs() <= tol,
                            "{level:?} ({rows},{cols}) log={log} i={i} {} {}",
                            y32[i],
                            want[i]
                        );
                    }
                    let gy32: Vec<f32> = gy.iter().map(|&v| v as f32).collect();
                    let mut gx32 = vec![0f32; x.len()];
                    backward_at(level, &y32, &gy32, &mut gx32, rows, cols, log).unwrap();
                    for (k, (yr, gr)) in y32
                        .chunks(cols.max(1))
                        .zip(gy32.chunks(cols.max(1)))
                        .enumerate()
                    {
                        let s: f64 = if log {
                            gr.iter().map(|&g| g as f64).sum()
                        } else {
                            gr.iter().zip(yr).map(|(&g, &y)| g as f64 * y as f64).sum()
                        };
                        for j in 0..yr.len() {
                            let (yj, gj) = (yr[j] as f64, gr[j] as f64);
                            let w = if log {
                                gj - yj.exp() * s
                            } else {
                                yj * (gj - s)
                            };
                            let got = gx32[k * cols + j] as f64;
                            let tol = 1e-5 * (1.0 + s.abs()) + 1e-5 * w.abs();
                            assert!((got - w).abs() <= tol, "{level:?} {got} {w}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn special_rows_like_pytorch() {
        let inf = f32::INFINITY;
        let nan = f32::NAN;
        for level in LEVELS {
            for log in [false, true] {
                let rows: Vec<Vec<f32>> = vec![
                    vec![-inf, 0.0, 0.0, -inf],
                    vec![-inf; 5],
                    vec![1.0, inf, 2.0],
                    vec![1.0, nan, 2.0],
                    vec![1e30, -1e30, 1e30],
                    vec![-0.0, 0.0],
                ];
                for x in rows {
                    let mut y = vec![0f32; x.len()];
                    forward_at(level, &x, &mut y, 1, x.len(), log).unwrap();
                    let finite =
                        x.iter().all(|v| !v.is_nan() && *v != inf) && x.iter().any(|v| *v > -inf);
                    if !finite {
                        assert!(y.iter().all(|v| v.is_nan()), "{x:?} -> {y:?}");
                        continue;
                    }
                    let want = reference(
                        &x.iter().map(|&v| v as f64).collect::<Vec<_>>(),
                        x.len(),
                        log,
                    );
                    for (a, b) in y.iter().zip(&want) {
                        assert!(
                            *a as f64 == *b || (*a as f64 - b).abs() < 1e-6,
                            "{x:?} {y:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn errors() {
        let x = [0f32; 6];
        let mut y = [0f32; 6];
        assert!(forward(&x, &mut y, 2, 4, false).is_err());
        assert!(forward(&x, &mut y[..5], 2, 3, true).is_err());
        assert!(forward(&x, &mut y, usize::MAX, 3, false).is_err());
        let mut gx = [0f32; 6];
        assert!(backward(&x, &x[..5], &mut gx, 2, 3, false).is_err());
        assert!(backward(&x, &x, &mut gx[..1], 2, 3, true).is_err());
        assert!(forward(&x, &mut y, 2, 3, false).is_ok());
    }

    #[test]
    fn threads_do_not_change_bits() {
        let shapes = [
            (3000, 33),
            (64, 1000),
            (1, 70_000),
            (PAR_MIN / 64 - 1, 64),
            (PAR_MIN / 64, 64),
            (PAR_MIN / 32, 64),
            (PAR_MIN / 100 + 1, 100),
            (PAR_MIN / 50 + 1, 100),
            (7, PAR_MIN / 7 + 3),
        ];
        for (rows, cols) in shapes {
            let mut r = Rng::new(4);
            let x: Vec<f32> = r
                .vec(rows * cols, -10.0, 10.0)
                .iter()
                .map(|&v| v as f32)
                .collect();
            let gy: Vec<f32> = r
                .vec(rows * cols, -1.0, 1.0)
                .iter()
                .map(|&v| v as f32)
                .collect();
            for log in [false, true] {
                let mut outs = Vec::new();
                for t in [1, 2, 3] {
                    let mut y = vec![0f32; x.len()];
                    let mut gx = vec![0f32; x.len()];
                    crate::threading::with_threads(t, || {
                        forward(&x, &mut y, rows, cols, log).unwrap();
                        backward(&y, &gy, &mut gx, rows, cols, log).unwrap();
                    });
                    outs.push((y, gx));
                }
                let bits = |v: &[f32]| v.iter().map(|a| a.to_bits()).collect::<Vec<u32>>();
                for o in &outs[1..] {
                    assert_eq!(bits(&o.0), bits(&outs[0].0), "({rows}, {cols}) {log}");
                    assert_eq!(bits(&o.1), bits(&outs[0].1), "({rows}, {cols}) {log}");
                }
            }
        }
    }
}
