"""Self-organizing maps with MiniSom's interface (``ferrograd.unsupervised.SOM``).

A map of ``x * y`` units, each holding a weight vector of ``input_len`` values, stored as
an array of shape ``(x, y, input_len)``. The constructor arguments, method names and
formulas are MiniSom's (2.3), so code written for ``minisom.MiniSom`` runs unchanged and,
for the same weights and the same sample order, each online update gives the same
weights (within rounding). The loops run in Rust (``ferrograd._native.som_*``): online
training is one call per :meth:`SOM.train` (samples in order, units updated in parallel
within an update), batch training one call per :meth:`SOM.train_batch`.

Differences from MiniSom, all deliberate:

- :meth:`SOM.train_batch` is the true batch SOM (Kohonen's batch map: every epoch, all
  units are recomputed from all samples, ``w_u = sum_s h(u, bmu_s) x_s / sum_s h(u, bmu_s)``);
  MiniSom's ``train_batch`` is sequential online training, which is
  ``train(data, num_iteration)`` here. :meth:`SOM.train_batch_offline` is MiniSom's
  offline variant (the batch result blended in with the decaying learning rate).
- ``activation_distance='chebyshev'`` is ``max |x - w|`` (MiniSom 2.3 omits the absolute
  value).
- Weights are float32 unless ``dtype=numpy.float64`` is given (MiniSom: float64).
- Beyond MiniSom: scikit-learn style :meth:`fit`, :meth:`transform`, :meth:`fit_transform`.

As in MiniSom, :meth:`winner`, :meth:`activation_response`, :meth:`win_map` and
:meth:`labels_map` use the activation distance, while :meth:`quantization`,
:meth:`quantization_error` and :meth:`topographic_error` use the euclidean distance.
"""

from __future__ import annotations

import math
import time
import warnings
from collections import Counter, defaultdict
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from .. import _native
from .._random import kernel_seed

__all__ = ["SOM"]

_NEIGHBORHOODS = ("gaussian", "mexican_hat", "bubble", "triangle")
_TOPOLOGIES = ("rectangular", "hexagonal")
_DISTANCES = ("euclidean", "cosine", "manhattan", "chebyshev")
_LR_DECAYS = ("inverse_decay_to_zero", "linear_decay_to_zero", "asymptotic_decay")
_SIGMA_DECAYS = ("inverse_decay_to_one", "linear_decay_to_one", "asymptotic_decay")

DecayFn = Callable[[float, Any, int], Any]


def _decay(name: str, p: float, t: np.ndarray, max_iter: int) -> np.ndarray:
    """MiniSom's decay functions of a parameter ``p`` at steps ``t`` (float64 array)."""
    if name == "asymptotic_decay":
        return p / (1 + t / (max_iter / 2))
    if name == "inverse_decay_to_zero":
        c = max_iter / 100.0
        return p * c / (c + t)
    if name == "linear_decay_to_zero":
        return p * (1 - t / max_iter)
    if name == "inverse_decay_to_one":
        c = (p - 1) / max_iter
        return p / (1 + (t * c))
    if name == "linear_decay_to_one":
        return p + (t * (1 - p) / max_iter)
    raise ValueError(f"SOM: unknown decay function {name!r}")  # pragma: no cover


def _custom_decay(fn: DecayFn, p: float, t: np.ndarray, max_iter: int) -> np.ndarray:
    """A user decay function ``fn(p, t, max_iter)`` at every step: called once with the
    array of steps when it accepts arrays, else once per step (before training)."""
    try:
        v = np.asarray(fn(p, t, max_iter), dtype=np.float64)
        if v.shape == t.shape:
            return v
    except Exception:  # noqa: BLE001 - fall back to scalar calls
        pass
    return np.array([float(fn(p, int(s), max_iter)) for s in t], dtype=np.float64)


