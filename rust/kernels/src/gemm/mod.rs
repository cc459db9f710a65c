//! General matrix multiply: C = alpha * op(A) * op(B) + beta * C, row-major.
//!
//! CONTRACT (the binding relies on it):
//! - `op(A)` is m x k. Without transpose A is stored m x k with row stride `lda >= k`;
//!   with transpose A is stored k x m with row stride `lda >= m`. Same for B (k x n).
//! - C is m x n with row stride `ldc >= n`.
//! - `beta == 0` overwrites C (NaN already in C is ignored), as BLAS does.
//! - `k == 0` gives C = beta * C. Every length is checked; errors, never panics.
//! - The reduction over k runs in a fixed order that does not depend on the thread count.
//!
//! DESIGN (BLIS style):
//! - Loops: `jc` over blocks of `NC` columns of B; `pc` over blocks of `KC` of the depth
//!   (B block packed into `NR`-column panels, shared by all threads); then tasks over a
//!   grid of (row range, column range) of C, each packing its rows of A into `MR`-row
//!   panels (per-thread buffer) and running the micro-kernel over its tiles: B panels in
//!   sub-blocks of `B_SUB_BYTES` (kept in L2), and for each sub-block every A panel of
//!   the task (kept in L1) sweeping over its B panels.
//! - The grid for T threads prefers a multiple of T equal tasks (balanced halves for two
//!   threads), so no thread idles at the end of a depth block.
//! - SIMD is chosen at run time ([`crate::simd::level`]): AVX-512 (14 x 32 f32, 14 x 16
//!   f64), AVX2+FMA (6 x 16 f32, 6 x 8 f64) or portable code.
//! - Threads split rows and columns of C only, never k: every element of C is reduced
//!   over k in the same order (k blocks of `KC` in turn, each from p = 0 up) whatever the
//!   thread count or the grid, so results are bitwise identical for any thread count.
//! - The tasks of one B block (and the B packing) run on the low-latency pool of
//!   [`crate::spin`] (the crate's only pool): waking Rayon workers cost about 10 us, more
//!   than a 64 x 64 product, while the spin pool hands work over in well under a
//!   microsecond (measured: N = 64 from 5.5 us on one thread to 3.9 us on two). Problems
//!   below `PAR_MIN_MNK` run on the calling thread; small batched problems run a few whole
//!   matrices per task.

mod kernels;
mod pack;
#[cfg(test)]
mod tests;

use crate::error::{check_len, checked_product};
use crate::simd::{self, Level};
use crate::{spin, threading, Float, KernelError, Result};
use kernels::{MicroKernel, ScalarKernel};
use std::any::TypeId;

const OP: &str = "gemm";
const OP_BATCHED: &str = "gemm_batched";

/// Below this many multiply-adds (m * n * k) a GEMM runs on the calling thread; above,
/// its tasks go to the spin pool (48^3 measured best: 32^3 loses, 64^3 leaves N=48-63 on
/// one thread).
const PAR_MIN_MNK: usize = 48 * 48 * 48;

/// Up to this many multiply-adds a single-threaded GEMM reads A (and B when not
/// transposed) in place, without packing, when the kernel can.
const DIRECT_MAX_MNK: usize = 128 * 128 * 128;

/// Bytes of packed B panels a task keeps in L2 while its A panels sweep over them
/// (Zen 4 / recent Intel: 1-2 MiB L2 per core, shared with the A block).
const B_SUB_BYTES: usize = 256 * 1024;

/// C = alpha * op(A) * op(B) + beta * C.
#[allow(clippy::too_many_arguments)]
pub fn gemm<T: Float>(
    transa: bool,
    transb: bool,
    m: usize,
    n: usize,
    k: usize,
    alpha: T,
    a: &[T],
    lda: usize,
    b: &[T],
    ldb: usize,
    beta: T,
    c: &mut [T],
    ldc: usize,
) -> Result<()> {
    gemm_with_level(
        simd::level(),
        Mode::Auto,
        transa,
        transb,
        m,
        n,
        k,
        alpha,
        a,
        lda,
        b,
        ldb,
        beta,
        c,
        ldc,
    )
}

