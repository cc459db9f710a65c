"""f32 matmul throughput: ferrograd vs NumPy (and PyTorch CPU if installed), one run.

    python benches/bench_matmul.py [--sizes 64 128 ...] [--dtype float32] [--rounds 3]

Each library runs in its own subprocess (OpenBLAS's and PyTorch's worker threads keep
spinning after a call and would steal a core from whoever runs next in the same process);
the subprocesses alternate over several rounds and the table reports, per size, the median
over rounds of each round's median time (7 timed repeats after a warm-up). GFLOPS are
2 n^3 / time. 'Tensor' is ``a @ b`` on ferrograd Tensors (the whole Python path), 'kernel'
the bare binding call ``ferrograd._native.mm``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def worker(lib: str, sizes: list, dtype: str, repeats: int) -> None:
    sys.path.insert(0, HERE)
    from _timing import median_time

    dt = np.dtype(dtype)
    rng = np.random.default_rng(0)
    out = {}
    if lib == "torch":
        import torch

        torch.set_num_threads(int(os.environ.get("FERROGRAD_NUM_THREADS", os.cpu_count() or 1)))
    for n in sizes:
        a = rng.standard_normal((n, n)).astype(dt)
        b = rng.standard_normal((n, n)).astype(dt)
        mt = min(0.2, max(0.02, 2.0 * n**3 / 2e11))
        if lib == "ferrograd":
            import ferrograd as fg
            from ferrograd import _native

            ta, tb = fg.from_numpy(a), fg.from_numpy(b)
            out[n] = {
                "tensor": median_time(lambda: ta @ tb, repeats, mt),
                "kernel": median_time(lambda: _native.mm(a, b), repeats, mt),
            }
        elif lib == "numpy":
            out[n] = {"numpy": median_time(lambda: a @ b, repeats, mt)}
        else:
            import torch

            xa, xb = torch.from_numpy(a), torch.from_numpy(b)
            out[n] = {"torch": median_time(lambda: xa @ xb, repeats, mt)}
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="*", default=[64, 128, 256, 512, 1024, 2048])
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--worker", default=None)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.sizes, args.dtype, args.repeats)
        return
    libs = ["ferrograd", "numpy"]
    try:
        import torch  # noqa: F401

        libs.append("torch")
        tv = torch.__version__
    except Exception:
        tv = None
    import ferrograd as fg

    results: dict = {}
    for _ in range(args.rounds):
        for lib in libs:
            cmd = [sys.executable, __file__, "--worker", lib, "--dtype", args.dtype,
                   "--repeats", str(args.repeats), "--sizes", *map(str, args.sizes)]
            res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            for n, d in res.items():
                for k, v in d.items():
                    results.setdefault(int(n), {}).setdefault(k, []).append(v)
    print(f"# matmul {args.dtype}, {fg.get_num_threads()} threads, simd={fg.simd_level()}, numpy {np.__version__}"
          + (f", torch {tv}" if tv else "") + f", {platform.machine()}, cpus={os.cpu_count()}, "
          f"{args.rounds} rounds x {args.repeats} repeats")
    head = "| N | ferrograd Tensor GFLOPS | ferrograd kernel GFLOPS | NumPy GFLOPS | Tensor/NumPy | kernel/NumPy |"
    sep = "|---|---|---|---|---|---|"
    if tv:
        head += " PyTorch GFLOPS | Tensor/PyTorch |"
        sep += "---|---|"
    print(head)
    print(sep)
    for n in args.sizes:
        r = {k: statistics.median(v) for k, v in results[n].items()}
        fl = 2.0 * n**3 / 1e9
        row = (f"| {n} | {fl / r['tensor']:.1f} | {fl / r['kernel']:.1f} | {fl / r['numpy']:.1f} | "
               f"{r['numpy'] / r['tensor']:.2f}x | {r['numpy'] / r['kernel']:.2f}x |")
        if tv:
            row += f" {fl / r['torch']:.1f} | {r['torch'] / r['tensor']:.2f}x |"
        print(row, flush=True)


if __name__ == "__main__":
    main()
