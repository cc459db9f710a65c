"""nn losses against NumPy implementations of PyTorch's documented formulas (every
reduction, weights, ignore_index, label smoothing, probability targets, pos_weight),
gradients by gradcheck, and bad-input errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ferrograd as fg
import ferrograd.nn as nn
import ferrograd.nn.functional as F
from ferrograd.autograd import gradcheck

from helpers import ref_log_softmax

REDUCTIONS = ["mean", "sum", "none"]


def t64(a, grad=True):
    return fg.Tensor(np.asarray(a, np.float64), requires_grad=grad)


def reduce(loss, reduction):
    return {"mean": loss.mean(), "sum": loss.sum(), "none": loss}[reduction]


def ref_bce(p, y, w):
    loss = -(y * np.maximum(np.log(p), -100) + (1 - y) * np.maximum(np.log1p(-p), -100))
    return loss * (1 if w is None else w)


def ref_bce_logits(x, y, w, pw):
    sig = 1 / (1 + np.exp(-x))
    pw = 1 if pw is None else pw
    loss = -(pw * y * np.log(sig) + (1 - y) * np.log(1 - sig))
    return loss * (1 if w is None else w)


def ref_ce(x, y, w, ignore, reduction, eps, probs):
    """PyTorch's documented formula on (N, C) logits."""
    n, c = x.shape
    logp = ref_log_softmax(x, 1)
    wc = np.ones(c) if w is None else w
    if probs:
        q = y * (1 - eps) + eps / c
        loss = -(logp * q * wc).sum(1)
        return {"mean": loss.sum() / n, "sum": loss.sum(), "none": loss}[reduction]
    valid = y != ignore
    ys = np.where(valid, y, 0)
    wy = wc[ys] * valid
    nll = -wy * logp[np.arange(n), ys]
    smooth = -(logp * wc).sum(1) * valid
    loss = (1 - eps) * nll + eps / c * smooth
    if reduction == "mean":
        return loss.sum() / wy.sum()
    return loss.sum() if reduction == "sum" else loss


# ----------------------------------------------------------------------------- regression


@settings(max_examples=30)
@given(
    kind=st.sampled_from(["mse", "l1", "huber"]), reduction=st.sampled_from(REDUCTIONS),
    shape=st.sampled_from([(1,), (4, 3), (2, 3, 2)]), delta=st.floats(0.1, 3.0),
    dt=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 9999),
)
def test_regression_losses(kind, reduction, shape, delta, dt, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 2).astype(dt)
    y = (rng.standard_normal(shape) * 2).astype(dt)
    d = x.astype(np.float64) - y
    if kind == "mse":
        out, ref = nn.MSELoss(reduction)(fg.Tensor(x), y), d**2
    elif kind == "l1":
        out, ref = nn.L1Loss(reduction)(fg.Tensor(x), y), np.abs(d)
    else:
        out = nn.HuberLoss(reduction, delta=delta)(fg.Tensor(x), y)
        ref = np.where(np.abs(d) < delta, 0.5 * d**2, delta * (np.abs(d) - 0.5 * delta))
    tol = dict(rtol=1e-5, atol=1e-6) if dt == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out.data, reduce(ref, reduction), **tol)
    assert out.dtype == dt


def test_regression_gradcheck_input_and_target():
    rng = np.random.default_rng(0)
    x, y = t64(rng.standard_normal((3, 4))), t64(rng.standard_normal((3, 4)))
    for r in REDUCTIONS:
        assert gradcheck(lambda a, b: F.mse_loss(a, b, r), [x, y])
        assert gradcheck(lambda a, b: F.l1_loss(a, b, r), [x, y])
        assert gradcheck(lambda a, b: F.huber_loss(a, b, r, 0.7), [x, y])


# ----------------------------------------------------------------------------- binary


