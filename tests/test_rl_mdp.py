"""ferrograd.rl.mdp: FiniteMDP construction and validation, value / policy iteration and
policy evaluation against exact linear-system solutions, and the Rust Bellman kernel
against NumPy."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ferrograd
from ferrograd import _native
from ferrograd.rl import FiniteMDP, greedy_policy, policy_evaluation, policy_iteration, q_from_v, value_iteration
from ferrograd.rl.envs import FROZEN_LAKE_4x4, GridWorld


def random_mdp(seed, S, A, gamma, sparse=False, terminal=False):
    rng = np.random.default_rng(seed)
    P = rng.random((S, A, S)) ** 3
    if sparse:
        P *= rng.random((S, A, S)) < 0.4
        P[np.arange(S)[:, None], np.arange(A)[None, :], rng.integers(0, S, (S, A))] += 0.1
    P /= P.sum(-1, keepdims=True)
    R = rng.normal(size=(S, A, S))
    term = rng.random(S) < 0.3 if terminal else None
    return FiniteMDP(P, R, gamma, terminal=term), P, R, term


def exact_optimum(P, R_sa, gamma, term=None):
    """V* by enumerating every deterministic policy and solving its linear system (the
    optimal policy's value dominates every other's in every state)."""
    S, A = R_sa.shape
    C = P * (1.0 if term is None else ~term[None, None, :])
    pols = np.array(list(itertools.product(range(A), repeat=S)))  # (N, S)
    Cp = C[np.arange(S)[None, :], pols]  # (N, S, S)
    Rp = R_sa[np.arange(S)[None, :], pols]  # (N, S)
    V = np.linalg.solve(np.eye(S)[None] - gamma * Cp, Rp[..., None])[..., 0]
    return V.max(axis=0)


def policy_value(P, R_sa, gamma, pol, term=None):
    S = R_sa.shape[0]
    C = P * (1.0 if term is None else ~term[None, None, :])
    return np.linalg.solve(np.eye(S) - gamma * C[np.arange(S), pol], R_sa[np.arange(S), pol])


@given(seed=st.integers(0, 2**32 - 1), S=st.integers(1, 5), A=st.integers(1, 3),
       gamma=st.floats(0.0, 0.95), sparse=st.booleans(), terminal=st.booleans())
def test_value_and_policy_iteration_reach_the_exact_optimum(seed, S, A, gamma, sparse, terminal):
    mdp, P, R, term = random_mdp(seed, S, A, gamma, sparse, terminal)
    R_sa = np.einsum("ijk,ijk->ij", P, R)
    np.testing.assert_allclose(mdp.R, R_sa, rtol=1e-12, atol=1e-12)
    v_star = exact_optimum(P, R_sa, gamma, term)
    bound = 1e-10 * (1 + gamma / (1 - gamma))
    for backend in ("auto", "rust", "numpy-dense", "numpy-sparse"):
        V, pol = value_iteration(mdp, tol=1e-10, backend=backend)
        np.testing.assert_allclose(V, v_star, rtol=0, atol=bound + 1e-9)
        # the greedy policy is optimal: its exact value is V*
        np.testing.assert_allclose(policy_value(P, R_sa, gamma, pol, term), v_star, rtol=1e-9, atol=1e-9)
    for method in ("exact", "iterative"):
        V, pol = policy_iteration(mdp, method=method, tol=1e-12)
        np.testing.assert_allclose(V, v_star, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(policy_value(P, R_sa, gamma, pol, term), v_star, rtol=1e-9, atol=1e-9)


@given(seed=st.integers(0, 2**32 - 1), S=st.integers(1, 8), A=st.integers(1, 4), gamma=st.floats(0.0, 0.97))
def test_policy_evaluation_exact_and_iterative(seed, S, A, gamma):
    mdp, P, R, _ = random_mdp(seed, S, A, gamma, sparse=True)
    rng = np.random.default_rng(seed + 1)
    R_sa = np.einsum("ijk,ijk->ij", P, R)
    pol = rng.integers(0, A, S)
    ref = policy_value(P, R_sa, gamma, pol)
    np.testing.assert_allclose(policy_evaluation(mdp, pol), ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(policy_evaluation(mdp, pol, method="iterative", tol=1e-13), ref, rtol=1e-9, atol=1e-9)
    # stochastic policy: P_pi = sum_a pi(a|s) P[s, a], R_pi likewise
    pi = rng.random((S, A))
    pi /= pi.sum(1, keepdims=True)
    Ppi = np.einsum("sa,sat->st", pi, P)
    ref = np.linalg.solve(np.eye(S) - gamma * Ppi, np.einsum("sa,sa->s", pi, R_sa))
    np.testing.assert_allclose(policy_evaluation(mdp, pi), ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(policy_evaluation(mdp, pi, method="iterative", tol=1e-13), ref, rtol=1e-9, atol=1e-9)
    # q_from_v and greedy_policy against the formula
    V = rng.normal(size=S)
    Q = R_sa + gamma * np.einsum("sat,t->sa", P, V)
    np.testing.assert_allclose(q_from_v(mdp, V), Q, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(greedy_policy(Q), np.argmax(Q, 1))
    np.testing.assert_array_equal(greedy_policy(mdp, V), np.argmax(q_from_v(mdp, V), 1))


def test_frozenlake_optimal_policy_and_toy_text_tables():
    gym = pytest.importorskip("gymnasium")
    env = gym.make("FrozenLake-v1", map_name="4x4", is_slippery=True)
    mdp = FiniteMDP.from_gym(env, gamma=0.99)
    V, pol = value_iteration(mdp, tol=1e-12)
    # the known optimal policy of FrozenLake 4x4 slippery (gamma 0.99) off the holes/goal
    want = np.array([0, 3, 3, 3, 0, 0, 0, 0, 3, 1, 0, 0, 0, 2, 1, 0])
    live = ~np.isin(env.unwrapped.desc.astype(str).ravel(), ["H", "G"])
    np.testing.assert_array_equal(pol[live], want[live])
    assert V[0] == pytest.approx(0.5420, abs=1e-4)
    V2, pol2 = policy_iteration(mdp)
    np.testing.assert_allclose(V2, V, atol=1e-9)
    np.testing.assert_array_equal(pol2[live], want[live])
    # the GridWorld copy of the same map gives the same answer
    Vg, _ = value_iteration(GridWorld(FROZEN_LAKE_4x4, slip=2 / 3).to_mdp(0.99), tol=1e-12)
    np.testing.assert_allclose(Vg, V, atol=1e-12)
    # the dense view reproduces the table (duplicate successors summed)
    P = mdp.P
    assert P.shape == (16, 4, 16)
    np.testing.assert_allclose(P.sum(-1), 1.0)
    assert P[0, 0, 0] == pytest.approx(2 / 3) and P[0, 0, 4] == pytest.approx(1 / 3)
    assert mdp.terminal.tolist() == (~live).tolist()


@pytest.mark.parametrize("name", ["CliffWalking-v1", "Taxi-v4"])
def test_other_toy_text_environments(name):
    gym = pytest.importorskip("gymnasium")
    try:
        env = gym.make(name)
    except gym.error.Error:
        pytest.skip(f"{name} not in this gymnasium")
    mdp = FiniteMDP.from_gym(env, gamma=0.95)
    V, pol = value_iteration(mdp, tol=1e-12)
    Vp, polp = policy_iteration(mdp, method="iterative", tol=1e-13)  # (Taxi: 500 states)
    np.testing.assert_allclose(Vp, V, atol=1e-9)
    np.testing.assert_allclose(policy_evaluation(mdp, pol), V, atol=1e-9)
    if name.startswith("CliffWalking"):
        # deterministic: the shortest path along the cliff, 13 steps of -1 from the start
        assert V[36] == pytest.approx(-sum(0.95**k for k in range(13)), abs=1e-9)


def test_terminal_flags_match_a_terminal_mask():
    """A table whose 'terminated' flags end episodes equals array input with a terminal mask."""
    table = {0: {0: [(0.5, 1, 1.0, False), (0.5, 2, 5.0, True)], 1: [(1.0, 0, 0.0, False)]},
             1: {0: [(1.0, 2, 2.0, True)], 1: [(1.0, 0, -1.0, False)]},
             2: {0: [(1.0, 2, 0.0, True)], 1: [(1.0, 2, 0.0, True)]}}
    a = FiniteMDP.from_transition_table(table, gamma=0.9)
    P = np.zeros((3, 2, 3))
    R = np.zeros((3, 2, 3))
    for s, row in table.items():
        for act, entries in row.items():
            for p, s2, r, _ in entries:
                P[s, act, s2] += p
                R[s, act, s2] = r
    b = FiniteMDP(P, R, 0.9, terminal=[2])
    assert a.terminal.tolist() == [False, False, True]
    Va, _ = value_iteration(a, tol=1e-13)
    Vb, _ = value_iteration(b, tol=1e-13)
    np.testing.assert_allclose(Va, Vb, atol=1e-12)
    assert Va[2] == 0.0
    # by hand: V1 = max(2, -1 + .9 V0), V0 = max(.5 (1 + .9 V1) + .5 * 5, .9 V0); the
    # loop 0 -> 1 -> 0 wins: V1 = -1 + .9 (3 + .45 V1) = 1.7 / .595, V0 = 3 + .45 V1
    v1 = 1.7 / 0.595
    np.testing.assert_allclose(Va, [3 + 0.45 * v1, v1, 0.0], atol=1e-10)
    assert -1 + 0.9 * Va[0] > 2.0
    # gamma = 1 works when episodes end: V1 = -1 + V0, V0 = 3 + .5 V1 -> V1 = 4, V0 = 5
    V1, _ = value_iteration(a.with_gamma(1.0), tol=1e-12)
    np.testing.assert_allclose(V1, [5.0, 4.0, 0.0], atol=1e-9)


def test_validation_errors():
    P = np.full((2, 1, 2), 0.5)
    R = np.zeros((2, 1))
    with pytest.raises(ValueError, match=r"expected P of shape \(S, A, S\).*given shape \(2, 1\)"):
        FiniteMDP(P[:, :, 0], R)
    with pytest.raises(ValueError, match=r"expected R of shape \(S, A\) = \(2, 1\).*given shape \(3,\)"):
        FiniteMDP(P, np.zeros(3))
    bad = P.copy()
    bad[1, 0] = [1.2, -0.2]
    with pytest.raises(ValueError, match=r"non-negative.*P\[1, 0, 1\] = -0.2"):
        FiniteMDP(bad, R)
    bad = P.copy()
    bad[0, 0] = [0.5, 0.4]
    with pytest.raises(ValueError, match=r"sum to 1.*P\[0, 0, :\] summing to 0.9"):
        FiniteMDP(bad, R)
    with pytest.raises(ValueError, match="gamma"):
        FiniteMDP(P, R, gamma=1.5)
    with pytest.raises(ValueError, match="terminal"):
        FiniteMDP(P, R, terminal=[5])
    ok = {0: {0: [(1.0, 1, 0.0, False)]}, 1: {0: [(1.0, 1, 0.0, True)]}}
    FiniteMDP.from_transition_table(ok)
    cases = [
        ({0: {0: [(0.9, 1, 0.0, False)]}, 1: ok[1]}, r"P\[0\]\[0\] to sum to 1, given a sum of 0.9"),
        ({0: {0: [(1.2, 1, 0.0, False), (-0.2, 0, 0, False)]}, 1: ok[1]}, r"non-negative probabilities, given -0.2 at P\[0\]\[0\]"),
        ({0: {0: [(1.0, 2, 0.0, False)]}, 1: ok[1]}, r"next states in \[0, 2\), given 2 at P\[0\]\[0\]"),
        ({0: {0: [(1.0, 1, 0.0)]}, 1: ok[1]}, r"\(prob, next_state, reward, terminated\) tuples at P\[0\]\[0\]"),
        ({0: {0: []}, 1: ok[1]}, r"non-empty list.*P\[0\]\[0\]"),
        ({0: {0: [(1.0, 1, 0.0, False)], 1: [(1.0, 1, 0.0, False)]}, 1: ok[1]}, r"actions 0..1 in P\[1\]"),
        ({0: ok[0], 2: ok[1]}, r"states 0..1"),
        ({0: {0: [(float("nan"), 1, 0.0, False)]}, 1: ok[1]}, r"finite numbers"),
    ]
    for table, msg in cases:
        with pytest.raises(ValueError, match=msg):
            FiniteMDP.from_transition_table(table)
    mdp = FiniteMDP(P, R)
    with pytest.raises(ValueError, match=r"expected V of shape \(2,\)"):
        q_from_v(mdp, np.zeros(3))
    with pytest.raises(ValueError, match=r"policy of shape \(2,\)"):
        policy_evaluation(mdp, np.zeros(3, np.int64))
    with pytest.raises(ValueError, match=r"actions in \[0, 1\)"):
        policy_evaluation(mdp, np.array([0, 1]))
    with pytest.raises(ValueError, match="singular"):
        policy_evaluation(mdp.with_gamma(1.0), np.array([0, 0]))
    with pytest.raises(ValueError, match="backend"):
        value_iteration(mdp, backend="gpu")
    with pytest.raises(ValueError, match="method"):
        policy_evaluation(mdp, np.array([0, 0]), method="magic")


def test_large_models_use_iterative_evaluation(monkeypatch):
    from ferrograd.rl import mdp as mdp_module

    monkeypatch.setattr(mdp_module, "_EXACT_MAX_STATES", 20)  # (20,000 in earnest)
    monkeypatch.setattr(mdp_module, "_AUTO_EXACT_STATES", 10)
    env = GridWorld(["S....", ".....", ".....", ".....", "....G"], slip=0.1, rewards={"step": -0.01})
    mdp = env.to_mdp(0.9)
    with pytest.raises(ValueError, match="at most 20 states, given 25"):
        policy_evaluation(mdp, np.zeros(mdp.n_states, np.int64))
    V, pol = value_iteration(mdp, tol=1e-12)
    V2 = policy_evaluation(mdp, pol, method="iterative", tol=1e-13)
    Vp, polp = policy_iteration(mdp)  # "auto" chooses the iterative evaluation here
    np.testing.assert_allclose(Vp, V, atol=1e-9)
    np.testing.assert_allclose(V2, V, atol=1e-9)


@pytest.mark.parametrize("backend", ["rust", "numpy-dense", "numpy-sparse"])
def test_value_iteration_in_float32(backend):
    mdp, *_ = random_mdp(4, 30, 3, 0.9, sparse=True)
    V64, pol64 = value_iteration(mdp, backend=backend)
    V32, pol32 = value_iteration(mdp, dtype=np.float32, backend=backend)
    assert V32.dtype == np.float32
    np.testing.assert_allclose(V32, V64, rtol=1e-3, atol=1e-3)
    Q = q_from_v(mdp, V64)
    # any float32 choice is (near-)greedy for the float64 values
    np.testing.assert_allclose(Q[np.arange(30), pol32], Q.max(1), atol=1e-3)


def test_value_iteration_warns_when_not_converged():
    mdp, *_ = random_mdp(0, 4, 2, 0.99)
    with pytest.warns(RuntimeWarning, match="did not converge"):
        value_iteration(mdp, tol=1e-12, max_iter=3)


# ---------------------------------------------------------------- the Rust kernel


def sparse_model(seed, S, A, k, dtype):
    rng = np.random.default_rng(seed)
    indptr = np.arange(0, S * A * k + 1, k, dtype=np.int64)
    indices = rng.integers(0, S, S * A * k).astype(np.int64)
    weights = (rng.random(S * A * k) / k).astype(dtype)
    reward = rng.normal(size=S * A).astype(dtype)
    return indptr, indices, weights, reward


def numpy_backup(indptr, indices, weights, reward, v, gamma, A):
    rows = np.repeat(np.arange(indptr.size - 1), np.diff(indptr))
    acc = np.bincount(rows, weights=weights.astype(np.float64) * v.astype(np.float64)[indices], minlength=indptr.size - 1)
    q = (reward.astype(np.float64) + gamma * acc).reshape(-1, A)
    return q


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("S,A,k", [(1, 1, 1), (7, 3, 2), (1500, 4, 3)])
def test_bellman_kernel_matches_numpy(dtype, S, A, k):
    indptr, indices, weights, reward = sparse_model(S * 31 + A, S, A, k, dtype)
    v = np.random.default_rng(5).normal(size=S).astype(dtype)
    q_ref = numpy_backup(indptr, indices, weights, reward, v, 0.9, A)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    v2, pol, q, delta = _native.bellman_optimality_backup(indptr, indices, weights, reward, v, 0.9, A, True)
    assert v2.dtype == dtype and q.dtype == dtype and pol.dtype == np.int64
    np.testing.assert_allclose(q.reshape(S, A), q_ref, rtol=tol, atol=tol)
    np.testing.assert_array_equal(v2, q.reshape(S, A)[np.arange(S), pol])
    np.testing.assert_array_equal(pol, np.argmax(q.reshape(S, A), 1))
    assert delta == pytest.approx(float(np.max(np.abs(v2.astype(np.float64) - v))), rel=1e-6)
    policy = np.random.default_rng(6).integers(0, A, S).astype(np.int64)
    vp, dp = _native.bellman_policy_backup(indptr, indices, weights, reward, v, 0.9, A, policy)
    np.testing.assert_array_equal(vp, q.reshape(S, A)[np.arange(S), policy])


def test_bellman_kernel_is_bitwise_reproducible_across_thread_counts():
    indptr, indices, weights, reward = sparse_model(3, 5000, 4, 3, np.float32)
    v = np.random.default_rng(1).normal(size=5000).astype(np.float32)
    n0 = ferrograd.get_num_threads()
    outs = []
    try:
        for n in (1, 2, 3):
            ferrograd.set_num_threads(n)
            outs.append(_native.bellman_optimality_backup(indptr, indices, weights, reward, v, 0.95, 4, True))
    finally:
        ferrograd.set_num_threads(n0)
    for o in outs[1:]:
        for a, b in zip(o[:3], outs[0][:3]):
            np.testing.assert_array_equal(a, b)
        assert o[3] == outs[0][3]


def test_bellman_kernel_rejects_malformed_input():
    indptr, indices, weights, reward = sparse_model(0, 4, 2, 2, np.float64)
    v = np.zeros(4)
    f = _native.bellman_optimality_backup
    bad = indices.copy()
    bad[3] = 4
    with pytest.raises(ValueError, match="successor index 4"):
        f(indptr, bad, weights, reward, v, 0.9, 2)
    bad[3] = -1
    with pytest.raises(ValueError, match="successor index -1"):
        f(indptr, bad, weights, reward, v, 0.9, 2)
    bp = indptr.copy()
    bp[2] = 100
    with pytest.raises(ValueError, match="non-decreasing"):
        f(bp, indices, weights, reward, v, 0.9, 2)
    with pytest.raises(ValueError, match="indptr must have"):
        f(indptr[:-1], indices, weights, reward, v, 0.9, 2)
    with pytest.raises(ValueError, match="reward must have"):
        f(indptr, indices, weights, reward[:-1], v, 0.9, 2)
    with pytest.raises(ValueError, match="same length"):
        f(indptr, indices[:-1], weights, reward, v, 0.9, 2)
    with pytest.raises(TypeError, match="int64"):
        f(indptr.astype(np.int32), indices, weights, reward, v, 0.9, 2)
    with pytest.raises(TypeError, match="same dtype"):
        f(indptr, indices, weights, reward.astype(np.float32), v, 0.9, 2)
    with pytest.raises(ValueError, match="C-contiguous"):
        f(indptr, indices, weights, reward, np.zeros(8)[::2], 0.9, 2)
    with pytest.raises(ValueError, match="gamma"):
        f(indptr, indices, weights, reward, v, 1.5, 2)
    with pytest.raises(ValueError, match="n_actions"):
        f(np.zeros(1, np.int64), indices[:0], weights[:0], reward[:0], v, 0.9, 0)
    with pytest.raises(ValueError, match=r"policy\[1\] = 2 is outside"):
        _native.bellman_policy_backup(indptr, indices, weights, reward, v, 0.9, 2, np.array([0, 2, 0, 0]))
