"""Train steps (forward, backward, optimizer step), ferrograd vs PyTorch CPU in the same run.

- MLP 784-256-10 (ReLU, CrossEntropyLoss, Adam lr=1e-3) at batch 64; target: >= 1.5x
  faster than PyTorch.
- XOR net 2-8-1 (tanh hidden, sigmoid output, MSELoss, SGD lr=0.5) at batch 4; target:
  >= 2x faster than PyTorch.

Both libraries start from the same weights and data; one step's losses are checked to
agree. Median of 11 rounds after a warm-up, the two libraries timed in alternating rounds so
that load drifting on a shared machine hits both alike. Same thread count for
both (``--threads N`` sets it). ``--profile`` prints a cProfile of the ferrograd steps.

    python benches/bench_train.py --isolated [--threads N] [--rounds R]   # for RESULTS.md
    python benches/bench_train.py [--threads N] [--profile]                # same process
"""

from __future__ import annotations

import cProfile
import pstats
import sys

import numpy as np

import ferrograd as fg
import ferrograd.nn as nn
import ferrograd.optim as optim
from _timing import median_time, try_import_torch


def interleaved(fn_a, fn_b, repeats: int = 11, min_time: float = 0.1):
    """Median seconds per call of two functions timed in alternating rounds (A, B, A, B,
    ...) after a warm-up, so that drifting load on a shared machine hits both alike."""
    import statistics
    import time

    def calls_for(fn):
        fn()
        n = 1
        while True:
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            if time.perf_counter() - t0 >= min_time:
                return n
            n *= 2

    na, nb = calls_for(fn_a), calls_for(fn_b)
    ta, tb = [], []
    for _ in range(repeats):
        for fn, n, out in ((fn_a, na, ta), (fn_b, nb, tb)):
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            out.append((time.perf_counter() - t0) / n)
    return statistics.median(ta), statistics.median(tb)


def mlp_case():
    fg.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 784)).astype(np.float32)
    y = rng.integers(0, 10, 64).astype(np.int64)
    return "MLP 784-256-10, batch 64, CE + Adam", model, nn.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=1e-3), x, y, "adam", 1e-3


def xor_case():
    fg.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1), nn.Sigmoid())
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    y = np.array([[0], [1], [1], [0]], np.float32)
    return "XOR 2-8-1, batch 4, MSE + SGD", model, nn.MSELoss(), optim.SGD(model.parameters(), lr=0.5), x, y, "sgd", 0.5


def fg_step_fn(model, loss_fn, opt, x, y):
    xt = fg.Tensor._wrap(x)
    yt = fg.Tensor._wrap(y)

    def step():
        opt.zero_grad()
        loss = loss_fn(model(xt), yt)
        loss.backward()
        opt.step()
        return loss

    return step


def torch_twin(torch, model, kind, x, y, lr):
    """The same network in PyTorch, initialised with ferrograd's weights."""
    layers = []
    for m in model.children():
        name = type(m).__name__
        if name == "Linear":
            lin = torch.nn.Linear(m.weight.shape[1], m.weight.shape[0])
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(m.weight.data.copy()))
                lin.bias.copy_(torch.from_numpy(m.bias.data.copy()))
            layers.append(lin)
        else:
            layers.append(getattr(torch.nn, name)())
    tm = torch.nn.Sequential(*layers)
    if kind == "adam":
        opt = torch.optim.Adam(tm.parameters(), lr=lr)
        loss_fn = torch.nn.CrossEntropyLoss()
    else:
        opt = torch.optim.SGD(tm.parameters(), lr=lr)
        loss_fn = torch.nn.MSELoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        opt.zero_grad()
        loss = loss_fn(tm(xt), yt)
        loss.backward()
        opt.step()
        return loss

    return step


