//! Pooling, padding and batch-normalisation kernels on NCHW data.
//!
//! CONTRACT: every array is row-major and C-contiguous; the caller collapses the batch and
//! channel axes into `planes` (one (H, W) image each). All lengths are checked (errors,
//! never panics). Formulas follow PyTorch's CPU kernels:
//!
//! * max/min pooling: each window is scanned row by row; an element replaces the current
//!   extremum when it is strictly greater (smaller) or NaN, so the first extremum wins and
//!   a NaN propagates. The index (flat `h * W + w` in its plane) starts at the first
//!   element of the window that lies inside the input.
//! * average pooling: a window starts at `o * stride - pad` and ends at
//!   `min(start + kernel, size + pad)`; its divisor is that (padded) area when
//!   `count_include_pad`, the area clipped to the input otherwise, or `divisor_override`.
//! * adaptive average pooling: output `o` of `O` averages input `[floor(o I / O),
//!   ceil((o + 1) I / O))`.
//! * padding: every output position reads one source position (or the constant); the
//!   backward pass adds each output gradient into its source position.
//! * batch norm: per-channel mean and biased variance, accumulated in f64 in a fixed order.
//!
//! Work is split by planes (or channels) into tasks of a fixed size; each plane is computed
//! by one task from start to end in a fixed order, so results are bitwise identical for
//! any thread count. Hot loops run over precomputed index ranges (no bounds checks inside)
//! and are compiled for AVX-512 / AVX2 as well, chosen at run time.

use crate::error::{check_len, checked_product};
use crate::simd::{self, Level};
use crate::{threading, Float, KernelError, Result};

// ---------------------------------------------------------------------------------------
// Parallel and SIMD helpers.

/// Work (elements touched) below which a kernel runs on the calling thread.
const PAR_MIN: usize = 1 << 15;
/// Work per parallel task, in elements.
const TASK_WORK: usize = 1 << 14;

/// A pointer tasks share to write disjoint planes of one exclusively borrowed buffer.
#[derive(Clone, Copy)]
struct Ptr<T>(*mut T);
// SAFETY: only dereferenced on disjoint ranges (distinct planes or channels) by distinct
// tasks, while the buffer it came from is exclusively borrowed for the whole call.
unsafe impl<T: Send> Send for Ptr<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Ptr<T> {}

impl<T> Ptr<T> {
    fn new(s: &mut [T]) -> Self {
        Ptr(s.as_mut_ptr())
    }

    /// The part `[lo, lo + len)` of the buffer.
    ///
    /// # Safety
    /// `lo + len` is within the buffer and no other live reference covers that part.
    #[inline(always)]
    #[allow(clippy::mut_from_ref)]
    unsafe fn part<'a>(self, lo: usize, len: usize) -> &'a mut [T] {
        std::slice::from_raw_parts_mut(self.0.add(lo), len)
    }
}

/// Runs `f(lo, hi)` over `[0, items)` in tasks of a fixed number of items (from the work
/// of one item), in parallel when the total work is large enough. Every item is handled
/// by exactly one call.
fn par_items<F: Fn(usize, usize) + Sync>(items: usize, item_work: usize, f: F) {
    if items == 0 {
        return;
    }
    let item_work = item_work.max(1);
    let total = items.saturating_mul(item_work);
    let threads = threading::get_num_threads();
    if total < PAR_MIN || items == 1 || threads == 1 {
        with_simd(|| f(0, items));
        return;
    }
    let per = (TASK_WORK / item_work).max(1);
    let tasks = items.div_ceil(per);
    crate::spin::run_tasks(tasks, threads, |t| {
        let lo = t * per;
        let hi = (lo + per).min(items);
        with_simd(|| f(lo, hi));
    });
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn in_avx512<R, F: FnOnce() -> R>(f: F) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn in_avx2<R, F: FnOnce() -> R>(f: F) -> R {
    f()
}

/// Runs `f` compiled (after inlining) for the widest SIMD level this CPU has.
#[inline(always)]
fn with_simd<R, F: FnOnce() -> R>(f: F) -> R {
    match simd::level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `simd::level` reports Avx512 only when the CPU has AVX-512F.
        Level::Avx512 => unsafe { in_avx512(f) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `simd::level` reports Avx2Fma only when the CPU has AVX2 and FMA.
        Level::Avx2Fma => unsafe { in_avx2(f) },
        _ => f(),
    }
}

fn invalid(op: &'static str, detail: String) -> KernelError {
    KernelError::InvalidArgument { op, detail }
}

// ---------------------------------------------------------------------------------------
// Window geometry.

/// The geometry of one pooled axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Axis {
    /// Input size.
    pub size: usize,
    pub kernel: usize,
    pub stride: usize,
    pub pad: usize,
    pub dilation: usize,
    pub ceil_mode: bool,
}

impl Axis {
    /// An axis without pooling (size `size`, kernel 1, stride 1): the H axis of 1-D pools.
    pub fn unit(size: usize) -> Axis {
        Axis {
            size,
            kernel: 1,
            stride: 1,
            pad: 0,
            dilation: 1,
            ceil_mode: false,
        }
    }

    /// The output size as PyTorch computes it, or an error when the arguments are invalid
    /// or the output would be empty.
    pub fn out_size(&self, op: &'static str) -> Result<usize> {
        let Axis {
            size,
            kernel,
            stride,
            pad,
            dilation,
            ceil_mode,
        } = *self;
        if kernel < 1 || stride < 1 || dilation < 1 {
            return Err(invalid(
                op,
                format!(
                    "kernel_size, stride and dilation must be at least 1, given {kernel}, \
                     {stride}, {dilation}"
                ),
            ));
        }
        if pad > kernel / 2 {
            return Err(invalid(
                op,
                format!("pad should be at most half of effective kernel size, but got pad={pad}, kernel_size={kernel}"),
            ));
        }
        let eff = dilation
            .checked_mul(kernel - 1)
            .and_then(|v| v.checked_add(1))
            .ok_or(KernelError::Overflow { op })?;
        let padded = size
            .checked_add(2 * pad)
            .ok_or(KernelError::Overflow { op })?;
        if eff > padded {
            return Err(invalid(
                op,
                format!("kernel ({eff} with dilation) is larger than the padded input ({padded})"),
            ));
        }
        let span = padded - eff;
        let mut out = if ceil_mode {
            span.div_ceil(stride) + 1
        } else {
            span / stride + 1
        };
        // The last window must start inside the input or the left padding.
        if ceil_mode && (out - 1) * stride >= size + pad {
            out -= 1;
        }
        if out == 0 {
            return Err(invalid(op, "the output would be empty".into()));
        }
        Ok(out)
    }

