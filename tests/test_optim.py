"""Optimizers against NumPy implementations of PyTorch's documented update rules.

Every optimizer and option is run over several steps on several parameters in one or two
param groups (some parameters without a gradient at some steps, so that their step counts
differ), in float32 and float64, and compared with a float64 NumPy reference.
"""

from __future__ import annotations

import math
import os
from typing import Any, Dict, List

import numpy as np
import pytest
from hypothesis import given, strategies as st

import ferrograd as fg
import ferrograd.optim as optim
from ferrograd import _native

DTYPES = [np.float32, np.float64]

# ---------------------------------------------------------------- NumPy references


def _wd(g, p, hp):
    g = -g if hp.get("maximize", False) else g
    if hp.get("weight_decay", 0.0) != 0.0 and not hp.get("decoupled_weight_decay", False):
        g = g + hp["weight_decay"] * p
    return g


def ref_sgd(p, g, s, hp):
    g = _wd(g, p, hp)
    mom = hp["momentum"]
    if mom != 0:
        if "b" not in s:
            s["b"] = g.copy()
        else:
            s["b"] = mom * s["b"] + (1 - hp["dampening"]) * g
        g = g + mom * s["b"] if hp["nesterov"] else s["b"]
    return p - hp["lr"] * g


def ref_adagrad(p, g, s, hp):
    s["t"] = s.get("t", 0) + 1
    s.setdefault("sum", np.full_like(p, hp["initial_accumulator_value"]))
    g = _wd(g, p, hp)
    clr = hp["lr"] / (1 + (s["t"] - 1) * hp["lr_decay"])
    s["sum"] = s["sum"] + g * g
    return p - clr * g / (np.sqrt(s["sum"]) + hp["eps"])


def ref_rmsprop(p, g, s, hp):
    g = _wd(g, p, hp)
    a = hp["alpha"]
    s["v"] = a * s.get("v", 0.0) + (1 - a) * g * g
    if hp["centered"]:
        s["ga"] = a * s.get("ga", 0.0) + (1 - a) * g
        avg = np.sqrt(s["v"] - s["ga"] ** 2) + hp["eps"]
    else:
        avg = np.sqrt(s["v"]) + hp["eps"]
    if hp["momentum"] > 0:
        s["b"] = hp["momentum"] * s.get("b", 0.0) + g / avg
        return p - hp["lr"] * s["b"]
    return p - hp["lr"] * g / avg


def ref_adadelta(p, g, s, hp):
    g = _wd(g, p, hp)
    rho, eps = hp["rho"], hp["eps"]
    s["v"] = rho * s.get("v", 0.0) + (1 - rho) * g * g
    delta = np.sqrt(s.get("u", 0.0) + eps) / np.sqrt(s["v"] + eps) * g
    s["u"] = rho * s.get("u", 0.0) + (1 - rho) * delta * delta
    return p - hp["lr"] * delta


def ref_adam(p, g, s, hp):
    s["t"] = t = s.get("t", 0) + 1
    b1, b2 = hp["betas"]
    if hp.get("decoupled_weight_decay", False):
        p = p * (1 - hp["lr"] * hp["weight_decay"])
    g = _wd(g, p, hp)
    s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
    s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g * g
    v = s["v"]
    if hp["amsgrad"]:
        s["vmax"] = v = np.maximum(s.get("vmax", 0.0), v)
    bc1, bc2 = 1 - b1**t, 1 - b2**t
    return p - hp["lr"] / bc1 * s["m"] / (np.sqrt(v) / math.sqrt(bc2) + hp["eps"])


def ref_nadam(p, g, s, hp):
    s["t"] = t = s.get("t", 0) + 1
    b1, b2 = hp["betas"]
    psi = hp["momentum_decay"]
    if hp.get("decoupled_weight_decay", False):
        p = p * (1 - hp["lr"] * hp["weight_decay"])
    g = _wd(g, p, hp)
    mu = b1 * (1 - 0.5 * 0.96 ** (t * psi))
    mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * psi))
    s["prod"] = prod = s.get("prod", 1.0) * mu
    s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
    s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g * g
    denom = np.sqrt(s["v"] / (1 - b2**t)) + hp["eps"]
    p = p - hp["lr"] * (1 - mu) / (1 - prod) * g / denom
    return p - hp["lr"] * mu_next / (1 - prod * mu_next) * s["m"] / denom


