//! 2-D convolution (NCHW) forward and backward, PyTorch's `conv2d` / `conv_transpose2d`.
//!
//! CONTRACT (the binding relies on it):
//! - Geometry [`Conv2dGeom`]: input x (n, c, h, w), weight (k, c / groups, kh, kw), output
//!   y (n, k, oh, ow); stride (sh, sw) >= 1, dilation (dh, dw) >= 1, groups dividing c and
//!   k. `ph`, `pw` are the top and left zero padding; the bottom and right padding are
//!   implied by `oh`, `ow` (input positions outside the image read as zero), so asymmetric
//!   padding ('same' with an even kernel) needs no copy.
//!   y[i, o, p, q] = b[o] + sum over the group's channels ci and (r, s) of
//!   w[o, ci, r, s] * x[i, g * cg + ci, p * sh - ph + r * dh, q * sw - pw + s * dw].
//! - [`forward`], [`backward_input`] (dx, optionally plus a per-channel bias: this is the
//!   transposed convolution), [`backward_weight`] (dw) and [`bias_grad`] (db). Every
//!   length is checked; errors, never panics.
//! - Deterministic for any thread count: tasks are fixed blocks (image, group, block of
//!   output rows or of input channels) whose partition depends on the shapes only; the
//!   weight gradient sums per-chunk partial products (fixed chunks of (image, row block)
//!   units) in chunk order; the bias gradient sums each channel in image order.
//!
//! DESIGN:
//! - Forward: per task, im2col of a block of output rows into a per-thread workspace
//!   (columns (ci, r, s) x (rows * ow), about `COLS` columns: bounded, reused across calls,
//!   never a full-batch copy), then the single-threaded GEMM W_g (kg x cg*kh*kw) @ col, and
//!   the block copied out with the bias. A 1x1 convolution with stride 1 and no padding
//!   skips im2col: the GEMM reads the image in place (W (k, c) @ X (c, h*w)); with at
//!   least `WHOLE_IMAGE_TASKS` (image, group) pairs each pair is one task writing its own
//!   contiguous part of y directly (no copy-out) through [`pw_gemm`]: under AVX-512 its
//!   own kernel (8 x 48 tiles reading W in place and X from 2 KiB-per-row blocks copied
//!   once, the bias added in registers; the same bits as GEMM + bias). One core, CPU
//!   time on the loaded machine: the benchmark's 1x1 layer 2.5-2.6 -> 2.25-2.4 ms.
//! - Small stride-1 convolutions (AVX-512, one group, padded planes within
//!   `DIRECT_MAX_PLANE`; LeNet's layers): a direct "wide" kernel instead of im2col + GEMM,
//!   see [`Direct`]: the input is copied into a zero-padded stack and the rows of the
//!   implicit im2col are slices of it at fixed offsets, so nothing is im2col'ed or packed.
//!   Forward and the input gradient (the full correlation with the flipped kernel, when
//!   that costs at most 1.5x the GEMM's multiplies) vectorise over output positions;
//!   the weight gradient over positions (with lane sums) or, with at least half a vector
//!   of output channels, over the channels (no lane sums, no wasted positions). One core,
//!   LeNet-5 at batch 64 (us, im2col + GEMM -> direct): conv 1 forward 445 -> 205, weight
//!   gradient 565 -> 375; conv 2 forward 765 -> 424, weight gradient 860 -> 392.
//! - Input gradient: per (image, group, block of input channels) task, GEMM W^T @ dY of a
//!   row block into the workspace, then col2im accumulates it into that task's own
//!   channels of dx (disjoint regions, fixed order). Pointwise: W^T @ dY straight into dx
//!   per (image, group) (or per row block through the workspace when there are fewer
//!   than `WHOLE_IMAGE_TASKS` pairs), keeping the GEMM's m = c.
//! - Weight gradient: per (group, chunk) task, the sum over the chunk's (image, row block)
//!   units of dY_block @ col_block^T, accumulated by the GEMM (beta = 1); the chunk
//!   partials are then added in chunk order. Chunks are fewer for big weights
//!   (`DW_BUDGET`), so the partials stay within a few MiB.
//! - 3x3, stride 1, no dilation, >= 16 channels per group (forward, and the input
//!   gradient as the convolution of dY with the flipped, channel-transposed kernel):
//!   Winograd F(2x2, 3x3). Per (image, group, block of about `WINO_TILES` tiles) task: the
//!   input transform B^T d B of each 4x4 tile (vectorised over a row of tiles, even / odd
//!   columns apart), 16 GEMMs U[xi] (k x c) @ V[xi] (c x tiles) and the output transform
//!   A^T M A with the bias; weights transformed once per call (G g G^T). 2.25x fewer
//!   multiplies than direct; measured on one Zen 4 core (N=8, C=K=64, 56x56, f32):
//!   im2col + GEMM 21.5 ms (86 GFLOPS, the GEMM alone reaches 101 at these shapes),
//!   Winograd 12.3 ms (150 GFLOPS-equivalent), so Winograd is kept (a hand-written direct
//!   kernel was not tried: it could at best reach the GEMM's 101 GFLOPS, below
//!   Winograd's effective rate). Transformed blocks stay within `WINO_WS_BUDGET`
//!   elements per task (fewer tiles for wide layers). The weight gradient
//!   of the same shapes runs the transposed algorithm (dU[xi] = sum over tiles of
//!   (A dY A^T)[xi] V[xi]^T, fixed chunks summed in order, then dw = G^T dU G): 21 ms
//!   with im2col + GEMM, 13 ms with Winograd. Two threads: 6.6 ms forward, 21.5 ms
//!   forward + backward (PyTorch 2.15 oneDNN 8.3 and 27.1 ms in the same run). Errors stay at the level of the direct sum
//!   (the transforms use only 0.5, 1 and -1).
//! - Tasks run on [`crate::spin::run_tasks`]; the GEMM inside a task runs on its thread.

use crate::error::checked_product;
use crate::{gemm, spin, threading, Float, KernelError, Result};
use std::cell::RefCell;
use std::sync::Mutex;

/// `$f32(args)` or `$f64(args)` for the float type `$t` (f32 or f64): the two x86 kernels
/// of one operation, called with the same arguments, whose element pointers are passed as
/// `p.cast()` so each call gets its own element type. The caller's SAFETY covers both
/// (T is sealed to f32 and f64, so the casts keep the element type).
#[cfg(target_arch = "x86_64")]
macro_rules! by_float {
    ($t:ty, $f32:path, $f64:path, ($($arg:expr),* $(,)?)) => {
        if <$t as Float>::IS_F64 {
            $f64($($arg),*)
        } else {
            $f32($($arg),*)
        }
    };
}

const OP_FWD: &str = "conv2d";
const OP_DX: &str = "conv2d_backward_input";
const OP_DW: &str = "conv2d_backward_weight";
const OP_DB: &str = "conv2d_bias_grad";

/// Target number of output positions (columns of the im2col block) per task.
const COLS: usize = 512;
/// Upper bound on the im2col block (elements): the workspace stays bounded even for very
/// deep kernels (rows per block drop to 1 before it is exceeded only when one output row
/// alone needs more).
const COL_MAX_ELEMS: usize = 1 << 20;
/// Input channels per input-gradient task.
const DX_CHANNELS: usize = 16;
/// Elements of weight-gradient partial sums a call may hold (chunks are fewer for big
/// weights; with one chunk the GEMMs run on all threads).
const DW_BUDGET: usize = 1 << 22;
/// Elements of the Winograd transformed blocks (V and M) a task may hold.
const WINO_WS_BUDGET: usize = 1 << 21;

/// Number of weight-gradient chunks: at most `DW_CHUNKS` and the number of units, and
/// within `DW_BUDGET` for partials of `per_chunk` elements (depends on shapes only).
fn dw_chunks(units: usize, per_chunk: usize) -> usize {
    units
        .min(DW_CHUNKS)
        .min(DW_BUDGET / per_chunk.max(1))
        .max(1)
}

/// Tiles per Winograd task: about `WINO_TILES`, fewer for very wide layers.
fn wino_tiles(ci: usize, co: usize) -> usize {
    WINO_TILES.min(WINO_WS_BUDGET / (16 * (ci + co))).max(1)
}

/// A pointwise forward with at least this many (image, group) pairs runs one GEMM per
/// pair, straight into the output (fewer, larger tasks; no copy-out).
const WHOLE_IMAGE_TASKS: usize = 8;
/// Output columns per GEMM of that path.
const PW_COLS: usize = 1024;
/// Maximum number of weight-gradient partial sums per group.
const DW_CHUNKS: usize = 16;

/// The shape of one 2-D convolution (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dGeom {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub ph: usize,
    pub pw: usize,
    pub dh: usize,
    pub dw: usize,
    pub groups: usize,
    pub oh: usize,
    pub ow: usize,
}

/// Output size of one spatial dimension: (size + pad_before + pad_after - dilation *
/// (kernel - 1) - 1) / stride + 1, or None when it would be empty (or the arguments are
/// out of range).
pub fn out_size(
    size: usize,
    pad_before: usize,
    pad_after: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
) -> Option<usize> {
    if kernel == 0 || stride == 0 || dilation == 0 {
        return None;
    }
    let padded = size.checked_add(pad_before)?.checked_add(pad_after)?;
    let span = dilation.checked_mul(kernel - 1)?.checked_add(1)?;
    if padded < span {
        return None;
    }
    Some((padded - span) / stride + 1)
}

impl Conv2dGeom {
    fn cg(&self) -> usize {
        self.c / self.groups
    }
    fn kg(&self) -> usize {
        self.k / self.groups
    }
    fn kk(&self) -> usize {
        self.kh * self.kw
    }
    /// Rows of the im2col matrix of one group: cg * kh * kw.
    fn ckk(&self) -> usize {
        self.cg() * self.kk()
    }
    /// 1x1, stride 1, no padding, same output size: the image is its own im2col matrix.
    fn pointwise(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.sh == 1
            && self.sw == 1
            && self.ph == 0
            && self.pw == 0
            && self.oh == self.h
            && self.ow == self.w
    }
    /// Output rows per block: about `COLS` columns, evenly split, within `COL_MAX_ELEMS`.
    fn rows_per_block(&self) -> usize {
        let by_cols = (COLS / self.ow).max(1);
        let by_mem = (COL_MAX_ELEMS / (self.ckk() * self.ow).max(1)).max(1);
        let target = by_cols.min(by_mem).min(self.oh);
        let nb = self.oh.div_ceil(target);
        self.oh.div_ceil(nb)
    }

    /// Checks ranges and that every size product fits.
    pub fn validate(&self, op: &'static str) -> Result<()> {
        let bad = |detail: String| Err(KernelError::InvalidArgument { op, detail });
        for (name, v) in [
            ("in_channels", self.c),
            ("out_channels", self.k),
            ("kernel height", self.kh),
            ("kernel width", self.kw),
            ("stride height", self.sh),
            ("stride width", self.sw),
            ("dilation height", self.dh),
            ("dilation width", self.dw),
            ("groups", self.groups),
            ("output height", self.oh),
            ("output width", self.ow),
            ("input height", self.h),
            ("input width", self.w),
        ] {
            if v == 0 {
                return bad(format!("{name} must be at least 1, given 0"));
            }
        }
        if !self.c.is_multiple_of(self.groups) || !self.k.is_multiple_of(self.groups) {
            return bad(format!(
                "groups ({}) must divide in_channels ({}) and out_channels ({})",
                self.groups, self.c, self.k
            ));
        }
        // Index arithmetic runs in isize: keep every coordinate far from overflow.
        const LIM: usize = 1 << 40;
        let reach_h = self
            .oh
            .checked_mul(self.sh)
            .and_then(|v| v.checked_add(self.kh.checked_mul(self.dh)?))
            .and_then(|v| v.checked_add(self.ph));
        let reach_w = self
            .ow
            .checked_mul(self.sw)
            .and_then(|v| v.checked_add(self.kw.checked_mul(self.dw)?))
            .and_then(|v| v.checked_add(self.pw));
        match (reach_h, reach_w) {
            (Some(a), Some(b)) if a < LIM && b < LIM && self.h < LIM && self.w < LIM => {}
            _ => return Err(KernelError::Overflow { op }),
        }
        checked_product(op, &[self.n, self.c, self.h, self.w])?;
        checked_product(op, &[self.n, self.k, self.oh, self.ow])?;
        checked_product(op, &[self.k, self.c, self.kh, self.kw])?;
        checked_product(op, &[self.c, self.kh, self.kw, COLS.max(self.ow)])?;
        Ok(())
    }
    pub fn x_len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }
    pub fn y_len(&self) -> usize {
        self.n * self.k * self.oh * self.ow
    }
    pub fn w_len(&self) -> usize {
        self.k * self.ckk()
    }
}

fn check_exact(op: &'static str, what: &str, needed: usize, given: usize) -> Result<()> {
    if needed != given {
        return Err(KernelError::ShapeMismatch {
            op,
            detail: format!("{what} must have {needed} elements, given {given}"),
        });
    }
    Ok(())
}

// ------------------------------------------------------------------ shared helpers

/// A raw pointer that tasks use to write disjoint regions of one output buffer.
#[derive(Clone, Copy)]
struct SharedMut<T>(*mut T);
// SAFETY: only used to hand disjoint regions of one exclusively borrowed buffer to the
// tasks of one `run_tasks` call; T is f32 or f64.
unsafe impl<T: Send> Send for SharedMut<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    /// # Safety
    /// `off + len` must lie within the buffer, and no two live slices may overlap.
    #[allow(clippy::mut_from_ref)]
    unsafe fn slice(&self, off: usize, len: usize) -> &mut [T] {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(off), len) }
    }
}

/// The first error a task met (tasks cannot return one).
struct FirstErr(Mutex<Option<KernelError>>);

impl FirstErr {
    fn new() -> Self {
        FirstErr(Mutex::new(None))
    }
    fn record(&self, r: Result<()>) {
        if let Err(e) = r {
            let mut g = match self.0.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if g.is_none() {
                *g = Some(e);
            }
        }
    }
    fn into_result(self) -> Result<()> {
        match self.0.into_inner() {
            Ok(None) => Ok(()),
            Ok(Some(e)) => Err(e),
            Err(p) => match p.into_inner() {
                None => Ok(()),
                Some(e) => Err(e),
            },
        }
    }
}

