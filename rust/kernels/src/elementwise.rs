//! Element-wise activations and their derivatives.
//!
//! CONTRACT: `x`, `y`, `gy`, `gx` all have the same length (checked). Formulas are
//! PyTorch's: softplus(x) = log(1 + exp(beta x)) / beta, and x itself where
//! beta x > threshold; softsign(x) = x / (1 + |x|); leaky_relu(x) = x if x > 0 else slope x;
//! relu'(0) = 0. NaN propagates.

use crate::{Float, Result};

/// Which element-wise function.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Unary {
    Relu,
    LeakyRelu { negative_slope: f64 },
    Sigmoid,
    Tanh,
    Softsign,
    Softplus { beta: f64, threshold: f64 },
    Exp,
    Log,
}

/// y = f(x).
pub fn forward<T: Float>(op: Unary, x: &[T], y: &mut [T]) -> Result<()> {
    let _ = (op, x, y);
    todo!()
}

/// gx = gy * f'(x). `y` must be the output of [`forward`] on `x` (sigmoid, tanh and exp
/// read their derivative from it).
pub fn backward<T: Float>(op: Unary, x: &[T], y: &[T], gy: &[T], gx: &mut [T]) -> Result<()> {
    let _ = (op, x, y, gy, gx);
    todo!()
}
