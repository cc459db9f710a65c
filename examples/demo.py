"""ferrograd demo: train a small neural network with nothing but Tensors and autograd.

A two-layer tanh network learns the two-moons-like "XOR of quadrants" problem by full-batch
gradient descent; the matrix products, activations and reductions run in Rust. It prints
the loss as it falls, the final accuracy, and a gradcheck of the model's gradients.

Run:  python examples/demo.py
"""

from __future__ import annotations

import numpy as np

import ferrograd as fg


def make_data(n: int = 512) -> tuple:
    """Points in [-1, 1]^2 labelled by the sign of x*y (XOR of quadrants), with noise."""
    gen = fg.generator()
    x = gen.uniform(-1, 1, size=(n, 2)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.float32)[:, None]
    return fg.tensor(x), fg.tensor(y)


def forward(params: dict, x: fg.Tensor) -> fg.Tensor:
    """Logits of shape (n, 1) for inputs of shape (n, 2)."""
    h = fg.tanh(x @ params["w1"] + params["b1"])
    return h @ params["w2"] + params["b2"]


def bce_with_logits(logits: fg.Tensor, target: fg.Tensor) -> fg.Tensor:
    """Mean binary cross-entropy from logits, computed stably: softplus(z) - y z."""
    return (fg.softplus(logits) - target * logits).mean()


def main() -> None:
    fg.manual_seed(0)
    x, y = make_data()
    hidden = 16
    params = {
        "w1": fg.randn(2, hidden) * (1 / np.sqrt(2)),
        "b1": fg.zeros(hidden),
        "w2": fg.randn(hidden, 1) * (1 / np.sqrt(hidden)),
        "b2": fg.zeros(1),
    }
    params = {k: v.detach().requires_grad_() for k, v in params.items()}
    lr = 0.5
    for step in range(1, 1501):
        loss = bce_with_logits(forward(params, x), y)
        for p in params.values():
            p.grad = None
        loss.backward()
        with fg.no_grad():
            for p in params.values():
                p.data -= lr * p.grad.data
        if step in (1, 10, 100, 500, 1000, 1500):
            print(f"step {step:5d}  loss {loss.item():.4f}")
    with fg.no_grad():
        pred = forward(params, x).numpy() > 0
    acc = float((pred == (y.numpy() > 0.5)).mean())
    print(f"training accuracy: {acc:.3f}")

    # The gradients autograd computed agree with finite differences (in float64).
    xs = fg.tensor(x.numpy()[:8], dtype=fg.float64)
    ys = fg.tensor(y.numpy()[:8], dtype=fg.float64)
    p64 = [fg.tensor(p.numpy(), dtype=fg.float64, requires_grad=True) for p in params.values()]

    def loss_of(w1, b1, w2, b2):
        return bce_with_logits(forward({"w1": w1, "b1": b1, "w2": w2, "b2": b2}, xs), ys)

    print("gradcheck:", fg.gradcheck(loss_of, p64))
    print(f"kernels: {fg.simd_level()}, {fg.get_num_threads()} thread(s)")


if __name__ == "__main__":
    main()
