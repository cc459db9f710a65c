"""The interface every ferrograd agent shares, after Stable-Baselines3's.

::

    agent = QLearning(env, learning_rate=0.1, gamma=0.99, seed=0)
    agent.learn(total_timesteps=100_000)
    action, _ = agent.predict(obs, deterministic=True)
    agent.save("agent.safetensors")
    agent = QLearning.load("agent.safetensors", env=env)
    mean, std = evaluate_policy(agent, env, n_eval_episodes=100)

An environment is anything with gymnasium's API: ``reset(seed=...) -> (obs, info)``,
``step(action) -> (obs, reward, terminated, truncated, info)``, ``observation_space`` and
``action_space``. Spaces are recognised by duck typing (``.n`` for a discrete space;
``.low`` / ``.high`` / ``.shape`` for a box), so this module never imports gymnasium;
gymnasium (the ``rl`` extra) is imported lazily only where a space must be built.

Subclasses implement :meth:`BaseAgent.learn`, :meth:`BaseAgent._predict` (a batch of
observations -> a batch of actions) and the three persistence hooks
:meth:`BaseAgent._state_arrays`, :meth:`BaseAgent._load_state_arrays` and
:meth:`BaseAgent._hyperparameters`. The learning-loop helpers (:meth:`BaseAgent._reset_env`,
:meth:`BaseAgent._init_callback`, :meth:`BaseAgent._progress_bar`,
:meth:`BaseAgent._record_episode`) are shared so every agent seeds, reports and logs alike.

Saving writes one safetensors file (through :mod:`ferrograd.serialization`: atomic, no
pickle): the arrays from ``_state_arrays()`` and the history (episode returns, lengths,
timesteps) as tensors, plus JSON metadata (class name, hyper-parameters, timestep count,
generator state, the spaces).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Dict, Iterable, Optional, Tuple, Union

import numpy as np

from .. import _random
from .. import serialization

PathLike = Union[str, "os.PathLike[str]"]

_FORMAT = "ferrograd.rl.agent"
_FORMAT_VERSION = 1


# ============================================================================ spaces


def is_discrete_space(space: Any) -> bool:
    """True for a gymnasium ``Discrete`` space (or a duck-typed stand-in): it has an
    integer ``n`` and a scalar shape, and no ``low`` / ``high`` bounds."""
    if space is None or not hasattr(space, "n") or hasattr(space, "low") or hasattr(space, "nvec"):
        return False
    shape = getattr(space, "shape", ())
    return shape is None or tuple(shape) == ()


def is_box_space(space: Any) -> bool:
    """True for a gymnasium ``Box`` space (or a stand-in): it has ``low``, ``high`` and
    ``shape``."""
    return space is not None and all(hasattr(space, a) for a in ("low", "high", "shape"))


def space_description(space: Any) -> str:
    """A short human-readable description of a space for error messages."""
    if is_discrete_space(space):
        start = int(getattr(space, "start", 0))
        return f"Discrete({int(space.n)})" if start == 0 else f"Discrete({int(space.n)}, start={start})"
    if is_box_space(space):
        return f"Box(shape={tuple(space.shape)}, dtype={np.dtype(getattr(space, 'dtype', np.float32))})"
    return repr(space)


def discrete_n(space: Any, where: str = "space") -> int:
    """The number of elements of a discrete space; ValueError for anything else."""
    if not is_discrete_space(space):
        raise ValueError(f"{where}: expected a Discrete space, given {space_description(space)}")
    return int(space.n)


def discrete_start(space: Any) -> int:
    """The first element of a discrete space (gymnasium's ``Discrete(n, start)``; 0 otherwise)."""
    return int(getattr(space, "start", 0))


def _short(x: Any) -> str:
    r = repr(x)
    return r if len(r) <= 80 else r[:77] + "..."


def check_action(space: Any, action: Any, where: str = "action") -> None:
    """Raises ValueError naming the space and the action when ``action`` (one action, not a
    batch) lies outside ``space``."""
    if is_discrete_space(space):
        a = np.asarray(action)
        start, n = discrete_start(space), int(space.n)
        ok = a.shape == () and a.dtype.kind in "iub"
        if not ok and a.shape == () and a.dtype.kind == "f":
            ok = bool(np.isfinite(a)) and float(a) == math.floor(float(a))
        if not ok or not (start <= int(a) < start + n):
            raise ValueError(
                f"{where}: expected an integer in [{start}, {start + n}) for {space_description(space)}, "
                f"given {_short(action)}"
            )
        return
    if is_box_space(space):
        a = np.asarray(action)
        shape = tuple(space.shape)
        if a.shape != shape:
            raise ValueError(
                f"{where}: expected an action of shape {shape} for {space_description(space)}, "
                f"given shape {a.shape}"
            )
        if a.dtype.kind not in "iufb" or not np.all(np.isfinite(a)):
            raise ValueError(f"{where}: expected finite numbers for {space_description(space)}, given {_short(action)}")
        low, high = np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)
        af = a.astype(np.float64)
        if np.any(af < low) or np.any(af > high):
            raise ValueError(
                f"{where}: expected an action within [low, high] of {space_description(space)}, given {_short(action)}"
            )
        return
    contains = getattr(space, "contains", None)
    if contains is not None and not contains(action):
        raise ValueError(f"{where}: action {_short(action)} is not in {space_description(space)}")


