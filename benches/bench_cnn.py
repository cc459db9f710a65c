"""LeNet-5 train step (forward, backward, SGD step), ferrograd vs PyTorch CPU in the same run.

    conv 6@5x5 (padding 2) - ReLU - maxpool 2 - conv 16@5x5 - ReLU - maxpool 2
    - fc 120 - ReLU - fc 84 - ReLU - fc 10,   CrossEntropyLoss, SGD(lr=0.01, momentum=0.9)

at batch 64 on 1x28x28 inputs (the classic MNIST LeNet-5; 28 -> 28 -> 14 -> 10 -> 5).
Target: ferrograd >= 1.5x faster than PyTorch. Both libraries start from the same weights
and data; the first steps' losses are checked to agree.

Default: each library in its own fresh process, alternating (ferrograd, torch, ferrograd,
...) over ``--rounds`` rounds, median of the per-process medians (see benches/_timing.py),
same thread count for both (``--threads N``). ``--profile`` instead profiles the ferrograd
step in this process: cProfile, then the time of each layer's forward and backward.

    python benches/bench_cnn.py [--threads N] [--rounds R]
    python benches/bench_cnn.py --profile
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import time

import numpy as np

import ferrograd as fg
import ferrograd.nn as nn
import ferrograd.optim as optim
from _timing import isolated_medians, median_time, try_import_torch

BATCH = 64
LR, MOMENTUM = 0.01, 0.9


def lenet5():
    fg.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, 10),
    )


def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, BATCH).astype(np.int64)
    return x, y


def fg_step():
    model = lenet5()
    opt = optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    loss_fn = nn.CrossEntropyLoss()
    x, y = data()
    xt, yt = fg.Tensor._wrap(x), fg.Tensor._wrap(y)

    def step():
        opt.zero_grad()
        loss = loss_fn(model(xt), yt)
        loss.backward()
        opt.step()
        return float(loss.data)

    return step, model


def torch_step(torch):
    src = lenet5()
    layers = []
    for m in src.children():
        name = type(m).__name__
        if name == "Conv2d":
            t = torch.nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, padding=m.padding)
        elif name == "Linear":
            t = torch.nn.Linear(m.in_features, m.out_features)
        elif name == "MaxPool2d":
            t = torch.nn.MaxPool2d(2)
        else:
            t = getattr(torch.nn, name)()
        if hasattr(m, "weight"):
            with torch.no_grad():
                t.weight.copy_(torch.from_numpy(m.weight.data.copy()))
                t.bias.copy_(torch.from_numpy(m.bias.data.copy()))
        layers.append(t)
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    loss_fn = torch.nn.CrossEntropyLoss()
    x, y = data()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        opt.zero_grad()
        loss = loss_fn(model(xt), yt)
        loss.backward()
        opt.step()
        return float(loss.item())

    return step


def worker(lib: str, threads: int) -> None:
    """Times one library's step in this fresh process; prints seconds per step."""
    fg.set_num_threads(threads)
    if lib == "ferrograd":
        step, _ = fg_step()
    else:
        torch = try_import_torch()
        torch.set_num_threads(threads)
        step = torch_step(torch)
    print(median_time(step, 9, 0.3))


def check_agreement(torch) -> None:
    a, _ = fg_step()
    b = torch_step(torch)
    for i in range(3):
        la, lb = a(), b()
        assert abs(la - lb) <= 1e-4 * max(1.0, abs(lb)), f"step {i}: ferrograd loss {la} vs torch {lb}"


def profile() -> None:
    step, model = fg_step()
    for _ in range(5):
        step()
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(100):
        step()
    pr.disable()
    print("cProfile of 100 ferrograd LeNet-5 steps:")
    pstats.Stats(pr).sort_stats("tottime").print_stats(20)
    # per layer: forward time, and backward time through that layer's output alone
    x, _ = data()
    h = fg.Tensor._wrap(x)
    print(f"{'layer':<28}{'forward us':>12}{'backward us':>13}")
    for i, layer in enumerate(model.children()):
        inp = fg.Tensor._wrap(h.data.copy()).requires_grad_(True)
        fwd = median_time(lambda: layer(inp), 7, 0.05)
        out = layer(inp)
        g = np.ones(out.shape, dtype=out.data.dtype)

        def bwd():
            o = layer(inp)
            o.backward(fg.Tensor._wrap(g))

        both = median_time(bwd, 7, 0.05)
        print(f"{i:>2} {type(layer).__name__:<25}{fwd * 1e6:>12.1f}{(both - fwd) * 1e6:>13.1f}")
        h = out.detach()
    t = median_time(step, 9, 0.3)
    print(f"whole step: {t * 1e6:.1f} us")


def main() -> None:
    if "--worker" in sys.argv:
        i = sys.argv.index("--worker")
        worker(sys.argv[i + 1], int(sys.argv[i + 2]))
        return
    if "--profile" in sys.argv:
        if "--threads" in sys.argv:
            fg.set_num_threads(int(sys.argv[sys.argv.index("--threads") + 1]))
        profile()
        return
    threads = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else fg.get_num_threads()
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 5
    torch = try_import_torch()
    if torch is not None:
        torch.set_num_threads(threads)
        check_agreement(torch)
    print(f"threads: {threads}, SIMD: {fg.simd_level()}" + (f", torch {torch.__version__}" if torch else "")
          + f", each library in its own process, median of {rounds} alternating rounds")
    print()
    print("| train step | ferrograd ms | PyTorch ms | PyTorch/ferrograd | target |")
    print("|---|---|---|---|---|")
    libs = {"ferrograd": ["--worker", "ferrograd", str(threads)]}
    if torch is not None:
        libs["torch"] = ["--worker", "torch", str(threads)]
    t0 = time.perf_counter()
    r = isolated_medians(__file__, libs, rounds)
    name = "LeNet-5, batch 64, 1x28x28, CE + SGD momentum"
    if torch is None:
        print(f"| {name} | {r['ferrograd'] * 1e3:.2f} | n/a | n/a | 1.5x |")
    else:
        ratio = r["torch"] / r["ferrograd"]
        print(f"| {name} | {r['ferrograd'] * 1e3:.2f} | {r['torch'] * 1e3:.2f} | {ratio:.2f}x | 1.5x {'met' if ratio >= 1.5 else 'MISSED'} |")
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
