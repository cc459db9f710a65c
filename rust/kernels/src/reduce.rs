//! Reductions along one axis of an array viewed as (outer, n, inner), C-contiguous.
//!
//! CONTRACT: `x` holds outer * n * inner elements; `out` (and `idx`) hold outer * inner.
//! The reduction order of every output element is fixed (independent of threads).
//! n == 0: sum gives 0, mean gives NaN, max/min return an error. max/min propagate NaN
//! (the result is NaN and its index the first NaN's); ties give the first index.
//!
//! Implementation.
//! - Sum, inner == 1 (contiguous rows): a row is cut into blocks of [`SUM_BLOCK`] elements;
//!   a block is summed by SIMD lanes over four vector accumulators, combined pairwise; the
//!   block sums are combined by a pairwise tree over block indices. In parallel, the
//!   blocks of all rows are summed by tasks into a buffer, then each row's tree combines
//!   them on the calling thread — the same tree, so the same bits.
//! - Sum, inner > 1 (strided): rows of length `inner` are accumulated in registers, SIMD
//!   across `inner`, in leaves of [`SUM_ROWS`] consecutive rows; leaves are combined by the
//!   same kind of pairwise tree (when one task would hold every column, the leaves are
//!   computed in parallel and combined afterwards). Each column's order of additions does
//!   not depend on how columns are split among tasks or lanes.
//! - Max/min: per-lane running best value and index (strict comparison, so the first of
//!   equal values wins; a NaN replaces a non-NaN and is then kept), then the lanes and
//!   blocks are combined by (NaN first, best value, smallest index). Exact, so the result
//!   does not depend on the split at all.
//! - Parallel from [`PAR_MIN`] elements for sums, [`ARG_PAR_MIN`] for max/min, on the
//!   pool of [`crate::threading`].

use crate::error::{check_len, checked_product, KernelError};
use crate::simd::{self, Level};
use crate::threading;
use crate::vmath::{cast, cast_mut, dispatch, Kernel, Simd};
use crate::{Float, Result};

/// Elements per leaf block of a contiguous sum.
pub const SUM_BLOCK: usize = 2048;
/// Minimum rows per leaf of a strided sum.
pub const SUM_ROWS: usize = 64;
/// Elements per block of a contiguous max/min (indices inside are exact in f32).
pub const MAX_BLOCK: usize = 1 << 16;
/// Rows per segment of a strided max/min (row indices inside are exact in f32).
pub const MAX_ROWS: usize = 1 << 20;
/// Columns per parallel task of a strided reduction.
pub const COL_TILE: usize = 1024;
/// Sums of fewer elements run on the calling thread (measured on Zen 4: a sum streams
/// about 20 elements per ns, so two threads only gain from about 64K elements: 1.2-1.5x).
pub const PAR_MIN: usize = 64 * 1024;
/// Max / min of fewer elements run on the calling thread (about 5 elements per ns; two
/// threads gain 1.3-1.7x at 8K elements).
pub const ARG_PAR_MIN: usize = 8 * 1024;
/// About this many elements per parallel task of a sum (results do not depend on it).
const TASK: usize = 16 * 1024;
/// At least this many elements per parallel task of a max / min (the result is exact, so
/// it does not depend on the split).
const ARG_TASK: usize = 4 * 1024;

/// Elements per parallel task of a max / min of `total` elements: about a sixteenth of
/// the array, between ARG_TASK and MAX_BLOCK.
fn arg_task(total: usize) -> usize {
    (total / 16).next_multiple_of(64).clamp(ARG_TASK, MAX_BLOCK)
}

/// out[o, i] = sum_j x[o, j, i].
pub fn sum<T: Float>(x: &[T], outer: usize, n: usize, inner: usize, out: &mut [T]) -> Result<()> {
    sum_at(simd::level(), "sum", x, outer, n, inner, out)
}

/// out[o, i] = mean_j x[o, j, i].
pub fn mean<T: Float>(x: &[T], outer: usize, n: usize, inner: usize, out: &mut [T]) -> Result<()> {
    mean_at(simd::level(), x, outer, n, inner, out)
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
    arg_at::<T, true>(simd::level(), x, outer, n, inner, out, idx)
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
    arg_at::<T, false>(simd::level(), x, outer, n, inner, out, idx)
}

/// Checks the buffers; returns (outer * n * inner, outer * inner).
fn check<T>(
    op: &'static str,
    x: &[T],
    outer: usize,
    n: usize,
    inner: usize,
    out_len: usize,
) -> Result<(usize, usize)> {
    let total = checked_product(op, &[outer, n, inner])?;
    let m = checked_product(op, &[outer, inner])?;
    check_len(op, "x", total, x.len())?;
    check_len(op, "out", m, out_len)?;
    Ok((total, m))
}

// ---------------------------------------------------------------------------------------
// Sum and mean.

/// Adds the partial results `partials` (whole copies of `dst`'s length, one per chunk of
/// a split reduction) to `dst` in chunk order, so the sum does not depend on the thread
/// count.
pub(crate) fn add_partials<T: Float>(dst: &mut [T], partials: &[T]) {
    for p in partials.chunks_exact(dst.len().max(1)) {
        for (o, &v) in dst.iter_mut().zip(p) {
            *o += v;
        }
    }
}

pub(crate) fn mean_at<T: Float>(
    level: Level,
    x: &[T],
    outer: usize,
    n: usize,
    inner: usize,
    out: &mut [T],
) -> Result<()> {
    sum_at(level, "mean", x, outer, n, inner, out)?;
    let m = outer * inner; // checked by sum_at
    let d = T::from_usize(n);
    for v in &mut out[..m] {
        *v = *v / d;
    }
    Ok(())
}

