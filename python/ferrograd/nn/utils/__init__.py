"""``ferrograd.nn.utils``: regularisation helpers, and :mod:`ferrograd.nn.utils.rnn`.

:func:`l1_penalty` adds an L1 term to a loss (L2 goes through the optimizers'
``weight_decay``); :func:`clip_grad_norm_` and :func:`clip_grad_value_` bound gradients
in place between ``backward()`` and ``optimizer.step()``. The packed-sequence helpers
live in the submodule ``rnn``, importable as in PyTorch
(``from ferrograd.nn.utils.rnn import pack_padded_sequence``).
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Union

import numpy as np

from ...tensor import Tensor, _make
from ..receptive import receptive_field  # noqa: E402,F401  (re-exported: nn.utils.receptive_field)

__all__ = ["l1_penalty", "clip_grad_norm_", "clip_grad_value_"]


def _params(op: str, parameters: Any) -> list:
    if isinstance(parameters, Tensor):
        return [parameters]
    try:
        ps = list(parameters)
    except TypeError:
        raise TypeError(f"{op}: expected a Tensor or an iterable of Tensors, given {type(parameters).__name__}") from None
    for p in ps:
        if not isinstance(p, Tensor):
            raise TypeError(f"{op}: expected Tensors, given an element of type {type(p).__name__}")
    return ps


def l1_penalty(module: Any, weights_only: bool = False) -> Tensor:
    """Σ |w| over the parameters of ``module`` (a Module, or an iterable of parameters), as
    one differentiable scalar: add ``lam * l1_penalty(model)`` to the loss. With
    ``weights_only=True`` parameters named ``*bias`` are left out (Module only). The
    gradient of |w| at 0 is 0."""
    if hasattr(module, "named_parameters"):
        ps = [p for n, p in module.named_parameters() if not (weights_only and n.rsplit(".", 1)[-1] == "bias")]
    else:
        ps = _params("l1_penalty", module)
    if not ps:
        raise ValueError("l1_penalty: no parameters to penalise")
    dt = ps[0].data.dtype
    total = np.asarray(math.fsum(float(np.abs(p.data).sum(dtype=np.float64)) for p in ps), dtype=dt)

    def backward(g):
        return tuple(np.sign(p.data) * g.astype(p.data.dtype) for p in ps)

    return _make(total, tuple(ps), backward, "L1PenaltyBackward")


def clip_grad_norm_(
    parameters: Union[Tensor, Iterable[Tensor]],
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> Tensor:
    """Scales the gradients in place so that their total norm (the ``norm_type``-norm of
    the per-parameter norms; ``inf`` for the max) is at most ``max_norm``: each is
    multiplied by min(1, max_norm / (total + 1e-6)). Returns the total norm before
    clipping (a 0-d Tensor). Parameters without a gradient are skipped."""
    grads = [p.grad.data for p in _params("clip_grad_norm_", parameters) if p.grad is not None]
    max_norm = float(max_norm)
    norm_type = float(norm_type)
    if not grads:
        return Tensor._wrap(np.asarray(0.0, dtype=np.float32))
    dt = grads[0].dtype
    if norm_type == math.inf:
        norms = [np.max(np.abs(g)) if g.size else 0.0 for g in grads]
        total = float(np.max(norms))
    else:
        if norm_type == 2.0:
            norms = [math.sqrt(float(np.vdot(g.ravel(), g.ravel()))) for g in grads]
        else:
            norms = [float(np.sum(np.abs(g.astype(np.float64)) ** norm_type) ** (1.0 / norm_type)) for g in grads]
        total = float(np.sum(np.asarray(norms) ** norm_type) ** (1.0 / norm_type))
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, so it cannot be clipped."
        )
    coef = min(max_norm / (total + 1e-6), 1.0)
    if coef < 1.0:
        for g in grads:
            g *= g.dtype.type(coef)
    return Tensor._wrap(np.asarray(total, dtype=dt))


def clip_grad_value_(parameters: Union[Tensor, Iterable[Tensor]], clip_value: float) -> None:
    """Clamps every gradient element to [-clip_value, clip_value] in place."""
    c = float(clip_value)
    for p in _params("clip_grad_value_", parameters):
        if p.grad is not None:
            np.clip(p.grad.data, -c, c, out=p.grad.data)
