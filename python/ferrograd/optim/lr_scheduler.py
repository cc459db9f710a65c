"""Learning-rate schedulers (``torch.optim.lr_scheduler``): StepLR, ExponentialLR,
CosineAnnealingLR and ReduceLROnPlateau.

Each changes ``group["lr"]`` of its optimizer's param groups when :meth:`step` is called
(once per epoch, after ``optimizer.step()``), with PyTorch's formulas, and has
``get_last_lr()``, ``state_dict()`` and ``load_state_dict()`` (plain dicts of numbers and
lists, without the optimizer).
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Sequence, Union

from .optimizer import Optimizer

__all__ = ["LRScheduler", "StepLR", "ExponentialLR", "CosineAnnealingLR", "ReduceLROnPlateau"]


def _check_optimizer(optimizer: Any) -> None:
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")


class LRScheduler:
    """Base class of the epoch-indexed schedulers.

    At construction with ``last_epoch=-1`` every group records ``initial_lr`` (its current
    ``lr``); ``base_lrs`` are those. Construction performs the initial step (epoch 0),
    which leaves the learning rates unchanged.
    """

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        _check_optimizer(optimizer)
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(
                        f"param 'initial_lr' is not specified in param_groups[{i}] when resuming an optimizer"
                    )
        self.base_lrs: List[float] = [float(g["initial_lr"]) for g in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._step_count = 0
        self._is_initial = True
        self.step()
        self._is_initial = False

    def get_lr(self) -> List[float]:
        """The learning rates of the epoch ``last_epoch`` (subclasses)."""
        raise NotImplementedError

    def step(self) -> None:
        """Advances one epoch and sets every group's ``lr``."""
        self._step_count += 1
        self.last_epoch += 1
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = [float(g["lr"]) for g in self.optimizer.param_groups]

    def get_last_lr(self) -> List[float]:
        """The learning rates set by the last :meth:`step` (one per param group)."""
        return list(self._last_lr)

    def state_dict(self) -> Dict[str, Any]:
        """Every attribute except the optimizer (numbers and lists)."""
        return {k: (list(v) if isinstance(v, list) else v) for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Restores the attributes saved by :meth:`state_dict`."""
        self.__dict__.update({k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in state_dict.items()})


class StepLR(LRScheduler):
    """Multiplies each group's lr by ``gamma`` every ``step_size`` epochs:
    ``lr = initial_lr * gamma ** (epoch // step_size)``."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1) -> None:
        if isinstance(step_size, bool) or not isinstance(step_size, int) or step_size < 1:
            raise ValueError(f"StepLR: step_size must be a positive int, given {step_size!r}")
        self.step_size = step_size
        self.gamma = float(gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> List[float]:
        lrs = [float(g["lr"]) for g in self.optimizer.param_groups]
        if self._is_initial or self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return lrs
        return [lr * self.gamma for lr in lrs]


class ExponentialLR(LRScheduler):
    """Multiplies each group's lr by ``gamma`` every epoch: ``lr = initial_lr * gamma ** epoch``."""

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1) -> None:
        self.gamma = float(gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> List[float]:
        lrs = [float(g["lr"]) for g in self.optimizer.param_groups]
        if self._is_initial or self.last_epoch == 0:
            return lrs
        return [lr * self.gamma for lr in lrs]


class CosineAnnealingLR(LRScheduler):
    r"""Cosine annealing from ``initial_lr`` to ``eta_min`` over ``T_max`` epochs, with
    PyTorch's recursive formula:
    ``lr_t = eta_min + (lr_{t-1} - eta_min) (1 + cos(pi t / T_max)) / (1 + cos(pi (t-1) / T_max))``
    (and ``lr_t = lr_{t-1} + (base_lr - eta_min)(1 - cos(pi / T_max)) / 2`` when
    ``(t - 1 - T_max) % (2 T_max) == 0``), which equals
    ``eta_min + (base_lr - eta_min)(1 + cos(pi t / T_max)) / 2`` when nothing else changes lr.
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1) -> None:
        if isinstance(T_max, bool) or not isinstance(T_max, int) or T_max < 1:
            raise ValueError(f"CosineAnnealingLR: T_max must be a positive int, given {T_max!r}")
        self.T_max = T_max
        self.eta_min = float(eta_min)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> List[float]:
        groups = self.optimizer.param_groups
        t, T, emin = self.last_epoch, self.T_max, self.eta_min
        if self._is_initial or t == 0:
            return [float(g["lr"]) for g in groups]
        if self._step_count == 1 and t > 0:
            return [emin + (b - emin) * (1 + math.cos(t * math.pi / T)) / 2 for b in self.base_lrs]
        if (t - 1 - T) % (2 * T) == 0:
            return [
                float(g["lr"]) + (b - emin) * (1 - math.cos(math.pi / T)) / 2
                for b, g in zip(self.base_lrs, groups)
            ]
        return [
            (1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T)) * (float(g["lr"]) - emin) + emin
            for g in groups
        ]


class ReduceLROnPlateau:
    """Reduces the learning rate when a metric has stopped improving (PyTorch's rules).

    Call ``step(metric)`` once per epoch. When the metric has not improved for more than
    ``patience`` epochs, every group's lr becomes ``max(lr * factor, min_lr)`` (skipped when
    the change is at most ``eps``), then ``cooldown`` epochs pass before bad epochs count
    again. Improvement (``mode`` 'min' or 'max', ``threshold_mode`` 'rel' or 'abs'):
    rel/min ``a < best * (1 - threshold)``, abs/min ``a < best - threshold``, rel/max
    ``a > best * (1 + threshold)``, abs/max ``a > best + threshold``.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: Union[float, Sequence[float]] = 0.0,
        eps: float = 1e-8,
    ) -> None:
        _check_optimizer(optimizer)
        if factor >= 1.0:
            raise ValueError("Factor should be < 1.0.")
        if mode not in ("min", "max"):
            raise ValueError("mode " + str(mode) + " is unknown!")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError("threshold mode " + str(threshold_mode) + " is unknown!")
        self.optimizer = optimizer
        self.factor = float(factor)
        n = len(optimizer.param_groups)
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != n:
                raise ValueError(f"expected {n} min_lrs, got {len(min_lr)}")
            self.min_lrs = [float(v) for v in min_lr]
        else:
            self.min_lrs = [float(min_lr)] * n
        self.patience = int(patience)
        self.cooldown = int(cooldown)
        self.eps = float(eps)
        self.mode = mode
        self.threshold = float(threshold)
        self.threshold_mode = threshold_mode
        self.last_epoch = 0
        self._last_lr = [float(g["lr"]) for g in optimizer.param_groups]
        self._reset()

    def _reset(self) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def is_better(self, a: float, best: float) -> bool:
        """Whether metric ``a`` improves on ``best`` under ``mode`` and ``threshold_mode``."""
        if self.mode == "min" and self.threshold_mode == "rel":
            return a < best * (1.0 - self.threshold)
        if self.mode == "min":
            return a < best - self.threshold
        if self.threshold_mode == "rel":
            return a > best * (self.threshold + 1.0)
        return a > best + self.threshold

    def step(self, metrics: Any) -> None:
        """Records one epoch's metric (a number or a 1-element Tensor/array)."""
        current = float(metrics.item() if hasattr(metrics, "item") else metrics)
        self.last_epoch += 1
        if self.is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            self._reduce_lr()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [float(g["lr"]) for g in self.optimizer.param_groups]

    def _reduce_lr(self) -> None:
        for i, group in enumerate(self.optimizer.param_groups):
            old = float(group["lr"])
            new = max(old * self.factor, self.min_lrs[i])
            if old - new > self.eps:
                group["lr"] = new

    def get_last_lr(self) -> List[float]:
        """The learning rates after the last :meth:`step` (one per param group)."""
        return list(self._last_lr)

    def state_dict(self) -> Dict[str, Any]:
        """Every attribute except the optimizer (numbers, strings and lists)."""
        return {k: (list(v) if isinstance(v, list) else v) for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Restores the attributes saved by :meth:`state_dict`."""
        self.__dict__.update({k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in state_dict.items()})
