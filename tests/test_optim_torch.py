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