class SOM:
    """A self-organizing map (MiniSom's interface).

    Args:
        x, y: the map's size (units along each axis, both >= 1).
        input_len: features per sample (>= 1).
        sigma: spread of the neighbourhood function (at the first step).
        learning_rate: learning rate at the first step.
        decay_function: how the learning rate decays: ``'asymptotic_decay'`` (default,
            ``lr / (1 + t / (T / 2))``), ``'inverse_decay_to_zero'``,
            ``'linear_decay_to_zero'``, or a callable ``f(learning_rate, t, max_iter)``.
        neighborhood_function: ``'gaussian'``, ``'mexican_hat'``, ``'bubble'`` or
            ``'triangle'``.
        topology: ``'rectangular'`` or ``'hexagonal'``.
        activation_distance: ``'euclidean'``, ``'cosine'``, ``'manhattan'`` or
            ``'chebyshev'``.
        random_seed: seed of the map's ``numpy.random.RandomState`` (initial weights,
            sample shuffling); the same draws as MiniSom's for the same seed. None: a seed
            drawn from ferrograd's generator (:func:`ferrograd.manual_seed`).
        sigma_decay_function: ``'asymptotic_decay'`` (default), ``'inverse_decay_to_one'``
            or ``'linear_decay_to_one'``.
        dtype: float32 (default) or float64 weights.

    The weights are random unit vectors at first (as MiniSom); see
    :meth:`random_weights_init` and :meth:`pca_weights_init`.
    """

    Y_HEX_CONV_FACTOR = (3.0 / 2.0) / math.sqrt(3)

    def __init__(
        self,
        x: int,
        y: int,
        input_len: int,
        sigma: float = 1.0,
        learning_rate: float = 0.5,
        decay_function: Union[str, DecayFn] = "asymptotic_decay",
        neighborhood_function: str = "gaussian",
        topology: str = "rectangular",
        activation_distance: str = "euclidean",
        random_seed: Optional[int] = None,
        sigma_decay_function: str = "asymptotic_decay",
        dtype: Any = np.float32,
    ) -> None:
        for name, v in (("x", x), ("y", y), ("input_len", input_len)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"SOM: {name} must be an integer >= 1, given {v!r}")
        for name, v in (("sigma", sigma), ("learning_rate", learning_rate)):
            if not isinstance(v, (int, float, np.floating, np.integer)) or not math.isfinite(v):
                raise ValueError(f"SOM: {name} must be a finite number, given {v!r}")
        if sigma <= 0:
            raise ValueError(f"SOM: sigma must be positive, given {sigma!r}")
        if topology not in _TOPOLOGIES:
            raise ValueError(f"SOM: topology must be one of {_TOPOLOGIES}, given {topology!r}")
        if neighborhood_function not in _NEIGHBORHOODS:
            raise ValueError(
                f"SOM: neighborhood_function must be one of {_NEIGHBORHOODS}, given {neighborhood_function!r}"
            )
        if not isinstance(activation_distance, str) or activation_distance not in _DISTANCES:
            raise ValueError(
                f"SOM: activation_distance must be one of {_DISTANCES}, given {activation_distance!r}"
            )
        if not callable(decay_function) and decay_function not in _LR_DECAYS:
            raise ValueError(
                f"SOM: decay_function must be one of {_LR_DECAYS} or a callable, given {decay_function!r}"
            )
        if sigma_decay_function not in _SIGMA_DECAYS:
            raise ValueError(
                f"SOM: sigma_decay_function must be one of {_SIGMA_DECAYS}, given {sigma_decay_function!r}"
            )
        dt = np.dtype(dtype)
        if dt not in (np.float32, np.float64):
            raise TypeError(f"SOM: dtype must be float32 or float64, given {dt}")
        if sigma > math.sqrt(x * x + y * y):
            warnings.warn("SOM: sigma might be too high for the dimension of the map.", stacklevel=2)
        if neighborhood_function in ("triangle", "bubble") and (sigma % 1 != 0 or sigma < 1):
            warnings.warn(
                "SOM: sigma should be an integer >= 1 when triangle or bubble are used as neighborhood function",
                stacklevel=2,
            )
        if topology == "hexagonal" and neighborhood_function == "triangle":
            warnings.warn("SOM: the triangle neighborhood function does not take the hexagonal topology into account", stacklevel=2)
        self.x, self.y, self._input_len = int(x), int(y), int(input_len)
        self._sigma = float(sigma)
        self._learning_rate = float(learning_rate)
        self._decay_function = decay_function
        self._sigma_decay_function = sigma_decay_function
        self.neighborhood_function = neighborhood_function
        self.topology = topology
        self.activation_distance = activation_distance
        self.dtype = dt
        seed = random_seed if random_seed is not None else kernel_seed() % (2**32)
        self.random_seed = random_seed
        self._random_generator = np.random.RandomState(seed)
        w = self._random_generator.rand(self.x, self.y, self._input_len) * 2 - 1
        w /= np.linalg.norm(w, axis=-1, keepdims=True)
        self._weights = np.ascontiguousarray(w, dtype=dt)
        ii, jj = np.meshgrid(np.arange(self.x), np.arange(self.y), indexing="ij")
        xx = ii.astype(np.float64)
        yy = jj.astype(np.float64)
        if topology == "hexagonal":
            xx[:, (self.y - 1 - np.arange(self.y)) % 2 == 0] -= 0.5
            yy *= self.Y_HEX_CONV_FACTOR
        self._xx, self._yy = xx, yy  # (x, y) euclidean coordinates of the units

    # ------------------------------------------------------------------ helpers

    def __repr__(self) -> str:
        return (
            f"SOM(x={self.x}, y={self.y}, input_len={self._input_len}, sigma={self._sigma}, "
            f"learning_rate={self._learning_rate}, neighborhood_function={self.neighborhood_function!r}, "
            f"topology={self.topology!r}, activation_distance={self.activation_distance!r})"
        )

    def _data(self, data: Any, fn: str, allow_1d: bool = False) -> np.ndarray:
        """``data`` as a C-contiguous (n, input_len) array of the map's dtype, checked."""
        a = np.asarray(data)
        if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
            raise TypeError(f"SOM.{fn}: data must be numeric, given dtype {a.dtype}")
        if allow_1d and a.ndim == 1:
            a = a[None, :]
        if a.ndim != 2:
            raise ValueError(
                f"SOM.{fn}: expected data of shape (n_samples, {self._input_len}), given shape {a.shape}"
            )
        if a.shape[0] == 0:
            raise ValueError(f"SOM.{fn}: expected at least one sample, given an empty array of shape {a.shape}")
        if a.shape[1] != self._input_len:
            raise ValueError(
                f"SOM.{fn}: data has {a.shape[1]} features, expected input_len={self._input_len} (shape {a.shape})"
            )
        a = np.ascontiguousarray(a, dtype=self.dtype)
        if not np.isfinite(a).all():
            raise ValueError(f"SOM.{fn}: data contains non-finite values (NaN or inf)")
        return a

    def _codebook(self) -> np.ndarray:
        w = self._weights
        if not (isinstance(w, np.ndarray) and w.shape == (self.x, self.y, self._input_len)):
            raise ValueError(
                f"SOM: weights must have shape {(self.x, self.y, self._input_len)}, given {np.shape(w)}"
            )
        if w.dtype != self.dtype or not w.flags.c_contiguous or not w.flags.writeable:
            self._weights = np.array(w, dtype=self.dtype, order="C")
        return self._weights

    def _schedules(self, steps: np.ndarray, max_iter: int) -> Tuple[np.ndarray, np.ndarray]:
        t = steps.astype(np.float64)
        if callable(self._decay_function):
            eta = _custom_decay(self._decay_function, self._learning_rate, t, max_iter)
        else:
            eta = _decay(self._decay_function, self._learning_rate, t, max_iter)
        sig = _decay(self._sigma_decay_function, self._sigma, t, max_iter)
        return np.ascontiguousarray(eta, np.float64), np.ascontiguousarray(sig, np.float64)

    def _bmu(self, data: np.ndarray, distance: str, second: bool = False) -> Tuple[np.ndarray, ...]:
        w = self._codebook().reshape(self.x * self.y, self._input_len)
        return _native.som_bmu(data, w, distance, second)

    def _unravel(self, flat: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        return flat // self.y, flat % self.y

    @staticmethod
    def _check_iterations(num_iteration: Any, fn: str) -> int:
        if isinstance(num_iteration, bool) or not isinstance(num_iteration, (int, np.integer)) or num_iteration < 1:
            raise ValueError(f"SOM.{fn}: num_iteration must be an integer >= 1, given {num_iteration!r}")
        return int(num_iteration)

    # ------------------------------------------------------------------ MiniSom API

    def get_weights(self) -> np.ndarray:
        """The weights, shape (x, y, input_len) (the live array, as MiniSom)."""
        return self._codebook()

    def set_weights(self, weights: Any) -> None:
        """Replaces the weights with a copy of ``weights`` (x, y, input_len) (not in
        MiniSom, whose users assign ``som._weights``; that works here too)."""
        w = np.array(weights, dtype=self.dtype, order="C", copy=True)
        if w.shape != (self.x, self.y, self._input_len):
            raise ValueError(
                f"SOM.set_weights: weights must have shape {(self.x, self.y, self._input_len)}, given {w.shape}"
            )
        if not np.isfinite(w).all():
            raise ValueError("SOM.set_weights: weights contain non-finite values (NaN or inf)")
        self._weights = w

    def get_euclidean_coordinates(self) -> Tuple[np.ndarray, np.ndarray]:
        """The units' positions in the plane, two (x, y) arrays (hexagonal rows shifted)."""
        return self._xx.copy(), self._yy.copy()

    def convert_map_to_euclidean(self, xy: Tuple[Any, Any]) -> Tuple[Any, Any]:
        """Map coordinates (i, j) -> their euclidean coordinates."""
        return self._xx[xy], self._yy[xy]

    def neighborhood(self, c: Tuple[int, int], sigma: float) -> np.ndarray:
        """The neighbourhood function centred on unit ``c = (i, j)``, shape (x, y)."""
        i, j = int(c[0]), int(c[1])
        if not (0 <= i < self.x and 0 <= j < self.y):
            raise ValueError(f"SOM.neighborhood: centre {c} is outside the {self.x} x {self.y} map")
        return _native.som_neighborhood(
            self.x, self.y, self.topology, self.neighborhood_function, i * self.y + j, float(sigma)
        )

    def activate(self, x: Any) -> np.ndarray:
        """Activation distances of one sample to every unit, shape (x, y)."""
        d = self._data(x, "activate", allow_1d=True)[:1]
        w = self._codebook().reshape(self.x * self.y, self._input_len)
        return _native.som_distances(d, w, self.activation_distance).reshape(self.x, self.y)

    def winner(self, x: Any) -> Tuple[int, int]:
        """Grid coordinates (i, j) of the unit closest to the sample ``x`` (input_len,)."""
        d = self._data(x, "winner", allow_1d=True)
        if d.shape[0] != 1:
            raise ValueError(f"SOM.winner: expected one sample of shape ({self._input_len},), given {np.shape(x)}")
        b = int(self._bmu(d, self.activation_distance)[0][0])
        return (b // self.y, b % self.y)

    def random_weights_init(self, data: Any) -> None:
        """Sets each unit's weights to a sample picked at random from ``data``."""
        d = self._data(data, "random_weights_init")
        idx = np.array([self._random_generator.randint(len(d)) for _ in range(self.x * self.y)])
        self._weights = np.ascontiguousarray(d[idx].reshape(self.x, self.y, self._input_len))

    def pca_weights_init(self, data: Any) -> None:
        """Spreads the weights over the plane of the data's first two principal components
        (centred on the mean, coefficients linspace(-1, 1) along each axis)."""
        if self._input_len == 1:
            raise ValueError("SOM.pca_weights_init: the data needs at least 2 features for PCA initialization")
        d = self._data(data, "pca_weights_init").astype(np.float64)
        if self.x == 1 or self.y == 1:
            warnings.warn("SOM.pca_weights_init: PCA initialization inappropriate: one of the dimensions of the map is 1.", stacklevel=2)
        if d.shape[0] < 2:
            raise ValueError(f"SOM.pca_weights_init: expected at least 2 samples, given {d.shape[0]}")
        vals, vecs = np.linalg.eigh(np.cov(d, rowvar=False))
        order = np.argsort(vals)[::-1]
        pc1, pc2 = vecs[:, order[0]], vecs[:, order[1]]
        c1 = np.linspace(-1, 1, self.x)[:, None, None]
        c2 = np.linspace(-1, 1, self.y)[None, :, None]
        w = d.mean(axis=0) + c1 * pc1 + c2 * pc2
        self._weights = np.ascontiguousarray(w, dtype=self.dtype)

    def train(
        self,
        data: Any,
        num_iteration: int,
        random_order: bool = False,
        verbose: bool = False,
        use_epochs: bool = False,
        fixed_points: Optional[Dict[int, Tuple[int, int]]] = None,
    ) -> None:
        """Online training (MiniSom's ``train``): ``num_iteration`` updates, one sample each
        (``use_epochs``: ``num_iteration`` passes over the data, the rates constant within
        a pass). Samples are taken in order (cycling) or, with ``random_order``, shuffled
        by the map's generator. ``fixed_points`` maps sample index -> unit (i, j) forced
        as that sample's winner. One Rust call runs every update."""
        d = self._data(data, "train")
        n_it = self._check_iterations(num_iteration, "train")
        n = d.shape[0]
        if use_epochs:
            per = np.arange(n)
            if random_order:
                self._random_generator.shuffle(per)
            order = np.tile(per, n_it)
            steps = np.arange(order.size) // n
        else:
            order = np.arange(n_it) % n
            if random_order:
                self._random_generator.shuffle(order)
            steps = np.arange(n_it)
        forced = np.empty(0, dtype=np.int64)
        if fixed_points:
            table = np.full(n, -1, dtype=np.int64)
            for k, (i, j) in fixed_points.items():
                if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
                    raise TypeError(f"SOM.train: fixed point indexes must be integers, given {k!r}")
                if not 0 <= k < n:
                    raise ValueError(f"SOM.train: fixed point index {k} is outside 0..{n - 1}")
                if not (0 <= i < self.x and 0 <= j < self.y):
                    raise ValueError(f"SOM.train: fixed point coordinates {(i, j)} are outside the {self.x} x {self.y} map")
                table[k] = i * self.y + j
            forced = np.ascontiguousarray(table[order])
        eta, sig = self._schedules(steps, n_it)
        t0 = time.perf_counter()
        _native.som_train(
            self._codebook(),
            d,
            np.ascontiguousarray(order, dtype=np.int64),
            eta,
            sig,
            forced,
            self.topology,
            self.neighborhood_function,
            self.activation_distance,
        )
        if verbose:
            print(
                f"[SOM] {order.size} updates in {time.perf_counter() - t0:.3f} s, "
                f"quantization error: {self.quantization_error(d):.6f}"
            )

    def train_random(self, data: Any, num_iteration: int, verbose: bool = False) -> None:
        """Online training on samples picked in random order (MiniSom's ``train_random``)."""
        self.train(data, num_iteration, random_order=True, verbose=verbose)

    def train_batch(self, data: Any, num_iteration: int, verbose: bool = False) -> None:
        """The batch SOM (Kohonen's batch map): ``num_iteration`` epochs, each assigning
        every sample to its winner and then setting every unit to the neighbourhood-weighted
        mean ``sum_s h(u, bmu_s) x_s / sum_s h(u, bmu_s)`` (units with no weight keep
        theirs). The spread decays over epochs by ``sigma_decay_function``; the learning
        rate is not used. (MiniSom's ``train_batch`` is sequential online training:
        ``train(data, num_iteration)`` here.) One Rust call runs every epoch."""
        self._batch(data, num_iteration, verbose, blend=False, fn="train_batch")

    def train_batch_offline(self, data: Any, num_iteration: int, verbose: bool = False) -> None:
        """MiniSom's ``train_batch_offline``: the batch map of :meth:`train_batch`, blended
        in as ``w = (1 - lr_t) w + lr_t * batch_mean`` with the decaying learning rate."""
        self._batch(data, num_iteration, verbose, blend=True, fn="train_batch_offline")

    def _batch(self, data: Any, num_iteration: int, verbose: bool, blend: bool, fn: str) -> None:
        d = self._data(data, fn)
        n_it = self._check_iterations(num_iteration, fn)
        eta, sig = self._schedules(np.arange(n_it), n_it)
        lr = eta if blend else np.ones(n_it)
        t0 = time.perf_counter()
        _native.som_train_batch(
            self._codebook(), d, sig, np.ascontiguousarray(lr), self.topology,
            self.neighborhood_function, self.activation_distance,
        )
        if verbose:
            print(
                f"[SOM] {n_it} batch epochs in {time.perf_counter() - t0:.3f} s, "
                f"quantization error: {self.quantization_error(d):.6f}"
            )

    def quantization(self, data: Any) -> np.ndarray:
        """Each sample's code book vector (the weights of its euclidean BMU), (n, input_len)."""
        d = self._data(data, "quantization")
        b = self._bmu(d, "euclidean")[0]
        return self._codebook().reshape(-1, self._input_len)[b]

    def quantization_error(self, data: Any) -> float:
        """Mean euclidean distance between each sample and its BMU's weights."""
        d = self._data(data, "quantization_error")
        return float(np.mean(self._bmu(d, "euclidean")[1], dtype=np.float64))

    def topographic_error(self, data: Any) -> float:
        """Fraction of samples whose best and second-best units (euclidean) are not
        neighbours on the grid (rectangular: grid distance > 1.42, i.e. not among the 8
        neighbours; hexagonal: euclidean distance of the unit centres not 1). NaN (with a
        warning) for a 1 x 1 map."""
        d = self._data(data, "topographic_error")
        if self.x * self.y == 1:
            warnings.warn("SOM.topographic_error: the topographic error is not defined for a 1-by-1 map.", stacklevel=2)
            return float("nan")
        b1, _, b2, _ = self._bmu(d, "euclidean", second=True)
        (i1, j1), (i2, j2) = self._unravel(b1), self._unravel(b2)
        if self.topology == "hexagonal":
            dx = self._xx[i1, j1] - self._xx[i2, j2]
            dy = self._yy[i1, j1] - self._yy[i2, j2]
            return float(1 - np.mean(np.isclose(1, np.hypot(dx, dy))))
        dist = np.hypot((i2 - i1).astype(np.float64), (j2 - j1).astype(np.float64))
        return float(np.mean(dist > 1.42))

    def distance_map(self, scaling: str = "sum") -> np.ndarray:
        """The U-matrix, shape (x, y): each unit's summed (``'sum'``) or mean (``'mean'``)
        euclidean distance to its grid neighbours, divided by the largest value."""
        if scaling not in ("sum", "mean"):
            raise ValueError(f'SOM.distance_map: scaling should be either "sum" or "mean", given {scaling!r}')
        return _native.som_distance_map(self._codebook(), self.topology, scaling)

    def activation_response(self, data: Any) -> np.ndarray:
        """How many samples each unit wins, shape (x, y)."""
        d = self._data(data, "activation_response")
        b = self._bmu(d, self.activation_distance)[0]
        return np.bincount(b, minlength=self.x * self.y).reshape(self.x, self.y).astype(np.float64)

    def _groups(self, data: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        b = self._bmu(data, self.activation_distance)[0]
        order = np.argsort(b, kind="stable")
        units, starts = np.unique(b[order], return_index=True)
        return order, units, starts

    def win_map(self, data: Any, return_indices: bool = False) -> Dict[Tuple[int, int], list]:
        """(i, j) -> list of the samples (or, with ``return_indices``, their indices) that
        unit wins, in data order."""
        d = self._data(data, "win_map")
        src = np.asarray(data) if not return_indices else None
        order, units, starts = self._groups(d)
        out: Dict[Tuple[int, int], list] = defaultdict(list)
        for u, idx in zip(units, np.split(order, starts[1:])):
            key = (int(u) // self.y, int(u) % self.y)
            out[key] = idx.tolist() if return_indices else list(np.asarray(src)[idx])
        return out

    def labels_map(self, data: Any, labels: Sequence[Any]) -> Dict[Tuple[int, int], Counter]:
        """(i, j) -> Counter of the labels of the samples that unit wins."""
        d = self._data(data, "labels_map")
        if len(labels) != d.shape[0]:
            raise ValueError(
                f"SOM.labels_map: data and labels must have the same length, given {d.shape[0]} and {len(labels)}"
            )
        lab = list(labels)
        order, units, starts = self._groups(d)
        out: Dict[Tuple[int, int], Counter] = defaultdict(list)  # type: ignore[assignment]
        for u, idx in zip(units, np.split(order, starts[1:])):
            out[(int(u) // self.y, int(u) % self.y)] = Counter(lab[i] for i in idx)
        return out

    # ------------------------------------------------------------------ scikit-learn style

    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        num_iteration: Optional[int] = None,
        method: str = "batch",
        init: Optional[str] = "pca",
        verbose: bool = False,
    ) -> "SOM":
        """Initialises and trains the map; returns ``self``.

        ``init``: ``'pca'`` (:meth:`pca_weights_init`; random when input_len == 1),
        ``'random'`` (:meth:`random_weights_init`) or None (keep the current weights).
        ``method``: ``'batch'`` (:meth:`train_batch`, default ``num_iteration`` 30
        epochs) or ``'online'`` (:meth:`train` in random order, default 10 passes over the
        data).
        """
        d = self._data(X, "fit")
        if method not in ("batch", "online"):
            raise ValueError(f"SOM.fit: method must be 'batch' or 'online', given {method!r}")
        if init == "pca" and self._input_len > 1 and d.shape[0] > 1:
            self.pca_weights_init(d)
        elif init in ("pca", "random"):
            self.random_weights_init(d)
        elif init is not None:
            raise ValueError(f"SOM.fit: init must be 'pca', 'random' or None, given {init!r}")
        if method == "batch":
            self.train_batch(d, 30 if num_iteration is None else num_iteration, verbose=verbose)
        else:
            n_it = 10 * d.shape[0] if num_iteration is None else num_iteration
            self.train(d, n_it, random_order=True, verbose=verbose)
        return self

    def transform(self, X: Any, kind: str = "distances") -> np.ndarray:
        """Features of each sample: ``'distances'`` -> (n, x * y) activation distances to
        every unit (unit i * y + j); ``'coordinates'`` -> (n, 2) int64 grid coordinates of
        its winner."""
        d = self._data(X, "transform")
        if kind == "distances":
            w = self._codebook().reshape(self.x * self.y, self._input_len)
            return _native.som_distances(d, w, self.activation_distance)
        if kind == "coordinates":
            i, j = self._unravel(self._bmu(d, self.activation_distance)[0])
            return np.stack([i, j], axis=1)
        raise ValueError(f"SOM.transform: kind must be 'distances' or 'coordinates', given {kind!r}")

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        """``fit(X, **fit_params).transform(X)``."""
        return self.fit(X, **fit_params).transform(X)
