//! Bindings of the rl kernels (`ferrograd_kernels::rl`): Bellman backups on a finite MDP in
//! compressed-row form.
//!
//! Every array is 1-d and C-contiguous: `indptr` and `indices` int64, `weights`, `reward`
//! and `v` float32 or float64 (all the dtype of `weights`). The model's consistency
//! (row bounds, successor indices) is checked by the kernel as it reads; the GIL is
//! released during the sweep.

use crate::common::{arr, new_array, not_contiguous, run, same, Arr};
use ferrograd_kernels::rl::{self as krl, CsrModel};
use ferrograd_kernels::Float;
use numpy::{Element, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

/// `a` as a read-only view, checked 1-d and C-contiguous.
fn flat<'py, T: Element>(
    op: &str,
    name: &str,
    a: &Bound<'py, PyArrayDyn<T>>,
) -> PyResult<PyReadonlyArrayDyn<'py, T>> {
    if a.ndim() != 1 {
        return Err(PyValueError::new_err(format!(
            "{op}: {name} must be 1-d, given shape {:?}",
            a.shape()
        )));
    }
    if !a.is_c_contiguous() {
        return Err(not_contiguous(op, name));
    }
    Ok(a.readonly())
}

/// Read-only 1-d view of `x` as `T`, checked C-contiguous.
fn vec1<'py, T: Element>(
    op: &str,
    name: &str,
    x: &Bound<'py, PyAny>,
) -> PyResult<PyReadonlyArrayDyn<'py, T>> {
    flat(op, name, &same::<T>(op, name, x)?)
}

fn ints<'py>(
    op: &str,
    name: &str,
    x: &Bound<'py, PyAny>,
) -> PyResult<PyReadonlyArrayDyn<'py, i64>> {
    match x.cast::<PyArrayDyn<i64>>() {
        Ok(a) => flat(op, name, a),
        Err(_) => Err(PyTypeError::new_err(format!(
            "{op}: {name} must be an int64 NumPy array, given {}",
            crate::common::describe(x)
        ))),
    }
}

fn check_gamma(op: &str, gamma: f64) -> PyResult<()> {
    if !(gamma.is_finite() && (0.0..=1.0).contains(&gamma)) {
        return Err(PyValueError::new_err(format!(
            "{op}: gamma must be in [0, 1], given {gamma}"
        )));
    }
    Ok(())
}

type OptOut<'py, T> = (
    Bound<'py, PyArrayDyn<T>>,
    Bound<'py, PyArrayDyn<i64>>,
    Option<Bound<'py, PyArrayDyn<T>>>,
    f64,
);

#[allow(clippy::too_many_arguments)]
fn opt_t<'py, T: Float + Element>(
    py: Python<'py>,
    indptr: &Bound<'py, PyAny>,
    indices: &Bound<'py, PyAny>,
    weights: &Bound<'py, PyAny>,
    reward: &Bound<'py, PyAny>,
    v: &Bound<'py, PyAny>,
    gamma: f64,
    n_actions: usize,
    with_q: bool,
) -> PyResult<OptOut<'py, T>> {
    const OP: &str = "bellman_optimality_backup";
    let ip = ints(OP, "indptr", indptr)?;
    let ix = ints(OP, "indices", indices)?;
    let w = vec1::<T>(OP, "weights", weights)?;
    let r = vec1::<T>(OP, "reward", reward)?;
    let vv = vec1::<T>(OP, "v", v)?;
    let s_n = vv.len();
    let rows = s_n
        .checked_mul(n_actions)
        .ok_or_else(|| PyValueError::new_err(format!("{OP}: n_states * n_actions overflows")))?;
    let v_out = new_array::<T>(py, &[s_n]);
    let p_out = new_array::<i64>(py, &[s_n]);
    let q_out = if with_q {
        Some(new_array::<T>(py, &[rows]))
    } else {
        None
    };
    let delta = {
        let (ips, ixs) = (ip.as_slice()?, ix.as_slice()?);
        let (ws, rs, vs) = (w.as_slice()?, r.as_slice()?, vv.as_slice()?);
        let mut vo = v_out.readwrite();
        let mut po = p_out.readwrite();
        let mut qo = q_out.as_ref().map(|q| q.readwrite());
        let vos = vo.as_slice_mut()?;
        let pos = po.as_slice_mut()?;
        let qos = match qo.as_mut() {
            Some(q) => Some(q.as_slice_mut()?),
            None => None,
        };
        let g = T::from_f64(gamma);
        run(py, OP, move || {
            let m = CsrModel {
                indptr: ips,
                indices: ixs,
                weights: ws,
                reward: rs,
                n_states: s_n,
                n_actions,
            };
            krl::bellman_optimality_backup(&m, vs, g, vos, pos, qos)
        })?
    };
    Ok((v_out, p_out, q_out, delta.to_f64()))
}

