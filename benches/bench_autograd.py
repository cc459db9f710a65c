"""Autograd overhead: forward + backward of ((a * b + c) ** 2).sum() on 4-element tensors,
ferrograd vs PyTorch CPU, each in its own process, alternating over rounds (median).

    python benches/bench_autograd.py [--rounds R]
"""

from __future__ import annotations

import sys

import numpy as np

from _timing import isolated_medians, median_time, try_import_torch

VALS = [np.array([1.0, 2.0, 3.0, 4.0], np.float32) * s for s in (0.5, -1.0, 2.0)]


def worker(lib: str) -> None:
    if lib == "ferrograd":
        import ferrograd as fg

        a, b, c = (fg.tensor(v, requires_grad=True) for v in VALS)

        def step():
            a.grad = b.grad = c.grad = None
            ((a * b + c) ** 2).sum().backward()

        step()
        expect = 2 * (VALS[0] * VALS[1] + VALS[2]) * VALS[1]
        assert np.allclose(a.grad.numpy(), expect)
    else:
        import torch

        ta, tb, tc = (torch.tensor(v, requires_grad=True) for v in VALS)

        def step():
            ta.grad = tb.grad = tc.grad = None
            ((ta * tb + tc) ** 2).sum().backward()

    print(median_time(step, 9, 0.2))


def main() -> None:
    if "--worker" in sys.argv:
        worker(sys.argv[sys.argv.index("--worker") + 1])
        return
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 5
    libs = {"ferrograd": ["--worker", "ferrograd"]}
    if try_import_torch() is not None:
        libs["torch"] = ["--worker", "torch"]
    r = isolated_medians(__file__, libs, rounds)
    print(f"each library in its own process, median of {rounds} alternating rounds")
    print("| case | ferrograd us | PyTorch us | PyTorch/ferrograd |")
    print("|---|---|---|---|")
    t = r.get("torch")
    print(f"| ((a*b+c)**2).sum() fwd+bwd, 4 elements | {r['ferrograd'] * 1e6:.2f} | "
          + (f"{t * 1e6:.2f} | {t / r['ferrograd']:.2f}x |" if t else "n/a | n/a |"))


if __name__ == "__main__":
    main()
