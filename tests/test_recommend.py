"""ferrograd.recommend: the ratings container, MovieLens files, make_ratings, the split,
metrics against hand-computed values, the baselines against NumPy references, the masked
AutoRec loss (gradcheck; missing entries have no influence), RBMRecommender's CD
statistics (softmax and implicit units) against NumPy references, the implicit mode's
top-N precision above the popularity baseline (reduced run), and a smoke run of
examples/recommend.py."""

from __future__ import annotations

import importlib.util
import math
import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ferrograd as fg
from ferrograd import recommend as rc

HERE = os.path.dirname(os.path.abspath(__file__))


# ----------------------------------------------------------------------------- container


def test_rating_matrix_views_agree():
    R = rc.RatingMatrix([0, 2, 0, 1], [1, 0, 3, 1], [5, 3, 1, 4], 3, 4)
    assert R.shape == (3, 4) and R.nnz == 4 and math.isclose(R.sparsity, 1 - 4 / 12)
    values, mask = R.to_dense()
    want = np.array([[0, 5, 0, 1], [0, 4, 0, 0], [3, 0, 0, 0]], dtype=np.float32)
    np.testing.assert_array_equal(values, want)
    np.testing.assert_array_equal(mask, want != 0)
    csr = R.tocsr()
    np.testing.assert_array_equal(csr.indptr, [0, 2, 3, 4])
    np.testing.assert_array_equal(csr.indices, [1, 3, 1, 0])
    np.testing.assert_array_equal(csr.data, [5, 1, 4, 3])
    np.testing.assert_array_equal(R.T.to_dense()[0], want.T)
    np.testing.assert_array_equal(R.user_counts(), [2, 1, 1])
    np.testing.assert_array_equal(R.item_counts(), [1, 2, 0, 1])
    back = rc.RatingMatrix.from_dense(values)
    np.testing.assert_array_equal(back.to_dense()[0], want)


def test_rating_matrix_errors():
    with pytest.raises(ValueError, match=r"ratings must lie in the scale \[1, 5\], given 6 at entry 1"):
        rc.RatingMatrix([0, 1], [0, 0], [3, 6])
    with pytest.raises(ValueError, match=r"ratings must lie in the scale \[1, 5\], given 0 at entry 0"):
        rc.RatingMatrix([0], [0], [0])
    with pytest.raises(ValueError, match=r"items must lie in \[0, 2\), given 2"):
        rc.RatingMatrix([0, 1], [0, 2], [3, 3], 2, 2)
    with pytest.raises(ValueError, match=r"\(1, 0\) occurs 2 times"):
        rc.RatingMatrix([1, 1], [0, 0], [3, 4])
    with pytest.raises(ValueError, match="finite, given nan"):
        rc.RatingMatrix([0], [0], [np.nan])
    with pytest.raises(ValueError, match="same length"):
        rc.RatingMatrix([0, 1], [0], [3])


# ----------------------------------------------------------------------------- files


def test_load_ratings_tab_and_double_colon(tmp_path):
    tab = tmp_path / "u.data"
    tab.write_text("196\t242\t3\t881250949\n186\t302\t3\t891717742\n\n22\t377\t1\t878887116\n196\t377\t5\t881250950\n")
    R = rc.load_ratings(tab)
    assert R.shape == (3, 3) and R.nnz == 4
    np.testing.assert_array_equal(R.user_ids, [22, 186, 196])
    np.testing.assert_array_equal(R.item_ids, [242, 302, 377])
    values, _ = R.to_dense()
    np.testing.assert_array_equal(values, [[0, 0, 1], [0, 3, 0], [3, 0, 5]])
    np.testing.assert_array_equal(R.timestamps, [881250949, 891717742, 878887116, 881250950])
    dat = tmp_path / "ratings.dat"
    dat.write_text("1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n")
    D = rc.load_ratings(dat)
    np.testing.assert_array_equal(D.to_dense()[0], [[3, 5], [0, 4]])
    # save_ratings writes the same format back
    out = tmp_path / "copy.data"
    rc.save_ratings(R, out)
    again = rc.load_ratings(out)
    np.testing.assert_array_equal(again.to_dense()[0], values)
    np.testing.assert_array_equal(again.user_ids, R.user_ids)


