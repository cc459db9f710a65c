"""Timing helpers for the benchmarks: median of repeated runs after a warm-up."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def median_time(fn: Callable[[], object], repeats: int = 7, min_time: float = 0.05) -> float:
    """Median seconds per call of ``fn`` over ``repeats`` runs; each run loops enough
    calls to last at least ``min_time`` (calibrated after a warm-up)."""
    fn()
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_time:
            break
        n *= 2
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - t0) / n)
    return statistics.median(times)


def try_import_torch():
    try:
        import torch  # noqa: F401

        return torch
    except Exception:  # pragma: no cover - optional peer
        return None


def isolated_medians(script: str, worker_args: dict, rounds: int = 3) -> dict:
    """Runs ``python script *args`` once per library and round, alternating libraries
    (A, B, A, B, ...), each in a fresh process so that no library's spinning worker
    threads steal cores from another's; each run prints one float (seconds per call).
    Returns the median over rounds per library."""
    import subprocess
    import sys

    times: dict = {lib: [] for lib in worker_args}
    for _ in range(rounds):
        for lib, args in worker_args.items():
            out = subprocess.run([sys.executable, script, *args], check=True, capture_output=True, text=True)
            times[lib].append(float(out.stdout.strip().splitlines()[-1]))
    return {lib: statistics.median(v) for lib, v in times.items()}