/// `batch` independent GEMMs; matrix `i` of A starts at `i * stride_a` (likewise B, C).
/// `stride_a` or `stride_b` may be 0 to broadcast one matrix over the batch; the C
/// matrices must not overlap (`stride_c >= (m - 1) * ldc + n` when batch > 1).
#[allow(clippy::too_many_arguments)]
pub fn gemm_batched<T: Float>(
    batch: usize,
    transa: bool,
    transb: bool,
    m: usize,
    n: usize,
    k: usize,
    alpha: T,
    a: &[T],
    lda: usize,
    stride_a: usize,
    b: &[T],
    ldb: usize,
    stride_b: usize,
    beta: T,
    c: &mut [T],
    ldc: usize,
    stride_c: usize,
) -> Result<()> {
    let op = OP_BATCHED;
    let shape = Shape::new(op, transa, transb, m, n, k, lda, ldb, ldc)?;
    let need_a = batched_len(op, batch, stride_a, shape.len_a)?;
    let need_b = batched_len(op, batch, stride_b, shape.len_b)?;
    let need_c = batched_len(op, batch, stride_c, shape.len_c)?;
    check_len(op, "a", need_a, a.len())?;
    check_len(op, "b", need_b, b.len())?;
    check_len(op, "c", need_c, c.len())?;
    if batch > 1 && shape.len_c > 0 && stride_c < shape.len_c {
        return Err(KernelError::InvalidArgument {
            op,
            detail: format!(
                "C matrices overlap: stride_c must be at least (m - 1) * ldc + n = {}, given {}",
                shape.len_c, stride_c
            ),
        });
    }
    if batch == 0 || shape.len_c == 0 {
        return Ok(());
    }
    let level = simd::level();
    let cptr = SendPtr(c.as_mut_ptr());
    let one = |i: usize, mode: Mode| {
        let args = Args {
            transa,
            transb,
            m,
            n,
            k,
            alpha,
            a: &a[i * stride_a..][..shape.len_a],
            lda,
            b: &b[i * stride_b..][..shape.len_b],
            ldb,
            beta,
            // SAFETY: i * stride_c + len_c <= need_c <= c.len(); the regions of
            // different i are disjoint because stride_c >= len_c (checked above).
            c: SendPtr(unsafe { cptr.get().add(i * stride_c) }),
            ldc,
        };
        // SAFETY: `args.c` addresses `len_c` elements of `c`, which is exclusively
        // borrowed for this call, and no other matrix of the batch touches them.
        unsafe { run(level, mode, &args) };
    };
    let work = m.saturating_mul(n).saturating_mul(k);
    let threads = threading::get_num_threads();
    if batch > 1
        && threads > 1
        && work < 4 * PAR_MIN_MNK
        && work.saturating_mul(batch) >= PAR_MIN_MNK
    {
        // Small matrices: whole matrices per task, each on one thread.
        // Tasks of `per` consecutive matrices, each about PAR_MIN_MNK multiply-adds (and at
        // least one task per thread), at most about threading::MAX_TASKS tasks.
        let per =
            threading::task_len(batch, PAR_MIN_MNK / work.max(1)).clamp(1, batch.div_ceil(threads));
        spin::run_tasks(batch.div_ceil(per), threads, |t| {
            for i in t * per..((t + 1) * per).min(batch) {
                one(i, Mode::Inline);
            }
        });
    } else {
        for i in 0..batch {
            one(i, Mode::Auto);
        }
    }
    Ok(())
}

/// How a GEMM uses threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The kernel pool when the problem is big enough, else the calling thread.
    Auto,
    /// The calling thread only.
    Inline,
    /// Split into tasks for this many threads, whatever the size, running them in the
    /// spin pool (tests use it to force grids on small problems).
    #[cfg_attr(not(test), allow(dead_code))]
    Forced(usize),
}

