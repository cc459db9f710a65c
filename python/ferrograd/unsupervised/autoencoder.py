"""Autoencoders: :class:`AutoEncoder` over any encoder / decoder modules, and its
:class:`StackedAutoEncoder` (from layer sizes, with greedy layer-wise pretraining),
:class:`DenoisingAutoEncoder` (Gaussian or masking noise) and :class:`SparseAutoEncoder`
(KL sparsity penalty) variants.

Training is Keras-like (``fit(x, epochs, batch_size, validation_data / validation_split,
callbacks, verbose)``) and runs through :class:`ferrograd.train.Trainer`: the model's
forward pass is ``decoder(encoder(corrupt(x)))`` (corruption only in training mode) and the
loss ``reconstruction(x_hat, x) + penalty(code)``:

- reconstruction: ``"mse"`` (mean over all elements, default), ``"bce"`` (binary cross
  entropy; the decoder must output probabilities) or any ``fn(x_hat, x) -> scalar Tensor``;
- denoising: Gaussian noise ``x + N(0, noise_level^2)`` or masking noise (each input
  element set to 0 with probability ``noise_level``, Vincent et al. 2008), drawn from the
  library generator (``ferrograd.manual_seed``); the target stays the clean ``x``;
- sparsity: ``beta * sum_j KL(rho || rho_hat_j)`` with ``rho_hat_j`` the batch mean of code
  unit j (codes must lie in [0, 1], e.g. an encoder ending in Sigmoid), ``KL(p || q) = p
  log(p / q) + (1 - p) log((1 - p) / (1 - q))``; ``rho_hat`` is clipped to [1e-6, 1 - 1e-6].

``encode``, ``decode`` and ``reconstruct`` take and return NumPy arrays (batched, eval mode,
no grad). ``save`` / ``load`` go through the state dict and safetensors.
"""

from __future__ import annotations

import math
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import numpy as np

from .. import nn, optim
from .._random import generator as _library_generator
from ..autograd import no_grad
from ..nn import functional as F
from ..tensor import Tensor

__all__ = ["AutoEncoder", "StackedAutoEncoder", "DenoisingAutoEncoder", "SparseAutoEncoder", "kl_sparsity_penalty"]

_EPS = 1e-6


def kl_sparsity_penalty(code: Tensor, rho: float, beta: float) -> Tensor:
    """``beta * sum_j KL(rho || rho_hat_j)``, ``rho_hat = mean(code, 0)`` over the batch
    (code (B, ...) is flattened to (B, units)), clipped to [1e-6, 1 - 1e-6]. A scalar
    Tensor, differentiable in ``code``."""
    flat = code.reshape(code.shape[0], -1)
    rho_hat = flat.mean(0).clip(_EPS, 1.0 - _EPS)
    kl = (rho * math.log(rho)) - rho_hat.log() * rho + ((1 - rho) * math.log(1 - rho)) - (1.0 - rho_hat).log() * (1 - rho)
    return kl.sum() * beta


def _corrupt(x: Tensor, noise: str, level: float) -> Tensor:
    gen = _library_generator()
    if noise == "gaussian":
        return Tensor._wrap((x.data + level * gen.standard_normal(x.shape)).astype(x.data.dtype, copy=False))
    keep = gen.random(x.shape) >= level
    return Tensor._wrap(np.where(keep, x.data, 0).astype(x.data.dtype, copy=False))


def _param_dtype(m: nn.Module) -> np.dtype:
    for p in m.parameters():
        return p.data.dtype
    return np.dtype(np.float32)


class _EvalNoGrad:
    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __enter__(self) -> None:
        self.saved = [(m, m.training) for m in self.model.modules()]
        self.model.eval()
        self.ng = no_grad()
        self.ng.__enter__()

    def __exit__(self, *exc: Any) -> bool:
        self.ng.__exit__(*exc)
        for m, mode in self.saved:
            m.__dict__["training"] = mode
        return False


