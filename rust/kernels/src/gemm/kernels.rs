//! Micro-kernels: C[mr x nr] = alpha * Apanel * Bpanel + beta * C.
//!
//! A micro-kernel multiplies one packed A panel (`kc` steps of `MR` values, one per row)
//! by one packed B panel (`kc` steps of `NR` values, one per column), accumulating in
//! registers in the order p = 0, 1, ..., kc-1, and then writes the `mr x nr` valid corner
//! of the tile to C as `alpha * acc + beta * C` (one fused multiply-add; `beta == 0`
//! writes `alpha * acc` and never reads C). Full tiles and edge tiles compute every
//! element with the same operations, so the result of an element does not depend on
//! which tile it falls in.

use crate::Float;

/// A register-blocked micro-kernel with its cache blocking.
///
/// # Safety
/// Implementors promise that [`MicroKernel::run`] is sound under its documented
/// preconditions, given that the CPU supports the kernel's SIMD level (the dispatcher
/// only selects a kernel whose level `crate::simd::level()` reported).
pub(crate) unsafe trait MicroKernel: Sync {
    type T: Float;
    /// Rows of the register tile (rows of an A panel).
    const MR: usize;
    /// Columns of the register tile (columns of a B panel).
    const NR: usize;
    /// Depth of one packed block (the k-blocking; fixed, so the reduction order is fixed).
    const KC: usize;
    /// Rows of A packed at once (A block meant to stay in L2).
    const MC: usize;
    /// Columns of B packed at once (B block meant to stay in L3).
    const NC: usize;

    /// # Safety
    /// `a` is readable for `kc * MR` elements, `b` for `kc * NR` elements;
    /// `1 <= mr <= MR`, `1 <= nr <= NR`; for every `i < mr`, `j < nr`, `c + i * ldc + j`
    /// is valid for reads and writes and no other thread accesses it during the call.
    /// The CPU supports the instruction set of the kernel.
    #[allow(clippy::too_many_arguments)]
    unsafe fn run(
        kc: usize,
        a: *const Self::T,
        b: *const Self::T,
        c: *mut Self::T,
        ldc: usize,
        alpha: Self::T,
        beta: Self::T,
        mr: usize,
        nr: usize,
    );
}

/// Writes one element of an edge tile exactly as the vector paths do.
#[inline(always)]
fn update<T: Float>(c: &mut T, acc: T, alpha: T, beta: T) {
    *c = if beta == T::ZERO {
        alpha * acc
    } else {
        alpha.mul_add(acc, beta * *c)
    };
}

/// Portable kernel (also the only one off x86-64).
pub(crate) struct ScalarKernel<T>(std::marker::PhantomData<T>);

const SMR: usize = 4;
const SNR: usize = 8;

// SAFETY: `run` only reads `kc * MR` / `kc * NR` elements of `a` / `b` and touches the
// `mr x nr` corner of C, as its preconditions allow; it uses no special instructions.
unsafe impl<T: Float> MicroKernel for ScalarKernel<T> {
    type T = T;
    const MR: usize = SMR;
    const NR: usize = SNR;
    const KC: usize = 256;
    const MC: usize = 128;
    const NC: usize = 2048;

