"""Small data sets for examples and tests: generators and the real 8x8 digits.

- :func:`make_xor`: the XOR truth table, or noisy samples of the XOR quadrant problem.
- :func:`make_moons`: two interleaving half circles (scikit-learn's formula).
- :func:`make_regression`: a random linear regression problem (scikit-learn's recipe).
- :func:`load_digits`: the UCI optical-recognition digits (1,797 8x8 images, 10 classes),
  read from the copy of scikit-learn's ``digits.csv.gz`` shipped in this package, so it
  works offline (credits and licence in ``datasets/data/NOTICE.txt``).

Randomness: ``random_state`` is an int seed (a fresh ``numpy.random.Generator``), a
``numpy.random.Generator``, or None for the library generator (``ferrograd.manual_seed``).
Results follow scikit-learn's formulas but not its random streams (NumPy ``Generator``
rather than ``RandomState``), so values differ from scikit-learn's for the same seed.
"""

from __future__ import annotations

import gzip
import os
from typing import Any, Optional, Tuple, Union

import numpy as np

from .._random import generator as _library_generator

__all__ = ["Bunch", "make_xor", "make_moons", "make_regression", "load_digits"]

RandomState = Union[None, int, np.random.Generator]
_DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def _rng(random_state: RandomState, fn: str) -> np.random.Generator:
    if random_state is None:
        return _library_generator()
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool) and random_state >= 0:
        return np.random.default_rng(int(random_state))
    raise TypeError(
        f"{fn}: random_state must be None, a non-negative int or a numpy.random.Generator, given {random_state!r}"
    )


def _float_dtype(dtype: Any, fn: str) -> np.dtype:
    d = np.dtype(dtype)
    if d not in (np.float32, np.float64):
        raise TypeError(f"{fn}: dtype must be float32 or float64, given {d}")
    return d


class Bunch(dict):
    """A dict whose keys are also attributes (``bunch.data`` is ``bunch['data']``), like
    scikit-learn's."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def __dir__(self):
        return list(self.keys())


def make_xor(
    n_samples: Optional[int] = None,
    noise: float = 0.0,
    random_state: RandomState = None,
    dtype: Any = np.float32,
) -> Tuple[np.ndarray, np.ndarray]:
    """The XOR problem.

    With ``n_samples=None``: the truth table, X (4, 2) = [[0,0],[0,1],[1,0],[1,1]] and
    y (4,) = [0, 1, 1, 0] (int64) (with ``noise`` > 0, noise is added to those four). With ``n_samples=n``: n points drawn uniformly from the
    four corners, plus Gaussian noise of standard deviation ``noise`` on X; y (n,) is the XOR
    of the corner's coordinates. For a one-output network use
    ``y.reshape(-1, 1).astype(np.float32)`` as the target.
    """
    d = _float_dtype(dtype, "make_xor")
    corners = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=d)
    labels = np.array([0, 1, 1, 0], dtype=np.int64)
    if noise < 0:
        raise ValueError(f"make_xor: noise must be >= 0, given {noise}")
    if n_samples is None:
        if noise == 0:
            return corners.copy(), labels.copy()
        gen = _rng(random_state, "make_xor")
        pick = np.arange(4)
    else:
        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
            raise ValueError(f"make_xor: n_samples must be a positive int or None, given {n_samples!r}")
        gen = _rng(random_state, "make_xor")
        pick = gen.integers(0, 4, size=int(n_samples))
    X = corners[pick].astype(np.float64)
    if noise > 0:
        X += gen.normal(scale=noise, size=X.shape)
    return X.astype(d), labels[pick]


def make_moons(
    n_samples: Union[int, Tuple[int, int]] = 100,
    *,
    shuffle: bool = True,
    noise: Optional[float] = None,
    random_state: RandomState = None,
    dtype: Any = np.float32,
) -> Tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles (scikit-learn's ``make_moons``).

    Outer moon: ``(cos t, sin t)``, inner moon: ``(1 - cos t, 1 - sin t - 0.5)``, ``t`` evenly
    spaced in [0, pi]. ``n_samples`` is the total (the outer gets ``n // 2``) or a pair
    (outer, inner). Returns X (n, 2) in ``dtype`` and y (n,) int64 (0 outer, 1 inner);
    optionally shuffled, then Gaussian noise of standard deviation ``noise`` is added to X.
    """
    d = _float_dtype(dtype, "make_moons")
    if isinstance(n_samples, (tuple, list)):
        if len(n_samples) != 2:
            raise ValueError(f"make_moons: n_samples as a tuple needs two elements, given {n_samples!r}")
        n_out, n_in = (int(v) for v in n_samples)
    else:
        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 0:
            raise ValueError(f"make_moons: n_samples must be a non-negative int or a pair, given {n_samples!r}")
        n_out = int(n_samples) // 2
        n_in = int(n_samples) - n_out
    if n_out < 0 or n_in < 0:
        raise ValueError(f"make_moons: sample counts must be >= 0, given {n_samples!r}")
    gen = _rng(random_state, "make_moons")
    t_out = np.linspace(0, np.pi, n_out)
    t_in = np.linspace(0, np.pi, n_in)
    X = np.vstack(
        [
            np.append(np.cos(t_out), 1 - np.cos(t_in)),
            np.append(np.sin(t_out), 1 - np.sin(t_in) - 0.5),
        ]
    ).T
    y = np.hstack([np.zeros(n_out, dtype=np.int64), np.ones(n_in, dtype=np.int64)])
    if shuffle:
        perm = gen.permutation(X.shape[0])
        X, y = X[perm], y[perm]
    if noise is not None:
        if noise < 0:
            raise ValueError(f"make_moons: noise must be >= 0, given {noise}")
        X = X + gen.normal(scale=noise, size=X.shape)
    return X.astype(d), y