thread_local! {
    /// Per-thread workspace (im2col blocks), kept between calls; its size is bounded by
    /// the block sizes above, never by the batch.
    static WS: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on a per-thread scratch slice of `len` elements (contents unspecified).
fn with_ws<T: Float, R>(len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    WS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut v) => {
            let words = (len * std::mem::size_of::<T>()).div_ceil(8);
            if v.len() < words {
                v.resize(words, 0.0);
            }
            // SAFETY: T is f32 or f64 (sealed), whose alignment (4 or 8) divides f64's and
            // for which every bit pattern is valid; the vector holds at least
            // len * size_of::<T>() bytes and stays exclusively borrowed while `f` runs.
            let s = unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut T, len) };
            f(s)
        }
        Err(_) => {
            let mut v = vec![T::ZERO; len];
            f(&mut v)
        }
    })
}

/// Output positions o in 0..n with 0 <= o * stride + off < size, as a range lo..hi.
fn valid_range(off: isize, stride: usize, size: usize, n: usize) -> (usize, usize) {
    let s = stride as isize;
    let lo = if off >= 0 { 0 } else { ((-off) + s - 1) / s };
    let last = size as isize - 1 - off;
    let hi = if last < 0 { 0 } else { last / s + 1 };
    let hi = (hi as usize).min(n);
    let lo = (lo as usize).min(hi);
    (lo, hi)
}

/// im2col of output rows r0..r1 of one group: col[(ci, r, s)][(p - r0) * ow + q] =
/// x[ci, p * sh - ph + r * dh, q * sw - pw + s * dw] (zero outside). `xg` is the group's
/// cg channels of one image.
fn im2col<T: Float>(g: &Conv2dGeom, xg: &[T], r0: usize, r1: usize, col: &mut [T]) {
    let (h, w, ow) = (g.h, g.w, g.ow);
    let ncols = (r1 - r0) * ow;
    let mut rows = col.chunks_exact_mut(ncols);
    for xc in xg.chunks_exact(h * w).take(g.cg()) {
        for r in 0..g.kh {
            for s in 0..g.kw {
                let Some(dst) = rows.next() else { return };
                let off_w = (s * g.dw) as isize - g.pw as isize;
                let (lo, hi) = valid_range(off_w, g.sw, w, ow);
                for (d, p) in dst.chunks_exact_mut(ow).zip(r0..r1) {
                    let ih = (p * g.sh + r * g.dh) as isize - g.ph as isize;
                    if ih < 0 || ih >= h as isize {
                        d.fill(T::ZERO);
                        continue;
                    }
                    let xr = &xc[ih as usize * w..][..w];
                    d[..lo].fill(T::ZERO);
                    d[hi..].fill(T::ZERO);
                    if hi == lo {
                        continue;
                    }
                    let start = (lo as isize * g.sw as isize + off_w) as usize;
                    if g.sw == 1 {
                        d[lo..hi].copy_from_slice(&xr[start..start + (hi - lo)]);
                    } else {
                        for (o, &v) in d[lo..hi].iter_mut().zip(xr[start..].iter().step_by(g.sw)) {
                            *o = v;
                        }
                    }
                }
            }
        }
    }
}

/// col2im of output rows r0..r1 for channels c0..c1 of one group, accumulating into `dxc`
/// (those channels of one image): the transpose of [`im2col`], in a fixed order.
fn col2im<T: Float>(g: &Conv2dGeom, col: &[T], nch: usize, r0: usize, r1: usize, dxc: &mut [T]) {
    let (h, w, ow) = (g.h, g.w, g.ow);
    let ncols = (r1 - r0) * ow;
    let mut rows = col.chunks_exact(ncols);
    for xc in dxc.chunks_exact_mut(h * w).take(nch) {
        for r in 0..g.kh {
            for s in 0..g.kw {
                let Some(src) = rows.next() else { return };
                let off_w = (s * g.dw) as isize - g.pw as isize;
                let (lo, hi) = valid_range(off_w, g.sw, w, ow);
                for (d, p) in src.chunks_exact(ow).zip(r0..r1) {
                    let ih = (p * g.sh + r * g.dh) as isize - g.ph as isize;
                    if ih < 0 || ih >= h as isize {
                        continue;
                    }
                    if hi == lo {
                        continue;
                    }
                    let xr = &mut xc[ih as usize * w..][..w];
                    let start = (lo as isize * g.sw as isize + off_w) as usize;
                    if g.sw == 1 {
                        for (o, &v) in xr[start..start + (hi - lo)].iter_mut().zip(&d[lo..hi]) {
                            *o += v;
                        }
                    } else {
                        for (o, &v) in xr[start..].iter_mut().step_by(g.sw).zip(&d[lo..hi]) {
                            *o += v;
                        }
                    }
                }
            }
        }
    }
}

// ------------------------------------------------------------------ forward

/// y = conv2d(x, w) + b: x (n, c, h, w), w (k, c / groups, kh, kw), b (k) or None,
/// y (n, k, oh, ow).
pub fn forward<T: Float>(
    g: &Conv2dGeom,
    x: &[T],
    w: &[T],
    b: Option<&[T]>,
    y: &mut [T],
) -> Result<()> {
    g.validate(OP_FWD)?;
    check_exact(OP_FWD, "x", g.x_len(), x.len())?;
    check_exact(OP_FWD, "weight", g.w_len(), w.len())?;
    check_exact(OP_FWD, "y", g.y_len(), y.len())?;
    if let Some(b) = b {
        check_exact(OP_FWD, "bias", g.k, b.len())?;
    }
    if g.n == 0 {
        return Ok(());
    }
    if winograd_fits(g) {
        let wz = Wino {
            n: g.n,
            groups: g.groups,
            cin: g.cg(),
            cout: g.kg(),
            h: g.h,
            w: g.w,
            oh: g.oh,
            ow: g.ow,
            ph: g.ph,
            pw: g.pw,
        };
        let (cg, kk) = (g.cg(), g.kk());
        let u = wino_weights(&wz, |gi, o, i, r, s| {
            w[((gi * wz.cout + o) * cg + i) * kk + r * 3 + s]
        });
        return wino_run(&wz, x, &u, b, y);
    }
    if direct_fits(g) {
        return direct_forward(g, x, w, b, y);
    }
    let (cg, kg, ckk) = (g.cg(), g.kg(), g.ckk());
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    let pointwise = g.pointwise();
    if pointwise && g.n * g.groups >= WHOLE_IMAGE_TASKS {
        // One product per (image, group), straight into y (a contiguous region), with
        // the bias added in registers (see `pw_gemm`).
        let yp = SharedMut(y.as_mut_ptr());
        let err = FirstErr::new();
        spin::run_tasks(g.n * g.groups, threading::get_num_threads(), |t| {
            let (img, gi) = (t / g.groups, t % g.groups);
            let xg = &x[(img * g.c + gi * cg) * hw..][..cg * hw];
            let wg = &w[gi * kg * cg..][..kg * cg];
            // SAFETY: channels gi * kg .. (gi + 1) * kg of image img lie inside y (length
            // checked) and belong to this task only.
            let yr = unsafe { yp.slice((img * g.k + gi * kg) * ohw, kg * ohw) };
            let bg = b.map(|b| &b[gi * kg..][..kg]);
            err.record(pw_gemm(false, kg, hw, cg, wg, cg, xg, hw, bg, yr, hw));
        });
        return err.into_result();
    }
    let rb = g.rows_per_block();
    let nrb = g.oh.div_ceil(rb);
    let col_len = if pointwise { 0 } else { ckk * rb * g.ow };
    let ws_len = col_len + kg * rb * g.ow;
    let yp = SharedMut(y.as_mut_ptr());
    let err = FirstErr::new();
    let tasks = g.n * g.groups * nrb;
    spin::run_tasks(tasks, threading::get_num_threads(), |t| {
        let img = t / (g.groups * nrb);
        let gi = (t / nrb) % g.groups;
        let r0 = (t % nrb) * rb;
        let r1 = (r0 + rb).min(g.oh);
        let ncols = (r1 - r0) * g.ow;
        let xg = &x[(img * g.c + gi * cg) * hw..][..cg * hw];
        let wg = &w[gi * kg * ckk..][..kg * ckk];
        with_ws::<T, _>(ws_len, |ws| {
            let (col, yb) = ws.split_at_mut(col_len);
            let yb = &mut yb[..kg * ncols];
            let r = if pointwise {
                gemm::gemm(
                    false,
                    false,
                    kg,
                    ncols,
                    cg,
                    T::ONE,
                    wg,
                    ckk,
                    &xg[r0 * g.ow..],
                    hw,
                    T::ZERO,
                    yb,
                    ncols,
                )
            } else {
                let col = &mut col[..ckk * ncols];
                im2col(g, xg, r0, r1, col);
                gemm::gemm(
                    false,
                    false,
                    kg,
                    ncols,
                    ckk,
                    T::ONE,
                    wg,
                    ckk,
                    col,
                    ncols,
                    T::ZERO,
                    yb,
                    ncols,
                )
            };
            err.record(r);
            for ko in 0..kg {
                let ch = gi * kg + ko;
                // SAFETY: (img, ch, rows r0..r1) is inside y (lengths checked above) and
                // belongs to this task only: tasks differ in image, group or row block.
                let dst = unsafe { yp.slice((img * g.k + ch) * ohw + r0 * g.ow, ncols) };
                let bv = b.map_or(T::ZERO, |b| b[ch]);
                for (d, &s) in dst.iter_mut().zip(&yb[ko * ncols..(ko + 1) * ncols]) {
                    *d = s + bv;
                }
            }
        });
    });
    err.into_result()
}

// ------------------------------------------------------------------ pointwise product

/// Depth up to which [`pw_gemm`] runs its own unpacked kernel; deeper products (and
/// levels without it) go to the general GEMM.
const PW_MAX_DEPTH: usize = 256;

/// Whether [`pw_gemm`] runs its own kernel (not the general GEMM) at this SIMD level
/// and depth.
pub(crate) fn pw_own_kernel(level: crate::simd::Level, k: usize) -> bool {
    cfg!(target_arch = "x86_64")
        && level == crate::simd::Level::Avx512
        && crate::simd::level() == crate::simd::Level::Avx512
        && (1..=PW_MAX_DEPTH).contains(&k)
}

/// Y (m x n, row stride `ldy`) = op(A) @ X (+ `bias[i]` on row i), single-threaded: the
/// pointwise convolution's product. op(A) is m x k: `a[i * lda + p]`, or `a[p * lda + i]`
/// when `transa`; X (k x n) has row stride `ldx`. Each element is the sum over p = 0, 1,
/// ... in that order, then the bias added: the same bits as the GEMM followed by
/// [`add_row_bias`], which is the fallback.
///
/// With AVX-512 and k <= `PW_MAX_DEPTH`, its own kernel: strips of `PW_NV` vectors of
/// columns of X (read in place) stay in L1 while every block of `PW_MR` rows of A (read
/// in place: at most 256 x 256 here) sweeps them, and the bias is added in registers
/// before the store. The k rows of the next strip are prefetched into L2 during each
/// strip: k rows of a long image are k page-distant streams, which the hardware
/// prefetchers do not follow. (It used to copy blocks of X into a workspace with long
/// sequential reads instead, which took a fifth of the layer's time: the benchmark's 1x1
/// layer went from 2.37 to 2.03-2.11 ms on one thread without the copy.) For the 1x1
/// benchmark layer (64 x 3136 x 64 per image) this replaces the GEMM's panel packing and
/// its separate bias pass.
#[allow(clippy::too_many_arguments)]
pub(crate) fn pw_gemm<T: Float>(
    transa: bool,
    m: usize,
    n: usize,
    k: usize,
    a: &[T],
    lda: usize,
    x: &[T],
    ldx: usize,
    bias: Option<&[T]>,
    y: &mut [T],
    ldy: usize,
) -> Result<()> {
    #[cfg(target_arch = "x86_64")]
    if pw_own_kernel(crate::simd::level(), k) && m > 0 && n > 0 {
        let (ar, ac) = if transa { (k, m) } else { (m, k) };
        let need = |rows: usize, cols: usize, ld: usize| (rows - 1) * ld + cols;
        let ok = lda >= ac
            && ldx >= n
            && ldy >= n
            && a.len() >= need(ar, ac, lda)
            && x.len() >= need(k, n, ldx)
            && y.len() >= need(m, n, ldy)
            && bias.is_none_or(|b| b.len() >= m);
        if !ok {
            return Err(KernelError::ShapeMismatch {
                op: OP_FWD,
                detail: format!(
                    "pointwise product {m} x {n} x {k}: operand lengths {} / {} / {} too short",
                    a.len(),
                    x.len(),
                    y.len()
                ),
            });
        }
        let (a_rs, a_cs) = if transa { (1, lda) } else { (lda, 1) };
        let bp = bias.map_or(std::ptr::null(), |b| b.as_ptr());
        // SAFETY: the level is AVX-512; every element the kernel reads or writes (rows
        // < m, columns < n, depth < k) lies inside the lengths checked above; the bias
        // pointer (if any) covers m values; T is the kernel's element type (by_float).
        unsafe {
            by_float!(
                T,
                pw_x86::drive_f32,
                pw_x86::drive_f64,
                (
                    m,
                    n,
                    k,
                    a.as_ptr().cast(),
                    a_rs,
                    a_cs,
                    x.as_ptr().cast(),
                    ldx,
                    bp.cast(),
                    y.as_mut_ptr().cast(),
                    ldy,
                )
            )
        };
        return Ok(());
    }
    gemm::gemm(
        transa,
        false,
        m,
        n,
        k,
        T::ONE,
        a,
        lda,
        x,
        ldx,
        T::ZERO,
        y,
        ldy,
    )?;
    if let Some(b) = bias {
        add_row_bias(y, ldy, n, b);
    }
    Ok(())
}

#[cfg(target_arch = "x86_64")]
#[allow(clippy::incompatible_msrv)]
mod pw_x86 {
    use std::arch::x86_64::*;

    /// Rows of A per register tile.
    pub(super) const PW_MR: usize = 8;
    /// Vectors of columns per register tile (and per strip).
    pub(super) const PW_NV: usize = 3;