def check_observation(space: Any, observation: Any, where: str = "observation") -> Tuple[np.ndarray, bool]:
    """Checks an observation (or a batch of them) against ``space``.

    Returns ``(array, vectorized)``: the observation as an array with a leading batch axis
    (``(n,)`` ints for a discrete space, ``(n, *space.shape)`` for a box) and whether the
    input was already a batch. Raises ValueError naming the expected and the given shape,
    or the valid range of a discrete space.
    """
    obs = np.asarray(observation)
    if is_discrete_space(space):
        start, n = discrete_start(space), int(space.n)
        if obs.ndim > 1:
            raise ValueError(
                f"{where}: expected a scalar state or a 1-d batch of states for {space_description(space)}, "
                f"given shape {obs.shape}"
            )
        if obs.dtype.kind not in "iub":
            if obs.dtype.kind == "f" and obs.size and np.all(np.isfinite(obs)) and np.all(obs == np.floor(obs)):
                obs = obs.astype(np.int64)
            elif obs.size:
                raise ValueError(f"{where}: expected integer states for {space_description(space)}, given dtype {obs.dtype}")
        obs = obs.astype(np.int64, copy=False)
        if obs.size and (obs.min() < start or obs.max() >= start + n):
            raise ValueError(
                f"{where}: expected states in [{start}, {start + n}) for {space_description(space)}, given {_short(observation)}"
            )
        vectorized = obs.ndim == 1
        return (obs if vectorized else obs.reshape(1)), vectorized
    if is_box_space(space):
        shape = tuple(space.shape)
        if obs.shape == shape:
            return obs.reshape((1,) + shape), False
        if obs.ndim == len(shape) + 1 and obs.shape[1:] == shape:
            return obs, True
        raise ValueError(
            f"{where}: expected shape {shape} or (batch, {', '.join(map(str, shape))}) for "
            f"{space_description(space)}, given shape {obs.shape}"
        )
    raise ValueError(f"{where}: unsupported observation space {space_description(space)}")


class DiscreteSpace:
    """A minimal stand-in for ``gymnasium.spaces.Discrete`` used when gymnasium is not
    installed: the integers ``start, ..., start + n - 1``; ``.n``, ``.start``, ``.shape == ()``,
    ``.dtype``, ``.sample()``, ``.contains(x)`` and ``.seed(seed)`` as in gymnasium."""

    def __init__(self, n: int, start: int = 0, seed: Optional[int] = None) -> None:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"DiscreteSpace: expected a positive integer n, given {n!r}")
        self.n = int(n)
        self.start = int(start)
        self.shape: Tuple[int, ...] = ()
        self.dtype = np.dtype(np.int64)
        self.np_random = np.random.default_rng(seed)

    def seed(self, seed: Optional[int] = None) -> list:
        self.np_random = np.random.default_rng(seed)
        return [seed]

    def sample(self) -> np.int64:
        return np.int64(self.start + self.np_random.integers(self.n))

    def contains(self, x: Any) -> bool:
        a = np.asarray(x)
        if a.shape != () or a.dtype.kind not in "iu":
            return False
        return self.start <= int(a) < self.start + self.n

    def __contains__(self, x: Any) -> bool:
        return self.contains(x)

    def __eq__(self, other: Any) -> bool:
        return is_discrete_space(other) and int(other.n) == self.n and discrete_start(other) == self.start

    def __hash__(self) -> int:
        return hash((self.n, self.start))

    def __repr__(self) -> str:
        return f"Discrete({self.n})" if self.start == 0 else f"Discrete({self.n}, start={self.start})"