    unsafe fn run(
        kc: usize,
        a: *const T,
        b: *const T,
        c: *mut T,
        ldc: usize,
        alpha: T,
        beta: T,
        mr: usize,
        nr: usize,
    ) {
        // SAFETY: the caller guarantees these lengths.
        let a = unsafe { std::slice::from_raw_parts(a, kc * SMR) };
        let b = unsafe { std::slice::from_raw_parts(b, kc * SNR) };
        let mut acc = [[T::ZERO; SNR]; SMR];
        for (ap, bp) in a.chunks_exact(SMR).zip(b.chunks_exact(SNR)) {
            for i in 0..SMR {
                for j in 0..SNR {
                    acc[i][j] += ap[i] * bp[j];
                }
            }
        }
        for (i, row) in acc.iter().enumerate().take(mr) {
            for (j, &x) in row.iter().enumerate().take(nr) {
                // SAFETY: i < mr, j < nr: inside the tile the caller owns.
                unsafe { update(&mut *c.add(i * ldc + j), x, alpha, beta) };
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{Avx2F32, Avx2F64, Avx512F32, Avx512F64};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{update, MicroKernel};
    use std::arch::x86_64::*;

    /// Defines a `#[target_feature]` micro-kernel function and its `MicroKernel` type.
    ///
    /// The tile is `MR` rows by `NV` vectors of `LANES` elements. Per step of k it loads
    /// `NV` vectors of B and, for each row, broadcasts one A value and issues `NV` FMAs.
    macro_rules! x86_kernel {
        (
            $kty:ident, $fname:ident, $feat:literal, $t:ty, $lanes:expr,
            mr = $mr:expr, nv = $nv:expr, kc = $kc:expr, mc = $mc:expr, nc = $nc:expr,
            $zero:ident, $loadu:ident, $storeu:ident, $set1:ident, $fmadd:ident, $mul:ident
        ) => {
            /// # Safety
            /// As `MicroKernel::run`, and the CPU supports the enabled features.
            #[target_feature(enable = $feat)]
            #[allow(clippy::too_many_arguments)]
            unsafe fn $fname(
                kc: usize,
                a: *const $t,
                b: *const $t,
                c: *mut $t,
                ldc: usize,
                alpha: $t,
                beta: $t,
                mr: usize,
                nr: usize,
            ) {
                const MR: usize = $mr;
                const NV: usize = $nv;
                const L: usize = $lanes;
                const NR: usize = NV * L;
                let mut acc = [[$zero(); NV]; MR];
                let mut ap = a;
                let mut bp = b;
                for _ in 0..kc {
                    let mut bv = [$zero(); NV];
                    for (v, x) in bv.iter_mut().enumerate() {
                        // SAFETY: bp points into the B panel: NR values per step.
                        *x = unsafe { $loadu(bp.add(v * L)) };
                    }
                    for (i, row) in acc.iter_mut().enumerate() {
                        // SAFETY: ap points into the A panel: MR values per step.
                        let av = $set1(unsafe { *ap.add(i) });
                        for (v, x) in row.iter_mut().enumerate() {
                            *x = $fmadd(av, bv[v], *x);
                        }
                    }
                    // SAFETY: stays within (or one past) the panels, kc steps in all.
                    ap = unsafe { ap.add(MR) };
                    bp = unsafe { bp.add(NR) };
                }
                if nr == NR {
                    let alphav = $set1(alpha);
                    let betav = $set1(beta);
                    for (i, row) in acc.iter().enumerate().take(mr) {
                        // SAFETY: row i < mr, columns 0..NR = 0..nr: inside the tile.
                        let cr = unsafe { c.add(i * ldc) };
                        for (v, &x) in row.iter().enumerate() {
                            unsafe {
                                let cp = cr.add(v * L);
                                let r = if beta == 0.0 {
                                    $mul(alphav, x)
                                } else {
                                    $fmadd(alphav, x, $mul(betav, $loadu(cp)))
                                };
                                $storeu(cp, r);
                            }
                        }
                    }
                } else {
                    let mut tmp = [0.0 as $t; MR * NR];
                    for (i, row) in acc.iter().enumerate() {
                        for (v, &x) in row.iter().enumerate() {
                            // SAFETY: i * NR + v * L + L <= MR * NR.
                            unsafe { $storeu(tmp.as_mut_ptr().add(i * NR + v * L), x) };
                        }
                    }
                    for i in 0..mr {
                        for j in 0..nr {
                            // SAFETY: i < mr, j < nr: inside the tile.
                            unsafe {
                                update(&mut *c.add(i * ldc + j), tmp[i * NR + j], alpha, beta)
                            };
                        }
                    }
                }
            }

            pub(crate) struct $kty;

            // SAFETY: `$fname` honours the `MicroKernel::run` contract; the dispatcher
            // only picks this type when the CPU has `$feat`.
            unsafe impl MicroKernel for $kty {
                type T = $t;
                const MR: usize = $mr;
                const NR: usize = $nv * $lanes;
                const KC: usize = $kc;
                const MC: usize = $mc;
                const NC: usize = $nc;
                #[inline(always)]
                unsafe fn run(
                    kc: usize,
                    a: *const $t,
                    b: *const $t,
                    c: *mut $t,
                    ldc: usize,
                    alpha: $t,
                    beta: $t,
                    mr: usize,
                    nr: usize,
                ) {
                    // SAFETY: forwarded preconditions.
                    unsafe { $fname(kc, a, b, c, ldc, alpha, beta, mr, nr) }
                }
            }
        };
    }

    x86_kernel!(
        Avx512F32,
        kernel_avx512_f32,
        "avx512f",
        f32,
        16,
        mr = 14,
        nv = 2,
        kc = 256,
        mc = 336,
        nc = 4096,
        _mm512_setzero_ps,
        _mm512_loadu_ps,
        _mm512_storeu_ps,
        _mm512_set1_ps,
        _mm512_fmadd_ps,
        _mm512_mul_ps
    );
    x86_kernel!(
        Avx512F64,
        kernel_avx512_f64,
        "avx512f",
        f64,
        8,
        mr = 14,
        nv = 2,
        kc = 256,
        mc = 168,
        nc = 2048,
        _mm512_setzero_pd,
        _mm512_loadu_pd,
        _mm512_storeu_pd,
        _mm512_set1_pd,
        _mm512_fmadd_pd,
        _mm512_mul_pd
    );
    x86_kernel!(
        Avx2F32,
        kernel_avx2_f32,
        "avx2,fma",
        f32,
        8,
        mr = 6,
        nv = 2,
        kc = 256,
        mc = 144,
        nc = 4096,
        _mm256_setzero_ps,
        _mm256_loadu_ps,
        _mm256_storeu_ps,
        _mm256_set1_ps,
        _mm256_fmadd_ps,
        _mm256_mul_ps
    );
    x86_kernel!(
        Avx2F64,
        kernel_avx2_f64,
        "avx2,fma",
        f64,
        4,
        mr = 6,
        nv = 2,
        kc = 256,
        mc = 96,
        nc = 2048,
        _mm256_setzero_pd,
        _mm256_loadu_pd,
        _mm256_storeu_pd,
        _mm256_set1_pd,
        _mm256_fmadd_pd,
        _mm256_mul_pd
    );
}
