"""ferrograd.rl.envs.GridWorld and the space / environment helpers of ferrograd.rl.base."""

from __future__ import annotations

import numpy as np
import pytest

from ferrograd.rl import evaluate_policy
from ferrograd.rl.base import (
    BoxSpace,
    DiscreteSpace,
    check_action,
    check_observation,
    is_box_space,
    is_discrete_space,
)
from ferrograd.rl.envs import FROZEN_LAKE_4x4, FROZEN_LAKE_8x8, GridWorld


def _table_equal(a, b, S, A):
    for s in range(S):
        for act in range(A):
            ea, eb = a[s][act], b[s][act]
            assert len(ea) == len(eb), (s, act, ea, eb)
            for x, y in zip(ea, eb):
                assert x[0] == pytest.approx(y[0], abs=1e-12) and tuple(x[1:]) == tuple(y[1:]), (s, act, x, y)


@pytest.mark.parametrize("map_name,layout", [("4x4", FROZEN_LAKE_4x4), ("8x8", FROZEN_LAKE_8x8)])
def test_frozenlake_layout_reproduces_gymnasium_model(map_name, layout):
    gym = pytest.importorskip("gymnasium")
    ref = gym.make("FrozenLake-v1", map_name=map_name, is_slippery=True).unwrapped
    env = GridWorld(layout, slip=2 / 3)
    _table_equal(env.P, ref.P, ref.observation_space.n, 4)
    ref_ns = gym.make("FrozenLake-v1", map_name=map_name, is_slippery=False).unwrapped
    _table_equal(GridWorld(layout).P, ref_ns.P, ref_ns.observation_space.n, 4)


def test_slip_probabilities_in_the_model():
    env = GridWorld(["S...", "....", "...G"], slip=0.3)
    s = env.state(1, 1)
    # intended move with 0.7, each perpendicular with 0.15; order (a-1)%4, a, (a+1)%4
    want = {0: [(0.15, env.state(0, 1)), (0.7, env.state(1, 0)), (0.15, env.state(2, 1))],  # left
            1: [(0.15, env.state(1, 0)), (0.7, env.state(2, 1)), (0.15, env.state(1, 2))],  # down
            2: [(0.15, env.state(2, 1)), (0.7, env.state(1, 2)), (0.15, env.state(0, 1))],  # right
            3: [(0.15, env.state(1, 2)), (0.7, env.state(0, 1)), (0.15, env.state(1, 0))]}  # up
    for a, outcomes in want.items():
        got = [(p, s2) for p, s2, _, _ in env.P[s][a]]
        assert [s2 for _, s2 in got] == [s2 for _, s2 in outcomes]
        np.testing.assert_allclose([p for p, _ in got], [p for p, _ in outcomes], rtol=0, atol=1e-15)
    for st in range(env.nrow * env.ncol):
        for a in range(4):
            assert sum(p for p, *_ in env.P[st][a]) == pytest.approx(1.0, abs=1e-12)


def test_slip_frequencies_match_the_model():
    env = GridWorld(["S...", "....", "...G"], slip=0.4)
    env.reset(seed=7)
    s, a, n = env.state(1, 1), 2, 6000
    counts = {}
    for _ in range(n):  # the environment's own sampler, state by state
        env.s = s
        s2, *_ = env.step(a)
        counts[s2] = counts.get(s2, 0) + 1
    for p, s2, _, _ in env.P[s][a]:
        freq = counts.get(s2, 0) / n
        assert abs(freq - p) < 4.5 * np.sqrt(p * (1 - p) / n), (s2, freq, p)
    assert set(counts) == {s2 for _, s2, _, _ in env.P[s][a]}


def test_walls_edges_rewards_and_terminals():
    env = GridWorld(["S#G", ".H."], rewards={"step": -1.0, "wall": -2.0, "goal": 10.0, "hole": -5.0})
    s0 = env.state(0, 0)
    assert env.P[s0][2] == [(1.0, s0, -3.0, False)]  # into the wall: stay, step + wall penalty
    assert env.P[s0][3] == [(1.0, s0, -3.0, False)]  # off the grid
    assert env.P[s0][1] == [(1.0, env.state(1, 0), -1.0, False)]
    assert env.P[env.state(1, 0)][2] == [(1.0, env.state(1, 1), -6.0, True)]  # into the hole
    assert env.P[env.state(1, 2)][3] == [(1.0, env.state(0, 2), 9.0, True)]  # into the goal
    g = env.state(0, 2)
    assert all(env.P[g][a] == [(1.0, g, 0.0, True)] for a in range(4))  # terminal: absorbing
    assert env.terminal_states.tolist() == [False, False, True, False, True, False]
    env.reset(seed=0)
    obs, r, term, trunc, info = env.step(1)
    assert (obs, r, term, trunc) == (env.state(1, 0), -1.0, False, False) and info["prob"] == 1.0


def test_time_limit_start_distribution_and_seeding():
    env = GridWorld(["S.S", "...", "..G"], max_episode_steps=3)
    assert env.initial_state_distrib.tolist() == [0.5, 0, 0.5, 0, 0, 0, 0, 0, 0]
    starts = [env.reset(seed=i)[0] for i in range(200)]
    assert set(starts) == {0, 2} and 60 < starts.count(0) < 140
    env.reset(seed=1)
    out = [env.step(3)[3] for _ in range(3)]
    assert out == [False, False, True]

    def run(seed):
        e = GridWorld(FROZEN_LAKE_4x4, slip=2 / 3)
        e.reset(seed=seed)
        return [e.step(a)[0] for a in [1, 2, 1, 2, 2, 1, 0, 3] * 3]

    assert run(3) == run(3)
    assert any(run(3) != run(s) for s in range(4, 10))


