//! Packing of A and B blocks into the panel layouts the micro-kernels read, and the
//! 64-byte-aligned buffers they live in.

use crate::Float;
use std::cell::RefCell;
use std::sync::Mutex;

/// One cache line of storage: gives the buffers their 64-byte alignment.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Line([u8; 64]);

/// A growable, 64-byte-aligned scratch buffer, reused across calls.
pub(crate) struct AlignedBuf {
    lines: Vec<Line>,
}

impl AlignedBuf {
    pub(crate) const fn new() -> Self {
        AlignedBuf { lines: Vec::new() }
    }

    /// A slice of `len` elements (contents unspecified but initialised), growing as needed.
    pub(crate) fn slice<T: Float>(&mut self, len: usize) -> &mut [T] {
        let bytes = len.saturating_mul(std::mem::size_of::<T>());
        let nlines = bytes.div_ceil(64);
        if self.lines.len() < nlines {
            self.lines.resize(nlines, Line([0; 64]));
        }
        // SAFETY: the lines are initialised bytes, at least `len * size_of::<T>()` long,
        // 64-byte aligned (>= align_of::<T>() for f32/f64), and every bit pattern is a
        // valid f32/f64 (T is sealed to those two). The borrow of `self` covers the slice.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast::<T>(), len) }
    }
}

thread_local! {
    /// Per-thread buffer for packed A blocks (each thread packs its own).
    static A_BUF: RefCell<AlignedBuf> = const { RefCell::new(AlignedBuf::new()) };
}

/// Runs `f` with this thread's A buffer (or a fresh one if it is already in use).
pub(crate) fn with_a_buf<R>(f: impl FnOnce(&mut AlignedBuf) -> R) -> R {
    A_BUF.with(|cell| match cell.try_borrow_mut() {
        Ok(mut g) => f(&mut g),
        Err(_) => f(&mut AlignedBuf::new()),
    })
}

/// Buffers for packed B blocks, shared by the threads of one call, kept between calls.
static B_POOL: Mutex<Vec<AlignedBuf>> = Mutex::new(Vec::new());
const B_POOL_KEEP: usize = 4;

/// A B buffer taken from the pool; goes back to it when dropped.
pub(crate) struct PooledBuf(Option<AlignedBuf>);

impl PooledBuf {
    pub(crate) fn take() -> Self {
        let mut pool = B_POOL.lock().unwrap_or_else(|e| e.into_inner());
        PooledBuf(Some(pool.pop().unwrap_or_else(AlignedBuf::new)))
    }
    pub(crate) fn slice<T: Float>(&mut self, len: usize) -> &mut [T] {
        self.0.get_or_insert_with(AlignedBuf::new).slice(len)
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        if let Some(buf) = self.0.take() {
            let mut pool = B_POOL.lock().unwrap_or_else(|e| e.into_inner());
            if pool.len() < B_POOL_KEEP {
                pool.push(buf);
            }
        }
    }
}

/// Largest panel width (MR or NR) the packers handle.
const MAX_GATHER: usize = 32;

/// Extra elements callers allocate past a packed block: the vector gather may write
/// up to 7 elements past the end of a panel (later overwritten or never read).
pub(crate) const PACK_SLACK: usize = 8;

