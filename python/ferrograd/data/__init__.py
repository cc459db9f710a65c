"""Datasets and batch loading, PyTorch-style.

- :class:`Dataset`: anything with ``__getitem__(i)`` and ``__len__``.
- :class:`TensorDataset`: rows of equally long arrays / Tensors (inputs, targets, ...).
- :class:`Subset` and :func:`random_split`: views on a dataset by index.
- :class:`DataLoader`: batches of Tensors, optionally shuffled each epoch by the library
  generator (so ``ferrograd.manual_seed`` reproduces every epoch's order). For a
  :class:`TensorDataset` (or a :class:`Subset` of one) a batch is one fancy-index of each
  array with a slice of the permutation: no per-item Python loop.
- :class:`GaussianNoise`: additive Gaussian noise for vectors, a transform for
  ``TensorDataset(..., transform=...)`` or :class:`TransformDataset`.

Batches are tuples of :class:`ferrograd.Tensor` (float arrays keep their dtype; integer
class labels stay int64 so losses such as CrossEntropyLoss take them directly).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from .._random import generator as _library_generator
from ..tensor import Tensor

__all__ = [
    "Dataset",
    "TensorDataset",
    "Subset",
    "TransformDataset",
    "DataLoader",
    "random_split",
    "default_collate",
    "GaussianNoise",
]


def _as_np(x: Any, what: str) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.data
    if isinstance(x, np.ndarray):
        return x
    try:
        arr = np.asarray(x)
    except Exception as e:  # pragma: no cover - exotic inputs
        raise TypeError(f"{what}: cannot convert {type(x).__name__} to an array: {e}") from None
    if arr.dtype == np.float64 and not isinstance(x, np.ndarray):
        arr = arr.astype(np.float32)  # Python floats -> the library's default float32
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{what}: expected numbers, given an array of dtype {arr.dtype}")
    return arr


def _wrap(arr: np.ndarray) -> Tensor:
    return Tensor._wrap(arr)


# ----------------------------------------------------------------------------- datasets


class Dataset:
    """A map-style dataset: ``dataset[i]`` gives the i-th sample, ``len(dataset)`` their
    number. Subclass it and define ``__getitem__`` and ``__len__``."""

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__")


class TensorDataset(Dataset):
    """Samples are rows of ``arrays`` (NumPy arrays or Tensors with the same first dimension
    N): ``dataset[i] == (arrays[0][i], arrays[1][i], ...)`` as Tensors.

    ``transform``, if given, is applied to the first array's rows (the inputs) each time a
    sample or a batch is drawn (e.g. :class:`GaussianNoise`); it receives and returns a
    NumPy array of shape (B, ...) in a DataLoader batch, (...) for a single item.
    """

    def __init__(self, *arrays: Any, transform: Optional[Callable[[np.ndarray], np.ndarray]] = None) -> None:
        if not arrays:
            raise ValueError("TensorDataset: expected at least one array, given none")
        arrs = [_as_np(a, "TensorDataset") for a in arrays]
        for i, a in enumerate(arrs):
            if a.ndim == 0:
                raise ValueError(f"TensorDataset: array {i} is 0-d; expected a first (sample) dimension")
        n = arrs[0].shape[0]
        bad = [(i, a.shape) for i, a in enumerate(arrs) if a.shape[0] != n]
        if bad:
            raise ValueError(
                f"TensorDataset: all arrays need the same first dimension; array 0 has shape "
                f"{arrs[0].shape}, " + ", ".join(f"array {i} has shape {s}" for i, s in bad)
            )
        self.arrays: Tuple[np.ndarray, ...] = tuple(arrs)
        self.transform = transform

    @property
    def tensors(self) -> Tuple[Tensor, ...]:
        """The arrays as Tensors (PyTorch's attribute name)."""
        return tuple(_wrap(a) for a in self.arrays)

    def _rows(self, index: Any) -> Tuple[np.ndarray, ...]:
        rows = tuple(a[index] for a in self.arrays)
        if self.transform is not None:
            rows = (np.asarray(self.transform(rows[0])),) + rows[1:]
        return rows

    def __getitem__(self, index: int) -> Tuple[Tensor, ...]:
        return tuple(_wrap(np.asarray(r)) for r in self._rows(index))

    def __len__(self) -> int:
        return int(self.arrays[0].shape[0])


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices`` (in that order)."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]) -> None:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(dataset)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"Subset: indices must lie in [0, {n}) for a dataset of {n} samples, given range [{idx.min()}, {idx.max()}]")
        self.dataset = dataset
        self.indices = np.where(idx < 0, idx + n, idx)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[int(self.indices[index])]

    def __len__(self) -> int:
        return int(self.indices.shape[0])


class TransformDataset(Dataset):
    """``dataset`` with ``transform`` applied to field ``field`` of each sample (the inputs
    by default), e.g. ``TransformDataset(ds, GaussianNoise(0.1))``."""

    def __init__(self, dataset: Dataset, transform: Callable[[Any], Any], field: int = 0) -> None:
        self.dataset = dataset
        self.transform = transform
        self.field = field

    def __getitem__(self, index: int) -> Any:
        item = self.dataset[index]
        if isinstance(item, tuple):
            items = list(item)
            v = items[self.field]
            out = self.transform(v.data if isinstance(v, Tensor) else v)
            items[self.field] = _wrap(np.asarray(out)) if isinstance(v, Tensor) else out
            return tuple(items)
        out = self.transform(item.data if isinstance(item, Tensor) else item)
        return _wrap(np.asarray(out)) if isinstance(item, Tensor) else out

    def __len__(self) -> int:
        return len(self.dataset)


def random_split(
    dataset: Dataset,
    lengths: Sequence[Union[int, float]],
    generator: Optional[np.random.Generator] = None,
) -> List[Subset]:
    """Splits ``dataset`` into non-overlapping random :class:`Subset` s.

    ``lengths`` are sizes summing to ``len(dataset)``, or fractions summing to 1 (each part
    gets ``floor(n * fraction)``, and the remaining samples go one each to the parts in
    order, as PyTorch does). The permutation comes from ``generator`` or the library's.
    """
    n = len(dataset)
    lengths = list(lengths)
    if not lengths:
        raise ValueError("random_split: expected at least one length")
    if all(isinstance(x, (float, np.floating)) for x in lengths) and math.isclose(sum(lengths), 1.0, abs_tol=1e-6) and sum(lengths) <= 1.0 + 1e-6:
        if any(x < 0 for x in lengths):
            raise ValueError(f"random_split: fractions must be non-negative, given {lengths}")
        sizes = [int(math.floor(n * f)) for f in lengths]
        rem = n - sum(sizes)
        for i in range(rem):
            sizes[i % len(sizes)] += 1
    else:
        if not all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in lengths):
            raise ValueError(
                f"random_split: lengths must be ints summing to {n} or fractions summing to 1, given {lengths}"
            )
        sizes = [int(x) for x in lengths]
        if any(s < 0 for s in sizes) or sum(sizes) != n:
            raise ValueError(
                f"random_split: sum of lengths {sum(sizes)} does not equal the dataset's length {n} (given {lengths})"
            )
    gen = generator if generator is not None else _library_generator()
    perm = gen.permutation(n)
    out, start = [], 0
    for s in sizes:
        out.append(Subset(dataset, perm[start : start + s]))
        start += s
    return out


