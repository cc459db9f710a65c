"""The library's one seeded random generator.

All of ferrograd's randomness (``rand``, ``randn``, initialisers, dropout masks, data
shuffling, and the explicit seeds handed to kernels) is drawn from the generator returned
by :func:`generator`, which :func:`manual_seed` resets.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import numpy as np

_state: dict = {"gen": np.random.Generator(np.random.PCG64()), "seed": None}


def manual_seed(seed: int) -> np.random.Generator:
    """Seeds the library's generator; the same seed reproduces every random draw.

    Returns the new ``numpy.random.Generator``.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"manual_seed: expected an integer seed, given {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"manual_seed: expected a non-negative seed, given {seed}")
    gen = np.random.Generator(np.random.PCG64(int(seed)))
    _state["gen"] = gen
    _state["seed"] = int(seed)
    return gen


def initial_seed() -> int | None:
    """The seed last given to :func:`manual_seed` (None if never seeded)."""
    return _state["seed"]


def generator() -> np.random.Generator:
    """The library's current generator (reset by :func:`manual_seed`)."""
    return _state["gen"]


def kernel_seed() -> int:
    """A 64-bit seed drawn from the library generator, for kernels that sample."""
    return int(_state["gen"].integers(0, 2**63 - 1, dtype=np.int64))


@contextmanager
def using_seed(seed: int) -> Iterator[np.random.Generator]:
    """Within the block the library generator is a fresh one seeded with ``seed`` (so
    initialisers, dropout and shuffling inside it depend on that seed alone); afterwards
    the caller's generator, with its state, is back in place. Yields the fresh one."""
    saved = _state["gen"]
    _state["gen"] = gen = np.random.Generator(np.random.PCG64(int(seed)))
    try:
        yield gen
    finally:
        _state["gen"] = saved
