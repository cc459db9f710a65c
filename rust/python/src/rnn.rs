//! Bindings of the rnn kernels: one layer in one direction over a whole sequence, forward
//! (`rnn_forward`) and backpropagation through time (`rnn_backward`).
//!
//! Every shape, dtype and contiguity is checked here before a kernel runs; the kernels
//! check lengths again. The forward writes into caller-provided `out`, `h_n`, `c_n` (so
//! both directions of a layer fill one output array); the backward can accumulate into a
//! caller-provided `dx`. Everything else returned is a new array.

use crate::common::{arr, check_shape, not_contiguous, run, same, with_float};
use ferrograd_kernels::rnn::{self as krnn, Cell, Dims, Grads, Weights};
use ferrograd_kernels::Float;
use numpy::{Element, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

fn err(op: &str, msg: String) -> PyErr {
    PyValueError::new_err(format!("{op}: {msg}"))
}

fn parse_mode(op: &str, mode: &str) -> PyResult<Cell> {
    Ok(match mode {
        "RNN_TANH" => Cell::RnnTanh,
        "RNN_RELU" => Cell::RnnRelu,
        "LSTM" => Cell::Lstm,
        "GRU" => Cell::Gru,
        _ => {
            return Err(err(
                op,
                format!("unknown mode {mode:?}; expected RNN_TANH, RNN_RELU, LSTM or GRU"),
            ))
        }
    })
}

/// A new C-contiguous array of `dims` from `numpy.empty`, so that an allocation failure is
/// a MemoryError, not a panic. The kernels write every element before it is returned.
fn alloc<'py, T: Float + Element>(
    py: Python<'py>,
    dims: &[usize],
) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    let np = py.import("numpy")?;
    let dtype = if T::IS_F64 { "float64" } else { "float32" };
    let shape = PyTuple::new(py, dims)?;
    let a = np.getattr("empty")?.call1((shape, dtype))?;
    Ok(a.cast_into::<PyArrayDyn<T>>()?)
}

/// The layer geometry from x (3-D) and the two weights.
fn dims(
    op: &str,
    cell: Cell,
    xs: &[usize],
    wih: &[usize],
    whh: &[usize],
    batch_first: bool,
    reverse: bool,
) -> PyResult<Dims> {
    let layout = if batch_first {
        "(batch, seq, input)"
    } else {
        "(seq, batch, input)"
    };
    let [a, b, i] = xs else {
        return Err(err(
            op,
            format!("x must be 3-D {layout}, given shape {xs:?}"),
        ));
    };
    let (seq, batch) = if batch_first { (*b, *a) } else { (*a, *b) };
    let g = cell.gates();
    let [gh2, h] = whh else {
        return Err(err(
            op,
            format!("weight_hh must be 2-D ({g} * hidden, hidden), given shape {whh:?}"),
        ));
    };
    if *h == 0 || *gh2 != g * h {
        return Err(err(
            op,
            format!(
                "weight_hh must have shape ({g} * hidden, hidden) with hidden >= 1, given {whh:?}"
            ),
        ));
    }
    let want = [g * h, *i];
    if wih != want {
        return Err(err(
            op,
            format!(
                "weight_ih must have shape {want:?} (x {xs:?}, weight_hh {whh:?}), given {wih:?}"
            ),
        ));
    }
    Ok(Dims {
        seq,
        batch,
        input: *i,
        hidden: *h,
        batch_first,
        reverse,
    })
}

/// Lengths as usize (the kernel checks their range).
fn lengths_vec(op: &str, lengths: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Vec<usize>>> {
    let Some(l) = lengths else { return Ok(None) };
    let a = l.cast::<PyArrayDyn<i64>>().map_err(|_| {
        err(
            op,
            format!(
                "lengths must be an int64 NumPy array, given {}",
                crate::common::describe(l)
            ),
        )
    })?;
    let r = a.try_readonly()?;
    if r.ndim() != 1 {
        return Err(err(
            op,
            format!("lengths must be 1-D, given shape {:?}", r.shape()),
        ));
    }
    let v = r.as_array();
    let mut out = Vec::with_capacity(v.len());
    for (b, &x) in v.iter().enumerate() {
        if x < 1 {
            return Err(err(op, format!("lengths[{b}] = {x} must be at least 1")));
        }
        out.push(x as usize);
    }
    Ok(Some(out))
}

fn opt_same<'py, T: Element>(
    op: &str,
    name: &str,
    x: Option<&Bound<'py, PyAny>>,
) -> PyResult<Option<Bound<'py, PyArrayDyn<T>>>> {
    x.map(|x| same::<T>(op, name, x)).transpose()
}

