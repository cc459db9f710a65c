//! Bindings of the unsupervised kernels: self-organizing maps (`ferrograd_kernels::som`)
//! and Boltzmann machines (`ferrograd_kernels::rbm`).
//!
//! Every array is checked (dtype, shape, C-contiguity, writeability) before its memory is
//! touched; the GIL is released while a kernel runs. Float arrays of one call share the
//! dtype of the first (float32 or float64); schedules (`eta`, `sigma`, `lr`) are float64,
//! indices int64.

use crate::common::{
    arr, check_shape, describe, new_array, not_contiguous, run, same, with_float, Arr,
};
use ferrograd_kernels::rbm as krbm;
use ferrograd_kernels::som::{self as ksom, Distance, Map, Neighborhood, Topology};
use ferrograd_kernels::Float;
use numpy::{
    Element, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyReadwriteArrayDyn,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

fn parse_topology(op: &str, s: &str) -> PyResult<Topology> {
    match s {
        "rectangular" => Ok(Topology::Rectangular),
        "hexagonal" => Ok(Topology::Hexagonal),
        _ => Err(PyValueError::new_err(format!(
            "{op}: unknown topology {s:?}; expected 'rectangular' or 'hexagonal'"
        ))),
    }
}

fn parse_neighborhood(op: &str, s: &str) -> PyResult<Neighborhood> {
    match s {
        "gaussian" => Ok(Neighborhood::Gaussian),
        "mexican_hat" => Ok(Neighborhood::MexicanHat),
        "bubble" => Ok(Neighborhood::Bubble),
        "triangle" => Ok(Neighborhood::Triangle),
        _ => Err(PyValueError::new_err(format!(
            "{op}: unknown neighborhood function {s:?}; expected 'gaussian', 'mexican_hat', \
             'bubble' or 'triangle'"
        ))),
    }
}

fn parse_distance(op: &str, s: &str) -> PyResult<Distance> {
    match s {
        "euclidean" => Ok(Distance::Euclidean),
        "cosine" => Ok(Distance::Cosine),
        "manhattan" => Ok(Distance::Manhattan),
        "chebyshev" => Ok(Distance::Chebyshev),
        _ => Err(PyValueError::new_err(format!(
            "{op}: unknown activation distance {s:?}; expected 'euclidean', 'cosine', \
             'manhattan' or 'chebyshev'"
        ))),
    }
}

/// A 1-D array of a fixed dtype `E` (float64 schedules, int64 indices), read-only.
fn vec1<'py, E: Element + Copy>(
    op: &str,
    name: &str,
    x: &Bound<'py, PyAny>,
    dtype: &str,
) -> PyResult<Vec<E>> {
    let a = x.cast::<PyArrayDyn<E>>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{op}: {name} must be a 1-D {dtype} NumPy array, given {}",
            describe(x)
        ))
    })?;
    if a.ndim() != 1 {
        return Err(PyValueError::new_err(format!(
            "{op}: {name} must be 1-D, given shape {:?}",
            a.shape()
        )));
    }
    let r = a.try_readonly()?;
    let s = r.as_slice().map_err(|_| not_contiguous(op, name))?;
    Ok(s.to_vec())
}

fn finite_all(op: &str, name: &str, v: &[f64]) -> PyResult<()> {
    if let Some(x) = v.iter().find(|x| !x.is_finite()) {
        return Err(PyValueError::new_err(format!(
            "{op}: {name} must be finite, given {x}"
        )));
    }
    Ok(())
}

/// The number of samples of a 2-D data array (n, dim), checking that `dim` is the
/// `width` of the weights it meets.
fn data_rows(op: &str, shape: &[usize], width: usize) -> PyResult<usize> {
    match *shape {
        [n, dim] if dim == width => Ok(n),
        [_, dim] => Err(PyValueError::new_err(format!(
            "{op}: data has {dim} features, the weights {width}"
        ))),
        _ => Err(PyValueError::new_err(format!(
            "{op}: data must be 2-D (n_samples, n_features), given shape {shape:?}"
        ))),
    }
}

/// The map of 3-D weights (x, y, dim).
fn weights_map(
    op: &str,
    shape: &[usize],
    topology: Topology,
    neighborhood: Neighborhood,
) -> PyResult<Map> {
    if shape.len() != 3 {
        return Err(PyValueError::new_err(format!(
            "{op}: weights must be 3-D (x, y, input_len), given shape {shape:?}"
        )));
    }
    Ok(Map {
        x: shape[0],
        y: shape[1],
        dim: shape[2],
        topology,
        neighborhood,
    })
}

// ---------------------------------------------------------------- SOM training

#[allow(clippy::too_many_arguments)]
fn som_train_t<T: Float + Element>(
    py: Python<'_>,
    w: &Bound<'_, PyArrayDyn<T>>,
    data: &Bound<'_, PyAny>,
    order: Vec<i64>,
    eta: Vec<f64>,
    sigma: Vec<f64>,
    forced: Vec<i64>,
    map: Map,
    metric: Distance,
) -> PyResult<usize> {
    const OP: &str = "som_train";
    let data = same::<T>(OP, "data", data)?;
    let n = data_rows(OP, data.shape(), map.dim)?;
    let dr = data.try_readonly()?;
    let ds = dr.as_slice().map_err(|_| not_contiguous(OP, "data"))?;
    let mut ww = w.try_readwrite()?;
    let ws = ww
        .as_slice_mut()
        .map_err(|_| not_contiguous(OP, "weights"))?;
    run(py, OP, || {
        ksom::train_online(&map, metric, ws, ds, n, &order, &eta, &sigma, &forced)
    })
}

/// som_train(weights, data, order, eta, sigma, forced, topology, neighborhood, distance)
/// -> number of updates. Online training in place: weights (x, y, dim) float32/float64;
/// data (n, dim) same dtype; order int64 (steps,) sample indices; eta and sigma float64
/// (steps,); forced int64 (steps,) winners (-1: none) or (0,).
#[pyfunction]
#[pyo3(signature = (weights, data, order, eta, sigma, forced, topology, neighborhood, distance))]
#[allow(clippy::too_many_arguments)]
fn som_train(
    py: Python<'_>,
    weights: &Bound<'_, PyAny>,
    data: &Bound<'_, PyAny>,
    order: &Bound<'_, PyAny>,
    eta: &Bound<'_, PyAny>,
    sigma: &Bound<'_, PyAny>,
    forced: &Bound<'_, PyAny>,
    topology: &str,
    neighborhood: &str,
    distance: &str,
) -> PyResult<usize> {
    const OP: &str = "som_train";
    let topo = parse_topology(OP, topology)?;
    let nb = parse_neighborhood(OP, neighborhood)?;
    let metric = parse_distance(OP, distance)?;
    let order = vec1::<i64>(OP, "order", order, "int64")?;
    let eta = vec1::<f64>(OP, "eta", eta, "float64")?;
    let sigma = vec1::<f64>(OP, "sigma", sigma, "float64")?;
    let forced = vec1::<i64>(OP, "forced", forced, "int64")?;
    finite_all(OP, "eta", &eta)?;
    finite_all(OP, "sigma", &sigma)?;
    with_float!(arr(OP, "weights", weights)?, |w| {
        let map = weights_map(OP, w.shape(), topo, nb)?;
        som_train_t(py, &w, data, order, eta, sigma, forced, map, metric)
    })
}

