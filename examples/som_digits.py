"""A self-organizing map of the 8x8 handwritten digits (shipped with ferrograd).

A 20 x 20 hexagonal map, PCA-initialised, trained with the batch SOM and then refined
online (MiniSom-style updates); prints the quantization and topographic errors and how
well the map separates the digits (each unit labelled by the digit it wins most often,
accuracy of that labelling on held-out digits). With matplotlib installed it writes the
U-matrix and the winner map as PNGs (som_digits_umatrix.png, som_digits_winners.png).

    python examples/som_digits.py
"""

from __future__ import annotations

import time
from collections import Counter

import numpy as np

import ferrograd as fg
from ferrograd import datasets
from ferrograd.unsupervised import SOM


def main() -> None:
    t0 = time.perf_counter()
    fg.manual_seed(0)
    X, y = datasets.load_digits(return_X_y=True)
    X = X / 16.0
    perm = np.random.default_rng(0).permutation(len(X))
    tr, te = perm[:1400], perm[1400:]

    som = SOM(20, 20, 64, sigma=4.0, learning_rate=0.5, topology="hexagonal", random_seed=0)
    som.pca_weights_init(X[tr])
    som.train_batch(X[tr], 30)
    print(f"batch SOM (30 epochs): quantization error {som.quantization_error(X[tr]):.4f}, "
          f"topographic error {som.topographic_error(X[tr]):.4f}")
    fine = SOM(20, 20, 64, sigma=1.5, learning_rate=0.1, topology="hexagonal", random_seed=0)
    fine.set_weights(som.get_weights())
    fine.train(X[tr], 20 * len(tr), random_order=True)
    print(f"+ online refinement ({20 * len(tr)} updates): quantization error "
          f"{fine.quantization_error(X[tr]):.4f}, topographic error {fine.topographic_error(X[tr]):.4f}")

    # Label each unit by its majority training digit; classify held-out digits by their BMU.
    lm = fine.labels_map(X[tr], y[tr])
    unit_label = {u: c.most_common(1)[0][0] for u, c in lm.items()}
    default = Counter(y[tr].tolist()).most_common(1)[0][0]
    coords = fine.transform(X[te], kind="coordinates")
    pred = np.array([unit_label.get((int(i), int(j)), default) for i, j in coords])
    acc = float(np.mean(pred == y[te]))
    print(f"held-out digits classified by their winning unit's label: {acc:.3f}")

    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("matplotlib not installed: no pictures")
    else:
        from ferrograd import viz

        print("wrote", viz.save_umatrix(fine, "som_digits_umatrix.png", data=X[tr], labels=y[tr],
                                        title="digits: U-matrix and winners"))
        print("wrote", viz.save_winner_map(fine, X[tr], y[tr], "som_digits_winners.png",
                                           title="digits: majority label per unit"))
    print(f"done in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
