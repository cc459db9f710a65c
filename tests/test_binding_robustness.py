"""Whatever Python passes to the extension, it raises a Python exception or succeeds:
never a crash, a Rust panic (RuntimeError 'internal error') or an out-of-bounds read."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ferrograd import _native

dtypes = st.sampled_from([np.float32, np.float64, np.int64, np.float16, np.bool_])


def anything_array():
    return st.one_of(
        hnp.arrays(dtypes, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6)),
        st.just(None),
        st.integers(),
        st.floats(),
        st.lists(st.floats(), max_size=3),
    )


def call_safely(fn, *args):
    try:
        fn(*args)
    except (ValueError, TypeError) as e:
        assert "internal error" not in str(e)
    except RuntimeError as e:  # pragma: no cover - would be a bug
        pytest.fail(f"kernel panicked: {e}")


@given(st.booleans(), st.booleans(), anything_array(), anything_array(), anything_array(), st.floats(), st.floats())
def test_gemm_arbitrary_arguments(ta, tb, a, b, c, alpha, beta):
    if isinstance(c, np.ndarray):
        c = c.copy()
    call_safely(_native.gemm, ta, tb, alpha, a, b, beta, c)


@given(st.sampled_from(["relu", "tanh", "softplus", "log", "nope"]), anything_array(), anything_array(), anything_array())
def test_unary_arbitrary_arguments(op, x, y, gy):
    call_safely(_native.unary, op, x)
    call_safely(_native.unary_backward, op, x, y, gy)


@given(anything_array(), anything_array(), st.booleans(), st.integers(-6, 6), st.sampled_from(["sum", "mean", "max", "min", "prod"]))
def test_softmax_and_reduce_arbitrary_arguments(x, gy, log, axis, op):
    call_safely(_native.softmax, x, log)
    call_safely(_native.softmax_backward, x, gy, log)
    call_safely(_native.reduce, op, x, axis)


@given(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6), st.data())
def test_gemm_views_with_odd_strides_are_rejected_or_correct(m, n, k, data):
    big = np.arange(4 * m * k, dtype=np.float32).reshape(1, 2 * m, 2 * k)
    a = big[:, ::2, ::2] if data.draw(st.booleans()) else np.ascontiguousarray(big[:, ::2, ::2])
    b = np.ones((1, k, n), np.float32)
    c = np.zeros((1, m, n), np.float32)
    try:
        _native.gemm(False, False, 1.0, a, b, 0.0, c)
    except ValueError as e:
        assert "C-contiguous" in str(e)
        return
    np.testing.assert_allclose(c, a @ b, rtol=1e-6)


def test_output_aliasing_input_is_refused():
    a = np.ones((1, 3, 3), np.float32)
    with pytest.raises((ValueError, TypeError, Exception)) as e:
        _native.gemm(False, False, 1.0, a, a, 0.0, a)
    assert "internal error" not in str(e.value)
