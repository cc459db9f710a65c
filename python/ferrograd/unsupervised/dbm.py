"""Deep Boltzmann machines (Salakhutdinov and Hinton, 2009): ``ferrograd.unsupervised.DBM``.

A DBM of layers ``v, h1, ..., hL`` (binary units) with weights ``W_l`` between
consecutive layers and no connections within a layer. Training has two stages:

1. Greedy layer-wise pretraining: a stack of RBMs trained with CD-k, each on the
   previous one's hidden probabilities. As in the paper, the bottom RBM is trained with
   its bottom-up input doubled (``P(h1 | v) = sigmoid(2 v W^T + c)``), the top one with
   its top-down input doubled, and the middle ones with both doubled (equivalent to the
   paper's halving of the middle weights when composing), so that each layer of the
   composed DBM, which hears from both neighbours, gets the input it was trained on.
   The DBM's hidden biases are the RBMs' hidden biases averaged with the next RBM's
   visible biases (the visible bias is the bottom RBM's).
2. Joint training: for each mini-batch, the data-dependent statistics come from the
   mean-field posterior (layers updated in turn until they change by at most
   ``mf_tol``), the model's from persistent Gibbs chains (``n_chains`` fantasy particles,
   ``gibbs_steps`` sweeps per update, odd layers then even layers); ``W_l`` moves by
   ``learning_rate`` times the difference of the two correlations (with momentum and
   weight decay), the biases by the difference of the means.

Every loop runs in Rust (``ferrograd._native.rbm_fit``, ``dbm_fit``, ``dbm_mean_field``,
``dbm_gibbs``) with counter-based random numbers from an explicit seed, so a fixed
``random_state`` gives the same model for any thread count.
"""

from __future__ import annotations

import time
from typing import Any, List, Optional, Sequence

import numpy as np

from .. import _native
from .._random import kernel_seed
from .rbm import _as_data, _check_float, _check_int

__all__ = ["DBM"]


