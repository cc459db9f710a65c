//! The crate's thread pool: a low-latency fork-join.
//!
//! Waking a sleeping Rayon worker costs about 10 us on the machines this library is
//! measured on, more than a whole 64 x 64 GEMM takes on one core. This pool keeps its
//! workers spinning for a short while after each job (as OpenBLAS does), so that a burst
//! of small kernels hands work over in well under a microsecond. It was written because
//! measurement showed Rayon's wake-up latency dominating small products, and replaced
//! Rayon everywhere so that no second set of threads competes for the cores. Kernels
//! reach it through [`crate::threading`].
//!
//! [`run_tasks`] runs `f(0) .. f(n - 1)` on the calling thread and up to
//! `threading::get_num_threads() - 1` workers. Which thread runs a task never changes what
//! the task computes, so kernels built on it stay deterministic. Only one job runs at a
//! time; a call made while another job is in flight (a nested call, or a second Python
//! thread) simply runs its tasks on the calling thread.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// How long a worker spins for the next job before parking.
const SPIN_FOR: Duration = Duration::from_micros(200);
/// Most tasks in one job (the ticket keeps task counts in 16 bits).
pub const MAX_TASKS: usize = 0xFFFF;

/// The job being run: a type-erased `&dyn Fn(usize) + Sync` living on the caller's stack.
struct Job {
    f: *const (dyn Fn(usize) + Sync),
}

struct Shared {
    /// generation (32 bits) | total tasks (16 bits) | next task to claim (16 bits).
    ticket: AtomicU64,
    /// Tasks of the current job finished (successfully or not).
    done: AtomicUsize,
    /// Set when a task of the current job panicked.
    panicked: AtomicBool,
    /// The current job (valid while the current generation has unfinished tasks).
    job: AtomicPtr<Job>,
    /// How many workers may take part in the current job.
    active: AtomicUsize,
    /// Serialises submitters: one job at a time.
    submit: Mutex<()>,
    /// The workers, each with its thread handle and parked flag.
    workers: Mutex<Vec<(Thread, &'static AtomicBool)>>,
    count: AtomicUsize,
}

static SHARED: OnceLock<Shared> = OnceLock::new();

fn shared() -> &'static Shared {
    SHARED.get_or_init(|| Shared {
        ticket: AtomicU64::new(0),
        done: AtomicUsize::new(0),
        panicked: AtomicBool::new(false),
        job: AtomicPtr::new(std::ptr::null_mut()),
        active: AtomicUsize::new(0),
        submit: Mutex::new(()),
        workers: Mutex::new(Vec::new()),
        count: AtomicUsize::new(0),
    })
}

#[inline]
fn unpack(t: u64) -> (u64, usize, usize) {
    (
        t >> 32,
        ((t >> 16) & 0xFFFF) as usize,
        (t & 0xFFFF) as usize,
    )
}

/// Claims and runs tasks of generation `gen` until none are left.
fn work_on(s: &Shared, gen: u64) {
    loop {
        let t = s.ticket.load(Ordering::Acquire);
        let (g, total, next) = unpack(t);
        if g != gen || next >= total {
            return;
        }
        if s.ticket
            .compare_exchange_weak(t, t + 1, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            continue;
        }
        // SAFETY: we claimed task `next` of generation `gen`, so that job has an unfinished
        // task (ours) and its submitter is still waiting in `run_tasks` for `done` to reach
        // `total`: the `Job` and the closure it points to are alive until we increment
        // `done` below. The pointer was stored before the ticket of `gen` was published
        // (Release) and our successful compare-exchange read that ticket (Acquire).
        let f = unsafe { &*(*s.job.load(Ordering::Acquire)).f };
        if catch_unwind(AssertUnwindSafe(|| f(next))).is_err() {
            s.panicked.store(true, Ordering::Release);
        }
        s.done.fetch_add(1, Ordering::AcqRel);
    }
}

fn worker_loop(index: usize, parked: &'static AtomicBool) {
    let s = shared();
    let mut seen = unpack(s.ticket.load(Ordering::Acquire)).0;
    loop {
        // Wait for a new generation: spin, then park.
        let start = Instant::now();
        let mut spins = 0u32;
        let gen = loop {
            let g = unpack(s.ticket.load(Ordering::Acquire)).0;
            if g != seen {
                break g;
            }
            spins = spins.wrapping_add(1);
            if spins < 2048 {
                std::hint::spin_loop();
                continue;
            }
            // Past the first microseconds, poll with sched_yield: a thread of another pool
            // (or another process) that wants this core gets it at once.
            if !spins.is_multiple_of(16) || start.elapsed() < SPIN_FOR {
                thread::yield_now();
                continue;
            }
            parked.store(true, Ordering::SeqCst);
            // Re-check after announcing we park: a submitter that published before this
            // load is seen here; one that publishes after it sees `parked` and unparks us.
            if unpack(s.ticket.load(Ordering::SeqCst)).0 == seen {
                thread::park_timeout(Duration::from_millis(50));
            }
            parked.store(false, Ordering::SeqCst);
        };
        seen = gen;
        if index < s.active.load(Ordering::Acquire) {
            work_on(s, gen);
        }
    }
}