class AutoEncoder(nn.Module):
    """``decoder(encoder(x))`` trained to reconstruct its input.

    Args:
        encoder: module mapping x (N, *input_shape) to codes (N, *code_shape).
        decoder: module mapping codes back to (N, *input_shape).
        loss: ``"mse"`` (default), ``"bce"`` or a function ``fn(x_hat, x) -> scalar Tensor``.
        input_shape: the shape of one input (without N), checked by every method; taken
            from the data at the first ``fit`` when not given.

    Attributes: ``input_shape_`` and ``code_shape_`` (after fit; :meth:`decode` checks
    codes against the latter), ``optimizer_`` (the optimizer of the last
    fit, reused by the next one so training continues), ``history_``.
    """

    _noise: Optional[str] = None
    _noise_level: float = 0.0
    _rho: Optional[float] = None
    _beta: float = 0.0

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        *,
        loss: Union[str, Callable[[Tensor, Tensor], Tensor]] = "mse",
        input_shape: Optional[Sequence[int]] = None,
    ) -> None:
        super().__init__()
        for name, m in (("encoder", encoder), ("decoder", decoder)):
            if not isinstance(m, nn.Module):
                raise TypeError(f"{type(self).__name__}: {name} must be an nn.Module, given {type(m).__name__}")
        self.encoder = encoder
        self.decoder = decoder
        if isinstance(loss, str):
            if loss not in ("mse", "bce"):
                raise ValueError(f"{type(self).__name__}: loss must be 'mse', 'bce' or a function, given {loss!r}")
        elif not callable(loss):
            raise TypeError(f"{type(self).__name__}: loss must be 'mse', 'bce' or a function, given {type(loss).__name__}")
        self.loss_name = loss
        self.input_shape_: Optional[Tuple[int, ...]] = None if input_shape is None else tuple(int(s) for s in input_shape)
        self.optimizer_: Optional[optim.Optimizer] = None
        self.history_: Any = None
        self.code_shape_: Optional[Tuple[int, ...]] = None
        self._code: Optional[Tensor] = None

    # ------------------------------------------------------------------ model

    def forward(self, x: Any) -> Tensor:
        """The reconstruction (N, *input_shape); in training mode the input is corrupted
        first (denoising variants) and the code kept for the sparsity penalty."""
        if not isinstance(x, Tensor):
            x = Tensor(np.asarray(x, dtype=_param_dtype(self)))
        if self.training and self._noise is not None and self._noise_level > 0:
            x = _corrupt(x, self._noise, self._noise_level)
        code = self.encoder(x)
        self._code = code
        return self.decoder(code)

    def _reconstruction_loss(self, out: Tensor, target: Tensor) -> Tensor:
        if self.loss_name == "mse":
            return F.mse_loss(out, target)
        if self.loss_name == "bce":
            return F.binary_cross_entropy(out, target)
        return self.loss_name(out, target)  # type: ignore[operator]

    def _penalty(self, code: Tensor) -> Optional[Tensor]:
        if self._rho is None or self._beta == 0:
            return None
        cd = code.data
        lo, hi = float(cd.min()), float(cd.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"{type(self).__name__}: the KL sparsity penalty needs codes in [0, 1] (end the encoder with a "
                f"Sigmoid); given codes in [{lo:.4g}, {hi:.4g}]"
            )
        return kl_sparsity_penalty(code, self._rho, self._beta)

    def _objective(self, out: Tensor, target: Tensor) -> Tensor:
        loss = self._reconstruction_loss(out, target)
        pen = self._penalty(self._code) if self._code is not None else None
        return loss if pen is None else loss + pen

    def loss(self, x: Any) -> Tensor:
        """The training objective on the batch ``x`` (N, *input_shape) as a scalar Tensor
        with grad (reconstruction of the clean x from its corrupted version in training
        mode, plus the sparsity penalty)."""
        xt = self._as_input(x, "loss")
        return self._objective(self.forward(xt), xt)

    # ------------------------------------------------------------------ input checks

    def _as_input(self, x: Any, what: str, shape: Optional[Tuple[int, ...]] = None, which: str = "input") -> Tensor:
        name = f"{type(self).__name__}.{what}"
        arr = x.data if isinstance(x, Tensor) else np.asarray(x)
        if arr.dtype.kind not in "fiub":
            raise ValueError(f"{name}: expected numeric data, given dtype {arr.dtype}")
        if arr.ndim < 1 or arr.shape[0] == 0:
            raise ValueError(f"{name}: expected a non-empty batch (N, ...), given shape {arr.shape}")
        want = self.input_shape_ if shape is None and which == "input" else shape
        if want is not None and tuple(arr.shape[1:]) != tuple(want):
            raise ValueError(
                f"{name}: expected {which} of shape (N, {', '.join(map(str, want))}), given shape {arr.shape}"
            )
        arr = arr.astype(_param_dtype(self), copy=False)
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name}: {which} must be finite, given {int((~np.isfinite(arr)).sum())} NaN or inf value(s)")
        return Tensor._wrap(np.ascontiguousarray(arr))

    # ------------------------------------------------------------------ training

    def fit(
        self,
        x: Any,
        epochs: int = 10,
        batch_size: int = 32,
        *,
        validation_data: Any = None,
        validation_split: float = 0.0,
        shuffle: bool = True,
        verbose: int = 1,
        callbacks: Optional[Sequence[Any]] = None,
        optimizer: Optional[optim.Optimizer] = None,
        lr: float = 1e-3,
    ) -> Any:
        """Trains to reconstruct ``x`` (N, *input_shape); returns the
        :class:`~ferrograd.train.History` (``loss``, ``val_loss``).

        ``validation_data``: x_val (reconstructed from itself, clean) or (x_val, x_val);
        ``validation_split``: the last fraction of ``x``. ``optimizer``: any ferrograd
        optimizer over this model's parameters (default: Adam with ``lr``, kept in
        ``optimizer_`` and reused by the next fit). ``verbose``, ``callbacks``, ``shuffle``
        as in :meth:`ferrograd.train.Trainer.fit`.
        """
        from ..train import Trainer

        xt = self._as_input(x, "fit")
        if self.input_shape_ is None:
            self.input_shape_ = tuple(xt.shape[1:])
        if self.code_shape_ is None:
            with _EvalNoGrad(self):
                self.code_shape_ = tuple(self.encoder(Tensor._wrap(xt.data[:1])).shape[1:])
        val = None
        if validation_data is not None:
            vx = validation_data[0] if isinstance(validation_data, (tuple, list)) else validation_data
            v = self._as_input(vx, "fit(validation_data)").data
            val = (v, v)
        if optimizer is not None:
            self.optimizer_ = optimizer
        elif self.optimizer_ is None:
            self.optimizer_ = optim.Adam(self.parameters(), lr=lr)
        trainer = Trainer(self, self._objective, self.optimizer_, metrics=())
        X = xt.data
        self.history_ = trainer.fit(
            X, X, epochs=epochs, batch_size=batch_size, validation_data=val, validation_split=validation_split,
            shuffle=shuffle, verbose=verbose, callbacks=callbacks,
        )
        return self.history_

    # ------------------------------------------------------------------ use

    def _batched(self, fn: Callable[[Tensor], Tensor], t: Tensor, batch_size: int) -> np.ndarray:
        out = []
        with _EvalNoGrad(self):
            for start in range(0, t.shape[0], batch_size):
                out.append(fn(Tensor._wrap(t.data[start : start + batch_size])).data)
        return np.concatenate(out, axis=0)

    def encode(self, x: Any, batch_size: int = 256) -> np.ndarray:
        """Codes (N, *code_shape) of ``x`` (N, *input_shape)."""
        t = self._as_input(x, "encode")
        return self._batched(self.encoder, t, batch_size)

    def decode(self, z: Any, batch_size: int = 256) -> np.ndarray:
        """Reconstructions (N, *input_shape) of codes ``z`` (N, *code_shape)."""
        t = self._as_input(z, "decode", self.code_shape_, which="codes")
        return self._batched(self.decoder, t, batch_size)

    def reconstruct(self, x: Any, batch_size: int = 256) -> np.ndarray:
        """``decode(encode(x))`` (N, *input_shape), without corruption."""
        t = self._as_input(x, "reconstruct")
        return self._batched(lambda b: self.decoder(self.encoder(b)), t, batch_size)

    def reconstruction_error(self, x: Any, batch_size: int = 256) -> np.ndarray:
        """Per-sample mean squared reconstruction error (N,) (e.g. an anomaly score)."""
        t = self._as_input(x, "reconstruction_error")
        r = self.reconstruct(t.data, batch_size)
        return ((r - t.data) ** 2).reshape(t.shape[0], -1).mean(axis=1)

    # ------------------------------------------------------------------ files

    def save(self, path: Any) -> None:
        """Writes the state dict (``model.encoder.*``, ``model.decoder.*``) and the input
        and code shapes to ``path`` (safetensors, atomic; no pickle)."""
        from ..serialization import save

        shapes = {k: None if v is None else list(v) for k, v in (("input_shape", self.input_shape_), ("code_shape", self.code_shape_))}
        save({"model": self.state_dict(), **shapes}, path)

    def load(self, path: Any) -> "AutoEncoder":
        """Loads weights written by :meth:`save` into this (same-architecture) model;
        returns self."""
        from ..serialization import load

        ck = load(path)
        if not isinstance(ck, dict) or "model" not in ck:
            raise ValueError(f"{type(self).__name__}.load: {path} is not an autoencoder file (no 'model' entry)")
        self.load_state_dict(ck["model"])
        for key in ("input_shape", "code_shape"):
            shape = ck.get(key)
            if shape is not None or key == "input_shape":
                setattr(self, key + "_", None if shape is None else tuple(int(s) for s in shape))
        return self