@pytest.mark.parametrize(
    "text,pattern",
    [
        ("1\t2\t3\t4\n1\t2\n", r"u\.data, line 2: expected 'user item rating timestamp'.*2 field\(s\)"),
        ("1\t2\t3\t4\nx\t2\t3\t4\n", r"u\.data, line 2: expected integer user and item ids"),
        ("1\t2\t3\t4\n\n2\t2\t7\t4\n", r"u\.data, line 3: rating 7 is outside the scale \[1, 5\]"),
        ("1\t2\t3\t4\n1\t2\t4\t5\n", r"u\.data, line 2: user 1 rated item 2 already on line 1"),
        ("\n\n", r"u\.data holds no ratings"),
        ("1\t2\tnan\t4\n", r"u\.data, line 1: rating nan is outside the scale"),
    ],
)
def test_load_ratings_errors_name_file_and_line(tmp_path, text, pattern):
    p = tmp_path / "u.data"
    p.write_text(text)
    with pytest.raises(ValueError, match=pattern):
        rc.load_ratings(p)


def test_load_ratings_csv_with_header(tmp_path):
    p = tmp_path / "ratings.csv"
    p.write_text("userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n1,1029,3.0,1260759179\n7,31,4.5,1260759185\n")
    R = rc.load_ratings(p, scale=(0.5, 5))
    np.testing.assert_array_equal(R.to_dense()[0], [[2.5, 3.0], [4.5, 0]])
    bad = tmp_path / "bad.csv"
    bad.write_text("userId,movieId,rating,timestamp\n1,31,2.5\nuserId,movieId,rating,timestamp\n")
    with pytest.raises(ValueError, match=r"bad\.csv, line 3: expected integer user and item ids"):
        rc.load_ratings(bad)


def test_load_ratings_scale_option(tmp_path):
    p = tmp_path / "r.dat"
    p.write_text("1::1::0.5::0\n1::2::10::0\n")
    with pytest.raises(ValueError, match=r"line 1: rating 0.5 is outside the scale \[1, 5\]"):
        rc.load_ratings(p)
    R = rc.load_ratings(p, scale=(0.5, 10))
    assert R.scale == (0.5, 10.0) and R.nnz == 2


# ----------------------------------------------------------------------------- synthetic data and split


def test_make_ratings_statistics_and_seed():
    R = rc.make_ratings(seed=0)
    assert R.shape == (943, 1682) and R.nnz == 100_000
    assert 0.936 < R.sparsity < 0.938
    r = R.ratings
    assert set(np.unique(r)) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert 3.3 < r.mean() < 3.8 and 0.9 < r.std() < 1.3
    pop = np.sort(R.item_counts())[::-1]
    assert pop[:100].sum() > 0.25 * R.nnz  # popularity skew: the top 6 % of items hold > 25 %
    again = rc.make_ratings(seed=0)
    np.testing.assert_array_equal(again.users, R.users)
    np.testing.assert_array_equal(again.ratings, R.ratings)
    other = rc.make_ratings(seed=1)
    assert not np.array_equal(other.users, R.users)
    small = rc.make_ratings(50, 40, 300, rank=3, seed=2)
    assert small.shape == (50, 40) and small.nnz == 300
    with pytest.raises(ValueError, match=r"n_ratings must be at most n_users \* n_items = 20, given 21"):
        rc.make_ratings(4, 5, 21)
    with pytest.raises(ValueError, match="rank must be an int >= 1, given 0"):
        rc.make_ratings(4, 5, 10, rank=0)


def test_train_test_split_partitions_by_rating():
    R = rc.make_ratings(60, 50, 800, rank=4, seed=3)
    tr, te = rc.train_test_split(R, 0.25, seed=5)
    assert tr.nnz == 600 and te.nnz == 200 and tr.shape == te.shape == R.shape
    key = lambda m: set(zip(m.users.tolist(), m.items.tolist()))  # noqa: E731
    assert key(tr).isdisjoint(key(te)) and key(tr) | key(te) == key(R)
    tr2, te2 = rc.train_test_split(R, 0.25, seed=5)
    np.testing.assert_array_equal(te2.users, te.users)
    _, te3 = rc.train_test_split(R, 0.25, seed=6)
    assert key(te3) != key(te)
    with pytest.raises(ValueError, match="test_size must be a fraction"):
        rc.train_test_split(R, 1.5)


