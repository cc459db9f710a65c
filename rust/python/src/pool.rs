//! Bindings of the pool kernels: pooling, padding and batch norm.
//!
//! The Python layer collapses batch and channel axes into planes: pooling takes (P, H, W),
//! padding (P, D, H, W), batch norm (N, C, L). Every shape and argument is checked here
//! before any buffer is borrowed; the kernels check lengths again.

use crate::common::{arr, check_shape, new_array, not_contiguous, run, same, with_float};
use ferrograd_kernels::pool::{self as kpool, Axis, PadMode};
use ferrograd_kernels::Float;
use numpy::{Element, PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

fn err(msg: String) -> PyErr {
    PyValueError::new_err(msg)
}

fn nonneg(op: &str, name: &str, v: i64) -> PyResult<usize> {
    usize::try_from(v).map_err(|_| err(format!("{op}: {name} must be non-negative, given {v}")))
}

fn check_ndim(op: &str, name: &str, want: usize, shape: &[usize], layout: &str) -> PyResult<()> {
    if shape.len() != want {
        return Err(err(format!(
            "{op}: {name} must be {want}-D {layout}, given shape {shape:?}"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------- padding

fn parse_mode(op: &str, mode: &str) -> PyResult<PadMode> {
    Ok(match mode {
        "constant" => PadMode::Constant,
        "reflect" => PadMode::Reflect,
        "replicate" => PadMode::Replicate,
        "circular" => PadMode::Circular,
        _ => {
            return Err(err(format!(
                "{op}: unknown mode {mode:?}; expected constant, reflect, replicate or circular"
            )))
        }
    })
}

fn pads6(pads: [i64; 6]) -> [isize; 6] {
    pads.map(|p| p as isize)
}

fn pad_t<'py, T: Float + Element>(
    py: Python<'py>,
    x: &Bound<'py, PyArrayDyn<T>>,
    pads: [i64; 6],
    mode: PadMode,
    value: f64,
) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    const OP: &str = "pad";
    check_ndim(OP, "x", 4, x.shape(), "(planes, D, H, W)")?;
    let s = x.shape();
    let dims = [s[1], s[2], s[3]];
    let pads = pads6(pads);
    let od = kpool::pad_out_dims(mode, dims, pads).map_err(|e| err(e.to_string()))?;
    let xr = x.try_readonly()?;
    let xs = xr.as_slice().map_err(|_| not_contiguous(OP, "x"))?;
    let y = new_array::<T>(py, &[s[0], od[0], od[1], od[2]]);
    {
        let mut yw = y.try_readwrite()?;
        let ys = yw.as_slice_mut().map_err(|_| not_contiguous(OP, "y"))?;
        let v = T::from_f64(value);
        let planes = s[0];
        run(py, OP, || {
            kpool::pad_forward(xs, ys, planes, dims, pads, mode, v)
        })?;
    }
    Ok(y)
}

/// pad(x, pads, mode, value=0) -> x (P, D, H, W) padded to (P, OD, OH, OW).
///
/// pads = (d_left, d_right, h_left, h_right, w_left, w_right); mode: constant, reflect,
/// replicate or circular; negative pads crop (constant mode only).
#[pyfunction]
#[pyo3(signature = (x, pads, mode, value=0.0))]
fn pad<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    pads: [i64; 6],
    mode: &str,
    value: f64,
) -> PyResult<Bound<'py, PyAny>> {
    let m = parse_mode("pad", mode)?;
    Ok(with_float!(arr("pad", "x", x)?, |x| pad_t(
        py, &x, pads, m, value
    )?
    .into_any()))
}

fn pad_backward_t<'py, T: Float + Element>(
    py: Python<'py>,
    gy: &Bound<'py, PyArrayDyn<T>>,
    dims: [usize; 3],
    pads: [i64; 6],
    mode: PadMode,
) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    const OP: &str = "pad_backward";
    check_ndim(OP, "grad_output", 4, gy.shape(), "(planes, OD, OH, OW)")?;
    let pads = pads6(pads);
    let od = kpool::pad_out_dims(mode, dims, pads).map_err(|e| err(e.to_string()))?;
    let planes = gy.shape()[0];
    check_shape(
        OP,
        "grad_output",
        &[planes, od[0], od[1], od[2]],
        gy.shape(),
    )?;
    let gr = gy.try_readonly()?;
    let gs = gr
        .as_slice()
        .map_err(|_| not_contiguous(OP, "grad_output"))?;
    let gx = new_array::<T>(py, &[planes, dims[0], dims[1], dims[2]]);
    {
        let mut w = gx.try_readwrite()?;
        let xs = w
            .as_slice_mut()
            .map_err(|_| not_contiguous(OP, "grad_input"))?;
        run(py, OP, || {
            kpool::pad_backward(gs, xs, planes, dims, pads, mode)
        })?;
    }
    Ok(gx)
}

