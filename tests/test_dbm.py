"""Deep Boltzmann machine: the mean-field fixed point, one joint-training update against a
NumPy reference given the same random numbers, pretraining, determinism, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from ferrograd import _native
from ferrograd.datasets import load_digits
from ferrograd.unsupervised import DBM


def sig(x):
    return 1 / (1 + np.exp(-x))


def uniforms(seed, stream, shape):
    u = np.empty(shape, np.float64)
    _native.rbm_uniform(u, seed, stream)
    return u


def digits_binary(n=400, dtype=np.float64):
    return (load_digits(dtype=np.float64).data[:n] / 16.0 > 0.5).astype(dtype)


def layer_input(W, b, s, l):
    """Input of layer l from its neighbours' states s (list over all layers)."""
    z = b[l].copy()
    if l > 0:
        z = z + s[l - 1] @ W[l - 1].T
    if l + 1 < len(s):
        z = z + s[l + 1] @ W[l]
    return z


def ref_mean_field(W, b, v, iters):
    L = len(W)
    mu = []
    below = v
    for l in range(1, L + 1):
        scale = 2.0 if l < L else 1.0
        below = sig(scale * (below @ W[l - 1].T) + b[l])
        mu.append(below)
    for _ in range(iters):
        for l in range(1, L + 1):
            mu[l - 1] = sig(layer_input(W, b, [v] + mu, l))
    return mu


@pytest.mark.parametrize("sizes", [(64, 30), (64, 40, 20), (64, 30, 20, 10)])
def test_mean_field_fixed_point(sizes):
    X = digits_binary(300)
    d = DBM(sizes, n_iter=2, pretrain_iter=3, batch_size=50, n_chains=20, random_state=0, dtype=np.float64).fit(X)
    mus = d.mean_field(X[:40], n_iter=500, tol=1e-12)
    W, b = d.weights_, d.biases_
    states = [X[:40]] + mus
    for l in range(1, len(sizes)):
        np.testing.assert_allclose(mus[l - 1], sig(layer_input(W, b, states, l)), atol=1e-9)
    np.testing.assert_array_equal(d.transform(X[:40]), d.mean_field(X[:40])[-1])
    # A few sweeps follow the documented schedule (bottom-up start, layers in turn).
    few, sweeps = _native.dbm_mean_field(np.ascontiguousarray(X[:10]), W, b, 3, 0.0)
    assert 1 <= sweeps <= 3  # a single hidden layer is exact after one sweep
    for a, r in zip(few, ref_mean_field(W, b, X[:10], 3)):
        np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-12)


def test_joint_update_matches_numpy_reference():
    rng = np.random.default_rng(3)
    sizes = [6, 5, 4]
    W = [rng.normal(0, 0.3, (5, 6)), rng.normal(0, 0.3, (4, 5))]
    b = [rng.normal(0, 0.1, s) for s in sizes]
    v = (rng.random((7, 6)) > 0.5).astype(np.float64)
    m = 3
    chains = [(rng.random((m, s)) > 0.5).astype(np.float64) for s in sizes]
    seed, stream, lr, mom, wd, mf, steps = 12345, 9, 0.1, 0.5, 0.01, 4, 2
    Wk = [w.copy() for w in W]
    bk = [x.copy() for x in b]
    vw = [np.zeros_like(w) for w in W]
    vb = [np.zeros_like(x) for x in b]
    ck = [c.copy() for c in chains]
    nxt = _native.dbm_fit(Wk, bk, vw, vb, ck, v, np.array([0, 7]), 1, lr, mom, wd, mf, 0.0, steps, seed, stream)
    # Reference.
    mu = ref_mean_field(W, b, v, mf)
    s = [c.copy() for c in chains]
    st = stream
    for _ in range(steps):
        for l in [1, 0, 2]:  # odd layers, then even ones
            p = sig(layer_input(W, b, s, l))
            s[l] = (uniforms(seed, st, p.shape) < p).astype(float)
            st += 1
    assert nxt == st
    data = [v] + mu
    for l in range(2):
        g = data[l + 1].T @ data[l] / 7 - s[l + 1].T @ s[l] / m
        np.testing.assert_allclose(Wk[l], W[l] + lr * g - lr * wd * W[l], rtol=1e-12, atol=1e-12)
    for l in range(3):
        g = data[l].mean(0) - s[l].mean(0)
        np.testing.assert_allclose(bk[l], b[l] + lr * g, rtol=1e-12, atol=1e-12)
    for a, r in zip(ck, s):
        np.testing.assert_array_equal(a, r)


def test_pretraining_and_training_learn_the_data():
    X = digits_binary(600, np.float32)
    d0 = DBM((64, 50, 30), n_iter=1, pretrain_iter=0, learning_rate=1e-9, random_state=1)
    d0.fit(X)
    d = DBM((64, 50, 30), n_iter=5, pretrain_iter=10, random_state=1).fit(X)

    def recon_error(model):
        mu = model.mean_field(X)[0]
        return float(np.mean((sig(mu @ model.weights_[0] + model.biases_[0]) - X) ** 2))

    assert recon_error(d) < 0.6 * recon_error(d0)
    s = d.sample(20, steps=50)
    assert s.shape == (20, 64) and ((s >= 0) & (s <= 1)).all()
    assert d.transform(X).shape == (600, 30)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_result_for_any_thread_count(dtype):
    X = digits_binary(300, dtype)
    before = _native.get_num_threads()
    out = []
    try:
        for nt in (1, 2, 3):
            _native.set_num_threads(nt)
            d = DBM((64, 200, 100), n_iter=2, pretrain_iter=2, batch_size=100, n_chains=100, random_state=2, dtype=dtype).fit(X)
            out.append([w.copy() for w in d.weights_] + [d.transform(X), d.sample(30, 5)] + [c.copy() for c in d.chains_])
    finally:
        _native.set_num_threads(before)
    for o in out[1:]:
        for a, b in zip(out[0], o):
            np.testing.assert_array_equal(a, b)


def test_bad_input():
    X = digits_binary(50)
    with pytest.raises(ValueError, match=r"layer_sizes\[1\] = 0"):
        DBM((64, 0))
    with pytest.raises(ValueError, match="at least 2 layers"):
        DBM((64,))
    with pytest.raises(ValueError, match="learning_rate"):
        DBM((64, 8), learning_rate=-1)
    d = DBM((64, 8), n_iter=1, pretrain_iter=1, random_state=0)
    with pytest.raises(ValueError, match="not fitted"):
        d.transform(X)
    with pytest.raises(ValueError, match=r"X has 63 features, expected 64"):
        d.fit(X[:, :63])
    with pytest.raises(ValueError, match="non-finite"):
        d.fit(np.full((3, 64), np.nan))
    with pytest.raises(ValueError, match="non-empty"):
        d.fit(np.zeros((0, 64)))
    d.fit(X)
    with pytest.raises(ValueError, match=r"X has 10 features, expected 64"):
        d.transform(np.zeros((2, 10)))
    with pytest.raises(ValueError, match="columns"):
        _native.dbm_mean_field(np.zeros((2, 64)), [d.weights_[0], np.zeros((3, 7))], d.biases_ + [np.zeros(3)], 3, 0.0)