class BoxSpace:
    """A minimal stand-in for ``gymnasium.spaces.Box`` used when gymnasium is not installed
    (and for re-creating a saved agent's spaces without an environment): ``.low``,
    ``.high``, ``.shape``, ``.dtype``, ``.sample()`` (uniform where bounded, normal where
    not), ``.contains(x)``."""

    def __init__(self, low: Any, high: Any, shape: Optional[Tuple[int, ...]] = None, dtype: Any = np.float32,
                 seed: Optional[int] = None) -> None:
        self.dtype = np.dtype(dtype)
        if shape is None:
            shape = np.broadcast(np.asarray(low), np.asarray(high)).shape
        self.shape = tuple(int(s) for s in shape)
        self.low = np.broadcast_to(np.asarray(low, self.dtype), self.shape).copy()
        self.high = np.broadcast_to(np.asarray(high, self.dtype), self.shape).copy()
        if np.any(self.low > self.high):
            raise ValueError("BoxSpace: expected low <= high everywhere")
        self.np_random = np.random.default_rng(seed)

    def seed(self, seed: Optional[int] = None) -> list:
        self.np_random = np.random.default_rng(seed)
        return [seed]

    def sample(self) -> np.ndarray:
        lo, hi = self.low.astype(np.float64), self.high.astype(np.float64)
        bounded = np.isfinite(lo) & np.isfinite(hi)
        z = self.np_random.standard_normal(self.shape)
        u = self.np_random.uniform(size=self.shape)
        out = np.where(bounded, lo + u * np.where(bounded, hi - lo, 0.0), z)
        out = np.where(np.isfinite(lo) & ~np.isfinite(hi), lo + np.abs(z), out)
        out = np.where(~np.isfinite(lo) & np.isfinite(hi), hi - np.abs(z), out)
        return out.astype(self.dtype)

    def contains(self, x: Any) -> bool:
        a = np.asarray(x)
        return a.shape == self.shape and bool(np.all(a >= self.low) and np.all(a <= self.high))

    def __contains__(self, x: Any) -> bool:
        return self.contains(x)

    def __repr__(self) -> str:
        return f"Box(shape={self.shape}, dtype={self.dtype})"


def make_discrete_space(n: int, start: int = 0) -> Any:
    """``gymnasium.spaces.Discrete(n, start)`` when gymnasium is importable, else a
    :class:`DiscreteSpace` with the same interface."""
    try:
        from gymnasium.spaces import Discrete
    except ImportError:
        return DiscreteSpace(n, start)
    return Discrete(int(n), start=int(start))


def make_box_space(low: Any, high: Any, shape: Optional[Tuple[int, ...]] = None, dtype: Any = np.float32) -> Any:
    """``gymnasium.spaces.Box`` when gymnasium is importable, else a :class:`BoxSpace`."""
    try:
        from gymnasium.spaces import Box
    except ImportError:
        return BoxSpace(low, high, shape, dtype)
    low_a, high_a = np.asarray(low, dtype), np.asarray(high, dtype)
    if shape is None:
        shape = np.broadcast(low_a, high_a).shape
    return Box(low=np.broadcast_to(low_a, shape).copy(), high=np.broadcast_to(high_a, shape).copy(),
               shape=tuple(shape), dtype=dtype)


def _space_to_json(space: Any, arrays: Dict[str, np.ndarray], prefix: str) -> Optional[dict]:
    if is_discrete_space(space):
        return {"type": "Discrete", "n": int(space.n), "start": discrete_start(space)}
    if is_box_space(space):
        arrays[prefix + ".low"] = np.asarray(space.low).copy()
        arrays[prefix + ".high"] = np.asarray(space.high).copy()
        return {"type": "Box", "shape": list(space.shape), "dtype": str(np.dtype(getattr(space, "dtype", np.float32)))}
    return None


def _space_from_json(desc: Optional[dict], arrays: Dict[str, np.ndarray], prefix: str) -> Any:
    if desc is None:
        return None
    if desc.get("type") == "Discrete":
        return make_discrete_space(int(desc["n"]), int(desc.get("start", 0)))
    if desc.get("type") == "Box":
        return make_box_space(arrays[prefix + ".low"], arrays[prefix + ".high"], tuple(desc["shape"]), np.dtype(desc["dtype"]))
    raise ValueError(f"load: unknown space description {desc!r}")