    /// For kernel tap `k`: the outputs `[lo, hi)` whose input `o * stride - pad + k *
    /// dilation` lies inside the input, and the input position of output `lo`.
    fn tap_range(&self, k: usize, out: usize) -> (usize, usize, usize) {
        let off = (k * self.dilation) as isize - self.pad as isize;
        let s = self.stride as isize;
        // lo: smallest o with o * s + off >= 0.
        let lo = if off >= 0 { 0 } else { ((-off) + s - 1) / s } as usize;
        // hi: smallest o with o * s + off >= size.
        let lim = self.size as isize - off;
        let hi = if lim <= 0 {
            0
        } else {
            ((lim + s - 1) / s) as usize
        };
        let hi = hi.min(out);
        if lo >= hi {
            return (0, 0, 0);
        }
        (lo, hi, (lo as isize * s + off) as usize)
    }

    /// The first input position inside the input of window `o` (PyTorch's start index of
    /// max pooling; may be >= size when no tap of the window is inside).
    fn first_inside(&self, o: usize) -> usize {
        let mut i = (o * self.stride) as isize - self.pad as isize;
        while i < 0 {
            i += self.dilation as isize;
        }
        i as usize
    }

    /// Average pooling: the window of output `o` clipped to the input, and its divisor
    /// factor when padding counts (the window clipped to `size + pad`).
    fn avg_window(&self, o: usize) -> (usize, usize, usize) {
        let start = (o * self.stride) as isize - self.pad as isize;
        let end = (start + self.kernel as isize).min((self.size + self.pad) as isize);
        let padded = (end - start) as usize;
        let lo = start.max(0) as usize;
        let hi = (end.min(self.size as isize)).max(0) as usize;
        (lo, hi.max(lo), padded)
    }
}

fn check_plane_lens<T>(
    op: &'static str,
    planes: usize,
    inner: usize,
    what: &'static str,
    buf: &[T],
) -> Result<usize> {
    let n = checked_product(op, &[planes, inner])?;
    check_len(op, what, n, buf.len())?;
    Ok(n)
}

// ---------------------------------------------------------------------------------------
// Max / min pooling.

/// Max (or, with `min`, min) pooling of `x` (planes, h.size, w.size) into `y` and `idx`
/// (planes, oh, ow) where (oh, ow) are the axes' output sizes. `idx` holds the flat index
/// `h * W + w` of each extremum in its plane.
pub fn extremum_pool_forward<T: Float>(
    x: &[T],
    y: &mut [T],
    idx: &mut [i64],
    planes: usize,
    h: Axis,
    w: Axis,
    min: bool,
) -> Result<()> {
    ext_forward(x, y, idx, planes, h, w, min, Some(simd::level()))
}