/// pad_backward(grad_output, dims, pads, mode) -> grad of x (P, *dims) for
/// y = pad(x, pads, mode).
#[pyfunction]
fn pad_backward<'py>(
    py: Python<'py>,
    grad_output: &Bound<'py, PyAny>,
    dims: [i64; 3],
    pads: [i64; 6],
    mode: &str,
) -> PyResult<Bound<'py, PyAny>> {
    const OP: &str = "pad_backward";
    let m = parse_mode(OP, mode)?;
    let d = [
        nonneg(OP, "D", dims[0])?,
        nonneg(OP, "H", dims[1])?,
        nonneg(OP, "W", dims[2])?,
    ];
    Ok(with_float!(arr(OP, "grad_output", grad_output)?, |g| {
        pad_backward_t(py, &g, d, pads, m)?.into_any()
    }))
}

// ---------------------------------------------------------------- pooling

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Max,
    Min,
    Avg,
}

fn parse_kind(op: &str, kind: &str) -> PyResult<Kind> {
    Ok(match kind {
        "max" => Kind::Max,
        "min" => Kind::Min,
        "avg" => Kind::Avg,
        _ => {
            return Err(err(format!(
                "{op}: unknown pooling {kind:?}; expected max, min or avg"
            )))
        }
    })
}

/// The pooling arguments of both axes.
struct Geo {
    kernel: [i64; 2],
    stride: [i64; 2],
    padding: [i64; 2],
    dilation: [i64; 2],
    ceil_mode: bool,
}

impl Geo {
    fn axes(&self, op: &str, hw: [usize; 2]) -> PyResult<(Axis, Axis)> {
        let mut ax = [Axis::unit(0); 2];
        for (i, a) in ax.iter_mut().enumerate() {
            *a = Axis {
                size: hw[i],
                kernel: nonneg(op, "kernel_size", self.kernel[i])?,
                stride: nonneg(op, "stride", self.stride[i])?,
                pad: nonneg(op, "padding", self.padding[i])?,
                dilation: nonneg(op, "dilation", self.dilation[i])?,
                ceil_mode: self.ceil_mode,
            };
        }
        Ok((ax[0], ax[1]))
    }
}

fn out_hw(op: &'static str, h: &Axis, w: &Axis) -> PyResult<(usize, usize)> {
    let oh = h.out_size(op).map_err(|e| err(e.to_string()))?;
    let ow = w.out_size(op).map_err(|e| err(e.to_string()))?;
    Ok((oh, ow))
}

fn divisor(op: &str, d: Option<i64>) -> PyResult<Option<usize>> {
    match d {
        None => Ok(None),
        Some(v) if v > 0 => Ok(Some(v as usize)),
        Some(v) => Err(err(format!(
            "{op}: divisor_override must be positive, given {v}"
        ))),
    }
}