def _same_space(a: Any, b: Any) -> bool:
    if is_discrete_space(a) and is_discrete_space(b):
        return int(a.n) == int(b.n) and discrete_start(a) == discrete_start(b)
    if is_box_space(a) and is_box_space(b):
        return (tuple(a.shape) == tuple(b.shape) and np.array_equal(np.asarray(a.low), np.asarray(b.low))
                and np.array_equal(np.asarray(a.high), np.asarray(b.high)))
    return a is None or b is None


# ============================================================================ environments


def is_vector_env(env: Any) -> bool:
    """True for a gymnasium vector environment (it has ``num_envs`` and
    ``single_observation_space``)."""
    return hasattr(env, "num_envs") and hasattr(env, "single_observation_space")


def check_env(env: Any, where: str = "agent") -> None:
    """Checks that ``env`` has gymnasium's API (reset, step, observation_space,
    action_space); TypeError naming what is missing otherwise."""
    missing = [a for a in ("reset", "step", "observation_space", "action_space") if not hasattr(env, a)]
    if missing:
        raise TypeError(
            f"{where}: expected an environment with gymnasium's API (reset, step, observation_space, "
            f"action_space), given {type(env).__name__} without {', '.join(missing)}"
        )
    if not callable(env.reset) or not callable(env.step):
        raise TypeError(f"{where}: the environment's reset and step must be callable")


class _DetachedEnv:
    """Placeholder environment of an agent loaded without one: it carries the saved spaces
    so ``predict`` works, and raises on ``reset`` / ``step`` (``learn`` needs a real env:
    pass ``env=`` to ``load`` or call ``set_env``)."""

    def __init__(self, observation_space: Any, action_space: Any) -> None:
        self.observation_space = observation_space
        self.action_space = action_space

    def reset(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("this agent was loaded without an environment; pass env= to load() or call set_env()")

    step = reset


# ============================================================================ callbacks


class _CallbackHandle:
    """Uniform view of a user callback: a callable ``f(locals_dict) -> bool`` (False
    stops training; None continues) or an object with ``on_step()`` (and optionally
    ``on_training_start(locals, globals)`` / ``on_training_end()``) whose ``locals`` and
    ``model`` attributes are set before each call, as in Stable-Baselines3."""

    def __init__(self, callback: Any, agent: "BaseAgent") -> None:
        self.callback = callback
        self.agent = agent
        if callback is not None and not callable(callback) and not hasattr(callback, "on_step"):
            raise TypeError(
                f"{type(agent).__name__}.learn: expected callback to be None, a callable(locals) -> bool or "
                f"an object with on_step(), given {type(callback).__name__}"
            )
        self.is_object = callback is not None and hasattr(callback, "on_step")
        if self.is_object:
            try:
                callback.model = agent
            except AttributeError:
                pass

    def on_training_start(self, local_vars: Dict[str, Any]) -> None:
        if self.is_object and hasattr(self.callback, "on_training_start"):
            try:
                self.callback.locals = local_vars
            except AttributeError:
                pass
            self.callback.on_training_start(local_vars, {})

    def on_step(self, local_vars: Dict[str, Any]) -> bool:
        """Calls the callback; False when it asks training to stop."""
        cb = self.callback
        if cb is None:
            return True
        if self.is_object:
            try:
                cb.locals = local_vars
                cb.num_timesteps = self.agent.num_timesteps
            except AttributeError:
                pass
            result = cb.on_step()
        else:
            result = cb(local_vars)
        return result is None or bool(result)

    def on_training_end(self) -> None:
        if self.is_object and hasattr(self.callback, "on_training_end"):
            self.callback.on_training_end()


class _ProgressBar:
    """A tqdm progress bar over timesteps when enabled and tqdm is importable; otherwise a
    no-op. Use as a context manager; ``update(n)`` advances it."""

    def __init__(self, total: int, enabled: bool, desc: str) -> None:
        self.bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, desc=desc, unit="step", mininterval=0.5, leave=False)

    def update(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def __enter__(self) -> "_ProgressBar":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.close()


# ============================================================================ agents


def _check_gamma(gamma: Any, where: str) -> float:
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float, np.integer, np.floating)):
        raise TypeError(f"{where}: expected gamma to be a number in [0, 1], given {type(gamma).__name__}")
    g = float(gamma)
    if not (0.0 <= g <= 1.0):
        raise ValueError(f"{where}: expected gamma in [0, 1], given {gamma}")
    return g


