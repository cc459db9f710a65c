//! `ferrograd._native`: the thin PyO3 layer over `ferrograd-kernels`.
//!
//! It does no arithmetic. Each function checks dtypes, shapes and contiguity, borrows the
//! NumPy buffers as slices (no copy), releases the GIL and calls one kernel. Kernel errors
//! become `ValueError`; a panic that still slips through becomes `RuntimeError`, never an
//! abort. Inputs must be C-contiguous (the Python layer makes them so); outputs are new
//! arrays unless the function says it writes in place.

mod common;
mod conv;
mod nn;
mod optim;
mod pool;
mod rl;
mod rnn;
mod unsupervised;

use common::{arr, check_shape, kernel_err, new_array, not_contiguous, run, same, with_float, Arr};
use ferrograd_kernels::{
    elementwise, gemm as kgemm, reduce as kreduce, softmax as ksoftmax, threading, Float,
};
use numpy::{Element, PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

// ---------------------------------------------------------------- threads and CPU

/// The SIMD instruction set the kernels chose at run time.
#[pyfunction]
fn simd_level() -> &'static str {
    ferrograd_kernels::simd::level_name()
}

/// Sets the number of threads the kernels use (at least 1).
#[pyfunction]
fn set_num_threads(n: i64) -> PyResult<()> {
    if n < 1 {
        return Err(PyValueError::new_err(format!(
            "set_num_threads: expected a positive number of threads, given {n}"
        )));
    }
    threading::set_num_threads(n as usize).map_err(kernel_err)
}

/// The number of threads the kernels use.
#[pyfunction]
fn get_num_threads() -> usize {
    threading::get_num_threads()
}

// ---------------------------------------------------------------- gemm

#[allow(clippy::too_many_arguments)]
fn gemm_t<T: Float + Element>(
    py: Python<'_>,
    transa: bool,
    transb: bool,
    alpha: f64,
    a: &Bound<'_, PyArrayDyn<T>>,
    b: &Bound<'_, PyAny>,
    beta: f64,
    c: &Bound<'_, PyAny>,
) -> PyResult<()> {
    const OP: &str = "gemm";
    let b = same::<T>(OP, "b", b)?;
    let c = same::<T>(OP, "c", c)?;
    let nd_ok = |d: usize| d == 2 || d == 3;
    if !nd_ok(a.ndim()) || !nd_ok(b.ndim()) || !nd_ok(c.ndim()) {
        return Err(PyValueError::new_err(format!(
            "{OP}: a, b and c must be 2-D (rows, cols) or 3-D (batch, rows, cols), given shapes \
             {:?}, {:?}, {:?}",
            a.shape(),
            b.shape(),
            c.shape()
        )));
    }
    // A 2-D array is a batch of one.
    let as3 = |s: &[usize]| -> Vec<usize> {
        if s.len() == 2 {
            vec![1, s[0], s[1]]
        } else {
            s.to_vec()
        }
    };
    let (sa, sb, sc) = (as3(a.shape()), as3(b.shape()), as3(c.shape()));
    let (batch, m, n) = (sc[0], sc[1], sc[2]);
    let (am, ak) = if transa {
        (sa[2], sa[1])
    } else {
        (sa[1], sa[2])
    };
    let (bk, bn) = if transb {
        (sb[2], sb[1])
    } else {
        (sb[1], sb[2])
    };
    if am != m || bn != n || ak != bk {
        return Err(PyValueError::new_err(format!(
            "{OP}: shapes do not fit: op(a) is ({am}, {ak}) of a {sa:?} (transa={transa}), \
             op(b) is ({bk}, {bn}) of b {sb:?} (transb={transb}), c is {sc:?}"
        )));
    }
    for (name, bt) in [("a", sa[0]), ("b", sb[0])] {
        if bt != batch && bt != 1 {
            return Err(PyValueError::new_err(format!(
                "{OP}: {name} has batch {bt}; expected 1 or the batch of c ({batch})"
            )));
        }
    }
    let k = ak;
    let ar = a.try_readonly()?;
    let br = b.try_readonly()?;
    let mut cw = c.try_readwrite()?;
    let asl = ar.as_slice().map_err(|_| not_contiguous(OP, "a"))?;
    let bsl = br.as_slice().map_err(|_| not_contiguous(OP, "b"))?;
    let csl = cw.as_slice_mut().map_err(|_| not_contiguous(OP, "c"))?;
    let lda = sa[2];
    let ldb = sb[2];
    let stride_a = if sa[0] == 1 { 0 } else { sa[1] * sa[2] };
    let stride_b = if sb[0] == 1 { 0 } else { sb[1] * sb[2] };
    let (alpha, beta) = (T::from_f64(alpha), T::from_f64(beta));
    run(py, OP, || {
        kgemm::gemm_batched(
            batch,
            transa,
            transb,
            m,
            n,
            k,
            alpha,
            asl,
            lda,
            stride_a,
            bsl,
            ldb,
            stride_b,
            beta,
            csl,
            n,
            m * n,
        )
    })
}

