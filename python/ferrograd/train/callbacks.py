"""Callbacks: hooks into :meth:`Trainer.fit`, Keras-style.

Protocol. A callback is any object with some of these methods (subclass :class:`Callback`
to get no-op defaults); ``logs`` is a dict of floats::

    on_train_begin(logs)          logs: {}
    on_epoch_begin(epoch, logs)   epoch counts from 0; logs: {}
    on_batch_begin(batch, logs)   batch counts from 0 within the epoch; logs: {"size": B}
    on_batch_end(batch, logs)     logs: {"size": B, "loss": batch loss, <metric>: batch value}
    on_epoch_end(epoch, logs)     logs: {"loss", <metrics>, "val_loss", "val_<metric>", "lr"}
    on_train_end(logs)            logs: the last epoch's logs

Before training the trainer sets ``callback.trainer`` (the :class:`Trainer`),
``callback.model`` and ``callback.params`` (``{"epochs", "steps", "verbose"}``). Setting
``self.trainer.stop_training = True`` ends training after the current batch. Callbacks run
in list order; a callback may add entries to ``logs`` in ``on_epoch_end`` for those after it
(the :class:`History` is always last, so it records them).
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional, Union

import numpy as np

__all__ = [
    "Callback",
    "CallbackList",
    "History",
    "EarlyStopping",
    "ModelCheckpoint",
    "TerminateOnNaN",
    "LearningRateScheduler",
    "CSVLogger",
    "LambdaCallback",
]


class Callback:
    """Base class with no-op hooks; see the module docstring for the protocol."""

    trainer: Any = None
    model: Any = None
    params: Dict[str, Any] = {}

    def set_trainer(self, trainer: Any) -> None:
        self.trainer = trainer
        self.model = trainer.model

    def on_train_begin(self, logs: Optional[dict] = None) -> None:
        pass

    def on_train_end(self, logs: Optional[dict] = None) -> None:
        pass

    def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        pass

    def on_batch_begin(self, batch: int, logs: Optional[dict] = None) -> None:
        pass

    def on_batch_end(self, batch: int, logs: Optional[dict] = None) -> None:
        pass


class CallbackList:
    """Calls each hook on every callback that has it, in order."""

    def __init__(self, callbacks: List[Any], trainer: Any, params: dict) -> None:
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if hasattr(cb, "set_trainer"):
                cb.set_trainer(trainer)
            else:
                cb.trainer, cb.model = trainer, trainer.model
            cb.params = params

    def _call(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, hook, None)
            if fn is not None:
                fn(*args)

    def on_train_begin(self, logs):
        self._call("on_train_begin", logs)

    def on_train_end(self, logs):
        self._call("on_train_end", logs)

    def on_epoch_begin(self, epoch, logs):
        self._call("on_epoch_begin", epoch, logs)

    def on_epoch_end(self, epoch, logs):
        self._call("on_epoch_end", epoch, logs)

    def on_batch_begin(self, batch, logs):
        self._call("on_batch_begin", batch, logs)

    def on_batch_end(self, batch, logs):
        self._call("on_batch_end", batch, logs)


class History(Callback):
    """Records each epoch's logs: ``history.history`` maps a name ('loss', 'accuracy',
    'val_loss', ...) to its list of per-epoch values, ``history.epoch`` lists the epoch
    numbers (from 0, or from ``initial_epoch`` when resuming)."""

    def __init__(self) -> None:
        self.history: Dict[str, List[float]] = {}
        self.epoch: List[int] = []

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"


def _resolve_mode(mode: str, monitor: str, who: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{who}: mode must be 'auto', 'min' or 'max', given {mode!r}")
    if mode == "auto":
        m = monitor.lower()
        return "max" if ("acc" in m or "auc" in m or m.endswith("f1") or "precision" in m or "recall" in m) else "min"
    return mode


def _copy_state(sd: Any) -> Any:
    return OrderedDict((k, np.array(v, copy=True)) for k, v in sd.items())


class EarlyStopping(Callback):
    """Stops training when ``monitor`` (e.g. 'val_loss' or 'val_accuracy') stops improving.

    An epoch improves on the best so far when its value beats it by more than
    ``min_delta`` (lower for mode 'min', higher for 'max'; 'auto' picks 'max' for accuracy-
    like names and 'min' otherwise). After ``patience`` epochs in a row without
    improvement, training stops (as in Keras, patience 0 and 1 both stop at the first
    epoch without improvement, and never at the first epoch). ``baseline``: a value the
    monitor must beat to count at all. ``start_from_epoch``: epochs to ignore at the start.
    With ``restore_best_weights=True`` the model's weights go back, at the end of training,
    to those of the best epoch. ``stopped_epoch`` and ``best_epoch`` tell what happened.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0.0,
        patience: int = 0,
        verbose: int = 0,
        mode: str = "auto",
        baseline: Optional[float] = None,
        restore_best_weights: bool = False,
        start_from_epoch: int = 0,
    ) -> None:
        if patience < 0:
            raise ValueError(f"EarlyStopping: patience must be >= 0, given {patience}")
        self.monitor = monitor
        self.min_delta = abs(float(min_delta))
        self.patience = int(patience)
        self.verbose = verbose
        self.mode = _resolve_mode(mode, monitor, "EarlyStopping")
        self.baseline = baseline
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = start_from_epoch
        self._reset()

    def _reset(self) -> None:
        self.wait = 0
        self.stopped_epoch = -1
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = -1
        self.best_weights = None

    def _improved(self, current: float, reference: float) -> bool:
        if self.mode == "min":
            return current < reference - self.min_delta
        return current > reference + self.min_delta

    def on_train_begin(self, logs=None):
        self._reset()
        if self.baseline is not None:
            self.best = float(self.baseline)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.monitor not in logs:
            warnings.warn(
                f"EarlyStopping: monitor {self.monitor!r} is not among the logs {sorted(logs)}; "
                "did you pass validation data?",
                RuntimeWarning,
                stacklevel=2,
            )
            return
        if epoch < self.start_from_epoch:
            return
        current = float(logs[self.monitor])
        if not math.isnan(current) and self._improved(current, self.best):
            self.best = current
            self.best_epoch = epoch
            self.wait = 0
            if self.restore_best_weights and self.model is not None:
                self.best_weights = _copy_state(self.model.state_dict())
            return
        self.wait += 1
        if self.wait >= self.patience and epoch > 0:  # as Keras: never on the first epoch
            self.stopped_epoch = epoch
            if self.trainer is not None:
                self.trainer.stop_training = True

    def state_dict(self) -> dict:
        """The stopping state (saved in checkpoints so a resumed fit stops where an
        uninterrupted one would)."""
        sd = {"wait": self.wait, "best": self.best, "best_epoch": self.best_epoch, "stopped_epoch": self.stopped_epoch}
        if self.best_weights is not None:
            sd["best_weights"] = self.best_weights
        return sd

    def load_state_dict(self, sd: dict) -> None:
        self.wait = int(sd["wait"])
        self.best = float(sd["best"])
        self.best_epoch = int(sd["best_epoch"])
        self.stopped_epoch = int(sd["stopped_epoch"])
        bw = sd.get("best_weights")
        self.best_weights = _copy_state(bw) if bw is not None else None

    def on_train_end(self, logs=None):
        if self.stopped_epoch >= 0 and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None and self.model is not None:
            if self.verbose:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.load_state_dict(self.best_weights)