def test_bad_input_is_a_value_error():
    env = GridWorld(FROZEN_LAKE_4x4)
    env.reset(seed=0)
    for bad in (4, -1, 1.5, "x", [1]):
        with pytest.raises(ValueError, match=r"GridWorld.step.*expected an integer in \[0, 4\)"):
            env.step(bad)
    with pytest.raises(ValueError, match="equal length"):
        GridWorld(["S..", ".."])
    with pytest.raises(ValueError, match="start cell"):
        GridWorld(["...", "..G"])
    with pytest.raises(ValueError, match="expected cells among"):
        GridWorld(["S.X"])
    with pytest.raises(ValueError, match="slip"):
        GridWorld(["S.G"], slip=1.5)
    with pytest.raises(ValueError, match="reward keys"):
        GridWorld(["S.G"], rewards={"gaol": 1.0})
    with pytest.raises(ValueError, match="max_episode_steps"):
        GridWorld(["S.G"], max_episode_steps=0)


def test_gymnasium_api_and_render():
    env = GridWorld("S.\n.G", render_mode="ansi")
    obs, info = env.reset(seed=0)
    assert obs == 0 and info == {"prob": 1.0}
    assert "[S]" in env.render()
    env.step(2)
    assert "[.]" in env.render() and "(Right)" in env.render()
    assert env.unwrapped is env
    gym = pytest.importorskip("gymnasium")
    from gymnasium.utils.env_checker import check_env

    check_env(GridWorld(FROZEN_LAKE_4x4, slip=0.2), skip_render_check=True)
    assert isinstance(env.observation_space, gym.spaces.Discrete) and env.observation_space.n == 4
    venv = gym.vector.SyncVectorEnv([lambda: GridWorld(["S.G"], max_episode_steps=5)] * 2)
    obs, _ = venv.reset(seed=0)
    assert obs.tolist() == [0, 0]


def test_discrete_and_box_stand_ins():
    d = DiscreteSpace(3, start=1, seed=0)
    assert is_discrete_space(d) and not is_box_space(d)
    draws = {int(d.sample()) for _ in range(50)}
    assert draws == {1, 2, 3}
    assert d.contains(1) and d.contains(np.int64(3)) and not d.contains(0) and not d.contains(4)
    assert not d.contains(1.0) and 2 in d
    b = BoxSpace(-1.0, 1.0, shape=(2, 3), seed=0)
    assert is_box_space(b) and not is_discrete_space(b)
    x = b.sample()
    assert x.shape == (2, 3) and b.contains(x) and not b.contains(x + 3)
    with pytest.raises(ValueError):
        DiscreteSpace(0)


def test_check_action_and_observation():
    d = DiscreteSpace(4)
    check_action(d, 3)
    check_action(d, np.int32(0))
    with pytest.raises(ValueError, match=r"expected an integer in \[0, 4\).*given 4"):
        check_action(d, 4)
    b = BoxSpace(np.array([-1.0, -2.0]), np.array([1.0, 2.0]))
    check_action(b, np.array([0.5, -2.0]))
    with pytest.raises(ValueError, match=r"expected an action of shape \(2,\).*given shape \(3,\)"):
        check_action(b, np.zeros(3))
    with pytest.raises(ValueError, match="within"):
        check_action(b, np.array([0.0, 3.0]))
    obs, vec = check_observation(b, np.zeros(2))
    assert obs.shape == (1, 2) and not vec
    obs, vec = check_observation(b, np.zeros((5, 2)))
    assert obs.shape == (5, 2) and vec
    with pytest.raises(ValueError, match=r"expected shape \(2,\) or \(batch, 2\).*given shape \(3,\)"):
        check_observation(b, np.zeros(3))
    obs, vec = check_observation(d, 2)
    assert obs.tolist() == [2] and not vec
    with pytest.raises(ValueError, match=r"expected states in \[0, 4\)"):
        check_observation(d, [1, 5])


class _Fixed:
    def __init__(self, action):
        self.action = action

    def predict(self, obs, deterministic=True):
        return np.full(np.shape(obs), self.action), None


def test_evaluate_policy_on_known_returns():
    # always right along a corridor: 2 steps of -1, then +10 on the goal
    env = GridWorld(["S.G"], rewards={"step": -1.0, "goal": 10.0})
    rets, lens = evaluate_policy(_Fixed(2), env, n_eval_episodes=5, return_episode_rewards=True)
    assert rets == [8.0] * 5 and lens == [2] * 5
    mean, std = evaluate_policy(_Fixed(2), env, n_eval_episodes=3)
    assert (mean, std) == (8.0, 0.0)
    # always left: never ends but for the time limit
    env = GridWorld(["S.G"], rewards={"step": -1.0}, max_episode_steps=7)
    rets, lens = evaluate_policy(_Fixed(0), env, n_eval_episodes=2, return_episode_rewards=True)
    assert rets == [-7.0, -7.0] and lens == [7, 7]
    with pytest.raises(ValueError, match="n_eval_episodes"):
        evaluate_policy(_Fixed(0), env, n_eval_episodes=0)


def test_evaluate_policy_on_a_vector_env():
    gym = pytest.importorskip("gymnasium")
    venv = gym.vector.SyncVectorEnv([lambda: GridWorld(["S..G"], rewards={"step": -1.0, "goal": 10.0})] * 3)
    rets, lens = evaluate_policy(_Fixed(2), venv, n_eval_episodes=7, return_episode_rewards=True)
    assert rets == [7.0] * 7 and lens == [3] * 7  # the autoreset steps are not counted
