//! Bindings of the conv kernels: conv2d and conv_transpose2d, forward and backward (NCHW).
//!
//! Every argument is checked here (ranks, channel counts, groups, strides, dilations,
//! paddings, output sizes, dtypes, contiguity) before any kernel runs; the kernels check
//! the buffer lengths again. Errors are ValueError / TypeError naming the op and the
//! shapes, never a panic.

use crate::common::{arr, check_shape, not_contiguous, run, same, Arr};
use ferrograd_kernels::conv::{self as kconv, Conv2dGeom};
use ferrograd_kernels::Float;
use numpy::{Element, PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

type Pair = (i64, i64);

/// A new C-contiguous array of `dims` from `numpy.empty`, so that an allocation failure
/// (an absurd but valid output size) is a MemoryError, not a panic. Every element is
/// written by a kernel before the array is returned.
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
type Quad = (i64, i64, i64, i64);

fn err(op: &str, msg: String) -> PyErr {
    PyValueError::new_err(format!("{op}: {msg}"))
}

/// A pair of integers each at least `min`, as usize.
fn pair(op: &str, name: &str, p: Pair, min: i64) -> PyResult<(usize, usize)> {
    const MAX: i64 = 1 << 31;
    if p.0 < min || p.1 < min || p.0 > MAX || p.1 > MAX {
        return Err(err(
            op,
            format!("{name} must be at least {min} (and below 2^31), given {p:?}"),
        ));
    }
    Ok((p.0 as usize, p.1 as usize))
}

fn positive(op: &str, name: &str, v: i64) -> PyResult<usize> {
    if !(1..=(1 << 31)).contains(&v) {
        return Err(err(op, format!("{name} must be at least 1, given {v}")));
    }
    Ok(v as usize)
}

fn four_d(op: &str, name: &str, s: &[usize], layout: &str) -> PyResult<[usize; 4]> {
    match s {
        [a, b, c, d] => Ok([*a, *b, *c, *d]),
        _ => Err(err(
            op,
            format!("{name} must be 4-D {layout}, given shape {s:?}"),
        )),
    }
}

/// The geometry of conv2d(x, w) with padding (top, bottom, left, right).
fn conv_geom(
    op: &str,
    xs: &[usize],
    ws: &[usize],
    stride: Pair,
    padding: Quad,
    dilation: Pair,
    groups: i64,
) -> PyResult<Conv2dGeom> {
    let [n, c, h, w] = four_d(op, "input", xs, "(N, C, H, W)")?;
    let [k, cw, kh, kw] = four_d(
        op,
        "weight",
        ws,
        "(out_channels, in_channels / groups, kH, kW)",
    )?;
    let (sh, sw) = pair(op, "stride", stride, 1)?;
    let (dh, dw) = pair(op, "dilation", dilation, 1)?;
    let (pt, pb) = pair(op, "padding (top, bottom)", (padding.0, padding.1), 0)?;
    let (pl, pr) = pair(op, "padding (left, right)", (padding.2, padding.3), 0)?;
    let groups = positive(op, "groups", groups)?;
    if kh == 0 || kw == 0 || k == 0 || cw == 0 {
        return Err(err(
            op,
            format!("weight must have no zero dimension, given shape {ws:?}"),
        ));
    }
    if k % groups != 0 {
        return Err(err(
            op,
            format!("groups ({groups}) must divide out_channels ({k})"),
        ));
    }
    if cw.checked_mul(groups) != Some(c) {
        return Err(err(
            op,
            format!(
                "input has {c} channels, shape {xs:?}; expected {} (weight {ws:?} with groups={groups})",
                cw.saturating_mul(groups)
            ),
        ));
    }
    let oh = kconv::out_size(h, pt, pb, kh, sh, dh);
    let ow = kconv::out_size(w, pl, pr, kw, sw, dw);
    let (Some(oh), Some(ow)) = (oh, ow) else {
        return Err(err(
            op,
            format!(
                "the kernel ({kh}, {kw}) with dilation ({dh}, {dw}) is larger than the padded \
                 input ({}, {}) (input shape {xs:?})",
                h + pt + pb,
                w + pl + pr
            ),
        ));
    };
    let g = Conv2dGeom {
        n,
        c,
        h,
        w,
        k,
        kh,
        kw,
        sh,
        sw,
        ph: pt,
        pw: pl,
        dh,
        dw,
        groups,
        oh,
        ow,
    };
    g.validate("conv2d").map_err(crate::common::kernel_err)?;
    Ok(g)
}

/// The geometry of the convolution whose input gradient is conv_transpose2d(x, w): its
/// input is the transposed convolution's output.
#[allow(clippy::too_many_arguments)]
fn transpose_geom(
    op: &str,
    xs: &[usize],
    ws: &[usize],
    stride: Pair,
    padding: Pair,
    output_padding: Pair,
    dilation: Pair,
    groups: i64,
) -> PyResult<Conv2dGeom> {
    let [n, cin, h, w] = four_d(op, "input", xs, "(N, C, H, W)")?;
    let [wi, cog, kh, kw] = four_d(
        op,
        "weight",
        ws,
        "(in_channels, out_channels / groups, kH, kW)",
    )?;
    let (sh, sw) = pair(op, "stride", stride, 1)?;
    let (dh, dw) = pair(op, "dilation", dilation, 1)?;
    let (ph, pw) = pair(op, "padding", padding, 0)?;
    let (oph, opw) = pair(op, "output_padding", output_padding, 0)?;
    let groups = positive(op, "groups", groups)?;
    if kh == 0 || kw == 0 || cog == 0 || wi == 0 {
        return Err(err(
            op,
            format!("weight must have no zero dimension, given shape {ws:?}"),
        ));
    }
    if wi != cin {
        return Err(err(
            op,
            format!("input has {cin} channels, shape {xs:?}; expected {wi} (weight {ws:?})"),
        ));
    }
    if cin % groups != 0 {
        return Err(err(
            op,
            format!("groups ({groups}) must divide in_channels ({cin})"),
        ));
    }
    if oph >= sh.max(dh) || opw >= sw.max(dw) {
        return Err(err(
            op,
            format!(
                "output_padding ({oph}, {opw}) must be smaller than either stride ({sh}, {sw}) or \
                 dilation ({dh}, {dw})"
            ),
        ));
    }
    let size = |i: usize, s: usize, p: usize, d: usize, k: usize, op_: usize| -> i128 {
        (i as i128 - 1) * s as i128 - 2 * p as i128 + d as i128 * (k as i128 - 1) + op_ as i128 + 1
    };
    let (ho, wo) = (size(h, sh, ph, dh, kh, oph), size(w, sw, pw, dw, kw, opw));
    if h == 0 || w == 0 || ho < 1 || wo < 1 || ho > (1 << 40) || wo > (1 << 40) {
        return Err(err(
            op,
            format!(
                "the output would be empty: input {xs:?}, kernel ({kh}, {kw}), stride ({sh}, {sw}), \
                 padding ({ph}, {pw}), dilation ({dh}, {dw}) give an output of ({ho}, {wo})"
            ),
        ));
    }
    let g = Conv2dGeom {
        n,
        c: cog * groups,
        h: ho as usize,
        w: wo as usize,
        k: cin,
        kh,
        kw,
        sh,
        sw,
        ph,
        pw,
        dh,
        dw,
        groups,
        oh: h,
        ow: w,
    };
    g.validate("conv_transpose2d")
        .map_err(crate::common::kernel_err)?;
    Ok(g)
}

/// Runs the forward of conv2d (transpose = false) or conv_transpose2d (true).
fn forward_t<'py, T: Float + Element>(
    py: Python<'py>,
    op: &'static str,
    g: &Conv2dGeom,
    x: &Bound<'py, PyArrayDyn<T>>,
    w: &Bound<'py, PyAny>,
    b: Option<&Bound<'py, PyAny>>,
    transpose: bool,
) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    let w = same::<T>(op, "weight", w)?;
    let nb = if transpose { g.c } else { g.k };
    let b = match b {
        Some(b) => {
            let b = same::<T>(op, "bias", b)?;
            check_shape(op, "bias", &[nb], b.shape())?;
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
    let xs = xr.as_slice().map_err(|_| not_contiguous(op, "input"))?;
    let wsl = wr.as_slice().map_err(|_| not_contiguous(op, "weight"))?;
    let bs = match &br {
        Some(r) => Some(r.as_slice().map_err(|_| not_contiguous(op, "bias"))?),
        None => None,
    };
    let dims = if transpose {
        [g.n, g.c, g.h, g.w]
    } else {
        [g.n, g.k, g.oh, g.ow]
    };
    let y = alloc::<T>(py, &dims)?;
    {
        let mut yw = y.try_readwrite()?;
        let ys = yw
            .as_slice_mut()
            .map_err(|_| not_contiguous(op, "output"))?;
        if transpose {
            run(py, op, || kconv::backward_input(g, xs, wsl, bs, ys))?;
        } else {
            run(py, op, || kconv::forward(g, xs, wsl, bs, ys))?;
        }
    }
    Ok(y)
}

/// conv2d(x, weight, bias, stride, padding, dilation, groups) -> y (N, K, OH, OW).
///
/// x: (N, C, H, W); weight: (K, C / groups, kH, kW); bias: (K,) or None; stride and
/// dilation: (h, w) pairs >= 1; padding: (top, bottom, left, right) >= 0. C-contiguous,
/// one float dtype.
#[pyfunction]
#[pyo3(signature = (x, weight, bias, stride, padding, dilation, groups))]
#[allow(clippy::too_many_arguments)]
fn conv2d<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    weight: &Bound<'py, PyAny>,
    bias: Option<&Bound<'py, PyAny>>,
    stride: Pair,
    padding: Quad,
    dilation: Pair,
    groups: i64,
) -> PyResult<Bound<'py, PyAny>> {
    const OP: &str = "conv2d";
    Ok(match arr(OP, "input", x)? {
        Arr::F32(x) => {
            let w = same::<f32>(OP, "weight", weight)?;
            let g = conv_geom(OP, x.shape(), w.shape(), stride, padding, dilation, groups)?;
            forward_t(py, OP, &g, &x, weight, bias, false)?.into_any()
        }
        Arr::F64(x) => {
            let w = same::<f64>(OP, "weight", weight)?;
            let g = conv_geom(OP, x.shape(), w.shape(), stride, padding, dilation, groups)?;
            forward_t(py, OP, &g, &x, weight, bias, false)?.into_any()
        }
    })
}

