"""Whether operations record the graph: ``no_grad`` and ``enable_grad``."""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class _GradMode:
    """Process-wide switch read by every op (a plain attribute: the cheapest check)."""

    enabled: bool = True


def is_grad_enabled() -> bool:
    """True when operations record the graph for backward."""
    return _GradMode.enabled


class _SetGrad:
    _value: bool = True

    def __init__(self) -> None:
        self._prev: list[bool] = []

    def __enter__(self) -> None:
        self._prev.append(_GradMode.enabled)
        _GradMode.enabled = self._value

    def __exit__(self, *exc: object) -> None:
        _GradMode.enabled = self._prev.pop()

    def __call__(self, fn: F) -> F:
        value = self._value

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            prev = _GradMode.enabled
            _GradMode.enabled = value
            try:
                return fn(*args, **kwargs)
            finally:
                _GradMode.enabled = prev

        return wrapper  # type: ignore[return-value]


class no_grad(_SetGrad):
    """Context manager and decorator: operations inside record no graph.

    >>> with ferrograd.no_grad():
    ...     y = x * 2          # y.requires_grad is False
    """

    _value = False


class enable_grad(_SetGrad):
    """Context manager and decorator: turns graph recording back on (inside no_grad)."""

    _value = True


class set_grad_enabled(_SetGrad):
    """``set_grad_enabled(mode)``: context manager and decorator setting grad mode."""

    def __init__(self, mode: bool) -> None:
        super().__init__()
        self._value = bool(mode)
