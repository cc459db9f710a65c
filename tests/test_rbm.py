"""Restricted Boltzmann machine: CD-k / PCD-k updates against a NumPy reference given the
same random numbers, inference against the documented formulas, scikit-learn as an
optional cross-check, determinism across thread counts, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from ferrograd import _native
from ferrograd.datasets import load_digits
from ferrograd.unsupervised import RBM


def sig(x):
    return 1 / (1 + np.exp(-x))


def uniforms(seed, stream, shape):
    u = np.empty(shape, np.float64)
    _native.rbm_uniform(u, seed, stream)
    return u


def normals(seed, stream, shape):
    n = int(np.prod(shape))
    u = uniforms(seed, stream, (2 * n,))
    z = np.sqrt(-2 * np.log(1 - u[0::2])) * np.cos(2 * np.pi * u[1::2])
    return z.reshape(shape)


def ref_update(rbm, v, W, c, b, chain, stream, lr, k, persistent, gaussian, mom=0.0, wd=0.0, vel=None):
    """One CD-k / PCD-k update (module docs of ferrograd_kernels::rbm) with the kernel's
    random streams. Returns new (W, c, b, chain, vel, next_stream)."""
    seed = rbm._seed
    m = v.shape[0]
    hpos = sig(v @ W.T + c)
    s = stream
    if persistent:
        hs = chain
    else:
        hs = (uniforms(seed, s, hpos.shape) < hpos).astype(float)
        s += 1
    for step in range(k):
        vp = hs @ W + b
        if gaussian:
            vn = vp + normals(seed, s, vp.shape)
        else:
            vn = (uniforms(seed, s, vp.shape) < sig(vp)).astype(float)
        s += 1
        hneg = sig(vn @ W.T + c)
        if step + 1 < k:
            hs = (uniforms(seed, s, hneg.shape) < hneg).astype(float)
            s += 1
    gW = hpos.T @ v - hneg.T @ vn
    gc = hpos.sum(0) - hneg.sum(0)
    gb = v.sum(0) - vn.sum(0)
    if persistent:
        chain = (uniforms(seed, s, hneg.shape) < hneg).astype(float)
        s += 1
    vel = vel or [np.zeros_like(W), np.zeros_like(c), np.zeros_like(b)]
    sc = lr / m
    newvel = [mom * vel[0] + sc * gW - lr * wd * W, mom * vel[1] + sc * gc, mom * vel[2] + sc * gb]
    return W + newvel[0], c + newvel[1], b + newvel[2], chain, newvel, s


@pytest.mark.parametrize("persistent", [True, False])
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_cd_updates_match_numpy_reference(rng, persistent, k, visible):
    gaussian = visible == "gaussian"
    X = rng.random((7, 9))
    if not gaussian:
        X = (X > 0.5).astype(np.float64)
    r = RBM(n_components=5, learning_rate=0.3, batch_size=4, random_state=3, k=k, persistent=persistent,
            visible=visible, momentum=0.5, weight_decay=0.01)
    r.partial_fit(X[:4])  # initialises, then one update
    # Recreate the initial state from the same seed to run the reference.
    init = RBM(n_components=5, batch_size=4, random_state=3, n_iter=0).fit(X)
    W, c, b = init.components_.copy(), np.zeros(5), np.zeros(9)
    chain = np.zeros((4, 5))
    W, c, b, chain, vel, s = ref_update(r, X[:4], W, c, b, chain, 0, 0.3, k, persistent, gaussian, 0.5, 0.01)
    np.testing.assert_allclose(r.components_, W, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(r.intercept_hidden_, c, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(r.intercept_visible_, b, rtol=1e-10, atol=1e-12)
    if persistent:
        np.testing.assert_array_equal(r.h_samples_, chain)
    # A second batch (3 rows, chains of 4) continues the streams and uses the momentum.
    r.partial_fit(X[4:])
    W, c, b, chain, vel, s = ref_update(r, X[4:], W, c, b, chain, s, 0.3, k, persistent, gaussian, 0.5, 0.01, vel)
    np.testing.assert_allclose(r.components_, W, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(r.intercept_visible_, b, rtol=1e-10, atol=1e-12)
    assert r._stream == s


def test_fit_is_sklearn_update_sequence(rng):
    """fit = mini-batches in data order (last one short), PCD-1 from zero chains."""
    X = (rng.random((23, 6)) > 0.4).astype(np.float64)
    r = RBM(n_components=4, learning_rate=0.2, batch_size=10, n_iter=2, random_state=8).fit(X)
    ref = RBM(n_components=4, batch_size=10, random_state=8, n_iter=0).fit(X)
    W, c, b, chain, s = ref.components_.copy(), np.zeros(4), np.zeros(6), np.zeros((10, 4)), 0
    for _ in range(2):
        for lo in range(0, 23, 10):
            W, c, b, chain, _, s = ref_update(r, X[lo:lo + 10], W, c, b, chain, s, 0.2, 1, True, False)
    np.testing.assert_allclose(r.components_, W, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(r.intercept_hidden_, c, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(r.h_samples_, chain)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inference_formulas(rng, dtype):
    X = (rng.random((30, 12)) > 0.5).astype(dtype)
    r = RBM(n_components=7, n_iter=2, batch_size=5, random_state=1).fit(X)
    assert r.components_.dtype == dtype
    W, c, b = (a.astype(np.float64) for a in (r.components_, r.intercept_hidden_, r.intercept_visible_))
    tol = dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    x = X.astype(np.float64)
    h = sig(x @ W.T + c)
    np.testing.assert_allclose(r.transform(X), h, **tol)
    np.testing.assert_allclose(r.reconstruct(X), sig(h @ W + b), **tol)
    fe = -x @ b - np.logaddexp(0, x @ W.T + c).sum(1)
    np.testing.assert_allclose(r.free_energy(X), fe, **tol)
    idx = np.random.RandomState(1).randint(0, 12, 30)
    xf = x.copy()
    xf[np.arange(30), idx] = 1 - xf[np.arange(30), idx]
    fe2 = -xf @ b - np.logaddexp(0, xf @ W.T + c).sum(1)
    np.testing.assert_allclose(r.score_samples(X), -12 * np.logaddexp(0, -(fe2 - fe)), rtol=1e-4 if dtype == np.float32 else 1e-10)
    g = r.gibbs(X)
    assert g.shape == X.shape and set(np.unique(g)) <= {0.0, 1.0}
    s = r.sample(6, steps=20)
    assert s.shape == (6, 12) and set(np.unique(s)) <= {0.0, 1.0}
    p = r.sample(6, steps=5, return_probs=True)
    assert ((p > 0) & (p < 1)).all()


def test_gaussian_free_energy_and_sample(rng):
    X = rng.normal(size=(40, 5))
    r = RBM(n_components=3, visible="gaussian", learning_rate=0.01, n_iter=3, random_state=2).fit(X)
    W, c, b = r.components_, r.intercept_hidden_, r.intercept_visible_
    fe = 0.5 * ((X - b) ** 2).sum(1) - np.logaddexp(0, X @ W.T + c).sum(1)
    np.testing.assert_allclose(r.free_energy(X), fe, rtol=1e-12)
    np.testing.assert_allclose(r.reconstruct(X), sig(X @ W.T + c) @ W + b, rtol=1e-12)
    s = r.sample(2000, steps=3)
    assert np.abs(s.std(0) - 1).max() < 0.25  # unit-variance visible units around small means
    with pytest.raises(ValueError, match="Bernoulli visible"):
        r.score_samples(X)


def test_sampler_statistics():
    p = np.full((400, 250), 0.3)
    s = _native.rbm_sample_bernoulli(p, 99, 5)
    assert abs(s.mean() - 0.3) < 0.005
    u = uniforms(1, 0, (100_000,))
    assert abs(u.mean() - 0.5) < 0.005 and u.min() >= 0 and u.max() < 1
    assert not np.array_equal(uniforms(1, 0, (50,)), uniforms(1, 1, (50,)))
    assert not np.array_equal(uniforms(1, 0, (50,)), uniforms(2, 0, (50,)))
    z = normals(3, 4, (100_000,))
    assert abs(z.mean()) < 0.02 and abs(z.std() - 1) < 0.02


def test_training_improves_pseudo_likelihood():
    X = (load_digits(dtype=np.float64).data[:600] / 16.0 > 0.5).astype(np.float64)
    r0 = RBM(n_components=64, n_iter=0, random_state=0).fit(X)
    r = RBM(n_components=64, learning_rate=0.05, n_iter=5, random_state=0).fit(X)
    assert r.score_samples(X).mean() > r0.score_samples(X).mean() + 5


def test_against_sklearn():
    sk = pytest.importorskip("sklearn.neural_network")
    X = load_digits(dtype=np.float64).data[:300] / 16.0
    ours = RBM(n_components=32, learning_rate=0.05, n_iter=0, random_state=4).fit(X)
    theirs = sk.BernoulliRBM(n_components=32, learning_rate=0.05, n_iter=0, random_state=4).fit(X)
    np.testing.assert_array_equal(ours.components_, theirs.components_)  # same initial weights
    ours = RBM(n_components=32, learning_rate=0.05, n_iter=4, random_state=4).fit(X)
    theirs = sk.BernoulliRBM(n_components=32, learning_rate=0.05, n_iter=4, random_state=4).fit(X)
    # Score both models with scikit-learn's estimator (same flipped features).
    theirs2 = sk.BernoulliRBM(n_components=32, random_state=4)
    theirs2.components_, theirs2.intercept_hidden_ = ours.components_, ours.intercept_hidden_
    theirs2.intercept_visible_, theirs2.n_features_in_ = ours.intercept_visible_, 64
    a, b = theirs2.score_samples(X).mean(), theirs.score_samples(X).mean()
    np.testing.assert_allclose(ours.score_samples(X), theirs2.score_samples(X), rtol=1e-10)
    assert a > b - 2.0, (a, b)  # the same algorithm: comparable quality (seeds differ)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_result_for_any_thread_count(dtype):
    X = (load_digits(dtype=dtype).data[:300] / 16.0).astype(dtype)
    before = _native.get_num_threads()
    out = []
    try:
        for nt in (1, 2, 3):
            _native.set_num_threads(nt)
            r = RBM(n_components=200, batch_size=100, n_iter=2, random_state=5, k=2, momentum=0.5).fit(X)
            c = RBM(n_components=100, batch_size=50, n_iter=1, random_state=5, persistent=False).fit(X)
            out.append((r.components_.copy(), r.h_samples_.copy(), c.components_.copy(), r.sample(50, 10), r.free_energy(X)))
    finally:
        _native.set_num_threads(before)
    for o in out[1:]:
        for a, b in zip(out[0], o):
            np.testing.assert_array_equal(a, b)


def test_bad_input(rng):
    X = rng.random((20, 6))
    r = RBM(n_components=4, n_iter=1, random_state=0)
    with pytest.raises(ValueError, match="not fitted"):
        r.transform(X)
    r.fit(X)
    with pytest.raises(ValueError, match=r"X has 5 features, expected 6"):
        r.transform(X[:, :5])
    with pytest.raises(ValueError, match=r"X has 5 features, expected 6"):
        r.partial_fit(X[:, :5])
    with pytest.raises(ValueError, match="non-finite"):
        r.fit(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="non-empty"):
        r.fit(np.zeros((0, 6)))
    with pytest.raises(ValueError, match=r"n_components must be an integer >= 1, given 0"):
        RBM(n_components=0).fit(X)
    with pytest.raises(ValueError, match="visible"):
        RBM(visible="binary").fit(X)
    with pytest.raises(ValueError, match="learning_rate"):
        RBM(learning_rate=0).fit(X)
    with pytest.raises(ValueError, match="k must be"):
        RBM(k=0).fit(X)
    with pytest.raises(ValueError, match=r"expected X of shape"):
        r.score_samples(X[0])
    with pytest.raises(ValueError, match="bounds"):
        _native.rbm_fit(r.components_, r.intercept_hidden_, r.intercept_visible_, r._vel[0], r._vel[1],
                        r._vel[2], r.h_samples_, X, np.array([0, 30]), 1, False, 0.1, 0, 0, 1, True, 1, 1, 0, 0)
    with pytest.raises(ValueError, match="shares no memory|writeable"):
        _native.rbm_fit(r.components_, r.intercept_hidden_, r.intercept_visible_, r._vel[0], r.intercept_hidden_,
                        r._vel[2], r.h_samples_, X, np.array([0, 20]), 1, False, 0.1, 0, 0, 1, True, 1, 1, 0, 0)
    with pytest.raises(TypeError, match="same dtype"):
        _native.rbm_hidden(X.astype(np.float32), r.components_, r.intercept_hidden_, r.intercept_visible_)
    assert r.get_params()["n_components"] == 4
    assert r.set_params(n_iter=3) is r and r.n_iter == 3
