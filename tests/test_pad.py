"""F.pad: every mode against NumPy references, gradients, threads, torch, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ferrograd as fg
import ferrograd.nn.functional as F
from ferrograd.autograd import gradcheck

NP_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _np_pairs(ndim, pads):
    k = len(pads) // 2
    pairs = [(0, 0)] * (ndim - k) + [(pads[2 * i], pads[2 * i + 1]) for i in range(k)][::-1]
    return pairs


def ref_source(shape, pads, mode):
    """For every output element, the flat index of its source element (-1: the constant)."""
    src = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)
    pairs = _np_pairs(len(shape), pads)
    if mode == "constant":
        # Crop negative pads first, then pad with -1.
        sl = tuple(slice(max(-lo, 0), n - max(-hi, 0)) for (lo, hi), n in zip(pairs, shape))
        src = src[sl]
        return np.pad(src, [(max(lo, 0), max(hi, 0)) for lo, hi in pairs], constant_values=-1)
    return np.pad(src, pairs, mode=NP_MODE[mode])


def ref_pad(x, pads, mode, value=0.0):
    src = ref_source(x.shape, pads, mode)
    flat = np.append(x.reshape(-1), np.array([value], dtype=x.dtype))
    return flat[np.where(src < 0, x.size, src)]


def ref_pad_grad(shape, pads, mode, g):
    src = ref_source(shape, pads, mode).reshape(-1)
    keep = src >= 0
    return np.bincount(src[keep], weights=g.reshape(-1)[keep].astype(np.float64), minlength=int(np.prod(shape))).reshape(shape)


@st.composite
def pad_cases(draw):
    mode = draw(st.sampled_from(["constant", "reflect", "replicate", "circular"]))
    k = draw(st.integers(1, 3))
    extra = draw(st.integers(1, 2)) if mode != "constant" else draw(st.integers(0, 2))
    lead = tuple(draw(st.integers(1, 3)) for _ in range(extra))
    sp = tuple(draw(st.integers(1, 5)) for _ in range(k))
    pads = []
    for n in reversed(sp):
        for _ in range(2):
            if mode == "reflect":
                pads.append(draw(st.integers(0, n - 1)))
            elif mode == "circular":
                pads.append(draw(st.integers(0, n)))
            elif mode == "replicate":
                pads.append(draw(st.integers(0, 4)))
            else:
                pads.append(draw(st.integers(-((n - 1) // 2), 3)))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    return mode, lead + sp, tuple(pads), dtype


@given(pad_cases(), st.integers(0, 2**31 - 1))
def test_pad_matches_reference(case, seed):
    mode, shape, pads, dtype = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    value = 1.5 if mode == "constant" else None
    t = fg.tensor(x, requires_grad=True)
    y = F.pad(t, pads, mode=mode, value=value)
    want = ref_pad(x, pads, mode, 0.0 if value is None else value)
    assert y.shape == want.shape
    np.testing.assert_array_equal(y.numpy(), want)
    g = rng.standard_normal(want.shape).astype(dtype)
    y.backward(fg.tensor(g))
    np.testing.assert_allclose(t.grad.numpy(), ref_pad_grad(shape, pads, mode, g), rtol=1e-5, atol=1e-5)
    assert t.grad.numpy().dtype == dtype


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("pads", [(1, 2), (2, 1, 0, 2), (1, 0, 1, 2, 1, 1)])
def test_pad_gradcheck(mode, pads):
    rng = np.random.default_rng(3)
    k = len(pads) // 2
    x = fg.tensor(rng.standard_normal((1, 2) + (3,) * k), requires_grad=True, dtype=np.float64)
    assert gradcheck(lambda a: F.pad(a, pads, mode=mode), [x])


def test_pad_constant_many_dims_and_crop():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float64).reshape(2, 3, 4, 5)
    t = fg.tensor(x, requires_grad=True)
    pads = (1, -1, 0, 2, -1, 1, 1, 0)
    y = F.pad(t, pads, value=-2.0)
    np.testing.assert_array_equal(y.numpy(), ref_pad(x, pads, "constant", -2.0))
    y.sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), ref_pad_grad(x.shape, pads, "constant", np.ones(y.shape)))


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_pad_threads_bitwise(mode):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((8, 16, 40, 40)).astype(np.float32)
    g = rng.standard_normal((8, 16, 43, 45)).astype(np.float32)
    old = fg.get_num_threads()
    outs = []
    try:
        for n in (1, 2):
            fg.set_num_threads(n)
            t = fg.tensor(x, requires_grad=True)
            y = F.pad(t, (2, 3, 1, 2), mode=mode)
            y.backward(fg.tensor(g))
            outs.append((y.numpy().copy(), t.grad.numpy().copy()))
    finally:
        fg.set_num_threads(old)
    assert np.array_equal(outs[0][0], outs[1][0])
    assert np.array_equal(outs[0][1], outs[1][1])


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("shape,pads", [((2, 3, 7), (2, 3)), ((2, 3, 5, 6), (1, 2, 3, 0)), ((1, 2, 3, 4, 5), (1, 1, 2, 0, 0, 2))])
def test_pad_matches_torch(mode, shape, pads):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    x = rng.standard_normal(shape)
    g = None
    t = fg.tensor(x, requires_grad=True)
    tt = torch.tensor(x, requires_grad=True)
    y = F.pad(t, pads, mode=mode)
    ty = torch.nn.functional.pad(tt, pads, mode=mode)
    np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
    g = rng.standard_normal(ty.shape)
    y.backward(fg.tensor(g))
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(t.grad.numpy(), tt.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "shape,pads,mode,match",
    [
        ((1, 1, 3), (3, 0), "reflect", "reflect padding"),
        ((1, 1, 3), (0, 4), "circular", "wraps around"),
        ((1, 1, 3), (1,), "constant", "divisible by 2"),
        ((3,), (1, 1, 1, 1), "constant", "too large"),
        ((4,), (1, 1), "reflect", "2-D or 3-D"),
        ((1, 1, 3), (-4, 0), "constant", "empty"),
        ((1, 1, 3), (-1, 0), "replicate", "non-negative"),
        ((1, 1, 3), (1, 1), "nearest", "mode must be"),
        ((1, 1, 3), (1, 1), "reflect", "value"),
    ],
)
def test_pad_bad_input(shape, pads, mode, match):
    x = fg.zeros(*shape)
    kw = {"value": 2.0} if match == "value" else {}
    with pytest.raises(ValueError, match=match):
        F.pad(x, pads, mode=mode, **kw)