# ----------------------------------------------------------------------------- metrics


def test_rmse_mae_by_hand():
    assert math.isclose(rc.rmse([1, 2, 3], [2, 2, 5]), math.sqrt((1 + 0 + 4) / 3))
    assert math.isclose(rc.mae([1, 2, 3], [2, 2, 5]), 1.0)
    with pytest.raises(ValueError, match="at least one rating"):
        rc.rmse([], [])
    with pytest.raises(ValueError, match="finite"):
        rc.mae([1.0], [np.inf])


def _toy():
    # user 0 held out items 0 (5 stars), 1 (2), 2 (4); user 1 held out item 3 (3) only (no
    # relevant item: skipped); user 2 held out items 1 (4), 4 (5); user 2 trained on item 0.
    test = rc.RatingMatrix([0, 0, 0, 1, 2, 2], [0, 1, 2, 3, 1, 4], [5, 2, 4, 3, 4, 5], 3, 5)
    train = rc.RatingMatrix([0, 2, 2], [3, 0, 2], [4, 1, 3], 3, 5)
    scores = np.array(
        [[0.9, 0.8, 0.1, 1.0, 0.0],
         [0.0, 0.0, 0.0, 0.0, 0.0],
         [0.5, 0.9, 0.9, 0.2, 0.3]]
    )
    return scores, test, train


def test_ranking_metrics_by_hand_test_candidates():
    scores, test, _ = _toy()
    m = rc.ranking_metrics(scores, test, k=2)
    # user 0 ranks its test items 0 (0.9), 1 (0.8), 2 (0.1): top 2 = [0, 1], hits [1, 0]
    # user 2 ranks items 1 (0.9), 4 (0.3): top 2 = [1, 4], hits [1, 1]
    d = 1 / np.log2([2, 3])
    p = [1 / 2, 2 / 2]
    r = [1 / 2, 2 / 2]
    ndcg = [d[0] / (d[0] + d[1]), 1.0]
    assert m["n_users"] == 2
    np.testing.assert_allclose([m["precision"], m["recall"], m["ndcg"]], [np.mean(p), np.mean(r), np.mean(ndcg)])
    assert rc.precision_at_k(scores, test, 2) == m["precision"]
    assert rc.recall_at_k(scores, test, 2) == m["recall"]
    assert rc.ndcg_at_k(scores, test, 2) == m["ndcg"]
    # k larger than a user's candidates: precision divides by the number of candidates
    m5 = rc.ranking_metrics(scores, test, k=5)
    np.testing.assert_allclose(m5["precision"], np.mean([2 / 3, 2 / 2]))


def test_ranking_metrics_by_hand_unrated_candidates_and_ties():
    scores, test, train = _toy()
    m = rc.ranking_metrics(scores, test, k=2, candidates="unrated", exclude=train)
    # user 0: item 3 excluded; ranking 0 (0.9), 1 (0.8): hits [1, 0] -> p 1/2, r 1/2
    # user 2: items 0, 2 excluded; 1 (0.9), 4 (0.3): hits [1, 1] -> p 1, r 1
    d = 1 / np.log2([2, 3])
    np.testing.assert_allclose(m["precision"], 0.75)
    np.testing.assert_allclose(m["recall"], 0.75)
    np.testing.assert_allclose(m["ndcg"], np.mean([d[0] / (d[0] + d[1]), 1.0]))
    # ties break toward the lower item index
    flat = np.zeros((3, 5))
    t = rc.ranking_metrics(flat, test, k=1, candidates="unrated", exclude=train)
    # user 0's first candidate is item 0 (relevant), user 2's is item 1 (relevant)
    assert t["precision"] == 1.0
    with pytest.raises(ValueError, match="needs exclude"):
        rc.ranking_metrics(scores, test, k=2, candidates="unrated")
    with pytest.raises(ValueError, match=r"scores need shape \(n_users, n_items\) = \(3, 5\), given \(3, 4\)"):
        rc.ranking_metrics(scores[:, :4], test)
    with pytest.raises(ValueError, match="k must be an int >= 1, given 0"):
        rc.ranking_metrics(scores, test, k=0)


