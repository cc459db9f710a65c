"""Time to solve CartPole-v1: ferrograd's A2C and DQN beside Stable-Baselines3's (PyTorch)
with matched hyper-parameters, in the same run. Goal: at least 2x faster.

"Solved" is defined identically for both libraries (the same code in this file): every
``--check-every`` environment steps (a callback inside ``learn``) the agent plays 20
greedy episodes on CartPole-v1 seeded 10,000 (``predict(obs, deterministic=True)``); when
their mean return is >= 475 a 100-episode evaluation (seeded 20,000) confirms it, and
learning stops when that is >= 475 too. Reported per run: environment steps to solve and
wall-clock seconds of learning to solve with the evaluations' time taken out (also the
total with them). A run that does not solve within the budget counts as "not solved".

Matched settings (rl-zoo's tuned CartPole-v1 hyper-parameters, SB3 names):
- A2C: 8 environments (SB3 DummyVecEnv / gymnasium SyncVectorEnv), n_steps 5, lr 7e-4,
  RMSprop (alpha 0.99, eps 1e-5), gamma 0.99, gae_lambda 1, ent_coef 0, vf_coef 0.5,
  max_grad_norm 0.5, separate 64-64 tanh actor and critic, orthogonal init; budget 300k.
- DQN: one environment, 256-256 ReLU Q-network, lr 2.3e-3 (Adam), batch 64, buffer 100k,
  learning_starts 1000, train_freq 256, gradient_steps 128, target_update_interval 10,
  exploration 1 -> 0.04 over 16 % of a 50k budget (rl-zoo's n_timesteps), Huber loss,
  max_grad_norm 10; budget 50k.

Because the two libraries draw different random numbers, their learning curves differ and
the steps needed to solve vary a lot from seed to seed (DQN especially). So a second table
measures the libraries' speed on identical work: ``learn`` for a fixed number of steps
(A2C 20,000 steps = 500 updates; DQN 9,192 steps = 1,000 random steps then 32 rounds of
128 gradient steps), no callback, median of ``--rounds`` fresh processes per library.

Each (library, algorithm, seed) runs in a fresh process, the libraries alternating, with
the same thread count (``torch.set_num_threads`` / ``ferrograd.set_num_threads``,
``--threads``, default 1: these networks are far too small for a second thread to help).
Learning curves differ between the libraries (different random streams), so the figures
to compare are the time per environment step and the time to solve; both are printed.

    python benches/bench_rl.py [--algos a2c dqn] [--seeds 0 1 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

BAR = 475.0
BUDGET = {"a2c": 300_000, "dqn": 50_000}


def evaluate(model, env, n: int, seed: int) -> float:
    """Mean return of ``n`` greedy episodes (first reset seeded ``seed``); the same code
    for both libraries."""
    returns = []
    obs, _ = env.reset(seed=seed)
    ret = 0.0
    while len(returns) < n:
        action, _ = model.predict(obs, deterministic=True)
        obs, r, term, trunc, _ = env.step(int(action))
        ret += float(r)
        if term or trunc:
            returns.append(ret)
            ret = 0.0
            obs, _ = env.reset()
    return sum(returns) / n


class Solver:
    """The shared stopping rule: quick 20-episode check, then the 100-episode confirmation."""

    def __init__(self, model, check_every: int) -> None:
        import gymnasium as gym

        self.model = model
        self.env = gym.make("CartPole-v1")
        self.check_every = check_every
        self.next = check_every
        self.eval_time = 0.0
        self.solved_at = None
        self.final = None

    def step(self, num_timesteps: int) -> bool:
        """False when solved (stop learning)."""
        if num_timesteps < self.next:
            return True
        self.next += self.check_every
        t = time.perf_counter()
        quick = evaluate(self.model, self.env, 20, 10_000)
        if quick >= BAR:
            self.final = evaluate(self.model, self.env, 100, 20_000)
            if self.final >= BAR:
                self.solved_at = num_timesteps
        self.eval_time += time.perf_counter() - t
        return self.solved_at is None


def make_ferrograd(algo: str, seed: int):
    import gymnasium as gym

    from ferrograd.rl import A2C, DQN

    if algo == "a2c":
        env = gym.make_vec("CartPole-v1", num_envs=8, vectorization_mode="sync")
        return A2C("MlpPolicy", env, learning_rate=7e-4, n_steps=5, gamma=0.99, gae_lambda=1.0, ent_coef=0.0, vf_coef=0.5,
                   max_grad_norm=0.5, rms_prop_eps=1e-5, use_rms_prop=True, normalize_advantage=False,
                   policy_kwargs=dict(net_arch=dict(pi=[64, 64], vf=[64, 64]), activation_fn="tanh", ortho_init=True), seed=seed)
    env = gym.make("CartPole-v1")
    return DQN("MlpPolicy", env, learning_rate=2.3e-3, buffer_size=100_000, learning_starts=1000, batch_size=64, tau=1.0,
               gamma=0.99, train_freq=256, gradient_steps=128, target_update_interval=10, exploration_fraction=0.16,
               exploration_initial_eps=1.0, exploration_final_eps=0.04, max_grad_norm=10.0,
               policy_kwargs=dict(net_arch=[256, 256], activation_fn="relu"), seed=seed)


def make_sb3(algo: str, seed: int):
    import gymnasium as gym
    import torch.nn as tnn
    from stable_baselines3 import A2C, DQN
    from stable_baselines3.common.env_util import make_vec_env

    if algo == "a2c":
        env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
        return A2C("MlpPolicy", env, learning_rate=7e-4, n_steps=5, gamma=0.99, gae_lambda=1.0, ent_coef=0.0, vf_coef=0.5,
                   max_grad_norm=0.5, rms_prop_eps=1e-5, use_rms_prop=True, normalize_advantage=False,
                   policy_kwargs=dict(net_arch=dict(pi=[64, 64], vf=[64, 64]), activation_fn=tnn.Tanh, ortho_init=True),
                   seed=seed, device="cpu")
    env = gym.make("CartPole-v1")
    return DQN("MlpPolicy", env, learning_rate=2.3e-3, buffer_size=100_000, learning_starts=1000, batch_size=64, tau=1.0,
               gamma=0.99, train_freq=256, gradient_steps=128, target_update_interval=10, exploration_fraction=0.16,
               exploration_initial_eps=1.0, exploration_final_eps=0.04, max_grad_norm=10.0,
               policy_kwargs=dict(net_arch=[256, 256], activation_fn=tnn.ReLU), seed=seed, device="cpu")


FIXED = {"a2c": 20_000, "dqn": 9_192}


def fixed_worker(lib: str, algo: str, threads: int) -> float:
    """Seconds to ``learn`` FIXED[algo] steps (after building the agent), no callback."""
    if lib == "sb3":
        import torch

        torch.set_num_threads(threads)
        model = make_sb3(algo, 0)
    else:
        import ferrograd as fg

        fg.set_num_threads(threads)
        model = make_ferrograd(algo, 0)
    t0 = time.perf_counter()
    model.learn(total_timesteps=FIXED[algo], progress_bar=False)
    return time.perf_counter() - t0


def worker(lib: str, algo: str, seed: int, threads: int, check_every: int) -> dict:
    if lib == "sb3":
        import torch

        torch.set_num_threads(threads)
        model = make_sb3(algo, seed)
        solver = Solver(model, check_every)
        from stable_baselines3.common.callbacks import BaseCallback

        class CB(BaseCallback):
            def _on_step(self) -> bool:
                return solver.step(self.model.num_timesteps)

        callback = CB()
    else:
        import ferrograd as fg

        fg.set_num_threads(threads)
        model = make_ferrograd(algo, seed)
        solver = Solver(model, check_every)

        def callback(local_vars: dict) -> bool:
            return solver.step(model.num_timesteps)

    t0 = time.perf_counter()
    model.learn(total_timesteps=BUDGET[algo], callback=callback, progress_bar=False)
    total = time.perf_counter() - t0
    learn_time = total - solver.eval_time
    return dict(lib=lib, algo=algo, seed=seed, solved=solver.solved_at is not None, steps=int(model.num_timesteps),
                solved_at=solver.solved_at, learn_s=learn_time, total_s=total, final=solver.final,
                us_per_step=1e6 * learn_time / max(int(model.num_timesteps), 1))


def main() -> None:
    p = argparse.ArgumentParser(description="CartPole-v1 time to solve, ferrograd vs Stable-Baselines3")
    p.add_argument("--algos", nargs="+", default=["a2c", "dqn"], choices=["a2c", "dqn"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--check-every", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=5, help="processes per library for the fixed-work table")
    p.add_argument("--skip-solve", action="store_true", help="only the fixed-work table")
    p.add_argument("--worker", nargs=3, metavar=("LIB", "ALGO", "SEED"), help=argparse.SUPPRESS)
    p.add_argument("--fixed-worker", nargs=2, metavar=("LIB", "ALGO"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.fixed_worker:
        print(fixed_worker(args.fixed_worker[0], args.fixed_worker[1], args.threads))
        return
    if args.worker:
        lib, algo, seed = args.worker
        print(json.dumps(worker(lib, algo, int(seed), args.threads, args.check_every)))
        return
    import platform

    print(f"# CartPole-v1 time to solve (mean return >= {BAR:.0f} over 100 episodes); threads {args.threads}, "
          f"check every {args.check_every} steps; load average before {os.getloadavg()[0]:.2f}; {platform.processor() or platform.machine()}")
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    from _timing import isolated_medians

    print()
    print(f"Fixed work (median of {args.rounds} processes per library, alternating):")
    print()
    print("| algorithm | work | ferrograd s | SB3 (PyTorch) s | SB3 / ferrograd |")
    print("|---|---|---:|---:|---:|")
    for algo in args.algos:
        common = ["--threads", str(args.threads)]
        med = isolated_medians(os.path.abspath(__file__), {
            "ferrograd": ["--fixed-worker", "ferrograd", algo, *common],
            "sb3": ["--fixed-worker", "sb3", algo, *common],
        }, rounds=args.rounds)
        work = "20,000 steps, 500 updates" if algo == "a2c" else "9,192 steps, 4,096 gradient steps"
        print(f"| {algo.upper()} | {work} | {med['ferrograd']:.2f} | {med['sb3']:.2f} | {med['sb3'] / med['ferrograd']:.2f}x |", flush=True)
    if args.skip_solve:
        print(f"\nload average after: {os.getloadavg()[0]:.2f}")
        return
    print()
    rows = []
    for algo in args.algos:
        for seed in args.seeds:
            for lib in ("ferrograd", "sb3"):
                cmd = [sys.executable, os.path.abspath(__file__), "--worker", lib, algo, str(seed),
                       "--threads", str(args.threads), "--check-every", str(args.check_every)]
                out = subprocess.run(cmd, check=True, capture_output=True, text=True)
                r = json.loads(out.stdout.strip().splitlines()[-1])
                rows.append(r)
                print(f"  {algo} seed {seed} {lib:9s}: solved={r['solved']} at {r['solved_at']} steps, learn {r['learn_s']:.1f} s "
                      f"(total {r['total_s']:.1f} s), {r['us_per_step']:.1f} us/step", flush=True)
    print()
    print("| algorithm | seed | library | solved at (steps) | learning time to solve (s) | total incl. evaluations (s) | us per env step | SB3 / ferrograd time |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for algo in args.algos:
        ratios_t, ratios_s = [], []
        for seed in args.seeds:
            pair = {r["lib"]: r for r in rows if r["algo"] == algo and r["seed"] == seed}
            f, s = pair["ferrograd"], pair["sb3"]
            both = f["solved"] and s["solved"]
            ratio = s["learn_s"] / f["learn_s"] if both else float("nan")
            rs = s["us_per_step"] / f["us_per_step"]
            ratios_s.append(rs)
            if both:
                ratios_t.append(ratio)
            for r in (f, s):
                at = str(r["solved_at"]) if r["solved"] else f"not solved in {r['steps']}"
                name = "ferrograd" if r["lib"] == "ferrograd" else "SB3 (PyTorch)"
                rt = f"{ratio:.2f}x" if (both and r is f) else ""
                print(f"| {algo.upper()} | {seed} | {name} | {at} | {r['learn_s']:.1f} | {r['total_s']:.1f} | {r['us_per_step']:.1f} | {rt} |")
        med_t = f"{statistics.median(ratios_t):.2f}x" if ratios_t else "n/a"
        print(f"| {algo.upper()} | median | | | | | SB3/ferrograd per step {statistics.median(ratios_s):.2f}x | {med_t} |")
    print()
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