class DenoisingAutoEncoder(AutoEncoder):
    """An :class:`AutoEncoder` trained to reconstruct clean inputs from corrupted ones.

    Args (besides the AutoEncoder's): ``noise="gaussian"`` (x + N(0, noise_level^2)) or
    ``"masking"`` (each element zeroed with probability noise_level, in [0, 1));
    ``noise_level`` (default 0.1 for Gaussian; e.g. 0.25 for masking). Noise is drawn from
    the library generator afresh for every batch, only in training mode."""

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        *,
        noise: str = "gaussian",
        noise_level: float = 0.1,
        loss: Union[str, Callable[[Tensor, Tensor], Tensor]] = "mse",
        input_shape: Optional[Sequence[int]] = None,
    ) -> None:
        super().__init__(encoder, decoder, loss=loss, input_shape=input_shape)
        self._noise, self._noise_level = _check_noise(type(self).__name__, noise, noise_level)


class SparseAutoEncoder(AutoEncoder):
    """An :class:`AutoEncoder` with the KL sparsity penalty ``beta * sum_j KL(rho ||
    rho_hat_j)`` on the mean activation of each code unit (Ng's sparse autoencoder);
    codes must lie in [0, 1] (end the encoder with Sigmoid). ``rho`` in (0, 1) (default
    0.05), ``beta`` >= 0 (default 3.0)."""

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        *,
        rho: float = 0.05,
        beta: float = 3.0,
        loss: Union[str, Callable[[Tensor, Tensor], Tensor]] = "mse",
        input_shape: Optional[Sequence[int]] = None,
    ) -> None:
        super().__init__(encoder, decoder, loss=loss, input_shape=input_shape)
        self._rho, self._beta = _check_sparsity(type(self).__name__, rho, beta)