DEFAULTS = {
    "SGD": dict(lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False),
    "Adagrad": dict(lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10, maximize=False),
    "RMSprop": dict(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False, maximize=False),
    "Adadelta": dict(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, maximize=False),
    "Adam": dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False),
    "AdamW": dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, maximize=False, decoupled_weight_decay=True),
    "NAdam": dict(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, momentum_decay=4e-3, decoupled_weight_decay=False, maximize=False),
}
REFS = {
    "SGD": ref_sgd,
    "Adagrad": ref_adagrad,
    "RMSprop": ref_rmsprop,
    "Adadelta": ref_adadelta,
    "Adam": ref_adam,
    "AdamW": ref_adam,
    "NAdam": ref_nadam,
}

# ---------------------------------------------------------------- harness


def make_problem(rng, shapes, steps, dtype, skip_prob=0.25):
    """Initial parameter values and per-step gradients (None: the parameter has no grad)."""
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = []
    for t in range(steps):
        row = []
        for i, s in enumerate(shapes):
            # The first parameter always has a gradient; others sometimes skip a step.
            if i > 0 and t > 0 and rng.random() < skip_prob:
                row.append(None)
            else:
                row.append(rng.standard_normal(s).astype(dtype))
        grads.append(row)
    return params, grads


def run_ferro(name, kwargs, groups, params0, grads, dtype):
    """Runs ferrograd's optimizer; ``groups`` is a list of (param indices, overrides)."""
    ts = [fg.tensor(p.copy(), requires_grad=True, dtype=dtype) for p in params0]
    spec = [dict({"params": [ts[i] for i in idx]}, **ov) for idx, ov in groups]
    opt = getattr(optim, name)(spec, **kwargs)
    for row in grads:
        for t, g in zip(ts, row):
            t.grad = None if g is None else fg.tensor(g, dtype=dtype)
        opt.step()
    return [t.data for t in ts], opt


def run_ref(name, kwargs, groups, params0, grads):
    hp0 = dict(DEFAULTS[name], **kwargs)
    ps = [p.astype(np.float64) for p in params0]
    states: List[Dict[str, Any]] = [dict() for _ in ps]
    for row in grads:
        for idx, ov in groups:
            hp = dict(hp0, **ov)
            for i in idx:
                if row[i] is not None:
                    ps[i] = REFS[name](ps[i], row[i].astype(np.float64), states[i], hp)
    return ps


def assert_close(got, want, dtype, scale=1.0):
    if np.dtype(dtype) == np.float32:
        tol = dict(rtol=2e-4, atol=2e-5 * scale)
    else:
        tol = dict(rtol=1e-9, atol=1e-11 * scale)
    for i, (a, b) in enumerate(zip(got, want)):
        np.testing.assert_allclose(a, b, err_msg=f"param {i}", **tol)


shape_lists = st.lists(
    st.lists(st.integers(0, 5), min_size=0, max_size=3).map(tuple), min_size=1, max_size=3
)


