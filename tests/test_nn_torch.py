"""Optional cross-check against PyTorch (skipped when torch is absent): the same weights
loaded into torch.nn modules give the same outputs and gradients; state_dict keys match."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ferrograd as fg  # noqa: E402
import ferrograd.nn as nn  # noqa: E402
import ferrograd.nn.functional as F  # noqa: E402

ACTS = [
    ("ReLU", {}), ("LeakyReLU", {"negative_slope": 0.2}), ("Sigmoid", {}), ("Tanh", {}), ("Softsign", {}),
    ("Softplus", {"beta": 2.0, "threshold": 3.0}), ("Softmax", {"dim": 1}), ("LogSoftmax", {"dim": 1}),
    ("ELU", {"alpha": 0.7}), ("GELU", {}), ("GELU", {"approximate": "tanh"}),
]


def pair(act, kw):
    ours = nn.Sequential(nn.Linear(5, 7), getattr(nn, act)(**kw), nn.Linear(7, 3)).double()
    theirs = torch.nn.Sequential(torch.nn.Linear(5, 7), getattr(torch.nn, act)(**kw), torch.nn.Linear(7, 3)).double()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    return ours, theirs


@pytest.mark.parametrize("act,kw", ACTS)
def test_mlp_outputs_and_grads_match_torch(act, kw):
    fg.manual_seed(0)
    ours, theirs = pair(act, kw)
    x = np.random.default_rng(0).standard_normal((6, 5)) * 2
    y_ours = ours(fg.Tensor(x))
    y_t = theirs(torch.from_numpy(x))
    np.testing.assert_allclose(y_ours.data, y_t.detach().numpy(), rtol=1e-12, atol=1e-12)
    g = np.random.default_rng(1).standard_normal(y_ours.shape)
    y_ours.backward(g)
    y_t.backward(torch.from_numpy(g))
    for (name, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        np.testing.assert_allclose(p.grad.data, q.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)
    # And the other way round: torch's weights into ours.
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})


def test_float32_activations_close_to_torch():
    x = np.random.default_rng(2).standard_normal(10_000).astype(np.float32) * 6
    for name, ours_f, t_f in [
        ("gelu", F.gelu, torch.nn.functional.gelu),
        ("elu", F.elu, torch.nn.functional.elu),
        ("gelu_tanh", lambda v: F.gelu(v, "tanh"), lambda v: torch.nn.functional.gelu(v, approximate="tanh")),
    ]:
        a = ours_f(fg.Tensor(x)).data
        b = t_f(torch.from_numpy(x)).numpy()
        # Absolutely close to torch's float32 values.
        np.testing.assert_allclose(a, b, rtol=2e-6, atol=1e-6, err_msg=name)
    # Torch computes 1 + erf(x / √2), which cancels for x < 0 (even in float64); ours is
    # relatively accurate in the tail too: compare with x erfc(-x / √2) / 2 (math.erfc).
    x64 = x.astype(np.float64)
    exact = 0.5 * x64 * np.vectorize(math.erfc)(-x64 / math.sqrt(2))
    np.testing.assert_allclose(F.gelu(fg.Tensor(x)).data, exact, rtol=1e-6, atol=1e-37)  # f32 subnormals aside


LOSSES = [
    ("MSELoss", {}, "reg"), ("L1Loss", {"reduction": "sum"}, "reg"), ("HuberLoss", {"delta": 0.5}, "reg"),
    ("BCELoss", {"reduction": "none"}, "prob"), ("BCEWithLogitsLoss", {"pos_weight": [2.0, 0.5, 1.0]}, "reg01"),
    ("CrossEntropyLoss", {"weight": [1.0, 2.0, 0.5], "ignore_index": 1, "label_smoothing": 0.1}, "cls"),
    ("CrossEntropyLoss", {"reduction": "sum", "label_smoothing": 0.3}, "soft"),
    ("NLLLoss", {"weight": [0.3, 1.0, 2.0]}, "cls"),
]


@pytest.mark.parametrize("name,kw,kind", LOSSES)
def test_losses_match_torch(name, kw, kind):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 3))
    if kind == "prob":
        x = 1 / (1 + np.exp(-x))
    y = {
        "reg": rng.standard_normal((5, 3)),
        "reg01": rng.random((5, 3)),
        "prob": rng.random((5, 3)),
        "cls": np.array([0, 1, 2, 2, 0]),
        "soft": rng.dirichlet(np.ones(3), 5),
    }[kind]
    tkw = {k: (torch.tensor(v, dtype=torch.float64) if isinstance(v, list) else v) for k, v in kw.items()}
    ours = getattr(nn, name)(**{k: (np.array(v) if isinstance(v, list) else v) for k, v in kw.items()})
    theirs = getattr(torch.nn, name)(**tkw)
    xo = fg.Tensor(x, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    lo = ours(xo, y)
    lt = theirs(xt, torch.from_numpy(y))
    np.testing.assert_allclose(lo.data, lt.detach().numpy(), rtol=1e-12, atol=1e-12)
    g = np.ones(lo.shape)
    lo.backward(g)
    lt.backward(torch.from_numpy(g))
    np.testing.assert_allclose(xo.grad.data, xt.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_state_dict_order_with_buffers_matches_torch():
    class Ours(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)
            self.register_buffer("count", np.zeros(1))

    class Theirs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(2, 2)
            self.register_buffer("count", torch.zeros(1))

    assert list(Ours().state_dict()) == list(Theirs().state_dict())


def test_clip_grad_norm_matches_torch():
    rng = np.random.default_rng(5)
    gs = [rng.standard_normal(s) for s in [(3, 4), (7,)]]
    ps = [nn.Parameter(np.zeros(g.shape)) for g in gs]
    ts = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in gs]
    for p, t, g in zip(ps, ts, gs):
        p.grad = fg.Tensor(g.copy())
        t.grad = torch.from_numpy(g.copy())
    for norm_type in (2.0, 1.0, float("inf")):
        a = nn.utils.clip_grad_norm_(ps, 0.5, norm_type)
        b = torch.nn.utils.clip_grad_norm_(ts, 0.5, norm_type)
        np.testing.assert_allclose(float(a), float(b), rtol=1e-12)
        for p, t in zip(ps, ts):
            np.testing.assert_allclose(p.grad.data, t.grad.numpy(), rtol=1e-12)