def _check_noise(who: str, noise: str, level: float) -> Tuple[str, float]:
    if noise not in ("gaussian", "masking"):
        raise ValueError(f"{who}: noise must be 'gaussian' or 'masking', given {noise!r}")
    ok = isinstance(level, (int, float, np.integer, np.floating)) and not isinstance(level, bool) and math.isfinite(level) and level >= 0
    if not ok or (noise == "masking" and level >= 1):
        rng = "[0, 1)" if noise == "masking" else ">= 0"
        raise ValueError(f"{who}: noise_level for {noise} noise must be a finite number {rng}, given {level!r}")
    return noise, float(level)


def _check_sparsity(who: str, rho: float, beta: float) -> Tuple[float, float]:
    if isinstance(rho, bool) or not isinstance(rho, (int, float, np.integer, np.floating)) or not 0.0 < rho < 1.0:
        raise ValueError(f"{who}: rho (target mean activation) must be in (0, 1), given {rho!r}")
    if isinstance(beta, bool) or not isinstance(beta, (int, float, np.integer, np.floating)) or not (math.isfinite(beta) and beta >= 0):
        raise ValueError(f"{who}: beta (sparsity weight) must be a finite number >= 0, given {beta!r}")
    return float(rho), float(beta)


_ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "leaky_relu": nn.LeakyReLU, "elu": nn.ELU, "gelu": nn.GELU}


def _act(who: str, name: Optional[str], what: str) -> List[nn.Module]:
    if name is None or name == "linear":
        return []
    if name not in _ACTIVATIONS:
        raise ValueError(f"{who}: {what} must be one of {sorted(_ACTIVATIONS) + ['linear', None]}, given {name!r}")
    return [_ACTIVATIONS[name]()]