#[allow(clippy::too_many_arguments)]
fn som_train_batch_t<T: Float + Element>(
    py: Python<'_>,
    w: &Bound<'_, PyArrayDyn<T>>,
    data: &Bound<'_, PyAny>,
    sigma: Vec<f64>,
    lr: Vec<f64>,
    map: Map,
    metric: Distance,
) -> PyResult<()> {
    const OP: &str = "som_train_batch";
    let data = same::<T>(OP, "data", data)?;
    let n = data_rows(OP, data.shape(), map.dim)?;
    let dr = data.try_readonly()?;
    let ds = dr.as_slice().map_err(|_| not_contiguous(OP, "data"))?;
    let mut ww = w.try_readwrite()?;
    let ws = ww
        .as_slice_mut()
        .map_err(|_| not_contiguous(OP, "weights"))?;
    run(py, OP, || {
        ksom::train_batch(&map, metric, ws, ds, n, &sigma, &lr)
    })
}

/// som_train_batch(weights, data, sigma, lr, topology, neighborhood, distance): batch
/// training in place, one epoch per entry of sigma and lr (float64, same length).
#[pyfunction]
#[pyo3(signature = (weights, data, sigma, lr, topology, neighborhood, distance))]
#[allow(clippy::too_many_arguments)]
fn som_train_batch(
    py: Python<'_>,
    weights: &Bound<'_, PyAny>,
    data: &Bound<'_, PyAny>,
    sigma: &Bound<'_, PyAny>,
    lr: &Bound<'_, PyAny>,
    topology: &str,
    neighborhood: &str,
    distance: &str,
) -> PyResult<()> {
    const OP: &str = "som_train_batch";
    let topo = parse_topology(OP, topology)?;
    let nb = parse_neighborhood(OP, neighborhood)?;
    let metric = parse_distance(OP, distance)?;
    let sigma = vec1::<f64>(OP, "sigma", sigma, "float64")?;
    let lr = vec1::<f64>(OP, "lr", lr, "float64")?;
    finite_all(OP, "sigma", &sigma)?;
    finite_all(OP, "lr", &lr)?;
    with_float!(arr(OP, "weights", weights)?, |w| {
        let map = weights_map(OP, w.shape(), topo, nb)?;
        som_train_batch_t(py, &w, data, sigma, lr, map, metric)
    })
}

// ---------------------------------------------------------------- SOM queries

/// (units, dim) of 2-D codebook weights (units, dim).
fn codebook_dims(op: &str, shape: &[usize]) -> PyResult<(usize, usize)> {
    if shape.len() != 2 || shape[0] == 0 || shape[1] == 0 {
        return Err(PyValueError::new_err(format!(
            "{op}: weights must be 2-D (units, input_len) with both at least 1, given shape {shape:?}"
        )));
    }
    Ok((shape[0], shape[1]))
}

fn som_bmu_t<'py, T: Float + Element>(
    py: Python<'py>,
    data: &Bound<'py, PyArrayDyn<T>>,
    w: &Bound<'py, PyAny>,
    metric: Distance,
    second: bool,
) -> PyResult<Bound<'py, PyTuple>> {
    const OP: &str = "som_bmu";
    let w = same::<T>(OP, "weights", w)?;
    let (units, dim) = codebook_dims(OP, w.shape())?;
    let n = data_rows(OP, data.shape(), dim)?;
    let dr = data.try_readonly()?;
    let wr = w.try_readonly()?;
    let ds = dr.as_slice().map_err(|_| not_contiguous(OP, "data"))?;
    let wsl = wr.as_slice().map_err(|_| not_contiguous(OP, "weights"))?;
    let m = if second { n } else { 0 };
    let b = new_array::<i64>(py, &[n]);
    let bd = new_array::<T>(py, &[n]);
    let s = new_array::<i64>(py, &[m]);
    let sd = new_array::<T>(py, &[m]);
    {
        let mut bw = b.try_readwrite()?;
        let mut bdw = bd.try_readwrite()?;
        let mut sw = s.try_readwrite()?;
        let mut sdw = sd.try_readwrite()?;
        let bs = bw.as_slice_mut().map_err(|_| not_contiguous(OP, "out"))?;
        let bds = bdw.as_slice_mut().map_err(|_| not_contiguous(OP, "out"))?;
        let ss = sw.as_slice_mut().map_err(|_| not_contiguous(OP, "out"))?;
        let sds = sdw.as_slice_mut().map_err(|_| not_contiguous(OP, "out"))?;
        run(py, OP, || {
            ksom::bmu(metric, ds, n, wsl, units, dim, bs, bds, ss, sds)
        })?;
    }
    if second {
        PyTuple::new(
            py,
            [b.into_any(), bd.into_any(), s.into_any(), sd.into_any()],
        )
    } else {
        PyTuple::new(py, [b.into_any(), bd.into_any()])
    }
}

/// som_bmu(data, weights, distance, second=False) -> (bmu int64 (n,), dist (n,)) or, with
/// second, also (second int64 (n,), second_dist (n,)). data (n, dim), weights
/// (units, dim), one float dtype. Euclidean distances returned are the exact ||x - w||.
#[pyfunction]
#[pyo3(signature = (data, weights, distance, second=false))]
fn som_bmu<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    weights: &Bound<'py, PyAny>,
    distance: &str,
    second: bool,
) -> PyResult<Bound<'py, PyTuple>> {
    const OP: &str = "som_bmu";
    let metric = parse_distance(OP, distance)?;
    with_float!(arr(OP, "data", data)?, |d| som_bmu_t(
        py, &d, weights, metric, second
    ))
}

fn som_distances_t<'py, T: Float + Element>(
    py: Python<'py>,
    data: &Bound<'py, PyArrayDyn<T>>,
    w: &Bound<'py, PyAny>,
    metric: Distance,
) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    const OP: &str = "som_distances";
    let w = same::<T>(OP, "weights", w)?;
    let (units, dim) = codebook_dims(OP, w.shape())?;
    let n = data_rows(OP, data.shape(), dim)?;
    let dr = data.try_readonly()?;
    let wr = w.try_readonly()?;
    let ds = dr.as_slice().map_err(|_| not_contiguous(OP, "data"))?;
    let wsl = wr.as_slice().map_err(|_| not_contiguous(OP, "weights"))?;
    let out = new_array::<T>(py, &[n, units]);
    {
        let mut ow = out.try_readwrite()?;
        let os = ow.as_slice_mut().map_err(|_| not_contiguous(OP, "out"))?;
        run(py, OP, || {
            ksom::distances(metric, ds, n, wsl, units, dim, os)
        })?;
    }
    Ok(out)
}

