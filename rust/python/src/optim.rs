//! Bindings of the optimizer update kernels (`ferrograd_kernels::optim`).
//!
//! Each `*_step` function updates every parameter of one param group in place: it takes
//! Python lists of NumPy arrays (params, grads, state buffers), all of the dtype of
//! `params[0]` (float32 or float64), C-contiguous, each state buffer and gradient of its
//! parameter's shape; params and state buffers must be writeable and no array may share
//! memory with another one of the call (NumPy's borrow tracking reports it). Per-tensor
//! step counts arrive as lists of floats (the count after this step's increment). The
//! GIL is released during the update.

use crate::common::{arr, check_shape, not_contiguous, run, same, Arr};
use ferrograd_kernels::optim as kopt;
use ferrograd_kernels::Float;
use numpy::{
    Element, PyArrayMethods, PyReadonlyArrayDyn, PyReadwriteArrayDyn, PyUntypedArrayMethods,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// Borrows `list[i]` for writing, as dtype `T`, with the shape `shapes[i]` when given.
fn writable<'py, T: Element>(
    op: &str,
    name: &str,
    list: &[Bound<'py, PyAny>],
    shapes: Option<&[Vec<usize>]>,
) -> PyResult<Vec<PyReadwriteArrayDyn<'py, T>>> {
    let mut out = Vec::with_capacity(list.len());
    for (i, x) in list.iter().enumerate() {
        let what = format!("{name}[{i}]");
        let a = same::<T>(op, &what, x)?;
        if let Some(sh) = shapes {
            check_shape(op, &what, &sh[i], a.shape())?;
        }
        if !a.is_c_contiguous() {
            return Err(not_contiguous(op, &what));
        }
        let w = a.try_readwrite().map_err(|e| {
            PyValueError::new_err(format!(
                "{op}: {what} must be a writeable array that shares no memory with another \
                 array of this call ({e})"
            ))
        })?;
        out.push(w);
    }
    Ok(out)
}

/// Borrows `list[i]` for reading, as dtype `T`, with the shape `shapes[i]`.
fn readable<'py, T: Element>(
    op: &str,
    name: &str,
    list: &[Bound<'py, PyAny>],
    shapes: &[Vec<usize>],
) -> PyResult<Vec<PyReadonlyArrayDyn<'py, T>>> {
    let mut out = Vec::with_capacity(list.len());
    for (i, x) in list.iter().enumerate() {
        let what = format!("{name}[{i}]");
        let a = same::<T>(op, &what, x)?;
        check_shape(op, &what, &shapes[i], a.shape())?;
        if !a.is_c_contiguous() {
            return Err(not_contiguous(op, &what));
        }
        let r = a.try_readonly().map_err(|e| {
            PyValueError::new_err(format!(
                "{op}: {what} shares memory with a parameter or state buffer of this call ({e})"
            ))
        })?;
        out.push(r);
    }
    Ok(out)
}

fn check_count(op: &str, name: &str, n: usize, given: usize, expected: usize) -> PyResult<()> {
    if given != expected {
        return Err(PyValueError::new_err(format!(
            "{op}: {n} params but {given} {name} (expected {expected})"
        )));
    }
    Ok(())
}

/// The borrowed arrays of one call: params, grads and up to three state lists.
struct Borrowed<'py, T: Element> {
    params: Vec<PyReadwriteArrayDyn<'py, T>>,
    grads: Vec<PyReadonlyArrayDyn<'py, T>>,
    states: Vec<Vec<PyReadwriteArrayDyn<'py, T>>>,
}

