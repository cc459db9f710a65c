"""Adagrad, RMSprop and Adadelta (``torch.optim.Adagrad`` / ``RMSprop`` / ``Adadelta``)."""

from __future__ import annotations

from typing import Any, Dict, List

from .. import _native
from ..tensor import Tensor
from ._common import StateBuilder, check_range
from .optimizer import Optimizer, ParamsT, _dispatch

__all__ = ["Adagrad", "RMSprop", "Adadelta"]


def _wd_ok(group: Dict[str, Any]) -> None:
    check_range(group["weight_decay"] >= 0.0, f"Invalid weight_decay value: {group['weight_decay']}")


class Adagrad(Optimizer):
    r"""Adagrad (PyTorch's update rule).

    With ``g`` the gradient (``-g`` when ``maximize``) plus ``weight_decay * p`` and ``t``
    the step count: ``clr = lr / (1 + (t - 1) lr_decay)``, ``sum += g^2``,
    ``p -= clr * g / (sqrt(sum) + eps)``.

    Args:
        params: parameters (Tensors of any shape) or param groups (dicts).
        lr: learning rate (default 1e-2).
        lr_decay: learning-rate decay (default 0).
        weight_decay: L2 penalty (default 0).
        initial_accumulator_value: the start value of ``sum`` (default 0).
        eps: added to the denominator (default 1e-10).
        maximize: maximize the objective instead of minimizing it.

    State per parameter (created at construction, as in PyTorch): ``step`` (float) and
    ``sum`` (the parameter's shape).
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            lr_decay=lr_decay,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            eps=eps,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def add_param_group(self, param_group: Dict[str, Any]) -> None:
        """Adds a param group and creates its parameters' state (``step`` 0 and ``sum``
        filled with ``initial_accumulator_value``), as PyTorch does at construction."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        sb = StateBuilder(self.state)
        for p in group["params"]:
            sb.get(p, "step", float)
            sb.buffer(p, "sum", p.data, float(group["initial_accumulator_value"]))

    def _validate(self, group: Dict[str, Any]) -> None:
        check_range(group["lr"] >= 0.0, f"Invalid learning rate: {group['lr']}")
        check_range(group["lr_decay"] >= 0.0, f"Invalid lr_decay value: {group['lr_decay']}")
        _wd_ok(group)
        v = group["initial_accumulator_value"]
        check_range(v >= 0.0, f"Invalid initial_accumulator_value value: {v}")
        check_range(group["eps"] >= 0.0, f"Invalid epsilon value: {group['eps']}")

    def _update(self, group: Dict[str, Any], params: List[Tensor]) -> None:
        init = float(group["initial_accumulator_value"])
        hp = (
            float(group["lr"]),
            float(group["lr_decay"]),
            float(group["weight_decay"]),
            float(group["eps"]),
            bool(group["maximize"]),
        )
        sb = StateBuilder(self.state)
        try:
            steps = sb.steps(params)
            sums = sb.buffers(params, "sum", init)

            def call(arrays: list, grads: list, sums: list, steps: list) -> Any:
                _native.adagrad_step(arrays, grads, sums, steps, *hp)

            _dispatch("Adagrad", params, [sums, steps], call)
        except BaseException:
            sb.rollback()
            raise
        sb.set_steps(params, steps)

