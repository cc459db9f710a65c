"""Adam, AdamW and NAdam (``torch.optim.Adam`` / ``AdamW`` / ``NAdam``)."""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

from .. import _native
from ..tensor import Tensor
from ._common import StateBuilder, check_range
from .optimizer import Optimizer, ParamsT, _dispatch

__all__ = ["Adam", "AdamW", "NAdam"]


def _check_betas(betas: Any) -> Tuple[float, float]:
    try:
        b1, b2 = betas
    except (TypeError, ValueError):
        raise ValueError(f"betas must be a pair of floats, given {betas!r}") from None
    check_range(0.0 <= b1 < 1.0, f"Invalid beta parameter at index 0: {b1}")
    check_range(0.0 <= b2 < 1.0, f"Invalid beta parameter at index 1: {b2}")
    return float(b1), float(b2)


class Adam(Optimizer):
    r"""Adam (PyTorch's update rule), with optional AMSGrad and decoupled weight decay.

    With ``g`` the gradient (``-g`` when ``maximize``), plus ``weight_decay * p`` unless
    ``decoupled_weight_decay`` (then ``p *= 1 - lr * weight_decay`` first) and ``t`` the
    parameter's step count:
    ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g^2``,
    ``v_max = max(v_max, v)`` with AMSGrad (used in place of ``v``),
    ``p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``.

    Args:
        params: parameters (Tensors of any shape) or param groups (dicts).
        lr: learning rate (default 1e-3).
        betas: (b1, b2), decay rates of the moment estimates (default (0.9, 0.999)).
        eps: added to the denominator (default 1e-8).
        weight_decay: L2 penalty (default 0).
        amsgrad: use the maximum of past second moments.
        maximize: maximize the objective instead of minimizing it.
        decoupled_weight_decay: AdamW's weight decay.

    State per parameter: ``step`` (float), ``exp_avg``, ``exp_avg_sq`` and, with AMSGrad,
    ``max_exp_avg_sq`` (each of the parameter's shape).
    """

    _name = "Adam"

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: Tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        decoupled_weight_decay: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=tuple(betas),
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
            decoupled_weight_decay=decoupled_weight_decay,
        )
        super().__init__(params, defaults)

    def _validate(self, group: Dict[str, Any]) -> None:
        check_range(group["lr"] >= 0.0, f"Invalid learning rate: {group['lr']}")
        check_range(group["eps"] >= 0.0, f"Invalid epsilon value: {group['eps']}")
        _check_betas(group["betas"])
        check_range(group["weight_decay"] >= 0.0, f"Invalid weight_decay value: {group['weight_decay']}")

    def _update(self, group: Dict[str, Any], params: List[Tensor]) -> None:
        b1, b2 = group["betas"]
        amsgrad = bool(group["amsgrad"])
        hp = (
            float(group["lr"]),
            float(b1),
            float(b2),
            float(group["eps"]),
            float(group["weight_decay"]),
            amsgrad,
            bool(group["decoupled_weight_decay"]),
            bool(group["maximize"]),
        )
        sb = StateBuilder(self.state)
        try:
            steps = sb.steps(params)
            m = sb.buffers(params, "exp_avg")
            v = sb.buffers(params, "exp_avg_sq")
            vmax = sb.buffers(params, "max_exp_avg_sq") if amsgrad else [None] * len(params)

            def call(arrays: list, grads: list, m: list, v: list, vmax: list, steps: list) -> Any:
                _native.adam_step(arrays, grads, m, v, vmax if amsgrad else [], steps, *hp)

            _dispatch(self._name, params, [m, v, vmax, steps], call)
        except BaseException:
            sb.rollback()
            raise
        sb.set_steps(params, steps)


class AdamW(Adam):
    r"""AdamW: Adam with decoupled weight decay, ``p *= 1 - lr * weight_decay`` before the
    Adam step (PyTorch's update rule; default ``weight_decay`` 1e-2). Arguments, shapes and
    state as :class:`Adam`."""

    _name = "AdamW"

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: Tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(
            params,
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
            decoupled_weight_decay=True,
        )


class NAdam(Optimizer):
    r"""NAdam: Adam with Nesterov momentum (PyTorch's update rule).

    With ``g`` as in :class:`Adam` and ``t`` the step count:
    ``mu_t = b1 (1 - 0.5 * 0.96^(t * momentum_decay))``,
    ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g^2``,
    ``denom = sqrt(v / (1 - b2^t)) + eps``,
    ``p -= lr (1 - mu_t) / (1 - prod_{i<=t} mu_i) * g / denom
    + lr mu_{t+1} / (1 - prod_{i<=t+1} mu_i) * m / denom``.

    Args:
        params: parameters (Tensors of any shape) or param groups (dicts).
        lr: learning rate (default 2e-3).
        betas: (b1, b2) (default (0.9, 0.999)).
        eps: added to the denominator (default 1e-8).
        weight_decay: weight decay (default 0).
        momentum_decay: the momentum decay psi (default 4e-3).
        decoupled_weight_decay: AdamW-style weight decay (NAdamW).
        maximize: maximize the objective instead of minimizing it.

    State per parameter: ``step`` and ``mu_product`` (floats), ``exp_avg``, ``exp_avg_sq``.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 2e-3,
        betas: Tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum_decay: float = 4e-3,
        decoupled_weight_decay: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=tuple(betas),
            eps=eps,
            weight_decay=weight_decay,
            momentum_decay=momentum_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def _validate(self, group: Dict[str, Any]) -> None:
        check_range(group["lr"] >= 0.0, f"Invalid learning rate: {group['lr']}")
        check_range(group["eps"] >= 0.0, f"Invalid epsilon value: {group['eps']}")
        _check_betas(group["betas"])
        check_range(group["weight_decay"] >= 0.0, f"Invalid weight_decay value: {group['weight_decay']}")
        check_range(group["momentum_decay"] >= 0.0, f"Invalid momentum_decay value: {group['momentum_decay']}")

    def _update(self, group: Dict[str, Any], params: List[Tensor]) -> None:
        b1, b2 = group["betas"]
        hp = (
            float(group["lr"]),
            float(b1),
            float(b2),
            float(group["eps"]),
            float(group["weight_decay"]),
            float(group["momentum_decay"]),
            bool(group["decoupled_weight_decay"]),
            bool(group["maximize"]),
        )
        sb = StateBuilder(self.state)
        try:
            steps = sb.steps(params)
            mus = [float(sb.get(p, "mu_product", lambda: 1.0)) for p in params]
            m = sb.buffers(params, "exp_avg")
            v = sb.buffers(params, "exp_avg_sq")

            def call(arrays: list, grads: list, m: list, v: list, steps: list, mus: list) -> Any:
                return _native.nadam_step(arrays, grads, m, v, steps, mus, *hp)

            new_mus = _dispatch("NAdam", params, [m, v, steps, mus], call)
        except BaseException:
            sb.rollback()
            raise
        sb.set_steps(params, steps)
        for p, mu in zip(params, new_mus):
            self.state[p]["mu_product"] = float(mu)
