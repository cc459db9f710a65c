"""Autograd overhead: forward + backward of ((a * b + c) ** 2).sum() on 4-element tensors,
ferrograd vs PyTorch CPU in the same run.

    python benches/bench_autograd.py
"""

from __future__ import annotations

import numpy as np

import ferrograd as fg
from _timing import median_time, try_import_torch


def main() -> None:
    vals = [np.array([1.0, 2.0, 3.0, 4.0], np.float32) * s for s in (0.5, -1.0, 2.0)]
    a, b, c = (fg.tensor(v, requires_grad=True) for v in vals)

    def step_fg():
        a.grad = b.grad = c.grad = None
        ((a * b + c) ** 2).sum().backward()

    t_fg = median_time(step_fg, 9, 0.2)
    print("| case | ferrograd us | PyTorch us | PyTorch/ferrograd |")
    print("|---|---|---|---|")
    torch = try_import_torch()
    if torch is None:
        print(f"| ((a*b+c)**2).sum() fwd+bwd, 4 elements | {t_fg * 1e6:.2f} | n/a | n/a |")
        return
    torch.set_num_threads(fg.get_num_threads())
    ta, tb, tc = (torch.tensor(v, requires_grad=True) for v in vals)

    def step_torch():
        ta.grad = tb.grad = tc.grad = None
        ((ta * tb + tc) ** 2).sum().backward()

    t_t = median_time(step_torch, 9, 0.2)
    # Same gradients from both.
    step_fg()
    step_torch()
    assert np.allclose(a.grad.numpy(), ta.grad.numpy()) and np.allclose(c.grad.numpy(), tc.grad.numpy())
    print(f"| ((a*b+c)**2).sum() fwd+bwd, 4 elements | {t_fg * 1e6:.2f} | {t_t * 1e6:.2f} | {t_t / t_fg:.2f}x |")


if __name__ == "__main__":
    main()
