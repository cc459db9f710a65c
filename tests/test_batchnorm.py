"""Batch norm: forward and gradients against NumPy, running statistics over several steps,
momentum None, eval mode, state_dict, gradcheck, threads, torch, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ferrograd as fg
import ferrograd.nn as nn
import ferrograd.nn.functional as F
from ferrograd.autograd import gradcheck


def ref_bn_train(x, w, b, eps):
    axes = (0,) + tuple(range(2, x.ndim))
    shp = (1, -1) + (1,) * (x.ndim - 2)
    mean = x.mean(axis=axes)
    var = x.var(axis=axes)
    xhat = (x - mean.reshape(shp)) / np.sqrt(var.reshape(shp) + eps)
    return xhat * w.reshape(shp) + b.reshape(shp), mean, var, xhat


def ref_bn_grads(x, w, g, eps):
    axes = (0,) + tuple(range(2, x.ndim))
    shp = (1, -1) + (1,) * (x.ndim - 2)
    m = x.size // x.shape[1]
    _, _, var, xhat = ref_bn_train(x, w, np.zeros_like(w), eps)
    invstd = 1 / np.sqrt(var + eps)
    gb = g.sum(axis=axes)
    gw = (g * xhat).sum(axis=axes)
    gx = (w * invstd).reshape(shp) / m * (m * g - gb.reshape(shp) - xhat * gw.reshape(shp))
    return gx, gw, gb


@given(
    shape=st.sampled_from([(4, 3), (2, 3, 5), (3, 2, 4, 3), (2, 1, 1, 2), (5, 4, 1)]),
    seed=st.integers(0, 2**31 - 1),
    dt=st.sampled_from([np.float32, np.float64]),
)
def test_train_forward_and_grads(shape, seed, dt):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 3 + 1).astype(dt)
    c = shape[1]
    w, b = rng.standard_normal(c).astype(dt), rng.standard_normal(c).astype(dt)
    xt = fg.tensor(x, requires_grad=True)
    wt, bt = fg.tensor(w, requires_grad=True), fg.tensor(b, requires_grad=True)
    rm, rv = np.zeros(c, dt), np.ones(c, dt)
    y = F.batch_norm(xt, rm, rv, wt, bt, training=True, momentum=0.1, eps=1e-5)
    x64 = x.astype(np.float64)
    ry, mean, var, _ = ref_bn_train(x64, w.astype(np.float64), b.astype(np.float64), 1e-5)
    tol = dict(rtol=1e-4, atol=1e-4) if dt == np.float32 else dict(rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(y.numpy(), ry, **tol)
    m = x.size // c
    np.testing.assert_allclose(rm, 0.1 * mean, **tol)
    np.testing.assert_allclose(rv, 0.9 + 0.1 * var * m / (m - 1), **tol)
    g = rng.standard_normal(shape).astype(dt)
    y.backward(fg.tensor(g))
    gx, gw, gb = ref_bn_grads(x64, w.astype(np.float64), g.astype(np.float64), 1e-5)
    np.testing.assert_allclose(xt.grad.numpy(), gx, **tol)
    np.testing.assert_allclose(wt.grad.numpy(), gw, **tol)
    np.testing.assert_allclose(bt.grad.numpy(), gb, **tol)


@pytest.mark.parametrize("momentum", [0.1, 0.3, None])
@pytest.mark.parametrize("cls,shape", [(nn.BatchNorm1d, (6, 3)), (nn.BatchNorm1d, (4, 3, 5)), (nn.BatchNorm2d, (3, 3, 4, 2))])
def test_running_stats_over_steps(momentum, cls, shape):
    rng = np.random.default_rng(1)
    bn = cls(3, momentum=momentum).double()
    rm, rv = np.zeros(3), np.ones(3)
    axes = (0,) + tuple(range(2, len(shape)))
    for step in range(1, 5):
        x = rng.standard_normal(shape) * step + step
        bn(fg.tensor(x))
        f = 1.0 / step if momentum is None else momentum
        m = x.size // 3
        rm = (1 - f) * rm + f * x.mean(axis=axes)
        rv = (1 - f) * rv + f * x.var(axis=axes) * m / (m - 1)
        np.testing.assert_allclose(bn.running_mean.numpy(), rm, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(bn.running_var.numpy(), rv, rtol=1e-12, atol=1e-12)
        assert int(bn.num_batches_tracked.numpy()) == step
    bn.eval()
    x = rng.standard_normal(shape)
    shp = (1, -1) + (1,) * (len(shape) - 2)
    want = (x - rm.reshape(shp)) / np.sqrt(rv.reshape(shp) + 1e-5)
    np.testing.assert_allclose(bn(fg.tensor(x)).numpy(), want, rtol=1e-12, atol=1e-12)
    # Eval does not touch the statistics.
    np.testing.assert_allclose(bn.running_mean.numpy(), rm, rtol=1e-12, atol=1e-12)
    assert int(bn.num_batches_tracked.numpy()) == 4


def test_state_dict_keys_and_roundtrip():
    bn = nn.BatchNorm2d(4)
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert bn.state_dict()["num_batches_tracked"].dtype == np.int64
    bn(fg.tensor(np.random.default_rng(0).standard_normal((2, 4, 3, 3)).astype(np.float32)))
    other = nn.BatchNorm2d(4)
    other.load_state_dict(bn.state_dict())
    for k, v in bn.state_dict().items():
        np.testing.assert_array_equal(other.state_dict()[k], v)
    assert list(nn.BatchNorm1d(3, affine=False, track_running_stats=False).state_dict()) == []
    seq = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    assert "1.running_var" in seq.state_dict()


def test_no_tracking_and_no_affine():
    bn = nn.BatchNorm1d(2, affine=False, track_running_stats=False)
    x = np.array([[1.0, 2.0], [3.0, 6.0], [5.0, 1.0]])
    bn.eval()  # Without running stats, eval still uses the batch statistics.
    want, *_ = ref_bn_train(x, np.ones(2), np.zeros(2), 1e-5)
    np.testing.assert_allclose(bn(fg.tensor(x)).numpy(), want, rtol=1e-12, atol=1e-12)
    assert bn.weight is None and bn.running_mean is None


@pytest.mark.parametrize("training", [True, False])
def test_gradcheck(training):
    rng = np.random.default_rng(4)
    x = fg.tensor(rng.standard_normal((3, 2, 2, 2)), requires_grad=True)
    w = fg.tensor(rng.standard_normal(2) + 2, requires_grad=True)
    b = fg.tensor(rng.standard_normal(2), requires_grad=True)
    rm, rv = rng.standard_normal(2), rng.random(2) + 0.5

    def fn(a, ww, bb):
        return F.batch_norm(a, rm.copy(), rv.copy(), ww, bb, training=training, eps=1e-3)

    assert gradcheck(fn, [x, w, b])


def test_threads_bitwise():
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((8, 16, 24, 24)) * 2 + 1).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    old = fg.get_num_threads()
    res = []
    try:
        for nt in (1, 2):
            fg.set_num_threads(nt)
            bn = nn.BatchNorm2d(16)
            t = fg.tensor(x, requires_grad=True)
            y = bn(t)
            y.backward(fg.tensor(g))
            res.append([y.numpy().copy(), t.grad.numpy().copy(), bn.weight.grad.numpy().copy(), bn.running_var.numpy().copy()])
    finally:
        fg.set_num_threads(old)
    for a, b in zip(*res):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("cls,shape", [("BatchNorm1d", (5, 3)), ("BatchNorm1d", (4, 3, 6)), ("BatchNorm2d", (2, 3, 5, 4))])
def test_matches_torch(momentum, cls, shape):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    ours = getattr(nn, cls)(3, momentum=momentum, eps=1e-4).double()
    theirs = getattr(torch.nn, cls)(3, momentum=momentum, eps=1e-4).double()
    w, b = rng.standard_normal(3), rng.standard_normal(3)
    ours.weight.data[...] = w
    ours.bias.data[...] = b
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(w))
        theirs.bias.copy_(torch.tensor(b))
    for _ in range(3):
        x = rng.standard_normal(shape) * 2 + 0.5
        g = rng.standard_normal(shape)
        t, tt = fg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        y, ty = ours(t), theirs(tt)
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-10)
        y.backward(fg.tensor(g))
        ty.backward(torch.tensor(g))
        np.testing.assert_allclose(t.grad.numpy(), tt.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ours.bias.grad.numpy(), theirs.bias.grad.numpy(), rtol=1e-10, atol=1e-10)
    sd = theirs.state_dict()
    for k, v in ours.state_dict().items():
        np.testing.assert_allclose(v, sd[k].numpy(), rtol=1e-12, atol=1e-12)
    ours.eval()
    theirs.eval()
    x = rng.standard_normal(shape)
    t, tt = fg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, ty = ours(t), theirs(tt)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    y.sum().backward()
    ty.sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), tt.grad.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: nn.BatchNorm2d(3)(fg.zeros(2, 3, 4)), r"BatchNorm2d\(3\): expected 4-D \(N, C, H, W\) input, given shape \(2, 3, 4\)"),
        (lambda: nn.BatchNorm1d(3)(fg.zeros(2, 4)), r"BatchNorm1d\(3\): expected 3 channels.*given 4"),
        (lambda: nn.BatchNorm1d(3)(fg.zeros(1, 3)), "Expected more than 1 value per channel when training"),
        (lambda: nn.BatchNorm2d(3)(fg.zeros(1, 3, 1, 1)), "Expected more than 1 value per channel when training"),
        (lambda: nn.BatchNorm1d(0), "num_features"),
        (lambda: F.batch_norm(fg.zeros(2, 3), None, None, training=False), "running_mean"),
        (lambda: F.batch_norm(fg.zeros(2, 3), np.zeros(2), np.ones(3), training=True), "running_mean must have shape"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_eval_single_sample_ok():
    bn = nn.BatchNorm1d(3).eval()
    assert bn(fg.ones(1, 3)).shape == (1, 3)