fn borrow_all<'py, T: Element>(
    op: &str,
    params: &[Bound<'py, PyAny>],
    grads: &[Bound<'py, PyAny>],
    states: &[(&str, &[Bound<'py, PyAny>], bool)],
) -> PyResult<Borrowed<'py, T>> {
    let n = params.len();
    check_count(op, "grads", n, grads.len(), n)?;
    for (name, list, used) in states {
        check_count(op, name, n, list.len(), if *used { n } else { 0 })?;
    }
    let p = writable::<T>(op, "params", params, None)?;
    let shapes: Vec<Vec<usize>> = p.iter().map(|a| a.shape().to_vec()).collect();
    let mut st = Vec::with_capacity(states.len());
    for (name, list, _) in states {
        st.push(writable::<T>(op, name, list, Some(&shapes))?);
    }
    let g = readable::<T>(op, "grads", grads, &shapes)?;
    Ok(Borrowed {
        params: p,
        grads: g,
        states: st,
    })
}

/// The slices of a list of writeable arrays (contiguity was checked when borrowing).
fn slices_mut<'a, T: Element>(
    op: &str,
    v: &'a mut [PyReadwriteArrayDyn<'_, T>],
) -> PyResult<Vec<&'a mut [T]>> {
    v.iter_mut()
        .map(|a| a.as_slice_mut().map_err(|_| not_contiguous(op, "an array")))
        .collect()
}

fn slices<'a, T: Element>(op: &str, v: &'a [PyReadonlyArrayDyn<'_, T>]) -> PyResult<Vec<&'a [T]>> {
    v.iter()
        .map(|a| a.as_slice().map_err(|_| not_contiguous(op, "an array")))
        .collect()
}

/// The float dtype of `params[0]` (params must not be empty).
fn first<'py>(op: &str, params: &[Bound<'py, PyAny>]) -> PyResult<Arr<'py>> {
    arr(op, "params[0]", &params[0])
}

