"""RBM training: ferrograd's RBM vs scikit-learn's BernoulliRBM on load_digits.

    flock /tmp/ferrograd-bench.lock python benches/bench_rbm.py [--rounds 5]

The same settings in both (scikit-learn's defaults: n_components=256, learning_rate=0.1,
batch_size=10, n_iter=10, persistent CD-1, random_state=0) on the 1,797 digits scaled to
[0, 1], in float64 (scikit-learn's usual dtype) and float32 (both keep a float32 input's
dtype). Each measurement runs in its own process (libraries alternating, round after
round), pinned to 2 threads (FERROGRAD_NUM_THREADS, OPENBLAS_NUM_THREADS, OMP_NUM_THREADS);
each process warms up with one fit, then times one fit. Medians over the rounds.

Quality: the pseudo-likelihood of scikit-learn's ``score_samples`` (one random feature
flipped per sample) is noisy, so every model is scored by the same NumPy implementation
of that estimator averaged over 20 fixed sets of flipped features (identical for both
libraries), and also by its own ``score_samples``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time


def pseudo_likelihood(W, c, b, X, repeats: int = 20) -> float:
    """Mean of scikit-learn's pseudo-likelihood estimator over ``repeats`` fixed flips."""
    import numpy as np

    W, c, b, X = (np.asarray(a, np.float64) for a in (W, c, b, X))

    def fe(v):
        return -v @ b - np.logaddexp(0, v @ W.T + c).sum(1)

    f0 = fe(X)
    out = []
    for r in range(repeats):
        idx = np.random.RandomState(1000 + r).randint(0, X.shape[1], X.shape[0])
        Xf = X.copy()
        Xf[np.arange(X.shape[0]), idx] = 1 - Xf[np.arange(X.shape[0]), idx]
        out.append(np.mean(-X.shape[1] * np.logaddexp(0, -(fe(Xf) - f0))))
    return float(np.mean(out))


def worker(lib: str, dtype: str) -> None:
    import numpy as np

    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, "..", "python"))
    from ferrograd.datasets import load_digits

    X = (load_digits(dtype=np.float64).data / 16.0).astype(dtype)
    if lib == "sklearn":
        from sklearn.neural_network import BernoulliRBM as Model
    else:
        from ferrograd.unsupervised import RBM as Model
    kw = dict(n_components=256, learning_rate=0.1, batch_size=10, n_iter=10, random_state=0)
    Model(**kw).fit(X)  # warm-up
    m = Model(**kw)
    t0 = time.perf_counter()
    m.fit(X)
    dt = time.perf_counter() - t0
    pl = pseudo_likelihood(m.components_, m.intercept_hidden_, m.intercept_visible_, X)
    own = float(np.mean(m.score_samples(X)))
    print(f"{dt:.6f} {pl:.6f} {own:.6f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    env = dict(os.environ, FERROGRAD_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2", OMP_NUM_THREADS="2", MKL_NUM_THREADS="2")
    cases = {(lib, dt): [lib, dt] for dt in ("float64", "float32") for lib in ("sklearn", "ferrograd")}
    res: dict = {k: [] for k in cases}
    load0 = os.getloadavg()
    for _ in range(args.rounds):
        for k, a in cases.items():
            out = subprocess.run([sys.executable, __file__, "worker", *a], check=True, capture_output=True, text=True, env=env)
            res[k].append([float(v) for v in out.stdout.split()[-3:]])
    load1 = os.getloadavg()
    med = {k: [statistics.median(r[i] for r in v) for i in range(3)] for k, v in res.items()}
    print("RBM fit on load_digits (1797 x 64, scaled to [0, 1]): n_components=256, learning_rate=0.1, "
          f"batch_size=10, n_iter=10, random_state=0; 2 threads, median of {args.rounds} processes; load average "
          f"before {load0[0]:.2f} / {load0[1]:.2f} / {load0[2]:.2f}, after {load1[0]:.2f} / {load1[1]:.2f} / {load1[2]:.2f}")
    print()
    print("| dtype | library | fit time (s) | speed-up | pseudo-likelihood (common scorer, 20 flips) | own score_samples mean |")
    print("|---|---|---:|---:|---:|---:|")
    for (lib, dt), (t, pl, own) in med.items():
        sp = med[("sklearn", dt)][0] / t
        print(f"| {dt} | {'scikit-learn BernoulliRBM' if lib == 'sklearn' else 'ferrograd RBM'} | {t:.3f} | {sp:.1f}x | {pl:.3f} | {own:.3f} |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        worker(*sys.argv[2:4])
    else:
        main()
