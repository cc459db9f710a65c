//! The thread pool every kernel runs on.
//!
//! One Rayon pool, sized from `FERROGRAD_NUM_THREADS` (or the number of CPUs) when first
//! used and rebuilt by [`set_num_threads`]. Kernels never let the pool's scheduling decide
//! a result: they split work into blocks of fixed size and reduce in a fixed order.

use crate::{KernelError, Result};
use rayon::{ThreadPool, ThreadPoolBuilder};
use std::sync::{Arc, OnceLock, RwLock};

static POOL: OnceLock<RwLock<Arc<ThreadPool>>> = OnceLock::new();

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

fn build(n: usize) -> Result<ThreadPool> {
    ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("ferrograd-{i}"))
        .build()
        .map_err(|e| KernelError::InvalidArgument {
            op: "set_num_threads",
            detail: format!("could not start {n} threads: {e}"),
        })
}

fn cell() -> &'static RwLock<Arc<ThreadPool>> {
    POOL.get_or_init(|| {
        let pool = build(default_threads())
            .or_else(|_| build(1))
            .expect("a one-thread pool can always be built");
        RwLock::new(Arc::new(pool))
    })
}

fn pool() -> Arc<ThreadPool> {
    match cell().read() {
        Ok(g) => Arc::clone(&g),
        Err(poisoned) => Arc::clone(&poisoned.into_inner()),
    }
}

/// Sets the number of threads kernels use (at least 1).
pub fn set_num_threads(n: usize) -> Result<()> {
    if n == 0 {
        return Err(KernelError::InvalidArgument {
            op: "set_num_threads",
            detail: "expected at least 1 thread, given 0".into(),
        });
    }
    let new = Arc::new(build(n)?);
    let mut g = match cell().write() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    *g = new;
    Ok(())
}

/// The number of threads kernels use.
pub fn get_num_threads() -> usize {
    pool().current_num_threads()
}

/// Runs `f` inside the kernel pool, so that Rayon calls within it use that pool.
pub fn install<R: Send, F: FnOnce() -> R + Send>(f: F) -> R {
    if rayon::current_thread_index().is_some() {
        // Already on a pool thread (nested kernel call): stay there.
        return f();
    }
    let p = pool();
    p.install(f)
}
