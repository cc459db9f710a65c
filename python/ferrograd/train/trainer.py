"""The training loop: :class:`Trainer` (fit / evaluate / predict) and its function forms.

A Keras-style API over the PyTorch-style one: the model is an ``nn.Module``, the loss a
module or function ``loss_fn(output, target) -> scalar Tensor``, the optimizer a
``ferrograd.optim`` optimizer. One training step is exactly the PyTorch idiom::

    optimizer.zero_grad(); out = model(*inputs); loss = loss_fn(out, target)
    loss.backward(); optimizer.step()

Data: ``x`` and ``y`` as arrays / Tensors (batched by a :class:`~ferrograd.data.DataLoader`
over a :class:`~ferrograd.data.TensorDataset`), or ``x`` a Dataset or DataLoader whose
batches are tuples ``(*inputs, target)``. Float inputs are cast to the model's parameter
dtype (float32 unless the model is float64); integer targets stay int64 (class indices).
"""

from __future__ import annotations

import math
import sys
import time
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .._random import generator as _library_generator
from ..autograd import no_grad
from ..data import DataLoader, Dataset, TensorDataset
from ..tensor import Tensor
from .callbacks import CallbackList, History
from .metrics import Accuracy, Metric, get_metrics

__all__ = ["Trainer", "fit", "evaluate", "predict", "KerasMixin"]

ArrayLike = Union[np.ndarray, Tensor, Sequence]


def _param_dtype(model: Any) -> np.dtype:
    try:
        for p in model.parameters():
            return p.data.dtype
    except Exception:
        pass
    return np.dtype(np.float32)


def _isatty() -> bool:
    try:
        return bool(sys.stdout.isatty())
    except Exception:
        return False


def _fmt(logs: Dict[str, float]) -> str:
    return " - ".join(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}" for k, v in logs.items())


