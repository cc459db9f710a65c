"""Recommendation on a synthetic MovieLens-100k-sized ratings set (943 users x 1682 items,
100,000 ratings 1-5, 93.7 % missing; ``ferrograd.recommend.make_ratings``), 80/20 split
by rating.

Models: the user + item bias baseline (mu + b_u + b_i); the popularity baseline (items
by number of training ratings, the same list for everyone) and, for reference, its
"liked" variant (by number of training ratings >= 4); AutoRec (item-based, 500 sigmoid
hidden units, masked loss, L2 30, 30 epochs of Adam); RBMRecommender in its two modes:
``rbm`` = softmax visible units (the rating-prediction mode; 100 hidden units, CD-1, 30
epochs) and ``rbm-implicit`` = one Bernoulli unit per item, 1 = rated and liked, missing
treated as 0 (the top-N mode; 100 hidden units, CD-1, learning rate 0.02, weight decay
0.01, 60 epochs).

Prints RMSE and MAE of the held-out ratings (models that predict ratings), and precision /
recall / NDCG at 10 with relevant = held-out rating >= 4 under two protocols (see
``ferrograd.recommend.ranking_metrics``): "test" ranks each user's own held-out items (can
the model tell which ones the user liked?), "unrated" ranks every item the user has not
rated in training (the standard top-N task, where which items get rated at all matters
most and popularity is a strong baseline).

Goals: AutoRec's RMSE below the bias baseline's; RBMRecommender's precision@10 above the
popularity baseline's under the top-N protocol (``rbm-implicit``, candidates = all
unrated items).

    python examples/recommend.py [--seed 0] [--quiet] [--users 943 --items 1682 --ratings 100000
                                 --rbm-epochs 30 --rbm-implicit-epochs 60 --autorec-epochs 30]
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Dict, List, Optional

import ferrograd as fg
from ferrograd import recommend as rc


def _fmt(v: Optional[float]) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"


def run(n_users: int = 943, n_items: int = 1682, n_ratings: int = 100_000, seed: int = 0,
        rbm_epochs: int = 30, rbm_implicit_epochs: int = 60, autorec_epochs: int = 30,
        verbose: int = 1) -> Dict[str, Dict[str, float]]:
    """Fits the models and prints their metrics; returns {model: metrics} (keys ``rmse``,
    ``mae`` when the model predicts ratings, ``precision`` / ``recall`` / ``ndcg`` (the
    "test" protocol), the same with suffix ``_unrated`` (top-N) and ``seconds``)."""
    t0 = time.perf_counter()
    fg.manual_seed(seed)
    data = rc.make_ratings(n_users, n_items, n_ratings, rank=10, seed=seed)
    train, test = rc.train_test_split(data, 0.2, seed=seed)
    print(f"data: {data}; train {train.nnz} / test {test.nnz} ratings, mean rating {data.mean():.2f}")
    models = {
        "bias": rc.BiasBaseline(),
        "popularity": rc.PopularityBaseline(),
        "popularity (liked)": rc.PopularityBaseline(by="liked"),
        "autorec": rc.AutoRec(500, based="item", l2=30.0, epochs=autorec_epochs, random_state=seed, verbose=verbose),
        "rbm": rc.RBMRecommender(100, cd_k=1, n_epochs=rbm_epochs, random_state=seed, verbose=verbose),
        "rbm-implicit": rc.RBMRecommender(
            100, visible="implicit", cd_k=1, learning_rate=0.02, weight_decay=0.01, n_epochs=rbm_implicit_epochs,
            random_state=seed, verbose=verbose,
        ),
    }
    results: Dict[str, Dict[str, float]] = {}
    for name, model in models.items():
        t = time.perf_counter()
        model.fit(train)
        fit_s = time.perf_counter() - t
        res = model.evaluate(test, k=10)
        unrated = model.evaluate(test, k=10, candidates="unrated")
        res.update({f"{k}_unrated": unrated[k] for k in ("precision", "recall", "ndcg")})
        res["seconds"] = fit_s
        results[name] = res
    print()
    print("| model | RMSE | MAE | P@10 (test) | R@10 (test) | NDCG@10 (test) "
          "| P@10 (top-N, unrated) | R@10 (top-N) | NDCG@10 (top-N) | fit s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        cells = [r.get("rmse"), r.get("mae"), r["precision"], r["recall"], r["ndcg"],
                 r["precision_unrated"], r["recall_unrated"], r["ndcg_unrated"]]
        print(f"| {name} | " + " | ".join(_fmt(c) for c in cells) + f" | {r['seconds']:.1f} |")
    a, b = results["autorec"]["rmse"], results["bias"]["rmse"]
    p, q = results["rbm-implicit"]["precision_unrated"], results["popularity"]["precision_unrated"]
    ql = results["popularity (liked)"]["precision_unrated"]
    ps, qs = results["rbm"]["precision"], results["popularity"]["precision"]
    print()
    print(f"AutoRec RMSE {a:.4f} vs bias baseline {b:.4f}: {'below (goal met)' if a < b else 'NOT below'}")
    print(f"RBMRecommender (implicit) precision@10 over all unrated items {p:.4f} vs popularity baseline {q:.4f}: "
          f"{'above (goal met)' if p > q else 'NOT above'} (popularity by liked count: {ql:.4f})")
    print(f"RBMRecommender (softmax) precision@10 over the held-out items {ps:.4f} vs popularity {qs:.4f}: "
          f"{'above' if ps > qs else 'NOT above'}")
    print(f"time: {time.perf_counter() - t0:.1f} s")
    return results


def main(argv: Optional[List[str]] = None) -> Dict[str, Dict[str, float]]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--users", type=int, default=943)
    ap.add_argument("--items", type=int, default=1682)
    ap.add_argument("--ratings", type=int, default=100_000)
    ap.add_argument("--rbm-epochs", type=int, default=30)
    ap.add_argument("--rbm-implicit-epochs", type=int, default=60)
    ap.add_argument("--autorec-epochs", type=int, default=30)
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    return run(a.users, a.items, a.ratings, seed=a.seed, rbm_epochs=a.rbm_epochs,
               rbm_implicit_epochs=a.rbm_implicit_epochs, autorec_epochs=a.autorec_epochs,
               verbose=0 if a.quiet else 1)


if __name__ == "__main__":
    main()