def _check(name, kwargs, shapes, dtype, seed, two_groups, override=None, steps=4):
    rng = np.random.default_rng(seed)
    params0, grads = make_problem(rng, shapes, steps, dtype)
    n = len(shapes)
    if two_groups and n >= 2:
        groups = [(list(range(n // 2)), {}), (list(range(n // 2, n)), override or {})]
    else:
        groups = [(list(range(n)), {})]
    got, _ = run_ferro(name, kwargs, groups, params0, grads, dtype)
    want = run_ref(name, kwargs, groups, params0, grads)
    assert_close(got, want, dtype, scale=max(1.0, 10 * kwargs.get("lr", 1.0)))


lrs = st.sampled_from([1e-3, 0.01, 0.1])
wds = st.sampled_from([0.0, 0.0, 0.05])
dtypes = st.sampled_from(DTYPES)
seeds = st.integers(0, 2**31 - 1)


@given(shapes=shape_lists, dtype=dtypes, seed=seeds, lr=lrs, wd=wds,
       momentum=st.sampled_from([0.0, 0.5, 0.9]), dampening=st.sampled_from([0.0, 0.3]),
       nesterov=st.booleans(), maximize=st.booleans(), two=st.booleans())
def test_sgd_matches_reference(shapes, dtype, seed, lr, wd, momentum, dampening, nesterov, maximize, two):
    if nesterov and (momentum == 0 or dampening != 0):
        nesterov = False
    kw = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=wd, nesterov=nesterov, maximize=maximize)
    _check("SGD", kw, shapes, dtype, seed, two, override={"lr": lr * 3, "momentum": 0.8})


@given(shapes=shape_lists, dtype=dtypes, seed=seeds, lr=lrs, wd=wds,
       lr_decay=st.sampled_from([0.0, 0.1]), init=st.sampled_from([0.0, 0.1]),
       maximize=st.booleans(), two=st.booleans())
def test_adagrad_matches_reference(shapes, dtype, seed, lr, wd, lr_decay, init, maximize, two):
    kw = dict(lr=lr, lr_decay=lr_decay, weight_decay=wd, initial_accumulator_value=init, maximize=maximize)
    _check("Adagrad", kw, shapes, dtype, seed, two, override={"lr": lr / 2, "eps": 1e-6})


@given(shapes=shape_lists, dtype=dtypes, seed=seeds, lr=lrs, wd=wds,
       alpha=st.sampled_from([0.9, 0.99]), momentum=st.sampled_from([0.0, 0.5]),
       centered=st.booleans(), maximize=st.booleans(), two=st.booleans())
def test_rmsprop_matches_reference(shapes, dtype, seed, lr, wd, alpha, momentum, centered, maximize, two):
    kw = dict(lr=lr, alpha=alpha, weight_decay=wd, momentum=momentum, centered=centered, maximize=maximize)
    _check("RMSprop", kw, shapes, dtype, seed, two, override={"centered": not centered, "momentum": 0.3})


@given(shapes=shape_lists, dtype=dtypes, seed=seeds, lr=st.sampled_from([0.1, 1.0]), wd=wds,
       rho=st.sampled_from([0.5, 0.9]), maximize=st.booleans(), two=st.booleans())
def test_adadelta_matches_reference(shapes, dtype, seed, lr, wd, rho, maximize, two):
    kw = dict(lr=lr, rho=rho, weight_decay=wd, maximize=maximize)
    _check("Adadelta", kw, shapes, dtype, seed, two, override={"rho": 0.95})


betas = st.sampled_from([(0.9, 0.999), (0.8, 0.99), (0.0, 0.5)])


@given(shapes=shape_lists, dtype=dtypes, seed=seeds, lr=lrs, wd=wds, betas=betas,
       amsgrad=st.booleans(), maximize=st.booleans(), two=st.booleans(), adamw=st.booleans())
def test_adam_and_adamw_match_reference(shapes, dtype, seed, lr, wd, betas, amsgrad, maximize, two, adamw):
    kw = dict(lr=lr, betas=betas, weight_decay=wd, amsgrad=amsgrad, maximize=maximize)
    _check("AdamW" if adamw else "Adam", kw, shapes, dtype, seed, two,
           override={"betas": (0.5, 0.9), "amsgrad": not amsgrad, "lr": lr * 2})


@given(shapes=shape_lists, dtype=dtypes, seed=seeds, lr=lrs, wd=wds, betas=betas,
       psi=st.sampled_from([4e-3, 0.1]), decoupled=st.booleans(), maximize=st.booleans(),
       two=st.booleans())
def test_nadam_matches_reference(shapes, dtype, seed, lr, wd, betas, psi, decoupled, maximize, two):
    kw = dict(lr=lr, betas=betas, weight_decay=wd, momentum_decay=psi,
              decoupled_weight_decay=decoupled, maximize=maximize)
    _check("NAdam", kw, shapes, dtype, seed, two, override={"momentum_decay": 0.01})


# ---------------------------------------------------------------- state dicts

ALL = [
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1)),
    ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True)),
    ("Adadelta", dict()),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
    ("AdamW", dict(lr=0.01)),
    ("NAdam", dict(lr=0.01)),
]


def _jsonish(sd):
    """A state dict as a serializer may return it: str keys, lists for tuples."""
    return {
        "state": {str(k): {n: (np.array(v) if isinstance(v, np.ndarray) else v) for n, v in s.items()}
                  for k, s in sd["state"].items()},
        "param_groups": [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()}
                         for g in sd["param_groups"]],
    }