@settings(max_examples=30)
@given(
    reduction=st.sampled_from(REDUCTIONS), shape=st.sampled_from([(5,), (4, 3), (2, 2, 3)]),
    weighted=st.booleans(), pos=st.booleans(), seed=st.integers(0, 9999),
    dt=st.sampled_from([np.float32, np.float64]),
)
def test_binary_losses(reduction, shape, weighted, pos, seed, dt):
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal(shape) * 3).astype(dt)
    y = rng.random(shape).astype(dt)
    w = rng.random(shape[-1:]) + 0.5 if weighted else None
    pw = rng.random(shape[-1:]) * 3 if pos else None
    p = (1 / (1 + np.exp(-logits.astype(np.float64)))).astype(dt)
    tol = dict(rtol=2e-5, atol=1e-6) if dt == np.float32 else dict(rtol=1e-11, atol=1e-12)
    out = nn.BCELoss(weight=w, reduction=reduction)(fg.Tensor(p), y)
    np.testing.assert_allclose(out.data, reduce(ref_bce(p.astype(np.float64), y, w), reduction), **tol)
    out = nn.BCEWithLogitsLoss(weight=w, reduction=reduction, pos_weight=pw)(fg.Tensor(logits), y)
    np.testing.assert_allclose(out.data, reduce(ref_bce_logits(logits.astype(np.float64), y, w, pw), reduction), **tol)


def test_bce_clamps_and_logits_stable():
    out = F.binary_cross_entropy(fg.tensor([0.0, 1.0]), fg.tensor([1.0, 0.0]), reduction="none")
    np.testing.assert_array_equal(out.data, [100.0, 100.0])
    big = F.binary_cross_entropy_with_logits(fg.tensor([1000.0, -1000.0]), fg.tensor([0.0, 1.0]), reduction="none")
    np.testing.assert_allclose(big.data, [1000.0, 1000.0])
    assert np.isfinite(F.binary_cross_entropy_with_logits(fg.tensor([88.0]), fg.tensor([1.0])).item())


def test_binary_gradcheck():
    rng = np.random.default_rng(1)
    p = t64(rng.uniform(0.1, 0.9, (3, 2)))
    x = t64(rng.standard_normal((3, 2)) * 2)
    y = t64(rng.random((3, 2)))
    w = rng.random(2) + 0.5
    for r in REDUCTIONS:
        assert gradcheck(lambda a, b: F.binary_cross_entropy(a, b, w, r), [p, y])
        assert gradcheck(lambda a, b: F.binary_cross_entropy_with_logits(a, b, w, r), [x, y])
        assert gradcheck(lambda a, b: F.binary_cross_entropy_with_logits(a, b, w, r, pos_weight=np.array([2.0, 0.3])), [x, y])


# ----------------------------------------------------------------------------- cross-entropy, nll


@settings(max_examples=60)
@given(
    n=st.integers(1, 6), c=st.integers(1, 5), reduction=st.sampled_from(REDUCTIONS), weighted=st.booleans(),
    ignore=st.sampled_from([-100, 0, 1]), eps=st.sampled_from([0.0, 0.1, 0.45]), probs=st.booleans(),
    dt=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 9999),
)
def test_cross_entropy_matches_formula(n, c, reduction, weighted, ignore, eps, probs, dt, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, c)) * 3).astype(dt)
    w = rng.random(c) + 0.2 if weighted else None
    if probs:
        y = rng.random((n, c)).astype(dt)
        y /= y.sum(1, keepdims=True)
    else:
        y = rng.integers(0, c, n)
        y[0] = min(ignore, c - 1) if ignore >= 0 else 0  # keep at least one valid row
        if n > 1 and ignore != -100:
            y[-1] = ignore
    loss = nn.CrossEntropyLoss(weight=w, ignore_index=ignore, reduction=reduction, label_smoothing=eps)
    xt = fg.Tensor(x, requires_grad=True)
    out = loss(xt, y)
    ref = ref_ce(x.astype(np.float64), y, w, ignore, reduction, eps, probs)
    tol = dict(rtol=3e-5, atol=3e-6) if dt == np.float32 else dict(rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(out.data, ref, **tol)
    if not probs:
        # NLLLoss of log_softmax is the unsmoothed cross-entropy.
        nll = nn.NLLLoss(weight=w, ignore_index=ignore, reduction=reduction)(F.log_softmax(fg.Tensor(x), 1), y)
        np.testing.assert_allclose(nll.data, ref_ce(x.astype(np.float64), y, w, ignore, reduction, 0.0, False), **tol)


def test_cross_entropy_gradcheck_all_options():
    rng = np.random.default_rng(2)
    x = t64(rng.standard_normal((4, 3)))
    y = np.array([0, 2, 1, 2])
    w = np.array([0.5, 1.0, 2.0])
    q = t64(rng.dirichlet(np.ones(3), 4))
    for r in REDUCTIONS:
        for eps in (0.0, 0.2):
            assert gradcheck(lambda a: F.cross_entropy(a, y, w, 1, r, eps), [x])
            assert gradcheck(lambda a: F.cross_entropy(a, y, None, -100, r, eps), [x])
            assert gradcheck(lambda a, b: F.cross_entropy(a, b, w, reduction=r, label_smoothing=eps), [x, q])
        assert gradcheck(lambda a: F.nll_loss(a, y, w, 2, r), [x])


def test_cross_entropy_spatial_and_unbatched():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 3, 2))  # (N, C, d1, d2)
    y = rng.integers(0, 4, (2, 3, 2))
    x2 = np.moveaxis(x, 1, -1).reshape(-1, 4)
    y2 = y.reshape(-1)
    for r in REDUCTIONS:
        out = F.cross_entropy(fg.Tensor(x), y, reduction=r, label_smoothing=0.1)
        ref = ref_ce(x2, y2, None, -100, r, 0.1, False)
        np.testing.assert_allclose(out.data, ref.reshape(2, 3, 2) if r == "none" else ref, rtol=1e-12)
    assert gradcheck(lambda a: F.cross_entropy(a, y, reduction="none"), [t64(x)])
    q = rng.dirichlet(np.ones(4), (2, 3, 2))
    qm = np.moveaxis(q, -1, 1)
    out = F.cross_entropy(fg.Tensor(x), qm, reduction="none")
    np.testing.assert_allclose(out.data, ref_ce(x2, q.reshape(-1, 4), None, -100, "none", 0, True).reshape(2, 3, 2), rtol=1e-12)
    u = F.cross_entropy(fg.Tensor(x[0, :, 0, 0]), np.array(2), reduction="none")
    assert u.shape == ()
    np.testing.assert_allclose(u.item(), -ref_log_softmax(x[0, :, 0, 0])[2], rtol=1e-12)