/// gemm(transa, transb, alpha, a, b, beta, c): c = alpha * op(a) @ op(b) + beta * c, in place.
///
/// a: (batch or 1, m, k) or, transposed, (batch or 1, k, m); b: (batch or 1, k, n) or
/// (batch or 1, n, k); c: (batch, m, n). A 2-D array stands for a batch of one. All
/// C-contiguous with one float dtype.
#[pyfunction]
#[pyo3(signature = (transa, transb, alpha, a, b, beta, c))]
#[allow(clippy::too_many_arguments)]
fn gemm(
    py: Python<'_>,
    transa: bool,
    transb: bool,
    alpha: f64,
    a: &Bound<'_, PyAny>,
    b: &Bound<'_, PyAny>,
    beta: f64,
    c: &Bound<'_, PyAny>,
) -> PyResult<()> {
    match arr("gemm", "a", a)? {
        Arr::F32(a) => gemm_t::<f32>(py, transa, transb, alpha, &a, b, beta, c),
        Arr::F64(a) => gemm_t::<f64>(py, transa, transb, alpha, &a, b, beta, c),
    }
}

/// A 2-D array as (row-major buffer, transposed?, rows, cols of op(x)): a C-contiguous
/// array is itself; an F-contiguous one is the transpose of a C-contiguous one.
fn mat_view<'a, T: Float + Element>(
    op: &str,
    name: &str,
    x: &'a numpy::PyReadonlyArrayDyn<'_, T>,
    trans: bool,
) -> PyResult<(&'a [T], bool, usize, usize, usize)> {
    let sh = x.shape();
    let (r, c) = (sh[0], sh[1]);
    if x.is_c_contiguous() {
        let s = x.as_slice().map_err(|_| not_contiguous(op, name))?;
        let (rows, cols) = if trans { (c, r) } else { (r, c) };
        return Ok((s, trans, rows, cols, c));
    }
    if x.is_fortran_contiguous() {
        // Memory holds x^T (c x r) row-major: op(x) = x^T^T = x when trans is false.
        let s = x.as_slice().map_err(|_| not_contiguous(op, name))?;
        let (rows, cols) = if trans { (c, r) } else { (r, c) };
        return Ok((s, !trans, rows, cols, r));
    }
    Err(not_contiguous(op, name))
}

fn mm_t<'py, T: Float + Element>(
    py: Python<'py>,
    a: &Bound<'py, PyArrayDyn<T>>,
    b: &Bound<'py, PyAny>,
    transa: bool,
    transb: bool,
) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    const OP: &str = "mm";
    let b = same::<T>(OP, "b", b)?;
    if a.ndim() != 2 || b.ndim() != 2 {
        return Err(PyValueError::new_err(format!(
            "{OP}: a and b must be 2-D, given shapes {:?} and {:?}",
            a.shape(),
            b.shape()
        )));
    }
    let ar = a.try_readonly()?;
    let br = b.try_readonly()?;
    let (asl, ta, m, ka, lda) = mat_view(OP, "a", &ar, transa)?;
    let (bsl, tb, kb, n, ldb) = mat_view(OP, "b", &br, transb)?;
    if ka != kb {
        return Err(PyValueError::new_err(format!(
            "{OP}: op(a) is ({m}, {ka}) but op(b) is ({kb}, {n}) (shapes {:?} and {:?})",
            a.shape(),
            b.shape()
        )));
    }
    let c = new_array::<T>(py, &[m, n]);
    {
        let mut cw = c.try_readwrite()?;
        let csl = cw.as_slice_mut().map_err(|_| not_contiguous(OP, "c"))?;
        let (one, zero) = (T::ONE, T::ZERO);
        if m * n * ka < 32 * 32 * 32 {
            // Small: the GIL round trip would cost more than the product.
            kgemm::gemm(ta, tb, m, n, ka, one, asl, lda, bsl, ldb, zero, csl, n)
                .map_err(kernel_err)?;
        } else {
            run(py, OP, || {
                kgemm::gemm(ta, tb, m, n, ka, one, asl, lda, bsl, ldb, zero, csl, n)
            })?;
        }
    }
    Ok(c)
}

