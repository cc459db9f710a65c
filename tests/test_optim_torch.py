"""Optional cross-check of every optimizer against torch.optim (skipped without torch)."""

from __future__ import annotations

import numpy as np
import pytest

import ferrograd as fg
import ferrograd.optim as optim

torch = pytest.importorskip("torch")

CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01, maximize=True)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.01, initial_accumulator_value=0.1)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.01, maximize=True)),
    ("Adadelta", dict(lr=1.0, rho=0.9, weight_decay=0.01)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, amsgrad=True, maximize=True)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    ("NAdam", dict(lr=0.01, weight_decay=0.01)),
    ("NAdam", dict(lr=0.01, weight_decay=0.01, decoupled_weight_decay=True, momentum_decay=0.01)),
]


@pytest.mark.parametrize("name,kw", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_torch_after_steps(name, kw, dtype):
    rng = np.random.default_rng(11)
    shapes = [(5, 7), (7,), (3, 2, 4)]
    init = [rng.standard_normal(s).astype(dtype) for s in shapes]
    tt = torch.float32 if dtype == np.float32 else torch.float64
    ours = [fg.tensor(a.copy(), requires_grad=True, dtype=dtype) for a in init]
    theirs = [torch.nn.Parameter(torch.tensor(a.copy(), dtype=tt)) for a in init]
    opt = getattr(optim, name)([{"params": ours[:2]}, {"params": ours[2:], "lr": kw["lr"] / 2}], **kw)
    topt = getattr(torch.optim, name)(
        [{"params": theirs[:2]}, {"params": theirs[2:], "lr": kw["lr"] / 2}], foreach=False, **kw
    )
    for step in range(8):
        for i, (a, b) in enumerate(zip(ours, theirs)):
            if i == 1 and step % 3 == 1:
                a.grad, b.grad = None, None  # a skipped step: this parameter's count lags
                continue
            g = rng.standard_normal(a.shape).astype(dtype)
            a.grad = fg.tensor(g, dtype=dtype)
            b.grad = torch.tensor(g, dtype=tt)
        opt.step()
        topt.step()
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    if name == "NAdam" and dtype == np.float64:
        # PyTorch keeps NAdam's mu_product in a float32 tensor (its default scalar dtype);
        # ours is a Python float: the coefficients differ by ~1e-8 relative.
        tol = dict(rtol=1e-7, atol=1e-9)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.data, b.detach().numpy(), **tol)
    # The state dict has PyTorch's structure and names.
    sd, tsd = opt.state_dict(), topt.state_dict()
    assert sd["state"].keys() == tsd["state"].keys()
    for k in sd["state"]:
        assert set(sd["state"][k]) == set(tsd["state"][k])
        for n, v in sd["state"][k].items():
            np.testing.assert_allclose(np.asarray(v), tsd["state"][k][n].detach().numpy(), **tol)
    assert [g["params"] for g in sd["param_groups"]] == [g["params"] for g in tsd["param_groups"]]
    for g, tg in zip(sd["param_groups"], tsd["param_groups"]):
        for key, v in g.items():
            assert key in tg, key
            if key != "params":
                assert tuple(v) == tuple(tg[key]) if isinstance(v, tuple) else v == tg[key], key


def _to_numpy_sd(tsd):
    return {
        "state": {k: {n: (v.detach().numpy().copy() if torch.is_tensor(v) else v) for n, v in s.items()}
                  for k, s in tsd["state"].items()},
        "param_groups": [dict(g) for g in tsd["param_groups"]],
    }


def _to_torch_sd(sd):
    return {
        "state": {k: {n: (torch.tensor(v) if n in ("step", "mu_product") else torch.from_numpy(np.array(v)))
                      for n, v in s.items()} for k, s in sd["state"].items()},
        "param_groups": [dict(g) for g in sd["param_groups"]],
    }


@pytest.mark.parametrize("name,kw", [c for c in CASES if c[0] != "SGD" or "momentum" in c[1]])
def test_state_dicts_move_between_torch_and_ferrograd(name, kw):
    """A torch state dict (tensors -> arrays) loads into ferrograd and the two continue
    alike; and the other way round."""
    rng = np.random.default_rng(4)
    shapes = [(4, 3), (3,)]
    init = [rng.standard_normal(s) for s in shapes]
    grads = [[rng.standard_normal(s) for s in shapes] for _ in range(6)]
    theirs = [torch.nn.Parameter(torch.tensor(a)) for a in init]
    topt = getattr(torch.optim, name)(theirs, foreach=False, **kw)
    ours = [fg.tensor(a.copy(), requires_grad=True) for a in init]
    opt = getattr(optim, name)(ours, **kw)
    for row in grads[:3]:
        for t, g in zip(theirs, row):
            t.grad = torch.tensor(g)
        topt.step()
        for p, g in zip(ours, row):
            p.grad = fg.tensor(g)
        opt.step()
    # torch -> ferrograd: a fresh ferrograd optimizer over torch's current values.
    moved = [fg.tensor(t.detach().numpy().copy(), requires_grad=True) for t in theirs]
    opt2 = getattr(optim, name)(moved, **kw)
    opt2.load_state_dict(_to_numpy_sd(topt.state_dict()))
    # ferrograd -> torch: a fresh torch optimizer over ferrograd's current values.
    moved_t = [torch.nn.Parameter(torch.tensor(p.data.copy())) for p in ours]
    topt2 = getattr(torch.optim, name)(moved_t, foreach=False, **kw)
    topt2.load_state_dict(_to_torch_sd(opt.state_dict()))
    for row in grads[3:]:
        for group in ((theirs, topt), (moved_t, topt2)):
            for t, g in zip(group[0], row):
                t.grad = torch.tensor(g)
            group[1].step()
        for group in ((ours, opt), (moved, opt2)):
            for p, g in zip(group[0], row):
                p.grad = fg.tensor(g)
            group[1].step()
    tol = dict(rtol=1e-7, atol=1e-9)
    for a, b, c, d in zip(ours, moved, theirs, moved_t):
        np.testing.assert_allclose(b.data, c.detach().numpy(), **tol)
        np.testing.assert_allclose(d.detach().numpy(), a.data, **tol)
