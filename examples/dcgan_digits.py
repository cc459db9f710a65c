"""A DCGAN (Radford et al. 2016) on the 8x8 handwritten digits shipped with ferrograd.

Images are scaled to [-1, 1]. Generator: z (32, 1, 1) -> ConvTranspose2d(32, 64, 2) ->
2x2 -> ConvTranspose2d(64, 32, 4, stride 2, padding 1) -> 4x4 -> ConvTranspose2d(32, 1,
4, 2, 1) -> 8x8, BatchNorm + ReLU between, Tanh at the end. Discriminator: Conv2d(1, 32,
4, 2, 1) -> 4x4 -> Conv2d(32, 64, 4, 2, 1) -> 2x2 -> Conv2d(64, 1, 2) -> one logit,
LeakyReLU(0.2) and BatchNorm. Adam(2e-4, betas (0.5, 0.999)), one-sided label smoothing
0.1.

To judge the samples without looking at them, a small MLP classifier trained on the real
digits labels 1,000 generated images: the example prints how many of the 10 classes the
generator produces (with at least 3 % of the samples each) and the classifier's mean
confidence on generated digits beside its confidence on real held-out digits. It writes
dcgan_digits.png (a 8 x 8 grid of samples) when matplotlib is available.

    python examples/dcgan_digits.py [--epochs 60] [--seed 0] [--channels 64 32] [--judge-epochs 40]
                                    [--out DIR] [--quiet]
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Dict, List, Optional

import numpy as np

import ferrograd as fg
import ferrograd.nn as nn
import ferrograd.optim as optim
from ferrograd import datasets, train
from ferrograd.gan import GAN


def generator(latent: int = 32, c1: int = 64, c2: int = 32) -> nn.Sequential:
    """z (N, latent, 1, 1) -> images (N, 1, 8, 8) in [-1, 1]."""
    return nn.Sequential(
        nn.ConvTranspose2d(latent, c1, 2, bias=False), nn.BatchNorm2d(c1), nn.ReLU(),           # 1 -> 2
        nn.ConvTranspose2d(c1, c2, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(c2), nn.ReLU(),  # 2 -> 4
        nn.ConvTranspose2d(c2, 1, 4, stride=2, padding=1), nn.Tanh(),                            # 4 -> 8
    )


def discriminator(c1: int = 32, c2: int = 64) -> nn.Sequential:
    """images (N, 1, 8, 8) -> logits (N, 1)."""
    return nn.Sequential(
        nn.Conv2d(1, c1, 4, stride=2, padding=1), nn.LeakyReLU(0.2),                             # 8 -> 4
        nn.Conv2d(c1, c2, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(c2), nn.LeakyReLU(0.2),  # 4 -> 2
        nn.Conv2d(c2, 1, 2), nn.Flatten(),                                                       # 2 -> 1
    )


def judge(X: np.ndarray, y: np.ndarray, seed: int, epochs: int = 40):
    """A 64-128-10 MLP classifier of real digits (inputs in [-1, 1]); returns the model and
    its mean confidence on a held-out fifth of the real digits."""
    perm = np.random.default_rng(seed).permutation(len(X))
    te, tr = perm[: len(X) // 5], perm[len(X) // 5 :]
    clf = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    train.fit(clf, nn.CrossEntropyLoss(), optim.Adam(clf.parameters(), lr=1e-3), X[tr], y[tr], epochs=epochs, batch_size=64, verbose=0)
    p = _softmax(train.predict(clf, X[te]))
    return clf, float(p.max(axis=1).mean()), float((p.argmax(1) == y[te]).mean())


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def run(epochs: int = 60, seed: int = 0, batch_size: int = 64, latent: int = 32, c1: int = 64, c2: int = 32,
        out_dir: Optional[str] = ".", verbose: int = 1, judge_epochs: int = 40) -> Dict[str, float]:
    """Trains the DCGAN; returns classes produced, confidences and seconds."""
    t0 = time.perf_counter()
    fg.manual_seed(seed)
    digits = datasets.load_digits()
    X = (digits.data / 8.0 - 1.0).astype(np.float32)  # 0..16 -> [-1, 1]
    images = X.reshape(-1, 1, 8, 8)
    gan = GAN(generator(latent, c1, c2), discriminator(c2, c1), (latent, 1, 1), label_smoothing=0.1)
    gan.fit(images, epochs=epochs, batch_size=batch_size, verbose=verbose)
    samples = gan.sample(1000)
    clf, real_conf, real_acc = judge(X, digits.target, seed, judge_epochs)
    p = _softmax(train.predict(clf, samples.reshape(-1, 64)))
    share = np.bincount(p.argmax(1), minlength=10) / len(p)
    out = {
        "classes": int((share >= 0.03).sum()),
        "share": share.round(3).tolist(),
        "fake_confidence": float(p.max(axis=1).mean()),
        "real_confidence": real_conf,
        "judge_accuracy": real_acc,
        "d_loss": gan.history.history["d_loss"][-1] if epochs else float("nan"),
        "g_loss": gan.history.history["g_loss"][-1] if epochs else float("nan"),
    }
    if out_dir is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            pass
        else:
            from ferrograd.viz import save_image_grid

            os.makedirs(out_dir, exist_ok=True)
            save_image_grid(samples[:64], os.path.join(out_dir, "dcgan_digits.png"), nrow=8, scale=4, value_range=(-1.0, 1.0))
            out["png"] = os.path.join(out_dir, "dcgan_digits.png")
    out["seconds"] = time.perf_counter() - t0
    return out


def main(argv: Optional[List[str]] = None) -> Dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--channels", type=int, nargs=2, default=(64, 32), metavar=("C1", "C2"))
    ap.add_argument("--judge-epochs", type=int, default=40)
    ap.add_argument("--out", default=".")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    r = run(epochs=a.epochs, seed=a.seed, c1=a.channels[0], c2=a.channels[1], out_dir=a.out,
            verbose=0 if a.quiet else 1, judge_epochs=a.judge_epochs)
    print(f"final losses: d_loss {r['d_loss']:.3f}, g_loss {r['g_loss']:.3f}")
    print(f"digit classes generated (>= 3 % of 1,000 samples each): {r['classes']} of 10; shares {r['share']}")
    print(f"judge's mean confidence: generated {r['fake_confidence']:.3f}, real held-out {r['real_confidence']:.3f} "
          f"(judge accuracy {r['judge_accuracy']:.3f})")
    if "png" in r:
        print(f"wrote {r['png']}")
    print(f"time: {r['seconds']:.1f} s")
    return r


if __name__ == "__main__":
    main()