/// mm(a, b, transa=False, transb=False) -> op(a) @ op(b) as a new C-contiguous array.
///
/// a and b are 2-D with one float dtype, each C- or F-contiguous (an F-contiguous array is
/// read as the transpose of its C-contiguous memory, without a copy).
#[pyfunction]
#[pyo3(signature = (a, b, transa=false, transb=false))]
fn mm<'py>(
    py: Python<'py>,
    a: &Bound<'py, PyAny>,
    b: &Bound<'py, PyAny>,
    transa: bool,
    transb: bool,
) -> PyResult<Bound<'py, PyAny>> {
    Ok(with_float!(arr("mm", "a", a)?, |a| mm_t(
        py, &a, b, transa, transb
    )?
    .into_any()))
}

// ---------------------------------------------------------------- element-wise

fn parse_unary(op: &str, p1: f64, p2: f64) -> PyResult<elementwise::Unary> {
    use elementwise::Unary;
    Ok(match op {
        "relu" => Unary::Relu,
        "leaky_relu" => Unary::LeakyRelu { negative_slope: p1 },
        "sigmoid" => Unary::Sigmoid,
        "tanh" => Unary::Tanh,
        "softsign" => Unary::Softsign,
        "softplus" => Unary::Softplus {
            beta: p1,
            threshold: p2,
        },
        "exp" => Unary::Exp,
        "log" => Unary::Log,
        "elu" => Unary::Elu { alpha: p1 },
        "gelu" => Unary::Gelu,
        "gelu_tanh" => Unary::GeluTanh,
        _ => {
            return Err(PyValueError::new_err(format!(
                "unary: unknown op {op:?}; expected one of relu, leaky_relu, sigmoid, tanh, \
                 softsign, softplus, exp, log, elu, gelu, gelu_tanh"
            )))
        }
    })
}

fn unary_t<'py, T: Float + Element>(
    py: Python<'py>,
    op: elementwise::Unary,
    x: &Bound<'py, PyArrayDyn<T>>,
) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    let xr = x.try_readonly()?;
    let xs = xr.as_slice().map_err(|_| not_contiguous("unary", "x"))?;
    let y = new_array::<T>(py, x.shape());
    {
        let mut yw = y.try_readwrite()?;
        let ys = yw
            .as_slice_mut()
            .map_err(|_| not_contiguous("unary", "y"))?;
        run(py, "unary", || elementwise::forward(op, xs, ys))?;
    }
    Ok(y)
}

/// unary(op, x, p1=0, p2=0) -> f(x) for op in relu, leaky_relu (p1 = negative slope),
/// sigmoid, tanh, softsign, softplus (p1 = beta, p2 = threshold), exp, log.
#[pyfunction]
#[pyo3(signature = (op, x, p1=0.0, p2=0.0))]
fn unary<'py>(
    py: Python<'py>,
    op: &str,
    x: &Bound<'py, PyAny>,
    p1: f64,
    p2: f64,
) -> PyResult<Bound<'py, PyAny>> {
    let u = parse_unary(op, p1, p2)?;
    Ok(with_float!(arr(op, "x", x)?, |x| unary_t(py, u, &x)?.into_any()))
}