/// Gathers `rows` (each `kc` long) into `panel[p * s + r]`, zero for `r >= rows.len()`,
/// with 8 x 8 (f32) or 4 x 4 (f64) AVX transposes. When `s` is not a multiple of 8
/// (f32) or 4 (f64), `panel` must extend that many elements past `kc * s` (else the
/// portable loop runs); they are overwritten with garbage. Returns false (doing nothing) when the fast path does not
/// apply, leaving the work to the portable loop.
fn gather_fast<T: Float>(rows: &[&[T]], s: usize, kc: usize, panel: &mut [T]) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use crate::simd::{level, Level};
        use std::any::TypeId;
        let group = if TypeId::of::<T>() == TypeId::of::<f32>() {
            8
        } else {
            4
        };
        let spill = s.div_ceil(group) * group - s;
        if level() < Level::Avx2Fma || s > MAX_GATHER || panel.len() < kc * s + spill {
            return false;
        }
        debug_assert!(rows.iter().all(|r| r.len() == kc));
        let mut ptrs = [std::ptr::null::<u8>(); MAX_GATHER];
        for (p, r) in ptrs.iter_mut().zip(rows) {
            *p = r.as_ptr().cast::<u8>();
        }
        let dst = panel.as_mut_ptr().cast::<u8>();
        // SAFETY: T is f32 or f64 as tested; each of the first rows.len() pointers is
        // readable for kc elements; dst is writable for kc * s + PACK_SLACK elements;
        // the CPU has AVX2 (level checked).
        unsafe {
            if TypeId::of::<T>() == TypeId::of::<f32>() {
                x86::gather_f32(&ptrs, rows.len(), s, kc, dst.cast::<f32>());
                return true;
            }
            if TypeId::of::<T>() == TypeId::of::<f64>() {
                x86::gather_f64(&ptrs, rows.len(), s, kc, dst.cast::<f64>());
                return true;
            }
        }
    }
    let _ = (rows, s, kc, panel);
    false
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::MAX_GATHER;
    use std::arch::x86_64::*;

    /// Writes `dst[p * s + r] = row_r[p]` for `r < s` (zero for `r >= h`), `p < kc`.
    /// Groups of 8 rows are transposed 8 k-steps at a time and stored as 8 values at
    /// `p * s + 8 g`; the last group may spill past `p * s + s` into the next step (or
    /// up to 7 elements past the end), so groups are stored last-first and steps in
    /// increasing order: every spilled element is rewritten afterwards.
    ///
    /// # Safety
    /// `ptrs[r]` readable for `kc` f32 for `r < h <= s <= 32`; `dst` writable for
    /// `kc * s + 8` f32; AVX2 available.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn gather_f32(
        ptrs: &[*const u8; MAX_GATHER],
        h: usize,
        s: usize,
        kc: usize,
        dst: *mut f32,
    ) {
        unsafe {
            let groups = s.div_ceil(8);
            let row = |r: usize| ptrs[r].cast::<f32>();
            let mut p = 0;
            while p + 8 <= kc {
                for g in (0..groups).rev() {
                    let mut v = [_mm256_setzero_ps(); 8];
                    for (q, x) in v.iter_mut().enumerate() {
                        let r = 8 * g + q;
                        if r < h {
                            *x = _mm256_loadu_ps(row(r).add(p));
                        }
                    }
                    let t0 = _mm256_unpacklo_ps(v[0], v[1]);
                    let t1 = _mm256_unpackhi_ps(v[0], v[1]);
                    let t2 = _mm256_unpacklo_ps(v[2], v[3]);
                    let t3 = _mm256_unpackhi_ps(v[2], v[3]);
                    let t4 = _mm256_unpacklo_ps(v[4], v[5]);
                    let t5 = _mm256_unpackhi_ps(v[4], v[5]);
                    let t6 = _mm256_unpacklo_ps(v[6], v[7]);
                    let t7 = _mm256_unpackhi_ps(v[6], v[7]);
                    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
                    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
                    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
                    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
                    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
                    let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
                    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
                    let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
                    let o = [
                        _mm256_permute2f128_ps::<0x20>(u0, u4),
                        _mm256_permute2f128_ps::<0x20>(u1, u5),
                        _mm256_permute2f128_ps::<0x20>(u2, u6),
                        _mm256_permute2f128_ps::<0x20>(u3, u7),
                        _mm256_permute2f128_ps::<0x31>(u0, u4),
                        _mm256_permute2f128_ps::<0x31>(u1, u5),
                        _mm256_permute2f128_ps::<0x31>(u2, u6),
                        _mm256_permute2f128_ps::<0x31>(u3, u7),
                    ];
                    for (q, x) in o.iter().enumerate() {
                        _mm256_storeu_ps(dst.add((p + q) * s + 8 * g), *x);
                    }
                }
                p += 8;
            }
            for p in p..kc {
                for r in 0..s {
                    *dst.add(p * s + r) = if r < h { *row(r).add(p) } else { 0.0 };
                }
            }
        }
    }

    /// As [`gather_f32`] for f64, with groups of 4 rows and 4 x 4 transposes.
    ///
    /// # Safety
    /// `ptrs[r]` readable for `kc` f64 for `r < h <= s <= 32`; `dst` writable for
    /// `kc * s + 8` f64; AVX2 available.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn gather_f64(
        ptrs: &[*const u8; MAX_GATHER],
        h: usize,
        s: usize,
        kc: usize,
        dst: *mut f64,
    ) {
        unsafe {
            let groups = s.div_ceil(4);
            let row = |r: usize| ptrs[r].cast::<f64>();
            let mut p = 0;
            while p + 4 <= kc {
                for g in (0..groups).rev() {
                    let mut v = [_mm256_setzero_pd(); 4];
                    for (q, x) in v.iter_mut().enumerate() {
                        let r = 4 * g + q;
                        if r < h {
                            *x = _mm256_loadu_pd(row(r).add(p));
                        }
                    }
                    let t0 = _mm256_unpacklo_pd(v[0], v[1]);
                    let t1 = _mm256_unpackhi_pd(v[0], v[1]);
                    let t2 = _mm256_unpacklo_pd(v[2], v[3]);
                    let t3 = _mm256_unpackhi_pd(v[2], v[3]);
                    let o = [
                        _mm256_permute2f128_pd::<0x20>(t0, t2),
                        _mm256_permute2f128_pd::<0x20>(t1, t3),
                        _mm256_permute2f128_pd::<0x31>(t0, t2),
                        _mm256_permute2f128_pd::<0x31>(t1, t3),
                    ];
                    for (q, x) in o.iter().enumerate() {
                        _mm256_storeu_pd(dst.add((p + q) * s + 4 * g), *x);
                    }
                }
                p += 4;
            }
            for p in p..kc {
                for r in 0..s {
                    *dst.add(p * s + r) = if r < h { *row(r).add(p) } else { 0.0 };
                }
            }
        }
    }
}