def _ref_ranking(scores, test, train, k, threshold, candidates):
    """Per-user loops over the documented definitions."""
    U, I = scores.shape
    held = {}
    for u, i, r in zip(test.users, test.items, test.ratings):
        held.setdefault(int(u), {})[int(i)] = float(r)
    trained = {(int(u), int(i)) for u, i in zip(train.users, train.items)}
    P, R, N = [], [], []
    for u in range(U):
        rel = {i for i, r in held.get(u, {}).items() if r >= threshold}
        if not rel:
            continue
        if candidates == "test":
            cand = sorted(held[u])
        else:
            cand = [i for i in range(I) if (u, i) not in trained]
        ranked = sorted(cand, key=lambda i: (-scores[u, i], i))[:k]
        hits = [1.0 if i in rel else 0.0 for i in ranked]
        denom = k if candidates == "unrated" else min(k, len(cand))
        P.append(sum(hits) / denom)
        R.append(sum(hits) / len(rel))
        dcg = sum(h / math.log2(j + 2) for j, h in enumerate(hits))
        idcg = sum(1 / math.log2(j + 2) for j in range(min(k, len(rel))))
        N.append(dcg / idcg)
    if not P:
        return {"n_users": 0}
    return {"precision": np.mean(P), "recall": np.mean(R), "ndcg": np.mean(N), "n_users": len(P)}


@given(st.integers(0, 10_000), st.integers(1, 7), st.sampled_from(["test", "unrated"]), st.sampled_from([3.0, 4.0]))
def test_ranking_metrics_match_a_loop_reference(seed, k, candidates, threshold):
    g = np.random.default_rng(seed)
    U, I = int(g.integers(2, 7)), int(g.integers(3, 9))
    n = int(g.integers(2, U * I))
    R = rc.make_ratings(U, I, n, rank=2, seed=seed)
    train, test = rc.train_test_split(R, 0.5, seed=seed)
    scores = g.integers(0, 4, size=(U, I)).astype(float)  # many ties
    got = rc.ranking_metrics(scores, test, k, threshold=threshold, candidates=candidates, exclude=train)
    want = _ref_ranking(scores, test, train, k, threshold, candidates)
    assert got["n_users"] == want["n_users"]
    if want["n_users"]:
        for m in ("precision", "recall", "ndcg"):
            assert got[m] == pytest.approx(want[m], rel=1e-12, abs=1e-12), m


# ----------------------------------------------------------------------------- baselines