fn pool2d_t<'py, T: Float + Element>(
    py: Python<'py>,
    x: &Bound<'py, PyArrayDyn<T>>,
    kind: Kind,
    geo: &Geo,
    count_include_pad: bool,
    divisor_override: Option<i64>,
) -> PyResult<Bound<'py, PyAny>> {
    const OP: &str = "pool2d";
    check_ndim(OP, "x", 3, x.shape(), "(planes, H, W)")?;
    let s = x.shape();
    let planes = s[0];
    let (h, w) = geo.axes(OP, [s[1], s[2]])?;
    let (oh, ow) = out_hw(OP, &h, &w)?;
    let div = divisor(OP, divisor_override)?;
    let xr = x.try_readonly()?;
    let xs = xr.as_slice().map_err(|_| not_contiguous(OP, "x"))?;
    let y = new_array::<T>(py, &[planes, oh, ow]);
    if kind == Kind::Avg {
        {
            let mut yw = y.try_readwrite()?;
            let ys = yw.as_slice_mut().map_err(|_| not_contiguous(OP, "y"))?;
            run(py, OP, || {
                kpool::avg_pool_forward(xs, ys, planes, h, w, count_include_pad, div)
            })?;
        }
        return Ok(y.into_any());
    }
    let idx = new_array::<i64>(py, &[planes, oh, ow]);
    {
        let mut yw = y.try_readwrite()?;
        let ys = yw.as_slice_mut().map_err(|_| not_contiguous(OP, "y"))?;
        let mut iw = idx.try_readwrite()?;
        let is = iw
            .as_slice_mut()
            .map_err(|_| not_contiguous(OP, "indices"))?;
        let min = kind == Kind::Min;
        run(py, OP, || {
            kpool::extremum_pool_forward(xs, ys, is, planes, h, w, min)
        })?;
    }
    Ok(PyTuple::new(py, [y.into_any(), idx.into_any()])?.into_any())
}

/// pool2d(x, kind, kernel, stride, padding, dilation=(1, 1), ceil_mode=False,
/// count_include_pad=True, divisor_override=None) on x (P, H, W).
///
/// kind 'max' or 'min' returns (values, int64 indices h * W + w), each (P, OH, OW); 'avg'
/// returns the averages (dilation must be 1).
#[pyfunction]
#[pyo3(signature = (x, kind, kernel, stride, padding, dilation=[1, 1], ceil_mode=false,
    count_include_pad=true, divisor_override=None))]
#[allow(clippy::too_many_arguments)]
fn pool2d<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    kind: &str,
    kernel: [i64; 2],
    stride: [i64; 2],
    padding: [i64; 2],
    dilation: [i64; 2],
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: Option<i64>,
) -> PyResult<Bound<'py, PyAny>> {
    let k = parse_kind("pool2d", kind)?;
    let geo = Geo {
        kernel,
        stride,
        padding,
        dilation,
        ceil_mode,
    };
    with_float!(arr("pool2d", "x", x)?, |x| pool2d_t(
        py,
        &x,
        k,
        &geo,
        count_include_pad,
        divisor_override
    ))
}

