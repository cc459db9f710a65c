"""ferrograd.optim: optimizers and learning-rate schedulers with PyTorch's API.

Each optimizer's ``step()`` updates all parameters of a param group that have a gradient
with one fused, in-place Rust kernel call (SIMD, multi-threaded, GIL released), with the
update rule of PyTorch's documentation.
"""

from __future__ import annotations

from . import lr_scheduler
from .adam import Adam, AdamW, NAdam
from .adaptive import Adadelta, Adagrad, RMSprop
from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW", "NAdam", "lr_scheduler"]
