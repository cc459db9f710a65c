"""Loss modules: each calls the function of the same name in
:mod:`ferrograd.nn.functional`; ``forward(input, target)``. Per-class ``weight`` and
``pos_weight`` are registered as buffers (in the state dict), as in PyTorch."""

from __future__ import annotations

from typing import Any, Optional

from ..tensor import Tensor, _as_array
from . import functional as F
from .module import Module

__all__ = ["MSELoss", "L1Loss", "HuberLoss", "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "NLLLoss"]


def _buf(x: Any) -> Optional[Tensor]:
    if x is None:
        return None
    return x if isinstance(x, Tensor) else Tensor._wrap(_as_array(x, copy=True))


class _Loss(Module):
    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        F._check_reduction(type(self).__name__, reduction)
        self.reduction = reduction

    def extra_repr(self) -> str:
        return "" if self.reduction == "mean" else f"reduction={self.reduction!r}"


class MSELoss(_Loss):
    """Mean squared error: (input - target)². input, target: (*) of one shape."""

    def forward(self, input: Any, target: Any) -> Tensor:
        return F.mse_loss(input, target, self.reduction)


class L1Loss(_Loss):
    """Mean absolute error: |input - target|. input, target: (*) of one shape."""

    def forward(self, input: Any, target: Any) -> Tensor:
        return F.l1_loss(input, target, self.reduction)


class HuberLoss(_Loss):
    """0.5 d² for |d| < delta, else delta (|d| - 0.5 delta); d = input - target."""

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(reduction)
        if not delta > 0:
            raise ValueError(f"HuberLoss: delta must be positive, given {delta}")
        self.delta = float(delta)

    def forward(self, input: Any, target: Any) -> Tensor:
        return F.huber_loss(input, target, self.reduction, self.delta)


class BCELoss(_Loss):
    """Binary cross-entropy of probabilities: -w [y log p + (1 - y) log(1 - p)], logs
    clamped at -100. input (probabilities), target: (*) of one shape; weight: broadcast
    to (*)."""

    def __init__(self, weight: Optional[Any] = None, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.register_buffer("weight", _buf(weight))

    def forward(self, input: Any, target: Any) -> Tensor:
        return F.binary_cross_entropy(input, target, self.weight, self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Sigmoid + binary cross-entropy in one stable formula (see
    :func:`ferrograd.nn.functional.binary_cross_entropy_with_logits`). input (logits),
    target: (*) of one shape; weight: broadcast to (*); pos_weight: (C,) along the last
    dimension."""

    def __init__(self, weight: Optional[Any] = None, reduction: str = "mean", pos_weight: Optional[Any] = None) -> None:
        super().__init__(reduction)
        self.register_buffer("weight", _buf(weight))
        self.register_buffer("pos_weight", _buf(pos_weight))

    def forward(self, input: Any, target: Any) -> Tensor:
        return F.binary_cross_entropy_with_logits(input, target, self.weight, self.reduction, self.pos_weight)


class CrossEntropyLoss(_Loss):
    """Cross-entropy of logits (N, C) / (N, C, d1, ...) / (C,) against class indices
    (N,) / (N, d1, ...) / () or class probabilities of the input's shape; see
    :func:`ferrograd.nn.functional.cross_entropy`."""

    def __init__(
        self,
        weight: Optional[Any] = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(reduction)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be in [0, 1], given {label_smoothing}")
        self.register_buffer("weight", _buf(weight))
        self.ignore_index = int(ignore_index)
        self.label_smoothing = float(label_smoothing)

    def forward(self, input: Any, target: Any) -> Tensor:
        return F.cross_entropy(input, target, self.weight, self.ignore_index, self.reduction, self.label_smoothing)


class NLLLoss(_Loss):
    """Negative log-likelihood of log-probabilities (N, C) / (N, C, d1, ...) / (C,)
    against class indices; see :func:`ferrograd.nn.functional.nll_loss`."""

    def __init__(self, weight: Optional[Any] = None, ignore_index: int = -100, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.register_buffer("weight", _buf(weight))
        self.ignore_index = int(ignore_index)

    def forward(self, input: Any, target: Any) -> Tensor:
        return F.nll_loss(input, target, self.weight, self.ignore_index, self.reduction)


