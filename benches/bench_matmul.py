"""f32 matmul throughput: ferrograd vs NumPy (and PyTorch CPU if installed), one run.

    python benches/bench_matmul.py [--sizes 64 128 ...] [--dtype float32]

Prints a markdown table of GFLOPS (2 n^3 / median time) and ratios.
"""

from __future__ import annotations

import argparse
import os
import platform

import numpy as np

import ferrograd as fg
from ferrograd import _native
from _timing import median_time, try_import_torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="*", default=[64, 128, 256, 512, 1024, 2048])
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    dt = np.dtype(args.dtype)
    torch = try_import_torch()
    if torch is not None:
        torch.set_num_threads(fg.get_num_threads())
    rng = np.random.default_rng(0)
    print(f"# matmul {dt}, {fg.get_num_threads()} threads, simd={fg.simd_level()}, numpy {np.__version__}"
          + (f", torch {torch.__version__} ({torch.get_num_threads()} threads)" if torch else "")
          + f", {platform.processor() or platform.machine()}, cpus={os.cpu_count()}")
    head = "| N | ferrograd GFLOPS | NumPy GFLOPS | ferrograd/NumPy |"
    sep = "|---|---|---|---|"
    if torch:
        head += " PyTorch GFLOPS | ferrograd/PyTorch |"
        sep += "---|---|"
    print(head)
    print(sep)
    for n in args.sizes:
        a = rng.standard_normal((n, n)).astype(dt)
        b = rng.standard_normal((n, n)).astype(dt)
        a3, b3 = a[None], b[None]
        c3 = np.empty((1, n, n), dt)
        ta, tb = fg.from_numpy(a), fg.from_numpy(b)
        flops = 2.0 * n**3
        mt = min(0.2, max(0.02, flops / 2e11))

        def f_fg():
            return ta @ tb

        t_fg = median_time(f_fg, args.repeats, mt)
        t_raw = median_time(lambda: _native.gemm(False, False, 1.0, a3, b3, 0.0, c3), args.repeats, mt)
        t_np = median_time(lambda: a @ b, args.repeats, mt)
        row = f"| {n} | {flops / t_fg / 1e9:.1f} (kernel {flops / t_raw / 1e9:.1f}) | {flops / t_np / 1e9:.1f} | {t_np / t_fg:.2f}x |"
        if torch:
            xa, xb = torch.from_numpy(a), torch.from_numpy(b)
            t_t = median_time(lambda: xa @ xb, args.repeats, mt)
            row += f" {flops / t_t / 1e9:.1f} | {t_t / t_fg:.2f}x |"
        print(row, flush=True)


if __name__ == "__main__":
    main()
