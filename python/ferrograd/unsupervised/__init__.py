"""``ferrograd.unsupervised``: self-organizing maps, Boltzmann machines and autoencoders.

Names resolve lazily from their submodules (``som``, ``rbm``, ``dbm``, ``autoencoder``),
so importing the package costs nothing until a model is used.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "SOM": "som",
    "RBM": "rbm",
    "DBM": "dbm",
    "AutoEncoder": "autoencoder",
    "StackedAutoEncoder": "autoencoder",
    "DenoisingAutoEncoder": "autoencoder",
    "SparseAutoEncoder": "autoencoder",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
