"""Policy-gradient agents: :class:`REINFORCE` (Monte-Carlo, optional learned baseline) and
:class:`A2C` (synchronous advantage actor-critic on vector environments), with the return
and advantage estimators they share (:func:`compute_gae`, :func:`discounted_returns`) and
their loss (:func:`policy_gradient_loss`).

Returns and advantages are linear recurrences backwards in time,
``x_t = delta_t + c_t x_{t+1}``; they are solved for all time steps and environments at
once by a doubling scan (log2(T) vectorised NumPy passes), not by a Python loop over time.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional, Union

import numpy as np

from ..autograd.grad_mode import no_grad
from ..nn import Module
from ..nn import functional as F
from ..nn.utils import clip_grad_norm_
from ..optim import Adam, RMSprop
from ..tensor import Tensor
from ._deep import (
    VecEnvAdapter,
    load_module_arrays,
    load_optimizer_arrays,
    make_lr,
    module_arrays,
    optimizer_arrays,
    seeded_init,
    set_lr,
)
from .base import BaseAgent, check_total_timesteps, discrete_start, is_vector_env, space_description
from .policies import ActorCriticPolicy, obs_dim, preprocess_obs, space_kind

__all__ = ["compute_gae", "discounted_returns", "policy_gradient_loss", "REINFORCE", "A2C"]


# ----------------------------------------------------------------------------- estimators


def _reverse_scan(delta: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """x_t = delta_t + coef_t * x_{t+1} along axis 0 with x_T = 0, by doubling: after the
    pass with offset s every x_t holds the sum over a window of 2s steps and coef_t the
    product of its 2s coefficients (the window is cut at the end of the array)."""
    x = np.array(delta, dtype=np.float64, copy=True)
    c = np.array(coef, dtype=np.float64, copy=True)
    t = x.shape[0]
    s = 1
    while s < t:
        x[:-s] += c[:-s] * x[s:]
        c[:-s] *= c[s:]
        s *= 2
    return x


def _as_steps(name: str, a: Any, shape: Optional[tuple], dtype: Any = np.float64) -> np.ndarray:
    arr = np.asarray(a, dtype=dtype)
    if shape is not None and arr.shape != shape:
        raise ValueError(f"compute_gae: {name} must have shape {shape} like rewards, given {arr.shape}")
    return arr


def compute_gae(
    rewards: Any,
    values: Any,
    next_values: Any,
    terminated: Any,
    truncated: Any = None,
    gamma: float = 0.99,
    gae_lambda: float = 0.95,
) -> tuple:
    """Generalised advantage estimation (Schulman et al. 2016) over T steps of N
    environments.

    Args (all (T,) or (T, N), time first):
        rewards: r_t.
        values: V(s_t).
        next_values: V(s_{t+1}) of the state the step led to. Where an episode ended, that
            is the value of its *final* observation (used after a truncation; ignored after
            a termination), not of the reset one.
        terminated: the episode ended in a terminal state at step t (no bootstrap).
        truncated: the episode was cut at step t (time limit): the trace stops but the
            step still bootstraps from ``next_values``. None means no truncations.
        gamma: discount; gae_lambda: the GAE lambda (1 gives Monte-Carlo returns with
            bootstrapping, 0 one-step TD).

    Returns (advantages, returns), float64 arrays of the rewards' shape:
    ``delta_t = r_t + gamma (1 - terminated_t) next_values_t - values_t``,
    ``A_t = delta_t + gamma lambda (1 - done_t) A_{t+1}`` with done = terminated or
    truncated, ``returns = A + values``.
    """
    r = _as_steps("rewards", rewards, None)
    if r.ndim not in (1, 2):
        raise ValueError(f"compute_gae: rewards must be (T,) or (T, N), given shape {r.shape}")
    v = _as_steps("values", values, r.shape)
    nv = _as_steps("next_values", next_values, r.shape)
    term = _as_steps("terminated", terminated, r.shape, bool)
    trunc = np.zeros(r.shape, dtype=bool) if truncated is None else _as_steps("truncated", truncated, r.shape, bool)
    if not 0.0 <= gamma <= 1.0 or not 0.0 <= gae_lambda <= 1.0:
        raise ValueError(f"compute_gae: gamma and gae_lambda must lie in [0, 1], given {gamma} and {gae_lambda}")
    delta = r + gamma * (~term) * nv - v
    coef = gamma * gae_lambda * ~(term | trunc)
    adv = _reverse_scan(delta, coef)
    return adv, adv + v


def discounted_returns(rewards: Any, terminated: Any, truncated: Any = None, gamma: float = 0.99, bootstrap: Any = None) -> np.ndarray:
    """Reward-to-go G_t = r_t + gamma G_{t+1} within each episode, (T,) or (T, N).

    An episode ends at a step where ``terminated`` or ``truncated`` holds; after a
    truncation, ``bootstrap`` (same shape, e.g. a critic's value of the final observation;
    read only at truncated steps) stands in for the rest of the episode. Equals
    :func:`compute_gae` with zero values and lambda = 1."""
    r = _as_steps("rewards", rewards, None)
    zeros = np.zeros(r.shape)
    nv = zeros if bootstrap is None else _as_steps("bootstrap", bootstrap, r.shape)
    trunc = np.zeros(r.shape, dtype=bool) if truncated is None else _as_steps("truncated", truncated, r.shape, bool)
    nv = np.where(trunc, nv, 0.0)
    adv, _ = compute_gae(r, zeros, nv, terminated, trunc, gamma, 1.0)
    return adv


def _standardize(x: np.ndarray) -> np.ndarray:
    if x.size < 2:
        return x - x.mean() if x.size else x
    return (x - x.mean()) / (x.std() + 1e-8)


def policy_gradient_loss(
    log_prob: Tensor,
    entropy: Optional[Tensor],
    advantages: Any,
    values: Optional[Tensor] = None,
    returns: Any = None,
    ent_coef: float = 0.0,
    vf_coef: float = 0.5,
) -> tuple:
    """The actor-critic loss of REINFORCE and A2C (Stable-Baselines3's A2C form).

    ``loss = -mean(advantages * log_prob) - ent_coef * mean(entropy)
    + vf_coef * mean((returns - values)^2)``; the value term only when ``values`` is
    given, the entropy term only when ``entropy`` is given.

    log_prob, entropy, values: Tensors (B,); advantages, returns: arrays (B,) (constants).
    Returns (loss Tensor, dict of the float parts: policy_loss, entropy_loss, value_loss).
    """
    dt = log_prob.data.dtype
    b = log_prob.shape[0]
    adv = np.asarray(advantages, dtype=dt).reshape(-1)
    if adv.shape != (b,):
        raise ValueError(f"policy_gradient_loss: advantages must have shape ({b},) like log_prob, given {np.shape(advantages)}")
    policy_loss = -(log_prob * adv).mean()
    loss = policy_loss
    info = {"policy_loss": float(policy_loss.data)}
    if entropy is not None:
        entropy_loss = -entropy.mean()
        info["entropy_loss"] = float(entropy_loss.data)
        if ent_coef != 0.0:
            loss = loss + entropy_loss * float(ent_coef)
    if values is not None:
        if returns is None:
            raise ValueError("policy_gradient_loss: values given without returns")
        ret = np.asarray(returns, dtype=dt).reshape(-1)
        if ret.shape != (b,) or values.shape != (b,):
            raise ValueError(f"policy_gradient_loss: values and returns must have shape ({b},), given {values.shape} and {np.shape(returns)}")
        value_loss = F.mse_loss(values, ret)
        info["value_loss"] = float(value_loss.data)
        loss = loss + value_loss * float(vf_coef)
    return loss, info


# ----------------------------------------------------------------------------- common agent machinery


def _check_coef(owner: str, name: str, v: Any, lo: float = 0.0) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) or not math.isfinite(v) or v < lo:
        raise ValueError(f"{owner}: {name} must be a finite number >= {lo}, given {v!r}")
    return float(v)


def _new_episode_buffer() -> dict:
    return {"obs": [], "actions": [], "rewards": [], "terminated": [], "truncated": [], "final": {}, "episodes": 0}


class _PolicyAgent(BaseAgent):
    """Shared parts of REINFORCE and A2C: the policy, its optimizer, stepping the
    environment, predict, save/load."""

    def _setup_policy(self, policy: Any, policy_kwargs: Optional[dict], with_value: bool) -> None:
        name = type(self).__name__
        obs_space, act_space = self.observation_space, self.action_space
        space_kind(obs_space, name)
        self.action_kind = space_kind(act_space, name)
        self.policy_kwargs = dict(policy_kwargs or {})
        if isinstance(policy, Module):
            self.policy = policy
            self._policy_name = "custom"
        elif policy == "MlpPolicy":
            kw = dict(self.policy_kwargs)
            kw.setdefault("with_value", with_value)
            with seeded_init(self.rng):
                self.policy = ActorCriticPolicy(obs_space, act_space, **kw)
            self._policy_name = "MlpPolicy"
        elif policy == "custom":
            raise ValueError(f"{name}: this agent was saved with a custom network; pass it as policy=<module> to load()")
        else:
            raise ValueError(f"{name}: policy must be 'MlpPolicy' or an nn.Module, given {policy!r}")
        for attr in ("distribution", "forward"):
            if not hasattr(self.policy, attr):
                raise TypeError(f"{name}: the policy module needs a {attr}() method (see ActorCriticPolicy)")
        pk = getattr(self.policy, "action_kind", self.action_kind)
        if pk != self.action_kind:
            raise ValueError(
                f"{name}: the policy was built for a {pk} action space, given a {self.action_kind} one "
                f"({space_description(act_space)})"
            )
        self._obs_dim = obs_dim(obs_space)
        self._act_start = discrete_start(act_space) if self.action_kind == "discrete" else 0
        self._adapter: Optional[VecEnvAdapter] = None

    def _x(self, obs: np.ndarray) -> Tensor:
        return Tensor._wrap(preprocess_obs(obs, self.observation_space))

    def _predict(self, observations: np.ndarray, deterministic: bool) -> np.ndarray:
        """Actions (N,) or (N, D) for a batch of checked observations."""
        with no_grad():
            dist = self.policy.distribution(self._x(observations))
            actions = dist.mode() if deterministic else dist.sample(self.rng)
        if self.action_kind == "box":
            return np.clip(actions, self.action_space.low, self.action_space.high).astype(np.float32)
        return actions + self._act_start if self._act_start else actions

    def _start(self) -> np.ndarray:
        """The adapter over ``self.env`` and the observations to continue from (the first
        reset is seeded from the agent's generator)."""
        if self._adapter is None or self._adapter.env is not self.env:
            self._adapter = VecEnvAdapter(self.env, type(self).__name__)
            self._last_obs = None
        if self._last_obs is None:
            seed = int(self.rng.integers(0, 2**31 - 1)) if not self._env_seeded else None
            self._last_obs = self._adapter.reset(seed=seed)
            self._env_seeded = True
        return self._last_obs

    def _train_step(self, loss: Tensor) -> None:
        self.optimizer.zero_grad()
        loss.backward()
        if self.max_grad_norm is not None:
            clip_grad_norm_(self._params, self.max_grad_norm)
        self.optimizer.step()

    def _state_arrays(self) -> dict:
        d = module_arrays("policy", self.policy)
        d.update(optimizer_arrays("optimizer", self.optimizer))
        return d

    def _load_state_arrays(self, arrays: dict) -> None:
        load_module_arrays("policy", self.policy, arrays)
        load_optimizer_arrays("optimizer", self.optimizer, arrays)

    @classmethod
    def _construct(cls, env: Any, hyperparameters: dict) -> "BaseAgent":
        hp = dict(hyperparameters)
        policy = hp.pop("policy", "MlpPolicy")
        return cls(policy, env, **hp)


# ----------------------------------------------------------------------------- REINFORCE


class REINFORCE(_PolicyAgent):
    """REINFORCE (Williams 1992): Monte-Carlo policy gradient on whole episodes of one
    environment, with reward-to-go, an optional learned value baseline, return
    normalisation and an entropy bonus; categorical (``Discrete``) or diagonal Gaussian
    (``Box``) policies.

    Each update uses ``n_episodes`` complete episodes: G_t = sum_k gamma^k r_{t+k} within
    the episode (after a time-limit truncation the critic's value of the final
    observation, when there is a critic, stands in for the rest), weights
    w_t = G_t - V(s_t) with a baseline or G_t without, standardised over the batch when
    ``normalize_returns``; loss = -mean(w log pi(a|s)) - ent_coef mean(H)
    + vf_coef mean((G - V)^2); one optimizer step.

    Args:
        policy: 'MlpPolicy' (an :class:`ActorCriticPolicy` built from the spaces with
            ``policy_kwargs``) or an nn.Module with the same interface.
        env: a gymnasium environment (one, not a vector environment).
        learning_rate: a number, or a schedule of the fraction of ``learn`` done (0 -> 1;
            see :mod:`ferrograd.rl.schedules`); a schedule is saved as its final value.
        n_episodes: episodes per update.
        baseline: learn a state-value baseline (a separate critic network).
        normalize_returns: standardise the weights w over each batch.
        ent_coef, vf_coef: weights of the entropy bonus and the critic's loss.
        max_grad_norm: clip the gradients' global norm (None: no clipping).
        optimizer_class: 'adam' (default) or 'rmsprop'; optimizer_kwargs passed on.
        gamma, seed, verbose: see :class:`BaseAgent`.
    """

    def __init__(
        self,
        policy: Union[str, Module] = "MlpPolicy",
        env: Any = None,
        learning_rate: Union[float, Callable[[float], float]] = 1e-3,
        n_episodes: int = 1,
        gamma: float = 0.99,
        baseline: bool = True,
        normalize_returns: bool = True,
        ent_coef: float = 0.0,
        vf_coef: float = 0.5,
        max_grad_norm: Optional[float] = None,
        optimizer_class: str = "adam",
        optimizer_kwargs: Optional[dict] = None,
        policy_kwargs: Optional[dict] = None,
        seed: Optional[int] = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(env, gamma=gamma, seed=seed, verbose=verbose)
        if isinstance(n_episodes, bool) or not isinstance(n_episodes, (int, np.integer)) or n_episodes < 1:
            raise ValueError(f"REINFORCE: n_episodes must be a positive int, given {n_episodes!r}")
        if is_vector_env(env) and int(env.num_envs) != 1:
            raise ValueError(f"REINFORCE: expected a single environment (whole episodes), given a vector environment of {env.num_envs}")
        self.n_episodes = int(n_episodes)
        self.baseline = bool(baseline)
        self.normalize_returns = bool(normalize_returns)
        self.ent_coef = _check_coef("REINFORCE", "ent_coef", ent_coef)
        self.vf_coef = _check_coef("REINFORCE", "vf_coef", vf_coef)
        self.max_grad_norm = None if max_grad_norm is None else _check_coef("REINFORCE", "max_grad_norm", max_grad_norm)
        self.learning_rate = learning_rate
        self._lr = make_lr("REINFORCE", learning_rate)
        self._setup_policy(policy, policy_kwargs, self.baseline)
        if self.baseline and not getattr(self.policy, "with_value", True):
            raise ValueError("REINFORCE: baseline=True needs a policy with a critic (with_value=True)")
        self.optimizer_class = str(optimizer_class).lower()
        self.optimizer_kwargs = dict(optimizer_kwargs or {})
        self._params = list(self.policy.parameters())
        lr0 = self._lr(0.0)
        if self.optimizer_class == "adam":
            self.optimizer = Adam(self._params, lr=lr0, **self.optimizer_kwargs)
        elif self.optimizer_class == "rmsprop":
            self.optimizer = RMSprop(self._params, lr=lr0, **self.optimizer_kwargs)
        else:
            raise ValueError(f"REINFORCE: optimizer_class must be 'adam' or 'rmsprop', given {optimizer_class!r}")
        self._episode_buffer = _new_episode_buffer()

    def _hyperparameters(self) -> dict:
        return dict(
            policy=self._policy_name,
            learning_rate=self.learning_rate if not callable(self.learning_rate) else self._lr(1.0),
            n_episodes=self.n_episodes,
            baseline=self.baseline,
            normalize_returns=self.normalize_returns,
            ent_coef=self.ent_coef,
            vf_coef=self.vf_coef,
            max_grad_norm=self.max_grad_norm,
            optimizer_class=self.optimizer_class,
            optimizer_kwargs=self.optimizer_kwargs,
            policy_kwargs=self.policy_kwargs,
        )

    def learn(self, total_timesteps: int, callback: Any = None, progress_bar: bool = True) -> "REINFORCE":
        """Runs ``total_timesteps`` environment steps (an episode still running at the end
        is kept for the next call), updating after every ``n_episodes`` episodes.
        ``callback(locals) -> False`` (or an object with ``on_step()``) stops early."""
        total = check_total_timesteps(total_timesteps, "REINFORCE.learn")
        start = self.num_timesteps
        obs = self._start()
        adapter = self._adapter
        cb = self._init_callback(callback)
        cb.on_training_start(locals())
        buf = self._episode_buffer
        with self._progress_bar(total, progress_bar) as bar:
            while self.num_timesteps - start < total:
                with no_grad():
                    dist = self.policy.distribution(self._x(obs))
                    action = dist.sample(self.rng)
                new_obs, r, term, trunc, final, finished = adapter.step(action)
                self.num_timesteps += 1
                bar.update(1)
                buf["obs"].append(obs[0])
                buf["actions"].append(action[0])
                buf["rewards"].append(r[0])
                buf["terminated"].append(term[0])
                cut = bool(trunc[0] and not term[0])
                buf["truncated"].append(cut)
                if cut:
                    buf["final"][len(buf["rewards"]) - 1] = final[0]
                for _, ret, length in finished:
                    self._record_episode(ret, length)
                    buf["episodes"] += 1
                obs = new_obs
                self._last_obs = obs
                if callback is not None and not cb.on_step(locals()):
                    break
                if buf["episodes"] == self.n_episodes:
                    set_lr(self.optimizer, self._lr((self.num_timesteps - start) / max(total, 1)))
                    self._update(buf)
                    buf = self._episode_buffer = _new_episode_buffer()
        cb.on_training_end()
        self._log_learn_end()
        return self

    def _update(self, buf: dict) -> dict:
        """One gradient step on the complete episodes in ``buf``."""
        o = np.stack(buf["obs"])
        a = np.stack(buf["actions"])
        r = np.asarray(buf["rewards"], dtype=np.float64)
        te = np.asarray(buf["terminated"], dtype=bool)
        tr = np.asarray(buf["truncated"], dtype=bool)
        trunc_final = buf["final"]
        boot = None
        if trunc_final and self.baseline:
            idx = np.fromiter(trunc_final.keys(), dtype=np.int64)
            with no_grad():
                v_final = self.policy.predict_values(self._x(np.stack([trunc_final[i] for i in idx]))).data
            boot = np.zeros(r.shape)
            boot[idx] = v_final
        g = discounted_returns(r, te, tr, self.gamma, boot)
        dist, values = self.policy(self._x(o))
        lp = dist.log_prob(a)
        ent = dist.entropy() if self.ent_coef != 0.0 else None
        if self.baseline:
            w = g - values.data.astype(np.float64)
        else:
            w = g
            values = None
        if self.normalize_returns:
            w = _standardize(w)
        loss, info = policy_gradient_loss(lp, ent, w, values, g if values is not None else None, self.ent_coef, self.vf_coef)
        self._train_step(loss)
        return info


# ----------------------------------------------------------------------------- A2C


class A2C(_PolicyAgent):
    """Advantage actor-critic (Mnih et al. 2016, synchronous), Stable-Baselines3's A2C.

    Steps ``n_envs`` environments ``n_steps`` times, estimates advantages with GAE(lambda)
    (n-step returns for lambda = 1, bootstrapping from the critic at the end of the rollout
    and after a time-limit truncation, not after a termination), then takes one gradient
    step on loss = -mean(A log pi(a|s)) - ent_coef mean(H) + vf_coef mean((R - V)^2).

    Args:
        policy: 'MlpPolicy' (an :class:`ActorCriticPolicy`; ``policy_kwargs`` such as
            ``net_arch``, ``share_features``, ``activation_fn``, ``ortho_init``) or an
            nn.Module with the same interface.
        env: a gymnasium vector environment (``gymnasium.make_vec``,
            ``gymnasium.vector.SyncVectorEnv``, any auto-reset mode) or a single
            environment (stepped as one).
        learning_rate (7e-4), n_steps (5), gamma (0.99), gae_lambda (1.0), ent_coef (0.0),
        vf_coef (0.5), max_grad_norm (0.5), rms_prop_eps (1e-5), use_rms_prop (True: RMSprop
        with alpha 0.99, else Adam), normalize_advantage (False): Stable-Baselines3's names
        and defaults. ``learning_rate`` may be a schedule of the fraction of ``learn``
        done (0 -> 1; see :mod:`ferrograd.rl.schedules`), saved as its final value.
        seed, verbose: see :class:`BaseAgent`.
    """

    def __init__(
        self,
        policy: Union[str, Module] = "MlpPolicy",
        env: Any = None,
        learning_rate: Union[float, Callable[[float], float]] = 7e-4,
        n_steps: int = 5,
        gamma: float = 0.99,
        gae_lambda: float = 1.0,
        ent_coef: float = 0.0,
        vf_coef: float = 0.5,
        max_grad_norm: Optional[float] = 0.5,
        rms_prop_eps: float = 1e-5,
        use_rms_prop: bool = True,
        normalize_advantage: bool = False,
        policy_kwargs: Optional[dict] = None,
        seed: Optional[int] = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(env, gamma=gamma, seed=seed, verbose=verbose)
        if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
            raise ValueError(f"A2C: n_steps must be a positive int, given {n_steps!r}")
        self.n_steps = int(n_steps)
        if not 0.0 <= gae_lambda <= 1.0:
            raise ValueError(f"A2C: gae_lambda must lie in [0, 1], given {gae_lambda!r}")
        self.gae_lambda = float(gae_lambda)
        self.ent_coef = _check_coef("A2C", "ent_coef", ent_coef)
        self.vf_coef = _check_coef("A2C", "vf_coef", vf_coef)
        self.max_grad_norm = None if max_grad_norm is None else _check_coef("A2C", "max_grad_norm", max_grad_norm)
        self.rms_prop_eps = _check_coef("A2C", "rms_prop_eps", rms_prop_eps)
        self.use_rms_prop = bool(use_rms_prop)
        self.normalize_advantage = bool(normalize_advantage)
        self.learning_rate = learning_rate
        self._lr = make_lr("A2C", learning_rate)
        self._setup_policy(policy, policy_kwargs, True)
        if not getattr(self.policy, "with_value", True):
            raise ValueError("A2C: the policy needs a critic (with_value=True)")
        self._params = list(self.policy.parameters())
        if self.use_rms_prop:
            self.optimizer = RMSprop(self._params, lr=self._lr(0.0), alpha=0.99, eps=self.rms_prop_eps, weight_decay=0.0)
        else:
            self.optimizer = Adam(self._params, lr=self._lr(0.0))
        self.n_envs = int(env.num_envs) if is_vector_env(env) else 1

    def _hyperparameters(self) -> dict:
        return dict(
            policy=self._policy_name,
            learning_rate=self.learning_rate if not callable(self.learning_rate) else self._lr(1.0),
            n_steps=self.n_steps,
            gae_lambda=self.gae_lambda,
            ent_coef=self.ent_coef,
            vf_coef=self.vf_coef,
            max_grad_norm=self.max_grad_norm,
            rms_prop_eps=self.rms_prop_eps,
            use_rms_prop=self.use_rms_prop,
            normalize_advantage=self.normalize_advantage,
            policy_kwargs=self.policy_kwargs,
        )

    def learn(self, total_timesteps: int, callback: Any = None, progress_bar: bool = True) -> "A2C":
        """Runs rollouts of ``n_steps`` x ``n_envs`` steps and one update each until
        ``total_timesteps`` environment steps have been taken. ``callback(locals) -> False``
        (or an object with ``on_step()``) stops early, without updating on the partial
        rollout."""
        total = check_total_timesteps(total_timesteps, "A2C.learn")
        start = self.num_timesteps
        obs = self._start()
        adapter = self._adapter
        e, n = adapter.num_envs, self.n_steps
        self.n_envs = e
        d = self._obs_dim
        xs = np.zeros((n, e, d), dtype=np.float32)
        if self.action_kind == "discrete":
            acts = np.zeros((n, e), dtype=np.int64)
        else:
            acts = np.zeros((n, e, self.policy.action_dim), dtype=np.float32)
        rews = np.zeros((n, e))
        vals = np.zeros((n, e))
        terms = np.zeros((n, e), dtype=bool)
        truncs = np.zeros((n, e), dtype=bool)
        boot = np.zeros((n, e))
        cb = self._init_callback(callback)
        cb.on_training_start(locals())
        stop = False
        with self._progress_bar(total, progress_bar) as bar:
            while self.num_timesteps - start < total and not stop:
                for t in range(n):
                    x = preprocess_obs(obs, self.observation_space)
                    with no_grad():
                        dist, v = self.policy(Tensor._wrap(x))
                        action = dist.sample(self.rng)
                    obs, r, term, trunc, final, finished = adapter.step(action)
                    self._last_obs = obs
                    self.num_timesteps += e
                    bar.update(e)
                    xs[t] = x
                    acts[t] = action
                    rews[t] = r
                    vals[t] = v.data
                    terms[t] = term
                    cut = trunc & ~term
                    truncs[t] = cut
                    if cut.any():
                        idx = np.flatnonzero(cut)
                        with no_grad():
                            boot[t, idx] = self.policy.predict_values(self._x(final[idx])).data
                    for _, ret, length in finished:
                        self._record_episode(ret, length)
                    if callback is not None and not cb.on_step(locals()):
                        stop = True
                        break
                if stop:
                    break
                with no_grad():
                    last = self.policy.predict_values(self._x(obs)).data
                next_vals = np.concatenate([vals[1:], last[None]], axis=0)
                next_vals = np.where(truncs, boot, next_vals)
                adv, ret = compute_gae(rews, vals, next_vals, terms, truncs, self.gamma, self.gae_lambda)
                set_lr(self.optimizer, self._lr((self.num_timesteps - start) / max(total, 1)))
                self._update(xs.reshape(n * e, d), acts.reshape((n * e,) + acts.shape[2:]), adv.reshape(-1), ret.reshape(-1))
        cb.on_training_end()
        self._log_learn_end()
        return self

    def _update(self, x: np.ndarray, actions: np.ndarray, adv: np.ndarray, ret: np.ndarray) -> dict:
        dist, values = self.policy(Tensor._wrap(x))
        lp = dist.log_prob(actions)
        ent = dist.entropy() if self.ent_coef != 0.0 else None
        if self.normalize_advantage:
            adv = _standardize(adv)
        loss, info = policy_gradient_loss(lp, ent, adv, values, ret, self.ent_coef, self.vf_coef)
        self._train_step(loss)
        return info
