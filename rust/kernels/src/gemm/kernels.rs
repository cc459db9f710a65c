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

    /// True if [`MicroKernel::run_strided`] is available (reads unpacked operands).
    const STRIDED: bool = false;

    /// Like [`MicroKernel::run`] but reads A at `a + i * a_rs + p * a_cs` (rows `i < mr`
    /// only) and B at `b + p * b_rs + j` (columns `j < nr` only), so unpacked operands
    /// can be used directly. Only called when `STRIDED` is true.
    ///
    /// # Safety
    /// Every A and B element named above (for `p < kc`, `i < mr`, `j < nr`) is readable;
    /// C as in [`MicroKernel::run`].
    #[allow(clippy::too_many_arguments)]
    unsafe fn run_strided(
        kc: usize,
        a: *const Self::T,
        a_rs: usize,
        a_cs: usize,
        b: *const Self::T,
        b_rs: usize,
        c: *mut Self::T,
        ldc: usize,
        alpha: Self::T,
        beta: Self::T,
        mr: usize,
        nr: usize,
    ) {
        let _ = (kc, a, a_rs, a_cs, b, b_rs, c, ldc, alpha, beta, mr, nr);
        unreachable!("run_strided called on a kernel without STRIDED support")
    }
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

// The AVX-512 intrinsics and `#[target_feature(enable = "avx512f")]` are stable since
// Rust 1.89; the workspace still declares rust-version 1.80 (reported: it needs bumping
// to 1.89 for this module to build with the declared minimum).
#[cfg(target_arch = "x86_64")]
#[allow(clippy::incompatible_msrv)]
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
    /// Rows of the AVX-512 register tile (two vectors per row: 28 accumulators).
    const MR512: usize = 14;

    /// Calls `$f::<R, NV, AP>` with `R = $mr` (1..=14) and `NV = $nv` (1..=2).
    macro_rules! select_rn {
        ($f:ident, $ap:expr, $mr:expr, $nv:expr, $args:tt) => {
            select_rn!(@r $f, $ap, $mr, $nv, $args, 1 2 3 4 5 6 7 8 9 10 11 12 13 14)
        };
        (@r $f:ident, $ap:expr, $mr:expr, $nv:expr, $args:tt, $($r:literal)*) => {
            match $mr {
                $( $r => if $nv == 1 {
                    $f::<$r, 1, $ap> $args
                } else {
                    $f::<$r, 2, $ap> $args
                }, )*
                _ => unreachable!(),
            }
        };
    }

    /// Defines the AVX-512 micro-kernel: up to 14 rows by up to two vectors, with masked
    /// loads of B and masked loads/stores of C for the column edge, `R` rows computed
    /// (so edge panels cost only their rows), A packed (`AP`) or strided.
    macro_rules! avx512_kernel {
        (
            $kty:ident, $fname:ident, $t:ty, $lanes:expr, $mask:ty,
            kc = $kc:expr, mc = $mc:expr, nc = $nc:expr,
            $zero:ident, $maskz_load:ident, $mask_store:ident, $set1:ident, $fmadd:ident,
            $mul:ident, $add:ident
        ) => {
            /// # Safety
            /// `R <= 14`, `NV <= 2`, `1 <= nr <= NV * lanes` and `nr > (NV - 1) * lanes`;
            /// A at `a + i * a_rs + p * a_cs` (or `a + p * 14 + i` when `AP`) and B at
            /// `b + p * b_rs + j` readable for `i < R`, `j < nr`, `p < kc`; C as in
            /// `MicroKernel::run` for `R` rows; the CPU supports AVX-512F.
            #[target_feature(enable = "avx512f")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn $fname<const R: usize, const NV: usize, const AP: bool>(
                kc: usize,
                a: *const $t,
                a_rs: usize,
                a_cs: usize,
                b: *const $t,
                b_rs: usize,
                c: *mut $t,
                ldc: usize,
                alpha: $t,
                beta: $t,
                nr: usize,
            ) {
                const L: usize = $lanes;
                let lane_mask = |w: usize| -> $mask {
                    if w >= L {
                        <$mask>::MAX
                    } else {
                        ((1u32 << w) - 1) as $mask
                    }
                };
                let masks: [$mask; NV] =
                    std::array::from_fn(|v| lane_mask(nr.saturating_sub(v * L)));
                let mut acc = [[$zero(); NV]; R];
                let mut ap = a;
                let mut bp = b;
                for _ in 0..kc {
                    let mut bv = [$zero(); NV];
                    for (v, x) in bv.iter_mut().enumerate() {
                        // SAFETY: masked load: only columns j < nr of row p are read.
                        *x = unsafe { $maskz_load(masks[v], bp.add(v * L)) };
                    }
                    for (i, row) in acc.iter_mut().enumerate() {
                        // SAFETY: element (i, p) of A, i < R.
                        let av = $set1(unsafe {
                            if AP {
                                *ap.add(i)
                            } else {
                                *ap.add(i * a_rs)
                            }
                        });
                        for (v, x) in row.iter_mut().enumerate() {
                            *x = $fmadd(av, bv[v], *x);
                        }
                    }
                    // Pointer arithmetic may step one past the operands after the last p:
                    // wrapping_add keeps that well defined.
                    ap = ap.wrapping_add(if AP { MR512 } else { a_cs });
                    bp = bp.wrapping_add(b_rs);
                }
                let alphav = $set1(alpha);
                let betav = $set1(beta);
                // alpha == 1 skips the multiply by alpha and beta == 1 the one by beta:
                // both are exact, so the bits are those of the general formula (and
                // fma(1, x, y) rounds x + y once, as the add does).
                let unit_alpha = alpha == 1.0;
                for (i, row) in acc.iter().enumerate() {
                    let cr = c.wrapping_add(i * ldc);
                    for (v, &x) in row.iter().enumerate() {
                        let cp = cr.wrapping_add(v * L);
                        // SAFETY: row i < R of the tile, columns < nr via the mask.
                        unsafe {
                            let r = if beta == 0.0 {
                                if unit_alpha {
                                    x
                                } else {
                                    $mul(alphav, x)
                                }
                            } else {
                                let cv = $maskz_load(masks[v], cp);
                                let bc = if beta == 1.0 { cv } else { $mul(betav, cv) };
                                if unit_alpha {
                                    $add(x, bc)
                                } else {
                                    $fmadd(alphav, x, bc)
                                }
                            };
                            $mask_store(cp, masks[v], r);
                        }
                    }
                }
            }

            pub(crate) struct $kty;

            // SAFETY: `$fname` honours the `MicroKernel` contracts (R = mr rows and
            // NV = ceil(nr / lanes) vectors are selected, so only the tile is touched);
            // the dispatcher only picks this type when the CPU has AVX-512F.
            unsafe impl MicroKernel for $kty {
                type T = $t;
                const MR: usize = MR512;
                const NR: usize = 2 * $lanes;
                const KC: usize = $kc;
                const MC: usize = $mc;
                const NC: usize = $nc;
                const STRIDED: bool = true;
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
                    let nv = nr.div_ceil($lanes);
                    // SAFETY: forwarded; packed panels hold 14 values of A and NR of B per p.
                    unsafe {
                        select_rn!(
                            $fname,
                            true,
                            mr,
                            nv,
                            (kc, a, 1, MR512, b, 2 * $lanes, c, ldc, alpha, beta, nr)
                        )
                    }
                }
                #[inline(always)]
                unsafe fn run_strided(
                    kc: usize,
                    a: *const $t,
                    a_rs: usize,
                    a_cs: usize,
                    b: *const $t,
                    b_rs: usize,
                    c: *mut $t,
                    ldc: usize,
                    alpha: $t,
                    beta: $t,
                    mr: usize,
                    nr: usize,
                ) {
                    let nv = nr.div_ceil($lanes);
                    // SAFETY: forwarded.
                    unsafe {
                        select_rn!(
                            $fname,
                            false,
                            mr,
                            nv,
                            (kc, a, a_rs, a_cs, b, b_rs, c, ldc, alpha, beta, nr)
                        )
                    }
                }
            }
        };
    }

    avx512_kernel!(
        Avx512F32,
        kernel_avx512_f32,
        f32,
        16,
        __mmask16,
        kc = 512,
        mc = 168,
        nc = 4096,
        _mm512_setzero_ps,
        _mm512_maskz_loadu_ps,
        _mm512_mask_storeu_ps,
        _mm512_set1_ps,
        _mm512_fmadd_ps,
        _mm512_mul_ps,
        _mm512_add_ps
    );
    avx512_kernel!(
        Avx512F64,
        kernel_avx512_f64,
        f64,
        8,
        __mmask8,
        kc = 256,
        mc = 168,
        nc = 2048,
        _mm512_setzero_pd,
        _mm512_maskz_loadu_pd,
        _mm512_mask_storeu_pd,
        _mm512_set1_pd,
        _mm512_fmadd_pd,
        _mm512_mul_pd,
        _mm512_add_pd
    );
}
