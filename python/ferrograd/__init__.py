"""ferrograd: a deep-learning library for Python whose hot loops run in Rust.

Tensors with reverse-mode autograd (:class:`Tensor`, :func:`tensor`), differentiable ops,
and the Rust kernels behind them (Rayon-parallel, SIMD chosen at run time).
"""

from __future__ import annotations

import os as _os

from . import _malloc

_malloc.tune()

from . import _native, data, datasets, nn, optim, train, viz
from ._random import generator, initial_seed, manual_seed
from .serialization import load, save
from .autograd import enable_grad, gradcheck, is_grad_enabled, no_grad, set_grad_enabled
from .tensor import (
    Tensor,
    abs,
    add,
    amax,
    amin,
    arange,
    argmax,
    argmin,
    bool_,
    cat,
    clamp,
    clip,
    concatenate,
    div,
    exp,
    expand,
    eye,
    flatten,
    float32,
    float64,
    from_numpy,
    full,
    getitem,
    int64,
    leaky_relu,
    linspace,
    log,
    log_softmax,
    matmul,
    max,
    maximum,
    mean,
    min,
    minimum,
    mul,
    neg,
    ones,
    ones_like,
    permute,
    pow,
    rand,
    rand_like,
    randn,
    randn_like,
    relu,
    reshape,
    sigmoid,
    softmax,
    softplus,
    softsign,
    sqrt,
    squeeze,
    stack,
    sub,
    sum,
    tanh,
    tensor,
    transpose,
    unsqueeze,
    where,
    zeros,
    zeros_like,
)

from .train import summary

__version__ = "0.1.0"


def set_num_threads(n: int) -> None:
    """Sets the number of threads the Rust kernels use (at least 1).

    Results do not depend on it: kernels split work in fixed blocks and reduce in a fixed
    order. The initial count comes from ``FERROGRAD_NUM_THREADS`` or the number of CPUs.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads: expected an int, given {type(n).__name__}")
    _native.set_num_threads(n)


def get_num_threads() -> int:
    """The number of threads the Rust kernels use."""
    return int(_native.get_num_threads())


def simd_level() -> str:
    """The SIMD instruction set the kernels chose for this CPU ('avx512f', 'avx2+fma' or
    'scalar'); ``FERROGRAD_SIMD=avx2|scalar`` caps it."""
    return str(_native.simd_level())


__all__ = [name for name in dir() if not name.startswith("_")]