fn ro<'py, T: Element>(
    x: &Option<Bound<'py, PyArrayDyn<T>>>,
) -> PyResult<Option<PyReadonlyArrayDyn<'py, T>>> {
    Ok(match x {
        Some(a) => Some(a.try_readonly()?),
        None => None,
    })
}

fn sl<'a, T: Element>(
    op: &str,
    name: &str,
    r: &'a Option<PyReadonlyArrayDyn<'_, T>>,
) -> PyResult<Option<&'a [T]>> {
    r.as_ref()
        .map(|r| r.as_slice().map_err(|_| not_contiguous(op, name)))
        .transpose()
}

/// The (rows, ld) view of a 3-D array with the first two dims of x; checks offset + H.
fn view3(op: &str, name: &str, s: &[usize], xs: &[usize], off: usize, h: usize) -> PyResult<usize> {
    if s.len() != 3 || s[0] != xs[0] || s[1] != xs[1] || s[2] < off.saturating_add(h) {
        return Err(err(
            op,
            format!(
                "{name} must be 3-D ({}, {}, >= offset + hidden = {}), given shape {s:?}",
                xs[0],
                xs[1],
                off.saturating_add(h)
            ),
        ));
    }
    Ok(s[2])
}

#[allow(clippy::too_many_arguments)]
fn forward_t<'py, T: Float + Element>(
    py: Python<'py>,
    cell: Cell,
    x: &Bound<'py, PyArrayDyn<T>>,
    w_ih: &Bound<'py, PyAny>,
    w_hh: &Bound<'py, PyAny>,
    b_ih: Option<&Bound<'py, PyAny>>,
    b_hh: Option<&Bound<'py, PyAny>>,
    h0: Option<&Bound<'py, PyAny>>,
    c0: Option<&Bound<'py, PyAny>>,
    lengths: Option<&Bound<'py, PyAny>>,
    out: &Bound<'py, PyAny>,
    offset: usize,
    h_n: &Bound<'py, PyAny>,
    c_n: Option<&Bound<'py, PyAny>>,
    batch_first: bool,
    reverse: bool,
    save: bool,
    workspace: Option<&Bound<'py, PyAny>>,
) -> PyResult<Option<Bound<'py, PyArrayDyn<T>>>> {
    const OP: &str = "rnn_forward";
    let w_ih = same::<T>(OP, "weight_ih", w_ih)?;
    let w_hh = same::<T>(OP, "weight_hh", w_hh)?;
    let d = dims(
        OP,
        cell,
        x.shape(),
        w_ih.shape(),
        w_hh.shape(),
        batch_first,
        reverse,
    )?;
    let gh = cell.gates() * d.hidden;
    let b_ih = opt_same::<T>(OP, "bias_ih", b_ih)?;
    let b_hh = opt_same::<T>(OP, "bias_hh", b_hh)?;
    for b in [&b_ih, &b_hh].into_iter().flatten() {
        check_shape(OP, "bias", &[gh], b.shape())?;
    }
    let bh = [d.batch, d.hidden];
    let h0 = opt_same::<T>(OP, "h0", h0)?;
    let c0 = opt_same::<T>(OP, "c0", c0)?;
    let h_n = same::<T>(OP, "h_n", h_n)?;
    let c_n = opt_same::<T>(OP, "c_n", c_n)?;
    for (name, a) in [("h0", &h0), ("c0", &c0), ("c_n", &c_n)] {
        if let Some(a) = a {
            check_shape(OP, name, &bh, a.shape())?;
        }
    }
    check_shape(OP, "h_n", &bh, h_n.shape())?;
    let is_lstm = cell == Cell::Lstm;
    if is_lstm != c_n.is_some() || (!is_lstm && c0.is_some()) {
        return Err(err(
            OP,
            "c0 / c_n are given for LSTM only (c_n is required there)".into(),
        ));
    }
    let out = same::<T>(OP, "out", out)?;
    let ldo = view3(OP, "out", out.shape(), x.shape(), offset, d.hidden)?;
    let lens = lengths_vec(OP, lengths)?;
    let ws = if save {
        let wlen = krnn::workspace_len(cell, &d).map_err(crate::common::kernel_err)?;
        Some(match workspace {
            Some(a) => {
                let a = same::<T>(OP, "workspace", a)?;
                check_shape(OP, "workspace", &[wlen], a.shape())?;
                a
            }
            None => alloc::<T>(py, &[wlen])?,
        })
    } else {
        None
    };

    let xr = x.try_readonly()?;
    let wir = w_ih.try_readonly()?;
    let whr = w_hh.try_readonly()?;
    let (bir, bhr, h0r, c0r) = (ro(&b_ih)?, ro(&b_hh)?, ro(&h0)?, ro(&c0)?);
    let xs = xr.as_slice().map_err(|_| not_contiguous(OP, "x"))?;
    let wis = wir
        .as_slice()
        .map_err(|_| not_contiguous(OP, "weight_ih"))?;
    let whs = whr
        .as_slice()
        .map_err(|_| not_contiguous(OP, "weight_hh"))?;
    let bis = sl(OP, "bias_ih", &bir)?;
    let bhs = sl(OP, "bias_hh", &bhr)?;
    let h0s = sl(OP, "h0", &h0r)?;
    let c0s = sl(OP, "c0", &c0r)?;
    let mut ow = out.try_readwrite()?;
    let os = ow.as_slice_mut().map_err(|_| not_contiguous(OP, "out"))?;
    let mut hw = h_n.try_readwrite()?;
    let hs = hw.as_slice_mut().map_err(|_| not_contiguous(OP, "h_n"))?;
    let mut cw = match &c_n {
        Some(a) => Some(a.try_readwrite()?),
        None => None,
    };
    let cs = match cw.as_mut() {
        Some(a) => Some(a.as_slice_mut().map_err(|_| not_contiguous(OP, "c_n"))?),
        None => None,
    };
    let mut wsw = match &ws {
        Some(a) => Some(a.try_readwrite()?),
        None => None,
    };
    let wss = match wsw.as_mut() {
        Some(a) => Some(
            a.as_slice_mut()
                .map_err(|_| not_contiguous(OP, "workspace"))?,
        ),
        None => None,
    };
    let w = Weights {
        w_ih: wis,
        w_hh: whs,
        b_ih: bis,
        b_hh: bhs,
    };
    let lens_ref = lens.as_deref();
    run(py, OP, || {
        krnn::forward(
            cell, &d, xs, &w, h0s, c0s, lens_ref, os, ldo, offset, hs, cs, wss,
        )
    })?;
    drop(wsw);
    Ok(ws)
}