# ----------------------------------------------------------------------------- collate


def default_collate(samples: Sequence[Any]) -> Any:
    """Stacks a list of samples into a batch: tuples/lists field by field, dicts key by key,
    arrays / Tensors / numbers with ``np.stack`` into one Tensor of shape (B, ...)."""
    first = samples[0]
    if isinstance(first, (tuple, list)):
        n = len(first)
        if any(len(s) != n for s in samples):
            raise ValueError("default_collate: samples have different numbers of fields")
        return tuple(default_collate([s[i] for s in samples]) for i in range(n))
    if isinstance(first, dict):
        return {k: default_collate([s[k] for s in samples]) for k in first}
    arrs = [x.data if isinstance(x, Tensor) else x for x in samples]
    if all(isinstance(a, float) for a in arrs):
        return _wrap(np.asarray(arrs, dtype=np.float32))
    try:
        batch = np.stack([np.asarray(a) for a in arrs])
    except ValueError as e:
        shapes = sorted({np.shape(a) for a in arrs})
        raise ValueError(f"default_collate: samples have different shapes {shapes[:4]}: {e}") from None
    if batch.dtype.kind not in "fiub":
        raise TypeError(f"default_collate: expected numeric samples, given dtype {batch.dtype}")
    return _wrap(batch)


# ----------------------------------------------------------------------------- loader