pub(crate) fn sum_at<T: Float>(
    level: Level,
    op: &'static str,
    x: &[T],
    outer: usize,
    n: usize,
    inner: usize,
    out: &mut [T],
) -> Result<()> {
    let (total, m) = check(op, x, outer, n, inner, out.len())?;
    let out = &mut out[..m];
    if m == 0 {
        return Ok(());
    }
    if n == 0 {
        out.fill(T::ZERO);
        return Ok(());
    }
    let x = &x[..total];
    let par = total >= PAR_MIN;
    if inner == 1 {
        if !par {
            for (o, r) in out.iter_mut().zip(x.chunks_exact(n)) {
                *o = sum_contig(level, r);
            }
        } else if n > SUM_BLOCK {
            sum_rows_leaves(level, x, n, out);
        } else {
            let rpt = (threading::task_len(total, TASK) / n).max(1);
            threading::for_each_chunk_mut(out, rpt, |c, oc| {
                let xc = &x[c * rpt * n..][..oc.len() * n];
                for (o, r) in oc.iter_mut().zip(xc.chunks_exact(n)) {
                    *o = sum_contig(level, r);
                }
            });
        }
        return Ok(());
    }
    // Strided: tasks are (outer index, column tile).
    let tiles = inner.div_ceil(COL_TILE);
    let task = |o: usize, t: usize, oc: &mut [T]| {
        let xo = &x[o * n * inner..(o + 1) * n * inner];
        sum_strided(level, xo, n, inner, t * COL_TILE, oc);
    };
    if !par {
        for (o, orow) in out.chunks_mut(inner).enumerate() {
            for (t, oc) in orow.chunks_mut(COL_TILE).enumerate() {
                task(o, t, oc);
            }
        }
    } else if outer * tiles >= 2 {
        let mut parts: Vec<&mut [T]> = out
            .chunks_mut(inner)
            .flat_map(|orow| orow.chunks_mut(COL_TILE))
            .collect();
        // Groups of consecutive (outer index, tile) parts, about TASK elements or more.
        let g = threading::task_len(parts.len(), TASK / (n * inner.min(COL_TILE)));
        threading::for_each_chunk_mut(&mut parts, g, |c, ps| {
            for (j, oc) in ps.iter_mut().enumerate() {
                let i = c * g + j;
                task(i / tiles, i % tiles, oc);
            }
        });
    } else {
        strided_leaves(level, x, n, inner, out);
    }
    Ok(())
}

/// Depth at which a pairwise tree is cut into subtrees run as tasks: about `k` subtrees.
fn cut_depth(k: usize) -> u32 {
    k.max(1).next_power_of_two().trailing_zeros()
}

/// The nodes at depth `d` of the pairwise tree over leaves `lo..hi` (or the leaves met
/// above that depth), left to right.
fn tree_nodes(lo: usize, hi: usize, d: u32, out: &mut Vec<(usize, usize)>) {
    if d == 0 || hi - lo == 1 {
        out.push((lo, hi));
        return;
    }
    let mid = lo + (hi - lo) / 2;
    tree_nodes(lo, mid, d - 1, out);
    tree_nodes(mid, hi, d - 1, out);
}

/// The tree of `sum_tree` above depth `d`, over the values of its depth-`d` nodes (in the
/// order of `tree_nodes`, consumed from `next`).
fn tree_top<T: Float>(lo: usize, hi: usize, d: u32, vals: &[T], next: &mut usize) -> T {
    if d == 0 || hi - lo == 1 {
        *next += 1;
        return vals[*next - 1];
    }
    let mid = lo + (hi - lo) / 2;
    let a = tree_top(lo, mid, d - 1, vals, next);
    a + tree_top(mid, hi, d - 1, vals, next)
}

/// `sum_contig` of every row of length `n` (> SUM_BLOCK) in parallel: the subtrees of
/// every row's tree below a fixed depth are tasks, the levels above them are combined on
/// the calling thread. The same tree, so the same bits as `sum_contig`.
fn sum_rows_leaves<T: Float>(level: Level, x: &[T], n: usize, out: &mut [T]) {
    let rows = out.len();
    let nb = n.div_ceil(SUM_BLOCK);
    let want = (rows * n / TASK).clamp(1, threading::MAX_TASKS);
    let d = cut_depth(want / rows);
    let mut nodes = Vec::new();
    tree_nodes(0, nb, d, &mut nodes);
    let per_row = nodes.len();
    let mut vals = vec![T::ZERO; rows * per_row];
    let g = threading::task_len(vals.len(), 1);
    threading::for_each_chunk_mut(&mut vals, g, |c, vc| {
        for (j, v) in vc.iter_mut().enumerate() {
            let (r, k) = ((c * g + j) / per_row, (c * g + j) % per_row);
            let (lo, hi) = nodes[k];
            *v = sum_tree(level, &x[r * n..(r + 1) * n], lo, hi);
        }
    });
    for (o, vr) in out.iter_mut().zip(vals.chunks_exact(per_row)) {
        *o = tree_top(0, nb, d, vr, &mut 0);
    }
}