def make_regression(
    n_samples: int = 100,
    n_features: int = 100,
    *,
    n_informative: int = 10,
    n_targets: int = 1,
    bias: float = 0.0,
    noise: float = 0.0,
    shuffle: bool = True,
    coef: bool = False,
    random_state: RandomState = None,
    dtype: Any = np.float32,
):
    """A random linear regression problem (scikit-learn's ``make_regression`` recipe).

    X (n_samples, n_features) is standard normal; the ground-truth coefficients are 0
    except for ``n_informative`` features drawn uniformly from [0, 100); ``y = X @ coef +
    bias + N(0, noise**2)``. y has shape (n_samples,) for one target, else (n_samples,
    n_targets). With ``shuffle`` the samples and the feature order are permuted. Returns
    ``(X, y)``, or ``(X, y, coef)`` with ``coef=True`` (coef (n_features,) or
    (n_features, n_targets)), all in ``dtype``.
    """
    d = _float_dtype(dtype, "make_regression")
    for name, v, lo in (("n_samples", n_samples, 1), ("n_features", n_features, 1), ("n_targets", n_targets, 1), ("n_informative", n_informative, 0)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"make_regression: {name} must be an int >= {lo}, given {v!r}")
    if noise < 0:
        raise ValueError(f"make_regression: noise must be >= 0, given {noise}")
    gen = _rng(random_state, "make_regression")
    n_informative = min(n_features, n_informative)
    X = gen.standard_normal(size=(n_samples, n_features))
    truth = np.zeros((n_features, n_targets))
    truth[:n_informative, :] = 100 * gen.uniform(size=(n_informative, n_targets))
    y = X @ truth + bias
    if shuffle:
        perm = gen.permutation(n_samples)
        X, y = X[perm], y[perm]
        cols = gen.permutation(n_features)
        X = X[:, cols]
        truth = truth[cols]
    if noise > 0.0:
        y = y + gen.normal(scale=noise, size=y.shape)
    y = np.squeeze(y, axis=1) if n_targets == 1 else y
    if coef:
        c = truth[:, 0] if n_targets == 1 else truth
        return X.astype(d), y.astype(d), c.astype(d)
    return X.astype(d), y.astype(d)


_DIGITS_CACHE: dict = {}


def _read_digits() -> np.ndarray:
    if "raw" not in _DIGITS_CACHE:
        path = os.path.join(_DATA_DIR, "digits.csv.gz")
        with gzip.open(path, "rt") as f:
            raw = np.loadtxt(f, delimiter=",", dtype=np.int64)
        if raw.shape != (1797, 65):
            raise RuntimeError(f"load_digits: {path} holds an array of shape {raw.shape}, expected (1797, 65)")
        raw.setflags(write=False)
        _DIGITS_CACHE["raw"] = raw
    return _DIGITS_CACHE["raw"]


def _digits_descr() -> str:
    path = os.path.join(_DATA_DIR, "digits.rst")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    with open(os.path.join(_DATA_DIR, "NOTICE.txt"), encoding="utf-8") as f:
        notice = f.read()
    return text + "\n\nSource and licence\n------------------\n\n" + notice


def load_digits(*, n_class: int = 10, return_X_y: bool = False, dtype: Any = np.float32):
    """The 8x8 handwritten digits (UCI optical recognition, the copy in scikit-learn).

    Returns a :class:`Bunch` with ``data`` (n, 64) of pixel counts 0..16 in ``dtype``
    (float32 by default), ``target`` (n,) int64 labels, ``images`` (n, 8, 8) (the same
    pixels), ``target_names`` (n_class,) and ``DESCR`` (the data set's description and
    credits); n = 1797 for all 10 classes. ``n_class`` keeps only labels ``< n_class``.
    With ``return_X_y=True`` returns ``(data, target)`` instead. The file is read once and
    cached; fresh arrays are returned on each call.
    """
    d = _float_dtype(dtype, "load_digits")
    if isinstance(n_class, bool) or not isinstance(n_class, (int, np.integer)) or not 1 <= n_class <= 10:
        raise ValueError(f"load_digits: n_class must be an int in [1, 10], given {n_class!r}")
    raw = _read_digits()
    data = raw[:, :-1].astype(d)
    target = raw[:, -1].astype(np.int64)
    if n_class < 10:
        keep = target < n_class
        data, target = data[keep], target[keep]
    if return_X_y:
        return data, target
    return Bunch(
        data=data,
        target=target,
        images=data.reshape(-1, 8, 8).copy(),
        target_names=np.arange(10)[:n_class],
        feature_names=[f"pixel_{r}_{c}" for r in range(8) for c in range(8)],
        DESCR=_digits_descr(),
    )
