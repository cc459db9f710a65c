"""MLP regression on a nonlinear synthetic problem, beside a linear baseline.

y = sin(2 x0) + 0.5 x1**2 - x0 x2 + noise with 3 inputs. A linear model (nn.Linear alone,
i.e. least squares by gradient descent) cannot express the curvature; an MLP can. Reports
MSE and MAE on held-out data for both (and the noise floor).

    python examples/regression.py
"""

from __future__ import annotations

import numpy as np

import ferrograd as fg
import ferrograd.nn as nn
import ferrograd.optim as optim
from ferrograd import train


def make_data(n: int, noise: float, seed: int):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2, 2, size=(n, 3)).astype(np.float32)
    y = np.sin(2 * X[:, 0]) + 0.5 * X[:, 1] ** 2 - X[:, 0] * X[:, 2]
    y = y + rng.normal(scale=noise, size=n)
    return X, y.reshape(-1, 1).astype(np.float32)


def run(name: str, model, X, y, Xt, yt, epochs: int) -> dict:
    trainer = train.Trainer(model, nn.MSELoss(), optim.Adam(model.parameters(), lr=3e-3), metrics=["mse", "mae"])
    trainer.fit(
        X, y, epochs=epochs, batch_size=32, validation_split=0.1, verbose=0,
        callbacks=[train.EarlyStopping("val_loss", patience=15, restore_best_weights=True)],
    )
    res = trainer.evaluate(Xt, yt)
    print(f"{name:<28} test MSE {res['mse']:.4f}   test MAE {res['mae']:.4f}")
    return res


def main() -> None:
    fg.manual_seed(0)
    noise = 0.1
    X, y = make_data(2000, noise, seed=0)
    Xt, yt = make_data(500, noise, seed=1)
    print(f"target variance {yt.var():.3f}; noise floor: MSE {noise**2:.4f}, MAE {noise * np.sqrt(2 / np.pi):.4f}")
    lin = run("linear baseline (3-1)", nn.Linear(3, 1), X, y, Xt, yt, epochs=100)
    mlp = nn.Sequential(nn.Linear(3, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1))
    net = run("MLP (3-64-64-1, tanh)", mlp, X, y, Xt, yt, epochs=200)
    print(f"MLP / linear MSE: {net['mse'] / lin['mse']:.3f}")


if __name__ == "__main__":
    main()
