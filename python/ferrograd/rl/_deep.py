"""Machinery shared by the deep agents (DQN, REINFORCE, A2C): one stepping interface over
a single gymnasium environment or a vector environment, seeded network construction, flat
parameter storage for target networks, and state-dict / optimizer-state flattening for
``save`` / ``load``.

:class:`VecEnvAdapter` always presents *same-step* auto-reset: ``step`` returns the
observations to act on next (the reset observation for a sub-environment whose episode
just ended) and, separately, the final observations of the episodes that ended, which
bootstrapping after a truncation and the replay buffer need. Vector environments in
gymnasium's default next-step mode (or with auto-reset disabled) are reset right away with
``reset(options={"reset_mask": done})``; same-step ones hand their final observations in
``info["final_obs"]``. A single environment is stepped and reset directly.

It also keeps each sub-environment's running episode return and length.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional

import numpy as np

from .. import _random
from .base import check_env, discrete_start, is_vector_env
from .policies import space_kind

__all__ = ["VecEnvAdapter", "seeded_init", "flatten_parameters"]


def _mode_name(env: Any) -> str:
    mode = getattr(env, "metadata", {}).get("autoreset_mode", None)
    if mode is None:
        mode = getattr(env, "autoreset_mode", None)
    if mode is None:
        return "NextStep"
    return str(getattr(mode, "value", mode))


class VecEnvAdapter:
    """Steps ``env`` (a gymnasium ``Env`` or ``VectorEnv``) as a batch of ``num_envs``.
    Actions are given 0-based for a ``Discrete(n, start)`` space (the start is added) and
    clipped to the bounds of a ``Box``.

    Attributes: ``num_envs``, ``observation_space`` / ``action_space`` (of one
    sub-environment), ``vector`` (whether ``env`` is a vector environment).
    """

    def __init__(self, env: Any, owner: str) -> None:
        self.env = env
        self.owner = owner
        self.vector = is_vector_env(env)
        if self.vector:
            self.num_envs = int(env.num_envs)
            self.observation_space = env.single_observation_space
            self.action_space = env.single_action_space
            self.mode = _mode_name(env)
        else:
            check_env(env, owner)
            self.num_envs = 1
            self.observation_space = env.observation_space
            self.action_space = env.action_space
            self.mode = "SameStep"
        self.action_kind = space_kind(self.action_space, owner)
        space_kind(self.observation_space, owner)
        self._act_start = discrete_start(self.action_space) if self.action_kind == "discrete" else 0
        if self.action_kind == "box":
            self._low = np.asarray(self.action_space.low, dtype=np.float32)
            self._high = np.asarray(self.action_space.high, dtype=np.float32)
        self.obs: Optional[np.ndarray] = None
        self.episode_returns = np.zeros(self.num_envs, dtype=np.float64)
        self.episode_lengths = np.zeros(self.num_envs, dtype=np.int64)

    def reset(self, seed: Optional[int] = None) -> np.ndarray:
        """Resets every sub-environment (seeded ``seed, seed + 1, ...`` when given) and
        returns the observations (num_envs, *obs_shape)."""
        if self.vector:
            obs, _ = self.env.reset(seed=seed)
            obs = np.asarray(obs)
        else:
            o, _ = self.env.reset(seed=seed)
            obs = np.asarray(o)[None]
        self.obs = obs
        self.episode_returns[:] = 0
        self.episode_lengths[:] = 0
        return obs

    def _env_actions(self, actions: np.ndarray) -> Any:
        if self.action_kind == "box":
            return np.clip(actions, self._low, self._high)
        return actions + self._act_start if self._act_start else actions

    def step(self, actions: np.ndarray) -> tuple:
        """Steps with ``actions`` (num_envs, *action_shape).

        Returns (next_obs, rewards, terminated, truncated, final_obs, finished) where
        next_obs (num_envs, *obs_shape) are the observations to act on next, rewards
        (num_envs,) float64, terminated / truncated (num_envs,) bool, final_obs a copy of
        next_obs with the rows of ended episodes replaced by their final observations, and
        finished a list of (env index, episode return, episode length) for the episodes that
        ended in this step.
        """
        a = self._env_actions(actions)
        if self.vector:
            obs, rewards, term, trunc, info = self.env.step(a)
            obs = np.asarray(obs)
            rewards = np.asarray(rewards, dtype=np.float64)
            term = np.asarray(term, dtype=bool)
            trunc = np.asarray(trunc, dtype=bool)
            done = term | trunc
            final = obs
            if done.any():
                final = obs.copy()
                if self.mode == "SameStep":
                    fo = info.get("final_obs")
                    if fo is None:
                        raise ValueError(
                            f"{self.owner}: a same-step auto-reset vector environment must report the final "
                            "observations in info['final_obs'] (gymnasium's convention); none given"
                        )
                    mask = info.get("_final_obs", done)
                    for i in np.flatnonzero(mask):
                        final[i] = fo[i]
                else:
                    obs, _ = self.env.reset(options={"reset_mask": done})
                    obs = np.asarray(obs)
        else:
            act = a[0]
            if self.action_kind == "discrete":
                act = int(act)
            o, r, te, tr, _ = self.env.step(act)
            rewards = np.array([float(r)])
            term = np.array([bool(te)])
            trunc = np.array([bool(tr)])
            done = term | trunc
            obs = np.asarray(o)[None]
            final = obs
            if done[0]:
                o, _ = self.env.reset()
                obs = np.asarray(o)[None]
        self.episode_returns += rewards
        self.episode_lengths += 1
        finished = []
        if done.any():
            for i in np.flatnonzero(done):
                finished.append((int(i), float(self.episode_returns[i]), int(self.episode_lengths[i])))
            self.episode_returns[done] = 0
            self.episode_lengths[done] = 0
        self.obs = obs
        return obs, rewards, term, trunc, final, finished


# ----------------------------------------------------------------------------- agent helpers


@contextmanager
def seeded_init(rng: np.random.Generator) -> Iterator[None]:
    """Within the block, the library generator (which network initialisers draw from) is a
    fresh one seeded from ``rng``; the previous one is restored afterwards, so an agent's
    networks depend on its own seed and the caller's generator state is left alone."""
    with _random.using_seed(int(rng.integers(0, 2**63 - 1))):
        yield