/// conv_transpose2d(x, weight, bias, stride, padding, output_padding, dilation, groups).
///
/// x: (N, Cin, H, W); weight: (Cin, Cout / groups, kH, kW); bias: (Cout,) or None. The
/// output is (N, Cout, (H - 1) * stride - 2 * padding + dilation * (kH - 1) +
/// output_padding + 1, likewise W).
#[pyfunction]
#[pyo3(signature = (x, weight, bias, stride, padding, output_padding, dilation, groups))]
#[allow(clippy::too_many_arguments)]
fn conv_transpose2d<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    weight: &Bound<'py, PyAny>,
    bias: Option<&Bound<'py, PyAny>>,
    stride: Pair,
    padding: Pair,
    output_padding: Pair,
    dilation: Pair,
    groups: i64,
) -> PyResult<Bound<'py, PyAny>> {
    const OP: &str = "conv_transpose2d";
    let geom = |xs: &[usize], ws: &[usize]| {
        transpose_geom(
            OP,
            xs,
            ws,
            stride,
            padding,
            output_padding,
            dilation,
            groups,
        )
    };
    Ok(match arr(OP, "input", x)? {
        Arr::F32(x) => {
            let w = same::<f32>(OP, "weight", weight)?;
            let g = geom(x.shape(), w.shape())?;
            forward_t(py, OP, &g, &x, weight, bias, true)?.into_any()
        }
        Arr::F64(x) => {
            let w = same::<f64>(OP, "weight", weight)?;
            let g = geom(x.shape(), w.shape())?;
            forward_t(py, OP, &g, &x, weight, bias, true)?.into_any()
        }
    })
}

