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