def worker(lib: str, case: str, threads: int) -> None:
    """Times one library's train step in this (fresh) process; prints seconds per step."""
    fg.set_num_threads(threads)
    name, model, loss_fn, opt, x, y, kind, lr = (mlp_case if case == "mlp" else xor_case)()
    if lib == "ferrograd":
        step = fg_step_fn(model, loss_fn, opt, x, y)
    else:
        torch = try_import_torch()
        torch.set_num_threads(threads)
        step = torch_twin(torch, model, kind, x, y, lr)
    print(median_time(step, 9, 0.2))


def main() -> None:
    if "--worker" in sys.argv:
        i = sys.argv.index("--worker")
        worker(sys.argv[i + 1], sys.argv[i + 2], int(sys.argv[i + 3]))
        return
    if "--isolated" in sys.argv:
        main_isolated()
        return
    profile = "--profile" in sys.argv
    if "--threads" in sys.argv:
        fg.set_num_threads(int(sys.argv[sys.argv.index("--threads") + 1]))
    torch = try_import_torch()
    if torch is not None:
        torch.set_num_threads(fg.get_num_threads())
    print(f"threads: {fg.get_num_threads()}, SIMD: {fg.simd_level()}" + (f", torch {torch.__version__}" if torch else ""))
    print()
    print("| train step | ferrograd us | PyTorch us | PyTorch/ferrograd | target |")
    print("|---|---|---|---|---|")
    for make, target in ((mlp_case, 1.5), (xor_case, 2.0)):
        name, model, loss_fn, opt, x, y, kind, lr = make()
        step = fg_step_fn(model, loss_fn, opt, x, y)
        tstep = torch_twin(torch, model, kind, x, y, lr) if torch is not None else None
        if tstep is not None:  # first steps from the same weights agree
            l_fg, l_t = float(step().data), float(tstep().item())
            assert abs(l_fg - l_t) <= 1e-4 * max(1.0, abs(l_t)), (name, l_fg, l_t)
        if tstep is None:
            t_fg = median_time(step, 9, 0.2)
            print(f"| {name} | {t_fg * 1e6:.1f} | n/a | n/a | {target}x |")
            continue
        t_fg, t_t = interleaved(step, tstep)
        ratio = t_t / t_fg
        print(f"| {name} | {t_fg * 1e6:.1f} | {t_t * 1e6:.1f} | {ratio:.2f}x | {target}x {'met' if ratio >= target else 'MISSED'} |")
        if profile:
            pr = cProfile.Profile()
            pr.enable()
            for _ in range(2000 if kind == "sgd" else 300):
                step()
            pr.disable()
            print(f"\ncProfile of {name} (ferrograd):")
            pstats.Stats(pr).sort_stats("tottime").print_stats(18)


def main_isolated() -> None:
    """Each library in its own process, alternating over rounds (no cross-library thread
    interference); the default mode for benches/RESULTS.md."""
    from _timing import isolated_medians

    threads = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else fg.get_num_threads()
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 5
    torch = try_import_torch()
    print(f"threads: {threads}, SIMD: {fg.simd_level()}" + (f", torch {torch.__version__}" if torch else "")
          + f", each library in its own process, median of {rounds} alternating rounds")
    print()
    print("| train step | ferrograd us | PyTorch us | PyTorch/ferrograd | target |")
    print("|---|---|---|---|---|")
    for case, target in (("mlp", 1.5), ("xor", 2.0)):
        name = (mlp_case if case == "mlp" else xor_case)()[0]
        libs = {"ferrograd": ["--worker", "ferrograd", case, str(threads)]}
        if torch is not None:
            libs["torch"] = ["--worker", "torch", case, str(threads)]
        r = isolated_medians(__file__, libs, rounds)
        if torch is None:
            print(f"| {name} | {r['ferrograd'] * 1e6:.1f} | n/a | n/a | {target}x |")
            continue
        ratio = r["torch"] / r["ferrograd"]
        print(f"| {name} | {r['ferrograd'] * 1e6:.1f} | {r['torch'] * 1e6:.1f} | {ratio:.2f}x | {target}x {'met' if ratio >= target else 'MISSED'} |")


if __name__ == "__main__":
    main()