/// `gemm` with an explicit SIMD level (capped at what the CPU supports) and threading
/// mode.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_with_level<T: Float>(
    level: Level,
    mode: Mode,
    transa: bool,
    transb: bool,
    m: usize,
    n: usize,
    k: usize,
    alpha: T,
    a: &[T],
    lda: usize,
    b: &[T],
    ldb: usize,
    beta: T,
    c: &mut [T],
    ldc: usize,
) -> Result<()> {
    let shape = Shape::new(OP, transa, transb, m, n, k, lda, ldb, ldc)?;
    check_len(OP, "a", shape.len_a, a.len())?;
    check_len(OP, "b", shape.len_b, b.len())?;
    check_len(OP, "c", shape.len_c, c.len())?;
    if shape.len_c == 0 {
        return Ok(());
    }
    let args = Args {
        transa,
        transb,
        m,
        n,
        k,
        alpha,
        a,
        lda,
        b,
        ldb,
        beta,
        c: SendPtr(c.as_mut_ptr()),
        ldc,
    };
    // SAFETY: `c` is exclusively borrowed and holds len_c elements (checked above).
    unsafe { run(level.min(simd::level()), mode, &args) };
    Ok(())
}

/// Checked shapes of one GEMM: the number of elements each operand spans.
struct Shape {
    len_a: usize,
    len_b: usize,
    len_c: usize,
}

/// Elements spanned by a `rows x cols` matrix with row stride `ld` (0 if empty).
fn span(op: &'static str, rows: usize, cols: usize, ld: usize) -> Result<usize> {
    if rows == 0 || cols == 0 {
        return Ok(0);
    }
    checked_product(op, &[rows - 1, ld])?
        .checked_add(cols)
        .ok_or(KernelError::Overflow { op })
}

fn check_ld(op: &'static str, what: &str, ld: usize, min: usize) -> Result<()> {
    if ld < min {
        return Err(KernelError::InvalidArgument {
            op,
            detail: format!("{what} must be at least {min}, given {ld}"),
        });
    }
    Ok(())
}

impl Shape {
    #[allow(clippy::too_many_arguments)]
    fn new(
        op: &'static str,
        transa: bool,
        transb: bool,
        m: usize,
        n: usize,
        k: usize,
        lda: usize,
        ldb: usize,
        ldc: usize,
    ) -> Result<Shape> {
        let (ar, ac) = if transa { (k, m) } else { (m, k) };
        let (br, bc) = if transb { (n, k) } else { (k, n) };
        check_ld(
            op,
            if transa {
                "lda (A transposed: >= m)"
            } else {
                "lda (>= k)"
            },
            lda,
            ac,
        )?;
        check_ld(
            op,
            if transb {
                "ldb (B transposed: >= k)"
            } else {
                "ldb (>= n)"
            },
            ldb,
            bc,
        )?;
        check_ld(op, "ldc (>= n)", ldc, n)?;
        Ok(Shape {
            len_a: span(op, ar, ac, lda)?,
            len_b: span(op, br, bc, ldb)?,
            len_c: span(op, m, n, ldc)?,
        })
    }
}

fn batched_len(op: &'static str, batch: usize, stride: usize, len: usize) -> Result<usize> {
    if batch == 0 || len == 0 {
        return Ok(0);
    }
    checked_product(op, &[batch - 1, stride])?
        .checked_add(len)
        .ok_or(KernelError::Overflow { op })
}

/// A raw pointer to C that tasks share; each task writes a disjoint set of tiles.
#[derive(Clone, Copy)]
struct SendPtr<T>(*mut T);
// SAFETY: the pointer is only dereferenced on disjoint tiles of C by distinct tasks,
// while the `&mut [T]` it came from is borrowed for the whole call.
unsafe impl<T: Send> Send for SendPtr<T> {}
unsafe impl<T: Send> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    #[inline(always)]
    fn get(self) -> *mut T {
        self.0
    }
}

/// One validated GEMM: `a` and `b` span op(A) and op(B); `c` addresses the m x n matrix C
/// with row stride `ldc` (m, n >= 1).
struct Args<'a, T> {
    transa: bool,
    transb: bool,
    m: usize,
    n: usize,
    k: usize,
    alpha: T,
    a: &'a [T],
    lda: usize,
    b: &'a [T],
    ldb: usize,
    beta: T,
    c: SendPtr<T>,
    ldc: usize,
}