/// Makes sure at least `n` workers exist.
fn ensure_workers(s: &'static Shared, n: usize) {
    if s.count.load(Ordering::Acquire) >= n {
        return;
    }
    let mut ws = match s.workers.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    while ws.len() < n {
        let index = ws.len();
        let parked: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
        let spawned = thread::Builder::new()
            .name(format!("ferrograd-spin-{index}"))
            .spawn(move || worker_loop(index, parked));
        match spawned {
            Ok(h) => ws.push((h.thread().clone(), parked)),
            Err(_) => break, // fewer workers: the caller does more of the tasks
        }
    }
    s.count.store(ws.len(), Ordering::Release);
}

/// Runs `f(i)` for every `i` in `0..n_tasks`, in parallel on up to `threads` threads (the
/// caller included), returning when all are done. A panic in a task is re-raised here
/// after every task has finished.
pub fn run_tasks<F: Fn(usize) + Sync>(n_tasks: usize, threads: usize, f: F) {
    if n_tasks == 0 {
        return;
    }
    let s = shared();
    let guard = if threads > 1 && n_tasks > 1 && n_tasks <= MAX_TASKS {
        s.submit.try_lock().ok()
    } else {
        None
    };
    let Some(_guard) = guard else {
        // Serially, with the same contract: every task runs, then the first panic is
        // re-raised.
        let mut first_panic = None;
        for i in 0..n_tasks {
            if let Err(e) = catch_unwind(AssertUnwindSafe(|| f(i))) {
                first_panic.get_or_insert(e);
            }
        }
        if let Some(e) = first_panic {
            resume_unwind(e);
        }
        return;
    };
    let helpers = (threads - 1).min(n_tasks - 1);
    ensure_workers(s, helpers);
    let dyn_f: &(dyn Fn(usize) + Sync) = &f;
    // SAFETY (lifetime erasure): `job` and `f` outlive every use the workers make of them:
    // workers dereference the pointer only after claiming a task of this generation, and
    // this function does not return (or unwind) before `done` counts every task of it.
    let dyn_f: &'static (dyn Fn(usize) + Sync) = unsafe { std::mem::transmute(dyn_f) };
    let job = Job { f: dyn_f };
    s.job
        .store(&job as *const Job as *mut Job, Ordering::Release);
    s.done.store(0, Ordering::Release);
    s.panicked.store(false, Ordering::Release);
    s.active.store(helpers, Ordering::Release);
    let gen = unpack(s.ticket.load(Ordering::Acquire)).0.wrapping_add(1) & 0xFFFF_FFFF;
    s.ticket
        .store((gen << 32) | ((n_tasks as u64) << 16), Ordering::SeqCst);
    {
        let ws = match s.workers.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        for (t, parked) in ws.iter().take(helpers) {
            if parked.load(Ordering::SeqCst) {
                t.unpark();
            }
        }
    }
    work_on(s, gen);
    let start = Instant::now();
    let mut spins = 0u32;
    while s.done.load(Ordering::Acquire) < n_tasks {
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(64) && start.elapsed() > SPIN_FOR {
            thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
    if s.panicked.load(Ordering::Acquire) {
        resume_unwind(Box::new("a ferrograd kernel task panicked"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn every_task_runs_exactly_once() {
        for threads in 1..=4 {
            for n in [1usize, 2, 3, 7, 64, 1000] {
                let hits: Vec<AtomicU32> = (0..n).map(|_| AtomicU32::new(0)).collect();
                run_tasks(n, threads, |i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
            }
        }
    }

    #[test]
    fn many_jobs_back_to_back_and_after_parking() {
        let total = AtomicUsize::new(0);
        for round in 0..2000 {
            run_tasks(3, 2, |i| {
                total.fetch_add(i + 1, Ordering::Relaxed);
            });
            if round == 1000 {
                thread::sleep(Duration::from_millis(5)); // workers park
            }
        }
        assert_eq!(total.load(Ordering::Relaxed), 2000 * 6);
    }

    #[test]
    fn nested_and_concurrent_calls_run_serially() {
        let total = AtomicUsize::new(0);
        run_tasks(4, 2, |_| {
            run_tasks(3, 2, |_| {
                total.fetch_add(1, Ordering::Relaxed);
            });
        });
        assert_eq!(total.load(Ordering::Relaxed), 12);
        let hs: Vec<_> = (0..3)
            .map(|_| {
                thread::spawn(|| {
                    let c = AtomicUsize::new(0);
                    for _ in 0..200 {
                        run_tasks(5, 2, |_| {
                            c.fetch_add(1, Ordering::Relaxed);
                        });
                    }
                    c.load(Ordering::Relaxed)
                })
            })
            .collect();
        for h in hs {
            assert_eq!(h.join().unwrap(), 1000);
        }
    }

    #[test]
    fn a_panicking_task_is_reraised_after_all_finish() {
        let done = AtomicUsize::new(0);
        let r = catch_unwind(AssertUnwindSafe(|| {
            run_tasks(8, 2, |i| {
                done.fetch_add(1, Ordering::Relaxed);
                if i == 5 {
                    panic!("boom");
                }
            })
        }));
        assert!(r.is_err());
        assert_eq!(done.load(Ordering::Relaxed), 8);
        // The pool still works afterwards.
        let c = AtomicUsize::new(0);
        run_tasks(4, 2, |_| {
            c.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(c.load(Ordering::Relaxed), 4);
    }
}