/// Packs rows `i0 .. i0 + rows` and depth `p0 .. p0 + kc` of op(A) into panels of `mr`
/// rows: panel `r` holds, for each p, the `mr` values of rows `i0 + r*mr ..` (zero past
/// the last row). `dst` holds `rows.div_ceil(mr) * mr * kc` elements.
///
/// Bounds are checked by slicing: the caller validated `a` for the whole op(A).
#[allow(clippy::too_many_arguments)]
pub(crate) fn pack_a<T: Float>(
    mr: usize,
    transa: bool,
    a: &[T],
    lda: usize,
    i0: usize,
    rows: usize,
    p0: usize,
    kc: usize,
    dst: &mut [T],
) {
    if transa {
        // A(i0 + i, p0 + p) = a[(p0 + p) * lda + i0 + i]: contiguous per p.
        pack_steps(mr, a, lda, i0, rows, p0, kc, dst);
    } else {
        // A(i0 + i, p0 + p) = a[(i0 + i) * lda + p0 + p]: rows gathered into columns.
        pack_gather(mr, a, lda, i0, rows, p0, kc, dst);
    }
}

/// Packs depth `p0 .. p0 + kc` and columns `j0 .. j0 + cols` of op(B) into panels of
/// `nr` columns: panel `q` holds, for each p, the `nr` values of columns `j0 + q*nr ..`
/// (zero past the last column). `dst` holds `cols.div_ceil(nr) * nr * kc` elements.
#[allow(clippy::too_many_arguments)]
pub(crate) fn pack_b<T: Float>(
    nr: usize,
    transb: bool,
    b: &[T],
    ldb: usize,
    p0: usize,
    kc: usize,
    j0: usize,
    cols: usize,
    dst: &mut [T],
) {
    if transb {
        // B(p0 + p, j0 + j) = b[(j0 + j) * ldb + p0 + p]: rows gathered into columns.
        pack_gather(nr, b, ldb, j0, cols, p0, kc, dst);
    } else {
        // B(p0 + p, j0 + j) = b[(p0 + p) * ldb + j0 + j]: contiguous per p.
        pack_steps(nr, b, ldb, j0, cols, p0, kc, dst);
    }
}