class _ModeGuard:
    """Puts every submodule in eval mode (and grad off) and restores each one's mode."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def __enter__(self):
        try:
            self.modes = [(m, m.training) for m in self.model.modules()]
        except AttributeError:
            self.modes = []
        if hasattr(self.model, "eval"):
            self.model.eval()
        self.ng = no_grad()
        self.ng.__enter__()
        return self

    def __exit__(self, *exc):
        self.ng.__exit__(*exc)
        for m, mode in self.modes:
            m.training = mode
        return False


class Trainer:
    """Trains ``model`` with ``loss_fn`` and ``optimizer``, Keras-style.

    Args:
        model: an ``nn.Module`` (any callable with ``parameters()``, ``train()``,
            ``eval()``, ``state_dict()``, ``load_state_dict()``).
        loss_fn: ``loss_fn(output, target) -> scalar Tensor`` (e.g. ``nn.CrossEntropyLoss()``).
        optimizer: a ``ferrograd.optim`` optimizer over the model's parameters (None for
            a trainer used only to evaluate / predict).
        metrics: names ('accuracy', 'mae', 'mse'), :class:`Metric` s or functions
            ``fn(output, target) -> float``, reported beside the loss.

    Attributes: ``stop_training`` (set by callbacks to stop), ``history`` (the last fit's
    :class:`History`), ``epoch`` (epochs completed, restored by :meth:`load_checkpoint`).
    """

    def __init__(self, model: Any, loss_fn: Any, optimizer: Any = None, metrics: Any = ("accuracy",)) -> None:
        if not callable(model):
            raise TypeError(f"Trainer: model must be callable (an nn.Module), given {type(model).__name__}")
        if loss_fn is not None and not callable(loss_fn):
            raise TypeError(f"Trainer: loss_fn must be callable, given {type(loss_fn).__name__}")
        self.model = model
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.metric_specs = metrics
        self.stop_training = False
        self.history: Optional[History] = None
        self.epoch = 0
        self.callbacks: List[Any] = []
        self._pending_callback_states: Dict[str, Any] = {}

    # ------------------------------------------------------------------ data plumbing

    def _metrics(self, metrics: Any = None) -> List[Metric]:
        ms = get_metrics(self.metric_specs if metrics is None else metrics)
        logits = type(self.loss_fn).__name__ in ("BCEWithLogitsLoss",) or getattr(self.loss_fn, "__name__", "") == "binary_cross_entropy_with_logits"
        for m in ms:
            if isinstance(m, Accuracy) and logits:
                m.from_logits = True
        return ms

    def _arrays(self, x: Any, y: Any, what: str) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        dt = _param_dtype(self.model)

        def conv(a: Any, target: bool) -> np.ndarray:
            arr = a.data if isinstance(a, Tensor) else np.asarray(a)
            if arr.dtype.kind not in "fiub":
                raise TypeError(f"{what}: expected numeric arrays, given dtype {arr.dtype}")
            if target and arr.dtype.kind in "iu":
                return arr.astype(np.int64, copy=False)
            return arr.astype(dt, copy=False)

        xa = conv(x, False)
        ya = None if y is None else conv(y, True)
        if xa.ndim == 0:
            raise ValueError(f"{what}: x must have a first (sample) dimension, given a 0-d array")
        if ya is not None and (ya.ndim == 0 or ya.shape[0] != xa.shape[0]):
            raise ValueError(
                f"{what}: x and y need the same number of samples; x has shape {xa.shape}, y has shape {ya.shape}"
            )
        return xa, ya

    def _loader(self, x: Any, y: Any, batch_size: int, shuffle: bool, what: str, need_y: bool) -> DataLoader:
        if isinstance(x, DataLoader):
            if y is not None:
                raise ValueError(f"{what}: y must be None when x is a DataLoader (its batches hold the targets)")
            return x
        if isinstance(x, Dataset) or (
            hasattr(x, "__getitem__") and hasattr(x, "__len__") and not isinstance(x, (np.ndarray, Tensor, list, tuple))
        ):
            if y is not None:
                raise ValueError(f"{what}: y must be None when x is a Dataset (its samples hold the targets)")
            return DataLoader(x, batch_size=batch_size, shuffle=shuffle)
        if need_y and y is None:
            raise ValueError(f"{what}: y is required when x is an array (or pass a Dataset / DataLoader)")
        xa, ya = self._arrays(x, y, what)
        ds = TensorDataset(xa) if ya is None else TensorDataset(xa, ya)
        return DataLoader(ds, batch_size=batch_size, shuffle=shuffle)

    @staticmethod
    def _split(batch: Any, what: str, need_y: bool) -> Tuple[tuple, Any]:
        if isinstance(batch, Tensor):
            batch = (batch,)
        if not isinstance(batch, (tuple, list)):
            raise TypeError(f"{what}: a batch must be a tuple (inputs..., target), given {type(batch).__name__}")
        if need_y:
            if len(batch) < 2:
                raise ValueError(f"{what}: a batch needs (inputs..., target); this one has {len(batch)} element(s)")
            return tuple(batch[:-1]), batch[-1]
        if len(batch) == 1:
            return (batch[0],), None
        return tuple(batch[:-1]), batch[-1]

    # ------------------------------------------------------------------ steps

    def train_step(self, inputs: tuple, target: Any) -> Tuple[float, Any]:
        """One optimisation step on a batch; returns (loss value, model output)."""
        opt = self.optimizer
        opt.zero_grad()
        out = self.model(*inputs)
        loss = self.loss_fn(out, target)
        loss.backward()
        opt.step()
        return float(loss.data), out

    def _run_eval(self, loader: DataLoader, metrics: List[Metric], what: str) -> Dict[str, float]:
        total, count = 0.0, 0
        for m in metrics:
            m.reset()
        with _ModeGuard(self.model):
            for batch in loader:
                inputs, target = self._split(batch, what, True)
                out = self.model(*inputs)
                n = len(target)
                if self.loss_fn is not None:
                    total += float(self.loss_fn(out, target).data) * n
                count += n
                for m in metrics:
                    m.update(out.data, target.data if isinstance(target, Tensor) else target)
        logs: Dict[str, float] = OrderedDict()
        if self.loss_fn is not None:
            logs["loss"] = total / count if count else float("nan")
        for m in metrics:
            logs[m.name] = m.result()
        return logs

    # ------------------------------------------------------------------ public API

    def fit(
        self,
        x: Any,
        y: Any = None,
        *,
        epochs: int = 1,
        batch_size: int = 32,
        validation_data: Any = None,
        validation_split: float = 0.0,
        callbacks: Optional[Sequence[Any]] = None,
        shuffle: bool = True,
        verbose: int = 1,
        initial_epoch: int = 0,
    ) -> History:
        """Trains for epochs ``initial_epoch .. epochs-1``; returns the :class:`History`.

        ``x``: inputs (N, ...) as an array / Tensor with targets ``y`` (N, ...) — int64 class
        indices (N,) for CrossEntropyLoss, floats matching the output's shape for
        regression or BCE — or a Dataset / DataLoader of ``(inputs..., target)`` (then
        ``batch_size`` and ``shuffle`` apply only to a Dataset). ``validation_data``:
        ``(x_val, y_val)``, a Dataset or a DataLoader, evaluated after each epoch in eval
        mode without grad (logs ``val_loss``, ``val_<metric>``); or ``validation_split``
        in (0, 1): the last fraction of array inputs, taken before shuffling.
        ``shuffle``: a new order each epoch from the library generator. ``verbose``: 0
        silent; 1 a progress bar per epoch on a terminal (one summary line per epoch
        otherwise); 2 one line per epoch. ``initial_epoch``: the epoch to start from when
        resuming (see :meth:`load_checkpoint`).
        """
        if self.optimizer is None:
            raise ValueError("fit: this Trainer has no optimizer")
        if self.loss_fn is None:
            raise ValueError("fit: this Trainer has no loss function")
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"fit: epochs must be a non-negative int, given {epochs!r}")
        if validation_split:
            if not 0.0 < validation_split < 1.0:
                raise ValueError(f"fit: validation_split must be in (0, 1), given {validation_split}")
            if validation_data is not None:
                raise ValueError("fit: give validation_data or validation_split, not both")
            if isinstance(x, (Dataset, DataLoader)) or y is None:
                raise ValueError("fit: validation_split needs array inputs x and y (use random_split for a Dataset)")
            xa, ya = self._arrays(x, y, "fit")
            n_val = int(math.floor(xa.shape[0] * validation_split))
            if n_val < 1 or n_val >= xa.shape[0]:
                raise ValueError(f"fit: validation_split={validation_split} of {xa.shape[0]} samples leaves an empty part")
            x, y = xa[:-n_val], ya[:-n_val]
            validation_data = (xa[-n_val:], ya[-n_val:])
        train_loader = self._loader(x, y, batch_size, shuffle, "fit", True)
        val_loader = None
        if validation_data is not None:
            if isinstance(validation_data, (tuple, list)) and len(validation_data) == 2:
                val_loader = self._loader(validation_data[0], validation_data[1], batch_size, False, "fit(validation_data)", True)
            elif isinstance(validation_data, (tuple, list)):
                raise ValueError(f"fit: validation_data must be (x_val, y_val), a Dataset or a DataLoader; given a sequence of {len(validation_data)}")
            else:
                val_loader = self._loader(validation_data, None, batch_size, False, "fit(validation_data)", True)

        history = History()
        self.history = history
        cbs = list(callbacks or [])
        self.callbacks = cbs
        try:
            steps: Optional[int] = len(train_loader)
        except TypeError:
            steps = None
        params = {"epochs": int(epochs), "steps": steps, "verbose": verbose}
        cblist = CallbackList(cbs + [history], self, params)
        metrics = self._metrics()
        val_metrics = self._metrics()
        use_bar = verbose == 1 and _isatty()
        self.stop_training = False
        logs: Dict[str, float] = {}
        cblist.on_train_begin(logs)
        self._apply_pending_callback_states()
        for epoch in range(int(initial_epoch), int(epochs)):
            if self.stop_training:
                break
            cblist.on_epoch_begin(epoch, {})
            self.model.train()
            for m in metrics:
                m.reset()
            total, count = 0.0, 0
            t0 = time.perf_counter()
            bar = None
            if use_bar:
                from tqdm.auto import tqdm

                bar = tqdm(total=steps, desc=f"Epoch {epoch + 1}/{epochs}", unit="batch", leave=True, file=sys.stdout, dynamic_ncols=True)
            last_post = 0.0
            for bi, batch in enumerate(train_loader):
                inputs, target = self._split(batch, "fit", True)
                n = len(target)
                blogs: Dict[str, Any] = {"batch": bi, "size": n}
                cblist.on_batch_begin(bi, blogs)
                loss, out = self.train_step(inputs, target)
                total += loss * n
                count += n
                blogs["loss"] = loss
                tgt = target.data if isinstance(target, Tensor) else target
                for m in metrics:
                    blogs[m.name] = m.update(out.data, tgt)
                cblist.on_batch_end(bi, blogs)
                if bar is not None:
                    bar.update(1)
                    now = time.perf_counter()
                    if now - last_post > 0.1:
                        last_post = now
                        run = OrderedDict(loss=total / count)
                        for m in metrics:
                            run[m.name] = m.result()
                        bar.set_postfix_str(_fmt(run), refresh=False)
                if self.stop_training:
                    break
            logs = OrderedDict(loss=total / count if count else float("nan"))
            for m in metrics:
                logs[m.name] = m.result()
            if val_loader is not None:
                for k, v in self._run_eval(val_loader, val_metrics, "fit(validation_data)").items():
                    logs["val_" + k] = v
            self.epoch = epoch + 1
            cblist.on_epoch_end(epoch, logs)
            dt = time.perf_counter() - t0
            if bar is not None:
                bar.set_postfix_str(_fmt(logs), refresh=False)
                bar.close()
            elif verbose:
                print(f"Epoch {epoch + 1}/{epochs} - {dt:.2f}s - {_fmt(logs)}", flush=True)
        cblist.on_train_end(logs)
        return history

    def evaluate(self, x: Any, y: Any = None, *, batch_size: int = 32, metrics: Any = None, verbose: int = 0) -> Dict[str, float]:
        """Loss and metrics over ``x``, ``y`` (or a Dataset / DataLoader) in eval mode
        without grad; returns ``{"loss": ..., <metric>: ...}`` (sample-weighted means).
        Each submodule's train/eval mode is restored afterwards."""
        loader = self._loader(x, y, batch_size, False, "evaluate", True)
        logs = self._run_eval(loader, self._metrics(metrics), "evaluate")
        if verbose:
            print(_fmt(logs))
        return dict(logs)

    def predict(self, x: Any, *, batch_size: int = 32) -> Union[np.ndarray, tuple]:
        """The model's outputs for ``x`` (N, ...) as a NumPy array (N, ...) — a tuple of
        arrays for a model returning a tuple — computed in batches in eval mode without
        grad; each submodule's mode is restored afterwards. ``x`` may be a Dataset /
        DataLoader: its batches' last element is taken as the target and ignored when a
        batch has more than one."""
        loader = self._loader(x, None, batch_size, False, "predict", False)
        outs: List[Any] = []
        with _ModeGuard(self.model):
            for batch in loader:
                inputs, _ = self._split(batch, "predict", False)
                outs.append(self.model(*inputs))
        if not outs:
            return np.zeros((0,), dtype=_param_dtype(self.model))
        if isinstance(outs[0], (tuple, list)):
            return tuple(np.concatenate([o[i].data for o in outs]) for i in range(len(outs[0])))
        return np.concatenate([o.data for o in outs])

    # ------------------------------------------------------------------ checkpoints

    def _stateful_callbacks(self) -> Dict[str, Any]:
        out = {}
        for i, cb in enumerate(self.callbacks):
            if hasattr(cb, "state_dict") and hasattr(cb, "load_state_dict"):
                out[f"{i}:{type(cb).__name__}"] = cb
        return out

    def checkpoint(self, epoch: Optional[int] = None) -> dict:
        """The training state as a dict for :func:`ferrograd.save`: model and optimizer
        state dicts, epochs completed, the library generator's state (so shuffling and
        dropout continue the same random stream) and stateful callbacks' states."""
        ck: Dict[str, Any] = {"model": self.model.state_dict(), "epoch": int(self.epoch if epoch is None else epoch)}
        if self.optimizer is not None:
            ck["optimizer"] = self.optimizer.state_dict()
        ck["rng"] = _library_generator().bit_generator.state
        ck["callbacks"] = {k: cb.state_dict() for k, cb in self._stateful_callbacks().items()}
        if self.history is not None:
            ck["history"] = {"history": self.history.history, "epoch": self.history.epoch}
        return ck

    def save_checkpoint(self, path: Any, epoch: Optional[int] = None) -> None:
        """Saves :meth:`checkpoint` to ``path`` atomically (safetensors, no pickle)."""
        from ..serialization import save

        save(self.checkpoint(epoch), path)

    def load_checkpoint(self, path_or_dict: Any, *, strict: bool = True) -> int:
        """Restores a checkpoint written by :meth:`save_checkpoint` (or its dict): model,
        optimizer, library generator state, and callback states (applied to the callbacks
        of the next ``fit`` at their positions). Returns the epoch to resume from: pass it
        as ``fit(..., initial_epoch=...)`` to continue bit for bit."""
        from ..serialization import load

        ck = load(path_or_dict) if not isinstance(path_or_dict, dict) else path_or_dict
        if not isinstance(ck, dict) or "model" not in ck or "epoch" not in ck:
            raise ValueError(
                f"load_checkpoint: expected a checkpoint dict with 'model' and 'epoch', given keys {sorted(ck) if isinstance(ck, dict) else type(ck).__name__}"
            )
        self.model.load_state_dict(ck["model"], strict=strict)
        if self.optimizer is not None and "optimizer" in ck:
            self.optimizer.load_state_dict(ck["optimizer"])
        if "rng" in ck:
            try:
                _library_generator().bit_generator.state = ck["rng"]
            except (TypeError, ValueError, KeyError) as e:
                raise ValueError(f"load_checkpoint: the saved generator state is invalid: {e}") from None
        self._pending_callback_states = dict(ck.get("callbacks") or {})
        self.epoch = int(ck["epoch"])
        return self.epoch

    def _apply_pending_callback_states(self) -> None:
        if not self._pending_callback_states:
            return
        current = self._stateful_callbacks()
        for k, st in self._pending_callback_states.items():
            if k in current:
                current[k].load_state_dict(st)
        self._pending_callback_states = {}