def flatten_parameters(module: Any) -> np.ndarray:
    """Moves every parameter of ``module`` into one contiguous array and makes each
    ``Parameter.data`` a view of it (same values, same shapes); returns the flat array.
    Copying or averaging whole networks (target-network updates) is then one array op."""
    params = list(module.parameters())
    if not params:
        raise ValueError(f"{type(module).__name__}: the network has no parameters")
    dt = params[0].data.dtype
    if any(p.data.dtype != dt for p in params):
        raise ValueError(f"{type(module).__name__}: expected parameters of one dtype, given {sorted({str(p.data.dtype) for p in params})}")
    total = sum(p.data.size for p in params)
    flat = np.empty(total, dtype=dt)
    o = 0
    for p in params:
        n = p.data.size
        flat[o : o + n] = p.data.reshape(-1)
        p.data = flat[o : o + n].reshape(p.data.shape)
        o += n
    return flat


def is_flat_view(module: Any, flat: np.ndarray) -> bool:
    """Whether every parameter of ``module`` is still a view of ``flat``."""
    return all(p.data.base is flat for p in module.parameters())


def module_arrays(prefix: str, module: Any) -> dict:
    """``module``'s state dict with keys prefixed by ``prefix + '.'``."""
    return {f"{prefix}.{k}": v for k, v in module.state_dict().items()}


def load_module_arrays(prefix: str, module: Any, arrays: dict) -> None:
    """Loads the ``prefix.*`` entries of ``arrays`` into ``module`` (strict)."""
    pre = prefix + "."
    module.load_state_dict({k[len(pre):]: v for k, v in arrays.items() if k.startswith(pre)})


def optimizer_arrays(prefix: str, optimizer: Any) -> dict:
    """The optimizer's per-parameter state as flat arrays ``prefix.<index>.<name>``."""
    out = {}
    for i, st in optimizer.state_dict()["state"].items():
        for k, v in st.items():
            out[f"{prefix}.{i}.{k}"] = np.asarray(v)
    return out


def load_optimizer_arrays(prefix: str, optimizer: Any, arrays: dict) -> None:
    """Restores the state written by :func:`optimizer_arrays` (hyper-parameters stay)."""
    pre = prefix + "."
    state: dict = {}
    for key, v in arrays.items():
        if not key.startswith(pre):
            continue
        idx, name = key[len(pre):].split(".", 1)
        state.setdefault(int(idx), {})[name] = float(v) if np.ndim(v) == 0 else np.asarray(v)
    sd = optimizer.state_dict()
    sd["state"] = state
    optimizer.load_state_dict(sd)


def make_lr(owner: str, learning_rate: Any) -> Callable:
    """A learning rate as a function of the fraction ``t`` of the current ``learn`` call
    done (0 at its start, 1 at its end), the convention of :mod:`ferrograd.rl.schedules`
    (a ``LinearSchedule`` works as is; Stable-Baselines3's schedules take ``1 - t``).
    A number is a constant rate."""
    if callable(learning_rate):
        return learning_rate
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float, np.integer, np.floating)):
        raise ValueError(f"{owner}: learning_rate must be a positive number or a schedule, given {learning_rate!r}")
    lr = float(learning_rate)
    if not lr > 0 or not np.isfinite(lr):
        raise ValueError(f"{owner}: learning_rate must be positive, given {learning_rate!r}")
    return lambda t: lr


def set_lr(optimizer: Any, lr: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = float(lr)