class TerminateOnNaN(Callback):
    """Stops training as soon as a batch's loss is NaN or infinite."""

    def __init__(self) -> None:
        self.terminated_batch: Optional[int] = None

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch}: invalid loss {loss}, terminating training")
            self.terminated_batch = batch
            self.trainer.stop_training = True


class ModelCheckpoint(Callback):
    """Saves a checkpoint at the end of epochs, with :func:`ferrograd.save`.

    ``filepath`` may hold ``{epoch}`` (1-based, e.g. ``"ckpt-{epoch:03d}.safetensors"``) and
    log names (``{val_loss:.4f}``). The checkpoint is a dict ``{"model": state_dict,
    "optimizer": state_dict, "epoch": epochs completed, "rng": the library generator's
    state, "callbacks": states of stateful callbacks such as LearningRateScheduler}``, which
    :meth:`Trainer.load_checkpoint` restores so ``fit`` continues exactly where it stopped;
    with ``save_weights_only=True`` it is the model's state_dict alone.
    With ``save_best_only=True`` it saves only when ``monitor`` improves (mode as in
    :class:`EarlyStopping`). ``save_freq`` saves every that many epochs.
    """

    def __init__(
        self,
        filepath: Union[str, "os.PathLike[str]"],
        monitor: str = "val_loss",
        verbose: int = 0,
        save_best_only: bool = False,
        save_weights_only: bool = False,
        mode: str = "auto",
        save_freq: int = 1,
    ) -> None:
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        self.mode = _resolve_mode(mode, monitor, "ModelCheckpoint")
        self.save_freq = int(save_freq)
        self.best = math.inf if self.mode == "min" else -math.inf
        self.saved: List[str] = []

    def _path(self, epoch: int, logs: dict) -> str:
        try:
            return self.filepath.format(epoch=epoch + 1, **logs)
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(
                f"ModelCheckpoint: cannot format filepath {self.filepath!r} with epoch and logs {sorted(logs)}: {e}"
            ) from None

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if (epoch + 1) % self.save_freq:
            return
        if self.save_best_only:
            cur = logs.get(self.monitor)
            if cur is None:
                warnings.warn(f"ModelCheckpoint: monitor {self.monitor!r} is not among the logs {sorted(logs)}", RuntimeWarning, stacklevel=2)
                return
            cur = float(cur)
            better = cur < self.best if self.mode == "min" else cur > self.best
            if not better:
                return
            self.best = cur
        path = self._path(epoch, logs)
        if self.save_weights_only:
            from ..serialization import save

            save(self.model.state_dict(), path)
        else:
            self.trainer.save_checkpoint(path, epoch=epoch + 1)
        self.saved.append(path)
        if self.verbose:
            print(f"Epoch {epoch + 1}: saved {path}")