#[allow(clippy::too_many_arguments)]
fn pool2d_backward_t<'py, T: Float + Element>(
    py: Python<'py>,
    gy: &Bound<'py, PyArrayDyn<T>>,
    indices: Option<&Bound<'py, PyAny>>,
    kind: Kind,
    hw: [usize; 2],
    geo: &Geo,
    count_include_pad: bool,
    divisor_override: Option<i64>,
) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    const OP: &str = "pool2d_backward";
    check_ndim(OP, "grad_output", 3, gy.shape(), "(planes, OH, OW)")?;
    let planes = gy.shape()[0];
    let (h, w) = geo.axes(OP, hw)?;
    let (oh, ow) = out_hw(OP, &h, &w)?;
    check_shape(OP, "grad_output", &[planes, oh, ow], gy.shape())?;
    let div = divisor(OP, divisor_override)?;
    let gr = gy.try_readonly()?;
    let gs = gr
        .as_slice()
        .map_err(|_| not_contiguous(OP, "grad_output"))?;
    let gx = new_array::<T>(py, &[planes, hw[0], hw[1]]);
    let mut gw = gx.try_readwrite()?;
    let xs = gw
        .as_slice_mut()
        .map_err(|_| not_contiguous(OP, "grad_input"))?;
    if kind == Kind::Avg {
        run(py, OP, || {
            kpool::avg_pool_backward(gs, xs, planes, h, w, count_include_pad, div)
        })?;
    } else {
        let Some(indices) = indices else {
            return Err(err(format!("{OP}: max/min pooling needs the indices")));
        };
        let ia = indices.cast::<PyArrayDyn<i64>>().map_err(|_| {
            err(format!(
                "{OP}: indices must be an int64 array, given {}",
                crate::common::describe(indices)
            ))
        })?;
        check_shape(OP, "indices", &[planes, oh, ow], ia.shape())?;
        let ir = ia.try_readonly()?;
        let is = ir.as_slice().map_err(|_| not_contiguous(OP, "indices"))?;
        let (op_, ip_) = (oh * ow, hw[0] * hw[1]);
        run(py, OP, || {
            kpool::extremum_pool_backward(gs, is, xs, planes, op_, ip_)
        })?;
    }
    drop(gw);
    Ok(gx)
}

/// pool2d_backward(grad_output, indices, kind, input_hw, kernel, stride, padding,
/// dilation=(1, 1), ceil_mode=False, count_include_pad=True, divisor_override=None)
/// -> grad of x (P, H, W). indices (from pool2d) are needed for 'max' and 'min'.
#[pyfunction]
#[pyo3(signature = (grad_output, indices, kind, input_hw, kernel, stride, padding,
    dilation=[1, 1], ceil_mode=false, count_include_pad=true, divisor_override=None))]
#[allow(clippy::too_many_arguments)]
fn pool2d_backward<'py>(
    py: Python<'py>,
    grad_output: &Bound<'py, PyAny>,
    indices: Option<&Bound<'py, PyAny>>,
    kind: &str,
    input_hw: [i64; 2],
    kernel: [i64; 2],
    stride: [i64; 2],
    padding: [i64; 2],
    dilation: [i64; 2],
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: Option<i64>,
) -> PyResult<Bound<'py, PyAny>> {
    const OP: &str = "pool2d_backward";
    let k = parse_kind(OP, kind)?;
    let hw = [nonneg(OP, "H", input_hw[0])?, nonneg(OP, "W", input_hw[1])?];
    let geo = Geo {
        kernel,
        stride,
        padding,
        dilation,
        ceil_mode,
    };
    let (c, d) = (count_include_pad, divisor_override);
    Ok(with_float!(arr(OP, "grad_output", grad_output)?, |g| {
        pool2d_backward_t(py, &g, indices, k, hw, &geo, c, d)?.into_any()
    }))
}

fn adaptive_t<'py, T: Float + Element>(
    py: Python<'py>,
    x: &Bound<'py, PyArrayDyn<T>>,
    out: [usize; 2],
    backward: Option<[usize; 2]>,
) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    let op = if backward.is_some() {
        "adaptive_avg_pool2d_backward"
    } else {
        "adaptive_avg_pool2d"
    };
    check_ndim(op, "x", 3, x.shape(), "(planes, H, W)")?;
    let s = x.shape();
    let planes = s[0];
    let xr = x.try_readonly()?;
    let xs = xr.as_slice().map_err(|_| not_contiguous(op, "x"))?;
    match backward {
        None => {
            let (ih, iw) = (s[1], s[2]);
            let y = new_array::<T>(py, &[planes, out[0], out[1]]);
            {
                let mut yw = y.try_readwrite()?;
                let ys = yw.as_slice_mut().map_err(|_| not_contiguous(op, "y"))?;
                run(py, op, || {
                    kpool::adaptive_avg_pool_forward(xs, ys, planes, (ih, iw), (out[0], out[1]))
                })?;
            }
            Ok(y)
        }
        Some(inp) => {
            check_shape(op, "grad_output", &[planes, out[0], out[1]], s)?;
            let gx = new_array::<T>(py, &[planes, inp[0], inp[1]]);
            {
                let mut w = gx.try_readwrite()?;
                let gs = w
                    .as_slice_mut()
                    .map_err(|_| not_contiguous(op, "grad_input"))?;
                run(py, op, || {
                    kpool::adaptive_avg_pool_backward(
                        xs,
                        gs,
                        planes,
                        (inp[0], inp[1]),
                        (out[0], out[1]),
                    )
                })?;
            }
            Ok(gx)
        }
    }
}