/// The gradients (dx, dw, db), each None unless asked for.
#[allow(clippy::too_many_arguments)]
fn backward_t<'py, T: Float + Element>(
    py: Python<'py>,
    op: &'static str,
    g: &Conv2dGeom,
    x: &Bound<'py, PyArrayDyn<T>>,
    w: &Bound<'py, PyAny>,
    gy: &Bound<'py, PyAny>,
    transpose: bool,
    need: (bool, bool, bool),
) -> PyResult<Bound<'py, PyTuple>> {
    let w = same::<T>(op, "weight", w)?;
    let gy = same::<T>(op, "grad_output", gy)?;
    // In conv terms: the conv input is x (conv2d) or gy (transpose).
    let (xdims, ydims) = ([g.n, g.c, g.h, g.w], [g.n, g.k, g.oh, g.ow]);
    let (in_dims, out_dims) = if transpose {
        (ydims, xdims)
    } else {
        (xdims, ydims)
    };
    check_shape(op, "grad_output", &out_dims, gy.shape())?;
    let xr = x.try_readonly()?;
    let wr = w.try_readonly()?;
    let gyr = gy.try_readonly()?;
    let xs = xr.as_slice().map_err(|_| not_contiguous(op, "input"))?;
    let wsl = wr.as_slice().map_err(|_| not_contiguous(op, "weight"))?;
    let gys = gyr
        .as_slice()
        .map_err(|_| not_contiguous(op, "grad_output"))?;
    let (cx, cgy) = if transpose { (gys, xs) } else { (xs, gys) };
    let dx = if need.0 {
        let dx = alloc::<T>(py, &in_dims)?;
        {
            let mut dw = dx.try_readwrite()?;
            let d = dw.as_slice_mut().map_err(|_| not_contiguous(op, "dx"))?;
            if transpose {
                run(py, op, || kconv::forward(g, gys, wsl, None, d))?;
            } else {
                run(py, op, || kconv::backward_input(g, gys, wsl, None, d))?;
            }
        }
        Some(dx)
    } else {
        None
    };
    let dw = if need.1 {
        let dwa = alloc::<T>(py, w.shape())?;
        {
            let mut ww = dwa.try_readwrite()?;
            let d = ww.as_slice_mut().map_err(|_| not_contiguous(op, "dw"))?;
            run(py, op, || kconv::backward_weight(g, cx, cgy, d))?;
        }
        Some(dwa)
    } else {
        None
    };
    let db = if need.2 {
        let (nb, hw) = if transpose {
            (g.c, g.h * g.w)
        } else {
            (g.k, g.oh * g.ow)
        };
        let dba = alloc::<T>(py, &[nb])?;
        {
            let mut bw = dba.try_readwrite()?;
            let d = bw.as_slice_mut().map_err(|_| not_contiguous(op, "db"))?;
            run(py, op, || kconv::bias_grad(gys, g.n, nb, hw, d))?;
        }
        Some(dba)
    } else {
        None
    };
    let none = || py.None().into_bound(py);
    let items = [
        dx.map(|a| a.into_any()).unwrap_or_else(none),
        dw.map(|a| a.into_any()).unwrap_or_else(none),
        db.map(|a| a.into_any()).unwrap_or_else(none),
    ];
    PyTuple::new(py, items)
}

