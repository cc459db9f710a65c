"""``ferrograd.rl``: planning on known MDPs, tabular and deep reinforcement-learning agents
with Stable-Baselines3's interface, on any environment with gymnasium's API.

Names resolve lazily from their submodules, so ``import ferrograd`` never imports
gymnasium (the optional ``rl`` extra).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    # planning on known models
    "FiniteMDP": "mdp",
    "value_iteration": "mdp",
    "policy_iteration": "mdp",
    "policy_evaluation": "mdp",
    "q_from_v": "mdp",
    "greedy_policy": "mdp",
    # environments with a known model
    "GridWorld": "envs",
    # agents and their common interface
    "BaseAgent": "base",
    "evaluate_policy": "base",
    "QLearning": "tabular",
    "SARSA": "tabular",
    "ExpectedSARSA": "tabular",
    "DQN": "dqn",
    "ReplayBuffer": "buffers",
    "REINFORCE": "policy_gradient",
    "A2C": "policy_gradient",
    "compute_gae": "policy_gradient",
    # schedules
    "ConstantSchedule": "schedules",
    "LinearSchedule": "schedules",
    "ExponentialSchedule": "schedules",
}
_SUBMODULES = {"envs", "mdp", "base", "tabular", "dqn", "buffers", "policy_gradient", "policies", "schedules"}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | _SUBMODULES)