fn finite(op: &str, name: &str, v: f64) -> PyResult<()> {
    if !v.is_finite() {
        return Err(PyValueError::new_err(format!(
            "{op}: {name} must be finite, given {v}"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------- SGD

fn sgd_t<T: Float + Element>(
    py: Python<'_>,
    params: &[Bound<'_, PyAny>],
    grads: &[Bound<'_, PyAny>],
    bufs: &[Bound<'_, PyAny>],
    fresh: &[bool],
    h: &kopt::Sgd,
) -> PyResult<()> {
    const OP: &str = "sgd_step";
    let mom = h.momentum != 0.0;
    let mut b = borrow_all::<T>(OP, params, grads, &[("momentum_buffers", bufs, mom)])?;
    let mut ps = slices_mut(OP, &mut b.params)?;
    let gs = slices(OP, &b.grads)?;
    let mut bs = slices_mut(OP, &mut b.states[0])?;
    run(py, OP, || kopt::sgd(&mut ps, &gs, &mut bs, fresh, h))
}

/// sgd_step(params, grads, momentum_buffers, fresh, lr, momentum, dampening,
/// weight_decay, nesterov, maximize): one SGD step of a param group, in place.
///
/// `momentum_buffers` is empty when momentum == 0, else one buffer per param; `fresh[i]`
/// marks a new buffer (set to the gradient rather than decayed).
#[pyfunction]
#[pyo3(signature = (params, grads, momentum_buffers, fresh, lr, momentum, dampening,
    weight_decay, nesterov, maximize))]
#[allow(clippy::too_many_arguments)]
fn sgd_step(
    py: Python<'_>,
    params: Vec<Bound<'_, PyAny>>,
    grads: Vec<Bound<'_, PyAny>>,
    momentum_buffers: Vec<Bound<'_, PyAny>>,
    fresh: Vec<bool>,
    lr: f64,
    momentum: f64,
    dampening: f64,
    weight_decay: f64,
    nesterov: bool,
    maximize: bool,
) -> PyResult<()> {
    const OP: &str = "sgd_step";
    for (n, v) in [
        ("lr", lr),
        ("momentum", momentum),
        ("dampening", dampening),
        ("weight_decay", weight_decay),
    ] {
        finite(OP, n, v)?;
    }
    let mom = momentum != 0.0;
    check_count(
        OP,
        "fresh flags",
        params.len(),
        fresh.len(),
        if mom { params.len() } else { 0 },
    )?;
    if params.is_empty() {
        return Ok(());
    }
    let h = kopt::Sgd {
        lr,
        momentum,
        dampening,
        weight_decay,
        nesterov,
        maximize,
    };
    match first(OP, &params)? {
        Arr::F32(_) => sgd_t::<f32>(py, &params, &grads, &momentum_buffers, &fresh, &h),
        Arr::F64(_) => sgd_t::<f64>(py, &params, &grads, &momentum_buffers, &fresh, &h),
    }
}

// ---------------------------------------------------------------- Adagrad

fn check_steps(op: &str, n: usize, steps: &[f64]) -> PyResult<()> {
    check_count(op, "step counts", n, steps.len(), n)?;
    if let Some((i, s)) = steps
        .iter()
        .enumerate()
        .find(|(_, s)| !(s.is_finite() && **s >= 1.0))
    {
        return Err(PyValueError::new_err(format!(
            "{op}: step counts must be finite and >= 1, steps[{i}] = {s}"
        )));
    }
    Ok(())
}

fn adagrad_t<T: Float + Element>(
    py: Python<'_>,
    params: &[Bound<'_, PyAny>],
    grads: &[Bound<'_, PyAny>],
    sums: &[Bound<'_, PyAny>],
    steps: &[f64],
    h: &kopt::Adagrad,
) -> PyResult<()> {
    const OP: &str = "adagrad_step";
    let mut b = borrow_all::<T>(OP, params, grads, &[("state_sums", sums, true)])?;
    let mut ps = slices_mut(OP, &mut b.params)?;
    let gs = slices(OP, &b.grads)?;
    let mut ss = slices_mut(OP, &mut b.states[0])?;
    run(py, OP, || kopt::adagrad(&mut ps, &gs, &mut ss, steps, h))
}

/// adagrad_step(params, grads, state_sums, steps, lr, lr_decay, weight_decay, eps,
/// maximize): one Adagrad step of a param group, in place.
#[pyfunction]
#[pyo3(signature = (params, grads, state_sums, steps, lr, lr_decay, weight_decay, eps, maximize))]
#[allow(clippy::too_many_arguments)]
fn adagrad_step(
    py: Python<'_>,
    params: Vec<Bound<'_, PyAny>>,
    grads: Vec<Bound<'_, PyAny>>,
    state_sums: Vec<Bound<'_, PyAny>>,
    steps: Vec<f64>,
    lr: f64,
    lr_decay: f64,
    weight_decay: f64,
    eps: f64,
    maximize: bool,
) -> PyResult<()> {
    const OP: &str = "adagrad_step";
    for (n, v) in [
        ("lr", lr),
        ("lr_decay", lr_decay),
        ("weight_decay", weight_decay),
        ("eps", eps),
    ] {
        finite(OP, n, v)?;
    }
    check_steps(OP, params.len(), &steps)?;
    if params.is_empty() {
        return Ok(());
    }
    let h = kopt::Adagrad {
        lr,
        lr_decay,
        weight_decay,
        eps,
        maximize,
    };
    match first(OP, &params)? {
        Arr::F32(_) => adagrad_t::<f32>(py, &params, &grads, &state_sums, &steps, &h),
        Arr::F64(_) => adagrad_t::<f64>(py, &params, &grads, &state_sums, &steps, &h),
    }
}

// ---------------------------------------------------------------- RMSprop

fn rmsprop_t<T: Float + Element>(
    py: Python<'_>,
    params: &[Bound<'_, PyAny>],
    grads: &[Bound<'_, PyAny>],
    lists: [&[Bound<'_, PyAny>]; 3],
    h: &kopt::RmsProp,
) -> PyResult<()> {
    const OP: &str = "rmsprop_step";
    let [sq, mb, ga] = lists;
    let mut b = borrow_all::<T>(
        OP,
        params,
        grads,
        &[
            ("square_avgs", sq, true),
            ("momentum_buffers", mb, h.momentum > 0.0),
            ("grad_avgs", ga, h.centered),
        ],
    )?;
    let mut ps = slices_mut(OP, &mut b.params)?;
    let gs = slices(OP, &b.grads)?;
    let [s0, s1, s2] = &mut b.states[..] else {
        return Err(PyValueError::new_err(format!(
            "{OP}: internal: 3 state lists"
        )));
    };
    let mut sq = slices_mut(OP, s0)?;
    let mut mb = slices_mut(OP, s1)?;
    let mut ga = slices_mut(OP, s2)?;
    run(py, OP, || {
        kopt::rmsprop(&mut ps, &gs, &mut sq, &mut mb, &mut ga, h)
    })
}

/// rmsprop_step(params, grads, square_avgs, momentum_buffers, grad_avgs, lr, alpha, eps,
/// weight_decay, momentum, centered, maximize): one RMSprop step of a param group, in
/// place. `momentum_buffers` is empty unless momentum > 0, `grad_avgs` unless centered.
#[pyfunction]
#[pyo3(signature = (params, grads, square_avgs, momentum_buffers, grad_avgs, lr, alpha, eps,
    weight_decay, momentum, centered, maximize))]
#[allow(clippy::too_many_arguments)]
fn rmsprop_step(
    py: Python<'_>,
    params: Vec<Bound<'_, PyAny>>,
    grads: Vec<Bound<'_, PyAny>>,
    square_avgs: Vec<Bound<'_, PyAny>>,
    momentum_buffers: Vec<Bound<'_, PyAny>>,
    grad_avgs: Vec<Bound<'_, PyAny>>,
    lr: f64,
    alpha: f64,
    eps: f64,
    weight_decay: f64,
    momentum: f64,
    centered: bool,
    maximize: bool,
) -> PyResult<()> {
    const OP: &str = "rmsprop_step";
    for (n, v) in [
        ("lr", lr),
        ("alpha", alpha),
        ("eps", eps),
        ("weight_decay", weight_decay),
        ("momentum", momentum),
    ] {
        finite(OP, n, v)?;
    }
    if params.is_empty() {
        return Ok(());
    }
    let h = kopt::RmsProp {
        lr,
        alpha,
        eps,
        weight_decay,
        momentum,
        centered,
        maximize,
    };
    let lists = [&square_avgs[..], &momentum_buffers[..], &grad_avgs[..]];
    match first(OP, &params)? {
        Arr::F32(_) => rmsprop_t::<f32>(py, &params, &grads, lists, &h),
        Arr::F64(_) => rmsprop_t::<f64>(py, &params, &grads, lists, &h),
    }
}

// ---------------------------------------------------------------- Adadelta

fn adadelta_t<T: Float + Element>(
    py: Python<'_>,
    params: &[Bound<'_, PyAny>],
    grads: &[Bound<'_, PyAny>],
    sq: &[Bound<'_, PyAny>],
    acc: &[Bound<'_, PyAny>],
    h: &kopt::Adadelta,
) -> PyResult<()> {
    const OP: &str = "adadelta_step";
    let mut b = borrow_all::<T>(
        OP,
        params,
        grads,
        &[("square_avgs", sq, true), ("acc_deltas", acc, true)],
    )?;
    let mut ps = slices_mut(OP, &mut b.params)?;
    let gs = slices(OP, &b.grads)?;
    let [s0, s1] = &mut b.states[..] else {
        return Err(PyValueError::new_err(format!(
            "{OP}: internal: 2 state lists"
        )));
    };
    let mut sq = slices_mut(OP, s0)?;
    let mut acc = slices_mut(OP, s1)?;
    run(py, OP, || {
        kopt::adadelta(&mut ps, &gs, &mut sq, &mut acc, h)
    })
}

/// adadelta_step(params, grads, square_avgs, acc_deltas, lr, rho, eps, weight_decay,
/// maximize): one Adadelta step of a param group, in place.
#[pyfunction]
#[pyo3(signature = (params, grads, square_avgs, acc_deltas, lr, rho, eps, weight_decay, maximize))]
#[allow(clippy::too_many_arguments)]
fn adadelta_step(
    py: Python<'_>,
    params: Vec<Bound<'_, PyAny>>,
    grads: Vec<Bound<'_, PyAny>>,
    square_avgs: Vec<Bound<'_, PyAny>>,
    acc_deltas: Vec<Bound<'_, PyAny>>,
    lr: f64,
    rho: f64,
    eps: f64,
    weight_decay: f64,
    maximize: bool,
) -> PyResult<()> {
    const OP: &str = "adadelta_step";
    for (n, v) in [
        ("lr", lr),
        ("rho", rho),
        ("eps", eps),
        ("weight_decay", weight_decay),
    ] {
        finite(OP, n, v)?;
    }
    if params.is_empty() {
        return Ok(());
    }
    let h = kopt::Adadelta {
        lr,
        rho,
        eps,
        weight_decay,
        maximize,
    };
    match first(OP, &params)? {
        Arr::F32(_) => adadelta_t::<f32>(py, &params, &grads, &square_avgs, &acc_deltas, &h),
        Arr::F64(_) => adadelta_t::<f64>(py, &params, &grads, &square_avgs, &acc_deltas, &h),
    }
}

// ---------------------------------------------------------------- Adam / AdamW

fn adam_t<T: Float + Element>(
    py: Python<'_>,
    params: &[Bound<'_, PyAny>],
    grads: &[Bound<'_, PyAny>],
    lists: [&[Bound<'_, PyAny>]; 3],
    steps: &[f64],
    h: &kopt::Adam,
) -> PyResult<()> {
    const OP: &str = "adam_step";
    let [m, v, vmax] = lists;
    let mut b = borrow_all::<T>(
        OP,
        params,
        grads,
        &[
            ("exp_avgs", m, true),
            ("exp_avg_sqs", v, true),
            ("max_exp_avg_sqs", vmax, h.amsgrad),
        ],
    )?;
    let mut ps = slices_mut(OP, &mut b.params)?;
    let gs = slices(OP, &b.grads)?;
    let [s0, s1, s2] = &mut b.states[..] else {
        return Err(PyValueError::new_err(format!(
            "{OP}: internal: 3 state lists"
        )));
    };
    let mut m = slices_mut(OP, s0)?;
    let mut v = slices_mut(OP, s1)?;
    let mut vmax = slices_mut(OP, s2)?;
    run(py, OP, || {
        kopt::adam(&mut ps, &gs, &mut m, &mut v, &mut vmax, steps, h)
    })
}

/// adam_step(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, lr, beta1,
/// beta2, eps, weight_decay, amsgrad, decoupled_weight_decay, maximize): one Adam (AdamW
/// when decoupled_weight_decay) step of a param group, in place. `max_exp_avg_sqs` is empty
/// unless amsgrad.
#[pyfunction]
#[pyo3(signature = (params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, lr, beta1,
    beta2, eps, weight_decay, amsgrad, decoupled_weight_decay, maximize))]
#[allow(clippy::too_many_arguments)]
fn adam_step(
    py: Python<'_>,
    params: Vec<Bound<'_, PyAny>>,
    grads: Vec<Bound<'_, PyAny>>,
    exp_avgs: Vec<Bound<'_, PyAny>>,
    exp_avg_sqs: Vec<Bound<'_, PyAny>>,
    max_exp_avg_sqs: Vec<Bound<'_, PyAny>>,
    steps: Vec<f64>,
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    amsgrad: bool,
    decoupled_weight_decay: bool,
    maximize: bool,
) -> PyResult<()> {
    const OP: &str = "adam_step";
    for (n, v) in [
        ("lr", lr),
        ("beta1", beta1),
        ("beta2", beta2),
        ("eps", eps),
        ("weight_decay", weight_decay),
    ] {
        finite(OP, n, v)?;
    }
    check_steps(OP, params.len(), &steps)?;
    if params.is_empty() {
        return Ok(());
    }
    let h = kopt::Adam {
        lr,
        beta1,
        beta2,
        eps,
        weight_decay,
        amsgrad,
        decoupled_weight_decay,
        maximize,
    };
    let lists = [&exp_avgs[..], &exp_avg_sqs[..], &max_exp_avg_sqs[..]];
    match first(OP, &params)? {
        Arr::F32(_) => adam_t::<f32>(py, &params, &grads, lists, &steps, &h),
        Arr::F64(_) => adam_t::<f64>(py, &params, &grads, lists, &steps, &h),
    }
}

// ---------------------------------------------------------------- NAdam

#[allow(clippy::too_many_arguments)]
fn nadam_t<T: Float + Element>(
    py: Python<'_>,
    params: &[Bound<'_, PyAny>],
    grads: &[Bound<'_, PyAny>],
    m: &[Bound<'_, PyAny>],
    v: &[Bound<'_, PyAny>],
    steps: &[f64],
    mu_products: &mut [f64],
    h: &kopt::NAdam,
) -> PyResult<()> {
    const OP: &str = "nadam_step";
    let mut b = borrow_all::<T>(
        OP,
        params,
        grads,
        &[("exp_avgs", m, true), ("exp_avg_sqs", v, true)],
    )?;
    let mut ps = slices_mut(OP, &mut b.params)?;
    let gs = slices(OP, &b.grads)?;
    let [s0, s1] = &mut b.states[..] else {
        return Err(PyValueError::new_err(format!(
            "{OP}: internal: 2 state lists"
        )));
    };
    let mut m = slices_mut(OP, s0)?;
    let mut v = slices_mut(OP, s1)?;
    run(py, OP, || {
        kopt::nadam(&mut ps, &gs, &mut m, &mut v, steps, mu_products, h)
    })
}

/// nadam_step(params, grads, exp_avgs, exp_avg_sqs, steps, mu_products, lr, beta1, beta2,
/// eps, weight_decay, momentum_decay, decoupled_weight_decay, maximize) -> list[float]:
/// one NAdam step of a param group, in place. `mu_products[i]` is param i's product of
/// momentum coefficients before the step (1.0 at the first); the updated products are
/// returned.
#[pyfunction]
#[pyo3(signature = (params, grads, exp_avgs, exp_avg_sqs, steps, mu_products, lr, beta1,
    beta2, eps, weight_decay, momentum_decay, decoupled_weight_decay, maximize))]
#[allow(clippy::too_many_arguments)]
fn nadam_step(
    py: Python<'_>,
    params: Vec<Bound<'_, PyAny>>,
    grads: Vec<Bound<'_, PyAny>>,
    exp_avgs: Vec<Bound<'_, PyAny>>,
    exp_avg_sqs: Vec<Bound<'_, PyAny>>,
    steps: Vec<f64>,
    mu_products: Vec<f64>,
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    momentum_decay: f64,
    decoupled_weight_decay: bool,
    maximize: bool,
) -> PyResult<Vec<f64>> {
    const OP: &str = "nadam_step";
    for (n, v) in [
        ("lr", lr),
        ("beta1", beta1),
        ("beta2", beta2),
        ("eps", eps),
        ("weight_decay", weight_decay),
        ("momentum_decay", momentum_decay),
    ] {
        finite(OP, n, v)?;
    }
    check_steps(OP, params.len(), &steps)?;
    check_count(
        OP,
        "mu_products",
        params.len(),
        mu_products.len(),
        params.len(),
    )?;
    let mut mu = mu_products;
    if params.is_empty() {
        return Ok(mu);
    }
    let h = kopt::NAdam {
        lr,
        beta1,
        beta2,
        eps,
        weight_decay,
        momentum_decay,
        decoupled_weight_decay,
        maximize,
    };
    match first(OP, &params)? {
        Arr::F32(_) => nadam_t::<f32>(
            py,
            &params,
            &grads,
            &exp_avgs,
            &exp_avg_sqs,
            &steps,
            &mut mu,
            &h,
        )?,
        Arr::F64(_) => nadam_t::<f64>(
            py,
            &params,
            &grads,
            &exp_avgs,
            &exp_avg_sqs,
            &steps,
            &mut mu,
            &h,
        )?,
    }
    Ok(mu)
}

/// Adds this module's functions to `ferrograd._native`.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(sgd_step, m)?)?;
    m.add_function(wrap_pyfunction!(adagrad_step, m)?)?;
    m.add_function(wrap_pyfunction!(rmsprop_step, m)?)?;
    m.add_function(wrap_pyfunction!(adadelta_step, m)?)?;
    m.add_function(wrap_pyfunction!(adam_step, m)?)?;
    m.add_function(wrap_pyfunction!(nadam_step, m)?)?;
    Ok(())
}
