"""Deep Q-learning: :class:`DQN` (Mnih et al. 2015) with double DQN (van Hasselt et al.
2016), after Stable-Baselines3's DQN (names, defaults and order of operations).

The Q-network and its target are ordinary ferrograd modules. The target's parameters
live in one flat array (as do the online network's), so a hard copy or a soft (Polyak)
update is one array operation; the replay buffer samples a whole batch with one
generator call; the TD target and the Huber loss are batched tensor ops.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Optional, Union

import numpy as np

from ..autograd.grad_mode import no_grad
from ..nn import Module
from ..nn.utils import clip_grad_norm_
from ..optim import Adam, RMSprop, SGD
from ..tensor import Tensor, _make
from ._deep import (
    VecEnvAdapter,
    flatten_parameters,
    is_flat_view,
    load_module_arrays,
    load_optimizer_arrays,
    make_lr,
    module_arrays,
    optimizer_arrays,
    seeded_init,
    set_lr,
)
from .base import BaseAgent, check_total_timesteps, discrete_start, is_discrete_space, space_description
from .buffers import ReplayBuffer
from .policies import QNetwork, preprocess_obs, space_kind
from .schedules import LinearSchedule

__all__ = ["DQN", "dqn_targets", "dqn_loss"]

_OPTIMIZERS = {"adam": Adam, "rmsprop": RMSprop, "sgd": SGD}


def dqn_targets(
    rewards: np.ndarray,
    dones: np.ndarray,
    next_q_target: np.ndarray,
    gamma: float,
    next_q_online: Optional[np.ndarray] = None,
) -> np.ndarray:
    """TD targets y = r + gamma (1 - done) Q_target(s', a*) for a batch (B,).

    next_q_target: the target network's Q-values at s', (B, A). Plain DQN takes
    a* = argmax_a Q_target(s', a); double DQN (``next_q_online`` given: the online
    network's Q-values at s', (B, A)) takes a* = argmax_a Q_online(s', a).
    rewards, dones: (B,); ``dones`` is 1 only for terminations (a truncated episode still
    bootstraps). Returns (B,) of next_q_target's dtype."""
    nq = np.asarray(next_q_target)
    if nq.ndim != 2:
        raise ValueError(f"dqn_targets: next_q_target must be (B, A), given shape {nq.shape}")
    b = nq.shape[0]
    if next_q_online is None:
        best = nq.max(axis=1)
    else:
        on = np.asarray(next_q_online)
        if on.shape != nq.shape:
            raise ValueError(f"dqn_targets: next_q_online must have shape {nq.shape} like next_q_target, given {on.shape}")
        best = nq[np.arange(b), on.argmax(axis=1)]
    r = np.asarray(rewards, dtype=nq.dtype).reshape(b)
    d = np.asarray(dones, dtype=nq.dtype).reshape(b)
    return (r + nq.dtype.type(gamma) * (1 - d) * best).astype(nq.dtype, copy=False)


def dqn_loss(q_values: Tensor, actions: Any, targets: Any) -> Tensor:
    """Huber (smooth L1, delta 1) loss between Q(s, a) of the taken actions and the TD
    targets, averaged over the batch: mean_i huber(q_values[i, actions[i]] - targets[i]).

    q_values: (B, A) Tensor; actions: (B,) ints in [0, A); targets: (B,) constants.
    Returns a scalar Tensor; one recorded node (gather and Huber fused), whose gradient
    is clip(d, -1, 1) / B at each taken action and 0 elsewhere."""
    q = q_values.data
    if q.ndim != 2:
        raise ValueError(f"dqn_loss: q_values must be (B, A), given shape {q.shape}")
    b, n = q.shape
    a = np.asarray(actions).reshape(-1).astype(np.int64)
    if a.shape != (b,):
        raise ValueError(f"dqn_loss: expected {b} actions, given shape {np.shape(actions)}")
    if a.size and (a.min() < 0 or a.max() >= n):
        raise ValueError(f"dqn_loss: actions must lie in [0, {n}), given values in [{a.min()}, {a.max()}]")
    y = np.asarray(targets, dtype=q.dtype).reshape(-1)
    if y.shape != (b,):
        raise ValueError(f"dqn_loss: expected {b} targets, given shape {np.shape(targets)}")
    rows = np.arange(b)
    d = q[rows, a] - y
    ad = np.abs(d)
    loss = np.where(ad < 1, 0.5 * d * d, ad - 0.5).mean(dtype=q.dtype) if b else np.asarray(np.nan, q.dtype)

    def backward(g):
        gq = np.zeros_like(q)
        gq[rows, a] = np.clip(d, -1, 1) * (g / b)
        return (gq,)

    return _make(np.asarray(loss, dtype=q.dtype), (q_values,), backward, "DqnHuberLossBackward")


def _pos_int(name: str, v: Any, allow_zero: bool = False) -> int:
    lo = 0 if allow_zero else 1
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise ValueError(f"DQN: {name} must be an int >= {lo}, given {v!r}")
    return int(v)


def _unit(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) or not 0.0 <= v <= 1.0:
        raise ValueError(f"DQN: {name} must lie in [0, 1], given {v!r}")
    return float(v)


class DQN(BaseAgent):
    """Deep Q-network agent for ``Discrete`` action spaces.

    Every ``train_freq`` environment steps (per environment) the agent takes
    ``gradient_steps`` gradient steps, once more than ``learning_starts`` steps were taken.
    Each samples ``batch_size`` transitions, forms targets y = r + gamma (1 - terminated)
    Q_target(s', a*) (a* from the target network, or from the online one with
    ``double_q``), minimises the Huber loss of Q(s, a) - y, clips the gradients' global
    norm to ``max_grad_norm`` and steps the optimizer. The target network follows the
    online one every ``target_update_interval`` steps with
    theta' <- tau theta + (1 - tau) theta' (tau = 1: a hard copy). Exploration is
    epsilon-greedy with epsilon decaying linearly from ``exploration_initial_eps`` to
    ``exploration_final_eps`` over the first ``exploration_fraction`` of ``learn`` (or
    given by ``exploration_schedule(t)``, t the fraction of ``learn`` done, 0 -> 1, as in
    :mod:`ferrograd.rl.schedules`); before ``learning_starts`` actions are uniformly
    random.

    Args:
        policy: 'MlpPolicy' (a :class:`QNetwork` from the spaces, ``policy_kwargs`` such
            as ``net_arch`` and ``activation_fn``) or an nn.Module mapping observations
            (N, obs_dim) to Q-values (N, n_actions).
        env: a gymnasium environment or vector environment with a ``Discrete`` action space.
        learning_rate (1e-4, or a schedule of the fraction of ``learn`` done, saved as its
        final value), buffer_size (1e6),
        learning_starts (100), batch_size (32), tau (1.0), gamma (0.99), train_freq (4),
        gradient_steps (1), target_update_interval (10000), exploration_fraction (0.1),
        exploration_initial_eps (1.0), exploration_final_eps (0.05), max_grad_norm (10):
        Stable-Baselines3's names and defaults.
        double_q: double DQN targets (default False).
        optimizer_class: 'adam' (default), 'rmsprop' or 'sgd'; optimizer_kwargs passed on.
        seed, verbose: see :class:`BaseAgent`.
    """

    def __init__(
        self,
        policy: Union[str, Module] = "MlpPolicy",
        env: Any = None,
        learning_rate: Union[float, Callable[[float], float]] = 1e-4,
        buffer_size: int = 1_000_000,
        learning_starts: int = 100,
        batch_size: int = 32,
        tau: float = 1.0,
        gamma: float = 0.99,
        train_freq: int = 4,
        gradient_steps: int = 1,
        target_update_interval: int = 10000,
        exploration_fraction: float = 0.1,
        exploration_initial_eps: float = 1.0,
        exploration_final_eps: float = 0.05,
        exploration_schedule: Optional[Callable[[float], float]] = None,
        max_grad_norm: Optional[float] = 10.0,
        double_q: bool = False,
        optimizer_class: str = "adam",
        optimizer_kwargs: Optional[dict] = None,
        policy_kwargs: Optional[dict] = None,
        seed: Optional[int] = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(env, gamma=gamma, seed=seed, verbose=verbose)
        self.learning_rate = learning_rate
        self._lr = make_lr("DQN", learning_rate)
        self.buffer_size = _pos_int("buffer_size", buffer_size)
        self.learning_starts = _pos_int("learning_starts", learning_starts, allow_zero=True)
        self.batch_size = _pos_int("batch_size", batch_size)
        self.tau = _unit("tau", tau)
        if self.tau == 0.0:
            raise ValueError("DQN: tau must lie in (0, 1], given 0")
        self.train_freq = _pos_int("train_freq", train_freq)
        self.gradient_steps = _pos_int("gradient_steps", gradient_steps, allow_zero=True)
        self.target_update_interval = _pos_int("target_update_interval", target_update_interval)
        self.exploration_fraction = _unit("exploration_fraction", exploration_fraction)
        self.exploration_initial_eps = _unit("exploration_initial_eps", exploration_initial_eps)
        self.exploration_final_eps = _unit("exploration_final_eps", exploration_final_eps)
        if exploration_schedule is not None and not callable(exploration_schedule):
            raise ValueError(f"DQN: exploration_schedule must be callable, given {exploration_schedule!r}")
        self.exploration_schedule = exploration_schedule
        if self.exploration_fraction > 0:
            self._eps_schedule = LinearSchedule(self.exploration_initial_eps, self.exploration_final_eps, self.exploration_fraction)
        if max_grad_norm is not None and (not isinstance(max_grad_norm, (int, float)) or not max_grad_norm > 0):
            raise ValueError(f"DQN: max_grad_norm must be positive or None, given {max_grad_norm!r}")
        self.max_grad_norm = None if max_grad_norm is None else float(max_grad_norm)
        self.double_q = bool(double_q)
        self.policy_kwargs = dict(policy_kwargs or {})
        self.optimizer_class = str(optimizer_class).lower()
        if self.optimizer_class not in _OPTIMIZERS:
            raise ValueError(f"DQN: optimizer_class must be 'adam', 'rmsprop' or 'sgd', given {optimizer_class!r}")
        self.optimizer_kwargs = dict(optimizer_kwargs or {})

        observation_space, action_space = self.observation_space, self.action_space
        if not is_discrete_space(action_space):
            raise ValueError(f"DQN: expected a Discrete action space, given {space_description(action_space)}")
        space_kind(observation_space, "DQN")
        self.n_actions = int(action_space.n)
        self._act_start = discrete_start(action_space)
        self._adapter: Optional[VecEnvAdapter] = None
        self.n_envs = int(env.num_envs) if hasattr(env, "num_envs") else 1

        if isinstance(policy, Module):
            self.q_net = policy
            self._policy_name = "custom"
        elif policy == "MlpPolicy":
            with seeded_init(self.rng):
                self.q_net = QNetwork(observation_space, action_space, **self.policy_kwargs)
            self._policy_name = "MlpPolicy"
        elif policy == "custom":
            raise ValueError("DQN: this agent was saved with a custom network; pass it as policy=<module> to load()")
        else:
            raise ValueError(f"DQN: policy must be 'MlpPolicy' or an nn.Module, given {policy!r}")
        self.q_net_target = copy.deepcopy(self.q_net)
        self.q_net_target.requires_grad_(False)
        self._flat = flatten_parameters(self.q_net)
        self._flat_target = flatten_parameters(self.q_net_target)
        self._params = list(self.q_net.parameters())
        self.optimizer = _OPTIMIZERS[self.optimizer_class](self._params, lr=self._lr(0.0), **self.optimizer_kwargs)
        self.replay_buffer: Optional[ReplayBuffer] = None
        self.exploration_rate = self.exploration_initial_eps
        self._n_calls = 0
        self._n_updates = 0
        self._steps_since_train = 0

    # ---- parts

    def _x(self, obs: np.ndarray) -> Tensor:
        return Tensor._wrap(preprocess_obs(obs, self.observation_space))

    def _epsilon(self, t: float) -> float:
        """The exploration rate when a fraction ``t`` of ``learn`` is done."""
        if self.exploration_schedule is not None:
            return float(self.exploration_schedule(t))
        if self.exploration_fraction == 0.0:
            return self.exploration_final_eps
        return float(self._eps_schedule(t))

    def _greedy(self, obs: np.ndarray) -> np.ndarray:
        with no_grad():
            q = self.q_net(self._x(obs)).data
        return q.argmax(axis=1).astype(np.int64)

    def _predict(self, observations: np.ndarray, deterministic: bool) -> np.ndarray:
        """Greedy actions (``deterministic``) or epsilon-greedy ones at the current
        exploration rate, (N,), for a batch of checked observations."""
        actions = self._greedy(observations)
        if not deterministic:
            explore = self.rng.random(actions.shape[0]) < self.exploration_rate
            if explore.any():
                actions[explore] = self.rng.integers(0, self.n_actions, size=int(explore.sum()))
        return actions + self._act_start if self._act_start else actions

    def _update_target(self) -> None:
        if self.tau == 1.0:
            np.copyto(self._flat_target, self._flat)
        else:
            self._flat_target *= 1.0 - self.tau
            self._flat_target += self.tau * self._flat

    def _check_flat(self) -> None:
        """Re-flattens after something (``Module.to``, ``load_state_dict`` of a new array)
        replaced a parameter's array."""
        if not is_flat_view(self.q_net, self._flat):
            self._flat = flatten_parameters(self.q_net)
            self._params = list(self.q_net.parameters())
        if not is_flat_view(self.q_net_target, self._flat_target):
            self._flat_target = flatten_parameters(self.q_net_target)

    def train(self, gradient_steps: int, batch_size: int) -> float:
        """Takes ``gradient_steps`` gradient steps on batches from the replay buffer; returns
        the last loss."""
        loss_value = float("nan")
        for _ in range(gradient_steps):
            s = self.replay_buffer.sample(batch_size, self.rng)
            with no_grad():
                nq = self.q_net_target(self._x(s.next_observations)).data
                nq_online = self.q_net(self._x(s.next_observations)).data if self.double_q else None
            y = dqn_targets(s.rewards, s.dones, nq, self.gamma, nq_online)
            loss = dqn_loss(self.q_net(self._x(s.observations)), s.actions, y)
            self.optimizer.zero_grad()
            loss.backward()
            if self.max_grad_norm is not None:
                clip_grad_norm_(self._params, self.max_grad_norm)
            self.optimizer.step()
            self._n_updates += 1
            loss_value = float(loss.data)
        return loss_value

    # ---- learning

    def learn(self, total_timesteps: int, callback: Any = None, progress_bar: bool = True) -> "DQN":
        """Collects ``total_timesteps`` environment steps (``n_envs`` per vector step),
        training as described in the class docstring. ``callback(locals) -> False`` (or an
        object with ``on_step()``) stops early."""
        total = check_total_timesteps(total_timesteps, "DQN.learn")
        start = self.num_timesteps
        self._check_flat()
        if self._adapter is None or self._adapter.env is not self.env:
            self._adapter = VecEnvAdapter(self.env, "DQN")
            self._last_obs = None
        adapter = self._adapter
        e = adapter.num_envs
        self.n_envs = e
        if self.replay_buffer is None or self.replay_buffer.n_envs != e:
            self.replay_buffer = ReplayBuffer(self.buffer_size, self.observation_space, self.action_space, e)
        if self._last_obs is None:
            seed = int(self.rng.integers(0, 2**31 - 1)) if not self._env_seeded else None
            self._last_obs = adapter.reset(seed=seed)
            self._env_seeded = True
        obs = self._last_obs
        target_every = max(self.target_update_interval // e, 1)
        cb = self._init_callback(callback)
        cb.on_training_start(locals())
        with self._progress_bar(total, progress_bar) as bar:
            while self.num_timesteps - start < total:
                t = (self.num_timesteps - start) / max(total, 1)
                self.exploration_rate = self._epsilon(t)
                if self.num_timesteps < self.learning_starts:
                    actions = self.rng.integers(0, self.n_actions, size=e)
                else:
                    explore = self.rng.random(e) < self.exploration_rate
                    if explore.all():
                        actions = self.rng.integers(0, self.n_actions, size=e)
                    else:
                        actions = self._greedy(obs)
                        if explore.any():
                            actions[explore] = self.rng.integers(0, self.n_actions, size=int(explore.sum()))
                new_obs, r, term, trunc, final, finished = adapter.step(actions)
                self.num_timesteps += e
                bar.update(e)
                self._n_calls += 1
                self.replay_buffer.add(obs, final, actions, r, term)
                obs = self._last_obs = new_obs
                for _, ret, length in finished:
                    self._record_episode(ret, length)
                if self._n_calls % target_every == 0:
                    self._update_target()
                if callback is not None and not cb.on_step(locals()):
                    break
                self._steps_since_train += 1
                if self._steps_since_train >= self.train_freq:
                    self._steps_since_train = 0
                    if self.num_timesteps > self.learning_starts and self.gradient_steps > 0:
                        set_lr(self.optimizer, self._lr(t))
                        self.train(self.gradient_steps, self.batch_size)
        cb.on_training_end()
        self._log_learn_end()
        return self

    # ---- saving

    def _hyperparameters(self) -> dict:
        return dict(
            policy=self._policy_name,
            learning_rate=self.learning_rate if not callable(self.learning_rate) else self._lr(1.0),
            buffer_size=self.buffer_size,
            learning_starts=self.learning_starts,
            batch_size=self.batch_size,
            tau=self.tau,
            train_freq=self.train_freq,
            gradient_steps=self.gradient_steps,
            target_update_interval=self.target_update_interval,
            exploration_fraction=self.exploration_fraction,
            exploration_initial_eps=self.exploration_initial_eps,
            exploration_final_eps=self.exploration_final_eps,
            max_grad_norm=self.max_grad_norm,
            double_q=self.double_q,
            optimizer_class=self.optimizer_class,
            optimizer_kwargs=self.optimizer_kwargs,
            policy_kwargs=self.policy_kwargs,
        )

    def _state_arrays(self) -> dict:
        d = module_arrays("q_net", self.q_net)
        d.update(module_arrays("q_net_target", self.q_net_target))
        d.update(optimizer_arrays("optimizer", self.optimizer))
        d["exploration_rate"] = np.asarray(self.exploration_rate)
        d["counters"] = np.array([self._n_calls, self._n_updates, self._steps_since_train], dtype=np.int64)
        return d

    @classmethod
    def _construct(cls, env: Any, hyperparameters: dict) -> "BaseAgent":
        hp = dict(hyperparameters)
        policy = hp.pop("policy", "MlpPolicy")
        return cls(policy, env, **hp)

    def _load_state_arrays(self, arrays: dict) -> None:
        load_module_arrays("q_net", self.q_net, arrays)
        load_module_arrays("q_net_target", self.q_net_target, arrays)
        load_optimizer_arrays("optimizer", self.optimizer, arrays)
        if "exploration_rate" in arrays:
            self.exploration_rate = float(arrays["exploration_rate"])
        if "counters" in arrays:
            self._n_calls, self._n_updates, self._steps_since_train = (int(c) for c in np.asarray(arrays["counters"]).reshape(3))