/// `sum_strided` of the single column tile (outer == 1, inner <= COL_TILE) in parallel:
/// the subtrees of `strided_tree` below a fixed depth are tasks, the levels above them
/// are combined on the calling thread in the same order.
fn strided_leaves<T: Float>(level: Level, x: &[T], n: usize, inner: usize, out: &mut [T]) {
    let w = out.len();
    let nb = n.div_ceil(leaf_rows(inner));
    let d = cut_depth((n * inner / TASK).clamp(1, threading::MAX_TASKS));
    let mut nodes = Vec::new();
    tree_nodes(0, nb, d, &mut nodes);
    let mut vals = vec![T::ZERO; nodes.len() * w];
    threading::for_each_chunk_mut(&mut vals, w, |k, acc| {
        let (lo, hi) = nodes[k];
        strided_tree(level, x, n, inner, 0, lo, hi, acc);
    });
    strided_top(0, nb, d, &vals, &mut 0, out);
}

/// The combination of `strided_tree` above depth `d`, over the sums of its depth-`d`
/// nodes (rows of `out.len()` in `vals`, in the order of `tree_nodes`).
fn strided_top<T: Float>(
    lo: usize,
    hi: usize,
    d: u32,
    vals: &[T],
    next: &mut usize,
    out: &mut [T],
) {
    let w = out.len();
    if d == 0 || hi - lo == 1 {
        out.copy_from_slice(&vals[*next * w..(*next + 1) * w]);
        *next += 1;
        return;
    }
    let mid = lo + (hi - lo) / 2;
    strided_top(lo, mid, d - 1, vals, next, out);
    let mut right = vec![T::ZERO; w];
    strided_top(mid, hi, d - 1, vals, next, &mut right);
    for (a, b) in out.iter_mut().zip(&right) {
        *a += *b;
    }
}

/// Sum of a contiguous row: pairwise tree over blocks of SUM_BLOCK.
fn sum_contig<T: Float>(level: Level, x: &[T]) -> T {
    let nb = x.len().div_ceil(SUM_BLOCK);
    if nb <= 1 {
        return dispatch::<T, _>(level, BlockSum { x });
    }
    sum_tree(level, x, 0, nb)
}

fn sum_tree<T: Float>(level: Level, x: &[T], lo: usize, hi: usize) -> T {
    if hi - lo == 1 {
        let end = (hi * SUM_BLOCK).min(x.len());
        return dispatch::<T, _>(
            level,
            BlockSum {
                x: &x[lo * SUM_BLOCK..end],
            },
        );
    }
    let mid = lo + (hi - lo) / 2;
    sum_tree(level, x, lo, mid) + sum_tree(level, x, mid, hi)
}

/// Rows per leaf of a strided sum: SUM_ROWS, more for narrow rows (about SUM_BLOCK
/// elements). Depends on the shape only, never on the thread count.
fn leaf_rows(inner: usize) -> usize {
    (SUM_BLOCK / inner.max(1)).max(SUM_ROWS)
}

/// out[c] = sum_j xo[j * inner + c0 + c] for c < out.len(), by a pairwise tree over
/// leaves of `leaf_rows(inner)` rows.
fn sum_strided<T: Float>(level: Level, xo: &[T], n: usize, inner: usize, c0: usize, out: &mut [T]) {
    let nb = n.div_ceil(leaf_rows(inner));
    strided_tree(level, xo, n, inner, c0, 0, nb, out);
}

#[allow(clippy::too_many_arguments)]
fn strided_tree<T: Float>(
    level: Level,
    xo: &[T],
    n: usize,
    inner: usize,
    c0: usize,
    lo: usize,
    hi: usize,
    out: &mut [T],
) {
    let w = out.len();
    if hi - lo == 1 {
        let lr = leaf_rows(inner);
        let j0 = lo * lr;
        let rows = (hi * lr).min(n) - j0;
        let start = j0 * inner + c0;
        let end = start + (rows - 1) * inner + w;
        dispatch::<T, _>(
            level,
            StridedSum {
                x: &xo[start..end],
                rows,
                stride: inner,
                acc: out,
            },
        );
        return;
    }
    let mid = lo + (hi - lo) / 2;
    let mut right = vec![T::ZERO; w];
    strided_tree(level, xo, n, inner, c0, lo, mid, out);
    strided_tree(level, xo, n, inner, c0, mid, hi, &mut right);
    for (a, b) in out.iter_mut().zip(&right) {
        *a += *b;
    }
}

/// Sum of a contiguous block: four vector accumulators, combined pairwise.
struct BlockSum<'a, T> {
    x: &'a [T],
}

impl<T: Float> Kernel for BlockSum<'_, T> {
    type Out = T;
    #[inline(always)]
    unsafe fn run<V: Simd>(self) -> T {
        let x: &[V::E] = cast(self.x);
        let n = x.len();
        let p = x.as_ptr();
        let l = V::LANES;
        let z = V::splat(V::E::ZERO);
        let (mut a0, mut a1, mut a2, mut a3) = (z, z, z, z);
        let mut i = 0;
        // SAFETY (all pointer uses): i + k * LANES <= n in the loops, n - i < LANES in the tail.
        while i + 4 * l <= n {
            a0 = a0.add(V::load(p.add(i)));
            a1 = a1.add(V::load(p.add(i + l)));
            a2 = a2.add(V::load(p.add(i + 2 * l)));
            a3 = a3.add(V::load(p.add(i + 3 * l)));
            i += 4 * l;
        }
        while i + l <= n {
            a0 = a0.add(V::load(p.add(i)));
            i += l;
        }
        if i < n {
            a1 = a1.add(V::load_partial(p.add(i), n - i, V::E::ZERO));
        }
        let s: V::E = a0.add(a1).add(a2.add(a3)).hsum();
        crate::vmath::cast_val(s)
    }
}

/// acc[c] = sum over `rows` rows of x[j * stride + c], c < acc.len(), in row order,
/// accumulated in registers over strips of columns.
struct StridedSum<'a, T> {
    x: &'a [T],
    rows: usize,
    stride: usize,
    acc: &'a mut [T],
}

