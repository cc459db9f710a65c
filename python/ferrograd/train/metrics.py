"""Metrics for the training loop, computed on NumPy arrays (no graph).

A metric is a :class:`Metric`: ``update(output, target)`` accumulates a batch (arrays of
the model's output and the target) and ``result()`` gives the mean over every sample seen
since ``reset()``. Names accepted by ``fit(metrics=[...])``: ``'accuracy'`` (alias
``'acc'``), ``'mae'``, ``'mse'``; a :class:`Metric` instance; or a function
``fn(output, target) -> float`` giving a batch mean (averaged over batches weighted by
their size).
"""

from __future__ import annotations

from typing import Any, Callable, List, Sequence, Union

import numpy as np

__all__ = ["Metric", "Accuracy", "MeanAbsoluteError", "MeanSquaredError", "FunctionMetric", "get_metric", "get_metrics"]


class Metric:
    """Running mean of a per-sample quantity; subclasses define :meth:`batch` returning
    (sum over the batch, number of samples)."""

    name = "metric"

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._total = 0.0
        self._count = 0

    def batch(self, output: np.ndarray, target: np.ndarray) -> tuple:
        raise NotImplementedError

    def update(self, output: np.ndarray, target: np.ndarray) -> float:
        """Adds a batch; returns the batch's own mean."""
        s, n = self.batch(output, target)
        self._total += float(s)
        self._count += int(n)
        return float(s) / n if n else float("nan")

    def result(self) -> float:
        return self._total / self._count if self._count else float("nan")


class Accuracy(Metric):
    """Fraction of correct predictions.

    - ``output`` (N, C) with C > 1 and ``target`` (N,) class indices: ``argmax(output) ==
      target``; with ``target`` (N, C) one-hot or probabilities: argmaxes equal.
    - binary, ``output`` (N,) or (N, 1) and ``target`` of the same number of elements in
      {0, 1}: ``(output > threshold) == target``. The threshold is 0.5 for probabilities
      (e.g. after a sigmoid), 0.0 with ``from_logits=True`` (the training loop sets this
      when the loss is ``BCEWithLogitsLoss``).
    """

    name = "accuracy"

    def __init__(self, from_logits: bool = False, name: str = "accuracy") -> None:
        self.from_logits = from_logits
        self.name = name
        super().__init__()

    def batch(self, output: np.ndarray, target: np.ndarray) -> tuple:
        out = np.asarray(output)
        tgt = np.asarray(target)
        n = out.shape[0] if out.ndim else 1
        if out.ndim == 2 and out.shape[1] > 1:
            pred = out.argmax(axis=1)
            if tgt.ndim == 2 and tgt.shape == out.shape:
                true = tgt.argmax(axis=1)
            elif tgt.ndim == 1 and tgt.shape[0] == n or tgt.shape == (n, 1):
                true = tgt.reshape(n)
            else:
                raise ValueError(
                    f"accuracy: output of shape {out.shape} needs a target of shape ({n},) (class indices) "
                    f"or {out.shape} (one-hot), given {tgt.shape}"
                )
            return float(np.count_nonzero(pred == true)), n
        if out.size != tgt.size:
            raise ValueError(
                f"accuracy: binary output of shape {out.shape} needs a target with {out.size} elements, given shape {tgt.shape}"
            )
        thr = 0.0 if self.from_logits else 0.5
        pred = out.reshape(-1) > thr
        true = tgt.reshape(-1) > 0.5
        return float(np.count_nonzero(pred == true)), n


class _Elementwise(Metric):
    def _diff(self, output: np.ndarray, target: np.ndarray) -> np.ndarray:
        out = np.asarray(output, dtype=np.float64)
        tgt = np.asarray(target, dtype=np.float64)
        if out.shape != tgt.shape:
            if out.size == tgt.size:
                tgt = tgt.reshape(out.shape)
            else:
                raise ValueError(f"{self.name}: output shape {out.shape} and target shape {tgt.shape} differ")
        return out - tgt

    def _per_sample(self, d: np.ndarray) -> tuple:
        n = d.shape[0] if d.ndim else 1
        if d.size == 0:
            return 0.0, n
        per = d.reshape(n, -1).mean(axis=1)
        return float(per.sum()), n


class MeanAbsoluteError(_Elementwise):
    """Mean of ``|output - target|`` (each sample's mean over its elements, averaged)."""

    name = "mae"

    def batch(self, output, target):
        return self._per_sample(np.abs(self._diff(output, target)))


class MeanSquaredError(_Elementwise):
    """Mean of ``(output - target)**2`` (each sample's mean over its elements, averaged)."""

    name = "mse"

    def batch(self, output, target):
        return self._per_sample(self._diff(output, target) ** 2)


class FunctionMetric(Metric):
    """Wraps ``fn(output, target) -> float`` (a batch mean), weighting batches by size."""

    def __init__(self, fn: Callable[[np.ndarray, np.ndarray], float], name: str = "") -> None:
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "metric")
        super().__init__()

    def batch(self, output, target):
        n = np.asarray(output).shape[0] if np.ndim(output) else 1
        return float(self.fn(output, target)) * n, n


_NAMES = {
    "accuracy": lambda: Accuracy(name="accuracy"),
    "acc": lambda: Accuracy(name="acc"),
    "mae": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
}


def get_metric(m: Union[str, Metric, Callable]) -> Metric:
    """A fresh :class:`Metric` from a name, an instance (returned as is) or a function."""
    if isinstance(m, Metric):
        return m
    if isinstance(m, str):
        key = m.lower()
        if key not in _NAMES:
            raise ValueError(f"unknown metric {m!r}; expected one of {sorted(_NAMES)}, a Metric or a function")
        return _NAMES[key]()
    if callable(m):
        return FunctionMetric(m)
    raise TypeError(f"a metric must be a name, a Metric or a function, given {type(m).__name__}")


def get_metrics(ms: Union[None, str, Metric, Callable, Sequence[Any]]) -> List[Metric]:
    if ms is None:
        return []
    if isinstance(ms, (str, Metric)) or callable(ms):
        ms = [ms]
    out = [get_metric(m) for m in ms]
    names = [m.name for m in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ValueError(f"metrics: names {sorted(dup)} appear more than once")
    if "loss" in names:
        raise ValueError("metrics: 'loss' is reserved for the loss")
    return out
