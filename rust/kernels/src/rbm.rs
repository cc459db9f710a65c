//! Boltzmann-machine kernels: seeded Gibbs sampling, contrastive-divergence training of
//! restricted Boltzmann machines, and mean-field inference and persistent-chain training
//! of deep Boltzmann machines.
//!
//! CONTRACT. An RBM has `nv` visible and `nh` hidden units: weights `w` (nh, nv) row-major
//! (scikit-learn's `components_`), hidden biases `bh` (nh), visible biases `bv` (nv).
//! - `P(h = 1 | v) = sigmoid(up * v W^T + bh)`;
//! - Bernoulli visible units: `P(v = 1 | h) = sigmoid(down * h W + bv)`; Gaussian visible
//!   units (unit variance): `v ~ N(down * h W + bv, 1)`.
//! - `up` and `down` are 1 for a plain RBM; the DBM's greedy pretraining uses 2 for the
//!   direction whose input the DBM doubles (Salakhutdinov and Hinton, 2009).
//! - Free energy: Bernoulli `F(v) = -v.bv - sum_j softplus(x_j)`, Gaussian
//!   `F(v) = ||v - bv||^2 / 2 - sum_j softplus(x_j)`, with `x = v W^T + bh`;
//!   softplus is `log(1 + e^x)` computed as `max(x, 0) + log1p(e^-|x|)`.
//! - Training (one mini-batch `v+` of m rows, scikit-learn's BernoulliRBM when k = 1,
//!   persistent, no momentum and no weight decay): `h+ = P(h | v+)`; the negative chain
//!   starts from the persistent hidden states (persistent CD) or from a sample of `h+`
//!   (CD-k) and runs k steps `v- ~ P(v | h)`, `h- = P(h | v-)` (sampling h between steps);
//!   `G = h+^T v+ - h-^T v-`, and with `s = lr / m`:
//!   `vel_w = momentum vel_w + s G - lr wd W`, `W += vel_w` (biases likewise from column
//!   sums, without decay). The persistent states become a sample of the last `h-`.
//!
//! RANDOMNESS. Every random number is a pure function of `(seed, stream, index)`: a
//! SplitMix64-style hash of the seed and a stream number picks a key, and element `index`
//! of a sampling step gets `mix(key + index * golden)`. Each sampling step of a run takes
//! the next stream number, so results depend on the seed and the starting stream only,
//! never on the thread count or on how the work is split. Uniforms have 24 (f32) or 53
//! (f64) random bits; normals come from Box-Muller on elements `2 i` and `2 i + 1`.
//!
//! DETERMINISM. Products are the crate's GEMM (fixed reduction order); column sums run
//! over rows in order; sampling is indexed as above. Bitwise identical for any thread
//! count.

use crate::elementwise::{self, Unary};
use crate::error::{check_len, checked_product};
use crate::gemm;
use crate::threading;
use crate::{Float, KernelError, Result};

// ---------------------------------------------------------------------------------------
// Counter-based random numbers.

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The SplitMix64 finaliser.
#[inline(always)]
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The key of stream `stream` of `seed`.
#[inline]
pub fn stream_key(seed: u64, stream: u64) -> u64 {
    mix(seed
        ^ mix(stream
            .wrapping_mul(GOLDEN)
            .wrapping_add(0x632B_E59B_D9B4_E019)))
}

/// Uniform in [0, 1) for element `i` of the stream with key `key`.
#[inline(always)]
pub fn uniform<T: Float>(key: u64, i: u64) -> T {
    let z = mix(key.wrapping_add(i.wrapping_add(1).wrapping_mul(GOLDEN)));
    if T::IS_F64 {
        T::from_f64((z >> 11) as f64 * (1.0 / (1u64 << 53) as f64))
    } else {
        T::from_f64(((z >> 40) as f32 * (1.0 / (1u32 << 24) as f32)) as f64)
    }
}

/// Standard normal for element `i` (Box-Muller on uniforms `2 i`, `2 i + 1`).
#[inline(always)]
pub fn normal<T: Float>(key: u64, i: u64) -> T {
    let u1: f64 = uniform(key, 2 * i);
    let u2: f64 = uniform(key, 2 * i + 1);
    let r = (-2.0 * (1.0 - u1).ln()).sqrt();
    T::from_f64(r * (std::f64::consts::TAU * u2).cos())
}

/// Elements per task of the sampling and bias loops.
const CHUNK: usize = 16 * 1024;

/// Fills `out` with uniforms of stream (`seed`, `stream`) (for tests and references).
pub fn uniforms<T: Float>(seed: u64, stream: u64, out: &mut [T]) {
    let key = stream_key(seed, stream);
    threading::for_each_chunk_mut(out, CHUNK, |c, part| {
        for (k, o) in part.iter_mut().enumerate() {
            *o = uniform(key, (c * CHUNK + k) as u64);
        }
    });
}

/// `out[i] = 1 if u_i < p[i] else 0`, u from stream (`seed`, `stream`).
pub fn sample_bernoulli<T: Float>(p: &[T], out: &mut [T], seed: u64, stream: u64) -> Result<()> {
    check_len("rbm_sample", "out", p.len(), out.len())?;
    let key = stream_key(seed, stream);
    let out = &mut out[..p.len()];
    let par = p.len() >= CHUNK;
    let f = |c: usize, part: &mut [T]| {
        for (k, o) in part.iter_mut().enumerate() {
            let i = c * CHUNK + k;
            *o = if uniform::<T>(key, i as u64) < p[i] {
                T::ONE
            } else {
                T::ZERO
            };
        }
    };
    if par {
        threading::for_each_chunk_mut(out, CHUNK, f);
    } else {
        f(0, out);
    }
    Ok(())
}

