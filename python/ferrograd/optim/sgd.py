"""Stochastic gradient descent (``torch.optim.SGD``)."""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np

from .. import _native
from ..tensor import Tensor
from ._common import StateBuilder, check_range
from .optimizer import Optimizer, ParamsT, _dispatch

__all__ = ["SGD"]


class SGD(Optimizer):
    r"""Stochastic gradient descent, optionally with momentum (PyTorch's update rule).

    With ``g`` the gradient (``-g`` when ``maximize``) plus ``weight_decay * p``:
    the momentum buffer is ``b = g`` at its first step, then
    ``b = momentum * b + (1 - dampening) * g``; the step direction is ``g + momentum * b``
    with ``nesterov``, else ``b`` (``g`` when ``momentum == 0``); ``p -= lr * direction``.
    Batch, mini-batch and stochastic gradient descent are this optimizer fed batches of
    different sizes.

    Args:
        params: parameters (Tensors of any shape) or param groups (dicts).
        lr: learning rate (default 1e-3).
        momentum: momentum factor (default 0).
        dampening: dampening of the momentum (default 0).
        weight_decay: L2 penalty (default 0).
        nesterov: Nesterov momentum (needs momentum > 0 and dampening 0).
        maximize: maximize the objective instead of minimizing it.

    State per parameter (only when momentum != 0): ``momentum_buffer`` (parameter's shape).
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def _validate(self, group: Dict[str, Any]) -> None:
        lr, momentum = group["lr"], group["momentum"]
        check_range(lr >= 0.0, f"Invalid learning rate: {lr}")
        check_range(momentum >= 0.0, f"Invalid momentum value: {momentum}")
        check_range(group["weight_decay"] >= 0.0, f"Invalid weight_decay value: {group['weight_decay']}")
        if group["nesterov"] and (momentum <= 0 or group["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")

    def _update(self, group: Dict[str, Any], params: List[Tensor]) -> None:
        momentum = float(group["momentum"])
        hp = (
            float(group["lr"]),
            momentum,
            float(group["dampening"]),
            float(group["weight_decay"]),
            bool(group["nesterov"]),
            bool(group["maximize"]),
        )
        sb = StateBuilder(self.state)
        try:
            if momentum != 0.0:
                fresh = [self.state[p].get("momentum_buffer") is None for p in params]
                # A fresh buffer is written whole by the kernel (set to the gradient).
                bufs = [sb.get(p, "momentum_buffer", lambda p=p: np.empty(p.data.shape, p.data.dtype)) for p in params]
                per: List[List[Any]] = [bufs, fresh]
            else:
                per = [[None] * len(params), [None] * len(params)]

            def call(arrays: list, grads: list, bufs: list, fresh: list) -> Any:
                if momentum == 0.0:
                    bufs, fresh = [], []
                _native.sgd_step(arrays, grads, bufs, fresh, *hp)

            _dispatch("SGD", params, per, call)
        except BaseException:
            sb.rollback()
            raise
