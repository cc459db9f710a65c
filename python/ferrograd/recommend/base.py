"""The interface every recommender shares, and the two baselines.

A recommender is fitted on a training :class:`~ferrograd.recommend.RatingMatrix` and then
gives predicted ratings for any (user, item) pair (``predict``), the whole predicted
matrix (``predict_matrix``), ranking scores (``scores``), top-k lists (``recommend``) and
held-out metrics (``evaluate``).
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional

import numpy as np

from .data import RatingMatrix
from .metrics import mae, ranking_metrics, rmse

__all__ = ["Recommender", "BiasBaseline", "PopularityBaseline"]


class Recommender:
    """Base class: subclasses implement ``_fit(train)`` and ``_predict_matrix()``
    ((n_users, n_items) predicted ratings, unclipped); ``_scores()`` defaults to it."""

    predicts_ratings = True

    def __init__(self) -> None:
        self.train_: Optional[RatingMatrix] = None
        self._cache: Optional[np.ndarray] = None

    # ---- to implement
    def _fit(self, train: RatingMatrix) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _predict_matrix(self) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _scores(self) -> np.ndarray:
        return self.predict_matrix()

    # ---- shared
    def _name(self) -> str:
        return type(self).__name__

    def fit(self, train: RatingMatrix) -> "Recommender":
        """Fits the model to the observed ratings of ``train``; returns self."""
        if not isinstance(train, RatingMatrix):
            raise TypeError(f"{self._name()}.fit: expected a RatingMatrix, given {type(train).__name__}")
        if train.nnz == 0:
            raise ValueError(f"{self._name()}.fit: expected at least one rating, given an empty RatingMatrix {train.shape}")
        if train.n_users < 1 or train.n_items < 1:
            raise ValueError(f"{self._name()}.fit: expected at least one user and one item, given shape {train.shape}")
        self.train_ = train
        self._cache = None
        self._fit(train)
        return self

    def _check_fitted(self, what: str) -> RatingMatrix:
        if self.train_ is None:
            raise RuntimeError(f"{self._name()}.{what}: call fit(train) first")
        return self.train_

    def predict_matrix(self) -> np.ndarray:
        """(n_users, n_items) predicted ratings, clipped to the training scale."""
        train = self._check_fitted("predict_matrix")
        if self._cache is None:
            m = np.asarray(self._predict_matrix(), dtype=np.float64)
            if self.predicts_ratings:
                m = np.clip(m, *train.scale)
            self._cache = m
        return self._cache

    def predict(self, users: Any, items: Any) -> np.ndarray:
        """Predicted ratings (n,) for the pairs ``(users[j], items[j])`` (integer index
        arrays of the fitted matrix's rows and columns)."""
        train = self._check_fitted("predict")
        u = np.asarray(users)
        i = np.asarray(items)
        if u.shape != i.shape or u.ndim != 1:
            raise ValueError(f"{self._name()}.predict: users and items must be 1-D of the same length, given shapes {u.shape} and {i.shape}")
        if u.size and (u.dtype.kind not in "iu" or i.dtype.kind not in "iu"):
            raise ValueError(f"{self._name()}.predict: users and items must be integer indices, given {u.dtype} and {i.dtype}")
        for name, a, n in (("users", u, train.n_users), ("items", i, train.n_items)):
            if a.size and (a.min() < 0 or a.max() >= n):
                bad = a[(a < 0) | (a >= n)][0]
                raise ValueError(f"{self._name()}.predict: {name} must lie in [0, {n}) (the fitted matrix), given {bad}")
        return self.predict_matrix()[u, i]

    def scores(self) -> np.ndarray:
        """(n_users, n_items) ranking scores (higher = recommend first)."""
        self._check_fitted("scores")
        return np.asarray(self._scores(), dtype=np.float64)

    def recommend(self, user: int, k: int = 10, *, exclude_rated: bool = True) -> np.ndarray:
        """The indices (k,) of the ``k`` best-scored items for ``user``, best first,
        leaving out the items the user rated in the training matrix (``exclude_rated``)."""
        train = self._check_fitted("recommend")
        if isinstance(user, bool) or not isinstance(user, (int, np.integer)) or not 0 <= user < train.n_users:
            raise ValueError(f"{self._name()}.recommend: user must be an index in [0, {train.n_users}), given {user!r}")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"{self._name()}.recommend: k must be an int >= 1, given {k!r}")
        s = self.scores()[int(user)].copy()
        if exclude_rated:
            s[train.items[train.users == user]] = -np.inf
        order = np.argsort(-s, kind="stable")
        order = order[np.isfinite(s[order])]
        return order[: int(k)]

    def evaluate(
        self, test: RatingMatrix, k: int = 10, *, threshold: float = 4.0, candidates: str = "test"
    ) -> Dict[str, float]:
        """Held-out metrics: ``rmse`` and ``mae`` of the predicted ratings on ``test``'s
        entries (when the model predicts ratings) and ``precision``, ``recall``, ``ndcg``
        at ``k`` (:func:`~ferrograd.recommend.ranking_metrics` with ``threshold`` and
        ``candidates``; the training matrix is excluded for 'unrated')."""
        train = self._check_fitted("evaluate")
        if not isinstance(test, RatingMatrix):
            raise TypeError(f"{self._name()}.evaluate: expected a RatingMatrix, given {type(test).__name__}")
        if test.shape != train.shape:
            raise ValueError(f"{self._name()}.evaluate: test must have the fitted shape {train.shape}, given {test.shape}")
        if test.nnz == 0:
            raise ValueError(f"{self._name()}.evaluate: expected held-out ratings, given an empty RatingMatrix")
        out: Dict[str, float] = {}
        if self.predicts_ratings:
            pred = self.predict(test.users, test.items)
            out["rmse"] = rmse(test.ratings, pred)
            out["mae"] = mae(test.ratings, pred)
        rm = ranking_metrics(self.scores(), test, k, threshold=threshold, candidates=candidates, exclude=train)
        out.update({m: rm[m] for m in ("precision", "recall", "ndcg")})
        return out