fn unary_backward_t<'py, T: Float + Element>(
    py: Python<'py>,
    op: elementwise::Unary,
    x: &Bound<'py, PyArrayDyn<T>>,
    y: &Bound<'py, PyAny>,
    gy: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    const OP: &str = "unary_backward";
    let y = same::<T>(OP, "y", y)?;
    let gy = same::<T>(OP, "gy", gy)?;
    check_shape(OP, "y", x.shape(), y.shape())?;
    check_shape(OP, "gy", x.shape(), gy.shape())?;
    let xr = x.try_readonly()?;
    let yr = y.try_readonly()?;
    let gyr = gy.try_readonly()?;
    let xs = xr.as_slice().map_err(|_| not_contiguous(OP, "x"))?;
    let ys = yr.as_slice().map_err(|_| not_contiguous(OP, "y"))?;
    let gys = gyr.as_slice().map_err(|_| not_contiguous(OP, "gy"))?;
    let gx = new_array::<T>(py, x.shape());
    {
        let mut gw = gx.try_readwrite()?;
        let gs = gw.as_slice_mut().map_err(|_| not_contiguous(OP, "gx"))?;
        run(py, OP, || elementwise::backward(op, xs, ys, gys, gs))?;
    }
    Ok(gx)
}

/// unary_backward(op, x, y, gy, p1=0, p2=0) -> gy * f'(x), with y = f(x).
#[pyfunction]
#[pyo3(signature = (op, x, y, gy, p1=0.0, p2=0.0))]
fn unary_backward<'py>(
    py: Python<'py>,
    op: &str,
    x: &Bound<'py, PyAny>,
    y: &Bound<'py, PyAny>,
    gy: &Bound<'py, PyAny>,
    p1: f64,
    p2: f64,
) -> PyResult<Bound<'py, PyAny>> {
    let u = parse_unary(op, p1, p2)?;
    Ok(with_float!(arr(op, "x", x)?, |x| unary_backward_t(
        py, u, &x, y, gy
    )?
    .into_any()))
}

// ---------------------------------------------------------------- softmax

fn rows_cols(op: &str, shape: &[usize]) -> PyResult<(usize, usize)> {
    match shape.split_last() {
        Some((&cols, rest)) => Ok((rest.iter().product(), cols)),
        None => Err(PyValueError::new_err(format!(
            "{op}: expected an array with at least 1 dimension, given a 0-d array"
        ))),
    }
}

fn softmax_t<'py, T: Float + Element>(
    py: Python<'py>,
    x: &Bound<'py, PyArrayDyn<T>>,
    log: bool,
) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    const OP: &str = "softmax";
    let (rows, cols) = rows_cols(OP, x.shape())?;
    let xr = x.try_readonly()?;
    let xs = xr.as_slice().map_err(|_| not_contiguous(OP, "x"))?;
    let y = new_array::<T>(py, x.shape());
    {
        let mut yw = y.try_readwrite()?;
        let ys = yw.as_slice_mut().map_err(|_| not_contiguous(OP, "y"))?;
        run(py, OP, || ksoftmax::forward(xs, ys, rows, cols, log))?;
    }
    Ok(y)
}

/// softmax(x, log=False) -> softmax (or log_softmax) of x along its last axis.
#[pyfunction]
#[pyo3(signature = (x, log=false))]
fn softmax<'py>(py: Python<'py>, x: &Bound<'py, PyAny>, log: bool) -> PyResult<Bound<'py, PyAny>> {
    Ok(with_float!(arr("softmax", "x", x)?, |x| softmax_t(
        py, &x, log
    )?
    .into_any()))
}

fn softmax_backward_t<'py, T: Float + Element>(
    py: Python<'py>,
    y: &Bound<'py, PyArrayDyn<T>>,
    gy: &Bound<'py, PyAny>,
    log: bool,
) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    const OP: &str = "softmax_backward";
    let gy = same::<T>(OP, "gy", gy)?;
    check_shape(OP, "gy", y.shape(), gy.shape())?;
    let (rows, cols) = rows_cols(OP, y.shape())?;
    let yr = y.try_readonly()?;
    let gyr = gy.try_readonly()?;
    let ys = yr.as_slice().map_err(|_| not_contiguous(OP, "y"))?;
    let gys = gyr.as_slice().map_err(|_| not_contiguous(OP, "gy"))?;
    let gx = new_array::<T>(py, y.shape());
    {
        let mut gw = gx.try_readwrite()?;
        let gs = gw.as_slice_mut().map_err(|_| not_contiguous(OP, "gx"))?;
        run(py, OP, || ksoftmax::backward(ys, gys, gs, rows, cols, log))?;
    }
    Ok(gx)
}