/// som_distances(data, weights, distance) -> (n, units) distances of every sample to
/// every unit (euclidean: MiniSom's GEMM form clipped at 0).
#[pyfunction]
fn som_distances<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    weights: &Bound<'py, PyAny>,
    distance: &str,
) -> PyResult<Bound<'py, PyAny>> {
    const OP: &str = "som_distances";
    let metric = parse_distance(OP, distance)?;
    Ok(with_float!(arr(OP, "data", data)?, |d| som_distances_t(
        py, &d, weights, metric
    )?
    .into_any()))
}

fn som_distance_map_t<'py, T: Float + Element>(
    py: Python<'py>,
    w: &Bound<'py, PyArrayDyn<T>>,
    map: Map,
    mean: bool,
) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    const OP: &str = "som_distance_map";
    map.check(OP).map_err(crate::common::kernel_err)?;
    let wr = w.try_readonly()?;
    let wsl = wr.as_slice().map_err(|_| not_contiguous(OP, "weights"))?;
    let out = new_array::<T>(py, &[map.x, map.y]);
    {
        let mut ow = out.try_readwrite()?;
        let os = ow.as_slice_mut().map_err(|_| not_contiguous(OP, "out"))?;
        run(py, OP, || ksom::umatrix(&map, wsl, mean, os))?;
    }
    Ok(out)
}

/// som_distance_map(weights, topology, scaling) -> (x, y) U-matrix of weights
/// (x, y, dim); scaling 'sum' or 'mean' (MiniSom's distance_map).
#[pyfunction]
fn som_distance_map<'py>(
    py: Python<'py>,
    weights: &Bound<'py, PyAny>,
    topology: &str,
    scaling: &str,
) -> PyResult<Bound<'py, PyAny>> {
    const OP: &str = "som_distance_map";
    let topo = parse_topology(OP, topology)?;
    let mean = match scaling {
        "sum" => false,
        "mean" => true,
        _ => {
            return Err(PyValueError::new_err(format!(
                "{OP}: scaling must be 'sum' or 'mean', given {scaling:?}"
            )))
        }
    };
    Ok(with_float!(arr(OP, "weights", weights)?, |w| {
        let map = weights_map(OP, w.shape(), topo, Neighborhood::Gaussian)?;
        som_distance_map_t(py, &w, map, mean)?.into_any()
    }))
}

/// som_neighborhood(x, y, topology, neighborhood, center, sigma) -> (x, y) float64: the
/// neighbourhood function centred on unit `center` (flat index i * y + j).
#[pyfunction]
fn som_neighborhood<'py>(
    py: Python<'py>,
    x: usize,
    y: usize,
    topology: &str,
    neighborhood: &str,
    center: usize,
    sigma: f64,
) -> PyResult<Bound<'py, PyArrayDyn<f64>>> {
    const OP: &str = "som_neighborhood";
    let map = Map {
        x,
        y,
        dim: 1,
        topology: parse_topology(OP, topology)?,
        neighborhood: parse_neighborhood(OP, neighborhood)?,
    };
    finite_all(OP, "sigma", &[sigma])?;
    let units = map.check(OP).map_err(crate::common::kernel_err)?;
    let out = new_array::<f64>(py, &[x, y]);
    {
        let mut ow = out.try_readwrite()?;
        let os = ow.as_slice_mut().map_err(|_| not_contiguous(OP, "out"))?;
        let _ = units;
        ksom::neighborhood(&map, center, sigma, os).map_err(crate::common::kernel_err)?;
    }
    Ok(out)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(som_train, m)?)?;
    m.add_function(wrap_pyfunction!(som_train_batch, m)?)?;
    m.add_function(wrap_pyfunction!(som_bmu, m)?)?;
    m.add_function(wrap_pyfunction!(som_distances, m)?)?;
    m.add_function(wrap_pyfunction!(som_distance_map, m)?)?;
    m.add_function(wrap_pyfunction!(som_neighborhood, m)?)?;
    m.add_function(wrap_pyfunction!(rbm_uniform, m)?)?;
    m.add_function(wrap_pyfunction!(rbm_sample_bernoulli, m)?)?;
    m.add_function(wrap_pyfunction!(rbm_hidden, m)?)?;
    m.add_function(wrap_pyfunction!(rbm_visible, m)?)?;
    m.add_function(wrap_pyfunction!(rbm_free_energy, m)?)?;
    m.add_function(wrap_pyfunction!(rbm_gibbs, m)?)?;
    m.add_function(wrap_pyfunction!(rbm_fit, m)?)?;
    m.add_function(wrap_pyfunction!(dbm_mean_field, m)?)?;
    m.add_function(wrap_pyfunction!(dbm_gibbs, m)?)?;
    m.add_function(wrap_pyfunction!(dbm_fit, m)?)?;
    Ok(())
}

// ---------------------------------------------------------------- RBM

/// Read-only C-contiguous view of `x` as dtype `T` with shape `want`.
fn ro<'py, T: Element>(
    op: &str,
    name: &str,
    x: &Bound<'py, PyAny>,
    want: &[usize],
) -> PyResult<PyReadonlyArrayDyn<'py, T>> {
    let a = same::<T>(op, name, x)?;
    check_shape(op, name, want, a.shape())?;
    if !a.is_c_contiguous() {
        return Err(not_contiguous(op, name));
    }
    Ok(a.try_readonly()?)
}

/// Writeable C-contiguous view of `x` as dtype `T` with shape `want`, sharing memory with
/// no other array of the call.
fn rw<'py, T: Element>(
    op: &str,
    name: &str,
    x: &Bound<'py, PyAny>,
    want: &[usize],
) -> PyResult<PyReadwriteArrayDyn<'py, T>> {
    let a = same::<T>(op, name, x)?;
    check_shape(op, name, want, a.shape())?;
    if !a.is_c_contiguous() {
        return Err(not_contiguous(op, name));
    }
    a.try_readwrite().map_err(|e| {
        PyValueError::new_err(format!(
            "{op}: {name} must be a writeable array that shares no memory with another array \
             of this call ({e})"
        ))
    })
}

/// (n, cols) of a 2-D array.
fn dims2(op: &str, name: &str, shape: &[usize]) -> PyResult<(usize, usize)> {
    if shape.len() != 2 {
        return Err(PyValueError::new_err(format!(
            "{op}: {name} must be 2-D, given shape {shape:?}"
        )));
    }
    Ok((shape[0], shape[1]))
}