/// rnn_forward(mode, x, weight_ih, weight_hh, bias_ih, bias_hh, h0, c0, lengths, out,
/// offset, h_n, c_n, batch_first, reverse, save, workspace=None) -> workspace or None.
///
/// One layer in one direction over the whole sequence. mode: RNN_TANH, RNN_RELU, LSTM or
/// GRU. x: (seq, batch, input) or, with batch_first, (batch, seq, input); weight_ih
/// (G H, input); weight_hh (G H, H); biases (G H) or None; h0 / c0 (batch, H) or None
/// (zeros; c0 LSTM only); lengths: int64 (batch,) in 1..=seq, or None. Writes in place:
/// out (same first two dims as x, last dim >= offset + H; this direction fills columns
/// offset .. offset + H), h_n (batch, H) and c_n (batch, H, LSTM only, else None).
/// Returns the workspace backward needs when save is true: `workspace` when given (a
/// (workspace length,) array to reuse, overwritten), else a new array. All C-contiguous,
/// one dtype.
#[pyfunction]
#[pyo3(signature = (mode, x, weight_ih, weight_hh, bias_ih, bias_hh, h0, c0, lengths, out, offset, h_n, c_n, batch_first, reverse, save, workspace=None))]
#[allow(clippy::too_many_arguments)]
fn rnn_forward<'py>(
    py: Python<'py>,
    mode: &str,
    x: &Bound<'py, PyAny>,
    weight_ih: &Bound<'py, PyAny>,
    weight_hh: &Bound<'py, PyAny>,
    bias_ih: Option<&Bound<'py, PyAny>>,
    bias_hh: Option<&Bound<'py, PyAny>>,
    h0: Option<&Bound<'py, PyAny>>,
    c0: Option<&Bound<'py, PyAny>>,
    lengths: Option<&Bound<'py, PyAny>>,
    out: &Bound<'py, PyAny>,
    offset: usize,
    h_n: &Bound<'py, PyAny>,
    c_n: Option<&Bound<'py, PyAny>>,
    batch_first: bool,
    reverse: bool,
    save: bool,
    workspace: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    const OP: &str = "rnn_forward";
    let cell = parse_mode(OP, mode)?;
    let none = || py.None().into_bound(py);
    Ok(with_float!(arr(OP, "x", x)?, |x| forward_t(
        py,
        cell,
        &x,
        weight_ih,
        weight_hh,
        bias_ih,
        bias_hh,
        h0,
        c0,
        lengths,
        out,
        offset,
        h_n,
        c_n,
        batch_first,
        reverse,
        save,
        workspace,
    )?
    .map_or_else(none, |a| a.into_any())))
}

