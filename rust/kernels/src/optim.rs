//! Fused, in-place optimizer updates: SGD, Adagrad, RMSprop, Adadelta, Adam / AdamW and
//! NAdam, each exactly the update rule of PyTorch's documentation (`torch.optim.*`).
//!
//! CONTRACT: one call updates every parameter of a param group. `params[i]`, `grads[i]` and
//! every state buffer `state[i]` of tensor `i` have the same length (checked, as is the
//! number of tensors in every list); buffers an option does not use (a momentum buffer when
//! `momentum == 0`, ...) are passed as empty lists. Hyper-parameters arrive as `f64`; the
//! per-tensor coefficients (bias corrections, ...) are computed in `f64` from the step
//! counts and rounded once to `T`; the element-wise arithmetic runs in `T`. A parameter
//! whose step count differs from the others (it had no gradient at some steps) simply has
//! its own step entry.
//!
//! Element order of operations follows the documented formulas, e.g. Adam:
//! `m = b1 m + (1 - b1) g`, `v = b2 v + (1 - b2) g g`,
//! `p = p - (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps)` (the division by `sqrt(bc2)` is a
//! product by its reciprocal: the dividers are the bottleneck of cache-resident tensors).
//!
//! Implementation: the tensors are cut into (tensor, chunk of [`CHUNK`] elements) work items
//! run on the kernel pool (on the calling thread when the group has fewer than
//! [`PAR_MIN`] elements). Each chunk is processed by a plain element loop compiled three
//! times: for AVX-512F, for AVX2+FMA and portable, chosen at run time from
//! [`crate::simd::level`]; the compiler vectorises the loop at the width of each level
//! (the options of an optimizer are const generics, so every loop is branch-free). Only
//! correctly rounded IEEE operations are used (+, -, *, /, sqrt, no contraction into FMA),
//! so the result is bitwise identical at every SIMD level and for every thread count.

use crate::error::KernelError;
use crate::simd::{self, Level};
use crate::{threading, Float, Result};

/// Elements per parallel work item (a quarter of it in groups of fewer than 4 * CHUNK
/// elements, so that they split among threads too, and more in groups large enough for
/// more than `threading::MAX_TASKS` items; results do not depend on it).
pub const CHUNK: usize = 16 * 1024;
/// Groups with fewer elements in total run on the calling thread (measured on Zen 4: two
/// threads gain 1.5x for Adam and 1.1-1.25x for SGD with momentum at 16K elements).
pub const PAR_MIN: usize = 16 * 1024;
/// The most state buffers an optimizer keeps per parameter.
const MAX_STATES: usize = 3;

// ---------------------------------------------------------------------------------------
// Hyper-parameters.

/// `torch.optim.SGD`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sgd {
    pub lr: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
    pub maximize: bool,
}

/// `torch.optim.Adagrad` (the accumulators start at `initial_accumulator_value`, which the
/// caller writes into them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adagrad {
    pub lr: f64,
    pub lr_decay: f64,
    pub weight_decay: f64,
    pub eps: f64,
    pub maximize: bool,
}

/// `torch.optim.RMSprop`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RmsProp {
    pub lr: f64,
    pub alpha: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub momentum: f64,
    pub centered: bool,
    pub maximize: bool,
}

/// `torch.optim.Adadelta`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adadelta {
    pub lr: f64,
    pub rho: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub maximize: bool,
}

/// `torch.optim.Adam` and, with `decoupled_weight_decay`, `torch.optim.AdamW`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adam {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub amsgrad: bool,
    pub decoupled_weight_decay: bool,
    pub maximize: bool,
}

/// `torch.optim.NAdam`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NAdam {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub momentum_decay: f64,
    pub decoupled_weight_decay: bool,
    pub maximize: bool,
}

// ---------------------------------------------------------------------------------------
// Work items and their execution.

/// One chunk of one tensor: the parameter, its gradient and its state buffers.
struct Item<'a, T> {
    tensor: usize,
    p: &'a mut [T],
    g: &'a [T],
    s: [&'a mut [T]; MAX_STATES],
}

/// One optimizer's update of one chunk. `chunk` must be `#[inline(always)]` so that it is
/// compiled inside the `#[target_feature]` function of each level.
trait Rule<T: Float>: Sync {
    fn chunk(&self, tensor: usize, p: &mut [T], g: &[T], s: &mut [&mut [T]; MAX_STATES]);
}

/// The buffers of one state list, reborrowed for `'a`.
fn list<'a, T>(s: &'a mut [&mut [T]]) -> Vec<&'a mut [T]> {
    s.iter_mut().map(|b| &mut **b).collect()
}

/// Checks the lengths of every list and tensor and cuts them into work items.
fn items<'a, T: Float>(
    op: &'static str,
    params: &'a mut [&mut [T]],
    grads: &'a [&[T]],
    states: [(&'static str, Vec<&'a mut [T]>); MAX_STATES],
    used: usize,
) -> Result<(Vec<Item<'a, T>>, usize)> {
    let n = params.len();
    let mismatch = |detail: String| KernelError::ShapeMismatch { op, detail };
    if grads.len() != n {
        return Err(mismatch(format!(
            "{n} parameters but {} gradients",
            grads.len()
        )));
    }
    for (k, (name, s)) in states.iter().enumerate() {
        let want = if k < used { n } else { 0 };
        if s.len() != want {
            return Err(mismatch(format!(
                "{n} parameters but {} {name} buffers (expected {want})",
                s.len()
            )));
        }
    }
    let mut total = 0usize;
    for i in 0..n {
        let len = params[i].len();
        if grads[i].len() != len {
            return Err(mismatch(format!(
                "params[{i}] has {len} elements but grads[{i}] has {}",
                grads[i].len()
            )));
        }
        for (name, s) in states.iter().take(used) {
            if s[i].len() != len {
                return Err(mismatch(format!(
                    "params[{i}] has {len} elements but {name}[{i}] has {}",
                    s[i].len()
                )));
            }
        }
        total = total.checked_add(len).ok_or(KernelError::Overflow { op })?;
    }
    let base = if total < 4 * CHUNK { CHUNK / 4 } else { CHUNK };
    let chunk = threading::task_len(total, base).next_multiple_of(64);
    let mut out = Vec::with_capacity(n + total / chunk);
    let mut its = states.map(|(_, s)| s.into_iter());
    for (i, (p, g)) in params.iter_mut().zip(grads).enumerate() {
        let mut p: &mut [T] = p;
        let mut g: &[T] = g;
        let mut s: [&mut [T]; MAX_STATES] = Default::default();
        for (sk, it) in s.iter_mut().zip(its.iter_mut()) {
            if let Some(buf) = it.next() {
                *sk = buf;
            }
        }
        while !p.is_empty() {
            let c = chunk.min(p.len());
            let (ph, pt) = std::mem::take(&mut p).split_at_mut(c);
            p = pt;
            let (gh, gt) = g.split_at(c);
            g = gt;
            let mut sh: [&mut [T]; MAX_STATES] = Default::default();
            for (h, t) in sh.iter_mut().zip(s.iter_mut()).take(used) {
                let (a, b) = std::mem::take(t).split_at_mut(c);
                *h = a;
                *t = b;
            }
            out.push(Item {
                tensor: i,
                p: ph,
                g: gh,
                s: sh,
            });
        }
    }
    Ok((out, total))
}

