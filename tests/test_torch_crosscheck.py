"""Optional cross-check against PyTorch (skipped when torch is not installed): the same
expression, forward and gradients, in both libraries."""

from __future__ import annotations

import numpy as np
import pytest

import ferrograd as fg

torch = pytest.importorskip("torch")


def both(fn_fg, fn_t, *arrays):
    xs = [fg.tensor(a, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    out_fg, out_t = fn_fg(*xs), fn_t(*ts)
    np.testing.assert_allclose(out_fg.numpy(), out_t.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = np.random.default_rng(1).standard_normal(out_fg.shape)
    out_fg.backward(g)
    out_t.backward(torch.tensor(g))
    for x, t in zip(xs, ts):
        assert (x.grad is None) == (t.grad is None)
        if x.grad is None:
            continue
        np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "name,fg_fn,t_fn",
    [
        ("mlp", lambda x, w, b: fg.tanh(x @ w + b), lambda x, w, b: torch.tanh(x @ w + b)),
        ("softmax", lambda x, w, b: fg.softmax(x @ w, dim=0) * b, lambda x, w, b: torch.softmax(x @ w, dim=0) * b),
        ("logsm", lambda x, w, b: fg.log_softmax(x @ w + b, 1), lambda x, w, b: torch.log_softmax(x @ w + b, 1)),
        ("softplus", lambda x, w, b: fg.softplus(x @ w, beta=2.0, threshold=1.0) + b,
         lambda x, w, b: torch.nn.functional.softplus(x @ w, beta=2.0, threshold=1.0) + b),
        ("max", lambda x, w, b: (x @ w).max(dim=1).values * b[0], lambda x, w, b: (x @ w).max(dim=1).values * b[0]),
        ("amax", lambda x, w, b: (x @ w).amax(dim=(0, 1)) + b, lambda x, w, b: (x @ w).amax(dim=(0, 1)) + b),
        ("leaky", lambda x, w, b: fg.leaky_relu(x @ w, 0.2) / (b.abs() + 1), lambda x, w, b: torch.nn.functional.leaky_relu(x @ w, 0.2) / (b.abs() + 1)),
        ("pow", lambda x, w, b: (x.abs() + 1) ** w.sum(0).mean(), lambda x, w, b: (x.abs() + 1) ** w.sum(0).mean()),
        ("clamp", lambda x, w, b: (x @ w).clamp(-0.5, 0.5) * fg.maximum(b, b * 0.5), lambda x, w, b: (x @ w).clamp(-0.5, 0.5) * torch.maximum(b, b * 0.5)),
        ("index", lambda x, w, b: x[[0, 2, 0], 1:] @ w[1:] + b, lambda x, w, b: x[[0, 2, 0], 1:] @ w[1:] + b),
        ("batched", lambda x, w, b: fg.stack([x, x * 2]) @ w, lambda x, w, b: torch.stack([x, x * 2]) @ w),
    ],
)
def test_matches_pytorch(name, fg_fn, t_fn):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 4))
    w = rng.standard_normal((4, 3))
    b = rng.standard_normal(3)
    both(fg_fn, t_fn, x, w, b)