/// rbm_uniform(out, seed, stream): fills out (any shape, float32/float64, C-contiguous)
/// with the uniforms the sampling kernels draw from stream (seed, stream), element i in
/// C order.
#[pyfunction]
fn rbm_uniform(py: Python<'_>, out: &Bound<'_, PyAny>, seed: u64, stream: u64) -> PyResult<()> {
    const OP: &str = "rbm_uniform";
    match arr(OP, "out", out)? {
        Arr::F32(a) => {
            let mut w = rw::<f32>(OP, "out", a.as_any(), a.shape())?;
            let s = w.as_slice_mut().map_err(|_| not_contiguous(OP, "out"))?;
            run(py, OP, || {
                krbm::uniforms(seed, stream, s);
                Ok(())
            })
        }
        Arr::F64(a) => {
            let mut w = rw::<f64>(OP, "out", a.as_any(), a.shape())?;
            let s = w.as_slice_mut().map_err(|_| not_contiguous(OP, "out"))?;
            run(py, OP, || {
                krbm::uniforms(seed, stream, s);
                Ok(())
            })
        }
    }
}

fn sample_t<'py, T: Float + Element>(
    py: Python<'py>,
    p: &Bound<'py, PyArrayDyn<T>>,
    seed: u64,
    stream: u64,
) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    const OP: &str = "rbm_sample_bernoulli";
    let pr = ro::<T>(OP, "p", p.as_any(), p.shape())?;
    let ps = pr.as_slice().map_err(|_| not_contiguous(OP, "p"))?;
    let out = new_array::<T>(py, p.shape());
    {
        let mut ow = out.try_readwrite()?;
        let os = ow.as_slice_mut().map_err(|_| not_contiguous(OP, "out"))?;
        run(py, OP, || krbm::sample_bernoulli(ps, os, seed, stream))?;
    }
    Ok(out)
}

/// rbm_sample_bernoulli(p, seed, stream) -> (u < p) as 0/1 of p's shape and dtype.
#[pyfunction]
fn rbm_sample_bernoulli<'py>(
    py: Python<'py>,
    p: &Bound<'py, PyAny>,
    seed: u64,
    stream: u64,
) -> PyResult<Bound<'py, PyAny>> {
    Ok(with_float!(arr("rbm_sample_bernoulli", "p", p)?, |a| {
        sample_t(py, &a, seed, stream)?.into_any()
    }))
}

/// The RBM parameters (w (nh, nv), bh (nh), bv (nv)) as read-only views.
struct Params<'py, T: Element> {
    w: PyReadonlyArrayDyn<'py, T>,
    bh: PyReadonlyArrayDyn<'py, T>,
    bv: PyReadonlyArrayDyn<'py, T>,
    nv: usize,
    nh: usize,
}

fn params<'py, T: Element>(
    op: &str,
    w: &Bound<'py, PyAny>,
    bh: &Bound<'py, PyAny>,
    bv: &Bound<'py, PyAny>,
) -> PyResult<Params<'py, T>> {
    let wa = same::<T>(op, "w", w)?;
    let (nh, nv) = dims2(op, "w", wa.shape())?;
    Ok(Params {
        w: ro::<T>(op, "w", w, &[nh, nv])?,
        bh: ro::<T>(op, "bh", bh, &[nh])?,
        bv: ro::<T>(op, "bv", bv, &[nv])?,
        nv,
        nh,
    })
}

impl<'py, T: Element + Float> Params<'py, T> {
    fn rbm(&self, op: &str, gaussian: bool) -> PyResult<krbm::Rbm<'_, T>> {
        Ok(krbm::Rbm {
            w: self.w.as_slice().map_err(|_| not_contiguous(op, "w"))?,
            bh: self.bh.as_slice().map_err(|_| not_contiguous(op, "bh"))?,
            bv: self.bv.as_slice().map_err(|_| not_contiguous(op, "bv"))?,
            nv: self.nv,
            nh: self.nh,
            gaussian,
        })
    }
}

#[allow(clippy::too_many_arguments)]
fn cond_t<'py, T: Float + Element>(
    py: Python<'py>,
    op: &'static str,
    x: &Bound<'py, PyArrayDyn<T>>,
    w: &Bound<'py, PyAny>,
    bh: &Bound<'py, PyAny>,
    bv: &Bound<'py, PyAny>,
    gaussian: bool,
    scale: f64,
    hidden: bool,
) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    let p = params::<T>(op, w, bh, bv)?;
    let (n, c) = dims2(op, "x", x.shape())?;
    let (cin, cout) = if hidden { (p.nv, p.nh) } else { (p.nh, p.nv) };
    if c != cin {
        return Err(PyValueError::new_err(format!(
            "{op}: x has {c} columns, expected {cin} (shape {:?})",
            x.shape()
        )));
    }
    let xr = ro::<T>(op, "x", x.as_any(), &[n, c])?;
    let xs = xr.as_slice().map_err(|_| not_contiguous(op, "x"))?;
    let r = p.rbm(op, gaussian)?;
    let out = new_array::<T>(py, &[n, cout]);
    {
        let mut ow = out.try_readwrite()?;
        let os = ow.as_slice_mut().map_err(|_| not_contiguous(op, "out"))?;
        let s = T::from_f64(scale);
        if hidden {
            run(py, op, || krbm::hidden_probs(&r, xs, n, s, os))?;
        } else {
            run(py, op, || krbm::visible_probs(&r, xs, n, s, os))?;
        }
    }
    Ok(out)
}

/// rbm_hidden(v, w, bh, bv, up=1.0) -> P(h = 1 | v) = sigmoid(up * v @ w.T + bh), (n, nh).
#[pyfunction]
#[pyo3(signature = (v, w, bh, bv, up=1.0))]
fn rbm_hidden<'py>(
    py: Python<'py>,
    v: &Bound<'py, PyAny>,
    w: &Bound<'py, PyAny>,
    bh: &Bound<'py, PyAny>,
    bv: &Bound<'py, PyAny>,
    up: f64,
) -> PyResult<Bound<'py, PyAny>> {
    const OP: &str = "rbm_hidden";
    finite_all(OP, "up", &[up])?;
    Ok(with_float!(arr(OP, "v", v)?, |a| cond_t(
        py, OP, &a, w, bh, bv, false, up, true
    )?
    .into_any()))
}

