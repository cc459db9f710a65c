"""Keras-style training over the PyTorch-style API.

Three equivalent ways to train::

    # 1. functions
    history = ferrograd.train.fit(model, nn.CrossEntropyLoss(), optim.Adam(model.parameters()),
                                  X, y, epochs=10, batch_size=32, validation_split=0.1,
                                  metrics=["accuracy"], callbacks=[EarlyStopping("val_accuracy")])
    # 2. a Trainer holding model, loss, optimizer and metrics
    trainer = Trainer(model, loss, optimizer, metrics=["accuracy"])
    trainer.fit(X, y, epochs=10); trainer.evaluate(Xt, yt); trainer.predict(Xt)
    # 3. model.fit: a Module with KerasMixin (train.Sequential, or class Net(KerasMixin, nn.Module))
    model = ferrograd.train.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    model.compile(optimizer="adam", loss="cross_entropy", metrics=["accuracy"])
    model.fit(X, y, epochs=10)

``fit`` returns a :class:`History` (``history.history["val_accuracy"]`` ...). Callbacks
(:mod:`ferrograd.train.callbacks`): EarlyStopping, ModelCheckpoint, TerminateOnNaN,
LearningRateScheduler, CSVLogger, LambdaCallback, or your own :class:`Callback`.
:func:`summary` prints a Keras-style table of layers, output shapes and parameter counts.
Checkpoints (:meth:`Trainer.save_checkpoint` / :meth:`Trainer.load_checkpoint`) hold the
model, optimizer, epoch and the library generator's state: resuming continues bit for bit.
"""

from __future__ import annotations

from typing import Any

from .callbacks import (
    Callback,
    CallbackList,
    CSVLogger,
    EarlyStopping,
    History,
    LambdaCallback,
    LearningRateScheduler,
    ModelCheckpoint,
    TerminateOnNaN,
)
from .metrics import Accuracy, FunctionMetric, MeanAbsoluteError, MeanSquaredError, Metric
from .summary import summary
from .trainer import KerasMixin, Trainer, evaluate, fit, predict

__all__ = [
    "Trainer", "fit", "evaluate", "predict", "summary", "KerasMixin", "Sequential", "Model",
    "Callback", "CallbackList", "History", "EarlyStopping", "ModelCheckpoint", "TerminateOnNaN",
    "LearningRateScheduler", "CSVLogger", "LambdaCallback",
    "Metric", "Accuracy", "MeanAbsoluteError", "MeanSquaredError", "FunctionMetric",
]

_lazy: dict = {}


def __getattr__(name: str) -> Any:
    # Sequential and Model subclass ferrograd.nn classes; built on first use so that
    # importing ferrograd.train does not import nn.
    if name in ("Sequential", "Model"):
        if name not in _lazy:
            import ferrograd.nn as nn

            class Sequential(KerasMixin, nn.Sequential):
                """``nn.Sequential`` with Keras's compile / fit / evaluate / predict / summary."""

            class Model(KerasMixin, nn.Module):
                """``nn.Module`` with Keras's compile / fit / evaluate / predict / summary:
                subclass it and define ``__init__`` and ``forward`` as for a Module."""

            Sequential.__module__ = Model.__module__ = __name__
            _lazy["Sequential"], _lazy["Model"] = Sequential, Model
        return _lazy[name]
    raise AttributeError(f"module 'ferrograd.train' has no attribute {name!r}")
