//! Fully connected layer: y = act(x W^T + b) and its backward, PyTorch's `nn.Linear` layout.
//!
//! CONTRACT (the binding relies on it):
//! - `x` is m x k (m rows of k input features), `w` is n x k (out x in, PyTorch's layout),
//!   `b` is n or absent, `y` is m x n; all row-major and contiguous. Every length is
//!   checked against (m, k, n); mismatches are errors, never panics.
//! - `act` is applied to the whole pre-activation inside the kernel: none, relu, sigmoid or
//!   tanh, with the values of [`crate::elementwise`] (the backward reads the derivative from
//!   the output `y`: relu' = [y > 0], sigmoid' = y (1 - y), tanh' = 1 - y²).
//! - Backward: gz = gy * act'(y); dx = gz W (m x k); dW = gz^T x (n x k); db = column sums
//!   of gz (n), each column summed over the rows in order 0..m.
//! - Deterministic for any thread count: the GEMMs reduce in a fixed order and the column
//!   sums are split by columns only.
//!
//! DESIGN: the bias is written into every row of `y` and the product added with
//! `gemm(beta = 1)`; the activation then runs in place over `y`. Small layers (the XOR net)
//! run entirely on the calling thread.

use crate::elementwise::{self, Unary};
use crate::error::{check_len, checked_product};
use crate::threading;
use crate::{gemm, Float, KernelError, Result};

const OP: &str = "linear";
const OP_BWD: &str = "linear_backward";

/// Columns per task of the bias-gradient column sum (results do not depend on it).
const DB_COLS: usize = 256;
/// Below this many elements of gz the column sum runs on the calling thread.
const DB_PAR_MIN: usize = 64 * 1024;

/// The activation fused into the layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    None,
    Relu,
    Sigmoid,
    Tanh,
}

impl Activation {
    fn unary(self) -> Option<Unary> {
        match self {
            Activation::None => None,
            Activation::Relu => Some(Unary::Relu),
            Activation::Sigmoid => Some(Unary::Sigmoid),
            Activation::Tanh => Some(Unary::Tanh),
        }
    }
}

fn check_exact(op: &'static str, what: &str, needed: usize, given: usize) -> Result<()> {
    if needed != given {
        return Err(KernelError::ShapeMismatch {
            op,
            detail: format!("{what} must have {needed} elements, given {given}"),
        });
    }
    Ok(())
}

/// y = act(x W^T + b): x (m, k), w (n, k), b (n) or None, y (m, n).
#[allow(clippy::too_many_arguments)]
pub fn forward<T: Float>(
    x: &[T],
    w: &[T],
    b: Option<&[T]>,
    y: &mut [T],
    m: usize,
    k: usize,
    n: usize,
    act: Activation,
) -> Result<()> {
    check_exact(OP, "x", checked_product(OP, &[m, k])?, x.len())?;
    check_exact(OP, "weight", checked_product(OP, &[n, k])?, w.len())?;
    check_exact(OP, "y", checked_product(OP, &[m, n])?, y.len())?;
    let beta = match b {
        Some(b) => {
            check_exact(OP, "bias", n, b.len())?;
            if n > 0 {
                for row in y.chunks_exact_mut(n) {
                    row.copy_from_slice(b);
                }
            }
            T::ONE
        }
        None => T::ZERO,
    };
    gemm::gemm(false, true, m, n, k, T::ONE, x, k, w, k, beta, y, n)?;
    if let Some(u) = act.unary() {
        elementwise::forward_inplace(u, y)?;
    }
    Ok(())
}

/// The gradients of [`forward`]: given x, w, the output y and its gradient gy (m, n),
/// writes dx (m, k) when given, dw (n, k), and db (n) when given.
#[allow(clippy::too_many_arguments)]
pub fn backward<T: Float>(
    x: &[T],
    w: &[T],
    y: &[T],
    gy: &[T],
    dx: Option<&mut [T]>,
    dw: &mut [T],
    db: Option<&mut [T]>,
    m: usize,
    k: usize,
    n: usize,
    act: Activation,
) -> Result<()> {
    let mn = checked_product(OP_BWD, &[m, n])?;
    check_exact(OP_BWD, "x", checked_product(OP_BWD, &[m, k])?, x.len())?;
    check_exact(OP_BWD, "weight", checked_product(OP_BWD, &[n, k])?, w.len())?;
    check_exact(OP_BWD, "gy", mn, gy.len())?;
    check_exact(OP_BWD, "dw", w.len(), dw.len())?;
    // gz = gy * act'(y).
    let scratch;
    let gz: &[T] = match act.unary() {
        None => gy,
        Some(u) => {
            check_exact(OP_BWD, "y", mn, y.len())?;
            let mut buf = vec![T::ZERO; mn];
            // relu'(z) = [z > 0] = [y > 0], so y stands for x as well.
            elementwise::backward(u, y, y, gy, &mut buf)?;
            scratch = buf;
            &scratch
        }
    };
    if let Some(dx) = dx {
        check_exact(OP_BWD, "dx", x.len(), dx.len())?;
        gemm::gemm(false, false, m, k, n, T::ONE, gz, n, w, k, T::ZERO, dx, k)?;
    }
    gemm::gemm(true, false, n, k, m, T::ONE, gz, n, x, k, T::ZERO, dw, k)?;
    if let Some(db) = db {
        check_exact(OP_BWD, "db", n, db.len())?;
        column_sums(gz, m, n, db)?;
    }
    Ok(())
}