/// bellman_optimality_backup(indptr, indices, weights, reward, v, gamma, n_actions,
/// with_q=False) -> (v_new, policy, q or None, delta)
///
/// One sweep `Q[s, a] = reward[s*A + a] + gamma * sum_k weights[k] * v[indices[k]]`
/// (k over row s*A + a), `v_new = max_a Q`, `policy = argmax_a Q` (first maximum, int64),
/// `q` (S*A, when with_q) and `delta = max |v_new - v|`.
#[pyfunction]
#[pyo3(signature = (indptr, indices, weights, reward, v, gamma, n_actions, with_q=false))]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn bellman_optimality_backup<'py>(
    py: Python<'py>,
    indptr: Bound<'py, PyAny>,
    indices: Bound<'py, PyAny>,
    weights: Bound<'py, PyAny>,
    reward: Bound<'py, PyAny>,
    v: Bound<'py, PyAny>,
    gamma: f64,
    n_actions: usize,
    with_q: bool,
) -> PyResult<(Py<PyAny>, Py<PyAny>, Option<Py<PyAny>>, f64)> {
    const OP: &str = "bellman_optimality_backup";
    check_gamma(OP, gamma)?;
    macro_rules! go {
        ($t:ty) => {{
            let (a, b, c, d) = opt_t::<$t>(
                py, &indptr, &indices, &weights, &reward, &v, gamma, n_actions, with_q,
            )?;
            Ok((
                a.into_any().unbind(),
                b.into_any().unbind(),
                c.map(|c| c.into_any().unbind()),
                d,
            ))
        }};
    }
    match arr(OP, "weights", &weights)? {
        Arr::F32(_) => go!(f32),
        Arr::F64(_) => go!(f64),
    }
}

#[allow(clippy::too_many_arguments)]
fn pol_t<'py, T: Float + Element>(
    py: Python<'py>,
    indptr: &Bound<'py, PyAny>,
    indices: &Bound<'py, PyAny>,
    weights: &Bound<'py, PyAny>,
    reward: &Bound<'py, PyAny>,
    v: &Bound<'py, PyAny>,
    gamma: f64,
    n_actions: usize,
    policy: &Bound<'py, PyAny>,
) -> PyResult<(Bound<'py, PyArrayDyn<T>>, f64)> {
    const OP: &str = "bellman_policy_backup";
    let ip = ints(OP, "indptr", indptr)?;
    let ix = ints(OP, "indices", indices)?;
    let pol = ints(OP, "policy", policy)?;
    let w = vec1::<T>(OP, "weights", weights)?;
    let r = vec1::<T>(OP, "reward", reward)?;
    let vv = vec1::<T>(OP, "v", v)?;
    let s_n = vv.len();
    let v_out = new_array::<T>(py, &[s_n]);
    let delta = {
        let (ips, ixs, ps) = (ip.as_slice()?, ix.as_slice()?, pol.as_slice()?);
        let (ws, rs, vs) = (w.as_slice()?, r.as_slice()?, vv.as_slice()?);
        let mut vo = v_out.readwrite();
        let vos = vo.as_slice_mut()?;
        let g = T::from_f64(gamma);
        run(py, OP, move || {
            let m = CsrModel {
                indptr: ips,
                indices: ixs,
                weights: ws,
                reward: rs,
                n_states: s_n,
                n_actions,
            };
            krl::bellman_policy_backup(&m, vs, g, ps, vos)
        })?
    };
    Ok((v_out, delta.to_f64()))
}

/// bellman_policy_backup(indptr, indices, weights, reward, v, gamma, n_actions, policy)
/// -> (v_new, delta)
///
/// One sweep of iterative policy evaluation for a deterministic policy (int64, (S,)):
/// `v_new[s] = Q[s, policy[s]]`, `delta = max |v_new - v|`.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn bellman_policy_backup<'py>(
    py: Python<'py>,
    indptr: Bound<'py, PyAny>,
    indices: Bound<'py, PyAny>,
    weights: Bound<'py, PyAny>,
    reward: Bound<'py, PyAny>,
    v: Bound<'py, PyAny>,
    gamma: f64,
    n_actions: usize,
    policy: Bound<'py, PyAny>,
) -> PyResult<(Py<PyAny>, f64)> {
    const OP: &str = "bellman_policy_backup";
    check_gamma(OP, gamma)?;
    match arr(OP, "weights", &weights)? {
        Arr::F32(_) => {
            let (a, d) = pol_t::<f32>(
                py, &indptr, &indices, &weights, &reward, &v, gamma, n_actions, &policy,
            )?;
            Ok((a.into_any().unbind(), d))
        }
        Arr::F64(_) => {
            let (a, d) = pol_t::<f64>(
                py, &indptr, &indices, &weights, &reward, &v, gamma, n_actions, &policy,
            )?;
            Ok((a.into_any().unbind(), d))
        }
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(bellman_optimality_backup, m)?)?;
    m.add_function(wrap_pyfunction!(bellman_policy_backup, m)?)?;
    Ok(())
}
