"""Every differentiable op: forward against NumPy, gradients against gradcheck (float64)
and against hand-derived NumPy formulas, over random shapes with broadcasting."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import ferrograd as fg
from ferrograd.autograd import gradcheck
from helpers import DTYPES, arrays, maybe_noncontiguous, ref_log_softmax, ref_softmax, shapes, tol


def leaf(a, requires_grad=True):
    t = fg.from_numpy(np.array(a, copy=True))
    return t.requires_grad_(requires_grad)


@st.composite
def broadcast_pair(draw, max_side=4, lo=-3.0, hi=3.0, dtype=np.float64):
    shp = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=max_side))
    a = draw(arrays(dtype, shp.input_shapes[0], lo, hi))
    b = draw(arrays(dtype, shp.input_shapes[1], lo, hi))
    return a, b


BINARY = {
    "add": (lambda a, b: a + b, np.add),
    "sub": (lambda a, b: a - b, np.subtract),
    "mul": (lambda a, b: a * b, np.multiply),
    "div": (lambda a, b: a / b, np.divide),
    "maximum": (fg.maximum, np.maximum),
    "minimum": (fg.minimum, np.minimum),
}


@given(st.sampled_from(sorted(BINARY)), broadcast_pair())
def test_binary_ops_gradcheck(name, pair):
    a, b = pair
    if name == "div":
        b = np.where(np.abs(b) < 0.5, 0.5 + np.abs(b), b)
    if name in ("maximum", "minimum"):
        b = b + 0.25  # keep away from ties, where the op is not differentiable
    op, ref = BINARY[name]
    ta, tb = leaf(a), leaf(b)
    out = op(ta, tb)
    np.testing.assert_allclose(out.numpy(), ref(a, b), rtol=1e-12, atol=1e-12)
    if name in ("maximum", "minimum"):
        close = np.isclose(*np.broadcast_arrays(a, b), atol=1e-3)
        if close.any():
            return
    assert gradcheck(op, (ta, tb))


@given(st.sampled_from(DTYPES), broadcast_pair(lo=-5, hi=5))
def test_binary_ops_float32_gradients_match_formula(dtype, pair):
    a, b = (x.astype(dtype) for x in pair)
    ta, tb = leaf(a), leaf(b)
    out = ta * tb + ta - tb
    out.backward(np.ones(out.shape, dtype))
    assert ta.grad.dtype == dtype and ta.grad.shape == a.shape
    full = np.broadcast_shapes(a.shape, b.shape)
    ga = np.broadcast_to(b + 1, full).astype(np.float64)
    gb = np.broadcast_to(a - 1, full).astype(np.float64)

    def unb(g, shape):
        lead = g.ndim - len(shape)
        g = g.sum(axis=tuple(range(lead))) if lead else g
        for i, s in enumerate(shape):
            if s == 1 and g.shape[i] != 1:
                g = g.sum(axis=i, keepdims=True)
        return g

    np.testing.assert_allclose(ta.grad.numpy(), unb(ga, a.shape), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(tb.grad.numpy(), unb(gb, b.shape), rtol=1e-5, atol=1e-4)


@given(arrays(np.float64, shapes(max_dims=3, max_side=4), 0.5, 3.0), st.sampled_from([2.0, 3.0, 0.5, -1.5, 0.0, 1.0]))
def test_pow_scalar_exponent(a, p):
    t = leaf(a)
    np.testing.assert_allclose((t ** p).numpy(), a ** p, rtol=1e-12)
    assert gradcheck(lambda x: x ** p, t)


@given(broadcast_pair(lo=0.5, hi=2.0))
def test_pow_tensor_exponent_and_reflected(pair):
    a, b = pair
    assert gradcheck(lambda x, y: x ** y, (leaf(a), leaf(b)))
    assert gradcheck(lambda y: 2.0 ** y, leaf(b))
    assert gradcheck(lambda x: 3.0 - x, leaf(a))
    assert gradcheck(lambda x: 1.5 / x, leaf(a))
    assert gradcheck(lambda x: -x, leaf(a))


@st.composite
def matmul_pair(draw):
    kind = draw(st.sampled_from(["1x1", "1x2", "2x1", "2x2", "batched", "bcast", "nd1"]))
    m, n, k = (draw(st.integers(1, 4)) for _ in range(3))
    b1, b2 = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    sa, sb = {
        "1x1": ((k,), (k,)),
        "1x2": ((k,), (k, n)),
        "2x1": ((m, k), (k,)),
        "2x2": ((m, k), (k, n)),
        "batched": ((b1, m, k), (b1, k, n)),
        "bcast": ((b2, 1, m, k), (b1, k, n)),
        "nd1": ((b1, m, k), (k,)),
    }[kind]
    if draw(st.booleans()):
        sa, sb = (sb, sa) if kind in ("1x1",) else (sa, sb)
    a = draw(arrays(np.float64, sa, -2, 2))
    b = draw(arrays(np.float64, sb, -2, 2))
    return maybe_noncontiguous(draw, a), maybe_noncontiguous(draw, b)


@given(matmul_pair())
def test_matmul_forward_and_gradcheck(pair):
    a, b = pair
    ta, tb = fg.from_numpy(a).requires_grad_(), fg.from_numpy(b).requires_grad_()
    out = ta @ tb
    np.testing.assert_allclose(out.numpy(), np.matmul(a, b), rtol=1e-12, atol=1e-12)
    assert gradcheck(fg.matmul, (ta, tb))


@given(st.sampled_from(DTYPES), st.integers(0, 70), st.integers(0, 70), st.integers(0, 70), st.data())
def test_matmul_float32_and_empty_sizes(dtype, m, k, n, data):
    a = data.draw(arrays(dtype, (m, k), -1, 1))
    b = data.draw(arrays(dtype, (k, n), -1, 1))
    ta, tb = leaf(a), leaf(b)
    out = ta @ tb
    assert out.dtype == dtype
    ref = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-4, atol=1e-4 * max(k, 1))
    g = data.draw(arrays(dtype, (m, n), -1, 1))
    out.backward(g)
    np.testing.assert_allclose(ta.grad.numpy(), g.astype(np.float64) @ b.T, rtol=1e-4, atol=1e-4 * max(n, 1))
    np.testing.assert_allclose(tb.grad.numpy(), a.T.astype(np.float64) @ g, rtol=1e-4, atol=1e-4 * max(m, 1))


REDUCTIONS = ["sum", "mean", "max", "min", "amax", "amin"]


@st.composite
def reduce_case(draw):
    shape = draw(shapes(min_dims=0, max_dims=3, min_side=1, max_side=4))
    a = draw(arrays(np.float64, shape, -5, 5))
    a = a + np.arange(a.size).reshape(shape) * 1e-3  # distinct values: max/min differentiable
    nd = len(shape)
    if nd and draw(st.booleans()):
        if draw(st.booleans()):
            dim = draw(st.integers(-nd, nd - 1))
        else:
            dim = tuple(draw(st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd, unique=True)))
    else:
        dim = None
    return maybe_noncontiguous(draw, a), dim, draw(st.booleans())


@given(st.sampled_from(REDUCTIONS), reduce_case())
def test_reductions_forward_and_gradcheck(op, case):
    a, dim, keep = case
    t = leaf(a)

    def f(x):
        r = getattr(x, op)(dim, keep)
        return r.values if isinstance(r, tuple) else r

    np_op = {"amax": "max", "amin": "min"}.get(op, op)
    ref = getattr(np, np_op)(a, axis=dim, keepdims=keep)
    np.testing.assert_allclose(f(t).numpy(), ref, rtol=1e-12, atol=1e-12)
    assert gradcheck(f, t)


def test_max_with_dim_returns_values_and_indices():
    x = fg.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 7.0]], requires_grad=True)
    v, i = x.max(dim=1)
    np.testing.assert_array_equal(v.numpy(), [5.0, 7.0])
    np.testing.assert_array_equal(i.numpy(), [1, 0])
    v.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 1, 0], [1, 0, 0]])
    x.grad = None
    x.max().backward()  # full reduction: ties share the gradient (PyTorch's amax rule)
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 0, 0], [0.5, 0, 0.5]])
    assert x.argmax().item() == 3
    np.testing.assert_array_equal(x.argmin(dim=1, keepdim=True).numpy(), [[0], [1]])


@given(st.sampled_from(["relu", "leaky_relu", "sigmoid", "tanh", "softsign", "softplus", "exp", "log", "sqrt", "abs"]), st.data())
def test_unary_ops_gradcheck(name, data):
    lo = 0.2 if name in ("log", "sqrt") else -4.0
    a = data.draw(arrays(np.float64, shapes(max_dims=3, max_side=4), lo, 4.0))
    if name in ("relu", "leaky_relu", "abs"):
        a = np.where(np.abs(a) < 1e-3, 0.5, a)  # not at the kink
    a = maybe_noncontiguous(data.draw, a)
    f = getattr(fg, name)
    t = leaf(a)
    out = f(t)
    ref = {
        "relu": lambda x: np.maximum(x, 0),
        "leaky_relu": lambda x: np.where(x > 0, x, 0.01 * x),
        "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
        "tanh": np.tanh,
        "softsign": lambda x: x / (1 + np.abs(x)),
        "softplus": lambda x: np.log1p(np.exp(x)),
        "exp": np.exp,
        "log": np.log,
        "sqrt": np.sqrt,
        "abs": np.abs,
    }[name](a)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-12, atol=1e-12)
    assert gradcheck(f, t)


@given(st.booleans(), st.data())
def test_softmax_ops(log, data):
    a = data.draw(arrays(np.float64, shapes(min_dims=1, max_dims=3, max_side=4), -5, 5))
    dim = data.draw(st.integers(-a.ndim, a.ndim - 1))
    a = maybe_noncontiguous(data.draw, a)
    f = (lambda x: fg.log_softmax(x, dim)) if log else (lambda x: fg.softmax(x, dim))
    t = leaf(a)
    ref = ref_log_softmax(a, dim) if log else ref_softmax(a, dim)
    np.testing.assert_allclose(f(t).numpy(), ref, rtol=1e-12, atol=1e-12)
    assert gradcheck(f, t)


@st.composite
def shape_case(draw):
    a = draw(arrays(np.float64, shapes(min_dims=1, max_dims=4, min_side=1, max_side=3), -3, 3))
    return maybe_noncontiguous(draw, a)


@given(shape_case(), st.data())
def test_shape_ops_gradcheck(a, data):
    nd = a.ndim
    t = leaf(a)
    perm = data.draw(st.permutations(range(nd)))
    d0, d1 = data.draw(st.integers(-nd, nd - 1)), data.draw(st.integers(-nd, nd - 1))
    s, e = sorted([data.draw(st.integers(0, nd - 1)), data.draw(st.integers(0, nd - 1))])
    u = data.draw(st.integers(-nd - 1, nd))
    cases = [
        (lambda x: x.reshape(-1), a.reshape(-1)),
        (lambda x: x.reshape(a.size, 1), a.reshape(a.size, 1)),
        (lambda x: x.permute(*perm), np.transpose(a, perm)),
        (lambda x: x.transpose(d0, d1), np.swapaxes(a, d0, d1)),
        (lambda x: x.flatten(s, e), a.reshape(a.shape[:s] + (-1,) + a.shape[e + 1 :])),
        (lambda x: x.squeeze(), np.squeeze(a)),
        (lambda x: x.unsqueeze(u), np.expand_dims(a, u)),
        (lambda x: x.T, a.T),
        (lambda x: x.expand((2,) + a.shape), np.broadcast_to(a, (2,) + a.shape)),
    ]
    for f, ref in cases:
        np.testing.assert_array_equal(f(t).numpy(), ref)
        assert gradcheck(lambda x: f(x) * 1.5, t)


@given(shape_case(), st.data())
def test_getitem_gradcheck(a, data):
    t = leaf(a)
    n0 = a.shape[0]
    idx_int = data.draw(st.integers(-n0, n0 - 1))
    sl = slice(data.draw(st.integers(0, n0)), None, data.draw(st.sampled_from([1, 2, -1])))
    arr = np.array(data.draw(st.lists(st.integers(0, n0 - 1), min_size=1, max_size=5)))
    mask = a > 0
    for index in [idx_int, sl, (Ellipsis, 0), arr, mask, (arr,), fg.from_numpy(a) > 0, (None, idx_int)]:
        np.testing.assert_array_equal(t[index].numpy(), a[index])
        assert gradcheck(lambda x: x[index] * 2.0, t)


def test_getitem_repeated_indices_accumulate():
    x = fg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[fg.tensor([0, 0, 2]).numpy().astype(int)].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 0.0, 1.0])


@given(st.integers(0, 2), st.integers(1, 3), st.data())
def test_cat_and_stack(dim_seed, count, data):
    base = data.draw(shapes(min_dims=1, max_dims=3, min_side=1, max_side=3))
    dim = dim_seed % len(base)
    parts = []
    for _ in range(count):
        shp = list(base)
        shp[dim] = data.draw(st.integers(0, 3))
        parts.append(data.draw(arrays(np.float64, tuple(shp), -2, 2)))
    ts = [leaf(p) for p in parts]
    np.testing.assert_array_equal(fg.cat(ts, dim).numpy(), np.concatenate(parts, dim))
    assert gradcheck(lambda *xs: fg.cat(list(xs), dim) * 3.0, ts)
    same = [data.draw(arrays(np.float64, base, -2, 2)) for _ in range(count)]
    ss = [leaf(p) for p in same]
    np.testing.assert_array_equal(fg.stack(ss, dim).numpy(), np.stack(same, dim))
    assert gradcheck(lambda *xs: fg.stack(list(xs), dim) * 3.0, ss)


@given(broadcast_pair(), st.data())
def test_where_clip(pair, data):
    a, b = pair
    cond = data.draw(hnp.arrays(np.bool_, np.broadcast_shapes(a.shape, b.shape)))
    ta, tb = leaf(a), leaf(b)
    np.testing.assert_array_equal(fg.where(cond, ta, tb).numpy(), np.where(cond, a, b))
    assert gradcheck(lambda x, y: fg.where(cond, x, y), (ta, tb))
    a2 = np.where(np.abs(np.abs(a) - 1.0) < 1e-3, 0.5, a)
    t2 = leaf(a2)
    np.testing.assert_array_equal(t2.clip(-1.0, 1.0).numpy(), np.clip(a2, -1, 1))
    assert gradcheck(lambda x: x.clamp(-1.0, 1.0), t2)
    assert gradcheck(lambda x: fg.clip(x, min=0.0), t2) if not np.any(np.abs(a2) < 1e-3) else True


def test_comparisons_carry_no_grad():
    x = fg.tensor([1.0, -2.0, 3.0], requires_grad=True)
    for r in (x > 0, x < 0, x >= 1, x <= 1, x == 3, x != 3):
        assert not r.requires_grad and r.dtype == np.bool_
    np.testing.assert_array_equal((x > 0).numpy(), [True, False, True])


@given(st.sampled_from(DTYPES), broadcast_pair(lo=-2, hi=2))
def test_composite_expression_float32_vs_float64(dtype, pair):
    a, b = (x.astype(dtype) for x in pair)
    ta, tb = leaf(a), leaf(b)
    y = (fg.tanh(ta * tb) + fg.sigmoid(ta) * 2.0 - (tb ** 2) / 3.0).sum()
    y.backward()
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    ref = (np.tanh(a64 * b64) + 2.0 / (1 + np.exp(-a64)) - b64 ** 2 / 3.0).sum()
    np.testing.assert_allclose(y.item(), ref, **(tol(dtype) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-4)))
    assert ta.grad.shape == a.shape and tb.grad.shape == b.shape
