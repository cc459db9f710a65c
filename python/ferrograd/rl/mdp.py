"""Planning on known models: finite Markov decision processes, value iteration, policy
iteration, policy evaluation.

A :class:`FiniteMDP` has ``S`` states, ``A`` actions (every action available in every
state), transition probabilities ``P[s, a, s']``, expected rewards ``R[s, a]`` and a
discount ``gamma``. It is built from arrays or from a gymnasium toy-text transition table
(``env.unwrapped.P``: FrozenLake, Taxi, CliffWalking, :class:`~ferrograd.rl.envs.GridWorld`),
where ``P[s][a] = [(prob, next_state, reward, terminated), ...]``. A transition that
terminates the episode contributes its reward but no future value, so

    Q[s, a] = R[s, a] + gamma * sum_{s'} C[s, a, s'] V[s']

with ``C`` the *continuation* probabilities (``P`` restricted to non-terminating
transitions). For array input, states listed in ``terminal`` play that role: moving into
one ends the episode.

The model is held sparse (compressed rows over (s, a) pairs: toy-text models have a few
successors per pair), with the dense ``(S, A, S)`` arrays built on demand. Bellman backups
are vectorised: NumPy's matrix-vector product on the dense model for small state spaces,
and the Rust kernel ``ferrograd._native.bellman_optimality_backup`` (sparse, parallel over
fixed blocks of states, bitwise reproducible) otherwise -- see ``_DENSE_MAX_ENTRIES``.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Mapping, Optional, Sequence, Tuple

import numpy as np

from .base import is_discrete_space

# Backend choice ("auto"). Measured per sweep with benches/bench_rl_mdp.py (float64, 2
# threads, each backend in its own process; load average ~7 from other work, so only the
# ratios mean anything -- see benches/RESULTS.md):
#   sparse toy-text models: FrozenLake 8x8 Rust 7.9 us vs NumPy 27-29 us (dense matmul,
#     einsum, sparse bincount); Taxi 18 us vs 39 us (sparse) / 0.84 ms (einsum) / 11 ms
#     (matmul); 100x100 and 300x300 grids (no dense model fits): 0.35 vs 0.94 ms and 3.5
#     vs 10.3 ms against NumPy's sparse form;
#   dense random models (every s' a successor), A=4: S=50 Rust 18 us vs 24 us (einsum);
#     S=200 241 us vs 72 us (BLAS matmul); S=1000 6.5 ms vs 2.6 ms (einsum) / 5.9 ms (matmul).
# The fused Rust sweep (one pass: gather, sum, max, argmax, change) wins on sparse models
# and on small dense ones; on large *dense* models BLAS's vectorised matrix-vector product
# reads the (S*A, S) matrix faster than the kernel gathers (index, weight) pairs. So
# "auto" takes NumPy's dense product when the model has at least _DENSE_MIN_ENTRIES dense
# entries, at least a quarter of them non-zero, and at most _DENSE_MAX_ENTRIES (memory);
# the Rust kernel otherwise (NumPy's sparse bincount form only without the extension).
_DENSE_MIN_ENTRIES = 16_384
_DENSE_MAX_ENTRIES = 1 << 25
_PROB_ATOL = 1e-6
# policy evaluation: the exact solve builds a dense (S, S) system (O(S^3) time)
_EXACT_MAX_STATES = 20_000
_AUTO_EXACT_STATES = 2_000


def _native() -> Any:
    try:
        from .. import _native as nat
    except ImportError:  # pragma: no cover - the extension is part of the package
        return None
    return nat if hasattr(nat, "bellman_optimality_backup") else None


def _check_gamma(gamma: Any, where: str) -> float:
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float, np.integer, np.floating)):
        raise TypeError(f"{where}: expected gamma to be a number in [0, 1], given {type(gamma).__name__}")
    g = float(gamma)
    if not (0.0 <= g <= 1.0):
        raise ValueError(f"{where}: expected gamma in [0, 1], given {gamma}")
    return g


class FiniteMDP:
    """A finite MDP ``(P, R, gamma)``.

    Parameters
    ----------
    P : array-like ``(S, A, S)``, ``P[s, a, s']`` the probability of moving from ``s`` to
        ``s'`` under ``a``: non-negative, each ``P[s, a, :]`` summing to 1.
    R : array-like ``(S, A)`` (expected reward of taking ``a`` in ``s``) or ``(S, A, S)``
        (reward of the transition ``s, a -> s'``; its expectation under ``P`` is used).
    gamma : discount factor in [0, 1].
    terminal : optional ``(S,)`` boolean mask or sequence of state indices: moving into a
        terminal state ends the episode (no value beyond it).

    Raises ValueError naming what was expected and what was given for wrong shapes,
    negative or non-finite entries, or rows that do not sum to 1.

    Attributes: ``n_states``, ``n_actions``, ``gamma``, ``R`` ``(S, A)``; ``P`` and
    ``continuation`` ``(S, A, S)`` are dense views built on first use; the sparse form
    (``indptr`` ``(S*A+1,)``, ``indices``, ``probs`` and ``weights`` ``(nnz,)``) is what the
    backups read.
    """

    def __init__(self, P: Any, R: Any, gamma: float = 0.99, terminal: Any = None) -> None:
        where = "FiniteMDP"
        P = np.asarray(P, dtype=np.float64)
        R = np.asarray(R, dtype=np.float64)
        if P.ndim != 3 or P.shape[0] != P.shape[2] or P.shape[0] == 0 or P.shape[1] == 0:
            raise ValueError(f"{where}: expected P of shape (S, A, S) with S, A >= 1, given shape {P.shape}")
        S, A = P.shape[0], P.shape[1]
        if R.shape not in ((S, A), (S, A, S)):
            raise ValueError(f"{where}: expected R of shape (S, A) = {(S, A)} or (S, A, S) = {(S, A, S)}, given shape {R.shape}")
        if not np.all(np.isfinite(P)):
            raise ValueError(f"{where}: expected finite probabilities in P, given non-finite entries")
        if np.any(P < 0):
            s, a, s2 = np.argwhere(P < 0)[0]
            raise ValueError(f"{where}: expected non-negative probabilities, given P[{s}, {a}, {s2}] = {P[s, a, s2]}")
        sums = P.sum(axis=2)
        bad = np.abs(sums - 1.0) > _PROB_ATOL
        if np.any(bad):
            s, a = np.argwhere(bad)[0]
            raise ValueError(f"{where}: expected P[s, a, :] to sum to 1, given P[{s}, {a}, :] summing to {float(sums[s, a])!r}")
        if not np.all(np.isfinite(R)):
            raise ValueError(f"{where}: expected finite rewards in R, given non-finite entries")
        term = np.zeros(S, bool)
        if terminal is not None:
            t = np.asarray(terminal)
            if t.dtype == bool:
                if t.shape != (S,):
                    raise ValueError(f"{where}: expected terminal as a boolean mask of shape ({S},), given shape {t.shape}")
                term = t.copy()
            else:
                if t.ndim > 1 or (t.size and (t.dtype.kind not in "iu" or t.min() < 0 or t.max() >= S)):
                    raise ValueError(f"{where}: expected terminal state indices in [0, {S}), given {terminal!r}")
                term[t.astype(np.int64)] = True
        self.gamma = _check_gamma(gamma, where)
        self.n_states, self.n_actions = S, A
        self.R = (R if R.ndim == 2 else np.einsum("ijk,ijk->ij", P, R)).copy()
        self._P = P.copy()
        self._C = P * ~term[None, None, :]
        self.terminal = term
        rows, cols = np.nonzero(P.reshape(S * A, S))
        self.indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=S * A))]).astype(np.int64)
        self.indices = cols.astype(np.int64)
        self.probs = P.reshape(S * A, S)[rows, cols]
        self.weights = self._C.reshape(S * A, S)[rows, cols]
        self._rows = rows.astype(np.int64)

    # ------------------------------------------------------------------ construction

    @classmethod
    def _from_sparse(cls, S: int, A: int, rows: np.ndarray, nxt: np.ndarray, probs: np.ndarray,
                     rewards: np.ndarray, done: np.ndarray, gamma: float) -> "FiniteMDP":
        self = cls.__new__(cls)
        self.gamma = gamma
        self.n_states, self.n_actions = S, A
        order = np.argsort(rows, kind="stable")
        rows, nxt, probs, rewards, done = rows[order], nxt[order], probs[order], rewards[order], done[order]
        self._rows = rows
        self.indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=S * A))]).astype(np.int64)
        self.indices = nxt
        self.probs = probs
        self.weights = probs * ~done
        self.R = np.bincount(rows, weights=probs * rewards, minlength=S * A).reshape(S, A)
        self._P = None
        self._C = None
        # a state is terminal if every transition into it ends the episode
        into = np.bincount(nxt, minlength=S) > 0
        into_cont = np.bincount(nxt, weights=(~done).astype(np.float64), minlength=S) > 0
        self.terminal = into & ~into_cont
        return self

    @classmethod
    def from_transition_table(cls, P: Any, gamma: float = 0.99, n_states: Optional[int] = None,
                              n_actions: Optional[int] = None) -> "FiniteMDP":
        """Builds the MDP from a toy-text transition table, ``P[s][a] = [(prob,
        next_state, reward, terminated), ...]`` (a dict or list of dicts or lists), as
        gymnasium's FrozenLake, Taxi and CliffWalking expose in ``env.unwrapped.P``.

        ``n_states`` / ``n_actions`` default to the table's sizes. Raises ValueError naming
        the offending ``P[s][a]`` for a missing state or action, a malformed entry, a
        successor outside ``[0, S)``, a negative or non-finite probability, or
        probabilities not summing to 1.
        """
        where = "FiniteMDP.from_transition_table"
        g = _check_gamma(gamma, where)
        if not isinstance(P, (Mapping, Sequence)) or isinstance(P, (str, bytes)):
            raise ValueError(f"{where}: expected a table P[s][a] -> list of (prob, next_state, reward, terminated), given {type(P).__name__}")
        S = len(P) if n_states is None else int(n_states)
        if S < 1:
            raise ValueError(f"{where}: expected at least one state, given {S}")
        keys = list(P.keys()) if isinstance(P, Mapping) else list(range(len(P)))
        if sorted(keys) != list(range(S)):
            raise ValueError(f"{where}: expected states 0..{S - 1} in the table, given {len(keys)} states "
                             f"(keys {sorted(keys)[:5]}...)")
        first = P[0]
        A = len(first) if n_actions is None else int(n_actions)
        if A < 1:
            raise ValueError(f"{where}: expected at least one action, given {A}")
        flat = []
        lens = np.empty(S * A, np.int64)
        for s in range(S):  # reading the Python table: one pass over its entries
            row = P[s]
            if len(row) != A or (isinstance(row, Mapping) and sorted(row.keys()) != list(range(A))):
                raise ValueError(f"{where}: expected actions 0..{A - 1} in P[{s}], given {len(row)} actions")
            for a in range(A):
                entries = row[a]
                if not isinstance(entries, (list, tuple)) or len(entries) == 0:
                    raise ValueError(f"{where}: expected a non-empty list of (prob, next_state, reward, terminated) at P[{s}][{a}], given {entries!r}")
                for e in entries:
                    if not isinstance(e, (list, tuple)) or len(e) != 4:
                        raise ValueError(f"{where}: expected (prob, next_state, reward, terminated) tuples at P[{s}][{a}], given {e!r}")
                flat.extend(entries)
                lens[s * A + a] = len(entries)
        try:
            arr = np.array(flat, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: expected numeric (prob, next_state, reward, terminated) entries") from None
        rows = np.repeat(np.arange(S * A, dtype=np.int64), lens)
        probs, nxt_f, rewards, done_f = arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3]
        if not np.all(np.isfinite(arr)):
            k = int(np.argwhere(~np.isfinite(arr))[0, 0])
            s, a = divmod(int(rows[k]), A)
            raise ValueError(f"{where}: expected finite numbers, given {flat[k]!r} at P[{s}][{a}]")
        if np.any(probs < 0):
            k = int(np.argmax(probs < 0))
            s, a = divmod(int(rows[k]), A)
            raise ValueError(f"{where}: expected non-negative probabilities, given {probs[k]} at P[{s}][{a}]")
        badn = (nxt_f != np.floor(nxt_f)) | (nxt_f < 0) | (nxt_f >= S)
        if np.any(badn):
            k = int(np.argmax(badn))
            s, a = divmod(int(rows[k]), A)
            raise ValueError(f"{where}: expected next states in [0, {S}), given {flat[k][1]!r} at P[{s}][{a}]")
        sums = np.bincount(rows, weights=probs, minlength=S * A)
        bad = np.abs(sums - 1.0) > _PROB_ATOL
        if np.any(bad):
            s, a = divmod(int(np.argmax(bad)), A)
            raise ValueError(f"{where}: expected the probabilities of P[{s}][{a}] to sum to 1, given a sum of {float(sums[s * A + a])!r}")
        return cls._from_sparse(S, A, rows, nxt_f.astype(np.int64), probs, rewards, done_f != 0, g)

    @classmethod
    def from_gym(cls, env: Any, gamma: float = 0.99) -> "FiniteMDP":
        """Builds the MDP from a toy-text environment (``env.unwrapped.P`` and its
        ``Discrete`` observation and action spaces)."""
        where = "FiniteMDP.from_gym"
        base = getattr(env, "unwrapped", env)
        if not hasattr(base, "P"):
            raise ValueError(f"{where}: expected an environment exposing its model as unwrapped.P "
                             f"(a toy-text environment such as FrozenLake, Taxi, CliffWalking), given {type(base).__name__}")
        obs_sp, act_sp = env.observation_space, env.action_space
        if not (is_discrete_space(obs_sp) and is_discrete_space(act_sp)):
            raise ValueError(f"{where}: expected Discrete observation and action spaces, given {obs_sp!r} and {act_sp!r}")
        return cls.from_transition_table(base.P, gamma=gamma, n_states=int(obs_sp.n), n_actions=int(act_sp.n))

    # ------------------------------------------------------------------ dense views

    def _dense(self, weights: np.ndarray) -> np.ndarray:
        S, A = self.n_states, self.n_actions
        out = np.zeros(S * A * S)
        np.add.at(out, self._rows * S + self.indices, weights)
        return out.reshape(S, A, S)

    @property
    def P(self) -> np.ndarray:
        """Dense transition probabilities ``(S, A, S)``."""
        if self._P is None:
            self._P = self._dense(self.probs)
        return self._P

    @property
    def continuation(self) -> np.ndarray:
        """Dense continuation probabilities ``(S, A, S)`` (non-terminating transitions)."""
        if self._C is None:
            self._C = self._dense(self.weights)
        return self._C

    def with_gamma(self, gamma: float) -> "FiniteMDP":
        """The same model with another discount."""
        other = object.__new__(FiniteMDP)
        other.__dict__.update(self.__dict__)
        other.gamma = _check_gamma(gamma, "FiniteMDP.with_gamma")
        return other

    def __repr__(self) -> str:
        return f"FiniteMDP(n_states={self.n_states}, n_actions={self.n_actions}, gamma={self.gamma}, nnz={self.indices.size})"

    # ------------------------------------------------------------------ backups

    def _use_dense(self, backend: str) -> bool:
        if backend == "numpy-dense":
            return True
        if backend in ("rust", "numpy-sparse"):
            return False
        dense = self.n_states * self.n_actions * self.n_states
        if _native() is None:
            return dense <= _DENSE_MAX_ENTRIES
        return _DENSE_MIN_ENTRIES <= dense <= _DENSE_MAX_ENTRIES and 4 * self.indices.size >= dense

    def _arrays(self, dtype: np.dtype) -> Tuple[np.ndarray, np.ndarray]:
        key = np.dtype(dtype).str
        cache = self.__dict__.setdefault("_cast", {})
        if key not in cache:
            cache[key] = (np.ascontiguousarray(self.weights, dtype), np.ascontiguousarray(self.R.ravel(), dtype))
        return cache[key]

    def q_values(self, V: np.ndarray, backend: str = "auto") -> np.ndarray:
        """``Q[s, a] = R[s, a] + gamma * sum_s' C[s, a, s'] V[s']``, shape ``(S, A)``."""
        V = _check_v(self, V, "q_from_v")
        return self._q(V, backend)

    def _q(self, V: np.ndarray, backend: str) -> np.ndarray:
        S, A = self.n_states, self.n_actions
        dt = V.dtype
        if self._use_dense(backend):
            cache = self.__dict__.setdefault("_dense_cast", {})
            if dt.str not in cache:
                cache[dt.str] = (self.continuation.reshape(S * A, S).astype(dt), self.R.astype(dt))
            C, R = cache[dt.str]
            return R + dt.type(self.gamma) * (C @ V).reshape(S, A)
        nat = _native()
        if backend != "numpy-sparse" and nat is not None:
            w, r = self._arrays(dt)
            _, _, q, _ = nat.bellman_optimality_backup(self.indptr, self.indices, w, r, np.ascontiguousarray(V),
                                                        self.gamma, A, True)
            return q.reshape(S, A)
        w, r = self._arrays(dt)
        acc = np.bincount(self._rows, weights=w * V[self.indices], minlength=S * A).astype(dt, copy=False)
        return (r + dt.type(self.gamma) * acc).reshape(S, A)

    def bellman_optimality_backup(self, V: np.ndarray, backend: str = "auto") -> Tuple[np.ndarray, np.ndarray, float]:
        """One sweep ``V'[s] = max_a Q[s, a]``. Returns ``(V', greedy policy (S,) int64,
        max |V' - V|)``. ``backend``: ``"auto"``, ``"rust"``, ``"numpy-dense"`` or
        ``"numpy-sparse"``."""
        V = _check_v(self, V, "bellman_optimality_backup")
        return self._opt(V, _check_backend(backend))

    def _opt(self, V: np.ndarray, backend: str) -> Tuple[np.ndarray, np.ndarray, float]:
        nat = _native()
        if not self._use_dense(backend) and backend != "numpy-sparse" and nat is not None:
            w, r = self._arrays(V.dtype)
            v2, pol, _, delta = nat.bellman_optimality_backup(self.indptr, self.indices, w, r, V, self.gamma,
                                                              self.n_actions, False)
            return v2, pol, float(delta)
        Q = self._q(V, backend)
        pol = np.argmax(Q, axis=1).astype(np.int64)
        v2 = Q[np.arange(self.n_states), pol]
        return v2, pol, float(np.max(np.abs(v2 - V)))

    def _pol(self, V: np.ndarray, policy: np.ndarray, backend: str) -> Tuple[np.ndarray, float]:
        nat = _native()
        if policy.ndim == 1 and not self._use_dense(backend) and backend != "numpy-sparse" and nat is not None:
            w, r = self._arrays(V.dtype)
            v2, delta = nat.bellman_policy_backup(self.indptr, self.indices, w, r, V, self.gamma, self.n_actions, policy)
            return v2, float(delta)
        Q = self._q(V, backend)
        v2 = Q[np.arange(self.n_states), policy] if policy.ndim == 1 else np.einsum("sa,sa->s", policy, Q)
        return v2.astype(V.dtype, copy=False), float(np.max(np.abs(v2 - V)))


_BACKENDS = ("auto", "rust", "numpy-dense", "numpy-sparse")


def _check_backend(backend: str) -> str:
    if backend not in _BACKENDS:
        raise ValueError(f"expected backend among {_BACKENDS}, given {backend!r}")
    return backend


def _check_mdp(mdp: Any, where: str) -> FiniteMDP:
    if not isinstance(mdp, FiniteMDP):
        raise TypeError(f"{where}: expected a FiniteMDP, given {type(mdp).__name__}")
    return mdp


def _check_v(mdp: FiniteMDP, V: Any, where: str, dtype: Any = None) -> np.ndarray:
    V = np.asarray(V)
    if V.shape != (mdp.n_states,):
        raise ValueError(f"{where}: expected V of shape ({mdp.n_states},), given shape {V.shape}")
    if dtype is None:
        dtype = V.dtype if V.dtype in (np.float32, np.float64) else np.float64
    V = np.ascontiguousarray(V, dtype)
    if not np.all(np.isfinite(V)):
        raise ValueError(f"{where}: expected finite values in V")
    return V


def _check_dtype(dtype: Any, where: str) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"{where}: expected dtype float32 or float64, given {dt}")
    return dt


def _check_policy(mdp: FiniteMDP, policy: Any, where: str) -> np.ndarray:
    """A deterministic policy ``(S,)`` of actions or a stochastic one ``(S, A)``."""
    p = np.asarray(policy)
    S, A = mdp.n_states, mdp.n_actions
    if p.shape == (S,):
        if p.dtype.kind not in "iu" or (p.size and (p.min() < 0 or p.max() >= A)):
            raise ValueError(f"{where}: expected a deterministic policy of actions in [0, {A}), given {policy!r}")
        return np.ascontiguousarray(p, np.int64)
    if p.shape == (S, A):
        p = p.astype(np.float64)
        if not np.all(np.isfinite(p)) or np.any(p < 0) or np.any(np.abs(p.sum(1) - 1) > _PROB_ATOL):
            raise ValueError(f"{where}: expected a stochastic policy whose rows are probability distributions over the {A} actions")
        return p
    raise ValueError(f"{where}: expected a policy of shape ({S},) (actions) or ({S}, {A}) (probabilities), given shape {p.shape}")


# ============================================================================ algorithms


def value_iteration(mdp: FiniteMDP, tol: Optional[float] = None, max_iter: int = 100_000, V0: Any = None,
                    dtype: Any = np.float64, backend: str = "auto") -> Tuple[np.ndarray, np.ndarray]:
    """Value iteration: repeats ``V <- max_a Q(V)`` until the greatest change is below
    ``tol`` (so ``V`` is within ``tol * gamma / (1 - gamma)`` of ``V*``). ``tol`` defaults
    to 1e-8 in float64 and 1e-4 in float32 (whose rounding keeps sweeps changing values
    by an ulp, about 1e-6 relative).

    Returns ``(V, policy)``: ``V`` ``(S,)`` in ``dtype`` and the greedy policy ``(S,)``
    int64 (the first maximising action). Warns (RuntimeWarning) if ``max_iter`` sweeps did
    not reach ``tol`` -- with ``gamma = 1`` that happens when some policy never ends.
    """
    where = "value_iteration"
    mdp = _check_mdp(mdp, where)
    dt = _check_dtype(dtype, where)
    backend = _check_backend(backend)
    if tol is None:
        tol = 1e-8 if dt == np.float64 else 1e-4
    _check_tol(tol, max_iter, where)
    V = np.zeros(mdp.n_states, dt) if V0 is None else _check_v(mdp, V0, where, dt)
    V = _sweep(lambda v: mdp._opt(v, backend)[::2], V, tol, max_iter, where)
    _, pol, _ = mdp._opt(V, backend)
    return V, pol


def _sweep(step: Callable[[np.ndarray], Tuple[np.ndarray, float]], V: np.ndarray, tol: float, max_iter: int,
           where: str) -> np.ndarray:
    """Runs ``V, delta = step(V)`` until the largest change ``delta`` drops below ``tol``
    (ValueError if it turns non-finite; a RuntimeWarning after ``max_iter`` sweeps)."""
    for _ in range(int(max_iter)):
        V, delta = step(V)
        if not np.isfinite(delta):
            raise ValueError(f"{where}: values diverged (non-finite); check rewards and gamma")
        if delta < tol:
            return V
    warnings.warn(f"{where}: did not converge to tol={tol} in {max_iter} sweeps (last change {delta:.3g})",
                  RuntimeWarning, stacklevel=3)
    return V


def _check_tol(tol: Any, max_iter: Any, where: str) -> None:
    if isinstance(tol, bool) or not isinstance(tol, (int, float, np.integer, np.floating)) or not (float(tol) > 0):
        raise ValueError(f"{where}: expected tol > 0, given {tol!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise ValueError(f"{where}: expected max_iter to be a positive integer, given {max_iter!r}")


def policy_evaluation(mdp: FiniteMDP, policy: Any, method: str = "exact", tol: float = 1e-10,
                      max_iter: int = 100_000, V0: Any = None, dtype: Any = np.float64,
                      backend: str = "auto") -> np.ndarray:
    """The value ``V^pi`` ``(S,)`` of ``policy`` (``(S,)`` actions, or ``(S, A)``
    probabilities).

    ``method="exact"`` solves the linear system ``(I - gamma C_pi) V = R_pi`` (dense,
    O(S^3); float64); ``method="iterative"`` repeats ``V <- R_pi + gamma C_pi V`` until the
    greatest change is below ``tol``. With ``gamma = 1`` the system is singular unless the
    policy ends the episode from every state: ValueError then.
    """
    where = "policy_evaluation"
    mdp = _check_mdp(mdp, where)
    pol = _check_policy(mdp, policy, where)
    dt = _check_dtype(dtype, where)
    backend = _check_backend(backend)
    S, A = mdp.n_states, mdp.n_actions
    if method == "exact":
        if S > _EXACT_MAX_STATES:
            raise ValueError(f"{where}: method='exact' solves a dense {S} x {S} system; expected at most "
                             f"{_EXACT_MAX_STATES} states, given {S} (use method='iterative')")
        if pol.ndim == 1:
            sel = pol[mdp._rows // A] == (mdp._rows % A)  # entries of the chosen (s, a) rows
            src = mdp._rows[sel] // A
            C = np.bincount(src * S + mdp.indices[sel], weights=mdp.weights[sel], minlength=S * S).reshape(S, S)
            r = mdp.R[np.arange(S), pol]
        else:
            wpi = pol.ravel()[mdp._rows] * mdp.weights
            C = np.bincount((mdp._rows // A) * S + mdp.indices, weights=wpi, minlength=S * S).reshape(S, S)
            r = np.einsum("sa,sa->s", pol, mdp.R)
        M = np.eye(S) - mdp.gamma * C
        try:
            V = np.linalg.solve(M, r)
        except np.linalg.LinAlgError:
            raise ValueError(f"{where}: I - gamma * C_pi is singular (gamma={mdp.gamma}): the policy never ends the "
                             "episode from some states; use gamma < 1 or method='iterative'") from None
        if not np.all(np.isfinite(V)):
            raise ValueError(f"{where}: the linear solve gave non-finite values (gamma={mdp.gamma})")
        return V.astype(dt)
    if method != "iterative":
        raise ValueError(f"{where}: expected method 'exact' or 'iterative', given {method!r}")
    _check_tol(tol, max_iter, where)
    V = np.zeros(S, dt) if V0 is None else _check_v(mdp, V0, where, dt)
    pol = pol if pol.ndim == 1 else pol.astype(dt)  # once, not every sweep
    return _sweep(lambda v: mdp._pol(v, pol, backend), V, tol, max_iter, where)


def policy_iteration(mdp: FiniteMDP, max_iter: int = 1_000, policy0: Any = None, method: str = "auto",
                     tol: float = 1e-10, backend: str = "auto") -> Tuple[np.ndarray, np.ndarray]:
    """Policy iteration: evaluate the policy (``method`` as in :func:`policy_evaluation`;
    ``"auto"``: the exact solve up to 2,000 states, iterative sweeps beyond), make it
    greedy, repeat until it no longer changes. An action is only replaced by one whose
    value is larger by more than ``1e-12 * (1 + |Q|)``, so ties never make it cycle.

    Returns ``(V, policy)`` (float64 ``(S,)``, int64 ``(S,)``). Starts from ``policy0``
    (default: action 0 everywhere).
    """
    where = "policy_iteration"
    mdp = _check_mdp(mdp, where)
    S = mdp.n_states
    pol = np.zeros(S, np.int64) if policy0 is None else _check_policy(mdp, policy0, where)
    if pol.ndim != 1:
        raise ValueError(f"{where}: expected a deterministic initial policy of shape ({S},), given shape {pol.shape}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise ValueError(f"{where}: expected max_iter to be a positive integer, given {max_iter!r}")
    if method == "auto":
        method = "exact" if S <= _AUTO_EXACT_STATES else "iterative"
    for _ in range(int(max_iter)):
        V = policy_evaluation(mdp, pol, method=method, tol=tol, backend=backend)
        Q = mdp._q(V, backend)
        best = np.argmax(Q, axis=1)
        q_cur = Q[np.arange(S), pol]
        q_best = Q[np.arange(S), best]
        improve = q_best > q_cur + 1e-12 * (1.0 + np.abs(q_cur))
        if not np.any(improve):
            return V, pol
        pol = np.where(improve, best, pol).astype(np.int64)
    warnings.warn(f"{where}: the policy was still changing after {max_iter} iterations", RuntimeWarning, stacklevel=2)
    return policy_evaluation(mdp, pol, method=method, tol=tol, backend=backend), pol


def q_from_v(mdp: FiniteMDP, V: Any, backend: str = "auto") -> np.ndarray:
    """``Q[s, a] = R[s, a] + gamma * sum_s' C[s, a, s'] V[s']``, shape ``(S, A)``."""
    mdp = _check_mdp(mdp, "q_from_v")
    return mdp.q_values(V, _check_backend(backend))


def greedy_policy(Q_or_mdp: Any, V: Any = None) -> np.ndarray:
    """The greedy policy ``(S,)`` int64: ``argmax_a Q[s, a]`` (the first maximum) for a
    ``Q`` of shape ``(S, A)``, or ``greedy_policy(mdp, V)`` for ``Q = q_from_v(mdp, V)``."""
    if isinstance(Q_or_mdp, FiniteMDP):
        if V is None:
            raise ValueError("greedy_policy: expected V with an MDP (greedy_policy(mdp, V)), given None")
        Q = q_from_v(Q_or_mdp, V)
    else:
        if V is not None:
            raise ValueError("greedy_policy: expected greedy_policy(Q) or greedy_policy(mdp, V)")
        Q = np.asarray(Q_or_mdp)
    if Q.ndim != 2 or Q.shape[1] == 0 or Q.dtype.kind not in "fiu":
        raise ValueError(f"greedy_policy: expected Q of shape (S, A) with A >= 1, given shape {Q.shape}")
    return np.argmax(Q, axis=1).astype(np.int64)


__all__ = ["FiniteMDP", "value_iteration", "policy_iteration", "policy_evaluation", "q_from_v", "greedy_policy"]
