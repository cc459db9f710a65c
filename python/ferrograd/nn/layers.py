"""Basic layers: ``Linear``, ``Dropout``, ``Flatten``, ``Identity``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..tensor import Tensor, _resolve_dtype, flatten
from . import functional as F
from . import init
from .module import Module, Parameter

__all__ = ["Linear", "Dropout", "Flatten", "Identity"]


class Linear(Module):
    """y = x W^T + b.

    Args:
        in_features: size of each input sample.
        out_features: size of each output sample.
        bias: learn an additive bias (default True).
        dtype: float32 (default) or float64.

    Shapes: input (*, in_features) -> output (*, out_features); ``weight`` is
    (out_features, in_features), ``bias`` (out_features,), both drawn from
    U(-1/√in_features, 1/√in_features) as in PyTorch (kaiming_uniform_ with a = √5).
    Forward and backward are one fused Rust kernel each.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype: Any = None) -> None:
        super().__init__()
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"Linear: {name} must be a non-negative int, given {v!r}")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        dt = _resolve_dtype(dtype) or np.dtype(np.float32)
        self.weight = Parameter(np.empty((self.out_features, self.in_features), dtype=dt))
        if bias:
            self.bias = Parameter(np.empty((self.out_features,), dtype=dt))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-draws weight and bias from the library generator (PyTorch's defaults)."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input: Any) -> Tensor:
        xd = input.data if isinstance(input, Tensor) else None
        if xd is None or xd.ndim == 0 or xd.shape[-1] != self.in_features:
            shape = xd.shape if xd is not None else np.shape(input)
            if not shape or shape[-1] != self.in_features:
                got = shape[-1] if shape else 0
                raise ValueError(
                    f"Linear(in_features={self.in_features}): input has {got} features, shape {tuple(shape)}"
                )
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Dropout(Module):
    """Inverted dropout: in training, zeroes each element with probability ``p`` (mask from
    the library generator) and scales the others by 1 / (1 - p); the identity in eval
    mode. Any shape."""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = float(p)
        self.inplace = inplace

    def forward(self, input: Any) -> Tensor:
        return F.dropout(input, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Flatten(Module):
    """Flattens dimensions ``start_dim`` .. ``end_dim``: (N, *dims) -> (N, prod(dims)) with
    the defaults (1, -1)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, input: Any) -> Tensor:
        return flatten(input, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Identity(Module):
    """Returns its input unchanged (arguments are accepted and ignored)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, input: Any) -> Any:
        return input