def _non_negative(v: Any, name: str, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not (math.isfinite(v) and v >= 0):
        raise ValueError(f"{what}: {name} must be a finite number >= 0, given {v!r}")
    return float(v)


class BiasBaseline(Recommender):
    """The user + item bias model ``r(u, i) = mu + b_u + b_i``: ``mu`` the global mean,
    the biases minimising ``sum (r - mu - b_u - b_i)^2 + reg_user sum b_u^2 + reg_item
    sum b_i^2`` by ``n_epochs`` rounds of alternating least squares (Koren 2010; the
    defaults are Surprise's BaselineOnly: reg_item 10, reg_user 15, 10 epochs). Each round
    is two ``numpy.bincount`` passes over the ratings. Users or items without training
    ratings get bias 0. Attributes after fit: ``mu_``, ``user_bias_`` (n_users,),
    ``item_bias_`` (n_items,)."""

    def __init__(self, reg_user: float = 15.0, reg_item: float = 10.0, n_epochs: int = 10) -> None:
        super().__init__()
        self.reg_user = _non_negative(reg_user, "reg_user", "BiasBaseline")
        self.reg_item = _non_negative(reg_item, "reg_item", "BiasBaseline")
        if isinstance(n_epochs, bool) or not isinstance(n_epochs, (int, np.integer)) or n_epochs < 1:
            raise ValueError(f"BiasBaseline: n_epochs must be an int >= 1, given {n_epochs!r}")
        self.n_epochs = int(n_epochs)

    def _fit(self, train: RatingMatrix) -> None:
        r = train.ratings.astype(np.float64)
        u, i = train.users, train.items
        mu = r.mean()
        bu = np.zeros(train.n_users)
        bi = np.zeros(train.n_items)
        cu = np.bincount(u, minlength=train.n_users)
        ci = np.bincount(i, minlength=train.n_items)
        for _ in range(self.n_epochs):
            bi = np.bincount(i, weights=r - mu - bu[u], minlength=train.n_items) / (self.reg_item + ci)
            bu = np.bincount(u, weights=r - mu - bi[i], minlength=train.n_users) / (self.reg_user + cu)
        # (a count of 0 with reg 0 gives 0/0: no data, bias 0)
        self.mu_, self.user_bias_, self.item_bias_ = float(mu), np.nan_to_num(bu), np.nan_to_num(bi)

    def _predict_matrix(self) -> np.ndarray:
        return self.mu_ + self.user_bias_[:, None] + self.item_bias_[None, :]


class PopularityBaseline(Recommender):
    """Recommends the most popular items: an item's score is its number of training
    ratings (``by="count"``) or of training ratings ``>= threshold`` (``by="liked"``), the
    same for every user. Its rating predictions are the item means shrunk toward the
    global mean, ``(sum_i r + damping * mu) / (n_i + damping)``."""

    def __init__(self, by: str = "count", threshold: float = 4.0, damping: float = 5.0) -> None:
        super().__init__()
        if by not in ("count", "liked"):
            raise ValueError(f"PopularityBaseline: by must be 'count' or 'liked', given {by!r}")
        self.by = by
        self.threshold = float(threshold)
        self.damping = _non_negative(damping, "damping", "PopularityBaseline")

    def _fit(self, train: RatingMatrix) -> None:
        r = train.ratings.astype(np.float64)
        w = None if self.by == "count" else (r >= self.threshold).astype(np.float64)
        self.popularity_ = np.bincount(train.items, weights=w, minlength=train.n_items).astype(np.float64)
        mu = r.mean()
        n = np.bincount(train.items, minlength=train.n_items)
        s = np.bincount(train.items, weights=r, minlength=train.n_items)
        with np.errstate(invalid="ignore", divide="ignore"):
            m = (s + self.damping * mu) / (n + self.damping)
        self.item_mean_ = np.where(n + self.damping > 0, m, mu)

    def _predict_matrix(self) -> np.ndarray:
        return np.broadcast_to(self.item_mean_, self._check_fitted("predict_matrix").shape)

    def _scores(self) -> np.ndarray:
        return np.broadcast_to(self.popularity_, self._check_fitted("scores").shape)
