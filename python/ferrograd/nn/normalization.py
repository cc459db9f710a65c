"""Batch normalisation layers: ``BatchNorm1d`` ((N, C) or (N, C, L)) and ``BatchNorm2d``
((N, C, H, W)), with PyTorch's arguments, defaults, buffers and state-dict keys
(``weight``, ``bias``, ``running_mean``, ``running_var``, ``num_batches_tracked``)."""

from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from ..tensor import Tensor, _resolve_dtype
from . import functional_pool as FP
from .module import Module, Parameter

__all__ = ["BatchNorm1d", "BatchNorm2d"]


class _BatchNorm(Module):
    _ranks: Tuple[int, ...] = ()
    _layout: str = ""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: Optional[float] = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if isinstance(num_features, bool) or not isinstance(num_features, (int, np.integer)) or num_features < 1:
            raise ValueError(f"{name}: num_features must be a positive int, given {num_features!r}")
        self.num_features = int(num_features)
        self.eps = float(eps)
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        dt = _resolve_dtype(dtype) or np.dtype(np.float32)
        c = self.num_features
        if affine:
            self.weight = Parameter(np.ones(c, dtype=dt))
            self.bias = Parameter(np.zeros(c, dtype=dt))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor._wrap(np.zeros(c, dtype=dt)))
            self.register_buffer("running_var", Tensor._wrap(np.ones(c, dtype=dt)))
            self.register_buffer("num_batches_tracked", Tensor._wrap(np.array(0, dtype=np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, no batches tracked."""
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def reset_parameters(self) -> None:
        """Resets the running statistics, weight to 1 and bias to 0."""
        self.reset_running_stats()
        if self.affine:
            self.weight.data[...] = 1
            self.bias.data[...] = 0

    def _check_input(self, x: Any) -> None:
        shape = x.data.shape if isinstance(x, Tensor) else np.shape(x)
        layer = f"{type(self).__name__}({self.num_features})"
        if len(shape) not in self._ranks:
            raise ValueError(f"{layer}: expected {self._layout} input, given shape {tuple(shape)}")
        if shape[1] != self.num_features:
            raise ValueError(
                f"{layer}: expected {self.num_features} channels (dimension 1), given {shape[1]} in shape {tuple(shape)}"
            )

    def forward(self, input: Any) -> Tensor:
        self._check_input(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.data[...] += 1
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked.data)
        bn_training = self.training or (self.running_mean is None and self.running_var is None)
        use_stats = not self.training or self.track_running_stats
        return FP.batch_norm(
            input,
            self.running_mean if use_stats else None,
            self.running_var if use_stats else None,
            self.weight,
            self.bias,
            bn_training,
            factor,
            self.eps,
            layer=f"{type(self).__name__}({self.num_features})",
        )

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, C) or (N, C, L) input, per channel C.

    Training normalises with the batch mean and biased variance and updates the running
    statistics (running_var with the unbiased variance), r = (1 - momentum) r + momentum
    stat, or the cumulative average when ``momentum`` is None; eval uses the running
    statistics. ``weight`` (C,) starts at 1, ``bias`` (C,) at 0."""

    _ranks = (2, 3)
    _layout = "2-D (N, C) or 3-D (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, C, H, W) input, per channel C (see :class:`BatchNorm1d`)."""

    _ranks = (4,)
    _layout = "4-D (N, C, H, W)"
