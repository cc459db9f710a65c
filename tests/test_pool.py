"""Pooling: max/min/avg (1-D and 2-D) and adaptive average against naive NumPy
references (forward, indices, gradients), gradcheck, threads, torch, modules, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ferrograd as fg
import ferrograd.nn as nn
import ferrograd.nn.functional as F
from ferrograd.autograd import gradcheck


def out_size(n, k, s, p, d, ceil):
    eff = d * (k - 1) + 1
    if k < 1 or s < 1 or p > k // 2 or eff > n + 2 * p:
        return None
    span = n + 2 * p - eff
    o = (math.ceil(span / s) if ceil else span // s) + 1
    if ceil and (o - 1) * s >= n + p:
        o -= 1
    return o if o >= 1 else None


def ref_extremum(x, k, s, p, d, ceil, mode):
    """Naive PyTorch-rule max/min pooling of x (P, H, W): values, indices, and the
    gradient map (for a given output gradient) through the indices."""
    P, H, W = x.shape
    oh, ow = out_size(H, k[0], s[0], p[0], d[0], ceil), out_size(W, k[1], s[1], p[1], d[1], ceil)
    init = -np.inf if mode == "max" else np.inf
    y = np.full((P, oh, ow), init)
    idx = np.zeros((P, oh, ow), np.int64)
    for q in range(P):
        for i in range(oh):
            for j in range(ow):
                h0, w0 = i * s[0] - p[0], j * s[1] - p[1]
                hs = [h0 + a * d[0] for a in range(k[0])]
                ws = [w0 + b * d[1] for b in range(k[1])]
                fh = next(h for h in range(h0, 10**6, d[0]) if h >= 0)
                fw = next(w for w in range(w0, 10**6, d[1]) if w >= 0)
                best, bi = init, fh * W + fw
                for h in hs:
                    for w in ws:
                        if 0 <= h < H and 0 <= w < W:
                            v = x[q, h, w]
                            better = v > best if mode == "max" else v < best
                            if better or np.isnan(v):
                                best, bi = v, h * W + w
                y[q, i, j], idx[q, i, j] = best, bi
    return y, idx


def ref_avg(x, k, s, p, ceil, cip, div):
    P, H, W = x.shape
    oh, ow = out_size(H, k[0], s[0], p[0], 1, ceil), out_size(W, k[1], s[1], p[1], 1, ceil)
    y = np.zeros((P, oh, ow))
    wmap = np.zeros((oh, ow, H, W))  # d y[i, j] / d x[h, w]
    for i in range(oh):
        for j in range(ow):
            h0, w0 = i * s[0] - p[0], j * s[1] - p[1]
            h1, w1 = min(h0 + k[0], H + p[0]), min(w0 + k[1], W + p[1])
            size = (h1 - h0) * (w1 - w0)
            h0c, w0c, h1c, w1c = max(h0, 0), max(w0, 0), min(h1, H), min(w1, W)
            if h0c >= h1c or w0c >= w1c:
                continue
            f = div if div else (size if cip else (h1c - h0c) * (w1c - w0c))
            wmap[i, j, h0c:h1c, w0c:w1c] = 1.0 / f
    y = np.einsum("ijhw,phw->pij", wmap, x)
    return y, wmap


@st.composite
def pool_cases(draw, two_d=True, dilation=True):
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    sizes = [draw(st.integers(1, 7)) for _ in range(2 if two_d else 1)]
    k = [draw(st.integers(1, 4)) for _ in sizes]
    s = [draw(st.integers(1, 3)) for _ in sizes]
    p = [draw(st.integers(0, kk // 2)) for kk in k]
    d = [draw(st.integers(1, 2)) if dilation else 1 for _ in sizes]
    ceil = draw(st.booleans())
    return n, c, sizes, k, s, p, d, ceil


def _valid(sizes, k, s, p, d, ceil):
    return all(out_size(*a, ceil) is not None for a in zip(sizes, k, s, p, d))


@pytest.mark.parametrize("mode", ["max", "min"])
@given(case=pool_cases(), seed=st.integers(0, 2**31 - 1), ints=st.booleans(), dt=st.sampled_from([np.float32, np.float64]))
def test_extremum_pool2d_matches_reference(mode, case, seed, ints, dt):
    n, c, (H, W), k, s, p, d, ceil = case
    rng = np.random.default_rng(seed)
    # Small integers give ties (first extremum wins, as PyTorch).
    x = (rng.integers(-2, 3, (n, c, H, W)) if ints else rng.standard_normal((n, c, H, W))).astype(dt)
    fn = F.max_pool2d if mode == "max" else F.min_pool2d
    if not _valid((H, W), k, s, p, d, ceil):
        with pytest.raises(ValueError):
            fn(fg.tensor(x), k, s, p, d, ceil)
        return
    t = fg.tensor(x, requires_grad=True)
    y, idx = fn(t, k, s, p, d, ceil, return_indices=True)
    ry, ridx = ref_extremum(x.reshape(n * c, H, W).astype(np.float64), k, s, p, d, ceil, mode)
    np.testing.assert_array_equal(y.numpy().reshape(ry.shape), ry.astype(dt))
    np.testing.assert_array_equal(idx.numpy().reshape(ridx.shape), ridx)
    assert idx.numpy().dtype == np.int64 and y.dtype == dt
    g = rng.standard_normal(y.shape).astype(dt)
    y.backward(fg.tensor(g))
    want = np.zeros((n * c, H * W))
    for q, (gi, ii) in enumerate(zip(g.reshape(n * c, -1), ridx.reshape(n * c, -1))):
        for v, i in zip(gi, ii):
            if 0 <= i < H * W:
                want[q, i] += v
    np.testing.assert_allclose(t.grad.numpy().reshape(want.shape), want, rtol=1e-5, atol=1e-5)


@given(case=pool_cases(dilation=False), seed=st.integers(0, 2**31 - 1), cip=st.booleans(),
       div=st.sampled_from([None, None, 3]), dt=st.sampled_from([np.float32, np.float64]))
def test_avg_pool2d_matches_reference(case, seed, cip, div, dt):
    n, c, (H, W), k, s, p, d, ceil = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, H, W)).astype(dt)
    if not _valid((H, W), k, s, p, d, ceil):
        with pytest.raises(ValueError):
            F.avg_pool2d(fg.tensor(x), k, s, p, ceil, cip, div)
        return
    t = fg.tensor(x, requires_grad=True)
    y = F.avg_pool2d(t, k, s, p, ceil, cip, div)
    ry, wmap = ref_avg(x.reshape(n * c, H, W).astype(np.float64), k, s, p, ceil, cip, div)
    tol = dict(rtol=1e-5, atol=1e-5) if dt == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y.numpy().reshape(ry.shape), ry, **tol)
    g = rng.standard_normal(y.shape).astype(dt)
    y.backward(fg.tensor(g))
    want = np.einsum("ijhw,pij->phw", wmap, g.reshape(n * c, *ry.shape[1:]).astype(np.float64))
    np.testing.assert_allclose(t.grad.numpy().reshape(want.shape), want, **tol)


@given(case=pool_cases(two_d=False), seed=st.integers(0, 2**31 - 1), cip=st.booleans())
def test_pool1d_matches_reference(case, seed, cip):
    n, c, (L,), k, s, p, d, ceil = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, L))
    if not _valid((L,), k, s, p, d, ceil):
        with pytest.raises(ValueError):
            F.max_pool1d(fg.tensor(x), k, s, p, d, ceil)
        return
    y, idx = F.max_pool1d(fg.tensor(x), k, s, p, d, ceil, return_indices=True)
    ry, ridx = ref_extremum(x.reshape(n * c, 1, L), (1, k[0]), (1, s[0]), (0, p[0]), (1, d[0]), ceil, "max")
    np.testing.assert_array_equal(y.numpy().reshape(ry.shape), ry)
    np.testing.assert_array_equal(idx.numpy().reshape(ridx.shape), ridx)
    if out_size(L, k[0], s[0], p[0], 1, ceil) is not None:
        ya = F.avg_pool1d(fg.tensor(x), k, s, p, ceil, cip)
        ra, _ = ref_avg(x.reshape(n * c, 1, L), (1, k[0]), (1, s[0]), (0, p[0]), ceil, cip, None)
        np.testing.assert_allclose(ya.numpy().reshape(ra.shape), ra, rtol=1e-12, atol=1e-12)


def ref_adaptive(x, oh, ow):
    P, H, W = x.shape
    y = np.zeros((P, oh, ow))
    for i in range(oh):
        h0, h1 = (i * H) // oh, -(-((i + 1) * H) // oh)
        for j in range(ow):
            w0, w1 = (j * W) // ow, -(-((j + 1) * W) // ow)
            y[:, i, j] = x[:, h0:h1, w0:w1].mean(axis=(1, 2))
    return y


@given(H=st.integers(1, 9), W=st.integers(1, 9), oh=st.integers(1, 5), ow=st.integers(1, 5), seed=st.integers(0, 2**31 - 1))
def test_adaptive_avg_pool2d_matches_reference(H, W, oh, ow, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 2, H, W))
    t = fg.tensor(x, requires_grad=True)
    y = F.adaptive_avg_pool2d(t, (oh, ow))
    np.testing.assert_allclose(y.numpy().reshape(4, oh, ow), ref_adaptive(x.reshape(4, H, W), oh, ow), rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(y.shape)
    y.backward(fg.tensor(g))
    # The op is linear: <grad, x> == <g, y>.
    assert np.isclose(np.sum(t.grad.numpy() * x), np.sum(g * y.numpy()), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    "fn",
    [
        lambda a: F.max_pool2d(a, 2, 1, 1),
        lambda a: F.min_pool2d(a, (2, 3), (2, 1), (1, 0), ceil_mode=True),
        lambda a: F.max_pool2d(a, 2, 2, 0, dilation=2),
        lambda a: F.avg_pool2d(a, 3, 2, 1, ceil_mode=True, count_include_pad=False),
        lambda a: F.avg_pool2d(a, 2, 1, divisor_override=3),
        lambda a: F.max_pool1d(a.reshape(1, 2, 25), 3, 2, 1),
        lambda a: F.avg_pool1d(a.reshape(1, 2, 25), 4, 3, 2, ceil_mode=True),
        lambda a: F.adaptive_avg_pool2d(a, (3, 2)),
    ],
)
def test_pool_gradcheck(fn):
    # Distinct values (a permutation) so max/min have no ties.
    rng = np.random.default_rng(5)
    x = fg.tensor(rng.permutation(50).reshape(1, 2, 5, 5) / 7.0, requires_grad=True)
    assert gradcheck(fn, [x])


def test_nan_propagates_and_min_pool():
    x = np.array([[[[1.0, np.nan, 3.0, 0.5], [2.0, 1.0, -1.0, 4.0]]]])
    y, idx = F.max_pool2d(fg.tensor(x), 2, return_indices=True)
    assert np.isnan(y.numpy()[0, 0, 0, 0]) and idx.numpy()[0, 0, 0, 0] == 1
    assert y.numpy()[0, 0, 0, 1] == 4.0
    m = F.min_pool2d(fg.tensor(x), 2)
    assert np.isnan(m.numpy()[0, 0, 0, 0]) and m.numpy()[0, 0, 0, 1] == -1.0


def test_threads_bitwise():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((4, 16, 33, 35)).astype(np.float32)
    old = fg.get_num_threads()
    res = []
    try:
        for nt in (1, 2):
            fg.set_num_threads(nt)
            outs = []
            for f in (
                lambda a: F.max_pool2d(a, 3, 2, 1, ceil_mode=True),
                lambda a: F.avg_pool2d(a, 3, 1, 1),
                lambda a: F.adaptive_avg_pool2d(a, (5, 7)),
            ):
                t = fg.tensor(x, requires_grad=True)
                y = f(t)
                y.backward(fg.tensor(np.cos(np.arange(y.numpy().size)).reshape(y.shape).astype(np.float32)))
                outs += [y.numpy().copy(), t.grad.numpy().copy()]
            res.append(outs)
    finally:
        fg.set_num_threads(old)
    for a, b in zip(*res):
        assert np.array_equal(a, b)


@pytest.mark.parametrize(
    "make,shape",
    [
        (lambda: (nn.MaxPool2d(3, 2, 1, ceil_mode=True), "max_pool2d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)), (2, 3, 7, 8)),
        (lambda: (nn.MaxPool2d(2, dilation=2), "max_pool2d", dict(kernel_size=2, dilation=2)), (2, 3, 9, 9)),
        (lambda: (nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False), "avg_pool2d",
                  dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)), (2, 3, 8, 7)),
        (lambda: (nn.AvgPool2d(2, 1, 1, divisor_override=2), "avg_pool2d", dict(kernel_size=2, stride=1, padding=1, divisor_override=2)), (1, 2, 5, 5)),
        (lambda: (nn.MaxPool1d(3, 2, 1), "max_pool1d", dict(kernel_size=3, stride=2, padding=1)), (2, 3, 10)),
        (lambda: (nn.AvgPool1d(3, 2, 1, ceil_mode=True), "avg_pool1d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)), (2, 3, 10)),
        (lambda: (nn.AdaptiveAvgPool2d((3, None)), "adaptive_avg_pool2d", dict(output_size=(3, None))), (2, 3, 7, 5)),
    ],
)
def test_modules_match_torch(make, shape):
    torch = pytest.importorskip("torch")
    mod, tname, kw = make()
    rng = np.random.default_rng(2)
    x = rng.integers(-3, 4, shape).astype(np.float64)  # ties
    t = fg.tensor(x, requires_grad=True)
    tt = torch.tensor(x, requires_grad=True)
    y = mod(t)
    ty = getattr(torch.nn.functional, tname)(tt, **kw)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(ty.shape)
    y.backward(fg.tensor(g))
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(t.grad.numpy(), tt.grad.numpy(), rtol=1e-12, atol=1e-12)
    if tname.startswith("max"):
        _, i = getattr(F, tname)(fg.tensor(x), return_indices=True, **kw)
        _, ti = getattr(torch.nn.functional, tname)(torch.tensor(x), return_indices=True, **kw)
        np.testing.assert_array_equal(i.numpy(), ti.numpy())


def test_unbatched_and_module_indices():
    x = np.arange(2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4)
    y, i = nn.MaxPool2d(2, return_indices=True)(fg.tensor(x))
    assert y.shape == (2, 2, 2) and i.numpy()[0].tolist() == [[5, 7], [13, 15]]
    assert nn.MinPool2d(2)(fg.tensor(x)).numpy()[1].tolist() == [[16, 18], [24, 26]]
    assert "kernel_size=2" in repr(nn.MaxPool2d(2))


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: nn.MaxPool2d(2)(fg.zeros(4, 4)), r"MaxPool2d\(kernel_size=2.*3-D or 4-D.*\(4, 4\)"),
        (lambda: nn.MaxPool1d(2)(fg.zeros(1, 2, 3, 4)), r"MaxPool1d.*2-D or 3-D"),
        (lambda: F.max_pool2d(fg.zeros(1, 1, 4, 4), 5), "larger than the padded input"),
        (lambda: F.max_pool2d(fg.zeros(1, 1, 4, 4), 2, stride=0), "stride"),
        (lambda: F.avg_pool2d(fg.zeros(1, 1, 4, 4), 2, padding=2), "half of effective kernel"),
        (lambda: F.max_pool2d(fg.zeros(1, 0, 4, 4), 2), "non-empty"),
        (lambda: F.max_pool2d(fg.zeros(1, 1, 4, 4), (2, 2, 2)), "tuple of 2"),
        (lambda: F.avg_pool2d(fg.zeros(1, 1, 4, 4), 2, divisor_override=0), "divisor_override"),
        (lambda: nn.AdaptiveAvgPool2d(0)(fg.zeros(1, 1, 4, 4)), "positive"),
        (lambda: nn.AdaptiveAvgPool2d(2)(fg.zeros(4)), "AdaptiveAvgPool2d"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