class DataLoader:
    """Iterates over ``dataset`` in batches of ``batch_size`` samples.

    Each batch is what ``collate_fn`` makes of a list of samples (by default tuples of
    Tensors of shape (B, ...), see :func:`default_collate`). ``shuffle=True`` draws a new
    permutation at the start of each pass from ``generator`` (default: the library's
    generator at that moment, so ``ferrograd.manual_seed`` reproduces the epochs).
    ``drop_last=True`` drops a last batch smaller than ``batch_size``.

    A :class:`TensorDataset` or a :class:`Subset` of one (with the default collate) is
    batched by indexing its arrays with a slice of the permutation, without a per-sample
    loop; the batches hold the same values as the per-sample path would.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        collate_fn: Optional[Callable[[List[Any]], Any]] = None,
        generator: Optional[np.random.Generator] = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int, given {batch_size!r}")
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            raise TypeError(
                f"DataLoader: expected a dataset with __getitem__ and __len__, given {type(dataset).__name__}"
            )
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.collate_fn = collate_fn or default_collate
        self.generator = generator

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _fast_source(self) -> Optional[Tuple[TensorDataset, Optional[np.ndarray]]]:
        if self.collate_fn is not default_collate:
            return None
        ds, idx = self.dataset, None
        while isinstance(ds, Subset):
            idx = ds.indices if idx is None else ds.indices[idx]
            ds = ds.dataset
        if type(ds) is TensorDataset:
            return ds, idx
        return None

    def __iter__(self) -> Iterator[Any]:
        n = len(self.dataset)
        order: Optional[np.ndarray] = None
        if self.shuffle:
            gen = self.generator if self.generator is not None else _library_generator()
            order = gen.permutation(n)
        stop = n - n % self.batch_size if self.drop_last else n
        fast = self._fast_source()
        bs = self.batch_size
        if fast is not None:
            ds, base = fast
            for start in range(0, stop, bs):
                if order is None and base is None:
                    index: Any = slice(start, min(start + bs, n))
                else:
                    index = np.arange(start, min(start + bs, n)) if order is None else order[start : start + bs]
                    if base is not None:
                        index = base[index]
                yield tuple(_wrap(np.ascontiguousarray(r)) for r in ds._rows(index))
            return
        for start in range(0, stop, bs):
            ids = range(start, min(start + bs, n)) if order is None else order[start : start + bs]
            yield self.collate_fn([self.dataset[int(i)] for i in ids])


# ----------------------------------------------------------------------------- augmentation


class GaussianNoise:
    """Additive Gaussian noise for vectors: ``x + N(mean, std**2)`` drawn elementwise from
    the library generator (or ``generator``), in ``x``'s float dtype.

    Takes an array or Tensor of any shape — a single vector (F,) or a batch (B, F) — and
    returns a new one of the same type and shape (the input is never modified).
    ``clip=(lo, hi)`` clips the result. Use it as ``TensorDataset(X, y,
    transform=GaussianNoise(0.1))`` so each epoch sees fresh noise.
    """

    def __init__(
        self,
        std: float = 0.1,
        mean: float = 0.0,
        clip: Optional[Tuple[float, float]] = None,
        generator: Optional[np.random.Generator] = None,
    ) -> None:
        if not (isinstance(std, (int, float)) and std >= 0 and math.isfinite(std)):
            raise ValueError(f"GaussianNoise: std must be a finite number >= 0, given {std!r}")
        self.std = float(std)
        self.mean = float(mean)
        self.clip = clip
        self.generator = generator

    def __call__(self, x: Any) -> Any:
        is_t = isinstance(x, Tensor)
        arr = x.data if is_t else np.asarray(x)
        dtype = arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float32)
        gen = self.generator if self.generator is not None else _library_generator()
        noise = gen.standard_normal(size=arr.shape, dtype=np.float64 if dtype == np.float64 else np.float32)
        out = (arr.astype(dtype, copy=False) + (noise * dtype.type(self.std) + dtype.type(self.mean))).astype(dtype, copy=False)
        if self.clip is not None:
            out = np.clip(out, self.clip[0], self.clip[1])
        return Tensor._wrap(out) if is_t else out

    def __repr__(self) -> str:
        return f"GaussianNoise(std={self.std}, mean={self.mean}" + (f", clip={self.clip})" if self.clip else ")")

from . import transforms  # noqa: E402  (last: transforms re-exports GaussianNoise from here)
from . import timeseries  # noqa: E402,F401  (ferrograd.data.timeseries: windows, splits, scalers)
