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
//!   skips im2col: the GEMM reads the image in place (W (k, c) @ X (c, h*w)).
//! - Input gradient: per (image, group, block of input channels) task, GEMM W^T @ dY of a
//!   row block into the workspace, then col2im accumulates it into that task's own
//!   channels of dx (disjoint regions, fixed order). 1x1 stride 1: one GEMM into dx.
//! - Weight gradient: per (group, chunk) task, the sum over the chunk's (image, row block)
//!   units of dY_block @ col_block^T, accumulated by the GEMM (beta = 1); the chunk
//!   partials are then added in chunk order.
//! - Tasks run on [`crate::spin::run_tasks`]; the GEMM inside a task runs on its thread.

use crate::error::checked_product;
use crate::{gemm, spin, threading, Float, KernelError, Result};
use std::cell::RefCell;
use std::sync::Mutex;

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
    let (cg, kg, ckk) = (g.cg(), g.kg(), g.ckk());
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    let rb = g.rows_per_block();
    let nrb = g.oh.div_ceil(rb);
    let pointwise = g.pointwise();
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
            for (ko, src) in yb.chunks_exact(ncols).enumerate() {
                let ch = gi * kg + ko;
                // SAFETY: (img, ch, rows r0..r1) is inside y (lengths checked above) and
                // belongs to this task only: tasks differ in image, group or row block.
                let dst = unsafe { yp.slice((img * g.k + ch) * ohw + r0 * g.ow, ncols) };
                match b {
                    Some(b) => {
                        let bv = b[ch];
                        for (d, &s) in dst.iter_mut().zip(src) {
                            *d = s + bv;
                        }
                    }
                    None => dst.copy_from_slice(src),
                }
            }
        });
    });
    err.into_result()
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
    let (cg, kg, ckk, kk) = (g.cg(), g.kg(), g.ckk(), g.kk());
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    let rb = g.rows_per_block();
    let nrb = g.oh.div_ceil(rb);
    let pointwise = g.pointwise();
    let ncb = cg.div_ceil(DX_CHANNELS);
    let cbs = cg.div_ceil(ncb);
    let ws_len = if pointwise { 0 } else { cbs * kk * rb * g.ow };
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
        if pointwise {
            err.record(gemm::gemm(
                true,
                false,
                nch,
                hw,
                kg,
                T::ONE,
                &wg[c0..],
                ckk,
                gyg,
                ohw,
                T::ZERO,
                dxr,
                hw,
            ));
        } else {
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
        }
        if let Some(b) = bias {
            for (ci, plane) in dxr.chunks_exact_mut(hw).enumerate() {
                let bv = b[gi * cg + c0 + ci];
                for v in plane {
                    *v += bv;
                }
            }
        }
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
    let (cg, kg, ckk) = (g.cg(), g.kg(), g.ckk());
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    let rb = g.rows_per_block();
    let nrb = g.oh.div_ceil(rb);
    let pointwise = g.pointwise();
    let units = g.n * nrb;
    let chunks = units.min(DW_CHUNKS);
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