class RMSprop(Optimizer):
    r"""RMSprop (PyTorch's update rule).

    With ``g`` the gradient (``-g`` when ``maximize``) plus ``weight_decay * p``:
    ``v = alpha v + (1 - alpha) g^2``; centered: ``ga = alpha ga + (1 - alpha) g`` and
    ``avg = sqrt(v - ga^2) + eps``, else ``avg = sqrt(v) + eps``; with momentum
    ``b = momentum b + g / avg`` and ``p -= lr b``, else ``p -= lr g / avg``.

    Args:
        params: parameters (Tensors of any shape) or param groups (dicts).
        lr: learning rate (default 1e-2).
        alpha: smoothing constant (default 0.99).
        eps: added to the denominator (default 1e-8).
        weight_decay: L2 penalty (default 0).
        momentum: momentum factor (default 0).
        centered: normalize by an estimate of the gradient's variance.
        maximize: maximize the objective instead of minimizing it.

    State per parameter: ``step`` (float), ``square_avg``, ``momentum_buffer`` (momentum >
    0) and ``grad_avg`` (centered), each of the parameter's shape.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            alpha=alpha,
            eps=eps,
            weight_decay=weight_decay,
            momentum=momentum,
            centered=centered,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def _validate(self, group: Dict[str, Any]) -> None:
        check_range(group["lr"] >= 0.0, f"Invalid learning rate: {group['lr']}")
        check_range(group["eps"] >= 0.0, f"Invalid epsilon value: {group['eps']}")
        check_range(group["momentum"] >= 0.0, f"Invalid momentum value: {group['momentum']}")
        _wd_ok(group)
        check_range(group["alpha"] >= 0.0, f"Invalid alpha value: {group['alpha']}")

    def _update(self, group: Dict[str, Any], params: List[Tensor]) -> None:
        momentum = float(group["momentum"])
        centered = bool(group["centered"])
        hp = (
            float(group["lr"]),
            float(group["alpha"]),
            float(group["eps"]),
            float(group["weight_decay"]),
            momentum,
            centered,
            bool(group["maximize"]),
        )
        sb = StateBuilder(self.state)
        none = [None] * len(params)
        try:
            steps = sb.steps(params)
            sq = sb.buffers(params, "square_avg")
            mb = sb.buffers(params, "momentum_buffer") if momentum > 0 else none
            ga = sb.buffers(params, "grad_avg") if centered else none

            def call(arrays: list, grads: list, sq: list, mb: list, ga: list) -> Any:
                _native.rmsprop_step(
                    arrays, grads, sq, mb if momentum > 0 else [], ga if centered else [], *hp
                )

            _dispatch("RMSprop", params, [sq, mb, ga], call)
        except BaseException:
            sb.rollback()
            raise
        sb.set_steps(params, steps)

class Adadelta(Optimizer):
    r"""Adadelta (PyTorch's update rule).

    With ``g`` the gradient (``-g`` when ``maximize``) plus ``weight_decay * p``:
    ``v = rho v + (1 - rho) g^2``, ``delta = sqrt(u + eps) / sqrt(v + eps) * g``,
    ``u = rho u + (1 - rho) delta^2``, ``p -= lr delta``.

    Args:
        params: parameters (Tensors of any shape) or param groups (dicts).
        lr: scale of the update (default 1.0).
        rho: decay rate of the running averages (default 0.9).
        eps: added inside the square roots (default 1e-6).
        weight_decay: L2 penalty (default 0).
        maximize: maximize the objective instead of minimizing it.

    State per parameter: ``step`` (float), ``square_avg`` and ``acc_delta`` (the
    parameter's shape).
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _validate(self, group: Dict[str, Any]) -> None:
        check_range(group["lr"] >= 0.0, f"Invalid learning rate: {group['lr']}")
        check_range(0.0 <= group["rho"] <= 1.0, f"Invalid rho value: {group['rho']}")
        check_range(group["eps"] >= 0.0, f"Invalid epsilon value: {group['eps']}")
        _wd_ok(group)

    def _update(self, group: Dict[str, Any], params: List[Tensor]) -> None:
        hp = (
            float(group["lr"]),
            float(group["rho"]),
            float(group["eps"]),
            float(group["weight_decay"]),
            bool(group["maximize"]),
        )
        sb = StateBuilder(self.state)
        try:
            steps = sb.steps(params)
            sq = sb.buffers(params, "square_avg")
            acc = sb.buffers(params, "acc_delta")

            def call(arrays: list, grads: list, sq: list, acc: list) -> Any:
                _native.adadelta_step(arrays, grads, sq, acc, *hp)

            _dispatch("Adadelta", params, [sq, acc], call)
        except BaseException:
            sb.rollback()
            raise
        sb.set_steps(params, steps)
