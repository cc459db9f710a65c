"""Restricted Boltzmann machines with scikit-learn's ``BernoulliRBM`` interface.

:class:`RBM` takes ``BernoulliRBM``'s arguments and attributes (``n_components``,
``learning_rate``, ``batch_size``, ``n_iter``, ``verbose``, ``random_state``;
``components_`` (n_components, n_features), ``intercept_hidden_``, ``intercept_visible_``,
``h_samples_``) and methods (``fit``, ``partial_fit``, ``transform``, ``gibbs``,
``score_samples``, ``fit_transform``), and with its defaults trains exactly as
scikit-learn does: persistent contrastive divergence with one Gibbs step per mini-batch,
mini-batches in data order, ``W += lr / m * (h+^T v+ - h-^T v-)``, the same initial
weights (``RandomState(random_state).normal(0, 0.01)``). Beyond it: Gaussian visible
units, CD-k (``persistent=False``) and PCD-k, momentum, weight decay, ``free_energy``,
``reconstruct`` and ``sample``.

All training runs in one Rust call (``ferrograd._native.rbm_fit``: every epoch and
mini-batch). Random numbers come from a counter-based generator keyed by a seed drawn
once from ``random_state`` (or, when it is None, from ferrograd's generator), so a
fixed ``random_state`` gives the same model whatever the number of threads. (The samples
differ from scikit-learn's, which draws from NumPy's generator.)
"""

from __future__ import annotations

import time
from typing import Any, Dict, Optional

import numpy as np

from .. import _native
from .._random import kernel_seed

__all__ = ["RBM"]


