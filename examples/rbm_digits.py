"""RBM features for digit classification (scikit-learn's classic RBM example, in ferrograd).

A 64-100 Bernoulli RBM (persistent CD-1, as scikit-learn's BernoulliRBM) learns features
of the 8x8 digits scaled to [0, 1]; a logistic-regression layer (ferrograd.nn, Adam) is
trained on the hidden probabilities and, for comparison, on the raw pixels. Prints the
pseudo-likelihood before and after training and both test accuracies; also a 2-hidden
layer DBM's reconstruction error. With matplotlib installed it writes the learned filters
and model samples as PNGs (rbm_digits_filters.png, rbm_digits_samples.png).

    python examples/rbm_digits.py
"""

from __future__ import annotations

import time

import numpy as np

import ferrograd as fg
import ferrograd.nn as nn
import ferrograd.optim as optim
from ferrograd import datasets, train
from ferrograd.unsupervised import DBM, RBM


def logistic_accuracy(Ftr: np.ndarray, ytr: np.ndarray, Fte: np.ndarray, yte: np.ndarray) -> float:
    fg.manual_seed(0)
    model = nn.Sequential(nn.Linear(Ftr.shape[1], 10))
    trainer = train.Trainer(model, nn.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=1e-2))
    trainer.fit(Ftr.astype(np.float32), ytr, epochs=60, batch_size=64, verbose=0)
    pred = trainer.predict(Fte.astype(np.float32)).argmax(1)
    return float(np.mean(pred == yte))


def main() -> None:
    t0 = time.perf_counter()
    fg.manual_seed(0)
    X, y = datasets.load_digits(return_X_y=True, dtype=np.float64)
    X = X / 16.0
    perm = np.random.default_rng(0).permutation(len(X))
    tr, te = perm[:1400], perm[1400:]

    rbm0 = RBM(n_components=100, n_iter=0, random_state=0).fit(X[tr])
    rbm = RBM(n_components=100, learning_rate=0.06, n_iter=20, random_state=0)
    t1 = time.perf_counter()
    rbm.fit(X[tr])
    print(f"RBM 64-100, 20 passes of PCD-1 in {time.perf_counter() - t1:.2f} s")
    print(f"pseudo-likelihood (train): {rbm0.score_samples(X[tr]).mean():.2f} at init -> "
          f"{rbm.score_samples(X[tr]).mean():.2f} trained; held out {rbm.score_samples(X[te]).mean():.2f}")
    acc_rbm = logistic_accuracy(rbm.transform(X[tr]), y[tr], rbm.transform(X[te]), y[te])
    acc_pix = logistic_accuracy(X[tr], y[tr], X[te], y[te])
    print(f"logistic regression test accuracy: RBM features {acc_rbm:.3f}, raw pixels {acc_pix:.3f}")

    Xb = (X > 0.5).astype(np.float32)
    dbm = DBM((64, 100, 50), n_iter=20, pretrain_iter=20, random_state=0)
    t1 = time.perf_counter()
    dbm.fit(Xb[tr])
    mu = dbm.mean_field(Xb[te])[0]
    rec = 1 / (1 + np.exp(-(mu @ dbm.weights_[0] + dbm.biases_[0])))
    print(f"DBM 64-100-50 (binarised digits) in {time.perf_counter() - t1:.2f} s: held-out reconstruction "
          f"MSE {np.mean((rec - Xb[te]) ** 2):.4f} (pixel variance {Xb[te].var():.4f})")

    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("matplotlib not installed: no pictures")
    else:
        from ferrograd import viz

        filters = rbm.components_.reshape(100, 1, 8, 8)
        viz.save_image_grid(filters, "rbm_digits_filters.png")
        print("wrote rbm_digits_filters.png")
        samples = rbm.sample(64, steps=1000, return_probs=True).reshape(64, 1, 8, 8)
        viz.save_image_grid(samples, "rbm_digits_samples.png")
        print("wrote rbm_digits_samples.png")
    print(f"done in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
