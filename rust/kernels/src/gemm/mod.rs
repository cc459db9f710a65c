//! General matrix multiply: C = alpha * op(A) * op(B) + beta * C, row-major.
//!
//! CONTRACT (the binding relies on it):
//! - `op(A)` is m x k. Without transpose A is stored m x k with row stride `lda >= k`;
//!   with transpose A is stored k x m with row stride `lda >= m`. Same for B (k x n).
//! - C is m x n with row stride `ldc >= n`.
//! - `beta == 0` overwrites C (NaN already in C is ignored), as BLAS does.
//! - `k == 0` gives C = beta * C. Every length is checked; errors, never panics.
//! - The reduction over k runs in a fixed order that does not depend on the thread count.

use crate::{Float, Result};

/// C = alpha * op(A) * op(B) + beta * C.
#[allow(clippy::too_many_arguments)]
pub fn gemm<T: Float>(
    transa: bool,
    transb: bool,
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
    let _ = (transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    todo!("gemm")
}

/// `batch` independent GEMMs; matrix `i` of A starts at `i * stride_a` (likewise B, C).
/// `stride_a` or `stride_b` may be 0 to broadcast one matrix over the batch; the C
/// matrices must not overlap (`stride_c >= (m - 1) * ldc + n` when batch > 1).
#[allow(clippy::too_many_arguments)]
pub fn gemm_batched<T: Float>(
    batch: usize,
    transa: bool,
    transb: bool,
    m: usize,
    n: usize,
    k: usize,
    alpha: T,
    a: &[T],
    lda: usize,
    stride_a: usize,
    b: &[T],
    ldb: usize,
    stride_b: usize,
    beta: T,
    c: &mut [T],
    ldc: usize,
    stride_c: usize,
) -> Result<()> {
    let _ = (
        batch, transa, transb, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta, c, ldc,
        stride_c,
    );
    todo!("gemm_batched")
}
