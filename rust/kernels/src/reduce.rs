//! Reductions along one axis of an array viewed as (outer, n, inner), C-contiguous.
//!
//! CONTRACT: `x` holds outer * n * inner elements; `out` (and `idx`) hold outer * inner.
//! The reduction order of every output element is fixed (independent of threads).
//! n == 0: sum gives 0, mean gives NaN, max/min return an error. max/min propagate NaN
//! (the result is NaN and its index the first NaN's); ties give the first index.

use crate::{Float, Result};

/// out[o, i] = sum_j x[o, j, i].
pub fn sum<T: Float>(x: &[T], outer: usize, n: usize, inner: usize, out: &mut [T]) -> Result<()> {
    let _ = (x, outer, n, inner, out);
    todo!()
}

/// out[o, i] = mean_j x[o, j, i].
pub fn mean<T: Float>(x: &[T], outer: usize, n: usize, inner: usize, out: &mut [T]) -> Result<()> {
    let _ = (x, outer, n, inner, out);
    todo!()
}

/// out[o, i] = max_j x[o, j, i], idx[o, i] = its j.
pub fn max<T: Float>(
    x: &[T],
    outer: usize,
    n: usize,
    inner: usize,
    out: &mut [T],
    idx: &mut [i64],
) -> Result<()> {
    let _ = (x, outer, n, inner, out, idx);
    todo!()
}

/// out[o, i] = min_j x[o, j, i], idx[o, i] = its j.
pub fn min<T: Float>(
    x: &[T],
    outer: usize,
    n: usize,
    inner: usize,
    out: &mut [T],
    idx: &mut [i64],
) -> Result<()> {
    let _ = (x, outer, n, inner, out, idx);
    todo!()
}