    macro_rules! pw_kernel {
        ($tile:ident, $drive:ident, $t:ty, $lanes:expr, $mask:ty,
         $zero:ident, $maskz_load:ident, $mask_store:ident, $set1:ident, $fmadd:ident, $add:ident) => {
            /// One register tile: `R` rows by `PW_NV` vectors (lanes beyond `masks`
            /// neither read nor written).
            ///
            /// # Safety
            /// A at `a + i * a_rs + p * a_cs` and X at `x + p * ldx + j` readable for
            /// i < R, p < k and the masked columns j; Y likewise writable at
            /// `y + i * ldy + j`; `bias` null or readable for R values; AVX-512F.
            #[target_feature(enable = "avx512f")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn $tile<const R: usize>(
                k: usize,
                a: *const $t,
                a_rs: usize,
                a_cs: usize,
                x: *const $t,
                ldx: usize,
                bias: *const $t,
                y: *mut $t,
                ldy: usize,
                masks: &[$mask; PW_NV],
            ) {
                const L: usize = $lanes;
                let mut acc = [[$zero(); PW_NV]; R];
                let mut ap = a;
                let mut xp = x;
                for _ in 0..k {
                    let mut xv = [$zero(); PW_NV];
                    for (v, e) in xv.iter_mut().enumerate() {
                        // SAFETY: masked: only the tile's columns of row p are read.
                        *e = unsafe { $maskz_load(masks[v], xp.add(v * L)) };
                    }
                    for (i, row) in acc.iter_mut().enumerate() {
                        // SAFETY: element (i, p) of A, i < R.
                        let av = $set1(unsafe { *ap.add(i * a_rs) });
                        for (v, e) in row.iter_mut().enumerate() {
                            *e = $fmadd(av, xv[v], *e);
                        }
                    }
                    // One past the operands after the last p: wrapping keeps it defined.
                    ap = ap.wrapping_add(a_cs);
                    xp = xp.wrapping_add(ldx);
                }
                for (i, row) in acc.iter().enumerate() {
                    let bv = if bias.is_null() {
                        None
                    } else {
                        // SAFETY: i < R values of the bias.
                        Some($set1(unsafe { *bias.add(i) }))
                    };
                    for (v, &e) in row.iter().enumerate() {
                        let r = match bv {
                            Some(b) => $add(e, b),
                            None => e,
                        };
                        // SAFETY: row i of the tile, masked columns.
                        unsafe { $mask_store(y.wrapping_add(i * ldy + v * L), masks[v], r) };
                    }
                }
            }

            /// The whole m x n product (see `pw_gemm`).
            ///
            /// # Safety
            /// A readable at `a + i * a_rs + p * a_cs`, X at `x + p * ldx + j`, Y
            /// writable at `y + i * ldy + j` for i < m, p < k, j < n; `bias` null or
            /// readable for m values; the CPU has AVX-512F.
            #[target_feature(enable = "avx512f")]
            #[allow(clippy::too_many_arguments)]
            pub(super) unsafe fn $drive(
                m: usize,
                n: usize,
                k: usize,
                a: *const $t,
                a_rs: usize,
                a_cs: usize,
                x: *const $t,
                ldx: usize,
                bias: *const $t,
                y: *mut $t,
                ldy: usize,
            ) {
                const L: usize = $lanes;
                const W: usize = PW_NV * L;
                for j0 in (0..n).step_by(W) {
                    let cols = (n - j0).min(W);
                    let masks: [$mask; PW_NV] = std::array::from_fn(|v| {
                        let w = cols.saturating_sub(v * L);
                        if w >= L {
                            <$mask>::MAX
                        } else {
                            ((1u32 << w) - 1) as $mask
                        }
                    });
                    // X is read in place; the rows of the next strip (k rows of W columns,
                    // one page each) are prefetched into L2 while this strip is computed,
                    // since the hardware prefetchers do not follow k streams at once (a
                    // prefetch never faults, even past the end of X).
                    if j0 + W < n {
                        for p in 0..k {
                            let row = x.wrapping_add(p * ldx + j0 + W);
                            for v in 0..PW_NV {
                                _mm_prefetch::<_MM_HINT_T1>(row.wrapping_add(v * L) as *const i8);
                            }
                        }
                    }
                    let xs = x.wrapping_add(j0);
                    let ys = y.wrapping_add(j0);
                    let full = m / PW_MR * PW_MR;
                    for i0 in (0..full).step_by(PW_MR) {
                        let bi = if bias.is_null() {
                            bias
                        } else {
                            bias.wrapping_add(i0)
                        };
                        // SAFETY: rows i0 .. i0 + PW_MR < m, columns j0 .. j0 + cols <= n.
                        unsafe {
                            $tile::<PW_MR>(
                                k,
                                a.wrapping_add(i0 * a_rs),
                                a_rs,
                                a_cs,
                                xs,
                                ldx,
                                bi,
                                ys.wrapping_add(i0 * ldy),
                                ldy,
                                &masks,
                            )
                        };
                    }
                    let rest = m - full;
                    if rest > 0 {
                        let i0 = full;
                        let bi = if bias.is_null() {
                            bias
                        } else {
                            bias.wrapping_add(i0)
                        };
                        let args = (
                            k,
                            a.wrapping_add(i0 * a_rs),
                            a_rs,
                            a_cs,
                            xs,
                            ldx,
                            bi,
                            ys.wrapping_add(i0 * ldy),
                            ldy,
                            &masks,
                        );
                        // SAFETY: rows i0 .. m, as above.
                        unsafe {
                            match rest {
                                1 => $tile::<1>(
                                    args.0, args.1, args.2, args.3, args.4, args.5, args.6, args.7,
                                    args.8, args.9,
                                ),
                                2 => $tile::<2>(
                                    args.0, args.1, args.2, args.3, args.4, args.5, args.6, args.7,
                                    args.8, args.9,
                                ),
                                3 => $tile::<3>(
                                    args.0, args.1, args.2, args.3, args.4, args.5, args.6, args.7,
                                    args.8, args.9,
                                ),
                                4 => $tile::<4>(
                                    args.0, args.1, args.2, args.3, args.4, args.5, args.6, args.7,
                                    args.8, args.9,
                                ),
                                5 => $tile::<5>(
                                    args.0, args.1, args.2, args.3, args.4, args.5, args.6, args.7,
                                    args.8, args.9,
                                ),
                                6 => $tile::<6>(
                                    args.0, args.1, args.2, args.3, args.4, args.5, args.6, args.7,
                                    args.8, args.9,
                                ),
                                7 => $tile::<7>(
                                    args.0, args.1, args.2, args.3, args.4, args.5, args.6, args.7,
                                    args.8, args.9,
                                ),
                                8 => $tile::<8>(
                                    args.0, args.1, args.2, args.3, args.4, args.5, args.6, args.7,
                                    args.8, args.9,
                                ),
                                9 => $tile::<9>(
                                    args.0, args.1, args.2, args.3, args.4, args.5, args.6, args.7,
                                    args.8, args.9,
                                ),
                                10 => $tile::<10>(
                                    args.0, args.1, args.2, args.3, args.4, args.5, args.6, args.7,
                                    args.8, args.9,
                                ),
                                11 => $tile::<11>(
                                    args.0, args.1, args.2, args.3, args.4, args.5, args.6, args.7,
                                    args.8, args.9,
                                ),
                                12 => $tile::<12>(
                                    args.0, args.1, args.2, args.3, args.4, args.5, args.6, args.7,
                                    args.8, args.9,
                                ),
                                13 => $tile::<13>(
                                    args.0, args.1, args.2, args.3, args.4, args.5, args.6, args.7,
                                    args.8, args.9,
                                ),
                                14 => $tile::<14>(
                                    args.0, args.1, args.2, args.3, args.4, args.5, args.6, args.7,
                                    args.8, args.9,
                                ),
                                15 => $tile::<15>(
                                    args.0, args.1, args.2, args.3, args.4, args.5, args.6, args.7,
                                    args.8, args.9,
                                ),
                                _ => unreachable!("PW_MR is at most 16"),
                            }
                        }
                    }
                }
            }
        };
    }

    pw_kernel!(
        tile_f32,
        drive_f32,
        f32,
        16,
        __mmask16,
        _mm512_setzero_ps,
        _mm512_maskz_loadu_ps,
        _mm512_mask_storeu_ps,
        _mm512_set1_ps,
        _mm512_fmadd_ps,
        _mm512_add_ps
    );
    pw_kernel!(
        tile_f64,
        drive_f64,
        f64,
        8,
        __mmask8,
        _mm512_setzero_pd,
        _mm512_maskz_loadu_pd,
        _mm512_mask_storeu_pd,
        _mm512_set1_pd,
        _mm512_fmadd_pd,
        _mm512_add_pd
    );
}

// ------------------------------------------------------------------ direct (small) convolution

/// Largest padded plane stack (c * hp * wp, elements) and im2col depth a direct task takes.
const DIRECT_MAX_PLANE: usize = 1 << 15;
const DIRECT_MAX_DEPTH: usize = 1024;
/// Largest weight (k * c * kh * kw) whose gradient runs direct (a task keeps one vector
/// of partial sums per weight).
const DIRECT_MAX_DW: usize = 1 << 14;

/// The shape of one direct ("wide") convolution of one image: out[o][p * wp + q] =
/// sum over j = (c, r, s) of a[o * depth + j] * xp[c * hp * wp + (p + r) * wp + q + s]
/// for p < oh and all q < wp (the columns q >= ow of each row are computed and dropped),
/// where xp is the input copied into a zero-padded (c, hp, wp) stack, hp = oh + kh - 1,
/// wp = ow + kw - 1 (stride 1, dilation 1). Rows of the product are thus contiguous
/// slices of xp at the offsets `xp_off(j)`: an implicit im2col that copies nothing.
#[derive(Debug, Clone, Copy)]
struct Direct {
    c: usize,
    kh: usize,
    kw: usize,
    /// Input (h, w) and where it sits in the padded stack (top, left).
    h: usize,
    w: usize,
    top: usize,
    left: usize,
    oh: usize,
    ow: usize,
}

impl Direct {
    fn hp(&self) -> usize {
        self.oh + self.kh - 1
    }
    fn wp(&self) -> usize {
        self.ow + self.kw - 1
    }
    fn depth(&self) -> usize {
        self.c * self.kh * self.kw
    }
    /// Positions of the wide output (oh rows of wp).
    fn wide(&self) -> usize {
        self.oh * self.wp()
    }
    /// Elements of the padded stack, plus the slack the last wide rows read past it.
    fn xp_len(&self) -> usize {
        self.c * self.hp() * self.wp() + self.kw + 64
    }
    fn offsets(&self) -> Vec<usize> {
        let (hp, wp) = (self.hp(), self.wp());
        let mut v = Vec::with_capacity(self.depth());
        for c in 0..self.c {
            for r in 0..self.kh {
                for s in 0..self.kw {
                    v.push(c * hp * wp + r * wp + s);
                }
            }
        }
        v
    }
    /// Copies one image (c, h, w) into the zero-padded stack `xp` (clipped to it).
    fn pad<T: Float>(&self, x: &[T], xp: &mut [T]) {
        let (hp, wp) = (self.hp(), self.wp());
        xp.fill(T::ZERO);
        let (c0, c1) = (self.left, (self.left + self.w).min(wp));
        if c0 >= c1 {
            return;
        }
        for (xc, pc) in x
            .chunks_exact(self.h * self.w)
            .zip(xp.chunks_exact_mut(hp * wp))
            .take(self.c)
        {
            for (ih, xr) in xc.chunks_exact(self.w).enumerate() {
                let r = ih + self.top;
                if r >= hp {
                    break;
                }
                pc[r * wp + c0..r * wp + c1].copy_from_slice(&xr[..c1 - c0]);
            }
        }
    }
}

/// A direct convolution applies: AVX-512, stride 1, dilation 1, one group, small planes
/// (where im2col + GEMM spends more on copying and packing than on multiplying), and
/// not the pointwise or Winograd cases.
fn direct_fits(g: &Conv2dGeom) -> bool {
    cfg!(target_arch = "x86_64")
        && crate::simd::level() == crate::simd::Level::Avx512
        && g.sh == 1
        && g.sw == 1
        && g.dh == 1
        && g.dw == 1
        && g.groups == 1
        && !g.pointwise()
        && !winograd_fits(g)
        && g.ckk() <= DIRECT_MAX_DEPTH
        && g.c * (g.oh + g.kh) * (g.ow + g.kw) <= DIRECT_MAX_PLANE
        && g.k * (g.oh + g.kh) * (g.ow + g.kw) <= DIRECT_MAX_PLANE
        && g.ow + g.kw <= 128
}

/// The error of an internal operand-length check of the direct kernels (unreachable
/// from checked inputs; an error rather than a panic all the same).
fn direct_len_err(what: &str) -> Result<()> {
    Err(KernelError::ShapeMismatch {
        op: OP_FWD,
        detail: format!("{what}: operand lengths do not match the geometry"),
    })
}

