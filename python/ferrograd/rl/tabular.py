"""Tabular temporal-difference control: :class:`QLearning`, :class:`SARSA`,
:class:`ExpectedSARSA`.

All three keep a table ``Q`` of shape ``(n_states, n_actions)`` (float64) for an
environment with ``Discrete`` observation and action spaces, act epsilon-greedily while
learning, and update after every step

    Q[s, a] += alpha * (target - Q[s, a])

with ``target = r`` when the step terminated the episode, otherwise ``r + gamma * X``:

* Q-learning (off-policy): ``X = max_a' Q[s', a']``;
* SARSA (on-policy): ``X = Q[s', a']`` with ``a'`` the action the agent takes next;
* Expected SARSA: ``X = sum_a' pi(a' | s') Q[s', a']`` under the epsilon-greedy policy
  (``1 - epsilon`` shared by the greedy actions, ``epsilon / A`` to each action).

A truncated episode (time limit) bootstraps like any non-terminal step. Greedy choices
while learning break ties uniformly at random; ``predict(deterministic=True)`` takes the
first maximum.

``learning_rate`` (alpha) and ``epsilon`` are numbers or schedules
(:mod:`ferrograd.rl.schedules`), evaluated at the fraction of the current ``learn`` call
done (0 at its start, 1 at its end). Every random draw comes from the agent's generator,
so the same seed reproduces a run exactly.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from .base import BaseAgent, check_action, check_total_timesteps, discrete_start, is_discrete_space, is_vector_env, space_description
from .schedules import LinearSchedule, ScheduleLike, as_schedule, schedule_from_json, schedule_to_json

_RAND_BLOCK = 4096  # uniform numbers drawn from the generator at a time
_SCHED_BLOCK = 1024  # steps whose schedule values are computed at once


class _TabularAgent(BaseAgent):
    """Shared machinery of the tabular agents (see the module docstring).

    Parameters
    ----------
    env : environment with ``Discrete`` observation and action spaces (not a vector env).
    learning_rate : step size alpha in (0, 1], a number or a schedule (default 0.1).
    epsilon : exploration rate in [0, 1], a number or a schedule (default: linear from 1.0
        to 0.05 over the first half of each ``learn`` call).
    gamma : discount in [0, 1].
    initial_q : initial value of every table entry (optimistic values encourage
        exploration).
    seed, verbose : as in :class:`~ferrograd.rl.base.BaseAgent`.

    Attributes: ``q_table`` ``(S, A)``, ``exploration_rate`` (the epsilon last used),
    ``n_states``, ``n_actions`` and those of ``BaseAgent``.
    """

    def __init__(self, env: Any, *, learning_rate: ScheduleLike = 0.1,
                 epsilon: ScheduleLike = LinearSchedule(1.0, 0.05, duration=0.5), gamma: float = 0.99,
                 initial_q: float = 0.0, seed: Optional[int] = None, verbose: int = 0) -> None:
        super().__init__(env, gamma=gamma, seed=seed, verbose=verbose)
        name = type(self).__name__
        if is_vector_env(env):
            raise ValueError(f"{name}: expected a single (not vector) environment, given {type(env).__name__} "
                             f"with num_envs={env.num_envs}")
        for what, sp in (("observation", self.observation_space), ("action", self.action_space)):
            if not is_discrete_space(sp):
                raise ValueError(f"{name}: expected a Discrete {what} space (a tabular agent needs finite states "
                                 f"and actions), given {space_description(sp)}")
        self.n_states = int(self.observation_space.n)
        self.n_actions = int(self.action_space.n)
        self._obs_start = discrete_start(self.observation_space)
        self._act_start = discrete_start(self.action_space)
        self.learning_rate = as_schedule(learning_rate, "learning_rate", name)
        self.epsilon = as_schedule(epsilon, "epsilon", name)
        if isinstance(initial_q, bool) or not isinstance(initial_q, (int, float, np.integer, np.floating)) \
                or not np.isfinite(initial_q):
            raise ValueError(f"{name}: expected a finite number for initial_q, given {initial_q!r}")
        self.initial_q = float(initial_q)
        self.q_table = np.full((self.n_states, self.n_actions), self.initial_q, dtype=np.float64)
        self.exploration_rate = self._epsilon_at(0.0)
        self._ep_ret = 0.0
        self._ep_len = 0
        self._next_action: Optional[int] = None  # SARSA: the action chosen for the next step
        self._u = np.empty(0)
        self._ui = 0

    # ------------------------------------------------------------------ schedules

    def _epsilon_at(self, progress: float) -> float:
        e = float(self.epsilon(progress))
        if not (0.0 <= e <= 1.0):
            raise ValueError(f"{type(self).__name__}: the epsilon schedule gave {e} at progress {progress}, expected a value in [0, 1]")
        return e

    def _lr_at(self, progress: float) -> float:
        lr = float(self.learning_rate(progress))
        if not (0.0 < lr <= 1.0):
            raise ValueError(f"{type(self).__name__}: the learning-rate schedule gave {lr} at progress {progress}, expected a value in (0, 1]")
        return lr

    def _schedule_block(self, progress: np.ndarray) -> tuple:
        """epsilon and learning rate at each progress value (arrays), range-checked."""
        eps = np.broadcast_to(np.asarray(self.epsilon(progress), np.float64), progress.shape)
        lr = np.broadcast_to(np.asarray(self.learning_rate(progress), np.float64), progress.shape)
        if not np.all((eps >= 0.0) & (eps <= 1.0)):
            raise ValueError(f"{type(self).__name__}: the epsilon schedule gave values outside [0, 1] "
                             f"(e.g. {eps[~((eps >= 0) & (eps <= 1))][0]})")
        if not np.all((lr > 0.0) & (lr <= 1.0)):
            raise ValueError(f"{type(self).__name__}: the learning-rate schedule gave values outside (0, 1] "
                             f"(e.g. {lr[~((lr > 0) & (lr <= 1))][0]})")
        return eps, lr

    # ------------------------------------------------------------------ acting

    def _uniform(self) -> float:
        """The next uniform number of the agent's generator (drawn in blocks)."""
        if self._ui >= self._u.size:
            self._u = self.rng.random(_RAND_BLOCK)
            self._ui = 0
        u = self._u[self._ui]
        self._ui += 1
        return float(u)

    def _greedy_random_tie(self, s: int) -> int:
        q = self.q_table[s]
        best = np.flatnonzero(q == q.max())
        if best.size == 1:
            return int(best[0])
        return int(best[min(int(self._uniform() * best.size), best.size - 1)])

    def _behaviour_action(self, s: int, eps: float) -> int:
        """Epsilon-greedy: a uniform random action with probability ``eps``, else a greedy
        one (ties broken uniformly)."""
        if self._uniform() < eps:
            return min(int(self._uniform() * self.n_actions), self.n_actions - 1)
        return self._greedy_random_tie(s)

    def _predict(self, observations: np.ndarray, deterministic: bool) -> np.ndarray:
        idx = observations - self._obs_start
        greedy = np.argmax(self.q_table[idx], axis=1)
        if not deterministic and idx.size:
            explore = self.rng.random(idx.size) < self.exploration_rate
            greedy = np.where(explore, self.rng.integers(0, self.n_actions, idx.size), greedy)
        return (greedy + self._act_start).astype(np.int64)

    # ------------------------------------------------------------------ the update

    def _bootstrap(self, s2: int, eps: float, a2: Optional[int]) -> float:
        raise NotImplementedError

    def update(self, state: int, action: int, reward: float, next_state: int, terminated: bool,
               next_action: Optional[int] = None, learning_rate: Optional[float] = None,
               epsilon: Optional[float] = None) -> float:
        """Applies one TD update for the transition ``(state, action, reward, next_state,
        terminated)`` (environment numbering) and returns the TD error ``target - Q[s, a]``.
        ``next_action`` is required by SARSA; ``learning_rate`` / ``epsilon`` default to the
        schedules' start values. ValueError for states or actions outside the spaces."""
        name = type(self).__name__
        check_action(self.observation_space, state, f"{name}.update: state")
        check_action(self.observation_space, next_state, f"{name}.update: next_state")
        check_action(self.action_space, action, f"{name}.update: action")
        if next_action is not None:
            check_action(self.action_space, next_action, f"{name}.update: next_action")
            next_action = int(next_action) - self._act_start
        lr = self._lr_at(0.0) if learning_rate is None else float(learning_rate)
        eps = self._epsilon_at(0.0) if epsilon is None else float(epsilon)
        if not (0.0 < lr <= 1.0) or not (0.0 <= eps <= 1.0):
            raise ValueError(f"{name}.update: expected learning_rate in (0, 1] and epsilon in [0, 1], given {lr}, {eps}")
        return self._td_update(int(state) - self._obs_start, int(action) - self._act_start, float(reward),
                               int(next_state) - self._obs_start, bool(terminated), next_action, lr, eps)

    def _td_update(self, s: int, a: int, r: float, s2: int, terminated: bool, a2: Optional[int],
                   lr: float, eps: float) -> float:
        target = r if terminated else r + self.gamma * self._bootstrap(s2, eps, a2)
        q = self.q_table[s, a]
        td = target - q
        self.q_table[s, a] = q + lr * td
        return float(td)

    # ------------------------------------------------------------------ learning

    def _needs_next_action(self) -> bool:
        return False

    def learn(self, total_timesteps: int, callback: Any = None, progress_bar: bool = True) -> "_TabularAgent":
        """Runs ``total_timesteps`` environment steps of epsilon-greedy TD control,
        continuing the current episode from a previous call. Finished episodes go to
        ``history``. ``callback(locals) -> False`` (or an object whose ``on_step()``
        returns False) stops early. Returns ``self``."""
        name = type(self).__name__
        total = check_total_timesteps(total_timesteps, f"{name}.learn")
        cb = self._init_callback(callback)
        env = self.env
        obs_start, act_start = self._obs_start, self._act_start
        sarsa = self._needs_next_action()
        if self._last_obs is None:
            self._last_obs = self._reset_env()
            self._ep_ret, self._ep_len, self._next_action = 0.0, 0, None
        cb.on_training_start(locals())
        with self._progress_bar(total, progress_bar) as bar:
            eps_block = lr_block = np.empty(0)
            for t in range(total):
                j = t % _SCHED_BLOCK
                if j == 0:  # schedules evaluated (vectorised) for the next block of steps
                    progress = np.arange(t, min(t + _SCHED_BLOCK, total)) / total
                    eps_block, lr_block = self._schedule_block(progress)
                eps, lr = float(eps_block[j]), float(lr_block[j])
                self.exploration_rate = eps
                s = int(self._last_obs) - obs_start
                if not (0 <= s < self.n_states):
                    raise ValueError(f"{name}.learn: the environment returned state {self._last_obs}, "
                                     f"outside {space_description(self.observation_space)}")
                a = self._next_action if (sarsa and self._next_action is not None) else self._behaviour_action(s, eps)
                obs2, reward, terminated, truncated, info = env.step(a + act_start)
                s2 = int(obs2) - obs_start
                if not (0 <= s2 < self.n_states):
                    raise ValueError(f"{name}.learn: the environment returned state {obs2}, "
                                     f"outside {space_description(self.observation_space)}")
                # SARSA: the next action (also drawn after a truncation, for the bootstrap only)
                a2 = self._behaviour_action(s2, eps) if (sarsa and not terminated) else None
                self._td_update(s, a, float(reward), s2, bool(terminated), a2, lr, eps)
                self.num_timesteps += 1
                self._ep_ret += float(reward)
                self._ep_len += 1
                self._next_action = a2
                if terminated or truncated:
                    self._record_episode(self._ep_ret, self._ep_len)
                    self._ep_ret, self._ep_len = 0.0, 0
                    self._last_obs = self._reset_env()
                    self._next_action = None
                else:
                    self._last_obs = obs2
                bar.update(1)
                if cb.callback is not None and not cb.on_step(locals()):
                    break
        cb.on_training_end()
        self._log_learn_end()
        return self

    # ------------------------------------------------------------------ persistence

    def _state_arrays(self) -> Dict[str, np.ndarray]:
        return {"q_table": self.q_table.copy(), "exploration_rate": np.asarray(self.exploration_rate, np.float64)}

    def _load_state_arrays(self, arrays: Dict[str, np.ndarray]) -> None:
        q = arrays.get("q_table")
        if not isinstance(q, np.ndarray) or q.shape != self.q_table.shape or q.dtype.kind != "f":
            raise ValueError(f"{type(self).__name__}.load: expected a float q_table of shape {self.q_table.shape}, "
                             f"given {None if q is None else (q.shape, str(q.dtype))}")
        self.q_table = q.astype(np.float64)
        if "exploration_rate" in arrays:
            self.exploration_rate = float(arrays["exploration_rate"])

    def _hyperparameters(self) -> Dict[str, Any]:
        return {"learning_rate": schedule_to_json(self.learning_rate), "epsilon": schedule_to_json(self.epsilon),
                "initial_q": self.initial_q}

    @classmethod
    def _construct(cls, env: Any, hyperparameters: Dict[str, Any]) -> "_TabularAgent":
        hp = dict(hyperparameters)
        for key in ("learning_rate", "epsilon"):
            v = hp.get(key)
            if v is None:
                raise ValueError(f"{cls.__name__}.load: the agent was saved with a custom {key} schedule, "
                                 f"which cannot be stored; pass {key}=... to load()")
            if not callable(v):
                hp[key] = schedule_from_json(v, f"{cls.__name__}.load: {key}")
        return cls(env, **hp)


