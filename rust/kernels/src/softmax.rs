//! Softmax and log-softmax along the last axis of a (rows, cols) array, max-subtracted.
//!
//! CONTRACT: all buffers hold rows * cols elements (checked).
//! softmax backward: gx = y * (gy - sum_j gy_j y_j); log_softmax backward:
//! gx = gy - exp(y) * sum_j gy_j (y being the forward output).

use crate::{Float, Result};

/// y = softmax(x) (or log_softmax when `log`) along each row.
pub fn forward<T: Float>(x: &[T], y: &mut [T], rows: usize, cols: usize, log: bool) -> Result<()> {
    let _ = (x, y, rows, cols, log);
    todo!()
}

/// Gradient of [`forward`] given its output `y` and the output gradient `gy`.
pub fn backward<T: Float>(
    y: &[T],
    gy: &[T],
    gx: &mut [T],
    rows: usize,
    cols: usize,
    log: bool,
) -> Result<()> {
    let _ = (y, gy, gx, rows, cols, log);
    todo!()
}
