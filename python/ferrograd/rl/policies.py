"""Default networks of the deep agents, built from gymnasium spaces, and the action
distributions they parameterise.

* :class:`MLP`: a stack of fused ``Linear + activation`` layers (one Rust kernel each way).
* :class:`QNetwork`: observation -> one Q-value per action (DQN; ``Discrete`` actions).
* :class:`ActorCriticPolicy`: observation -> action distribution (categorical for
  ``Discrete``, diagonal Gaussian with a state-independent log-std for ``Box``) and a state
  value, with separate (default, as Stable-Baselines3) or shared hidden layers.
* :class:`Categorical`, :class:`DiagGaussian`: ``log_prob``, ``entropy`` (differentiable
  Tensors), ``sample`` / ``mode`` (NumPy arrays, drawn from an explicit generator).

Observations: a ``Box`` is flattened to float32 (``N, prod(shape)``); a ``Discrete``
observation becomes a one-hot vector, as in Stable-Baselines3. All networks are ordinary
:class:`ferrograd.nn.Module` s, so any of them can be replaced by a user module with the
same input/output shapes.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence, Union

import numpy as np

from .. import nn
from .._random import generator
from ..nn import functional as F
from ..tensor import Tensor, exp, log_softmax
from .base import is_box_space, is_discrete_space, space_description

__all__ = [
    "MLP",
    "QNetwork",
    "ActorCriticPolicy",
    "Categorical",
    "DiagGaussian",
    "space_kind",
    "obs_dim",
    "preprocess_obs",
    "orthogonal_",
]

_LOG_2PI = math.log(2.0 * math.pi)
_FUSED = {"tanh": "tanh", "relu": "relu", "sigmoid": "sigmoid", None: None, "identity": None}


# ----------------------------------------------------------------------------- spaces


def space_kind(space: Any, where: str = "space") -> str:
    """'discrete' for a ``Discrete`` space, 'box' for a ``Box`` (gymnasium's or a
    duck-typed stand-in, see :mod:`ferrograd.rl.base`); anything else is a ValueError."""
    if is_discrete_space(space):
        return "discrete"
    if is_box_space(space):
        return "box"
    raise ValueError(f"{where}: expected a Discrete or Box space, given {space_description(space)}")


def obs_dim(space: Any) -> int:
    """Length of the network input for an observation space: ``n`` for a ``Discrete``
    space (one-hot), ``prod(shape)`` for a ``Box``."""
    if space_kind(space, "obs_dim") == "discrete":
        return int(space.n)
    return int(np.prod(space.shape, dtype=np.int64)) if len(space.shape) else 1


def preprocess_obs(obs: Any, space: Any) -> np.ndarray:
    """Observations as the float32 network input (N, obs_dim): ``Box`` observations
    (N, *shape) flattened, ``Discrete`` ones (N,) one-hot encoded; a single observation
    gives N = 1."""
    a = np.asarray(obs)
    if a.dtype == np.float32 and a.size and not is_discrete_space(space):
        return a.reshape(a.shape[0] if a.ndim > len(space.shape) else 1, -1)
    if is_discrete_space(space):
        n = int(space.n)
        idx = a.reshape(-1).astype(np.int64, copy=False) - int(getattr(space, "start", 0))
        out = np.zeros((idx.shape[0], n), dtype=np.float32)
        out[np.arange(idx.shape[0]), idx] = 1.0
        return out
    d = obs_dim(space)
    if a.dtype != np.float32:
        a = a.astype(np.float32)
    return a.reshape(-1, d)


# ----------------------------------------------------------------------------- init


def orthogonal_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """Fills a 2-D ``tensor`` (rows, cols) in place with a (semi-)orthogonal matrix times
    ``gain`` (Saxe et al. 2013, PyTorch's ``nn.init.orthogonal_``), from the library's
    generator: QR of a Gaussian matrix, signs fixed by R's diagonal."""
    d = tensor.data
    if d.ndim < 2:
        raise ValueError(f"orthogonal_: expected a tensor with at least 2 dimensions, given shape {d.shape}")
    rows = d.shape[0]
    cols = d.size // rows if rows else 0
    if rows == 0 or cols == 0:
        return tensor
    a = generator().standard_normal((rows, cols))
    if rows < cols:
        a = a.T
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    d[...] = (gain * q).reshape(d.shape).astype(d.dtype)
    return tensor


# ----------------------------------------------------------------------------- MLP


def _activation_name(activation: Any) -> Any:
    """A fused activation name ('tanh', 'relu', 'sigmoid', None) or a Module class."""
    if isinstance(activation, str):
        key = activation.lower()
        if key not in _FUSED:
            raise ValueError(f"MLP: activation must be 'tanh', 'relu', 'sigmoid', None or a Module class, given {activation!r}")
        return _FUSED[key]
    if activation is None:
        return None
    for cls, name in ((nn.Tanh, "tanh"), (nn.ReLU, "relu"), (nn.Sigmoid, "sigmoid"), (nn.Identity, None)):
        if activation is cls:
            return name
    if isinstance(activation, type) and issubclass(activation, nn.Module):
        return activation
    raise ValueError(f"MLP: activation must be 'tanh', 'relu', 'sigmoid', None or a Module class, given {activation!r}")


class MLP(nn.Module):
    """A multi-layer perceptron: ``Linear`` layers with ``activation`` after every hidden
    layer (and none after the output layer).

    Args:
        in_features: input size.
        hidden_sizes: sizes of the hidden layers (may be empty).
        out_features: output size, or None to end with the last hidden layer (activated).
        activation: 'tanh' (default), 'relu', 'sigmoid', None, or a Module class
            (``nn.Tanh`` ... are fused into the Linear kernel; other classes run after it).

    Shapes: (N, in_features) -> (N, out_features), or (N, hidden_sizes[-1]) when
    ``out_features`` is None. Parameters are ``layers.<i>.weight`` / ``layers.<i>.bias``.
    """

    def __init__(
        self,
        in_features: int,
        hidden_sizes: Sequence[int] = (64, 64),
        out_features: Optional[int] = None,
        activation: Any = "tanh",
        dtype: Any = None,
    ) -> None:
        super().__init__()
        sizes = [int(in_features)] + [int(h) for h in hidden_sizes]
        for s in sizes:
            if s <= 0:
                raise ValueError(f"MLP: layer sizes must be positive, given {[in_features, *hidden_sizes]}")
        act = _activation_name(activation)
        self._fused = act if not isinstance(act, type) else None
        self._act_module = act() if isinstance(act, type) else None
        layers = [nn.Linear(sizes[i], sizes[i + 1], dtype=dtype) for i in range(len(sizes) - 1)]
        self.n_hidden = len(layers)
        if out_features is not None:
            layers.append(nn.Linear(sizes[-1], int(out_features), dtype=dtype))
        if not layers:
            raise ValueError("MLP: no layers (give hidden_sizes or out_features)")
        self.layers = nn.ModuleList(layers)
        self.in_features = sizes[0]
        self.out_features = layers[-1].out_features

    def forward(self, x: Any) -> Tensor:
        for i, layer in enumerate(self.layers):
            if i < self.n_hidden:
                x = F.linear(x, layer.weight, layer.bias, self._fused)
                if self._act_module is not None:
                    x = self._act_module(x)
            else:
                x = F.linear(x, layer.weight, layer.bias)
        return x


def _ortho_init(module: nn.Module, gain: float) -> None:
    for m in module.modules():
        if isinstance(m, nn.Linear):
            orthogonal_(m.weight, gain)
            if m.bias is not None:
                m.bias.data[...] = 0


# ----------------------------------------------------------------------------- distributions


class Categorical:
    """A batch of categorical distributions over ``C`` actions given ``logits`` (N, C).

    ``log_prob(actions)`` (N,) and ``entropy()`` (N,) are differentiable in ``logits``;
    ``sample(rng)`` and ``mode()`` give int64 actions (N,)."""

    def __init__(self, logits: Tensor) -> None:
        self.logits = logits
        self.log_probs = log_softmax(logits, -1)

    def log_prob(self, actions: Any) -> Tensor:
        a = np.asarray(actions.data if isinstance(actions, Tensor) else actions).reshape(-1).astype(np.int64)
        n, c = self.log_probs.shape
        if a.shape[0] != n:
            raise ValueError(f"Categorical.log_prob: expected {n} actions, given {a.shape[0]}")
        if a.size and (a.min() < 0 or a.max() >= c):
            raise ValueError(f"Categorical.log_prob: actions must lie in [0, {c}), given values in [{a.min()}, {a.max()}]")
        onehot = np.zeros((n, c), dtype=self.log_probs.data.dtype)
        onehot[np.arange(n), a] = 1
        return (self.log_probs * onehot).sum(-1)

    def entropy(self) -> Tensor:
        return -(exp(self.log_probs) * self.log_probs).sum(-1)

    def probs(self) -> np.ndarray:
        return np.exp(self.log_probs.data)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """One action per row by inverse-CDF sampling with uniforms from ``rng``."""
        cdf = np.cumsum(self.probs(), axis=-1, dtype=np.float64)
        u = rng.random((cdf.shape[0], 1)) * cdf[:, -1:]
        return np.minimum((u >= cdf).sum(-1), cdf.shape[1] - 1).astype(np.int64)

    def mode(self) -> np.ndarray:
        return np.argmax(self.logits.data, axis=-1).astype(np.int64)


class DiagGaussian:
    """A batch of diagonal Gaussians: ``mean`` (N, D), ``log_std`` (D,) or (N, D).

    ``log_prob(actions)`` sums over the D dimensions, (N,); ``entropy()`` (N,); both
    differentiable in ``mean`` and ``log_std``. ``sample(rng)`` draws (N, D) float32."""

    def __init__(self, mean: Tensor, log_std: Tensor) -> None:
        self.mean = mean
        self.log_std = log_std

    def log_prob(self, actions: Any) -> Tensor:
        a = np.asarray(actions.data if isinstance(actions, Tensor) else actions, dtype=self.mean.data.dtype)
        if a.shape != self.mean.shape:
            try:
                a = a.reshape(self.mean.shape)
            except ValueError:
                raise ValueError(f"DiagGaussian.log_prob: expected actions of shape {self.mean.shape}, given {a.shape}") from None
        z = (self.mean - a) * exp(-self.log_std)
        d = self.mean.shape[-1]
        per = z * z * -0.5 - self.log_std
        return per.sum(-1) - 0.5 * d * _LOG_2PI

    def entropy(self) -> Tensor:
        n, d = self.mean.shape
        if self.log_std.ndim == 1:
            return self.log_std.sum(-1, keepdim=True).expand(n) + 0.5 * d * (1.0 + _LOG_2PI)
        return self.log_std.sum(-1) + 0.5 * d * (1.0 + _LOG_2PI)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        noise = rng.standard_normal(self.mean.shape)
        return (self.mean.data + np.exp(self.log_std.data) * noise).astype(self.mean.data.dtype)

    def mode(self) -> np.ndarray:
        return np.array(self.mean.data, copy=True)


# ----------------------------------------------------------------------------- Q-network


def _check_arch(name: str, net_arch: Any) -> list:
    try:
        arch = [int(h) for h in net_arch]
    except TypeError:
        raise ValueError(f"{name}: net_arch must be a list of layer sizes, given {net_arch!r}") from None
    if any(h <= 0 for h in arch):
        raise ValueError(f"{name}: layer sizes must be positive, given {net_arch!r}")
    return arch


class QNetwork(nn.Module):
    """Q-values of every action: (N, obs_dim) -> (N, n_actions), an :class:`MLP`.

    Args:
        observation_space: a ``Box`` or ``Discrete`` space.
        action_space: a ``Discrete`` space (anything else is a ValueError).
        net_arch: hidden layer sizes (default [64, 64], Stable-Baselines3's).
        activation_fn: 'relu' (default) or another :class:`MLP` activation.
    """

    def __init__(self, observation_space: Any, action_space: Any, net_arch: Sequence[int] = (64, 64), activation_fn: Any = "relu") -> None:
        super().__init__()
        if not is_discrete_space(action_space):
            raise ValueError(f"QNetwork: expected a Discrete action space, given {space_description(action_space)}")
        self.n_actions = int(action_space.n)
        self.q_net = MLP(obs_dim(observation_space), _check_arch("QNetwork", net_arch), self.n_actions, activation_fn)

    def forward(self, obs: Any) -> Tensor:
        return self.q_net(obs)


# ----------------------------------------------------------------------------- actor-critic


class ActorCriticPolicy(nn.Module):
    """An actor (action distribution) and, optionally, a critic (state value).

    Args:
        observation_space: a ``Box`` or ``Discrete`` space.
        action_space: ``Discrete`` (categorical policy over ``n`` logits) or ``Box``
            (diagonal Gaussian: a mean per dimension, a state-independent ``log_std``).
        net_arch: hidden sizes. A list gives the actor and the critic each their own layers
            of these sizes (Stable-Baselines3's meaning), ``dict(pi=[...], vf=[...])``
            separate layers of different sizes; default ``dict(pi=[64, 64], vf=[64, 64])``.
        share_features: with a list ``net_arch``, one trunk of these layers feeds both the
            action head and the value head (a shared network).
        activation_fn: 'tanh' (default) or another :class:`MLP` activation.
        ortho_init: orthogonal initialisation (gain √2 for hidden layers, 0.01 for the
            action head, 1 for the value head; zero biases) as Stable-Baselines3.
        log_std_init: initial log standard deviation (Box actions).
        with_value: build the critic (False for REINFORCE without a baseline).

    ``forward(obs)`` -> (distribution, values (N,) or None).
    """

    def __init__(
        self,
        observation_space: Any,
        action_space: Any,
        net_arch: Union[Sequence[int], dict, None] = None,
        activation_fn: Any = "tanh",
        *,
        share_features: bool = False,
        ortho_init: bool = True,
        log_std_init: float = 0.0,
        with_value: bool = True,
    ) -> None:
        super().__init__()
        kind = space_kind(action_space, "ActorCriticPolicy")
        self.action_kind = kind
        self.with_value = bool(with_value)
        self.shared = bool(share_features)
        if kind == "discrete":
            n_out = int(action_space.n)
        else:
            if len(action_space.shape) != 1:
                raise ValueError(f"ActorCriticPolicy: expected a 1-D Box action space, given shape {action_space.shape}")
            n_out = int(action_space.shape[0])
        self.action_dim = n_out
        d = obs_dim(observation_space)
        if net_arch is None:
            net_arch = dict(pi=[64, 64], vf=[64, 64])
        if isinstance(net_arch, dict):
            if self.shared:
                raise ValueError("ActorCriticPolicy: share_features needs a list net_arch, given a dict")
            unknown = set(net_arch) - {"pi", "vf"}
            if unknown:
                raise ValueError(f"ActorCriticPolicy: net_arch keys must be 'pi' and 'vf', given {sorted(net_arch)}")
            pi = _check_arch("ActorCriticPolicy", net_arch.get("pi", []))
            vf = _check_arch("ActorCriticPolicy", net_arch.get("vf", []))
        else:
            pi = vf = _check_arch("ActorCriticPolicy", net_arch)
        self.net_arch = net_arch
        if self.shared:
            if not pi:
                raise ValueError("ActorCriticPolicy: share_features needs at least one hidden layer")
            self.features = MLP(d, pi, None, activation_fn)
            self.action_net = nn.Linear(pi[-1], n_out)
            self.value_net = nn.Linear(pi[-1], 1) if self.with_value else None
        else:
            self.pi_net = MLP(d, pi, n_out, activation_fn)
            self.vf_net = MLP(d, vf, 1, activation_fn) if self.with_value else None
        if kind == "box":
            self.log_std = nn.Parameter(np.full((n_out,), log_std_init, dtype=np.float32))
        if ortho_init:
            self._ortho_init()

    def _ortho_init(self) -> None:
        root2 = math.sqrt(2.0)
        if self.shared:
            _ortho_init(self.features, root2)
            _ortho_init(self.action_net, 0.01)
            if self.value_net is not None:
                _ortho_init(self.value_net, 1.0)
            return
        for net, head_gain in ((self.pi_net, 0.01), (self.vf_net, 1.0)):
            if net is None:
                continue
            layers = list(net.layers)
            for layer in layers[:-1]:
                _ortho_init(layer, root2)
            _ortho_init(layers[-1], head_gain)

    def _distribution(self, out: Tensor) -> Any:
        if self.action_kind == "discrete":
            return Categorical(out)
        return DiagGaussian(out, self.log_std)

    def forward(self, obs: Any) -> tuple:
        """(distribution, values (N,) or None) for observations (N, obs_dim)."""
        if self.shared:
            h = self.features(obs)
            dist = self._distribution(self.action_net(h))
            values = self.value_net(h).reshape(-1) if self.value_net is not None else None
            return dist, values
        dist = self._distribution(self.pi_net(obs))
        values = self.vf_net(obs).reshape(-1) if self.vf_net is not None else None
        return dist, values

    def distribution(self, obs: Any) -> Any:
        """The action distribution alone (the critic is not evaluated)."""
        if self.shared:
            return self._distribution(self.action_net(self.features(obs)))
        return self._distribution(self.pi_net(obs))

    def predict_values(self, obs: Any) -> Tensor:
        """State values (N,)."""
        if not self.with_value:
            raise ValueError("ActorCriticPolicy.predict_values: this policy has no critic (with_value=False)")
        if self.shared:
            return self.value_net(self.features(obs)).reshape(-1)
        return self.vf_net(obs).reshape(-1)

    def evaluate_actions(self, obs: Any, actions: Any) -> tuple:
        """(values (N,) or None, log_prob (N,), entropy (N,)) of ``actions`` at ``obs``."""
        dist, values = self(obs)
        return values, dist.log_prob(actions), dist.entropy()