# ----------------------------------------------------------------------------- functions


def fit(model: Any, loss_fn: Any, optimizer: Any, x: Any, y: Any = None, *, metrics: Any = ("accuracy",), **kwargs: Any) -> History:
    """``Trainer(model, loss_fn, optimizer, metrics).fit(x, y, **kwargs)``: see
    :meth:`Trainer.fit` for the arguments (epochs, batch_size, validation_data,
    validation_split, callbacks, shuffle, verbose, initial_epoch)."""
    return Trainer(model, loss_fn, optimizer, metrics).fit(x, y, **kwargs)


def evaluate(model: Any, loss_fn: Any, x: Any, y: Any = None, *, batch_size: int = 32, metrics: Any = ("accuracy",)) -> Dict[str, float]:
    """Loss and metrics of ``model`` on ``x``, ``y``: see :meth:`Trainer.evaluate`."""
    return Trainer(model, loss_fn, None, metrics).evaluate(x, y, batch_size=batch_size)


def predict(model: Any, x: Any, *, batch_size: int = 32) -> Union[np.ndarray, tuple]:
    """``model``'s outputs for ``x`` as NumPy: see :meth:`Trainer.predict`."""
    return Trainer(model, None, None, ()).predict(x, batch_size=batch_size)


# ----------------------------------------------------------------------------- Keras-style mixin


