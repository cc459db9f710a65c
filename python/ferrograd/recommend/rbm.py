"""``RBMRecommender``: a restricted Boltzmann machine for collaborative filtering
(Salakhutdinov, Mnih and Hinton, "Restricted Boltzmann Machines for Collaborative
Filtering", ICML 2007).

Every user is one RBM that shares its weights with all the others: a softmax visible unit
per item the user rated, with K states (the rating values 1..5, or ``visible="binary"``:
K = 2 states "not liked" / "liked", liked meaning rating >= ``like_threshold``), and
``n_hidden`` binary hidden units. A user's visible vector is one-hot per rated item,
flattened to ``(n_items * K,)``; items the user did not rate are **left out of both
phases**: they contribute nothing to the hidden input, are never reconstructed, and their
weights and biases get no gradient from that user.

    p(h_j = 1 | V) = sigmoid(b_j + sum_{i rated, k} V_ik W_ikj)
    p(v_i = k | h) = softmax_k(b_ik + sum_j h_j W_ikj)        (rated items i only)

``visible="implicit"`` is the top-N (ranking) mode: one Bernoulli visible unit per item,
1 where the user rated the item **and liked it** (rating >= ``like_threshold``), 0
everywhere else -- disliked and unrated items alike, so missing ratings are treated as
negative (implicit feedback) and every item takes part in both phases:

    p(h_j = 1 | v) = sigmoid(b_j + sum_i v_i W_ij)
    p(v_i = 1 | h) = sigmoid(b_i + sum_j h_j W_ij)                (all items)

An unrated item is then scored by p(v_i = 1 | p_h), the model's probability that the user
rates it and likes it. Unlike the softmax model, which only sees rated items and so ranks
by how much a user would like an item *if* they rated it (which favours obscure items),
this learns which items a user picks at all, which dominates the top-N task.

Training is CD-k on minibatches of users, vectorised over the batch: the data-dependent
and the model statistics are matrix products through ferrograd's Rust GEMM
(``ferrograd.tensor._mm`` -> ``ferrograd._native.mm``); the Gibbs sampling is NumPy on
the whole batch, drawing from one explicit ``numpy.random.Generator`` (``random_state``, or
the library's generator) in a fixed order (see :meth:`RBMRecommender.cd_statistics`).
Predictions use one mean-field pass: ``p_h = p(h | V_user)``, then the softmax of every
item given ``p_h``; the predicted rating is the expected value sum_k p_k * level_k.
"""

from __future__ import annotations

import math
import sys
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .._random import generator as _library_generator
from ..tensor import _mm
from .base import Recommender
from .data import RatingMatrix

