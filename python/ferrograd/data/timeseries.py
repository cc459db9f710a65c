"""Time-series tools: sliding windows, splits in time order, scalers, a seasonal-naive
baseline.

A series is a NumPy array (or Tensor) of shape (T,) -- one variable -- or (T, F) -- F
variables observed at the same T time steps, time first.

- :func:`sliding_windows` cuts it into supervised pairs: inputs X of shape
  (n_windows, input_len, F) and targets y of shape (n_windows, horizon) (one target
  variable) or (n_windows, horizon, k) (k target variables); :func:`window_dataset` wraps
  them in a :class:`~ferrograd.data.TensorDataset` for a :class:`~ferrograd.data.DataLoader`.
- :func:`temporal_split` splits the series in time order (train, validation[, test]),
  never shuffling; with ``context=input_len`` the later parts start with the last
  ``input_len`` steps of the part before, so their first window's target begins right at
  the boundary while no target ever crosses it.
- :class:`StandardScaler` and :class:`MinMaxScaler` are fitted on the training part only and
  then applied to every part; ``inverse_transform`` maps predictions back to the original
  units (optionally for selected variables only).
- :func:`seasonal_naive` is the baseline to beat: it repeats the last observed season.

Typical use::

    train, val = temporal_split(series, val_size=0.2, context=48)
    scaler = StandardScaler().fit(train)
    Xtr, ytr = sliding_windows(scaler.transform(train), input_len=48, horizon=12)
    Xva, yva = sliding_windows(scaler.transform(val), input_len=48, horizon=12)
    naive = seasonal_naive(Xva, season=24, horizon=12)   # same shape as yva
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np

from ..tensor import Tensor
from . import TensorDataset

__all__ = [
    "sliding_windows",
    "num_windows",
    "window_dataset",
    "temporal_split",
    "StandardScaler",
    "MinMaxScaler",
    "seasonal_naive",
]

Target = Union[None, int, Sequence[int]]


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _series(op: str, series: Any, allow_nd: bool = False) -> Tuple[np.ndarray, bool]:
    """(the series as a float array of shape (T, F), whether it was 1-D); ValueError for
    the wrong rank, non-numbers or NaN/inf values."""
    arr = series.data if isinstance(series, Tensor) else np.asarray(series)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{op}: expected a numeric series, given dtype {arr.dtype}")
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float32)
    if arr.ndim not in (1, 2) and not allow_nd:
        raise ValueError(f"{op}: expected a series of shape (T,) or (T, n_features), given shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        pos = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{op}: expected finite values, given {arr[pos]} at index {pos if len(pos) > 1 else pos[0]} "
            f"({int(bad.sum())} non-finite of {arr.size}); fill or drop missing values first"
        )
    one_d = arr.ndim == 1
    return (arr[:, None] if one_d else arr), one_d


def _positive(op: str, name: str, v: Any) -> int:
    if not _is_int(v) or v < 1:
        raise ValueError(f"{op}: {name} must be an int >= 1, given {v!r}")
    return int(v)


def _target_cols(op: str, target: Target, n_features: int) -> Tuple[np.ndarray, bool]:
    """(the target columns, whether y keeps a feature axis)."""
    if target is None:
        return np.arange(n_features), n_features > 1
    if _is_int(target):
        cols, keep = np.asarray([int(target)]), False
    else:
        try:
            cols = np.asarray(list(target), dtype=np.int64)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise TypeError(f"{op}: target must be None, an int or a sequence of ints, given {target!r}") from None
        if cols.ndim != 1 or cols.size == 0:
            raise ValueError(f"{op}: target must name at least one column, given {target!r}")
        keep = True
    if cols.min() < -n_features or cols.max() >= n_features:
        raise ValueError(
            f"{op}: target columns must lie in [0, {n_features - 1}] for a series with {n_features} "
            f"feature(s), given {target!r}"
        )
    return cols % n_features, keep


def num_windows(length: int, input_len: int, horizon: int = 1, stride: int = 1) -> int:
    """The number of windows :func:`sliding_windows` cuts from a series of ``length`` steps:
    floor((length - input_len - horizon) / stride) + 1, or 0 when one window does not fit."""
    span = input_len + horizon
    return 0 if length < span else (length - span) // stride + 1


def sliding_windows(
    series: Any,
    input_len: int,
    horizon: int = 1,
    stride: int = 1,
    target: Target = None,
) -> Tuple[np.ndarray, np.ndarray]:
    """Cuts a series into (input window, following values) pairs.

    Window i covers steps s = i * stride: the inputs are ``series[s : s + input_len]`` and
    the targets the next ``horizon`` steps ``series[s + input_len : s + input_len +
    horizon]`` (of the ``target`` columns).

    Args:
        series: (T,) or (T, F) values, finite.
        input_len: number of past steps the model sees (>= 1).
        horizon: number of future steps to predict (>= 1).
        stride: steps between the starts of consecutive windows (>= 1).
        target: which variables to predict: None (all), an int (one column) or a sequence
            of ints.

    Returns:
        X of shape (n_windows, input_len, F) (F = 1 for a 1-D series) and y of shape
        (n_windows, horizon) when one variable is predicted (a 1-D series, or an int
        ``target``) or (n_windows, horizon, k) for k target variables (``target`` None with
        F > 1, or a sequence). n_windows = (T - input_len - horizon) // stride + 1. Both are
        new C-contiguous arrays in the series' float dtype (integers become float32).

    Raises ValueError (naming expected and given) when a window does not fit in the
    series, a size is < 1, or the series holds NaN / inf.
    """
    op = "sliding_windows"
    x2, _ = _series(op, series)
    input_len = _positive(op, "input_len", input_len)
    horizon = _positive(op, "horizon", horizon)
    stride = _positive(op, "stride", stride)
    t, f = x2.shape
    if input_len + horizon > t:
        raise ValueError(
            f"{op}: a window needs input_len + horizon = {input_len} + {horizon} = {input_len + horizon} "
            f"steps, given a series of {t} steps"
        )
    cols, keep = _target_cols(op, target, f)
    n = num_windows(t, input_len, horizon, stride)
    # (T - span + 1, F, span) views, every stride-th start; one copy each for X and y.
    view = np.lib.stride_tricks.sliding_window_view(x2, input_len + horizon, axis=0)[::stride][:n]
    X = np.array(view[:, :, :input_len].transpose(0, 2, 1), order="C", copy=True)
    y = view[:, cols, input_len:].transpose(0, 2, 1)
    y = np.array(y if keep else y[:, :, 0], order="C", copy=True)
    return X, y


def window_dataset(
    series: Any,
    input_len: int,
    horizon: int = 1,
    stride: int = 1,
    target: Target = None,
) -> TensorDataset:
    """:func:`sliding_windows` as a :class:`~ferrograd.data.TensorDataset` of (X, y):
    item i is (X[i] of shape (input_len, F), y[i] of shape (horizon,) or (horizon, k)), and a
    :class:`~ferrograd.data.DataLoader` gives batches (B, input_len, F), (B, horizon[, k])."""
    X, y = sliding_windows(series, input_len, horizon, stride, target)
    return TensorDataset(X, y)


def _part_size(op: str, name: str, v: Any, t: int) -> int:
    if v is None:
        return 0
    if isinstance(v, (float, np.floating)):
        if not 0.0 <= float(v) < 1.0:
            raise ValueError(f"{op}: {name} as a fraction must lie in [0, 1), given {v!r}")
        return int(round(float(v) * t))
    if not _is_int(v) or v < 0:
        raise ValueError(f"{op}: {name} must be a fraction in [0, 1) or a number of steps >= 0, given {v!r}")
    return int(v)


def temporal_split(
    series: Any,
    val_size: Union[float, int] = 0.2,
    test_size: Union[float, int, None] = None,
    context: int = 0,
) -> Tuple[Any, ...]:
    """Splits a series in time order into (train, val) or (train, val, test).

    The parts are consecutive and never shuffled: train = the first steps, then the
    validation steps, then (if ``test_size``) the last steps. Sizes are fractions of the
    series' length (floats in [0, 1), rounded to whole steps) or numbers of steps (ints).

    ``context`` (usually the model's ``input_len``): the validation and test parts are
    prefixed with the last ``context`` steps of the part before them, so that windows cut
    from a part (:func:`sliding_windows`) predict targets that start right at its first own
    step; the prefix only ever serves as *input* -- every target of a part's windows lies in
    that part, so nothing from later leaks into an earlier part's targets.

    Args:
        series: (T,) or (T, F) array or Tensor (returned parts are views of the same
            kind: arrays for an array, Tensors for a Tensor).

    Returns:
        (train, val) or (train, val, test), each of shape (T_part, ...) with the prefix
        included in T_part. Raises ValueError when a part would be empty or the sizes do not
        fit in the series.
    """
    op = "temporal_split"
    arr = series.data if isinstance(series, Tensor) else np.asarray(series)
    if arr.ndim not in (1, 2):
        raise ValueError(f"{op}: expected a series of shape (T,) or (T, n_features), given shape {arr.shape}")
    t = arr.shape[0]
    n_val = _part_size(op, "val_size", val_size, t)
    n_test = _part_size(op, "test_size", test_size, t)
    if not _is_int(context) or context < 0:
        raise ValueError(f"{op}: context must be an int >= 0, given {context!r}")
    n_train = t - n_val - n_test
    if n_val < 1 or (test_size is not None and n_test < 1) or n_train < 1:
        raise ValueError(
            f"{op}: expected non-empty parts, given a series of {t} steps split into train {n_train}, "
            f"val {n_val}" + (f", test {n_test}" if test_size is not None else "") + f" (val_size={val_size!r}, test_size={test_size!r})"
        )
    if context > n_train:
        raise ValueError(f"{op}: context {context} is longer than the training part ({n_train} steps)")
    if test_size is not None and context > n_val:
        raise ValueError(f"{op}: context {context} is longer than the validation part ({n_val} steps)")
    b1, b2 = n_train, n_train + n_val
    parts = [arr[:b1], arr[b1 - context : b2]]
    if test_size is not None:
        parts.append(arr[b2 - context :])
    if isinstance(series, Tensor):
        return tuple(Tensor._wrap(p) for p in parts)
    return tuple(parts)


# ----------------------------------------------------------------------------- scalers


class _Scaler:
    """Shared logic: statistics per variable (column), fitted on a (T,) or (T, F) series;
    transforms apply them along the last axis of any array whose last axis has F entries (a
    1-D fit gives scalar statistics that apply to arrays of any shape)."""

    _name = "Scaler"

    def __init__(self) -> None:
        self._offset: Optional[np.ndarray] = None  # x_scaled = (x - offset) / scale
        self._scale: Optional[np.ndarray] = None
        self.n_features_in_: Optional[int] = None

    def _stats(self, x2: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def fit(self, series: Any) -> "_Scaler":
        """Computes the statistics of ``series`` ((T,) or (T, F), time first), which should
        be the training part only. Returns self."""
        x2, one_d = _series(f"{self._name}.fit", series)
        if x2.shape[0] < 1:
            raise ValueError(f"{self._name}.fit: expected at least one time step, given shape {x2.shape}")
        off, scale = self._stats(x2.astype(np.float64))
        self._offset, self._scale = (off[0], scale[0]) if one_d else (off, scale)
        self.n_features_in_ = x2.shape[1]
        return self

    def _params(self, op: str, arr: np.ndarray, feature: Target) -> Tuple[np.ndarray, np.ndarray]:
        if self._offset is None or self._scale is None:
            raise RuntimeError(f"{self._name}.{op}: call fit(train_series) first")
        off, scale = self._offset, self._scale
        if feature is not None:
            if off.ndim == 0:
                raise ValueError(f"{self._name}.{op}: feature= needs a scaler fitted on a (T, F) series; this one was fitted on a 1-D series")
            cols, _ = _target_cols(f"{self._name}.{op}", feature, off.shape[0])
            off, scale = off[cols], scale[cols]
            if _is_int(feature):
                return off[0], scale[0]
        if off.ndim == 1 and (arr.ndim == 0 or arr.shape[-1] != off.shape[0]):
            raise ValueError(
                f"{self._name}.{op}: expected an array whose last axis has {off.shape[0]} feature(s), "
                f"given shape {arr.shape}" + ("" if feature is not None else "; pass feature=k for one column")
            )
        return off, scale

    def _apply(self, op: str, x: Any, feature: Target, inverse: bool) -> Any:
        is_t = isinstance(x, Tensor)
        arr = x.data if is_t else np.asarray(x)
        if arr.dtype.kind not in "fiub":
            raise TypeError(f"{self._name}.{op}: expected numbers, given dtype {arr.dtype}")
        dt = arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float32)
        off, scale = self._params(op, arr, feature)
        off, scale = np.asarray(off, dt), np.asarray(scale, dt)
        out = (arr * scale + off) if inverse else ((arr - off) / scale)
        out = np.asarray(out, dtype=dt)
        return Tensor._wrap(out) if is_t else out

    def transform(self, x: Any, feature: Target = None) -> Any:
        """Scales ``x`` (any shape whose last axis holds the F variables, or any shape after a
        1-D fit; ``feature=k`` (or a list) uses the statistics of those columns only).
        Returns a new array (a Tensor for a Tensor) in x's float dtype."""
        return self._apply("transform", x, feature, inverse=False)

    def inverse_transform(self, x: Any, feature: Target = None) -> Any:
        """Maps scaled values back to the original units; the inverse of :meth:`transform`
        (``feature=k`` for predictions of column k, e.g. y of shape (n, horizon))."""
        return self._apply("inverse_transform", x, feature, inverse=True)

    def fit_transform(self, series: Any) -> Any:
        """``fit(series)`` then ``transform(series)``."""
        return self.fit(series).transform(series)


class StandardScaler(_Scaler):
    """Standardisation per variable: (x - mean) / std, with the mean and the population
    standard deviation (ddof=0, as scikit-learn) of the training series. A constant
    variable gets std 1. Attributes after ``fit``: ``mean_`` and ``scale_`` (shape (F,),
    or scalars after fitting a 1-D series)."""

    _name = "StandardScaler"

    def _stats(self, x2: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        mean = x2.mean(axis=0)
        std = x2.std(axis=0)
        return mean, np.where(std > 0, std, 1.0)

    @property
    def mean_(self) -> Optional[np.ndarray]:
        return self._offset

    @property
    def scale_(self) -> Optional[np.ndarray]:
        return self._scale


class MinMaxScaler(_Scaler):
    """Scaling per variable to ``feature_range`` (default (0, 1)):
    lo + (x - min) * (hi - lo) / (max - min), with min and max of the training series (later
    parts may fall outside the range). A constant variable maps to ``lo``. Attributes after
    ``fit``: ``data_min_`` and ``data_max_`` (shape (F,), or scalars for a 1-D fit)."""

    _name = "MinMaxScaler"

    def __init__(self, feature_range: Tuple[float, float] = (0.0, 1.0)) -> None:
        super().__init__()
        try:
            lo, hi = (float(v) for v in feature_range)
        except (TypeError, ValueError):
            raise ValueError(f"MinMaxScaler: feature_range must be a pair (min, max), given {feature_range!r}") from None
        if not lo < hi:
            raise ValueError(f"MinMaxScaler: feature_range needs min < max, given {feature_range!r}")
        self.feature_range = (lo, hi)
        self.data_min_: Optional[np.ndarray] = None
        self.data_max_: Optional[np.ndarray] = None

    def _stats(self, x2: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        lo, hi = self.feature_range
        mn, mx = x2.min(axis=0), x2.max(axis=0)
        rng = np.where(mx > mn, mx - mn, 1.0)
        scale = rng / (hi - lo)  # x_scaled = (x - offset) / scale
        offset = mn - lo * scale
        self.data_min_, self.data_max_ = mn, mx
        return offset, scale

    def fit(self, series: Any) -> "MinMaxScaler":
        super().fit(series)
        if self._offset is not None and np.ndim(self._offset) == 0:
            self.data_min_, self.data_max_ = self.data_min_[0], self.data_max_[0]  # type: ignore[index]
        return self


# ----------------------------------------------------------------------------- baseline


def seasonal_naive(inputs: Any, season: int, horizon: int, target: Target = None) -> np.ndarray:
    """The seasonal-naive forecast: each future step repeats the value one season earlier,
    i.e. for a window ending at step t, the forecast for t + h (h = 1..horizon) is the last
    observed value at t + h - season * ceil(h / season).

    Args:
        inputs: input windows of shape (n, input_len) or (n, input_len, F) (the X of
            :func:`sliding_windows`), with input_len >= season.
        season: the season length in steps (e.g. 7 for daily data with a weekly cycle; 1
            gives the naive "last value" forecast).
        horizon: the number of steps to forecast.
        target: as in :func:`sliding_windows`: which variables to forecast.

    Returns:
        An array shaped like the y of :func:`sliding_windows` for the same ``target``:
        (n, horizon) for one variable, (n, horizon, k) for k variables.
    """
    op = "seasonal_naive"
    arr = inputs.data if isinstance(inputs, Tensor) else np.asarray(inputs)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise ValueError(f"{op}: expected input windows of shape (n, input_len) or (n, input_len, F), given shape {arr.shape}")
    season = _positive(op, "season", season)
    horizon = _positive(op, "horizon", horizon)
    if arr.shape[1] < season:
        raise ValueError(f"{op}: input windows of {arr.shape[1]} steps are shorter than the season of {season} steps")
    cols, keep = _target_cols(op, target, arr.shape[2])
    last = arr[:, arr.shape[1] - season :, :][:, :, cols]  # (n, season, k)
    steps = np.arange(horizon) % season
    out = last[:, steps, :]
    return np.array(out if keep else out[:, :, 0], order="C", copy=True)
