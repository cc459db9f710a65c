//! Helpers shared by every binding module: dtype dispatch, contiguity and shape checks,
//! output allocation, and running a kernel with the GIL released and panics caught.

use std::panic::{catch_unwind, AssertUnwindSafe};

use ferrograd_kernels::KernelError;
use numpy::{Element, PyArrayDyn};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;

pub(crate) fn kernel_err(e: KernelError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// Runs a kernel with the GIL released, turning a panic into a Python exception.
pub(crate) fn run<R: Send, F>(py: Python<'_>, op: &str, f: F) -> PyResult<R>
where
    F: FnOnce() -> Result<R, KernelError> + Send,
{
    let res = py.detach(|| catch_unwind(AssertUnwindSafe(f)));
    match res {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(kernel_err(e)),
        Err(_) => Err(PyRuntimeError::new_err(format!(
            "{op}: internal error in a ferrograd kernel (a Rust panic was caught); please report it"
        ))),
    }
}

/// A NumPy array of one of the two supported dtypes.
pub(crate) enum Arr<'py> {
    F32(Bound<'py, PyArrayDyn<f32>>),
    F64(Bound<'py, PyArrayDyn<f64>>),
}

/// The one dtype dispatch of the bindings: evaluates `body` with `x` bound to the float32
/// or the float64 array behind an [`Arr`], so a generic `fn f<T: Float>` is written once
/// and instantiated for both (`with_float!(arr(OP, "x", x)?, |x| f(py, &x))`).
macro_rules! with_float {
    ($arr:expr, |$x:ident| $body:expr) => {
        match $arr {
            $crate::common::Arr::F32($x) => $body,
            $crate::common::Arr::F64($x) => $body,
        }
    };
}
pub(crate) use with_float;

pub(crate) fn describe(x: &Bound<'_, PyAny>) -> String {
    let ty = match x.get_type().name() {
        Ok(n) => n.to_string(),
        Err(_) => "unknown".to_string(),
    };
    match x.getattr("dtype") {
        Ok(d) if ty == "ndarray" => format!("an array of dtype {d}"),
        Ok(d) => format!("an object of type {ty} (dtype {d})"),
        Err(_) => format!("an object of type {ty}"),
    }
}

pub(crate) fn arr<'py>(op: &str, name: &str, x: &Bound<'py, PyAny>) -> PyResult<Arr<'py>> {
    if let Ok(a) = x.cast::<PyArrayDyn<f32>>() {
        return Ok(Arr::F32(a.clone()));
    }
    if let Ok(a) = x.cast::<PyArrayDyn<f64>>() {
        return Ok(Arr::F64(a.clone()));
    }
    Err(PyTypeError::new_err(format!(
        "{op}: {name} must be a float32 or float64 NumPy array, given {}",
        describe(x)
    )))
}

/// The same-dtype view of `x` as `T`, or a TypeError naming both dtypes.
pub(crate) fn same<'py, T: Element>(
    op: &str,
    name: &str,
    x: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    match x.cast::<PyArrayDyn<T>>() {
        Ok(a) => Ok(a.clone()),
        Err(_) => Err(PyTypeError::new_err(format!(
            "{op}: {name} must have the same dtype as the first array ({}), given {}",
            std::any::type_name::<T>(),
            describe(x)
        ))),
    }
}

pub(crate) fn not_contiguous(op: &str, name: &str) -> PyErr {
    PyValueError::new_err(format!(
        "{op}: {name} must be a C-contiguous array (call numpy.ascontiguousarray first)"
    ))
}

pub(crate) fn check_shape(op: &str, name: &str, want: &[usize], got: &[usize]) -> PyResult<()> {
    if want != got {
        return Err(PyValueError::new_err(format!(
            "{op}: {name} must have shape {want:?}, given {got:?}"
        )));
    }
    Ok(())
}

/// A new, uninitialised C-contiguous array of `dims`.
pub(crate) fn new_array<'py, T: Element>(
    py: Python<'py>,
    dims: &[usize],
) -> Bound<'py, PyArrayDyn<T>> {
    // SAFETY: the array is created uninitialised; every caller hands all of its
    // elements to a kernel that writes each of them before the array is returned to
    // Python (kernels write every output element or fail, and on failure the array is
    // dropped unseen).
    unsafe { PyArrayDyn::<T>::new(py, dims.to_vec(), false) }
}
