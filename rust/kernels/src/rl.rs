//! Reinforcement-learning kernels: Bellman backups for finite MDPs.
//!
//! The model is stored sparse, in compressed rows over (state, action) pairs: row
//! `r = s * n_actions + a` lists the successors `indices[indptr[r]..indptr[r + 1]]` of
//! action `a` in state `s` with weights `weights[k] = P(s' | s, a) * (1 - terminated)` (the
//! probability of continuing to `s'`; transitions that end the episode contribute their
//! reward only), and `reward[r]` is the expected immediate reward of the pair. A backup is
//!
//! ```text
//! Q[s, a] = reward[s, a] + gamma * sum_k weights[k] * v[indices[k]]      (row s * A + a)
//! ```
//!
//! followed by the max over actions (optimality backup) or the value of a given action
//! (policy backup). Toy-text models have at most a handful of successors per row, so the
//! sparse form costs O(nnz) per sweep where the dense (S, A, S) form costs O(S^2 A).
//!
//! Work is split over states in blocks whose size depends only on the number of states;
//! each row's sum runs in storage order and the greatest change is a max (order-free), so
//! results are bitwise identical for any thread count. Row bounds and successor indices
//! are checked as they are read: a malformed model returns an error naming the first bad
//! row or index and is never read out of bounds.

use crate::error::KernelError;
use crate::threading::{for_each_mut, task_len, SendPtr};
use crate::Float;

const OP_OPT: &str = "bellman_optimality_backup";
const OP_POL: &str = "bellman_policy_backup";

/// Least number of states per parallel task: below it one task does the whole sweep.
const MIN_BLOCK: usize = 512;

/// A finite MDP in compressed-row form (see the module documentation).
#[derive(Clone, Copy, Debug)]
pub struct CsrModel<'a, T> {
    pub indptr: &'a [i64],
    pub indices: &'a [i64],
    pub weights: &'a [T],
    pub reward: &'a [T],
    pub n_states: usize,
    pub n_actions: usize,
}

impl<'a, T: Float> CsrModel<'a, T> {
    /// Checks the lengths that can be checked without reading the rows: `indptr` has
    /// `S * A + 1` entries starting at 0 and ending at `indices.len() == weights.len()`,
    /// `reward` has `S * A`. Rows are checked as they are read.
    fn check(&self, op: &'static str) -> crate::Result<usize> {
        let rows = crate::error::checked_product(op, &[self.n_states, self.n_actions])?;
        if self.n_actions == 0 {
            return Err(KernelError::InvalidArgument {
                op,
                detail: "n_actions must be at least 1".into(),
            });
        }
        if self.indptr.len() != rows + 1 {
            return Err(KernelError::ShapeMismatch {
                op,
                detail: format!(
                    "indptr must have n_states * n_actions + 1 = {} entries, given {}",
                    rows + 1,
                    self.indptr.len()
                ),
            });
        }
        if self.reward.len() != rows {
            return Err(KernelError::ShapeMismatch {
                op,
                detail: format!(
                    "reward must have n_states * n_actions = {rows} entries, given {}",
                    self.reward.len()
                ),
            });
        }
        if self.indices.len() != self.weights.len() {
            return Err(KernelError::ShapeMismatch {
                op,
                detail: format!(
                    "indices ({}) and weights ({}) must have the same length",
                    self.indices.len(),
                    self.weights.len()
                ),
            });
        }
        if self.indptr[0] != 0 || self.indptr[rows] != self.indices.len() as i64 {
            return Err(KernelError::InvalidArgument {
                op,
                detail: format!(
                    "indptr must start at 0 and end at the number of entries {}, given {} .. {}",
                    self.indices.len(),
                    self.indptr[0],
                    self.indptr[rows]
                ),
            });
        }
        Ok(rows)
    }

    /// `reward[r] + gamma * sum_k weights[k] * v[indices[k]]` over row `r`. A row whose
    /// bounds are not increasing within `[0, nnz]`, or a successor outside `[0, S)`, sets
    /// `*bad` (the sweep then fails and [`Self::first_error`] names the problem) and
    /// contributes 0: checking as the entries are read costs less than a separate
    /// validation pass over the indices.
    #[inline(always)]
    fn row_value(&self, r: usize, v: &[T], gamma: T, bad: &mut bool) -> T {
        let (lo, hi) = (self.indptr[r], self.indptr[r + 1]);
        if !(0 <= lo && lo <= hi && hi <= self.indices.len() as i64) {
            *bad = true;
            return T::ZERO;
        }
        let (lo, hi) = (lo as usize, hi as usize);
        let mut acc = T::ZERO;
        for (&j, &w) in self.indices[lo..hi].iter().zip(&self.weights[lo..hi]) {
            // A negative j wraps to a huge usize, which `get` rejects like any j >= S.
            match v.get(j as usize) {
                Some(&vj) => acc += w * vj,
                None => *bad = true,
            }
        }
        self.reward[r] + gamma * acc
    }

