//! The thread count every kernel uses, and the parallel loops kernels are built from.
//!
//! All parallel work of the crate runs on one pool, [`crate::spin`]: the calling thread
//! plus up to `get_num_threads() - 1` workers, spawned when first needed. The count comes
//! from `FERROGRAD_NUM_THREADS` (or the number of CPUs) when first read and is changed by
//! [`set_num_threads`]. Kernels never let the pool's scheduling decide a result: they split
//! work into blocks of fixed size and reduce in a fixed order.

use crate::{spin, KernelError, Result};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The configured thread count; 0 until first read.
static THREADS: AtomicUsize = AtomicUsize::new(0);

fn default_threads() -> usize {
    if let Ok(v) = std::env::var("FERROGRAD_NUM_THREADS") {
        if let Ok(n) = v.trim().parse::<usize>() {
            if n >= 1 {
                return n;
            }
        }
    }
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Sets the number of threads kernels use (at least 1).
pub fn set_num_threads(n: usize) -> Result<()> {
    if n == 0 {
        return Err(KernelError::InvalidArgument {
            op: "set_num_threads",
            detail: "expected at least 1 thread, given 0".into(),
        });
    }
    THREADS.store(n, Ordering::Relaxed);
    Ok(())
}

/// The number of threads kernels use.
pub fn get_num_threads() -> usize {
    #[cfg(test)]
    if let Some(n) = OVERRIDE.with(|o| o.get()) {
        return n;
    }
    match THREADS.load(Ordering::Relaxed) {
        0 => {
            let n = default_threads();
            // Another thread may have set a count meanwhile: keep it.
            match THREADS.compare_exchange(0, n, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => n,
                Err(set) => set,
            }
        }
        n => n,
    }
}

#[cfg(test)]
thread_local! {
    static OVERRIDE: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with kernels called from this thread using `n` threads (tests only: unlike
/// [`set_num_threads`] it does not race with tests running in parallel).
#[cfg(test)]
pub(crate) fn with_threads<R>(n: usize, f: impl FnOnce() -> R) -> R {
    let old = OVERRIDE.with(|o| o.replace(Some(n)));
    let r = f();
    OVERRIDE.with(|o| o.set(old));
    r
}

/// Runs `f(i)` for every `i` in `0..n_tasks` on the kernel pool, returning when all are
/// done.
pub(crate) fn run_tasks<F: Fn(usize) + Sync>(n_tasks: usize, f: F) {
    spin::run_tasks(n_tasks, get_num_threads(), f);
}

/// Most tasks a job is cut into; larger jobs get larger tasks. Claiming a task costs
/// about 0.2 us (the pool's counters bounce between cores): measured on Zen 4, exp over
/// 4M floats in 1024 tasks ran 1.5x slower than in 64.
pub(crate) const MAX_TASKS: usize = 64;

/// Units of work per task for a job of `len` units: at least `min`, and large enough that
/// the job has at most about [`MAX_TASKS`] tasks. Depends on the sizes only, never on the
/// thread count.
pub(crate) fn task_len(len: usize, min: usize) -> usize {
    len.div_ceil(MAX_TASKS).max(min).max(1)
}

/// A pointer that tasks share to write disjoint parts of one exclusively borrowed slice.
pub(crate) struct SendPtr<T>(*mut T);
impl<T> Clone for SendPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SendPtr<T> {}
// SAFETY: the pointer is only dereferenced on disjoint parts of the slice it came from, by
// distinct tasks, while the `&mut [T]` is borrowed for the whole parallel call; `T: Send`
// makes handing those parts to other threads sound.
unsafe impl<T: Send> Send for SendPtr<T> {}
unsafe impl<T: Send> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    pub(crate) fn new(s: &mut [T]) -> Self {
        SendPtr(s.as_mut_ptr())
    }

    #[inline(always)]
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}

/// Runs `f(i, &mut items[i])` for every item, in parallel.
pub(crate) fn for_each_mut<I: Send, F: Fn(usize, &mut I) + Sync>(items: &mut [I], f: F) {
    let n = items.len();
    let p = SendPtr::new(items);
    run_tasks(n, |i| {
        // SAFETY: `run_tasks` runs each i in 0..n exactly once, so task i is the only user
        // of `items[i]`, which is in bounds; `items` is exclusively borrowed until
        // `run_tasks` returns.
        let it = unsafe { &mut *p.get().add(i) };
        f(i, it)
    });
}

/// Runs `f(c, part)` for every part `c` of `out` cut into parts of `chunk` elements (the
/// last one shorter), in parallel.
pub(crate) fn for_each_chunk_mut<T: Send, F: Fn(usize, &mut [T]) + Sync>(
    out: &mut [T],
    chunk: usize,
    f: F,
) {
    let (len, chunk) = (out.len(), chunk.max(1));
    let p = SendPtr::new(out);
    run_tasks(len.div_ceil(chunk), |c| {
        let lo = c * chunk;
        let hi = (lo + chunk).min(len);
        // SAFETY: c < len.div_ceil(chunk), so lo < hi <= len: the part is in bounds.
        // Parts of distinct c are disjoint ([c * chunk, (c + 1) * chunk)), each c runs
        // exactly once, and `out` is exclusively borrowed until `run_tasks` returns.
        let part = unsafe { std::slice::from_raw_parts_mut(p.get().add(lo), hi - lo) };
        f(c, part)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_slice_once() {
        for threads in 1..=3 {
            for (len, chunk) in [(0usize, 4usize), (1, 4), (10, 3), (12, 4), (1000, 7)] {
                let mut v = vec![0usize; len];
                with_threads(threads, || {
                    for_each_chunk_mut(&mut v, chunk, |c, part| {
                        assert!(part.len() <= chunk);
                        for (j, x) in part.iter_mut().enumerate() {
                            *x += c * chunk + j + 1;
                        }
                    })
                });
                assert!(v.iter().enumerate().all(|(i, &x)| x == i + 1));
                let mut items: Vec<usize> = vec![0; len];
                with_threads(threads, || for_each_mut(&mut items, |i, x| *x += i));
                assert!(items.iter().enumerate().all(|(i, &x)| x == i));
            }
        }
    }
}