class StackedAutoEncoder(AutoEncoder):
    """A deep fully connected autoencoder built from layer sizes.

    ``layer_sizes = [n_in, h1, ..., code]`` (at least two sizes, each >= 1): the encoder is
    ``Linear(n_in, h1), act, ..., Linear(h_{k-1}, code), code_act`` and the decoder its
    mirror ``Linear(code, h_{k-1}), act, ..., Linear(h1, n_in), output_act``.

    Args:
        layer_sizes: the sizes above.
        activation: hidden activation ('relu' default, 'sigmoid', 'tanh', 'leaky_relu',
            'elu', 'gelu').
        code_activation: activation of the code layer (default: ``activation``; 'linear'
            for none; 'sigmoid' for a sparse code).
        output_activation: of the reconstruction (default None = linear; 'sigmoid' for data
            in [0, 1]).
        noise, noise_level: optional denoising (as :class:`DenoisingAutoEncoder`).
        rho, beta: optional KL sparsity on the code (as :class:`SparseAutoEncoder`).
        loss, dtype: as :class:`AutoEncoder`; float32 or float64 weights.

    :meth:`pretrain` runs greedy layer-wise pretraining (Bengio et al. 2007): each
    encoder layer and its mirrored decoder layer are trained as a shallow autoencoder on
    the codes of the layers below, before :meth:`fit` fine-tunes the whole stack.
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        *,
        activation: str = "relu",
        code_activation: Optional[str] = "same",
        output_activation: Optional[str] = None,
        noise: Optional[str] = None,
        noise_level: float = 0.1,
        rho: Optional[float] = None,
        beta: float = 3.0,
        loss: Union[str, Callable[[Tensor, Tensor], Tensor]] = "mse",
        dtype: Any = None,
    ) -> None:
        who = "StackedAutoEncoder"
        sizes = list(layer_sizes) if not isinstance(layer_sizes, (str, bytes)) else []
        if len(sizes) < 2:
            raise ValueError(f"{who}: layer_sizes needs at least 2 sizes [n_in, ..., code], given {layer_sizes!r}")
        for j, s in enumerate(sizes):
            if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1:
                raise ValueError(f"{who}: every layer size must be an int >= 1; layer_sizes[{j}] is {s!r}")
        sizes = [int(s) for s in sizes]
        code_act = activation if code_activation == "same" else code_activation
        enc: List[nn.Module] = []
        dec: List[nn.Module] = []
        n = len(sizes) - 1
        self_layers: List[Tuple[nn.Linear, List[nn.Module], nn.Linear, List[nn.Module]]] = []
        for j in range(n):
            lin_e = nn.Linear(sizes[j], sizes[j + 1], dtype=dtype)
            act_e = _act(who, code_act if j == n - 1 else activation, "code_activation" if j == n - 1 else "activation")
            lin_d = nn.Linear(sizes[j + 1], sizes[j], dtype=dtype)
            act_d = _act(who, output_activation if j == 0 else activation, "output_activation" if j == 0 else "activation")
            self_layers.append((lin_e, act_e, lin_d, act_d))
        for lin_e, act_e, _, _ in self_layers:
            enc += [lin_e] + act_e
        for _, _, lin_d, act_d in reversed(self_layers):
            dec += [lin_d] + act_d
        super().__init__(nn.Sequential(*enc), nn.Sequential(*dec), loss=loss, input_shape=(sizes[0],))
        self.layer_sizes = sizes
        self.code_shape_ = (sizes[-1],)
        self._pairs = self_layers
        if noise is not None:
            self._noise, self._noise_level = _check_noise(who, noise, noise_level)
        if rho is not None:
            self._rho, self._beta = _check_sparsity(who, rho, beta)

    def pretrain(self, x: Any, epochs: int = 10, batch_size: int = 32, *, lr: float = 1e-3, verbose: int = 0) -> List[Any]:
        """Greedy layer-wise pretraining on ``x`` (N, n_in): for each depth, a shallow
        autoencoder made of this model's encoder layer and mirrored decoder layer (the
        same Parameter objects) is fitted for ``epochs`` on the codes of the layers
        below (with this model's noise; the sparsity penalty applies to the last layer's
        code). Returns each layer's History."""
        h = self._as_input(x, "pretrain").data
        histories = []
        for j, (lin_e, act_e, lin_d, act_d) in enumerate(self._pairs):
            last = j == len(self._pairs) - 1
            shallow = AutoEncoder(nn.Sequential(lin_e, *act_e), nn.Sequential(lin_d, *act_d), loss=self.loss_name if j == 0 else "mse")
            shallow._noise, shallow._noise_level = self._noise, self._noise_level
            if last:
                shallow._rho, shallow._beta = self._rho, self._beta
            histories.append(shallow.fit(h, epochs=epochs, batch_size=batch_size, lr=lr, verbose=verbose))
            h = shallow.encode(h)
        return histories

    def extra_repr(self) -> str:
        return f"layer_sizes={self.layer_sizes}"