/// rbm_visible(h, w, bh, bv, gaussian=False, down=1.0) -> P(v = 1 | h) (Bernoulli) or the
/// mean of v (Gaussian), (n, nv).
#[pyfunction]
#[pyo3(signature = (h, w, bh, bv, gaussian=false, down=1.0))]
#[allow(clippy::too_many_arguments)]
fn rbm_visible<'py>(
    py: Python<'py>,
    h: &Bound<'py, PyAny>,
    w: &Bound<'py, PyAny>,
    bh: &Bound<'py, PyAny>,
    bv: &Bound<'py, PyAny>,
    gaussian: bool,
    down: f64,
) -> PyResult<Bound<'py, PyAny>> {
    const OP: &str = "rbm_visible";
    finite_all(OP, "down", &[down])?;
    Ok(with_float!(arr(OP, "h", h)?, |a| cond_t(
        py, OP, &a, w, bh, bv, gaussian, down, false
    )?
    .into_any()))
}

fn free_energy_t<'py, T: Float + Element>(
    py: Python<'py>,
    v: &Bound<'py, PyArrayDyn<T>>,
    w: &Bound<'py, PyAny>,
    bh: &Bound<'py, PyAny>,
    bv: &Bound<'py, PyAny>,
    gaussian: bool,
) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    const OP: &str = "rbm_free_energy";
    let p = params::<T>(OP, w, bh, bv)?;
    let (n, c) = dims2(OP, "v", v.shape())?;
    if c != p.nv {
        return Err(PyValueError::new_err(format!(
            "{OP}: v has {c} columns, expected {} (shape {:?})",
            p.nv,
            v.shape()
        )));
    }
    let vr = ro::<T>(OP, "v", v.as_any(), &[n, c])?;
    let vs = vr.as_slice().map_err(|_| not_contiguous(OP, "v"))?;
    let r = p.rbm(OP, gaussian)?;
    let out = new_array::<T>(py, &[n]);
    {
        let mut ow = out.try_readwrite()?;
        let os = ow.as_slice_mut().map_err(|_| not_contiguous(OP, "out"))?;
        run(py, OP, || krbm::free_energy(&r, vs, n, os))?;
    }
    Ok(out)
}

/// rbm_free_energy(v, w, bh, bv, gaussian=False) -> (n,) free energies.
#[pyfunction]
#[pyo3(signature = (v, w, bh, bv, gaussian=false))]
fn rbm_free_energy<'py>(
    py: Python<'py>,
    v: &Bound<'py, PyAny>,
    w: &Bound<'py, PyAny>,
    bh: &Bound<'py, PyAny>,
    bv: &Bound<'py, PyAny>,
    gaussian: bool,
) -> PyResult<Bound<'py, PyAny>> {
    const OP: &str = "rbm_free_energy";
    Ok(with_float!(arr(OP, "v", v)?, |a| free_energy_t(
        py, &a, w, bh, bv, gaussian
    )?
    .into_any()))
}

#[allow(clippy::too_many_arguments)]
fn gibbs_t<'py, T: Float + Element>(
    py: Python<'py>,
    v: &Bound<'py, PyArrayDyn<T>>,
    w: &Bound<'py, PyAny>,
    bh: &Bound<'py, PyAny>,
    bv: &Bound<'py, PyAny>,
    gaussian: bool,
    steps: usize,
    seed: u64,
    stream: u64,
) -> PyResult<Bound<'py, PyTuple>> {
    const OP: &str = "rbm_gibbs";
    let p = params::<T>(OP, w, bh, bv)?;
    let (n, c) = dims2(OP, "v", v.shape())?;
    if c != p.nv {
        return Err(PyValueError::new_err(format!(
            "{OP}: v has {c} columns, expected {} (shape {:?})",
            p.nv,
            v.shape()
        )));
    }
    let vr = ro::<T>(OP, "v", v.as_any(), &[n, c])?;
    let vs = vr.as_slice().map_err(|_| not_contiguous(OP, "v"))?;
    let r = p.rbm(OP, gaussian)?;
    let out = new_array::<T>(py, &[n, c]);
    let probs = new_array::<T>(py, &[n, c]);
    let next;
    {
        let mut ow = out.try_readwrite()?;
        let os = ow.as_slice_mut().map_err(|_| not_contiguous(OP, "out"))?;
        let mut pw = probs.try_readwrite()?;
        let ps = pw.as_slice_mut().map_err(|_| not_contiguous(OP, "probs"))?;
        if steps == 0 {
            ps.copy_from_slice(vs);
        }
        next = run(py, OP, || {
            krbm::gibbs(&r, vs, n, steps, seed, stream, os, ps)
        })?;
    }
    PyTuple::new(
        py,
        [
            out.into_any(),
            probs.into_any(),
            next.into_pyobject(py)?.into_any(),
        ],
    )
}

/// rbm_gibbs(v, w, bh, bv, gaussian, steps, seed, stream) -> (v_sample, v_probs,
/// next_stream): `steps` Gibbs steps v -> h -> v from v (n, nv).
#[pyfunction]
#[pyo3(signature = (v, w, bh, bv, gaussian, steps, seed, stream))]
#[allow(clippy::too_many_arguments)]
fn rbm_gibbs<'py>(
    py: Python<'py>,
    v: &Bound<'py, PyAny>,
    w: &Bound<'py, PyAny>,
    bh: &Bound<'py, PyAny>,
    bv: &Bound<'py, PyAny>,
    gaussian: bool,
    steps: usize,
    seed: u64,
    stream: u64,
) -> PyResult<Bound<'py, PyTuple>> {
    const OP: &str = "rbm_gibbs";
    with_float!(arr(OP, "v", v)?, |a| gibbs_t(
        py, &a, w, bh, bv, gaussian, steps, seed, stream
    ))
}

/// Mini-batch bounds from an int64 array: increasing from 0 to n.
fn bounds_of(op: &str, b: &Bound<'_, PyAny>, n: usize) -> PyResult<Vec<usize>> {
    let v = vec1::<i64>(op, "bounds", b, "int64")?;
    let ok =
        v.first() == Some(&0) && v.last() == Some(&(n as i64)) && v.windows(2).all(|w| w[1] > w[0]);
    if !ok {
        return Err(PyValueError::new_err(format!(
            "{op}: bounds must increase strictly from 0 to the number of samples {n}, given {} entries",
            v.len()
        )));
    }
    Ok(v.into_iter().map(|x| x as usize).collect())
}

