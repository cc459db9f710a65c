"""conv1d / conv2d / conv_transpose2d and the Conv layers: forward and every gradient
against a naive NumPy reference (hypothesis over batch, channels, sizes, kernel, stride,
padding, dilation, groups), gradcheck in float64, 1 vs 2 threads bitwise, float32 vs
float64, PyTorch cross-check (optional), and the bad-input errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ferrograd as fg
import ferrograd.nn as nn
import ferrograd.nn.functional as F
from ferrograd import _native
from ferrograd.autograd import gradcheck

# ----------------------------------------------------------------------------- references


def _slices(r, d, s, n):
    return slice(r * d, r * d + s * (n - 1) + 1, s)


def ref_conv2d(x, w, b, stride, pads, dil, groups, gy=None):
    """y (and, given gy, (dx, dw, db)) of conv2d in float64; pads = (top, bottom, left, right)."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    n, c, h, wd = x.shape
    k, cg, kh, kw = w.shape
    g, kg = groups, k // groups
    (sh, sw), (dh, dw) = stride, dil
    pt, pb, pl, pr = pads
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + pl + pr - dw * (kw - 1) - 1) // sw + 1
    xg = xp.reshape(n, g, cg, xp.shape[2], xp.shape[3])
    wg = w.reshape(g, kg, cg, kh, kw)
    y = np.zeros((n, g, kg, oh, ow))
    for r in range(kh):
        for s in range(kw):
            patch = xg[:, :, :, _slices(r, dh, sh, oh), _slices(s, dw, sw, ow)]
            y += np.einsum("ngchw,gkc->ngkhw", patch, wg[:, :, :, r, s])
    y = y.reshape(n, k, oh, ow)
    if b is not None:
        y = y + np.asarray(b, np.float64)[None, :, None, None]
    if gy is None:
        return y
    gyg = np.asarray(gy, np.float64).reshape(n, g, kg, oh, ow)
    dxp = np.zeros_like(xg)
    dwg = np.zeros_like(wg)
    for r in range(kh):
        for s in range(kw):
            sl = (slice(None),) * 3 + (_slices(r, dh, sh, oh), _slices(s, dw, sw, ow))
            dwg[:, :, :, r, s] = np.einsum("ngchw,ngkhw->gkc", xg[sl], gyg)
            dxp[sl] += np.einsum("ngkhw,gkc->ngchw", gyg, wg[:, :, :, r, s])
    dx = dxp.reshape(xp.shape)[:, :, pt : pt + h, pl : pl + wd]
    return y, dx, dwg.reshape(w.shape), np.asarray(gy, np.float64).sum(axis=(0, 2, 3))