/// `out[i] = mean[i] + z_i`, z standard normal from stream (`seed`, `stream`).
pub fn sample_gaussian<T: Float>(mean: &[T], out: &mut [T], seed: u64, stream: u64) -> Result<()> {
    check_len("rbm_sample", "out", mean.len(), out.len())?;
    let key = stream_key(seed, stream);
    let out = &mut out[..mean.len()];
    let f = |c: usize, part: &mut [T]| {
        for (k, o) in part.iter_mut().enumerate() {
            let i = c * CHUNK + k;
            *o = mean[i] + normal::<T>(key, i as u64);
        }
    };
    if mean.len() >= CHUNK {
        threading::for_each_chunk_mut(out, CHUNK, f);
    } else {
        f(0, out);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Conditionals.

/// The parameters of one RBM (borrowed).
#[derive(Clone, Copy)]
pub struct Rbm<'a, T> {
    pub w: &'a [T],
    pub bh: &'a [T],
    pub bv: &'a [T],
    pub nv: usize,
    pub nh: usize,
    pub gaussian: bool,
}

impl<T: Float> Rbm<'_, T> {
    fn check(&self, op: &'static str) -> Result<()> {
        if self.nv == 0 || self.nh == 0 {
            return Err(KernelError::InvalidArgument {
                op,
                detail: format!(
                    "expected at least one visible and one hidden unit, given {} and {}",
                    self.nv, self.nh
                ),
            });
        }
        check_len(
            op,
            "w",
            checked_product(op, &[self.nv, self.nh])?,
            self.w.len(),
        )?;
        check_len(op, "bh", self.nh, self.bh.len())?;
        check_len(op, "bv", self.nv, self.bv.len())
    }
}

/// e^-|x| for |x| <= 708 (clamped beyond), f64: Cody-Waite reduction `|x| = n ln2 + r`,
/// |r| <= ln2 / 2, a degree-13 Taylor polynomial (truncation below 1e-17 relative) and
/// the exponent built from n's bits. Branch-free, so a loop over it vectorises.
#[inline(always)]
fn exp_neg_abs(x: f64) -> f64 {
    const MAGIC: f64 = 6_755_399_441_055_744.0; // 1.5 * 2^52
    const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000); // fdlibm ln2_hi
    const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76); // fdlibm ln2_lo
    let a = -(x.abs().min(708.0));
    let t = a * std::f64::consts::LOG2_E + MAGIC;
    let n = t - MAGIC;
    let r = a - n * LN2_HI - n * LN2_LO;
    let mut p = 1.0 / 6_227_020_800.0; // 1/13!
    p = p * r + 1.0 / 479_001_600.0;
    p = p * r + 1.0 / 39_916_800.0;
    p = p * r + 1.0 / 3_628_800.0;
    p = p * r + 1.0 / 362_880.0;
    p = p * r + 1.0 / 40_320.0;
    p = p * r + 1.0 / 5_040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    // n in [-1022, 0]: 2^n is a normal number; its exponent field is n + 1023.
    let bits = (t.to_bits() as i64).wrapping_sub(MAGIC.to_bits() as i64);
    p * f64::from_bits(((bits + 1023) as u64) << 52)
}

/// sigmoid(x) = 1 / (1 + e^-x), from e^-|x| so that neither tail cancels.
#[inline(always)]
fn sigmoid64(x: f64) -> f64 {
    let e = exp_neg_abs(x);
    let d = 1.0 / (1.0 + e);
    if x >= 0.0 {
        d
    } else {
        e * d
    }
}