/// adaptive_avg_pool2d(x, output_size) on x (P, H, W) -> (P, OH, OW).
#[pyfunction]
fn adaptive_avg_pool2d<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    output_size: [i64; 2],
) -> PyResult<Bound<'py, PyAny>> {
    const OP: &str = "adaptive_avg_pool2d";
    let o = [
        nonneg(OP, "output height", output_size[0])?,
        nonneg(OP, "output width", output_size[1])?,
    ];
    Ok(with_float!(arr(OP, "x", x)?, |x| adaptive_t(
        py, &x, o, None
    )?
    .into_any()))
}

/// adaptive_avg_pool2d_backward(grad_output (P, OH, OW), input_hw) -> grad of x (P, H, W).
#[pyfunction]
fn adaptive_avg_pool2d_backward<'py>(
    py: Python<'py>,
    grad_output: &Bound<'py, PyAny>,
    input_hw: [i64; 2],
) -> PyResult<Bound<'py, PyAny>> {
    const OP: &str = "adaptive_avg_pool2d_backward";
    let s = grad_output
        .getattr("shape")?
        .extract::<Vec<usize>>()
        .unwrap_or_default();
    let i = [nonneg(OP, "H", input_hw[0])?, nonneg(OP, "W", input_hw[1])?];
    if s.len() != 3 {
        return Err(err(format!(
            "{OP}: grad_output must be 3-D (planes, OH, OW), given shape {s:?}"
        )));
    }
    let o = [s[1], s[2]];
    Ok(with_float!(arr(OP, "grad_output", grad_output)?, |g| {
        adaptive_t(py, &g, o, Some(i))?.into_any()
    }))
}

// ---------------------------------------------------------------- batch norm

fn ncl(op: &str, s: &[usize]) -> PyResult<(usize, usize, usize)> {
    check_ndim(op, "x", 3, s, "(N, C, L)")?;
    Ok((s[0], s[1], s[2]))
}

fn vec_arg<'py, T: Float + Element>(
    op: &str,
    name: &str,
    a: &Bound<'py, PyAny>,
    c: usize,
) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    let a = same::<T>(op, name, a)?;
    check_shape(op, name, &[c], a.shape())?;
    Ok(a)
}

fn batch_norm_stats_t<'py, T: Float + Element>(
    py: Python<'py>,
    x: &Bound<'py, PyArrayDyn<T>>,
) -> PyResult<Bound<'py, PyTuple>> {
    const OP: &str = "batch_norm_stats";
    let (n, c, l) = ncl(OP, x.shape())?;
    if n * l == 0 {
        return Err(err(format!(
            "{OP}: no values per channel in an input of shape {:?}",
            x.shape()
        )));
    }
    let xr = x.try_readonly()?;
    let xs = xr.as_slice().map_err(|_| not_contiguous(OP, "x"))?;
    let mean = new_array::<T>(py, &[c]);
    let var = new_array::<T>(py, &[c]);
    {
        let mut mw = mean.try_readwrite()?;
        let mut vw = var.try_readwrite()?;
        let ms = mw.as_slice_mut().map_err(|_| not_contiguous(OP, "mean"))?;
        let vs = vw.as_slice_mut().map_err(|_| not_contiguous(OP, "var"))?;
        run(py, OP, || kpool::batch_norm_stats(xs, n, c, l, ms, vs))?;
    }
    PyTuple::new(py, [mean.into_any(), var.into_any()])
}

