"""Convolution throughput and peak memory: ferrograd vs PyTorch CPU, one run.

    python benches/bench_conv.py [--rounds 5] [--repeats 7] [--threads 2]

Cases (float32, NCHW): N=8, C=K=64, 56x56; a 3x3 convolution with padding 1 and a 1x1
convolution, each forward only and forward+backward (input, weight and bias gradients).
Both libraries are called through their public layer API (``nn.Conv2d`` on a Tensor that
requires grad), with the same weights. Each library runs in its own subprocess; the
subprocesses alternate over rounds and the table reports the median over rounds of each
round's median time. GFLOPS count 2 N K C kh kw OH OW for the forward and three times that
for forward+backward. Peak memory: the growth of the process's peak RSS (ru_maxrss) over
ten forward+backward steps of the 3x3 case over the resident set after the inputs are
allocated, the layer built and one forward run (the peak mark reset through
/proc/self/clear_refs), in a separate fresh process per library. The step's own outputs
(y, dx, dW: about 13 MiB here) count for both.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
N, C, K, HW = 8, 64, 64, 56


def _flops(ks: int) -> float:
    return 2.0 * N * K * C * ks * ks * HW * HW


def _setup(lib: str, ks: int, threads: int):
    """(forward, forward+backward) closures for one library and kernel size."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C, HW, HW)).astype(np.float32)
    gy = rng.standard_normal((N, K, HW, HW)).astype(np.float32)
    w = (rng.standard_normal((K, C, ks, ks)) * 0.05).astype(np.float32)
    b = (rng.standard_normal(K) * 0.05).astype(np.float32)
    pad = ks // 2
    if lib == "torch":
        import torch

        torch.set_num_threads(threads)
        m = torch.nn.Conv2d(C, K, ks, padding=pad)
        with torch.no_grad():
            m.weight.copy_(torch.from_numpy(w))
            m.bias.copy_(torch.from_numpy(b))
        xt = torch.from_numpy(x).requires_grad_(True)
        gt = torch.from_numpy(gy)

        def fwd():
            with torch.no_grad():
                return m(xt)

        def fwd_bwd():
            m.zero_grad(set_to_none=True)
            xt.grad = None
            m(xt).backward(gt)

        return fwd, fwd_bwd
    import ferrograd as fg
    import ferrograd.nn as nn

    fg.set_num_threads(threads)
    m = nn.Conv2d(C, K, ks, padding=pad)
    m.weight.data[...] = w
    m.bias.data[...] = b
    xt = fg.tensor(x, requires_grad=True)
    gt = fg.tensor(gy)

    def fwd():
        with fg.no_grad():
            return m(xt)

    def fwd_bwd():
        m.zero_grad()
        xt.grad = None
        m(xt).backward(gt)

    return fwd, fwd_bwd


def worker(lib: str, repeats: int, threads: int) -> None:
    sys.path.insert(0, HERE)
    from _timing import median_time

    out = {}
    for ks in (3, 1):
        fwd, fwd_bwd = _setup(lib, ks, threads)
        out[f"{ks}x{ks} forward"] = median_time(fwd, repeats, 0.2)
        out[f"{ks}x{ks} fwd+bwd"] = median_time(fwd_bwd, repeats, 0.3)
    print(json.dumps(out))


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def mem_worker(lib: str, threads: int) -> None:
    fwd, fwd_bwd = _setup(lib, 3, threads)
    fwd()  # both libraries' lazy one-time allocations (thread pools, workspaces) happen here
    try:
        # Reset the peak-RSS mark (Linux >= 4.0) so setup temporaries do not hide the step's peak.
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base = _status_kib("VmRSS")
        for _ in range(10):
            fwd_bwd()
        peak = _status_kib("VmHWM")
    except OSError:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for _ in range(10):
            fwd_bwd()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_growth_mib": (peak - base) / 1024.0}))


def _run(args: list) -> dict:
    cmd = [sys.executable, __file__, *args]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--worker", default=None)
    ap.add_argument("--mem", action="store_true")
    args = ap.parse_args()
    if args.worker:
        if args.mem:
            mem_worker(args.worker, args.threads)
        else:
            worker(args.worker, args.repeats, args.threads)
        return
    try:
        import torch

        tv = torch.__version__
    except Exception:
        print("PyTorch is not installed: nothing to compare against")
        return
    import ferrograd as fg

    libs = ["ferrograd", "torch"]
    load0 = os.getloadavg()
    times: dict = {}
    for _ in range(args.rounds):
        for lib in libs:
            res = _run(["--worker", lib, "--repeats", str(args.repeats), "--threads", str(args.threads)])
            for case, t in res.items():
                times.setdefault(case, {}).setdefault(lib, []).append(t)
    mem: dict = {lib: [] for lib in libs}
    for _ in range(2):
        for lib in libs:
            mem[lib].append(_run(["--worker", lib, "--mem", "--threads", str(args.threads)])["peak_growth_mib"])
    load1 = os.getloadavg()
    print(f"# conv2d float32 N={N} C=K={C} {HW}x{HW}, {args.threads} threads, simd={fg.simd_level()}, "
          f"torch {tv}, {platform.machine()}, cpus={os.cpu_count()}, {args.rounds} rounds x {args.repeats} "
          f"repeats; load average before {load0[0]:.2f}, after {load1[0]:.2f}")
    print("| case | ferrograd ms | ferrograd GFLOPS | PyTorch ms | PyTorch GFLOPS | speed-up vs PyTorch |")
    print("|---|---|---|---|---|---|")
    for case, d in times.items():
        ks = int(case[0])
        fl = _flops(ks) * (3 if "bwd" in case else 1)
        ours, theirs = statistics.median(d["ferrograd"]), statistics.median(d["torch"])
        print(f"| {case} | {ours * 1e3:.2f} | {fl / ours / 1e9:.0f} | {theirs * 1e3:.2f} | "
              f"{fl / theirs / 1e9:.0f} | {theirs / ours:.2f}x |")
    mo, mt = statistics.median(mem["ferrograd"]), statistics.median(mem["torch"])
    print(f"| 3x3 fwd+bwd peak RSS growth | {mo:.1f} MiB | | {mt:.1f} MiB | | "
          f"{(mo / mt if mt > 0 else float('nan')):.2f}x of PyTorch's |")


if __name__ == "__main__":
    main()
