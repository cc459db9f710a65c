"""Self-organizing map: every update rule and neighbourhood function against a NumPy
reference of MiniSom's formulas, batch training against Kohonen's batch map, errors and
U-matrix against brute force, MiniSom as an optional cross-check, determinism, bad input."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ferrograd import _native
from ferrograd.unsupervised import SOM

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*triangle neighborhood function does not.*:UserWarning"),
    pytest.mark.filterwarnings("ignore:SOM. sigma might be too high:UserWarning"),
]

NEIGHBORHOODS = ["gaussian", "mexican_hat", "bubble", "triangle"]
TOPOLOGIES = ["rectangular", "hexagonal"]
DISTANCES = ["euclidean", "cosine", "manhattan", "chebyshev"]


# ---------------------------------------------------------------- NumPy references

def ref_coords(x: int, y: int, topology: str):
    """(x, y) arrays of the unit coordinates (MiniSom's _xx.T, _yy.T)."""
    xx, yy = np.meshgrid(np.arange(x), np.arange(y))  # (y, x)
    xx, yy = xx.astype(float), yy.astype(float)
    if topology == "hexagonal":
        xx[::-2] -= 0.5
        yy *= (3.0 / 2.0) / np.sqrt(3)
    return xx.T, yy.T


def ref_neighborhood(x, y, topology, fn, c, sigma):
    cx, cy = ref_coords(x, y, topology)
    i, j = c
    if fn == "gaussian":
        d = 2 * sigma * sigma
        return np.exp(-((cx - cx[i, j]) ** 2) / d) * np.exp(-((cy - cy[i, j]) ** 2) / d)
    if fn == "mexican_hat":
        p = (cx - cx[i, j]) ** 2 + (cy - cy[i, j]) ** 2
        d = 2 * sigma * sigma
        return np.exp(-p / d) * (1 - 2 / d * p)
    gx, gy = np.arange(x), np.arange(y)
    if fn == "bubble":
        ax = (gx > i - sigma) & (gx < i + sigma)
        ay = (gy > j - sigma) & (gy < j + sigma)
        return np.outer(ax, ay) * 1.0
    tx = np.maximum(sigma - np.abs(i - gx), 0)
    ty = np.maximum(sigma - np.abs(j - gy), 0)
    return np.outer(tx, ty)


def ref_dist(x, w, metric):
    """Distances of sample x to every unit of w (x, y, dim)."""
    d = x - w
    if metric == "euclidean":
        return np.sqrt((d * d).sum(-1))
    if metric == "cosine":
        return 1 - (w * x).sum(-1) / (np.linalg.norm(w, axis=-1) * np.linalg.norm(x) + 1e-8)
    if metric == "manhattan":
        return np.abs(d).sum(-1)
    return np.abs(d).max(-1)


def ref_train(w, data, order, eta, sig, topology, fn, metric):
    w = w.copy()
    x_, y_ = w.shape[:2]
    for t, s in enumerate(order):
        xs = data[s]
        c = np.unravel_index(np.argmin(ref_dist(xs, w, metric)), (x_, y_))
        g = ref_neighborhood(x_, y_, topology, fn, c, sig[t]) * eta[t]
        w += g[:, :, None] * (xs - w)
    return w


def ref_batch_epoch(w, data, sigma, topology, fn, lr=1.0):
    x_, y_, _ = w.shape
    flat = w.reshape(-1, w.shape[-1])
    d2 = ((data[:, None, :] - flat[None]) ** 2).sum(-1)
    bmu = np.argmin(d2, axis=1)
    num = np.zeros_like(w)
    den = np.zeros((x_, y_))
    for s, b in enumerate(bmu):
        h = ref_neighborhood(x_, y_, topology, fn, np.unravel_index(b, (x_, y_)), sigma)
        num += h[:, :, None] * data[s]
        den += h
    out = w.copy()
    m = den > 0
    out[m] = (1 - lr) * w[m] + lr * (num[m] / den[m][:, None])
    return out


def make_som(x, y, dim, **kw):
    kw.setdefault("random_seed", 0)
    kw.setdefault("dtype", np.float64)
    return SOM(x, y, dim, **kw)


# ---------------------------------------------------------------- neighbourhoods and updates

@pytest.mark.parametrize("topology", TOPOLOGIES)
@pytest.mark.parametrize("fn", NEIGHBORHOODS)
@settings(max_examples=10)
@given(x=st.integers(1, 7), y=st.integers(1, 7), sigma=st.floats(0.3, 4.0), data=st.data())
def test_neighborhood_matches_reference(topology, fn, x, y, sigma, data):
    i = data.draw(st.integers(0, x - 1))
    j = data.draw(st.integers(0, y - 1))
    got = _native.som_neighborhood(x, y, topology, fn, i * y + j, sigma)
    want = ref_neighborhood(x, y, topology, fn, (i, j), sigma)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("topology", TOPOLOGIES)
@pytest.mark.parametrize("fn", NEIGHBORHOODS)
@settings(max_examples=6)
@given(x=st.integers(1, 6), y=st.integers(1, 6), dim=st.integers(1, 19), seed=st.integers(0, 2**16))
def test_online_updates_match_reference(topology, fn, x, y, dim, seed):
    rng = np.random.default_rng(seed)
    data = rng.normal(size=(13, dim))
    metric = DISTANCES[seed % 4]
    sigma = 1.0 + (seed % 3) if fn in ("bubble", "triangle") else 0.5 + rng.random() * 2
    som = make_som(x, y, dim, sigma=sigma, learning_rate=0.4, neighborhood_function=fn,
                   topology=topology, activation_distance=metric)
    w0 = som.get_weights().copy()
    som.train(data, 25, random_order=False)
    t = np.arange(25.0)
    eta = 0.4 / (1 + t / 12.5)
    sig = sigma / (1 + t / 12.5)
    want = ref_train(w0, data, np.arange(25) % 13, eta, sig, topology, fn, metric)
    np.testing.assert_allclose(som.get_weights(), want, rtol=1e-9, atol=1e-9)


def test_online_float32_close_to_float64(rng):
    data = rng.normal(size=(50, 8))
    a = make_som(5, 4, 8, sigma=1.5, dtype=np.float32)
    b = make_som(5, 4, 8, sigma=1.5, dtype=np.float64)
    a.train(data, 40)
    b.train(data, 40)
    assert a.get_weights().dtype == np.float32
    np.testing.assert_allclose(a.get_weights(), b.get_weights(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("decay", ["inverse_decay_to_zero", "linear_decay_to_zero", "custom"])
@pytest.mark.parametrize("sdecay", ["inverse_decay_to_one", "linear_decay_to_one"])
def test_decay_functions_and_epochs(rng, decay, sdecay):
    data = rng.normal(size=(9, 3))
    fn = (lambda lr, t, T: lr * 0.9 ** t) if decay == "custom" else decay
    som = make_som(4, 3, 3, sigma=2.0, learning_rate=0.3, decay_function=fn, sigma_decay_function=sdecay)
    w0 = som.get_weights().copy()
    som.train(data, 3, use_epochs=True)
    t = (np.arange(27) // 9).astype(float)
    T = 3
    if decay == "custom":
        eta = 0.3 * 0.9**t
    elif decay == "inverse_decay_to_zero":
        eta = 0.3 * (T / 100) / (T / 100 + t)
    else:
        eta = 0.3 * (1 - t / T)
    sig = 2.0 / (1 + t * (1.0 / T)) if sdecay == "inverse_decay_to_one" else 2.0 + t * (1 - 2.0) / T
    want = ref_train(w0, data, np.tile(np.arange(9), 3), eta, sig, "rectangular", "gaussian", "euclidean")
    np.testing.assert_allclose(som.get_weights(), want, rtol=1e-10, atol=1e-10)


def test_fixed_points_force_the_winner(rng):
    data = rng.normal(size=(6, 4))
    som = make_som(5, 5, 4, sigma=0.8)
    w0 = som.get_weights().copy()
    som.train(data, 6, fixed_points={2: (4, 0)})
    w = w0.copy()
    t = np.arange(6.0)
    for k in range(6):
        c = (4, 0) if k == 2 else np.unravel_index(np.argmin(ref_dist(data[k], w, "euclidean")), (5, 5))
        g = ref_neighborhood(5, 5, "rectangular", "gaussian", c, 0.8 / (1 + t[k] / 3)) * (0.5 / (1 + t[k] / 3))
        w += g[:, :, None] * (data[k] - w)
    np.testing.assert_allclose(som.get_weights(), w, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("topology", TOPOLOGIES)
@pytest.mark.parametrize("fn", NEIGHBORHOODS)
def test_batch_epochs_match_kohonen_reference(rng, topology, fn):
    data = rng.normal(size=(40, 5))
    som = make_som(4, 5, 5, sigma=2.0, neighborhood_function=fn, topology=topology)
    som.random_weights_init(data)
    w = som.get_weights().copy()
    som.train_batch(data, 3)
    for t in range(3):
        w = ref_batch_epoch(w, data, 2.0 / (1 + t / 1.5), topology, fn)
    np.testing.assert_allclose(som.get_weights(), w, rtol=1e-8, atol=1e-8)
    # The offline variant blends with the decaying learning rate (MiniSom's formula).
    som2 = make_som(4, 5, 5, sigma=2.0, neighborhood_function=fn, topology=topology, learning_rate=0.7)
    som2.random_weights_init(data)
    w = som2.get_weights().copy()
    som2.train_batch_offline(data, 2)
    for t in range(2):
        w = ref_batch_epoch(w, data, 2.0 / (1 + t / 1.0), topology, fn, lr=0.7 / (1 + t / 1.0))
    np.testing.assert_allclose(som2.get_weights(), w, rtol=1e-8, atol=1e-8)


# ---------------------------------------------------------------- queries vs brute force

@pytest.mark.parametrize("topology", TOPOLOGIES)
@settings(max_examples=8)
@given(x=st.integers(1, 6), y=st.integers(2, 6), seed=st.integers(0, 2**16))
def test_errors_and_queries_match_brute_force(topology, x, y, seed):
    rng = np.random.default_rng(seed)
    data = rng.normal(size=(70, 4))
    som = make_som(x, y, 4, topology=topology, random_seed=seed % 1000)
    w = som.get_weights()
    d = np.sqrt(((data[:, None, :] - w.reshape(-1, 4)[None]) ** 2).sum(-1))
    order = np.argsort(d, axis=1, kind="stable")
    b1, b2 = order[:, 0], order[:, 1]
    assert som.quantization_error(data) == pytest.approx(d[np.arange(70), b1].mean(), rel=1e-12)
    np.testing.assert_array_equal(som.quantization(data), w.reshape(-1, 4)[b1])
    cx, cy = ref_coords(x, y, topology)
    u1, u2 = np.unravel_index(b1, (x, y)), np.unravel_index(b2, (x, y))
    if topology == "rectangular":
        te = np.mean(np.hypot(u1[0] - u2[0], u1[1] - u2[1]) > 1.42)
    else:
        te = 1 - np.mean(np.isclose(1, np.hypot(cx[u1] - cx[u2], cy[u1] - cy[u2])))
    assert som.topographic_error(data) == pytest.approx(te)
    np.testing.assert_allclose(som.transform(data), d, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(som.transform(data, kind="coordinates"), np.stack(u1, axis=1))
    np.testing.assert_array_equal(som.activation_response(data), np.bincount(b1, minlength=x * y).reshape(x, y))
    assert som.winner(data[3]) == (u1[0][3], u1[1][3])


@pytest.mark.parametrize("metric", DISTANCES)
def test_activation_distances(rng, metric):
    data = rng.normal(size=(30, 6))
    som = make_som(3, 4, 6, activation_distance=metric)
    w = som.get_weights()
    want = np.stack([ref_dist(x, w, metric).ravel() for x in data])
    np.testing.assert_allclose(som.transform(data), want, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(som.activate(data[0]), want[0].reshape(3, 4), rtol=1e-9, atol=1e-9)
    wm = som.win_map(data, return_indices=True)
    b = np.argmin(want, axis=1)
    for u in range(12):
        assert wm.get(divmod(u, 4), []) == list(np.flatnonzero(b == u))
    labels = [f"c{i % 3}" for i in range(30)]
    lm = som.labels_map(data, labels)
    for u in range(12):
        idx = np.flatnonzero(b == u)
        if idx.size:
            assert lm[divmod(u, 4)] == Counter(labels[i] for i in idx)


@pytest.mark.parametrize("topology", TOPOLOGIES)
@pytest.mark.parametrize("scaling", ["sum", "mean"])
def test_distance_map_brute_force(rng, topology, scaling):
    som = make_som(5, 6, 3, topology=topology)
    w = som.get_weights()
    ii = [[0, -1, -1, -1, 0, 1, 1, 1]] * 2
    jj = [[-1, -1, 0, 1, 1, 1, 0, -1]] * 2
    if topology == "hexagonal":
        ii = [[1, 1, 1, 0, -1, 0], [0, 1, 0, -1, -1, -1]]
        jj = [[1, 0, -1, -1, 0, 1], [1, 0, -1, -1, 0, 1]]
    um = np.zeros((5, 6))
    for a in range(5):
        for b in range(6):
            e = int(b % 2 == 0)
            ds = [np.linalg.norm(w[a, b] - w[a + i, b + j]) for i, j in zip(ii[e], jj[e])
                  if 0 <= a + i < 5 and 0 <= b + j < 6]
            um[a, b] = np.sum(ds) if scaling == "sum" else np.mean(ds)
    np.testing.assert_allclose(som.distance_map(scaling), um / um.max(), rtol=1e-12)


def test_set_weights(rng):
    som = make_som(3, 2, 4)
    w = rng.normal(size=(3, 2, 4))
    som.set_weights(w)
    np.testing.assert_array_equal(som.get_weights(), w)
    assert som.get_weights() is not w
    with pytest.raises(ValueError, match=r"weights must have shape \(3, 2, 4\), given \(3, 2, 5\)"):
        som.set_weights(np.zeros((3, 2, 5)))
    with pytest.raises(ValueError, match="non-finite"):
        som.set_weights(np.full((3, 2, 4), np.nan))


def test_pca_init_and_fit_transform(rng):
    data = rng.normal(size=(200, 5)) * np.array([5.0, 2.0, 1.0, 0.5, 0.1])
    som = make_som(6, 4, 5)
    som.pca_weights_init(data)
    w = som.get_weights()
    vals, vecs = np.linalg.eigh(np.cov(data, rowvar=False))
    pc1, pc2 = vecs[:, -1], vecs[:, -2]
    np.testing.assert_allclose(w[0, 0], data.mean(0) - pc1 - pc2, atol=1e-10)
    np.testing.assert_allclose(w[-1, -1], data.mean(0) + pc1 + pc2, atol=1e-10)
    q0 = som.quantization_error(data)
    feats = som.fit_transform(data, num_iteration=10)
    assert feats.shape == (200, 24)
    assert som.quantization_error(data) < q0
    online = make_som(6, 4, 5).fit(data, method="online", num_iteration=2000)
    assert online.quantization_error(data) < q0


# ---------------------------------------------------------------- MiniSom cross-check

@pytest.mark.parametrize("topology", TOPOLOGIES)
@pytest.mark.parametrize("fn", NEIGHBORHOODS)
def test_against_minisom(topology, fn):
    minisom = pytest.importorskip("minisom")
    rng = np.random.default_rng(5)
    data = rng.normal(size=(60, 4))
    sigma = 2.0 if fn in ("bubble", "triangle") else 1.3
    kw = dict(sigma=sigma, learning_rate=0.6, neighborhood_function=fn, topology=topology,
              activation_distance="manhattan", random_seed=11)
    with pytest.warns(UserWarning) if (fn == "triangle" and topology == "hexagonal") else _nullctx():
        m = minisom.MiniSom(5, 6, 4, **kw)
        s = SOM(5, 6, 4, dtype=np.float64, **kw)
    np.testing.assert_array_equal(s.get_weights(), m.get_weights())  # same RandomState draws
    m.train(data, 150, random_order=True)
    s.train(data, 150, random_order=True)
    tol = 1e-7 if fn == "mexican_hat" else 1e-12
    np.testing.assert_allclose(s.get_weights(), m.get_weights(), rtol=tol, atol=tol)
    np.testing.assert_allclose(s.distance_map(), m.distance_map(), rtol=1e-12)
    assert s.quantization_error(data) == pytest.approx(m.quantization_error(data), rel=1e-9)
    assert s.topographic_error(data) == pytest.approx(m.topographic_error(data))
    assert s.winner(data[0]) == tuple(int(v) for v in m.winner(data[0]))


class _nullctx:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


# ---------------------------------------------------------------- determinism

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_result_for_any_thread_count(dtype):
    rng = np.random.default_rng(1)
    data = rng.normal(size=(300, 40)).astype(dtype)
    before = _native.get_num_threads()
    res = []
    try:
        for nt in (1, 2, 3):
            _native.set_num_threads(nt)
            a = SOM(25, 20, 40, sigma=3, random_seed=4, dtype=dtype)  # 500 units x 40: parallel path
            a.train(data, 200, random_order=True)
            b = SOM(12, 10, 40, sigma=3, random_seed=4, dtype=dtype)
            b.train_batch(data, 3)
            res.append((a.get_weights().copy(), b.get_weights().copy(), a.transform(data[:100]),
                        a.quantization_error(data), a.topographic_error(data), a.distance_map()))
    finally:
        _native.set_num_threads(before)
    for r in res[1:]:
        for x, y in zip(res[0], r):
            np.testing.assert_array_equal(x, y)


def test_seeding():
    data = np.random.default_rng(0).normal(size=(50, 3))
    a = SOM(4, 4, 3, random_seed=3)
    b = SOM(4, 4, 3, random_seed=3)
    a.train_random(data, 100)
    b.train_random(data, 100)
    np.testing.assert_array_equal(a.get_weights(), b.get_weights())
    import ferrograd

    ferrograd.manual_seed(7)
    c = SOM(4, 4, 3)
    ferrograd.manual_seed(7)
    d = SOM(4, 4, 3)
    np.testing.assert_array_equal(c.get_weights(), d.get_weights())


# ---------------------------------------------------------------- bad input

def test_bad_input():
    som = SOM(3, 3, 4, random_seed=0)
    with pytest.raises(ValueError, match=r"data has 3 features, expected input_len=4"):
        som.train(np.zeros((5, 3)), 10)
    with pytest.raises(ValueError, match="non-finite"):
        som.train(np.array([[0.0, np.nan, 1, 2]]), 10)
    with pytest.raises(ValueError, match="non-finite"):
        som.quantization_error(np.array([[0.0, np.inf, 1, 2]]))
    with pytest.raises(ValueError, match="at least one sample"):
        som.train_batch(np.zeros((0, 4)), 3)
    with pytest.raises(ValueError, match=r"x must be an integer >= 1, given 0"):
        SOM(0, 3, 4)
    with pytest.raises(ValueError, match=r"input_len must be an integer >= 1, given -2"):
        SOM(3, 3, -2)
    with pytest.raises(ValueError, match="num_iteration"):
        som.train(np.zeros((5, 4)), 0)
    with pytest.raises(ValueError, match="topology"):
        SOM(3, 3, 4, topology="triangular")
    with pytest.raises(ValueError, match="neighborhood_function"):
        SOM(3, 3, 4, neighborhood_function="cone")
    with pytest.raises(ValueError, match="activation_distance"):
        SOM(3, 3, 4, activation_distance="hamming")
    with pytest.raises(ValueError, match=r"expected data of shape \(n_samples, 4\)"):
        som.winner(np.zeros((2, 2, 4)))
    with pytest.raises(ValueError, match="same length"):
        som.labels_map(np.zeros((3, 4)), [1, 2])
    with pytest.raises(ValueError, match="scaling"):
        som.distance_map("max")
    with pytest.warns(UserWarning):
        assert math.isnan(SOM(1, 1, 2, random_seed=0).topographic_error(np.zeros((3, 2))))


def test_binding_rejects_bad_arrays():
    w = np.zeros((3, 3, 4), np.float32)
    d = np.zeros((5, 4), np.float32)
    i64 = np.zeros(2, np.int64)
    f64 = np.ones(2)
    with pytest.raises(ValueError, match="out of range"):
        _native.som_train(w, d, np.array([0, 9]), f64, f64, np.empty(0, np.int64), "rectangular", "gaussian", "euclidean")
    with pytest.raises(ValueError, match="one entry per step"):
        _native.som_train(w, d, i64, np.ones(3), f64, np.empty(0, np.int64), "rectangular", "gaussian", "euclidean")
    with pytest.raises(TypeError, match="same dtype"):
        _native.som_train(w, d.astype(np.float64), i64, f64, f64, np.empty(0, np.int64), "rectangular", "gaussian", "euclidean")
    with pytest.raises(ValueError, match="C-contiguous"):
        _native.som_bmu(np.zeros((4, 5), np.float32)[:, :4], w.reshape(9, 4), "euclidean")
    with pytest.raises(ValueError, match="features"):
        _native.som_bmu(np.zeros((4, 3), np.float32), w.reshape(9, 4), "euclidean")
    with pytest.raises(ValueError, match="at least 1"):
        _native.som_distance_map(np.zeros((0, 3, 2)), "rectangular", "sum")
    with pytest.raises(ValueError, match="finite"):
        _native.som_train_batch(w, d, np.array([np.nan]), np.array([1.0]), "rectangular", "gaussian", "euclidean")


def test_viz_pictures(tmp_path, rng):
    pytest.importorskip("matplotlib")
    from ferrograd import viz

    data = rng.normal(size=(60, 3))
    labels = np.arange(60) % 3
    for topology in TOPOLOGIES:
        som = make_som(6, 5, 3, topology=topology)
        som.train_batch(data, 3)
        for p in (viz.save_umatrix(som, tmp_path / f"u_{topology}.png", data=data, labels=labels),
                  viz.save_umatrix(som, tmp_path / f"u0_{topology}.png"),
                  viz.save_winner_map(som, data, labels, tmp_path / f"w_{topology}.png")):
            with open(p, "rb") as f:
                assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="same length"):
        viz.save_umatrix(som, tmp_path / "bad.png", data=data, labels=labels[:5])
    with pytest.raises(TypeError, match="expected a ferrograd.unsupervised.SOM"):
        viz.save_umatrix(object(), tmp_path / "bad.png")