class QLearning(_TabularAgent):
    """Tabular Q-learning (Watkins): ``target = r + gamma * max_a' Q[s', a']``.
    Parameters as in :class:`_TabularAgent`."""

    def _bootstrap(self, s2: int, eps: float, a2: Optional[int]) -> float:
        return float(self.q_table[s2].max())


class SARSA(_TabularAgent):
    """Tabular SARSA (on-policy): ``target = r + gamma * Q[s', a']`` with ``a'`` the
    epsilon-greedy action actually taken next. Parameters as in :class:`_TabularAgent`."""

    def _needs_next_action(self) -> bool:
        return True

    def _bootstrap(self, s2: int, eps: float, a2: Optional[int]) -> float:
        if a2 is None:
            raise ValueError("SARSA.update: expected next_action for a non-terminal transition, given None")
        return float(self.q_table[s2, a2])


class ExpectedSARSA(_TabularAgent):
    """Tabular Expected SARSA: ``target = r + gamma * sum_a' pi(a'|s') Q[s', a']`` under the
    epsilon-greedy policy. Parameters as in :class:`_TabularAgent`."""

    def _bootstrap(self, s2: int, eps: float, a2: Optional[int]) -> float:
        return float(expected_value_eps_greedy(self.q_table[s2], eps))


def expected_value_eps_greedy(q: np.ndarray, eps: float) -> Any:
    """``sum_a pi(a) q[..., a]`` for the epsilon-greedy policy on ``q`` (last axis the
    actions): ``eps / A`` to every action plus ``(1 - eps)`` split among the maximal ones."""
    q = np.asarray(q, np.float64)
    is_max = q == q.max(axis=-1, keepdims=True)
    greedy = np.where(is_max, q, 0.0).sum(axis=-1) / is_max.sum(axis=-1)
    return eps * q.mean(axis=-1) + (1.0 - eps) * greedy


__all__ = ["QLearning", "SARSA", "ExpectedSARSA", "expected_value_eps_greedy"]