/// out[j] = sum over i in 0..m (in order) of a[i * n + j].
pub fn column_sums<T: Float>(a: &[T], m: usize, n: usize, out: &mut [T]) -> Result<()> {
    check_len(OP_BWD, "a", checked_product(OP_BWD, &[m, n])?, a.len())?;
    check_exact(OP_BWD, "out", n, out.len())?;
    let sum_cols = |j0: usize, oc: &mut [T]| {
        oc.fill(T::ZERO);
        let w = oc.len();
        for row in a.chunks_exact(n).take(m) {
            for (o, &v) in oc.iter_mut().zip(&row[j0..j0 + w]) {
                *o += v;
            }
        }
    };
    if n == 0 {
        return Ok(());
    }
    if m * n < DB_PAR_MIN || n <= DB_COLS {
        sum_cols(0, out);
    } else {
        let cols = threading::task_len(n, DB_COLS);
        threading::for_each_chunk_mut(out, cols, |c, oc| sum_cols(c * cols, oc));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vmath::testutil::Rng;

    fn reference(
        x: &[f64],
        w: &[f64],
        b: Option<&[f64]>,
        m: usize,
        k: usize,
        n: usize,
        act: Activation,
    ) -> Vec<f64> {
        let mut y = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = b.map_or(0.0, |b| b[j]);
                for p in 0..k {
                    s += x[i * k + p] * w[j * k + p];
                }
                y[i * n + j] = match act {
                    Activation::None => s,
                    Activation::Relu => s.max(0.0),
                    Activation::Sigmoid => 1.0 / (1.0 + (-s).exp()),
                    Activation::Tanh => s.tanh(),
                };
            }
        }
        y
    }

    const ACTS: [Activation; 4] = [
        Activation::None,
        Activation::Relu,
        Activation::Sigmoid,
        Activation::Tanh,
    ];

    #[test]
    fn forward_backward_match_reference() {
        let mut r = Rng::new(1);
        for &(m, k, n) in &[
            (4, 2, 8),
            (4, 8, 1),
            (1, 1, 1),
            (0, 3, 2),
            (3, 0, 2),
            (3, 2, 0),
            (17, 33, 9),
            (64, 100, 70),
            (300, 20, 300),
        ] {
            for act in ACTS {
                for bias in [true, false] {
                    let x = r.vec(m * k, -1.0, 1.0);
                    let w = r.vec(n * k, -1.0, 1.0);
                    let b = r.vec(n, -1.0, 1.0);
                    let bo = if bias { Some(&b[..]) } else { None };
                    let mut y = vec![f64::NAN; m * n];
                    forward(&x, &w, bo, &mut y, m, k, n, act).unwrap();
                    let want = reference(&x, &w, bo, m, k, n, act);
                    for (a, e) in y.iter().zip(&want) {
                        assert!((a - e).abs() < 1e-12, "{act:?} {m}x{k}x{n}: {a} vs {e}");
                    }
                    // Backward against finite-difference-free formulas.
                    let gy = r.vec(m * n, -1.0, 1.0);
                    let mut dx = vec![f64::NAN; m * k];
                    let mut dw = vec![f64::NAN; n * k];
                    let mut db = vec![f64::NAN; n];
                    backward(
                        &x,
                        &w,
                        &y,
                        &gy,
                        Some(&mut dx),
                        &mut dw,
                        Some(&mut db),
                        m,
                        k,
                        n,
                        act,
                    )
                    .unwrap();
                    let gz: Vec<f64> = gy
                        .iter()
                        .zip(&y)
                        .map(|(&g, &yv)| {
                            g * match act {
                                Activation::None => 1.0,
                                Activation::Relu => (yv > 0.0) as u8 as f64,
                                Activation::Sigmoid => yv * (1.0 - yv),
                                Activation::Tanh => 1.0 - yv * yv,
                            }
                        })
                        .collect();
                    for i in 0..m {
                        for p in 0..k {
                            let e: f64 = (0..n).map(|j| gz[i * n + j] * w[j * k + p]).sum();
                            assert!((dx[i * k + p] - e).abs() < 1e-12);
                        }
                    }
                    for j in 0..n {
                        for p in 0..k {
                            let e: f64 = (0..m).map(|i| gz[i * n + j] * x[i * k + p]).sum();
                            assert!((dw[j * k + p] - e).abs() < 1e-12);
                        }
                        let e: f64 = (0..m).map(|i| gz[i * n + j]).sum();
                        assert!((db[j] - e).abs() < 1e-12);
                    }
                }
            }
        }
    }

    #[test]
    fn f32_matches_f64() {
        let mut r = Rng::new(2);
        let (m, k, n) = (33, 47, 21);
        let x = r.vec(m * k, -1.0, 1.0);
        let w = r.vec(n * k, -1.0, 1.0);
        let b = r.vec(n, -1.0, 1.0);
        let f = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
        for act in ACTS {
            let mut y = vec![0f32; m * n];
            forward(&f(&x), &f(&w), Some(&f(&b)), &mut y, m, k, n, act).unwrap();
            let want = reference(&x, &w, Some(&b), m, k, n, act);
            for (a, e) in y.iter().zip(&want) {
                assert!((*a as f64 - e).abs() < 1e-4, "{act:?}");
            }
        }
    }

    #[test]
    fn lengths_are_checked() {
        let x = [0f32; 6];
        let w = [0f32; 6];
        let mut y = [0f32; 4];
        assert!(forward(&x, &w, None, &mut y, 2, 3, 2, Activation::None).is_ok());
        assert!(forward(&x[..5], &w, None, &mut y, 2, 3, 2, Activation::None).is_err());
        assert!(forward(&x, &w[..5], None, &mut y, 2, 3, 2, Activation::None).is_err());
        assert!(forward(&x, &w, Some(&[0.0; 3]), &mut y, 2, 3, 2, Activation::None).is_err());
        assert!(forward(&x, &w, None, &mut y[..3], 2, 3, 2, Activation::None).is_err());
        let gy = [0f32; 4];
        let mut dw = [0f32; 6];
        let mut db = [0f32; 2];
        let mut dx = [0f32; 6];
        let ok = backward(
            &x,
            &w,
            &y,
            &gy,
            Some(&mut dx),
            &mut dw,
            Some(&mut db),
            2,
            3,
            2,
            Activation::Relu,
        );
        assert!(ok.is_ok());
        let e = backward(
            &x,
            &w,
            &y[..3],
            &gy,
            None,
            &mut dw,
            None,
            2,
            3,
            2,
            Activation::Tanh,
        );
        assert!(e.is_err());
        let e = backward(
            &x,
            &w,
            &y,
            &gy,
            None,
            &mut dw,
            Some(&mut db[..1]),
            2,
            3,
            2,
            Activation::None,
        );
        assert!(e.is_err());
        let e = forward(&x, &w, None, &mut y, usize::MAX, 2, 2, Activation::None);
        assert!(e.is_err());
    }

    #[test]
    fn threads_do_not_change_bits() {
        let mut r = Rng::new(3);
        let (m, k, n) = (500, 130, 700);
        let x: Vec<f32> = r.vec(m * k, -1.0, 1.0).iter().map(|&v| v as f32).collect();
        let w: Vec<f32> = r.vec(n * k, -1.0, 1.0).iter().map(|&v| v as f32).collect();
        let b: Vec<f32> = r.vec(n, -1.0, 1.0).iter().map(|&v| v as f32).collect();
        let gy: Vec<f32> = r.vec(m * n, -1.0, 1.0).iter().map(|&v| v as f32).collect();
        let mut outs = Vec::new();
        for t in [1, 2, 3] {
            let mut y = vec![0f32; m * n];
            let mut dx = vec![0f32; m * k];
            let mut dw = vec![0f32; n * k];
            let mut db = vec![0f32; n];
            threading::with_threads(t, || {
                forward(&x, &w, Some(&b), &mut y, m, k, n, Activation::Tanh).unwrap();
                backward(
                    &x,
                    &w,
                    &y,
                    &gy,
                    Some(&mut dx),
                    &mut dw,
                    Some(&mut db),
                    m,
                    k,
                    n,
                    Activation::Tanh,
                )
                .unwrap();
            });
            outs.push((y, dx, dw, db));
        }
        let bits = |v: &[f32]| v.iter().map(|a| a.to_bits()).collect::<Vec<u32>>();
        for o in &outs[1..] {
            assert_eq!(bits(&o.0), bits(&outs[0].0));
            assert_eq!(bits(&o.1), bits(&outs[0].1));
            assert_eq!(bits(&o.2), bits(&outs[0].2));
            assert_eq!(bits(&o.3), bits(&outs[0].3));
        }
    }
}