    /// The first malformed row or successor among rows `0..rows` (slow path, run only
    /// after a sweep found one).
    fn first_error(&self, op: &'static str, rows: usize) -> KernelError {
        let nnz = self.indices.len() as i64;
        for r in 0..rows {
            let (lo, hi) = (self.indptr[r], self.indptr[r + 1]);
            if !(0 <= lo && lo <= hi && hi <= nnz) {
                return KernelError::InvalidArgument {
                    op,
                    detail: format!("indptr is not non-decreasing within [0, {nnz}] at row {r}"),
                };
            }
            for &j in &self.indices[lo as usize..hi as usize] {
                if j < 0 || j as usize >= self.n_states {
                    return KernelError::InvalidArgument {
                        op,
                        detail: format!(
                            "successor index {j} at row {r} is outside [0, {})",
                            self.n_states
                        ),
                    };
                }
            }
        }
        KernelError::InvalidArgument {
            op,
            detail: "malformed model".into(),
        }
    }
}

fn check_vec<T>(op: &'static str, what: &'static str, v: &[T], n: usize) -> crate::Result<()> {
    if v.len() != n {
        return Err(KernelError::ShapeMismatch {
            op,
            detail: format!("{what} must have n_states = {n} entries, given {}", v.len()),
        });
    }
    Ok(())
}

/// Folds `|a - b|` into the running greatest change `delta`, noting NaNs in `nan`. Written
/// as selects rather than branches: value-dependent branches mispredict on real data
/// (random values made a sweep 3-4x slower than constant ones).
#[inline(always)]
fn track_change<T: Float>(delta: &mut T, nan: &mut bool, a: T, b: T) {
    let d = (a - b).abs();
    *nan |= d.is_nan();
    *delta = if d > *delta { d } else { *delta };
}

/// Runs `f(lo, hi) -> (greatest change, malformed?)` over blocks of states in parallel;
/// combines the blocks' greatest changes (a max: the same for any thread count), or
/// returns the model's first error.
fn over_blocks<T: Float, F>(
    m: &CsrModel<'_, T>,
    op: &'static str,
    rows: usize,
    f: F,
) -> crate::Result<T>
where
    F: Fn(usize, usize) -> (T, bool) + Sync,
{
    let n_states = m.n_states;
    let block = task_len(n_states, MIN_BLOCK);
    let n_blocks = n_states.div_ceil(block);
    let mut results: Vec<(T, bool)> = vec![(T::ZERO, false); n_blocks];
    for_each_mut(&mut results, |b, slot| {
        let lo = b * block;
        *slot = f(lo, (lo + block).min(n_states));
    });
    if results.iter().any(|r| r.1) {
        return Err(m.first_error(op, rows));
    }
    Ok(results.iter().fold(T::ZERO, |acc, r| {
        if acc.is_nan() || r.0.is_nan() {
            T::NAN
        } else if r.0 > acc {
            r.0
        } else {
            acc
        }
    }))
}

/// One Bellman optimality backup: `v_out[s] = max_a Q[s, a]`, `policy[s]` the first
/// maximising action, `q_out` (when given, `S * A`) every `Q[s, a]`. Returns
/// `max_s |v_out[s] - v[s]|`.
pub fn bellman_optimality_backup<T: Float>(
    m: &CsrModel<'_, T>,
    v: &[T],
    gamma: T,
    v_out: &mut [T],
    policy: &mut [i64],
    q_out: Option<&mut [T]>,
) -> crate::Result<T> {
    let rows = m.check(OP_OPT)?;
    let s_n = m.n_states;
    check_vec(OP_OPT, "v", v, s_n)?;
    check_vec(OP_OPT, "v_out", v_out, s_n)?;
    check_vec(OP_OPT, "policy", policy, s_n)?;
    let q_ptr = match q_out {
        Some(q) => {
            if q.len() != rows {
                return Err(KernelError::ShapeMismatch {
                    op: OP_OPT,
                    detail: format!(
                        "q_out must have n_states * n_actions = {rows} entries, given {}",
                        q.len()
                    ),
                });
            }
            Some(SendPtr::new(q))
        }
        None => None,
    };
    let (vp, pp) = (SendPtr::new(v_out), SendPtr::new(policy));
    let a_n = m.n_actions;
    over_blocks(m, OP_OPT, rows, |lo, hi| {
        // SAFETY (all three): lo < hi <= s_n = v_out.len() = policy.len(), and
        // hi * a_n <= rows = q.len(); blocks cover disjoint state ranges, so these parts
        // are disjoint between tasks; the slices are exclusively borrowed until
        // over_blocks returns.
        let vo = unsafe { std::slice::from_raw_parts_mut(vp.get().add(lo), hi - lo) };
        let po = unsafe { std::slice::from_raw_parts_mut(pp.get().add(lo), hi - lo) };
        let qo = q_ptr.map(|qp| unsafe {
            std::slice::from_raw_parts_mut(qp.get().add(lo * a_n), (hi - lo) * a_n)
        });
        optimality_block(*m, v, gamma, lo, vo, po, qo)
    })
}