@pytest.mark.parametrize("name,kw", ALL)
@pytest.mark.parametrize("dtype", DTYPES)
def test_state_dict_round_trip_continues_identically(name, kw, dtype):
    rng = np.random.default_rng(5)
    shapes = [(3, 4), (4,), (2, 2, 2)]
    params0, grads = make_problem(rng, shapes, 7, dtype)
    groups = [[0, 1], [2]]

    def build(vals):
        ts = [fg.tensor(v.copy(), requires_grad=True, dtype=dtype) for v in vals]
        opt = getattr(optim, name)([{"params": [ts[0], ts[1]]}, {"params": [ts[2]], "lr": 0.05}], **kw)
        return ts, opt

    def steps(ts, opt, rows):
        for row in rows:
            for t, g in zip(ts, row):
                t.grad = None if g is None else fg.tensor(g, dtype=dtype)
            opt.step()

    ts, opt = build(params0)
    steps(ts, opt, grads[:3])
    sd = opt.state_dict()
    assert sorted(sd) == ["param_groups", "state"]
    assert [g["params"] for g in sd["param_groups"]] == groups
    assert all(isinstance(k, int) for k in sd["state"])
    # A second optimizer over copies of the current values, loaded from the state dict.
    ts2, opt2 = build([t.data.copy() for t in ts])
    opt2.load_state_dict(_jsonish(sd))
    steps(ts, opt, grads[3:])
    steps(ts2, opt2, grads[3:])
    for a, b in zip(ts, ts2):
        np.testing.assert_array_equal(a.data, b.data)
    sd1, sd2 = opt.state_dict(), opt2.state_dict()
    assert sd1["state"].keys() == sd2["state"].keys()
    for k in sd1["state"]:
        for n, v in sd1["state"][k].items():
            np.testing.assert_array_equal(v, sd2["state"][k][n])
    assert sd2["param_groups"][1]["lr"] == 0.05


def test_state_dict_is_a_copy_and_load_checks_structure():
    w = fg.tensor(np.ones(3), requires_grad=True)
    opt = optim.Adam([w], lr=0.1)
    w.grad = fg.tensor(np.ones(3))
    opt.step()
    sd = opt.state_dict()
    before = sd["state"][0]["exp_avg"].copy()
    opt.step()
    np.testing.assert_array_equal(sd["state"][0]["exp_avg"], before)
    assert sd["state"][0]["step"] == 1.0
    other = optim.Adam([fg.tensor(np.ones(3), requires_grad=True), fg.tensor(np.ones(2), requires_grad=True)])
    with pytest.raises(ValueError, match="doesn't match the size"):
        other.load_state_dict(sd)
    two = optim.Adam([{"params": [fg.tensor(np.ones(3), requires_grad=True)]},
                      {"params": [fg.tensor(np.ones(3), requires_grad=True)]}])
    with pytest.raises(ValueError, match="number of parameter groups"):
        two.load_state_dict(sd)
    wrong = optim.Adam([fg.tensor(np.ones(4), requires_grad=True)])
    with pytest.raises(ValueError, match="shape"):
        wrong.load_state_dict(sd)


# ---------------------------------------------------------------- behaviour

def test_params_without_grad_are_skipped_and_keep_no_state():
    a = fg.tensor(np.ones(3, np.float32), requires_grad=True)
    b = fg.tensor(np.ones(3, np.float32), requires_grad=True)
    opt = optim.Adam([a, b], lr=0.1)
    a.grad = fg.tensor(np.ones(3, np.float32))
    opt.step()
    np.testing.assert_array_equal(b.data, 1.0)
    assert b not in opt.state and opt.state[a]["step"] == 1.0


def test_zero_grad_and_closure():
    w = fg.tensor(np.array([1.0, 2.0]), requires_grad=True)
    opt = optim.SGD([w], lr=0.5)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert float(loss.item()) == 5.0
    np.testing.assert_allclose(w.data, [0.0, 0.0])
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(w.grad.data, 0.0)
    opt.zero_grad()
    assert w.grad is None