def test_bias_baseline_matches_numpy_als():
    R = rc.make_ratings(30, 20, 200, rank=3, seed=4)
    m = rc.BiasBaseline(reg_user=2.0, reg_item=3.0, n_epochs=4).fit(R)
    r = R.ratings.astype(np.float64)
    mu = r.mean()
    bu, bi = np.zeros(30), np.zeros(20)
    for _ in range(4):  # the reference: explicit loops over users and items
        for i in range(20):
            sel = R.items == i
            bi[i] = np.sum(r[sel] - mu - bu[R.users[sel]]) / (3.0 + sel.sum())
        for u in range(30):
            sel = R.users == u
            bu[u] = np.sum(r[sel] - mu - bi[R.items[sel]]) / (2.0 + sel.sum())
    np.testing.assert_allclose(m.user_bias_, bu, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(m.item_bias_, bi, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(m.predict(np.array([0, 5]), np.array([1, 2])), np.clip(mu + bu[[0, 5]] + bi[[1, 2]], 1, 5))
    with pytest.raises(ValueError, match=r"users must lie in \[0, 30\) \(the fitted matrix\), given 30"):
        m.predict(np.array([30]), np.array([0]))


def test_popularity_baseline_scores_are_counts():
    R = rc.RatingMatrix([0, 1, 2, 0, 1], [0, 0, 0, 1, 2], [5, 4, 1, 2, 5], 3, 4)
    m = rc.PopularityBaseline().fit(R)
    np.testing.assert_array_equal(m.scores()[1], [3, 1, 1, 0])
    liked = rc.PopularityBaseline(by="liked").fit(R)
    np.testing.assert_array_equal(liked.scores()[0], [2, 0, 1, 0])
    np.testing.assert_array_equal(m.recommend(0, k=2), [2, 3])  # items 0 and 1 were rated by user 0
    mu = R.ratings.mean()
    np.testing.assert_allclose(m.predict(np.array([0]), np.array([0])), [(10 + 5 * mu) / 8])


def test_fit_rejects_empty_ratings():
    with pytest.raises(ValueError, match=r"expected at least one rating, given an empty RatingMatrix \(3, 4\)"):
        rc.BiasBaseline().fit(rc.RatingMatrix([], [], [], 3, 4))


# ----------------------------------------------------------------------------- masked loss and AutoRec


def test_masked_loss_gradcheck_and_missing_entries_have_no_influence(rng):
    x = fg.tensor(rng.normal(size=(4, 6)), dtype=fg.float64, requires_grad=True)
    target = rng.uniform(1, 5, size=(4, 6))
    mask = rng.random((4, 6)) < 0.5
    mask[0, 0], mask[1, 1] = True, False
    fg.gradcheck(lambda a: rc.masked_mse_loss(a, target, mask), [x])
    loss = rc.masked_mse_loss(x, target, mask)
    want = np.sum(((x.data - target) ** 2)[mask]) / mask.sum()
    np.testing.assert_allclose(loss.item(), want, rtol=1e-12)
    loss.backward()
    g0 = x.grad.data.copy()
    assert np.all(g0[~mask] == 0.0)
    np.testing.assert_allclose(g0[mask], (2 * (x.data - target) / mask.sum())[mask], rtol=1e-12)
    # change every missing target entry (even to NaN / inf): loss and gradient are unchanged
    t2 = target.copy()
    t2[~mask] = rng.normal(size=(~mask).sum()) * 100
    t2[1, 1] = np.nan
    x.grad = None
    loss2 = rc.masked_mse_loss(x, t2, mask)
    loss2.backward()
    assert loss2.item() == loss.item()
    np.testing.assert_array_equal(x.grad.data, g0)
    assert rc.masked_mse_loss(x, target, mask, reduction="sum").item() == pytest.approx(want * mask.sum())


def test_autorec_fits_masked_and_predicts_in_scale():
    fg.manual_seed(0)
    data = rc.make_ratings(80, 60, 1500, rank=3, seed=1)
    train, test = rc.train_test_split(data, 0.2, seed=0)
    for based in ("item", "user"):
        m = rc.AutoRec(32, based=based, epochs=15, batch_size=16, lr=3e-3, random_state=0).fit(train, validation=test)
        P = m.predict_matrix()
        assert P.shape == (80, 60) and P.min() >= 1 and P.max() <= 5
        h = m.history_.history
        assert h["loss"][-1] < h["loss"][0] and len(h["val_loss"]) == 15
        res = m.evaluate(test, k=5)
        assert set(res) == {"rmse", "mae", "precision", "recall", "ndcg"}
        # the training fit: better than predicting the global mean on the training ratings
        assert rc.rmse(train.ratings, m.predict(train.users, train.items)) < np.std(train.ratings)
    # the same seed gives the same model
    a = rc.AutoRec(16, epochs=2, random_state=3).fit(train).predict_matrix()
    b = rc.AutoRec(16, epochs=2, random_state=3).fit(train).predict_matrix()
    np.testing.assert_array_equal(a, b)


def test_autorec_loss_ignores_missing_entries():
    """Two training sets that differ only in entries the mask leaves out (absent ratings)
    train the same network: the dense input has zeros there either way, and the loss
    never reads the network's outputs at those entries."""
    fg.manual_seed(0)
    data = rc.make_ratings(30, 25, 200, rank=2, seed=2)
    m = rc.AutoRec(8, epochs=3, batch_size=8, random_state=1).fit(data)
    X = m._matrix(data)
    out = m.net_(fg.tensor(X))
    base = rc.masked_mse_loss(out, X, X != 0).item()
    poke = X.copy()
    poke[X == 0] = 9.0  # garbage where the mask is off
    assert rc.masked_mse_loss(out, poke, X != 0).item() == base


# ----------------------------------------------------------------------------- RBMRecommender


def _ref_cd(model, V0, mask, gen):
    """NumPy reference of CD-k in float64 with the documented draw order."""
    K = len(model.levels_)
    W = model.W_.astype(np.float64)
    bv = model.visible_bias_.astype(np.float64)
    bh = model.hidden_bias_.astype(np.float64)
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    B, I = mask.shape
    ph0 = sig(V0 @ W + bh)
    h = (gen.random(ph0.shape) < ph0).astype(np.float64)
    for step in range(model.cd_k):
        Vk = np.zeros_like(V0)
        pvs = []
        for b in range(B):  # explicit loops: the reference
            for i in range(I):
                if not mask[b, i]:
                    continue
                logit = h[b] @ W[i * K:(i + 1) * K].T + bv[i * K:(i + 1) * K]
                p = np.exp(logit - logit.max())
                pvs.append(p / p.sum())
        pv = np.array(pvs)
        u = gen.random((pv.shape[0], 1))
        state = (u > np.cumsum(pv, axis=1)).sum(axis=1)
        ob, oi = np.nonzero(mask)
        for j in range(len(ob)):
            Vk[ob[j], oi[j] * K + min(state[j], K - 1)] = 1
        phk = sig(Vk @ W + bh)
        if step < model.cd_k - 1:
            h = (gen.random(phk.shape) < phk).astype(np.float64)
    return (V0.T @ ph0 - Vk.T @ phk) / B, (V0 - Vk).sum(0) / B, (ph0 - phk).sum(0) / B


@pytest.mark.parametrize("cd_k", [1, 2])
def test_rbm_cd_statistics_match_numpy_reference(cd_k):
    R = rc.RatingMatrix([0, 0, 1, 1, 1, 2], [0, 2, 0, 1, 3, 3], [5, 1, 3, 4, 2, 5], 3, 4)
    m = rc.RBMRecommender(5, cd_k=cd_k, n_epochs=0, random_state=0, dtype=np.float64).fit(R)
    m.W_ = np.random.default_rng(1).normal(0, 0.5, m.W_.shape)
    m.hidden_bias_ = np.random.default_rng(2).normal(0, 0.5, 5)
    V0, mask = m._onehot(m._C)
    dW, dbv, dbh, pv1 = m.cd_statistics(V0, mask, np.random.default_rng(7))
    rW, rbv, rbh = _ref_cd(m, V0, mask, np.random.default_rng(7))
    np.testing.assert_allclose(dW, rW, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dbv, rbv, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dbh, rbh, rtol=1e-10, atol=1e-12)
    assert pv1.shape == (6, 5)
    np.testing.assert_allclose(pv1.sum(axis=1), 1.0)
    # missing entries take no part: no user rated item ... every (user, item) pair outside
    # the mask contributes nothing, e.g. rows of item 1 only come from user 1
    K = 5
    only_user1 = m.cd_statistics(V0[1:2], mask[1:2], np.random.default_rng(3))
    for i in (0, 1, 3):
        assert np.abs(only_user1[0][i * K:(i + 1) * K]).sum() > 0
    assert np.all(only_user1[0][2 * K:3 * K] == 0) and np.all(only_user1[1][2 * K:3 * K] == 0)


def test_rbm_missing_ratings_do_not_reach_the_hidden_units():
    R = rc.RatingMatrix([0, 0, 1], [0, 1, 0], [5, 2, 5], 2, 3)
    m = rc.RBMRecommender(4, n_epochs=1, random_state=0, dtype=np.float64).fit(R)
    V, mask = m._onehot(m._C)
    assert V.shape == (2, 15) and V[1, 5:].sum() == 0 and mask.tolist() == [[True, True, False], [True, False, False]]
    # user 1's hidden input equals the one computed from its rated item alone
    h1 = m.transform()[1]
    np.testing.assert_allclose(h1, 1 / (1 + np.exp(-(m.W_[4] + m.hidden_bias_))), rtol=1e-12)


def test_rbm_fit_predict_recommend():
    data = rc.make_ratings(60, 40, 900, rank=3, seed=3)
    train, test = rc.train_test_split(data, 0.2, seed=0)
    m = rc.RBMRecommender(16, n_epochs=5, batch_size=16, random_state=0).fit(train)
    P = m.predict_proba()
    assert P.shape == (60, 40, 5)
    np.testing.assert_allclose(P.sum(-1), 1.0, rtol=1e-5)
    pred = m.predict_matrix()
    assert pred.min() >= 1 and pred.max() <= 5
    np.testing.assert_allclose(pred, P @ np.arange(1, 6), rtol=1e-5)
    assert len(m.history_["recon_rmse"]) == 5
    rec = m.recommend(0, k=5)
    assert len(rec) == 5 and not set(rec) & set(train.items[train.users == 0].tolist())
    # same seed, same model
    again = rc.RBMRecommender(16, n_epochs=5, batch_size=16, random_state=0).fit(train)
    np.testing.assert_array_equal(again.W_, m.W_)
    binary = rc.RBMRecommender(8, visible="binary", n_epochs=2, random_state=0).fit(train)
    assert binary.predict_proba().shape == (60, 40, 2)
    res = binary.evaluate(test, k=5)
    assert set(res) == {"precision", "recall", "ndcg"}  # probabilities of liking, no RMSE
    with pytest.raises(ValueError, match="integer ratings"):
        rc.RBMRecommender().fit(rc.RatingMatrix([0], [0], [3.5]))
    with pytest.raises(ValueError, match="n_hidden must be an int >= 1, given 0"):
        rc.RBMRecommender(0)
    with pytest.raises(ValueError, match=r"test must have the fitted shape \(60, 40\), given \(3, 4\)"):
        m.evaluate(rc.RatingMatrix([0], [0], [3], 3, 4))


def _ref_cd_implicit(model, V0, gen):
    """NumPy reference of the implicit (Bernoulli-visible) CD-k, float64, documented draw order."""
    W = model.W_.astype(np.float64)
    bv = model.visible_bias_.astype(np.float64)
    bh = model.hidden_bias_.astype(np.float64)
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    B = V0.shape[0]
    ph0 = sig(V0 @ W + bh)
    h = (gen.random(ph0.shape) < ph0).astype(np.float64)
    for step in range(model.cd_k):
        pv = sig(h @ W.T + bv)
        Vk = (gen.random(pv.shape) < pv).astype(np.float64)
        phk = sig(Vk @ W + bh)
        if step < model.cd_k - 1:
            h = (gen.random(phk.shape) < phk).astype(np.float64)
    return (V0.T @ ph0 - Vk.T @ phk) / B, (V0 - Vk).sum(0) / B, (ph0 - phk).sum(0) / B


@pytest.mark.parametrize("cd_k", [1, 3])
def test_rbm_implicit_cd_statistics_match_numpy_reference(cd_k):
    # ratings >= 4 are "liked"; user 2 rated item 3 with a 2 and nothing else
    R = rc.RatingMatrix([0, 0, 1, 1, 1, 2], [0, 2, 0, 1, 3, 3], [5, 1, 3, 4, 4, 2], 3, 4)
    m = rc.RBMRecommender(5, visible="implicit", cd_k=cd_k, n_epochs=0, random_state=0, dtype=np.float64).fit(R)
    assert m.W_.shape == (4, 5) and m.visible_bias_.shape == (4,) and m.weight_decay == 0.01
    # visible biases: log-odds of the smoothed "rated and liked" frequency, (count + 1) / (users + 2)
    freq = (np.array([1, 1, 0, 1]) + 1.0) / 5.0
    np.testing.assert_allclose(m.visible_bias_, np.log(freq / (1 - freq)), rtol=1e-12)
    V0, _ = m._onehot(m._C)
    # liked -> 1; disliked and missing alike -> 0
    np.testing.assert_array_equal(V0, [[1, 0, 0, 0], [0, 1, 0, 1], [0, 0, 0, 0]])
    m.W_ = np.random.default_rng(1).normal(0, 0.5, m.W_.shape)
    m.hidden_bias_ = np.random.default_rng(2).normal(0, 0.5, 5)
    m.visible_bias_ = np.random.default_rng(4).normal(0, 0.5, 4)
    dW, dbv, dbh, pv1 = m.cd_statistics(V0, np.zeros((3, 4), bool), np.random.default_rng(7))
    rW, rbv, rbh = _ref_cd_implicit(m, V0, np.random.default_rng(7))
    np.testing.assert_allclose(dW, rW, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dbv, rbv, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dbh, rbh, rtol=1e-10, atol=1e-12)
    assert pv1.shape == (3, 4)
    # every item is reconstructed, rated or not (missing = negative): the rated-mask plays
    # no part, unlike in the softmax model
    again = m.cd_statistics(V0, np.ones((3, 4), bool), np.random.default_rng(7))
    for x, y in zip(again, (dW, dbv, dbh, pv1)):
        np.testing.assert_array_equal(x, y)


def test_rbm_implicit_scores_predict_and_determinism():
    data = rc.make_ratings(60, 40, 900, rank=3, seed=3)
    train, test = rc.train_test_split(data, 0.2, seed=0)
    m = rc.RBMRecommender(8, visible="implicit", n_epochs=3, batch_size=16, random_state=0, dtype=np.float64).fit(train)
    assert not m.predicts_ratings and len(m.history_["recon_rmse"]) == 3
    # scores = p(v = 1 | p_h) of one mean-field pass from the liked-items vector
    R, M = train.to_dense()
    V = ((R >= 4) & M).astype(np.float64)
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    ref = sig(sig(V @ m.W_ + m.hidden_bias_) @ m.W_.T + m.visible_bias_)
    np.testing.assert_allclose(m.scores(), ref, rtol=1e-10)
    np.testing.assert_allclose(m.transform(), sig(V @ m.W_ + m.hidden_bias_), rtol=1e-12)
    P = m.predict_proba()
    assert P.shape == (60, 40, 2)
    np.testing.assert_allclose(P[..., 1], ref, rtol=1e-10)
    np.testing.assert_allclose(P.sum(-1), 1.0)
    res = m.evaluate(test, k=5, candidates="unrated")
    assert set(res) == {"precision", "recall", "ndcg"}
    np.testing.assert_allclose(
        res["precision"], rc.precision_at_k(ref, test, 5, candidates="unrated", exclude=train), rtol=1e-12
    )
    again = rc.RBMRecommender(8, visible="implicit", n_epochs=3, batch_size=16, random_state=0, dtype=np.float64).fit(train)
    np.testing.assert_array_equal(again.W_, m.W_)
    with pytest.raises(ValueError, match="visible must be 'softmax', 'binary' or 'implicit', given 'gauss'"):
        rc.RBMRecommender(visible="gauss")
    with pytest.raises(ValueError, match="'p_like' for binary and implicit units"):
        rc.RBMRecommender(visible="implicit", score="expected")


def test_rbm_implicit_beats_popularity_top_n_smoke():
    # reduced version of examples/recommend.py's goal: MovieLens-100k-sized synthetic set,
    # every unrated item ranked, relevant = held-out rating >= 4
    data = rc.make_ratings(seed=0)
    train, test = rc.train_test_split(data, 0.2, seed=0)
    m = rc.RBMRecommender(50, visible="implicit", learning_rate=0.02, n_epochs=30, random_state=0).fit(train)
    p = m.evaluate(test, 10, candidates="unrated")["precision"]
    for by in ("count", "liked"):
        q = rc.PopularityBaseline(by=by).fit(train).evaluate(test, 10, candidates="unrated")["precision"]
        assert p > q + 0.02, (by, p, q)


# ----------------------------------------------------------------------------- example


def test_recommend_example_smoke(capsys):
    path = os.path.join(HERE, os.pardir, "examples", "recommend.py")
    spec = importlib.util.spec_from_file_location("recommend_example", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.main(["--users", "80", "--items", "60", "--ratings", "1500", "--rbm-epochs", "2", "--rbm-implicit-epochs", "2", "--autorec-epochs", "2", "--quiet"])
    for name in ("bias", "popularity", "popularity (liked)", "autorec", "rbm", "rbm-implicit"):
        assert name in res and "precision_unrated" in res[name]
    assert "rmse" in res["rbm"] and "rmse" not in res["rbm-implicit"]
    out = capsys.readouterr().out
    assert "RMSE" in out and "top-N" in out and "RBMRecommender (implicit) precision@10" in out
