"""A GAN on a 2-D mixture of 8 Gaussians on a ring (the mode-collapse test of Metz et al.,
"Unrolled GANs", 2017).

Data: 8 Gaussians with standard deviation ``std`` (0.05) centred on a circle of radius 2.
Generator: MLP 16 -> 128 -> 128 -> 2; discriminator: MLP 4 -> 128 -> 128 -> 1 (logit)
judging packs of 2 samples (PacGAN, Lin et al. 2018: ``GAN(..., pack=2)``, which counters
the mode collapse a plain GAN shows here), LeakyReLU(0.2); Adam with betas (0.5, 0.999)
for both networks at lr 1e-3 for the first 80 % of the epochs and 2e-4 for the rest, the
non-saturating generator loss and one-sided label smoothing 0.1; batches of 256 from
32,000 points.

A generated point is *high quality* when it lies within 3 standard deviations of the
nearest mode's centre; a mode is *covered* when at least 1 % of the high-quality samples
(and at least 20 points) fall on it. Prints the modes covered (goal: >= 7 of 8) and the
fraction of high-quality samples (goal: more than half), and writes gan_mixture.png (real
and generated points) when matplotlib is available.

    python examples/gan_mixture.py [--epochs 50] [--seed 0] [--points 32000] [--width 128] [--out DIR] [--quiet]
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Dict, List, Optional

import numpy as np

import ferrograd as fg
import ferrograd.nn as nn
from ferrograd.gan import GAN


def ring_centers(n_modes: int = 8, radius: float = 2.0) -> np.ndarray:
    """(n_modes, 2) mode centres evenly spaced on a circle."""
    ang = 2 * np.pi * np.arange(n_modes) / n_modes
    return radius * np.stack([np.cos(ang), np.sin(ang)], axis=1)


def make_ring(n: int, std: float = 0.05, n_modes: int = 8, radius: float = 2.0, seed: int = 0) -> np.ndarray:
    """(n, 2) float32 points: a uniformly chosen mode's centre plus N(0, std^2 I)."""
    rng = np.random.default_rng(seed)
    c = ring_centers(n_modes, radius)
    return (c[rng.integers(0, n_modes, n)] + rng.normal(0.0, std, (n, 2))).astype(np.float32)


def mode_stats(samples: np.ndarray, std: float = 0.05, n_modes: int = 8, radius: float = 2.0,
               min_share: float = 0.01, min_count: int = 20) -> Dict[str, float]:
    """Modes covered and fraction of high-quality samples (within 3 std of a centre)."""
    c = ring_centers(n_modes, radius)
    d = np.linalg.norm(samples[:, None, :] - c[None], axis=2)
    nearest = d.argmin(axis=1)
    good = d.min(axis=1) <= 3 * std
    counts = np.bincount(nearest[good], minlength=n_modes)
    covered = int(np.sum((counts >= max(min_count, min_share * good.sum())) & (counts > 0)))
    return {"modes_covered": covered, "high_quality": float(good.mean()), "counts": counts.tolist()}


def mlp(n_in: int, n_out: int, width: int = 128) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(n_in, width), nn.LeakyReLU(0.2),
        nn.Linear(width, width), nn.LeakyReLU(0.2),
        nn.Linear(width, n_out),
    )


def run(epochs: int = 50, seed: int = 0, n_data: int = 32_000, batch_size: int = 256, std: float = 0.05,
        latent_dim: int = 16, width: int = 128, pack: int = 2, lr: float = 1e-3,
        out_dir: Optional[str] = ".", verbose: int = 1) -> Dict[str, float]:
    """Trains the GAN and returns the mode statistics of 10,000 samples plus seconds."""
    t0 = time.perf_counter()
    fg.manual_seed(seed)
    X = make_ring(n_data, std, seed=seed)
    gan = GAN(mlp(latent_dim, 2, width), mlp(2 * pack, 1, width), latent_dim, lr=lr, label_smoothing=0.1, pack=pack)
    first = int(round(0.8 * epochs))
    gan.fit(X, epochs=first, batch_size=batch_size, verbose=verbose)
    for opt in (gan.g_optimizer, gan.d_optimizer):  # a lower learning rate to finish
        for group in opt.param_groups:
            group["lr"] = lr / 5
    gan.fit(X, epochs=epochs - first, batch_size=batch_size, verbose=verbose)
    samples = gan.sample(10_000)
    stats = mode_stats(samples, std)
    stats["seconds"] = time.perf_counter() - t0
    if out_dir is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            pass
        else:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure

            fig = Figure(figsize=(5, 5))
            FigureCanvasAgg(fig)
            ax = fig.add_subplot(1, 1, 1)
            ax.scatter(X[:2000, 0], X[:2000, 1], s=2, c="tab:blue", label="data")
            ax.scatter(samples[:2000, 0], samples[:2000, 1], s=2, c="tab:red", alpha=0.5, label="generated")
            ax.set_aspect("equal")
            ax.legend(loc="upper right")
            os.makedirs(out_dir, exist_ok=True)
            fig.savefig(os.path.join(out_dir, "gan_mixture.png"), dpi=100)
    return stats


def main(argv: Optional[List[str]] = None) -> Dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--points", type=int, default=32_000)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--out", default=".")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    s = run(epochs=a.epochs, seed=a.seed, n_data=a.points, width=a.width, out_dir=a.out, verbose=0 if a.quiet else 1)
    print(f"modes covered: {s['modes_covered']} of 8 (goal >= 7); samples per mode {s['counts']}")
    print(f"high-quality samples (within 3 std of a mode): {s['high_quality']:.1%} (goal > 50%)")
    print(f"time: {s['seconds']:.1f} s")
    return s


if __name__ == "__main__":
    main()
