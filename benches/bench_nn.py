"""Layer benchmarks against PyTorch CPU in the same run (median of 7 after a warm-up).

- XOR net (2-8-1, tanh/sigmoid, batch 4): one SGD train step (zero_grad, forward, MSE loss,
  backward, step).
- MLP 784-256-10 (ReLU, batch 64): forward + cross-entropy + backward, and a train step
  with Adam when ``ferrograd.optim`` is available.
- The fused linear kernel alone (forward, forward+backward) at a few sizes.

Run: ``python benches/bench_nn.py``. Torch is optional (ratios are skipped without it).
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _timing import median_time, try_import_torch  # noqa: E402

import ferrograd as fg  # noqa: E402
import ferrograd.nn as nn  # noqa: E402
import ferrograd.nn.functional as F  # noqa: E402

try:
    import ferrograd.optim as fg_optim
except ImportError:  # the optimizers may not be built yet
    fg_optim = None


def _sgd_fallback(params, lr):
    def step():
        for p in params:
            p.data -= lr * p.grad.data

    return step


def bench_xor(torch):
    fg.manual_seed(0)
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    Y = np.array([[0], [1], [1], [0]], np.float32)
    m = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1), nn.Sigmoid())
    loss_fn = nn.MSELoss()
    x, y = fg.Tensor(X), fg.Tensor(Y)
    if fg_optim is not None:
        opt = fg_optim.SGD(m.parameters(), lr=0.5)
        zero, step = opt.zero_grad, opt.step
    else:
        zero, step = m.zero_grad, _sgd_fallback(list(m.parameters()), 0.5)

    def ours():
        zero()
        loss_fn(m(x), y).backward()
        step()

    t_ours = median_time(ours)
    line = f"xor 2-8-1 SGD step, batch 4:       ferrograd {t_ours * 1e6:8.1f} us"
    if torch is not None:
        tm = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1), torch.nn.Sigmoid())
        topt = torch.optim.SGD(tm.parameters(), lr=0.5)
        tl = torch.nn.MSELoss()
        tx, ty = torch.from_numpy(X), torch.from_numpy(Y)

        def theirs():
            topt.zero_grad()
            tl(tm(tx), ty).backward()
            topt.step()

        t_t = median_time(theirs)
        line += f"   torch {t_t * 1e6:8.1f} us   speed-up {t_t / t_ours:5.2f}x"
    print(line)


def bench_mlp(torch):
    fg.manual_seed(0)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 784)).astype(np.float32)
    Y = rng.integers(0, 10, 64)
    m = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    loss_fn = nn.CrossEntropyLoss()
    x = fg.Tensor(X)

    def ours_fb():
        m.zero_grad()
        loss_fn(m(x), Y).backward()

    results = [("mlp 784-256-10 fwd+bwd, batch 64:", median_time(ours_fb), None)]
    if torch is not None:
        tm = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
        tl = torch.nn.CrossEntropyLoss()
        tx, ty = torch.from_numpy(X), torch.from_numpy(Y)

        def theirs_fb():
            tm.zero_grad()
            tl(tm(tx), ty).backward()

        results[0] = (results[0][0], results[0][1], median_time(theirs_fb))
        if fg_optim is not None and hasattr(fg_optim, "Adam"):
            opt = fg_optim.Adam(m.parameters(), lr=1e-3)
            topt = torch.optim.Adam(tm.parameters(), lr=1e-3)

            def ours_step():
                opt.zero_grad()
                loss_fn(m(x), Y).backward()
                opt.step()

            def theirs_step():
                topt.zero_grad()
                tl(tm(tx), ty).backward()
                topt.step()

            results.append(("mlp 784-256-10 Adam step, batch 64:", median_time(ours_step), median_time(theirs_step)))
    for name, a, b in results:
        line = f"{name:35s} ferrograd {a * 1e6:8.1f} us"
        if b is not None:
            line += f"   torch {b * 1e6:8.1f} us   speed-up {b / a:5.2f}x"
        print(line)


def bench_linear(torch):
    rng = np.random.default_rng(1)
    for m_, k, n in [(4, 2, 8), (64, 784, 256), (256, 1024, 1024)]:
        x = fg.Tensor(rng.standard_normal((m_, k)).astype(np.float32), requires_grad=True)
        w = nn.Parameter(rng.standard_normal((n, k)).astype(np.float32))
        b = nn.Parameter(rng.standard_normal(n).astype(np.float32))
        g = rng.standard_normal((m_, n)).astype(np.float32)

        def fb():
            x.grad = w.grad = b.grad = None
            F.linear(x, w, b, activation="relu").backward(g)

        a = median_time(fb)
        line = f"linear+relu fwd+bwd {m_}x{k}x{n}:".ljust(36) + f"ferrograd {a * 1e6:8.1f} us"
        if torch is not None:
            tx = torch.from_numpy(x.data).requires_grad_()
            tw = torch.from_numpy(w.data.copy()).requires_grad_()
            tb = torch.from_numpy(b.data.copy()).requires_grad_()
            tg = torch.from_numpy(g)

            def tfb():
                tx.grad = tw.grad = tb.grad = None
                torch.relu(torch.nn.functional.linear(tx, tw, tb)).backward(tg)

            t = median_time(tfb)
            line += f"   torch {t * 1e6:8.1f} us   speed-up {t / a:5.2f}x"
        print(line)


def main():
    torch = try_import_torch()
    if torch is not None:
        torch.set_num_threads(fg.get_num_threads())
    print(f"threads {fg.get_num_threads()}, simd {fg.simd_level()}")
    bench_xor(torch)
    bench_mlp(torch)
    bench_linear(torch)


if __name__ == "__main__":
    main()
