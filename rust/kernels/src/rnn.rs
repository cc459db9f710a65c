//! Recurrent kernels (RNN / LSTM / GRU): fused gate non-linearities and state updates,
//! and backpropagation through time for a whole sequence.
//!
//! CONTRACT (the binding relies on it). One call runs one layer in one direction over a
//! whole sequence, with PyTorch's equations, gate order and weight layout:
//! - RNN:  h' = act(W_ih x + b_ih + W_hh h + b_hh), act = tanh or relu.
//! - LSTM: gates (i, f, g, o) = (σ, σ, tanh, σ)(W_ih x + b_ih + W_hh h + b_hh);
//!   c' = f c + i g; h' = o tanh(c').
//! - GRU:  r, z = σ(W_i{r,z} x + b_i{r,z} + W_h{r,z} h + b_h{r,z});
//!   n = tanh(W_in x + b_in + r (W_hn h + b_hn)); h' = (1 - z) n + z h.
//!
//! Shapes (G gates: 1, 4 or 3; rows of x are ordered (t, b) time-major, or (b, t) with
//! `batch_first`): x (T * B, I), w_ih (G H, I), w_hh (G H, H), b_ih / b_hh (G H) or absent,
//! h0 / c0 (B, H) or absent (zeros), `out` rows in x's order with row stride `ldo`, this
//! direction's H columns starting at `off` (so both directions of a bidirectional layer
//! write into one array), h_n / c_n (B, H).
//!
//! Variable lengths: with `lengths` (B values in 1..=T), sequence b is active at time
//! steps t < lengths[b]. At the other steps its state is carried unchanged, its output is
//! 0 and nothing flows back through it, so h_n is the state after the last true step; the
//! reverse direction (`reverse`) runs t = T-1 .. 0 and so starts each sequence at its true
//! last step.
//!
//! The forward optionally saves a workspace ([`workspace_len`] elements) that
//! [`backward`] reads: gate activations and the states each step started from. The
//! backward returns the gradients of x (written or accumulated), h0, c0, both weights and
//! both biases; the weight gradients are GEMMs over all T * B rows at once.
//!
//! DESIGN:
//! - The input projection of all steps is one GEMM (T B x I times I x G H), written
//!   (when saving) straight into the workspace, where the gate kernel replaces the
//!   pre-activations by the activations.
//! - Batches of 32 rows or more ([`batch_chunk`]) are split by rows: one task
//!   per chunk runs its rows through every step (one GEMM against W_hh^T and the fused
//!   gate kernel per step) with no synchronisation, since sequences are independent.
//! - Smaller batches, per step one job on the pool: the hidden units are cut into blocks ([`unit_block`],
//!   from the sizes only, never the thread count); each task computes the recurrent
//!   product for the G gates of its units (one GEMM against a block-contiguous copy of
//!   W_hh^T) and then runs the fused gate kernel for its units (SIMD over units, vmath exp
//!   / tanh). The new state goes to a second buffer (other tasks still read the old one).
//! - Backward per step: each task adds dG_{t+1} W_hh for its units (GEMM, accumulating
//!   into the carried gradient) and runs the fused gate backward of step t for its units,
//!   which also sums the bias gradients of its units. Then dW_ih, dW_hh (and dx) are one
//!   GEMM each over all T B rows.
//! - Large temporaries come from a small pool of reused buffers ([`Scratch`]).
//! - Every output element is computed by one task with a fixed arithmetic order, so the
//!   results are bitwise identical for any thread count.

#![allow(clippy::too_many_arguments)]

use crate::error::{check_len, checked_product};
use crate::gemm::{self, Mode};
use crate::simd;
use crate::threading::{self, SendPtr};
use crate::vmath::{dispatch, Kernel, Simd};
use crate::{Float, KernelError, Result};
use std::any::TypeId;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

const OP: &str = "rnn_forward";
const OP_BWD: &str = "rnn_backward";

/// Hidden units per task of one time step (16 to 128 measured within noise of each other
/// on the benchmarks; 64 keeps the per-step GEMMs of H = 128 in two equal tasks).
const UNIT_BLOCK: usize = 64;

/// Up to this many multiply-adds a per-step GEMM stays small enough for the GEMM's
/// unpacked path (crate::gemm reads both operands in place up to 128^3; packing W_hh's
/// block anew every step cost about 15 % of a 2-layer H = 256 inference).
const STEP_GEMM_MAX: usize = 128 * 128 * 128;

/// Hidden units per task: `UNIT_BLOCK`, halved (down to 16) while a task's recurrent
/// product (B x G ub x H) is above `STEP_GEMM_MAX`. Depends on the sizes only.
fn unit_block(g: usize, batch: usize, hid: usize) -> usize {
    let mut ub = UNIT_BLOCK;
    while ub > 16 && batch.saturating_mul(g * ub).saturating_mul(hid) > STEP_GEMM_MAX {
        ub /= 2;
    }
    ub.min(hid).max(1)
}

/// Rows per task when a call splits the batch instead of the hidden units: sequences are
/// independent, so each task runs its rows through every time step (forward) or back
/// through them (backward) with no synchronisation between steps, and every task writes
/// whole rows (no cache line shared between threads). Chunks of 16 rows from a batch of
/// 32, of 32 rows from 64 (each chunk reads all of W_hh every step, so larger chunks
/// read it less often); smaller batches split the hidden units per step. Depends on the
/// sizes only, never the thread count. Measured on two threads: the LSTM train-step
/// benchmark (B = 32, H = 128) forward 2.12 -> 1.65 ms, backward 3.39 -> 2.83 ms (per-step
/// fork-joins waited for the slower task, and the two tasks' unit blocks shared cache
/// lines of every row they wrote); one layer of the inference benchmark (B = 64,
/// H = I = 256, T = 100) 38.0 -> 35.9 ms (chunks of 16 there: 43.4 ms).
fn batch_chunk(batch: usize) -> Option<usize> {
    match batch {
        0..=31 => None,
        32..=63 => Some(16),
        _ => Some(32),
    }
}

/// `c = a b + beta c` for a per-step product (m x k times k x n, row-major with row
/// strides lda, ldb, ldc) on the calling thread, in blocks of columns small enough for
/// the GEMM's unpacked path (B is read in place, never packed).
fn step_gemm<T: Float>(
    level: simd::Level,
    m: usize,
    n: usize,
    k: usize,
    a: &[T],
    lda: usize,
    b: &[T],
    ldb: usize,
    beta: T,
    c: &mut [T],
    ldc: usize,
) -> Result<()> {
    if m == 0 || n == 0 || k == 0 {
        return Err(invalid(OP, "internal error: empty per-step product".into()));
    }
    if beta == T::ZERO && crate::conv::pw_own_kernel(level, k) {
        // The pointwise convolution's kernel (A read in place, strips of B in L1, no
        // packing): the forward's B x G H x H product per step in 8-row tiles instead of
        // the GEMM's 14-row ones, which fit chunks of 16 or 32 rows better (LSTM
        // train-step benchmark, one thread: forward 3.07 -> 2.85 ms).
        return crate::conv::pw_gemm(false, m, n, k, a, lda, b, ldb, None, c, ldc);
    }
    let per = (STEP_GEMM_MAX / (m * k)).max(32) / 32 * 32;
    let mut j0 = 0;
    while j0 < n {
        let w = per.min(n - j0);
        let cl = (m - 1) * ldc + w;
        let bl = (k - 1) * ldb + w;
        gemm::gemm_with_level(
            level,
            Mode::Inline,
            false,
            false,
            m,
            w,
            k,
            T::ONE,
            a,
            lda,
            &b[j0..][..bl],
            ldb,
            beta,
            &mut c[j0..][..cl],
            ldc,
        )?;
        j0 += w;
    }
    Ok(())
}

/// The recurrent cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    RnnTanh,
    RnnRelu,
    Lstm,
    Gru,
}

impl Cell {
    /// Gate blocks of H rows in the weights.
    pub fn gates(self) -> usize {
        match self {
            Cell::RnnTanh | Cell::RnnRelu => 1,
            Cell::Lstm => 4,
            Cell::Gru => 3,
        }
    }