/// batch_norm_stats(x (N, C, L)) -> (mean, biased variance), each (C,).
#[pyfunction]
fn batch_norm_stats<'py>(py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyTuple>> {
    with_float!(arr("batch_norm_stats", "x", x)?, |x| batch_norm_stats_t(
        py, &x
    ))
}

fn batch_norm_t<'py, T: Float + Element>(
    py: Python<'py>,
    x: &Bound<'py, PyArrayDyn<T>>,
    mean: &Bound<'py, PyAny>,
    invstd: &Bound<'py, PyAny>,
    weight: Option<&Bound<'py, PyAny>>,
    bias: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    const OP: &str = "batch_norm";
    let (n, c, l) = ncl(OP, x.shape())?;
    let mean = vec_arg::<T>(OP, "mean", mean, c)?;
    let invstd = vec_arg::<T>(OP, "invstd", invstd, c)?;
    let weight = weight
        .map(|w| vec_arg::<T>(OP, "weight", w, c))
        .transpose()?;
    let bias = bias.map(|b| vec_arg::<T>(OP, "bias", b, c)).transpose()?;
    let xr = x.try_readonly()?;
    let mr = mean.try_readonly()?;
    let ir = invstd.try_readonly()?;
    let wr = weight.as_ref().map(|w| w.try_readonly()).transpose()?;
    let br = bias.as_ref().map(|b| b.try_readonly()).transpose()?;
    let xs = xr.as_slice().map_err(|_| not_contiguous(OP, "x"))?;
    let ms = mr.as_slice().map_err(|_| not_contiguous(OP, "mean"))?;
    let is = ir.as_slice().map_err(|_| not_contiguous(OP, "invstd"))?;
    let ws = wr
        .as_ref()
        .map(|w| w.as_slice().map_err(|_| not_contiguous(OP, "weight")))
        .transpose()?;
    let bs = br
        .as_ref()
        .map(|b| b.as_slice().map_err(|_| not_contiguous(OP, "bias")))
        .transpose()?;
    let y = new_array::<T>(py, &[n, c, l]);
    {
        let mut yw = y.try_readwrite()?;
        let ys = yw.as_slice_mut().map_err(|_| not_contiguous(OP, "y"))?;
        run(py, OP, || {
            kpool::batch_norm_forward(xs, ys, n, c, l, ms, is, ws, bs)
        })?;
    }
    Ok(y)
}

/// batch_norm(x (N, C, L), mean (C,), invstd (C,), weight=None, bias=None)
/// -> (x - mean) * invstd * weight + bias per channel.
#[pyfunction]
#[pyo3(signature = (x, mean, invstd, weight=None, bias=None))]
fn batch_norm<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    mean: &Bound<'py, PyAny>,
    invstd: &Bound<'py, PyAny>,
    weight: Option<&Bound<'py, PyAny>>,
    bias: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    Ok(with_float!(arr("batch_norm", "x", x)?, |x| batch_norm_t(
        py, &x, mean, invstd, weight, bias
    )?
    .into_any()))
}