def test_mixed_dtypes_noncontiguous_params_and_cast_grads():
    a = fg.tensor(np.ones((3, 4), np.float32), requires_grad=True)
    b = fg.tensor(np.ones(5, np.float64), requires_grad=True)
    c = fg.tensor(np.ones((4, 3), np.float32), requires_grad=True)
    c.data = np.ones((3, 4), np.float32).T  # an F-ordered view
    opt = optim.SGD([a, b, c], lr=0.5)
    a.grad = fg.tensor(np.ones((3, 4), np.float64))  # cast to float32
    b.grad = fg.tensor(np.ones(5))
    c.grad = fg.tensor(np.ones((4, 3), np.float32))
    opt.step()
    for t in (a, b, c):
        np.testing.assert_allclose(t.data, 0.5)
    assert a.data.dtype == np.float32 and b.data.dtype == np.float64


def test_add_param_group_and_repr():
    a = fg.tensor(np.ones(2), requires_grad=True)
    b = fg.tensor(np.ones(2), requires_grad=True)
    opt = optim.Adagrad([a], lr=0.1)
    opt.add_param_group({"params": b, "lr": 0.2})
    assert opt.param_groups[1]["lr"] == 0.2 and opt.param_groups[1]["eps"] == 1e-10
    assert opt.state[b]["step"] == 0.0
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})
    assert "Adagrad" in repr(opt) and "Parameter Group 1" in repr(opt)


@pytest.mark.parametrize(
    "make,msg",
    [
        (lambda p: optim.SGD(p, lr=-1), "Invalid learning rate: -1"),
        (lambda p: optim.SGD(p, momentum=-0.5), "Invalid momentum value: -0.5"),
        (lambda p: optim.SGD(p, nesterov=True), "Nesterov momentum requires a momentum and zero dampening"),
        (lambda p: optim.SGD(p, weight_decay=-1), "Invalid weight_decay value: -1"),
        (lambda p: optim.Adam(p, betas=(1.0, 0.9)), "Invalid beta parameter at index 0: 1.0"),
        (lambda p: optim.Adam(p, betas=(0.9, -0.1)), "Invalid beta parameter at index 1: -0.1"),
        (lambda p: optim.Adam(p, eps=-1e-8), "Invalid epsilon value: -1e-08"),
        (lambda p: optim.AdamW(p, lr=-0.1), "Invalid learning rate: -0.1"),
        (lambda p: optim.NAdam(p, momentum_decay=-1), "Invalid momentum_decay value: -1"),
        (lambda p: optim.Adagrad(p, lr_decay=-1), "Invalid lr_decay value: -1"),
        (lambda p: optim.Adagrad(p, initial_accumulator_value=-1), "Invalid initial_accumulator_value value: -1"),
        (lambda p: optim.RMSprop(p, alpha=-1), "Invalid alpha value: -1"),
        (lambda p: optim.Adadelta(p, rho=1.5), "Invalid rho value: 1.5"),
        (lambda p: optim.SGD([{"params": p, "lr": -2}]), "Invalid learning rate: -2"),
        (lambda p: optim.SGD([], lr=0.1), "empty parameter list"),
    ],
)
def test_invalid_hyper_parameters(make, msg):
    p = [fg.tensor(np.ones(2), requires_grad=True)]
    with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        make(p)


def test_bad_params_and_grads():
    w = fg.tensor(np.ones(3), requires_grad=True)
    with pytest.raises(TypeError, match="iterable of Tensors or dicts"):
        optim.SGD(w)
    with pytest.raises(TypeError, match="can only optimize Tensors"):
        optim.SGD([np.ones(3)])
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([w * 2])
    opt = optim.Adam([w])
    w.grad = fg.tensor(np.ones(4))
    with pytest.raises(ValueError, match="shape"):
        opt.step()
    assert w not in opt.state  # a failed step leaves no state behind
    np.testing.assert_array_equal(w.data, 1.0)