    /// Saved values per (time step, batch row) in units of H.
    fn saved_per_row(self) -> usize {
        match self {
            // h', h
            Cell::RnnTanh | Cell::RnnRelu => 2,
            // i f g o, h, c, tanh(c')
            Cell::Lstm => 7,
            // r z n (W_hn h + b_hn), h
            Cell::Gru => 5,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Cell::RnnTanh => "RNN(tanh)",
            Cell::RnnRelu => "RNN(relu)",
            Cell::Lstm => "LSTM",
            Cell::Gru => "GRU",
        }
    }
}

/// Sizes and layout of one layer-direction call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    /// Time steps T.
    pub seq: usize,
    /// Batch B.
    pub batch: usize,
    /// Input features I.
    pub input: usize,
    /// Hidden units H.
    pub hidden: usize,
    /// Rows of x / out ordered (b, t) instead of (t, b).
    pub batch_first: bool,
    /// Run t = T-1 .. 0.
    pub reverse: bool,
}

impl Dims {
    #[inline(always)]
    fn row(&self, t: usize, b: usize) -> usize {
        if self.batch_first {
            b * self.seq + t
        } else {
            t * self.batch + b
        }
    }

    /// Rows between batch entries b and b + 1 of one time step.
    #[inline(always)]
    fn brow(&self) -> usize {
        if self.batch_first {
            self.seq
        } else {
            1
        }
    }

    /// The time step processed at position `s`.
    #[inline(always)]
    fn time(&self, s: usize) -> usize {
        if self.reverse {
            self.seq - 1 - s
        } else {
            s
        }
    }
}

/// Elements of the workspace the forward saves for [`backward`].
pub fn workspace_len(cell: Cell, d: &Dims) -> Result<usize> {
    checked_product(OP, &[d.seq, d.batch, d.hidden, cell.saved_per_row()])
}

fn exact(op: &'static str, what: &str, needed: usize, given: usize) -> Result<()> {
    if needed != given {
        return Err(KernelError::ShapeMismatch {
            op,
            detail: format!("{what} must have {needed} elements, given {given}"),
        });
    }
    Ok(())
}

fn invalid(op: &'static str, detail: String) -> KernelError {
    KernelError::InvalidArgument { op, detail }
}

/// Checks the sizes shared by forward and backward; returns (T B, G H).
fn check_common<T: Float>(
    op: &'static str,
    cell: Cell,
    d: &Dims,
    x: &[T],
    w_ih: &[T],
    w_hh: &[T],
    lengths: Option<&[usize]>,
) -> Result<(usize, usize)> {
    let n = checked_product(op, &[d.seq, d.batch])?;
    let gh = checked_product(op, &[cell.gates(), d.hidden])?;
    exact(op, "x", checked_product(op, &[n, d.input])?, x.len())?;
    exact(
        op,
        "weight_ih",
        checked_product(op, &[gh, d.input])?,
        w_ih.len(),
    )?;
    exact(
        op,
        "weight_hh",
        checked_product(op, &[gh, d.hidden])?,
        w_hh.len(),
    )?;
    if let Some(l) = lengths {
        exact(op, "lengths", d.batch, l.len())?;
        if let Some((b, &v)) = l.iter().enumerate().find(|(_, &v)| v < 1 || v > d.seq) {
            return Err(invalid(
                op,
                format!(
                    "lengths[{b}] = {v} is outside 1..={} (the sequence length)",
                    d.seq
                ),
            ));
        }
    }
    Ok((n, gh))
}

/// Checks a (rows, ld, off) view of `width` columns.
fn check_view(
    op: &'static str,
    what: &'static str,
    rows: usize,
    ld: usize,
    off: usize,
    width: usize,
    len: usize,
) -> Result<()> {
    let end = off.checked_add(width).ok_or(KernelError::Overflow { op })?;
    if ld < end {
        return Err(invalid(
            op,
            format!("{what}: row stride {ld} is smaller than offset {off} + width {width}"),
        ));
    }
    if rows > 0 {
        let need = checked_product(op, &[rows - 1, ld])?
            .checked_add(end)
            .ok_or(KernelError::Overflow { op })?;
        check_len(op, what, need, len)?;
    }
    Ok(())
}

/// Weights of one layer-direction.
#[derive(Debug, Clone, Copy)]
pub struct Weights<'a, T> {
    /// (G H, I)
    pub w_ih: &'a [T],
    /// (G H, H)
    pub w_hh: &'a [T],
    /// (G H) or absent.
    pub b_ih: Option<&'a [T]>,
    /// (G H) or absent.
    pub b_hh: Option<&'a [T]>,
}