class DBM:
    """A deep Boltzmann machine.

    Args:
        layer_sizes: units per layer, visible first: ``(n_visible, n_h1, ..., n_hL)``,
            at least two layers, each >= 1.
        learning_rate: step size of joint training.
        batch_size: rows per mini-batch.
        n_iter: passes of joint training over the data.
        pretrain_iter: passes of CD-k training per RBM in pretraining (0: no pretraining;
            weights start small and random).
        pretrain_learning_rate: step size of pretraining.
        k: Gibbs steps of the pretraining CD-k.
        momentum, weight_decay: of both stages.
        n_chains: persistent chains (fantasy particles) of joint training.
        gibbs_steps: Gibbs sweeps of the chains per update.
        mf_iter, mf_tol: mean-field sweeps at most, and the largest change at which they
            stop.
        random_state: int seed or None (a seed from ferrograd's generator).
        verbose: print a line per pass.
        dtype: float32 (default) or float64 parameters.
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        *,
        learning_rate: float = 0.005,
        batch_size: int = 100,
        n_iter: int = 10,
        pretrain_iter: int = 10,
        pretrain_learning_rate: float = 0.05,
        k: int = 1,
        momentum: float = 0.5,
        weight_decay: float = 0.0002,
        n_chains: int = 100,
        gibbs_steps: int = 5,
        mf_iter: int = 30,
        mf_tol: float = 1e-5,
        random_state: Optional[int] = None,
        verbose: int = 0,
        dtype: Any = np.float32,
    ) -> None:
        o = "DBM"
        try:
            sizes = [int(s) for s in layer_sizes]
        except TypeError:
            raise ValueError(f"{o}: layer_sizes must be a sequence of integers, given {layer_sizes!r}") from None
        if len(sizes) < 2:
            raise ValueError(f"{o}: layer_sizes needs at least 2 layers (visible and one hidden), given {layer_sizes!r}")
        for i, (s, raw) in enumerate(zip(sizes, layer_sizes)):
            if isinstance(raw, bool) or not isinstance(raw, (int, np.integer)) or s < 1:
                raise ValueError(f"{o}: every layer size must be an integer >= 1, given layer_sizes[{i}] = {raw!r}")
        self.layer_sizes = tuple(sizes)
        self.learning_rate = _check_float("learning_rate", learning_rate, o, 0.0, strict=True)
        self.batch_size = _check_int("batch_size", batch_size, 1, o)
        self.n_iter = _check_int("n_iter", n_iter, 0, o)
        self.pretrain_iter = _check_int("pretrain_iter", pretrain_iter, 0, o)
        self.pretrain_learning_rate = _check_float("pretrain_learning_rate", pretrain_learning_rate, o, 0.0, strict=True)
        self.k = _check_int("k", k, 1, o)
        self.momentum = _check_float("momentum", momentum, o)
        if self.momentum >= 1:
            raise ValueError(f"{o}: momentum must be in [0, 1), given {momentum!r}")
        self.weight_decay = _check_float("weight_decay", weight_decay, o)
        self.n_chains = _check_int("n_chains", n_chains, 1, o)
        self.gibbs_steps = _check_int("gibbs_steps", gibbs_steps, 1, o)
        self.mf_iter = _check_int("mf_iter", mf_iter, 1, o)
        self.mf_tol = _check_float("mf_tol", mf_tol, o)
        self.random_state = random_state
        self.verbose = verbose
        dt = np.dtype(dtype)
        if dt not in (np.float32, np.float64):
            raise TypeError(f"{o}: dtype must be float32 or float64, given {dt}")
        self.dtype = dt

    def __repr__(self) -> str:
        return f"DBM(layer_sizes={self.layer_sizes}, learning_rate={self.learning_rate}, n_iter={self.n_iter})"

    # ------------------------------------------------------------------ helpers

    def _fitted(self, fn: str) -> None:
        if not hasattr(self, "weights_"):
            raise ValueError(f"DBM.{fn}: this DBM is not fitted yet; call fit first")

    def _stream_take(self, n: int) -> int:
        s = self._stream
        self._stream += n
        return s

    def _random_states(self, m: int) -> List[np.ndarray]:
        return [
            _native.rbm_sample_bernoulli(np.full((m, s), 0.5, self.dtype), self._seed, self._stream_take(1))
            for s in self.layer_sizes
        ]

    # ------------------------------------------------------------------ training

    def fit(self, X: Any, y: Any = None) -> "DBM":
        """Pretrains (greedy, layer-wise) and then jointly trains on ``X``
        (n_samples, layer_sizes[0]) with values in [0, 1]. Returns ``self``."""
        X = _as_data(X, "DBM", "fit", self.layer_sizes[0], self.dtype)
        if self.random_state is None:
            rs = np.random.RandomState(kernel_seed() % (2**32))
        else:
            rs = np.random.RandomState(self.random_state)
        self._seed = int(rs.randint(0, 2**31 - 1)) * (2**32) + int(rs.randint(0, 2**31 - 1))
        self._stream = 0
        sizes = self.layer_sizes
        L = len(sizes) - 1
        dt = self.dtype
        self.weights_ = [np.ascontiguousarray(rs.normal(0, 0.01, (sizes[l + 1], sizes[l])), dtype=dt) for l in range(L)]
        self.biases_ = [np.zeros(s, dt) for s in sizes]
        n = X.shape[0]
        bounds = np.append(np.arange(0, n, self.batch_size), n).astype(np.int64)
        if self.pretrain_iter > 0:
            self._pretrain(X, bounds)
        vel_w = [np.zeros_like(w) for w in self.weights_]
        vel_b = [np.zeros_like(b) for b in self.biases_]
        self.chains_ = self._random_states(self.n_chains)
        epochs = [self.n_iter] if not self.verbose else [1] * self.n_iter
        for it, e in enumerate(epochs, 1):
            t0 = time.perf_counter()
            self._stream = _native.dbm_fit(
                self.weights_, self.biases_, vel_w, vel_b, self.chains_, X, bounds, e,
                self.learning_rate, self.momentum, self.weight_decay, self.mf_iter, self.mf_tol,
                self.gibbs_steps, self._seed, self._stream,
            )
            if self.verbose:
                mu = self.mean_field(X)[0]
                rec = _native.rbm_visible(mu, self.weights_[0], self.biases_[1], self.biases_[0])
                err = float(np.mean((rec - X) ** 2))
                print(f"[DBM] Iteration {it}, reconstruction error = {err:.5f}, time = {time.perf_counter() - t0:.2f}s")
        return self

    def _pretrain(self, X: np.ndarray, bounds: np.ndarray) -> None:
        sizes = self.layer_sizes
        L = len(sizes) - 1
        inp = X
        vis_biases = []
        for l in range(L):
            nv, nh = sizes[l], sizes[l + 1]
            if L == 1:
                up, down = 1.0, 1.0
            elif l == 0:
                up, down = 2.0, 1.0
            elif l == L - 1:
                up, down = 1.0, 2.0
            else:
                up, down = 2.0, 2.0
            w = self.weights_[l]
            bh = np.zeros(nh, self.dtype)
            bv = np.zeros(nv, self.dtype)
            vel = [np.zeros_like(w), np.zeros_like(bh), np.zeros_like(bv)]
            chain = np.zeros((1, nh), self.dtype)
            t0 = time.perf_counter()
            self._stream = _native.rbm_fit(
                w, bh, bv, vel[0], vel[1], vel[2], chain, inp, bounds, self.pretrain_iter, False,
                self.pretrain_learning_rate, self.momentum, self.weight_decay, self.k, False,
                up, down, self._seed, self._stream,
            )
            if self.verbose:
                print(
                    f"[DBM] pretrained layer {l + 1}/{L} ({nv} -> {nh}, {self.pretrain_iter} passes) "
                    f"in {time.perf_counter() - t0:.2f}s"
                )
            self.biases_[l + 1] = bh
            vis_biases.append(bv)
            inp = _native.rbm_hidden(inp, w, bh, bv, up)
        self.biases_[0] = vis_biases[0]
        for l in range(1, L):
            self.biases_[l] = np.ascontiguousarray((self.biases_[l] + vis_biases[l]) / 2, dtype=self.dtype)

    # ------------------------------------------------------------------ inference

    def mean_field(self, X: Any, n_iter: Optional[int] = None, tol: Optional[float] = None) -> List[np.ndarray]:
        """The mean-field posterior ``[mu_1, ..., mu_L]`` of every hidden layer given
        ``X`` (n_samples, layer_sizes[0]); ``mu_l`` is (n_samples, layer_sizes[l]).
        At the fixed point ``mu_l = sigmoid(mu_{l-1} W_{l-1}^T + mu_{l+1} W_l + b_l)``."""
        self._fitted("mean_field")
        X = _as_data(X, "DBM", "mean_field", self.layer_sizes[0], self.dtype)
        it = self.mf_iter if n_iter is None else _check_int("n_iter", n_iter, 1, "DBM.mean_field")
        tl = self.mf_tol if tol is None else _check_float("tol", tol, "DBM.mean_field")
        mus, _ = _native.dbm_mean_field(X, self.weights_, self.biases_, it, tl)
        return mus

    def transform(self, X: Any) -> np.ndarray:
        """The mean-field posterior of the top layer, (n_samples, layer_sizes[-1])."""
        return self.mean_field(X)[-1]

    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray:
        """``fit(X).transform(X)``."""
        return self.fit(X).transform(X)

    def sample(self, n: int, steps: int = 1000, return_probs: bool = True) -> np.ndarray:
        """``n`` samples of the visible layer: chains from random states run ``steps``
        Gibbs sweeps; returns the visible probabilities of the last sweep (or the binary
        samples with ``return_probs=False``), shape (n, layer_sizes[0])."""
        self._fitted("sample")
        n = _check_int("n", n, 1, "DBM.sample")
        steps = _check_int("steps", steps, 1, "DBM.sample")
        states = self._random_states(n)
        probs, self._stream = _native.dbm_gibbs(
            states, self.weights_, self.biases_, steps, self._seed, self._stream, False
        )
        return probs[0] if return_probs else states[0]
