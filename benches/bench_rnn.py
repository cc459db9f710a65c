"""Recurrent layers, ferrograd vs PyTorch CPU in the same run.

(a) LSTM train step: sequence 50, batch 32, input 16, hidden 128, one layer (time-major),
    then Linear(128, 1) on the LAST time step's output, MSELoss, Adam(lr=1e-3).
    Target: ferrograd >= 1.5x faster than PyTorch.
(b) the same with a GRU. Target >= 1.5x.
(c) inference (no_grad) of a 2-layer LSTM, input 256, hidden 256, sequence 100, batch 64.
    Target >= 1.2x.

Both libraries start from the same weights and data (the first losses / outputs are
checked to agree). Each library runs in its own fresh process, alternating over
``--rounds`` rounds, median of the per-process medians (see benches/_timing.py), with the
same thread count (``--threads N``, default: ferrograd's). ``--cpu-time`` measures instead
the CPU time of the calling thread with ONE thread per library (time.thread_time), which
other processes on a loaded machine barely disturb (wall-clock ratios with 2 threads are
meaningless at a load average far above the core count). ``--profile`` times the parts of
the ferrograd steps in this process.

    python benches/bench_rnn.py [--threads N] [--rounds R] [--only lstm_train,gru_train,lstm_infer]
    python benches/bench_rnn.py --cpu-time [--rounds R]
    python benches/bench_rnn.py --profile
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

import ferrograd as fg
import ferrograd.nn as nn
import ferrograd.optim as optim
from _timing import isolated_medians, median_time, try_import_torch

SEQ, BATCH, INPUT, HIDDEN = 50, 32, 16, 128
INF_SEQ, INF_BATCH, INF_SIZE, INF_LAYERS = 100, 64, 256, 2
LR = 1e-3

CASES = {
    "lstm_train": ("LSTM train step: T=50, B=32, I=16, H=128, Linear on last output, MSE, Adam", 1.5),
    "gru_train": ("GRU train step: T=50, B=32, I=16, H=128, Linear on last output, MSE, Adam", 1.5),
    "lstm_infer": ("LSTM inference, 2 layers, I=H=256, T=100, B=64, no_grad", 1.2),
}


def train_data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((SEQ, BATCH, INPUT)).astype(np.float32)
    y = rng.standard_normal((BATCH, 1)).astype(np.float32)
    return x, y


def fg_models(kind: str):
    fg.manual_seed(0)
    if kind == "lstm_infer":
        return nn.LSTM(INF_SIZE, INF_SIZE, num_layers=INF_LAYERS), None
    rnn = (nn.LSTM if kind == "lstm_train" else nn.GRU)(INPUT, HIDDEN)
    return rnn, nn.Linear(HIDDEN, 1)


def fg_case(kind: str):
    rnn, head = fg_models(kind)
    if kind == "lstm_infer":
        x = fg.Tensor._wrap(np.random.default_rng(1).standard_normal((INF_SEQ, INF_BATCH, INF_SIZE)).astype(np.float32))

        def infer():
            with fg.no_grad():
                out, _ = rnn(x)
            return float(out.data[-1, 0, 0])

        return infer
    params = list(rnn.parameters()) + list(head.parameters())
    opt = optim.Adam(params, lr=LR)
    loss_fn = nn.MSELoss()
    x, y = train_data()
    xt, yt = fg.Tensor._wrap(x), fg.Tensor._wrap(y)

    def step():
        opt.zero_grad()
        out, _ = rnn(xt)
        loss = loss_fn(head(out[-1]), yt)
        loss.backward()
        opt.step()
        return float(loss.data)

    return step


def torch_case(torch, kind: str):
    src_rnn, src_head = fg_models(kind)
    if kind == "lstm_infer":
        rnn = torch.nn.LSTM(INF_SIZE, INF_SIZE, num_layers=INF_LAYERS)
    else:
        rnn = (torch.nn.LSTM if kind == "lstm_train" else torch.nn.GRU)(INPUT, HIDDEN)
    rnn.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in src_rnn.state_dict().items()})
    if kind == "lstm_infer":
        x = torch.from_numpy(np.random.default_rng(1).standard_normal((INF_SEQ, INF_BATCH, INF_SIZE)).astype(np.float32))

        def infer():
            with torch.no_grad():
                out, _ = rnn(x)
            return float(out[-1, 0, 0])

        return infer
    head = torch.nn.Linear(HIDDEN, 1)
    head.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in src_head.state_dict().items()})
    opt = torch.optim.Adam(list(rnn.parameters()) + list(head.parameters()), lr=LR)
    loss_fn = torch.nn.MSELoss()
    x, y = train_data()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        opt.zero_grad()
        out, _ = rnn(xt)
        loss = loss_fn(head(out[-1]), yt)
        loss.backward()
        opt.step()
        return float(loss.item())

    return step


def cpu_median(fn, repeats: int) -> float:
    """Median CPU seconds of the calling thread per call (after two warm-up calls)."""
    fn()
    fn()
    ts = []
    for _ in range(repeats):
        t0 = time.thread_time()
        fn()
        ts.append(time.thread_time() - t0)
    ts.sort()
    return ts[len(ts) // 2]


def worker(lib: str, kind: str, threads: int, cpu: bool = False) -> None:
    """Times one library's case in this fresh process; prints seconds per call (CPU
    seconds of this thread with ``cpu``, which needs threads == 1)."""
    fg.set_num_threads(threads)
    if lib == "ferrograd":
        fn = fg_case(kind)
    else:
        torch = try_import_torch()
        torch.set_num_threads(threads)
        fn = torch_case(torch, kind)
    print(cpu_median(fn, 9 if kind == "lstm_infer" else 31) if cpu else median_time(fn, 9, 0.3))


def check_agreement(torch) -> None:
    for kind in CASES:
        a, b = fg_case(kind), torch_case(torch, kind)
        for i in range(3 if kind != "lstm_infer" else 1):
            la, lb = a(), b()
            assert abs(la - lb) <= 1e-4 * max(1.0, abs(lb)), f"{kind} call {i}: ferrograd {la} vs torch {lb}"


def profile() -> None:
    """Times the parts of the ferrograd train steps and the inference."""
    for kind in ("lstm_train", "gru_train"):
        rnn, head = fg_models(kind)
        x, y = train_data()
        xt = fg.Tensor._wrap(x)
        fwd = median_time(lambda: rnn(xt), 9, 0.2)
        with fg.no_grad():
            fwd_ng = median_time(lambda: rnn(xt), 9, 0.2)

        def fb():
            out, _ = rnn(xt)
            out[-1].sum().backward()

        both = median_time(fb, 9, 0.2)
        step = fg_case(kind)
        total = median_time(step, 9, 0.3)
        print(f"{kind}: forward (saving) {fwd * 1e3:.3f} ms, forward no_grad {fwd_ng * 1e3:.3f} ms, "
              f"backward {(both - fwd) * 1e3:.3f} ms, whole step {total * 1e3:.3f} ms")
    infer = fg_case("lstm_infer")
    print(f"lstm_infer: {median_time(infer, 9, 0.3) * 1e3:.3f} ms")


def arg(name: str, default):
    return type(default)(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default


def main() -> None:
    if "--worker" in sys.argv:
        i = sys.argv.index("--worker")
        worker(sys.argv[i + 1], sys.argv[i + 2], int(sys.argv[i + 3]), "--cpu" in sys.argv)
        return
    if "--profile" in sys.argv:
        if "--threads" in sys.argv:
            fg.set_num_threads(arg("--threads", 1))
        profile()
        return
    cpu = "--cpu-time" in sys.argv
    threads = 1 if cpu else arg("--threads", fg.get_num_threads())
    rounds = arg("--rounds", 5)
    only = arg("--only", ",".join(CASES)).split(",")
    torch = try_import_torch()
    if torch is not None:
        torch.set_num_threads(threads)
        check_agreement(torch)
    load = os.getloadavg()
    print(f"threads: {threads}, SIMD: {fg.simd_level()}" + (f", torch {torch.__version__}" if torch else "")
          + f", each library in its own process, median of {rounds} alternating rounds"
          + (", CPU time of the calling thread" if cpu else ", wall time") + ", "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print()
    print("| case | ferrograd ms | PyTorch ms | PyTorch/ferrograd | target |")
    print("|---|---|---|---|---|")
    t0 = time.perf_counter()
    for kind in only:
        name, target = CASES[kind]
        extra = ["--cpu"] if cpu else []
        libs = {"ferrograd": ["--worker", "ferrograd", kind, str(threads)] + extra}
        if torch is not None:
            libs["torch"] = ["--worker", "torch", kind, str(threads)] + extra
        r = isolated_medians(__file__, libs, rounds)
        if torch is None:
            print(f"| {name} | {r['ferrograd'] * 1e3:.2f} | n/a | n/a | {target}x |")
        else:
            ratio = r["torch"] / r["ferrograd"]
            verdict = "met" if ratio >= target else "MISSED"
            print(f"| {name} | {r['ferrograd'] * 1e3:.2f} | {r['torch'] * 1e3:.2f} | {ratio:.2f}x | {target}x {verdict} |")
    load = os.getloadavg()
    print(f"\n({time.perf_counter() - t0:.0f} s; load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})")


if __name__ == "__main__":
    main()