def _resolve_loss(loss: Any) -> Any:
    if not isinstance(loss, str):
        return loss
    import ferrograd.nn as nn  # noqa: F401 (imported lazily: nn may be absent at import time)

    names = {
        "mse": "MSELoss", "mean_squared_error": "MSELoss", "mae": "L1Loss", "l1": "L1Loss",
        "mean_absolute_error": "L1Loss", "huber": "HuberLoss", "bce": "BCELoss",
        "binary_crossentropy": "BCELoss", "bce_with_logits": "BCEWithLogitsLoss",
        "cross_entropy": "CrossEntropyLoss", "crossentropy": "CrossEntropyLoss",
        "sparse_categorical_crossentropy": "CrossEntropyLoss", "nll": "NLLLoss",
    }
    if loss.lower() not in names:
        raise ValueError(f"compile: unknown loss {loss!r}; expected one of {sorted(names)} or a loss module/function")
    return getattr(nn, names[loss.lower()])()


def _resolve_optimizer(opt: Any, model: Any, lr: Optional[float]) -> Any:
    if not isinstance(opt, str):
        return opt
    import ferrograd.optim as optim

    names = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop", "adagrad": "Adagrad", "adadelta": "Adadelta", "nadam": "NAdam"}
    if opt.lower() not in names:
        raise ValueError(f"compile: unknown optimizer {opt!r}; expected one of {sorted(names)} or an optimizer")
    cls = getattr(optim, names[opt.lower()])
    if lr is not None:
        return cls(model.parameters(), lr=lr)
    if opt.lower() == "sgd":
        return cls(model.parameters(), lr=0.01)
    return cls(model.parameters())