__all__ = ["RBMRecommender"]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    e = np.exp(x[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def _softmax_last(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z


def _check_pos_int(v: Any, name: str, minimum: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
        raise ValueError(f"RBMRecommender: {name} must be an int >= {minimum}, given {v!r}")
    return int(v)


def _check_num(v: Any, name: str, lo: float = 0.0, hi: float = math.inf, hi_open: bool = False) -> float:
    ok = not isinstance(v, bool) and isinstance(v, (int, float, np.integer, np.floating)) and math.isfinite(v)
    ok = ok and lo <= v and (v < hi if hi_open else v <= hi)
    if not ok:
        rng = f"[{lo}, {hi})" if hi_open else f"[{lo}, {hi}]"
        raise ValueError(f"RBMRecommender: {name} must be a finite number in {rng}, given {v!r}")
    return float(v)


class RBMRecommender(Recommender):
    """Collaborative-filtering RBM with softmax, binary liked / not-liked, or implicit
    liked-vs-everything-else visible units.

    Which mode for which task:

    - **Rating prediction** (RMSE / MAE, or ranking the items a user *did* rate -- the
      ``candidates="test"`` protocol): ``visible="softmax"`` (the default; Salakhutdinov,
      Mnih and Hinton 2007). Unrated items are left out of both phases; the prediction is
      the expected rating.
    - **Top-N recommendation** (rank every item the user has not rated -- the
      ``candidates="unrated"`` protocol of :func:`~ferrograd.recommend.ranking_metrics`):
      ``visible="implicit"``: a Bernoulli unit per item, 1 = rated and liked, 0 = anything
      else (missing treated as negative); scores are p(rated and liked). It predicts no
      ratings (``predicts_ratings`` is False, ``evaluate`` gives no RMSE). The softmax
      modes rank unrated items poorly: they never see which items a user chooses to rate.
    - ``visible="binary"``: the softmax model with K = 2 states (not liked / liked) on
      rated items only; scores are p(liked | rated).

    Args:
        n_hidden: number of binary hidden units (default 100, as in the paper).
        visible: ``"softmax"`` (K = the integer rating levels of the scale, 5 for 1-5 stars),
            ``"binary"`` (K = 2: rating < like_threshold, rating >= like_threshold; rated
            items only) or ``"implicit"`` (one Bernoulli unit per item: rated and
            >= like_threshold, or not; all items).
        cd_k: Gibbs steps of contrastive divergence (CD-k; default 1).
        learning_rate: step size on the batch-mean gradient (default 0.05).
        momentum: final momentum (0.5 for the first 5 epochs, then this; default 0.9).
        weight_decay: L2 penalty on the weights (None: 1e-3 for the softmax and binary
            modes, 0.01 for ``"implicit"``, whose dense visible layer overfits the
            ranking without it; on the MovieLens-sized ``make_ratings`` set
            ``learning_rate=0.02, n_epochs=60`` suits the implicit mode, see
            examples/recommend.py).
        n_epochs: passes over the users (default 30).
        batch_size: users per minibatch (default 32).
        like_threshold: the rating from which an item counts as liked (default 4.0).
        score: ranking score of :meth:`scores`: ``"expected"`` rating (softmax) or
            ``"p_like"``, the probability of a rating >= like_threshold (the only choice for
            binary and implicit units; for implicit ones the probability of "rated and
            liked").
        random_state: seed of the generator used for initialisation, batch order and Gibbs
            sampling (None: the library's generator, ``ferrograd.manual_seed``).
        verbose: 1 shows a tqdm progress bar over epochs with the reconstruction error.
        dtype: float32 (default) or float64.

    Attributes after fit: ``W_`` (n_items * K, n_hidden), ``visible_bias_`` (n_items * K,),
    ``hidden_bias_`` (n_hidden,), ``levels_`` (K,) the rating value of each state,
    ``history_`` ``{"recon_rmse": [...]}`` per epoch (the root mean squared difference on
    observed entries between a rating and its expected value after one up-down pass). For
    ``visible="implicit"``, K = 1: ``W_`` is (n_items, n_hidden), ``levels_`` is ``[0, 1]``
    (the two values of a unit), and ``recon_rmse`` is over all (user, item) entries between
    v and p(v = 1 | h0).
    """

    def __init__(
        self,
        n_hidden: int = 100,
        *,
        visible: str = "softmax",
        cd_k: int = 1,
        learning_rate: float = 0.05,
        momentum: float = 0.9,
        weight_decay: Optional[float] = None,
        n_epochs: int = 30,
        batch_size: int = 32,
        like_threshold: float = 4.0,
        score: Optional[str] = None,
        random_state: Optional[int] = None,
        verbose: int = 0,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        self.n_hidden = _check_pos_int(n_hidden, "n_hidden")
        if visible not in ("softmax", "binary", "implicit"):
            raise ValueError(f"RBMRecommender: visible must be 'softmax', 'binary' or 'implicit', given {visible!r}")
        self.visible = visible
        self.cd_k = _check_pos_int(cd_k, "cd_k")
        self.learning_rate = _check_num(learning_rate, "learning_rate")
        self.momentum = _check_num(momentum, "momentum", 0.0, 1.0, hi_open=True)
        if weight_decay is None:
            weight_decay = 0.01 if visible == "implicit" else 1e-3
        self.weight_decay = _check_num(weight_decay, "weight_decay")
        self.n_epochs = _check_pos_int(n_epochs, "n_epochs", 0)
        self.batch_size = _check_pos_int(batch_size, "batch_size")
        self.like_threshold = float(like_threshold)
        if score is None:
            score = "expected" if visible == "softmax" else "p_like"
        if score not in ("expected", "p_like") or (visible != "softmax" and score != "p_like"):
            raise ValueError(
                "RBMRecommender: score must be 'expected' or 'p_like' ('p_like' for binary and implicit units), "
                f"given {score!r}"
            )
        self.score = score
        self.random_state = random_state
        self.verbose = int(verbose)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"RBMRecommender: dtype must be float32 or float64, given {self.dtype}")
        self.predicts_ratings = visible == "softmax"  # binary / implicit: probabilities of liking

    # ------------------------------------------------------------------ data

    def _categories(self, train: RatingMatrix) -> np.ndarray:
        """(n_users, n_items) int8 state index of each observed rating, -1 where missing."""
        lo, hi = train.scale
        r = train.ratings.astype(np.float64)
        if self.visible == "softmax":
            if not (float(lo).is_integer() and float(hi).is_integer()) or not np.all(r == np.rint(r)):
                raise ValueError(
                    "RBMRecommender: softmax visible units need integer ratings on an integer scale, given scale "
                    f"{train.scale} and ratings such as {r[r != np.rint(r)][:1]}; use visible='binary'"
                )
            self.levels_ = np.arange(lo, hi + 1, dtype=np.float64)
            cat = np.rint(r - lo).astype(np.int8)
        else:
            self.levels_ = np.array([0.0, 1.0])  # binary: the 2 states; implicit: the unit's values
            cat = (r >= self.like_threshold).astype(np.int8)
        C = np.full(train.shape, -1, dtype=np.int8)
        C[train.users, train.items] = cat
        return C

    def _onehot(self, C: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Categories (B, I) -> (one-hot V (B, I*K) in self.dtype, mask (B, I) bool).
        Implicit units: V (B, I) is 1 where rated and liked, 0 elsewhere (rated or not)."""
        if self.visible == "implicit":
            return (C == 1).astype(self.dtype), C >= 0
        K = len(self.levels_)
        V = (C[:, :, None] == np.arange(K, dtype=np.int8)).reshape(C.shape[0], -1).astype(self.dtype)
        return V, C >= 0

    # ------------------------------------------------------------------ the RBM

    def _hidden_probs(self, V: np.ndarray) -> np.ndarray:
        return _sigmoid(_mm(V, self.W_) + self.hidden_bias_)

    def _visible_probs(self, H: np.ndarray) -> np.ndarray:
        """(B, I, K) softmax of every item's states given hidden states / probabilities H
        (implicit units: (B, I, 2), the probabilities of v = 0 and v = 1)."""
        logits = _mm(H, self.W_, False, True) + self.visible_bias_
        if self.visible == "implicit":
            p1 = _sigmoid(logits)
            return np.stack([1 - p1, p1], axis=-1)
        return _softmax_last(logits.reshape(H.shape[0], -1, len(self.levels_)))

    def cd_statistics(
        self, V0: np.ndarray, mask: np.ndarray, generator: np.random.Generator
    ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One CD-k gradient estimate on a batch of users.

        V0: (B, n_items * K) one-hot observed ratings (all zeros for missing items);
        mask: (B, n_items) bool, True where rated. Returns ``(dW, d_visible_bias,
        d_hidden_bias, pv1)``: the batch means of ``V0^T p_h0 - V_k^T p_hk``, ``V0 - V_k`` and
        ``p_h0 - p_hk`` with shapes (n_items * K, n_hidden), (n_items * K,), (n_hidden,),
        and the first reconstruction's state probabilities (n_observed, K) at the observed
        entries in row-major order (``numpy.nonzero(mask)``).

        Only observed entries are reconstructed; V_k is zero at missing items, so they take
        no part in the negative statistics either. Random draws from ``generator``, in this
        order: ``random((B, n_hidden))`` to sample h0 from p_h0; then for each of the k
        steps ``random((n_observed, 1))`` to sample every observed item's state from its
        softmax (state = the number of cumulative probabilities below the uniform) and,
        except after the last step, ``random((B, n_hidden))`` to sample h. The positive
        statistics use p_h0, the negative ones the sampled states V_k and the
        probabilities p_hk.

        ``visible="implicit"``: V0 is (B, n_items) binary and ``mask`` is ignored -- every
        item is reconstructed (missing = 0 is data). The draws are ``random((B, n_hidden))``
        for h0, then per step ``random((B, n_items))`` to sample v_i = 1 where the uniform
        is below p(v_i = 1 | h) and (except after the last step) ``random((B, n_hidden))``
        for h; pv1 is the first reconstruction's p(v = 1 | h0), (B, n_items).
        """
        if self.visible == "implicit":

            def sample_visible(h: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
                pv = _sigmoid(_mm(h, self.W_, False, True) + self.visible_bias_)
                return pv, (generator.random(pv.shape) < pv).astype(self.dtype)

        else:
            K = len(self.levels_)
            ob, oi = np.nonzero(mask)
            cols = oi * K

            def sample_visible(h: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
                logits = _mm(h, self.W_, False, True) + self.visible_bias_
                pv = _softmax_last(logits.reshape(B, -1, K)[ob, oi])
                u = generator.random((ob.size, 1))
                state = (u > np.cumsum(pv, axis=-1)).sum(axis=-1)
                Vk = np.zeros_like(V0)
                Vk[ob, cols + np.minimum(state, K - 1)] = 1
                return pv, Vk

        B = V0.shape[0]
        ph0 = self._hidden_probs(V0)
        h = (generator.random(ph0.shape) < ph0).astype(self.dtype)
        pv1 = None
        for step in range(self.cd_k):  # CD-k Gibbs steps (k is small)
            pv, Vk = sample_visible(h)
            if pv1 is None:
                pv1 = pv
            phk = self._hidden_probs(Vk)
            if step < self.cd_k - 1:
                h = (generator.random(phk.shape) < phk).astype(self.dtype)
        dW = (_mm(V0, ph0, True, False) - _mm(Vk, phk, True, False)) / B
        dbv = (V0.sum(axis=0) - Vk.sum(axis=0)) / B
        dbh = (ph0.sum(axis=0) - phk.sum(axis=0)) / B
        return dW, dbv, dbh, pv1

    def _init_params(self, C: np.ndarray, gen: np.random.Generator) -> None:
        n_items = C.shape[1]
        if self.visible == "implicit":
            # visible biases: log-odds of each item's smoothed "rated and liked" frequency
            freq = ((C == 1).sum(axis=0) + 1.0) / (C.shape[0] + 2.0)
            self.visible_bias_ = np.log(freq / (1.0 - freq)).astype(self.dtype)
            self.W_ = gen.normal(0.0, 0.01, size=(n_items, self.n_hidden)).astype(self.dtype)
            self.hidden_bias_ = np.zeros(self.n_hidden, dtype=self.dtype)
            return
        K = len(self.levels_)
        ob, oi = np.nonzero(C >= 0)
        counts = np.bincount(oi * K + C[ob, oi], minlength=n_items * K).reshape(n_items, K).astype(np.float64)
        # visible biases: log of each item's smoothed state frequencies (Hinton's guide)
        freq = (counts + 1.0) / (counts.sum(axis=1, keepdims=True) + K)
        self.visible_bias_ = np.log(freq).reshape(-1).astype(self.dtype)
        self.W_ = gen.normal(0.0, 0.01, size=(n_items * K, self.n_hidden)).astype(self.dtype)
        self.hidden_bias_ = np.zeros(self.n_hidden, dtype=self.dtype)

    def _fit(self, train: RatingMatrix) -> None:
        gen = np.random.default_rng(self.random_state) if self.random_state is not None else _library_generator()
        C = self._categories(train)
        self._C = C
        self._init_params(C, gen)
        vel = [np.zeros_like(self.W_), np.zeros_like(self.visible_bias_), np.zeros_like(self.hidden_bias_)]
        n_users = C.shape[0]
        self.history_: Dict[str, List[float]] = {"recon_rmse": []}
        bar = None
        if self.verbose:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.n_epochs, desc="RBMRecommender", unit="epoch", file=sys.stderr, dynamic_ncols=True)
        levels = self.levels_.astype(self.dtype)
        lr, wd = self.dtype.type(self.learning_rate), self.dtype.type(self.weight_decay)
        for epoch in range(self.n_epochs):
            mom = self.dtype.type(0.5 if epoch < 5 else self.momentum)
            order = gen.permutation(n_users)
            sq, cnt = 0.0, 0
            for start in range(0, n_users, self.batch_size):  # minibatches of users
                idx = order[start : start + self.batch_size]
                V0, mask = self._onehot(C[idx])
                dW, dbv, dbh, pv1 = self.cd_statistics(V0, mask, gen)
                vel[0] *= mom
                vel[0] += lr * (dW - wd * self.W_)
                vel[1] *= mom
                vel[1] += lr * dbv
                vel[2] *= mom
                vel[2] += lr * dbh
                self.W_ += vel[0]
                self.visible_bias_ += vel[1]
                self.hidden_bias_ += vel[2]
                if self.visible == "implicit":
                    exp_r, true_r = pv1, V0
                else:
                    exp_r = pv1 @ levels
                    true_r = self.levels_[C[idx][mask]]
                sq += float(np.sum((exp_r - true_r) ** 2))
                cnt += int(exp_r.size)
            self.history_["recon_rmse"].append(math.sqrt(sq / max(cnt, 1)))
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"recon_rmse: {self.history_['recon_rmse'][-1]:.4f}", refresh=False)
        if bar is not None:
            bar.close()

    # ------------------------------------------------------------------ predictions

    def _proba_blocks(self, chunk: int = 1024):
        for start in range(0, self._C.shape[0], chunk):  # blocks of users (bounded memory)
            V, _ = self._onehot(self._C[start : start + chunk])
            yield self._visible_probs(self._hidden_probs(V))

    def predict_proba(self) -> np.ndarray:
        """(n_users, n_items, K) probabilities of each rating state for every user and item
        (one mean-field pass from the user's training ratings); implicit units:
        (n_users, n_items, 2), the probabilities of "not (rated and liked)" and "rated and
        liked"."""
        self._check_fitted("predict_proba")
        return np.concatenate(list(self._proba_blocks()), axis=0)

    def _predict_matrix(self) -> np.ndarray:
        levels = self.levels_.astype(self.dtype)
        return np.concatenate([P @ levels for P in self._proba_blocks()], axis=0)

    def _scores(self) -> np.ndarray:
        if self.score == "expected":
            return self.predict_matrix()
        if self.visible == "implicit":
            return np.concatenate([P[:, :, 1] for P in self._proba_blocks()], axis=0)
        liked = self.levels_ >= self.like_threshold if self.visible == "softmax" else np.array([False, True])
        return np.concatenate([P[:, :, liked].sum(axis=-1) for P in self._proba_blocks()], axis=0)

    def transform(self, ratings: Optional[RatingMatrix] = None) -> np.ndarray:
        """(n_users, n_hidden) hidden-unit probabilities of each user's ratings (the
        training ratings by default, or ``ratings`` of the fitted shape): features for
        other models."""
        train = self._check_fitted("transform")
        if ratings is None:
            C = self._C
        else:
            if not isinstance(ratings, RatingMatrix) or ratings.n_items != train.n_items:
                got = ratings.shape if isinstance(ratings, RatingMatrix) else type(ratings).__name__
                raise ValueError(f"RBMRecommender.transform: expected a RatingMatrix with {train.n_items} items, given {got}")
            C = self._categories(ratings)
        V, _ = self._onehot(C)
        return self._hidden_probs(V)