def check_total_timesteps(total_timesteps: Any, where: str) -> int:
    """Validates ``learn``'s ``total_timesteps`` (a non-negative integer)."""
    if isinstance(total_timesteps, bool) or not isinstance(total_timesteps, (int, np.integer)):
        raise TypeError(f"{where}: expected total_timesteps to be an integer, given {type(total_timesteps).__name__}")
    if total_timesteps < 0:
        raise ValueError(f"{where}: expected total_timesteps >= 0, given {total_timesteps}")
    return int(total_timesteps)


class BaseAgent:
    """Base class of ferrograd's agents (Stable-Baselines3's interface).

    Parameters
    ----------
    env : an environment with gymnasium's API (or a gymnasium vector environment, for the
        agents that support one).
    gamma : discount factor in [0, 1].
    seed : seed of the agent's generator ``self.rng`` (exploration, the environment's first
        reset, sampling). None draws the seed from ferrograd's generator, so
        ``ferrograd.manual_seed`` makes the run reproducible too.
    verbose : 0 silent, 1 a line per finished ``learn``, 2 a line per episode.

    Attributes: ``env``, ``observation_space``, ``action_space``, ``gamma``, ``seed``,
    ``verbose``, ``num_timesteps`` (environment steps taken by ``learn`` so far),
    ``history`` (``{"episode_returns", "episode_lengths", "timesteps"}``: one entry per
    finished training episode; ``timesteps`` is ``num_timesteps`` at the episode's end),
    ``rng`` (a ``numpy.random.Generator``).
    """

    def __init__(self, env: Any, *, gamma: float = 0.99, seed: Optional[int] = None, verbose: int = 0) -> None:
        name = type(self).__name__
        check_env(env, name)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"{name}: expected seed to be None or a non-negative integer, given {seed!r}")
        if isinstance(verbose, bool) or not isinstance(verbose, (int, np.integer)) or verbose < 0:
            raise ValueError(f"{name}: expected verbose to be a non-negative integer, given {verbose!r}")
        self.env = env
        self.gamma = _check_gamma(gamma, name)
        self.seed = None if seed is None else int(seed)
        self.verbose = int(verbose)
        self.num_timesteps = 0
        self.history: Dict[str, list] = {"episode_returns": [], "episode_lengths": [], "timesteps": []}
        base_seed = self.seed if self.seed is not None else _random.kernel_seed()
        self.rng = np.random.Generator(np.random.PCG64(base_seed))
        self._env_seeded = False
        self._last_obs: Any = None  # observation to continue from between learn() calls

    # ------------------------------------------------------------------ spaces and env

    @property
    def observation_space(self) -> Any:
        env = self.env
        return env.single_observation_space if is_vector_env(env) else env.observation_space

    @property
    def action_space(self) -> Any:
        env = self.env
        return env.single_action_space if is_vector_env(env) else env.action_space

    def get_env(self) -> Any:
        return self.env

    def set_env(self, env: Any) -> None:
        """Replaces the environment (spaces must match the agent's)."""
        check_env(env, type(self).__name__)
        obs_sp = env.single_observation_space if is_vector_env(env) else env.observation_space
        act_sp = env.single_action_space if is_vector_env(env) else env.action_space
        if not _same_space(obs_sp, self.observation_space) or not _same_space(act_sp, self.action_space):
            raise ValueError(
                f"{type(self).__name__}.set_env: expected spaces {space_description(self.observation_space)} / "
                f"{space_description(self.action_space)}, given {space_description(obs_sp)} / {space_description(act_sp)}"
            )
        self.env = env
        self._env_seeded = False
        self._last_obs = None

    def _reset_env(self) -> Any:
        """Resets ``self.env``; the first reset is seeded from ``self.rng`` (and seeds the
        action space), so runs with the same seed reproduce. Returns the observation."""
        if not self._env_seeded:
            s = int(self.rng.integers(0, 2**31 - 1))
            obs, _ = self.env.reset(seed=s)
            space = self.env.action_space
            if hasattr(space, "seed"):
                space.seed(s + 1)
            self._env_seeded = True
        else:
            obs, _ = self.env.reset()
        return obs

    # ------------------------------------------------------------------ learning helpers

    def _init_callback(self, callback: Any) -> _CallbackHandle:
        return _CallbackHandle(callback, self)

    def _progress_bar(self, total: int, enabled: bool) -> _ProgressBar:
        return _ProgressBar(total, bool(enabled), type(self).__name__)

    def _record_episode(self, ret: float, length: int) -> None:
        """Appends a finished training episode to ``self.history``."""
        self.history["episode_returns"].append(float(ret))
        self.history["episode_lengths"].append(int(length))
        self.history["timesteps"].append(int(self.num_timesteps))
        if self.verbose >= 2:
            print(f"{type(self).__name__}: episode {len(self.history['episode_returns'])} "
                  f"return {float(ret):.3f} length {int(length)} timesteps {self.num_timesteps}")

    def _log_learn_end(self) -> None:
        if self.verbose >= 1:
            r = self.history["episode_returns"][-100:]
            mean = float(np.mean(r)) if r else float("nan")
            print(f"{type(self).__name__}: {self.num_timesteps} timesteps, "
                  f"{len(self.history['episode_returns'])} episodes, mean return (last 100) {mean:.3f}")

    # ------------------------------------------------------------------ public API

    def learn(self, total_timesteps: int, callback: Any = None, progress_bar: bool = True) -> "BaseAgent":
        """Trains for ``total_timesteps`` environment steps (continuing where the last call
        stopped); ``callback`` is a callable(locals_dict) -> bool (False stops) or an object
        with ``on_step()``. Returns ``self``."""
        raise NotImplementedError(f"{type(self).__name__}.learn is not implemented")

    def _predict(self, observations: np.ndarray, deterministic: bool) -> np.ndarray:
        """Actions for a batch of (checked) observations; implemented by subclasses."""
        raise NotImplementedError(f"{type(self).__name__}._predict is not implemented")

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> Tuple[np.ndarray, None]:
        """The agent's action for ``observation`` (one observation, or a batch with a leading
        axis). Returns ``(action, state)`` as Stable-Baselines3 does: ``action`` has shape
        ``()`` (discrete) or ``action_space.shape`` for one observation, a leading batch axis
        for a batch; ``state`` is passed through (no recurrent policies here). Raises
        ValueError when the observation does not fit the observation space."""
        obs, vectorized = check_observation(self.observation_space, observation, f"{type(self).__name__}.predict")
        actions = np.asarray(self._predict(obs, bool(deterministic)))
        if not vectorized:
            actions = actions[0]
        return actions, state

    # ------------------------------------------------------------------ persistence hooks

    def _state_arrays(self) -> Dict[str, np.ndarray]:
        """The learned state as named arrays (saved as safetensors tensors)."""
        raise NotImplementedError(f"{type(self).__name__}._state_arrays is not implemented")

    def _load_state_arrays(self, arrays: Dict[str, np.ndarray]) -> None:
        """Restores what :meth:`_state_arrays` returned."""
        raise NotImplementedError(f"{type(self).__name__}._load_state_arrays is not implemented")

    def _hyperparameters(self) -> Dict[str, Any]:
        """JSON-able constructor keyword arguments (besides env, gamma, seed, verbose, which
        the base class adds) that rebuild an equivalent untrained agent."""
        raise NotImplementedError(f"{type(self).__name__}._hyperparameters is not implemented")

    @classmethod
    def _construct(cls, env: Any, hyperparameters: Dict[str, Any]) -> "BaseAgent":
        """Builds the agent on ``load``; agents whose constructor takes more than ``env``
        positionally (``DQN(policy, env, ...)``) override this."""
        return cls(env, **hyperparameters)

    # ------------------------------------------------------------------ save / load

    def save(self, path: PathLike) -> None:
        """Saves the agent to ``path`` (safetensors, atomic, no pickle): the arrays of
        ``_state_arrays()`` and the history as tensors, and JSON metadata (class name,
        hyper-parameters, timestep count, generator state and spaces)."""
        name = type(self).__name__
        arrays = {k: np.asarray(v) for k, v in self._state_arrays().items()}
        for k in arrays:
            if not isinstance(k, str) or k.startswith("__"):
                raise ValueError(f"{name}.save: state array names must be str not starting with '__', given {k!r}")
        space_arrays: Dict[str, np.ndarray] = {}
        hp = dict(self._hyperparameters())
        hp.update(gamma=self.gamma, seed=self.seed, verbose=self.verbose)
        meta = {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "class": name,
            "hyperparameters": hp,
            "num_timesteps": int(self.num_timesteps),
            "rng_state": json.dumps(self.rng.bit_generator.state),
            "observation_space": _space_to_json(self.observation_space, space_arrays, "observation_space"),
            "action_space": _space_to_json(self.action_space, space_arrays, "action_space"),
        }
        try:
            json.dumps(meta, allow_nan=True)
        except TypeError as e:
            raise TypeError(f"{name}.save: hyperparameters must be JSON-serialisable ({e})") from None
        # the history as arrays (compact; a JSON list of 10^5 episodes would bloat the header)
        history = {
            "episode_returns": np.asarray(self.history["episode_returns"], np.float64).reshape(-1),
            "episode_lengths": np.asarray(self.history["episode_lengths"], np.int64).reshape(-1),
            "timesteps": np.asarray(self.history["timesteps"], np.int64).reshape(-1),
        }
        serialization.save({"meta": meta, "arrays": arrays, "spaces": space_arrays, "history": history}, path)

    @classmethod
    def load(cls, path: PathLike, env: Any = None, **overrides: Any) -> "BaseAgent":
        """Loads an agent saved by :meth:`save`. ``cls`` must be the saved class (or
        ``BaseAgent``, which dispatches on the saved class name); ValueError otherwise.
        ``env`` (optional; its spaces must match the saved ones) becomes the agent's
        environment; without it the agent can ``predict`` but not ``learn``.
        ``overrides`` replace saved hyper-parameters. Never unpickles anything."""
        where = f"{cls.__name__}.load"
        tree = serialization.load(path)
        if not (isinstance(tree, dict) and isinstance(tree.get("meta"), dict) and isinstance(tree.get("arrays"), dict)):
            raise ValueError(f"{where}: {os.fspath(path)!r} is not a saved ferrograd agent")
        meta = tree["meta"]
        if meta.get("format") != _FORMAT or meta.get("version") != _FORMAT_VERSION:
            raise ValueError(f"{where}: expected format {_FORMAT!r} version {_FORMAT_VERSION}, given "
                             f"{meta.get('format')!r} version {meta.get('version')!r}")
        saved = meta.get("class")
        target = cls
        if cls is BaseAgent:
            target = _agent_class(saved)
            if target is None:
                raise ValueError(f"{where}: the file holds a {saved!r}, which is not a known agent class")
        elif saved != cls.__name__:
            raise ValueError(f"{where}: expected a saved {cls.__name__}, the file holds a {saved!r}")
        spaces = tree.get("spaces") or {}
        obs_space = _space_from_json(meta.get("observation_space"), spaces, "observation_space")
        act_space = _space_from_json(meta.get("action_space"), spaces, "action_space")
        if env is None:
            env = _DetachedEnv(obs_space, act_space)
        else:
            check_env(env, where)
            e_obs = env.single_observation_space if is_vector_env(env) else env.observation_space
            e_act = env.single_action_space if is_vector_env(env) else env.action_space
            if not _same_space(e_obs, obs_space) or not _same_space(e_act, act_space):
                raise ValueError(
                    f"{where}: the environment's spaces {space_description(e_obs)} / {space_description(e_act)} "
                    f"differ from the saved {space_description(obs_space)} / {space_description(act_space)}"
                )
        hp = dict(meta.get("hyperparameters") or {})
        hp.update(overrides)
        agent = target._construct(env, hp)
        agent._load_state_arrays(dict(tree["arrays"]))
        agent.num_timesteps = int(meta.get("num_timesteps", 0))
        hist = tree.get("history") or {}
        if not isinstance(hist, dict) or not all(isinstance(hist.get(k, np.zeros(0)), np.ndarray) for k in
                                                 ("episode_returns", "episode_lengths", "timesteps")):
            raise ValueError(f"{where}: the saved history is malformed")
        agent.history = {
            "episode_returns": np.asarray(hist.get("episode_returns", np.zeros(0)), np.float64).tolist(),
            "episode_lengths": np.asarray(hist.get("episode_lengths", np.zeros(0)), np.int64).tolist(),
            "timesteps": np.asarray(hist.get("timesteps", np.zeros(0)), np.int64).tolist(),
        }
        if "seed" not in overrides and isinstance(meta.get("rng_state"), str):
            try:
                agent.rng.bit_generator.state = json.loads(meta["rng_state"])
            except (ValueError, TypeError, KeyError) as e:
                raise ValueError(f"{where}: the saved generator state is malformed ({e})") from None
        return agent

    def __repr__(self) -> str:
        try:
            hp = self._hyperparameters()
        except NotImplementedError:
            hp = {}
        args = ", ".join(f"{k}={v!r}" for k, v in hp.items())
        return f"{type(self).__name__}({args}{', ' if args else ''}gamma={self.gamma}, seed={self.seed})"