#[allow(clippy::too_many_arguments)]
fn backward_t<'py, T: Float + Element>(
    py: Python<'py>,
    cell: Cell,
    x: &Bound<'py, PyArrayDyn<T>>,
    w_ih: &Bound<'py, PyAny>,
    w_hh: &Bound<'py, PyAny>,
    lengths: Option<&Bound<'py, PyAny>>,
    ws: &Bound<'py, PyAny>,
    g_out: Option<&Bound<'py, PyAny>>,
    offset: usize,
    g_hn: Option<&Bound<'py, PyAny>>,
    g_cn: Option<&Bound<'py, PyAny>>,
    dx: Option<&Bound<'py, PyAny>>,
    accumulate_dx: bool,
    has_bias: bool,
    batch_first: bool,
    reverse: bool,
) -> PyResult<Bound<'py, PyTuple>> {
    const OP: &str = "rnn_backward";
    let w_ih = same::<T>(OP, "weight_ih", w_ih)?;
    let w_hh = same::<T>(OP, "weight_hh", w_hh)?;
    let d = dims(
        OP,
        cell,
        x.shape(),
        w_ih.shape(),
        w_hh.shape(),
        batch_first,
        reverse,
    )?;
    let gh = cell.gates() * d.hidden;
    let ws = same::<T>(OP, "workspace", ws)?;
    let wlen = krnn::workspace_len(cell, &d).map_err(crate::common::kernel_err)?;
    check_shape(OP, "workspace", &[wlen], ws.shape())?;
    let g_out = opt_same::<T>(OP, "g_out", g_out)?;
    let ldg = match &g_out {
        Some(g) => view3(OP, "g_out", g.shape(), x.shape(), offset, d.hidden)?,
        None => offset + d.hidden,
    };
    let bh = [d.batch, d.hidden];
    let g_hn = opt_same::<T>(OP, "g_hn", g_hn)?;
    let g_cn = opt_same::<T>(OP, "g_cn", g_cn)?;
    for (name, a) in [("g_hn", &g_hn), ("g_cn", &g_cn)] {
        if let Some(a) = a {
            check_shape(OP, name, &bh, a.shape())?;
        }
    }
    let is_lstm = cell == Cell::Lstm;
    if !is_lstm && g_cn.is_some() {
        return Err(err(OP, "g_cn is given for LSTM only".into()));
    }
    let dx = opt_same::<T>(OP, "dx", dx)?;
    if let Some(a) = &dx {
        check_shape(OP, "dx", x.shape(), a.shape())?;
    }
    let lens = lengths_vec(OP, lengths)?;
    let dh0 = alloc::<T>(py, &bh)?;
    let dc0 = if is_lstm {
        Some(alloc::<T>(py, &bh)?)
    } else {
        None
    };
    let dw_ih = alloc::<T>(py, w_ih.shape())?;
    let dw_hh = alloc::<T>(py, w_hh.shape())?;
    let db_ih = if has_bias {
        Some(alloc::<T>(py, &[gh])?)
    } else {
        None
    };
    let db_hh = if has_bias {
        Some(alloc::<T>(py, &[gh])?)
    } else {
        None
    };
    {
        let xr = x.try_readonly()?;
        let wir = w_ih.try_readonly()?;
        let whr = w_hh.try_readonly()?;
        let wsr = ws.try_readonly()?;
        let (gor, ghr, gcr) = (ro(&g_out)?, ro(&g_hn)?, ro(&g_cn)?);
        let xs = xr.as_slice().map_err(|_| not_contiguous(OP, "x"))?;
        let wis = wir
            .as_slice()
            .map_err(|_| not_contiguous(OP, "weight_ih"))?;
        let whs = whr
            .as_slice()
            .map_err(|_| not_contiguous(OP, "weight_hh"))?;
        let wss = wsr
            .as_slice()
            .map_err(|_| not_contiguous(OP, "workspace"))?;
        let gos = sl(OP, "g_out", &gor)?;
        let ghs = sl(OP, "g_hn", &ghr)?;
        let gcs = sl(OP, "g_cn", &gcr)?;
        let mut dxw = match &dx {
            Some(a) => Some(a.try_readwrite()?),
            None => None,
        };
        let dxs = match dxw.as_mut() {
            Some(a) => Some(a.as_slice_mut().map_err(|_| not_contiguous(OP, "dx"))?),
            None => None,
        };
        let mut dh0w = dh0.try_readwrite()?;
        let mut dc0w = match &dc0 {
            Some(a) => Some(a.try_readwrite()?),
            None => None,
        };
        let mut dwiw = dw_ih.try_readwrite()?;
        let mut dwhw = dw_hh.try_readwrite()?;
        let mut dbiw = match &db_ih {
            Some(a) => Some(a.try_readwrite()?),
            None => None,
        };
        let mut dbhw = match &db_hh {
            Some(a) => Some(a.try_readwrite()?),
            None => None,
        };
        let gr = Grads {
            dx: dxs,
            accumulate_dx,
            dh0: dh0w.as_slice_mut().map_err(|_| not_contiguous(OP, "dh0"))?,
            dc0: match dc0w.as_mut() {
                Some(a) => Some(a.as_slice_mut().map_err(|_| not_contiguous(OP, "dc0"))?),
                None => None,
            },
            dw_ih: dwiw
                .as_slice_mut()
                .map_err(|_| not_contiguous(OP, "dw_ih"))?,
            dw_hh: dwhw
                .as_slice_mut()
                .map_err(|_| not_contiguous(OP, "dw_hh"))?,
            db_ih: match dbiw.as_mut() {
                Some(a) => Some(a.as_slice_mut().map_err(|_| not_contiguous(OP, "db_ih"))?),
                None => None,
            },
            db_hh: match dbhw.as_mut() {
                Some(a) => Some(a.as_slice_mut().map_err(|_| not_contiguous(OP, "db_hh"))?),
                None => None,
            },
        };
        let lens_ref = lens.as_deref();
        run(py, OP, || {
            krnn::backward(
                cell, &d, xs, wis, whs, lens_ref, wss, gos, ldg, offset, ghs, gcs, gr,
            )
        })?;
    }
    let none = || py.None().into_bound(py);
    PyTuple::new(
        py,
        [
            dh0.into_any(),
            dc0.map_or_else(none, |a| a.into_any()),
            dw_ih.into_any(),
            dw_hh.into_any(),
            db_ih.map_or_else(none, |a| a.into_any()),
            db_hh.map_or_else(none, |a| a.into_any()),
        ],
    )
}