/// Runs one layer in one direction over the sequence (see the module docs).
///
/// Writes every element of `out`'s H columns (rows of all steps), `h_n`, `c_n` (LSTM) and
/// `ws` (when given, for [`backward`]).
pub fn forward<T: Float>(
    cell: Cell,
    d: &Dims,
    x: &[T],
    w: &Weights<T>,
    h0: Option<&[T]>,
    c0: Option<&[T]>,
    lengths: Option<&[usize]>,
    out: &mut [T],
    ldo: usize,
    off: usize,
    h_n: &mut [T],
    c_n: Option<&mut [T]>,
    ws: Option<&mut [T]>,
) -> Result<()> {
    let (n, gh) = check_common(OP, cell, d, x, w.w_ih, w.w_hh, lengths)?;
    let (bsz, hid) = (d.batch, d.hidden);
    let bh = checked_product(OP, &[bsz, hid])?;
    for (what, b) in [("bias_ih", w.b_ih), ("bias_hh", w.b_hh)] {
        if let Some(b) = b {
            exact(OP, what, gh, b.len())?;
        }
    }
    if let Some(h0) = h0 {
        exact(OP, "h0", bh, h0.len())?;
    }
    exact(OP, "h_n", bh, h_n.len())?;
    let is_lstm = cell == Cell::Lstm;
    match (is_lstm, c0, &c_n) {
        (true, c0, Some(cn)) => {
            if let Some(c0) = c0 {
                exact(OP, "c0", bh, c0.len())?;
            }
            exact(OP, "c_n", bh, cn.len())?;
        }
        (true, _, None) => return Err(invalid(OP, "LSTM needs c_n".into())),
        (false, Some(_), _) | (false, _, Some(_)) => {
            return Err(invalid(
                OP,
                format!("{} has no cell state: c0 / c_n must be absent", cell.name()),
            ))
        }
        _ => {}
    }
    check_view(OP, "out", n, ldo, off, hid, out.len())?;
    if let Some(ws) = &ws {
        exact(OP, "workspace", workspace_len(cell, d)?, ws.len())?;
    }
    let g = cell.gates();

    // Initial state.
    let mut h = match h0 {
        Some(h0) => h0.to_vec(),
        None => vec![T::ZERO; bh],
    };
    let mut c = if is_lstm {
        match c0 {
            Some(c0) => c0.to_vec(),
            None => vec![T::ZERO; bh],
        }
    } else {
        Vec::new()
    };
    if n == 0 || hid == 0 {
        // No steps (or no units): the state passes through; nothing else to write.
        h_n.copy_from_slice(&h);
        if let Some(cn) = c_n {
            cn.copy_from_slice(&c);
        }
        if let Some(ws) = ws {
            ws.fill(T::ZERO);
        }
        return Ok(());
    }

    // Bias added in the gate kernel: b_ih + b_hh, except GRU's b_hn (inside r * (...)).
    let mut bsum = vec![T::ZERO; gh];
    let mut bhn = vec![T::ZERO; if cell == Cell::Gru { hid } else { 0 }];
    if let Some(b) = w.b_ih {
        bsum.copy_from_slice(b);
    }
    if let Some(b) = w.b_hh {
        let lim = if cell == Cell::Gru { 2 * hid } else { gh };
        for (s, &v) in bsum[..lim].iter_mut().zip(b) {
            *s += v;
        }
        if cell == Cell::Gru {
            bhn.copy_from_slice(&b[2 * hid..]);
        }
    }

    // The input projection of every step: one GEMM. When saving, it goes straight into the
    // workspace's gate region (rows of `gw` elements), where the gate kernel overwrites the
    // pre-activations with the activations; otherwise into a scratch buffer.
    let save = ws.is_some();
    let mut scratch: Scratch<T>;
    let (gates, gw) = match ws {
        Some(ws) => (ws, ws_slot(cell, 0, n, hid).1),
        None => {
            // Every element is written by the GEMM (beta = 0).
            scratch = Scratch::take(n * gh, false);
            (&mut scratch[..], gh)
        }
    };
    gemm::gemm(
        false,
        true,
        n,
        gh,
        d.input,
        T::ONE,
        x,
        d.input,
        w.w_ih,
        d.input,
        T::ZERO,
        gates,
        gw,
    )?;
    let level = simd::level();
    let failed = AtomicBool::new(false);
    let gates_ptr = SendPtr::new(gates);
    let out_ptr = SendPtr::new(out);
    let c_ptr = SendPtr::new(&mut c);
    let mut h_next = vec![T::ZERO; bh];
    // The gate kernel of one step for rows b0 .. b1 and units u0 .. u0 + wdt.
    let step = |t: usize,
                b0: usize,
                b1: usize,
                u0: usize,
                wdt: usize,
                hh: *const T,
                h: *const T,
                h_next: *mut T| FwdStep {
        cell,
        d: *d,
        t,
        b0,
        b1,
        u0,
        wdt,
        lengths,
        gates: gates_ptr.get(),
        gw,
        bsum: bsum.as_ptr(),
        bhn: bhn.as_ptr(),
        hh,
        h,
        h_next,
        c: c_ptr.get(),
        out: out_ptr.get(),
        ldo,
        off,
        ws: save.then(|| gates_ptr.get()),
    };

    if let Some(chunk) = batch_chunk(bsz) {
        // Each task runs its rows through every step (see batch_chunk); W_hh^T plain.
        let whh_t = grouped_transpose(w.w_hh, g, hid, hid);
        // Recurrent products of one step, B x G H.
        let mut hh = Scratch::<T>::take(bsz * gh, false);
        let hh_ptr = SendPtr::new(&mut hh);
        let h_ptr = SendPtr::new(&mut h);
        let hn_ptr = SendPtr::new(&mut h_next);
        threading::run_tasks(bsz.div_ceil(chunk), |j| {
            let b0 = j * chunk;
            let rows = chunk.min(bsz - b0);
            let (mut cur, mut nxt) = (h_ptr.get(), hn_ptr.get());
            for s in 0..d.seq {
                // SAFETY: rows b0 .. b0 + rows of the B x H state buffers and of the
                // B x G H products lie inside them, and only this task touches them.
                let (hs, hh_j) = unsafe {
                    (
                        std::slice::from_raw_parts(cur.add(b0 * hid), rows * hid),
                        std::slice::from_raw_parts_mut(hh_ptr.get().add(b0 * gh), rows * gh),
                    )
                };
                if step_gemm(level, rows, gh, hid, hs, hid, &whh_t, gh, T::ZERO, hh_j, gh).is_err()
                {
                    failed.store(true, Ordering::Relaxed);
                    return;
                }
                let k = step(d.time(s), b0, b0 + rows, 0, hid, hh_j.as_ptr(), cur, nxt);
                dispatch::<T, _>(level, k);
                std::mem::swap(&mut cur, &mut nxt);
            }
        });
        if d.seq % 2 == 1 {
            // Every task's final state is in the second buffer.
            std::mem::swap(&mut h, &mut h_next);
        }
    } else {
        let ub = unit_block(cell.gates(), d.batch, hid);
        let blocks = hid.div_ceil(ub);
        let whh_t = grouped_transpose(w.w_hh, g, hid, ub);
        // Per-task recurrent products: block j holds B x (G w_j) at offset B G u0.
        let mut hh = Scratch::<T>::take(bsz * gh, false);
        let hh_ptr = SendPtr::new(&mut hh);
        for s in 0..d.seq {
            let t = d.time(s);
            let hn_ptr = SendPtr::new(&mut h_next);
            let hs: &[T] = &h;
            threading::run_tasks(blocks, |j| {
                let u0 = j * ub;
                let wdt = ub.min(hid - u0);
                // SAFETY: block j's region of hh, B x (G wdt) at B G u0, lies inside hh
                // (B G H elements) and no other task touches it.
                let hh_j = unsafe {
                    std::slice::from_raw_parts_mut(hh_ptr.get().add(bsz * g * u0), bsz * g * wdt)
                };
                let r = step_gemm(
                    level,
                    bsz,
                    g * wdt,
                    hid,
                    hs,
                    hid,
                    &whh_t[hid * g * u0..][..hid * g * wdt],
                    g * wdt,
                    T::ZERO,
                    hh_j,
                    g * wdt,
                );
                if r.is_err() {
                    failed.store(true, Ordering::Relaxed);
                    return;
                }
                let k = step(t, 0, bsz, u0, wdt, hh_j.as_ptr(), hs.as_ptr(), hn_ptr.get());
                dispatch::<T, _>(level, k);
            });
            if failed.load(Ordering::Relaxed) {
                break;
            }
            std::mem::swap(&mut h, &mut h_next);
        }
    }
    if failed.load(Ordering::Relaxed) {
        return Err(invalid(
            OP,
            "internal error: a per-step GEMM was rejected".into(),
        ));
    }
    h_n.copy_from_slice(&h);
    if let Some(cn) = c_n {
        cn.copy_from_slice(&c);
    }
    Ok(())
}

/// W_hh^T cut by unit blocks: block j (units u0 .. u0 + w) is a contiguous H x (G w)
/// matrix at offset H G u0 whose column q w + (u - u0) is row q H + u of W_hh (gate q of
/// unit u), so one GEMM gives every gate of the block's units.
fn grouped_transpose<T: Float>(w_hh: &[T], g: usize, hid: usize, ub: usize) -> Scratch<T> {
    // Every element is written below.
    let mut out = Scratch::take(hid * g * hid, false);
    for u0 in (0..hid).step_by(ub) {
        let wdt = ub.min(hid - u0);
        let gw = g * wdt;
        let blk = &mut out[hid * g * u0..][..hid * gw];
        for q in 0..g {
            // Rows q H + u0 .. + wdt of W_hh (H columns) become columns q wdt .. + wdt.
            transpose_into(
                &w_hh[(q * hid + u0) * hid..],
                hid,
                wdt,
                hid,
                &mut blk[q * wdt..],
                gw,
            );
        }
    }
    out
}

/// `dst[c * ldd + r] = src[r * lds + c]` for `r < rows`, `c < cols`, in square tiles of
/// 8 so that the strided writes of a tile stay in L1.
fn transpose_into<T: Float>(
    src: &[T],
    lds: usize,
    rows: usize,
    cols: usize,
    dst: &mut [T],
    ldd: usize,
) {
    const TILE: usize = 8;
    for r0 in (0..rows).step_by(TILE) {
        let r1 = (r0 + TILE).min(rows);
        for c0 in (0..cols).step_by(TILE) {
            let c1 = (c0 + TILE).min(cols);
            for r in r0..r1 {
                let srow = &src[r * lds + c0..][..c1 - c0];
                for (c, &v) in (c0..c1).zip(srow) {
                    dst[c * ldd + r] = v;
                }
            }
        }
    }
}

/// The first `m <= LANES` lanes at `p` (the others zero): a plain load when `m` is a
/// whole vector.
#[inline(always)]
unsafe fn load_n<V: Simd>(p: *const V::E, m: usize) -> V {
    if m == V::LANES {
        V::load(p)
    } else {
        V::load_partial(p, m, V::E::ZERO)
    }
}

/// Stores the first `m <= LANES` lanes of `v` at `p`.
#[inline(always)]
unsafe fn store_n<V: Simd>(v: V, p: *mut V::E, m: usize) {
    if m == V::LANES {
        v.store(p)
    } else {
        v.store_partial(p, m)
    }
}

/// Whether sequence b is active at time t.
#[inline(always)]
fn active(lengths: Option<&[usize]>, b: usize, t: usize) -> bool {
    match lengths {
        Some(l) => t < l[b],
        None => true,
    }
}