def ref_conv_transpose2d(x, w, b, stride, pad, opad, dil, groups, gy=None):
    """y (and, given gy, (dx, dw, db)) of conv_transpose2d in float64 by scattering."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    n, cin, h, wd = x.shape
    _, cog, kh, kw = w.shape
    g, cig = groups, cin // groups
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = stride, pad, opad, dil
    fh = (h - 1) * sh + dh * (kh - 1) + 1 + oph
    fw = (wd - 1) * sw + dw * (kw - 1) + 1 + opw
    ho, wo = fh - 2 * ph, fw - 2 * pw
    xg = x.reshape(n, g, cig, h, wd)
    wg = w.reshape(g, cig, cog, kh, kw)
    full = np.zeros((n, g, cog, fh, fw))
    for r in range(kh):
        for s in range(kw):
            full[:, :, :, _slices(r, dh, sh, h), _slices(s, dw, sw, wd)] += np.einsum(
                "ngchw,gco->ngohw", xg, wg[:, :, :, r, s]
            )
    y = full[:, :, :, ph : ph + ho, pw : pw + wo].reshape(n, g * cog, ho, wo)
    if b is not None:
        y = y + np.asarray(b, np.float64)[None, :, None, None]
    if gy is None:
        return y
    gfull = np.zeros((n, g, cog, fh, fw))
    gfull[:, :, :, ph : ph + ho, pw : pw + wo] = np.asarray(gy, np.float64).reshape(n, g, cog, ho, wo)
    dxg = np.zeros_like(xg)
    dwg = np.zeros_like(wg)
    for r in range(kh):
        for s in range(kw):
            gp = gfull[:, :, :, _slices(r, dh, sh, h), _slices(s, dw, sw, wd)]
            dxg += np.einsum("ngohw,gco->ngchw", gp, wg[:, :, :, r, s])
            dwg[:, :, :, r, s] = np.einsum("ngchw,ngohw->gco", xg, gp)
    return y, dxg.reshape(x.shape), dwg.reshape(w.shape), np.asarray(gy, np.float64).sum(axis=(0, 2, 3))


def _g(t):
    """The gradient of a leaf as an array (or None)."""
    return None if t.grad is None else np.asarray(t.grad.data)


def _leaf(a):
    return fg.tensor(a, requires_grad=True, dtype=a.dtype)


def _run(fn, x, w, b, seed=0):
    """Forward and (dx, dw, db) of fn(x, w, b) with a random output gradient."""
    xt, wt = _leaf(x), _leaf(w)
    bt = None if b is None else _leaf(b)
    y = fn(xt, wt, bt)
    gy = np.random.default_rng(seed).standard_normal(y.shape).astype(x.dtype)
    (y * fg.tensor(gy)).sum().backward()
    return y.data, gy, _g(xt), _g(wt), None if bt is None else _g(bt)


# ----------------------------------------------------------------------------- geometry strategy


@st.composite
def conv_case(draw, nd=2):
    n = draw(st.integers(1, 2))
    groups = draw(st.integers(1, 2))
    cg, kg = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dil = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    same = draw(st.booleans()) and draw(st.booleans())
    stride = (1,) * nd if same else tuple(draw(st.integers(1, 3)) for _ in range(nd))
    pad = tuple(draw(st.integers(0, 2)) for _ in range(nd))
    sizes = []
    for k, d, p in zip(kernel, dil, pad):
        need = d * (k - 1) + 1 - (0 if same else 2 * p)
        sizes.append(max(1, need + draw(st.integers(0, 4))))
    bias = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    return dict(n=n, groups=groups, cg=cg, kg=kg, kernel=kernel, dil=dil, stride=stride,
                pad="same" if same else pad, sizes=tuple(sizes), bias=bias, seed=seed)


def _arrays(case, transposed=False, dtype=np.float64):
    rng = np.random.default_rng(case["seed"])
    g, cg, kg = case["groups"], case["cg"], case["kg"]
    x = rng.standard_normal((case["n"], g * cg) + case["sizes"]).astype(dtype)
    wshape = (g * cg, kg) if transposed else (g * kg, cg)
    w = rng.standard_normal(wshape + case["kernel"]).astype(dtype)
    b = rng.standard_normal(g * kg).astype(dtype) if case["bias"] else None
    return x, w, b


def _pads4(case):
    if case["pad"] == "same":
        out = []
        for k, d in zip(case["kernel"], case["dil"]):
            t = d * (k - 1)
            out += [t // 2, t - t // 2]
        return tuple(out)
    return tuple(v for p in case["pad"] for v in (p, p))


def _close(a, b, tol=1e-10):
    if b is None:
        assert a is None
        return
    np.testing.assert_allclose(np.asarray(a, np.float64), b, rtol=tol, atol=tol)


@given(conv_case(2))
def test_conv2d_forward_and_grads_match_reference(case):
    x, w, b = _arrays(case)
    fn = lambda xt, wt, bt: F.conv2d(xt, wt, bt, case["stride"], case["pad"], case["dil"], case["groups"])
    y, gy, dx, dw, db = _run(fn, x, w, b, case["seed"])
    ry, rdx, rdw, rdb = ref_conv2d(x, w, b, case["stride"], _pads4(case), case["dil"], case["groups"], gy)
    _close(y, ry)
    _close(dx, rdx)
    _close(dw, rdw)
    _close(db, rdb if b is not None else None)


@given(conv_case(1))
def test_conv1d_forward_and_grads_match_reference(case):
    x, w, b = _arrays(case)
    fn = lambda xt, wt, bt: F.conv1d(xt, wt, bt, case["stride"], case["pad"], case["dil"], case["groups"])
    y, gy, dx, dw, db = _run(fn, x, w, b, case["seed"])
    st2, dil2 = (1,) + case["stride"], (1,) + case["dil"]
    ry, rdx, rdw, rdb = ref_conv2d(
        x[:, :, None], w[:, :, None], b, st2, (0, 0) + _pads4(case), dil2, case["groups"], gy[:, :, None]
    )
    _close(y, ry[:, :, 0])
    _close(dx, rdx[:, :, 0])
    _close(dw, rdw[:, :, 0])
    _close(db, rdb if b is not None else None)


@given(conv_case(2), st.data())
def test_conv_transpose2d_forward_and_grads_match_reference(case, data):
    if case["pad"] == "same":
        case = dict(case, pad=(0, 0))
    x, w, b = _arrays(case, transposed=True)
    st_, dil = case["stride"], case["dil"]
    opad = tuple(data.draw(st.integers(0, max(s, d) - 1)) for s, d in zip(st_, dil))
    pad = case["pad"]
    out = [(i - 1) * s - 2 * p + d * (k - 1) + o + 1 for i, s, p, d, k, o in zip(case["sizes"], st_, pad, dil, case["kernel"], opad)]
    if min(out) < 1:
        pad = (0, 0)
    fn = lambda xt, wt, bt: F.conv_transpose2d(xt, wt, bt, st_, pad, opad, case["groups"], dil)
    y, gy, dx, dw, db = _run(fn, x, w, b, case["seed"])
    ry, rdx, rdw, rdb = ref_conv_transpose2d(x, w, b, st_, pad, opad, dil, case["groups"], gy)
    _close(y, ry)
    _close(dx, rdx)
    _close(dw, rdw)
    _close(db, rdb if b is not None else None)


@pytest.mark.parametrize("pad,groups", [(1, 1), (0, 2), (2, 1), ((0, 1), 1), ("same", 2)])
def test_winograd_path_matches_reference(pad, groups):
    """3x3 stride-1 convolutions with >= 16 channels per group run as Winograd F(2x2, 3x3)."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 16 * groups, 9, 11))
    w = rng.standard_normal((18 * groups, 16, 3, 3))
    b = rng.standard_normal(18 * groups)
    fn = lambda xt, wt, bt: F.conv2d(xt, wt, bt, 1, pad, 1, groups)
    y, gy, dx, dw, db = _run(fn, x, w, b, 12)
    p = (1, 1) if pad == "same" else ((pad, pad) if isinstance(pad, int) else pad)
    ry, rdx, rdw, rdb = ref_conv2d(x, w, b, (1, 1), (p[0], p[0], p[1], p[1]), (1, 1), groups, gy)
    _close(y, ry)
    _close(dx, rdx)
    _close(dw, rdw)
    _close(db, rdb)
    r32 = _run(fn, x.astype(np.float32), w.astype(np.float32), b.astype(np.float32), 12)
    for a, c in zip(r32, (ry, gy, rdx, rdw, rdb)):
        np.testing.assert_allclose(a, c, rtol=2e-4, atol=2e-4 * np.abs(c).max())


