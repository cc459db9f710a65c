"""``ferrograd.nn.functional``: layers, activations and losses as functions.

Names, argument orders, defaults and formulas follow ``torch.nn.functional``. Each op is
one recorded node whose forward and backward sit side by side; the heavy loops run in Rust
(the fused linear layer, the element-wise activations, log-softmax).

Shapes: N is the batch size, C the number of classes, ``*`` any further dimensions.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .. import _native
from .._random import generator
from ..autograd.grad_mode import _GradMode
from ..tensor import (
    Tensor,
    _as_array,
    _contig,
    _make,
    _unary_native,
    leaky_relu,
    log_softmax,
    relu,
    sigmoid,
    softmax,
    softplus,
    softsign,
    tanh,
)

__all__ = [
    "linear",
    "dropout",
    "relu",
    "leaky_relu",
    "sigmoid",
    "tanh",
    "softsign",
    "softplus",
    "softmax",
    "log_softmax",
    "elu",
    "gelu",
    "mse_loss",
    "l1_loss",
    "huber_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "nll_loss",
]

_ACTS = ("none", "relu", "sigmoid", "tanh")


def _tensor(x: Any, like: Optional[np.dtype] = None) -> Tensor:
    """``x`` as a Tensor; non-Tensor input becomes a float array (of ``like`` if given)."""
    if isinstance(x, Tensor):
        return x
    return Tensor._wrap(_as_array(x, like, copy=False))


# ----------------------------------------------------------------------------- linear


def linear(
    input: Any, weight: Tensor, bias: Optional[Tensor] = None, activation: Optional[str] = None
) -> Tensor:
    """y = act(input @ weight.T + bias), one fused Rust kernel forward and backward.

    input: (*, in_features); weight: (out_features, in_features); bias: (out_features,) or
    None; activation: None (identity), 'relu', 'sigmoid' or 'tanh' (applied inside the
    kernel). Returns (*, out_features). A NumPy/list input is converted to the weight's
    dtype; a Tensor input must already have it.
    """
    wd = weight.data
    if isinstance(input, Tensor):
        x = input
    else:
        x = Tensor._wrap(_as_array(input, wd.dtype, copy=False))
    xd = x.data
    act = "none" if activation is None else activation
    if act not in _ACTS:
        raise ValueError(f"linear: activation must be None, 'relu', 'sigmoid' or 'tanh', given {activation!r}")
    if wd.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), given shape {wd.shape}")
    k = wd.shape[1]
    if xd.ndim == 0 or xd.shape[-1] != k:
        raise ValueError(
            f"linear: input has {xd.shape[-1] if xd.ndim else 0} features, shape {xd.shape}; "
            f"expected (*, {k}) for a weight of shape {wd.shape}"
        )
    if xd.dtype != wd.dtype:
        raise TypeError(
            f"linear: input has dtype {xd.dtype} but the weight has {wd.dtype}; convert one "
            f"(x.to({wd.dtype}) or module.to({xd.dtype}))"
        )
    lead = xd.shape[:-1]
    x2 = xd if xd.ndim == 2 else xd.reshape(-1, k)
    if not x2.flags.c_contiguous:
        x2 = np.ascontiguousarray(x2)
    bd = None
    if bias is not None:
        bd = bias.data
        if bd.shape != (wd.shape[0],):
            raise ValueError(f"linear: bias must have shape ({wd.shape[0]},), given {bd.shape}")
    y = _native.linear(x2, wd, bd, act)
    if xd.ndim != 2:
        y = y.reshape(lead + (wd.shape[0],))
    if not _GradMode.enabled:
        return Tensor._wrap(y)
    inputs = (x, weight) if bias is None else (x, weight, bias)
    need_dx = x.requires_grad
    need_db = bias is not None and bias.requires_grad
    xshape = xd.shape
    n = wd.shape[0]

    def backward(g):
        g2 = g if g.ndim == 2 else g.reshape(-1, n)
        if not g2.flags.c_contiguous or g2.dtype != wd.dtype:
            g2 = np.ascontiguousarray(g2, dtype=wd.dtype)
        y2 = y if y.ndim == 2 else y.reshape(-1, n)
        dx, dw, db = _native.linear_backward(x2, wd, y2, g2, act, need_dx, need_db)
        if dx is not None and dx.shape != xshape:
            dx = dx.reshape(xshape)
        return (dx, dw) if bias is None else (dx, dw, db)

    return _make(y, inputs, backward, "LinearBackward" if act == "none" else f"Linear{act.capitalize()}Backward")


# ----------------------------------------------------------------------------- dropout


def dropout(input: Any, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Inverted dropout: zeroes each element with probability ``p`` (mask drawn from the
    library generator) and scales the rest by 1 / (1 - p); the identity when not training.
    Any shape; returns the input's shape. ``inplace`` is accepted for compatibility and
    ignored."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: probability has to be between 0 and 1, but got {p}")
    x = _tensor(input)
    if not training or p == 0.0:
        return x
    xd = x.data
    if p == 1.0:
        mask = np.zeros(xd.shape, dtype=xd.dtype)
    else:
        keep = generator().random(xd.shape, dtype=np.float32) >= np.float32(p)
        mask = keep.astype(xd.dtype) * xd.dtype.type(1.0 / (1.0 - p))
    return _make(xd * mask, (x,), lambda g: (g * mask,), "DropoutBackward")


# ----------------------------------------------------------------------------- activations


def elu(input: Any, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x if x > 0 else alpha (exp(x) - 1), element-wise (Rust kernel)."""
    return _unary_native("elu", input, float(alpha), node="EluBackward")