def test_cross_entropy_float_index_targets_and_all_ignored():
    x = fg.tensor([[1.0, 2.0, 0.5], [0.1, 0.2, 0.3]])
    a = F.cross_entropy(x, fg.tensor([1.0, 2.0]))
    b = F.cross_entropy(x, np.array([1, 2]))
    assert a.item() == b.item()
    assert np.isnan(F.cross_entropy(x, np.array([-100, -100])).item())  # 0 / 0, as PyTorch


def test_loss_bad_inputs():
    x = fg.randn(4, 3)
    with pytest.raises(ValueError, match=r"class index 3 is out of range for 3 classes"):
        F.cross_entropy(x, np.array([0, 1, 3, 2]))
    with pytest.raises(ValueError, match=r"class index -1"):
        nn.NLLLoss()(x, np.array([0, -1, 1, 2]))
    with pytest.raises(ValueError, match=r"target shape \(4, 2\).*\(4,\).*\(4, 3\)"):
        F.cross_entropy(x, np.zeros((4, 2), np.int64))
    with pytest.raises(ValueError, match=r"must hold integers"):
        F.cross_entropy(x, np.array([0.5, 1.0, 2.0, 0.0]))
    with pytest.raises(ValueError, match=r"target shape \(4,\) does not match the input shape \(4, 3\)"):
        nn.MSELoss()(x, np.zeros(4))
    with pytest.raises(ValueError, match=r"target shape \(4, 1\)"):
        nn.BCEWithLogitsLoss()(x, np.zeros((4, 1)))
    with pytest.raises(ValueError, match="real numbers"):
        nn.L1Loss()(x, np.array([["a"] * 3] * 4))
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.BCELoss()(fg.tensor([1.5]), fg.tensor([1.0]))
    with pytest.raises(ValueError, match="reduction"):
        nn.MSELoss(reduction="avg")
    with pytest.raises(ValueError, match=r"weight must have shape \(3,\)"):
        F.cross_entropy(x, np.array([0, 1, 2, 0]), weight=np.ones(4))
    with pytest.raises(ValueError, match="label_smoothing"):
        nn.CrossEntropyLoss(label_smoothing=1.5)
    with pytest.raises(ValueError, match="class indices"):
        F.nll_loss(x, np.zeros((4, 3)))


def test_weight_buffers_in_state_dict():
    loss = nn.CrossEntropyLoss(weight=np.array([1.0, 2.0]))
    assert list(loss.state_dict()) == ["weight"]
    assert list(nn.BCEWithLogitsLoss(pos_weight=np.ones(3)).state_dict()) == ["pos_weight"]
    assert list(nn.MSELoss().state_dict()) == []