#[allow(clippy::too_many_arguments)]
fn rbm_fit_t<T: Float + Element>(
    py: Python<'_>,
    w: &Bound<'_, PyArrayDyn<T>>,
    state: &[Bound<'_, PyAny>],
    data: &Bound<'_, PyAny>,
    bounds: &Bound<'_, PyAny>,
    epochs: usize,
    gaussian: bool,
    p: krbm::FitParams,
    stream: u64,
) -> PyResult<u64> {
    const OP: &str = "rbm_fit";
    let (nh, nv) = dims2(OP, "w", w.shape())?;
    let d = same::<T>(OP, "data", data)?;
    let (n, c) = dims2(OP, "data", d.shape())?;
    if c != nv {
        return Err(PyValueError::new_err(format!(
            "{OP}: data has {c} features, the weights {nv}"
        )));
    }
    let b = bounds_of(OP, bounds, n)?;
    let chain = same::<T>(OP, "chain", &state[6])?;
    let (crows, ccols) = dims2(OP, "chain", chain.shape())?;
    if ccols != nh {
        return Err(PyValueError::new_err(format!(
            "{OP}: chain must have {nh} columns, given shape {:?}",
            chain.shape()
        )));
    }
    let mut ww = rw::<T>(OP, "w", w.as_any(), &[nh, nv])?;
    let mut bh = rw::<T>(OP, "bh", &state[1], &[nh])?;
    let mut bv = rw::<T>(OP, "bv", &state[2], &[nv])?;
    let mut vw = rw::<T>(OP, "vel_w", &state[3], &[nh, nv])?;
    let mut vbh = rw::<T>(OP, "vel_bh", &state[4], &[nh])?;
    let mut vbv = rw::<T>(OP, "vel_bv", &state[5], &[nv])?;
    let mut ch = rw::<T>(OP, "chain", &state[6], &[crows, nh])?;
    let dr = ro::<T>(OP, "data", data, &[n, c])?;
    let ds = dr.as_slice().map_err(|_| not_contiguous(OP, "data"))?;
    let nc = |n: &str| not_contiguous(OP, n);
    let mut st = krbm::FitState {
        w: ww.as_slice_mut().map_err(|_| nc("w"))?,
        bh: bh.as_slice_mut().map_err(|_| nc("bh"))?,
        bv: bv.as_slice_mut().map_err(|_| nc("bv"))?,
        vel_w: vw.as_slice_mut().map_err(|_| nc("vel_w"))?,
        vel_bh: vbh.as_slice_mut().map_err(|_| nc("vel_bh"))?,
        vel_bv: vbv.as_slice_mut().map_err(|_| nc("vel_bv"))?,
        chain: ch.as_slice_mut().map_err(|_| nc("chain"))?,
        chain_rows: crows,
    };
    run(py, OP, || {
        krbm::fit(&mut st, nv, nh, gaussian, ds, n, &b, epochs, &p, stream)
    })
}

/// rbm_fit(w, bh, bv, vel_w, vel_bh, vel_bv, chain, data, bounds, epochs, gaussian, lr,
/// momentum, weight_decay, k, persistent, up, down, seed, stream) -> next stream.
/// Trains in place: w (nh, nv), bh (nh), bv (nv), velocities of the same shapes, chain
/// (rows, nh) persistent hidden states; data (n, nv); bounds int64 mini-batch row bounds.
#[pyfunction]
#[pyo3(signature = (w, bh, bv, vel_w, vel_bh, vel_bv, chain, data, bounds, epochs, gaussian,
    lr, momentum, weight_decay, k, persistent, up, down, seed, stream))]
#[allow(clippy::too_many_arguments)]
fn rbm_fit(
    py: Python<'_>,
    w: &Bound<'_, PyAny>,
    bh: Bound<'_, PyAny>,
    bv: Bound<'_, PyAny>,
    vel_w: Bound<'_, PyAny>,
    vel_bh: Bound<'_, PyAny>,
    vel_bv: Bound<'_, PyAny>,
    chain: Bound<'_, PyAny>,
    data: &Bound<'_, PyAny>,
    bounds: &Bound<'_, PyAny>,
    epochs: usize,
    gaussian: bool,
    lr: f64,
    momentum: f64,
    weight_decay: f64,
    k: usize,
    persistent: bool,
    up: f64,
    down: f64,
    seed: u64,
    stream: u64,
) -> PyResult<u64> {
    const OP: &str = "rbm_fit";
    finite_all(
        OP,
        "lr, momentum, weight_decay, up, down",
        &[lr, momentum, weight_decay, up, down],
    )?;
    let p = krbm::FitParams {
        lr,
        momentum,
        weight_decay,
        k,
        persistent,
        up,
        down,
        seed,
    };
    let state = [w.clone(), bh, bv, vel_w, vel_bh, vel_bv, chain];
    with_float!(arr(OP, "w", w)?, |a| rbm_fit_t(
        py, &a, &state, data, bounds, epochs, gaussian, p, stream
    ))
}

// ---------------------------------------------------------------- DBM

/// Layer sizes from the weight shapes (w[l] is (sizes[l + 1], sizes[l])).
fn dbm_sizes(op: &str, ws: &[Bound<'_, PyAny>]) -> PyResult<Vec<usize>> {
    if ws.is_empty() {
        return Err(PyValueError::new_err(format!(
            "{op}: expected at least one weight matrix"
        )));
    }
    let mut sizes = Vec::new();
    for (l, w) in ws.iter().enumerate() {
        let shape: Vec<usize> = w.getattr("shape")?.extract()?;
        let (o, i) = dims2(op, &format!("weights[{l}]"), &shape)?;
        if l == 0 {
            sizes.push(i);
        } else if sizes[l] != i {
            return Err(PyValueError::new_err(format!(
                "{op}: weights[{l}] has {i} columns, expected {} (the rows of weights[{}])",
                sizes[l],
                l - 1
            )));
        }
        sizes.push(o);
    }
    Ok(sizes)
}

/// One array per shape of `shapes` from the list `xs` (named `name[i]`), each taken
/// through `one` (ro or rw).
fn each<'py, A>(
    op: &str,
    name: &str,
    xs: &[Bound<'py, PyAny>],
    shapes: &[Vec<usize>],
    one: impl Fn(&str, &str, &Bound<'py, PyAny>, &[usize]) -> PyResult<A>,
) -> PyResult<Vec<A>> {
    if xs.len() != shapes.len() {
        return Err(PyValueError::new_err(format!(
            "{op}: expected {} arrays in {name}, given {}",
            shapes.len(),
            xs.len()
        )));
    }
    xs.iter()
        .zip(shapes)
        .enumerate()
        .map(|(i, (x, s))| one(op, &format!("{name}[{i}]"), x, s))
        .collect()
}

fn ro_list<'py, T: Element>(
    op: &str,
    name: &str,
    xs: &[Bound<'py, PyAny>],
    shapes: &[Vec<usize>],
) -> PyResult<Vec<PyReadonlyArrayDyn<'py, T>>> {
    each(op, name, xs, shapes, ro::<T>)
}

fn rw_list<'py, T: Element>(
    op: &str,
    name: &str,
    xs: &[Bound<'py, PyAny>],
    shapes: &[Vec<usize>],
) -> PyResult<Vec<PyReadwriteArrayDyn<'py, T>>> {
    each(op, name, xs, shapes, rw::<T>)
}

fn wshapes(sizes: &[usize]) -> Vec<Vec<usize>> {
    (0..sizes.len() - 1)
        .map(|l| vec![sizes[l + 1], sizes[l]])
        .collect()
}

