"""``GAN``: a generative adversarial network trainer over any generator and discriminator
modules (Goodfellow et al. 2014; the DCGAN training recipe of Radford et al. 2016).

Each training step on a batch of real samples ``x`` of size B:

1. **discriminator step** (``d_steps`` times per generator step, each on its own real
   batch): z ~ p(z), fake = G(z) computed without grad (the generator's graph is not
   built); ``loss_D = BCE(D(x), 1 - label_smoothing) + BCE(D(fake), 0)``; only the
   discriminator's optimizer steps.
2. **generator step**: z ~ p(z) (B draws); the non-saturating loss
   ``loss_G = BCE(D(G(z)), 1) = -mean log sigmoid(D(G(z)))``; the discriminator's
   parameters are frozen (``requires_grad`` off) for this step, so no gradient reaches them,
   and only the generator's optimizer steps.

``D`` returns logits (no final sigmoid), shape (B,) or (B, 1); BCE is computed from the
logits (``binary_cross_entropy_with_logits``). ``label_smoothing`` is one-sided (Salimans
et al. 2016): only the real targets move (to 1 - label_smoothing). z is standard normal
(or uniform on [-1, 1]) of shape (B, *latent_dim), drawn from the library generator
(``ferrograd.manual_seed``).

Both networks stay in training mode during :meth:`GAN.fit`: the generator's forward pass in
the discriminator step uses (and, for BatchNorm, updates the running averages of) batch
statistics, as in DCGAN's reference training loop; no step changes the other network's
parameters.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .. import nn, optim
from .._random import generator as _library_generator
from ..autograd import no_grad
from ..data import DataLoader, TensorDataset
from ..nn import functional as F
from ..tensor import Tensor
from ..train.callbacks import History

__all__ = ["GAN"]


def _bce_logits(logits: Tensor, value: float, who: str) -> Tensor:
    n = logits.shape[0] if logits.ndim else 0
    if logits.ndim == 0 or logits.data.size != n:
        raise ValueError(f"GAN: the discriminator must return one logit per sample, shape (B,) or (B, 1); {who} gave shape {logits.shape}")
    flat = logits.reshape(n)
    target = np.full((n,), value, dtype=flat.data.dtype)
    return F.binary_cross_entropy_with_logits(flat, target)


def _param_dtype(m: nn.Module) -> np.dtype:
    for p in m.parameters():
        return p.data.dtype
    return np.dtype(np.float32)


class _Modes:
    """Puts a module in eval mode without grad and restores every submodule's mode."""

    def __init__(self, *mods: nn.Module) -> None:
        self.mods = mods

    def __enter__(self) -> "_Modes":
        self.saved = [(m, m.training) for mod in self.mods for m in mod.modules()]
        for mod in self.mods:
            mod.eval()
        self.ng = no_grad()
        self.ng.__enter__()
        return self

    def __exit__(self, *exc: Any) -> bool:
        self.ng.__exit__(*exc)
        for m, mode in self.saved:
            m.__dict__["training"] = mode
        return False


