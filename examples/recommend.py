"""Recommendation on a synthetic MovieLens-100k-sized ratings set (943 users x 1682 items,
100,000 ratings 1-5, 93.7 % missing; ``ferrograd.recommend.make_ratings``), 80/20 split
by rating.

Four models: the user + item bias baseline (mu + b_u + b_i), the popularity baseline,
AutoRec (item-based, 500 sigmoid hidden units, masked loss, L2 30, 30 epochs of Adam) and
RBMRecommender (softmax visible units, 100 hidden units, CD-1, 30 epochs). Prints RMSE and
MAE of the held-out ratings, and precision / recall / NDCG at 10 with relevant = held-out
rating >= 4 under two protocols (see ``ferrograd.recommend.ranking_metrics``):
"test" ranks each user's own held-out items (can the model tell which ones the user
liked?), "unrated" ranks every item the user has not rated in training (the full
top-10 task, where which items get rated at all is mostly popularity).

Goals: AutoRec's RMSE below the bias baseline's; RBMRecommender's precision@10 above the
popularity baseline's (the "test" protocol).

    python examples/recommend.py [--seed 0] [--quiet] [--users 943 --items 1682 --ratings 100000
                                 --rbm-epochs 30 --autorec-epochs 30]
"""

from __future__ import annotations

import argparse
import time
from typing import Dict, List, Optional

import ferrograd as fg
from ferrograd import recommend as rc


def run(n_users: int = 943, n_items: int = 1682, n_ratings: int = 100_000, seed: int = 0,
        rbm_epochs: int = 30, autorec_epochs: int = 30, verbose: int = 1) -> Dict[str, Dict[str, float]]:
    """Fits the four models and prints their metrics; returns {model: metrics}."""
    t0 = time.perf_counter()
    fg.manual_seed(seed)
    data = rc.make_ratings(n_users, n_items, n_ratings, rank=10, seed=seed)
    train, test = rc.train_test_split(data, 0.2, seed=seed)
    print(f"data: {data}; train {train.nnz} / test {test.nnz} ratings, mean rating {data.mean():.2f}")
    models = {
        "bias": rc.BiasBaseline(),
        "popularity": rc.PopularityBaseline(),
        "autorec": rc.AutoRec(500, based="item", l2=30.0, epochs=autorec_epochs, random_state=seed, verbose=verbose),
        "rbm": rc.RBMRecommender(100, cd_k=1, n_epochs=rbm_epochs, random_state=seed, verbose=verbose),
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
    print("| model | RMSE | MAE | precision@10 | recall@10 | NDCG@10 | precision@10 (unrated) | NDCG@10 (unrated) | fit s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(
            f"| {name} | {r['rmse']:.4f} | {r['mae']:.4f} | {r['precision']:.4f} | {r['recall']:.4f} | {r['ndcg']:.4f} "
            f"| {r['precision_unrated']:.4f} | {r['ndcg_unrated']:.4f} | {r['seconds']:.1f} |"
        )
    a, b = results["autorec"]["rmse"], results["bias"]["rmse"]
    p, q = results["rbm"]["precision"], results["popularity"]["precision"]
    print()
    print(f"AutoRec RMSE {a:.4f} vs bias baseline {b:.4f}: {'below (goal met)' if a < b else 'NOT below'}")
    print(f"RBMRecommender precision@10 {p:.4f} vs popularity baseline {q:.4f}: {'above (goal met)' if p > q else 'NOT above'}")
    print(f"time: {time.perf_counter() - t0:.1f} s")
    return results


def main(argv: Optional[List[str]] = None) -> Dict[str, Dict[str, float]]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--users", type=int, default=943)
    ap.add_argument("--items", type=int, default=1682)
    ap.add_argument("--ratings", type=int, default=100_000)
    ap.add_argument("--rbm-epochs", type=int, default=30)
    ap.add_argument("--autorec-epochs", type=int, default=30)
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    return run(a.users, a.items, a.ratings, seed=a.seed, rbm_epochs=a.rbm_epochs, autorec_epochs=a.autorec_epochs,
               verbose=0 if a.quiet else 1)


if __name__ == "__main__":
    main()