/// Reinterprets `Args<T>` as `Args<U>` when T and U are the same type.
fn cast_args<'a, T: Float, U: Float>(p: &Args<'a, T>) -> Option<Args<'a, U>> {
    if TypeId::of::<T>() != TypeId::of::<U>() {
        return None;
    }
    // SAFETY: T and U are the same type (TypeId equal), so the slices and pointer are
    // reinterpreted as themselves; lengths and lifetimes are unchanged.
    let a = unsafe { std::slice::from_raw_parts(p.a.as_ptr().cast::<U>(), p.a.len()) };
    let b = unsafe { std::slice::from_raw_parts(p.b.as_ptr().cast::<U>(), p.b.len()) };
    Some(Args {
        transa: p.transa,
        transb: p.transb,
        m: p.m,
        n: p.n,
        k: p.k,
        alpha: U::from_f64(p.alpha.to_f64()),
        a,
        lda: p.lda,
        b,
        ldb: p.ldb,
        beta: U::from_f64(p.beta.to_f64()),
        c: SendPtr(p.c.get().cast::<U>()),
        ldc: p.ldc,
    })
}

/// Runs one validated GEMM.
///
/// # Safety
/// `p.c` addresses `(m - 1) * ldc + n` elements, valid for reads and writes and not
/// accessed by anyone else during the call. `level <= simd::level()`.
unsafe fn run<T: Float>(level: Level, mode: Mode, p: &Args<T>) {
    if p.k == 0 || p.alpha == T::ZERO {
        // SAFETY: forwarded.
        unsafe { scale_c(p) };
        return;
    }
    if let Some(p32) = cast_args::<T, f32>(p) {
        match level {
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => unsafe { top::<kernels::Avx512F32>(mode, &p32) },
            #[cfg(target_arch = "x86_64")]
            Level::Avx2Fma => unsafe { top::<kernels::Avx2F32>(mode, &p32) },
            _ => unsafe { top::<ScalarKernel<f32>>(mode, &p32) },
        }
    } else if let Some(p64) = cast_args::<T, f64>(p) {
        match level {
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => unsafe { top::<kernels::Avx512F64>(mode, &p64) },
            #[cfg(target_arch = "x86_64")]
            Level::Avx2Fma => unsafe { top::<kernels::Avx2F64>(mode, &p64) },
            _ => unsafe { top::<ScalarKernel<f64>>(mode, &p64) },
        }
    } else {
        // Float is sealed to f32 and f64.
        unsafe { top::<ScalarKernel<T>>(mode, p) }
    }
}

/// C = beta * C (for k == 0 or alpha == 0).
///
/// # Safety
/// As [`run`].
unsafe fn scale_c<T: Float>(p: &Args<T>) {
    if p.beta == T::ONE {
        return;
    }
    for i in 0..p.m {
        // SAFETY: row i spans i * ldc .. i * ldc + n, inside C.
        let row = unsafe { std::slice::from_raw_parts_mut(p.c.get().add(i * p.ldc), p.n) };
        if p.beta == T::ZERO {
            row.fill(T::ZERO);
        } else {
            row.iter_mut().for_each(|x| *x = p.beta * *x);
        }
    }
}

/// Chooses single-threaded or pool execution, then runs the blocked algorithm.
///
/// # Safety
/// As [`run`]; the CPU supports `K`'s instruction set.
unsafe fn top<K: MicroKernel>(mode: Mode, p: &Args<K::T>) {
    let work = p.m.saturating_mul(p.n).saturating_mul(p.k);
    // Small problems: the kernel reads A (and B unless transposed) in place.
    let direct = K::STRIDED && work <= DIRECT_MAX_MNK;
    match mode {
        Mode::Auto if work >= PAR_MIN_MNK && threading::get_num_threads() > 1 => unsafe {
            blocked::<K>(p, threading::get_num_threads(), direct)
        },
        Mode::Forced(t) => unsafe { blocked::<K>(p, t.max(1), direct) },
        _ => unsafe { blocked::<K>(p, 1, direct) },
    }
}

/// How the rows and columns of C are cut into tasks for one packed B block.
#[derive(Debug, Clone, Copy)]
struct Grid {
    /// Row blocks and column blocks.
    gm: usize,
    gn: usize,
}

