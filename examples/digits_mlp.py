"""An MLP on the 8x8 handwritten digits (shipped with ferrograd, no download).

Standardised inputs, a 64-256-64-10 ReLU network with dropout 0.3, Adam, EarlyStopping on
val_accuracy that restores the best epoch's weights; prints the test accuracy (>= 97%).

    python examples/digits_mlp.py
"""

from __future__ import annotations

import time

import numpy as np

import ferrograd as fg
import ferrograd.nn as nn
import ferrograd.optim as optim
from ferrograd import datasets, train


def split(n: int, seed: int, test: float = 0.2, val: float = 0.1):
    perm = np.random.default_rng(seed).permutation(n)
    n_test, n_val = int(n * test), int(n * val)
    return perm[n_test + n_val :], perm[n_test : n_test + n_val], perm[:n_test]


def main() -> None:
    t0 = time.perf_counter()
    fg.manual_seed(0)
    digits = datasets.load_digits()
    X, y = digits.data, digits.target  # (1797, 64) float32 pixel counts 0..16, (1797,) int64
    tr, va, te = split(len(X), seed=0)
    mean, std = X[tr].mean(0), X[tr].std(0) + 1e-3  # standardise with training statistics only
    X = ((X - mean) / std).astype(np.float32)

    model = nn.Sequential(
        nn.Linear(64, 256), nn.ReLU(), nn.Dropout(0.3),
        nn.Linear(256, 64), nn.ReLU(), nn.Dropout(0.3),
        nn.Linear(64, 10),
    )
    train.summary(model, (64,))
    trainer = train.Trainer(model, nn.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=1e-3), metrics=["accuracy"])
    early = train.EarlyStopping(monitor="val_accuracy", patience=20, restore_best_weights=True)
    history = trainer.fit(
        X[tr], y[tr], epochs=100, batch_size=32, validation_data=(X[va], y[va]), callbacks=[early], verbose=1
    )
    best = max(history.history["val_accuracy"])
    print(f"trained {len(history.epoch)} epochs; best val_accuracy {best:.4f} (epoch {early.best_epoch + 1}, weights restored)")
    result = trainer.evaluate(X[te], y[te])
    print(f"test loss {result['loss']:.4f}")
    print(f"test accuracy: {result['accuracy']:.2%} on {len(te)} held-out digits ({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