def gelu(input: Any, approximate: str = "none") -> Tensor:
    """x Φ(x) with Φ the standard normal CDF ('none', through erfc), or
    0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))) ('tanh'); element-wise (Rust kernel)."""
    if approximate == "none":
        return _unary_native("gelu", input, node="GeluBackward")
    if approximate == "tanh":
        return _unary_native("gelu_tanh", input, node="GeluBackward")
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', given {approximate!r}")


# ----------------------------------------------------------------------------- loss helpers


def _check_reduction(op: str, reduction: str) -> None:
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', given {reduction!r}")


def _loss_pair(op: str, input: Any, target: Any) -> tuple:
    """(input Tensor, target Tensor) of the same shape and float dtype, or a ValueError."""
    x = _tensor(input)
    dt = x.data.dtype
    if isinstance(target, Tensor):
        t = target
        if t.data.dtype != dt:
            if t.requires_grad:
                raise ValueError(f"{op}: target has dtype {t.data.dtype}, expected {dt} like the input")
            t = Tensor._wrap(t.data.astype(dt))
    else:
        arr = np.asarray(target)
        if arr.dtype.kind not in "biuf":
            raise ValueError(
                f"{op}: target must hold real numbers, given dtype {arr.dtype} with shape {arr.shape}"
            )
        t = Tensor._wrap(arr.astype(dt, copy=False))
    if t.data.shape != x.data.shape:
        raise ValueError(
            f"{op}: target shape {t.data.shape} does not match the input shape {x.data.shape}; "
            f"expected a target of shape {x.data.shape}"
        )
    return x, t


def _reduce(op: str, loss: np.ndarray, reduction: str, x: Tensor, t: Optional[Tensor], dloss_dx, dloss_dt, name: str) -> Tensor:
    """Reduces an element-wise loss and records one node whose backward scales the
    element-wise derivatives (callables returning arrays) by the reduction."""
    dt = loss.dtype
    n = loss.size
    if reduction == "none":
        out = loss
    elif reduction == "sum":
        out = np.asarray(loss.sum(dtype=dt))
    else:
        out = np.asarray(loss.mean(dtype=dt)) if n else np.asarray(np.nan, dtype=dt)
    inputs = (x,) if t is None else (x, t)

    def backward(g):
        if reduction == "none":
            s = g
        elif reduction == "sum":
            s = g
        else:
            s = g / n if n else g
        gx = (dloss_dx() * s).astype(dt, copy=False) if x.requires_grad else None
        if t is None:
            return (gx,)
        gt = (dloss_dt() * s).astype(dt, copy=False) if (t.requires_grad and dloss_dt is not None) else None
        return gx, gt

    return _make(out, inputs, backward, name)


