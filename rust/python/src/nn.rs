//! Bindings of the layer kernels: the fused linear layer (forward and backward).

use crate::common::{arr, check_shape, new_array, not_contiguous, run, same, with_float};
use ferrograd_kernels::linear::{self as klinear, Activation};
use ferrograd_kernels::Float;
use numpy::{Element, PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

fn parse_act(op: &str, act: &str) -> PyResult<Activation> {
    Ok(match act {
        "none" => Activation::None,
        "relu" => Activation::Relu,
        "sigmoid" => Activation::Sigmoid,
        "tanh" => Activation::Tanh,
        _ => {
            return Err(PyValueError::new_err(format!(
                "{op}: unknown activation {act:?}; expected none, relu, sigmoid or tanh"
            )))
        }
    })
}

/// (m, k) of a 2-D x and n of a 2-D w (n, k), or a ValueError naming the shapes.
fn dims(op: &str, xs: &[usize], ws: &[usize]) -> PyResult<(usize, usize, usize)> {
    if xs.len() != 2 || ws.len() != 2 || xs[1] != ws[1] {
        return Err(PyValueError::new_err(format!(
            "{op}: expected x (m, k) and weight (n, k), given shapes {xs:?} and {ws:?}"
        )));
    }
    Ok((xs[0], xs[1], ws[0]))
}

fn linear_t<'py, T: Float + Element>(
    py: Python<'py>,
    x: &Bound<'py, PyArrayDyn<T>>,
    w: &Bound<'py, PyAny>,
    b: Option<&Bound<'py, PyAny>>,
    act: Activation,
) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    const OP: &str = "linear";
    let w = same::<T>(OP, "weight", w)?;
    let (m, k, n) = dims(OP, x.shape(), w.shape())?;
    let b = match b {
        Some(b) => {
            let b = same::<T>(OP, "bias", b)?;
            check_shape(OP, "bias", &[n], b.shape())?;
            Some(b)
        }
        None => None,
    };
    let xr = x.try_readonly()?;
    let wr = w.try_readonly()?;
    let br = match &b {
        Some(b) => Some(b.try_readonly()?),
        None => None,
    };
    let xs = xr.as_slice().map_err(|_| not_contiguous(OP, "x"))?;
    let wsl = wr.as_slice().map_err(|_| not_contiguous(OP, "weight"))?;
    let bs = match &br {
        Some(r) => Some(r.as_slice().map_err(|_| not_contiguous(OP, "bias"))?),
        None => None,
    };
    let y = new_array::<T>(py, &[m, n]);
    {
        let mut yw = y.try_readwrite()?;
        let ys = yw.as_slice_mut().map_err(|_| not_contiguous(OP, "y"))?;
        run(py, OP, || klinear::forward(xs, wsl, bs, ys, m, k, n, act))?;
    }
    Ok(y)
}

/// linear(x, weight, bias=None, activation="none") -> act(x @ weight.T + bias).
///
/// x: (m, k); weight: (n, k); bias: (n,) or None; activation: none, relu, sigmoid or tanh.
/// All C-contiguous with one float dtype. Returns a new (m, n) array.
#[pyfunction]
#[pyo3(signature = (x, weight, bias=None, activation="none"))]
fn linear<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    weight: &Bound<'py, PyAny>,
    bias: Option<&Bound<'py, PyAny>>,
    activation: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let act = parse_act("linear", activation)?;
    Ok(with_float!(arr("linear", "x", x)?, |x| linear_t(
        py, &x, weight, bias, act
    )?
    .into_any()))
}

#[allow(clippy::too_many_arguments)]
fn linear_backward_t<'py, T: Float + Element>(
    py: Python<'py>,
    x: &Bound<'py, PyArrayDyn<T>>,
    w: &Bound<'py, PyAny>,
    y: &Bound<'py, PyAny>,
    gy: &Bound<'py, PyAny>,
    act: Activation,
    need_dx: bool,
    need_db: bool,
) -> PyResult<Bound<'py, PyTuple>> {
    const OP: &str = "linear_backward";
    let w = same::<T>(OP, "weight", w)?;
    let y = same::<T>(OP, "y", y)?;
    let gy = same::<T>(OP, "gy", gy)?;
    let (m, k, n) = dims(OP, x.shape(), w.shape())?;
    check_shape(OP, "gy", &[m, n], gy.shape())?;
    if act != Activation::None {
        check_shape(OP, "y", &[m, n], y.shape())?;
    }
    let xr = x.try_readonly()?;
    let wr = w.try_readonly()?;
    let yr = y.try_readonly()?;
    let gyr = gy.try_readonly()?;
    let xs = xr.as_slice().map_err(|_| not_contiguous(OP, "x"))?;
    let wsl = wr.as_slice().map_err(|_| not_contiguous(OP, "weight"))?;
    let ys = yr.as_slice().map_err(|_| not_contiguous(OP, "y"))?;
    let gys = gyr.as_slice().map_err(|_| not_contiguous(OP, "gy"))?;
    let dx = need_dx.then(|| new_array::<T>(py, &[m, k]));
    let dw = new_array::<T>(py, &[n, k]);
    let db = need_db.then(|| new_array::<T>(py, &[n]));
    {
        let mut dxw = match &dx {
            Some(a) => Some(a.try_readwrite()?),
            None => None,
        };
        let mut dww = dw.try_readwrite()?;
        let mut dbw = match &db {
            Some(a) => Some(a.try_readwrite()?),
            None => None,
        };
        let dxs = match dxw.as_mut() {
            Some(a) => Some(a.as_slice_mut().map_err(|_| not_contiguous(OP, "dx"))?),
            None => None,
        };
        let dws = dww.as_slice_mut().map_err(|_| not_contiguous(OP, "dw"))?;
        let dbs = match dbw.as_mut() {
            Some(a) => Some(a.as_slice_mut().map_err(|_| not_contiguous(OP, "db"))?),
            None => None,
        };
        run(py, OP, || {
            klinear::backward(xs, wsl, ys, gys, dxs, dws, dbs, m, k, n, act)
        })?;
    }
    let none = || py.None().into_bound(py);
    PyTuple::new(
        py,
        [
            dx.map_or_else(none, |a| a.into_any()),
            dw.into_any(),
            db.map_or_else(none, |a| a.into_any()),
        ],
    )
}

/// linear_backward(x, weight, y, gy, activation="none", need_dx=True, need_db=True)
/// -> (dx or None, dweight, dbias or None) for y = linear(x, weight, bias, activation).
///
/// y is only read when activation is not none (pass any array of the dtype then).
#[pyfunction]
#[pyo3(signature = (x, weight, y, gy, activation="none", need_dx=true, need_db=true))]
#[allow(clippy::too_many_arguments)]
fn linear_backward<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    weight: &Bound<'py, PyAny>,
    y: &Bound<'py, PyAny>,
    gy: &Bound<'py, PyAny>,
    activation: &str,
    need_dx: bool,
    need_db: bool,
) -> PyResult<Bound<'py, PyTuple>> {
    const OP: &str = "linear_backward";
    let act = parse_act(OP, activation)?;
    with_float!(arr(OP, "x", x)?, |x| linear_backward_t(
        py, &x, weight, y, gy, act, need_dx, need_db
    ))
}

/// Adds this module's functions to `ferrograd._native`.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(linear, m)?)?;
    m.add_function(wrap_pyfunction!(linear_backward, m)?)?;
    Ok(())
}