/// rnn_backward(mode, x, weight_ih, weight_hh, lengths, workspace, g_out, offset, g_hn,
/// g_cn, dx, accumulate_dx, has_bias, batch_first, reverse)
/// -> (dh0, dc0 or None, dweight_ih, dweight_hh, dbias_ih or None, dbias_hh or None).
///
/// Backpropagation through time of one `rnn_forward(..., save=True)` call with the same
/// arguments. g_out: the gradient of `out` (columns offset .. offset + H are read) or
/// None; g_hn / g_cn: of h_n / c_n or None (zero). dx, when given (x's shape), receives
/// the input gradient in place: added to it with accumulate_dx, else overwritten.
#[pyfunction]
#[pyo3(signature = (mode, x, weight_ih, weight_hh, lengths, workspace, g_out, offset, g_hn, g_cn, dx, accumulate_dx, has_bias, batch_first, reverse))]
#[allow(clippy::too_many_arguments)]
fn rnn_backward<'py>(
    py: Python<'py>,
    mode: &str,
    x: &Bound<'py, PyAny>,
    weight_ih: &Bound<'py, PyAny>,
    weight_hh: &Bound<'py, PyAny>,
    lengths: Option<&Bound<'py, PyAny>>,
    workspace: &Bound<'py, PyAny>,
    g_out: Option<&Bound<'py, PyAny>>,
    offset: usize,
    g_hn: Option<&Bound<'py, PyAny>>,
    g_cn: Option<&Bound<'py, PyAny>>,
    dx: Option<&Bound<'py, PyAny>>,
    accumulate_dx: bool,
    has_bias: bool,
    batch_first: bool,
    reverse: bool,
) -> PyResult<Bound<'py, PyTuple>> {
    const OP: &str = "rnn_backward";
    let cell = parse_mode(OP, mode)?;
    with_float!(arr(OP, "x", x)?, |x| backward_t(
        py,
        cell,
        &x,
        weight_ih,
        weight_hh,
        lengths,
        workspace,
        g_out,
        offset,
        g_hn,
        g_cn,
        dx,
        accumulate_dx,
        has_bias,
        batch_first,
        reverse,
    ))
}

/// Adds this module's functions to `ferrograd._native`.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(rnn_forward, m)?)?;
    m.add_function(wrap_pyfunction!(rnn_backward, m)?)?;
    Ok(())
}