def test_binding_rejects_aliasing_bad_dtypes_and_lengths():
    p = np.ones(4, np.float32)
    g = np.ones(4, np.float32)
    m = np.zeros(4, np.float32)
    with pytest.raises(ValueError, match="shares no memory|shares memory"):
        _native.adam_step([p], [g], [p], [m], [], [1.0], 0.1, 0.9, 0.99, 1e-8, 0.0, False, False, False)
    with pytest.raises(ValueError, match="shares"):
        _native.adam_step([p], [p], [m], [np.zeros(4, np.float32)], [], [1.0], 0.1, 0.9, 0.99, 1e-8, 0.0, False, False, False)
    with pytest.raises(ValueError, match="shares"):
        _native.sgd_step([p, p], [g, g], [], [], 0.1, 0.0, 0.0, 0.0, False, False)
    with pytest.raises(TypeError, match="same dtype"):
        _native.adam_step([p], [g.astype(np.float64)], [m], [m.copy()], [], [1.0], 0.1, 0.9, 0.99, 1e-8, 0.0, False, False, False)
    with pytest.raises(ValueError, match="shape"):
        _native.adam_step([p], [g[:3]], [m], [m.copy()], [], [1.0], 0.1, 0.9, 0.99, 1e-8, 0.0, False, False, False)
    with pytest.raises(ValueError, match="step counts"):
        _native.adam_step([p], [g], [m], [m.copy()], [], [0.0], 0.1, 0.9, 0.99, 1e-8, 0.0, False, False, False)
    with pytest.raises(ValueError, match="max_exp_avg_sqs"):
        _native.adam_step([p], [g], [m], [m.copy()], [], [1.0], 0.1, 0.9, 0.99, 1e-8, 0.0, True, False, False)
    with pytest.raises(ValueError, match="C-contiguous"):
        _native.sgd_step([np.ones((4, 4), np.float32).T], [np.ones((4, 4), np.float32)], [], [], 0.1, 0.0, 0.0, 0.0, False, False)
    ro = np.ones(4, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        _native.sgd_step([ro], [g], [], [], 0.1, 0.0, 0.0, 0.0, False, False)
    with pytest.raises(ValueError, match="finite"):
        _native.sgd_step([p], [g], [], [], float("nan"), 0.0, 0.0, 0.0, False, False)
    with pytest.raises(TypeError):
        _native.sgd_step([np.ones(4, np.int32)], [g], [], [], 0.1, 0.0, 0.0, 0.0, False, False)
    # Nothing was modified by the failed calls.
    np.testing.assert_array_equal(p, 1.0)


@pytest.mark.parametrize("name,kw", ALL)
def test_thread_count_does_not_change_results(name, kw):
    rng = np.random.default_rng(3)
    shapes = [(300_001,), (7,), (70_000,)]
    params0, grads = make_problem(rng, shapes, 3, np.float32, skip_prob=0.0)
    groups = [([0, 1, 2], {})]
    old = fg.get_num_threads()
    try:
        fg.set_num_threads(1)
        one, _ = run_ferro(name, kw, groups, params0, grads, np.float32)
        fg.set_num_threads(2)
        two, _ = run_ferro(name, kw, groups, params0, grads, np.float32)
    finally:
        fg.set_num_threads(old)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_simd_levels_agree_bitwise(tmp_path):
    """The kernels use only correctly rounded operations and no FMA contraction: the
    scalar, AVX2 and AVX-512 paths give the same bits (checked in a subprocess per level,
    since the level is chosen once per process from FERROGRAD_SIMD)."""
    import subprocess
    import sys

    script = (
        "import numpy as np, ferrograd as fg, ferrograd.optim as optim, sys\n"
        "rng = np.random.default_rng(9)\n"
        "out = []\n"
        "for name, kw in [('Adam', dict(lr=0.01, amsgrad=True, weight_decay=0.1)), ('NAdam', {}),\n"
        "                 ('RMSprop', dict(centered=True, momentum=0.5)), ('Adadelta', {}),\n"
        "                 ('Adagrad', dict(lr_decay=0.1)), ('SGD', dict(lr=0.1, momentum=0.9, nesterov=True))]:\n"
        "    for dt in (np.float32, np.float64):\n"
        "        ps = [fg.tensor(rng.standard_normal(n).astype(dt), requires_grad=True) for n in (1, 37, 70001)]\n"
        "        opt = getattr(optim, name)(ps, **kw)\n"
        "        for _ in range(3):\n"
        "            for p in ps:\n"
        "                p.grad = fg.tensor(rng.standard_normal(p.shape).astype(dt))\n"
        "            opt.step()\n"
        "        out += [p.data for p in ps]\n"
        "np.savez(sys.argv[1], *out)\n"
    )
    results = []
    for level in ("scalar", "avx2", "avx512"):
        f = tmp_path / f"{level}.npz"
        env = dict(os.environ, FERROGRAD_SIMD=level)
        subprocess.run([sys.executable, "-c", script, str(f)], check=True, env=env)
        with np.load(f) as z:
            results.append([z[k] for k in sorted(z.files, key=lambda k: int(k.split("_")[1]))])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)
