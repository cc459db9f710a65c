"""ferrograd.data.timeseries: windows against hand-computed values and a loop reference,
time-ordered splits (no leakage), scalers against NumPy formulas, the seasonal-naive
baseline, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ferrograd import Tensor
from ferrograd.data import DataLoader
from ferrograd.data import timeseries as ts


def ref_windows(series: np.ndarray, input_len: int, horizon: int, stride: int, target=None):
    """A plain loop over window starts (the documented definition)."""
    s2 = series[:, None] if series.ndim == 1 else series
    cols = list(range(s2.shape[1])) if target is None else ([target] if isinstance(target, int) else list(target))
    keep = (target is None and s2.shape[1] > 1) or (target is not None and not isinstance(target, int))
    X, y = [], []
    start = 0
    while start + input_len + horizon <= s2.shape[0]:
        X.append(s2[start : start + input_len])
        yy = s2[start + input_len : start + input_len + horizon][:, cols]
        y.append(yy if keep else yy[:, 0])
        start += stride
    return np.array(X), np.array(y)


def test_windows_hand_computed_1d():
    s = np.arange(10.0)
    X, y = ts.sliding_windows(s, input_len=3, horizon=2, stride=2)
    assert X.shape == (3, 3, 1) and y.shape == (3, 2)
    np.testing.assert_array_equal(X[..., 0], [[0, 1, 2], [2, 3, 4], [4, 5, 6]])
    np.testing.assert_array_equal(y, [[3, 4], [5, 6], [7, 8]])
    assert ts.num_windows(10, 3, 2, 2) == 3
    # Exactly one window fits.
    X, y = ts.sliding_windows(np.arange(5.0), 4, 1)
    np.testing.assert_array_equal(X[..., 0], [[0, 1, 2, 3]])
    np.testing.assert_array_equal(y, [[4]])


def test_windows_hand_computed_multivariate_and_targets():
    s = np.stack([np.arange(6.0), 10 * np.arange(6.0)], axis=1)  # (6, 2)
    X, y = ts.sliding_windows(s, input_len=2, horizon=1)
    assert X.shape == (4, 2, 2) and y.shape == (4, 1, 2)
    np.testing.assert_array_equal(X[1], [[1, 10], [2, 20]])
    np.testing.assert_array_equal(y[1], [[3, 30]])
    X, y = ts.sliding_windows(s, 2, 2, target=1)
    assert y.shape == (3, 2)
    np.testing.assert_array_equal(y, [[20, 30], [30, 40], [40, 50]])
    _, y = ts.sliding_windows(s, 2, 2, target=[1])
    assert y.shape == (3, 2, 1)
    _, y = ts.sliding_windows(s, 2, 1, target=-2)
    np.testing.assert_array_equal(y, [[2], [3], [4], [5]])


@given(
    t=st.integers(2, 40),
    f=st.integers(1, 3),
    one_d=st.booleans(),
    input_len=st.integers(1, 12),
    horizon=st.integers(1, 6),
    stride=st.integers(1, 5),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 1000),
)
def test_windows_match_loop_reference(t, f, one_d, input_len, horizon, stride, dtype, seed):
    rng = np.random.default_rng(seed)
    series = rng.standard_normal((t,) if one_d else (t, f)).astype(dtype)
    if input_len + horizon > t:
        with pytest.raises(ValueError, match=f"needs input_len \\+ horizon = .* = {input_len + horizon} steps, given a series of {t} steps"):
            ts.sliding_windows(series, input_len, horizon, stride)
        return
    X, y = ts.sliding_windows(series, input_len, horizon, stride)
    Xr, yr = ref_windows(series, input_len, horizon, stride)
    assert X.dtype == dtype and y.dtype == dtype
    assert X.flags.c_contiguous and y.flags.c_contiguous
    assert X.shape[0] == ts.num_windows(t, input_len, horizon, stride) == (t - input_len - horizon) // stride + 1
    np.testing.assert_array_equal(X, Xr)
    np.testing.assert_array_equal(y, yr)
    # The arrays are copies: writing to them leaves the series alone.
    X[...] = 7
    y[...] = 7
    assert not (series == 7).any()


def test_window_dataset_with_dataloader():
    s = np.arange(20.0, dtype=np.float32)
    ds = ts.window_dataset(s, input_len=4, horizon=2, stride=3)
    assert len(ds) == 5
    batches = list(DataLoader(ds, batch_size=2))
    xb, yb = batches[0]
    assert xb.shape == (2, 4, 1) and yb.shape == (2, 2)
    np.testing.assert_array_equal(xb.data[1, :, 0], [3, 4, 5, 6])
    np.testing.assert_array_equal(yb.data[1], [7, 8])
    assert [b[0].shape[0] for b in batches] == [2, 2, 1]


def test_temporal_split_order_sizes_and_context():
    s = np.arange(100.0)
    tr, va = ts.temporal_split(s, val_size=0.2)
    np.testing.assert_array_equal(tr, np.arange(80.0))
    np.testing.assert_array_equal(va, np.arange(80.0, 100.0))
    tr, va, te = ts.temporal_split(s, val_size=10, test_size=0.3, context=5)
    assert tr[-1] == 59 and len(tr) == 60
    np.testing.assert_array_equal(va, np.arange(55.0, 70.0))  # 5 context + 10 own
    np.testing.assert_array_equal(te, np.arange(65.0, 100.0))
    # No leakage: every target of a part's windows lies in that part's own steps, and the
    # first validation target is the first validation step.
    _, yv = ts.sliding_windows(va, input_len=5, horizon=3)
    assert yv.min() >= 60 and yv.max() < 70 and yv[0, 0] == 60
    _, yt = ts.sliding_windows(tr, input_len=5, horizon=3)
    assert yt.max() < 60
    # Tensors in, Tensors out (views).
    parts = ts.temporal_split(Tensor(np.arange(10.0)), 0.3)
    assert all(isinstance(p, Tensor) for p in parts) and parts[1].shape == (3,)
    # Multivariate: split along time only.
    m = np.zeros((50, 3))
    assert [p.shape for p in ts.temporal_split(m, 0.2, 0.2)] == [(30, 3), (10, 3), (10, 3)]


def test_standard_scaler_fitted_on_train_only():
    rng = np.random.default_rng(0)
    s = rng.standard_normal((200, 3)) * [1.0, 5.0, 0.1] + [0.0, 10.0, -3.0]
    s[:, 2] = np.linspace(0, 1, 200)  # a trend: later values leave the training range
    tr, va = ts.temporal_split(s, 0.25)
    sc = ts.StandardScaler().fit(tr)
    np.testing.assert_allclose(sc.mean_, tr.mean(0))
    np.testing.assert_allclose(sc.scale_, tr.std(0))  # ddof=0
    z = sc.transform(va)
    np.testing.assert_allclose(z, (va - tr.mean(0)) / tr.std(0))
    assert z[:, 2].min() > 1.5  # scaled with the training statistics, not re-centred
    np.testing.assert_allclose(sc.inverse_transform(z), va)
    # One column of predictions back to the original units.
    np.testing.assert_allclose(sc.inverse_transform(z[:, 1:2].reshape(-1, 5), feature=1), va[:, 1].reshape(-1, 5))
    np.testing.assert_allclose(sc.transform(va[:, [0, 2]], feature=[0, 2]), z[:, [0, 2]])
    # A constant column gets scale 1; float32 stays float32.
    c = np.ones((10, 2), np.float32)
    c[:, 1] = np.arange(10)
    out = ts.StandardScaler().fit_transform(c)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[:, 0], 0)


def test_minmax_scaler_and_1d_fit():
    tr = np.array([2.0, 4.0, 6.0, 10.0])
    sc = ts.MinMaxScaler(feature_range=(-1, 1)).fit(tr)
    assert sc.data_min_ == 2.0 and sc.data_max_ == 10.0
    np.testing.assert_allclose(sc.transform(tr), [-1, -0.5, 0, 1])
    y = np.array([[12.0, 2.0], [6.0, 4.0]])  # a 1-D fit applies to arrays of any shape
    np.testing.assert_allclose(sc.transform(y), [[1.5, -1.0], [0.0, -0.5]])
    np.testing.assert_allclose(sc.inverse_transform(sc.transform(y)), y)
    t = sc.transform(Tensor(tr.astype(np.float32)))
    assert isinstance(t, Tensor) and t.dtype == np.float32
    m = np.array([[0.0, 5.0], [10.0, 5.0]])
    np.testing.assert_allclose(ts.MinMaxScaler().fit_transform(m), [[0, 0], [1, 0]])


def test_seasonal_naive_hand_computed():
    s = np.array([1.0, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    X, y = ts.sliding_windows(s, input_len=4, horizon=5)
    pred = ts.seasonal_naive(X, season=3, horizon=5)
    assert pred.shape == y.shape == (2, 5)
    # Window 0 sees 1..4; the last season is (2, 3, 4), repeated.
    np.testing.assert_array_equal(pred[0], [2, 3, 4, 2, 3])
    np.testing.assert_array_equal(ts.seasonal_naive(X, 1, 2)[1], [5, 5])  # naive: last value
    # A perfectly periodic series is forecast exactly.
    per = np.tile([3.0, 1.0, 4.0, 1.0, 5.0], 8)
    Xp, yp = ts.sliding_windows(per, 10, 7, stride=2)
    np.testing.assert_array_equal(ts.seasonal_naive(Xp, 5, 7), yp)
    # Multivariate: same shape rules as sliding_windows.
    m = np.stack([per, -per], 1)
    Xm, ym = ts.sliding_windows(m, 10, 3)
    np.testing.assert_array_equal(ts.seasonal_naive(Xm, 5, 3), ym)
    _, y1 = ts.sliding_windows(m, 10, 3, target=1)
    np.testing.assert_array_equal(ts.seasonal_naive(Xm, 5, 3, target=1), y1)


def test_bad_input_messages():
    s = np.arange(10.0)
    with pytest.raises(ValueError, match="horizon must be an int >= 1, given 0"):
        ts.sliding_windows(s, 3, horizon=0)
    with pytest.raises(ValueError, match="stride must be an int >= 1, given 0"):
        ts.sliding_windows(s, 3, stride=0)
    with pytest.raises(ValueError, match="input_len must be an int >= 1, given -2"):
        ts.sliding_windows(s, -2)
    with pytest.raises(ValueError, match=r"needs input_len \+ horizon = 9 \+ 2 = 11 steps, given a series of 10 steps"):
        ts.sliding_windows(s, 9, 2)
    bad = s.copy()
    bad[4] = np.nan
    with pytest.raises(ValueError, match="expected finite values, given nan at index 4"):
        ts.sliding_windows(bad, 2)
    bad2 = np.zeros((5, 2))
    bad2[3, 1] = np.inf
    with pytest.raises(ValueError, match=r"given inf at index \(3, 1\)"):
        ts.StandardScaler().fit(bad2)
    with pytest.raises(ValueError, match=r"shape \(T,\) or \(T, n_features\), given shape \(2, 3, 4\)"):
        ts.sliding_windows(np.zeros((2, 3, 4)), 1)
    with pytest.raises(ValueError, match=r"target columns must lie in \[0, 1\].*given 2"):
        ts.sliding_windows(np.zeros((10, 2)), 2, target=2)
    with pytest.raises(ValueError, match="expected non-empty parts, given a series of 10 steps"):
        ts.temporal_split(s, val_size=0.0)
    with pytest.raises(ValueError, match="val_size as a fraction must lie in"):
        ts.temporal_split(s, val_size=1.5)
    with pytest.raises(ValueError, match="context 9 is longer than the training part"):
        ts.temporal_split(s, val_size=0.2, context=9)
    with pytest.raises(RuntimeError, match="call fit"):
        ts.StandardScaler().transform(s)
    sc = ts.StandardScaler().fit(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"last axis has 3 feature\(s\), given shape \(4, 2\)"):
        sc.transform(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="feature_range needs min < max"):
        ts.MinMaxScaler((1, 0))
    with pytest.raises(ValueError, match="windows of 4 steps are shorter than the season of 7 steps"):
        ts.seasonal_naive(np.zeros((3, 4)), 7, 2)
