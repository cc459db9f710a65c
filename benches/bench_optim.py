"""Optimizer step benchmark: ferrograd vs PyTorch CPU, and the memory-bandwidth bound.

Main case: one Adam step over ONE 10M-parameter float32 tensor. An Adam step moves
param (read + write), grad (read), exp_avg (read + write), exp_avg_sq (read + write):
7 x 4 B x 10M = 280 MB, so its lower bound is 280 MB / (memory bandwidth); the bandwidth
is measured in the same run with ``np.copyto`` of a 400 MB array (800 MB moved: read +
write). Also: a small group (the MLP 784-256-10's four tensors) to show per-call overhead.

Timings are medians of >= 5 runs after a warm-up; the contenders are measured in
interleaved rounds and the median over rounds is reported (the machine is shared).

Run: ``python benches/bench_optim.py [--rounds 5] [--n 10000000]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from typing import Callable, Dict, List

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _timing import median_time, try_import_torch  # noqa: E402

import ferrograd as fg  # noqa: E402
import ferrograd.optim as optim  # noqa: E402


def load() -> str:
    try:
        return "load average %.2f %.2f %.2f" % os.getloadavg()
    except OSError:  # pragma: no cover
        return "load average n/a"


_A = _B = None


def copy_bandwidth(threads: int = 1, nbytes: int = 400_000_000, repeats: int = 7, inplace: bool = False) -> float:
    """Bytes per second of ``np.copyto`` on ``nbytes`` (counted read + write), done by
    ``threads`` Python threads on equal slices (NumPy releases the GIL while copying).

    ``inplace``: ``np.multiply(a, 1, out=a)`` instead, which reads and writes the same
    lines as Adam's buffers do (a copy also reads every destination line before writing
    it, traffic it does not count)."""
    global _A, _B
    if _A is None:
        _A = np.ones(nbytes // 4, np.float32)
        _B = np.empty_like(_A)
    a, b = _A, _B
    h = len(a) // threads
    if inplace:
        one = np.float32(1.0)
        parts = [(a[i * h:(i + 1) * h], one, a[i * h:(i + 1) * h]) for i in range(threads)]
        target = np.multiply
    else:
        parts = [(b[i * h:(i + 1) * h], a[i * h:(i + 1) * h]) for i in range(threads)]
        target = np.copyto

    def once() -> float:
        ts = [threading.Thread(target=target, args=pa) for pa in parts]
        t0 = time.perf_counter()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return time.perf_counter() - t0

    once()
    return 2 * a.nbytes / statistics.median([once() for _ in range(repeats)])


def ferro_adam(shapes, rng) -> Callable[[], None]:
    ps = []
    for s in shapes:
        p = fg.tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True)
        p.grad = fg.tensor(rng.standard_normal(s).astype(np.float32))
        ps.append(p)
    opt = optim.Adam(ps, lr=1e-3)
    return opt.step


def torch_adam(torch, shapes, rng, **kw) -> Callable[[], None]:
    ps = []
    for s in shapes:
        p = torch.nn.Parameter(torch.from_numpy(rng.standard_normal(s).astype(np.float32)))
        p.grad = torch.from_numpy(rng.standard_normal(s).astype(np.float32))
        ps.append(p)
    opt = torch.optim.Adam(ps, lr=1e-3, **kw)
    opt.step()
    return opt.step


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=10_000_000)
    args = ap.parse_args()
    torch = try_import_torch()
    rng = np.random.default_rng(0)
    print(f"ferrograd {fg.__version__}, SIMD {fg.simd_level()}, {fg.get_num_threads()} threads; "
          f"torch {torch.__version__ if torch else 'absent'} ({torch.get_num_threads() if torch else 0} threads)")
    print(load())

    big = [(args.n,)]
    mlp = [(256, 784), (256,), (10, 256), (10,)]
    contenders: Dict[str, Dict[str, Callable[[], None]]] = {"big": {}, "mlp": {}}
    for key, shapes in (("big", big), ("mlp", mlp)):
        contenders[key]["ferrograd Adam"] = ferro_adam(shapes, rng)
        if torch is not None:
            contenders[key]["torch Adam (default)"] = torch_adam(torch, shapes, rng)
            contenders[key]["torch Adam (foreach=True)"] = torch_adam(torch, shapes, rng, foreach=True)
            try:
                contenders[key]["torch Adam (fused=True)"] = torch_adam(torch, shapes, rng, fused=True)
            except Exception as e:  # pragma: no cover - depends on the torch build
                print(f"torch fused Adam unavailable on CPU: {e}")

    times: Dict[str, Dict[str, List[float]]] = {k: {n: [] for n in v} for k, v in contenders.items()}
    bws: List[float] = []
    bws2: List[float] = []
    bwsi: List[float] = []
    for r in range(args.rounds):
        bws.append(copy_bandwidth(1))
        bws2.append(copy_bandwidth(2))
        bwsi.append(copy_bandwidth(2, inplace=True))
        for key in ("big", "mlp"):
            for name, fn in contenders[key].items():
                times[key][name].append(median_time(fn, repeats=5, min_time=0.05 if key == "big" else 0.02))
        print(f"round {r + 1}/{args.rounds}: {load()}", flush=True)

    bw1 = statistics.median(bws)
    bw2 = statistics.median(bws2)
    bwi = statistics.median(bwsi)
    bw = max(bw1, bw2, bwi)
    moved = 7 * 4 * args.n
    bound = moved / bw
    med = {k: {n: statistics.median(v) for n, v in d.items()} for k, d in times.items()}
    ours = med["big"]["ferrograd Adam"]

    print()
    print(f"Memory bandwidth (np.copyto 400 MB, read+write): 1 thread {bw1 / 1e9:.1f} GB/s "
          f"(rounds: {', '.join(f'{b / 1e9:.1f}' for b in bws)}), 2 threads {bw2 / 1e9:.1f} GB/s "
          f"(rounds: {', '.join(f'{b / 1e9:.1f}' for b in bws2)}); in-place scale, 2 threads "
          f"{bwi / 1e9:.1f} GB/s (rounds: {', '.join(f'{b / 1e9:.1f}' for b in bwsi)}); "
          f"the bound uses the best, {bw / 1e9:.1f} GB/s")
    print(f"Adam step over one {args.n / 1e6:g}M-parameter float32 tensor: {moved / 1e6:.0f} MB moved, "
          f"bound {bound * 1e3:.2f} ms")
    print()
    print("| Adam step, 1 x %gM f32 | median ms | vs ferrograd | x bandwidth bound | effective GB/s |" % (args.n / 1e6))
    print("|---|---:|---:|---:|---:|")
    for name, t in med["big"].items():
        print(f"| {name} | {t * 1e3:.2f} | {t / ours:.2f}x | {t / bound:.2f} | {moved / t / 1e9:.1f} |")
    print(f"| bandwidth bound (280 MB at {bw / 1e9:.1f} GB/s) | {bound * 1e3:.2f} | | 1.00 | {bw / 1e9:.1f} |")
    print()
    ours_mlp = med["mlp"]["ferrograd Adam"]
    print("| Adam step, MLP 784-256-10 (4 tensors, 203,530 params) | median us | vs ferrograd |")
    print("|---|---:|---:|")
    for name, t in med["mlp"].items():
        print(f"| {name} | {t * 1e6:.1f} | {t / ours_mlp:.2f}x |")
    print()
    print(load())


if __name__ == "__main__":
    main()