class KerasMixin:
    """Adds Keras's ``compile`` / ``fit`` / ``evaluate`` / ``predict`` / ``summary`` to a
    Module class: ``class Net(KerasMixin, nn.Module): ...`` (or use
    :class:`ferrograd.train.Sequential`, an ``nn.Sequential`` with it)::

        model.compile(optimizer="adam", loss="cross_entropy", metrics=["accuracy"])
        history = model.fit(X, y, epochs=10, validation_split=0.2)

    ``optimizer`` is an optimizer instance or a name ('sgd', 'adam', ...; built over
    ``self.parameters()`` with ``lr`` if given); ``loss`` a loss module/function or a name
    ('mse', 'mae', 'bce', 'bce_with_logits', 'cross_entropy', ...). ``self.trainer`` is the
    :class:`Trainer` behind it.
    """

    def compile(self, optimizer: Any = "adam", loss: Any = None, metrics: Any = ("accuracy",), *, lr: Optional[float] = None) -> "Trainer":
        if loss is None:
            raise ValueError("compile: a loss is required")
        trainer = Trainer(self, _resolve_loss(loss), _resolve_optimizer(optimizer, self, lr), metrics)
        object.__setattr__(self, "_keras_trainer", trainer)
        return trainer

    @property
    def trainer(self) -> "Trainer":
        t = self.__dict__.get("_keras_trainer")
        if t is None:
            raise RuntimeError(f"{type(self).__name__}: call compile(optimizer, loss, metrics) before fit / evaluate")
        return t

    def fit(self, x: Any, y: Any = None, **kwargs: Any) -> History:
        """:meth:`Trainer.fit` with the compiled loss, optimizer and metrics."""
        return self.trainer.fit(x, y, **kwargs)

    def evaluate(self, x: Any, y: Any = None, **kwargs: Any) -> Dict[str, float]:
        """:meth:`Trainer.evaluate` with the compiled loss and metrics."""
        return self.trainer.evaluate(x, y, **kwargs)

    def predict(self, x: Any, *, batch_size: int = 32) -> Union[np.ndarray, tuple]:
        """:meth:`Trainer.predict` (no compile needed)."""
        t = self.__dict__.get("_keras_trainer") or Trainer(self, None, None, ())
        return t.predict(x, batch_size=batch_size)

    def summary(self, input_shape: Any, **kwargs: Any) -> str:
        """:func:`ferrograd.train.summary` of this model."""
        from .summary import summary

        return summary(self, input_shape, **kwargs)