impl<T: Float> Kernel for StridedSum<'_, T> {
    type Out = ();
    #[inline(always)]
    unsafe fn run<V: Simd>(self) {
        let x: &[V::E] = cast(self.x);
        let acc: &mut [V::E] = cast_mut(self.acc);
        let (rows, stride, w) = (self.rows, self.stride, acc.len());
        // Every read below is x[j * stride + c] with j < rows, c < w.
        if rows == 0 || x.len() < (rows - 1) * stride + w {
            acc.fill(V::E::ZERO);
            return;
        }
        let p = x.as_ptr();
        let pa = acc.as_mut_ptr();
        let l = V::LANES;
        let z = V::E::ZERO;
        if w <= 4 * l {
            // Narrow: keep the sums in registers, walking down the rows.
            let mut c = 0;
            // SAFETY (all pointer uses): c + k * LANES <= w and j < rows, checked above.
            while c + 4 * l <= w {
                let q = p.add(c);
                let (mut a0, mut a1, mut a2, mut a3) = (
                    V::load(q),
                    V::load(q.add(l)),
                    V::load(q.add(2 * l)),
                    V::load(q.add(3 * l)),
                );
                for j in 1..rows {
                    let q = p.add(j * stride + c);
                    a0 = a0.add(V::load(q));
                    a1 = a1.add(V::load(q.add(l)));
                    a2 = a2.add(V::load(q.add(2 * l)));
                    a3 = a3.add(V::load(q.add(3 * l)));
                }
                a0.store(pa.add(c));
                a1.store(pa.add(c + l));
                a2.store(pa.add(c + 2 * l));
                a3.store(pa.add(c + 3 * l));
                c += 4 * l;
            }
            while c + l <= w {
                let mut a = V::load(p.add(c));
                for j in 1..rows {
                    a = a.add(V::load(p.add(j * stride + c)));
                }
                a.store(pa.add(c));
                c += l;
            }
            if c < w {
                let r = w - c;
                let mut a = V::load_partial(p.add(c), r, z);
                for j in 1..rows {
                    a = a.add(V::load_partial(p.add(j * stride + c), r, z));
                }
                a.store_partial(pa.add(c), r);
            }
            return;
        }
        // Rows are streamed in order into `acc` (L1-resident): acc = row 0, acc += row j.
        // SAFETY (all pointer uses): c + k * LANES <= w (or the w - c lanes of the tail)
        // and j < rows, checked above; acc has w elements.
        std::ptr::copy_nonoverlapping(p, pa, w);
        for j in 1..rows {
            let q = p.add(j * stride);
            let mut c = 0;
            while c + 4 * l <= w {
                let a0 = V::load(pa.add(c)).add(V::load(q.add(c)));
                let a1 = V::load(pa.add(c + l)).add(V::load(q.add(c + l)));
                let a2 = V::load(pa.add(c + 2 * l)).add(V::load(q.add(c + 2 * l)));
                let a3 = V::load(pa.add(c + 3 * l)).add(V::load(q.add(c + 3 * l)));
                a0.store(pa.add(c));
                a1.store(pa.add(c + l));
                a2.store(pa.add(c + 2 * l));
                a3.store(pa.add(c + 3 * l));
                c += 4 * l;
            }
            while c + l <= w {
                V::load(pa.add(c)).add(V::load(q.add(c))).store(pa.add(c));
                c += l;
            }
            if c < w {
                let r = w - c;
                V::load_partial(pa.add(c), r, z)
                    .add(V::load_partial(q.add(c), r, z))
                    .store_partial(pa.add(c), r);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Max and min with indices.

/// Is (cv, ci) a better max (MAX) / min candidate than (bv, bi)? NaN first, then value,
/// then the smaller index.
#[inline(always)]
fn better<T: Float, const MAX: bool>(cv: T, ci: usize, bv: T, bi: usize) -> bool {
    if cv.is_nan() {
        return !bv.is_nan() || ci < bi;
    }
    if bv.is_nan() {
        return false;
    }
    let strict = if MAX { cv > bv } else { cv < bv };
    strict || (cv == bv && ci < bi)
}

pub(crate) fn arg_at<T: Float, const MAX: bool>(
    level: Level,
    x: &[T],
    outer: usize,
    n: usize,
    inner: usize,
    out: &mut [T],
    idx: &mut [i64],
) -> Result<()> {
    let op = if MAX { "max" } else { "min" };
    let (total, m) = check(op, x, outer, n, inner, out.len())?;
    check_len(op, "idx", m, idx.len())?;
    if n == 0 {
        return Err(KernelError::InvalidArgument {
            op,
            detail: format!(
                "cannot reduce an axis of length 0 (shape ({outer}, 0, {inner})): no identity"
            ),
        });
    }
    if m == 0 {
        return Ok(());
    }
    let (x, out, idx) = (&x[..total], &mut out[..m], &mut idx[..m]);
    let par = total >= ARG_PAR_MIN;
    let blk = arg_task(total);
    if inner == 1 {
        if !par {
            for ((o, k), r) in out.iter_mut().zip(idx.iter_mut()).zip(x.chunks_exact(n)) {
                (*o, *k) = arg_contig::<T, MAX>(level, r);
            }
        } else if n >= 2 * blk {
            arg_rows_blocks::<T, MAX>(level, x, n, blk, out, idx);
        } else {
            let rpt = (blk / n).max(1);
            let mut parts: Vec<(&mut [T], &mut [i64])> =
                out.chunks_mut(rpt).zip(idx.chunks_mut(rpt)).collect();
            threading::for_each_mut(&mut parts, |c, (oc, kc)| {
                let xc = &x[c * rpt * n..][..oc.len() * n];
                for ((o, k), r) in oc.iter_mut().zip(kc.iter_mut()).zip(xc.chunks_exact(n)) {
                    (*o, *k) = arg_contig::<T, MAX>(level, r);
                }
            });
        }
        return Ok(());
    }
    let task = |o: usize, t: usize, oc: &mut [T], kc: &mut [i64]| {
        let xo = &x[o * n * inner..(o + 1) * n * inner];
        arg_strided::<T, MAX>(level, xo, n, inner, t * COL_TILE, oc, kc);
    };
    let tiles = inner.div_ceil(COL_TILE);
    if !par || outer * tiles < 2 {
        for (o, (orow, krow)) in out.chunks_mut(inner).zip(idx.chunks_mut(inner)).enumerate() {
            for (t, (oc, kc)) in orow
                .chunks_mut(COL_TILE)
                .zip(krow.chunks_mut(COL_TILE))
                .enumerate()
            {
                task(o, t, oc, kc);
            }
        }
    } else {
        let mut parts: Vec<(&mut [T], &mut [i64])> = out
            .chunks_mut(inner)
            .zip(idx.chunks_mut(inner))
            .flat_map(|(orow, krow)| orow.chunks_mut(COL_TILE).zip(krow.chunks_mut(COL_TILE)))
            .collect();
        let g = threading::task_len(parts.len(), blk / (n * inner.min(COL_TILE)));
        threading::for_each_chunk_mut(&mut parts, g, |c, ps| {
            for (j, (oc, kc)) in ps.iter_mut().enumerate() {
                let i = c * g + j;
                task(i / tiles, i % tiles, oc, kc);
            }
        });
    }
    Ok(())
}

/// The best of the blocks' (value, index) pairs, in block order.
fn arg_combine<T: Float, const MAX: bool>(parts: &[(T, usize)]) -> (T, i64) {
    let mut best = parts[0];
    for &(v, k) in &parts[1..] {
        if better::<T, MAX>(v, k, best.0, best.1) {
            best = (v, k);
        }
    }
    (best.0, best.1 as i64)
}

/// `arg_contig` of every row of length `n`, blocks of `blk` (<= MAX_BLOCK) elements of all
/// rows run in parallel (the combination is exact, so `blk` does not change the result).
fn arg_rows_blocks<T: Float, const MAX: bool>(
    level: Level,
    x: &[T],
    n: usize,
    blk: usize,
    out: &mut [T],
    idx: &mut [i64],
) {
    let nb = n.div_ceil(blk);
    let mut parts = vec![(T::ZERO, 0usize); out.len() * nb];
    let g = threading::task_len(parts.len(), 1);
    threading::for_each_chunk_mut(&mut parts, g, |c, ps| {
        for (j, p) in ps.iter_mut().enumerate() {
            let (r, b) = ((c * g + j) / nb, (c * g + j) % nb);
            let lo = b * blk;
            let hi = (lo + blk).min(n);
            let (v, k) = dispatch::<T, _>(
                level,
                ArgBlock::<T, MAX> {
                    x: &x[r * n + lo..r * n + hi],
                },
            );
            *p = (v, lo + k);
        }
    });
    for ((o, k), pr) in out
        .iter_mut()
        .zip(idx.iter_mut())
        .zip(parts.chunks_exact(nb))
    {
        (*o, *k) = arg_combine::<T, MAX>(pr);
    }
}

/// (best value, its index) of a non-empty contiguous row.
fn arg_contig<T: Float, const MAX: bool>(level: Level, x: &[T]) -> (T, i64) {
    let block = |b: usize| {
        let lo = b * MAX_BLOCK;
        let hi = (lo + MAX_BLOCK).min(x.len());
        let (v, k) = dispatch::<T, _>(level, ArgBlock::<T, MAX> { x: &x[lo..hi] });
        (v, lo + k)
    };
    let nb = x.len().div_ceil(MAX_BLOCK);
    let parts: Vec<(T, usize)> = (0..nb).map(block).collect();
    arg_combine::<T, MAX>(&parts)
}

/// Lanes where `v` replaces the running best `b`: strictly better, or the first NaN.
#[inline(always)]
unsafe fn improves<V: Simd, const MAX: bool>(v: V, b: V) -> V::M {
    let strict = if MAX { v.gt(b) } else { v.lt(b) };
    V::mask_or(strict, V::mask_andnot(v.is_nan(), b.is_nan()))
}

/// Best (value, index) of a non-empty block of at most MAX_BLOCK elements.
struct ArgBlock<'a, T, const MAX: bool> {
    x: &'a [T],
}

impl<T: Float, const MAX: bool> Kernel for ArgBlock<'_, T, MAX> {
    type Out = (T, usize);
    #[inline(always)]
    unsafe fn run<V: Simd>(self) -> (T, usize) {
        let x: &[V::E] = cast(self.x);
        let n = x.len();
        if n == 0 {
            return (T::NAN, 0);
        }
        let p = x.as_ptr();
        let l = V::LANES;
        let fill = if MAX {
            V::E::NEG_INFINITY
        } else {
            V::E::INFINITY
        };
        let mut iota = [V::E::ZERO; crate::vmath::MAX_LANES];
        for (k, v) in iota.iter_mut().enumerate() {
            *v = V::E::from_usize(k);
        }
        let iota = V::load(iota.as_ptr());
        // Lanes start with the first (possibly padded) vector; padding never wins (it is
        // -inf for max: never strictly greater, and ties go to the smaller, real index).
        let first = l.min(n);
        let mut best = V::load_partial(p, first, fill);
        let mut bidx = iota;
        let step = V::splat(V::E::from_usize(l));
        let mut cur = iota;
        let mut i = first;
        // SAFETY (all pointer uses): i + LANES <= n in the loop, n - i < LANES in the tail.
        while i + l <= n {
            cur = cur.add(step);
            let v = V::load(p.add(i));
            let mk = improves::<V, MAX>(v, best);
            best = V::select(mk, v, best);
            bidx = V::select(mk, cur, bidx);
            i += l;
        }
        if i < n {
            cur = cur.add(step);
            let v = V::load_partial(p.add(i), n - i, fill);
            let mk = improves::<V, MAX>(v, best);
            best = V::select(mk, v, best);
            bidx = V::select(mk, cur, bidx);
        }
        let (bv, bi) = (best.to_array(), bidx.to_array());
        let mut r = (bv[0], bi[0].to_f64() as usize);
        for k in 1..l {
            let ki = bi[k].to_f64() as usize;
            if better::<V::E, MAX>(bv[k], ki, r.0, r.1) {
                r = (bv[k], ki);
            }
        }
        (crate::vmath::cast_val(r.0), r.1)
    }
}

/// Strided max/min of the column tile starting at c0, in segments of MAX_ROWS rows.
fn arg_strided<T: Float, const MAX: bool>(
    level: Level,
    xo: &[T],
    n: usize,
    inner: usize,
    c0: usize,
    out: &mut [T],
    idx: &mut [i64],
) {
    let w = out.len();
    let mut seg_v = vec![T::ZERO; w];
    let mut seg_i = vec![T::ZERO; w];
    let mut j0 = 0;
    while j0 < n {
        let rows = (n - j0).min(MAX_ROWS);
        let start = j0 * inner + c0;
        let end = start + (rows - 1) * inner + w;
        dispatch::<T, _>(
            level,
            ArgStrided::<T, MAX> {
                x: &xo[start..end],
                rows,
                stride: inner,
                val: &mut seg_v,
                idx: &mut seg_i,
            },
        );
        for c in 0..w {
            let k = j0 + seg_i[c].to_f64() as usize;
            if j0 == 0 || better::<T, MAX>(seg_v[c], k, out[c], idx[c] as usize) {
                out[c] = seg_v[c];
                idx[c] = k as i64;
            }
        }
        j0 += rows;
    }
}

/// Best value and row (as a float, exact below 2^24) of each column over `rows` rows.
struct ArgStrided<'a, T, const MAX: bool> {
    x: &'a [T],
    rows: usize,
    stride: usize,
    val: &'a mut [T],
    idx: &'a mut [T],
}

