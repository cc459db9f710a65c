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
    let panels = rows.div_ceil(mr);
    for (r, panel) in dst.chunks_exact_mut(mr * kc).take(panels).enumerate() {
        let i = i0 + r * mr;
        let h = mr.min(rows - r * mr);
        if !transa {
            // A(i + ii, p0 + p) = a[(i + ii) * lda + p0 + p]: gather rows into columns.
            for ii in 0..h {
                let src = &a[(i + ii) * lda + p0..][..kc];
                for (d, &x) in panel[ii..].iter_mut().step_by(mr).zip(src) {
                    *d = x;
                }
            }
            if h < mr {
                for step in panel.chunks_exact_mut(mr) {
                    step[h..].fill(T::ZERO);
                }
            }
        } else {
            // A(i + ii, p0 + p) = a[(p0 + p) * lda + i + ii]: contiguous per p.
            for (p, step) in panel.chunks_exact_mut(mr).enumerate() {
                let src = &a[(p0 + p) * lda + i..][..h];
                step[..h].copy_from_slice(src);
                step[h..].fill(T::ZERO);
            }
        }
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
    let panels = cols.div_ceil(nr);
    for (q, panel) in dst.chunks_exact_mut(nr * kc).take(panels).enumerate() {
        let j = j0 + q * nr;
        let w = nr.min(cols - q * nr);
        if !transb {
            // B(p0 + p, j + jj) = b[(p0 + p) * ldb + j + jj]: contiguous per p.
            for (p, step) in panel.chunks_exact_mut(nr).enumerate() {
                let src = &b[(p0 + p) * ldb + j..][..w];
                step[..w].copy_from_slice(src);
                step[w..].fill(T::ZERO);
            }
        } else {
            // B(p0 + p, j + jj) = b[(j + jj) * ldb + p0 + p]: gather rows into columns.
            for jj in 0..w {
                let src = &b[(j + jj) * ldb + p0..][..kc];
                for (d, &x) in panel[jj..].iter_mut().step_by(nr).zip(src) {
                    *d = x;
                }
            }
            if w < nr {
                for step in panel.chunks_exact_mut(nr) {
                    step[w..].fill(T::ZERO);
                }
            }
        }
    }
}