fn bshapes(sizes: &[usize]) -> Vec<Vec<usize>> {
    sizes.iter().map(|&s| vec![s]).collect()
}

fn rows_shapes(sizes: &[usize], m: usize) -> Vec<Vec<usize>> {
    sizes.iter().map(|&s| vec![m, s]).collect()
}

fn mf_t<'py, T: Float + Element>(
    py: Python<'py>,
    v: &Bound<'py, PyArrayDyn<T>>,
    ws: &[Bound<'py, PyAny>],
    bs: &[Bound<'py, PyAny>],
    iters: usize,
    tol: f64,
) -> PyResult<Bound<'py, PyTuple>> {
    const OP: &str = "dbm_mean_field";
    let sizes = dbm_sizes(OP, ws)?;
    let (n, c) = dims2(OP, "v", v.shape())?;
    if c != sizes[0] {
        return Err(PyValueError::new_err(format!(
            "{OP}: v has {c} features, the DBM's visible layer {}",
            sizes[0]
        )));
    }
    let wr = ro_list::<T>(OP, "weights", ws, &wshapes(&sizes))?;
    let br = ro_list::<T>(OP, "biases", bs, &bshapes(&sizes))?;
    let vr = ro::<T>(OP, "v", v.as_any(), &[n, c])?;
    let vs = vr.as_slice().map_err(|_| not_contiguous(OP, "v"))?;
    let wsl: Vec<&[T]> = wr.iter().map(|a| a.as_slice().unwrap_or(&[])).collect();
    let bsl: Vec<&[T]> = br.iter().map(|a| a.as_slice().unwrap_or(&[])).collect();
    let outs: Vec<Bound<'py, PyArrayDyn<T>>> = sizes[1..]
        .iter()
        .map(|&s| new_array::<T>(py, &[n, s]))
        .collect();
    let mut ow: Vec<PyReadwriteArrayDyn<'py, T>> = outs
        .iter()
        .map(|o| o.try_readwrite())
        .collect::<Result<_, _>>()?;
    let mut mus: Vec<&mut [T]> = ow
        .iter_mut()
        .map(|o| o.as_slice_mut().map_err(|_| not_contiguous(OP, "mu")))
        .collect::<PyResult<_>>()?;
    let d = krbm::Dbm {
        w: wsl,
        b: bsl,
        sizes: &sizes,
    };
    let sweeps = run(py, OP, || krbm::mean_field(&d, vs, n, &mut mus, iters, tol))?;
    drop(mus);
    drop(ow);
    let list = pyo3::types::PyList::new(py, outs)?;
    PyTuple::new(py, [list.into_any(), sweeps.into_pyobject(py)?.into_any()])
}

/// dbm_mean_field(v, weights, biases, iters, tol) -> ([mu_1, ..., mu_L], sweeps): the
/// mean-field posterior of every hidden layer; weights[l] (sizes[l + 1], sizes[l]),
/// biases[l] (sizes[l]) for l = 0..L (layer 0 visible).
#[pyfunction]
fn dbm_mean_field<'py>(
    py: Python<'py>,
    v: &Bound<'py, PyAny>,
    weights: Vec<Bound<'py, PyAny>>,
    biases: Vec<Bound<'py, PyAny>>,
    iters: usize,
    tol: f64,
) -> PyResult<Bound<'py, PyTuple>> {
    const OP: &str = "dbm_mean_field";
    with_float!(arr(OP, "v", v)?, |a| mf_t(
        py, &a, &weights, &biases, iters, tol
    ))
}

#[allow(clippy::too_many_arguments)]
fn dbm_gibbs_t<'py, T: Float + Element>(
    py: Python<'py>,
    states: &[Bound<'py, PyAny>],
    ws: &[Bound<'py, PyAny>],
    bs: &[Bound<'py, PyAny>],
    sweeps: usize,
    seed: u64,
    stream: u64,
    clamp_visible: bool,
) -> PyResult<Bound<'py, PyTuple>> {
    const OP: &str = "dbm_gibbs";
    let sizes = dbm_sizes(OP, ws)?;
    let s0: Vec<usize> = states
        .first()
        .ok_or_else(|| PyValueError::new_err(format!("{OP}: expected one state per layer")))?
        .getattr("shape")?
        .extract()?;
    let (m, _) = dims2(OP, "states[0]", &s0)?;
    let wr = ro_list::<T>(OP, "weights", ws, &wshapes(&sizes))?;
    let br = ro_list::<T>(OP, "biases", bs, &bshapes(&sizes))?;
    let mut sr = rw_list::<T>(OP, "states", states, &rows_shapes(&sizes, m))?;
    let wsl: Vec<&[T]> = wr.iter().map(|a| a.as_slice().unwrap_or(&[])).collect();
    let bsl: Vec<&[T]> = br.iter().map(|a| a.as_slice().unwrap_or(&[])).collect();
    let mut ss: Vec<&mut [T]> = sr
        .iter_mut()
        .map(|o| o.as_slice_mut().map_err(|_| not_contiguous(OP, "states")))
        .collect::<PyResult<_>>()?;
    let probs: Vec<Bound<'py, PyArrayDyn<T>>> =
        sizes.iter().map(|&s| new_array::<T>(py, &[m, s])).collect();
    let mut pw: Vec<PyReadwriteArrayDyn<'py, T>> = probs
        .iter()
        .map(|o| o.try_readwrite())
        .collect::<Result<_, _>>()?;
    let mut ps: Vec<&mut [T]> = pw
        .iter_mut()
        .map(|o| o.as_slice_mut().map_err(|_| not_contiguous(OP, "probs")))
        .collect::<PyResult<_>>()?;
    // Layers never updated keep their state as "probabilities".
    for (p, s) in ps.iter_mut().zip(ss.iter()) {
        p.copy_from_slice(s);
    }
    let d = krbm::Dbm {
        w: wsl,
        b: bsl,
        sizes: &sizes,
    };
    let next = run(py, OP, || {
        krbm::dbm_gibbs(&d, &mut ss, &mut ps, m, sweeps, seed, stream, clamp_visible)
    })?;
    drop(ps);
    drop(pw);
    let list = pyo3::types::PyList::new(py, probs)?;
    PyTuple::new(py, [list.into_any(), next.into_pyobject(py)?.into_any()])
}

/// dbm_gibbs(states, weights, biases, sweeps, seed, stream, clamp_visible=False) ->
/// ([probs per layer], next_stream): Gibbs sweeps of the chains in place; states[l]
/// (m, sizes[l]) for every layer including the visible one.
#[pyfunction]
#[pyo3(signature = (states, weights, biases, sweeps, seed, stream, clamp_visible=false))]
#[allow(clippy::too_many_arguments)]
fn dbm_gibbs<'py>(
    py: Python<'py>,
    states: Vec<Bound<'py, PyAny>>,
    weights: Vec<Bound<'py, PyAny>>,
    biases: Vec<Bound<'py, PyAny>>,
    sweeps: usize,
    seed: u64,
    stream: u64,
    clamp_visible: bool,
) -> PyResult<Bound<'py, PyTuple>> {
    const OP: &str = "dbm_gibbs";
    let first = states
        .first()
        .ok_or_else(|| PyValueError::new_err(format!("{OP}: expected one state per layer")))?;
    match arr(OP, "states[0]", first)? {
        Arr::F32(_) => dbm_gibbs_t::<f32>(
            py,
            &states,
            &weights,
            &biases,
            sweeps,
            seed,
            stream,
            clamp_visible,
        ),
        Arr::F64(_) => dbm_gibbs_t::<f64>(
            py,
            &states,
            &weights,
            &biases,
            sweeps,
            seed,
            stream,
            clamp_visible,
        ),
    }
}

