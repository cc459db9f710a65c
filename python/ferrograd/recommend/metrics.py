"""Accuracy of predicted ratings (RMSE, MAE) and quality of top-k lists (precision@k,
recall@k, NDCG@k).

Ranking metrics take a score matrix ``scores`` (n_users, n_items), higher = recommend
first, and the held-out ratings ``test`` (a :class:`~ferrograd.recommend.RatingMatrix`).

- **Relevance**: a test item is relevant to a user when its held-out rating is
  ``>= threshold`` (default 4.0 stars: "liked").
- **Candidates** (which items are ranked for a user):
  ``"test"`` (default): the user's own held-out items, ranked by score -- the protocol of
  rating-prediction papers and of Surprise's precision@k FAQ: can the model tell, among the
  items the user did rate, which ones they liked? ``"unrated"``: every item the user has
  not rated in ``exclude`` (the training matrix, required), the full recommendation task
  (there popularity is a strong baseline, because which items get rated at all depends
  mostly on popularity).
- Ties in score are broken by the lower item index (stable sort); candidates that are
  fewer than ``k`` only fill part of the list.
- precision@k = hits in the top k / k (``"unrated"``) or / min(k, number of candidates)
  (``"test"``, so a perfect ranking scores 1); recall@k = hits / number of relevant items;
  NDCG@k = DCG / ideal DCG with binary gains and discount 1 / log2(rank + 1), the ideal
  list holding min(k, number of relevant) relevant items first.
- Only users with at least one relevant test item are averaged (their number is returned
  as ``n_users`` by :func:`ranking_metrics`).
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from .data import RatingMatrix

__all__ = ["rmse", "mae", "precision_at_k", "recall_at_k", "ndcg_at_k", "ranking_metrics"]


def _pair(y_true: Any, y_pred: Any, what: str) -> tuple:
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if t.shape != p.shape:
        raise ValueError(f"{what}: y_true and y_pred need the same shape, given {t.shape} and {p.shape}")
    if t.size == 0:
        raise ValueError(f"{what}: expected at least one rating, given an empty array")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(p))):
        raise ValueError(f"{what}: expected finite values, given NaN or inf")
    return t, p


def rmse(y_true: Any, y_pred: Any) -> float:
    """Root mean squared error sqrt(mean((y_true - y_pred)^2)) over all entries."""
    t, p = _pair(y_true, y_pred, "rmse")
    return float(np.sqrt(np.mean((t - p) ** 2)))


def mae(y_true: Any, y_pred: Any) -> float:
    """Mean absolute error mean(|y_true - y_pred|) over all entries."""
    t, p = _pair(y_true, y_pred, "mae")
    return float(np.mean(np.abs(t - p)))


def ranking_metrics(
    scores: Any,
    test: RatingMatrix,
    k: int = 10,
    *,
    threshold: float = 4.0,
    candidates: str = "test",
    exclude: Optional[RatingMatrix] = None,
) -> Dict[str, float]:
    """precision@k, recall@k and NDCG@k averaged over the users with a relevant test
    item (see the module docs for the protocol): ``{"precision": ..., "recall": ...,
    "ndcg": ..., "n_users": ...}``.

    scores: (n_users, n_items) finite numbers; test: held-out ratings of that shape;
    candidates: ``"test"`` or ``"unrated"`` (then ``exclude``, the training ratings, is
    required: those items are never recommended).
    """
    what = "ranking_metrics"
    if not isinstance(test, RatingMatrix):
        raise TypeError(f"{what}: test must be a RatingMatrix, given {type(test).__name__}")
    S = np.array(scores, dtype=np.float64)
    if S.shape != test.shape:
        raise ValueError(f"{what}: scores need shape (n_users, n_items) = {test.shape}, given {S.shape}")
    if not np.all(np.isfinite(S)):
        raise ValueError(f"{what}: scores must be finite, given NaN or inf")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"{what}: k must be an int >= 1, given {k!r}")
    k_asked = int(k)  # the precision denominator of the 'unrated' protocol (hits / k)
    k = int(min(k, S.shape[1])) if S.shape[1] else int(k)
    rel = np.zeros(S.shape, dtype=bool)
    liked = test.ratings >= threshold
    rel[test.users[liked], test.items[liked]] = True
    if candidates == "test":
        cand = np.zeros(S.shape, dtype=bool)
        cand[test.users, test.items] = True
        S[~cand] = -np.inf
        n_cand = cand.sum(axis=1)
    elif candidates == "unrated":
        if not isinstance(exclude, RatingMatrix) or exclude.shape != test.shape:
            raise ValueError(
                f"{what}: candidates='unrated' needs exclude=<the training RatingMatrix> of shape {test.shape}, "
                f"given {exclude!r}"
            )
        S[exclude.users, exclude.items] = -np.inf
        n_cand = np.full(S.shape[0], S.shape[1]) - exclude.user_counts()
    else:
        raise ValueError(f"{what}: candidates must be 'test' or 'unrated', given {candidates!r}")
    n_rel = rel.sum(axis=1)
    users = np.flatnonzero(n_rel > 0)
    if users.size == 0 or k == 0:
        return {"precision": float("nan"), "recall": float("nan"), "ndcg": float("nan"), "n_users": 0}
    Su = S[users]
    # A stable sort of -score: ties keep increasing item order.
    top = np.argsort(-Su, axis=1, kind="stable")[:, :k]
    rows = np.arange(users.size)[:, None]
    valid = np.isfinite(Su[rows, top])
    hits = rel[users][rows, top] & valid
    n_hits = hits.sum(axis=1)
    denom = np.full(users.size, k_asked) if candidates == "unrated" else np.minimum(k, n_cand[users])
    precision = n_hits / np.maximum(denom, 1)
    recall = n_hits / n_rel[users]
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits * disc).sum(axis=1)
    idcg = np.cumsum(disc)[np.minimum(k, n_rel[users]) - 1]
    return {
        "precision": float(precision.mean()),
        "recall": float(recall.mean()),
        "ndcg": float((dcg / idcg).mean()),
        "n_users": int(users.size),
    }


def precision_at_k(scores: Any, test: RatingMatrix, k: int = 10, **kwargs: Any) -> float:
    """Mean precision@k (see :func:`ranking_metrics` for the arguments)."""
    return ranking_metrics(scores, test, k, **kwargs)["precision"]


def recall_at_k(scores: Any, test: RatingMatrix, k: int = 10, **kwargs: Any) -> float:
    """Mean recall@k (see :func:`ranking_metrics` for the arguments)."""
    return ranking_metrics(scores, test, k, **kwargs)["recall"]


def ndcg_at_k(scores: Any, test: RatingMatrix, k: int = 10, **kwargs: Any) -> float:
    """Mean NDCG@k with binary gains (see :func:`ranking_metrics` for the arguments)."""
    return ranking_metrics(scores, test, k, **kwargs)["ndcg"]