/// σ(x) = 1 / (1 + e^-x), with e^-x capped at e^80 (σ below 2e-35 is returned as about
/// 2e-35, and the reciprocal stays finite) and the fast [`Simd::recip`] (f32: about 2
/// ulp; f64 divides). NaN stays NaN. Not elementwise's sigmoid: nn.Sigmoid keeps exact
/// tails (σ(-inf) = 0, silu(-large) = 0, which the reciprocal estimate cannot give),
/// while the gates only need the absolute accuracy.
#[inline(always)]
unsafe fn sigmoid<V: Simd>(x: V) -> V {
    let one = V::splat(V::E::ONE);
    let cap = V::splat(V::E::from_f64(80.0));
    // min returns its second operand for NaN, so a NaN x passes through.
    one.add(cap.min(V::splat(V::E::ZERO).sub(x)).exp()).recip()
}

/// tanh(x) = 2 σ(2x) - 1: one exponential and one reciprocal, against the two branches
/// of [`Simd::tanh`] (which keeps full relative accuracy near 0; here the error is
/// absolute, a few ulp of 1, which is what the gates need).
#[inline(always)]
unsafe fn tanh_gate<V: Simd>(x: V) -> V {
    let two = V::splat(V::E::from_f64(2.0));
    two.mul_add(sigmoid(x.add(x)), V::splat(V::E::from_f64(-1.0)))
}

/// The fused gate kernel of one time step for units u0 .. u0 + wdt of every batch row.
struct FwdStep<'a, T> {
    cell: Cell,
    d: Dims,
    t: usize,
    /// Batch rows b0 .. b1.
    b0: usize,
    b1: usize,
    u0: usize,
    wdt: usize,
    lengths: Option<&'a [usize]>,
    /// Pre-activations (input projection) of row r at r * gw; with `ws`, the same memory
    /// as the workspace's gate region, where the activations are written back.
    gates: *mut T,
    gw: usize,
    bsum: *const T,
    bhn: *const T,
    /// This task's recurrent products, (b1 - b0) x (G wdt).
    hh: *const T,
    h: *const T,
    h_next: *mut T,
    c: *mut T,
    out: *mut T,
    ldo: usize,
    off: usize,
    ws: Option<*mut T>,
}

impl<T: Float> Kernel for FwdStep<'_, T> {
    type Out = ();
    #[inline(always)]
    unsafe fn run<V: Simd>(self) {
        // SAFETY (whole body): `dispatch` picks V with V::E == T, so the casts keep the
        // element type. Indices: rows row(t, b) < T B of gates (gw per row), out (ldo per
        // row, columns off .. off + H inside it), ws regions of T B rows; units
        // u0 + du < H; hh B x (G wdt); all checked by `forward`. This task writes only
        // units u0 .. u0 + wdt of h_next, c, out and ws, which no other task touches.
        let e = |p: *const T| p as *const V::E;
        let em = |p: *mut T| p as *mut V::E;
        let d = &self.d;
        let (hid, g, wdt) = (d.hidden, self.cell.gates(), self.wdt);
        let n = d.seq * d.batch;
        let gh = g * hid;
        let zero = V::splat(V::E::ZERO);
        for b in self.b0..self.b1 {
            let row = d.row(self.t, b);
            let on = active(self.lengths, b, self.t);
            let xp = em(self.gates).add(row * self.gw + self.u0);
            let bs = e(self.bsum).add(self.u0);
            let hh = e(self.hh).add((b - self.b0) * g * wdt);
            let hp = e(self.h).add(b * hid + self.u0);
            let hn = em(self.h_next).add(b * hid + self.u0);
            let o = em(self.out).add(row * self.ldo + self.off + self.u0);
            if on && matches!(self.cell, Cell::Lstm | Cell::Gru) {
                // First pass: the gate activations that depend on the pre-activations only
                // (LSTM i, f, g, o; GRU r, z), written over the
                // pre-activations. Split from the state update so that each pass is a
                // short chain per vector that the CPU overlaps across vectors (one pass
                // was one long chain, exp -> reciprocal -> c -> tanh -> h, and ran at the
                // latency of that chain).
                let mut du = 0;
                while du < wdt {
                    let m = (wdt - du).min(V::LANES);
                    let ld = |p: *const V::E| load_n::<V>(p, m);
                    let st = |v: V, p: *mut V::E| store_n(v, p, m);
                    let pre = |q: usize| ld(xp.add(q * hid + du)).add(ld(bs.add(q * hid + du)));
                    let hhq = |q: usize| ld(hh.add(q * wdt + du));
                    // Every load before any store: the compiler may not move a load of
                    // xp above a store to it, and the four chains overlap only when no
                    // store separates them.
                    if self.cell == Cell::Lstm {
                        let (a0, a1) = (pre(0).add(hhq(0)), pre(1).add(hhq(1)));
                        let (a2, a3) = (pre(2).add(hhq(2)), pre(3).add(hhq(3)));
                        let (i, f) = (sigmoid(a0), sigmoid(a1));
                        let (g, o) = (tanh_gate(a2), sigmoid(a3));
                        st(i, xp.add(du));
                        st(f, xp.add(hid + du));
                        st(g, xp.add(2 * hid + du));
                        st(o, xp.add(3 * hid + du));
                    } else {
                        // (Rows are 3 H wide without ws: nothing goes to slot 3 here.)
                        let (a0, a1) = (pre(0).add(hhq(0)), pre(1).add(hhq(1)));
                        let (r, z) = (sigmoid(a0), sigmoid(a1));
                        st(r, xp.add(du));
                        st(z, xp.add(hid + du));
                    }
                    du += V::LANES;
                }
            }
            let mut du = 0;
            while du < wdt {
                let m = (wdt - du).min(V::LANES);
                let ld = |p: *const V::E| load_n::<V>(p, m);
                let st = |v: V, p: *mut V::E| store_n(v, p, m);
                let hprev = ld(hp.add(du));
                if !on {
                    st(hprev, hn.add(du));
                    st(zero, o.add(du));
                    if let Some(ws) = self.ws {
                        let ws = em(ws);
                        let per = self.cell.saved_per_row();
                        for k in 0..per {
                            // Region k of H-wide (or wider) rows: zero this row's units.
                            let (base, width) = ws_slot(self.cell, k, n, hid);
                            st(zero, ws.add(base + row * width + self.u0 + du));
                        }
                    }
                    du += V::LANES;
                    continue;
                }
                let pre = |q: usize| ld(xp.add(q * hid + du)).add(ld(bs.add(q * hid + du)));
                let hhq = |q: usize| ld(hh.add(q * wdt + du));
                match self.cell {
                    Cell::RnnTanh | Cell::RnnRelu => {
                        let a = pre(0).add(hhq(0));
                        let hnew = if self.cell == Cell::RnnTanh {
                            a.tanh()
                        } else {
                            zero.max(a)
                        };
                        st(hnew, hn.add(du));
                        st(hnew, o.add(du));
                        if let Some(ws) = self.ws {
                            let ws = em(ws);
                            // Region 0 (h') is the gate region: xp.
                            st(hnew, xp.add(du));
                            st(hprev, ws.add(n * hid + row * hid + self.u0 + du));
                        }
                    }
                    Cell::Lstm => {
                        // i, f, g, o from the first pass (already where ws keeps them).
                        let act = |q: usize| ld(xp.add(q * hid + du));
                        let (ig, fg, gg, og) = (act(0), act(1), act(2), act(3));
                        let cp = em(self.c).add(b * hid + self.u0 + du);
                        let cprev = ld(cp);
                        let cnew = fg.mul_add(cprev, ig.mul(gg));
                        let tc = tanh_gate(cnew);
                        let hnew = og.mul(tc);
                        st(cnew, cp);
                        st(hnew, hn.add(du));
                        st(hnew, o.add(du));
                        if let Some(ws) = self.ws {
                            let ws = em(ws);
                            let base = row * hid + self.u0 + du;
                            st(hprev, ws.add(n * gh + base));
                            st(cprev, ws.add(n * (gh + hid) + base));
                            st(tc, ws.add(n * (gh + 2 * hid) + base));
                        }
                    }
                    Cell::Gru => {
                        // r, z from the first pass (where ws keeps them).
                        let (r, z) = (ld(xp.add(du)), ld(xp.add(hid + du)));
                        let hnb = hhq(2).add(ld(e(self.bhn).add(self.u0 + du)));
                        let nn = tanh_gate(r.mul_add(hnb, pre(2)));
                        // (1 - z) n + z h = n + z (h - n)
                        let hnew = z.mul_add(hprev.sub(nn), nn);
                        st(hnew, hn.add(du));
                        st(hnew, o.add(du));
                        if let Some(ws) = self.ws {
                            let ws = em(ws);
                            st(nn, xp.add(2 * hid + du));
                            st(hnb, xp.add(3 * hid + du));
                            st(hprev, ws.add(n * 4 * hid + row * hid + self.u0 + du));
                        }
                    }
                }
                du += V::LANES;
            }
        }
    }
}

