"""The Rust kernels through the binding, against NumPy references of their formulas."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ferrograd import _native
from helpers import DTYPES, UNARY_REFS, arrays, ref_log_softmax, ref_softmax, shapes, tol


@st.composite
def gemm_case(draw):
    dtype = draw(st.sampled_from(DTYPES))
    batch = draw(st.integers(1, 3))
    m, n, k = (draw(st.integers(0, 40)) for _ in range(3))
    ta, tb = draw(st.booleans()), draw(st.booleans())
    ba = draw(st.sampled_from([1, batch]))
    bb = draw(st.sampled_from([1, batch]))
    a = draw(arrays(dtype, (ba, k, m) if ta else (ba, m, k), -2, 2))
    b = draw(arrays(dtype, (bb, n, k) if tb else (bb, k, n), -2, 2))
    c = draw(arrays(dtype, (batch, m, n), -2, 2))
    alpha = draw(st.sampled_from([1.0, 0.5, -2.0, 0.0]))
    beta = draw(st.sampled_from([0.0, 1.0, -0.5]))
    return dtype, ta, tb, alpha, a, b, beta, c


@given(gemm_case())
def test_gemm_matches_numpy(case):
    dtype, ta, tb, alpha, a, b, beta, c = case
    opa = np.swapaxes(a, 1, 2) if ta else a
    opb = np.swapaxes(b, 1, 2) if tb else b
    ref = alpha * np.matmul(opa.astype(np.float64), opb.astype(np.float64)) + beta * c.astype(np.float64)
    out = c.copy()
    _native.gemm(ta, tb, alpha, a, b, beta, out)
    k = opa.shape[2]
    scale = 4.0 * (k + 1) * (np.finfo(dtype).eps * 4)
    np.testing.assert_allclose(out, ref, rtol=scale, atol=scale * 4)


def test_gemm_beta_zero_ignores_nan_in_c():
    a = np.ones((1, 3, 4), np.float32)
    b = np.ones((1, 4, 2), np.float32)
    c = np.full((1, 3, 2), np.nan, np.float32)
    _native.gemm(False, False, 1.0, a, b, 0.0, c)
    np.testing.assert_array_equal(c, np.full((1, 3, 2), 4.0, np.float32))


@pytest.mark.parametrize("n", [1, 7, 63, 64, 65, 127, 128, 129, 257, 300])
@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_sizes_around_blocks(n, dtype, rng):
    a = rng.standard_normal((1, n, n + 3)).astype(dtype)
    b = rng.standard_normal((1, n + 3, n - 1 if n > 1 else 1)).astype(dtype)
    c = np.empty((1, n, b.shape[2]), dtype)
    _native.gemm(False, False, 1.0, a, b, 0.0, c)
    ref = a[0].astype(np.float64) @ b[0].astype(np.float64)
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(c[0], ref, rtol=0, atol=20 * eps * np.sqrt(n + 3) * np.abs(ref).max())


@given(st.sampled_from(list(UNARY_REFS)), st.sampled_from(DTYPES), st.data())
def test_unary_forward_backward(op, dtype, data):
    lo = 0.01 if op == "log" else -30.0
    x = data.draw(arrays(dtype, shapes(max_dims=3, max_side=70 if data.draw(st.booleans()) else 5), lo, 30.0))
    gy = data.draw(arrays(dtype, x.shape, -3, 3))
    p1, p2 = (0.01, 0.0) if op == "leaky_relu" else ((1.0, 20.0) if op == "softplus" else (0.0, 0.0))
    f, df = UNARY_REFS[op]
    y = _native.unary(op, x, p1, p2)
    assert y.dtype == dtype and y.shape == x.shape
    x64 = x.astype(np.float64)
    t = dict(rtol=4e-6, atol=1e-30) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(y, f(x64).astype(dtype), **t)
    gx = _native.unary_backward(op, x, y, gy, p1, p2)
    ref = gy.astype(np.float64) * df(x64)
    tb = dict(rtol=2e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(gx, ref, **tb)


@pytest.mark.parametrize("dtype", DTYPES)
def test_unary_special_values(dtype):
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, -1e30, 100.0, -100.0], dtype)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(_native.unary("exp", x), np.exp(x))
        np.testing.assert_array_equal(_native.unary("log", np.abs(x)), np.log(np.abs(x)))
        np.testing.assert_array_equal(_native.unary("tanh", x), np.tanh(x))
        np.testing.assert_array_equal(np.isnan(_native.unary("sigmoid", x)), np.isnan(x))
        s = _native.unary("sigmoid", x)
    assert s[1] == 1.0 and s[2] == 0.0 and s[7] == 1.0 and 0.0 <= s[8] < 1e-40
    r = _native.unary("relu", x)
    assert np.isnan(r[0]) and r[1] == np.inf and r[2] == 0.0


@given(st.sampled_from(DTYPES), st.booleans(), st.data())
def test_softmax_forward_backward(dtype, log, data):
    x = data.draw(arrays(dtype, shapes(min_dims=1, max_dims=3, max_side=40), -50, 50))
    gy = data.draw(arrays(dtype, x.shape, -2, 2))
    y = _native.softmax(x, log)
    ref = ref_log_softmax(x) if log else ref_softmax(x)
    t = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(y, ref, **t)
    gx = _native.softmax_backward(y, gy, log)
    g64, y64 = gy.astype(np.float64), ref
    if log:
        gref = g64 - np.exp(y64) * g64.sum(-1, keepdims=True)
    else:
        gref = y64 * (g64 - (g64 * y64).sum(-1, keepdims=True))
    tb = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gx, gref, **tb)


def test_softmax_stable_for_large_inputs():
    x = np.array([[1000.0, 1000.0, -np.inf], [-1e30, 0.0, 1e30]], np.float32)
    y = _native.softmax(x, False)
    np.testing.assert_allclose(y, [[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    ly = _native.softmax(x, True)
    np.testing.assert_allclose(ly[0, :2], [-np.log(2)] * 2, rtol=1e-6)
    assert ly[0, 2] == -np.inf


@given(st.sampled_from(["sum", "mean", "max", "min"]), st.sampled_from(DTYPES), st.data())
def test_reduce_matches_numpy(op, dtype, data):
    shape = data.draw(shapes(min_dims=1, max_dims=4, max_side=9))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    if op in ("max", "min"):
        shape = tuple(max(s, 1) if i == axis % len(shape) else s for i, s in enumerate(shape))
    x = data.draw(arrays(dtype, shape, -100, 100))
    res = _native.reduce(op, x, axis)
    if op in ("max", "min"):
        vals, idx = res
        np.testing.assert_array_equal(vals, getattr(np, op)(x, axis=axis))
        np.testing.assert_array_equal(idx, getattr(np, "arg" + op)(x, axis=axis))
        assert idx.dtype == np.int64
    else:
        with np.errstate(invalid="ignore"):
            ref = getattr(np, op)(x.astype(np.float64), axis=axis)
        np.testing.assert_allclose(res, ref, **tol(dtype), equal_nan=True)
        assert res.dtype == dtype


def test_reduce_sum_large_is_accurate(rng):
    x = rng.random(1_000_003).astype(np.float32)
    s = _native.reduce("sum", x, 0)
    assert abs(float(s) - x.astype(np.float64).sum()) <= 1e-5 * x.size


def test_reduce_nan_and_ties():
    x = np.array([[1.0, 3.0, 3.0, np.nan, 5.0]], np.float32)
    vals, idx = _native.reduce("max", x, 1)
    assert np.isnan(vals[0]) and idx[0] == 3
    vals, idx = _native.reduce("max", x[:, :3], 1)
    assert vals[0] == 3.0 and idx[0] == 1
    vals, idx = _native.reduce("min", np.array([[2.0, 1.0, 1.0]]), 1)
    assert idx[0] == 1


def test_binding_rejects_bad_arguments():
    a = np.ones((1, 3, 4), np.float32)
    with pytest.raises(ValueError, match="gemm"):
        _native.gemm(False, False, 1.0, a, np.ones((1, 5, 2), np.float32), 0.0, np.empty((1, 3, 2), np.float32))
    with pytest.raises(TypeError, match="same dtype"):
        _native.gemm(False, False, 1.0, a, np.ones((1, 4, 2)), 0.0, np.empty((1, 3, 2), np.float32))
    with pytest.raises(TypeError, match="float32 or float64"):
        _native.unary("relu", np.ones(3, np.int64))
    with pytest.raises(ValueError, match="C-contiguous"):
        _native.unary("relu", np.ones((4, 4), np.float32)[:, ::2])
    with pytest.raises(ValueError, match="unknown op"):
        _native.unary("cosh", np.ones(3, np.float32))
    with pytest.raises(ValueError, match="out of range"):
        _native.reduce("sum", np.ones((2, 3), np.float32), 2)
    with pytest.raises(ValueError, match="empty"):
        _native.reduce("max", np.ones((2, 0), np.float32), 1)
    with pytest.raises(ValueError, match="shape"):
        _native.unary_backward("tanh", np.ones(3, np.float32), np.ones(3, np.float32), np.ones(4, np.float32))
    with pytest.raises(ValueError, match="positive"):
        _native.set_num_threads(0)
    with pytest.raises(ValueError, match="0-d"):
        _native.softmax(np.ones((), np.float32))
    with pytest.raises(TypeError, match="float32"):
        _native.softmax(np.float32(1.0))


@given(st.sampled_from(DTYPES), st.integers(0, 70), st.integers(0, 70), st.integers(0, 70),
       st.booleans(), st.booleans(), st.sampled_from(["c", "f"]), st.sampled_from(["c", "f"]), st.data())
def test_mm_reads_c_and_f_layouts(dtype, m, n, k, ta, tb, la, lb, data):
    a = data.draw(arrays(dtype, (k, m) if ta else (m, k), -2, 2))
    b = data.draw(arrays(dtype, (n, k) if tb else (k, n), -2, 2))
    a = np.asfortranarray(a) if la == "f" else a
    b = np.asfortranarray(b) if lb == "f" else b
    out = _native.mm(a, b, ta, tb)
    ref = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
    assert out.shape == (m, n) and out.dtype == dtype and out.flags.c_contiguous
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(out, ref, rtol=0, atol=16 * eps * (k + 1) * 4)


def test_mm_rejects_bad_arguments():
    with pytest.raises(ValueError, match="op\\(a\\) is"):
        _native.mm(np.ones((2, 3), np.float32), np.ones((4, 2), np.float32))
    with pytest.raises(ValueError, match="2-D"):
        _native.mm(np.ones(3, np.float32), np.ones((3, 2), np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        _native.mm(np.ones((4, 4), np.float32)[::2, ::2], np.ones((2, 2), np.float32))
    with pytest.raises(TypeError, match="same dtype"):
        _native.mm(np.ones((2, 2), np.float32), np.ones((2, 2)))
