"""Lookup tables: :class:`Embedding` and :func:`embedding`.

An embedding maps integer indices to rows of a weight matrix: for a weight of shape
(num_embeddings, embedding_dim) and indices of any shape (*), the output is
weight[indices], of shape (*, embedding_dim). The gradient of the weight is the output
gradient scatter-added into the rows that were looked up (a row looked up k times gets the
sum of k gradient rows), computed with one stable sort and one segmented sum
(``np.add.reduceat``): no Python loop over indices, and the same summation order every
run. Names, arguments and defaults follow ``torch.nn.Embedding`` /
``torch.nn.functional.embedding``.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from ..tensor import Tensor, _make, _resolve_dtype
from . import init
from .module import Module, Parameter

__all__ = ["Embedding", "embedding"]


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _indices(op: str, input: Any, num_embeddings: int) -> np.ndarray:
    """``input`` as an int64 array of indices in [0, num_embeddings), or a TypeError /
    ValueError naming ``op``, the valid range and the offending value."""
    arr = input.data if isinstance(input, Tensor) else input
    if not isinstance(arr, np.ndarray):
        try:
            arr = np.asarray(arr)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{op}: indices must be integers, given {type(input).__name__} ({e})") from None
        if arr.size == 0 and arr.dtype == np.float64:  # ``[]`` -> an empty float64 array
            arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        first = f", first value {arr.reshape(-1)[0].item()!r}" if arr.size else ""
        hint = "; ferrograd.tensor makes floats, pass a NumPy integer array or a list of ints" if arr.dtype.kind == "f" else ""
        raise TypeError(
            f"{op}: indices must be integers in [0, {num_embeddings - 1}] (an int32/int64 array or Tensor), "
            f"given dtype {arr.dtype} with shape {arr.shape}{first}{hint}"
        )
    if arr.size:
        lo, hi = arr.min(), arr.max()
        if lo < 0 or hi >= num_embeddings:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"{op}: index out of range: expected indices in [0, {num_embeddings - 1}] "
                f"(num_embeddings={num_embeddings}), given {int(bad)} in indices of shape {arr.shape}"
            )
    return arr.astype(np.int64, copy=False)


def _padding_idx(op: str, padding_idx: Optional[int], num_embeddings: int) -> Optional[int]:
    """``padding_idx`` normalised to [0, num_embeddings) (negative values count from the
    end, as in PyTorch), or None."""
    if padding_idx is None:
        return None
    if not _is_int(padding_idx):
        raise TypeError(f"{op}: padding_idx must be an int or None, given {padding_idx!r}")
    p = int(padding_idx)
    if not -num_embeddings <= p < num_embeddings:
        raise ValueError(
            f"{op}: padding_idx must be within [-{num_embeddings}, {num_embeddings - 1}] "
            f"(num_embeddings={num_embeddings}), given {p}"
        )
    return p + num_embeddings if p < 0 else p


def _renorm_(weight: np.ndarray, idx: np.ndarray, max_norm: float, norm_type: float) -> None:
    """Rescales, in place and outside autograd, the rows of ``weight`` named in ``idx``
    whose ``norm_type``-norm exceeds ``max_norm`` to norm ``max_norm`` (PyTorch's
    ``embedding_renorm_``: scale = max_norm / (norm + 1e-7))."""
    rows = np.unique(idx)
    if rows.size == 0:
        return
    sel = weight[rows]
    norms = np.linalg.norm(sel.astype(np.float64), ord=norm_type, axis=1)
    over = norms > max_norm
    if over.any():
        scale = (max_norm / (norms[over] + 1e-7)).astype(weight.dtype)
        weight[rows[over]] = sel[over] * scale[:, None]


def _segment_sum(flat_idx: np.ndarray, g: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(unique indices, per-index sums of the rows of ``g``, per-index counts): one stable
    sort, then ``np.add.reduceat`` over the runs of equal indices (summed in input order)."""
    order = np.argsort(flat_idx, kind="stable")
    s = flat_idx[order]
    starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
    sums = np.add.reduceat(g[order], starts, axis=0)
    counts = np.diff(np.append(starts, s.shape[0]))
    return s[starts], sums, counts