/// Picks a task grid over `pm` row panels and `pn` column panels for `threads` threads,
/// keeping every row block within `mc_panels` panels (so the A block fits in L2).
/// Minimises a rough cost model: the finish time is about ceil(tasks / threads) times
/// the cost of the largest task, where a task costs its FMAs, its A packing, its B
/// panel traffic and a fixed overhead. So the grid prefers a task count that is a
/// multiple of the thread count with tasks of equal size (no thread idles at the end
/// of a depth block), then fewer, larger tasks (less A packing and B traffic).
fn choose_grid(
    pm: usize,
    pn: usize,
    mr: usize,
    nr: usize,
    mc_panels: usize,
    threads: usize,
) -> Grid {
    let gm_min = pm.div_ceil(mc_panels.max(1)).max(1);
    if threads <= 1 {
        return Grid { gm: gm_min, gn: 1 };
    }
    let mut best = (f64::INFINITY, Grid { gm: gm_min, gn: 1 });
    let gm_max = pm.min(gm_min.max(threads * 4)).max(gm_min);
    let gn_max = pn.min(threads * 4).max(1);
    for gm in gm_min..=gm_max {
        for gn in 1..=gn_max {
            let tasks = (gm * gn) as f64;
            let rows = (pm.div_ceil(gm) * mr) as f64;
            let cols = (pn.div_ceil(gn) * nr) as f64;
            // Per unit of depth: FMAs (about 32 per cycle), A packing (about 1 per
            // element, once per column block), B panel reloads (once per row block),
            // and a fixed cost per task.
            let task = rows * cols / 32.0 + rows + cols / 4.0 + 256.0;
            let cost = (tasks / threads as f64).ceil() * task;
            if cost < best.0 * 0.999 {
                best = (cost, Grid { gm, gn });
            }
        }
    }
    best.1
}

