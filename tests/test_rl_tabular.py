"""Tabular agents (QLearning, SARSA, ExpectedSARSA), schedules, and the BaseAgent interface
they share: hand-computed updates, reproducibility, save/load, bad input, the examples."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

import ferrograd
from ferrograd.rl import (
    BaseAgent,
    ConstantSchedule,
    ExpectedSARSA,
    ExponentialSchedule,
    FiniteMDP,
    LinearSchedule,
    QLearning,
    SARSA,
    evaluate_policy,
    value_iteration,
)
from ferrograd.rl.base import BoxSpace
from ferrograd.rl.envs import FROZEN_LAKE_4x4, GridWorld
from ferrograd.rl.tabular import expected_value_eps_greedy

HERE = os.path.dirname(os.path.abspath(__file__))
AGENTS = [QLearning, SARSA, ExpectedSARSA]


# ---------------------------------------------------------------- schedules


def test_schedules():
    assert ConstantSchedule(0.3)(0.7) == 0.3
    lin = LinearSchedule(1.0, 0.1, duration=0.5)
    np.testing.assert_allclose(lin(np.array([-1.0, 0.0, 0.25, 0.5, 1.0])), [1.0, 1.0, 0.55, 0.1, 0.1])
    steps = LinearSchedule(0.0, 10.0, duration=100)
    assert steps(50) == 5.0 and steps(1000) == 10.0
    geo = ExponentialSchedule(1.0, 0.01)
    np.testing.assert_allclose([geo(0.0), geo(0.5), geo(1.0), geo(2.0)], [1.0, 0.1, 0.01, 0.01])
    dec = ExponentialSchedule(1.0, 0.2, decay=0.5)
    np.testing.assert_allclose([dec(0), dec(1), dec(2), dec(3)], [1.0, 0.5, 0.25, 0.2])
    with pytest.raises(ValueError, match="same sign"):
        ExponentialSchedule(1.0, 0.0)
    with pytest.raises(ValueError, match="duration"):
        LinearSchedule(1.0, 0.0, duration=0)
    with pytest.raises(TypeError, match="learning_rate"):
        QLearning(GridWorld(["S.G"]), learning_rate="fast")


# ---------------------------------------------------------------- updates by hand


def test_updates_against_hand_computed_steps():
    env = GridWorld(["S..", "..G"])
    for cls in AGENTS:
        ag = cls(env, learning_rate=0.5, epsilon=0.2, gamma=0.9)
        ag.q_table[4] = [1.0, 3.0, 3.0, -2.0]  # state 4: two greedy actions
        ag.q_table[0, 2] = 0.4
        if cls is QLearning:
            target = 1.0 + 0.9 * 3.0
            td = ag.update(0, 2, 1.0, 4, False)
        elif cls is SARSA:
            target = 1.0 + 0.9 * -2.0  # the action actually taken next
            td = ag.update(0, 2, 1.0, 4, False, next_action=3)
        else:
            # eps/A to each action + (1-eps) split between the two maxima
            expect = 0.05 * (1 + 3 + 3 - 2) + 0.8 * 3.0
            target = 1.0 + 0.9 * expect
            td = ag.update(0, 2, 1.0, 4, False)
        assert td == pytest.approx(target - 0.4, abs=1e-15)
        assert ag.q_table[0, 2] == pytest.approx(0.4 + 0.5 * (target - 0.4), abs=1e-15)
        # a terminating step does not bootstrap
        ag.q_table[1, 1] = 2.0
        ag.update(1, 1, -1.0, 4, True, next_action=0)
        assert ag.q_table[1, 1] == pytest.approx(2.0 + 0.5 * (-1.0 - 2.0))
    with pytest.raises(ValueError, match="next_action"):
        SARSA(env).update(0, 1, 0.0, 1, False)
    with pytest.raises(ValueError, match=r"action: expected an integer in \[0, 4\)"):
        QLearning(env).update(0, 4, 0.0, 1, False)
    with pytest.raises(ValueError, match="state"):
        QLearning(env).update(9, 0, 0.0, 1, False)


def test_expected_value_of_the_eps_greedy_policy():
    q = np.array([[1.0, 2.0, 0.0], [5.0, 5.0, 5.0]])
    pi0 = np.array([0.1 / 3, 0.9 + 0.1 / 3, 0.1 / 3])
    np.testing.assert_allclose(expected_value_eps_greedy(q, 0.1), [pi0 @ q[0], 5.0])
    assert expected_value_eps_greedy(q[0], 1.0) == pytest.approx(1.0)


def test_first_learning_steps_by_hand():
    """Corridor S . G, reward 1 at G, epsilon 0: the greedy agent breaks its all-zero ties
    at random; whatever it does, every update is the hand formula."""
    env = GridWorld(["S.G"], max_episode_steps=50)
    ag = QLearning(env, learning_rate=0.5, epsilon=0.0, gamma=0.9, seed=3)
    seen = []
    q = np.zeros((3, 4))

    def record(local):
        seen.append((local["s"], local["a"], local["reward"], local["s2"], local["terminated"]))
        return True

    ag.learn(40, callback=record, progress_bar=False)
    for s, a, r, s2, term in seen:  # replay the updates on a NumPy table
        target = r if term else r + 0.9 * q[s2].max()
        q[s, a] += 0.5 * (target - q[s, a])
    np.testing.assert_array_equal(ag.q_table, q)
    assert any(t[4] for t in seen)  # reached the goal at least once
    assert ag.history["episode_returns"] and set(ag.history["episode_returns"]) == {1.0}
    assert ag.history["timesteps"][-1] <= 40


# ---------------------------------------------------------------- learning, reproducibility


@pytest.mark.parametrize("cls", AGENTS)
def test_learns_the_optimal_policy_of_a_small_grid(cls):
    env = GridWorld(["S..#", ".#..", "...G"], rewards={"step": -0.1, "goal": 1.0}, max_episode_steps=40)
    _, pi_star = value_iteration(FiniteMDP.from_gym(env, gamma=0.95))
    ag = cls(env, learning_rate=0.5, epsilon=LinearSchedule(1.0, 0.05, 0.7), gamma=0.95, seed=0)
    ag.learn(6000, progress_bar=False)
    # follow the greedy policy from the start: the shortest path, 5 moves
    rets, lens = evaluate_policy(ag, env, n_eval_episodes=3, return_episode_rewards=True, seed=0)
    assert lens == [5, 5, 5] and rets[0] == pytest.approx(1.0 - 0.5)
    V_star, _ = value_iteration(FiniteMDP.from_gym(env, gamma=0.95))
    q = ag.q_table
    s = env.state(0, 0)
    assert q[s].max() == pytest.approx(V_star[s], abs=0.05)


@pytest.mark.parametrize("cls", AGENTS)
def test_seeded_runs_reproduce_exactly(cls):
    def run(seed=None):
        ag = cls(GridWorld(FROZEN_LAKE_4x4, slip=2 / 3, max_episode_steps=100), seed=seed)
        ag.learn(3000, progress_bar=False)
        return ag

    a, b, c = run(11), run(11), run(12)
    np.testing.assert_array_equal(a.q_table, b.q_table)
    assert a.history == b.history and a.num_timesteps == b.num_timesteps == 3000
    assert not np.array_equal(a.q_table, c.q_table)
    ferrograd.manual_seed(5)
    d = run()
    ferrograd.manual_seed(5)
    e = run()
    np.testing.assert_array_equal(d.q_table, e.q_table)
    # two learn() calls continue the same run (schedules restart per call)
    f = cls(GridWorld(FROZEN_LAKE_4x4, slip=2 / 3, max_episode_steps=100), seed=11, epsilon=0.3)
    g = cls(GridWorld(FROZEN_LAKE_4x4, slip=2 / 3, max_episode_steps=100), seed=11, epsilon=0.3)
    f.learn(1500, progress_bar=False).learn(1500, progress_bar=False)
    g.learn(3000, progress_bar=False)
    np.testing.assert_array_equal(f.q_table, g.q_table)
    assert f.history == g.history


def test_callbacks_stop_training():
    env = GridWorld(FROZEN_LAKE_4x4)
    ag = QLearning(env, seed=0)
    ag.learn(100, callback=lambda loc: loc["t"] < 9, progress_bar=False)
    assert ag.num_timesteps == 10

    class Stopper:
        def __init__(self):
            self.calls = 0
            self.started = self.ended = False

        def on_training_start(self, loc, glob):
            self.started = True

        def on_step(self):
            self.calls += 1
            assert self.model is ag and "reward" in self.locals
            return self.calls < 5

        def on_training_end(self):
            self.ended = True

    cb = Stopper()
    ag.learn(100, callback=cb, progress_bar=False)
    assert ag.num_timesteps == 15 and cb.started and cb.ended
    with pytest.raises(TypeError, match="callback"):
        ag.learn(10, callback=3)
    ag.learn(20, progress_bar=True)  # tqdm when installed; a no-op otherwise
    assert ag.num_timesteps == 35


# ---------------------------------------------------------------- save / load


@pytest.mark.parametrize("cls", AGENTS)
def test_save_load_round_trip(cls, tmp_path):
    env = GridWorld(FROZEN_LAKE_4x4, slip=2 / 3, max_episode_steps=100)
    ag = cls(env, learning_rate=ExponentialSchedule(0.5, 0.05), epsilon=LinearSchedule(1.0, 0.1, 0.5),
             gamma=0.97, initial_q=0.25, seed=4)
    ag.learn(2000, progress_bar=False)
    path = tmp_path / "agent.safetensors"
    ag.save(path)
    for loader in (cls, BaseAgent):
        b = loader.load(path, env=GridWorld(FROZEN_LAKE_4x4, slip=2 / 3, max_episode_steps=100))
        assert type(b) is cls
        np.testing.assert_array_equal(b.q_table, ag.q_table)
        assert b.history == ag.history and b.num_timesteps == ag.num_timesteps
        assert (b.gamma, b.seed, b.initial_q, b.exploration_rate) == (0.97, 4, 0.25, ag.exploration_rate)
        assert repr(b.learning_rate) == repr(ag.learning_rate) and repr(b.epsilon) == repr(ag.epsilon)
        assert b.rng.bit_generator.state == ag.rng.bit_generator.state
    obs = np.arange(16)
    np.testing.assert_array_equal(cls.load(path).predict(obs)[0], ag.predict(obs)[0])  # no env: predict only
    with pytest.raises(RuntimeError, match="without an environment"):
        cls.load(path).learn(10, progress_bar=False)
    other = [c for c in AGENTS if c is not cls][0]
    with pytest.raises(ValueError, match=f"expected a saved {other.__name__}, the file holds a '{cls.__name__}'"):
        other.load(path)
    with pytest.raises(ValueError, match="spaces"):
        cls.load(path, env=GridWorld(["S.G"]))
    assert cls.load(path, gamma=0.5).gamma == 0.5
    # no pickle anywhere: a plain safetensors file (header JSON, then raw tensors)
    import json
    import struct

    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    assert header["__metadata__"]["format"] == "np"
    assert {"arrays.q_table", "history.episode_returns"} <= set(header)
    assert header["history.episode_returns"]["shape"] == [len(ag.history["episode_returns"])]


def test_custom_schedules_need_an_override_on_load(tmp_path):
    env = GridWorld(["S.G"])
    ag = QLearning(env, epsilon=lambda t: 0.1)
    ag.save(tmp_path / "a.safetensors")
    with pytest.raises(ValueError, match="custom epsilon schedule"):
        QLearning.load(tmp_path / "a.safetensors", env=env)
    b = QLearning.load(tmp_path / "a.safetensors", env=env, epsilon=0.2)
    assert b.epsilon(0.5) == 0.2
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(ValueError):
        QLearning.load(tmp_path / "junk.safetensors")


# ---------------------------------------------------------------- bad input


class _BoxEnv:
    observation_space = BoxSpace(-1.0, 1.0, shape=(3,))
    action_space = BoxSpace(-1.0, 1.0, shape=(1,))

    def reset(self, seed=None):
        return np.zeros(3, np.float32), {}

    def step(self, a):
        return np.zeros(3, np.float32), 0.0, True, False, {}


def test_bad_input():
    env = GridWorld(FROZEN_LAKE_4x4)
    ag = QLearning(env, seed=0)
    assert ag.predict(3)[0].shape == () and ag.predict([1, 2, 3])[0].shape == (3,)
    with pytest.raises(ValueError, match=r"QLearning.predict: expected states in \[0, 16\).*given 16"):
        ag.predict(16)
    with pytest.raises(ValueError, match=r"expected a scalar state or a 1-d batch.*given shape \(2, 2\)"):
        ag.predict(np.zeros((2, 2), np.int64))
    with pytest.raises(ValueError, match=r"QLearning: expected a Discrete observation space.*given Box\(shape=\(3,\)"):
        QLearning(_BoxEnv())
    with pytest.raises(TypeError, match="gymnasium's API"):
        QLearning(object())
    with pytest.raises(ValueError, match="gamma"):
        QLearning(env, gamma=1.5)
    with pytest.raises(ValueError, match="total_timesteps"):
        ag.learn(-1)
    with pytest.raises(ValueError, match="epsilon schedule gave values outside"):
        QLearning(env, epsilon=LinearSchedule(1.0, 2.0)).learn(10, progress_bar=False)
    gym = pytest.importorskip("gymnasium")
    with pytest.raises(ValueError, match="Discrete observation space"):
        QLearning(gym.make("CartPole-v1"))
    with pytest.raises(ValueError, match="single"):
        QLearning(gym.make_vec("FrozenLake-v1", num_envs=2))


def test_evaluate_on_gymnasium_frozenlake():
    gym = pytest.importorskip("gymnasium")
    env = gym.make("FrozenLake-v1")
    ag = QLearning(env, seed=0)
    ag.q_table[:] = 0.0
    _, pi = value_iteration(FiniteMDP.from_gym(env))
    ag.q_table[np.arange(16), pi] = 1.0  # the optimal policy as a table
    rets, lens = evaluate_policy(ag, env, n_eval_episodes=200, return_episode_rewards=True, seed=0)
    assert len(rets) == 200 and set(rets) <= {0.0, 1.0} and max(lens) <= 100
    assert 0.6 < np.mean(rets) < 0.88  # 0.74 expected; 200 episodes: +/- 0.031 per sigma
    assert evaluate_policy(ag, env, n_eval_episodes=50, seed=3) == evaluate_policy(ag, env, n_eval_episodes=50, seed=3)


# ---------------------------------------------------------------- the examples


def _example(name):
    path = os.path.join(HERE, os.pardir, "examples", f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"{name}_example", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_frozenlake_example_smoke(capsys):
    pytest.importorskip("gymnasium")
    out = _example("frozenlake").main(["--steps", "3000", "--eval-episodes", "100", "--no-plot"])
    text = capsys.readouterr().out
    assert "value iteration" in text and "Q-learning" in text
    assert 0.55 < out["vi_success"] < 0.93  # the optimal policy: 0.74 expected
    assert 0.0 <= out["q_success"] <= 1.0


def test_taxi_example_smoke(capsys):
    pytest.importorskip("gymnasium")
    out = _example("taxi").main(["--steps", "3000", "--eval-episodes", "20", "--no-plot"])
    assert "mean return" in capsys.readouterr().out
    assert out["vi_mean"] > 5.0  # optimal play: about 8