@pytest.mark.parametrize("groups", [1, 2])
def test_pointwise_whole_image_paths_match_reference(groups):
    """1x1 convolutions over >= 8 (image, group) pairs run one GEMM per pair."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 4 * groups, 5, 7))
    w = rng.standard_normal((6 * groups, 4, 1, 1))
    b = rng.standard_normal(6 * groups)
    y, gy, dx, dw, db = _run(lambda xt, wt, bt: F.conv2d(xt, wt, bt, 1, 0, 1, groups), x, w, b, 1)
    for a, r in zip((y, dx, dw, db), ref_conv2d(x, w, b, (1, 1), (0, 0, 0, 0), (1, 1), groups, gy)):
        _close(a, r)
    wt = rng.standard_normal((4 * groups, 3, 1, 1))
    bt = rng.standard_normal(3 * groups)
    y, gy, dx, dw, db = _run(lambda xt, w_, b_: F.conv_transpose2d(xt, w_, b_, 1, 0, 0, groups), x, wt, bt, 2)
    for a, r in zip((y, dx, dw, db), ref_conv_transpose2d(x, wt, bt, (1, 1), (0, 0), (0, 0), (1, 1), groups, gy)):
        _close(a, r)


_LEVEL_SCRIPT = """
import sys, numpy as np, ferrograd as fg, ferrograd.nn.functional as F
rng = np.random.default_rng(11)
cases = [  # (n, c, k, h, w, kh, kw, padding): the small-convolution (direct) paths and
    # their edges: C = 1, K below and above half a vector, asymmetric 'same' padding,
    # an input gradient that takes the GEMM path (padding 0), kernel width 1 and 7.
    (3, 1, 6, 28, 28, 5, 5, 2), (2, 6, 16, 14, 14, 5, 5, 0), (2, 3, 9, 9, 11, 3, 2, (1, 0)),
    (1, 2, 3, 6, 7, 2, 4, "same"), (2, 5, 20, 8, 8, 1, 3, (0, 1)), (1, 2, 4, 9, 12, 2, 7, 3),
]
out = []
for dt in (np.float32, np.float64):
    for (n, c, k, h, w, kh, kw, pad) in cases:
        x = fg.tensor(rng.standard_normal((n, c, h, w)).astype(dt), requires_grad=True)
        wt = fg.tensor(rng.standard_normal((k, c, kh, kw)).astype(dt), requires_grad=True)
        b = fg.tensor(rng.standard_normal(k).astype(dt), requires_grad=True)
        y = F.conv2d(x, wt, b, 1, pad)
        gy = rng.standard_normal(y.shape).astype(dt)
        (y * fg.tensor(gy)).sum().backward()
        out += [x.data, wt.data, b.data, gy, y.data, x.grad.data, wt.grad.data, b.grad.data]