/// softmax_backward(y, gy, log=False) -> gradient of softmax (log_softmax) given its output y.
#[pyfunction]
#[pyo3(signature = (y, gy, log=false))]
fn softmax_backward<'py>(
    py: Python<'py>,
    y: &Bound<'py, PyAny>,
    gy: &Bound<'py, PyAny>,
    log: bool,
) -> PyResult<Bound<'py, PyAny>> {
    Ok(with_float!(arr("softmax_backward", "y", y)?, |y| {
        softmax_backward_t(py, &y, gy, log)?.into_any()
    }))
}

// ---------------------------------------------------------------- reductions

/// (outer, n, inner) and the output shape of a reduction of `shape` along `axis`.
fn split_axis(op: &str, shape: &[usize], axis: i64) -> PyResult<(usize, usize, usize, Vec<usize>)> {
    let nd = shape.len() as i64;
    let ax = if axis < 0 { axis + nd } else { axis };
    if nd == 0 || ax < 0 || ax >= nd {
        return Err(PyValueError::new_err(format!(
            "{op}: axis {axis} is out of range for an array of {nd} dimension(s)"
        )));
    }
    let ax = ax as usize;
    let outer = shape[..ax].iter().product();
    let inner = shape[ax + 1..].iter().product();
    let mut out_shape = shape.to_vec();
    out_shape.remove(ax);
    Ok((outer, shape[ax], inner, out_shape))
}

fn reduce_t<'py, T: Float + Element>(
    py: Python<'py>,
    op: &str,
    x: &Bound<'py, PyArrayDyn<T>>,
    axis: i64,
) -> PyResult<Bound<'py, PyAny>> {
    let (outer, n, inner, out_shape) = split_axis(op, x.shape(), axis)?;
    let xr = x.try_readonly()?;
    let xs = xr.as_slice().map_err(|_| not_contiguous(op, "x"))?;
    let out = new_array::<T>(py, &out_shape);
    let mut ow = out.try_readwrite()?;
    let os = ow.as_slice_mut().map_err(|_| not_contiguous(op, "out"))?;
    match op {
        "sum" => run(py, op, || kreduce::sum(xs, outer, n, inner, os))?,
        "mean" => run(py, op, || kreduce::mean(xs, outer, n, inner, os))?,
        "max" | "min" => {
            if n == 0 {
                return Err(PyValueError::new_err(format!(
                    "{op}: cannot reduce an empty axis (axis {axis} of shape {:?} has size 0)",
                    x.shape()
                )));
            }
            let idx = new_array::<i64>(py, &out_shape);
            {
                let mut iw = idx.try_readwrite()?;
                let is = iw.as_slice_mut().map_err(|_| not_contiguous(op, "idx"))?;
                if op == "max" {
                    run(py, op, || kreduce::max(xs, outer, n, inner, os, is))?;
                } else {
                    run(py, op, || kreduce::min(xs, outer, n, inner, os, is))?;
                }
            }
            drop(ow);
            return Ok(PyTuple::new(py, [out.into_any(), idx.into_any()])?.into_any());
        }
        _ => {
            return Err(PyValueError::new_err(format!(
                "reduce: unknown op {op:?}; expected sum, mean, max or min"
            )))
        }
    }
    drop(ow);
    Ok(out.into_any())
}

/// reduce(op, x, axis) along one axis: 'sum' and 'mean' return an array; 'max' and 'min'
/// return (values, int64 indices). The axis is removed from the shape.
#[pyfunction]
fn reduce<'py>(
    py: Python<'py>,
    op: &str,
    x: &Bound<'py, PyAny>,
    axis: i64,
) -> PyResult<Bound<'py, PyAny>> {
    with_float!(arr(op, "x", x)?, |x| reduce_t(py, op, &x, axis))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(simd_level, m)?)?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(gemm, m)?)?;
    m.add_function(wrap_pyfunction!(mm, m)?)?;
    m.add_function(wrap_pyfunction!(unary, m)?)?;
    m.add_function(wrap_pyfunction!(unary_backward, m)?)?;
    m.add_function(wrap_pyfunction!(softmax, m)?)?;
    m.add_function(wrap_pyfunction!(softmax_backward, m)?)?;
    m.add_function(wrap_pyfunction!(reduce, m)?)?;
    nn::register(m)?;
    optim::register(m)?;
    conv::register(m)?;
    pool::register(m)?;
    rnn::register(m)?;
    unsupervised::register(m)?;
    rl::register(m)?;
    Ok(())
}