#[allow(clippy::too_many_arguments)]
fn batch_norm_backward_t<'py, T: Float + Element>(
    py: Python<'py>,
    x: &Bound<'py, PyArrayDyn<T>>,
    gy: &Bound<'py, PyAny>,
    mean: &Bound<'py, PyAny>,
    invstd: &Bound<'py, PyAny>,
    weight: Option<&Bound<'py, PyAny>>,
    training: bool,
    need_dx: bool,
) -> PyResult<Bound<'py, PyTuple>> {
    const OP: &str = "batch_norm_backward";
    let (n, c, l) = ncl(OP, x.shape())?;
    let gy = same::<T>(OP, "grad_output", gy)?;
    check_shape(OP, "grad_output", x.shape(), gy.shape())?;
    let mean = vec_arg::<T>(OP, "mean", mean, c)?;
    let invstd = vec_arg::<T>(OP, "invstd", invstd, c)?;
    let weight = weight
        .map(|w| vec_arg::<T>(OP, "weight", w, c))
        .transpose()?;
    let xr = x.try_readonly()?;
    let gr = gy.try_readonly()?;
    let mr = mean.try_readonly()?;
    let ir = invstd.try_readonly()?;
    let wr = weight.as_ref().map(|w| w.try_readonly()).transpose()?;
    let xs = xr.as_slice().map_err(|_| not_contiguous(OP, "x"))?;
    let gs = gr
        .as_slice()
        .map_err(|_| not_contiguous(OP, "grad_output"))?;
    let ms = mr.as_slice().map_err(|_| not_contiguous(OP, "mean"))?;
    let is = ir.as_slice().map_err(|_| not_contiguous(OP, "invstd"))?;
    let ws = wr
        .as_ref()
        .map(|w| w.as_slice().map_err(|_| not_contiguous(OP, "weight")))
        .transpose()?;
    let gx = need_dx.then(|| new_array::<T>(py, &[n, c, l]));
    let gw = new_array::<T>(py, &[c]);
    let gb = new_array::<T>(py, &[c]);
    {
        let mut gxw = gx.as_ref().map(|a| a.try_readwrite()).transpose()?;
        let mut gww = gw.try_readwrite()?;
        let mut gbw = gb.try_readwrite()?;
        let gxs = gxw
            .as_mut()
            .map(|a| {
                a.as_slice_mut()
                    .map_err(|_| not_contiguous(OP, "grad_input"))
            })
            .transpose()?;
        let gws = gww
            .as_slice_mut()
            .map_err(|_| not_contiguous(OP, "grad_weight"))?;
        let gbs = gbw
            .as_slice_mut()
            .map_err(|_| not_contiguous(OP, "grad_bias"))?;
        run(py, OP, || {
            kpool::batch_norm_backward(xs, gs, n, c, l, ms, is, ws, training, gxs, gws, gbs)
        })?;
    }
    let none = || py.None().into_bound(py);
    PyTuple::new(
        py,
        [
            gx.map_or_else(none, |a| a.into_any()),
            gw.into_any(),
            gb.into_any(),
        ],
    )
}

/// batch_norm_backward(x, grad_output, mean, invstd, weight=None, training=True,
/// need_dx=True) -> (grad_input or None, grad_weight, grad_bias) for x (N, C, L).
#[pyfunction]
#[pyo3(signature = (x, grad_output, mean, invstd, weight=None, training=true, need_dx=true))]
#[allow(clippy::too_many_arguments)]
fn batch_norm_backward<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    grad_output: &Bound<'py, PyAny>,
    mean: &Bound<'py, PyAny>,
    invstd: &Bound<'py, PyAny>,
    weight: Option<&Bound<'py, PyAny>>,
    training: bool,
    need_dx: bool,
) -> PyResult<Bound<'py, PyTuple>> {
    const OP: &str = "batch_norm_backward";
    let g = grad_output;
    with_float!(arr(OP, "x", x)?, |x| batch_norm_backward_t(
        py, &x, g, mean, invstd, weight, training, need_dx
    ))
}

/// Adds this module's functions to `ferrograd._native`.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(pad, m)?)?;
    m.add_function(wrap_pyfunction!(pad_backward, m)?)?;
    m.add_function(wrap_pyfunction!(pool2d, m)?)?;
    m.add_function(wrap_pyfunction!(pool2d_backward, m)?)?;
    m.add_function(wrap_pyfunction!(adaptive_avg_pool2d, m)?)?;
    m.add_function(wrap_pyfunction!(adaptive_avg_pool2d_backward, m)?)?;
    m.add_function(wrap_pyfunction!(batch_norm_stats, m)?)?;
    m.add_function(wrap_pyfunction!(batch_norm, m)?)?;
    m.add_function(wrap_pyfunction!(batch_norm_backward, m)?)?;
    Ok(())
}
