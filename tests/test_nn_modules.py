"""nn modules: registration, traversal, state dicts, Linear / Dropout / Flatten, activations,
init and utils, against NumPy references of PyTorch's documented formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ferrograd as fg
import ferrograd.nn as nn
import ferrograd.nn.functional as F
from ferrograd.autograd import gradcheck

from helpers import ref_sigmoid, ref_softmax, ref_log_softmax, ref_softplus


def t64(a, grad=True):
    return fg.Tensor(np.asarray(a, np.float64), requires_grad=grad)


# ----------------------------------------------------------------------------- Module


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3, 4)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(4, 2, bias=False)
        self.register_buffer("steps", np.zeros(1))
        self.register_buffer("scratch", np.zeros(2), persistent=False)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def test_registration_and_traversal():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["fc1.weight", "fc1.bias", "fc2.weight"]
    assert [n for n, _ in net.named_children()] == ["fc1", "act", "fc2"]
    assert [n for n, _ in net.named_modules()] == ["", "fc1", "act", "fc2"]
    assert len(list(net.modules())) == 4
    assert [n for n, _ in net.named_buffers()] == ["steps", "scratch"]
    assert net.fc2.bias is None
    assert list(net.state_dict()) == ["steps", "fc1.weight", "fc1.bias", "fc2.weight"]  # own first, as PyTorch
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in net.parameters())
    # Shared parameters appear once.
    seq = nn.Sequential(net.fc1, net.fc1)
    assert len(list(seq.parameters())) == 2
    with pytest.raises(TypeError, match="parameter 'weight'"):
        net.fc1.weight = fg.ones(4, 3)
    net.fc1.weight = nn.Parameter(np.ones((4, 3), np.float32))
    assert np.all(net.state_dict()["fc1.weight"] == 1)
    del net.act
    assert [n for n, _ in net.named_children()] == ["fc1", "fc2"]


def test_train_eval_zero_grad_apply_repr():
    net = Net()
    assert net.training and net.fc1.training
    assert net.eval() is net and not net.fc1.training
    assert net.train() is net and net.fc2.training
    out = net(fg.ones(2, 3)).sum()
    out.backward()
    assert net.fc1.weight.grad is not None
    net.zero_grad(set_to_none=False)
    assert np.all(net.fc1.weight.grad.data == 0)
    net.zero_grad()
    assert net.fc1.weight.grad is None
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Linear", "ReLU", "Linear", "Net"]
    r = repr(nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Dropout(0.2)))
    assert r == (
        "Sequential(\n  (0): Linear(in_features=2, out_features=3, bias=True)\n  (1): ReLU()\n"
        "  (2): Dropout(p=0.2, inplace=False)\n)"
    )
    assert repr(nn.LeakyReLU(0.2)) == "LeakyReLU(negative_slope=0.2)"


def test_state_dict_round_trip_and_errors():
    fg.manual_seed(1)
    a, b = Net(), Net()
    sd = a.state_dict()
    assert all(isinstance(v, np.ndarray) for v in sd.values())
    sd["fc1.weight"][0, 0] = 123.0  # a copy: the model is untouched
    assert a.fc1.weight.data[0, 0] != 123.0
    res = b.load_state_dict(a.state_dict())
    assert res.missing_keys == [] and res.unexpected_keys == []
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(b.state_dict()[k], v)
    bad = a.state_dict()
    del bad["fc1.bias"]
    bad["extra"] = np.zeros(1)
    bad["fc2.weight"] = np.zeros((3, 3))
    before = b.state_dict()
    with pytest.raises(RuntimeError) as e:
        b.load_state_dict(bad)
    msg = str(e.value)
    assert '"fc1.bias"' in msg and '"extra"' in msg and "size mismatch for fc2.weight" in msg
    for k, v in before.items():  # strict: nothing loaded
        np.testing.assert_array_equal(b.state_dict()[k], v)
    bad["fc1.weight"] = np.full((4, 3), 7.0)
    with pytest.warns(UserWarning, match="fc2.weight"):
        res = b.load_state_dict(bad, strict=False)
    missing, unexpected = res
    assert missing == ["fc1.bias"] and unexpected == ["extra"] and res.mismatched_keys == ["fc2.weight"]
    assert np.all(b.fc1.weight.data == 7.0) and b.fc1.weight.data.dtype == np.float32


def test_sequential_and_modulelist():
    s = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    s.append(nn.Linear(3, 1))
    assert len(s) == 3 and isinstance(s[-1], nn.Linear) and isinstance(s[1], nn.ReLU)
    assert list(s.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert isinstance(s[:2], nn.Sequential) and len(s[:2]) == 2
    with pytest.raises(IndexError):
        s[5]
    with pytest.raises(TypeError):
        nn.Sequential(nn.ReLU(), 3)
    ml = nn.ModuleList([nn.Linear(1, 1), nn.Linear(1, 2)])
    ml.insert(0, nn.Identity())
    assert [type(m).__name__ for m in ml] == ["Identity", "Linear", "Linear"]
    assert list(ml.state_dict()) == ["1.weight", "1.bias", "2.weight", "2.bias"]


def test_module_to_double_keeps_parameters():
    net = Net()
    p = net.fc1.weight
    net.double()
    assert net.fc1.weight is p and p.data.dtype == np.float64
    assert net(np.ones((2, 3))).dtype == np.float64


# ----------------------------------------------------------------------------- Linear


@settings(max_examples=25)
@given(
    n=st.integers(0, 6), i=st.integers(1, 7), o=st.integers(1, 7), bias=st.booleans(),
    act=st.sampled_from([None, "relu", "sigmoid", "tanh"]), dt=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**16),
)
def test_linear_matches_numpy(n, i, o, bias, act, dt, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, i)).astype(dt)
    w = nn.Parameter(rng.standard_normal((o, i)).astype(dt))
    b = nn.Parameter(rng.standard_normal(o).astype(dt)) if bias else None
    xt = fg.Tensor(x, requires_grad=True)
    y = F.linear(xt, w, b, activation=act)
    z = x.astype(np.float64) @ w.data.T.astype(np.float64) + (b.data if bias else 0)
    ref = {None: z, "relu": np.maximum(z, 0), "sigmoid": ref_sigmoid(z), "tanh": np.tanh(z)}[act]
    tol = dict(rtol=1e-4, atol=1e-5) if dt == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y.data, ref, **tol)
    g = rng.standard_normal(y.shape)
    y.backward(g.astype(dt))
    gz = g * {None: 1, "relu": (ref > 0), "sigmoid": ref * (1 - ref), "tanh": 1 - ref**2}[act]
    np.testing.assert_allclose(xt.grad.data, gz @ w.data, **tol)
    np.testing.assert_allclose(w.grad.data, gz.T @ x, **tol)
    if bias:
        np.testing.assert_allclose(b.grad.data, gz.sum(0), **tol)


def test_linear_module_init_shapes_and_errors():
    fg.manual_seed(0)
    lin = nn.Linear(784, 10)
    assert lin.weight.shape == (10, 784) and lin.bias.shape == (10,)
    bound = 1 / math.sqrt(784)
    assert np.abs(lin.weight.data).max() <= bound and np.abs(lin.bias.data).max() <= bound
    assert np.abs(lin.weight.data).max() > 0.9 * bound  # uniform over the whole range
    assert abs(lin.weight.data.std() - bound / math.sqrt(3)) < 0.05 * bound
    fg.manual_seed(0)
    np.testing.assert_array_equal(nn.Linear(784, 10).weight.data, lin.weight.data)
    with pytest.raises(ValueError, match=r"Linear\(in_features=784\): input has 783 features, shape \(64, 783\)"):
        lin(fg.zeros(64, 783))
    # Batched (*, in) input.
    y = lin(fg.ones(2, 3, 784))
    assert y.shape == (2, 3, 10)
    assert nn.Linear(3, 2, dtype="float64").weight.dtype == np.float64
    with pytest.raises(TypeError, match="dtype"):
        lin(fg.ones(2, 784).double())
    assert lin(np.ones((2, 784))).dtype == np.float32  # arrays are converted


def test_linear_gradcheck():
    rng = np.random.default_rng(0)
    for act in [None, "relu", "sigmoid", "tanh"]:
        x = t64(rng.standard_normal((3, 4)) + 0.1)
        w = t64(rng.standard_normal((2, 4)))
        b = t64(rng.standard_normal(2))
        assert gradcheck(lambda x, w, b: F.linear(x, w, b, activation=act), [x, w, b])
    x3 = t64(rng.standard_normal((2, 2, 3)))
    assert gradcheck(lambda x, w: F.linear(x, w), [x3, t64(rng.standard_normal((2, 3)))])


# ----------------------------------------------------------------------------- Dropout, Flatten


def test_dropout():
    fg.manual_seed(3)
    d = nn.Dropout(0.25)
    x = fg.ones(200, 50, requires_grad=True)
    y = d(x)
    kept = y.data != 0
    assert 0.7 < kept.mean() < 0.8
    np.testing.assert_allclose(y.data[kept], 1 / 0.75)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.data, y.data)
    fg.manual_seed(3)
    np.testing.assert_array_equal(nn.Dropout(0.25)(fg.ones(200, 50)).data, y.data)
    d.eval()
    assert d(x) is x
    assert np.all(nn.Dropout(1.0)(x).data == 0)
    with pytest.raises(ValueError):
        nn.Dropout(1.5)


def test_flatten_identity():
    x = fg.randn(2, 3, 4, 5)
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(0, 2)(x).shape == (24, 5)
    assert nn.Identity(3, k=1)(x) is x


# ----------------------------------------------------------------------------- activations


def ref_elu(x, alpha):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def ref_gelu(x):
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1 + erf(x / math.sqrt(2)))


def ref_gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


ACTS = [
    (lambda: nn.ReLU(), lambda x: np.maximum(x, 0)),
    (lambda: nn.LeakyReLU(0.2), lambda x: np.where(x > 0, x, 0.2 * x)),
    (lambda: nn.Sigmoid(), ref_sigmoid),
    (lambda: nn.Tanh(), np.tanh),
    (lambda: nn.Softsign(), lambda x: x / (1 + np.abs(x))),
    (lambda: nn.Softplus(2.0, 5.0), lambda x: ref_softplus(x, 2.0, 5.0)),
    (lambda: nn.Softmax(dim=1), lambda x: ref_softmax(x, 1)),
    (lambda: nn.LogSoftmax(dim=-1), lambda x: ref_log_softmax(x, -1)),
    (lambda: nn.ELU(), lambda x: ref_elu(x, 1.0)),
    (lambda: nn.ELU(alpha=0.5), lambda x: ref_elu(x, 0.5)),
    (lambda: nn.GELU(), ref_gelu),
    (lambda: nn.GELU("tanh"), ref_gelu_tanh),
]


@settings(max_examples=20)
@given(
    k=st.integers(0, len(ACTS) - 1), shape=st.sampled_from([(1, 1), (3, 5), (2, 3, 4), (4, 17)]),
    dt=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16), scale=st.sampled_from([0.5, 3.0, 12.0]),
)
def test_activation_modules_match_numpy(k, shape, dt, seed, scale):
    make, ref = ACTS[k]
    x = (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dt)
    y = make()(fg.Tensor(x))
    assert y.shape == x.shape and y.dtype == dt
    tol = dict(rtol=3e-6, atol=1e-6) if dt == np.float32 else dict(rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(y.data, ref(x.astype(np.float64)), **tol)


def test_activation_gradcheck():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4)) * 2
    x[np.abs(x) < 0.05] = 0.3  # keep away from the kinks
    for make, _ in ACTS:
        assert gradcheck(make(), [t64(x)]), make()


def test_gelu_elu_functional_and_errors():
    x = fg.tensor([-3.0, -0.5, 0.0, 0.5, 3.0])
    np.testing.assert_allclose(F.gelu(x).data, ref_gelu(x.data.astype(np.float64)), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(F.elu(x, 2.0).data, ref_elu(x.data.astype(np.float64), 2.0), rtol=1e-6)
    with pytest.raises(ValueError, match="approximate"):
        F.gelu(x, approximate="fast")
    with pytest.raises(ValueError, match="approximate"):
        nn.GELU("erf")
    with pytest.warns(UserWarning, match="Implicit dimension"):
        nn.Softmax()(fg.ones(2, 3))


# ----------------------------------------------------------------------------- init


def test_calculate_gain():
    assert nn.init.calculate_gain("relu") == math.sqrt(2)
    assert nn.init.calculate_gain("tanh") == 5 / 3
    assert nn.init.calculate_gain("sigmoid") == 1
    assert nn.init.calculate_gain("leaky_relu", 0.2) == math.sqrt(2 / 1.04)
    assert nn.init.calculate_gain("leaky_relu") == math.sqrt(2 / (1 + 0.01**2))
    with pytest.raises(ValueError):
        nn.init.calculate_gain("swish")


@settings(max_examples=12)
@given(
    shape=st.sampled_from([(300, 200), (64, 32, 3, 3), (500, 100)]),
    mode=st.sampled_from(["fan_in", "fan_out"]), nl=st.sampled_from(["relu", "leaky_relu", "tanh"]),
    a=st.sampled_from([0.0, 0.1, math.sqrt(5)]), seed=st.integers(0, 1000),
)
def test_init_distributions(shape, mode, nl, a, seed):
    fan_in = shape[1] * int(np.prod(shape[2:]))
    fan_out = shape[0] * int(np.prod(shape[2:]))
    fan = fan_in if mode == "fan_in" else fan_out
    gain = nn.init.calculate_gain(nl, a)
    p = nn.Parameter(np.zeros(shape, np.float32))
    fg.manual_seed(seed)
    assert nn.init.kaiming_uniform_(p, a=a, mode=mode, nonlinearity=nl) is p
    bound = math.sqrt(3) * gain / math.sqrt(fan)
    assert np.abs(p.data).max() <= bound * (1 + 1e-6)
    assert abs(p.data.std() - bound / math.sqrt(3)) < 0.05 * bound / math.sqrt(3)
    # Same seed, same values (all randomness from the library generator).
    q = nn.Parameter(np.zeros(shape, np.float32))
    fg.manual_seed(seed)
    nn.init.kaiming_uniform_(q, a=a, mode=mode, nonlinearity=nl)
    np.testing.assert_array_equal(p.data, q.data)
    nn.init.kaiming_normal_(p, a=a, mode=mode, nonlinearity=nl)
    assert abs(p.data.std() - gain / math.sqrt(fan)) < 0.05 * gain / math.sqrt(fan)
    nn.init.xavier_uniform_(p, gain=2.0)
    xb = 2.0 * math.sqrt(6 / (fan_in + fan_out))
    assert np.abs(p.data).max() <= xb * (1 + 1e-6) and abs(p.data.std() - xb / math.sqrt(3)) < 0.05 * xb
    nn.init.xavier_normal_(p)
    xs = math.sqrt(2 / (fan_in + fan_out))
    assert abs(p.data.std() - xs) < 0.05 * xs and abs(p.data.mean()) < 0.05 * xs


def test_simple_inits():
    p = nn.Parameter(np.zeros((100, 100)))
    nn.init.normal_(p, 2.0, 0.5)
    assert abs(p.data.mean() - 2) < 0.05 and abs(p.data.std() - 0.5) < 0.05
    nn.init.uniform_(p, -1, 3)
    assert p.data.min() >= -1 and p.data.max() <= 3 and abs(p.data.mean() - 1) < 0.1
    nn.init.constant_(p, 0.25)
    assert np.all(p.data == 0.25)
    nn.init.zeros_(p)
    assert np.all(p.data == 0)
    nn.init.ones_(p)
    assert np.all(p.data == 1)
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        nn.init.xavier_uniform_(nn.Parameter(np.zeros(5)))
    with pytest.raises(ValueError, match="Mode"):
        nn.init.kaiming_uniform_(p, mode="fan_avg")


# ----------------------------------------------------------------------------- utils


def test_l1_penalty():
    net = Net()
    pen = nn.utils.l1_penalty(net)
    want = sum(np.abs(p.data).sum() for p in net.parameters())
    np.testing.assert_allclose(pen.item(), want, rtol=1e-6)
    pen.backward()
    for p in net.parameters():
        np.testing.assert_array_equal(p.grad.data, np.sign(p.data))
    w_only = nn.utils.l1_penalty(net, weights_only=True)
    np.testing.assert_allclose(w_only.item(), np.abs(net.fc1.weight.data).sum() + np.abs(net.fc2.weight.data).sum(), rtol=1e-6)
    a = t64([[1.0, -2.0], [0.5, 3.0]])
    assert gradcheck(lambda a: nn.utils.l1_penalty([a]), [a])


@settings(max_examples=20)
@given(max_norm=st.floats(0.01, 10), norm_type=st.sampled_from([1.0, 2.0, 3.0, math.inf]), seed=st.integers(0, 999))
def test_clip_grad_norm(max_norm, norm_type, seed):
    rng = np.random.default_rng(seed)
    ps = [nn.Parameter(np.zeros(s)) for s in [(3, 4), (5,), (2, 2)]]
    gs = [rng.standard_normal(p.shape) for p in ps]
    for p, g in zip(ps, gs):
        p.grad = fg.Tensor(g.copy())
    if norm_type == math.inf:
        total = max(np.abs(g).max() for g in gs)
    else:
        total = sum((np.abs(g) ** norm_type).sum() for g in gs) ** (1 / norm_type)
    out = nn.utils.clip_grad_norm_(iter(ps), max_norm, norm_type)
    np.testing.assert_allclose(float(out), total, rtol=1e-10)
    coef = min(max_norm / (total + 1e-6), 1.0)
    for p, g in zip(ps, gs):
        np.testing.assert_allclose(p.grad.data, g * coef, rtol=1e-12)


def test_clip_grad_value():
    p = nn.Parameter(np.zeros(5))
    p.grad = fg.Tensor(np.array([-3.0, -0.5, 0.0, 0.7, 9.0]))
    nn.utils.clip_grad_value_(p, 1.0)
    np.testing.assert_array_equal(p.grad.data, [-1.0, -0.5, 0.0, 0.7, 1.0])
    q = nn.Parameter(np.zeros(2))  # no grad: skipped
    nn.utils.clip_grad_value_([q], 1.0)
    nn.utils.clip_grad_norm_([q], 1.0)
    with pytest.raises(TypeError):
        nn.utils.clip_grad_value_([1, 2], 1.0)
