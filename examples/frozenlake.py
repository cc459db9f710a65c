"""FrozenLake-v1 4x4 (slippery): planning on the known model, then learning without it.

1. Value iteration on the transition table (``env.unwrapped.P``) gives the optimal policy;
   followed for 1,000 episodes it reaches the goal about 74 % of the time (the ice is
   slippery: every move goes sideways with probability 2/3, and episodes end after 100
   steps).
2. Tabular Q-learning, which sees only sampled transitions, learns a policy that succeeds
   at least 70 % of the time over 1,000 evaluation episodes.

Prints both success rates (and how often Q-learning's greedy action matches the optimal
one); writes ``frozenlake_learning_curve.png`` when matplotlib is available.

    python examples/frozenlake.py [--steps 300000] [--eval-episodes 1000] [--seed 0] [--no-plot]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ferrograd.rl import FiniteMDP, LinearSchedule, QLearning, evaluate_policy, value_iteration

ARROWS = np.array(["<", "v", ">", "^"])


class TablePolicy:
    """A fixed deterministic policy (state -> action) with the agents' predict()."""

    def __init__(self, policy: np.ndarray) -> None:
        self.policy = np.asarray(policy)

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        return self.policy[np.asarray(observation)], state


def show(policy: np.ndarray, desc: np.ndarray) -> str:
    cells = np.where(np.isin(desc, ["H", "G"]), desc, ARROWS[policy].reshape(desc.shape))
    return "\n".join("  " + " ".join(row) for row in cells)


def plan(env, gamma: float = 0.99):
    """Value iteration on FrozenLake's model: (V, policy)."""
    mdp = FiniteMDP.from_gym(env, gamma=gamma)
    return value_iteration(mdp, tol=1e-10)


def learn(env, steps: int, seed: int) -> QLearning:
    agent = QLearning(
        env,
        learning_rate=LinearSchedule(0.1, 0.005),
        epsilon=LinearSchedule(1.0, 0.02, duration=0.6),
        gamma=0.99,
        seed=seed,
    )
    return agent.learn(steps, progress_bar=False)


def main(argv=None) -> dict:
    import gymnasium as gym

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300_000)
    ap.add_argument("--eval-episodes", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args(argv)

    env = gym.make("FrozenLake-v1", map_name="4x4", is_slippery=True)
    desc = env.unwrapped.desc.astype(str)

    t0 = time.perf_counter()
    V, pi_star = plan(env)
    t_plan = time.perf_counter() - t0
    vi_rate, _ = evaluate_policy(TablePolicy(pi_star), env, n_eval_episodes=args.eval_episodes, seed=args.seed + 1)
    print(f"value iteration ({t_plan * 1e3:.1f} ms): V(start) = {V[0]:.4f}, success rate {vi_rate:.3f} "
          f"over {args.eval_episodes} episodes")
    print(show(pi_star, desc))

    t0 = time.perf_counter()
    agent = learn(env, args.steps, args.seed)
    t_learn = time.perf_counter() - t0
    q_rate, _ = evaluate_policy(agent, env, n_eval_episodes=args.eval_episodes, seed=args.seed + 2)
    greedy = np.argmax(agent.q_table, axis=1)
    live = ~np.isin(desc.ravel(), ["H", "G"])
    agree = float(np.mean(greedy[live] == pi_star[live]))
    print(f"Q-learning ({args.steps} steps, {len(agent.history['episode_returns'])} episodes, {t_learn:.1f} s): "
          f"success rate {q_rate:.3f} over {args.eval_episodes} episodes; greedy action = optimal in "
          f"{agree:.0%} of the non-terminal states")
    print(show(greedy, desc))

    if not args.no_plot:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("(matplotlib not installed: no learning curve)")
        else:
            r = np.asarray(agent.history["episode_returns"])
            k = min(500, max(1, r.size))
            smooth = np.convolve(r, np.ones(k) / k, mode="valid")
            ts = np.asarray(agent.history["timesteps"])[k - 1:]
            fig, ax = plt.subplots(figsize=(6, 3.5))
            ax.plot(ts, smooth, label=f"Q-learning, success rate (mean of {k} episodes)")
            ax.axhline(vi_rate, color="k", ls="--", label=f"optimal policy ({vi_rate:.2f})")
            ax.set_xlabel("environment steps")
            ax.set_ylabel("success rate")
            ax.set_title("FrozenLake-v1 4x4, slippery (training episodes explore)")
            ax.legend(loc="lower right")
            fig.tight_layout()
            fig.savefig("frozenlake_learning_curve.png", dpi=100)
            print("wrote frozenlake_learning_curve.png")
    return {"vi_success": vi_rate, "q_success": q_rate, "agreement": agree, "t_learn": t_learn}


if __name__ == "__main__":
    main()