# ----------------------------------------------------------------------------- regression losses


def mse_loss(input: Any, target: Any, reduction: str = "mean") -> Tensor:
    """(input - target)², reduced by 'mean' (default), 'sum' or 'none'.
    input and target: the same shape (*); returns a scalar, or (*) for 'none'."""
    _check_reduction("mse_loss", reduction)
    x, t = _loss_pair("mse_loss", input, target)
    d = x.data - t.data
    return _reduce("mse_loss", d * d, reduction, x, t, lambda: 2 * d, lambda: -2 * d, "MseLossBackward")


def l1_loss(input: Any, target: Any, reduction: str = "mean") -> Tensor:
    """|input - target| (mean absolute error for 'mean'); the gradient at 0 is 0.
    input and target: the same shape (*)."""
    _check_reduction("l1_loss", reduction)
    x, t = _loss_pair("l1_loss", input, target)
    d = x.data - t.data
    return _reduce("l1_loss", np.abs(d), reduction, x, t, lambda: np.sign(d), lambda: -np.sign(d), "L1LossBackward")


def huber_loss(input: Any, target: Any, reduction: str = "mean", delta: float = 1.0) -> Tensor:
    """0.5 d² where |d| < delta, else delta (|d| - 0.5 delta), with d = input - target.
    input and target: the same shape (*)."""
    _check_reduction("huber_loss", reduction)
    if not delta > 0:
        raise ValueError(f"huber_loss: delta must be positive, given {delta}")
    x, t = _loss_pair("huber_loss", input, target)
    d = x.data - t.data
    a = np.abs(d)
    small = a < delta
    loss = np.where(small, 0.5 * d * d, delta * (a - 0.5 * delta)).astype(d.dtype, copy=False)

    def deriv():
        return np.clip(d, -delta, delta)

    return _reduce("huber_loss", loss, reduction, x, t, deriv, lambda: -deriv(), "HuberLossBackward")


# ----------------------------------------------------------------------------- binary losses


def _weight_array(op: str, weight: Any, shape: tuple, dt: np.dtype, what: str = "weight") -> Optional[np.ndarray]:
    if weight is None:
        return None
    w = weight.data if isinstance(weight, Tensor) else np.asarray(weight)
    w = w.astype(dt, copy=False)
    try:
        np.broadcast_shapes(w.shape, shape)
    except ValueError:
        raise ValueError(f"{op}: {what} of shape {w.shape} cannot be broadcast to the input shape {shape}") from None
    if np.broadcast_shapes(w.shape, shape) != shape:
        raise ValueError(f"{op}: {what} of shape {w.shape} cannot be broadcast to the input shape {shape}")
    return w


def binary_cross_entropy(
    input: Any, target: Any, weight: Optional[Any] = None, reduction: str = "mean"
) -> Tensor:
    """-w [y log p + (1 - y) log(1 - p)] with each log clamped at -100 (PyTorch's).

    input: probabilities in [0, 1], shape (*); target: the same shape; weight: broadcast
    to (*) or None.
    """
    op = "binary_cross_entropy"
    _check_reduction(op, reduction)
    x, t = _loss_pair(op, input, target)
    p, y = x.data, t.data
    if p.size and not (p.min() >= 0 and p.max() <= 1):
        raise ValueError(f"{op}: all elements of input should be between 0 and 1 (input shape {p.shape})")
    dt = p.dtype
    w = _weight_array(op, weight, p.shape, dt)
    with np.errstate(divide="ignore"):
        lp = np.maximum(np.log(p), -100)
        l1p = np.maximum(np.log1p(-p), -100)
    loss = -(y * lp + (1 - y) * l1p)
    if w is not None:
        loss = loss * w

    def dx():
        g = (p - y) / np.maximum((1 - p) * p, 1e-12)
        return g if w is None else g * w

    def dtg():
        g = l1p - lp
        return g if w is None else g * w

    return _reduce(op, loss.astype(dt, copy=False), reduction, x, t, dx, dtg, "BinaryCrossEntropyBackward")


