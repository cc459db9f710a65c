"""Pooling, padding and batch normalisation as differentiable functions.

Names, arguments, defaults and formulas follow ``torch.nn.functional``: ``pad`` (modes
'constant', 'reflect', 'replicate', 'circular'; the pad tuple starts at the last
dimension), ``max_pool2d`` / ``min_pool2d`` (optionally with int64 indices ``h * W + w``
per plane), ``avg_pool2d``, ``max_pool1d``, ``min_pool1d``, ``avg_pool1d``,
``adaptive_avg_pool2d`` and ``batch_norm``. Each op is one recorded node whose forward and
backward sit side by side; both run in Rust (parallel over the (N, C) planes, bitwise
identical for any thread count).

Shapes: N batch, C channels, (H, W) or L the spatial size. ``layer`` arguments only change
the name that error messages start with (the modules pass their own repr).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np

from .. import _native
from ..autograd.grad_mode import _GradMode
from ..tensor import Tensor, _as_array, _contig, _make
from ..tensor import _t as _tensor
from .functional_conv import _ints, _is_int

__all__ = [
    "pad",
    "max_pool2d",
    "min_pool2d",
    "avg_pool2d",
    "max_pool1d",
    "min_pool1d",
    "avg_pool1d",
    "adaptive_avg_pool2d",
    "batch_norm",
]

IntOrPair = Union[int, Sequence[int]]


def _grad_like(g: np.ndarray, like: np.ndarray) -> np.ndarray:
    return _contig(g.astype(like.dtype, copy=False))


# ----------------------------------------------------------------------------- padding

_MODES = ("constant", "reflect", "replicate", "circular")


def pad(input: Any, pad: Sequence[int], mode: str = "constant", value: Optional[float] = None) -> Tensor:
    """Pads ``input`` as ``torch.nn.functional.pad`` does.

    ``pad`` = (last_left, last_right, second_last_left, second_last_right, ...): pairs of
    sizes starting from the last dimension. mode 'constant' (fills ``value``, default 0;
    negative sizes crop; any number of dimensions), 'reflect' (mirror without repeating the
    edge; each size < that dimension), 'replicate' (repeats the edge) or 'circular' (wraps
    around; each size <= that dimension). The non-constant modes pad the last 1, 2 or 3
    dimensions of a (C, *) or (N, C, *) input. Differentiable: the gradient of every
    output element goes back to the input element it was copied from.
    """
    x = _tensor(input)
    xd = x.data
    if mode not in _MODES:
        raise ValueError(f"pad: mode must be one of {', '.join(_MODES)}, given {mode!r}")
    try:
        pads = tuple(pad)
    except TypeError:
        raise ValueError(f"pad: pad must be a sequence of ints, given {pad!r}") from None
    if not all(_is_int(p) for p in pads):
        raise ValueError(f"pad: pad must be a sequence of ints, given {pad!r}")
    pads = tuple(int(p) for p in pads)
    if len(pads) % 2:
        raise ValueError(f"pad: padding length must be divisible by 2, given {len(pads)} ({pads})")
    k = len(pads) // 2
    if k > xd.ndim:
        raise ValueError(
            f"pad: padding length too large: {len(pads)} sizes pad {k} dimensions of an input of shape {xd.shape}"
        )
    if mode != "constant":
        if value is not None and value != 0:
            raise ValueError(f'pad: padding mode "{mode}" does not take a value argument, given value={value}')
        if k not in (1, 2, 3) or xd.ndim not in (k + 1, k + 2):
            raise ValueError(
                f"pad: {mode} padding of {k} dimension(s) needs a {k + 1}-D or {k + 2}-D input, given shape {xd.shape}"
            )
    fill = 0.0 if value is None else float(value)
    if k == 0:
        return _make(xd.copy(), (x,), lambda g: (g,), "ConstantPadBackward")
    if k > 3:
        return _pad_constant_nd(x, pads, fill)
    lead = xd.shape[: xd.ndim - k]
    spatial = (1,) * (3 - k) + xd.shape[xd.ndim - k:]
    # Kernel order: (d_l, d_r, h_l, h_r, w_l, w_r); the tuple starts at the last dim.
    pairs = [(pads[2 * i], pads[2 * i + 1]) for i in range(k)][::-1]
    pairs = [(0, 0)] * (3 - k) + pairs
    kp = [p for pr in pairs for p in pr]
    for i, ((lo, hi), n) in enumerate(zip(pairs[3 - k:], spatial[3 - k:])):
        if n + lo + hi < 0 or (n + lo + hi == 0 and n > 0):
            raise ValueError(
                f"pad: the padding {pads} gives an empty or negative size for dimension "
                f"{xd.ndim - k + i} (size {n}) of an input of shape {xd.shape}"
            )
        if mode == "reflect" and (lo >= n or hi >= n):
            raise ValueError(
                f"pad: reflect padding ({lo}, {hi}) must be less than the size {n} of dimension "
                f"{xd.ndim - k + i}; input shape {xd.shape}"
            )
        if mode == "circular" and (lo > n or hi > n):
            raise ValueError(
                f"pad: circular padding ({lo}, {hi}) wraps around more than once for dimension "
                f"{xd.ndim - k + i} of size {n}; input shape {xd.shape}"
            )
        if mode != "constant" and (lo < 0 or hi < 0):
            raise ValueError(f"pad: {mode} padding must be non-negative, given {pads}")
        if mode in ("replicate", "reflect", "circular") and n == 0:
            raise ValueError(f"pad: cannot {mode}-pad an empty dimension {xd.ndim - k + i}; input shape {xd.shape}")
    planes = int(np.prod(lead)) if lead else 1
    x4 = _contig(xd).reshape((planes,) + spatial)
    y4 = _native.pad(x4, kp, mode, fill)
    out_shape = lead + y4.shape[4 - k:]
    y = y4.reshape(out_shape)

    def backward(g):
        g4 = _grad_like(g, xd).reshape(y4.shape)
        return (_native.pad_backward(g4, list(spatial), kp, mode).reshape(xd.shape),)

    name = {"constant": "ConstantPad", "reflect": "ReflectionPad", "replicate": "ReplicationPad", "circular": "CircularPad"}[mode]
    return _make(y, (x,), backward, f"{name}{k}DBackward")


def _pad_constant_nd(x: Tensor, pads: Tuple[int, ...], fill: float) -> Tensor:
    """Constant padding of more than 3 dimensions (rare): slicing in NumPy."""
    xd = x.data
    nd = xd.ndim
    out_shape = list(xd.shape)
    src, dst = [slice(None)] * nd, [slice(None)] * nd
    for i in range(len(pads) // 2):
        d = nd - 1 - i
        lo, hi = pads[2 * i], pads[2 * i + 1]
        n = xd.shape[d]
        m = n + lo + hi
        if m < 0:
            raise ValueError(f"pad: the padding {pads} gives a negative size for dimension {d} of shape {xd.shape}")
        out_shape[d] = m
        s0, s1 = max(-lo, 0), n - max(-hi, 0)
        d0 = max(lo, 0)
        src[d] = slice(s0, max(s1, s0))
        dst[d] = slice(d0, d0 + max(s1 - s0, 0))
    y = np.full(out_shape, fill, dtype=xd.dtype)
    y[tuple(dst)] = xd[tuple(src)]

    def backward(g):
        gx = np.zeros_like(xd)
        gx[tuple(src)] = g[tuple(dst)]
        return (gx,)

    return _make(y, (x,), backward, "ConstantPadNDBackward")


# ----------------------------------------------------------------------------- pooling


def _pool_geometry(
    layer: str,
    sizes: Tuple[int, ...],
    kernel: Tuple[int, ...],
    stride: Tuple[int, ...],
    padding: Tuple[int, ...],
    dilation: Tuple[int, ...],
    ceil_mode: bool,
    shape: tuple,
) -> Tuple[int, ...]:
    """Checks pooling arguments as PyTorch does and returns the output sizes."""
    out = []
    for n, k, s, p, d in zip(sizes, kernel, stride, padding, dilation):
        if k < 1:
            raise ValueError(f"{layer}: kernel_size must be at least 1, given {kernel}")
        if s < 1:
            raise ValueError(f"{layer}: stride must be at least 1, given {stride}")
        if d < 1:
            raise ValueError(f"{layer}: dilation must be at least 1, given {dilation}")
        if p < 0:
            raise ValueError(f"{layer}: padding must be non-negative, given {padding}")
        if p > k // 2:
            raise ValueError(
                f"{layer}: pad should be at most half of effective kernel size, but got "
                f"padding={padding} for kernel_size={kernel}"
            )
        eff = d * (k - 1) + 1
        if eff > n + 2 * p:
            raise ValueError(
                f"{layer}: kernel_size={kernel} (dilation={dilation}) is larger than the padded input: "
                f"input shape {shape}, padding={padding}"
            )
        span = n + 2 * p - eff
        o = (-(-span // s) if ceil_mode else span // s) + 1
        if ceil_mode and (o - 1) * s >= n + p:
            o -= 1
        if o < 1:
            raise ValueError(f"{layer}: the output would be empty for input shape {shape}")
        out.append(o)
    return tuple(out)


def _pool_input(layer: str, x: Tensor, nsp: int) -> Tuple[np.ndarray, tuple]:
    """The input as (planes, H, W) (1-D pools get H = 1) and the leading shape."""
    xd = x.data
    if xd.ndim not in (nsp + 1, nsp + 2):
        want = "(C, L) or (N, C, L)" if nsp == 1 else "(C, H, W) or (N, C, H, W)"
        raise ValueError(f"{layer}: expected a {nsp + 1}-D or {nsp + 2}-D input {want}, given shape {xd.shape}")
    if any(s == 0 for s in xd.shape[xd.ndim - nsp - 1:]):
        raise ValueError(f"{layer}: expected non-empty channel and spatial dimensions, given shape {xd.shape}")
    if xd.dtype not in (np.float32, np.float64):
        raise TypeError(f"{layer}: input must be float32 or float64, given {xd.dtype}")
    lead = xd.shape[: xd.ndim - nsp]
    planes = int(np.prod(lead))
    sp = xd.shape[xd.ndim - nsp:]
    hw = (1,) + sp if nsp == 1 else sp
    return _contig(xd).reshape((planes,) + hw), lead


def _pool(
    kind: str,
    nsp: int,
    layer: str,
    input: Any,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: Optional[int],
    return_indices: bool,
):
    x = _tensor(input)
    k = _ints(layer, "kernel_size", kernel_size, nsp)
    s = k if stride is None or (not _is_int(stride) and len(stride) == 0) else _ints(layer, "stride", stride, nsp)
    p = _ints(layer, "padding", padding, nsp)
    d = _ints(layer, "dilation", dilation, nsp)
    if divisor_override is not None and (not _is_int(divisor_override) or divisor_override <= 0):
        raise ValueError(f"{layer}: divisor_override must be a positive int or None, given {divisor_override!r}")
    x3, lead = _pool_input(layer, x, nsp)
    hw = x3.shape[1:]
    _pool_geometry(layer, x.data.shape[x.data.ndim - nsp:], k, s, p, d, ceil_mode, x.data.shape)
    if nsp == 1:
        k, s, p, d = (1,) + k, (1,) + s, (0,) + p, (1,) + d
    args = dict(dilation=list(d), ceil_mode=bool(ceil_mode), count_include_pad=bool(count_include_pad), divisor_override=divisor_override)
    res = _native.pool2d(x3, kind, list(k), list(s), list(p), **args)
    y3, idx = (res, None) if kind == "avg" else res
    out_sp = y3.shape[2:] if nsp == 1 else y3.shape[1:]
    y = y3.reshape(lead + out_sp)
    xshape = x.data.shape

    def backward(g):
        g3 = _grad_like(g, x3).reshape(y3.shape)
        gx = _native.pool2d_backward(g3, idx, kind, list(hw), list(k), list(s), list(p), **args)
        return (gx.reshape(xshape),)

    name = {"max": "MaxPool", "min": "MinPool", "avg": "AvgPool"}[kind] + f"{nsp}DBackward"
    out = _make(y, (x,), backward, name)
    if return_indices:
        ind = idx.reshape(lead + out_sp)
        return out, Tensor._wrap(ind)
    return out


def max_pool2d(
    input: Any,
    kernel_size: IntOrPair,
    stride: Optional[IntOrPair] = None,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
    *,
    layer: str = "max_pool2d",
):
    """2-D max pooling of (N, C, H, W) or (C, H, W) input; stride defaults to kernel_size.

    Output (N, C, OH, OW) with OH = floor_or_ceil((H + 2 pad - dilation (k - 1) - 1) / stride)
    + 1 (in ceil mode the last window must start inside the input or the left padding).
    A NaN in a window is the maximum. With ``return_indices`` also returns int64 indices
    ``h * W + w`` of each maximum in its plane (as PyTorch).
    """
    return _pool("max", 2, layer, input, kernel_size, stride, padding, dilation, ceil_mode, True, None, return_indices)


def min_pool2d(
    input: Any,
    kernel_size: IntOrPair,
    stride: Optional[IntOrPair] = None,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
    *,
    layer: str = "min_pool2d",
):
    """2-D min pooling: as :func:`max_pool2d` with the minimum (a NaN in a window wins)."""
    return _pool("min", 2, layer, input, kernel_size, stride, padding, dilation, ceil_mode, True, None, return_indices)


def avg_pool2d(
    input: Any,
    kernel_size: IntOrPair,
    stride: Optional[IntOrPair] = None,
    padding: IntOrPair = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: Optional[int] = None,
    *,
    layer: str = "avg_pool2d",
) -> Tensor:
    """2-D average pooling of (N, C, H, W) or (C, H, W) input; stride defaults to
    kernel_size. Each window's sum is divided by its size including the padding
    (``count_include_pad``), by the number of input elements in it otherwise, or by
    ``divisor_override``."""
    return _pool("avg", 2, layer, input, kernel_size, stride, padding, 1, ceil_mode, count_include_pad, divisor_override, False)


def max_pool1d(
    input: Any,
    kernel_size: IntOrPair,
    stride: Optional[IntOrPair] = None,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
    *,
    layer: str = "max_pool1d",
):
    """1-D max pooling of (N, C, L) or (C, L) input (indices are positions in L)."""
    return _pool("max", 1, layer, input, kernel_size, stride, padding, dilation, ceil_mode, True, None, return_indices)


def min_pool1d(
    input: Any,
    kernel_size: IntOrPair,
    stride: Optional[IntOrPair] = None,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
    *,
    layer: str = "min_pool1d",
):
    """1-D min pooling of (N, C, L) or (C, L) input."""
    return _pool("min", 1, layer, input, kernel_size, stride, padding, dilation, ceil_mode, True, None, return_indices)


def avg_pool1d(
    input: Any,
    kernel_size: IntOrPair,
    stride: Optional[IntOrPair] = None,
    padding: IntOrPair = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    *,
    layer: str = "avg_pool1d",
) -> Tensor:
    """1-D average pooling of (N, C, L) or (C, L) input."""
    return _pool("avg", 1, layer, input, kernel_size, stride, padding, 1, ceil_mode, count_include_pad, None, False)


def adaptive_avg_pool2d(input: Any, output_size: Any, *, layer: str = "adaptive_avg_pool2d") -> Tensor:
    """Adaptive 2-D average pooling of (N, C, H, W) or (C, H, W) input to ``output_size``
    (an int, or a pair whose None entries keep the input size). Output cell (i, j)
    averages rows floor(i H / OH) .. ceil((i + 1) H / OH) and the same for columns."""
    x = _tensor(input)
    if _is_int(output_size) or output_size is None:
        output_size = (output_size, output_size)
    try:
        osz = tuple(output_size)
    except TypeError:
        osz = ()
    if len(osz) != 2 or not all(o is None or _is_int(o) for o in osz):
        raise ValueError(f"{layer}: output_size must be an int or a pair of ints/None, given {output_size!r}")
    x3, lead = _pool_input(layer, x, 2)
    hw = x3.shape[1:]
    osz = tuple(hw[i] if o is None else int(o) for i, o in enumerate(osz))
    if min(osz) < 1:
        raise ValueError(f"{layer}: output_size must be positive, given {output_size!r}")
    y3 = _native.adaptive_avg_pool2d(x3, list(osz))
    xshape = x.data.shape

    def backward(g):
        g3 = _grad_like(g, x3).reshape(y3.shape)
        return (_native.adaptive_avg_pool2d_backward(g3, list(hw)).reshape(xshape),)

    return _make(y3.reshape(lead + osz), (x,), backward, "AdaptiveAvgPool2DBackward")


# ----------------------------------------------------------------------------- batch norm


def _buf(b: Any) -> Optional[np.ndarray]:
    if b is None:
        return None
    return b.data if isinstance(b, Tensor) else b


def _param(layer: str, name: str, p: Any, c: int, dt: np.dtype) -> Optional[np.ndarray]:
    if p is None:
        return None
    a = p.data if isinstance(p, Tensor) else np.asarray(p)
    if a.shape != (c,):
        raise ValueError(f"{layer}: {name} must have shape ({c},) for {c} channels, given {a.shape}")
    if a.dtype != dt:
        raise TypeError(f"{layer}: {name} has dtype {a.dtype} but the input has {dt}")
    return _contig(a)


def batch_norm(
    input: Any,
    running_mean: Any,
    running_var: Any,
    weight: Any = None,
    bias: Any = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
    *,
    layer: str = "batch_norm",
) -> Tensor:
    """Batch normalisation of (N, C) or (N, C, *) input, per channel C.

    training: normalises with the batch mean and biased variance and, when given, updates
    ``running_mean`` / ``running_var`` in place: r = (1 - momentum) r + momentum stat, with
    the unbiased variance for running_var. Otherwise normalises with the running statistics.
    y = (x - mean) / sqrt(var + eps) * weight + bias. Gradients flow to input, weight and
    bias (PyTorch's formula); the running statistics are never differentiated.
    """
    x = _tensor(input)
    xd = x.data
    if xd.ndim < 2:
        raise ValueError(f"{layer}: expected an input of at least 2 dimensions (N, C, *), given shape {xd.shape}")
    if xd.dtype not in (np.float32, np.float64):
        raise TypeError(f"{layer}: input must be float32 or float64, given {xd.dtype}")
    n, c = xd.shape[0], xd.shape[1]
    l = int(np.prod(xd.shape[2:])) if xd.ndim > 2 else 1
    dt = xd.dtype
    wd = _param(layer, "weight", weight, c, dt)
    bd = _param(layer, "bias", bias, c, dt)
    rm, rv = _buf(running_mean), _buf(running_var)
    for name, r in (("running_mean", rm), ("running_var", rv)):
        if r is not None and r.shape != (c,):
            raise ValueError(f"{layer}: {name} must have shape ({c},) for {c} channels, given {r.shape}")
    x3 = _contig(xd).reshape(n, c, l)
    if training:
        if n * l <= 1:
            raise ValueError(f"{layer}: Expected more than 1 value per channel when training, got input size {xd.shape}")
        mean, var = _native.batch_norm_stats(x3)
        m = n * l
        if rm is not None:
            rm[...] = (1 - momentum) * rm + momentum * mean.astype(rm.dtype)
        if rv is not None:
            rv[...] = (1 - momentum) * rv + momentum * (var.astype(np.float64) * (m / (m - 1))).astype(rv.dtype)
    else:
        if rm is None or rv is None:
            raise ValueError(f"{layer}: running_mean and running_var must be given when not training")
        mean, var = rm.astype(dt), rv.astype(dt)
        if n * l == 0:
            raise ValueError(f"{layer}: empty input of shape {xd.shape}")
    invstd = (1.0 / np.sqrt(var.astype(np.float64) + eps)).astype(dt)
    mean = _contig(mean.astype(dt, copy=False))
    y = _native.batch_norm(x3, mean, invstd, wd, bd).reshape(xd.shape)
    if not _GradMode.enabled:
        return Tensor._wrap(y)
    inputs = [x]
    if weight is not None and isinstance(weight, Tensor):
        inputs.append(weight)
    if bias is not None and isinstance(bias, Tensor):
        inputs.append(bias)
    has_w = weight is not None and isinstance(weight, Tensor)
    has_b = bias is not None and isinstance(bias, Tensor)
    need_dx = x.requires_grad
    train = bool(training)

    def backward(g):
        g3 = _grad_like(g, xd).reshape(n, c, l)
        gx, gw, gb = _native.batch_norm_backward(x3, g3, mean, invstd, wd, train, need_dx)
        out = [gx.reshape(xd.shape) if gx is not None else None]
        if has_w:
            out.append(gw)
        if has_b:
            out.append(gb)
        return tuple(out)

    return _make(y, tuple(inputs), backward, "NativeBatchNormBackward")