def _check_int(name: str, v: Any, lo: int, owner: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise ValueError(f"{owner}: {name} must be an integer >= {lo}, given {v!r}")
    return int(v)


def _check_float(name: str, v: Any, owner: str, lo: float = 0.0, strict: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not np.isfinite(v):
        raise ValueError(f"{owner}: {name} must be a finite number, given {v!r}")
    if v < lo or (strict and v == lo):
        raise ValueError(f"{owner}: {name} must be {'>' if strict else '>='} {lo}, given {v!r}")
    return float(v)


def _as_data(X: Any, owner: str, fn: str, width: Optional[int], dtype: Optional[np.dtype] = None) -> np.ndarray:
    """``X`` as a C-contiguous 2-D float array (float32/float64 kept, else ``dtype`` or
    float32), non-empty, finite, with ``width`` columns when given."""
    a = np.asarray(X)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
        raise TypeError(f"{owner}.{fn}: X must be numeric, given dtype {a.dtype}")
    if a.ndim != 2:
        want = f"(n_samples, {width})" if width is not None else "(n_samples, n_features)"
        raise ValueError(f"{owner}.{fn}: expected X of shape {want}, given shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{owner}.{fn}: expected a non-empty X, given shape {a.shape}")
    if width is not None and a.shape[1] != width:
        raise ValueError(f"{owner}.{fn}: X has {a.shape[1]} features, expected {width} (shape {a.shape})")
    if dtype is None:
        dtype = a.dtype if a.dtype in (np.float32, np.float64) else np.dtype(np.float32)
    a = np.ascontiguousarray(a, dtype=dtype)
    if not np.isfinite(a).all():
        raise ValueError(f"{owner}.{fn}: X contains non-finite values (NaN or inf)")
    return a


class RBM:
    """A restricted Boltzmann machine (scikit-learn ``BernoulliRBM`` interface and more).

    Args:
        n_components: hidden units (>= 1).
        learning_rate: step size (> 0); each update adds ``learning_rate / m`` times the
            summed statistics of a mini-batch of m rows.
        batch_size: rows per mini-batch (>= 1; the last batch may be shorter).
        n_iter: passes over the data in :meth:`fit`.
        verbose: print the mean pseudo-likelihood after each pass.
        random_state: int seed (initial weights and every Gibbs sample), or None for a
            seed from ferrograd's generator.
        visible: ``'bernoulli'`` (binary units, data in [0, 1]) or ``'gaussian'``
            (unit-variance Gaussian units; standardise the data).
        k: Gibbs steps per update (CD-k / PCD-k).
        persistent: persistent CD (scikit-learn's choice: ``batch_size`` chains carried
            from update to update in ``h_samples_``) or, when False, CD-k restarted
            from each mini-batch.
        momentum: momentum of the parameter updates (0 <= momentum < 1).
        weight_decay: L2 penalty on the weights (``W -= learning_rate * weight_decay * W``
            per update).
    """

    def __init__(
        self,
        n_components: int = 256,
        *,
        learning_rate: float = 0.1,
        batch_size: int = 10,
        n_iter: int = 10,
        verbose: int = 0,
        random_state: Optional[int] = None,
        visible: str = "bernoulli",
        k: int = 1,
        persistent: bool = True,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
    ) -> None:
        self.n_components = n_components
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.verbose = verbose
        self.random_state = random_state
        self.visible = visible
        self.k = k
        self.persistent = persistent
        self.momentum = momentum
        self.weight_decay = weight_decay

    # ------------------------------------------------------------------ scikit-learn plumbing

    _PARAMS = (
        "n_components", "learning_rate", "batch_size", "n_iter", "verbose", "random_state",
        "visible", "k", "persistent", "momentum", "weight_decay",
    )

    def get_params(self, deep: bool = True) -> Dict[str, Any]:
        """The constructor arguments (scikit-learn's estimator protocol)."""
        return {p: getattr(self, p) for p in self._PARAMS}

    def set_params(self, **params: Any) -> "RBM":
        """Sets constructor arguments; returns ``self``."""
        for k, v in params.items():
            if k not in self._PARAMS:
                raise ValueError(f"RBM.set_params: unknown parameter {k!r}; expected one of {self._PARAMS}")
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{p}={getattr(self, p)!r}" for p in self._PARAMS)
        return f"RBM({args})"

    def _validate(self) -> None:
        o = "RBM"
        _check_int("n_components", self.n_components, 1, o)
        _check_float("learning_rate", self.learning_rate, o, 0.0, strict=True)
        _check_int("batch_size", self.batch_size, 1, o)
        _check_int("n_iter", self.n_iter, 0, o)
        _check_int("k", self.k, 1, o)
        m = _check_float("momentum", self.momentum, o)
        if m >= 1:
            raise ValueError(f"RBM: momentum must be in [0, 1), given {self.momentum!r}")
        _check_float("weight_decay", self.weight_decay, o)
        if self.visible not in ("bernoulli", "gaussian"):
            raise ValueError(f"RBM: visible must be 'bernoulli' or 'gaussian', given {self.visible!r}")

    @property
    def _gaussian(self) -> bool:
        return self.visible == "gaussian"

    def _fitted(self, fn: str) -> None:
        if not hasattr(self, "components_"):
            raise ValueError(f"RBM.{fn}: this RBM is not fitted yet; call fit or partial_fit first")

    def _init(self, X: np.ndarray) -> None:
        if self.random_state is None:
            rs = np.random.RandomState(kernel_seed() % (2**32))
        elif isinstance(self.random_state, np.random.RandomState):
            rs = self.random_state
        else:
            rs = np.random.RandomState(self.random_state)
        dt = X.dtype
        nh, nv = int(self.n_components), X.shape[1]
        self.components_ = np.ascontiguousarray(rs.normal(0, 0.01, (nh, nv)), dtype=dt)
        self.intercept_hidden_ = np.zeros(nh, dtype=dt)
        self.intercept_visible_ = np.zeros(nv, dtype=dt)
        self.h_samples_ = np.zeros((int(self.batch_size), nh), dtype=dt)
        self._vel = [np.zeros_like(self.components_), np.zeros(nh, dt), np.zeros(nv, dt)]
        self._seed = int(rs.randint(0, 2**31 - 1)) * (2**32) + int(rs.randint(0, 2**31 - 1))
        self._stream = 0
        self.n_features_in_ = nv

    def _params_as(self, dt: np.dtype) -> None:
        """Keeps every array C-contiguous in dtype ``dt`` (after a user assignment)."""
        for name in ("components_", "intercept_hidden_", "intercept_visible_", "h_samples_"):
            a = getattr(self, name)
            if not (isinstance(a, np.ndarray) and a.dtype == dt and a.flags.c_contiguous and a.flags.writeable):
                setattr(self, name, np.array(a, dtype=dt, order="C"))
        self._vel = [np.array(v, dtype=dt, order="C") for v in self._vel]

    def _train(self, X: np.ndarray, bounds: np.ndarray, epochs: int) -> None:
        self._params_as(self.components_.dtype)
        self._stream = _native.rbm_fit(
            self.components_, self.intercept_hidden_, self.intercept_visible_,
            self._vel[0], self._vel[1], self._vel[2], self.h_samples_, X,
            np.ascontiguousarray(bounds, dtype=np.int64), int(epochs), self._gaussian,
            float(self.learning_rate), float(self.momentum), float(self.weight_decay),
            int(self.k), bool(self.persistent), 1.0, 1.0, self._seed, self._stream,
        )

    # ------------------------------------------------------------------ training

    def fit(self, X: Any, y: Any = None) -> "RBM":
        """Initialises the parameters and trains for ``n_iter`` passes over ``X``
        (n_samples, n_features), in mini-batches of ``batch_size`` rows in data order.
        Returns ``self``."""
        self._validate()
        X = _as_data(X, "RBM", "fit", None)
        self._init(X)
        n = X.shape[0]
        bounds = np.append(np.arange(0, n, int(self.batch_size)), n)
        if not self.verbose:
            self._train(X, bounds, int(self.n_iter))
            return self
        for it in range(1, int(self.n_iter) + 1):
            t0 = time.perf_counter()
            self._train(X, bounds, 1)
            pl = float(np.mean(self.score_samples(X))) if not self._gaussian else float("nan")
            print(f"[RBM] Iteration {it}, pseudo-likelihood = {pl:.2f}, time = {time.perf_counter() - t0:.2f}s")
        return self

    def partial_fit(self, X: Any, y: Any = None) -> "RBM":
        """One update with ``X`` as a single mini-batch (scikit-learn's ``partial_fit``);
        initialises the parameters on the first call. Returns ``self``."""
        self._validate()
        first = not hasattr(self, "components_")
        if first:
            X = _as_data(X, "RBM", "partial_fit", None)
            self._init(X)
        else:
            X = _as_data(X, "RBM", "partial_fit", self.components_.shape[1], self.components_.dtype)
            if self.h_samples_.shape != (int(self.batch_size), self.components_.shape[0]) and self.persistent:
                self.h_samples_ = np.zeros((int(self.batch_size), self.components_.shape[0]), self.components_.dtype)
        self._train(X, np.array([0, X.shape[0]]), 1)
        return self

    # ------------------------------------------------------------------ inference

    def _data(self, X: Any, fn: str) -> np.ndarray:
        self._fitted(fn)
        X = _as_data(X, "RBM", fn, self.components_.shape[1], self.components_.dtype)
        self._params_as(self.components_.dtype)
        return X

    def _next_stream(self, used: int) -> int:
        s = self._stream
        self._stream += used
        return s

    def transform(self, X: Any) -> np.ndarray:
        """Hidden activation probabilities ``P(h = 1 | v = X)``, (n_samples, n_components)."""
        X = self._data(X, "transform")
        return _native.rbm_hidden(X, self.components_, self.intercept_hidden_, self.intercept_visible_)

    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray:
        """``fit(X).transform(X)``."""
        return self.fit(X).transform(X)

    def reconstruct(self, X: Any) -> np.ndarray:
        """Mean-field reconstruction ``P(v | h = P(h | X))`` (Gaussian: its mean),
        (n_samples, n_features)."""
        h = self.transform(X)
        return _native.rbm_visible(h, self.components_, self.intercept_hidden_, self.intercept_visible_, self._gaussian)

    def free_energy(self, X: Any) -> np.ndarray:
        """Free energy of each row: Bernoulli ``-v.b - sum softplus(v W^T + c)``; Gaussian
        ``||v - b||^2 / 2 - sum softplus(v W^T + c)``. Shape (n_samples,)."""
        X = self._data(X, "free_energy")
        return _native.rbm_free_energy(
            X, self.components_, self.intercept_hidden_, self.intercept_visible_, self._gaussian
        )

    def gibbs(self, v: Any) -> np.ndarray:
        """One Gibbs step from ``v`` (n_samples, n_features): ``h ~ P(h | v)``, then a
        sample of ``P(v | h)`` (0/1 values for Bernoulli units)."""
        X = self._data(v, "gibbs")
        out, _, nxt = _native.rbm_gibbs(
            X, self.components_, self.intercept_hidden_, self.intercept_visible_, self._gaussian,
            1, self._seed, self._stream,
        )
        self._stream = nxt
        return out

    def sample(self, n: int, steps: int = 1000, return_probs: bool = False) -> np.ndarray:
        """``n`` samples from the model: chains started from random visible states
        (Bernoulli(0.5), or N(intercept_visible_, 1)) run ``steps`` Gibbs steps. Returns the
        final visible samples, or their probabilities (means) with ``return_probs``.
        Shape (n, n_features)."""
        self._fitted("sample")
        n = _check_int("n", n, 1, "RBM.sample")
        steps = _check_int("steps", steps, 0, "RBM.sample")
        dt = self.components_.dtype
        nv = self.components_.shape[1]
        self._params_as(dt)
        if self._gaussian:
            noise = np.empty((n, nv), dt)
            _native.rbm_uniform(noise, self._seed, self._next_stream(1))
            v0 = np.ascontiguousarray(self.intercept_visible_ + (noise - 0.5) * np.sqrt(12.0), dtype=dt)
        else:
            v0 = _native.rbm_sample_bernoulli(np.full((n, nv), 0.5, dt), self._seed, self._next_stream(1))
        out, probs, nxt = _native.rbm_gibbs(
            v0, self.components_, self.intercept_hidden_, self.intercept_visible_, self._gaussian,
            steps, self._seed, self._stream,
        )
        self._stream = nxt
        return probs if return_probs else out

    def score_samples(self, X: Any) -> np.ndarray:
        """Pseudo-likelihood of each row (scikit-learn's estimate): one feature per row,
        picked at random (``RandomState(random_state)``, so repeatable for an int seed), is
        flipped, and ``n_features * log sigmoid(F(v_flipped) - F(v))`` is returned.
        Bernoulli visible units only (binary X). Shape (n_samples,)."""
        if self._gaussian:
            raise ValueError(
                "RBM.score_samples: the pseudo-likelihood is defined for Bernoulli visible units; "
                "this RBM has visible='gaussian' (use free_energy)"
            )
        X = self._data(X, "score_samples")
        if isinstance(self.random_state, (int, np.integer)) and not isinstance(self.random_state, bool):
            rs = np.random.RandomState(self.random_state)
        else:
            rs = np.random.RandomState(kernel_seed() % (2**32))
        n, nf = X.shape
        ind = (np.arange(n), rs.randint(0, nf, n))
        Xf = X.copy()
        Xf[ind] = 1 - Xf[ind]
        fe = self.free_energy(X)
        fe_ = self.free_energy(Xf)
        return -nf * np.logaddexp(0, -(fe_ - fe))