fn sigmoid64_loop(v: &mut [f64]) {
    for x in v.iter_mut() {
        *x = sigmoid64(*x);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn sigmoid64_avx512(v: &mut [f64]) {
    sigmoid64_loop(v)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn sigmoid64_avx2(v: &mut [f64]) {
    sigmoid64_loop(v)
}

/// In-place logistic sigmoid: f32 through the element-wise kernel, f64 through the
/// vectorisable [`sigmoid64`] (libm's exp lane by lane costs more than the products
/// around it in RBM training). Values never depend on the split into chunks.
fn sigmoid_inplace<T: Float>(y: &mut [T]) -> Result<()> {
    if !T::IS_F64 {
        return elementwise::forward_inplace(Unary::Sigmoid, y);
    }
    let y: &mut [f64] = crate::vmath::cast_mut(y);
    let level = crate::simd::level();
    let run = |part: &mut [f64]| match level {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: simd::level() reports Avx512 only when avx512f was detected.
        crate::simd::Level::Avx512 => unsafe { sigmoid64_avx512(part) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: simd::level() reports Avx2Fma only when avx2 and fma were detected.
        crate::simd::Level::Avx2Fma => unsafe { sigmoid64_avx2(part) },
        _ => sigmoid64_loop(part),
    };
    if y.len() >= 4 * CHUNK {
        threading::for_each_chunk_mut(y, CHUNK, |_, part| run(part));
    } else {
        run(y);
    }
    Ok(())
}

/// Products below this many multiply-adds run on the calling thread: RBM training is a
/// chain of small dependent products (a mini-batch of 10 rows against 256 x 64 weights is
/// 164k), where handing work to a second thread costs more than it saves (measured: two
/// threads no faster on load_digits, and slower whenever the second core is busy).
const MM_PAR_MIN: usize = 1 << 21;

/// The crate's GEMM (same contract and same bits in either mode), inline when small.
#[allow(clippy::too_many_arguments)]
fn mm<T: Float>(
    ta: bool,
    tb: bool,
    m: usize,
    n: usize,
    k: usize,
    alpha: T,
    a: &[T],
    lda: usize,
    b: &[T],
    ldb: usize,
    beta: T,
    c: &mut [T],
    ldc: usize,
) -> Result<()> {
    let mode = if m.saturating_mul(n).saturating_mul(k) < MM_PAR_MIN {
        gemm::Mode::Inline
    } else {
        gemm::Mode::Auto
    };
    gemm::gemm_with_level(
        crate::simd::level(),
        mode,
        ta,
        tb,
        m,
        n,
        k,
        alpha,
        a,
        lda,
        b,
        ldb,
        beta,
        c,
        ldc,
    )
}

/// Adds `bias` (cols) to every row of `x` (rows x cols).
fn add_bias<T: Float>(x: &mut [T], cols: usize, bias: &[T]) {
    let rows_per = (CHUNK / cols.max(1)).max(1);
    let f = |_: usize, part: &mut [T]| {
        for row in part.chunks_exact_mut(cols) {
            for (v, &b) in row.iter_mut().zip(bias) {
                *v += b;
            }
        }
    };
    if x.len() >= 2 * CHUNK {
        threading::for_each_chunk_mut(x, rows_per * cols, f);
    } else {
        f(0, x);
    }
}

/// `out (n, nh) = sigmoid(up * v W^T + bh)` for `v` (n, nv).
pub fn hidden_probs<T: Float>(
    r: &Rbm<'_, T>,
    v: &[T],
    n: usize,
    up: T,
    out: &mut [T],
) -> Result<()> {
    const OP: &str = "rbm_hidden";
    r.check(OP)?;
    check_len(OP, "v", checked_product(OP, &[n, r.nv])?, v.len())?;
    check_len(OP, "out", checked_product(OP, &[n, r.nh])?, out.len())?;
    let out = &mut out[..n * r.nh];
    mm(
        false,
        true,
        n,
        r.nh,
        r.nv,
        up,
        v,
        r.nv,
        r.w,
        r.nv,
        T::ZERO,
        out,
        r.nh,
    )?;
    add_bias(out, r.nh, r.bh);
    sigmoid_inplace(out)
}

/// `out (n, nv)`: `P(v = 1 | h)` (Bernoulli) or the mean of `v` (Gaussian), for `h`
/// (n, nh).
pub fn visible_probs<T: Float>(
    r: &Rbm<'_, T>,
    h: &[T],
    n: usize,
    down: T,
    out: &mut [T],
) -> Result<()> {
    const OP: &str = "rbm_visible";
    r.check(OP)?;
    check_len(OP, "h", checked_product(OP, &[n, r.nh])?, h.len())?;
    check_len(OP, "out", checked_product(OP, &[n, r.nv])?, out.len())?;
    let out = &mut out[..n * r.nv];
    mm(
        false,
        false,
        n,
        r.nv,
        r.nh,
        down,
        h,
        r.nh,
        r.w,
        r.nv,
        T::ZERO,
        out,
        r.nv,
    )?;
    add_bias(out, r.nv, r.bv);
    if r.gaussian {
        Ok(())
    } else {
        sigmoid_inplace(out)
    }
}

/// A sample of the visible units given their probabilities (Bernoulli) or means (Gaussian).
fn sample_visible<T: Float>(
    gaussian: bool,
    p: &[T],
    out: &mut [T],
    seed: u64,
    stream: u64,
) -> Result<()> {
    if gaussian {
        sample_gaussian(p, out, seed, stream)
    } else {
        sample_bernoulli(p, out, seed, stream)
    }
}

#[inline(always)]
fn softplus<T: Float>(x: T) -> T {
    let m = if x > T::ZERO { x } else { T::ZERO };
    m + (-x.abs()).exp().ln_1p()
}

/// Free energy of each row of `v` (n, nv) into `out` (n).
pub fn free_energy<T: Float>(r: &Rbm<'_, T>, v: &[T], n: usize, out: &mut [T]) -> Result<()> {
    const OP: &str = "rbm_free_energy";
    r.check(OP)?;
    check_len(OP, "v", checked_product(OP, &[n, r.nv])?, v.len())?;
    check_len(OP, "out", n, out.len())?;
    let mut x = vec![T::ZERO; checked_product(OP, &[n, r.nh])?];
    mm(
        false,
        true,
        n,
        r.nh,
        r.nv,
        T::ONE,
        v,
        r.nv,
        r.w,
        r.nv,
        T::ZERO,
        &mut x,
        r.nh,
    )?;
    let rows = (CHUNK / r.nh).max(1);
    let half = T::from_f64(0.5);
    threading::for_each_chunk_mut(&mut out[..n], rows, |c, part| {
        for (k, o) in part.iter_mut().enumerate() {
            let i = c * rows + k;
            let xr = &x[i * r.nh..][..r.nh];
            let vr = &v[i * r.nv..][..r.nv];
            let mut sp = T::ZERO;
            for (&xv, &b) in xr.iter().zip(r.bh) {
                sp += softplus(xv + b);
            }
            let mut vis = T::ZERO;
            if r.gaussian {
                for (&a, &b) in vr.iter().zip(r.bv) {
                    vis += (a - b) * (a - b);
                }
                vis = half * vis;
            } else {
                for (&a, &b) in vr.iter().zip(r.bv) {
                    vis -= a * b;
                }
            }
            *o = vis - sp;
        }
    });
    Ok(())
}

/// `steps` Gibbs steps from `v` (n, nv): `h ~ P(h | v)`, `v ~ P(v | h)`; the final
/// visible sample into `out`, its probabilities (or means) into `probs`. Uses streams
/// `stream .. stream + 2 * steps`; returns the next free stream.
#[allow(clippy::too_many_arguments)]
pub fn gibbs<T: Float>(
    r: &Rbm<'_, T>,
    v: &[T],
    n: usize,
    steps: usize,
    seed: u64,
    stream: u64,
    out: &mut [T],
    probs: &mut [T],
) -> Result<u64> {
    const OP: &str = "rbm_gibbs";
    r.check(OP)?;
    let nvt = checked_product(OP, &[n, r.nv])?;
    check_len(OP, "v", nvt, v.len())?;
    check_len(OP, "out", nvt, out.len())?;
    check_len(OP, "probs", nvt, probs.len())?;
    let out = &mut out[..nvt];
    out.copy_from_slice(&v[..nvt]);
    let mut hp = vec![T::ZERO; checked_product(OP, &[n, r.nh])?];
    let mut hs = hp.clone();
    let mut s = stream;
    for _ in 0..steps {
        hidden_probs(r, out, n, T::ONE, &mut hp)?;
        sample_bernoulli(&hp, &mut hs, seed, s)?;
        visible_probs(r, &hs, n, T::ONE, &mut probs[..nvt])?;
        sample_visible(r.gaussian, &probs[..nvt], out, seed, s + 1)?;
        s += 2;
    }
    Ok(s)
}

/// Column sums of `x` (rows, cols), each over rows in order, into `out` (added with sign).
fn col_sums_into<T: Float>(x: &[T], rows: usize, cols: usize, sign: T, out: &mut [T]) {
    let mut acc = vec![T::ZERO; cols];
    for row in x[..rows * cols].chunks_exact(cols) {
        for (a, &v) in acc.iter_mut().zip(row) {
            *a += v;
        }
    }
    for (o, a) in out.iter_mut().zip(acc) {
        *o += sign * a;
    }
}

/// Hyper-parameters of RBM training.
#[derive(Debug, Clone, Copy)]
pub struct FitParams {
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    /// Gibbs steps per update (>= 1).
    pub k: usize,
    pub persistent: bool,
    /// Input scale of P(h | v) and of P(v | h) (1 for a plain RBM).
    pub up: f64,
    pub down: f64,
    pub seed: u64,
}

/// Mutable state of RBM training.
pub struct FitState<'a, T> {
    pub w: &'a mut [T],
    pub bh: &'a mut [T],
    pub bv: &'a mut [T],
    pub vel_w: &'a mut [T],
    pub vel_bh: &'a mut [T],
    pub vel_bv: &'a mut [T],
    /// Persistent hidden states (chain_rows, nh) (persistent CD; may be empty otherwise).
    pub chain: &'a mut [T],
    pub chain_rows: usize,
}

/// Trains an RBM for `epochs` passes over `data` (n, nv), in mini-batches
/// `data[bounds[b]..bounds[b + 1]]` (rows; `bounds` increasing from 0 to n). Returns the
/// next free stream (streams are taken from `stream` on).
#[allow(clippy::too_many_arguments)]
pub fn fit<T: Float>(
    st: &mut FitState<'_, T>,
    nv: usize,
    nh: usize,
    gaussian: bool,
    data: &[T],
    n: usize,
    bounds: &[usize],
    epochs: usize,
    p: &FitParams,
    stream: u64,
) -> Result<u64> {
    const OP: &str = "rbm_fit";
    let wlen = checked_product(OP, &[nv, nh])?;
    if nv == 0 || nh == 0 {
        return Err(KernelError::InvalidArgument {
            op: OP,
            detail: format!(
                "expected at least one visible and one hidden unit, given {nv} and {nh}"
            ),
        });
    }
    check_len(OP, "w", wlen, st.w.len())?;
    check_len(OP, "vel_w", wlen, st.vel_w.len())?;
    check_len(OP, "bh", nh, st.bh.len())?;
    check_len(OP, "vel_bh", nh, st.vel_bh.len())?;
    check_len(OP, "bv", nv, st.bv.len())?;
    check_len(OP, "vel_bv", nv, st.vel_bv.len())?;
    check_len(OP, "data", checked_product(OP, &[n, nv])?, data.len())?;
    if p.k == 0 {
        return Err(KernelError::InvalidArgument {
            op: OP,
            detail: "k (Gibbs steps per update) must be at least 1, given 0".into(),
        });
    }
    if bounds.first() != Some(&0)
        || bounds.last() != Some(&n)
        || bounds.windows(2).any(|b| b[1] <= b[0])
    {
        return Err(KernelError::InvalidArgument {
            op: OP,
            detail: format!("batch bounds must increase strictly from 0 to n = {n}"),
        });
    }
    if p.persistent {
        if st.chain_rows == 0 {
            return Err(KernelError::InvalidArgument {
                op: OP,
                detail: "persistent CD needs at least one chain".into(),
            });
        }
        check_len(
            OP,
            "chain",
            checked_product(OP, &[st.chain_rows, nh])?,
            st.chain.len(),
        )?;
    }
    let maxm = bounds.windows(2).map(|b| b[1] - b[0]).max().unwrap_or(0);
    let negm = if p.persistent {
        st.chain_rows.max(maxm)
    } else {
        maxm
    };
    // Stacked statistics: ha = [h+; h-] (m + mn, nh), vb = [v+; -v-] (m + mn, nv), so that
    // G = h+^T v+ - h-^T v- = ha^T vb is one GEMM (and, without momentum and weight decay,
    // W += s G runs as that GEMM with beta = 1).
    let mut ha = vec![T::ZERO; (maxm + negm) * nh];
    let mut vb = vec![T::ZERO; (maxm + negm) * nv];
    let mut hs = vec![T::ZERO; negm * nh];
    let mut vp = vec![T::ZERO; negm * nv];
    let plain = p.momentum == 0.0 && p.weight_decay == 0.0;
    let mut gw = vec![T::ZERO; if plain { 0 } else { wlen }];
    let mut gbh = vec![T::ZERO; nh];
    let mut gbv = vec![T::ZERO; nv];
    let (up, down) = (T::from_f64(p.up), T::from_f64(p.down));
    let mom = T::from_f64(p.momentum);
    let decay = T::from_f64(p.lr * p.weight_decay);
    let mut s = stream;
    for _ in 0..epochs {
        for b in bounds.windows(2) {
            let m = b[1] - b[0];
            let vpos = &data[b[0] * nv..b[1] * nv];
            let mut mn = m;
            {
                let r = Rbm {
                    w: &*st.w,
                    bh: &*st.bh,
                    bv: &*st.bv,
                    nv,
                    nh,
                    gaussian,
                };
                let (hpos, hneg) = ha.split_at_mut(m * nh);
                let (vposc, vneg) = vb.split_at_mut(m * nv);
                vposc.copy_from_slice(vpos);
                hidden_probs(&r, vpos, m, up, hpos)?;
                if p.persistent {
                    mn = st.chain_rows;
                    hs[..mn * nh].copy_from_slice(&st.chain[..mn * nh]);
                } else {
                    sample_bernoulli(hpos, &mut hs[..m * nh], p.seed, s)?;
                    s += 1;
                }
                let (hneg, vneg) = (&mut hneg[..mn * nh], &mut vneg[..mn * nv]);
                for step in 0..p.k {
                    visible_probs(&r, &hs[..mn * nh], mn, down, &mut vp[..mn * nv])?;
                    sample_visible(gaussian, &vp[..mn * nv], vneg, p.seed, s)?;
                    s += 1;
                    hidden_probs(&r, vneg, mn, up, hneg)?;
                    if step + 1 < p.k {
                        sample_bernoulli(hneg, &mut hs[..mn * nh], p.seed, s)?;
                        s += 1;
                    }
                }
                vneg.iter_mut().for_each(|v| *v = -*v);
                gbh.iter_mut().for_each(|g| *g = T::ZERO);
                gbv.iter_mut().for_each(|g| *g = T::ZERO);
                col_sums_into(hpos, m, nh, T::ONE, &mut gbh);
                col_sums_into(hneg, mn, nh, -T::ONE, &mut gbh);
                col_sums_into(&vb, m + mn, nv, T::ONE, &mut gbv);
                if p.persistent {
                    sample_bernoulli(hneg, &mut st.chain[..mn * nh], p.seed, s)?;
                    s += 1;
                }
            }
            let scale = T::from_f64(p.lr / m as f64);
            let k = m + mn;
            if plain {
                mm(
                    true,
                    false,
                    nh,
                    nv,
                    k,
                    scale,
                    &ha,
                    nh,
                    &vb,
                    nv,
                    T::ONE,
                    st.w,
                    nv,
                )?;
            } else {
                mm(
                    true,
                    false,
                    nh,
                    nv,
                    k,
                    T::ONE,
                    &ha,
                    nh,
                    &vb,
                    nv,
                    T::ZERO,
                    &mut gw,
                    nv,
                )?;
                apply(
                    &mut st.w[..wlen],
                    &mut st.vel_w[..wlen],
                    &gw,
                    scale,
                    mom,
                    decay,
                );
            }
            apply(
                &mut st.bh[..nh],
                &mut st.vel_bh[..nh],
                &gbh,
                scale,
                mom,
                T::ZERO,
            );
            apply(
                &mut st.bv[..nv],
                &mut st.vel_bv[..nv],
                &gbv,
                scale,
                mom,
                T::ZERO,
            );
        }
    }
    Ok(s)
}

/// `vel = mom * vel + scale * g - decay * p; p += vel` (without momentum and decay:
/// `p += scale * g`, scikit-learn's update).
fn apply<T: Float>(p: &mut [T], vel: &mut [T], g: &[T], scale: T, mom: T, decay: T) {
    let plain = mom == T::ZERO && decay == T::ZERO;
    let n = p.len().min(vel.len()).min(g.len());
    let p = &mut p[..n];
    let vp = threading::SendPtr::new(&mut vel[..n]);
    let f = |c: usize, part: &mut [T]| {
        let lo = c * CHUNK;
        // SAFETY: `part` is p[lo..lo + part.len()] with lo + part.len() <= n = vel's
        // length here; chunk c of vel is touched only by the task of chunk c, and vel is
        // exclusively borrowed for this call.
        let vpart = unsafe { std::slice::from_raw_parts_mut(vp.get().add(lo), part.len()) };
        let gpart = &g[lo..lo + part.len()];
        if plain {
            for (pv, &gv) in part.iter_mut().zip(gpart) {
                *pv += scale * gv;
            }
        } else {
            for ((pv, vv), &gv) in part.iter_mut().zip(vpart.iter_mut()).zip(gpart) {
                *vv = mom * *vv + scale * gv - decay * *pv;
                *pv += *vv;
            }
        }
    };
    if n >= 2 * CHUNK {
        threading::for_each_chunk_mut(p, CHUNK, f);
    } else {
        f(0, p);
    }
}

// ---------------------------------------------------------------------------------------
// Deep Boltzmann machines.

/// A DBM of `sizes.len()` layers (layer 0 visible): `w[l]` (sizes[l + 1], sizes[l]) joins
/// layers l and l + 1, `b[l]` (sizes[l]) is layer l's bias. Bernoulli units throughout.
pub struct Dbm<'a, T> {
    pub w: Vec<&'a [T]>,
    pub b: Vec<&'a [T]>,
    pub sizes: &'a [usize],
}

fn check_dbm<T>(op: &'static str, w: &[&[T]], b: &[&[T]], sizes: &[usize]) -> Result<()> {
    if sizes.len() < 2 || sizes.contains(&0) {
        return Err(KernelError::InvalidArgument {
            op,
            detail: format!(
                "expected at least 2 layers, each of at least 1 unit, given sizes {sizes:?}"
            ),
        });
    }
    if w.len() != sizes.len() - 1 || b.len() != sizes.len() {
        return Err(KernelError::ShapeMismatch {
            op,
            detail: format!(
                "{} layers need {} weight matrices and {} bias vectors, given {} and {}",
                sizes.len(),
                sizes.len() - 1,
                sizes.len(),
                w.len(),
                b.len()
            ),
        });
    }
    for l in 0..w.len() {
        check_len(
            op,
            "w[l]",
            checked_product(op, &[sizes[l], sizes[l + 1]])?,
            w[l].len(),
        )?;
    }
    for (l, bl) in b.iter().enumerate() {
        check_len(op, "b[l]", sizes[l], bl.len())?;
    }
    Ok(())
}

/// Input of layer `l` from its neighbours' states `s` (each (n, sizes[k])) plus its bias,
/// then sigmoid, into `out` (n, sizes[l]).
fn layer_probs<T: Float>(
    d: &Dbm<'_, T>,
    s: &[&[T]],
    l: usize,
    n: usize,
    out: &mut [T],
) -> Result<()> {
    let sz = d.sizes;
    let out = &mut out[..n * sz[l]];
    let mut beta = T::ZERO;
    if l > 0 {
        // From below: s[l-1] (n, sz[l-1]) @ W[l-1]^T (sz[l-1], sz[l]).
        mm(
            false,
            true,
            n,
            sz[l],
            sz[l - 1],
            T::ONE,
            s[l - 1],
            sz[l - 1],
            d.w[l - 1],
            sz[l - 1],
            beta,
            out,
            sz[l],
        )?;
        beta = T::ONE;
    }
    if l + 1 < sz.len() {
        // From above: s[l+1] (n, sz[l+1]) @ W[l] (sz[l+1], sz[l]).
        mm(
            false,
            false,
            n,
            sz[l],
            sz[l + 1],
            T::ONE,
            s[l + 1],
            sz[l + 1],
            d.w[l],
            sz[l],
            beta,
            out,
            sz[l],
        )?;
    }
    add_bias(out, sz[l], d.b[l]);
    sigmoid_inplace(out)
}

/// Mean-field posterior of the hidden layers given `v` (n, sizes[0]): `mu[l - 1]`
/// (n, sizes[l]) for l = 1..L, initialised by a bottom-up pass (weights doubled below the
/// top layer), then updated layer by layer (l = 1..L in turn) until the largest change
/// is at most `tol` or `iters` sweeps ran. Returns the number of sweeps.
pub fn mean_field<T: Float>(
    d: &Dbm<'_, T>,
    v: &[T],
    n: usize,
    mu: &mut [&mut [T]],
    iters: usize,
    tol: f64,
) -> Result<usize> {
    const OP: &str = "dbm_mean_field";
    check_dbm(OP, &d.w, &d.b, d.sizes)?;
    let sz = d.sizes;
    let nl = sz.len();
    check_len(OP, "v", checked_product(OP, &[n, sz[0]])?, v.len())?;
    if mu.len() != nl - 1 {
        return Err(KernelError::ShapeMismatch {
            op: OP,
            detail: format!("expected {} posterior buffers, given {}", nl - 1, mu.len()),
        });
    }
    for l in 1..nl {
        check_len(
            OP,
            "mu[l]",
            checked_product(OP, &[n, sz[l]])?,
            mu[l - 1].len(),
        )?;
    }
    if n == 0 {
        return Ok(0);
    }
    // Bottom-up initialisation.
    for l in 1..nl {
        let scale = if l + 1 < nl { T::from_f64(2.0) } else { T::ONE };
        let (lo, hi) = mu.split_at_mut(l - 1);
        let below: &[T] = if l == 1 { v } else { &*lo[l - 2] };
        let out = &mut hi[0][..n * sz[l]];
        mm(
            false,
            true,
            n,
            sz[l],
            sz[l - 1],
            scale,
            below,
            sz[l - 1],
            d.w[l - 1],
            sz[l - 1],
            T::ZERO,
            out,
            sz[l],
        )?;
        add_bias(out, sz[l], d.b[l]);
        sigmoid_inplace(out)?;
    }
    let mut buf: Vec<T> = Vec::new();
    let mut sweeps = 0;
    while sweeps < iters {
        sweeps += 1;
        let mut change = 0.0f64;
        for l in 1..nl {
            buf.resize(n * sz[l], T::ZERO);
            {
                let mut s: Vec<&[T]> = Vec::with_capacity(nl);
                s.push(v);
                for m in mu.iter() {
                    s.push(&**m);
                }
                layer_probs(d, &s, l, n, &mut buf)?;
            }
            let dst = &mut mu[l - 1][..n * sz[l]];
            for (o, &nv) in dst.iter_mut().zip(&buf) {
                change = change.max((nv - *o).abs().to_f64());
                *o = nv;
            }
        }
        if change <= tol {
            break;
        }
    }
    Ok(sweeps)
}

/// `sweeps` Gibbs sweeps of the chains `s` (one (m, sizes[l]) state per layer, layer 0
/// included): odd layers sampled given the even ones, then even layers given the odd
/// ones. `probs` receives each layer's last probabilities. Returns the next free stream.
#[allow(clippy::too_many_arguments)]
pub fn dbm_gibbs<T: Float>(
    d: &Dbm<'_, T>,
    s: &mut [&mut [T]],
    probs: &mut [&mut [T]],
    m: usize,
    sweeps: usize,
    seed: u64,
    stream: u64,
    clamp_visible: bool,
) -> Result<u64> {
    const OP: &str = "dbm_gibbs";
    check_dbm(OP, &d.w, &d.b, d.sizes)?;
    let sz = d.sizes;
    let nl = sz.len();
    if s.len() != nl || probs.len() != nl {
        return Err(KernelError::ShapeMismatch {
            op: OP,
            detail: format!(
                "expected {nl} state and probability buffers, given {} and {}",
                s.len(),
                probs.len()
            ),
        });
    }
    for l in 0..nl {
        let need = checked_product(OP, &[m, sz[l]])?;
        check_len(OP, "state", need, s[l].len())?;
        check_len(OP, "probs", need, probs[l].len())?;
    }
    let mut st = stream;
    for _ in 0..sweeps {
        for parity in [1usize, 0] {
            for l in (parity..nl).step_by(2) {
                if l == 0 && clamp_visible {
                    continue;
                }
                {
                    let view: Vec<&[T]> = s.iter().map(|x| &**x).collect();
                    layer_probs(d, &view, l, m, &mut probs[l][..m * sz[l]])?;
                }
                sample_bernoulli(&probs[l][..m * sz[l]], &mut s[l][..m * sz[l]], seed, st)?;
                st += 1;
            }
        }
    }
    Ok(st)
}

/// Hyper-parameters of DBM joint training.
#[derive(Debug, Clone, Copy)]
pub struct DbmParams {
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub mf_iters: usize,
    pub mf_tol: f64,
    pub gibbs_steps: usize,
    pub seed: u64,
}

/// Joint training of a DBM: for each mini-batch `data[bounds[b]..bounds[b + 1]]`, the
/// data-dependent statistics from the mean-field posterior, the model's from the
/// persistent chains `chains` (one (m, sizes[l]) state per layer) after `gibbs_steps`
/// sweeps; `W[l] += vel`, `vel = momentum vel + lr (mu_{l+1}^T mu_l / n - s_{l+1}^T s_l / m)
/// - lr wd W[l]`, biases from the mean differences. Returns the next free stream.
#[allow(clippy::too_many_arguments)]
pub fn dbm_fit<T: Float>(
    w: &mut [&mut [T]],
    b: &mut [&mut [T]],
    vel_w: &mut [&mut [T]],
    vel_b: &mut [&mut [T]],
    sizes: &[usize],
    chains: &mut [&mut [T]],
    m: usize,
    data: &[T],
    n: usize,
    bounds: &[usize],
    epochs: usize,
    p: &DbmParams,
    stream: u64,
) -> Result<u64> {
    const OP: &str = "dbm_fit";
    let nl = sizes.len();
    {
        let wv: Vec<&[T]> = w.iter().map(|x| &**x).collect();
        let bv: Vec<&[T]> = b.iter().map(|x| &**x).collect();
        check_dbm(OP, &wv, &bv, sizes)?;
    }
    if vel_w.len() != nl - 1 || vel_b.len() != nl || chains.len() != nl {
        return Err(KernelError::ShapeMismatch {
            op: OP,
            detail: "velocity and chain buffers must match the layers".into(),
        });
    }
    for l in 0..nl {
        check_len(OP, "vel_b[l]", sizes[l], vel_b[l].len())?;
        check_len(
            OP,
            "chains[l]",
            checked_product(OP, &[m, sizes[l]])?,
            chains[l].len(),
        )?;
        if l + 1 < nl {
            check_len(OP, "vel_w[l]", sizes[l] * sizes[l + 1], vel_w[l].len())?;
        }
    }
    check_len(OP, "data", checked_product(OP, &[n, sizes[0]])?, data.len())?;
    if m == 0 {
        return Err(KernelError::InvalidArgument {
            op: OP,
            detail: "expected at least one persistent chain".into(),
        });
    }
    if bounds.first() != Some(&0)
        || bounds.last() != Some(&n)
        || bounds.windows(2).any(|x| x[1] <= x[0])
    {
        return Err(KernelError::InvalidArgument {
            op: OP,
            detail: format!("batch bounds must increase strictly from 0 to n = {n}"),
        });
    }
    let maxb = bounds.windows(2).map(|x| x[1] - x[0]).max().unwrap_or(0);
    let mut mu: Vec<Vec<T>> = (1..nl).map(|l| vec![T::ZERO; maxb * sizes[l]]).collect();
    let mut probs: Vec<Vec<T>> = (0..nl).map(|l| vec![T::ZERO; m * sizes[l]]).collect();
    let mut gw: Vec<Vec<T>> = (0..nl - 1)
        .map(|l| vec![T::ZERO; sizes[l] * sizes[l + 1]])
        .collect();
    let mut gb: Vec<Vec<T>> = (0..nl).map(|l| vec![T::ZERO; sizes[l]]).collect();
    let mom = T::from_f64(p.momentum);
    let decay = T::from_f64(p.lr * p.weight_decay);
    let mut st = stream;
    for _ in 0..epochs {
        for bd in bounds.windows(2) {
            let nb = bd[1] - bd[0];
            let v = &data[bd[0] * sizes[0]..bd[1] * sizes[0]];
            {
                let d = Dbm {
                    w: w.iter().map(|x| &**x).collect(),
                    b: b.iter().map(|x| &**x).collect(),
                    sizes,
                };
                let mut mus: Vec<&mut [T]> = mu
                    .iter_mut()
                    .enumerate()
                    .map(|(k, x)| &mut x[..nb * sizes[k + 1]])
                    .collect();
                mean_field(&d, v, nb, &mut mus, p.mf_iters, p.mf_tol)?;
                let mut pr: Vec<&mut [T]> = probs.iter_mut().map(|x| &mut x[..]).collect();
                st = dbm_gibbs(&d, chains, &mut pr, m, p.gibbs_steps, p.seed, st, false)?;
                // Statistics.
                for l in 0..nl - 1 {
                    let lower_d: &[T] = if l == 0 {
                        v
                    } else {
                        &mu[l - 1][..nb * sizes[l]]
                    };
                    let upper_d: &[T] = &mu[l][..nb * sizes[l + 1]];
                    let a = T::from_f64(1.0 / nb as f64);
                    let c = T::from_f64(-1.0 / m as f64);
                    mm(
                        true,
                        false,
                        sizes[l + 1],
                        sizes[l],
                        nb,
                        a,
                        upper_d,
                        sizes[l + 1],
                        lower_d,
                        sizes[l],
                        T::ZERO,
                        &mut gw[l],
                        sizes[l],
                    )?;
                    mm(
                        true,
                        false,
                        sizes[l + 1],
                        sizes[l],
                        m,
                        c,
                        &*chains[l + 1],
                        sizes[l + 1],
                        &*chains[l],
                        sizes[l],
                        T::ONE,
                        &mut gw[l],
                        sizes[l],
                    )?;
                }
                for l in 0..nl {
                    gb[l].iter_mut().for_each(|g| *g = T::ZERO);
                    let dat: &[T] = if l == 0 {
                        v
                    } else {
                        &mu[l - 1][..nb * sizes[l]]
                    };
                    let mut pos = vec![T::ZERO; sizes[l]];
                    col_sums_into(dat, nb, sizes[l], T::ONE, &mut pos);
                    let mut neg = vec![T::ZERO; sizes[l]];
                    col_sums_into(&*chains[l], m, sizes[l], T::ONE, &mut neg);
                    let (a, c) = (T::from_f64(1.0 / nb as f64), T::from_f64(1.0 / m as f64));
                    for ((g, &pp), &nn) in gb[l].iter_mut().zip(&pos).zip(&neg) {
                        *g = a * pp - c * nn;
                    }
                }
            }
            let lr = T::from_f64(p.lr);
            for l in 0..nl - 1 {
                apply(&mut w[l][..], &mut vel_w[l][..], &gw[l], lr, mom, decay);
            }
            for l in 0..nl {
                apply(&mut b[l][..], &mut vel_b[l][..], &gb[l], lr, mom, T::ZERO);
            }
        }
    }
    Ok(st)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigmoid64_is_accurate() {
        let mut worst = 0.0f64;
        let mut x = -750.0;
        while x < 750.0 {
            let want = if x >= 0.0 {
                1.0 / (1.0 + (-x).exp())
            } else {
                x.exp() / (1.0 + x.exp())
            };
            let got = sigmoid64(x);
            if want > 1e-300 {
                worst = worst.max(((got - want) / want).abs());
            }
            x += 0.01234;
        }
        assert!(worst < 1e-15, "worst relative error {worst}");
        let mut v: Vec<f64> = (0..100_000).map(|i| (i as f64 - 50_000.0) * 1e-3).collect();
        let want: Vec<f64> = v.iter().map(|&x| sigmoid64(x)).collect();
        sigmoid_inplace(&mut v).unwrap();
        assert_eq!(v, want);
    }

    #[test]
    fn streams_are_independent_of_threads() {
        let p: Vec<f32> = (0..70_000).map(|i| (i % 97) as f32 / 97.0).collect();
        let mut a = vec![0.0f32; p.len()];
        let mut b = a.clone();
        crate::threading::with_threads(1, || sample_bernoulli(&p, &mut a, 7, 3).unwrap());
        crate::threading::with_threads(3, || sample_bernoulli(&p, &mut b, 7, 3).unwrap());
        assert_eq!(a, b);
        let mean = a.iter().map(|&v| v as f64).sum::<f64>() / a.len() as f64;
        let pm = p.iter().map(|&v| v as f64).sum::<f64>() / p.len() as f64;
        assert!((mean - pm).abs() < 0.01);
    }
}