/// The optimality backup of states `lo .. lo + v_out.len()` (outputs are that block's
/// parts); returns (greatest change, malformed?). Slices as arguments let the compiler
/// keep the model's pointers in registers.
fn optimality_block<T: Float>(
    m: CsrModel<'_, T>,
    v: &[T],
    gamma: T,
    lo: usize,
    v_out: &mut [T],
    policy: &mut [i64],
    mut q_out: Option<&mut [T]>,
) -> (T, bool) {
    let a_n = m.n_actions;
    let (mut delta, mut nan, mut bad) = (T::ZERO, false, false);
    for (i, (vo, po)) in v_out.iter_mut().zip(policy.iter_mut()).enumerate() {
        let s = lo + i;
        let mut best = T::ZERO;
        let mut arg = 0usize;
        for a in 0..a_n {
            let q = m.row_value(s * a_n + a, v, gamma, &mut bad);
            if let Some(qo) = q_out.as_deref_mut() {
                qo[i * a_n + a] = q;
            }
            // the first maximum, as selects (see track_change)
            let take = a == 0 || q > best;
            best = if take { q } else { best };
            arg = if take { a } else { arg };
        }
        *vo = best;
        *po = arg as i64;
        track_change(&mut delta, &mut nan, best, v[s]);
    }
    (if nan { T::NAN } else { delta }, bad)
}