def _sigmoid_np(x: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def binary_cross_entropy_with_logits(
    input: Any,
    target: Any,
    weight: Optional[Any] = None,
    reduction: str = "mean",
    pos_weight: Optional[Any] = None,
) -> Tensor:
    """BCE of sigmoid(input), computed stably from the logits:
    (1 - y) x + (1 + (pos_weight - 1) y) (log1p(exp(-|x|)) + max(-x, 0)), times weight
    (without pos_weight: max(x, 0) - x y + log1p(exp(-|x|))).

    input: logits (*); target: the same shape; weight: broadcast to (*); pos_weight:
    broadcast along the last dimension (shape (C,) for inputs (N, C)).
    """
    op = "binary_cross_entropy_with_logits"
    _check_reduction(op, reduction)
    x, t = _loss_pair(op, input, target)
    z, y = x.data, t.data
    dt = z.dtype
    w = _weight_array(op, weight, z.shape, dt)
    pw = _weight_array(op, pos_weight, z.shape, dt, "pos_weight")
    sp_neg = np.log1p(np.exp(-np.abs(z))) + np.maximum(-z, 0)  # softplus(-x)
    if pw is None:
        loss = (1 - y) * z + sp_neg
    else:
        lw = (pw - 1) * y + 1
        loss = (1 - y) * z + lw * sp_neg
    if w is not None:
        loss = loss * w

    def dx():
        s = _sigmoid_np(z)
        g = s - y if pw is None else (1 - y) - ((pw - 1) * y + 1) * (1 - s)
        return g if w is None else g * w

    def dtg():
        g = -z if pw is None else -z + (pw - 1) * sp_neg
        return g if w is None else g * w

    return _reduce(op, loss.astype(dt, copy=False), reduction, x, t, dx, dtg, "BinaryCrossEntropyWithLogitsBackward")


# ----------------------------------------------------------------------------- classification losses


def _class_targets(op: str, target: Any, xshape: tuple, n_classes: int) -> Optional[np.ndarray]:
    """Class-index targets as int64 of shape xshape minus the class dim, or None when the
    target holds class probabilities (same shape as the input). ValueError otherwise."""
    td = target.data if isinstance(target, Tensor) else np.asarray(target)
    idx_shape = xshape[:1] + xshape[2:] if len(xshape) >= 2 else ()
    if td.shape == xshape and td.dtype.kind == "f":
        return None
    if td.shape != idx_shape:
        raise ValueError(
            f"{op}: target shape {td.shape} does not fit the input shape {xshape}: expected "
            f"class indices of shape {idx_shape} or class probabilities of shape {xshape}"
        )
    if td.dtype.kind in "iu":
        return td.astype(np.int64, copy=False)
    if td.dtype.kind == "f" and td.size and np.array_equal(td, np.round(td)):
        # ferrograd tensors hold floats: accept integral float class indices.
        return td.astype(np.int64)
    if td.dtype.kind == "f" and td.size == 0:
        return td.astype(np.int64)
    raise ValueError(
        f"{op}: class-index targets of shape {idx_shape} must hold integers, given dtype "
        f"{td.dtype}; class probabilities must have the input's shape {xshape} and a float dtype"
    )


def _check_indices(op: str, y: np.ndarray, n_classes: int, ignore_index: int) -> np.ndarray:
    valid = y != ignore_index
    bad = valid & ((y < 0) | (y >= n_classes))
    if bad.any():
        v = int(y[bad].flat[0])
        raise ValueError(
            f"{op}: target class index {v} is out of range for {n_classes} classes "
            f"(expected 0 <= index < {n_classes}, or ignore_index={ignore_index})"
        )
    return valid


def _to_rows(op: str, xd: np.ndarray) -> tuple:
    """Input (N, C, *) or (C,) as rows (M, C) with the class dim last."""
    if xd.ndim == 0:
        raise ValueError(f"{op}: input must have at least 1 dimension (C,) or (N, C, *), given a 0-d tensor")
    if xd.ndim == 1:
        return xd[None, :], xd.shape[0]
    c = xd.shape[1]
    if xd.ndim == 2:
        return xd, c
    return np.moveaxis(xd, 1, -1).reshape(-1, c), c


def _from_rows(r: np.ndarray, xshape: tuple) -> np.ndarray:
    """Inverse of :func:`_to_rows` for an array of rows (M, C)."""
    if len(xshape) == 1:
        return r.reshape(xshape)
    if len(xshape) == 2:
        return r
    moved = (xshape[0],) + xshape[2:] + (xshape[1],)
    return np.moveaxis(r.reshape(moved), -1, 1)


def _class_weight(op: str, weight: Any, c: int, dt: np.dtype) -> Optional[np.ndarray]:
    if weight is None:
        return None
    w = weight.data if isinstance(weight, Tensor) else np.asarray(weight)
    if w.shape != (c,):
        raise ValueError(f"{op}: weight must have shape ({c},) (one per class), given {w.shape}")
    return w.astype(dt, copy=False)


def _indexed_loss(
    op: str, name: str, x: Tensor, rows: np.ndarray, logp: np.ndarray, y: np.ndarray, weight: Optional[np.ndarray],
    ignore_index: int, reduction: str, smoothing: float, from_logits: bool,
) -> Tensor:
    """Loss of rows (M, C) of log-probabilities ``logp`` against class indices ``y`` (M,).
    Per row: -(1 - ε) w_y logp_y - (ε / C) Σ_c w_c logp_c (zero where y == ignore_index);
    'mean' divides by Σ w_y over the rows not ignored (PyTorch's)."""
    xshape = x.data.shape
    m, c = logp.shape
    dt = logp.dtype
    valid = _check_indices(op, y, c, ignore_index)
    ys = np.where(valid, y, 0)
    ar = np.arange(m)
    wy = (np.ones(m, dt) if weight is None else weight[ys]) * valid
    picked = logp[ar, ys]
    loss = -(1 - smoothing) * wy * picked if smoothing else -wy * picked
    if smoothing:
        wsum = logp.sum(axis=1) if weight is None else logp @ weight
        loss = loss - (smoothing / c) * wsum * valid
    loss = loss.astype(dt, copy=False)
    if reduction == "none":
        out = loss.reshape(xshape[:1] + xshape[2:] if len(xshape) >= 2 else ())
    elif reduction == "sum":
        out = np.asarray(loss.sum(dtype=dt))
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.asarray(loss.sum(dtype=dt) / wy.sum(dtype=dt))
    denom = wy.sum(dtype=dt)

    def backward(g):
        if reduction == "none":
            s = g.reshape(m)
        elif reduction == "sum":
            s = np.full(m, g, dt)
        else:
            s = np.full(m, g / denom, dt)
        # a[r, c] = coefficient of -logp[r, c] in row r's loss.
        a = np.zeros((m, c), dt)
        a[ar, ys] = (1 - smoothing) * wy
        if smoothing:
            a += (smoothing / c) * (np.ones(c, dt) if weight is None else weight)[None, :] * valid[:, None]
        a *= s[:, None]
        if from_logits:
            # d/dz of -Σ_c a_c log_softmax(z)_c = (Σ_c a_c) softmax(z) - a.
            gr = np.exp(logp) * a.sum(axis=1, keepdims=True) - a
        else:
            gr = -a
        return (_from_rows(gr.astype(dt, copy=False), xshape),)

    return _make(out, (x,), backward, name)


def cross_entropy(
    input: Any,
    target: Any,
    weight: Optional[Any] = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Cross-entropy of logits, log-softmax fused (one node: forward computes the
    log-softmax once in Rust; backward is softmax - target distribution, scaled).

    input: logits (N, C), (N, C, d1, ...) or (C,). target: class indices (N,) /
    (N, d1, ...) / () of an integer dtype (integral floats accepted), or class
    probabilities of the input's shape. weight: (C,) per-class weights. ignore_index:
    targets equal to it add nothing (indices only). label_smoothing ε in [0, 1]: the target
    becomes (1 - ε) target + ε / C. 'mean' divides by Σ weight[target] over non-ignored
    elements for indices, by the number of elements N * d1 * ... for probabilities.
    """
    op = "cross_entropy"
    _check_reduction(op, reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be in [0, 1], given {label_smoothing}")
    x = _tensor(input)
    xd = x.data
    rows, c = _to_rows(op, xd)
    y = _class_targets(op, target, xd.shape, c)
    dt = xd.dtype
    w = _class_weight(op, weight, c, dt)
    logp = _native.softmax(_contig(rows), True)
    if y is not None:
        return _indexed_loss(op, "CrossEntropyLossBackward", x, rows, logp, y.reshape(-1), w, ignore_index,
                             reduction, float(label_smoothing), True)
    # Class probabilities.
    tt = target if isinstance(target, Tensor) else Tensor._wrap(np.asarray(target))
    q_rows, _ = _to_rows(op, tt.data.astype(dt, copy=False))
    eps = float(label_smoothing)
    q = q_rows * (1 - eps) + eps / c if eps else q_rows
    a = q if w is None else q * w[None, :]
    loss = -(logp * a).sum(axis=1).astype(dt, copy=False)
    m = rows.shape[0]
    if reduction == "none":
        out = loss.reshape(xd.shape[:1] + xd.shape[2:] if xd.ndim >= 2 else ())
    elif reduction == "sum":
        out = np.asarray(loss.sum(dtype=dt))
    else:
        out = np.asarray(loss.sum(dtype=dt) / m) if m else np.asarray(np.nan, dtype=dt)
    xshape = xd.shape
    t_grad = isinstance(target, Tensor) and target.requires_grad

    def backward(g):
        if reduction == "none":
            s = g.reshape(m, 1)
        else:
            s = g / m if reduction == "mean" else g
        gx = (np.exp(logp) * a.sum(axis=1, keepdims=True) - a) * s
        gx = _from_rows(gx.astype(dt, copy=False), xshape) if x.requires_grad else None
        if not t_grad:
            return gx, None
        gq = -logp * (1 - eps) * s
        if w is not None:
            gq = gq * w[None, :]
        return gx, _from_rows(gq.astype(dt, copy=False), xshape)

    return _make(out, (x, tt), backward, "CrossEntropyLossBackward")


def nll_loss(
    input: Any,
    target: Any,
    weight: Optional[Any] = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> Tensor:
    """Negative log-likelihood: -weight[y] input[n, y] per element (zero where y ==
    ignore_index); 'mean' divides by Σ weight[y] over non-ignored elements.

    input: log-probabilities (N, C), (N, C, d1, ...) or (C,); target: class indices
    (N,), (N, d1, ...) or () (integer dtype; integral floats accepted); weight: (C,).
    """
    op = "nll_loss"
    _check_reduction(op, reduction)
    x = _tensor(input)
    xd = x.data
    rows, c = _to_rows(op, xd)
    y = _class_targets(op, target, xd.shape, c)
    if y is None:
        raise ValueError(
            f"{op}: expected class indices of shape {xd.shape[:1] + xd.shape[2:] if xd.ndim >= 2 else ()}, "
            f"given a float target of the input's shape {xd.shape} (use cross_entropy for class probabilities)"
        )
    w = _class_weight(op, weight, c, xd.dtype)
    return _indexed_loss(op, "NllLossBackward", x, rows, _contig(rows), y.reshape(-1), w, ignore_index,
                         reduction, 0.0, False)


from .functional_conv import conv1d, conv2d, conv_transpose2d  # noqa: E402

__all__ += ["conv1d", "conv2d", "conv_transpose2d"]

# Pooling, padding and batch norm (functional_pool.py).
from .functional_pool import (  # noqa: E402
    adaptive_avg_pool2d,
    avg_pool1d,
    avg_pool2d,
    batch_norm,
    max_pool1d,
    max_pool2d,
    min_pool1d,
    min_pool2d,
    pad,
)

__all__ += ["pad", "max_pool2d", "min_pool2d", "avg_pool2d", "max_pool1d", "min_pool1d", "avg_pool1d", "adaptive_avg_pool2d", "batch_norm"]

from .sparse import embedding  # noqa: E402  (defined with nn.Embedding in sparse.py)

__all__ += ["embedding"]