def embedding(
    input: Any,
    weight: Tensor,
    padding_idx: Optional[int] = None,
    max_norm: Optional[float] = None,
    norm_type: float = 2.0,
    scale_grad_by_freq: bool = False,
) -> Tensor:
    """Looks up rows of ``weight``: ``weight[input]``.

    input: integer indices of any shape (*) (an int Tensor, a NumPy integer array or a
    nested list of ints), each in [0, num_embeddings). weight: (num_embeddings,
    embedding_dim), float32 or float64. Returns (*, embedding_dim) in the weight's dtype.

    padding_idx: entries equal to it get no gradient (their output is still the row's
    value). max_norm: rows that are looked up and whose ``norm_type``-norm exceeds it are
    first rescaled to norm ``max_norm`` *in place* (outside autograd, as in PyTorch).
    scale_grad_by_freq: each looked-up row's gradient is divided by how often its index
    occurs in ``input``.

    Backward: the (*, embedding_dim) output gradient is summed per index (stable sort +
    segmented sum) into a dense gradient of the weight's shape.
    """
    return _embedding("embedding", input, weight, padding_idx, max_norm, norm_type, scale_grad_by_freq)


def _embedding(
    op: str,
    input: Any,
    weight: Tensor,
    padding_idx: Optional[int],
    max_norm: Optional[float],
    norm_type: float,
    scale_grad_by_freq: bool,
) -> Tensor:
    if not isinstance(weight, Tensor):
        raise TypeError(f"{op}: weight must be a Tensor of shape (num_embeddings, embedding_dim), given {type(weight).__name__}")
    wd = weight.data
    if wd.ndim != 2:
        raise ValueError(f"{op}: weight must be 2-D (num_embeddings, embedding_dim), given shape {wd.shape}")
    if wd.dtype.kind != "f":
        raise TypeError(f"{op}: weight must be float32 or float64, given dtype {wd.dtype}")
    n, dim = wd.shape
    idx = _indices(op, input, n)
    pad = _padding_idx(op, padding_idx, n)
    if max_norm is not None:
        if not float(max_norm) > 0:
            raise ValueError(f"{op}: max_norm must be > 0 or None, given {max_norm!r}")
        _renorm_(wd, idx, float(max_norm), float(norm_type))
    out = np.take(wd, idx, axis=0)
    shape, dt = wd.shape, wd.dtype

    def backward(g: np.ndarray) -> tuple:
        gw = np.zeros(shape, dtype=dt)
        flat = idx.reshape(-1)
        if flat.size == 0:
            return (gw,)
        g2 = g.reshape(flat.shape[0], dim).astype(dt, copy=False)
        rows, sums, counts = _segment_sum(flat, g2)
        if scale_grad_by_freq:
            sums = sums / counts[:, None].astype(dt)
        gw[rows] = sums
        if pad is not None:
            gw[pad] = 0
        return (gw,)

    return _make(out, (weight,), backward, "EmbeddingBackward")


