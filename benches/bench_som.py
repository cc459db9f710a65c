"""SOM training: ferrograd vs MiniSom, 20,000 samples x 64 features on a 30 x 30 map.

    flock /tmp/ferrograd-bench.lock python benches/bench_som.py [--rounds 5]

Each measurement runs in its own process (libraries alternating, round after round), all
pinned to 2 threads (FERROGRAD_NUM_THREADS, OPENBLAS_NUM_THREADS, OMP_NUM_THREADS); each
process builds the data, warms up on a short run, then times one full training from the
same PCA initialisation. Medians over the rounds; quantization errors on the training
data (each library's own ``quantization_error``, the same formula). Data: a seeded
mixture of 20 Gaussian clusters in 64 dimensions.

Rows compare like with like:
- online: ``train(data, 20000, random_order=True)`` in both (MiniSom's sequential
  updates; the same RandomState seed gives both the same sample order);
- offline batch: ``train_batch_offline(data, 2)`` in both (MiniSom's batch algorithm
  blended with the decaying learning rate; 2 epochs, as MiniSom takes seconds per epoch);
- and, for reference, ferrograd's pure batch map ``train_batch(data, 20)`` (Kohonen's
  algorithm, 20 epochs; MiniSom has no vectorised batch training to compare with).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

N, DIM, SIDE = 20_000, 64, 30
SIGMA, LR, SEED = 3.0, 0.5, 1
ITERS, OFFLINE_EPOCHS, BATCH_EPOCHS = 20_000, 2, 20


def make_data():
    import numpy as np

    rng = np.random.default_rng(0)
    centers = rng.normal(0, 3.0, size=(20, DIM))
    lab = rng.integers(0, 20, size=N)
    return centers[lab] + rng.normal(size=(N, DIM))


def worker(lib: str, mode: str, dtype: str) -> None:
    import numpy as np

    data = make_data()
    if lib == "minisom":
        from minisom import MiniSom as Som

        kw = {}
    else:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
        from ferrograd.unsupervised import SOM as Som

        kw = {"dtype": np.float32 if dtype == "float32" else np.float64}
        data = data.astype(kw["dtype"])

    def fresh():
        s = Som(SIDE, SIDE, DIM, sigma=SIGMA, learning_rate=LR, random_seed=SEED, **kw)
        s.pca_weights_init(data)
        return s

    def run(s, scale=1):
        if mode == "online":
            s.train(data, max(1, ITERS // scale), random_order=True)
        elif mode == "offline":
            s.train_batch_offline(data if scale == 1 else data[: N // scale], OFFLINE_EPOCHS if scale == 1 else 1)
        else:
            s.train_batch(data, BATCH_EPOCHS if scale == 1 else 1)

    run(fresh(), scale=20)  # warm-up
    s = fresh()
    t0 = time.perf_counter()
    run(s)
    dt = time.perf_counter() - t0
    print(f"{dt:.6f} {s.quantization_error(data):.6f} {s.topographic_error(data):.6f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    env = dict(os.environ, FERROGRAD_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2", OMP_NUM_THREADS="2", MKL_NUM_THREADS="2")
    cases = {
        ("online", "minisom"): ["minisom", "online", "float64"],
        ("online", "ferrograd f32"): ["ferrograd", "online", "float32"],
        ("online", "ferrograd f64"): ["ferrograd", "online", "float64"],
        ("offline", "minisom"): ["minisom", "offline", "float64"],
        ("offline", "ferrograd f32"): ["ferrograd", "offline", "float32"],
        ("batch", "ferrograd f32"): ["ferrograd", "batch", "float32"],
    }
    res: dict = {k: [] for k in cases}
    load0 = os.getloadavg()
    for _ in range(args.rounds):
        for k, a in cases.items():
            out = subprocess.run([sys.executable, __file__, "worker", *a], check=True, capture_output=True, text=True, env=env)
            res[k].append([float(v) for v in out.stdout.split()[-3:]])
    load1 = os.getloadavg()
    med = {k: [statistics.median(r[i] for r in v) for i in range(3)] for k, v in res.items()}
    print(f"SOM training, {N} x {DIM} samples, {SIDE} x {SIDE} map, sigma={SIGMA}, learning_rate={LR}, "
          f"PCA init, 2 threads, median of {args.rounds} processes; load average before "
          f"{load0[0]:.2f} / {load0[1]:.2f} / {load0[2]:.2f}, after {load1[0]:.2f} / {load1[1]:.2f} / {load1[2]:.2f}")
    print()
    print("| training | library | time (s) | speed-up vs MiniSom | quantization error | topographic error |")
    print("|---|---|---:|---:|---:|---:|")
    labels = {
        "online": f"online, {ITERS} updates, random order",
        "offline": f"train_batch_offline, {OFFLINE_EPOCHS} epochs",
        "batch": f"batch map (train_batch), {BATCH_EPOCHS} epochs",
    }
    for (mode, lib), (t, qe, te) in med.items():
        ref = med.get((mode, "minisom"), med[("online", "minisom")])
        sp = f"{ref[0] / t:.1f}x" if lib != "minisom" else "1.0x"
        if mode == "batch":
            sp += " (vs MiniSom online)"
        print(f"| {labels[mode]} | {lib} | {t:.3f} | {sp} | {qe:.4f} | {te:.4f} |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        worker(*sys.argv[2:5])
    else:
        main()