class LearningRateScheduler(Callback):
    """Changes the learning rate each epoch.

    ``schedule`` is either
    - a ``ferrograd.optim.lr_scheduler`` scheduler: stepped at the end of each epoch;
      ``ReduceLROnPlateau`` is given the monitored value ``logs[monitor]``;
    - or a function ``schedule(epoch) -> lr`` or ``schedule(epoch, lr) -> lr`` (Keras),
      called at the start of each epoch; the result is set on every param group.
    The current learning rate goes into the epoch's logs as ``'lr'``. The scheduler's
    state is saved in checkpoints (``state_dict`` / ``load_state_dict``).
    """

    def __init__(self, schedule: Any, monitor: str = "val_loss", verbose: int = 0) -> None:
        self.schedule = schedule
        self.monitor = monitor
        self.verbose = verbose
        self._is_scheduler = hasattr(schedule, "step") and not isinstance(schedule, type)
        if not self._is_scheduler and not callable(schedule):
            raise TypeError(f"LearningRateScheduler: expected a scheduler or a function, given {type(schedule).__name__}")
        self._plateau = self._is_scheduler and type(schedule).__name__ == "ReduceLROnPlateau"

    def _set_lr(self, lr: float) -> None:
        for g in self.trainer.optimizer.param_groups:
            g["lr"] = float(lr)

    def _lr(self) -> float:
        return float(self.trainer.optimizer.param_groups[0]["lr"])

    def on_epoch_begin(self, epoch, logs=None):
        if self._is_scheduler:
            return
        try:
            lr = self.schedule(epoch, self._lr())
        except TypeError:
            lr = self.schedule(epoch)
        if not isinstance(lr, (int, float, np.floating)) or not math.isfinite(float(lr)):
            raise ValueError(f"LearningRateScheduler: the schedule returned {lr!r} for epoch {epoch}, expected a finite float")
        self._set_lr(float(lr))
        if self.verbose:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {float(lr)}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = self._lr()
        if not self._is_scheduler:
            return
        if self._plateau:
            cur = (logs or {}).get(self.monitor)
            if cur is None:
                warnings.warn(f"LearningRateScheduler: monitor {self.monitor!r} is not among the logs", RuntimeWarning, stacklevel=2)
                return
            self.schedule.step(cur)
        else:
            self.schedule.step()

    def state_dict(self) -> dict:
        if self._is_scheduler and hasattr(self.schedule, "state_dict"):
            return {"scheduler": self.schedule.state_dict()}
        return {}

    def load_state_dict(self, sd: dict) -> None:
        if "scheduler" in sd and self._is_scheduler:
            self.schedule.load_state_dict(sd["scheduler"])


class CSVLogger(Callback):
    """Writes each epoch's logs as a CSV row (``epoch`` first) to ``filename``; appends to
    an existing file with ``append=True``."""

    def __init__(self, filename: Union[str, "os.PathLike[str]"], separator: str = ",", append: bool = False) -> None:
        self.filename = os.fspath(filename)
        self.sep = separator
        self.append = append
        self._keys: Optional[List[str]] = None
        self._file = None

    def on_train_begin(self, logs=None):
        exists = self.append and os.path.exists(self.filename) and os.path.getsize(self.filename) > 0
        self._file = open(self.filename, "a" if self.append else "w", newline="")
        self._keys = None
        if exists:
            with open(self.filename, newline="") as f:
                first = f.readline().strip()
            if first:
                self._keys = first.split(self.sep)[1:]

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        w = csv.writer(self._file, delimiter=self.sep)
        if self._keys is None:
            self._keys = sorted(logs)
            w.writerow(["epoch"] + self._keys)
        w.writerow([epoch] + [logs.get(k, "") for k in self._keys])
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = None


class LambdaCallback(Callback):
    """A callback from functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``;
    accepts any of the hook names."""

    def __init__(self, **hooks: Callable) -> None:
        names = {"on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_batch_begin", "on_batch_end"}
        bad = set(hooks) - names
        if bad:
            raise TypeError(f"LambdaCallback: unknown hooks {sorted(bad)}; expected some of {sorted(names)}")
        for k, fn in hooks.items():
            setattr(self, k, fn)