impl<T: Float, const MAX: bool> Kernel for ArgStrided<'_, T, MAX> {
    type Out = ();
    #[inline(always)]
    unsafe fn run<V: Simd>(self) {
        let x: &[V::E] = cast(self.x);
        let val: &mut [V::E] = cast_mut(self.val);
        let idx: &mut [V::E] = cast_mut(self.idx);
        let (rows, stride) = (self.rows, self.stride);
        let w = val.len().min(idx.len());
        if rows == 0 || x.len() < (rows - 1) * stride + w {
            val.fill(V::E::NAN);
            idx.fill(V::E::ZERO);
            return;
        }
        let p = x.as_ptr();
        let (pv, pi) = (val.as_mut_ptr(), idx.as_mut_ptr());
        let l = V::LANES;
        let z = V::E::ZERO;
        let mut c = 0;
        // SAFETY (all pointer uses): c + LANES <= w (or the r = w - c lanes of the tail)
        // and j < rows, checked above.
        while c < w {
            let r = (w - c).min(l);
            let mut b = V::load_partial(p.add(c), r, z);
            let mut bi = V::splat(z);
            let mut cur = V::splat(z);
            let one = V::splat(V::E::ONE);
            for j in 1..rows {
                cur = cur.add(one);
                let q = p.add(j * stride + c);
                let v = if r == l {
                    V::load(q)
                } else {
                    V::load_partial(q, r, z)
                };
                let mk = improves::<V, MAX>(v, b);
                b = V::select(mk, v, b);
                bi = V::select(mk, cur, bi);
            }
            b.store_partial(pv.add(c), r);
            bi.store_partial(pi.add(c), r);
            c += r;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vmath::testutil::{rel64, Rng, LEVELS};

    fn shapes() -> Vec<(usize, usize, usize)> {
        let mut v = vec![(1, 1, 1), (0, 3, 2), (2, 3, 0), (3, 0, 2), (1, 0, 1)];
        for n in [
            1, 2, 7, 15, 16, 17, 31, 33, 63, 64, 65, 127, 129, 2047, 2048, 2049, 4097,
        ] {
            v.push((3, n, 1));
        }
        for inner in [2, 3, 7, 8, 9, 15, 16, 17, 33, 63, 64, 65, 1023, 1024, 1025] {
            v.push((2, 5, inner));
            v.push((1, 67, inner));
        }
        v.push((1, 200_003, 1));
        v.push((40, 1000, 1));
        v.push((1, 1000, 100));
        v.push((1, 130, 1500));
        v.push((3, 20_000, 3));
        v.push((1, 70_001, 1));
        v
    }

    fn naive_sum(x: &[f64], outer: usize, n: usize, inner: usize) -> Vec<f64> {
        let mut out = vec![0.0; outer * inner];
        for o in 0..outer {
            for j in 0..n {
                for i in 0..inner {
                    out[o * inner + i] += x[(o * n + j) * inner + i];
                }
            }
        }
        out
    }

    #[test]
    fn sum_and_mean_match_reference() {
        for level in LEVELS {
            for (outer, n, inner) in shapes() {
                let mut r = Rng::new((outer + 3 * n + 7 * inner) as u64);
                let x = r.vec(outer * n * inner, -1.0, 1.0);
                let want = naive_sum(&x, outer, n, inner);
                let m = outer * inner;
                let mut out = vec![f64::NAN; m];
                sum_at(level, "sum", &x, outer, n, inner, &mut out).unwrap();
                let tol = 1e-13 + 1e-15 * n as f64;
                for i in 0..m {
                    assert!((out[i] - want[i]).abs() <= tol, "{out:?}");
                }
                mean_at(level, &x, outer, n, inner, &mut out).unwrap();
                for i in 0..m {
                    if n == 0 {
                        assert!(out[i].is_nan());
                    } else {
                        assert!((out[i] - want[i] / n as f64).abs() <= tol);
                    }
                }
                let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
                let want = naive_sum(
                    &x32.iter().map(|&v| v as f64).collect::<Vec<_>>(),
                    outer,
                    n,
                    inner,
                );
                let mut out = vec![f32::NAN; m];
                sum_at(level, "sum", &x32, outer, n, inner, &mut out).unwrap();
                for i in 0..m {
                    let tol = 2e-6 * (n as f64).sqrt().max(1.0);
                    assert!(
                        (out[i] as f64 - want[i]).abs() <= tol,
                        "{level:?} ({outer},{n},{inner}) {} {}",
                        out[i],
                        want[i]
                    );
                }
            }
        }
    }

    #[test]
    fn f32_sum_of_a_million_is_accurate() {
        for level in LEVELS {
            let mut r = Rng::new(99);
            let x: Vec<f32> = r
                .vec(1_000_000, 0.0, 1.0)
                .iter()
                .map(|&v| v as f32)
                .collect();
            let want: f64 = x.iter().map(|&v| v as f64).sum();
            let mut out = [0f32];
            sum_at(level, "sum", &x, 1, x.len(), 1, &mut out).unwrap();
            let e = rel64(out[0] as f64, want);
            assert!(e < 1e-6, "{level:?} rel {e}");
            // Strided: 1e6 rows of 3.
            let mut out3 = [0f32; 4];
            sum_at(level, "sum", &x, 1, 250_000, 4, &mut out3).unwrap();
            for (c, &got) in out3.iter().enumerate() {
                let w: f64 = x.iter().skip(c).step_by(4).map(|&v| v as f64).sum();
                assert!(rel64(got as f64, w) < 1e-6);
            }
        }
    }

    fn naive_arg(
        x: &[f64],
        outer: usize,
        n: usize,
        inner: usize,
        mx: bool,
    ) -> (Vec<f64>, Vec<i64>) {
        let mut ov = vec![0.0; outer * inner];
        let mut oi = vec![0i64; outer * inner];
        for o in 0..outer {
            for i in 0..inner {
                let mut b = x[o * n * inner + i];
                let mut bi = 0;
                for j in 1..n {
                    let v = x[(o * n + j) * inner + i];
                    if b.is_nan() {
                        break;
                    }
                    if v.is_nan() || (mx && v > b) || (!mx && v < b) {
                        b = v;
                        bi = j;
                    }
                }
                ov[o * inner + i] = b;
                oi[o * inner + i] = bi as i64;
            }
        }
        (ov, oi)
    }

    fn same(a: f64, b: f64) -> bool {
        a == b || (a.is_nan() && b.is_nan())
    }

    #[test]
    fn max_min_match_reference() {
        for level in LEVELS {
            for (outer, n, inner) in shapes() {
                if n == 0 {
                    continue;
                }
                for variant in 0..3 {
                    let mut r = Rng::new((outer * 5 + n + inner + variant) as u64);
                    // Few distinct values (ties), some NaN and inf in variant 2.
                    let mut x: Vec<f64> = (0..outer * n * inner)
                        .map(|_| (r.uniform(-20.0, 20.0)).round())
                        .collect();
                    if variant == 1 {
                        x = r.vec(x.len(), -1e6, 1e6);
                    }
                    if variant == 2 {
                        for v in x.iter_mut() {
                            let u = r.uniform(0.0, 1.0);
                            if u < 0.01 {
                                *v = f64::NAN;
                            } else if u < 0.03 {
                                *v = f64::INFINITY;
                            } else if u < 0.05 {
                                *v = f64::NEG_INFINITY;
                            }
                        }
                    }
                    for mx in [true, false] {
                        let (wv, wi) = naive_arg(&x, outer, n, inner, mx);
                        let m = outer * inner;
                        let mut ov = vec![0.0; m];
                        let mut oi = vec![-7i64; m];
                        if mx {
                            arg_at::<f64, true>(level, &x, outer, n, inner, &mut ov, &mut oi)
                                .unwrap();
                        } else {
                            arg_at::<f64, false>(level, &x, outer, n, inner, &mut ov, &mut oi)
                                .unwrap();
                        }
                        for i in 0..m {
                            assert!(same(ov[i], wv[i]) && oi[i] == wi[i], "{level:?} ({outer},{n},{inner}) mx={mx} v{variant} i={i}: {} {} vs {} {}", ov[i], oi[i], wv[i], wi[i]);
                        }
                        let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
                        let (wv, wi) = naive_arg(
                            &x32.iter().map(|&v| v as f64).collect::<Vec<_>>(),
                            outer,
                            n,
                            inner,
                            mx,
                        );
                        let mut ov = vec![0f32; m];
                        if mx {
                            arg_at::<f32, true>(level, &x32, outer, n, inner, &mut ov, &mut oi)
                                .unwrap();
                        } else {
                            arg_at::<f32, false>(level, &x32, outer, n, inner, &mut ov, &mut oi)
                                .unwrap();
                        }
                        for i in 0..m {
                            assert!(
                                same(ov[i] as f64, wv[i]) && oi[i] == wi[i],
                                "f32 {level:?} ({outer},{n},{inner}) mx={mx} i={i}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn max_special_cases() {
        let inf = f32::INFINITY;
        let nan = f32::NAN;
        for level in LEVELS {
            let run = |x: &[f32]| {
                let (mut v, mut i) = ([0f32], [0i64]);
                arg_at::<f32, true>(level, x, 1, x.len(), 1, &mut v, &mut i).unwrap();
                let (mut v2, mut i2) = ([0f32], [0i64]);
                arg_at::<f32, false>(level, x, 1, x.len(), 1, &mut v2, &mut i2).unwrap();
                (v[0], i[0], v2[0], i2[0])
            };
            let r = run(&[-inf; 20]);
            assert_eq!((r.0, r.1, r.2, r.3), (-inf, 0, -inf, 0));
            let r = run(&[inf; 3]);
            assert_eq!((r.0, r.1, r.2, r.3), (inf, 0, inf, 0));
            let mut x = vec![1.0f32; 40];
            x[33] = nan;
            x[35] = nan;
            x[5] = 7.0;
            let r = run(&x);
            assert!(r.0.is_nan() && r.1 == 33 && r.2.is_nan() && r.3 == 33);
            let r = run(&[-0.0, 0.0]);
            assert_eq!((r.1, r.3), (0, 0));
            let r = run(&[3.0, 1.0, 3.0, 1.0]);
            assert_eq!((r.1, r.3), (0, 1));
        }
    }

    #[test]
    fn errors() {
        let x = [0f32; 12];
        let mut out = [0f32; 4];
        let mut idx = [0i64; 4];
        assert!(sum(&x, 2, 3, 3, &mut out).is_err());
        assert!(sum(&x, 2, 3, 2, &mut out[..3]).is_err());
        assert!(mean(&x, 2, 3, 2, &mut out).is_ok());
        assert!(max(&x, 2, 3, 2, &mut out, &mut idx[..3]).is_err());
        assert!(max(&x, 2, 0, 2, &mut out, &mut idx).is_err());
        assert!(min(&x, 1, 0, 1, &mut out, &mut idx).is_err());
        assert!(min(&x, 13, 1, 1, &mut out, &mut idx).is_err());
        assert!(sum(&x, usize::MAX, 2, 2, &mut out).is_err());
        let mut o = [5f32; 2];
        sum(&x, 1, 0, 2, &mut o).unwrap();
        assert_eq!(o, [0.0, 0.0]);
        mean(&x, 1, 0, 2, &mut o).unwrap();
        assert!(o[0].is_nan());
    }

    #[test]
    fn threads_do_not_change_bits() {
        let mut r = Rng::new(8);
        let x: Vec<f32> = r
            .vec(600_000, -1.0, 1.0)
            .iter()
            .map(|&v| v as f32)
            .collect();
        let x64: Vec<f64> = r.vec(600_000, -1.0, 1.0);
        let p = PAR_MIN;
        for (outer, n, inner) in [
            (1, 600_000, 1),
            (2, 300_000, 1),
            (600, 1000, 1),
            (1, 600, 1000),
            (1, 200_000, 3),
            (3, 200, 1000),
            (1, p - 1, 1),
            (1, p, 1),
            (1, 2 * ARG_TASK + 1, 1),
            (1, ARG_PAR_MIN - 1, 1),
            (1, ARG_PAR_MIN, 1),
            (ARG_PAR_MIN / 64, 64, 1),
            (1, ARG_PAR_MIN / 64 + 1, 64),
            (3, 50_000, 1),
            (3, SUM_BLOCK + 1, 1),
            (p / 100 + 1, 100, 1),
            (1, p / 64 - 1, 64),
            (1, p / 64 + 1, 64),
            (2, p / 2000 + 1, 1000),
            (1, 5, p / 5 + 1),
        ] {
            let mut outs = Vec::new();
            for t in [1, 2, 3] {
                let m = outer * inner;
                let (mut s, mut mx, mut mi) = (vec![0f32; m], vec![0f32; m], vec![0i64; m]);
                let (mut s64, mut mn, mut ni) = (vec![0f64; m], vec![0f64; m], vec![0i64; m]);
                let len = outer * n * inner;
                crate::threading::with_threads(t, || {
                    sum(&x[..len], outer, n, inner, &mut s).unwrap();
                    max(&x[..len], outer, n, inner, &mut mx, &mut mi).unwrap();
                    mean(&x64[..len], outer, n, inner, &mut s64).unwrap();
                    min(&x64[..len], outer, n, inner, &mut mn, &mut ni).unwrap();
                });
                let b32 = |v: &[f32]| v.iter().map(|a| a.to_bits() as u64).collect::<Vec<_>>();
                let b64 = |v: &[f64]| v.iter().map(|a| a.to_bits()).collect::<Vec<_>>();
                outs.push((b32(&s), b32(&mx), mi, b64(&s64), b64(&mn), ni));
            }
            for o in &outs[1..] {
                assert!(*o == outs[0], "({outer}, {n}, {inner})");
            }
        }
    }
}
