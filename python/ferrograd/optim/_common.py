"""Shared plumbing of the concrete optimizers: lazily created state and its rollback."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Tuple

import numpy as np

from ..tensor import Tensor

__all__ = ["StateBuilder", "check_range"]


def check_range(ok: bool, message: str) -> None:
    """Raises ``ValueError(message)`` unless ``ok`` (PyTorch's validation messages)."""
    if not ok:
        raise ValueError(message)


class StateBuilder:
    """Fetches per-parameter state, creating missing entries, and forgets the created ones
    when the update fails (so a failed step leaves the optimizer as it was)."""

    def __init__(self, state: Dict[Tensor, Dict[str, Any]]) -> None:
        self.state = state
        self.created: List[Tuple[Tensor, str]] = []

    def get(self, p: Tensor, name: str, make: Callable[[], Any]) -> Any:
        """``state[p][name]``, set to ``make()`` first when missing."""
        st = self.state[p]
        v = st.get(name)
        if v is None:
            v = make()
            st[name] = v
            self.created.append((p, name))
        return v

    def buffer(self, p: Tensor, name: str, a: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """The state array ``name`` of ``p`` (shape and dtype of ``a``), made C-contiguous."""
        buf = self.get(p, name, lambda: np.full(a.shape, fill, a.dtype))
        if buf.dtype != a.dtype or not buf.flags.c_contiguous or not buf.flags.writeable:
            buf = np.array(buf, dtype=a.dtype, order="C", copy=True)
            self.state[p][name] = buf
        return buf

    def steps(self, params: List[Tensor]) -> List[float]:
        """Each parameter's step count after this step's increment (state not updated)."""
        out = []
        for p in params:
            s = self.state[p].get("step")
            if s is None:
                s = self.get(p, "step", float)
            out.append(float(s) + 1.0)
        return out

    def buffers(self, params: List[Tensor], name: str, fill: float = 0.0) -> List[np.ndarray]:
        """State array ``name`` of every parameter, created (``fill``, the parameter's
        shape and dtype) where missing. The binding validates them."""
        out = []
        for p in params:
            b = self.state[p].get(name)
            if b is None:
                b = self.get(p, name, lambda p=p: np.full(p.data.shape, fill, p.data.dtype))
            out.append(b)
        return out

    def set_steps(self, params: List[Tensor], steps: List[float]) -> None:
        for p, s in zip(params, steps):
            self.state[p]["step"] = s

    def rollback(self) -> None:
        for p, name in reversed(self.created):
            st = self.state.get(p)
            if st is not None:
                st.pop(name, None)
                if not st:
                    self.state.pop(p, None)
        self.created.clear()