np.savez(sys.argv[1], *out)
"""


def test_small_conv_paths_match_reference_at_every_simd_level(tmp_path):
    """Small stride-1 convolutions run direct kernels under AVX-512 (an implicit im2col:
    forward, input gradient as the full correlation, weight gradient with positions or
    output channels in the lanes) and im2col + GEMM otherwise: every level (one
    subprocess each, since the level is fixed per process) matches the float64
    reference, and the float64 results of the levels agree to rounding."""
    import os
    import subprocess
    import sys

    results = {}
    for level in ("scalar", "avx2", "avx512"):
        f = tmp_path / f"{level}.npz"
        env = dict(os.environ, FERROGRAD_SIMD=level)
        subprocess.run([sys.executable, "-c", _LEVEL_SCRIPT, str(f)], check=True, env=env)
        with np.load(f) as z:
            arrs = [z[key] for key in sorted(z.files, key=lambda key: int(key.split("_")[1]))]
        results[level] = arrs
        for i in range(0, len(arrs), 8):
            x, w, b, gy, y, dx, dw, db = arrs[i : i + 8]
            pad = {0: 2, 1: 0, 2: (1, 0), 3: "same", 4: (0, 1), 5: 3}[(i // 8) % 6]
            if pad == "same":
                th, tw = w.shape[2] - 1, w.shape[3] - 1
                pads = (th // 2, th - th // 2, tw // 2, tw - tw // 2)
            else:
                ph, pw = (pad, pad) if isinstance(pad, int) else pad
                pads = (ph, ph, pw, pw)
            ref = ref_conv2d(x, w, b, (1, 1), pads, (1, 1), 1, gy)
            tol = 1e-10 if x.dtype == np.float64 else 2e-5
            for got, want in zip((y, dx, dw, db), ref):
                assert got.dtype == x.dtype
                np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max(), err_msg=level)
    half = len(results["scalar"]) // 2
    for level in ("avx2", "avx512"):
        for a, c in zip(results["scalar"][half:], results[level][half:]):
            np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-12 * max(1.0, np.abs(a).max()))


# ----------------------------------------------------------------------------- gradcheck


def test_gradcheck_conv2d_float64():
    rng = np.random.default_rng(0)
    x = fg.tensor(rng.standard_normal((2, 4, 5, 6)), requires_grad=True)
    w = fg.tensor(rng.standard_normal((4, 2, 2, 3)), requires_grad=True)
    b = fg.tensor(rng.standard_normal(4), requires_grad=True)
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, (2, 1), (1, 0), (1, 2), 2), [x, w, b])


def test_gradcheck_conv1d_and_transpose_float64():
    rng = np.random.default_rng(1)
    x = fg.tensor(rng.standard_normal((2, 2, 7)), requires_grad=True)
    w = fg.tensor(rng.standard_normal((3, 2, 3)), requires_grad=True)
    assert gradcheck(lambda x, w: F.conv1d(x, w, None, 2, "valid", 1), [x, w])
    x = fg.tensor(rng.standard_normal((1, 2, 3, 3)), requires_grad=True)
    w = fg.tensor(rng.standard_normal((2, 3, 3, 2)), requires_grad=True)
    b = fg.tensor(rng.standard_normal(3), requires_grad=True)
    assert gradcheck(lambda x, w, b: F.conv_transpose2d(x, w, b, 2, 1, 1), [x, w, b])


# ----------------------------------------------------------------------------- determinism and dtypes


@pytest.mark.parametrize(
    "kernel,stride,pad,chans,batch",
    [(3, 1, 1, 6, 3), (3, 1, 1, 16, 3), (3, 2, 0, 6, 3), (1, 1, 0, 6, 3), (1, 1, 0, 6, 8), (5, 1, 2, 6, 3),
     (5, 1, 0, 1, 5), (5, 1, 2, 1, 17)],
)
def test_one_and_two_threads_bitwise_equal(kernel, stride, pad, chans, batch):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((batch, chans, 23, 29)).astype(np.float32)
    w = rng.standard_normal((16, chans, kernel, kernel)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    wt_ = rng.standard_normal((chans, 16, kernel, kernel)).astype(np.float32)
    before = _native.get_num_threads()
    outs = []
    try:
        for t in (1, 2):
            _native.set_num_threads(t)
            fn = lambda xt, wt, bt: F.conv2d(xt, wt, bt, stride, pad)
            outs.append(_run(fn, x, w, b, 3))
            fn = lambda xt, wt, bt: F.conv_transpose2d(xt, wt, bt, stride, pad)
            outs.append(_run(fn, x, wt_, b, 4))
    finally:
        _native.set_num_threads(before)
    for a, b2 in zip(outs[0:2], outs[2:4]):
        for u, v in zip(a, b2):
            if u is None:
                assert v is None
            else:
                assert np.array_equal(u, v)


def test_float32_agrees_with_float64():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 6, 11, 9))
    w = rng.standard_normal((4, 3, 3, 3)) * 0.3
    b = rng.standard_normal(4)
    fn = lambda xt, wt, bt: F.conv2d(xt, wt, bt, 1, 1, 1, 2)
    r64 = _run(fn, x, w, b, 6)
    r32 = _run(fn, x.astype(np.float32), w.astype(np.float32), b.astype(np.float32), 6)
    for a, c in zip(r32, r64):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------- modules


def test_modules_shapes_init_and_layout():
    fg.manual_seed(0)
    m = nn.Conv2d(4, 6, (3, 2), stride=2, padding=1, groups=2)
    assert m.weight.shape == (6, 2, 3, 2) and m.bias.shape == (6,)
    bound = 1 / np.sqrt(2 * 3 * 2)
    assert np.abs(m.weight.data).max() <= bound + 1e-7 and np.abs(m.bias.data).max() <= bound + 1e-7
    assert m.weight.dtype == np.float32
    fg.manual_seed(0)
    m2 = nn.Conv2d(4, 6, (3, 2), stride=2, padding=1, groups=2)
    assert np.array_equal(m.weight.data, m2.weight.data)
    t = nn.ConvTranspose2d(4, 6, 3, stride=2, groups=2, bias=False)
    assert t.weight.shape == (4, 3, 3, 3) and t.bias is None
    c1 = nn.Conv1d(3, 5, 4, dtype=np.float64)
    assert c1.weight.shape == (5, 3, 4) and c1.weight.dtype == np.float64
    assert set(m.state_dict()) == {"weight", "bias"}
    y = m(fg.randn(2, 4, 9, 8))
    assert y.shape == (2, 6, 5, 5)
    assert nn.Conv2d(3, 4, 3)(fg.randn(3, 7, 7)).shape == (4, 5, 5)  # unbatched
    assert c1(fg.randn(2, 3, 10, dtype=np.float64)).shape == (2, 5, 7)
    assert t(fg.randn(1, 4, 5, 5)).shape == (1, 6, 11, 11)
    assert t(fg.randn(1, 4, 5, 5), output_size=(12, 12)).shape == (1, 6, 12, 12)
    assert "padding='same'" in repr(nn.Conv2d(2, 2, 4, padding="same", dilation=2))


def test_same_padding_even_kernel_matches_reference():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 6, 7))
    w = rng.standard_normal((2, 3, 4, 2))
    y = F.conv2d(fg.tensor(x), fg.tensor(w), None, 1, "same", (1, 2))
    assert y.shape == (2, 2, 6, 7)
    _close(y.data, ref_conv2d(x, w, None, (1, 1), (1, 2, 1, 1), (1, 2), 1))


@pytest.mark.parametrize("mode,np_mode", [("reflect", "reflect"), ("replicate", "edge"), ("circular", "wrap")])
def test_padding_modes_match_reference(mode, np_mode):
    if not hasattr(F, "pad"):
        pytest.skip("F.pad not available yet")
    rng = np.random.default_rng(8)
    fg.manual_seed(1)
    m = nn.Conv2d(3, 4, 3, padding=(2, 1), padding_mode=mode, dtype=np.float64)
    x = rng.standard_normal((2, 3, 5, 6))
    xt = fg.tensor(x, requires_grad=True)
    y = m(xt)
    gy = rng.standard_normal(y.shape)
    (y * fg.tensor(gy)).sum().backward()
    xp = np.pad(x, ((0, 0), (0, 0), (2, 2), (1, 1)), mode=np_mode)
    ry, rdxp, rdw, rdb = ref_conv2d(xp, m.weight.data, m.bias.data, (1, 1), (0, 0, 0, 0), (1, 1), 1, gy)
    _close(y.data, ry)
    _close(_g(m.weight), rdw)
    # dx: the padded-input gradient folded back onto the input.
    xp_t = fg.tensor(x, requires_grad=True)
    z = F.pad(xp_t, (1, 1, 2, 2), mode=mode)
    (z * fg.tensor(rdxp)).sum().backward()
    _close(_g(xt), _g(xp_t))
    m1 = nn.Conv1d(2, 2, 3, padding="same", padding_mode=mode, dtype=np.float64)
    assert m1(fg.randn(1, 2, 5, dtype=np.float64)).shape == (1, 2, 5)


# ----------------------------------------------------------------------------- bad input


def test_bad_input_errors():
    m = nn.Conv2d(3, 4, 3)
    with pytest.raises(ValueError, match=r"Conv2d\(in_channels=3\): input has 4 channels, shape \(8, 4, 32, 32\)"):
        m(fg.zeros(8, 4, 32, 32))
    with pytest.raises(ValueError, match=r"Conv2d\(in_channels=3\).*4-D.*given shape \(3, 32\)"):
        m(fg.zeros(3, 32))
    with pytest.raises(ValueError, match=r"Conv1d\(in_channels=2\): input has 3 channels"):
        nn.Conv1d(2, 2, 3)(fg.zeros(1, 3, 8))
    with pytest.raises(ValueError, match="larger than the padded input"):
        m(fg.zeros(1, 3, 2, 5))
    with pytest.raises(ValueError, match="larger than the padded input"):
        F.conv2d(fg.zeros(1, 1, 4, 4), fg.zeros(1, 1, 3, 3), dilation=2)
    for kw in (dict(stride=0), dict(dilation=0), dict(stride=(1, -1))):
        with pytest.raises(ValueError, match="at least 1"):
            nn.Conv2d(3, 4, 3, **kw)
        with pytest.raises(ValueError, match="at least 1"):
            F.conv2d(fg.zeros(1, 3, 5, 5), fg.zeros(4, 3, 3, 3), **kw)
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="groups"):
        F.conv2d(fg.zeros(1, 4, 5, 5), fg.zeros(3, 2, 3, 3), groups=2)
    with pytest.raises(ValueError, match="strided"):
        nn.Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="padding_mode"):
        nn.Conv2d(3, 4, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="reflect padding 3 must be smaller than the input size 3"):
        nn.Conv2d(3, 4, 3, padding=3, padding_mode="reflect")(fg.zeros(1, 3, 3, 8))
    with pytest.raises(ValueError, match="output would be empty"):
        F.conv_transpose2d(fg.zeros(1, 2, 1, 1), fg.zeros(2, 2, 1, 1), padding=1)
    with pytest.raises(ValueError, match="output_padding"):
        nn.ConvTranspose2d(2, 2, 3, stride=2, output_padding=2)
    with pytest.raises(ValueError, match=r"ConvTranspose2d\(in_channels=2\): input has 3 channels"):
        nn.ConvTranspose2d(2, 2, 3)(fg.zeros(1, 3, 4, 4))
    with pytest.raises(TypeError, match="dtype"):
        F.conv2d(fg.zeros(1, 3, 5, 5, dtype=np.float64), fg.zeros(4, 3, 3, 3))
    # The binding checks on its own (no crash on direct calls).
    x = np.zeros((1, 3, 5, 5), np.float32)
    with pytest.raises(ValueError):
        _native.conv2d(x, np.zeros((4, 2, 3, 3), np.float32), None, (1, 1), (0, 0, 0, 0), (1, 1), 1)
    with pytest.raises(ValueError):
        _native.conv2d(x, np.zeros((4, 3, 9, 3), np.float32), None, (1, 1), (0, 0, 0, 0), (1, 1), 1)
    with pytest.raises(ValueError):
        _native.conv2d(x, np.zeros((4, 3, 3, 3), np.float32), None, (0, 1), (0, 0, 0, 0), (1, 1), 1)
    with pytest.raises(ValueError):
        _native.conv2d(x, np.zeros((4, 3, 3, 3), np.float32), np.zeros(3, np.float32), (1, 1), (0, 0, 0, 0), (1, 1), 1)
    with pytest.raises(ValueError):
        _native.conv2d_backward(x, np.zeros((4, 3, 3, 3), np.float32), np.zeros((1, 4, 3, 4), np.float32),
                                (1, 1), (0, 0, 0, 0), (1, 1), 1, True, True, True)
    with pytest.raises(TypeError):
        _native.conv2d(x, np.zeros((4, 3, 3, 3), np.float64), None, (1, 1), (0, 0, 0, 0), (1, 1), 1)


# ----------------------------------------------------------------------------- torch cross-check


def test_matches_torch_with_same_weights():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    cases = [
        (nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2), torch.nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2), (2, 4, 9, 8)),
        (nn.Conv2d(3, 4, (4, 3), padding="same", dilation=(1, 2)), torch.nn.Conv2d(3, 4, (4, 3), padding="same", dilation=(1, 2)), (2, 3, 7, 9)),
        (nn.Conv1d(3, 4, 5, stride=2, padding=2), torch.nn.Conv1d(3, 4, 5, stride=2, padding=2), (2, 3, 11)),
        (nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2),
         torch.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2), (2, 4, 5, 6)),
    ]
    for ours, theirs, shape in cases:
        theirs.load_state_dict({k: torch.tensor(np.asarray(v)) for k, v in ours.state_dict().items()})
        x = rng.standard_normal(shape).astype(np.float32)
        xt = fg.tensor(x, requires_grad=True)
        y = ours(xt)
        tx = torch.tensor(x, requires_grad=True)
        ty = theirs(tx)
        gy = rng.standard_normal(y.shape).astype(np.float32)
        (y * fg.tensor(gy)).sum().backward()
        ty.backward(torch.tensor(gy))
        np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(_g(xt), tx.grad.numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(_g(ours.weight), theirs.weight.grad.numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(_g(ours.bias), theirs.bias.grad.numpy(), rtol=1e-4, atol=1e-4)