/// The blocked GEMM on `threads` threads of the spin pool (1 = inline).
/// With `direct` (only for kernels with `STRIDED`), A is read in place instead of packed,
/// and so is B unless transposed. Packing never changes the arithmetic: the results are
/// the same bit for bit either way.
///
/// # Safety
/// As [`run`]; the CPU supports `K`'s instruction set; m, n, k >= 1; `direct` only if
/// `K::STRIDED`.
unsafe fn blocked<K: MicroKernel>(p: &Args<K::T>, threads: usize, direct: bool) {
    let pack_a = !direct;
    let pack_b = !direct || p.transb;
    let (mr, nr) = (K::MR, K::NR);
    let (m, n, k) = (p.m, p.n, p.k);
    let kc_max = K::KC.min(k);
    let nc_max = K::NC.min(n).div_ceil(nr) * nr;
    // The shared B buffer comes from a pool (a lock); the direct path does without.
    let mut bbuf = if pack_b {
        Some(pack::PooledBuf::take())
    } else {
        None
    };
    let bpack: &mut [K::T] = match bbuf.as_mut() {
        Some(buf) => buf.slice::<K::T>(kc_max * nc_max),
        None => &mut [],
    };
    let pm = m.div_ceil(mr);
    for jc in (0..n).step_by(K::NC) {
        let nc = (n - jc).min(K::NC);
        let pn = nc.div_ceil(nr);
        let grid = choose_grid(pm, pn, mr, nr, K::MC / mr, threads);
        for pc in (0..k).step_by(K::KC) {
            let kc = (k - pc).min(K::KC);
            let beta = if pc == 0 { p.beta } else { K::T::ONE };
            let panel = nr * kc;
            let bp = &mut bpack[..if pack_b { pn * panel } else { 0 }];
            // Pack the B block (in parallel when there are threads to share it).
            if !pack_b {
            } else if threads > 1 && pn > 1 {
                let per = pn.div_ceil(threads * 2);
                let chunks = pn.div_ceil(per);
                let base = SendPtr(bp.as_mut_ptr());
                let len = bp.len();
                spin::run_tasks(chunks, threads, |ci| {
                    let q0 = ci * per;
                    let start = q0 * panel;
                    let end = ((q0 + per) * panel).min(len);
                    // SAFETY: chunk `ci` covers bp[start..end], inside bp (end <= len,
                    // start < end as q0 < pn); chunks of different `ci` are disjoint and
                    // `bp` is exclusively borrowed until run_tasks returns.
                    let chunk = unsafe {
                        std::slice::from_raw_parts_mut(base.get().add(start), end - start)
                    };
                    let cols = (nc - q0 * nr).min(per * nr);
                    pack::pack_b(nr, p.transb, p.b, p.ldb, pc, kc, jc + q0 * nr, cols, chunk);
                });
            } else {
                pack::pack_b(nr, p.transb, p.b, p.ldb, pc, kc, jc, nc, bp);
            }
            let bp: &[K::T] = bp;
            let task = |t: usize| {
                let (mi, nj) = (t / grid.gn, t % grid.gn);
                let (ps, pe) = (mi * pm / grid.gm, (mi + 1) * pm / grid.gm);
                let (qs, qe) = (nj * pn / grid.gn, (nj + 1) * pn / grid.gn);
                if ps == pe || qs == qe {
                    return;
                }
                let i0 = ps * mr;
                let rows = (pe * mr).min(m) - i0;
                // One micro-kernel call: tile rows i .. i + mrr, columns jc + j .. + nrr.
                // A closure local to this task, only called below with: r < pe - ps, i = i0 + r * mr, mrr = min(mr, m - i),
                // q in qs..qe, j = q * nr, nrr = min(nr, nc - j); `ap` is this task's
                // packed A block when `pack_a`.
                let tile = |ap: &[K::T],
                            r: usize,
                            i: usize,
                            mrr: usize,
                            j: usize,
                            nrr: usize,
                            q: usize| {
                    let (bq, b_rs) = if pack_b {
                        (bp[q * panel..][..panel].as_ptr(), nr)
                    } else {
                        // Element (pc, jc + j) of B: inside its validated span.
                        (p.b[pc * p.ldb + jc + j..].as_ptr(), p.ldb)
                    };
                    let cij = p.c.get().wrapping_add(i * p.ldc + jc + j);
                    // SAFETY: the tile rows i .. i + mrr < m, columns
                    // jc + j .. jc + j + nrr <= n lie inside C; this task is the
                    // only one writing them (tasks own disjoint row x column
                    // ranges). Packed panels hold kc * MR and kc * NR elements;
                    // unpacked, A elements (i + ii, pc + pp) and B elements
                    // (pc + pp, jc + j + jj) for ii < mrr, jj < nrr, pp < kc lie
                    // in the validated spans of op(A) and op(B).
                    unsafe {
                        if pack_a && pack_b {
                            K::run(
                                kc,
                                ap[r * mr * kc..].as_ptr(),
                                bq,
                                cij,
                                p.ldc,
                                p.alpha,
                                beta,
                                mrr,
                                nrr,
                            )
                        } else {
                            let (a, a_rs, a_cs) = if pack_a {
                                (ap[r * mr * kc..].as_ptr(), 1, mr)
                            } else if p.transa {
                                (p.a[pc * p.lda + i..].as_ptr(), 1, p.lda)
                            } else {
                                (p.a[i * p.lda + pc..].as_ptr(), p.lda, 1)
                            };
                            K::run_strided(
                                kc, a, a_rs, a_cs, bq, b_rs, cij, p.ldc, p.alpha, beta, mrr, nrr,
                            )
                        }
                    }
                };
                // B panels of one sub-block stay in L2 while every A panel of the task
                // (each in L1 for the sub-block) sweeps over them.
                let qb = (B_SUB_BYTES / (panel * std::mem::size_of::<K::T>())).max(1);
                let tiles = |ap: &[K::T]| {
                    for qb0 in (qs..qe).step_by(qb) {
                        let qb1 = (qb0 + qb).min(qe);
                        for r in 0..pe - ps {
                            let i = i0 + r * mr;
                            let mrr = mr.min(m - i);
                            for q in qb0..qb1 {
                                let j = q * nr;
                                let nrr = nr.min(nc - j);
                                tile(ap, r, i, mrr, j, nrr, q);
                            }
                        }
                    }
                };
                if pack_a {
                    pack::with_a_buf(|abuf| {
                        let ap = abuf.slice::<K::T>((pe - ps) * mr * kc + pack::PACK_SLACK);
                        pack::pack_a(mr, p.transa, p.a, p.lda, i0, rows, pc, kc, ap);
                        tiles(ap);
                    });
                } else {
                    tiles(&[]);
                }
            };
            let tasks = grid.gm * grid.gn;
            if threads > 1 && tasks > 1 {
                spin::run_tasks(tasks, threads, task);
            } else {
                (0..tasks).for_each(task);
            }
        }
    }
}