/// One chunk, compiled for AVX-512F.
///
/// # Safety
/// The CPU must support AVX-512F (the caller checked it with `effective`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn chunk_avx512<T: Float, R: Rule<T>>(r: &R, it: &mut Item<'_, T>) {
    r.chunk(it.tensor, it.p, it.g, &mut it.s)
}

/// One chunk, compiled for AVX2 and FMA (no FMA is emitted: the loops contain no
/// `mul_add`, and Rust never contracts `a * b + c`).
///
/// # Safety
/// The CPU must support AVX2 and FMA (the caller checked it with `effective`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn chunk_avx2<T: Float, R: Rule<T>>(r: &R, it: &mut Item<'_, T>) {
    r.chunk(it.tensor, it.p, it.g, &mut it.s)
}

#[inline(never)]
fn chunk_portable<T: Float, R: Rule<T>>(r: &R, it: &mut Item<'_, T>) {
    r.chunk(it.tensor, it.p, it.g, &mut it.s)
}

/// The level actually usable: `want`, capped by what the CPU supports.
fn effective(want: Level) -> Level {
    let have = simd::level();
    let l = want.min(have);
    #[cfg(target_arch = "x86_64")]
    {
        if l == Level::Avx512 && !std::arch::is_x86_feature_detected!("avx512f") {
            return Level::Scalar;
        }
        if l == Level::Avx2Fma
            && !(std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma"))
        {
            return Level::Scalar;
        }
    }
    l
}

fn one_chunk<T: Float, R: Rule<T>>(level: Level, r: &R, it: &mut Item<'_, T>) {
    match level {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `level` comes from `effective`, which returns Avx512 only when the CPU
        // reports avx512f.
        Level::Avx512 => unsafe { chunk_avx512(r, it) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `effective` returns Avx2Fma only when the CPU reports avx2 and fma.
        Level::Avx2Fma => unsafe { chunk_avx2(r, it) },
        _ => chunk_portable(r, it),
    }
}

/// Runs `r` over every item, in parallel for large groups.
fn execute<T: Float, R: Rule<T>>(level: Level, r: &R, mut items: Vec<Item<'_, T>>, total: usize) {
    let level = effective(level);
    if total < PAR_MIN || items.len() < 2 {
        for it in &mut items {
            one_chunk(level, r, it);
        }
    } else {
        // Groups of consecutive items, at most about threading::MAX_TASKS of them (a group
        // of many small tensors is one task).
        let g = threading::task_len(items.len(), 1);
        threading::for_each_chunk_mut(&mut items, g, |_, group| {
            for it in group {
                one_chunk(level, r, it);
            }
        });
    }
}

fn bad(op: &'static str, detail: String) -> KernelError {
    KernelError::InvalidArgument { op, detail }
}

fn check_steps(op: &'static str, n: usize, steps: &[f64]) -> Result<()> {
    if steps.len() != n {
        return Err(KernelError::ShapeMismatch {
            op,
            detail: format!("{n} parameters but {} step counts", steps.len()),
        });
    }
    if let Some((i, s)) = steps
        .iter()
        .enumerate()
        .find(|(_, s)| s.is_nan() || **s < 1.0)
    {
        return Err(bad(
            op,
            format!("step counts must be >= 1 (counted after increment), steps[{i}] = {s}"),
        ));
    }
    Ok(())
}

/// `g` negated when maximizing: `sign` is +1 or -1, so the product is exact.
#[inline(always)]
fn signed<T: Float>(g: T, sign: T) -> T {
    g * sign
}

/// `g + wd p` when the option is on (`WD`), `g` otherwise (PyTorch skips the term when
/// `weight_decay == 0`, which matters for infinite parameters).
#[inline(always)]
fn decay<T: Float, const WD: bool>(g: T, p: T, wd: T) -> T {
    if WD {
        g + wd * p
    } else {
        g
    }
}

fn sign_of<T: Float>(maximize: bool) -> T {
    if maximize {
        -T::ONE
    } else {
        T::ONE
    }
}

// ---------------------------------------------------------------------------------------
// SGD.

struct SgdRule<'a, T, const WD: bool, const MOM: bool, const NEST: bool> {
    lr: T,
    wd: T,
    momentum: T,
    one_minus_damp: T,
    sign: T,
    fresh: &'a [bool],
}

impl<T: Float, const WD: bool, const MOM: bool, const NEST: bool> Rule<T>
    for SgdRule<'_, T, WD, MOM, NEST>
{
    #[inline(always)]
    fn chunk(&self, t: usize, p: &mut [T], g: &[T], s: &mut [&mut [T]; MAX_STATES]) {
        let n = p.len();
        let g = &g[..n];
        let (lr, wd, mom, omd, sign) = (
            self.lr,
            self.wd,
            self.momentum,
            self.one_minus_damp,
            self.sign,
        );
        if !MOM {
            for (p, &g) in p.iter_mut().zip(g) {
                let d = decay::<T, WD>(signed(g, sign), *p, wd);
                *p -= lr * d;
            }
            return;
        }
        let b = &mut s[0][..n];
        let fresh = self.fresh.get(t).copied().unwrap_or(false);
        if fresh {
            // First step: the buffer is a copy of the (decayed) gradient.
            for ((p, &g), b) in p.iter_mut().zip(g).zip(b.iter_mut()) {
                let d = decay::<T, WD>(signed(g, sign), *p, wd);
                *b = d;
                let u = if NEST { d + mom * d } else { d };
                *p -= lr * u;
            }
        } else {
            for ((p, &g), b) in p.iter_mut().zip(g).zip(b.iter_mut()) {
                let d = decay::<T, WD>(signed(g, sign), *p, wd);
                let nb = mom * *b + omd * d;
                *b = nb;
                let u = if NEST { d + mom * nb } else { nb };
                *p -= lr * u;
            }
        }
    }
}

/// SGD for one param group. `momentum_buffers` is empty when `momentum == 0`; otherwise it
/// holds one buffer per parameter and `fresh[i]` says that buffer `i` is new (PyTorch's
/// `None`): it is then set to the gradient instead of being decayed.
pub fn sgd<T: Float>(
    params: &mut [&mut [T]],
    grads: &[&[T]],
    momentum_buffers: &mut [&mut [T]],
    fresh: &[bool],
    h: &Sgd,
) -> Result<()> {
    sgd_at(simd::level(), params, grads, momentum_buffers, fresh, h)
}

fn sgd_at<T: Float>(
    level: Level,
    params: &mut [&mut [T]],
    grads: &[&[T]],
    momentum_buffers: &mut [&mut [T]],
    fresh: &[bool],
    h: &Sgd,
) -> Result<()> {
    const OP: &str = "sgd";
    let mom = h.momentum != 0.0;
    if h.nesterov && (!mom || h.dampening != 0.0) {
        return Err(bad(
            OP,
            "Nesterov momentum requires a momentum and zero dampening".into(),
        ));
    }
    let used = if mom { 1 } else { 0 };
    let want_fresh = if mom { params.len() } else { 0 };
    if fresh.len() != want_fresh {
        return Err(KernelError::ShapeMismatch {
            op: OP,
            detail: format!(
                "{} parameters but {} 'fresh' flags (expected {want_fresh})",
                params.len(),
                fresh.len()
            ),
        });
    }
    let (its, total) = items(
        OP,
        params,
        grads,
        [
            ("momentum_buffer", list(momentum_buffers)),
            ("unused", Vec::new()),
            ("unused", Vec::new()),
        ],
        used,
    )?;
    macro_rules! go {
        ($wd:literal, $mom:literal, $nest:literal) => {
            execute(
                level,
                &SgdRule::<T, $wd, $mom, $nest> {
                    lr: T::from_f64(h.lr),
                    wd: T::from_f64(h.weight_decay),
                    momentum: T::from_f64(h.momentum),
                    one_minus_damp: T::from_f64(1.0 - h.dampening),
                    sign: sign_of(h.maximize),
                    fresh,
                },
                its,
                total,
            )
        };
    }
    match (h.weight_decay != 0.0, mom, h.nesterov) {
        (false, false, _) => go!(false, false, false),
        (true, false, _) => go!(true, false, false),
        (false, true, false) => go!(false, true, false),
        (true, true, false) => go!(true, true, false),
        (false, true, true) => go!(false, true, true),
        (true, true, true) => go!(true, true, true),
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Adagrad.

struct AdagradRule<T, const WD: bool> {
    clr: Vec<T>,
    wd: T,
    eps: T,
    sign: T,
}

impl<T: Float, const WD: bool> Rule<T> for AdagradRule<T, WD> {
    #[inline(always)]
    fn chunk(&self, t: usize, p: &mut [T], g: &[T], s: &mut [&mut [T]; MAX_STATES]) {
        let n = p.len();
        let g = &g[..n];
        let sum = &mut s[0][..n];
        let (clr, wd, eps, sign) = (self.clr[t], self.wd, self.eps, self.sign);
        for ((p, &g), sm) in p.iter_mut().zip(g).zip(sum.iter_mut()) {
            let d = decay::<T, WD>(signed(g, sign), *p, wd);
            let ns = *sm + d * d;
            *sm = ns;
            *p -= clr * d / (ns.sqrt() + eps);
        }
    }
}

/// Adagrad for one param group: `clr = lr / (1 + (step - 1) lr_decay)`,
/// `sum += g^2`, `p -= clr g / (sqrt(sum) + eps)`. `steps[i]` is tensor `i`'s step count
/// after this step's increment (>= 1).
pub fn adagrad<T: Float>(
    params: &mut [&mut [T]],
    grads: &[&[T]],
    state_sums: &mut [&mut [T]],
    steps: &[f64],
    h: &Adagrad,
) -> Result<()> {
    adagrad_at(simd::level(), params, grads, state_sums, steps, h)
}

fn adagrad_at<T: Float>(
    level: Level,
    params: &mut [&mut [T]],
    grads: &[&[T]],
    state_sums: &mut [&mut [T]],
    steps: &[f64],
    h: &Adagrad,
) -> Result<()> {
    const OP: &str = "adagrad";
    check_steps(OP, params.len(), steps)?;
    let (its, total) = items(
        OP,
        params,
        grads,
        [
            ("sum", list(state_sums)),
            ("unused", Vec::new()),
            ("unused", Vec::new()),
        ],
        1,
    )?;
    let clr: Vec<T> = steps
        .iter()
        .map(|&s| T::from_f64(h.lr / (1.0 + (s - 1.0) * h.lr_decay)))
        .collect();
    let (wd, eps, sign) = (
        T::from_f64(h.weight_decay),
        T::from_f64(h.eps),
        sign_of(h.maximize),
    );
    if h.weight_decay != 0.0 {
        let r = AdagradRule::<T, true> { clr, wd, eps, sign };
        execute(level, &r, its, total);
    } else {
        let r = AdagradRule::<T, false> { clr, wd, eps, sign };
        execute(level, &r, its, total);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// RMSprop.

struct RmsRule<T, const WD: bool, const CENTERED: bool, const MOM: bool> {
    lr: T,
    alpha: T,
    one_minus_alpha: T,
    eps: T,
    wd: T,
    momentum: T,
    sign: T,
}

impl<T: Float, const WD: bool, const CENTERED: bool, const MOM: bool> Rule<T>
    for RmsRule<T, WD, CENTERED, MOM>
{
    #[inline(always)]
    fn chunk(&self, _t: usize, p: &mut [T], g: &[T], s: &mut [&mut [T]; MAX_STATES]) {
        let n = p.len();
        let g = &g[..n];
        let (lr, a, oma, eps, wd, mom, sign) = (
            self.lr,
            self.alpha,
            self.one_minus_alpha,
            self.eps,
            self.wd,
            self.momentum,
            self.sign,
        );
        let [s0, s1, s2] = s;
        let sq = &mut s0[..n];
        // Slots: square_avg, then momentum_buffer (if MOM), then grad_avg (if CENTERED).
        let (buf, gavg): (&mut [T], &mut [T]) = match (MOM, CENTERED) {
            (true, true) => (&mut s1[..n], &mut s2[..n]),
            (true, false) => (&mut s1[..n], &mut []),
            (false, true) => (&mut [], &mut s1[..n]),
            (false, false) => (&mut [], &mut []),
        };
        for i in 0..n {
            let d = decay::<T, WD>(signed(g[i], sign), p[i], wd);
            let v = a * sq[i] + oma * d * d;
            sq[i] = v;
            let avg = if CENTERED {
                let ga = a * gavg[i] + oma * d;
                gavg[i] = ga;
                (v - ga * ga).sqrt() + eps
            } else {
                v.sqrt() + eps
            };
            if MOM {
                let b = mom * buf[i] + d / avg;
                buf[i] = b;
                p[i] -= lr * b;
            } else {
                p[i] -= lr * d / avg;
            }
        }
    }
}

/// RMSprop for one param group. State lists: `square_avgs` (always), `momentum_buffers`
/// (only when `momentum > 0`, else empty), `grad_avgs` (only when `centered`, else empty).
pub fn rmsprop<T: Float>(
    params: &mut [&mut [T]],
    grads: &[&[T]],
    square_avgs: &mut [&mut [T]],
    momentum_buffers: &mut [&mut [T]],
    grad_avgs: &mut [&mut [T]],
    h: &RmsProp,
) -> Result<()> {
    rmsprop_at(
        simd::level(),
        params,
        grads,
        square_avgs,
        momentum_buffers,
        grad_avgs,
        h,
    )
}

fn rmsprop_at<T: Float>(
    level: Level,
    params: &mut [&mut [T]],
    grads: &[&[T]],
    square_avgs: &mut [&mut [T]],
    momentum_buffers: &mut [&mut [T]],
    grad_avgs: &mut [&mut [T]],
    h: &RmsProp,
) -> Result<()> {
    const OP: &str = "rmsprop";
    let mom = h.momentum > 0.0;
    let n = params.len();
    for (name, list, on) in [
        ("momentum_buffer", momentum_buffers.len(), mom),
        ("grad_avg", grad_avgs.len(), h.centered),
    ] {
        let want = if on { n } else { 0 };
        if list != want {
            return Err(KernelError::ShapeMismatch {
                op: OP,
                detail: format!("{n} parameters but {list} {name} buffers (expected {want})"),
            });
        }
    }
    // Pack the used lists first (see the slots in RmsRule::chunk).
    let mut lists = vec![("square_avg", list(square_avgs))];
    if mom {
        lists.push(("momentum_buffer", list(momentum_buffers)));
    }
    if h.centered {
        lists.push(("grad_avg", list(grad_avgs)));
    }
    let used = lists.len();
    let mut it = lists.into_iter();
    let mut next = || it.next().unwrap_or(("unused", Vec::new()));
    let states = [next(), next(), next()];
    let (its, total) = items(OP, params, grads, states, used)?;
    macro_rules! go {
        ($wd:literal, $c:literal, $m:literal) => {
            execute(
                level,
                &RmsRule::<T, $wd, $c, $m> {
                    lr: T::from_f64(h.lr),
                    alpha: T::from_f64(h.alpha),
                    one_minus_alpha: T::from_f64(1.0 - h.alpha),
                    eps: T::from_f64(h.eps),
                    wd: T::from_f64(h.weight_decay),
                    momentum: T::from_f64(h.momentum),
                    sign: sign_of(h.maximize),
                },
                its,
                total,
            )
        };
    }
    match (h.weight_decay != 0.0, h.centered, mom) {
        (false, false, false) => go!(false, false, false),
        (false, false, true) => go!(false, false, true),
        (false, true, false) => go!(false, true, false),
        (false, true, true) => go!(false, true, true),
        (true, false, false) => go!(true, false, false),
        (true, false, true) => go!(true, false, true),
        (true, true, false) => go!(true, true, false),
        (true, true, true) => go!(true, true, true),
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Adadelta.

struct AdadeltaRule<T, const WD: bool> {
    lr: T,
    rho: T,
    one_minus_rho: T,
    eps: T,
    wd: T,
    sign: T,
}

impl<T: Float, const WD: bool> Rule<T> for AdadeltaRule<T, WD> {
    #[inline(always)]
    fn chunk(&self, _t: usize, p: &mut [T], g: &[T], s: &mut [&mut [T]; MAX_STATES]) {
        let n = p.len();
        let g = &g[..n];
        let (lr, rho, omr, eps, wd, sign) = (
            self.lr,
            self.rho,
            self.one_minus_rho,
            self.eps,
            self.wd,
            self.sign,
        );
        let [s0, s1, _] = s;
        let sq = &mut s0[..n];
        let acc = &mut s1[..n];
        for i in 0..n {
            let d = decay::<T, WD>(signed(g[i], sign), p[i], wd);
            let v = rho * sq[i] + omr * d * d;
            sq[i] = v;
            let delta = (acc[i] + eps).sqrt() / (v + eps).sqrt() * d;
            acc[i] = rho * acc[i] + omr * delta * delta;
            p[i] -= lr * delta;
        }
    }
}

/// Adadelta for one param group: `v = rho v + (1 - rho) g^2`,
/// `delta = sqrt(u + eps) / sqrt(v + eps) g`, `u = rho u + (1 - rho) delta^2`,
/// `p -= lr delta`.
pub fn adadelta<T: Float>(
    params: &mut [&mut [T]],
    grads: &[&[T]],
    square_avgs: &mut [&mut [T]],
    acc_deltas: &mut [&mut [T]],
    h: &Adadelta,
) -> Result<()> {
    adadelta_at(simd::level(), params, grads, square_avgs, acc_deltas, h)
}

fn adadelta_at<T: Float>(
    level: Level,
    params: &mut [&mut [T]],
    grads: &[&[T]],
    square_avgs: &mut [&mut [T]],
    acc_deltas: &mut [&mut [T]],
    h: &Adadelta,
) -> Result<()> {
    const OP: &str = "adadelta";
    let (its, total) = items(
        OP,
        params,
        grads,
        [
            ("square_avg", list(square_avgs)),
            ("acc_delta", list(acc_deltas)),
            ("unused", Vec::new()),
        ],
        2,
    )?;
    let (lr, rho, omr, eps, wd, sign) = (
        T::from_f64(h.lr),
        T::from_f64(h.rho),
        T::from_f64(1.0 - h.rho),
        T::from_f64(h.eps),
        T::from_f64(h.weight_decay),
        sign_of(h.maximize),
    );
    if h.weight_decay != 0.0 {
        let r = AdadeltaRule::<T, true> {
            lr,
            rho,
            one_minus_rho: omr,
            eps,
            wd,
            sign,
        };
        execute(level, &r, its, total);
    } else {
        let r = AdadeltaRule::<T, false> {
            lr,
            rho,
            one_minus_rho: omr,
            eps,
            wd,
            sign,
        };
        execute(level, &r, its, total);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Adam / AdamW.

struct AdamRule<T, const WD: bool, const AMS: bool> {
    /// Per tensor: (lr / bc1, 1 / sqrt(bc2)).
    coef: Vec<(T, T)>,
    b1: T,
    omb1: T,
    b2: T,
    omb2: T,
    eps: T,
    wd: T,
    /// 1 - lr wd for decoupled weight decay, else 1 (an exact no-op).
    shrink: T,
    sign: T,
}

impl<T: Float, const WD: bool, const AMS: bool> Rule<T> for AdamRule<T, WD, AMS> {
    #[inline(always)]
    fn chunk(&self, t: usize, p: &mut [T], g: &[T], s: &mut [&mut [T]; MAX_STATES]) {
        let n = p.len();
        let g = &g[..n];
        let (step_size, inv_bc2_sqrt) = self.coef[t];
        let (b1, omb1, b2, omb2, eps, wd, shrink, sign) = (
            self.b1,
            self.omb1,
            self.b2,
            self.omb2,
            self.eps,
            self.wd,
            self.shrink,
            self.sign,
        );
        let [s0, s1, s2] = s;
        let m = &mut s0[..n];
        let v = &mut s1[..n];
        let vmax: &mut [T] = if AMS { &mut s2[..n] } else { &mut [] };
        for i in 0..n {
            let pi = p[i] * shrink;
            let d = decay::<T, WD>(signed(g[i], sign), p[i], wd);
            let mi = b1 * m[i] + omb1 * d;
            m[i] = mi;
            let vi = b2 * v[i] + omb2 * d * d;
            v[i] = vi;
            let vd = if AMS {
                let old = vmax[i];
                // torch.maximum: NaN propagates from either side.
                let mx = if old > vi || old.is_nan() { old } else { vi };
                vmax[i] = mx;
                mx
            } else {
                vi
            };
            // sqrt(v) / sqrt(bc2) as a product by the reciprocal: one division per element
            // (the divider is the bottleneck for cache-resident tensors).
            let denom = vd.sqrt() * inv_bc2_sqrt + eps;
            p[i] = pi - step_size * mi / denom;
        }
    }
}

/// Adam (or AdamW when `h.decoupled_weight_decay`) for one param group. `steps[i]` is
/// tensor `i`'s step count after this step's increment; `max_exp_avg_sqs` is empty unless
/// `h.amsgrad`.
pub fn adam<T: Float>(
    params: &mut [&mut [T]],
    grads: &[&[T]],
    exp_avgs: &mut [&mut [T]],
    exp_avg_sqs: &mut [&mut [T]],
    max_exp_avg_sqs: &mut [&mut [T]],
    steps: &[f64],
    h: &Adam,
) -> Result<()> {
    adam_at(
        simd::level(),
        params,
        grads,
        exp_avgs,
        exp_avg_sqs,
        max_exp_avg_sqs,
        steps,
        h,
    )
}

#[allow(clippy::too_many_arguments)]
fn adam_at<T: Float>(
    level: Level,
    params: &mut [&mut [T]],
    grads: &[&[T]],
    exp_avgs: &mut [&mut [T]],
    exp_avg_sqs: &mut [&mut [T]],
    max_exp_avg_sqs: &mut [&mut [T]],
    steps: &[f64],
    h: &Adam,
) -> Result<()> {
    let op: &'static str = if h.decoupled_weight_decay {
        "adamw"
    } else {
        "adam"
    };
    check_steps(op, params.len(), steps)?;
    let (its, total) = items(
        op,
        params,
        grads,
        [
            ("exp_avg", list(exp_avgs)),
            ("exp_avg_sq", list(exp_avg_sqs)),
            ("max_exp_avg_sq", list(max_exp_avg_sqs)),
        ],
        if h.amsgrad { 3 } else { 2 },
    )?;
    let coef = steps
        .iter()
        .map(|&s| {
            let bc1 = 1.0 - h.beta1.powf(s);
            let bc2 = 1.0 - h.beta2.powf(s);
            (T::from_f64(h.lr / bc1), T::from_f64(1.0 / bc2.sqrt()))
        })
        .collect();
    let coupled = h.weight_decay != 0.0 && !h.decoupled_weight_decay;
    let shrink = if h.decoupled_weight_decay && h.weight_decay != 0.0 {
        1.0 - h.lr * h.weight_decay
    } else {
        1.0
    };
    macro_rules! go {
        ($wd:literal, $ams:literal) => {
            execute(
                level,
                &AdamRule::<T, $wd, $ams> {
                    coef,
                    b1: T::from_f64(h.beta1),
                    omb1: T::from_f64(1.0 - h.beta1),
                    b2: T::from_f64(h.beta2),
                    omb2: T::from_f64(1.0 - h.beta2),
                    eps: T::from_f64(h.eps),
                    wd: T::from_f64(h.weight_decay),
                    shrink: T::from_f64(shrink),
                    sign: sign_of(h.maximize),
                },
                its,
                total,
            )
        };
    }
    match (coupled, h.amsgrad) {
        (false, false) => go!(false, false),
        (false, true) => go!(false, true),
        (true, false) => go!(true, false),
        (true, true) => go!(true, true),
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// NAdam.

struct NAdamRule<T, const WD: bool> {
    /// Per tensor: (coefficient of g / denom, coefficient of m / denom, 1 / bc2).
    coef: Vec<(T, T, T)>,
    b1: T,
    omb1: T,
    b2: T,
    omb2: T,
    eps: T,
    wd: T,
    shrink: T,
    sign: T,
}

impl<T: Float, const WD: bool> Rule<T> for NAdamRule<T, WD> {
    #[inline(always)]
    fn chunk(&self, t: usize, p: &mut [T], g: &[T], s: &mut [&mut [T]; MAX_STATES]) {
        let n = p.len();
        let g = &g[..n];
        let (cg, cm, inv_bc2) = self.coef[t];
        let (b1, omb1, b2, omb2, eps, wd, shrink, sign) = (
            self.b1,
            self.omb1,
            self.b2,
            self.omb2,
            self.eps,
            self.wd,
            self.shrink,
            self.sign,
        );
        let [s0, s1, _] = s;
        let m = &mut s0[..n];
        let v = &mut s1[..n];
        for i in 0..n {
            let pi = p[i] * shrink;
            let d = decay::<T, WD>(signed(g[i], sign), p[i], wd);
            let mi = b1 * m[i] + omb1 * d;
            m[i] = mi;
            let vi = b2 * v[i] + omb2 * d * d;
            v[i] = vi;
            // One division per element: both terms are multiplied by 1 / denom.
            let r = T::ONE / ((vi * inv_bc2).sqrt() + eps);
            let pi = pi + cg * d * r;
            p[i] = pi + cm * mi * r;
        }
    }
}

/// NAdam for one param group. `steps[i]` is tensor `i`'s step count after this step's
/// increment; `mu_products[i]` is its product of the momentum coefficients mu_1 ... mu_{t-1}
/// on entry (1 at the first step) and mu_1 ... mu_t on return, where
/// `mu_t = beta1 (1 - 0.5 * 0.96^(t momentum_decay))`.
pub fn nadam<T: Float>(
    params: &mut [&mut [T]],
    grads: &[&[T]],
    exp_avgs: &mut [&mut [T]],
    exp_avg_sqs: &mut [&mut [T]],
    steps: &[f64],
    mu_products: &mut [f64],
    h: &NAdam,
) -> Result<()> {
    nadam_at(
        simd::level(),
        params,
        grads,
        exp_avgs,
        exp_avg_sqs,
        steps,
        mu_products,
        h,
    )
}

#[allow(clippy::too_many_arguments)]
fn nadam_at<T: Float>(
    level: Level,
    params: &mut [&mut [T]],
    grads: &[&[T]],
    exp_avgs: &mut [&mut [T]],
    exp_avg_sqs: &mut [&mut [T]],
    steps: &[f64],
    mu_products: &mut [f64],
    h: &NAdam,
) -> Result<()> {
    const OP: &str = "nadam";
    check_steps(OP, params.len(), steps)?;
    if mu_products.len() != params.len() {
        return Err(KernelError::ShapeMismatch {
            op: OP,
            detail: format!(
                "{} parameters but {} mu_products",
                params.len(),
                mu_products.len()
            ),
        });
    }
    let (its, total) = items(
        OP,
        params,
        grads,
        [
            ("exp_avg", list(exp_avgs)),
            ("exp_avg_sq", list(exp_avg_sqs)),
            ("unused", Vec::new()),
        ],
        2,
    )?;
    let mut coef = Vec::with_capacity(steps.len());
    for (&s, mp) in steps.iter().zip(mu_products.iter_mut()) {
        let bc2 = 1.0 - h.beta2.powf(s);
        let mu = h.beta1 * (1.0 - 0.5 * 0.96f64.powf(s * h.momentum_decay));
        let mu_next = h.beta1 * (1.0 - 0.5 * 0.96f64.powf((s + 1.0) * h.momentum_decay));
        let prod = *mp * mu;
        *mp = prod;
        let prod_next = prod * mu_next;
        coef.push((
            T::from_f64(-h.lr * (1.0 - mu) / (1.0 - prod)),
            T::from_f64(-h.lr * mu_next / (1.0 - prod_next)),
            T::from_f64(1.0 / bc2),
        ));
    }
    let coupled = h.weight_decay != 0.0 && !h.decoupled_weight_decay;
    let shrink = if h.decoupled_weight_decay && h.weight_decay != 0.0 {
        1.0 - h.lr * h.weight_decay
    } else {
        1.0
    };
    macro_rules! go {
        ($wd:literal) => {
            execute(
                level,
                &NAdamRule::<T, $wd> {
                    coef,
                    b1: T::from_f64(h.beta1),
                    omb1: T::from_f64(1.0 - h.beta1),
                    b2: T::from_f64(h.beta2),
                    omb2: T::from_f64(1.0 - h.beta2),
                    eps: T::from_f64(h.eps),
                    wd: T::from_f64(h.weight_decay),
                    shrink: T::from_f64(shrink),
                    sign: sign_of(h.maximize),
                },
                its,
                total,
            )
        };
    }
    if coupled {
        go!(true)
    } else {
        go!(false)
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Tests.

#[cfg(test)]
mod tests {
    use super::*;

    const LEVELS: [Level; 3] = [Level::Scalar, Level::Avx2Fma, Level::Avx512];

    /// Sizes around the lane widths (1, 4, 8, 16) and the chunk size.
    fn sizes() -> Vec<usize> {
        vec![
            0,
            1,
            3,
            7,
            8,
            9,
            15,
            16,
            17,
            33,
            CHUNK - 1,
            CHUNK,
            CHUNK + 1,
            2 * CHUNK + 5,
        ]
    }

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        }
        fn vec<T: Float>(&mut self, n: usize, lo: f64) -> Vec<T> {
            (0..n)
                .map(|_| T::from_f64(lo + self.next().abs()))
                .collect()
        }
        fn signed<T: Float>(&mut self, n: usize) -> Vec<T> {
            (0..n).map(|_| T::from_f64(self.next())).collect()
        }
    }

    /// A group of tensors (one per size), with gradients and `k` state buffers.
    struct Group<T> {
        p: Vec<Vec<T>>,
        g: Vec<Vec<T>>,
        s: Vec<Vec<Vec<T>>>,
    }

    fn group<T: Float>(k: usize, seed: u64) -> Group<T> {
        let mut r = Rng(seed | 1);
        let sz = sizes();
        Group {
            p: sz.iter().map(|&n| r.signed(n)).collect(),
            g: sz.iter().map(|&n| r.signed(n)).collect(),
            s: (0..k)
                .map(|_| sz.iter().map(|&n| r.vec(n, 0.01)).collect())
                .collect(),
        }
    }

    fn muts<T>(v: &mut [Vec<T>]) -> Vec<&mut [T]> {
        v.iter_mut().map(|x| x.as_mut_slice()).collect()
    }
    fn refs<T>(v: &[Vec<T>]) -> Vec<&[T]> {
        v.iter().map(|x| x.as_slice()).collect()
    }

    /// Asserts that two groups are bitwise equal.
    fn same_bits<T: Float>(a: &Group<T>, b: &Group<T>, what: &str) {
        let bits = |x: T| x.to_f64().to_bits();
        for (i, (x, y)) in a.p.iter().zip(&b.p).enumerate() {
            assert!(
                x.iter().zip(y).all(|(u, v)| bits(*u) == bits(*v)),
                "{what}: params[{i}] differ"
            );
        }
        for (k, (sa, sb)) in a.s.iter().zip(&b.s).enumerate() {
            for (i, (x, y)) in sa.iter().zip(sb).enumerate() {
                assert!(
                    x.iter().zip(y).all(|(u, v)| bits(*u) == bits(*v)),
                    "{what}: state {k}[{i}] differ"
                );
            }
        }
    }

    fn close<T: Float>(got: T, want: f64, tol: f64, what: &str) {
        let g = got.to_f64();
        assert!(
            (g - want).abs() <= tol * (1.0 + want.abs()),
            "{what}: got {g}, want {want}"
        );
    }

    /// Runs `f` at every level on copies of one group, checks all levels agree bitwise and
    /// returns (before, after).
    /// `f(level, group, step)` is called for steps 1 and 2.
    fn at_levels<T: Float>(
        k: usize,
        f: impl Fn(Level, &mut Group<T>, f64),
    ) -> (Group<T>, Group<T>) {
        at_levels_zeroed(k, false, f)
    }

    /// [`at_levels`], with the last state list zeroed first when `zero_last`.
    fn at_levels_zeroed<T: Float>(
        k: usize,
        zero_last: bool,
        f: impl Fn(Level, &mut Group<T>, f64),
    ) -> (Group<T>, Group<T>) {
        let mut base = group::<T>(k, 42);
        if zero_last {
            for t in base.s[k - 1].iter_mut() {
                t.iter_mut().for_each(|x| *x = T::ZERO);
            }
        }
        let mut out: Option<Group<T>> = None;
        for lvl in LEVELS {
            let mut g = Group {
                p: base.p.clone(),
                g: base.g.clone(),
                s: base.s.clone(),
            };
            f(lvl, &mut g, 1.0);
            f(lvl, &mut g, 2.0);
            if let Some(o) = &out {
                same_bits(o, &g, &format!("level {lvl:?}"));
            } else {
                out = Some(g);
            }
        }
        (base, out.expect("at least one level"))
    }

    fn tol<T: Float>() -> f64 {
        if T::IS_F64 {
            1e-12
        } else {
            2e-5
        }
    }

    fn adam_case<T: Float>(amsgrad: bool, decoupled: bool, wd: f64, maximize: bool) {
        let h = Adam {
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: wd,
            amsgrad,
            decoupled_weight_decay: decoupled,
            maximize,
        };
        let k = if amsgrad { 3 } else { 2 };
        let nsteps = 2;
        let (base, out) = at_levels::<T>(k, |lvl, gr, step| {
            let n = gr.p.len();
            let steps = vec![step; n];
            let mut p = muts(&mut gr.p);
            let g = refs(&gr.g);
            let (s0, rest) = gr.s.split_at_mut(1);
            let (s1, s2) = rest.split_at_mut(1);
            let mut m = muts(&mut s0[0]);
            let mut v = muts(&mut s1[0]);
            let mut mx = if amsgrad {
                muts(&mut s2[0])
            } else {
                Vec::new()
            };
            adam_at(lvl, &mut p, &g, &mut m, &mut v, &mut mx, &steps, &h).unwrap();
        });
        // f64 reference of two steps.
        for t in 0..base.p.len() {
            for j in 0..base.p[t].len() {
                let mut p = base.p[t][j].to_f64();
                let g0 = base.g[t][j].to_f64();
                let mut m = base.s[0][t][j].to_f64();
                let mut v = base.s[1][t][j].to_f64();
                let mut mx = if amsgrad {
                    base.s[2][t][j].to_f64()
                } else {
                    0.0
                };
                for step in 1..=nsteps {
                    let s = step as f64;
                    let mut g = if maximize { -g0 } else { g0 };
                    if decoupled {
                        p *= 1.0 - h.lr * wd;
                    } else {
                        g += wd * p;
                    }
                    m = h.beta1 * m + (1.0 - h.beta1) * g;
                    v = h.beta2 * v + (1.0 - h.beta2) * g * g;
                    let vd = if amsgrad {
                        mx = mx.max(v);
                        mx
                    } else {
                        v
                    };
                    let bc1 = 1.0 - h.beta1.powf(s);
                    let bc2 = 1.0 - h.beta2.powf(s);
                    p -= h.lr / bc1 * m / (vd.sqrt() / bc2.sqrt() + h.eps);
                }
                close(out.p[t][j], p, tol::<T>() * 10.0, "adam p");
                close(out.s[0][t][j], m, tol::<T>(), "adam m");
                close(out.s[1][t][j], v, tol::<T>(), "adam v");
            }
        }
    }

    #[test]
    fn adam_all_levels_match_reference() {
        for ams in [false, true] {
            for (dec, wd) in [(false, 0.0), (false, 0.1), (true, 0.1)] {
                for max in [false, true] {
                    adam_case::<f32>(ams, dec, wd, max);
                    adam_case::<f64>(ams, dec, wd, max);
                }
            }
        }
    }

    fn sgd_case<T: Float>(momentum: f64, dampening: f64, nesterov: bool, wd: f64, max: bool) {
        let h = Sgd {
            lr: 0.1,
            momentum,
            dampening,
            weight_decay: wd,
            nesterov,
            maximize: max,
        };
        let k = usize::from(momentum != 0.0);
        let (base, out) = at_levels::<T>(k, |lvl, gr, step| {
            let n = gr.p.len();
            let fresh = if k == 1 {
                vec![step == 1.0; n]
            } else {
                Vec::new()
            };
            let mut p = muts(&mut gr.p);
            let g = refs(&gr.g);
            let mut b = if k == 1 {
                muts(&mut gr.s[0])
            } else {
                Vec::new()
            };
            sgd_at(lvl, &mut p, &g, &mut b, &fresh, &h).unwrap();
        });
        for t in 0..base.p.len() {
            for j in 0..base.p[t].len() {
                let mut p = base.p[t][j].to_f64();
                let g0 = base.g[t][j].to_f64();
                let mut b = 0.0;
                for step in 1..=2 {
                    let mut g = if max { -g0 } else { g0 };
                    g += wd * p;
                    if momentum != 0.0 {
                        b = if step == 1 {
                            g
                        } else {
                            momentum * b + (1.0 - dampening) * g
                        };
                        g = if nesterov { g + momentum * b } else { b };
                    }
                    p -= h.lr * g;
                }
                close(out.p[t][j], p, tol::<T>(), "sgd p");
            }
        }
    }

    #[test]
    fn sgd_all_levels_match_reference() {
        for (m, d, nest) in [
            (0.0, 0.0, false),
            (0.9, 0.0, false),
            (0.9, 0.3, false),
            (0.9, 0.0, true),
        ] {
            for wd in [0.0, 0.05] {
                for max in [false, true] {
                    sgd_case::<f32>(m, d, nest, wd, max);
                    sgd_case::<f64>(m, d, nest, wd, max);
                }
            }
        }
    }

    fn run_others<T: Float>() {
        // Adagrad, RMSprop (every option), Adadelta, NAdam: all levels bitwise equal, and
        // the first element of the largest tensor against an f64 reference of two steps.
        let last = sizes().len() - 1;
        let (base, out) = at_levels::<T>(1, |lvl, gr, step| {
            let n = gr.p.len();
            let h = Adagrad {
                lr: 0.1,
                lr_decay: 0.01,
                weight_decay: 0.1,
                eps: 1e-10,
                maximize: false,
            };
            let mut p = muts(&mut gr.p);
            let g = refs(&gr.g);
            let mut s = muts(&mut gr.s[0]);
            adagrad_at(lvl, &mut p, &g, &mut s, &vec![step; n], &h).unwrap();
        });
        let (mut p, g, mut sm) = (
            base.p[last][0].to_f64(),
            base.g[last][0].to_f64(),
            base.s[0][last][0].to_f64(),
        );
        for step in 1..=2 {
            let d = g + 0.1 * p;
            sm += d * d;
            p -= 0.1 / (1.0 + (step as f64 - 1.0) * 0.01) * d / (sm.sqrt() + 1e-10);
        }
        close(out.p[last][0], p, tol::<T>(), "adagrad");

        for centered in [false, true] {
            for momentum in [0.0, 0.5] {
                for wd in [0.0, 0.1] {
                    let k = 1 + usize::from(momentum > 0.0) + usize::from(centered);
                    let h = RmsProp {
                        lr: 0.01,
                        alpha: 0.9,
                        eps: 1e-8,
                        weight_decay: wd,
                        momentum,
                        centered,
                        maximize: true,
                    };
                    let (base, out) = at_levels_zeroed::<T>(k, centered, |lvl, gr, _| {
                        let mut p = muts(&mut gr.p);
                        let g = refs(&gr.g);
                        let mut lists: Vec<Vec<&mut [T]>> =
                            gr.s.iter_mut().map(|l| muts(l)).collect();
                        let mut sq = lists.remove(0);
                        let mut mb = if momentum > 0.0 {
                            lists.remove(0)
                        } else {
                            Vec::new()
                        };
                        let mut ga = if centered {
                            lists.remove(0)
                        } else {
                            Vec::new()
                        };
                        rmsprop_at(lvl, &mut p, &g, &mut sq, &mut mb, &mut ga, &h).unwrap();
                    });
                    let mut st: Vec<f64> = base.s.iter().map(|l| l[last][0].to_f64()).collect();
                    let (mut p, g0) = (base.p[last][0].to_f64(), base.g[last][0].to_f64());
                    for _ in 0..2 {
                        let g = -g0 + wd * p;
                        st[0] = 0.9 * st[0] + 0.1 * g * g;
                        let gi = st.len() - 1;
                        let avg = if centered {
                            st[gi] = 0.9 * st[gi] + 0.1 * g;
                            (st[0] - st[gi] * st[gi]).sqrt() + 1e-8
                        } else {
                            st[0].sqrt() + 1e-8
                        };
                        if momentum > 0.0 {
                            st[1] = momentum * st[1] + g / avg;
                            p -= 0.01 * st[1];
                        } else {
                            p -= 0.01 * g / avg;
                        }
                    }
                    close(out.p[last][0], p, tol::<T>() * 10.0, "rmsprop");
                }
            }
        }

        let h = Adadelta {
            lr: 1.0,
            rho: 0.9,
            eps: 1e-6,
            weight_decay: 0.0,
            maximize: false,
        };
        let (base, out) = at_levels::<T>(2, |lvl, gr, _| {
            let mut p = muts(&mut gr.p);
            let g = refs(&gr.g);
            let (a, b) = gr.s.split_at_mut(1);
            let mut sq = muts(&mut a[0]);
            let mut acc = muts(&mut b[0]);
            adadelta_at(lvl, &mut p, &g, &mut sq, &mut acc, &h).unwrap();
        });
        let (mut p, g, mut v, mut u) = (
            base.p[last][0].to_f64(),
            base.g[last][0].to_f64(),
            base.s[0][last][0].to_f64(),
            base.s[1][last][0].to_f64(),
        );
        for _ in 0..2 {
            v = 0.9 * v + 0.1 * g * g;
            let d = (u + 1e-6).sqrt() / (v + 1e-6).sqrt() * g;
            u = 0.9 * u + 0.1 * d * d;
            p -= d;
        }
        close(out.p[last][0], p, tol::<T>(), "adadelta");

        let h = NAdam {
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum_decay: 4e-3,
            decoupled_weight_decay: false,
            maximize: false,
        };
        let (base, out) = at_levels::<T>(2, |lvl, gr, step| {
            let n = gr.p.len();
            let first = step == 1.0;
            // mu_product after step 1 is mu_1.
            let mu1 = 0.9 * (1.0 - 0.5 * 0.96f64.powf(4e-3));
            let (steps, mut mus) = if first {
                (vec![1.0; n], vec![1.0; n])
            } else {
                (vec![2.0; n], vec![mu1; n])
            };
            let mut p = muts(&mut gr.p);
            let g = refs(&gr.g);
            let (a, b) = gr.s.split_at_mut(1);
            let mut m = muts(&mut a[0]);
            let mut v = muts(&mut b[0]);
            nadam_at(lvl, &mut p, &g, &mut m, &mut v, &steps, &mut mus, &h).unwrap();
        });
        let (mut p, g, mut m, mut v) = (
            base.p[last][0].to_f64(),
            base.g[last][0].to_f64(),
            base.s[0][last][0].to_f64(),
            base.s[1][last][0].to_f64(),
        );
        let mut prod = 1.0;
        for step in 1..=2 {
            let s = step as f64;
            let mu = 0.9 * (1.0 - 0.5 * 0.96f64.powf(s * 4e-3));
            let mun = 0.9 * (1.0 - 0.5 * 0.96f64.powf((s + 1.0) * 4e-3));
            prod *= mu;
            m = 0.9 * m + 0.1 * g;
            v = 0.999 * v + 0.001 * g * g;
            let denom = (v / (1.0 - 0.999f64.powf(s))).sqrt() + 1e-8;
            p += -0.01 * (1.0 - mu) / (1.0 - prod) * g / denom;
            p += -0.01 * mun / (1.0 - prod * mun) * m / denom;
        }
        close(out.p[last][0], p, tol::<T>() * 10.0, "nadam");
    }

    #[test]
    fn other_optimizers_all_levels() {
        run_others::<f32>();
        run_others::<f64>();
    }

    #[test]
    fn bad_lengths_are_errors() {
        let mut a = [0.0f32; 5];
        let mut b = [0.0f32; 5];
        let mut c = [0.0f32; 5];
        let g = [0.0f32; 4];
        let h = Adam {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
            decoupled_weight_decay: false,
            maximize: false,
        };
        let r = adam(
            &mut [&mut a[..]],
            &[&g[..]],
            &mut [&mut b[..]],
            &mut [&mut c[..]],
            &mut [],
            &[1.0],
            &h,
        );
        assert!(matches!(r, Err(KernelError::ShapeMismatch { .. })));
        let g = [0.0f32; 5];
        let r = adam(
            &mut [&mut a[..]],
            &[&g[..]],
            &mut [&mut b[..]],
            &mut [],
            &mut [],
            &[1.0],
            &h,
        );
        assert!(r.is_err());
        let r = adam(
            &mut [&mut a[..]],
            &[&g[..]],
            &mut [&mut b[..]],
            &mut [&mut c[..]],
            &mut [],
            &[0.0],
            &h,
        );
        assert!(matches!(r, Err(KernelError::InvalidArgument { .. })));
        let mut short = [0.0f32; 3];
        let r = sgd(
            &mut [&mut a[..]],
            &[&g[..]],
            &mut [&mut short[..]],
            &[true],
            &Sgd {
                lr: 0.1,
                momentum: 0.9,
                dampening: 0.0,
                weight_decay: 0.0,
                nesterov: false,
                maximize: false,
            },
        );
        assert!(r.is_err());
    }

    #[test]
    fn thread_counts_agree_bitwise() {
        let h = Adam {
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.1,
            amsgrad: true,
            decoupled_weight_decay: false,
            maximize: false,
        };
        let hs = Sgd {
            lr: 0.1,
            momentum: 0.9,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: true,
            maximize: false,
        };
        for n in [PAR_MIN - 1, PAR_MIN, CHUNK + 1, 3 * PAR_MIN + 17] {
            let mut r = Rng(7);
            let p0: Vec<f32> = r.signed(n);
            let g: Vec<f32> = r.signed(n);
            // Two tensors: the work items of both share the pool.
            let (n1, n2) = (n / 3, n - n / 3);
            let mut results = Vec::new();
            for threads in [1usize, 2, 3] {
                let (mut p, mut m, mut v) = (p0.clone(), vec![0.0f32; n], vec![0.0f32; n]);
                let mut vmax = vec![0.0f32; n];
                let (mut q, mut buf) = (p0.clone(), vec![0.0f32; n]);
                crate::threading::with_threads(threads, || {
                    let (p1, p2) = p.split_at_mut(n1);
                    let (m1, m2) = m.split_at_mut(n1);
                    let (v1, v2) = v.split_at_mut(n1);
                    let (x1, x2) = vmax.split_at_mut(n1);
                    let (g1, g2) = g.split_at(n1);
                    assert_eq!(p2.len(), n2);
                    adam(
                        &mut [p1, p2],
                        &[g1, g2],
                        &mut [m1, m2],
                        &mut [v1, v2],
                        &mut [x1, x2],
                        &[1.0, 3.0],
                        &h,
                    )
                    .unwrap();
                    for _ in 0..2 {
                        sgd(
                            &mut [&mut q[..]],
                            &[&g[..]],
                            &mut [&mut buf[..]],
                            &[false],
                            &hs,
                        )
                        .unwrap();
                    }
                });
                results.push((p, m, v, vmax, q, buf));
            }
            let bits = |v: &[f32]| v.iter().map(|a| a.to_bits()).collect::<Vec<u32>>();
            for o in &results[1..] {
                let r0 = &results[0];
                assert_eq!(bits(&o.0), bits(&r0.0), "n={n}");
                assert_eq!(bits(&o.1), bits(&r0.1), "n={n}");
                assert_eq!(bits(&o.2), bits(&r0.2), "n={n}");
                assert_eq!(bits(&o.3), bits(&r0.3), "n={n}");
                assert_eq!(bits(&o.4), bits(&r0.4), "n={n}");
                assert_eq!(bits(&o.5), bits(&r0.5), "n={n}");
            }
        }
    }
}
