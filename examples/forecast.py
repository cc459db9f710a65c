"""LSTM forecasting of a seasonal daily series, against the seasonal-naive baseline.

None of our dependencies (numpy, safetensors, tqdm) ships a real seasonal data set, so the
series is a realistic synthetic one, seeded: six years of daily values (think: demand)

    y(t) = 50 + 0.01 t                                    linear trend
         + 8 sin(2π t / 365.25) + 3 cos(4π t / 365.25)    yearly cycle (two harmonics)
         + w(t mod 7)                                     weekly profile, weekend dip
         + AR(1) noise, φ = 0.6, innovations N(0, 1.5²)

The model sees the last ``input_len`` = 28 days of (value, day-of-week sin/cos, day-of-year
sin/cos) and predicts the next ``horizon`` = 7 values. Everything goes through
``ferrograd.data.timeseries``: the series is split in time order (train 70 %, validation
15 %, test 15 %, later parts prefixed with 28 days of input context), a StandardScaler is
fitted on the training part only, windows are cut with ``sliding_windows``, and the
seasonal-naive forecast ("same weekday last week", ``seasonal_naive``) is the baseline.
The epoch with the best validation loss is kept; both are scored on the held-out test part
in the original units.

A second, small part demonstrates truncated backpropagation through time: a stateful LSTM
reads the training series as 8 parallel streams in chunks of 25 days, carries its (h, c)
from one chunk to the next but *detaches* it, so each backward pass covers one chunk only;
it is then run over the whole series and its one-step-ahead test error is compared with
the one-step seasonal-naive error.

With matplotlib installed, the test-period forecasts are plotted against the truth in
forecast.png.

    python examples/forecast.py
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Dict, Optional, Tuple

import numpy as np

import ferrograd as fg
import ferrograd.nn as nn
import ferrograd.optim as optim
from ferrograd.data import DataLoader, TensorDataset
from ferrograd.data import timeseries as ts
from ferrograd.nn.utils import clip_grad_norm_

WEEKLY = np.array([1.0, 1.5, 1.5, 1.0, 2.0, -3.5, -3.5])  # Mon..Sun offsets (sum 0)


def make_series(n_days: int = 6 * 365, seed: int = 0) -> np.ndarray:
    """(n_days, 5) float32: the synthetic daily value (column 0) and the calendar features
    sin/cos of the day of the week and of the day of the year (columns 1-4)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_days, dtype=np.float64)
    yearly = 8.0 * np.sin(2 * np.pi * t / 365.25) + 3.0 * np.cos(4 * np.pi * t / 365.25)
    e = rng.normal(0.0, 1.5, n_days + 60)
    ar = np.convolve(e, 0.6 ** np.arange(60))[60 : n_days + 60]  # AR(1): Σ_k φ^k e_{t-k}, φ^60 ≈ 0
    value = 50.0 + 0.01 * t + yearly + WEEKLY[np.arange(n_days) % 7] + ar
    dow = 2 * np.pi * (np.arange(n_days) % 7) / 7
    doy = 2 * np.pi * t / 365.25
    return np.stack([value, np.sin(dow), np.cos(dow), np.sin(doy), np.cos(doy)], axis=1).astype(np.float32)


class Forecaster(nn.Module):
    """(B, input_len, F) -> (B, horizon): an LSTM over the window, a Linear head on the last
    state. The window is level-normalised inside the model: the mean of its target column
    (column 0) is subtracted from that column and added back to the forecasts, so a trend
    that takes the test part beyond the training range does not push the LSTM into
    unseen input values."""

    def __init__(self, n_features: int, hidden: int, horizon: int, num_layers: int = 1) -> None:
        super().__init__()
        self.lstm = nn.LSTM(n_features, hidden, num_layers=num_layers, batch_first=True)
        self.head = nn.Linear(hidden, horizon)
        onehot = np.zeros((1, 1, n_features), np.float32)
        onehot[..., 0] = 1.0
        self.register_buffer("_value_column", onehot, persistent=False)

    def forward(self, x: fg.Tensor) -> fg.Tensor:
        level = x[:, :, 0:1].mean(1, keepdim=True)  # (B, 1, 1)
        _, (h_n, _) = self.lstm(x - level * self._value_column)
        return self.head(h_n[-1]) + level[:, 0]  # (B, horizon) + (B, 1)


def _predict(model: nn.Module, X: np.ndarray, batch: int = 512) -> np.ndarray:
    with fg.no_grad():
        return np.concatenate([model(fg.from_numpy(X[s : s + batch])).data for s in range(0, len(X), batch)])