/// Region `k` of the workspace: (start, row width). RNN: h', h. LSTM: gates (4H), h, c,
/// tanh c'. GRU: r z n hn (4H), h.
#[inline(always)]
fn ws_slot(cell: Cell, k: usize, n: usize, hid: usize) -> (usize, usize) {
    match cell {
        Cell::RnnTanh | Cell::RnnRelu => (k * n * hid, hid),
        Cell::Lstm => {
            if k < 4 {
                // Gate k of the 4H-wide gate rows.
                (k * hid, 4 * hid)
            } else {
                (n * 4 * hid + (k - 4) * n * hid, hid)
            }
        }
        Cell::Gru => {
            if k < 4 {
                (k * hid, 4 * hid)
            } else {
                (n * 4 * hid, hid)
            }
        }
    }
}

/// Gradients [`backward`] writes.
pub struct Grads<'a, T> {
    /// dx (T B, I), written (`accumulate_dx` false) or added to; absent when not needed.
    pub dx: Option<&'a mut [T]>,
    pub accumulate_dx: bool,
    /// (B, H)
    pub dh0: &'a mut [T],
    /// (B, H), LSTM only.
    pub dc0: Option<&'a mut [T]>,
    /// (G H, I)
    pub dw_ih: &'a mut [T],
    /// (G H, H)
    pub dw_hh: &'a mut [T],
    /// (G H) each, when the layer has biases.
    pub db_ih: Option<&'a mut [T]>,
    pub db_hh: Option<&'a mut [T]>,
}

/// Backpropagation through time of one [`forward`] call that saved `ws`.
///
/// `g_out` is the gradient of `out` (same row layout: stride `ldg`, columns `goff ..
/// goff + H`) or absent (zero); `g_hn` / `g_cn` those of h_n / c_n or absent. Gradient
/// rows at padded steps are ignored (those outputs are constant zeros).
pub fn backward<T: Float>(
    cell: Cell,
    d: &Dims,
    x: &[T],
    w_ih: &[T],
    w_hh: &[T],
    lengths: Option<&[usize]>,
    ws: &[T],
    g_out: Option<&[T]>,
    ldg: usize,
    goff: usize,
    g_hn: Option<&[T]>,
    g_cn: Option<&[T]>,
    gr: Grads<T>,
) -> Result<()> {
    let op = OP_BWD;
    let (n, gh) = check_common(op, cell, d, x, w_ih, w_hh, lengths)?;
    let (bsz, hid) = (d.batch, d.hidden);
    let bh = checked_product(op, &[bsz, hid])?;
    let is_lstm = cell == Cell::Lstm;
    exact(op, "workspace", workspace_len(cell, d)?, ws.len())?;
    if let Some(go) = g_out {
        check_view(op, "g_out", n, ldg, goff, hid, go.len())?;
    }
    if let Some(v) = g_hn {
        exact(op, "g_hn", bh, v.len())?;
    }
    match (is_lstm, g_cn, &gr.dc0) {
        (true, g_cn, Some(dc0)) => {
            if let Some(v) = g_cn {
                exact(op, "g_cn", bh, v.len())?;
            }
            exact(op, "dc0", bh, dc0.len())?;
        }
        (true, _, None) => return Err(invalid(op, "LSTM needs dc0".into())),
        (false, Some(_), _) | (false, _, Some(_)) => {
            return Err(invalid(
                op,
                format!(
                    "{} has no cell state: g_cn / dc0 must be absent",
                    cell.name()
                ),
            ))
        }
        _ => {}
    }
    exact(op, "dh0", bh, gr.dh0.len())?;
    exact(op, "dweight_ih", w_ih.len(), gr.dw_ih.len())?;
    exact(op, "dweight_hh", w_hh.len(), gr.dw_hh.len())?;
    if let Some(dx) = &gr.dx {
        exact(op, "dx", x.len(), dx.len())?;
    }
    for b in [&gr.db_ih, &gr.db_hh].into_iter().flatten() {
        exact(op, "dbias", gh, b.len())?;
    }
    let Grads {
        dx,
        accumulate_dx,
        dh0,
        dc0,
        dw_ih,
        dw_hh,
        db_ih,
        db_hh,
    } = gr;

    if n == 0 || hid == 0 {
        match g_hn {
            Some(v) => dh0.copy_from_slice(v),
            None => dh0.fill(T::ZERO),
        }
        if let Some(dc0) = dc0 {
            match g_cn {
                Some(v) => dc0.copy_from_slice(v),
                None => dc0.fill(T::ZERO),
            }
        }
        dw_ih.fill(T::ZERO);
        dw_hh.fill(T::ZERO);
        for b in [db_ih, db_hh].into_iter().flatten() {
            b.fill(T::ZERO);
        }
        if let Some(dx) = dx {
            if !accumulate_dx {
                dx.fill(T::ZERO);
            }
        }
        return Ok(());
    }

    // Batch split (one task per chunk of rows through every step, one unit block) or
    // unit split (one job per step over unit blocks); see batch_chunk.
    let chunk = batch_chunk(bsz);
    let ub = match chunk {
        Some(_) => hid,
        None => unit_block(cell.gates(), d.batch, hid),
    };
    let blocks = hid.div_ceil(ub);
    // Gradients of the pre-activations, rows in x's order; GRU has a second set for the
    // recurrent side (its n block is scaled by r).
    // Every element is written by the gate backward (zeros at padded steps).
    let mut dg_ih = Scratch::<T>::take(n * gh, false);
    let mut dg_hh = Scratch::<T>::take(if cell == Cell::Gru { n * gh } else { 0 }, false);
    // The carried gradient of the state, per unit block (B x w_j at B u0).
    let mut pend = vec![T::ZERO; bh];
    if let Some(v) = g_hn {
        for j in 0..blocks {
            let u0 = j * ub;
            let wdt = ub.min(hid - u0);
            for b in 0..bsz {
                pend[bsz * u0 + b * wdt..][..wdt].copy_from_slice(&v[b * hid + u0..][..wdt]);
            }
        }
    }
    let mut dc = match g_cn {
        Some(v) if is_lstm => v.to_vec(),
        _ => vec![T::ZERO; if is_lstm { bh } else { 0 }],
    };
    let level = simd::level();
    let failed = AtomicBool::new(false);
    // Bias gradients, summed by the gate kernels over the steps in processing order and
    // the batch rows in order: with the unit split each task into its own units of the
    // result, with the batch split each chunk into a partial sum of its own (added up in
    // chunk order below).
    let (mut db_ih, mut db_hh) = (db_ih, db_hh);
    for db in [&mut db_ih, &mut db_hh].into_iter().flatten() {
        db.fill(T::ZERO);
    }
    let parts = chunk.map_or(0, |c| bsz.div_ceil(c));
    let mut dbi_part = vec![T::ZERO; if db_ih.is_some() { parts * gh } else { 0 }];
    let mut dbh_part = vec![
        T::ZERO;
        if db_hh.is_some() && cell == Cell::Gru {
            parts * gh
        } else {
            0
        }
    ];
    let dbi_ptr = if chunk.is_some() {
        db_ih.as_ref().map(|_| SendPtr::new(&mut dbi_part))
    } else {
        db_ih.as_deref_mut().map(SendPtr::new)
    };
    let dbh_ptr = match (cell == Cell::Gru, chunk.is_some()) {
        (false, _) => None,
        (true, true) => db_hh.as_ref().map(|_| SendPtr::new(&mut dbh_part)),
        (true, false) => db_hh.as_deref_mut().map(SendPtr::new),
    };
    let pend_ptr = SendPtr::new(&mut pend);
    let dc_ptr = SendPtr::new(&mut dc);
    let dgi_ptr = SendPtr::new(&mut dg_ih);
    let dgh_ptr = SendPtr::new(&mut dg_hh);
    let gru = cell == Cell::Gru;
    let brow = d.brow();

    // Position s (processed T .. 0) of rows b0 .. b1 and units u0 .. u0 + wdt, carried
    // gradient block `pend_j` (rows b0 .. b1 of B x wdt): first (s < T) add dG(s) W_hh,
    // the recurrent gradient of the step at position s, to the carried gradient; then
    // (s > 0) run the gate backward of the step at position s - 1. `part` selects the
    // bias partial sums of a batch chunk.
    let position = |s: usize,
                    b0: usize,
                    b1: usize,
                    u0: usize,
                    wdt: usize,
                    pend_j: &mut [T],
                    part: usize|
     -> bool {
        if s < d.seq {
            // Rows of the step at position s, all gates.
            let r0 = d.row(d.time(s), b0);
            let len = (b1 - b0 - 1) * brow * gh + gh;
            let base = if gru { dgh_ptr.get() } else { dgi_ptr.get() };
            // SAFETY: rows row(t, b) = r0 + (b - b0) brow of the T B x G H gradient,
            // written at the previous position (by this task with the batch split, by
            // the previous job with the unit split); rows of step s are not written now.
            let a = unsafe { std::slice::from_raw_parts(base.add(r0 * gh), len) };
            if step_gemm(
                level,
                b1 - b0,
                wdt,
                gh,
                a,
                brow * gh,
                &w_hh[u0..],
                hid,
                T::ONE,
                pend_j,
                wdt,
            )
            .is_err()
            {
                return false;
            }
        }
        if s > 0 {
            let k = BwdStep {
                cell,
                d: *d,
                t: d.time(s - 1),
                b0,
                b1,
                u0,
                wdt,
                lengths,
                ws: ws.as_ptr(),
                g_out: g_out.map(|v| v.as_ptr()),
                ldg,
                goff,
                pend: pend_j.as_mut_ptr(),
                dc: dc_ptr.get(),
                dg_ih: dgi_ptr.get(),
                dg_hh: if gru { Some(dgh_ptr.get()) } else { None },
                // SAFETY: with the batch split, part < parts indexes the partial sums.
                db_ih: dbi_ptr.map(|p| unsafe { p.get().add(part * gh) }),
                db_hh: dbh_ptr.map(|p| unsafe { p.get().add(part * gh) }),
            };
            dispatch::<T, _>(level, k);
        }
        true
    };

    if let Some(chunk) = chunk {
        threading::run_tasks(parts, |j| {
            let b0 = j * chunk;
            let b1 = (b0 + chunk).min(bsz);
            // SAFETY: rows b0 .. b1 of pend (B x H, one unit block) are inside it and
            // only this task touches them.
            let pend_j = unsafe {
                std::slice::from_raw_parts_mut(pend_ptr.get().add(b0 * hid), (b1 - b0) * hid)
            };
            for s in (0..=d.seq).rev() {
                if !position(s, b0, b1, 0, hid, pend_j, j) {
                    failed.store(true, Ordering::Relaxed);
                    return;
                }
            }
        });
        for (db, part) in [(&mut db_ih, &dbi_part), (&mut db_hh, &dbh_part)] {
            if let Some(db) = db {
                crate::reduce::add_partials(db, part);
            }
        }
    } else {
        for s in (0..=d.seq).rev() {
            threading::run_tasks(blocks, |j| {
                let u0 = j * ub;
                let wdt = ub.min(hid - u0);
                // SAFETY: block j's part of pend (B x wdt at B u0) is inside pend and only
                // this task touches it.
                let pend_j = unsafe {
                    std::slice::from_raw_parts_mut(pend_ptr.get().add(bsz * u0), bsz * wdt)
                };
                if !position(s, 0, bsz, u0, wdt, pend_j, 0) {
                    failed.store(true, Ordering::Relaxed);
                }
            });
            if failed.load(Ordering::Relaxed) {
                break;
            }
        }
    }
    if failed.load(Ordering::Relaxed) {
        return Err(invalid(
            op,
            "internal error: a per-step GEMM was rejected".into(),
        ));
    }
    // dh0 from the blocked layout; dc0.
    for j in 0..blocks {
        let u0 = j * ub;
        let wdt = ub.min(hid - u0);
        for b in 0..bsz {
            dh0[b * hid + u0..][..wdt].copy_from_slice(&pend[bsz * u0 + b * wdt..][..wdt]);
        }
    }
    if let Some(dc0) = dc0 {
        dc0.copy_from_slice(&dc);
    }

    // Weight and input gradients: GEMMs over all rows.
    let dgh: &[T] = if gru { &dg_hh } else { &dg_ih };
    let hprev = &ws[ws_slot(cell, hprev_slot(cell), n, hid).0..][..n * hid];
    if let Some(dx) = dx {
        let beta = if accumulate_dx { T::ONE } else { T::ZERO };
        gemm::gemm(
            false,
            false,
            n,
            d.input,
            gh,
            T::ONE,
            &dg_ih,
            gh,
            w_ih,
            d.input,
            beta,
            dx,
            d.input,
        )?;
    }
    gemm::gemm(
        true,
        false,
        gh,
        d.input,
        n,
        T::ONE,
        &dg_ih,
        gh,
        x,
        d.input,
        T::ZERO,
        dw_ih,
        d.input,
    )?;
    gemm::gemm(
        true,
        false,
        gh,
        hid,
        n,
        T::ONE,
        dgh,
        gh,
        hprev,
        hid,
        T::ZERO,
        dw_hh,
        hid,
    )?;
    if let (Some(di), Some(dh)) = (db_ih, db_hh) {
        if !gru {
            // One set of pre-activation gradients: both bias gradients are its sums.
            dh.copy_from_slice(di);
        }
    }
    Ok(())
}