/// out (m x wide, row stride `ld`) = a (m x depth) @ implicit im2col of `xp`.
fn direct_product<T: Float>(
    d: &Direct,
    m: usize,
    a: &[T],
    xp: &[T],
    offs: &[usize],
    out: &mut [T],
    ld: usize,
) -> Result<()> {
    let (depth, wide) = (d.depth(), d.wide());
    if !(a.len() >= m * depth
        && offs.len() == depth
        && offs.iter().all(|&o| o + wide + 64 <= xp.len())
        && ld >= wide
        && out.len() >= (m - 1) * ld + wide)
    {
        return direct_len_err("direct_product");
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: checked above: every row j of the implicit im2col (xp[offs[j]..][..wide],
    // plus at most 64 lanes of masked-off overrun that are never read) lies inside xp,
    // a holds m rows of depth, out m rows of wide at stride ld; the caller checked
    // AVX-512 (`direct_fits`).
    unsafe {
        by_float!(
            T,
            direct_x86::fwd_f32,
            direct_x86::fwd_f64,
            (
                m,
                wide,
                depth,
                a.as_ptr().cast(),
                xp.as_ptr().cast(),
                offs.as_ptr(),
                out.as_mut_ptr().cast(),
                ld,
            )
        )
    }
    Ok(())
}

/// Copies the valid columns (q < ow) of the wide rows into (m, oh, ow) planes, adding
/// `bias[o]` to plane o.
fn direct_compact<T: Float>(d: &Direct, wide: &[T], m: usize, bias: Option<&[T]>, y: &mut [T]) {
    let (oh, ow, wp) = (d.oh, d.ow, d.wp());
    for (o, yo) in y.chunks_exact_mut(oh * ow).take(m).enumerate() {
        let src = &wide[o * d.wide()..][..d.wide()];
        let bv = bias.map_or(T::ZERO, |b| b[o]);
        for (yr, sr) in yo.chunks_exact_mut(ow).zip(src.chunks_exact(wp)) {
            for (e, &v) in yr.iter_mut().zip(&sr[..ow]) {
                *e = v + bv;
            }
        }
    }
}

/// Direct forward (see [`Direct`]): one task per image.
fn direct_forward<T: Float>(
    g: &Conv2dGeom,
    x: &[T],
    w: &[T],
    b: Option<&[T]>,
    y: &mut [T],
) -> Result<()> {
    let d = Direct {
        c: g.c,
        kh: g.kh,
        kw: g.kw,
        h: g.h,
        w: g.w,
        top: g.ph,
        left: g.pw,
        oh: g.oh,
        ow: g.ow,
    };
    let offs = d.offsets();
    let (xl, wl, hw, ohw) = (d.xp_len(), g.k * d.wide(), g.h * g.w, g.oh * g.ow);
    let yp = SharedMut(y.as_mut_ptr());
    let err = FirstErr::new();
    spin::run_tasks(g.n, threading::get_num_threads(), |img| {
        with_ws::<T, _>(xl + wl, |ws| {
            let (xp, wide) = ws.split_at_mut(xl);
            d.pad(&x[img * g.c * hw..][..g.c * hw], xp);
            err.record(direct_product(&d, g.k, w, xp, &offs, wide, d.wide()));
            // SAFETY: image img's planes of y (length checked), written by this task only.
            let yi = unsafe { yp.slice(img * g.k * ohw, g.k * ohw) };
            direct_compact(&d, wide, g.k, b, yi);
        });
    });
    err.into_result()
}

/// Direct input gradient: dx = the full correlation of gy with the flipped,
/// channel-transposed kernel (padding kh - 1 - ph, kw - 1 - pw, which must be >= 0 on
/// every side), plus `bias` per input channel.
fn direct_backward_input<T: Float>(
    g: &Conv2dGeom,
    gy: &[T],
    w: &[T],
    bias: Option<&[T]>,
    dx: &mut [T],
) -> Result<()> {
    let d = Direct {
        c: g.k,
        kh: g.kh,
        kw: g.kw,
        h: g.oh,
        w: g.ow,
        top: g.kh - 1 - g.ph,
        left: g.kw - 1 - g.pw,
        oh: g.h,
        ow: g.w,
    };
    let (kk, ckk) = (g.kk(), g.ckk());
    // wt[ci][(o, r, s)] = w[o][ci][kh - 1 - r][kw - 1 - s]
    let mut wt = vec![T::ZERO; g.c * g.k * kk];
    for ci in 0..g.c {
        for o in 0..g.k {
            for r in 0..g.kh {
                for s in 0..g.kw {
                    wt[(ci * g.k + o) * kk + r * g.kw + s] =
                        w[o * ckk + ci * kk + (g.kh - 1 - r) * g.kw + (g.kw - 1 - s)];
                }
            }
        }
    }
    let offs = d.offsets();
    let (xl, wl, hw, ohw) = (d.xp_len(), g.c * d.wide(), g.h * g.w, g.oh * g.ow);
    let dxp = SharedMut(dx.as_mut_ptr());
    let err = FirstErr::new();
    spin::run_tasks(g.n, threading::get_num_threads(), |img| {
        with_ws::<T, _>(xl + wl, |ws| {
            let (xp, wide) = ws.split_at_mut(xl);
            d.pad(&gy[img * g.k * ohw..][..g.k * ohw], xp);
            err.record(direct_product(&d, g.c, &wt, xp, &offs, wide, d.wide()));
            // SAFETY: image img's planes of dx (length checked), written by this task only.
            let di = unsafe { dxp.slice(img * g.c * hw, g.c * hw) };
            direct_compact(&d, wide, g.c, bias, di);
        });
    });
    err.into_result()
}

/// The direct input gradient applies (its padding kh - 1 - p is >= 0 on every side).
fn direct_dx_fits(g: &Conv2dGeom) -> bool {
    let pb = (g.oh + g.kh - 1).checked_sub(g.h + g.ph);
    let pr = (g.ow + g.kw - 1).checked_sub(g.w + g.pw);
    // The full correlation runs over h * wp wide positions per input channel where the
    // GEMM path multiplies oh * ow: only take it when that costs at most 1.5x.
    direct_fits(g)
        && 2 * g.h * (g.w + g.kw - 1) <= 3 * g.oh * g.ow
        && g.ph < g.kh
        && g.pw < g.kw
        && pb.is_some_and(|p| p < g.kh)
        && pr.is_some_and(|p| p < g.kw)
}

/// Direct weight gradient: dw[o][j] = sum over images and wide positions t (masked to
/// the valid ones) of gy_wide[o][t] * xp[offs[j] + t], per fixed chunk of images, the
/// chunk partials added in chunk order.
fn direct_backward_weight<T: Float>(g: &Conv2dGeom, x: &[T], gy: &[T], dw: &mut [T]) -> Result<()> {
    let d = Direct {
        c: g.c,
        kh: g.kh,
        kw: g.kw,
        h: g.h,
        w: g.w,
        top: g.ph,
        left: g.pw,
        oh: g.oh,
        ow: g.ow,
    };
    let offs = d.offsets();
    let ckk = g.ckk();
    let wlen = g.k * ckk;
    let chunks = dw_chunks(g.n, wlen);
    let (xl, gl, hw, ohw) = (d.xp_len(), g.k * d.wide(), g.h * g.w, g.oh * g.ow);
    let mut partials = vec![T::ZERO; (chunks - 1) * wlen];
    let dwp = SharedMut(dw.as_mut_ptr());
    let pp = SharedMut(partials.as_mut_ptr());
    let err = FirstErr::new();
    spin::run_tasks(chunks, threading::get_num_threads(), |ch| {
        // SAFETY: chunk 0 owns dw, chunk j > 0 partial slot j - 1.
        let acc = unsafe {
            if ch == 0 {
                dwp.slice(0, wlen)
            } else {
                pp.slice((ch - 1) * wlen, wlen)
            }
        };
        acc.fill(T::ZERO);
        let (i0, i1) = (ch * g.n / chunks, (ch + 1) * g.n / chunks);
        with_ws::<T, _>(xl + gl, |ws| {
            let (xp, gw) = ws.split_at_mut(xl);
            for img in i0..i1 {
                d.pad(&x[img * g.c * hw..][..g.c * hw], xp);
                // gy widened to rows of wp (columns q >= ow are masked off below).
                let wp = d.wp();
                for (o, go) in gy[img * g.k * ohw..][..g.k * ohw]
                    .chunks_exact(ohw)
                    .enumerate()
                {
                    for (p, gr) in go.chunks_exact(g.ow).enumerate() {
                        gw[o * d.wide() + p * wp..][..g.ow].copy_from_slice(gr);
                    }
                }
                err.record(direct_weight_product(&d, g.k, gw, xp, &offs, acc));
            }
        });
    });
    err.into_result()?;
    if chunks > 1 {
        crate::reduce::add_partials(&mut dw[..wlen], &partials);
    }
    Ok(())
}

/// acc (m x depth) += gw (m x wide) @ (implicit im2col of xp)^T over the valid wide
/// positions (columns q < ow of each row), each dot product reduced from its lanes.
fn direct_weight_product<T: Float>(
    d: &Direct,
    m: usize,
    gw: &[T],
    xp: &[T],
    offs: &[usize],
    acc: &mut [T],
) -> Result<()> {
    let (depth, wide) = (d.depth(), d.wide());
    if !(gw.len() >= m * wide
        && offs.len() == depth
        && offs.iter().all(|&o| o + wide + 64 <= xp.len())
        && acc.len() >= m * depth)
    {
        return direct_len_err("direct_weight_product");
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: checked above (rows of gw and of the implicit im2col span `wide` values,
    // read with masks that stop at `wide`); the caller checked AVX-512.
    unsafe {
        by_float!(
            T,
            direct_x86::dw_f32,
            direct_x86::dw_f64,
            (
                m,
                wide,
                d.wp(),
                d.ow,
                depth,
                gw.as_ptr().cast(),
                xp.as_ptr().cast(),
                offs.as_ptr(),
                acc.as_mut_ptr().cast(),
            )
        )
    }
    Ok(())
}

/// The weight gradient with the output channels in the vector lanes applies: at least
/// half a vector of them, kernel width at most 7.
fn direct_dwo_fits<T: Float>(g: &Conv2dGeom) -> bool {
    let lanes = 64 / std::mem::size_of::<T>();
    2 * g.k >= lanes && g.kw <= 7
}

/// Direct weight gradient with the output channels in the vector lanes: for each valid
/// output position t (in order) and weight index j = (c, r, s),
/// acc[o-vector][j] += x_pad[offs[j] + t] * gy[o-vector][t], the gradient transposed to
/// (position, channel) once per image; vector partial sums per fixed chunk of images,
/// the chunk partials added in chunk order. No horizontal sums, no wasted positions.
fn direct_backward_weight_o<T: Float>(
    g: &Conv2dGeom,
    x: &[T],
    gy: &[T],
    dw: &mut [T],
) -> Result<()> {
    let d = Direct {
        c: g.c,
        kh: g.kh,
        kw: g.kw,
        h: g.h,
        w: g.w,
        top: g.ph,
        left: g.pw,
        oh: g.oh,
        ow: g.ow,
    };
    let lanes = 64 / std::mem::size_of::<T>();
    let ckk = g.ckk();
    let nvo = g.k.div_ceil(lanes);
    let kp = nvo * lanes;
    let wlen = g.k * ckk;
    let chunks = dw_chunks(g.n, wlen);
    let (xl, hw, ohw) = (d.xp_len(), g.h * g.w, g.oh * g.ow);
    let (gl, vl) = (ohw * kp, nvo * ckk * lanes);
    let mut partials = vec![T::ZERO; (chunks - 1) * wlen];
    let dwp = SharedMut(dw.as_mut_ptr());
    let pp = SharedMut(partials.as_mut_ptr());
    let err = FirstErr::new();
    spin::run_tasks(chunks, threading::get_num_threads(), |ch| {
        // SAFETY: chunk 0 owns dw, chunk j > 0 partial slot j - 1.
        let out = unsafe {
            if ch == 0 {
                dwp.slice(0, wlen)
            } else {
                pp.slice((ch - 1) * wlen, wlen)
            }
        };
        let (i0, i1) = (ch * g.n / chunks, (ch + 1) * g.n / chunks);
        with_ws::<T, _>(xl + gl + vl, |ws| {
            let (xp, rest) = ws.split_at_mut(xl);
            let (gt, vacc) = rest.split_at_mut(gl);
            vacc.fill(T::ZERO);
            for img in i0..i1 {
                d.pad(&x[img * g.c * hw..][..g.c * hw], xp);
                for (o, go) in gy[img * g.k * ohw..][..g.k * ohw]
                    .chunks_exact(ohw)
                    .enumerate()
                {
                    for (u, &v) in go.iter().enumerate() {
                        gt[u * kp + o] = v;
                    }
                }
                err.record(direct_weight_product_o(&d, g.k, gt, kp, xp, vacc));
            }
            for o in 0..g.k {
                let (ob, l) = (o / lanes, o % lanes);
                for (j, e) in out[o * ckk..][..ckk].iter_mut().enumerate() {
                    *e = vacc[(ob * ckk + j) * lanes + l];
                }
            }
        });
    });
    err.into_result()?;
    if chunks > 1 {
        crate::reduce::add_partials(&mut dw[..wlen], &partials);
    }
    Ok(())
}

/// vacc[(o-vector, j)] += sum over valid positions of x_pad[offs[j] + t] * gt[t][o-vector]
/// (gt: (oh * ow, kp) rows).
fn direct_weight_product_o<T: Float>(
    d: &Direct,
    k: usize,
    gt: &[T],
    kp: usize,
    xp: &[T],
    vacc: &mut [T],
) -> Result<()> {
    let lanes = 64 / std::mem::size_of::<T>();
    let (hp, wp, ckk) = (d.hp(), d.wp(), d.depth());
    let nvo = k.div_ceil(lanes);
    if !((1..=7).contains(&d.kw)
        && kp == nvo * lanes
        && gt.len() >= d.oh * d.ow * kp
        && xp.len() >= d.c * hp * wp
        && vacc.len() >= nvo * ckk * lanes)
    {
        return direct_len_err("direct_weight_product_o");
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: checked above: every row (c, r) of the padded stack spans wp values, read at
    // q + s < ow + kw - 1 = wp for p < oh; gt holds oh * ow rows of kp; vacc nvo * ckk
    // vectors; the caller checked AVX-512.
    unsafe {
        by_float!(
            T,
            direct_x86::dwo_f32,
            direct_x86::dwo_f64,
            (
                d.c * d.kh,
                hp,
                d.kh,
                d.kw,
                wp,
                d.oh,
                d.ow,
                k,
                xp.as_ptr().cast(),
                gt.as_ptr().cast(),
                kp,
                vacc.as_mut_ptr().cast(),
            )
        )
    }
    Ok(())
}

#[cfg(target_arch = "x86_64")]
#[allow(clippy::incompatible_msrv)]
mod direct_x86 {
    use std::arch::x86_64::*;

    /// Forward register tile: up to `FR` rows of A by `FNV` vectors of positions.
    const FR: usize = 8;
    const FNV: usize = 3;
    /// Weight-gradient register tile: up to `GR` rows of gw by `GJ` rows of the im2col.
    const GR: usize = 4;
    const GJ: usize = 6;

    macro_rules! direct_kernels {
        ($fwd:ident, $ftile:ident, $dw:ident, $gtile:ident, $t:ty, $lanes:expr, $mask:ty,
         $zero:ident, $loadu:ident, $storeu:ident, $maskz_load:ident, $mask_store:ident, $set1:ident, $fmadd:ident,
         $reduce:ident) => {
            /// # Safety
            /// Rows i < R of A at `a + i * depth`, and for every j < depth the lanes
            /// selected by `masks` at `x + offs[j]` are readable; out writable at
            /// `out + i * ld + lane`; AVX-512F.
            #[target_feature(enable = "avx512f")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn $ftile<const R: usize>(
                depth: usize,
                a: *const $t,
                x: *const $t,
                offs: *const usize,
                out: *mut $t,
                ld: usize,
                masks: &[$mask; FNV],
            ) {
                const L: usize = $lanes;
                let mut acc = [[$zero(); FNV]; R];
                for j in 0..depth {
                    // SAFETY: the caller's contract.
                    let xj = unsafe { x.add(*offs.add(j)) };
                    let mut xv = [$zero(); FNV];
                    for (v, e) in xv.iter_mut().enumerate() {
                        *e = unsafe { $maskz_load(masks[v], xj.add(v * L)) };
                    }
                    for (i, row) in acc.iter_mut().enumerate() {
                        let av = $set1(unsafe { *a.add(i * depth + j) });
                        for (v, e) in row.iter_mut().enumerate() {
                            *e = $fmadd(av, xv[v], *e);
                        }
                    }
                }
                for (i, row) in acc.iter().enumerate() {
                    for (v, &e) in row.iter().enumerate() {
                        unsafe { $mask_store(out.wrapping_add(i * ld + v * L), masks[v], e) };
                    }
                }
            }

            /// out (m x wide) = a (m x depth) @ the implicit im2col (see `Direct`).
            ///
            /// # Safety
            /// a readable for m * depth, x readable at offs[j] + t for t < wide, out
            /// writable at i * ld + t (i < m, t < wide); AVX-512F.
            #[target_feature(enable = "avx512f")]
            #[allow(clippy::too_many_arguments)]
            pub(super) unsafe fn $fwd(
                m: usize,
                wide: usize,
                depth: usize,
                a: *const $t,
                x: *const $t,
                offs: *const usize,
                out: *mut $t,
                ld: usize,
            ) {
                const L: usize = $lanes;
                const W: usize = FNV * L;
                for t0 in (0..wide).step_by(W) {
                    let cols = (wide - t0).min(W);
                    let masks: [$mask; FNV] = std::array::from_fn(|v| {
                        let w = cols.saturating_sub(v * L);
                        if w >= L {
                            <$mask>::MAX
                        } else {
                            ((1u32 << w) - 1) as $mask
                        }
                    });
                    let xs = x.wrapping_add(t0);
                    let mut i0 = 0;
                    while i0 < m {
                        let r = (m - i0).min(FR);
                        let (ai, oi) = (a.wrapping_add(i0 * depth), out.wrapping_add(i0 * ld + t0));
                        // SAFETY: rows i0 .. i0 + r < m, positions t0 .. t0 + cols.
                        unsafe {
                            match r {
                                1 => $ftile::<1>(depth, ai, xs, offs, oi, ld, &masks),
                                2 => $ftile::<2>(depth, ai, xs, offs, oi, ld, &masks),
                                3 => $ftile::<3>(depth, ai, xs, offs, oi, ld, &masks),
                                4 => $ftile::<4>(depth, ai, xs, offs, oi, ld, &masks),
                                5 => $ftile::<5>(depth, ai, xs, offs, oi, ld, &masks),
                                6 => $ftile::<6>(depth, ai, xs, offs, oi, ld, &masks),
                                7 => $ftile::<7>(depth, ai, xs, offs, oi, ld, &masks),
                                _ => $ftile::<FR>(depth, ai, xs, offs, oi, ld, &masks),
                            }
                        }
                        i0 += r;
                    }
                }
            }

            /// acc[i][j] += sum over valid t of g[i * wide + t] * x[offs[j] + t], for
            /// i < RI, j < RJ.
            ///
            /// # Safety
            /// As `$dw` for the tile's rows.
            #[target_feature(enable = "avx512f")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn $gtile<const RI: usize, const RJ: usize>(
                wide: usize,
                g: *const $t,
                x: *const $t,
                offs: *const usize,
                vmask: &[$mask],
                acc: *mut $t,
                ldacc: usize,
            ) {
                const L: usize = $lanes;
                let mut s = [[$zero(); RJ]; RI];
                let xj: [*const $t; RJ] = std::array::from_fn(|j| unsafe { x.add(*offs.add(j)) });
                for (v, &mk) in vmask.iter().enumerate() {
                    let t = v * L;
                    let mut gv = [$zero(); RI];
                    for (i, e) in gv.iter_mut().enumerate() {
                        *e = unsafe { $maskz_load(mk, g.add(i * wide + t)) };
                    }
                    for j in 0..RJ {
                        let xv = unsafe { $maskz_load(mk, xj[j].add(t)) };
                        for i in 0..RI {
                            s[i][j] = $fmadd(gv[i], xv, s[i][j]);
                        }
                    }
                }
                for i in 0..RI {
                    for j in 0..RJ {
                        // SAFETY: element (i, j) of the tile.
                        unsafe { *acc.add(i * ldacc + j) += $reduce(s[i][j]) };
                    }
                }
            }

            /// acc (m x depth, row stride depth) += g (m x wide) @ im2col^T over the
            /// valid positions (t mod wp < ow).
            ///
            /// # Safety
            /// g readable for m * wide, x at offs[j] + t for t < wide, acc read/write
            /// for m * depth; AVX-512F.
            #[target_feature(enable = "avx512f")]
            #[allow(clippy::too_many_arguments)]
            pub(super) unsafe fn $dw(
                m: usize,
                wide: usize,
                wp: usize,
                ow: usize,
                depth: usize,
                g: *const $t,
                x: *const $t,
                offs: *const usize,
                acc: *mut $t,
            ) {
                const L: usize = $lanes;
                let vmask: Vec<$mask> = (0..wide.div_ceil(L))
                    .map(|v| {
                        let mut mk: $mask = 0;
                        for l in 0..L {
                            let t = v * L + l;
                            if t < wide && t % wp < ow {
                                mk |= 1 << l;
                            }
                        }
                        mk
                    })
                    .collect();
                macro_rules! rj {
                    ($ri:literal, $rj:expr, $gi:expr, $oj:expr, $ai:expr) => {
                        match $rj {
                            1 => $gtile::<$ri, 1>(wide, $gi, x, $oj, &vmask, $ai, depth),
                            2 => $gtile::<$ri, 2>(wide, $gi, x, $oj, &vmask, $ai, depth),
                            3 => $gtile::<$ri, 3>(wide, $gi, x, $oj, &vmask, $ai, depth),
                            4 => $gtile::<$ri, 4>(wide, $gi, x, $oj, &vmask, $ai, depth),
                            5 => $gtile::<$ri, 5>(wide, $gi, x, $oj, &vmask, $ai, depth),
                            _ => $gtile::<$ri, GJ>(wide, $gi, x, $oj, &vmask, $ai, depth),
                        }
                    };
                }
                let mut i0 = 0;
                while i0 < m {
                    let ri = (m - i0).min(GR);
                    let mut j0 = 0;
                    while j0 < depth {
                        let rjn = (depth - j0).min(GJ);
                        let gi = g.wrapping_add(i0 * wide);
                        let oj = offs.wrapping_add(j0);
                        let ai = acc.wrapping_add(i0 * depth + j0);
                        // SAFETY: rows i0 .. i0 + ri < m, columns j0 .. j0 + rjn < depth.
                        unsafe {
                            match ri {
                                1 => rj!(1, rjn, gi, oj, ai),
                                2 => rj!(2, rjn, gi, oj, ai),
                                3 => rj!(3, rjn, gi, oj, ai),
                                _ => rj!(4, rjn, gi, oj, ai),
                            }
                        }
                        j0 += rjn;
                    }
                    i0 += ri;
                }
            }
        };
    }

    direct_kernels!(
        fwd_f32,
        ftile_f32,
        dw_f32,
        gtile_f32,
        f32,
        16,
        __mmask16,
        _mm512_setzero_ps,
        _mm512_loadu_ps,
        _mm512_storeu_ps,
        _mm512_maskz_loadu_ps,
        _mm512_mask_storeu_ps,
        _mm512_set1_ps,
        _mm512_fmadd_ps,
        _mm512_reduce_add_ps
    );
    direct_kernels!(
        fwd_f64,
        ftile_f64,
        dw_f64,
        gtile_f64,
        f64,
        8,
        __mmask8,
        _mm512_setzero_pd,
        _mm512_loadu_pd,
        _mm512_storeu_pd,
        _mm512_maskz_loadu_pd,
        _mm512_mask_storeu_pd,
        _mm512_set1_pd,
        _mm512_fmadd_pd,
        _mm512_reduce_add_pd
    );

    macro_rules! dwo_kernels {
        ($dwo:ident, $otile:ident, $t:ty, $lanes:expr, $mask:ty, $zero:ident, $loadu:ident,
         $storeu:ident, $maskz_load:ident, $set1:ident, $fmadd:ident) => {
            /// acc[rb][s] (vectors at `vacc + (rb * KW + s) * L`) += sum over p < oh,
            /// q < ow of rows[rb][p * wp + q + s] * g[(p * ow + q) * ldg ..][mask]; rows
            /// rb >= nrows are computed on a repeated row and not stored.
            ///
            /// # Safety
            /// rows[rb] readable for oh * wp values (q + s < wp), g for oh * ow rows of
            /// ldg, vacc read/write for nrows * KW vectors; AVX-512F.
            #[target_feature(enable = "avx512f")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn $otile<const KW: usize, const RB: usize>(
                rows: [*const $t; RB],
                nrows: usize,
                wp: usize,
                oh: usize,
                ow: usize,
                g: *const $t,
                ldg: usize,
                mask: $mask,
                vacc: *mut $t,
            ) {
                const L: usize = $lanes;
                let mut acc = [[$zero(); KW]; RB];
                for rb in 0..nrows {
                    for s in 0..KW {
                        // SAFETY: vector (rb, s) of the tile.
                        acc[rb][s] = unsafe { $loadu(vacc.add((rb * KW + s) * L)) };
                    }
                }
                let mut gp = g;
                for p in 0..oh {
                    for q in 0..ow {
                        let t = p * wp + q;
                        // SAFETY: row p * ow + q of g, masked to the channels.
                        let gv = unsafe { $maskz_load(mask, gp) };
                        gp = gp.wrapping_add(ldg);
                        for rb in 0..RB {
                            for s in 0..KW {
                                let xv = $set1(unsafe { *rows[rb].add(t + s) });
                                acc[rb][s] = $fmadd(xv, gv, acc[rb][s]);
                            }
                        }
                    }
                }
                for rb in 0..nrows {
                    for s in 0..KW {
                        unsafe { $storeu(vacc.add((rb * KW + s) * L), acc[rb][s]) };
                    }
                }
            }

            /// vacc[(ob, j)] += sum over valid positions of x[offs(j) + t] * g[t][ob]
            /// for every o-vector ob and j = (c, r, s) (rows (c, r) numbered cr).
            ///
            /// # Safety
            /// See `direct_weight_product_o`; AVX-512F.
            #[target_feature(enable = "avx512f")]
            #[allow(clippy::too_many_arguments)]
            pub(super) unsafe fn $dwo(
                ncr: usize,
                hp: usize,
                kh: usize,
                kw: usize,
                wp: usize,
                oh: usize,
                ow: usize,
                k: usize,
                x: *const $t,
                g: *const $t,
                ldg: usize,
                vacc: *mut $t,
            ) {
                const L: usize = $lanes;
                let ckk = ncr * kw;
                let row = |cr: usize| x.wrapping_add((cr / kh) * hp * wp + (cr % kh) * wp);
                macro_rules! go {
                    ($kw:literal, $rb:literal) => {{
                        for ob in 0..k.div_ceil(L) {
                            let w = k - ob * L;
                            let mask = if w >= L {
                                <$mask>::MAX
                            } else {
                                ((1u32 << w) - 1) as $mask
                            };
                            let mut cr0 = 0;
                            while cr0 < ncr {
                                let nrows = (ncr - cr0).min($rb);
                                let rows: [*const $t; $rb] =
                                    std::array::from_fn(|i| row(cr0 + i.min(nrows - 1)));
                                // SAFETY: rows cr0 .. cr0 + nrows of the stack, channel
                                // vector ob of g, vectors (ob, cr0 * kw ..) of vacc.
                                unsafe {
                                    $otile::<$kw, $rb>(
                                        rows,
                                        nrows,
                                        wp,
                                        oh,
                                        ow,
                                        g.wrapping_add(ob * L),
                                        ldg,
                                        mask,
                                        vacc.wrapping_add((ob * ckk + cr0 * $kw) * L),
                                    )
                                };
                                cr0 += nrows;
                            }
                        }
                    }};
                }
                match kw {
                    1 => go!(1, 8),
                    2 => go!(2, 8),
                    3 => go!(3, 8),
                    4 => go!(4, 6),
                    5 => go!(5, 4),
                    6 => go!(6, 4),
                    _ => go!(7, 3),
                }
            }
        };
    }

    dwo_kernels!(
        dwo_f32,
        otile_f32,
        f32,
        16,
        __mmask16,
        _mm512_setzero_ps,
        _mm512_loadu_ps,
        _mm512_storeu_ps,
        _mm512_maskz_loadu_ps,
        _mm512_set1_ps,
        _mm512_fmadd_ps
    );
    dwo_kernels!(
        dwo_f64,
        otile_f64,
        f64,
        8,
        __mmask8,
        _mm512_setzero_pd,
        _mm512_loadu_pd,
        _mm512_storeu_pd,
        _mm512_maskz_loadu_pd,
        _mm512_set1_pd,
        _mm512_fmadd_pd
    );
}

// ------------------------------------------------------------------ input gradient

/// dx = the gradient of [`forward`] with respect to x, given gy (n, k, oh, ow) and w;
/// plus `bias[ci]` on every element of channel ci when given (then this is the transposed
/// convolution of gy). dx (n, c, h, w) is overwritten.
pub fn backward_input<T: Float>(
    g: &Conv2dGeom,
    gy: &[T],
    w: &[T],
    bias: Option<&[T]>,
    dx: &mut [T],
) -> Result<()> {
    g.validate(OP_DX)?;
    check_exact(OP_DX, "gy", g.y_len(), gy.len())?;
    check_exact(OP_DX, "weight", g.w_len(), w.len())?;
    check_exact(OP_DX, "dx", g.x_len(), dx.len())?;
    if let Some(b) = bias {
        check_exact(OP_DX, "bias", g.c, b.len())?;
    }
    if g.n == 0 {
        return Ok(());
    }
    if g.pointwise() {
        return backward_input_pointwise(g, gy, w, bias, dx);
    }
    if direct_dx_fits(g) {
        return direct_backward_input(g, gy, w, bias, dx);
    }
    if winograd_fits(g) && g.ph <= 2 && g.pw <= 2 {
        // dx = gy convolved with the flipped, channel-transposed kernel, padding 2 - p.
        let wz = Wino {
            n: g.n,
            groups: g.groups,
            cin: g.kg(),
            cout: g.cg(),
            h: g.oh,
            w: g.ow,
            oh: g.h,
            ow: g.w,
            ph: 2 - g.ph,
            pw: 2 - g.pw,
        };
        let (cg, kg) = (g.cg(), g.kg());
        let u = wino_weights(&wz, |gi, o, i, r, s| {
            w[((gi * kg + i) * cg + o) * 9 + (2 - r) * 3 + (2 - s)]
        });
        return wino_run(&wz, gy, &u, bias, dx);
    }
    let (cg, kg, ckk, kk) = (g.cg(), g.kg(), g.ckk(), g.kk());
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    let rb = g.rows_per_block();
    let nrb = g.oh.div_ceil(rb);
    let ncb = cg.div_ceil(DX_CHANNELS);
    let cbs = cg.div_ceil(ncb);
    let ws_len = cbs * kk * rb * g.ow;
    let dxp = SharedMut(dx.as_mut_ptr());
    let err = FirstErr::new();
    let tasks = g.n * g.groups * ncb;
    spin::run_tasks(tasks, threading::get_num_threads(), |t| {
        let img = t / (g.groups * ncb);
        let gi = (t / ncb) % g.groups;
        let c0 = (t % ncb) * cbs;
        let c1 = (c0 + cbs).min(cg);
        let nch = c1 - c0;
        let gyg = &gy[(img * g.k + gi * kg) * ohw..][..kg * ohw];
        let wg = &w[gi * kg * ckk..][..kg * ckk];
        // SAFETY: channels c0..c1 of group gi of image img lie inside dx (length checked)
        // and belong to this task only.
        let dxr = unsafe { dxp.slice((img * g.c + gi * cg + c0) * hw, nch * hw) };
        dxr.fill(T::ZERO);
        with_ws::<T, _>(ws_len, |dcol| {
            for bi in 0..nrb {
                let r0 = bi * rb;
                let r1 = (r0 + rb).min(g.oh);
                let ncols = (r1 - r0) * g.ow;
                let dcol = &mut dcol[..nch * kk * ncols];
                err.record(gemm::gemm(
                    true,
                    false,
                    nch * kk,
                    ncols,
                    kg,
                    T::ONE,
                    &wg[c0 * kk..],
                    ckk,
                    &gyg[r0 * g.ow..],
                    ohw,
                    T::ZERO,
                    dcol,
                    ncols,
                ));
                col2im(g, dcol, nch, r0, r1, dxr);
            }
        });
        if let Some(b) = bias {
            add_row_bias(dxr, hw, hw, &b[gi * cg + c0..]);
        }
    });
    err.into_result()
}

/// [`backward_input`] of a pointwise convolution: per (image, group, block of positions)
/// task, dx_block = W_g^T (cg x kg) @ gy_block into the workspace, copied out with the
/// bias (all channels of a task at once keep the GEMM's m = cg).
fn backward_input_pointwise<T: Float>(
    g: &Conv2dGeom,
    gy: &[T],
    w: &[T],
    bias: Option<&[T]>,
    dx: &mut [T],
) -> Result<()> {
    let (cg, kg) = (g.cg(), g.kg());
    let hw = g.h * g.w;
    if g.n * g.groups >= WHOLE_IMAGE_TASKS {
        // One task per (image, group), writing its contiguous part of dx directly.
        let dxp = SharedMut(dx.as_mut_ptr());
        let err = FirstErr::new();
        spin::run_tasks(g.n * g.groups, threading::get_num_threads(), |t| {
            let (img, gi) = (t / g.groups, t % g.groups);
            let gyg = &gy[(img * g.k + gi * kg) * hw..][..kg * hw];
            let wg = &w[gi * kg * cg..][..kg * cg];
            // SAFETY: channels gi * cg .. (gi + 1) * cg of image img lie inside dx (length
            // checked) and belong to this task only.
            let dxr = unsafe { dxp.slice((img * g.c + gi * cg) * hw, cg * hw) };
            for c0 in (0..hw).step_by(PW_COLS) {
                let nc = PW_COLS.min(hw - c0);
                err.record(gemm::gemm(
                    true,
                    false,
                    cg,
                    nc,
                    kg,
                    T::ONE,
                    wg,
                    cg,
                    &gyg[c0..],
                    hw,
                    T::ZERO,
                    &mut dxr[c0..],
                    hw,
                ));
                if let Some(b) = bias {
                    add_row_bias(&mut dxr[c0..], hw, nc, &b[gi * cg..]);
                }
            }
        });
        return err.into_result();
    }
    let rb = g.rows_per_block();
    let nrb = g.oh.div_ceil(rb);
    let ws_len = cg * rb * g.ow;
    let dxp = SharedMut(dx.as_mut_ptr());
    let err = FirstErr::new();
    spin::run_tasks(g.n * g.groups * nrb, threading::get_num_threads(), |t| {
        let img = t / (g.groups * nrb);
        let gi = (t / nrb) % g.groups;
        let r0 = (t % nrb) * rb;
        let r1 = (r0 + rb).min(g.oh);
        let ncols = (r1 - r0) * g.ow;
        let gyb = &gy[(img * g.k + gi * kg) * hw + r0 * g.ow..];
        let wg = &w[gi * kg * cg..][..kg * cg];
        with_ws::<T, _>(ws_len, |buf| {
            let buf = &mut buf[..cg * ncols];
            err.record(gemm::gemm(
                true,
                false,
                cg,
                ncols,
                kg,
                T::ONE,
                wg,
                cg,
                gyb,
                hw,
                T::ZERO,
                buf,
                ncols,
            ));
            for (ci, src) in buf.chunks_exact(ncols).enumerate() {
                let ch = gi * cg + ci;
                // SAFETY: (img, ch, positions r0 * ow .. r1 * ow) lies inside dx (length
                // checked) and belongs to this task only.
                let dst = unsafe { dxp.slice((img * g.c + ch) * hw + r0 * g.ow, ncols) };
                let bv = bias.map_or(T::ZERO, |b| b[ch]);
                for (d, &v) in dst.iter_mut().zip(src) {
                    *d = v + bv;
                }
            }
        });
    });
    err.into_result()
}

// ------------------------------------------------------------------ weight gradient

/// dw = the gradient of [`forward`] with respect to w (k, c / groups, kh, kw), given x and
/// gy; overwritten.
pub fn backward_weight<T: Float>(g: &Conv2dGeom, x: &[T], gy: &[T], dw: &mut [T]) -> Result<()> {
    g.validate(OP_DW)?;
    check_exact(OP_DW, "x", g.x_len(), x.len())?;
    check_exact(OP_DW, "gy", g.y_len(), gy.len())?;
    check_exact(OP_DW, "dw", g.w_len(), dw.len())?;
    if g.n == 0 {
        dw.fill(T::ZERO);
        return Ok(());
    }
    if winograd_fits(g) {
        let wz = Wino {
            n: g.n,
            groups: g.groups,
            cin: g.cg(),
            cout: g.kg(),
            h: g.h,
            w: g.w,
            oh: g.oh,
            ow: g.ow,
            ph: g.ph,
            pw: g.pw,
        };
        return wino_weight_grad(&wz, x, gy, dw);
    }
    if direct_fits(g) && direct_dwo_fits::<T>(g) && g.ckk() <= DIRECT_MAX_DW / 16 {
        return direct_backward_weight_o(g, x, gy, dw);
    }
    if direct_fits(g) {
        return direct_backward_weight(g, x, gy, dw);
    }
    let (cg, kg, ckk) = (g.cg(), g.kg(), g.ckk());
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    let rb = g.rows_per_block();
    let nrb = g.oh.div_ceil(rb);
    let pointwise = g.pointwise();
    let units = g.n * nrb;
    let chunks = dw_chunks(units, g.w_len());
    let wg_len = kg * ckk;
    let ws_len = if pointwise { 0 } else { ckk * rb * g.ow };
    // Partial sums: chunk 0 of every group goes straight into dw.
    let mut partials = vec![T::ZERO; (chunks - 1) * g.groups * wg_len];
    let dwp = SharedMut(dw.as_mut_ptr());
    let pp = SharedMut(partials.as_mut_ptr());
    let err = FirstErr::new();
    spin::run_tasks(g.groups * chunks, threading::get_num_threads(), |t| {
        let gi = t / chunks;
        let ch = t % chunks;
        // SAFETY: each (group, chunk) owns one wg_len region: chunk 0 the group's rows of
        // dw, chunk j > 0 partial slot (j - 1) * groups + gi; all within their buffers.
        let acc = unsafe {
            if ch == 0 {
                dwp.slice(gi * wg_len, wg_len)
            } else {
                pp.slice(((ch - 1) * g.groups + gi) * wg_len, wg_len)
            }
        };
        let (u0, u1) = (ch * units / chunks, (ch + 1) * units / chunks);
        with_ws::<T, _>(ws_len, |col| {
            for u in u0..u1 {
                let img = u / nrb;
                let r0 = (u % nrb) * rb;
                let r1 = (r0 + rb).min(g.oh);
                let ncols = (r1 - r0) * g.ow;
                let xg = &x[(img * g.c + gi * cg) * hw..][..cg * hw];
                let gyb = &gy[(img * g.k + gi * kg) * ohw + r0 * g.ow..];
                let beta = if u == u0 { T::ZERO } else { T::ONE };
                let r = if pointwise {
                    gemm::gemm(
                        false,
                        true,
                        kg,
                        ckk,
                        ncols,
                        T::ONE,
                        gyb,
                        ohw,
                        &xg[r0 * g.ow..],
                        hw,
                        beta,
                        acc,
                        ckk,
                    )
                } else {
                    let col = &mut col[..ckk * ncols];
                    im2col(g, xg, r0, r1, col);
                    gemm::gemm(
                        false,
                        true,
                        kg,
                        ckk,
                        ncols,
                        T::ONE,
                        gyb,
                        ohw,
                        col,
                        ncols,
                        beta,
                        acc,
                        ckk,
                    )
                };
                err.record(r);
            }
        });
    });
    err.into_result()?;
    // dw += partials, chunk by chunk in order (element blocks in parallel).
    if chunks > 1 {
        const BLK: usize = 4096;
        let total = g.groups * wg_len;
        let dwp = SharedMut(dw.as_mut_ptr());
        let partials = &partials;
        spin::run_tasks(total.div_ceil(BLK), threading::get_num_threads(), |t| {
            let e0 = t * BLK;
            let e1 = (e0 + BLK).min(total);
            // SAFETY: element block e0..e1 of dw belongs to this task only.
            let d = unsafe { dwp.slice(e0, e1 - e0) };
            for p in partials.chunks_exact(total) {
                for (o, &v) in d.iter_mut().zip(&p[e0..e1]) {
                    *o += v;
                }
            }
        });
    }
    Ok(())
}

// ------------------------------------------------------------------ bias gradient

/// db[o] = sum over images (in order) and positions of gy[i, o, :]; gy (n, k, hw).
pub fn bias_grad<T: Float>(gy: &[T], n: usize, k: usize, hw: usize, db: &mut [T]) -> Result<()> {
    check_exact(OP_DB, "gy", checked_product(OP_DB, &[n, k, hw])?, gy.len())?;
    check_exact(OP_DB, "db", k, db.len())?;
    const CH: usize = 8;
    let dbp = SharedMut(db.as_mut_ptr());
    spin::run_tasks(k.div_ceil(CH), threading::get_num_threads(), |t| {
        let o0 = t * CH;
        let o1 = (o0 + CH).min(k);
        // SAFETY: channels o0..o1 of db belong to this task only.
        let d = unsafe { dbp.slice(o0, o1 - o0) };
        for (j, o) in (o0..o1).enumerate() {
            let mut total = T::ZERO;
            for i in 0..n {
                total += sum8(&gy[(i * k + o) * hw..][..hw]);
            }
            d[j] = total;
        }
    });
    Ok(())
}

/// Sum of a slice with 8 interleaved accumulators (fixed order).
fn sum8<T: Float>(a: &[T]) -> T {
    let mut acc = [T::ZERO; 8];
    let mut it = a.chunks_exact(8);
    for c in &mut it {
        for (s, &v) in acc.iter_mut().zip(c) {
            *s += v;
        }
    }
    let mut tail = T::ZERO;
    for &v in it.remainder() {
        tail += v;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

// ------------------------------------------------------------------ Winograd F(2x2, 3x3)

/// Tiles (2 x 2 outputs each) per Winograd task, about.
const WINO_TILES: usize = 128;

/// The layout of one Winograd convolution: x (n, groups * cin, h, w) -> y (n, groups *
/// cout, oh, ow), y[p][q] = sum over (i, r, s) of u[o, i, r, s] x[i, p - ph + r, q - pw + s]
/// (3 x 3 kernel, stride 1, no dilation).
#[derive(Clone, Copy)]
struct Wino {
    n: usize,
    groups: usize,
    cin: usize,
    cout: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    ph: usize,
    pw: usize,
}

/// Whether a geometry runs as Winograd F(2x2, 3x3): 3x3, stride 1, no dilation, and enough
/// channels for the transforms to pay off.
fn winograd_fits(g: &Conv2dGeom) -> bool {
    g.kh == 3
        && g.kw == 3
        && g.sh == 1
        && g.sw == 1
        && g.dh == 1
        && g.dw == 1
        && g.cg() >= 16
        && g.kg() >= 16
        && g.oh >= 4
        && g.ow >= 4
}

/// The transformed weights G g G^T: (groups, 16, cout, cin), from `wv(group, o, i, r, s)`.
fn wino_weights<T: Float>(
    wz: &Wino,
    wv: impl Fn(usize, usize, usize, usize, usize) -> T,
) -> Vec<T> {
    let half = T::from_f64(0.5);
    let (co, ci) = (wz.cout, wz.cin);
    let mut u = vec![T::ZERO; wz.groups * 16 * co * ci];
    for gi in 0..wz.groups {
        for o in 0..co {
            for i in 0..ci {
                let k = |r: usize, s: usize| wv(gi, o, i, r, s);
                // G g: 4 x 3.
                let col = |s: usize| {
                    let (a, b, c) = (k(0, s), k(1, s), k(2, s));
                    [a, (a + b + c) * half, (a - b + c) * half, c]
                };
                let cols = [col(0), col(1), col(2)];
                let gg: [[T; 3]; 4] = std::array::from_fn(|a| [cols[0][a], cols[1][a], cols[2][a]]);
                for (a, row) in gg.iter().enumerate() {
                    let v = [
                        row[0],
                        (row[0] + row[1] + row[2]) * half,
                        (row[0] - row[1] + row[2]) * half,
                        row[2],
                    ];
                    for (b, &val) in v.iter().enumerate() {
                        u[((gi * 16 + a * 4 + b) * co + o) * ci + i] = val;
                    }
                }
            }
        }
    }
    u
}

/// y = Winograd convolution of x with transformed weights u, plus bias per output channel.
fn wino_run<T: Float>(wz: &Wino, x: &[T], u: &[T], bias: Option<&[T]>, y: &mut [T]) -> Result<()> {
    let (ci, co) = (wz.cin, wz.cout);
    let (th, tw) = (wz.oh.div_ceil(2), wz.ow.div_ceil(2));
    let trb = {
        let target = (wino_tiles(ci, co) / tw).clamp(1, th);
        th.div_ceil(th.div_ceil(target))
    };
    let ntr = th.div_ceil(trb);
    let (hw, ohw) = (wz.h * wz.w, wz.oh * wz.ow);
    let max_nt = trb * tw;
    let te = tw + 1;
    let ws_len = 16 * ci * max_nt + 16 * co * max_nt + 18 * te + 8 * tw;
    let yp = SharedMut(y.as_mut_ptr());
    let err = FirstErr::new();
    spin::run_tasks(wz.n * wz.groups * ntr, threading::get_num_threads(), |t| {
        let img = t / (wz.groups * ntr);
        let gi = (t / ntr) % wz.groups;
        let tr0 = (t % ntr) * trb;
        let tr1 = (tr0 + trb).min(th);
        let nt = (tr1 - tr0) * tw;
        let xg = &x[(img * wz.groups + gi) * ci * hw..][..ci * hw];
        let ug = &u[gi * 16 * co * ci..][..16 * co * ci];
        with_ws::<T, _>(ws_len, |ws| {
            let (v, rest) = ws.split_at_mut(16 * ci * max_nt);
            let (m, rest) = rest.split_at_mut(16 * co * max_nt);
            let (eo, yt) = rest.split_at_mut(18 * te);
            let v = &mut v[..16 * ci * nt];
            let m = &mut m[..16 * co * nt];
            wino_input_transform(wz, xg, tr0, tr1, v, eo);
            // 16 GEMMs: M[xi] (co x nt) = U[xi] (co x ci) @ V[xi] (ci x nt).
            for xi in 0..16 {
                err.record(gemm::gemm(
                    false,
                    false,
                    co,
                    nt,
                    ci,
                    T::ONE,
                    &ug[xi * co * ci..][..co * ci],
                    ci,
                    &v[xi * ci * nt..][..ci * nt],
                    nt,
                    T::ZERO,
                    &mut m[xi * co * nt..][..co * nt],
                    nt,
                ));
            }
            // Output transform: Y = A^T M A per tile, written with the bias.
            let mut tmp = yt.chunks_exact_mut(tw);
            let mut next = || tmp.next().unwrap_or_default();
            let s0: [&mut [T]; 4] = [next(), next(), next(), next()];
            let s1: [&mut [T]; 4] = [next(), next(), next(), next()];
            for o in 0..co {
                let ch = gi * co + o;
                let bv = bias.map_or(T::ZERO, |b| b[ch]);
                for ti in tr0..tr1 {
                    let base = (ti - tr0) * tw;
                    let mm = |xi: usize| &m[(xi * co + o) * nt + base..][..tw];
                    for bb in 0..4 {
                        vadd3(s0[bb], mm(bb), mm(4 + bb), mm(8 + bb));
                        vsub3(s1[bb], mm(4 + bb), mm(8 + bb), mm(12 + bb));
                    }
                    for dr in 0..2 {
                        let p = 2 * ti + dr;
                        if p >= wz.oh {
                            break;
                        }
                        let sr = if dr == 0 { &s0 } else { &s1 };
                        let (q0, q1, q2, q3) = (&*sr[0], &*sr[1], &*sr[2], &*sr[3]);
                        // SAFETY: output row p of channel ch of image img lies inside y
                        // (lengths checked by the caller) and belongs to this task only
                        // (tasks differ in image, group or tile rows).
                        let row = unsafe {
                            yp.slice((img * wz.groups * co + ch) * ohw + p * wz.ow, wz.ow)
                        };
                        let mut pairs = row.chunks_exact_mut(2);
                        let it = (&mut pairs).zip(q0).zip(q1).zip(q2).zip(q3);
                        for ((((d, &a0), &a1), &a2), &a3) in it {
                            d[0] = a0 + a1 + a2 + bv;
                            d[1] = a1 - a2 - a3 + bv;
                        }
                        if let [last] = pairs.into_remainder() {
                            *last = q0[tw - 1] + q1[tw - 1] + q2[tw - 1] + bv;
                        }
                    }
                }
            }
        });
    });
    err.into_result()
}

/// V[xi][c][tile] = (B^T d B)[xi] for the tiles of tile rows tr0..tr1 (all tile columns)
/// of the cin channels `xg` of one image; `eo` is scratch of 18 (tw + 1) elements.
fn wino_input_transform<T: Float>(
    wz: &Wino,
    xg: &[T],
    tr0: usize,
    tr1: usize,
    v: &mut [T],
    eo: &mut [T],
) {
    let ci = wz.cin;
    let tw = wz.ow.div_ceil(2);
    let te = tw + 1;
    let hw = wz.h * wz.w;
    let nt = (tr1 - tr0) * tw;
    // Input transform: V[xi][c][tile] = (B^T d B)[xi], vectorised over the tiles
    // of a tile row (even / odd input columns in separate arrays).
    for c in 0..ci {
        let xc = &xg[c * hw..][..hw];
        for ti in tr0..tr1 {
            let base = (ti - tr0) * tw;
            let (rows, rest) = eo.split_at_mut(8 * te);
            let (trows, prow) = rest.split_at_mut(8 * te);
            wino_input_rows(wz, xc, ti, te, rows, &mut prow[..2 * te]);
            for par in 0..2 {
                let r = |i: usize| &rows[(i * 2 + par) * te..][..te];
                let (r0, r1, r2, r3) = (r(0), r(1), r(2), r(3));
                let mut t = trows.chunks_exact_mut(te).skip(par).step_by(2);
                if let (Some(t0), Some(t1), Some(t2), Some(t3)) =
                    (t.next(), t.next(), t.next(), t.next())
                {
                    vsub(t0, r0, r2);
                    vadd(t1, r1, r2);
                    vsub(t2, r2, r1);
                    vsub(t3, r1, r3);
                }
            }
            for a in 0..4 {
                let e = &trows[(a * 2) * te..][..te];
                let o = &trows[(a * 2 + 1) * te..][..te];
                let dst = |b: usize| {
                    let off = ((a * 4 + b) * ci + c) * nt + base;
                    off..off + tw
                };
                let r0 = dst(0);
                vsub(&mut v[r0], &e[..tw], &e[1..]);
                let r1 = dst(1);
                vadd(&mut v[r1], &o[..tw], &e[1..]);
                let r2 = dst(2);
                vsub(&mut v[r2], &e[1..], &o[..tw]);
                let r3 = dst(3);
                vsub(&mut v[r3], &o[..tw], &o[1..]);
            }
        }
    }
}

/// dw of a Winograd-shaped convolution: per (group, chunk) task, the sum over the chunk's
/// (image, tile-row block) units of the 16 GEMMs dU[xi] += (A dY A^T)[xi] (k x tiles) @
/// V[xi]^T (tiles x c); chunk partials added in chunk order, then dw = G^T dU G.
fn wino_weight_grad<T: Float>(wz: &Wino, x: &[T], gy: &[T], dw: &mut [T]) -> Result<()> {
    let (ci, co) = (wz.cin, wz.cout);
    let (th, tw) = (wz.oh.div_ceil(2), wz.ow.div_ceil(2));
    let trb = {
        let target = (wino_tiles(ci, co) / tw).clamp(1, th);
        th.div_ceil(th.div_ceil(target))
    };
    let ntr = th.div_ceil(trb);
    let (hw, ohw) = (wz.h * wz.w, wz.oh * wz.ow);
    let max_nt = trb * tw;
    let te = tw + 1;
    let units = wz.n * ntr;
    let chunks = dw_chunks(units, wz.groups * 16 * co * ci);
    let du_len = 16 * co * ci;
    let ws_len = 16 * ci * max_nt + 16 * co * max_nt + 18 * te + 12 * tw;
    let mut partials = vec![T::ZERO; chunks * wz.groups * du_len];
    let pp = SharedMut(partials.as_mut_ptr());
    let err = FirstErr::new();
    spin::run_tasks(wz.groups * chunks, threading::get_num_threads(), |t| {
        let gi = t / chunks;
        let ch = t % chunks;
        // SAFETY: slot (ch, gi) of the partials belongs to this task only.
        let acc = unsafe { pp.slice((ch * wz.groups + gi) * du_len, du_len) };
        let (u0, u1) = (ch * units / chunks, (ch + 1) * units / chunks);
        with_ws::<T, _>(ws_len, |ws| {
            let (v, rest) = ws.split_at_mut(16 * ci * max_nt);
            let (gt, rest) = rest.split_at_mut(16 * co * max_nt);
            let (eo, sc) = rest.split_at_mut(18 * te);
            for u in u0..u1 {
                let img = u / ntr;
                let tr0 = (u % ntr) * trb;
                let tr1 = (tr0 + trb).min(th);
                let nt = (tr1 - tr0) * tw;
                let xg = &x[(img * wz.groups + gi) * ci * hw..][..ci * hw];
                let gyg = &gy[(img * wz.groups + gi) * co * ohw..][..co * ohw];
                let v = &mut v[..16 * ci * nt];
                let gt = &mut gt[..16 * co * nt];
                wino_input_transform(wz, xg, tr0, tr1, v, eo);
                wino_grad_transform(wz, gyg, tr0, tr1, gt, sc);
                let beta = if u == u0 { T::ZERO } else { T::ONE };
                for xi in 0..16 {
                    err.record(gemm::gemm(
                        false,
                        true,
                        co,
                        ci,
                        nt,
                        T::ONE,
                        &gt[xi * co * nt..][..co * nt],
                        nt,
                        &v[xi * ci * nt..][..ci * nt],
                        nt,
                        beta,
                        &mut acc[xi * co * ci..][..co * ci],
                        ci,
                    ));
                }
            }
        });
    });
    err.into_result()?;
    // dU = partials summed in chunk order; dw[o, i] = G^T dU[o, i] G.
    let (first, rest) = partials.split_at_mut(wz.groups * du_len);
    for p in rest.chunks_exact(wz.groups * du_len) {
        for (a, &b) in first.iter_mut().zip(p) {
            *a += b;
        }
    }
    let half = T::from_f64(0.5);
    // G^T applied to a 4-vector.
    let gt3 = |u: [T; 4]| {
        [
            u[0] + (u[1] + u[2]) * half,
            (u[1] - u[2]) * half,
            (u[1] + u[2]) * half + u[3],
        ]
    };
    for gi in 0..wz.groups {
        let du = &first[gi * du_len..][..du_len];
        for o in 0..co {
            for i in 0..ci {
                let at = |xi: usize| du[(xi * co + o) * ci + i];
                // Rows: G^T over a for each b; then columns.
                let cols: [[T; 3]; 4] =
                    std::array::from_fn(|b| gt3([at(b), at(4 + b), at(8 + b), at(12 + b)]));
                let dst = &mut dw[((gi * co + o) * ci + i) * 9..][..9];
                for r in 0..3 {
                    let row = gt3([cols[0][r], cols[1][r], cols[2][r], cols[3][r]]);
                    dst[r * 3..r * 3 + 3].copy_from_slice(&row);
                }
            }
        }
    }
    Ok(())
}

/// GT[xi][o][tile] = (A m A^T)[xi] of the 2x2 output-gradient tiles m of tile rows
/// tr0..tr1 (zero beyond the output); `sc` is scratch of 12 tw elements.
fn wino_grad_transform<T: Float>(
    wz: &Wino,
    gyg: &[T],
    tr0: usize,
    tr1: usize,
    gt: &mut [T],
    sc: &mut [T],
) {
    let co = wz.cout;
    let tw = wz.ow.div_ceil(2);
    let ohw = wz.oh * wz.ow;
    let nt = (tr1 - tr0) * tw;
    let (rows, st) = sc.split_at_mut(4 * tw);
    for o in 0..co {
        let go = &gyg[o * ohw..][..ohw];
        for ti in tr0..tr1 {
            let base = (ti - tr0) * tw;
            // rows: (dr * 2 + par) * tw, even / odd columns of output rows 2 ti + dr.
            for (dr, eo) in rows.chunks_exact_mut(2 * tw).enumerate() {
                let (e, od) = eo.split_at_mut(tw);
                let p = 2 * ti + dr;
                if p >= wz.oh {
                    e.fill(T::ZERO);
                    od.fill(T::ZERO);
                    continue;
                }
                let src = &go[p * wz.ow..][..wz.ow];
                let mut pairs = src.chunks_exact(2);
                for ((pair, ev), ov) in (&mut pairs).zip(e.iter_mut()).zip(od.iter_mut()) {
                    *ev = pair[0];
                    *ov = pair[1];
                }
                if let [last] = pairs.remainder() {
                    e[tw - 1] = *last;
                    od[tw - 1] = T::ZERO;
                }
            }
            // Row stage (over the two output rows): m0, m0 + m1, m0 - m1, -m1.
            for par in 0..2 {
                let m0 = &rows[par * tw..][..tw];
                let m1 = &rows[(2 + par) * tw..][..tw];
                let mut t = st.chunks_exact_mut(tw).skip(par).step_by(2);
                if let (Some(t0), Some(t1), Some(t2), Some(t3)) =
                    (t.next(), t.next(), t.next(), t.next())
                {
                    t0.copy_from_slice(m0);
                    vadd(t1, m0, m1);
                    vsub(t2, m0, m1);
                    for (d, &b) in t3.iter_mut().zip(m1) {
                        *d = -b;
                    }
                }
            }
            // Column stage: e, e + o, e - o, -o.
            for a in 0..4 {
                let e = &st[(a * 2) * tw..][..tw];
                let od = &st[(a * 2 + 1) * tw..][..tw];
                let at = |b: usize| {
                    let off = ((a * 4 + b) * co + o) * nt + base;
                    off..off + tw
                };
                gt[at(0)].copy_from_slice(e);
                vadd(&mut gt[at(1)], e, od);
                vsub(&mut gt[at(2)], e, od);
                for (d, &b) in gt[at(3)].iter_mut().zip(od) {
                    *d = -b;
                }
            }
        }
    }
}

/// The 4 input rows of tile row `ti`, split into even and odd columns:
/// `rows[(i * 2 + par) * te + j] = x[2 ti - ph + i][2 j + par - pw]` (zero outside the
/// image). `prow` (2 te elements) is scratch for one zero-padded row.
fn wino_input_rows<T: Float>(
    wz: &Wino,
    xc: &[T],
    ti: usize,
    te: usize,
    rows: &mut [T],
    prow: &mut [T],
) {
    for (i, eo) in rows.chunks_exact_mut(2 * te).take(4).enumerate() {
        let (e, o) = eo.split_at_mut(te);
        let ih = (2 * ti + i) as isize - wz.ph as isize;
        if ih < 0 || ih >= wz.h as isize {
            e.fill(T::ZERO);
            o.fill(T::ZERO);
            continue;
        }
        let src = &xc[ih as usize * wz.w..][..wz.w];
        // prow[t] = src[t - pw] inside the image, else 0.
        let lead = wz.pw.min(prow.len());
        prow[..lead].fill(T::ZERO);
        let n = src.len().min(prow.len() - lead);
        prow[lead..lead + n].copy_from_slice(&src[..n]);
        prow[lead + n..].fill(T::ZERO);
        for ((pair, ev), ov) in prow.chunks_exact(2).zip(e.iter_mut()).zip(o.iter_mut()) {
            *ev = pair[0];
            *ov = pair[1];
        }
    }
}

fn vadd<T: Float>(out: &mut [T], a: &[T], b: &[T]) {
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = x + y;
    }
}

fn vsub<T: Float>(out: &mut [T], a: &[T], b: &[T]) {
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = x - y;
    }
}

/// out = a + b + c (left to right).
fn vadd3<T: Float>(out: &mut [T], a: &[T], b: &[T], c: &[T]) {
    for (((o, &x), &y), &z) in out.iter_mut().zip(a).zip(b).zip(c) {
        *o = x + y + z;
    }
}

/// out = a - b - c (left to right).
fn vsub3<T: Float>(out: &mut [T], a: &[T], b: &[T], c: &[T]) {
    for (((o, &x), &y), &z) in out.iter_mut().zip(a).zip(b).zip(c) {
        *o = x - y - z;
    }
}

/// Adds `bias[r]` to the first `ncols` entries of row `r` of `rows` (row stride `ld`), for
/// as many rows as both hold.
fn add_row_bias<T: Float>(rows: &mut [T], ld: usize, ncols: usize, bias: &[T]) {
    for (row, &bv) in rows.chunks_mut(ld).zip(bias) {
        for v in &mut row[..ncols] {
            *v += bv;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(g: &Conv2dGeom, x: &[f64], w: &[f64]) -> Vec<f64> {
        let (cg, kg) = (g.c / g.groups, g.k / g.groups);
        let mut y = vec![0.0; g.y_len()];
        for i in 0..g.n {
            for o in 0..g.k {
                let gi = o / kg;
                for p in 0..g.oh {
                    for q in 0..g.ow {
                        let mut s = 0.0;
                        for ci in 0..cg {
                            for r in 0..g.kh {
                                for t in 0..g.kw {
                                    let ih = (p * g.sh + r * g.dh) as isize - g.ph as isize;
                                    let iw = (q * g.sw + t * g.dw) as isize - g.pw as isize;
                                    if ih < 0 || iw < 0 || ih >= g.h as isize || iw >= g.w as isize
                                    {
                                        continue;
                                    }
                                    let xv = x[((i * g.c + gi * cg + ci) * g.h + ih as usize)
                                        * g.w
                                        + iw as usize];
                                    s += w[((o * cg + ci) * g.kh + r) * g.kw + t] * xv;
                                }
                            }
                        }
                        y[((i * g.k + o) * g.oh + p) * g.ow + q] = s;
                    }
                }
            }
        }
        y
    }

    fn geom() -> Conv2dGeom {
        let (h, w, kh, kw, sh, sw, ph, pw, dh, dw) = (7, 6, 3, 2, 2, 1, 1, 2, 1, 2);
        Conv2dGeom {
            n: 2,
            c: 4,
            h,
            w,
            k: 6,
            kh,
            kw,
            sh,
            sw,
            ph,
            pw,
            dh,
            dw,
            groups: 2,
            oh: out_size(h, ph, ph, kh, sh, dh).unwrap(),
            ow: out_size(w, pw, pw, kw, sw, dw).unwrap(),
        }
    }

    fn data(len: usize, seed: u64) -> Vec<f64> {
        let mut s = seed;
        (0..len)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 11) as f64 / (1u64 << 53) as f64) - 0.5
            })
            .collect()
    }

    #[test]
    fn forward_matches_naive_and_adjoints_hold() {
        let g = geom();
        let x = data(g.x_len(), 1);
        let w = data(g.w_len(), 2);
        let mut y = vec![0.0; g.y_len()];
        forward(&g, &x, &w, None, &mut y).unwrap();
        let r = naive(&g, &x, &w);
        for (a, b) in y.iter().zip(&r) {
            assert!((a - b).abs() < 1e-12);
        }
        // <gy, conv(x)> = <dx(gy), x> = <dw(gy, x), w>.
        let gy = data(g.y_len(), 3);
        let mut dx = vec![0.0; g.x_len()];
        backward_input(&g, &gy, &w, None, &mut dx).unwrap();
        let mut dwv = vec![0.0; g.w_len()];
        backward_weight(&g, &x, &gy, &mut dwv).unwrap();
        let lhs: f64 = gy.iter().zip(&y).map(|(a, b)| a * b).sum();
        let r1: f64 = dx.iter().zip(&x).map(|(a, b)| a * b).sum();
        let r2: f64 = dwv.iter().zip(&w).map(|(a, b)| a * b).sum();
        assert!((lhs - r1).abs() < 1e-10 && (lhs - r2).abs() < 1e-10);
    }

    #[test]
    fn winograd_matches_naive_and_adjoint() {
        for (h, w, ph, pw, groups) in [(7, 9, 1, 1, 1), (6, 5, 0, 2, 2), (9, 6, 2, 0, 1)] {
            let g = Conv2dGeom {
                n: 2,
                c: 16 * groups,
                h,
                w,
                k: 18 * groups,
                kh: 3,
                kw: 3,
                sh: 1,
                sw: 1,
                ph,
                pw,
                dh: 1,
                dw: 1,
                groups,
                oh: out_size(h, ph, ph, 3, 1, 1).unwrap(),
                ow: out_size(w, pw, pw, 3, 1, 1).unwrap(),
            };
            assert!(winograd_fits(&g));
            let x = data(g.x_len(), 4);
            let wt = data(g.w_len(), 5);
            let mut y = vec![0.0; g.y_len()];
            forward(&g, &x, &wt, None, &mut y).unwrap();
            let r = naive(&g, &x, &wt);
            for (a, b) in y.iter().zip(&r) {
                assert!((a - b).abs() < 1e-12, "{a} vs {b}");
            }
            let gy = data(g.y_len(), 6);
            let mut dx = vec![0.0; g.x_len()];
            backward_input(&g, &gy, &wt, None, &mut dx).unwrap();
            let mut dwv = vec![0.0; g.w_len()];
            backward_weight(&g, &x, &gy, &mut dwv).unwrap();
            let rw: f64 = dwv.iter().zip(&wt).map(|(a, b)| a * b).sum();
            let lhs: f64 = gy.iter().zip(&y).map(|(a, b)| a * b).sum();
            assert!(
                (lhs - rw).abs() < 1e-9 * lhs.abs().max(1.0),
                "{lhs} vs {rw}"
            );
            let rhs: f64 = dx.iter().zip(&x).map(|(a, b)| a * b).sum();
            assert!(
                (lhs - rhs).abs() < 1e-9 * lhs.abs().max(1.0),
                "{lhs} vs {rhs}"
            );
        }
    }

    /// The direct (small-convolution) kernels against the naive sum and the adjoint
    /// identities, f64 and f32 (skipped without AVX-512, where they never run).
    #[test]
    fn direct_paths_match_naive_and_adjoints() {
        if crate::simd::level() != crate::simd::Level::Avx512 {
            return;
        }
        // (n, c, k, h, w, kh, kw, ph, pw, oh - natural): LeNet's two layers, K below and
        // above half a vector, kernel widths 1..7, asymmetric padding.
        for &(n, c, k, h, w, kh, kw, ph, pw, extra) in &[
            (3, 1, 6, 28, 28, 5, 5, 2, 2, 0),
            (5, 6, 16, 14, 14, 5, 5, 0, 0, 0),
            (2, 3, 9, 9, 11, 3, 2, 1, 0, 0),
            (2, 2, 20, 6, 7, 2, 4, 0, 1, 1),
            (1, 5, 17, 8, 8, 1, 3, 0, 1, 0),
            (2, 2, 4, 9, 12, 2, 7, 1, 3, 0),
        ] {
            let g = Conv2dGeom {
                n,
                c,
                h,
                w,
                k,
                kh,
                kw,
                sh: 1,
                sw: 1,
                ph,
                pw,
                dh: 1,
                dw: 1,
                groups: 1,
                oh: out_size(h, ph, ph, kh, 1, 1).unwrap() - extra,
                ow: out_size(w, pw, pw, kw, 1, 1).unwrap(),
            };
            assert!(direct_fits(&g), "{g:?}");
            let x = data(g.x_len(), 7);
            let wt = data(g.w_len(), 8);
            let gy = data(g.y_len(), 9);
            let mut y = vec![0.0; g.y_len()];
            direct_forward(&g, &x, &wt, None, &mut y).unwrap();
            for (a, b) in y.iter().zip(&naive(&g, &x, &wt)) {
                assert!((a - b).abs() < 1e-12, "{g:?}: {a} vs {b}");
            }
            let lhs: f64 = gy.iter().zip(&y).map(|(a, b)| a * b).sum();
            let close = |v: f64| (lhs - v).abs() < 1e-10 * lhs.abs().max(1.0);
            if direct_dx_fits(&g) {
                let mut dx = vec![0.0; g.x_len()];
                direct_backward_input(&g, &gy, &wt, None, &mut dx).unwrap();
                let r: f64 = dx.iter().zip(&x).map(|(a, b)| a * b).sum();
                assert!(close(r), "{g:?} dx: {lhs} vs {r}");
            }
            let mut dw1 = vec![0.0; g.w_len()];
            direct_backward_weight(&g, &x, &gy, &mut dw1).unwrap();
            let mut dw2 = vec![0.0; g.w_len()];
            direct_backward_weight_o(&g, &x, &gy, &mut dw2).unwrap();
            for dwv in [&dw1, &dw2] {
                let r: f64 = dwv.iter().zip(&wt).map(|(a, b)| a * b).sum();
                assert!(close(r), "{g:?} dw: {lhs} vs {r}");
            }
            for (a, b) in dw1.iter().zip(&dw2) {
                assert!((a - b).abs() < 1e-12, "{g:?}: {a} vs {b}");
            }
            // f32: within rounding of the f64 results.
            let f = |v: &[f64]| v.iter().map(|&e| e as f32).collect::<Vec<f32>>();
            let (x32, w32, gy32) = (f(&x), f(&wt), f(&gy));
            let mut y32 = vec![0f32; g.y_len()];
            direct_forward(&g, &x32, &w32, None, &mut y32).unwrap();
            let mut d32 = vec![0f32; g.w_len()];
            direct_backward_weight_o(&g, &x32, &gy32, &mut d32).unwrap();
            for (a, b) in y32.iter().zip(&y).chain(d32.iter().zip(&dw1)) {
                assert!(
                    (*a as f64 - b).abs() < 1e-4 * (1.0 + b.abs()),
                    "{g:?}: {a} vs {b}"
                );
            }
        }
    }

    /// The unpacked pointwise product gives the bits of the GEMM plus the bias.
    #[test]
    fn pointwise_product_matches_gemm_bitwise() {
        for &(m, n, k, transa) in &[(64, 3136, 64, false), (13, 70, 5, false), (7, 33, 17, true)] {
            let a: Vec<f32> = data(m * k, 1).iter().map(|&v| v as f32).collect();
            let x: Vec<f32> = data(k * n, 2).iter().map(|&v| v as f32).collect();
            let b: Vec<f32> = data(m, 3).iter().map(|&v| v as f32).collect();
            let lda = if transa { m } else { k };
            let mut y0 = vec![0f32; m * n];
            gemm::gemm(transa, false, m, n, k, 1.0, &a, lda, &x, n, 0.0, &mut y0, n).unwrap();
            add_row_bias(&mut y0, n, n, &b);
            let mut y1 = vec![0f32; m * n];
            pw_gemm(transa, m, n, k, &a, lda, &x, n, Some(&b), &mut y1, n).unwrap();
            let bits = |v: &[f32]| v.iter().map(|e| e.to_bits()).collect::<Vec<u32>>();
            assert_eq!(bits(&y0), bits(&y1), "{m} x {n} x {k}");
            assert!(pw_gemm(transa, m, n, k, &a[1..], lda, &x, n, None, &mut y1, n).is_err());
        }
    }

    #[test]
    fn bad_lengths_are_errors() {
        let g = geom();
        let x = vec![0.0f32; g.x_len() - 1];
        let w = vec![0.0f32; g.w_len()];
        let mut y = vec![0.0f32; g.y_len()];
        assert!(forward(&g, &x, &w, None, &mut y).is_err());
        let mut bad = g;
        bad.groups = 3;
        let x = vec![0.0f32; g.x_len()];
        assert!(forward(&bad, &x, &w, None, &mut y).is_err());
    }
}
