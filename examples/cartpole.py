"""REINFORCE, A2C and DQN on CartPole-v1 (gymnasium), each within 300,000 environment steps.

Every agent learns with a fixed seed; every ``--check-every`` steps a quick evaluation
(20 greedy episodes, fixed seeds) checks whether the bar is reached; if so, the full
evaluation (the mean return over 100 greedy episodes with
``ferrograd.rl.evaluate_policy``, fixed seeds) confirms it and learning stops there, or
learning goes on. The reported figure is that full evaluation (of the final agent when
the bar was never confirmed). Bars (the issue's): REINFORCE and
A2C >= 475, DQN >= 400. Hyper-parameters: A2C and DQN use rl-zoo's tuned CartPole-v1
settings (A2C: 8 environments, Stable-Baselines3's defaults, ent_coef 0; DQN: lr 2.3e-3,
batch 64, 256x256 ReLU net, train_freq 256, gradient_steps 128, target update every 10
steps, epsilon 1 -> 0.04 over the first 8,000 steps); REINFORCE: one episode per update, a learned baseline, normalised returns, Adam 1e-3.
Writes a learning-curve PNG when matplotlib is available.

    python examples/cartpole.py [--agents reinforce a2c dqn] [--timesteps 300000] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any, Optional

import numpy as np

BARS = {"reinforce": 475.0, "a2c": 475.0, "dqn": 400.0}


def make_agent(name: str, seed: int, timesteps: int, quick: bool = False) -> Any:
    """The agent ``name`` on fresh CartPole-v1 environment(s), with the example's settings
    (``quick``: tiny networks and buffers, for the smoke test). DQN's epsilon decays over
    the first 8,000 steps whatever the budget (rl-zoo: 16 % of its 50,000)."""
    import gymnasium as gym

    from ferrograd.rl import A2C, DQN, REINFORCE

    small = dict(net_arch=[16]) if quick else {}
    if name == "reinforce":
        env = gym.make("CartPole-v1")
        return REINFORCE("MlpPolicy", env, learning_rate=1e-3, n_episodes=1, baseline=True, normalize_returns=True,
                         policy_kwargs=small or None, seed=seed)
    if name == "a2c":
        env = gym.make_vec("CartPole-v1", num_envs=8, vectorization_mode="sync")
        return A2C("MlpPolicy", env, n_steps=5, learning_rate=7e-4, ent_coef=0.0, policy_kwargs=small or None, seed=seed)
    if name == "dqn":
        env = gym.make("CartPole-v1")
        return DQN(
            "MlpPolicy", env, learning_rate=2.3e-3, batch_size=64, buffer_size=100_000,
            learning_starts=100 if quick else 1000, gamma=0.99, target_update_interval=10,
            train_freq=16 if quick else 256, gradient_steps=8 if quick else 128,
            exploration_fraction=min(1.0, 8000 / timesteps), exploration_final_eps=0.04,
            policy_kwargs=dict(net_arch=[16] if quick else [256, 256]), seed=seed,
        )
    raise ValueError(f"cartpole: unknown agent {name!r} (expected reinforce, a2c or dqn)")


def run(name: str, timesteps: int, seed: int, check_every: int, eval_episodes: int, quick: bool = False) -> dict:
    """Trains one agent (stopping early once the quick evaluation reaches its bar) and
    evaluates it over ``eval_episodes`` episodes; returns the figures."""
    import gymnasium as gym

    from ferrograd.rl import evaluate_policy

    bar = BARS[name]
    agent = make_agent(name, seed, timesteps, quick)
    eval_env = gym.make("CartPole-v1")
    curve: list = []
    state = {"next": check_every, "eval_time": 0.0, "final": None}

    def full_evaluation() -> tuple:
        return evaluate_policy(agent, eval_env, n_eval_episodes=eval_episodes, deterministic=True, seed=20_000)

    def callback(local_vars: dict) -> bool:
        if agent.num_timesteps < state["next"]:
            return True
        state["next"] += check_every
        t = time.perf_counter()
        mean, _ = evaluate_policy(agent, eval_env, n_eval_episodes=20, deterministic=True, seed=10_000)
        curve.append((agent.num_timesteps, mean))
        line = f"  {name}: {agent.num_timesteps:7d} steps, quick evaluation (20 episodes) {mean:6.1f}"
        keep_going = True
        if mean >= bar:  # confirm with the full evaluation before stopping
            state["final"] = full_evaluation()
            line += f", full evaluation ({eval_episodes} episodes) {state['final'][0]:6.1f}"
            keep_going = state["final"][0] < bar
        state["eval_time"] += time.perf_counter() - t
        print(line, flush=True)
        return keep_going

    t0 = time.perf_counter()
    agent.learn(total_timesteps=timesteps, callback=callback, progress_bar=False)
    train_time = time.perf_counter() - t0
    final = state["final"] if state["final"] is not None and state["final"][0] >= bar else full_evaluation()
    mean, std = final
    ok = mean >= bar
    print(
        f"{name}: mean return {mean:.1f} +/- {std:.1f} over {eval_episodes} episodes after {agent.num_timesteps} steps "
        f"({train_time:.1f} s learning incl. {state['eval_time']:.1f} s of evaluations) -> "
        f"{'PASS' if ok else 'FAIL'} (bar {bar:.0f})",
        flush=True,
    )
    return dict(agent=name, mean=mean, std=std, steps=agent.num_timesteps, seconds=train_time, passed=ok,
                curve=curve, episode_returns=list(agent.history["episode_returns"]),
                episode_timesteps=list(agent.history["timesteps"]))


def plot(results: list, path: str) -> Optional[str]:
    """Learning curves (training episode returns, smoothed, and quick evaluations) as a
    PNG; None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for r in results:
        x = np.asarray(r["episode_timesteps"])
        y = np.asarray(r["episode_returns"])
        if len(y):
            k = min(20, len(y))
            smooth = np.convolve(y, np.ones(k) / k, mode="valid")
            (line,) = ax.plot(x[k - 1 :], smooth, label=f"{r['agent']} (training, mean of {k})")
            if r["curve"]:
                cx, cy = zip(*r["curve"])
                ax.plot(cx, cy, "o", color=line.get_color(), label=f"{r['agent']} (evaluation)")
    ax.axhline(475, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode return")
    ax.set_title("CartPole-v1")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv: Optional[list] = None) -> list:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", nargs="+", default=["reinforce", "a2c", "dqn"], choices=sorted(BARS))
    p.add_argument("--timesteps", type=int, default=300_000, help="budget of environment steps per agent")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--check-every", type=int, default=10_000, help="steps between quick evaluations")
    p.add_argument("--eval-episodes", type=int, default=100)
    p.add_argument("--plot", default="cartpole.png", help="learning-curve PNG ('' for none)")
    p.add_argument("--quick", action="store_true", help="tiny networks (smoke test)")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    results = [run(a, args.timesteps, args.seed, args.check_every, args.eval_episodes, args.quick) for a in args.agents]
    print(f"total wall-clock time {time.perf_counter() - t0:.1f} s")
    if args.plot:
        out = plot(results, args.plot)
        if out:
            print(f"learning curves written to {os.path.abspath(out)}")
    return results


if __name__ == "__main__":
    main()