/// The workspace region holding the state each step started from.
fn hprev_slot(cell: Cell) -> usize {
    match cell {
        Cell::RnnTanh | Cell::RnnRelu => 1,
        Cell::Lstm => 4,
        Cell::Gru => 4,
    }
}

/// The fused gate backward of one time step for units u0 .. u0 + wdt of every row.
struct BwdStep<'a, T> {
    cell: Cell,
    d: Dims,
    t: usize,
    /// Batch rows b0 .. b1.
    b0: usize,
    b1: usize,
    u0: usize,
    wdt: usize,
    lengths: Option<&'a [usize]>,
    ws: *const T,
    g_out: Option<*const T>,
    ldg: usize,
    goff: usize,
    /// This task's carried gradient (rows b0 .. b1 of B x wdt), in: dL/dh after step t;
    /// out: the direct
    /// part of dL/dh before step t (the W_hh part is added by the next job).
    pend: *mut T,
    dc: *mut T,
    dg_ih: *mut T,
    dg_hh: Option<*mut T>,
    /// Bias gradients (G H) accumulated for this task's units, or absent.
    db_ih: Option<*mut T>,
    db_hh: Option<*mut T>,
}

impl<T: Float> Kernel for BwdStep<'_, T> {
    type Out = ();
    #[inline(always)]
    unsafe fn run<V: Simd>(self) {
        // SAFETY (whole body): V::E == T (see FwdStep). Rows row(t, b) < T B, units
        // u0 + du < H, ws regions as written by `forward`, g_out checked by `backward`;
        // this task writes only units u0 .. u0 + wdt of rows of step t in dg_ih / dg_hh,
        // its own pend block and its units of dc.
        let e = |p: *const T| p as *const V::E;
        let em = |p: *mut T| p as *mut V::E;
        let d = &self.d;
        let (hid, wdt) = (d.hidden, self.wdt);
        let g = self.cell.gates();
        let n = d.seq * d.batch;
        let gh = g * hid;
        let zero = V::splat(V::E::ZERO);
        let one = V::splat(V::E::ONE);
        let ws = e(self.ws);
        for b in self.b0..self.b1 {
            let row = d.row(self.t, b);
            let on = active(self.lengths, b, self.t);
            let pend = em(self.pend).add((b - self.b0) * wdt);
            let dgi = em(self.dg_ih).add(row * gh + self.u0);
            let dgh = self.dg_hh.map(|p| em(p).add(row * gh + self.u0));
            let mut du = 0;
            while du < wdt {
                let m = (wdt - du).min(V::LANES);
                let ld = |p: *const V::E| load_n::<V>(p, m);
                let st = |v: V, p: *mut V::E| store_n(v, p, m);
                if !on {
                    for q in 0..g {
                        st(zero, dgi.add(q * hid + du));
                        if let Some(p) = dgh {
                            st(zero, p.add(q * hid + du));
                        }
                    }
                    du += V::LANES;
                    continue;
                }
                let mut dh = ld(pend.add(du));
                if let Some(go) = self.g_out {
                    dh = dh.add(ld(e(go).add(row * self.ldg + self.goff + self.u0 + du)));
                }
                let u = self.u0 + du;
                // db[q H + u] += v for gate q.
                let acc = |db: Option<*mut T>, q: usize, v: V| {
                    if let Some(p) = db {
                        let a = em(p).add(q * hid + u);
                        st(ld(a).add(v), a);
                    }
                };
                match self.cell {
                    Cell::RnnTanh | Cell::RnnRelu => {
                        let y = ld(ws.add(row * hid + u));
                        let dp = if self.cell == Cell::RnnTanh {
                            dh.mul(one.sub(y.mul(y)))
                        } else {
                            V::select(y.gt(zero), dh, zero)
                        };
                        st(dp, dgi.add(du));
                        acc(self.db_ih, 0, dp);
                        st(zero, pend.add(du));
                    }
                    Cell::Lstm => {
                        let gb = ws.add(row * gh + u);
                        let (ig, fg, gg, og) = (
                            ld(gb),
                            ld(gb.add(hid)),
                            ld(gb.add(2 * hid)),
                            ld(gb.add(3 * hid)),
                        );
                        let base = row * hid + u;
                        let cprev = ld(ws.add(n * (gh + hid) + base));
                        let tc = ld(ws.add(n * (gh + 2 * hid) + base));
                        let dcp = em(self.dc).add(b * hid + u);
                        // dc = dc_carry + dh o (1 - tanh² c')
                        let dcv = dh.mul(og).mul_add(one.sub(tc.mul(tc)), ld(dcp));
                        let dpo = dh.mul(tc).mul(og.mul(one.sub(og)));
                        let dpi = dcv.mul(gg).mul(ig.mul(one.sub(ig)));
                        let dpg = dcv.mul(ig).mul(one.sub(gg.mul(gg)));
                        let dpf = dcv.mul(cprev).mul(fg.mul(one.sub(fg)));
                        st(dpi, dgi.add(du));
                        st(dpf, dgi.add(hid + du));
                        st(dpg, dgi.add(2 * hid + du));
                        st(dpo, dgi.add(3 * hid + du));
                        acc(self.db_ih, 0, dpi);
                        acc(self.db_ih, 1, dpf);
                        acc(self.db_ih, 2, dpg);
                        acc(self.db_ih, 3, dpo);
                        st(dcv.mul(fg), dcp);
                        st(zero, pend.add(du));
                    }
                    Cell::Gru => {
                        let gb = ws.add(row * 4 * hid + u);
                        let (r, z, nn, hnb) = (
                            ld(gb),
                            ld(gb.add(hid)),
                            ld(gb.add(2 * hid)),
                            ld(gb.add(3 * hid)),
                        );
                        let hprev = ld(ws.add(n * 4 * hid + row * hid + u));
                        let dz = dh.mul(hprev.sub(nn));
                        let dn = dh.mul(one.sub(z));
                        let dpn = dn.mul(one.sub(nn.mul(nn)));
                        let dpr = dpn.mul(hnb).mul(r.mul(one.sub(r)));
                        let dpz = dz.mul(z.mul(one.sub(z)));
                        st(dpr, dgi.add(du));
                        st(dpz, dgi.add(hid + du));
                        st(dpn, dgi.add(2 * hid + du));
                        if let Some(p) = dgh {
                            st(dpr, p.add(du));
                            st(dpz, p.add(hid + du));
                            st(dpn.mul(r), p.add(2 * hid + du));
                        }
                        acc(self.db_ih, 0, dpr);
                        acc(self.db_ih, 1, dpz);
                        acc(self.db_ih, 2, dpn);
                        acc(self.db_hh, 0, dpr);
                        acc(self.db_hh, 1, dpz);
                        acc(self.db_hh, 2, dpn.mul(r));
                        st(dh.mul(z), pend.add(du));
                    }
                }
                du += V::LANES;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Scratch buffers.

/// Buffers kept for reuse per element type: the large temporaries of one call (the input
/// projection, the pre-activation gradients, W_hh^T) are taken from here and given back
/// on drop, so a training loop does not page-fault megabytes of fresh memory every step
/// (measured: a GRU train step went from about 13.9 to 8.1 ms of CPU time).
static POOL_F32: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());
static POOL_F64: Mutex<Vec<Vec<f64>>> = Mutex::new(Vec::new());
/// At most this many buffers are kept per element type ...
const POOL_KEEP: usize = 8;
/// ... and none larger than this many bytes.
const POOL_MAX_BYTES: usize = 256 << 20;

/// Runs `f` on the pool of `T` (f32 or f64).
fn with_pool<T: Float, R>(f: impl FnOnce(&mut Vec<Vec<T>>) -> R) -> R {
    fn lock<U>(m: &Mutex<Vec<Vec<U>>>) -> std::sync::MutexGuard<'_, Vec<Vec<U>>> {
        // A panic while holding the lock cannot leave the list inconsistent.
        m.lock().unwrap_or_else(|e| e.into_inner())
    }
    if TypeId::of::<T>() == TypeId::of::<f32>() {
        let mut g = lock(&POOL_F32);
        // SAFETY: T is f32 (TypeId equal), so the list is reinterpreted as itself.
        f(unsafe { &mut *(&mut *g as *mut Vec<Vec<f32>> as *mut Vec<Vec<T>>) })
    } else {
        let mut g = lock(&POOL_F64);
        // SAFETY: Float is sealed to f32 and f64; T is not f32, so it is f64.
        f(unsafe { &mut *(&mut *g as *mut Vec<Vec<f64>> as *mut Vec<Vec<T>>) })
    }
}

/// A buffer of `len` initialised elements from the pool, returned to it on drop. Its
/// contents are arbitrary (values of an earlier use, or zero) unless `zeroed`. Pooled
/// vectors keep the largest length they were ever given, so a request only zero-fills
/// memory it has never used (the vector's length used to follow each request: the LSTM
/// backward then zero-filled 3 MB per call, taking a buffer the forward had shortened).
struct Scratch<T: Float> {
    v: Vec<T>,
    len: usize,
}

impl<T: Float> Scratch<T> {
    fn take(len: usize, zeroed: bool) -> Self {
        let mut v = with_pool::<T, _>(|p| {
            // The smallest buffer that is large enough, else the largest.
            let fit = (0..p.len())
                .filter(|&i| p[i].len() >= len)
                .min_by_key(|&i| p[i].len());
            let i = fit.or_else(|| (0..p.len()).max_by_key(|&i| p[i].len()));
            i.map(|i| p.swap_remove(i)).unwrap_or_default()
        });
        if zeroed {
            let k = v.len().min(len);
            v[..k].fill(T::ZERO);
        }
        if v.len() < len {
            v.resize(len, T::ZERO);
        }
        Scratch { v, len }
    }
}

impl<T: Float> Drop for Scratch<T> {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.v);
        if v.capacity() * std::mem::size_of::<T>() <= POOL_MAX_BYTES {
            with_pool::<T, _>(|p| {
                if p.len() < POOL_KEEP {
                    p.push(v);
                }
            });
        }
    }
}

