"""Schedules for exploration rates, learning rates and other hyper-parameters that change
during training.

A schedule is a callable ``schedule(t) -> value``. What ``t`` counts is the caller's choice
and the schedule's ``duration`` is measured in the same unit:

* progress: ``t`` is the fraction of training done, from 0 (start) to 1 (end), and
  ``duration`` a fraction (default 1.0: the change spans the whole run). The agents in
  :mod:`ferrograd.rl` call their schedules this way, with
  ``t = steps done in this learn() call / total_timesteps``. (Stable-Baselines3 passes the
  remaining progress ``1 - t`` instead; wrap with ``lambda t: sb3_schedule(1 - t)`` to reuse
  one.)
* steps or episodes: ``t`` is a count and ``duration`` the count over which the change
  happens (``LinearSchedule(1.0, 0.05, duration=10_000)``).

``t`` may be a NumPy array: the schedule is then evaluated elementwise. Past ``duration``
a schedule holds its end value; before 0 it holds its start value.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Union

import numpy as np

ScheduleLike = Union[float, int, Callable[[Any], Any]]


def _number(x: Any, name: str, where: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise TypeError(f"{where}: expected {name} to be a number, given {type(x).__name__}")
    v = float(x)
    if not math.isfinite(v):
        raise ValueError(f"{where}: expected a finite {name}, given {x}")
    return v


def _duration(d: Any, where: str) -> float:
    v = _number(d, "duration", where)
    if v <= 0:
        raise ValueError(f"{where}: expected duration > 0, given {d}")
    return v


def _fraction(t: Any, duration: float) -> Any:
    f = np.clip(np.asarray(t, np.float64) / duration, 0.0, 1.0)
    return f if f.ndim else float(f)


class Schedule:
    """Base class: ``__call__(t)`` returns the value at ``t`` (see the module docstring)."""

    def __call__(self, t: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def value(self, t: Any) -> Any:
        """Same as calling the schedule."""
        return self(t)


class ConstantSchedule(Schedule):
    """The same ``value`` at every ``t``."""

    def __init__(self, value: float) -> None:
        self.value_ = _number(value, "value", "ConstantSchedule")

    def __call__(self, t: Any) -> Any:
        a = np.asarray(t, np.float64)
        return np.full(a.shape, self.value_) if a.ndim else self.value_

    def __repr__(self) -> str:
        return f"ConstantSchedule({self.value_})"


class LinearSchedule(Schedule):
    """Straight line from ``start`` (at ``t = 0``) to ``end`` (at ``t = duration``), then
    ``end``: ``start + (end - start) * clip(t / duration, 0, 1)``."""

    def __init__(self, start: float, end: float, duration: float = 1.0) -> None:
        self.start = _number(start, "start", "LinearSchedule")
        self.end = _number(end, "end", "LinearSchedule")
        self.duration = _duration(duration, "LinearSchedule")

    def __call__(self, t: Any) -> Any:
        return self.start + (self.end - self.start) * _fraction(t, self.duration)

    def __repr__(self) -> str:
        return f"LinearSchedule(start={self.start}, end={self.end}, duration={self.duration})"


class ExponentialSchedule(Schedule):
    """Exponential (geometric) change from ``start`` to ``end``.

    Two ways to specify it:

    * ``ExponentialSchedule(start, end, duration=d)``: geometric interpolation,
      ``start * (end / start) ** clip(t / d, 0, 1)`` (``start`` and ``end`` non-zero and of
      the same sign): reaches ``end`` exactly at ``t = d``.
    * ``ExponentialSchedule(start, end, decay=r)``: ``start * r ** t`` for ``t >= 0``,
      never going past ``end`` (the usual "epsilon *= 0.995 per episode, at least 0.01").
    """

    def __init__(self, start: float, end: float, duration: float = 1.0, decay: float | None = None) -> None:
        where = "ExponentialSchedule"
        self.start = _number(start, "start", where)
        self.end = _number(end, "end", where)
        self.decay = None if decay is None else _number(decay, "decay", where)
        self.duration = _duration(duration, where)
        if self.decay is not None:
            if not (0.0 < self.decay):
                raise ValueError(f"{where}: expected decay > 0, given {decay}")
        elif self.start == 0.0 or self.end == 0.0 or (self.start > 0) != (self.end > 0):
            raise ValueError(
                f"{where}: geometric interpolation needs start and end non-zero and of the same sign, "
                f"given start={start}, end={end} (pass decay= for a decay rate bounded by end)"
            )

    def __call__(self, t: Any) -> Any:
        ta = np.asarray(t, np.float64)
        if self.decay is None:
            v = self.start * (self.end / self.start) ** np.clip(ta / self.duration, 0.0, 1.0)
        else:
            v = self.start * self.decay ** np.maximum(ta, 0.0)
            v = np.maximum(v, self.end) if self.start >= self.end else np.minimum(v, self.end)
        return v if np.ndim(v) else float(v)

    def __repr__(self) -> str:
        if self.decay is None:
            return f"ExponentialSchedule(start={self.start}, end={self.end}, duration={self.duration})"
        return f"ExponentialSchedule(start={self.start}, end={self.end}, decay={self.decay})"


class _CallableSchedule(Schedule):
    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def __call__(self, t: Any) -> Any:
        return self.fn(t)

    def __repr__(self) -> str:
        return f"Schedule({self.fn!r})"


def as_schedule(value: ScheduleLike, name: str = "value", where: str = "schedule") -> Schedule:
    """A number becomes a :class:`ConstantSchedule`; a :class:`Schedule` or any callable is
    returned as a schedule; anything else is a TypeError naming ``where`` and ``name``."""
    if isinstance(value, Schedule):
        return value
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return ConstantSchedule(float(value))
    if callable(value):
        return _CallableSchedule(value)
    raise TypeError(f"{where}: expected {name} to be a number or a schedule (callable), given {type(value).__name__}")


def schedule_to_json(s: Schedule) -> Any:
    """A JSON description of a built-in schedule (for saving agents), or None for a custom
    callable (which cannot be saved without code)."""
    if isinstance(s, ConstantSchedule):
        return s.value_
    if isinstance(s, LinearSchedule):
        return {"schedule": "linear", "start": s.start, "end": s.end, "duration": s.duration}
    if isinstance(s, ExponentialSchedule):
        return {"schedule": "exponential", "start": s.start, "end": s.end, "duration": s.duration, "decay": s.decay}
    return None


def schedule_from_json(d: Any, where: str = "schedule") -> Schedule:
    """Inverse of :func:`schedule_to_json`."""
    if isinstance(d, (int, float)) and not isinstance(d, bool):
        return ConstantSchedule(d)
    if isinstance(d, dict) and d.get("schedule") == "linear":
        return LinearSchedule(d["start"], d["end"], d["duration"])
    if isinstance(d, dict) and d.get("schedule") == "exponential":
        return ExponentialSchedule(d["start"], d["end"], d["duration"], d.get("decay"))
    raise ValueError(f"{where}: cannot rebuild a schedule from {d!r}")


__all__ = ["Schedule", "ConstantSchedule", "LinearSchedule", "ExponentialSchedule", "as_schedule",
           "schedule_to_json", "schedule_from_json"]