/// Panels of `width` lanes from a matrix stored one step per row: panel `r`, step `p`
/// (at `dst[(r kc + p) width ..]`) holds `src[(p0 + p) ld + off + r width ..]`, `width`
/// values, zero past `len`. (Transposed A; B as stored.)
///
/// Steps go in groups of `PSTEP`, panel by panel within a group: reading whole panels
/// (kc steps) at once strides by `ld`, which at ld = 512 f32 (2 KiB) falls into two L1
/// sets, and writing one step of every panel at once strides by the panel size (the same
/// conflicts on the write side). Full panels of the kernels' widths copy fixed-size
/// arrays, which compile to a few vector moves instead of one memcpy call per step.
/// Measured on 512 x 128 x 1600 with transposed A: 2.33 -> 2.06 ms.
#[allow(clippy::too_many_arguments)]
fn pack_steps<T: Float>(
    width: usize,
    src: &[T],
    ld: usize,
    off: usize,
    len: usize,
    p0: usize,
    kc: usize,
    dst: &mut [T],
) {
    const PSTEP: usize = 16;
    let panels = len.div_ceil(width);
    let full = len / width;
    for pb in (0..kc).step_by(PSTEP) {
        let ps = pb..(pb + PSTEP).min(kc);
        let g = (src, ld, off, p0, ps.clone(), full, kc);
        let done = match width {
            // MR of the AVX-512 / AVX2 / portable kernels, then NR.
            14 => copy_panels::<T, 14>(g, dst),
            6 => copy_panels::<T, 6>(g, dst),
            4 => copy_panels::<T, 4>(g, dst),
            32 => copy_panels::<T, 32>(g, dst),
            16 => copy_panels::<T, 16>(g, dst),
            8 => copy_panels::<T, 8>(g, dst),
            _ => 0,
        };
        for r in done..panels {
            let h = width.min(len - r * width);
            for p in ps.clone() {
                let from = &src[(p0 + p) * ld + off + r * width..][..h];
                let step = &mut dst[(r * kc + p) * width..][..width];
                step[..h].copy_from_slice(from);
                step[h..].fill(T::ZERO);
            }
        }
    }
}

/// Where [`copy_panels`] reads: (src, ld, off, p0, steps, full panels, kc).
type Steps<'a, T> = (
    &'a [T],
    usize,
    usize,
    usize,
    std::ops::Range<usize>,
    usize,
    usize,
);

/// Steps `ps` of the first `full` panels (`M` wide, `kc` steps each), as [`pack_steps`]:
/// `dst[(r kc + p) M + i] = src[(p0 + p) ld + off + r M + i]`. Returns `full`.
#[inline(always)]
fn copy_panels<T: Float, const M: usize>(g: Steps<'_, T>, dst: &mut [T]) -> usize {
    let (src, ld, off, p0, ps, full, kc) = g;
    for r in 0..full {
        for p in ps.clone() {
            let s: &[T; M] = src[(p0 + p) * ld + off + r * M..][..M]
                .try_into()
                .expect("M elements");
            let d: &mut [T; M] = (&mut dst[(r * kc + p) * M..][..M])
                .try_into()
                .expect("M elements");
            *d = *s;
        }
    }
    full
}

/// Panels of `width` lanes gathered from a matrix stored one panel lane per row: panel
/// `r`, step `p` holds `src[(first + r width + i) ld + p0 + p]` for lane `i`, zero past
/// `len`. (A as stored; transposed B.)
#[allow(clippy::too_many_arguments)]
fn pack_gather<T: Float>(
    width: usize,
    src: &[T],
    ld: usize,
    first: usize,
    len: usize,
    p0: usize,
    kc: usize,
    dst: &mut [T],
) {
    for r in 0..len.div_ceil(width) {
        // The panel plus whatever follows it (the gather may spill into it).
        let panel = &mut dst[r * width * kc..];
        let i = first + r * width;
        let h = width.min(len - r * width);
        let rows: [&[T]; MAX_GATHER] = std::array::from_fn(|ii| {
            if ii < h {
                &src[(i + ii) * ld + p0..][..kc]
            } else {
                &[]
            }
        });
        if gather_fast(&rows[..h], width, kc, panel) {
            continue;
        }
        for (ii, row) in rows[..h].iter().enumerate() {
            for (d, &x) in panel[ii..width * kc].iter_mut().step_by(width).zip(*row) {
                *d = x;
            }
        }
        if h < width {
            for step in panel[..width * kc].chunks_exact_mut(width) {
                step[h..].fill(T::ZERO);
            }
        }
    }
}
