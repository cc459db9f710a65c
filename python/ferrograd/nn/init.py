"""``ferrograd.nn.init``: in-place initialisers with PyTorch's formulas.

Every function fills ``tensor.data`` (a Tensor or Parameter; a NumPy array works too) in
place from the library's seeded generator (:func:`ferrograd.manual_seed`) and returns the
tensor. Values are drawn in float64 and rounded to the tensor's dtype. Fans: for a weight
of shape (out, in, *kernel), fan_in = in * prod(kernel), fan_out = out * prod(kernel).
"""

from __future__ import annotations

import math
from typing import Any, Optional, Tuple

import numpy as np

from .._random import generator
from ..tensor import Tensor

__all__ = [
    "calculate_gain",
    "uniform_",
    "normal_",
    "constant_",
    "zeros_",
    "ones_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
]


def _array(op: str, tensor: Any) -> np.ndarray:
    if isinstance(tensor, Tensor):
        return tensor.data
    if isinstance(tensor, np.ndarray) and tensor.dtype.kind == "f":
        return tensor
    raise TypeError(f"{op}: expected a Tensor, Parameter or float ndarray, given {type(tensor).__name__}")


def calculate_gain(nonlinearity: str, param: Optional[float] = None) -> float:
    """The recommended gain for ``nonlinearity``: 1 for linear/conv/sigmoid, 5/3 for tanh,
    √2 for relu, √(2 / (1 + slope²)) for leaky_relu (slope = param, default 0.01), 3/4 for
    selu."""
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "sigmoid")
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = float(param)
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _calculate_fan_in_and_fan_out(tensor: Any) -> Tuple[int, int]:
    a = _array("fan", tensor)
    if a.ndim < 2:
        raise ValueError(
            f"Fan in and fan out can not be computed for tensor with fewer than 2 dimensions (shape {a.shape})"
        )
    receptive = int(np.prod(a.shape[2:])) if a.ndim > 2 else 1
    return a.shape[1] * receptive, a.shape[0] * receptive


def _fan(tensor: Any, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(tensor: Any, a: float = 0.0, b: float = 1.0) -> Any:
    """Fills with U(a, b)."""
    arr = _array("uniform_", tensor)
    arr[...] = generator().uniform(a, b, arr.shape)
    return tensor


def normal_(tensor: Any, mean: float = 0.0, std: float = 1.0) -> Any:
    """Fills with N(mean, std²)."""
    arr = _array("normal_", tensor)
    arr[...] = generator().normal(mean, std, arr.shape)
    return tensor


def constant_(tensor: Any, val: float) -> Any:
    """Fills with ``val``."""
    _array("constant_", tensor)[...] = val
    return tensor


def zeros_(tensor: Any) -> Any:
    """Fills with 0."""
    return constant_(tensor, 0.0)


def ones_(tensor: Any) -> Any:
    """Fills with 1."""
    return constant_(tensor, 1.0)


def xavier_uniform_(tensor: Any, gain: float = 1.0) -> Any:
    """Glorot uniform: U(-a, a), a = gain √(6 / (fan_in + fan_out)); at least 2-D."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    a = gain * math.sqrt(6.0 / float(fan_in + fan_out)) if fan_in + fan_out else 0.0
    return uniform_(tensor, -a, a)


def xavier_normal_(tensor: Any, gain: float = 1.0) -> Any:
    """Glorot normal: N(0, std²), std = gain √(2 / (fan_in + fan_out)); at least 2-D."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out)) if fan_in + fan_out else 0.0
    return normal_(tensor, 0.0, std)


def kaiming_uniform_(tensor: Any, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu") -> Any:
    """He uniform: U(-bound, bound), bound = √3 gain / √fan, gain =
    calculate_gain(nonlinearity, a), fan = fan_in or fan_out (``mode``); at least 2-D.
    A zero-size tensor is left as is (PyTorch warns and does the same)."""
    arr = _array("kaiming_uniform_", tensor)
    if arr.size == 0:
        return tensor
    fan = _fan(tensor, mode)
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor: Any, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu") -> Any:
    """He normal: N(0, std²), std = gain / √fan (see :func:`kaiming_uniform_`)."""
    arr = _array("kaiming_normal_", tensor)
    if arr.size == 0:
        return tensor
    fan = _fan(tensor, mode)
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return normal_(tensor, 0.0, std)
