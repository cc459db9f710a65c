"""Hypothesis strategies and NumPy references shared by the tests."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

DTYPES = [np.float32, np.float64]


def shapes(min_dims: int = 0, max_dims: int = 4, min_side: int = 0, max_side: int = 5):
    """Array shapes that include size-0 and size-1 dimensions."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def arrays(dtype, shape, lo: float = -10.0, hi: float = 10.0):
    width = 32 if np.dtype(dtype) == np.float32 else 64
    # Bounds exactly representable at that width (hypothesis insists on it).
    lo, hi = float(np.dtype(dtype).type(lo)), float(np.dtype(dtype).type(hi))
    return hnp.arrays(
        dtype, shape, elements=st.floats(lo, hi, allow_nan=False, allow_infinity=False, width=width)
    )


def maybe_noncontiguous(draw, a: np.ndarray) -> np.ndarray:
    """The same values as ``a`` laid out C-contiguous, transposed, or with negative strides."""
    kind = draw(st.sampled_from(["c", "fortran", "reversed", "strided"]))
    if kind == "fortran":
        return np.asfortranarray(a)
    if kind == "reversed" and a.ndim >= 1:
        r = np.ascontiguousarray(a[::-1])
        return r[::-1]
    if kind == "strided" and a.ndim >= 1:
        big = np.repeat(a, 2, axis=-1)
        v = big[..., ::2]
        return v
    return a


def tol(dtype):
    return dict(rtol=2e-5, atol=2e-5) if np.dtype(dtype) == np.float32 else dict(rtol=1e-12, atol=1e-12)


# ---- NumPy references of the documented formulas (computed in float64)

def ref_sigmoid(x):
    x = np.asarray(x, np.float64)
    return np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))


def ref_softplus(x, beta=1.0, threshold=20.0):
    x = np.asarray(x, np.float64)
    bx = beta * x
    return np.where(bx > threshold, x, np.log1p(np.exp(np.minimum(bx, threshold))) / beta)


def ref_softmax(x, axis=-1):
    x = np.asarray(x, np.float64)
    if x.size == 0:
        return x.copy()
    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp(x - m)
    return e / e.sum(axis=axis, keepdims=True)


def ref_log_softmax(x, axis=-1):
    x = np.asarray(x, np.float64)
    if x.size == 0:
        return x.copy()
    m = np.max(x, axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


UNARY_REFS = {
    "relu": (lambda x: np.maximum(x, 0), lambda x: (x > 0).astype(np.float64)),
    "leaky_relu": (lambda x: np.where(x > 0, x, 0.01 * x), lambda x: np.where(x > 0, 1.0, 0.01)),
    "sigmoid": (ref_sigmoid, lambda x: ref_sigmoid(x) * (1 - ref_sigmoid(x))),
    "tanh": (np.tanh, lambda x: 1 - np.tanh(x) ** 2),
    "softsign": (lambda x: x / (1 + np.abs(x)), lambda x: 1 / (1 + np.abs(x)) ** 2),
    "softplus": (ref_softplus, lambda x: np.where(x > 20, 1.0, ref_sigmoid(x))),
    "exp": (np.exp, np.exp),
    "log": (np.log, lambda x: 1 / x),
}
