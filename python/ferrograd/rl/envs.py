"""Environments with a known model: :class:`GridWorld`.

GridWorld follows gymnasium's API (``reset(seed=...) -> (obs, info)``,
``step(a) -> (obs, reward, terminated, truncated, info)``, ``observation_space``,
``action_space``) and, like gymnasium's toy-text environments, exposes its model as ``P``
(``P[s][a] = [(prob, next_state, reward, terminated), ...]``), so
``FiniteMDP.from_gym(GridWorld(...))`` plans on it. It is a ``gymnasium.Env`` when
gymnasium is installed (so gymnasium's wrappers and vector environments accept it), and a
plain class with the same API otherwise (then its spaces are
:class:`ferrograd.rl.base.DiscreteSpace` stand-ins).
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .. import _random
from .base import check_action, make_discrete_space

try:  # gymnasium is the optional `rl` extra; GridWorld works without it.
    import gymnasium as _gym

    _EnvBase: Any = _gym.Env
except ImportError:  # pragma: no cover - exercised only without the extra
    _gym = None
    _EnvBase = object

# Actions, as in gymnasium's FrozenLake / CliffWalking: 0 left, 1 down, 2 right, 3 up.
LEFT, DOWN, RIGHT, UP = 0, 1, 2, 3
_MOVES = np.array([[0, -1], [1, 0], [0, 1], [-1, 0]], dtype=np.int64)  # (drow, dcol) per action

_CELL_KINDS = {"S": "start", "G": "goal", "H": "hole", "#": "wall", "W": "wall", ".": "free", "F": "free"}
_DEFAULT_REWARDS = {"goal": 1.0, "hole": 0.0, "step": 0.0, "wall": 0.0}

FROZEN_LAKE_4x4 = ["SFFF", "FHFH", "FFFH", "HFFG"]
FROZEN_LAKE_8x8 = ["SFFFFFFF", "FFFFFFFF", "FFFHFFFF", "FFFFFHFF", "FFFHFFFF", "FHHFFFHF", "FHFFHFHF", "FFFHFFFG"]


class GridWorld(_EnvBase):
    """A grid MDP with start, goal, hole and wall cells, slippery moves and a reward spec.

    Parameters
    ----------
    layout : rows of the grid, a sequence of equal-length strings or one multi-line string.
        ``S`` start (one or more; the episode starts uniformly on one), ``G`` goal
        (terminal), ``H`` hole (terminal), ``#`` or ``W`` wall (impassable), ``.`` or ``F``
        free. FrozenLake's maps are valid layouts (``FROZEN_LAKE_4x4``, ``FROZEN_LAKE_8x8``).
    slip : probability that a move goes to one of the two perpendicular directions instead
        (``slip / 2`` each); ``slip = 2/3`` is FrozenLake's ``is_slippery=True``.
    rewards : mapping overriding the defaults ``{"goal": 1.0, "hole": 0.0, "step": 0.0,
        "wall": 0.0}``: the reward for entering a goal / a hole, added to every move, and
        added when a move is blocked by a wall or the grid's edge (the agent stays put).
    max_episode_steps : episodes are truncated after this many steps (None: never).
    render_mode : None or ``"ansi"`` (``render()`` returns the grid as text).

    States are cells numbered row-major, ``s = row * ncol + col`` (wall cells included,
    never reached); actions are 0 left, 1 down, 2 right, 3 up. Entering a goal or a hole
    ends the episode (``terminated``); stepping from a terminal state keeps it there with
    reward 0, as in gymnasium's toy-text environments.

    Attributes: ``P`` (the model, toy-text format), ``nrow``, ``ncol``, ``desc`` (the layout
    as a ``(nrow, ncol)`` array of one-character strings), ``initial_state_distrib``
    ``(S,)``, ``terminal_states`` ``(S,)`` bool, ``observation_space`` ``Discrete(S)``,
    ``action_space`` ``Discrete(4)``.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, layout: Union[str, Sequence[str]] = tuple(FROZEN_LAKE_4x4), slip: float = 0.0,
                 rewards: Optional[Mapping[str, float]] = None, max_episode_steps: Optional[int] = None,
                 render_mode: Optional[str] = None) -> None:
        rows = self._parse_layout(layout)
        self.desc = np.array([list(r) for r in rows], dtype="<U1")
        self.nrow, self.ncol = self.desc.shape
        if isinstance(slip, bool) or not isinstance(slip, (int, float, np.integer, np.floating)) or not (0.0 <= float(slip) <= 1.0):
            raise ValueError(f"GridWorld: expected slip to be a probability in [0, 1], given {slip!r}")
        self.slip = float(slip)
        self.rewards = dict(_DEFAULT_REWARDS)
        if rewards is not None:
            if not isinstance(rewards, Mapping):
                raise TypeError(f"GridWorld: expected rewards to be a mapping, given {type(rewards).__name__}")
            for k, v in rewards.items():
                if k not in _DEFAULT_REWARDS:
                    raise ValueError(f"GridWorld: expected reward keys among {sorted(_DEFAULT_REWARDS)}, given {k!r}")
                if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not np.isfinite(v):
                    raise ValueError(f"GridWorld: expected a finite number for rewards[{k!r}], given {v!r}")
                self.rewards[k] = float(v)
        if max_episode_steps is not None and (isinstance(max_episode_steps, bool)
                                              or not isinstance(max_episode_steps, (int, np.integer))
                                              or max_episode_steps < 1):
            raise ValueError(f"GridWorld: expected max_episode_steps to be None or a positive integer, given {max_episode_steps!r}")
        self.max_episode_steps = None if max_episode_steps is None else int(max_episode_steps)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"GridWorld: expected render_mode None or 'ansi', given {render_mode!r}")
        self.render_mode = render_mode

        n_states = self.nrow * self.ncol
        self.observation_space = make_discrete_space(n_states)
        self.action_space = make_discrete_space(4)
        kinds = self.desc.ravel()
        self.terminal_states = np.isin(kinds, ["G", "H"])
        start = kinds == "S"
        self.initial_state_distrib = start / start.sum()
        self._build_model()
        self.s = int(np.flatnonzero(start)[0])
        self.lastaction: Optional[int] = None
        self._elapsed = 0
        # unseeded until reset(seed=...): drawn from ferrograd's generator (manual_seed)
        self.np_random = np.random.default_rng(_random.kernel_seed())

    # ------------------------------------------------------------------ construction

    @staticmethod
    def _parse_layout(layout: Union[str, Sequence[str]]) -> List[str]:
        if isinstance(layout, str):
            rows = [r.strip() for r in layout.strip().splitlines() if r.strip()]
        elif isinstance(layout, Sequence) and all(isinstance(r, str) for r in layout):
            rows = [str(r) for r in layout]
        else:
            raise TypeError(f"GridWorld: expected layout to be a string or a sequence of strings, given {type(layout).__name__}")
        if not rows or not rows[0]:
            raise ValueError("GridWorld: expected a non-empty layout")
        widths = {len(r) for r in rows}
        if len(widths) != 1:
            raise ValueError(f"GridWorld: expected rows of equal length, given lengths {[len(r) for r in rows]}")
        bad = sorted({c for r in rows for c in r} - set(_CELL_KINDS))
        if bad:
            raise ValueError(f"GridWorld: expected cells among {''.join(sorted(_CELL_KINDS))!r}, given {bad}")
        if not any("S" in r for r in rows):
            raise ValueError("GridWorld: expected at least one start cell 'S' in the layout")
        return rows

    def _build_model(self) -> None:
        """Builds the model as arrays (successor, probability, reward, terminated for each
        state, action and move outcome: intended direction and the two perpendicular ones)
        and from them ``P`` in toy-text format."""
        nrow, ncol = self.nrow, self.ncol
        S = nrow * ncol
        kinds = self.desc.ravel()
        rc = np.stack(np.divmod(np.arange(S), ncol), axis=1)  # (S, 2)
        # outcomes k = 0, 1, 2 -> directions (a - 1) % 4, a, (a + 1) % 4 (FrozenLake's order)
        dirs = (np.arange(4)[:, None] + np.array([-1, 0, 1])[None, :]) % 4  # (A, 3)
        probs = np.array([self.slip / 2, 1.0 - self.slip, self.slip / 2])
        target = rc[:, None, None, :] + _MOVES[dirs][None, :, :, :]  # (S, A, 3, 2)
        inside = (target[..., 0] >= 0) & (target[..., 0] < nrow) & (target[..., 1] >= 0) & (target[..., 1] < ncol)
        tgt = np.where(inside, target[..., 0] * ncol + target[..., 1], 0)
        blocked = ~inside | (kinds[tgt] == "W") | (kinds[tgt] == "#")
        nxt = np.where(blocked, np.arange(S)[:, None, None], tgt)  # (S, A, 3)
        nk = kinds[nxt]
        rew = (self.rewards["step"] + np.where(nk == "G", self.rewards["goal"], 0.0)
               + np.where(nk == "H", self.rewards["hole"], 0.0) + np.where(blocked, self.rewards["wall"], 0.0))
        done = np.isin(nk, ["G", "H"])
        term = self.terminal_states
        # terminal states: stay, reward 0, terminated (toy-text convention)
        nxt[term] = np.arange(S)[term][:, None, None]
        rew[term] = 0.0
        done[term] = True
        self._next = nxt
        self._prob = np.broadcast_to(probs, nxt.shape).copy()
        self._prob[term] = np.array([0.0, 1.0, 0.0])
        self._reward = rew
        self._done = done
        self._cum = np.cumsum(self._prob, axis=-1)
        keep = self._prob > 0
        P: Dict[int, Dict[int, List[Tuple[float, int, float, bool]]]] = {}
        for s in range(S):  # the toy-text format is a dict of lists: built once
            P[s] = {}
            for a in range(4):
                P[s][a] = [(float(self._prob[s, a, k]), int(nxt[s, a, k]), float(rew[s, a, k]), bool(done[s, a, k]))
                           for k in range(3) if keep[s, a, k]]
        self.P = P

    # ------------------------------------------------------------------ gymnasium API

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None) -> Tuple[int, dict]:
        """Starts an episode; ``seed`` reseeds the environment's generator. Returns
        ``(state, {"prob": 1.0})``."""
        if seed is not None:
            self.np_random = np.random.default_rng(seed)
        cum = np.cumsum(self.initial_state_distrib)
        self.s = int(min(np.searchsorted(cum, self.np_random.random(), side="right"), len(cum) - 1))
        self.lastaction = None
        self._elapsed = 0
        return self.s, {"prob": 1.0}

    def step(self, action: Any) -> Tuple[int, float, bool, bool, dict]:
        """Takes ``action`` (0 left, 1 down, 2 right, 3 up). Returns
        ``(state, reward, terminated, truncated, {"prob": p})``; ValueError for an action
        outside ``Discrete(4)``."""
        check_action(self.action_space, action, "GridWorld.step")
        a = int(action)
        k = int(np.searchsorted(self._cum[self.s, a], self.np_random.random(), side="right"))
        k = min(k, 2)
        while self._prob[self.s, a, k] == 0.0:  # (floating-point edge: land on a real outcome)
            k -= 1
        p = float(self._prob[self.s, a, k])
        s2, r, d = int(self._next[self.s, a, k]), float(self._reward[self.s, a, k]), bool(self._done[self.s, a, k])
        self.s = s2
        self.lastaction = a
        self._elapsed += 1
        truncated = self.max_episode_steps is not None and self._elapsed >= self.max_episode_steps
        return s2, r, d, bool(truncated), {"prob": p}

    def render(self) -> Optional[str]:
        """The grid as text with the agent's cell in brackets (``render_mode="ansi"``)."""
        if self.render_mode is None:
            return None
        row, col = divmod(self.s, self.ncol)
        lines = []
        for i in range(self.nrow):
            cells = [f"[{c}]" if (i, j) == (row, col) else f" {c} " for j, c in enumerate(self.desc[i])]
            lines.append("".join(cells))
        names = ["Left", "Down", "Right", "Up"]
        head = f"  ({names[self.lastaction]})\n" if self.lastaction is not None else "\n"
        return head + "\n".join(lines) + "\n"

    def close(self) -> None:
        pass

    @property
    def unwrapped(self) -> "GridWorld":
        return self

    # ------------------------------------------------------------------ model helpers

    def to_mdp(self, gamma: float = 0.99) -> Any:
        """The known model as a :class:`ferrograd.rl.mdp.FiniteMDP` with discount ``gamma``."""
        from .mdp import FiniteMDP

        return FiniteMDP.from_transition_table(self.P, gamma=gamma)

    def state(self, row: int, col: int) -> int:
        """The state number of cell ``(row, col)``."""
        if not (0 <= row < self.nrow and 0 <= col < self.ncol):
            raise ValueError(f"GridWorld.state: expected row in [0, {self.nrow}) and col in [0, {self.ncol}), given ({row}, {col})")
        return int(row * self.ncol + col)

    def __repr__(self) -> str:
        return f"GridWorld({self.nrow}x{self.ncol}, slip={self.slip}, rewards={self.rewards})"


__all__ = ["GridWorld", "FROZEN_LAKE_4x4", "FROZEN_LAKE_8x8", "LEFT", "DOWN", "RIGHT", "UP"]