/// One backup of a fixed deterministic policy: `v_out[s] = Q[s, policy[s]]`. Returns
/// `max_s |v_out[s] - v[s]|`. Actions outside `[0, n_actions)` are an error.
pub fn bellman_policy_backup<T: Float>(
    m: &CsrModel<'_, T>,
    v: &[T],
    gamma: T,
    policy: &[i64],
    v_out: &mut [T],
) -> crate::Result<T> {
    let rows = m.check(OP_POL)?;
    let s_n = m.n_states;
    check_vec(OP_POL, "v", v, s_n)?;
    check_vec(OP_POL, "policy", policy, s_n)?;
    check_vec(OP_POL, "v_out", v_out, s_n)?;
    let a_n = m.n_actions;
    if let Some((s, &a)) = policy
        .iter()
        .enumerate()
        .find(|(_, &a)| a < 0 || a as usize >= a_n)
    {
        return Err(KernelError::InvalidArgument {
            op: OP_POL,
            detail: format!("policy[{s}] = {a} is outside [0, {a_n})"),
        });
    }
    let vp = SendPtr::new(v_out);
    over_blocks(m, OP_POL, rows, |lo, hi| {
        let (mut delta, mut nan, mut bad) = (T::ZERO, false, false);
        for s in lo..hi {
            let x = m.row_value(s * a_n + policy[s] as usize, v, gamma, &mut bad);
            // SAFETY: s < s_n = v_out.len(); blocks write disjoint state ranges; v_out is
            // exclusively borrowed for the call.
            unsafe { *vp.get().add(s) = x };
            track_change(&mut delta, &mut nan, x, v[s]);
        }
        (if nan { T::NAN } else { delta }, bad)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::threading::with_threads;

    /// A random sparse model with `k` successors per row (weights sum to at most 1).
    fn model(
        s_n: usize,
        a_n: usize,
        k: usize,
        seed: u64,
    ) -> (Vec<i64>, Vec<i64>, Vec<f64>, Vec<f64>) {
        let mut x = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut next = || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 11) as f64 / (1u64 << 53) as f64
        };
        let rows = s_n * a_n;
        let indptr: Vec<i64> = (0..=rows).map(|r| (r * k) as i64).collect();
        let indices: Vec<i64> = (0..rows * k)
            .map(|_| (next() * s_n as f64) as i64)
            .collect();
        let weights: Vec<f64> = (0..rows * k).map(|_| next() / k as f64).collect();
        let reward: Vec<f64> = (0..rows).map(|_| next() * 2.0 - 1.0).collect();
        (indptr, indices, weights, reward)
    }

    fn naive(m: &CsrModel<'_, f64>, v: &[f64], g: f64) -> (Vec<f64>, Vec<i64>, Vec<f64>) {
        let (s_n, a_n) = (m.n_states, m.n_actions);
        let mut q = vec![0.0; s_n * a_n];
        for (r, qr) in q.iter_mut().enumerate() {
            let mut acc = 0.0;
            for k in m.indptr[r] as usize..m.indptr[r + 1] as usize {
                acc += m.weights[k] * v[m.indices[k] as usize];
            }
            *qr = m.reward[r] + g * acc;
        }
        let mut vo = vec![0.0; s_n];
        let mut po = vec![0i64; s_n];
        for s in 0..s_n {
            let row = &q[s * a_n..(s + 1) * a_n];
            let mut b = 0;
            for a in 1..a_n {
                if row[a] > row[b] {
                    b = a;
                }
            }
            vo[s] = row[b];
            po[s] = b as i64;
        }
        (vo, po, q)
    }

    #[test]
    fn optimality_backup_matches_naive_and_any_thread_count() {
        let (s_n, a_n) = (2000, 3);
        let (ip, ix, w, r) = model(s_n, a_n, 4, 7);
        let m = CsrModel {
            indptr: &ip,
            indices: &ix,
            weights: &w,
            reward: &r,
            n_states: s_n,
            n_actions: a_n,
        };
        let v: Vec<f64> = (0..s_n).map(|i| (i as f64 * 0.37).sin()).collect();
        let (vr, pr, qr) = naive(&m, &v, 0.9);
        let mut outs = Vec::new();
        for threads in 1..=3 {
            let mut vo = vec![0.0; s_n];
            let mut po = vec![0i64; s_n];
            let mut q = vec![0.0; s_n * a_n];
            let d = with_threads(threads, || {
                bellman_optimality_backup(&m, &v, 0.9, &mut vo, &mut po, Some(&mut q)).unwrap()
            });
            for s in 0..s_n {
                assert!((vo[s] - vr[s]).abs() < 1e-12);
            }
            assert_eq!(po, pr);
            for i in 0..q.len() {
                assert!((q[i] - qr[i]).abs() < 1e-12);
            }
            let dref = v
                .iter()
                .zip(&vo)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert_eq!(d, dref);
            outs.push((vo, po, q, d));
        }
        assert!(outs.windows(2).all(|p| p[0] == p[1]));
    }

    #[test]
    fn policy_backup_matches_naive() {
        let (s_n, a_n) = (700, 2);
        let (ip, ix, w, r) = model(s_n, a_n, 3, 3);
        let m = CsrModel {
            indptr: &ip,
            indices: &ix,
            weights: &w,
            reward: &r,
            n_states: s_n,
            n_actions: a_n,
        };
        let v: Vec<f64> = (0..s_n).map(|i| i as f64 * 0.01).collect();
        let pol: Vec<i64> = (0..s_n).map(|s| (s % 2) as i64).collect();
        let (_, _, q) = naive(&m, &v, 0.5);
        let mut vo = vec![0.0; s_n];
        with_threads(2, || {
            bellman_policy_backup(&m, &v, 0.5, &pol, &mut vo).unwrap()
        });
        for s in 0..s_n {
            assert!((vo[s] - q[s * a_n + pol[s] as usize]).abs() < 1e-12);
        }
    }

    #[test]
    fn malformed_models_are_errors() {
        let ip = vec![0i64, 1, 2];
        let w = vec![1.0f64, 1.0];
        let r = vec![0.0f64, 0.0];
        let v = vec![0.0f64; 2];
        let mut vo = vec![0.0f64; 2];
        let mut po = vec![0i64; 2];
        for bad in [vec![0i64, 2], vec![0, -1]] {
            let m = CsrModel {
                indptr: &ip,
                indices: &bad,
                weights: &w,
                reward: &r,
                n_states: 2,
                n_actions: 1,
            };
            assert!(bellman_optimality_backup(&m, &v, 0.9, &mut vo, &mut po, None).is_err());
        }
        let ix = vec![0i64, 1];
        let bad_ptr = vec![0i64, 3, 2];
        let m = CsrModel {
            indptr: &bad_ptr,
            indices: &ix,
            weights: &w,
            reward: &r,
            n_states: 2,
            n_actions: 1,
        };
        assert!(bellman_optimality_backup(&m, &v, 0.9, &mut vo, &mut po, None).is_err());
        let m = CsrModel {
            indptr: &ip,
            indices: &ix,
            weights: &w,
            reward: &r,
            n_states: 2,
            n_actions: 1,
        };
        assert!(bellman_policy_backup(&m, &v, 0.9, &[0, 1], &mut vo).is_err());
        assert!(bellman_optimality_backup(&m, &v[..1], 0.9, &mut vo, &mut po, None).is_err());
    }
}
