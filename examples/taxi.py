"""Taxi: tabular Q-learning reaches a mean return of at least 7 (optimal play averages
about 8: +20 for the drop-off, -1 per step).

Uses Taxi-v3 when the installed gymnasium still provides it, else Taxi-v4 (gymnasium >= 1.3
renamed it; with its default options the dynamics are the same). Also solves the model
with value iteration for comparison. Prints the mean return over the evaluation episodes;
writes ``taxi_learning_curve.png`` when matplotlib is available.

    python examples/taxi.py [--steps 200000] [--eval-episodes 1000] [--seed 0] [--no-plot]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ferrograd.rl import ExponentialSchedule, FiniteMDP, QLearning, evaluate_policy, value_iteration


def make_taxi():
    import warnings

    import gymnasium as gym

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gymnasium's "out of date" notice for Taxi-v3
        try:
            return gym.make("Taxi-v3"), "Taxi-v3"
        except gym.error.Error:  # DeprecatedEnv / NameNotFound on gymnasium >= 1.3
            return gym.make("Taxi-v4"), "Taxi-v4"


class TablePolicy:
    def __init__(self, policy: np.ndarray) -> None:
        self.policy = np.asarray(policy)

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        return self.policy[np.asarray(observation)], state


def learn(env, steps: int, seed: int) -> QLearning:
    agent = QLearning(
        env,
        learning_rate=0.5,  # the dynamics are deterministic: large steps are safe
        epsilon=ExponentialSchedule(1.0, 0.01, duration=0.5),
        gamma=0.99,
        seed=seed,
    )
    return agent.learn(steps, progress_bar=False)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200_000)
    ap.add_argument("--eval-episodes", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args(argv)

    env, name = make_taxi()
    t0 = time.perf_counter()
    _, pi_star = value_iteration(FiniteMDP.from_gym(env, gamma=0.99))
    t_plan = time.perf_counter() - t0
    vi_mean, vi_std = evaluate_policy(TablePolicy(pi_star), env, n_eval_episodes=args.eval_episodes, seed=args.seed + 1)
    print(f"{name}: value iteration ({t_plan * 1e3:.1f} ms): mean return {vi_mean:.2f} +/- {vi_std:.2f}")

    t0 = time.perf_counter()
    agent = learn(env, args.steps, args.seed)
    t_learn = time.perf_counter() - t0
    mean, std = evaluate_policy(agent, env, n_eval_episodes=args.eval_episodes, seed=args.seed + 2)
    print(f"{name}: Q-learning ({args.steps} steps, {len(agent.history['episode_returns'])} episodes, "
          f"{t_learn:.1f} s): mean return {mean:.2f} +/- {std:.2f} over {args.eval_episodes} episodes")

    if not args.no_plot:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("(matplotlib not installed: no learning curve)")
        else:
            r = np.asarray(agent.history["episode_returns"])
            k = min(100, max(1, r.size))
            smooth = np.convolve(r, np.ones(k) / k, mode="valid")
            ts = np.asarray(agent.history["timesteps"])[k - 1:]
            fig, ax = plt.subplots(figsize=(6, 3.5))
            ax.plot(ts, smooth, label=f"Q-learning (mean of {k} training episodes)")
            ax.axhline(vi_mean, color="k", ls="--", label=f"optimal policy ({vi_mean:.1f})")
            ax.set_ylim(-250, 15)
            ax.set_xlabel("environment steps")
            ax.set_ylabel("episode return")
            ax.set_title(name)
            ax.legend(loc="lower right")
            fig.tight_layout()
            fig.savefig("taxi_learning_curve.png", dpi=100)
            print("wrote taxi_learning_curve.png")
    return {"vi_mean": vi_mean, "q_mean": mean, "t_learn": t_learn}


if __name__ == "__main__":
    main()
