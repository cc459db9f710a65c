"""Experience storage for the deep agents: :class:`ReplayBuffer` (off-policy, DQN).

The buffer is a ring of preallocated NumPy arrays indexed (slot, env); adding a vector
step writes one slot for every environment at once and sampling draws all indices of a
batch with one generator call and gathers them with fancy indexing (no Python loop over
transitions).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import numpy as np

from .policies import space_kind

__all__ = ["ReplayBuffer", "ReplayBufferSamples"]


class ReplayBufferSamples(NamedTuple):
    """A batch of B transitions (NumPy arrays).

    observations / next_observations: (B, *obs_shape) in the observation space's dtype;
    actions: (B,) int64 for ``Discrete`` actions, (B, *action_shape) float32 for ``Box``;
    rewards: (B,) float32; dones: (B,) float32, 1 where the episode *terminated* (a
    time-limit truncation stores 0 so that the target bootstraps from ``next_observations``).
    """

    observations: np.ndarray
    actions: np.ndarray
    next_observations: np.ndarray
    dones: np.ndarray
    rewards: np.ndarray


def _positive_int(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
        raise ValueError(f"ReplayBuffer: {name} must be a positive int, given {v!r}")
    return int(v)


class ReplayBuffer:
    """A fixed-size ring buffer of transitions (s, a, r, s', terminated) from ``n_envs``
    environments stepped together.

    Args:
        buffer_size: total capacity in transitions; split into ``buffer_size // n_envs``
            slots of ``n_envs`` transitions each (as Stable-Baselines3). When full, the
            oldest slot is overwritten.
        observation_space, action_space: gymnasium-like ``Box`` or ``Discrete`` spaces
            (they fix the arrays' shapes and dtypes).
        n_envs: number of environments whose transitions one :meth:`add` call holds.

    Storage: ``observations`` / ``next_observations`` (slots, n_envs, *obs_shape),
    ``actions`` (slots, n_envs, *action_shape), ``rewards`` and ``dones``
    (slots, n_envs), allocated once.
    """

    def __init__(self, buffer_size: int, observation_space: Any, action_space: Any, n_envs: int = 1) -> None:
        buffer_size = _positive_int("buffer_size", buffer_size)
        self.n_envs = _positive_int("n_envs", n_envs)
        self.buffer_size = max(buffer_size // self.n_envs, 1)
        self.observation_space = observation_space
        self.action_space = action_space
        if space_kind(observation_space) == "discrete":
            self.obs_shape: tuple = ()
            obs_dtype = np.int64
        else:
            self.obs_shape = tuple(observation_space.shape)
            obs_dtype = np.float32 if np.dtype(observation_space.dtype).kind == "f" else observation_space.dtype
        if space_kind(action_space) == "discrete":
            self.action_shape: tuple = ()
            act_dtype = np.int64
        else:
            self.action_shape = tuple(action_space.shape)
            act_dtype = np.float32
        n, e = self.buffer_size, self.n_envs
        self.observations = np.zeros((n, e) + self.obs_shape, dtype=obs_dtype)
        self.next_observations = np.zeros((n, e) + self.obs_shape, dtype=obs_dtype)
        self.actions = np.zeros((n, e) + self.action_shape, dtype=act_dtype)
        self.rewards = np.zeros((n, e), dtype=np.float32)
        self.dones = np.zeros((n, e), dtype=np.float32)
        self.pos = 0
        self.full = False

    def size(self) -> int:
        """Number of transitions stored (slots filled times n_envs)."""
        return (self.buffer_size if self.full else self.pos) * self.n_envs

    def __len__(self) -> int:
        return self.size()

    def reset(self) -> None:
        """Empties the buffer (the arrays are kept)."""
        self.pos = 0
        self.full = False

    def _check(self, name: str, a: Any, shape: tuple) -> np.ndarray:
        arr = np.asarray(a)
        if arr.shape != shape:
            try:
                arr = arr.reshape(shape)
            except ValueError:
                raise ValueError(f"ReplayBuffer.add: {name} must have shape {shape}, given {arr.shape}") from None
        return arr

    def add(self, obs: Any, next_obs: Any, action: Any, reward: Any, terminated: Any) -> None:
        """Stores one vector step: ``obs`` and ``next_obs`` (n_envs, *obs_shape), ``action``
        (n_envs, *action_shape), ``reward`` and ``terminated`` (n_envs,). For an episode that
        ended, ``next_obs`` is its final observation (not the reset one)."""
        e = self.n_envs
        p = self.pos
        self.observations[p] = self._check("obs", obs, (e,) + self.obs_shape)
        self.next_observations[p] = self._check("next_obs", next_obs, (e,) + self.obs_shape)
        self.actions[p] = self._check("action", action, (e,) + self.action_shape)
        self.rewards[p] = self._check("reward", reward, (e,))
        self.dones[p] = self._check("terminated", terminated, (e,))
        self.pos = p + 1
        if self.pos == self.buffer_size:
            self.full = True
            self.pos = 0

    def sample(self, batch_size: int, rng: Optional[np.random.Generator] = None) -> ReplayBufferSamples:
        """``batch_size`` transitions drawn uniformly with replacement from ``rng`` (default:
        the library generator)."""
        batch_size = _positive_int("batch_size", batch_size)
        filled = self.buffer_size if self.full else self.pos
        if filled == 0:
            raise ValueError("ReplayBuffer.sample: the buffer is empty")
        if rng is None:
            from .._random import generator

            rng = generator()
        slots = rng.integers(0, filled, size=batch_size)
        envs = rng.integers(0, self.n_envs, size=batch_size) if self.n_envs > 1 else np.zeros(batch_size, dtype=np.int64)
        return ReplayBufferSamples(
            self.observations[slots, envs],
            self.actions[slots, envs],
            self.next_observations[slots, envs],
            self.dones[slots, envs],
            self.rewards[slots, envs],
        )