impl<T: Float> std::ops::Deref for Scratch<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.v[..self.len]
    }
}

impl<T: Float> std::ops::DerefMut for Scratch<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.v[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::threading::with_threads;

    fn rng(seed: u64, n: usize, scale: f64) -> Vec<f64> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * scale
            })
            .collect()
    }

    struct Case {
        cell: Cell,
        d: Dims,
        x: Vec<f64>,
        w_ih: Vec<f64>,
        w_hh: Vec<f64>,
        b_ih: Vec<f64>,
        b_hh: Vec<f64>,
        h0: Vec<f64>,
        c0: Vec<f64>,
        lengths: Vec<usize>,
    }

    /// Batch 3 splits the hidden units per step; batch 37 (two chunks of 16 and one of
    /// 5) and 70 (two of 32 and one of 6) split the batch (see batch_chunk).
    fn case(cell: Cell, reverse: bool, batch_first: bool, batch: usize) -> Case {
        let d = Dims {
            seq: 5,
            batch,
            input: 4,
            hidden: 70,
            batch_first,
            reverse,
        };
        let gh = cell.gates() * d.hidden;
        Case {
            cell,
            d,
            x: rng(1, d.seq * d.batch * d.input, 1.0),
            w_ih: rng(2, gh * d.input, 0.3),
            w_hh: rng(3, gh * d.hidden, 0.1),
            b_ih: rng(4, gh, 0.2),
            b_hh: rng(5, gh, 0.2),
            h0: rng(6, d.batch * d.hidden, 0.5),
            c0: rng(7, d.batch * d.hidden, 0.5),
            lengths: (0..batch).map(|b| [5, 2, 4, 1, 5, 3][b % 6]).collect(),
        }
    }

    /// Forward and backward (loss = sum of out * gout + h_n * ghn + c_n * gcn), all
    /// outputs concatenated.
    fn run(c: &Case) -> (Vec<f64>, f64) {
        let d = &c.d;
        let n = d.seq * d.batch;
        let lstm = c.cell == Cell::Lstm;
        let bh = d.batch * d.hidden;
        let w = Weights {
            w_ih: &c.w_ih,
            w_hh: &c.w_hh,
            b_ih: Some(&c.b_ih),
            b_hh: Some(&c.b_hh),
        };
        let mut out = vec![0.0; n * d.hidden];
        let mut hn = vec![0.0; bh];
        let mut cn = vec![0.0; bh];
        let mut ws = vec![0.0; workspace_len(c.cell, d).unwrap()];
        forward(
            c.cell,
            d,
            &c.x,
            &w,
            Some(&c.h0),
            lstm.then_some(&c.c0[..]),
            Some(&c.lengths),
            &mut out,
            d.hidden,
            0,
            &mut hn,
            lstm.then_some(&mut cn[..]),
            Some(&mut ws),
        )
        .unwrap();
        // Without a workspace (other buffer layout inside): the same outputs, bit for bit.
        let (mut out2, mut hn2, mut cn2) = (vec![0.0; out.len()], vec![0.0; bh], vec![0.0; bh]);
        forward(
            c.cell,
            d,
            &c.x,
            &w,
            Some(&c.h0),
            lstm.then_some(&c.c0[..]),
            Some(&c.lengths),
            &mut out2,
            d.hidden,
            0,
            &mut hn2,
            lstm.then_some(&mut cn2[..]),
            None,
        )
        .unwrap();
        assert!(out
            .iter()
            .zip(&out2)
            .all(|(p, q)| p.to_bits() == q.to_bits()));
        assert!(hn.iter().zip(&hn2).all(|(p, q)| p.to_bits() == q.to_bits()));
        assert!(cn.iter().zip(&cn2).all(|(p, q)| p.to_bits() == q.to_bits()));
        let gout = rng(8, n * d.hidden, 1.0);
        let ghn = rng(9, bh, 1.0);
        let gcn = rng(10, bh, 1.0);
        let mut loss = 0.0;
        for (a, b) in out.iter().zip(&gout) {
            loss += a * b;
        }
        for (a, b) in hn.iter().zip(&ghn) {
            loss += a * b;
        }
        if lstm {
            for (a, b) in cn.iter().zip(&gcn) {
                loss += a * b;
            }
        }
        let gh = c.cell.gates() * d.hidden;
        let mut dx = vec![0.0; c.x.len()];
        let mut dh0 = vec![0.0; bh];
        let mut dc0 = vec![0.0; bh];
        let mut dwi = vec![0.0; c.w_ih.len()];
        let mut dwh = vec![0.0; c.w_hh.len()];
        let mut dbi = vec![0.0; gh];
        let mut dbh = vec![0.0; gh];
        backward(
            c.cell,
            d,
            &c.x,
            &c.w_ih,
            &c.w_hh,
            Some(&c.lengths),
            &ws,
            Some(&gout),
            d.hidden,
            0,
            Some(&ghn),
            lstm.then_some(&gcn[..]),
            Grads {
                dx: Some(&mut dx),
                accumulate_dx: false,
                dh0: &mut dh0,
                dc0: lstm.then_some(&mut dc0[..]),
                dw_ih: &mut dwi,
                dw_hh: &mut dwh,
                db_ih: Some(&mut dbi),
                db_hh: Some(&mut dbh),
            },
        )
        .unwrap();
        let mut all = out;
        for v in [hn, cn, dx, dh0, dc0, dwi, dwh, dbi, dbh] {
            all.extend(v);
        }
        (all, loss)
    }

    #[test]
    fn deterministic_across_threads_and_matches_finite_differences() {
        assert_eq!(
            (batch_chunk(3), batch_chunk(37), batch_chunk(70)),
            (None, Some(16), Some(32))
        );
        for (cell, batch) in [
            (Cell::RnnTanh, 3),
            (Cell::RnnRelu, 3),
            (Cell::Lstm, 3),
            (Cell::Gru, 3),
            (Cell::RnnTanh, 37),
            (Cell::Lstm, 37),
            (Cell::Gru, 37),
            (Cell::Lstm, 70),
        ] {
            for (reverse, bf) in [(false, false), (true, true)] {
                let c = case(cell, reverse, bf, batch);
                let (a1, _) = with_threads(1, || run(&c));
                let (a2, _) = with_threads(2, || run(&c));
                let (a3, _) = with_threads(3, || run(&c));
                assert!(a1.iter().zip(&a2).all(|(p, q)| p.to_bits() == q.to_bits()));
                assert!(a1.iter().zip(&a3).all(|(p, q)| p.to_bits() == q.to_bits()));
                // Finite differences on a few entries of w_hh and x.
                let d = &c.d;
                let n = d.seq * d.batch;
                let bh = d.batch * d.hidden;
                let off_dx = n * d.hidden + 2 * bh;
                let off_dwh = off_dx + c.x.len() + 2 * bh + c.w_ih.len();
                let last = c.x.len() - 3; // the last row: the last chunk of 37
                for (which, idx) in [(0usize, 3usize), (0, 17), (1, 5), (1, 41), (1, last)] {
                    let eps = 1e-6;
                    let mut cp = case(cell, reverse, bf, batch);
                    let mut cm = case(cell, reverse, bf, batch);
                    if which == 0 {
                        cp.w_hh[idx] += eps;
                        cm.w_hh[idx] -= eps;
                    } else {
                        cp.x[idx] += eps;
                        cm.x[idx] -= eps;
                    }
                    let num = (run(&cp).1 - run(&cm).1) / (2.0 * eps);
                    let ana = if which == 0 {
                        a1[off_dwh + idx]
                    } else {
                        a1[off_dx + idx]
                    };
                    assert!(
                        (num - ana).abs() < 1e-6 * (1.0 + num.abs()),
                        "{cell:?} rev={reverse} which={which} idx={idx}: {num} vs {ana}"
                    );
                }
            }
        }
    }

    #[test]
    fn bad_lengths_are_errors() {
        let c = case(Cell::Gru, false, false, 3);
        let d = &c.d;
        let w = Weights {
            w_ih: &c.w_ih,
            w_hh: &c.w_hh,
            b_ih: None,
            b_hh: None,
        };
        let mut out = vec![0.0; d.seq * d.batch * d.hidden];
        let mut hn = vec![0.0; d.batch * d.hidden];
        for lens in [vec![6usize, 1, 1], vec![0, 1, 1], vec![1, 1]] {
            let r = forward(
                Cell::Gru,
                d,
                &c.x,
                &w,
                None,
                None,
                Some(&lens),
                &mut out,
                d.hidden,
                0,
                &mut hn,
                None,
                None,
            );
            assert!(r.is_err());
        }
        let r = forward(
            Cell::Gru,
            d,
            &c.x,
            &w,
            None,
            None,
            None,
            &mut out,
            d.hidden,
            1,
            &mut hn,
            None,
            None,
        );
        assert!(r.is_err(), "offset past the row stride");
    }
}