/// conv2d_backward(x, weight, grad_output, stride, padding, dilation, groups, need_dx,
/// need_dw, need_db) -> (dx, dw, db), each None unless asked for. Arguments as conv2d.
#[pyfunction]
#[pyo3(signature = (x, weight, grad_output, stride, padding, dilation, groups, need_dx, need_dw, need_db))]
#[allow(clippy::too_many_arguments)]
fn conv2d_backward<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    weight: &Bound<'py, PyAny>,
    grad_output: &Bound<'py, PyAny>,
    stride: Pair,
    padding: Quad,
    dilation: Pair,
    groups: i64,
    need_dx: bool,
    need_dw: bool,
    need_db: bool,
) -> PyResult<Bound<'py, PyTuple>> {
    const OP: &str = "conv2d_backward";
    let need = (need_dx, need_dw, need_db);
    match arr(OP, "input", x)? {
        Arr::F32(x) => {
            let w = same::<f32>(OP, "weight", weight)?;
            let g = conv_geom(OP, x.shape(), w.shape(), stride, padding, dilation, groups)?;
            backward_t(py, OP, &g, &x, weight, grad_output, false, need)
        }
        Arr::F64(x) => {
            let w = same::<f64>(OP, "weight", weight)?;
            let g = conv_geom(OP, x.shape(), w.shape(), stride, padding, dilation, groups)?;
            backward_t(py, OP, &g, &x, weight, grad_output, false, need)
        }
    }
}

/// conv_transpose2d_backward(x, weight, grad_output, stride, padding, output_padding,
/// dilation, groups, need_dx, need_dw, need_db) -> (dx, dw, db). Arguments as
/// conv_transpose2d.
#[pyfunction]
#[pyo3(signature = (x, weight, grad_output, stride, padding, output_padding, dilation, groups, need_dx, need_dw, need_db))]
#[allow(clippy::too_many_arguments)]
fn conv_transpose2d_backward<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    weight: &Bound<'py, PyAny>,
    grad_output: &Bound<'py, PyAny>,
    stride: Pair,
    padding: Pair,
    output_padding: Pair,
    dilation: Pair,
    groups: i64,
    need_dx: bool,
    need_dw: bool,
    need_db: bool,
) -> PyResult<Bound<'py, PyTuple>> {
    const OP: &str = "conv_transpose2d_backward";
    let need = (need_dx, need_dw, need_db);
    let geom = |xs: &[usize], ws: &[usize]| {
        transpose_geom(
            OP,
            xs,
            ws,
            stride,
            padding,
            output_padding,
            dilation,
            groups,
        )
    };
    match arr(OP, "input", x)? {
        Arr::F32(x) => {
            let w = same::<f32>(OP, "weight", weight)?;
            let g = geom(x.shape(), w.shape())?;
            backward_t(py, OP, &g, &x, weight, grad_output, true, need)
        }
        Arr::F64(x) => {
            let w = same::<f64>(OP, "weight", weight)?;
            let g = geom(x.shape(), w.shape())?;
            backward_t(py, OP, &g, &x, weight, grad_output, true, need)
        }
    }
}

/// Adds this module's functions to `ferrograd._native`.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(conv2d, m)?)?;
    m.add_function(wrap_pyfunction!(conv2d_backward, m)?)?;
    m.add_function(wrap_pyfunction!(conv_transpose2d, m)?)?;
    m.add_function(wrap_pyfunction!(conv_transpose2d_backward, m)?)?;
    Ok(())
}