/// [`extremum_pool_forward`] with the fast path for non-overlapping windows compiled for
/// `fast` (`None`: always the general path).
#[allow(clippy::too_many_arguments)]
fn ext_forward<T: Float>(
    x: &[T],
    y: &mut [T],
    idx: &mut [i64],
    planes: usize,
    h: Axis,
    w: Axis,
    min: bool,
    fast: Option<Level>,
) -> Result<()> {
    const OP: &str = "max_pool2d";
    let (oh, ow) = (h.out_size(OP)?, w.out_size(OP)?);
    let isz = checked_product(OP, &[h.size, w.size])?;
    let osz = checked_product(OP, &[oh, ow])?;
    check_plane_lens(OP, planes, isz, "x", x)?;
    check_plane_lens(OP, planes, osz, "y", y)?;
    check_plane_lens(OP, planes, osz, "indices", idx)?;
    if isz > i64::MAX as usize {
        return Err(KernelError::Overflow { op: OP });
    }
    if let Some(level) = fast {
        if fast_ok(h, oh) && fast_ok(w, ow) {
            ext_fast(
                x,
                y,
                idx,
                planes,
                [h.size, w.size],
                [oh, ow],
                [h.kernel, w.kernel],
                min,
                level,
            );
            return Ok(());
        }
    }
    let taps_w: Vec<(usize, usize, usize)> = (0..w.kernel).map(|k| w.tap_range(k, ow)).collect();
    let first_w: Vec<usize> = (0..ow).map(|o| w.first_inside(o)).collect();
    let (yp, ip) = (Ptr::new(y), Ptr::new(idx));
    let work = osz * h.kernel * w.kernel + isz;
    par_items(planes, work, |lo, hi| {
        for p in lo..hi {
            let xp = &x[p * isz..(p + 1) * isz];
            // SAFETY: plane p is in bounds (lengths checked above) and only this call
            // writes it (par_items hands each plane to one call).
            let (yo, io) = unsafe { (yp.part(p * osz, osz), ip.part(p * osz, osz)) };
            if min {
                ext_plane::<T, true>(xp, yo, io, h, w, ow, &taps_w, &first_w);
            } else {
                ext_plane::<T, false>(xp, yo, io, h, w, ow, &taps_w, &first_w);
            }
        }
    });
    Ok(())
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn ext_plane<T: Float, const MIN: bool>(
    x: &[T],
    y: &mut [T],
    idx: &mut [i64],
    h: Axis,
    w: Axis,
    ow: usize,
    taps_w: &[(usize, usize, usize)],
    first_w: &[usize],
) {
    let wd = w.size;
    let (init, sw) = (if MIN { T::INFINITY } else { T::NEG_INFINITY }, w.stride);
    for (o, (yr, ir)) in y
        .chunks_exact_mut(ow)
        .zip(idx.chunks_exact_mut(ow))
        .enumerate()
    {
        let h0 = h.first_inside(o);
        yr.fill(init);
        for (iv, &f) in ir.iter_mut().zip(first_w) {
            *iv = (h0 * wd + f) as i64;
        }
        let start = (o * h.stride) as isize - h.pad as isize;
        for kh in 0..h.kernel {
            let ih = start + (kh * h.dilation) as isize;
            if ih < 0 || ih >= h.size as isize {
                continue;
            }
            let ih = ih as usize;
            let xr = &x[ih * wd..(ih + 1) * wd];
            let base = (ih * wd) as i64;
            for &(lo, hi, i0) in taps_w {
                let n = hi - lo;
                if n == 0 {
                    continue;
                }
                let (ys, is) = (&mut yr[lo..hi], &mut ir[lo..hi]);
                let xs = &xr[i0..i0 + (n - 1) * sw + 1];
                let b0 = base + i0 as i64;
                if sw == 1 {
                    tap_row::<T, MIN, 1>(ys, is, xs, b0, 1);
                } else if sw == 2 {
                    tap_row::<T, MIN, 2>(ys, is, xs, b0, 2);
                } else {
                    tap_row::<T, MIN, 0>(ys, is, xs, b0, sw);
                }
            }
        }
    }
}

/// Whether an axis has non-overlapping windows that all lie inside the input (stride ==
/// kernel, no dilation, no padding): the fast path's geometry.
fn fast_ok(a: Axis, out: usize) -> bool {
    a.stride == a.kernel && a.dilation == 1 && a.pad == 0 && out * a.kernel <= a.size
}

/// Runs `f` compiled (after inlining) for SIMD level `level`, which the CPU must support.
#[inline(always)]
fn with_level<R, F: FnOnce() -> R>(level: Level, f: F) -> R {
    match level {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: callers pass `simd::level()` or a level the CPU was checked to have;
        // Avx512 implies AVX-512F.
        Level::Avx512 => unsafe { in_avx512(f) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above; Avx2Fma implies AVX2 and FMA.
        Level::Avx2Fma => unsafe { in_avx2(f) },
        _ => f(),
    }
}

/// The fast path of max/min pooling: windows `kh x kw` with stride equal to the kernel,
/// all inside the input. Each window is scanned in the general path's order (row by row,
/// `take` per element, starting from the infinity and the window's first index), so the
/// results are bitwise identical.
#[allow(clippy::too_many_arguments)]
fn ext_fast<T: Float>(
    x: &[T],
    y: &mut [T],
    idx: &mut [i64],
    planes: usize,
    [ih, iw]: [usize; 2],
    [oh, ow]: [usize; 2],
    [kh, kw]: [usize; 2],
    min: bool,
    level: Level,
) {
    let (isz, osz) = (ih * iw, oh * ow);
    let (yp, ip) = (Ptr::new(y), Ptr::new(idx));
    let work = osz * kh * kw + osz;
    let run = |lo: usize, hi: usize| {
        for p in lo..hi {
            let xp = &x[p * isz..(p + 1) * isz];
            // SAFETY: plane p is in bounds (lengths checked by the caller) and only this
            // call writes it (each plane goes to one call).
            let (yo, io) = unsafe { (yp.part(p * osz, osz), ip.part(p * osz, osz)) };
            if min {
                fast_plane::<T, true>(xp, yo, io, iw, ow, kh, kw);
            } else {
                fast_plane::<T, false>(xp, yo, io, iw, ow, kh, kw);
            }
        }
    };
    if planes == 0 {
        return;
    }
    let total = planes.saturating_mul(work.max(1));
    let threads = threading::get_num_threads();
    if total < PAR_MIN || planes == 1 || threads == 1 {
        with_level(level, || run(0, planes));
        return;
    }
    let per = (TASK_WORK / work.max(1)).max(1);
    let tasks = planes.div_ceil(per);
    crate::spin::run_tasks(tasks, threads, |t| {
        let lo = t * per;
        with_level(level, || run(lo, (lo + per).min(planes)));
    });
}

#[inline(always)]
fn fast_plane<T: Float, const MIN: bool>(
    x: &[T],
    y: &mut [T],
    idx: &mut [i64],
    iw: usize,
    ow: usize,
    kh: usize,
    kw: usize,
) {
    let init = if MIN { T::INFINITY } else { T::NEG_INFINITY };
    for (o, (yr, ir)) in y
        .chunks_exact_mut(ow)
        .zip(idx.chunks_exact_mut(ow))
        .enumerate()
    {
        let r0 = o * kh;
        if kh == 2 && kw == 2 {
            let base = (r0 * iw) as i64;
            let a = &x[r0 * iw..r0 * iw + 2 * ow];
            let b = &x[(r0 + 1) * iw..(r0 + 1) * iw + 2 * ow];
            let w1 = iw as i64;
            for (j, ((yv, iv), (pa, pb))) in yr
                .iter_mut()
                .zip(ir.iter_mut())
                .zip(a.chunks_exact(2).zip(b.chunks_exact(2)))
                .enumerate()
            {
                let c = base + 2 * j as i64;
                let (mut m, mut i) = (init, c);
                take::<T, MIN>(&mut m, &mut i, pa[0], c);
                take::<T, MIN>(&mut m, &mut i, pa[1], c + 1);
                take::<T, MIN>(&mut m, &mut i, pb[0], c + w1);
                take::<T, MIN>(&mut m, &mut i, pb[1], c + w1 + 1);
                *yv = m;
                *iv = i;
            }
            continue;
        }
        yr.fill(init);
        for (j, iv) in ir.iter_mut().enumerate() {
            *iv = (r0 * iw + j * kw) as i64;
        }
        for r in r0..r0 + kh {
            let xr = &x[r * iw..r * iw + ow * kw];
            let base = (r * iw) as i64;
            for b in 0..kw {
                for (j, (yv, iv)) in yr.iter_mut().zip(ir.iter_mut()).enumerate() {
                    let c = j * kw + b;
                    take::<T, MIN>(yv, iv, xr[c], base + c as i64);
                }
            }
        }
    }
}

/// One kernel tap over a run of outputs: output j reads `xs[j * stride]` (stride `S`, or
/// `sw` when `S` is 0) whose flat index is `b0 + j * stride`.
#[inline(always)]
fn tap_row<T: Float, const MIN: bool, const S: usize>(
    ys: &mut [T],
    is: &mut [i64],
    xs: &[T],
    b0: i64,
    sw: usize,
) {
    let st = if S == 0 { sw } else { S };
    let n = ys.len().min(is.len());
    if n == 0 || xs.len() <= (n - 1) * st {
        return;
    }
    for j in 0..n {
        // SAFETY: j < n <= ys.len(), is.len(), and j * st <= (n - 1) * st < xs.len()
        // (checked above).
        unsafe {
            let v = *xs.get_unchecked(j * st);
            take::<T, MIN>(
                ys.get_unchecked_mut(j),
                is.get_unchecked_mut(j),
                v,
                b0 + (j * st) as i64,
            );
        }
    }
}

/// Branch-free update of a running extremum: `v` replaces `y` (and `cand` the index)
/// when strictly better or NaN (PyTorch's rule).
#[inline(always)]
fn take<T: Float, const MIN: bool>(y: &mut T, i: &mut i64, v: T, cand: i64) {
    let (y0, i0) = (*y, *i);
    #[allow(clippy::eq_op)]
    let t = (if MIN { v < y0 } else { v > y0 }) | (v != v);
    *y = if t { v } else { y0 };
    *i = if t { cand } else { i0 };
}

/// Backward of max/min pooling: `gx` (planes, in_plane) = 0, then each output gradient is
/// added at its index, plane by plane in output order. Indices outside the plane (windows
/// with no input element) are skipped.
pub fn extremum_pool_backward<T: Float>(
    gy: &[T],
    idx: &[i64],
    gx: &mut [T],
    planes: usize,
    out_plane: usize,
    in_plane: usize,
) -> Result<()> {
    const OP: &str = "max_pool2d_backward";
    check_plane_lens(OP, planes, out_plane, "grad_output", gy)?;
    check_plane_lens(OP, planes, out_plane, "indices", idx)?;
    check_plane_lens(OP, planes, in_plane, "grad_input", gx)?;
    let gp = Ptr::new(gx);
    par_items(planes, out_plane + in_plane, |lo, hi| {
        for p in lo..hi {
            // SAFETY: plane p is in bounds and written by this call only.
            let g = unsafe { gp.part(p * in_plane, in_plane) };
            g.fill(T::ZERO);
            let r = p * out_plane..(p + 1) * out_plane;
            for (&v, &i) in gy[r.clone()].iter().zip(&idx[r]) {
                if let Some(t) = usize::try_from(i).ok().and_then(|i| g.get_mut(i)) {
                    *t += v;
                }
            }
        }
    });
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Average pooling.

/// The divisor of every output of one axis pair, as PyTorch's average pooling uses it.
fn avg_divisors<T: Float>(
    h: Axis,
    w: Axis,
    oh: usize,
    ow: usize,
    count_include_pad: bool,
    divisor_override: Option<usize>,
) -> Vec<T> {
    let mut d = Vec::with_capacity(oh * ow);
    for o in 0..oh {
        let (h0, h1, hp) = h.avg_window(o);
        for q in 0..ow {
            let (w0, w1, wp) = w.avg_window(q);
            let v = match divisor_override {
                Some(v) => v,
                None if count_include_pad => hp * wp,
                None => (h1 - h0) * (w1 - w0),
            };
            d.push(T::from_usize(v));
        }
    }
    d
}

/// Average pooling of `x` (planes, h.size, w.size) into `y` (planes, oh, ow). Dilation is
/// not used (it must be 1).
pub fn avg_pool_forward<T: Float>(
    x: &[T],
    y: &mut [T],
    planes: usize,
    h: Axis,
    w: Axis,
    count_include_pad: bool,
    divisor_override: Option<usize>,
) -> Result<()> {
    const OP: &str = "avg_pool2d";
    let (oh, ow) = avg_check(OP, h, w, divisor_override)?;
    let isz = checked_product(OP, &[h.size, w.size])?;
    let osz = oh * ow;
    check_plane_lens(OP, planes, isz, "x", x)?;
    check_plane_lens(OP, planes, osz, "y", y)?;
    let div = avg_divisors::<T>(h, w, oh, ow, count_include_pad, divisor_override);
    let taps_w: Vec<(usize, usize, usize)> = (0..w.kernel).map(|k| w.tap_range(k, ow)).collect();
    let yp = Ptr::new(y);
    par_items(planes, osz * h.kernel * w.kernel + isz, |lo, hi| {
        for p in lo..hi {
            let xp = &x[p * isz..(p + 1) * isz];
            // SAFETY: plane p is in bounds and written by this call only.
            let yo = unsafe { yp.part(p * osz, osz) };
            avg_plane(xp, yo, h, w, ow, &taps_w, &div);
        }
    });
    Ok(())
}

fn avg_check(
    op: &'static str,
    h: Axis,
    w: Axis,
    divisor_override: Option<usize>,
) -> Result<(usize, usize)> {
    if h.dilation != 1 || w.dilation != 1 {
        return Err(invalid(op, "average pooling has no dilation".into()));
    }
    if divisor_override == Some(0) {
        return Err(invalid(op, "divisor must be not zero".into()));
    }
    let (oh, ow) = (h.out_size(op)?, w.out_size(op)?);
    checked_product(op, &[oh, ow])?;
    Ok((oh, ow))
}

#[inline(always)]
fn avg_plane<T: Float>(
    x: &[T],
    y: &mut [T],
    h: Axis,
    w: Axis,
    ow: usize,
    taps_w: &[(usize, usize, usize)],
    div: &[T],
) {
    let (wd, sw) = (w.size, w.stride);
    for (o, (yr, dr)) in y.chunks_exact_mut(ow).zip(div.chunks_exact(ow)).enumerate() {
        yr.fill(T::ZERO);
        let (h0, h1, _) = h.avg_window(o);
        for ih in h0..h1 {
            let xr = &x[ih * wd..(ih + 1) * wd];
            for &(lo, hi, i0) in taps_w {
                let n = hi - lo;
                if n == 0 {
                    continue;
                }
                let ys = &mut yr[lo..hi];
                if sw == 1 {
                    for (yv, &v) in ys.iter_mut().zip(&xr[i0..i0 + n]) {
                        *yv += v;
                    }
                } else {
                    let xs = &xr[i0..i0 + (n - 1) * sw + 1];
                    for (yv, &v) in ys.iter_mut().zip(xs.iter().step_by(sw)) {
                        *yv += v;
                    }
                }
            }
        }
        for (yv, &d) in yr.iter_mut().zip(dr) {
            // An empty clipped window (possible only with count_include_pad=False in
            // ceil mode corners) gives 0, as PyTorch does.
            *yv = if d == T::ZERO { T::ZERO } else { *yv / d };
        }
    }
}

/// Backward of [`avg_pool_forward`]: `gx` (planes, h.size, w.size) from `gy` (planes, oh,
/// ow).
pub fn avg_pool_backward<T: Float>(
    gy: &[T],
    gx: &mut [T],
    planes: usize,
    h: Axis,
    w: Axis,
    count_include_pad: bool,
    divisor_override: Option<usize>,
) -> Result<()> {
    const OP: &str = "avg_pool2d_backward";
    let (oh, ow) = avg_check(OP, h, w, divisor_override)?;
    let isz = checked_product(OP, &[h.size, w.size])?;
    let osz = oh * ow;
    check_plane_lens(OP, planes, osz, "grad_output", gy)?;
    check_plane_lens(OP, planes, isz, "grad_input", gx)?;
    let div = avg_divisors::<T>(h, w, oh, ow, count_include_pad, divisor_override);
    let taps_w: Vec<(usize, usize, usize)> = (0..w.kernel).map(|k| w.tap_range(k, ow)).collect();
    let gp = Ptr::new(gx);
    par_items(planes, osz * h.kernel * w.kernel + isz, |lo, hi| {
        let mut scaled = vec![T::ZERO; ow];
        for p in lo..hi {
            let gyp = &gy[p * osz..(p + 1) * osz];
            // SAFETY: plane p is in bounds and written by this call only.
            let g = unsafe { gp.part(p * isz, isz) };
            g.fill(T::ZERO);
            let wd = w.size;
            let sw = w.stride;
            for (o, (gr, dr)) in gyp.chunks_exact(ow).zip(div.chunks_exact(ow)).enumerate() {
                for ((s, &v), &d) in scaled.iter_mut().zip(gr).zip(dr) {
                    *s = v / d;
                }
                let (h0, h1, _) = h.avg_window(o);
                for ih in h0..h1 {
                    let xr = &mut g[ih * wd..(ih + 1) * wd];
                    for &(lo, hi, i0) in &taps_w {
                        let n = hi - lo;
                        if n == 0 {
                            continue;
                        }
                        let ss = &scaled[lo..hi];
                        if sw == 1 {
                            for (t, &v) in xr[i0..i0 + n].iter_mut().zip(ss) {
                                *t += v;
                            }
                        } else {
                            let xs = &mut xr[i0..i0 + (n - 1) * sw + 1];
                            for (t, &v) in xs.iter_mut().step_by(sw).zip(ss) {
                                *t += v;
                            }
                        }
                    }
                }
            }
        }
    });
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Adaptive average pooling.

fn adaptive_bounds(op: &'static str, size: usize, out: usize) -> Result<Vec<(usize, usize)>> {
    if out == 0 || size == 0 {
        return Err(invalid(
            op,
            format!("input size ({size}) and output size ({out}) must be positive"),
        ));
    }
    Ok((0..out)
        .map(|o| {
            let lo = (o * size) / out;
            let hi = ((o + 1) * size).div_ceil(out);
            (lo, hi)
        })
        .collect())
}

/// Adaptive average pooling of `x` (planes, ih, iw) into `y` (planes, oh, ow).
pub fn adaptive_avg_pool_forward<T: Float>(
    x: &[T],
    y: &mut [T],
    planes: usize,
    (ih, iw): (usize, usize),
    (oh, ow): (usize, usize),
) -> Result<()> {
    const OP: &str = "adaptive_avg_pool2d";
    let bh = adaptive_bounds(OP, ih, oh)?;
    let bw = adaptive_bounds(OP, iw, ow)?;
    let isz = checked_product(OP, &[ih, iw])?;
    let osz = checked_product(OP, &[oh, ow])?;
    check_plane_lens(OP, planes, isz, "x", x)?;
    check_plane_lens(OP, planes, osz, "y", y)?;
    let yp = Ptr::new(y);
    par_items(planes, isz + osz, |lo, hi| {
        for p in lo..hi {
            let xp = &x[p * isz..(p + 1) * isz];
            // SAFETY: plane p is in bounds and written by this call only.
            let yo = unsafe { yp.part(p * osz, osz) };
            for (yr, &(h0, h1)) in yo.chunks_exact_mut(ow).zip(&bh) {
                for (yv, &(w0, w1)) in yr.iter_mut().zip(&bw) {
                    let mut s = T::ZERO;
                    for r in h0..h1 {
                        for &v in &xp[r * iw + w0..r * iw + w1] {
                            s += v;
                        }
                    }
                    *yv = s / T::from_usize((h1 - h0) * (w1 - w0));
                }
            }
        }
    });
    Ok(())
}

/// Backward of [`adaptive_avg_pool_forward`].
pub fn adaptive_avg_pool_backward<T: Float>(
    gy: &[T],
    gx: &mut [T],
    planes: usize,
    (ih, iw): (usize, usize),
    (oh, ow): (usize, usize),
) -> Result<()> {
    const OP: &str = "adaptive_avg_pool2d_backward";
    let bh = adaptive_bounds(OP, ih, oh)?;
    let bw = adaptive_bounds(OP, iw, ow)?;
    let isz = checked_product(OP, &[ih, iw])?;
    let osz = checked_product(OP, &[oh, ow])?;
    check_plane_lens(OP, planes, osz, "grad_output", gy)?;
    check_plane_lens(OP, planes, isz, "grad_input", gx)?;
    let gp = Ptr::new(gx);
    par_items(planes, isz + osz, |lo, hi| {
        for p in lo..hi {
            let gyp = &gy[p * osz..(p + 1) * osz];
            // SAFETY: plane p is in bounds and written by this call only.
            let g = unsafe { gp.part(p * isz, isz) };
            g.fill(T::ZERO);
            for (gr, &(h0, h1)) in gyp.chunks_exact(ow).zip(&bh) {
                for (&v, &(w0, w1)) in gr.iter().zip(&bw) {
                    let s = v / T::from_usize((h1 - h0) * (w1 - w0));
                    for r in h0..h1 {
                        for t in &mut g[r * iw + w0..r * iw + w1] {
                            *t += s;
                        }
                    }
                }
            }
        }
    });
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Padding.

/// How positions outside the input are filled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PadMode {
    Constant,
    Reflect,
    Replicate,
    Circular,
}

/// For every output position of one axis, its source position in the input (`None` for
/// the constant). Checks PyTorch's limits of each mode.
fn pad_map(
    op: &'static str,
    mode: PadMode,
    size: usize,
    left: isize,
    right: isize,
) -> Result<Vec<Option<usize>>> {
    let n = size as isize;
    let out = n + left + right;
    if out < 0 || (out == 0 && size > 0) {
        return Err(invalid(
            op,
            format!(
                "padding ({left}, {right}) of a dimension of size {size} gives an empty output"
            ),
        ));
    }
    if mode != PadMode::Constant {
        if left < 0 || right < 0 {
            return Err(invalid(
                op,
                format!("{mode:?} padding must be non-negative, given ({left}, {right})"),
            ));
        }
        if size == 0 && (left > 0 || right > 0) {
            return Err(invalid(
                op,
                format!("cannot {mode:?}-pad a dimension of size 0"),
            ));
        }
    }
    match mode {
        PadMode::Reflect if left >= n || right >= n => {
            return Err(invalid(
                op,
                format!(
                    "Padding size should be less than the corresponding input dimension, but \
                     got: padding ({left}, {right}) at dimension of size {size}"
                ),
            ))
        }
        PadMode::Circular if left > n || right > n => {
            return Err(invalid(
                op,
                format!(
                    "Padding value causes wrapping around more than once: padding ({left}, \
                     {right}) at dimension of size {size}"
                ),
            ))
        }
        _ => {}
    }
    Ok((0..out)
        .map(|o| {
            let i = o - left;
            let s = match mode {
                PadMode::Constant => i,
                PadMode::Reflect => {
                    if i < 0 {
                        -i
                    } else if i >= n {
                        2 * (n - 1) - i
                    } else {
                        i
                    }
                }
                PadMode::Replicate => i.clamp(0, n - 1),
                PadMode::Circular => i.rem_euclid(n),
            };
            if (0..n).contains(&s) {
                Some(s as usize)
            } else {
                None
            }
        })
        .collect())
}

/// The three axis maps of a padding and the run of the last axis copied as is.
struct PadPlan {
    md: Vec<Option<usize>>,
    mh: Vec<Option<usize>>,
    mw: Vec<Option<usize>>,
    /// Outputs [a, b) of the last axis read input a - left .. b - left.
    run: (usize, usize),
    src_run: usize,
}

fn pad_plan(
    op: &'static str,
    mode: PadMode,
    dims: [usize; 3],
    pads: [isize; 6],
) -> Result<PadPlan> {
    let md = pad_map(op, mode, dims[0], pads[0], pads[1])?;
    let mh = pad_map(op, mode, dims[1], pads[2], pads[3])?;
    let mw = pad_map(op, mode, dims[2], pads[4], pads[5])?;
    let left = pads[4];
    let a = left.max(0) as usize;
    let b = ((left + dims[2] as isize).min(mw.len() as isize)).max(a as isize) as usize;
    let src_run = (a as isize - left) as usize;
    Ok(PadPlan {
        md,
        mh,
        mw,
        run: (a, b),
        src_run,
    })
}

/// The output dims of padding `dims` (D, H, W) by `pads` (d_left, d_right, h_left,
/// h_right, w_left, w_right); negative pads crop (constant mode only).
pub fn pad_out_dims(mode: PadMode, dims: [usize; 3], pads: [isize; 6]) -> Result<[usize; 3]> {
    let p = pad_plan("pad", mode, dims, pads)?;
    Ok([p.md.len(), p.mh.len(), p.mw.len()])
}

/// Pads `x` (planes, D, H, W) into `y` (planes, OD, OH, OW) with `mode` (`value` fills in
/// constant mode).
pub fn pad_forward<T: Float>(
    x: &[T],
    y: &mut [T],
    planes: usize,
    dims: [usize; 3],
    pads: [isize; 6],
    mode: PadMode,
    value: T,
) -> Result<()> {
    const OP: &str = "pad";
    let plan = pad_plan(OP, mode, dims, pads)?;
    let isz = checked_product(OP, &dims)?;
    let (od, oh, ow) = (plan.md.len(), plan.mh.len(), plan.mw.len());
    let osz = checked_product(OP, &[od, oh, ow])?;
    check_plane_lens(OP, planes, isz, "x", x)?;
    check_plane_lens(OP, planes, osz, "y", y)?;
    if osz == 0 {
        return Ok(());
    }
    let (hd, wd) = (dims[1], dims[2]);
    let (a, b) = plan.run;
    let yp = Ptr::new(y);
    par_items(planes, osz + isz, |lo, hi| {
        for p in lo..hi {
            let xp = &x[p * isz..(p + 1) * isz];
            // SAFETY: plane p is in bounds and written by this call only.
            let yo = unsafe { yp.part(p * osz, osz) };
            for (row, yr) in yo.chunks_exact_mut(ow).enumerate() {
                let (d, r) = (row / oh, row % oh);
                let (Some(sd), Some(sh)) = (plan.md[d], plan.mh[r]) else {
                    yr.fill(value);
                    continue;
                };
                let xr = &xp[(sd * hd + sh) * wd..(sd * hd + sh + 1) * wd];
                yr[a..b].copy_from_slice(&xr[plan.src_run..plan.src_run + (b - a)]);
                for q in (0..a).chain(b..ow) {
                    yr[q] = match plan.mw[q] {
                        Some(s) => xr[s],
                        None => value,
                    };
                }
            }
        }
    });
    Ok(())
}

/// Backward of [`pad_forward`]: each output gradient is added into its source position
/// (none for the constant), plane by plane in output order.
pub fn pad_backward<T: Float>(
    gy: &[T],
    gx: &mut [T],
    planes: usize,
    dims: [usize; 3],
    pads: [isize; 6],
    mode: PadMode,
) -> Result<()> {
    const OP: &str = "pad_backward";
    let plan = pad_plan(OP, mode, dims, pads)?;
    let isz = checked_product(OP, &dims)?;
    let (od, oh, ow) = (plan.md.len(), plan.mh.len(), plan.mw.len());
    let osz = checked_product(OP, &[od, oh, ow])?;
    check_plane_lens(OP, planes, osz, "grad_output", gy)?;
    check_plane_lens(OP, planes, isz, "grad_input", gx)?;
    if isz == 0 {
        return Ok(());
    }
    let (hd, wd) = (dims[1], dims[2]);
    let (a, b) = plan.run;
    let gp = Ptr::new(gx);
    par_items(planes, osz + isz, |lo, hi| {
        for p in lo..hi {
            // SAFETY: plane p is in bounds and written by this call only.
            let g = unsafe { gp.part(p * isz, isz) };
            g.fill(T::ZERO);
            if osz == 0 {
                continue;
            }
            let gyp = &gy[p * osz..(p + 1) * osz];
            for (row, gr) in gyp.chunks_exact(ow).enumerate() {
                let (d, r) = (row / oh, row % oh);
                let (Some(sd), Some(sh)) = (plan.md[d], plan.mh[r]) else {
                    continue;
                };
                let xr = &mut g[(sd * hd + sh) * wd..(sd * hd + sh + 1) * wd];
                for (t, &v) in xr[plan.src_run..plan.src_run + (b - a)]
                    .iter_mut()
                    .zip(&gr[a..b])
                {
                    *t += v;
                }
                for q in (0..a).chain(b..ow) {
                    if let Some(s) = plan.mw[q] {
                        xr[s] += gr[q];
                    }
                }
            }
        }
    });
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Batch normalisation.

/// Lanes of the f64 accumulators (a fixed summation pattern, vectorisable).
const LANES: usize = 8;

#[inline(always)]
fn lane_sum<T: Float>(acc: &mut [f64; LANES], xs: &[T], f: impl Fn(T) -> f64) {
    let mut ch = xs.chunks_exact(LANES);
    for c in &mut ch {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v);
        }
    }
    for (a, &v) in acc.iter_mut().zip(ch.remainder()) {
        *a += f(v);
    }
}

#[inline(always)]
fn fold(acc: &[f64; LANES]) -> f64 {
    ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
}

fn bn_dims(op: &'static str, n: usize, c: usize, l: usize) -> Result<usize> {
    checked_product(op, &[n, c, l])
}

/// Per-channel mean and biased variance of `x` (n, c, l) over n and l (two passes, f64
/// accumulation in a fixed order).
pub fn batch_norm_stats<T: Float>(
    x: &[T],
    n: usize,
    c: usize,
    l: usize,
    mean: &mut [T],
    var: &mut [T],
) -> Result<()> {
    const OP: &str = "batch_norm";
    let total = bn_dims(OP, n, c, l)?;
    check_len(OP, "x", total, x.len())?;
    check_len(OP, "mean", c, mean.len())?;
    check_len(OP, "var", c, var.len())?;
    if n * l == 0 {
        return Err(invalid(OP, "no values per channel".into()));
    }
    let m = (n * l) as f64;
    let (mp, vp) = (Ptr::new(mean), Ptr::new(var));
    par_items(c, n * l * 2, |lo, hi| {
        for ch in lo..hi {
            let mut acc = [0f64; LANES];
            for b in 0..n {
                let o = (b * c + ch) * l;
                lane_sum(&mut acc, &x[o..o + l], |v| v.to_f64());
            }
            let mu = fold(&acc) / m;
            let mut acc = [0f64; LANES];
            for b in 0..n {
                let o = (b * c + ch) * l;
                lane_sum(&mut acc, &x[o..o + l], |v| {
                    let d = v.to_f64() - mu;
                    d * d
                });
            }
            // SAFETY: channel ch < c is in bounds (checked) and written by this call only.
            unsafe {
                mp.part(ch, 1)[0] = T::from_f64(mu);
                vp.part(ch, 1)[0] = T::from_f64(fold(&acc) / m);
            }
        }
    });
    Ok(())
}

/// y = (x - mean) * invstd * weight + bias per channel of `x` (n, c, l).
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_forward<T: Float>(
    x: &[T],
    y: &mut [T],
    n: usize,
    c: usize,
    l: usize,
    mean: &[T],
    invstd: &[T],
    weight: Option<&[T]>,
    bias: Option<&[T]>,
) -> Result<()> {
    const OP: &str = "batch_norm";
    let total = bn_dims(OP, n, c, l)?;
    check_len(OP, "x", total, x.len())?;
    check_len(OP, "y", total, y.len())?;
    check_len(OP, "mean", c, mean.len())?;
    check_len(OP, "invstd", c, invstd.len())?;
    if let Some(w) = weight {
        check_len(OP, "weight", c, w.len())?;
    }
    if let Some(b) = bias {
        check_len(OP, "bias", c, b.len())?;
    }
    // y = x * scale + shift, per channel.
    let scale: Vec<T> = (0..c)
        .map(|ch| invstd[ch] * weight.map_or(T::ONE, |w| w[ch]))
        .collect();
    let shift: Vec<T> = (0..c)
        .map(|ch| bias.map_or(T::ZERO, |b| b[ch]) - mean[ch] * scale[ch])
        .collect();
    let yp = Ptr::new(y);
    // Rows are (batch, channel) pairs of l elements.
    par_items(n * c, l, |lo, hi| {
        // SAFETY: rows lo..hi are in bounds and written by this call only.
        let ys = unsafe { yp.part(lo * l, (hi - lo) * l) };
        let xs = &x[lo * l..hi * l];
        if l == 0 {
            return;
        }
        for (row, (yr, xr)) in ys.chunks_exact_mut(l).zip(xs.chunks_exact(l)).enumerate() {
            let ch = (lo + row) % c;
            let (s, t) = (scale[ch], shift[ch]);
            for (yv, &v) in yr.iter_mut().zip(xr) {
                *yv = v * s + t;
            }
        }
    });
    Ok(())
}

/// Backward of batch norm (PyTorch's formula). Given x (n, c, l), grad_output, the mean and
/// invstd used forward and the weight: per channel sum_g = sum(g), dotp = sum((x - mean) g);
/// grad_weight = dotp * invstd, grad_bias = sum_g; when `training`,
/// gx = (g - sum_g / M - (x - mean) dotp invstd^2 / M) invstd w, otherwise gx = g invstd w.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_backward<T: Float>(
    x: &[T],
    gy: &[T],
    n: usize,
    c: usize,
    l: usize,
    mean: &[T],
    invstd: &[T],
    weight: Option<&[T]>,
    training: bool,
    gx: Option<&mut [T]>,
    gw: &mut [T],
    gb: &mut [T],
) -> Result<()> {
    const OP: &str = "batch_norm_backward";
    let total = bn_dims(OP, n, c, l)?;
    check_len(OP, "x", total, x.len())?;
    check_len(OP, "grad_output", total, gy.len())?;
    check_len(OP, "mean", c, mean.len())?;
    check_len(OP, "invstd", c, invstd.len())?;
    check_len(OP, "grad_weight", c, gw.len())?;
    check_len(OP, "grad_bias", c, gb.len())?;
    if let Some(w) = weight {
        check_len(OP, "weight", c, w.len())?;
    }
    let gx_ptr = match gx {
        Some(g) => {
            check_len(OP, "grad_input", total, g.len())?;
            Some(Ptr::new(g))
        }
        None => None,
    };
    let m = (n * l) as f64;
    let (wp, bp) = (Ptr::new(gw), Ptr::new(gb));
    par_items(c, n * l * 3, |lo, hi| {
        for ch in lo..hi {
            let mu = mean[ch];
            let is = invstd[ch];
            let mut sg = [0f64; LANES];
            let mut sd = [0f64; LANES];
            for b in 0..n {
                let o = (b * c + ch) * l;
                lane_sum(&mut sg, &gy[o..o + l], |v| v.to_f64());
                for (xc, gc) in x[o..o + l].chunks(LANES).zip(gy[o..o + l].chunks(LANES)) {
                    for ((a, &xv), &gv) in sd.iter_mut().zip(xc).zip(gc) {
                        *a += (xv - mu).to_f64() * gv.to_f64();
                    }
                }
            }
            let (sum_g, dotp) = (fold(&sg), fold(&sd));
            // SAFETY: channel ch < c is in bounds (checked) and written by this call only.
            unsafe {
                wp.part(ch, 1)[0] = T::from_f64(dotp * is.to_f64());
                bp.part(ch, 1)[0] = T::from_f64(sum_g);
            }
            if let Some(gp) = gx_ptr {
                let w = weight.map_or(T::ONE, |w| w[ch]);
                let isw = is * w;
                let (k, gm) = if training {
                    let isf = is.to_f64();
                    (T::from_f64(dotp * isf * isf / m), T::from_f64(sum_g / m))
                } else {
                    (T::ZERO, T::ZERO)
                };
                for b in 0..n {
                    let o = (b * c + ch) * l;
                    // SAFETY: row (b, ch) is in bounds and only this call (the one owning
                    // channel ch) writes it.
                    let gr = unsafe { gp.part(o, l) };
                    if training {
                        for ((t, &xv), &gv) in gr.iter_mut().zip(&x[o..o + l]).zip(&gy[o..o + l]) {
                            *t = (gv - gm - (xv - mu) * k) * isw;
                        }
                    } else {
                        for (t, &gv) in gr.iter_mut().zip(&gy[o..o + l]) {
                            *t = gv * isw;
                        }
                    }
                }
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ax(size: usize, kernel: usize, stride: usize, pad: usize, ceil: bool) -> Axis {
        Axis {
            size,
            kernel,
            stride,
            pad,
            dilation: 1,
            ceil_mode: ceil,
        }
    }

    #[test]
    fn out_sizes_follow_pytorch() {
        assert_eq!(ax(5, 2, 2, 0, false).out_size("t"), Ok(2));
        assert_eq!(ax(5, 2, 2, 0, true).out_size("t"), Ok(3));
        // The last window would start in the right padding: dropped.
        assert_eq!(ax(4, 2, 2, 1, true).out_size("t"), Ok(3));
        assert!(ax(1, 3, 1, 0, false).out_size("t").is_err());
        assert!(ax(5, 2, 1, 2, false).out_size("t").is_err());
    }

    #[test]
    fn max_pool_small() {
        let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let (mut y, mut i) = (vec![0f32; 4], vec![0i64; 4]);
        let a = ax(4, 2, 2, 0, false);
        extremum_pool_forward(&x, &mut y, &mut i, 1, a, a, false).unwrap();
        assert_eq!(y, vec![5.0, 7.0, 13.0, 15.0]);
        assert_eq!(i, vec![5, 7, 13, 15]);
        let mut gx = vec![0f32; 16];
        extremum_pool_backward(&[1.0, 2.0, 3.0, 4.0], &i, &mut gx, 1, 4, 16).unwrap();
        assert_eq!(gx[5], 1.0);
        assert_eq!(gx[15], 4.0);
        assert!(extremum_pool_forward(&x[..15], &mut y, &mut i, 1, a, a, false).is_err());
    }

    fn levels() -> Vec<Level> {
        let mut v = vec![Level::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                v.push(Level::Avx2Fma);
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                v.push(Level::Avx512);
            }
        }
        v
    }

    /// A small deterministic generator of values with many ties, infinities and NaNs.
    fn values<T: Float>(n: usize, seed: u64) -> Vec<T> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let r = (s >> 33) % 40;
                match r {
                    0 => T::NAN,
                    1 => -T::NAN,
                    2 => T::INFINITY,
                    3 => T::NEG_INFINITY,
                    4 => T::ZERO,
                    5 => -T::ZERO,
                    _ => T::from_f64((r % 7) as f64 - 3.0),
                }
            })
            .collect()
    }

    fn fast_matches_general_t<T: Float>(bits: impl Fn(T) -> u64) {
        let shapes = [
            (3, 28, 28, 2, 2),
            (5, 10, 10, 2, 2),
            (2, 7, 9, 2, 2),
            (4, 1, 33, 1, 2),
            (3, 9, 11, 3, 3),
            (2, 8, 13, 2, 3),
            (2, 5, 5, 1, 1),
            (70, 12, 12, 2, 2),
        ];
        for (si, &(planes, hs, ws, kh, kw)) in shapes.iter().enumerate() {
            for ceil in [false, true] {
                let (h, w) = (ax(hs, kh, kh, 0, ceil), ax(ws, kw, kw, 0, ceil));
                let (oh, ow) = (h.out_size("t").unwrap(), w.out_size("t").unwrap());
                let x = values::<T>(planes * hs * ws, si as u64);
                let n = planes * oh * ow;
                for min in [false, true] {
                    let (mut y0, mut i0) = (vec![T::ZERO; n], vec![0i64; n]);
                    ext_forward(&x, &mut y0, &mut i0, planes, h, w, min, None).unwrap();
                    for &lv in &levels() {
                        let (mut y1, mut i1) = (vec![T::ZERO; n], vec![-1i64; n]);
                        ext_forward(&x, &mut y1, &mut i1, planes, h, w, min, Some(lv)).unwrap();
                        assert_eq!(i0, i1, "{si} {ceil} {min} {lv:?}");
                        let b0: Vec<u64> = y0.iter().map(|&v| bits(v)).collect();
                        let b1: Vec<u64> = y1.iter().map(|&v| bits(v)).collect();
                        assert_eq!(b0, b1, "{si} {ceil} {min} {lv:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn fast_pool_matches_general() {
        fast_matches_general_t::<f32>(|v| v.to_bits() as u64);
        fast_matches_general_t::<f64>(|v| v.to_bits());
    }

    #[test]
    fn pad_reflect_1d() {
        let x = [1.0f64, 2.0, 3.0];
        let mut y = vec![0.0; 7];
        pad_forward(
            &x,
            &mut y,
            1,
            [1, 1, 3],
            [0, 0, 0, 0, 2, 2],
            PadMode::Reflect,
            0.0,
        )
        .unwrap();
        assert_eq!(y, vec![3.0, 2.0, 1.0, 2.0, 3.0, 2.0, 1.0]);
        let mut gx = vec![0.0; 3];
        pad_backward(
            &[1.0; 7],
            &mut gx,
            1,
            [1, 1, 3],
            [0, 0, 0, 0, 2, 2],
            PadMode::Reflect,
        )
        .unwrap();
        assert_eq!(gx, vec![2.0, 3.0, 2.0]);
        assert!(pad_forward(
            &x,
            &mut y,
            1,
            [1, 1, 3],
            [0, 0, 0, 0, 3, 1],
            PadMode::Reflect,
            0.0
        )
        .is_err());
    }
}