class Embedding(Module):
    """A lookup table of ``num_embeddings`` vectors of size ``embedding_dim``.

    Args:
        num_embeddings: size of the dictionary (indices lie in [0, num_embeddings)).
        embedding_dim: size of each vector.
        padding_idx: index whose row is initialised to zeros and never receives a
            gradient (so it stays zero in training unless changed by hand); negative
            values count from the end.
        max_norm: if given, looked-up rows with a larger ``norm_type``-norm are rescaled
            to it in place on each forward.
        norm_type: the p of the p-norm for ``max_norm`` (default 2).
        scale_grad_by_freq: divide each row's gradient by its index's frequency in the
            mini-batch.
        _weight: an initial weight of shape (num_embeddings, embedding_dim) to use instead
            of the N(0, 1) initialisation (the array is used as given, not zeroed at
            ``padding_idx``); ``_freeze=True`` makes it non-trainable.
        dtype: float32 (default) or float64.

    Shapes: input (*) integer indices -> output (*, embedding_dim). ``weight`` is
    (num_embeddings, embedding_dim), drawn from N(0, 1) with the ``padding_idx`` row zeroed,
    as in PyTorch.
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: Optional[int] = None,
        max_norm: Optional[float] = None,
        norm_type: float = 2.0,
        scale_grad_by_freq: bool = False,
        _weight: Optional[Any] = None,
        _freeze: bool = False,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        for name, v in (("num_embeddings", num_embeddings), ("embedding_dim", embedding_dim)):
            if not _is_int(v) or v < 1:
                raise ValueError(f"Embedding: {name} must be a positive int, given {v!r}")
        self.num_embeddings = int(num_embeddings)
        self.embedding_dim = int(embedding_dim)
        self.padding_idx = _padding_idx("Embedding", padding_idx, self.num_embeddings)
        if max_norm is not None and not float(max_norm) > 0:
            raise ValueError(f"Embedding: max_norm must be > 0 or None, given {max_norm!r}")
        self.max_norm = None if max_norm is None else float(max_norm)
        self.norm_type = float(norm_type)
        self.scale_grad_by_freq = bool(scale_grad_by_freq)
        if _weight is None:
            dt = _resolve_dtype(dtype) or np.dtype(np.float32)
            self.weight = Parameter(np.empty((self.num_embeddings, self.embedding_dim), dtype=dt), requires_grad=not _freeze)
            self.reset_parameters()
        else:
            w = _weight if isinstance(_weight, Tensor) else Tensor(_weight, dtype=dtype)
            if dtype is not None:
                w = Tensor._wrap(w.data.astype(_resolve_dtype(dtype), copy=False))
            if w.data.shape != (self.num_embeddings, self.embedding_dim):
                raise ValueError(
                    f"Embedding: _weight must have shape (num_embeddings, embedding_dim) = "
                    f"{(self.num_embeddings, self.embedding_dim)}, given {w.data.shape}"
                )
            self.weight = Parameter(w, requires_grad=not _freeze)

    def reset_parameters(self) -> None:
        """Re-draws the weight from N(0, 1) (library generator) and zeroes the
        ``padding_idx`` row."""
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0

    def forward(self, input: Any) -> Tensor:
        """input: integer indices (*) -> (*, embedding_dim)."""
        op = f"Embedding({self.num_embeddings}, {self.embedding_dim})"
        return _embedding(op, input, self.weight, self.padding_idx, self.max_norm, self.norm_type, self.scale_grad_by_freq)

    @classmethod
    def from_pretrained(
        cls,
        embeddings: Any,
        freeze: bool = True,
        padding_idx: Optional[int] = None,
        max_norm: Optional[float] = None,
        norm_type: float = 2.0,
        scale_grad_by_freq: bool = False,
    ) -> "Embedding":
        """An Embedding whose weight is (a copy of) ``embeddings``, a 2-D array or Tensor of
        shape (num_embeddings, embedding_dim); with ``freeze=True`` (default) the weight
        does not require grad. As in PyTorch the ``padding_idx`` row is not zeroed."""
        arr = embeddings.data if isinstance(embeddings, Tensor) else np.asarray(embeddings)
        if arr.ndim != 2:
            raise ValueError(
                f"Embedding.from_pretrained: embeddings must be 2-D (num_embeddings, embedding_dim), given shape {arr.shape}"
            )
        w = Tensor(arr)  # a copy, float32 unless float64 given
        return cls(
            arr.shape[0],
            arr.shape[1],
            padding_idx=padding_idx,
            max_norm=max_norm,
            norm_type=norm_type,
            scale_grad_by_freq=scale_grad_by_freq,
            _weight=w,
            _freeze=freeze,
        )

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}"
        if self.norm_type != 2.0:
            s += f", norm_type={self.norm_type}"
        if self.scale_grad_by_freq:
            s += ", scale_grad_by_freq=True"
        return s