#[allow(clippy::too_many_arguments)]
fn dbm_fit_t<T: Float + Element>(
    py: Python<'_>,
    ws: &[Bound<'_, PyAny>],
    bs: &[Bound<'_, PyAny>],
    vws: &[Bound<'_, PyAny>],
    vbs: &[Bound<'_, PyAny>],
    chains: &[Bound<'_, PyAny>],
    data: &Bound<'_, PyAny>,
    bounds: &Bound<'_, PyAny>,
    epochs: usize,
    p: krbm::DbmParams,
    stream: u64,
) -> PyResult<u64> {
    const OP: &str = "dbm_fit";
    let sizes = dbm_sizes(OP, ws)?;
    let d = same::<T>(OP, "data", data)?;
    let (n, c) = dims2(OP, "data", d.shape())?;
    if c != sizes[0] {
        return Err(PyValueError::new_err(format!(
            "{OP}: data has {c} features, the DBM's visible layer {}",
            sizes[0]
        )));
    }
    let b = bounds_of(OP, bounds, n)?;
    let c0: Vec<usize> = chains
        .first()
        .ok_or_else(|| PyValueError::new_err(format!("{OP}: expected one chain state per layer")))?
        .getattr("shape")?
        .extract()?;
    let (m, _) = dims2(OP, "chains[0]", &c0)?;
    let mut wr = rw_list::<T>(OP, "weights", ws, &wshapes(&sizes))?;
    let mut br = rw_list::<T>(OP, "biases", bs, &bshapes(&sizes))?;
    let mut vwr = rw_list::<T>(OP, "vel_weights", vws, &wshapes(&sizes))?;
    let mut vbr = rw_list::<T>(OP, "vel_biases", vbs, &bshapes(&sizes))?;
    let mut cr = rw_list::<T>(OP, "chains", chains, &rows_shapes(&sizes, m))?;
    let dr = ro::<T>(OP, "data", data, &[n, c])?;
    let ds = dr.as_slice().map_err(|_| not_contiguous(OP, "data"))?;
    let mut wsl: Vec<&mut [T]> = wr
        .iter_mut()
        .map(|o| o.as_slice_mut().map_err(|_| not_contiguous(OP, "weights")))
        .collect::<PyResult<_>>()?;
    let mut bsl: Vec<&mut [T]> = br
        .iter_mut()
        .map(|o| o.as_slice_mut().map_err(|_| not_contiguous(OP, "biases")))
        .collect::<PyResult<_>>()?;
    let mut vwsl: Vec<&mut [T]> = vwr
        .iter_mut()
        .map(|o| {
            o.as_slice_mut()
                .map_err(|_| not_contiguous(OP, "vel_weights"))
        })
        .collect::<PyResult<_>>()?;
    let mut vbsl: Vec<&mut [T]> = vbr
        .iter_mut()
        .map(|o| {
            o.as_slice_mut()
                .map_err(|_| not_contiguous(OP, "vel_biases"))
        })
        .collect::<PyResult<_>>()?;
    let mut csl: Vec<&mut [T]> = cr
        .iter_mut()
        .map(|o| o.as_slice_mut().map_err(|_| not_contiguous(OP, "chains")))
        .collect::<PyResult<_>>()?;
    run(py, OP, || {
        krbm::dbm_fit(
            &mut wsl, &mut bsl, &mut vwsl, &mut vbsl, &sizes, &mut csl, m, ds, n, &b, epochs, &p,
            stream,
        )
    })
}

/// dbm_fit(weights, biases, vel_weights, vel_biases, chains, data, bounds, epochs, lr,
/// momentum, weight_decay, mf_iters, mf_tol, gibbs_steps, seed, stream) -> next stream:
/// joint training in place (see `ferrograd_kernels::rbm::dbm_fit`).
#[pyfunction]
#[pyo3(signature = (weights, biases, vel_weights, vel_biases, chains, data, bounds, epochs,
    lr, momentum, weight_decay, mf_iters, mf_tol, gibbs_steps, seed, stream))]
#[allow(clippy::too_many_arguments)]
fn dbm_fit(
    py: Python<'_>,
    weights: Vec<Bound<'_, PyAny>>,
    biases: Vec<Bound<'_, PyAny>>,
    vel_weights: Vec<Bound<'_, PyAny>>,
    vel_biases: Vec<Bound<'_, PyAny>>,
    chains: Vec<Bound<'_, PyAny>>,
    data: &Bound<'_, PyAny>,
    bounds: &Bound<'_, PyAny>,
    epochs: usize,
    lr: f64,
    momentum: f64,
    weight_decay: f64,
    mf_iters: usize,
    mf_tol: f64,
    gibbs_steps: usize,
    seed: u64,
    stream: u64,
) -> PyResult<u64> {
    const OP: &str = "dbm_fit";
    finite_all(
        OP,
        "lr, momentum, weight_decay, mf_tol",
        &[lr, momentum, weight_decay, mf_tol],
    )?;
    let p = krbm::DbmParams {
        lr,
        momentum,
        weight_decay,
        mf_iters,
        mf_tol,
        gibbs_steps,
        seed,
    };
    let first = weights.first().ok_or_else(|| {
        PyValueError::new_err(format!("{OP}: expected at least one weight matrix"))
    })?;
    match arr(OP, "weights[0]", first)? {
        Arr::F32(_) => dbm_fit_t::<f32>(
            py,
            &weights,
            &biases,
            &vel_weights,
            &vel_biases,
            &chains,
            data,
            bounds,
            epochs,
            p,
            stream,
        ),
        Arr::F64(_) => dbm_fit_t::<f64>(
            py,
            &weights,
            &biases,
            &vel_weights,
            &vel_biases,
            &chains,
            data,
            bounds,
            epochs,
            p,
            stream,
        ),
    }
}
