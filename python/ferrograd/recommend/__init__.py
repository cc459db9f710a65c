"""``ferrograd.recommend``: recommendation from ratings.

- Data: :class:`RatingMatrix` (a sparse user x item matrix of its own: COO arrays, CSR
  and dense+mask views; scipy is not needed), :func:`load_ratings` / :func:`save_ratings`
  (MovieLens files, tab- or ``::``-separated), :func:`make_ratings` (a synthetic
  MovieLens-like set), :func:`train_test_split` (by rating, seeded).
- Metrics: :func:`rmse`, :func:`mae` on held-out ratings; :func:`precision_at_k`,
  :func:`recall_at_k`, :func:`ndcg_at_k` (:func:`ranking_metrics` documents the protocol:
  relevant = held-out rating >= 4 by default).
- Models (``fit(train)``, ``predict(users, items)``, ``predict_matrix()``, ``scores()``,
  ``recommend(user, k)``, ``evaluate(test, k)``): :class:`BiasBaseline` (mu + b_u + b_i),
  :class:`PopularityBaseline`, :class:`RBMRecommender` (softmax-visible RBM,
  Salakhutdinov, Mnih and Hinton 2007, for rating prediction; ``visible="implicit"``,
  liked-vs-everything-else units, for top-N lists), :class:`AutoRec` (item- or user-based, masked
  loss).

>>> from ferrograd import recommend
>>> data = recommend.make_ratings(seed=0)                 # 943 x 1682, 100,000 ratings
>>> train, test = recommend.train_test_split(data, 0.2, seed=0)
>>> recommend.AutoRec(epochs=50).fit(train).evaluate(test)["rmse"]
"""

from .autorec import AutoRec, masked_mse_loss
from .base import BiasBaseline, PopularityBaseline, Recommender
from .data import CSR, RatingMatrix, load_ratings, make_ratings, save_ratings, train_test_split
from .metrics import mae, ndcg_at_k, precision_at_k, ranking_metrics, recall_at_k, rmse
from .rbm import RBMRecommender

__all__ = [
    "RatingMatrix", "CSR", "load_ratings", "save_ratings", "make_ratings", "train_test_split",
    "rmse", "mae", "precision_at_k", "recall_at_k", "ndcg_at_k", "ranking_metrics",
    "Recommender", "BiasBaseline", "PopularityBaseline", "RBMRecommender", "AutoRec", "masked_mse_loss",
]