class GAN(nn.Module):
    """A generator and a discriminator trained against each other.

    Args:
        generator: module mapping z (B, *latent_dim) to samples (B, *sample_shape).
        discriminator: module mapping samples (B, *sample_shape) to logits (B,) or (B, 1).
        latent_dim: the size of z (an int, or a shape such as (100, 1, 1) for a
            convolutional generator).
        g_optimizer, d_optimizer: optimizers over the generator's / discriminator's
            parameters (default: Adam with ``lr`` and ``betas`` for each).
        lr, betas: the default optimizers' settings (2e-4, (0.5, 0.999): DCGAN's).
        label_smoothing: one-sided label smoothing of the real targets, in [0, 1)
            (default 0; 0.1 is common).
        d_steps: discriminator steps per generator step (default 1).
        latent_distribution: ``"normal"`` (default) or ``"uniform"`` (on [-1, 1]).
        pack: PacGAN packing (Lin et al. 2018; default 1 = none): the discriminator judges
            ``pack`` samples at once, concatenated along dimension 1 -- (B, d) becomes
            (B / pack, pack * d), (B, C, H, W) becomes (B / pack, pack * C, H, W) -- and gives
            one logit per pack; it must be built for that input. Packs are all real or all
            generated, which penalises mode collapse. Batches are trimmed to a multiple of
            ``pack``.

    ``history`` (after :meth:`fit`): a :class:`~ferrograd.train.History` with per-epoch
    means of ``d_loss``, ``g_loss``, ``d_real`` (mean D(x) as a probability) and
    ``d_fake`` (mean D(G(z)) in the discriminator step); ``step_history`` holds every
    step's ``d_loss`` and ``g_loss``. The state dict holds ``generator.*`` and
    ``discriminator.*``; :meth:`save` / :meth:`load` add the optimizers' states
    (safetensors).
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        latent_dim: Union[int, Sequence[int]],
        *,
        g_optimizer: Optional[optim.Optimizer] = None,
        d_optimizer: Optional[optim.Optimizer] = None,
        lr: float = 2e-4,
        betas: Tuple[float, float] = (0.5, 0.999),
        label_smoothing: float = 0.0,
        d_steps: int = 1,
        latent_distribution: str = "normal",
        pack: int = 1,
    ) -> None:
        super().__init__()
        for name, m in (("generator", generator), ("discriminator", discriminator)):
            if not isinstance(m, nn.Module):
                raise TypeError(f"GAN: {name} must be an nn.Module, given {type(m).__name__}")
        if generator is discriminator:
            raise ValueError("GAN: generator and discriminator must be different modules")
        self.generator = generator
        self.discriminator = discriminator
        shape = (latent_dim,) if isinstance(latent_dim, (int, np.integer)) and not isinstance(latent_dim, bool) else tuple(latent_dim)
        if not shape or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in shape):
            raise ValueError(f"GAN: latent_dim must be an int >= 1 or a shape of ints >= 1, given {latent_dim!r}")
        self.latent_shape = tuple(int(s) for s in shape)
        if not (isinstance(label_smoothing, (int, float)) and 0.0 <= label_smoothing < 1.0):
            raise ValueError(f"GAN: label_smoothing must be in [0, 1), given {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)
        if isinstance(d_steps, bool) or not isinstance(d_steps, (int, np.integer)) or d_steps < 1:
            raise ValueError(f"GAN: d_steps must be an int >= 1, given {d_steps!r}")
        self.d_steps = int(d_steps)
        if latent_distribution not in ("normal", "uniform"):
            raise ValueError(f"GAN: latent_distribution must be 'normal' or 'uniform', given {latent_distribution!r}")
        self.latent_distribution = latent_distribution
        if isinstance(pack, bool) or not isinstance(pack, (int, np.integer)) or pack < 1:
            raise ValueError(f"GAN: pack must be an int >= 1, given {pack!r}")
        self.pack = int(pack)
        g_ids = {id(p) for p in generator.parameters()}
        d_ids = {id(p) for p in discriminator.parameters()}
        if not g_ids or not d_ids:
            raise ValueError(f"GAN: both networks need parameters; generator has {len(g_ids)}, discriminator {len(d_ids)}")
        if g_ids & d_ids:
            raise ValueError(f"GAN: generator and discriminator share {len(g_ids & d_ids)} parameter(s); they must be separate")
        self.g_optimizer = g_optimizer if g_optimizer is not None else optim.Adam(generator.parameters(), lr=lr, betas=betas)
        self.d_optimizer = d_optimizer if d_optimizer is not None else optim.Adam(discriminator.parameters(), lr=lr, betas=betas)
        for name, opt, own, other in (("g_optimizer", self.g_optimizer, g_ids, d_ids), ("d_optimizer", self.d_optimizer, d_ids, g_ids)):
            ids = {id(p) for grp in getattr(opt, "param_groups", []) for p in grp["params"]}
            if not hasattr(opt, "step") or not hasattr(opt, "zero_grad"):
                raise TypeError(f"GAN: {name} must be an optimizer, given {type(opt).__name__}")
            if ids & other or not ids <= own:
                which = "generator" if name == "g_optimizer" else "discriminator"
                raise ValueError(f"GAN: {name} must hold only the {which}'s parameters; it holds {len(ids - own)} other parameter(s)")
        self.history: Optional[History] = None
        self.step_history: Dict[str, List[float]] = {"d_loss": [], "g_loss": []}
        self._sample_shape: Optional[tuple] = None

    # ------------------------------------------------------------------ pieces

    def latent(self, n: int) -> Tensor:
        """z: (n, *latent_dim) from the library generator, in the generator's dtype."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"GAN: the number of latent vectors must be an int >= 0, given {n!r}")
        gen = _library_generator()
        shape = (int(n),) + self.latent_shape
        z = gen.standard_normal(shape) if self.latent_distribution == "normal" else gen.uniform(-1.0, 1.0, shape)
        return Tensor._wrap(z.astype(_param_dtype(self.generator)))

    def forward(self, z: Any) -> Tensor:
        """G(z)."""
        return self.generator(z)

    def sample_shape(self) -> tuple:
        """The shape of one generated sample (found by running the generator once)."""
        if self._sample_shape is None:
            with _Modes(self.generator):
                self._sample_shape = tuple(self.generator(self.latent(2)).shape[1:])
        return self._sample_shape

    def _pack(self, x: Tensor) -> Tensor:
        if self.pack == 1:
            return x
        if x.ndim < 2:
            raise ValueError(f"GAN: packing needs samples with a dimension 1 to concatenate along, given shape {x.shape}")
        return x.reshape(x.shape[0] // self.pack, self.pack * x.shape[1], *x.shape[2:])

    def discriminator_step(self, real: Any) -> Tuple[float, float, float]:
        """One discriminator update on the real batch ``real`` (B, *sample_shape) against B
        fresh generated samples; returns (loss, mean D(real), mean D(fake)) with D's
        outputs as probabilities. Only the discriminator's parameters change."""
        x = real if isinstance(real, Tensor) else Tensor(np.asarray(real, dtype=_param_dtype(self.discriminator)))
        n = x.shape[0] - x.shape[0] % self.pack
        if n < 1:
            raise ValueError(f"GAN: a batch needs at least pack={self.pack} samples, given {x.shape[0]}")
        if n != x.shape[0]:
            x = x[:n]
        with no_grad():
            fake = self.generator(self.latent(n))
        self.d_optimizer.zero_grad()
        lr_ = self.discriminator(self._pack(x))
        lf = self.discriminator(self._pack(fake))
        loss = _bce_logits(lr_, 1.0 - self.label_smoothing, "D(real)") + _bce_logits(lf, 0.0, "D(fake)")
        loss.backward()
        self.d_optimizer.step()
        return float(loss.data), float(F._sigmoid_np(lr_.data).mean()), float(F._sigmoid_np(lf.data).mean())

    def generator_step(self, n: int) -> float:
        """One generator update on ``n`` fresh latent vectors with the non-saturating loss
        -mean log D(G(z)); the discriminator is frozen meanwhile (its parameters get no
        gradient and keep their ``requires_grad`` flags afterwards). Returns the loss."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"GAN.generator_step: n must be an int >= 1, given {n!r}")
        dparams = list(self.discriminator.parameters())
        flags = [p.requires_grad for p in dparams]
        self.g_optimizer.zero_grad()
        try:
            for p in dparams:
                p.requires_grad = False
            n = max(n - n % self.pack, self.pack)
            logits = self.discriminator(self._pack(self.generator(self.latent(n))))
            loss = _bce_logits(logits, 1.0, "D(G(z))")
            loss.backward()
        finally:
            for p, f in zip(dparams, flags):
                p.requires_grad = f
        self.g_optimizer.step()
        return float(loss.data)

    # ------------------------------------------------------------------ training

    def _data(self, data: Any) -> np.ndarray:
        arr = data.data if isinstance(data, Tensor) else np.asarray(data)
        if arr.dtype.kind not in "fiub":
            raise ValueError(f"GAN.fit: expected numeric data, given dtype {arr.dtype}")
        if arr.ndim < 1 or arr.shape[0] == 0:
            raise ValueError(f"GAN.fit: expected a non-empty dataset (N, *sample_shape), given shape {arr.shape}")
        want = self.sample_shape()
        if tuple(arr.shape[1:]) != want:
            raise ValueError(
                f"GAN.fit: the generator makes samples of shape {want}; data must be (N, {', '.join(map(str, want))}), "
                f"given shape {arr.shape}"
            )
        arr = arr.astype(_param_dtype(self.discriminator), copy=False)
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"GAN.fit: data must be finite, given {int((~np.isfinite(arr)).sum())} NaN or inf value(s)")
        return arr

    def fit(
        self,
        data: Any,
        epochs: int = 1,
        batch_size: int = 64,
        *,
        shuffle: bool = True,
        verbose: int = 1,
    ) -> History:
        """Trains on ``data`` (N, *sample_shape) for ``epochs`` passes in batches of
        ``batch_size`` (the last, smaller batch is dropped when N > batch_size), each
        batch one discriminator step and every ``d_steps``-th batch also a generator step.
        ``verbose``: 1 a tqdm progress bar over all steps showing the running d_loss and
        g_loss, 2 one line per epoch, 0 silent. Returns (and keeps as ``history``) the
        per-epoch means."""
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"GAN.fit: epochs must be an int >= 0, given {epochs!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"GAN.fit: batch_size must be an int >= 1, given {batch_size!r}")
        X = self._data(data)
        loader = DataLoader(TensorDataset(X), batch_size=int(batch_size), shuffle=shuffle, drop_last=X.shape[0] > batch_size)
        history = History()
        self.history = history
        self.generator.train()
        self.discriminator.train()
        bar = None
        if verbose == 1:
            from tqdm.auto import tqdm

            bar = tqdm(total=int(epochs) * len(loader), desc="GAN", unit="step", file=sys.stderr, dynamic_ncols=True)
        last = 0.0
        try:
            for epoch in range(int(epochs)):
                t0 = time.perf_counter()
                sums = {"d_loss": 0.0, "g_loss": 0.0, "d_real": 0.0, "d_fake": 0.0}
                nd = ng = 0
                for bi, (real,) in enumerate(loader):
                    d, pr, pf = self.discriminator_step(real)
                    sums["d_loss"] += d
                    sums["d_real"] += pr
                    sums["d_fake"] += pf
                    nd += 1
                    self.step_history["d_loss"].append(d)
                    if (bi + 1) % self.d_steps == 0:
                        g = self.generator_step(real.shape[0])
                        sums["g_loss"] += g
                        ng += 1
                        self.step_history["g_loss"].append(g)
                    if bar is not None:
                        bar.update(1)
                        now = time.perf_counter()
                        if now - last > 0.2:
                            last = now
                            gl = sums["g_loss"] / ng if ng else float("nan")
                            bar.set_postfix_str(f"epoch {epoch + 1}/{epochs} d_loss: {sums['d_loss'] / nd:.4f} g_loss: {gl:.4f}", refresh=False)
                logs = {k: (v / (ng if k == "g_loss" else nd) if (ng if k == "g_loss" else nd) else float("nan")) for k, v in sums.items()}
                history.on_epoch_end(epoch, logs)
                if verbose == 2:
                    print(
                        f"Epoch {epoch + 1}/{epochs} - {time.perf_counter() - t0:.2f}s - d_loss: {logs['d_loss']:.4f} - "
                        f"g_loss: {logs['g_loss']:.4f} - d_real: {logs['d_real']:.3f} - d_fake: {logs['d_fake']:.3f}",
                        flush=True,
                    )
        finally:
            if bar is not None:
                bar.close()
        return history

    # ------------------------------------------------------------------ use

    def sample(self, n: int, *, batch_size: int = 1024, eval_mode: bool = True) -> np.ndarray:
        """``n`` generated samples (n, *sample_shape) as a NumPy array, without grad, in
        batches; the generator runs in eval mode (BatchNorm with running statistics;
        ``eval_mode=False`` uses batch statistics), every submodule's mode restored after."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"GAN.sample: n must be an int >= 1, given {n!r}")
        out = []
        with _Modes(self.generator):
            if not eval_mode:
                self.generator.train()
            for start in range(0, int(n), batch_size):
                out.append(self.generator(self.latent(min(batch_size, int(n) - start))).data)
        return np.concatenate(out, axis=0)

    def discriminate(self, x: Any) -> np.ndarray:
        """The discriminator's probability that ``x`` (N, *sample_shape) is real: (N,), or
        (N / pack,) one per pack with packing (N must be a multiple of ``pack``); eval
        mode, no grad."""
        arr = x.data if isinstance(x, Tensor) else np.asarray(x)
        arr = np.ascontiguousarray(arr.astype(_param_dtype(self.discriminator), copy=False))
        if arr.ndim < 1 or arr.shape[0] % self.pack:
            raise ValueError(f"GAN.discriminate: expected (N, ...) samples with N a multiple of pack={self.pack}, given shape {arr.shape}")
        with _Modes(self.discriminator):
            logits = self.discriminator(self._pack(Tensor._wrap(arr)))
        return F._sigmoid_np(logits.data.reshape(arr.shape[0] // self.pack))

    def save(self, path: Any) -> None:
        """Writes both networks and both optimizers' states to ``path`` (safetensors,
        atomic)."""
        from ..serialization import save

        save(
            {
                "generator": self.generator.state_dict(),
                "discriminator": self.discriminator.state_dict(),
                "g_optimizer": self.g_optimizer.state_dict(),
                "d_optimizer": self.d_optimizer.state_dict(),
            },
            path,
        )

    def load(self, path: Any) -> "GAN":
        """Restores what :meth:`save` wrote (the networks must have the same
        architecture); returns self."""
        from ..serialization import load

        ck = load(path)
        if not isinstance(ck, dict) or not {"generator", "discriminator"} <= set(ck):
            raise ValueError(f"GAN.load: {path} is not a GAN checkpoint (expected keys generator, discriminator)")
        self.generator.load_state_dict(ck["generator"])
        self.discriminator.load_state_dict(ck["discriminator"])
        if "g_optimizer" in ck:
            self.g_optimizer.load_state_dict(ck["g_optimizer"])
        if "d_optimizer" in ck:
            self.d_optimizer.load_state_dict(ck["d_optimizer"])
        return self

    def extra_repr(self) -> str:
        return f"latent_dim={self.latent_shape if len(self.latent_shape) > 1 else self.latent_shape[0]}, label_smoothing={self.label_smoothing}, d_steps={self.d_steps}"
