"""Bellman optimality backup (one sweep of value iteration): ferrograd's Rust kernel (sparse
rows, fused max/argmax/change, parallel over fixed blocks of states) against NumPy: the
einsum form on the dense (S, A, S) model, BLAS's matrix-vector product on the same, and a
sparse bincount form. Each backend runs in its own process (benches/_timing.py), float64,
the same thread count (--threads, default 2) for the kernel pool and OpenBLAS.

    flock /tmp/ferrograd-bench.lock python benches/bench_rl_mdp.py [--rounds 3] [--threads 2]

Prints a Markdown table of microseconds per sweep and the ratio NumPy-best / Rust.
"""

from __future__ import annotations

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

CASES = {
    # name: (description, dense model feasible)
    "frozenlake8x8": ("FrozenLake 8x8 slippery (S=64, A=4)", True),
    "taxi": ("Taxi (S=500, A=6)", True),
    "grid100": ("GridWorld 100x100, slip 0.2 (S=10,000, A=4)", False),
    "grid300": ("GridWorld 300x300, slip 0.2 (S=90,000, A=4)", False),
    "dense50": ("random dense P (S=50, A=4)", True),
    "dense200": ("random dense P (S=200, A=4)", True),
    "dense1000": ("random dense P (S=1000, A=4)", True),
}
BACKENDS = ["rust", "numpy-einsum", "numpy-matmul", "numpy-sparse"]


def build(case: str):
    import numpy as np

    from ferrograd.rl import FiniteMDP
    from ferrograd.rl.envs import FROZEN_LAKE_8x8, GridWorld

    if case == "frozenlake8x8":
        return GridWorld(FROZEN_LAKE_8x8, slip=2 / 3).to_mdp(0.99)
    if case == "taxi":
        import warnings

        import gymnasium as gym

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                env = gym.make("Taxi-v3")
            except gym.error.Error:
                env = gym.make("Taxi-v4")
        return FiniteMDP.from_gym(env, gamma=0.99)
    if case.startswith("grid"):
        n = int(case[4:])
        rows = ["S" + "." * (n - 1)] + ["." * n] * (n - 2) + ["." * (n - 1) + "G"]
        return GridWorld(rows, slip=0.2, rewards={"step": -0.01}).to_mdp(0.99)
    S = int(case[5:])
    rng = np.random.default_rng(0)
    P = rng.random((S, 4, S))
    P /= P.sum(-1, keepdims=True)
    return FiniteMDP(P, rng.normal(size=(S, 4)), 0.99)


def worker(case: str, backend: str) -> None:
    import numpy as np

    from _timing import median_time

    mdp = build(case)
    V = np.random.default_rng(1).normal(size=mdp.n_states)
    S = mdp.n_states
    if backend == "rust":
        fn = lambda: mdp._opt(V, "rust")  # noqa: E731
    elif backend == "numpy-matmul":
        mdp.continuation  # build the dense model outside the timing
        fn = lambda: mdp._opt(V, "numpy-dense")  # noqa: E731
    elif backend == "numpy-sparse":
        fn = lambda: mdp._opt(V, "numpy-sparse")  # noqa: E731
    else:
        C, R, g = mdp.continuation, mdp.R, mdp.gamma

        def fn():
            Q = R + g * np.einsum("sat,t->sa", C, V)
            pol = np.argmax(Q, axis=1)
            v2 = Q[np.arange(S), pol]
            return v2, pol, np.max(np.abs(v2 - V))

    print(median_time(fn, repeats=7, min_time=0.05))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--worker", nargs=2, metavar=("CASE", "BACKEND"))
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    os.environ["FERROGRAD_NUM_THREADS"] = str(args.threads)
    os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    from _timing import isolated_medians

    print(f"load average before: {os.getloadavg()}")
    print()
    print("| model | nnz / dense entries | Rust (us) | NumPy einsum (us) | NumPy matmul (us) | NumPy sparse (us) | best NumPy / Rust |")
    print("|---|---|---|---|---|---|---|")
    for case, (desc, dense_ok) in CASES.items():
        mdp = build(case)
        dense = mdp.n_states * mdp.n_actions * mdp.n_states
        libs = {b: ["--worker", case, b] for b in BACKENDS if dense_ok or b in ("rust", "numpy-sparse")}
        t = isolated_medians(os.path.abspath(__file__), libs, rounds=args.rounds)
        cell = lambda b: f"{t[b] * 1e6:.1f}" if b in t else "n/a (dense model too large)"  # noqa: E731
        best = min(v for k, v in t.items() if k != "rust")
        print(f"| {desc} | {mdp.indices.size:,} / {dense:,} | {cell('rust')} | {cell('numpy-einsum')} | "
              f"{cell('numpy-matmul')} | {cell('numpy-sparse')} | {best / t['rust']:.2f}x |", flush=True)
    print()
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