def _all_subclasses(cls: type) -> Iterable[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


def _agent_class(name: Any) -> Optional[type]:
    """The BaseAgent subclass called ``name``, importing ferrograd.rl's agent modules so
    classes not yet imported are found."""
    import importlib

    for mod in ("tabular", "dqn", "policy_gradient"):
        try:
            importlib.import_module(f"{__package__}.{mod}")
        except ImportError:
            pass
    for sub in _all_subclasses(BaseAgent):
        if sub.__name__ == name:
            return sub
    return None


# ============================================================================ evaluation


def evaluate_policy(agent: Any, env: Any, n_eval_episodes: int = 100, deterministic: bool = True,
                    return_episode_rewards: bool = False, seed: Optional[int] = None
                    ) -> Union[Tuple[float, float], Tuple[list, list]]:
    """Runs ``n_eval_episodes`` episodes of ``agent`` (anything with
    ``predict(obs, deterministic=...) -> (action, state)``) on ``env`` (gymnasium API, or a
    gymnasium vector environment: episodes are split evenly over its sub-environments, as
    Stable-Baselines3 does).

    Returns ``(mean, std)`` of the episode returns, or with ``return_episode_rewards=True``
    the lists ``(episode_returns, episode_lengths)``. ``seed`` seeds the first reset (the
    following resets continue the environment's generator), so evaluations reproduce.
    Episodes end on ``terminated`` or ``truncated``; put a time limit on environments that
    might never end.
    """
    if isinstance(n_eval_episodes, bool) or not isinstance(n_eval_episodes, (int, np.integer)) or n_eval_episodes < 1:
        raise ValueError(f"evaluate_policy: expected n_eval_episodes to be a positive integer, given {n_eval_episodes!r}")
    check_env(env, "evaluate_policy")
    if not hasattr(agent, "predict"):
        raise TypeError(f"evaluate_policy: expected an agent with predict(), given {type(agent).__name__}")
    n_eval_episodes = int(n_eval_episodes)
    returns: list = []
    lengths: list = []
    if is_vector_env(env):
        _evaluate_vector(agent, env, n_eval_episodes, deterministic, seed, returns, lengths)
    else:
        obs, _ = env.reset(seed=seed) if seed is not None else env.reset()
        ep_ret, ep_len = 0.0, 0
        while len(returns) < n_eval_episodes:
            action, _ = agent.predict(obs, deterministic=deterministic)
            obs, reward, terminated, truncated, _ = env.step(_to_env_action(action))
            ep_ret += float(reward)
            ep_len += 1
            if terminated or truncated:
                returns.append(ep_ret)
                lengths.append(ep_len)
                ep_ret, ep_len = 0.0, 0
                if len(returns) < n_eval_episodes:
                    obs, _ = env.reset()
    if return_episode_rewards:
        return returns, lengths
    return float(np.mean(returns)), float(np.std(returns))


def _to_env_action(action: Any) -> Any:
    a = np.asarray(action)
    if a.shape == () and a.dtype.kind in "iu":
        return int(a)
    return a


def _evaluate_vector(agent: Any, env: Any, n: int, deterministic: bool, seed: Optional[int],
                     returns: list, lengths: list) -> None:
    k = int(env.num_envs)
    targets = np.array([(n + i) // k for i in range(k)], dtype=np.int64)  # sums to n
    counts = np.zeros(k, np.int64)
    cur_ret = np.zeros(k, np.float64)
    cur_len = np.zeros(k, np.int64)
    mode = getattr((getattr(env, "metadata", None) or {}).get("autoreset_mode", "NextStep"), "value",
                   (getattr(env, "metadata", None) or {}).get("autoreset_mode", "NextStep"))
    next_step = str(mode) == "NextStep"
    resetting = np.zeros(k, bool)  # NextStep autoreset: this env's next step is a reset step
    obs, _ = env.reset(seed=seed) if seed is not None else env.reset()
    while np.any(counts < targets):
        actions, _ = agent.predict(obs, deterministic=deterministic)
        obs, rewards, terminated, truncated, _ = env.step(np.asarray(actions))
        live = ~resetting if next_step else np.ones(k, bool)
        cur_ret += np.where(live, np.asarray(rewards, np.float64), 0.0)
        cur_len += live
        done = live & (np.asarray(terminated) | np.asarray(truncated))
        for i in np.flatnonzero(done):  # finished episodes only (at most num_envs per step)
            if counts[i] < targets[i]:
                returns.append(float(cur_ret[i]))
                lengths.append(int(cur_len[i]))
                counts[i] += 1
        cur_ret[done] = 0.0
        cur_len[done] = 0
        resetting = done if next_step else resetting