def _errors(pred: np.ndarray, truth: np.ndarray) -> Dict[str, float]:
    d = pred.astype(np.float64) - truth
    return {"mae": float(np.abs(d).mean()), "rmse": float(np.sqrt((d**2).mean()))}


def train_window_model(
    series: np.ndarray,
    input_len: int = 28,
    horizon: int = 7,
    hidden: int = 64,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    verbose: bool = True,
) -> Dict[str, object]:
    """The windowed forecaster: split, scale on train, window, train with validation-based
    model selection, score on test against the seasonal-naive baseline (original units)."""
    fg.manual_seed(seed)
    train, val, test = ts.temporal_split(series, val_size=0.15, test_size=0.15, context=input_len)
    scaler = ts.StandardScaler().fit(train)  # statistics of the training part only
    Xtr, ytr = ts.sliding_windows(scaler.transform(train), input_len, horizon, target=0)
    Xva, yva = ts.sliding_windows(scaler.transform(val), input_len, horizon, target=0)
    Xte, _ = ts.sliding_windows(scaler.transform(test), input_len, horizon, target=0)
    Xte_raw, yte = ts.sliding_windows(test, input_len, horizon, target=0)  # truth in original units

    model = Forecaster(series.shape[1], hidden, horizon)
    opt = optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.MSELoss()
    loader = DataLoader(TensorDataset(Xtr, ytr), batch_size=batch_size, shuffle=True)
    best: Tuple[float, Optional[dict], int] = (np.inf, None, 0)
    for epoch in range(1, epochs + 1):
        model.train()
        total = 0.0
        for xb, yb in loader:
            loss = loss_fn(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            total += loss.item() * len(xb)
        val_mse = float(np.mean((_predict(model, Xva) - yva) ** 2))
        if val_mse < best[0]:
            best = (val_mse, model.state_dict(), epoch)  # state_dict() holds copies
        if verbose and (epoch % 5 == 0 or epoch == epochs):
            print(f"  epoch {epoch:3d}  train MSE {total / len(Xtr):.4f}  val MSE {val_mse:.4f} (scaled units)")
    if best[1] is not None:
        model.load_state_dict(best[1])
    pred = scaler.inverse_transform(_predict(model, Xte), feature=0)
    naive = ts.seasonal_naive(Xte_raw, season=7, horizon=horizon, target=0)
    return {
        "lstm": _errors(pred, yte),
        "naive": _errors(naive, yte),
        "best_epoch": best[2],
        "n_windows": (len(Xtr), len(Xva), len(Xte)),
        "test": test,
        "scaler": scaler,
        "model": model,
    }


def train_tbptt(
    series: np.ndarray,
    hidden: int = 32,
    chunk: int = 25,
    streams: int = 8,
    epochs: int = 20,
    lr: float = 5e-3,
    seed: int = 0,
) -> Dict[str, float]:
    """Truncated BPTT: a stateful one-step-ahead LSTM trained on the training part read as
    ``streams`` parallel sequences in chunks of ``chunk`` steps, carrying (h, c) across
    chunks but detached, so gradients stop at the chunk boundary. Returns one-step-ahead test
    errors (original units) of the model and of the seasonal naive (value 7 days earlier)."""
    fg.manual_seed(seed)
    n = len(series)
    train, _, test = ts.temporal_split(series, val_size=0.15, test_size=0.15)
    n_train, start = len(train), n - len(test)  # start: the test part's first step
    scaler = ts.StandardScaler().fit(train)
    z = scaler.transform(series)
    # Inputs at t, target value at t + 1; the training part as `streams` contiguous rows.
    per = (n_train - 1) // streams
    x = z[: streams * per].reshape(streams, per, -1)
    y = z[1 : streams * per + 1, 0].reshape(streams, per, 1)
    lstm = nn.LSTM(series.shape[1], hidden, batch_first=True)
    head = nn.Linear(hidden, 1)
    params = list(lstm.parameters()) + list(head.parameters())
    opt = optim.Adam(params, lr=lr)
    for _ in range(epochs):
        state = None
        for s in range(0, per, chunk):
            out, state = lstm(fg.from_numpy(x[:, s : s + chunk]), state)
            loss = nn.functional.mse_loss(head(out), fg.from_numpy(y[:, s : s + chunk]))
            opt.zero_grad()
            loss.backward()  # reaches back to the start of this chunk only
            clip_grad_norm_(params, 1.0)
            opt.step()
            state = tuple(h.detach() for h in state)  # keep the values, cut the graph
    with fg.no_grad():  # one pass over the whole series: the state is warmed up on train + val
        out, _ = lstm(fg.from_numpy(z[None, :-1]))
        pred = scaler.inverse_transform(head(out).data[0, :, 0], feature=0)  # pred[t] forecasts t + 1
    truth = test[:, 0]
    return {
        "lstm": _errors(pred[start - 1 :], truth),
        "naive": _errors(series[start - 7 : n - 7, 0], truth),
        "steps": epochs * -(-per // chunk),
    }


def plot(res: Dict[str, object], horizon: int, input_len: int, path: str) -> Optional[str]:
    """Plots the test truth and the 7-day forecasts of both methods issued every 7 days."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    test, scaler, model = res["test"], res["scaler"], res["model"]
    X, y = ts.sliding_windows(scaler.transform(test), input_len, horizon, stride=horizon, target=0)
    Xr, _ = ts.sliding_windows(test, input_len, horizon, stride=horizon, target=0)
    pred = scaler.inverse_transform(_predict(model, X), feature=0).reshape(-1)
    naive = ts.seasonal_naive(Xr, 7, horizon, target=0).reshape(-1)
    truth = test[input_len:, 0]
    days = np.arange(len(pred))
    fig, ax = plt.subplots(figsize=(11, 4))
    ax.plot(np.arange(len(truth)), truth, color="black", lw=1.2, label="truth")
    ax.plot(days, naive, color="tab:gray", lw=1, ls="--", label="seasonal naive (last week)")
    ax.plot(days, pred, color="tab:red", lw=1.2, label="LSTM (7-day forecasts)")
    ax.set_xlabel("test day")
    ax.set_ylabel("value")
    ax.set_title("Held-out test period: 7-day forecasts issued every 7 days")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(
    n_days: int = 6 * 365,
    input_len: int = 28,
    horizon: int = 7,
    hidden: int = 64,
    epochs: int = 30,
    tbptt_epochs: int = 20,
    seed: int = 0,
    plot_path: Optional[str] = "forecast.png",
    verbose: bool = True,
) -> Dict[str, object]:
    """Runs both parts; returns {'window': {...}, 'tbptt': {...}, 'plot': path or None,
    'seconds': ...} with MAE/RMSE of the LSTM and the seasonal-naive baseline."""
    t0 = time.perf_counter()
    series = make_series(n_days, seed)
    if verbose:
        print(f"synthetic daily series: {n_days} days, 5 inputs (value + calendar), split 70/15/15 in time order")
        print(f"windowed LSTM({hidden}) forecaster: {input_len} days in, {horizon} days out")
    res = train_window_model(series, input_len, horizon, hidden, epochs, seed=seed, verbose=verbose)
    lstm, naive = res["lstm"], res["naive"]
    if verbose:
        ntr, nva, nte = res["n_windows"]
        print(f"  windows: train {ntr}, val {nva}, test {nte}; best epoch by validation: {res['best_epoch']}")
        print(f"test {horizon}-day forecasts   LSTM: MAE {lstm['mae']:.3f}  RMSE {lstm['rmse']:.3f}")
        print(f"                      seasonal naive: MAE {naive['mae']:.3f}  RMSE {naive['rmse']:.3f}   "
              f"(LSTM / naive RMSE {lstm['rmse'] / naive['rmse']:.3f})")
    tb = train_tbptt(series, epochs=tbptt_epochs, seed=seed) if tbptt_epochs > 0 else None
    if verbose and tb is not None:
        print(f"truncated BPTT (stateful LSTM, chunks of 25 days, detached state, {tb['steps']} steps):")
        print(f"  test one-step-ahead  LSTM: MAE {tb['lstm']['mae']:.3f}  RMSE {tb['lstm']['rmse']:.3f};  "
              f"seasonal naive: MAE {tb['naive']['mae']:.3f}  RMSE {tb['naive']['rmse']:.3f}")
    out_path = plot(res, horizon, input_len, plot_path) if plot_path else None
    if verbose:
        print(f"plot: {os.path.abspath(out_path)}" if out_path else "plot: skipped (matplotlib not installed or disabled)")
    seconds = time.perf_counter() - t0
    if verbose:
        print(f"total {seconds:.1f} s")
    return {"window": {"lstm": lstm, "naive": naive, "best_epoch": res["best_epoch"]}, "tbptt": tb, "plot": out_path, "seconds": seconds}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--tbptt-epochs", type=int, default=20)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", default="forecast.png", help="output PNG ('' to skip)")
    a = p.parse_args()
    main(hidden=a.hidden, epochs=a.epochs, tbptt_epochs=a.tbptt_epochs, seed=a.seed, plot_path=a.plot or None)
