"""RNN / LSTM / GRU layers and cells against a step-by-step NumPy reference of the
documented equations (forward, and gradients of the input, the initial states and every
weight and bias), gradcheck in float64, variable lengths and packed sequences, truncated
BPTT, determinism across thread counts, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import ferrograd as fg
import ferrograd.nn as nn
from ferrograd.nn.utils import rnn as rnn_utils

GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


# ----------------------------------------------------------------------------- reference


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def ref_cell(mode, x, h, c, w_ih, w_hh, b_ih, b_hh):
    """One step of the documented equations (float64); returns (h', c')."""
    xp = x @ w_ih.T + (0 if b_ih is None else b_ih)
    hp = h @ w_hh.T + (0 if b_hh is None else b_hh)
    H = h.shape[-1]
    if mode == "LSTM":
        a = xp + hp
        i, f, g, o = _sig(a[..., :H]), _sig(a[..., H : 2 * H]), np.tanh(a[..., 2 * H : 3 * H]), _sig(a[..., 3 * H :])
        c2 = f * c + i * g
        return o * np.tanh(c2), c2
    if mode == "GRU":
        r = _sig(xp[..., :H] + hp[..., :H])
        z = _sig(xp[..., H : 2 * H] + hp[..., H : 2 * H])
        n = np.tanh(xp[..., 2 * H :] + r * hp[..., 2 * H :])
        return (1 - z) * n + z * h, c
    a = xp + hp
    return (np.tanh(a) if mode == "RNN_TANH" else np.maximum(a, 0.0)), c


def ref_layer(mode, x, p, h0, c0, lengths, reverse):
    """One direction over (T, B, I): padded steps keep the state and output zeros."""
    T, B, _ = x.shape
    H = p[1].shape[1]
    h, c = h0.copy(), c0.copy()
    out = np.zeros((T, B, H))
    lens = np.full(B, T) if lengths is None else np.asarray(lengths)
    for t in range(T - 1, -1, -1) if reverse else range(T):
        h2, c2 = ref_cell(mode, x[t], h, c, *p)
        on = (t < lens)[:, None]
        h = np.where(on, h2, h)
        c = np.where(on, c2, c)
        out[t] = np.where(on, h2, 0.0)
    return out, h, c


def ref_net(mode, x, params, h0, c0, lengths, batch_first, ndir):
    """params[layer][direction] = (w_ih, w_hh, b_ih, b_hh); h0/c0 (L D, B, H)."""
    if batch_first:
        x = x.transpose(1, 0, 2)
    inp, hns, cns = x, [], []
    for layer, pl in enumerate(params):
        outs = []
        for d in range(ndir):
            k = layer * ndir + d
            o, h, c = ref_layer(mode, inp, pl[d], h0[k], c0[k], lengths, d == 1)
            outs.append(o)
            hns.append(h)
            cns.append(c)
        inp = np.concatenate(outs, axis=2)
    out = inp.transpose(1, 0, 2) if batch_first else inp
    return out, np.stack(hns), np.stack(cns)


# ----------------------------------------------------------------------------- builders


def make_module(mode, I, H, L, bi, bf, bias, dtype):
    kw = dict(num_layers=L, bias=bias, batch_first=bf, bidirectional=bi, dtype=dtype)
    if mode == "LSTM":
        return nn.LSTM(I, H, **kw)
    if mode == "GRU":
        return nn.GRU(I, H, **kw)
    return nn.RNN(I, H, nonlinearity="tanh" if mode == "RNN_TANH" else "relu", **kw)


def module_params(m, L, ndir, bias):
    out = []
    for layer in range(L):
        pl = []
        for d in range(ndir):
            s = f"_l{layer}" + ("_reverse" if d else "")
            get = lambda n: getattr(m, n + s).data.astype(np.float64)  # noqa: E731
            pl.append((get("weight_ih"), get("weight_hh"), get("bias_ih") if bias else None, get("bias_hh") if bias else None))
        out.append(pl)
    return out


@st.composite
def configs(draw, modes=("LSTM", "GRU", "RNN_TANH", "RNN_RELU")):
    return dict(
        mode=draw(st.sampled_from(modes)),
        T=draw(st.integers(1, 5)),
        # 35 rows: the kernels split the batch (two chunks of 16 and one of 3) instead
        # of the hidden units.
        B=draw(st.one_of(st.integers(1, 4), st.just(35))),
        I=draw(st.integers(1, 4)),
        H=draw(st.sampled_from([1, 2, 3, 5, 8, 17, 66])),
        L=draw(st.integers(1, 3)),
        bi=draw(st.booleans()),
        bf=draw(st.booleans()),
        bias=draw(st.booleans()),
        lengths=draw(st.booleans()),
        h0=draw(st.booleans()),
        seed=draw(st.integers(0, 2**31 - 1)),
    )


def setup(cfg, dtype):
    rng = np.random.default_rng(cfg["seed"])
    fg.manual_seed(cfg["seed"] % 1000)
    T, B, I, H, L = cfg["T"], cfg["B"], cfg["I"], cfg["H"], cfg["L"]
    ndir = 2 if cfg["bi"] else 1
    m = make_module(cfg["mode"], I, H, L, cfg["bi"], cfg["bf"], cfg["bias"], dtype)
    # Larger weights than the default init so that gates are not all near 0.5.
    for p in m.parameters():
        p.data[...] = rng.uniform(-0.8, 0.8, p.shape).astype(dtype)
    x = rng.standard_normal((B, T, I) if cfg["bf"] else (T, B, I))
    h0 = rng.standard_normal((L * ndir, B, H)) if cfg["h0"] else np.zeros((L * ndir, B, H))
    c0 = rng.standard_normal((L * ndir, B, H)) if cfg["h0"] else np.zeros((L * ndir, B, H))
    lengths = rng.integers(1, T + 1, size=B) if cfg["lengths"] else None
    return m, x, h0, c0, lengths, ndir, rng


def run_module(m, cfg, x, h0, c0, lengths, dtype):
    xt = fg.tensor(x, dtype=dtype, requires_grad=True)
    h0t = fg.tensor(h0, dtype=dtype, requires_grad=True) if cfg["h0"] else None
    c0t = fg.tensor(c0, dtype=dtype, requires_grad=True) if cfg["h0"] else None
    if cfg["mode"] == "LSTM":
        out, (hn, cn) = m(xt, None if h0t is None else (h0t, c0t), lengths=lengths)
    else:
        out, hn = m(xt, h0t, lengths=lengths)
        cn = None
    return xt, h0t, c0t, out, hn, cn


# ----------------------------------------------------------------------------- layers


def batch_split_example(mode, bf, B=35):
    """A configuration the kernels run by splitting the batch (chunks of 16 rows from 32
    rows up, of 32 from 64), always tried."""
    return example(dict(mode=mode, T=4, B=B, I=3, H=17, L=2, bi=True, bf=bf, bias=True, lengths=True, h0=True, seed=7))


@given(configs())
@batch_split_example("LSTM", False)
@batch_split_example("GRU", True)
@batch_split_example("RNN_TANH", False)
@batch_split_example("LSTM", True, B=70)
def test_layers_match_reference_forward_and_gradients_f64(cfg):
    dt = np.float64
    m, x, h0, c0, lengths, ndir, rng = setup(cfg, dt)
    mode, L, bias = cfg["mode"], cfg["L"], cfg["bias"]
    params = module_params(m, L, ndir, bias)
    xt, h0t, c0t, out, hn, cn = run_module(m, cfg, x, h0, c0, lengths, dt)
    r_out, r_hn, r_cn = ref_net(mode, x, params, h0, c0, lengths, cfg["bf"], ndir)
    np.testing.assert_allclose(out.data, r_out, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(hn.data, r_hn, rtol=1e-10, atol=1e-12)
    if mode == "LSTM":
        np.testing.assert_allclose(cn.data, r_cn, rtol=1e-10, atol=1e-12)
    # A random linear loss of every output; its gradient checked along random directions.
    wo, wh, wc = (rng.standard_normal(a.shape) for a in (r_out, r_hn, r_cn))
    loss = (out * fg.tensor(wo, dtype=dt)).sum() + (hn * fg.tensor(wh, dtype=dt)).sum()
    if mode == "LSTM":
        loss = loss + (cn * fg.tensor(wc, dtype=dt)).sum()
    loss.backward()

    def ref_loss(x_, params_, h0_, c0_):
        o, h, c = ref_net(mode, x_, params_, h0_, c0_, lengths, cfg["bf"], ndir)
        return (o * wo).sum() + (h * wh).sum() + ((c * wc).sum() if mode == "LSTM" else 0.0)

    # relu has kinks: a smaller step keeps the difference on one side of them.
    eps, rtol = (1e-8, 1e-5) if mode == "RNN_RELU" else (1e-6, 1e-6)

    def directional(grad, perturb, shape):
        v = rng.standard_normal(shape)
        num = (perturb(eps * v) - perturb(-eps * v)) / (2 * eps)
        ana = float((grad * v).sum())
        assert abs(ana - num) <= rtol * (1 + abs(num)), (ana, num)

    directional(xt.grad.data, lambda dv: ref_loss(x + dv, params, h0, c0), x.shape)
    if cfg["h0"]:
        directional(h0t.grad.data, lambda dv: ref_loss(x, params, h0 + dv, c0), h0.shape)
        if mode == "LSTM":
            directional(c0t.grad.data, lambda dv: ref_loss(x, params, h0, c0 + dv), c0.shape)
    for layer in range(L):
        for d in range(ndir):
            s = f"_l{layer}" + ("_reverse" if d else "")
            names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if bias else [])
            for k, name in enumerate(names):
                p = getattr(m, name + s)
                assert p.grad is not None and p.grad.shape == p.shape

                def perturb(dv, layer=layer, d=d, k=k):
                    ps = [[list(t) for t in pl] for pl in params]
                    ps[layer][d][k] = ps[layer][d][k] + dv
                    return ref_loss(x, ps, h0, c0)

                directional(p.grad.data, perturb, p.shape)


@given(configs())
def test_layers_float32_close_to_reference_and_to_float64(cfg):
    m, x, h0, c0, lengths, ndir, rng = setup(cfg, np.float32)
    params = module_params(m, cfg["L"], ndir, cfg["bias"])
    xt, h0t, c0t, out, hn, cn = run_module(m, cfg, x, h0, c0, lengths, np.float32)
    assert out.dtype == np.float32 and hn.dtype == np.float32
    r_out, r_hn, r_cn = ref_net(cfg["mode"], x.astype(np.float32).astype(np.float64), params,
                                h0.astype(np.float32), c0.astype(np.float32), lengths, cfg["bf"], ndir)
    # float32 rounding is relative to the largest activations (relu layers can grow to
    # thousands, and an output near 0 is then a difference of large terms).
    scale = max(1.0, float(np.abs(r_out).max()))
    atol = 2e-5 * cfg["T"] * cfg["L"] * (1.0 + 0.05 * scale)
    np.testing.assert_allclose(out.data, r_out, rtol=1e-4, atol=atol)
    np.testing.assert_allclose(hn.data, r_hn, rtol=1e-4, atol=atol)
    # Gradients against the same network in float64.
    m64 = make_module(cfg["mode"], cfg["I"], cfg["H"], cfg["L"], cfg["bi"], cfg["bf"], cfg["bias"], np.float64)
    m64.load_state_dict({k: v.astype(np.float64) for k, v in m.state_dict().items()})
    x32 = x.astype(np.float32)
    h32, c32 = h0.astype(np.float32), c0.astype(np.float32)
    outs = []
    for mod, dt in ((m, np.float32), (m64, np.float64)):
        xt, h0t, _, out, hn, _ = run_module(mod, cfg, x32, h32, c32, lengths, dt)
        ((out * out).sum() + hn.sum()).backward()
        outs.append([xt.grad.data] + [p.grad.data for p in mod.parameters()])
    for a, b in zip(*outs):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-4 * (1 + np.abs(b).max()))


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_TANH", "RNN_RELU"])
def test_gradcheck_float64_two_layers_bidirectional_with_lengths(mode):
    rng = np.random.default_rng(7)
    T, B, I, H, L = 3, 2, 2, 2, 2
    m = make_module(mode, I, H, L, True, False, True, np.float64)
    names = [n for n, _ in m.named_parameters()]
    x = fg.tensor(rng.standard_normal((T, B, I)), dtype="float64", requires_grad=True)
    h0 = fg.tensor(rng.standard_normal((L * 2, B, H)), dtype="float64", requires_grad=True)
    c0 = fg.tensor(rng.standard_normal((L * 2, B, H)), dtype="float64", requires_grad=True)
    ps = [fg.tensor(p.data, dtype="float64", requires_grad=True) for p in m.parameters()]
    lengths = [3, 2]

    def fn(x, h0, c0, *params):
        for n, p in zip(names, params):
            m.__dict__[n] = p  # run the module on gradcheck's copies of the parameters
        if mode == "LSTM":
            out, (hn, cn) = m(x, (h0, c0), lengths=lengths)
            return out, hn, cn
        out, hn = m(x, h0, lengths=lengths)
        return out, hn

    assert fg.gradcheck(fn, [x, h0, c0 if mode == "LSTM" else None, *ps], atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("cls", ["RNNCell", "LSTMCell", "GRUCell"])
def test_gradcheck_cells(cls):
    rng = np.random.default_rng(3)
    cell = getattr(nn, cls)(3, 4, dtype="float64")
    names = [n for n, _ in cell.named_parameters()]
    x = fg.tensor(rng.standard_normal((2, 3)), dtype="float64", requires_grad=True)
    h = fg.tensor(rng.standard_normal((2, 4)), dtype="float64", requires_grad=True)
    c = fg.tensor(rng.standard_normal((2, 4)), dtype="float64", requires_grad=True)
    ps = [fg.tensor(p.data, dtype="float64", requires_grad=True) for p in cell.parameters()]

    def fn(x, h, c, *params):
        for n, p in zip(names, params):
            cell.__dict__[n] = p
        return cell(x, (h, c)) if cls == "LSTMCell" else cell(x, h)

    assert fg.gradcheck(fn, [x, h, c if cls == "LSTMCell" else None, *ps], atol=1e-7, rtol=1e-5)


# ----------------------------------------------------------------------------- cells


@given(
    st.sampled_from(["RNN_TANH", "RNN_RELU", "LSTM", "GRU"]),
    st.integers(1, 4),
    st.integers(1, 5),
    st.sampled_from([1, 3, 7, 65]),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.integers(0, 2**31 - 1),
)
def test_cells_match_reference(mode, B, I, H, bias, unbatched, with_state, seed):
    rng = np.random.default_rng(seed)
    if mode == "LSTM":
        cell = nn.LSTMCell(I, H, bias=bias, dtype="float64")
    elif mode == "GRU":
        cell = nn.GRUCell(I, H, bias=bias, dtype="float64")
    else:
        cell = nn.RNNCell(I, H, bias=bias, nonlinearity="tanh" if mode == "RNN_TANH" else "relu", dtype="float64")
    for p in cell.parameters():
        p.data[...] = rng.uniform(-0.8, 0.8, p.shape)
    shp = (I,) if unbatched else (B, I)
    hshp = (H,) if unbatched else (B, H)
    x = rng.standard_normal(shp)
    h = rng.standard_normal(hshp) if with_state else np.zeros(hshp)
    c = rng.standard_normal(hshp) if with_state else np.zeros(hshp)
    xt = fg.tensor(x, dtype="float64", requires_grad=True)
    ht = fg.tensor(h, dtype="float64", requires_grad=True)
    ct = fg.tensor(c, dtype="float64", requires_grad=True)
    state = ((ht, ct) if mode == "LSTM" else ht) if with_state else None
    res = cell(xt, state)
    h2, c2 = res if mode == "LSTM" else (res, None)
    ps = [cell.weight_ih.data, cell.weight_hh.data, cell.bias_ih.data if bias else None, cell.bias_hh.data if bias else None]
    rh, rc = ref_cell(mode, x, h, c, *ps)
    assert h2.shape == hshp
    np.testing.assert_allclose(h2.data, rh, rtol=1e-12, atol=1e-12)
    wh, wc = rng.standard_normal(hshp), rng.standard_normal(hshp)
    loss = (h2 * fg.tensor(wh, dtype="float64")).sum()
    if mode == "LSTM":
        np.testing.assert_allclose(c2.data, rc, rtol=1e-12, atol=1e-12)
        loss = loss + (c2 * fg.tensor(wc, dtype="float64")).sum()
    loss.backward()

    def f(x_, h_, c_, ps_):
        a, b = ref_cell(mode, x_, h_, c_, *ps_)
        return (a * wh).sum() + ((b * wc).sum() if mode == "LSTM" else 0.0)

    def check(grad, perturb, shape):
        v = rng.standard_normal(shape)
        num = (perturb(1e-6 * v) - perturb(-1e-6 * v)) / 2e-6
        assert abs(float((grad * v).sum()) - num) <= 1e-6 * (1 + abs(num))

    check(xt.grad.data, lambda d: f(x + d, h, c, ps), x.shape)
    if with_state:
        check(ht.grad.data, lambda d: f(x, h + d, c, ps), h.shape)
        if mode == "LSTM":
            check(ct.grad.data, lambda d: f(x, h, c + d, ps), c.shape)
    for k, p in enumerate(cell.parameters()):
        def pert(d, k=k):
            q = list(ps)
            idx = [i for i, v in enumerate(ps) if v is not None][k]
            q[idx] = q[idx] + d
            return f(x, h, c, q)

        check(p.grad.data, pert, p.shape)


# ----------------------------------------------------------------------------- API details


def test_parameter_names_shapes_and_init_follow_pytorch():
    m = nn.LSTM(10, 20, num_layers=2, bidirectional=True)
    names = [n for n, _ in m.named_parameters()]
    sfx = ["_l0", "_l0_reverse", "_l1", "_l1_reverse"]
    assert names == [f"{p}{s}" for s in sfx for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    assert m.weight_ih_l0.shape == (80, 10) and m.weight_ih_l1.shape == (80, 40)
    assert m.weight_hh_l1_reverse.shape == (80, 20) and m.bias_hh_l0.shape == (80,)
    bound = 1 / np.sqrt(20)
    for p in m.parameters():
        assert p.dtype == np.float32 and np.abs(p.data).max() <= bound
        assert np.abs(p.data).max() > 0.8 * bound  # uniform over the whole range
    g = nn.GRU(3, 5, bias=False)
    assert [n for n, _ in g.named_parameters()] == ["weight_ih_l0", "weight_hh_l0"]
    assert g.weight_ih_l0.shape == (15, 3)
    assert nn.RNN(3, 5).weight_hh_l0.shape == (5, 5)
    assert repr(nn.LSTM(3, 5, num_layers=2, batch_first=True)) == "LSTM(3, 5, num_layers=2, batch_first=True)"


def test_output_shapes_batched_unbatched_batch_first():
    T, B, I, H = 6, 3, 4, 5
    m = nn.GRU(I, H, num_layers=2, bidirectional=True, batch_first=True)
    out, hn = m(fg.randn(B, T, I))
    assert out.shape == (B, T, 2 * H) and hn.shape == (4, B, H)
    out1, hn1 = m(fg.randn(T, I))  # unbatched: (L, H_in) whatever batch_first says
    assert out1.shape == (T, 2 * H) and hn1.shape == (4, H)
    x = fg.randn(T, I)
    h0 = fg.randn(4, H)
    o_u, h_u = m(x, h0)
    m.batch_first = False
    o_b, h_b = m(x.reshape(T, 1, I), h0.reshape(4, 1, H))
    np.testing.assert_array_equal(o_u.data, o_b.data[:, 0])
    np.testing.assert_array_equal(h_u.data, h_b.data[:, 0])
    lstm = nn.LSTM(I, H)
    out, (hn, cn) = lstm(fg.randn(T, B, I))
    assert out.shape == (T, B, H) and hn.shape == cn.shape == (1, B, H)
    np.testing.assert_array_equal(out.data[-1], hn.data[0])


def test_lengths_padded_steps_change_nothing():
    rng = np.random.default_rng(0)
    T, B, I, H = 7, 3, 2, 4
    for mode in ("LSTM", "GRU", "RNN_TANH"):
        m = make_module(mode, I, H, 2, True, False, True, np.float64)
        x = rng.standard_normal((T, B, I))
        lengths = [7, 3, 5]
        x2 = x.copy()
        for b, n in enumerate(lengths):
            x2[n:, b] = rng.standard_normal((T - n, I)) * 100  # garbage in the padding
        outs = []
        for xx in (x, x2):
            xt = fg.tensor(xx, dtype="float64", requires_grad=True)
            out, hn = m(xt, lengths=lengths)
            hn = hn[0] if mode == "LSTM" else hn
            (out.sum() + hn.sum()).backward()
            outs.append((out.data, hn.data, xt.grad.data, [p.grad.data.copy() for p in m.parameters()]))
            m.zero_grad()
        np.testing.assert_array_equal(outs[0][0], outs[1][0])
        np.testing.assert_array_equal(outs[0][1], outs[1][1])
        for b, n in enumerate(lengths):
            assert np.all(outs[0][0][n:, b] == 0)
            assert np.all(outs[0][2][n:, b] == 0)
        for a, c in zip(outs[0][3], outs[1][3]):
            np.testing.assert_array_equal(a, c)
        # h_n equals a run on each sequence alone, cut to its length.
        for b, n in enumerate(lengths):
            o1, h1 = m(fg.tensor(x[:n, b : b + 1], dtype="float64"))
            h1 = h1[0] if mode == "LSTM" else h1
            np.testing.assert_allclose(outs[0][1][:, b], h1.data[:, 0], rtol=1e-13, atol=1e-14)
            np.testing.assert_allclose(outs[0][0][:n, b], o1.data[:, 0], rtol=1e-13, atol=1e-14)


def test_packed_sequence_helpers_import_as_in_pytorch():
    """``from ferrograd.nn.utils.rnn import ...`` works like torch.nn.utils.rnn, and the
    attribute path ``nn.utils.rnn`` names the same functions."""
    from ferrograd.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

    assert nn.utils.rnn.pack_padded_sequence is pack_padded_sequence
    x = fg.tensor(np.arange(12.0).reshape(3, 2, 2))  # (T=3, B=2, 2), lengths 3 and 1
    packed = pack_padded_sequence(x, [3, 1])
    assert isinstance(packed, PackedSequence)
    np.testing.assert_array_equal(packed.batch_sizes.data, [2, 1, 1])
    out, lengths = pad_packed_sequence(packed)
    np.testing.assert_array_equal(lengths.data, [3, 1])
    want = x.data.copy()
    want[1:, 1] = 0.0
    np.testing.assert_array_equal(out.data, want)


def test_packed_sequence_round_trip_and_layer():
    rng = np.random.default_rng(1)
    T, B, F = 5, 4, 3
    x = rng.standard_normal((B, T, F))
    lens = [2, 5, 1, 4]
    xt = fg.tensor(x, dtype="float64", requires_grad=True)
    p = rnn_utils.pack_padded_sequence(xt, lens, batch_first=True, enforce_sorted=False)
    assert p.batch_sizes.data.tolist() == [4, 3, 2, 2, 1]
    assert p.sorted_indices.data.tolist() == [1, 3, 0, 2]
    assert p.unsorted_indices.data.tolist() == [2, 0, 3, 1]
    # Packed data: time-major, longest first.
    want = [x[b, t] for t in range(T) for b in (1, 3, 0, 2) if t < lens[b]]
    np.testing.assert_array_equal(p.data.data, np.array(want))
    padded, lengths = rnn_utils.pad_packed_sequence(p, batch_first=True, padding_value=-1.0)
    assert lengths.data.tolist() == lens
    mask = np.arange(T)[None, :] < np.array(lens)[:, None]
    np.testing.assert_array_equal(padded.data[mask], x[mask])
    assert np.all(padded.data[~mask] == -1.0)
    (padded * padded).sum().backward()
    np.testing.assert_allclose(xt.grad.data, np.where(mask[..., None], 2 * x, 0.0))
    p2, _ = rnn_utils.pad_packed_sequence(p, total_length=7)
    assert p2.shape == (7, B, F)
    with pytest.raises(ValueError, match="decreasing"):
        rnn_utils.pack_padded_sequence(xt, lens, batch_first=True)
    # The layers accept packed input and give what lengths= gives.
    m = nn.LSTM(F, 6, bidirectional=True, batch_first=True, dtype="float64")
    out_p, (hn_p, cn_p) = m(p)
    assert isinstance(out_p, rnn_utils.PackedSequence)
    out_l, (hn_l, cn_l) = m(xt, lengths=lens)
    unp, _ = rnn_utils.pad_packed_sequence(out_p, batch_first=True)
    np.testing.assert_allclose(unp.data, out_l.data, rtol=0, atol=0)
    np.testing.assert_array_equal(hn_p.data, hn_l.data)
    np.testing.assert_array_equal(cn_p.data, cn_l.data)
    sorted_lens = sorted(lens, reverse=True)
    ps = rnn_utils.pack_sequence([fg.tensor(x[b, :n]) for b, n in zip((1, 3, 0, 2), sorted_lens)])
    np.testing.assert_array_equal(ps.data.data, np.array(want))
    ps_unsorted = rnn_utils.pack_sequence([fg.tensor(x[b, :n]) for b, n in enumerate(lens)], enforce_sorted=False)
    np.testing.assert_array_equal(ps_unsorted.data.data, np.array(want))


def test_truncated_bptt_by_detaching_state():
    rng = np.random.default_rng(2)
    m = nn.LSTM(3, 4, dtype="float64")
    x = rng.standard_normal((8, 2, 3))
    full, (hf, cf) = m(fg.tensor(x, dtype="float64"))
    x1 = fg.tensor(x[:5], dtype="float64", requires_grad=True)
    x2 = fg.tensor(x[5:], dtype="float64", requires_grad=True)
    o1, (h1, c1) = m(x1)
    o2, (h2, c2) = m(x2, (h1.detach(), c1.detach()))
    np.testing.assert_allclose(np.concatenate([o1.data, o2.data]), full.data, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(h2.data, hf.data, rtol=1e-14, atol=1e-15)
    o2.sum().backward()
    assert x1.grad is None and x2.grad is not None
    g2 = [p.grad.data.copy() for p in m.parameters()]
    # The same gradients as the chunk run alone from a constant state.
    m.zero_grad()
    o3, _ = m(fg.tensor(x[5:], dtype="float64"), (fg.tensor(h1.data), fg.tensor(c1.data)))
    o3.sum().backward()
    for a, b in zip(g2, (p.grad.data for p in m.parameters())):
        np.testing.assert_array_equal(a, b)


def test_dropout_between_layers_only_in_training():
    x = fg.randn(5, 2, 3)
    m = nn.GRU(3, 4, num_layers=2, dropout=0.5)
    m.eval()
    a, _ = m(x)
    fg.manual_seed(5)
    m.train()
    b1, _ = m(x)
    fg.manual_seed(5)
    b2, _ = m(x)
    np.testing.assert_array_equal(b1.data, b2.data)
    assert not np.allclose(a.data, b1.data)
    m1 = nn.GRU(3, 4, num_layers=1, dropout=0.5)  # no layer after the last: no dropout
    m1.train()
    c1, _ = m1(x)
    m1.eval()
    c2, _ = m1(x)
    np.testing.assert_array_equal(c1.data, c2.data)


def test_no_grad_gives_plain_tensors_and_same_values():
    m = nn.LSTM(3, 4, num_layers=2)
    x = fg.randn(4, 2, 3)
    with fg.no_grad():
        a, (h, c) = m(x)
    assert not a.requires_grad and a.grad_fn is None
    b, (h2, _) = m(x)
    assert b.requires_grad
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(h.data, h2.data)


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_TANH"])
def test_deterministic_across_thread_counts(mode):
    rng = np.random.default_rng(4)
    m = make_module(mode, 5, 130, 2, True, True, True, np.float32)
    x = rng.standard_normal((9, 11, 5)).astype(np.float32)
    lengths = rng.integers(1, 12, size=9)
    old = fg._native.get_num_threads()
    res = []
    try:
        for n in (1, 2):
            fg._native.set_num_threads(n)
            m.zero_grad()
            xt = fg.tensor(x, requires_grad=True)
            out, hn = m(xt, lengths=lengths)
            hn = hn[0] if mode == "LSTM" else hn
            ((out * out).sum() + hn.sum()).backward()
            res.append([out.data, hn.data, xt.grad.data] + [p.grad.data.copy() for p in m.parameters()])
    finally:
        fg._native.set_num_threads(old)
    for a, b in zip(*res):
        assert np.array_equal(a, b)


# ----------------------------------------------------------------------------- bad input


def test_bad_input_raises_value_error_naming_layer_and_shapes():
    m = nn.LSTM(4, 3, num_layers=2)
    with pytest.raises(ValueError, match=r"LSTM\(input_size=4, hidden_size=3\).*\(seq, batch, 4\).*\(5, 2, 6\)"):
        m(fg.randn(5, 2, 6))
    with pytest.raises(ValueError, match=r"given shape \(5,\)"):
        m(fg.randn(5))
    with pytest.raises(ValueError, match=r"given shape \(1, 5, 2, 4\)"):
        m(fg.randn(1, 5, 2, 4))
    x = fg.randn(5, 2, 4)
    with pytest.raises(ValueError, match=r"h0 of shape \(2, 2, 3\), given \(1, 2, 3\)"):
        m(x, (fg.zeros(1, 2, 3), fg.zeros(2, 2, 3)))
    with pytest.raises(ValueError, match=r"c0 of shape \(2, 2, 3\), given \(2, 2, 4\)"):
        m(x, (fg.zeros(2, 2, 3), fg.zeros(2, 2, 4)))
    with pytest.raises(ValueError, match="tuple"):
        m(x, fg.zeros(2, 2, 3))
    with pytest.raises(ValueError, match=r"between 1 and the sequence length 5, given lengths\[1\] = 6"):
        m(x, lengths=[5, 6])
    with pytest.raises(ValueError, match=r"given lengths\[0\] = 0"):
        m(x, lengths=[0, 5])
    with pytest.raises(ValueError, match="expected 2 lengths.*given 3"):
        m(x, lengths=[1, 2, 3])
    g = nn.GRU(4, 3, batch_first=True)
    with pytest.raises(ValueError, match=r"GRU.*\(batch, seq, 4\)"):
        g(fg.randn(2, 5, 3))
    with pytest.raises(ValueError, match=r"h0 of shape \(1, 2, 3\), given \(1, 5, 3\)"):
        g(fg.randn(2, 5, 4), fg.zeros(1, 5, 3))
    with pytest.raises(ValueError, match="hidden_size"):
        nn.RNN(3, 0)
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNN(3, 4, nonlinearity="sigmoid")
    cell = nn.LSTMCell(4, 3)
    with pytest.raises(ValueError, match=r"LSTMCell.*\(batch, 4\).*given shape \(2, 5\)"):
        cell(fg.randn(2, 5))
    with pytest.raises(ValueError, match=r"expected h of shape \(2, 3\), given \(3, 3\)"):
        cell(fg.randn(2, 4), (fg.zeros(3, 3), fg.zeros(2, 3)))
    with pytest.raises(TypeError, match="dtype"):
        nn.GRU(4, 3)(fg.randn(5, 2, 4).double())


def test_native_rejects_inconsistent_arrays():
    x = np.zeros((3, 2, 4), np.float32)
    w_ih = np.zeros((9, 4), np.float32)
    w_hh = np.zeros((9, 3), np.float32)
    out = np.zeros((3, 2, 3), np.float32)
    hn = np.zeros((2, 3), np.float32)
    f = fg._native.rnn_forward
    with pytest.raises(ValueError, match="weight_ih"):
        f("GRU", x, np.zeros((9, 5), np.float32), w_hh, None, None, None, None, None, out, 0, hn, None, False, False, False)
    with pytest.raises(ValueError, match="out"):
        f("GRU", x, w_ih, w_hh, None, None, None, None, None, out, 1, hn, None, False, False, False)
    with pytest.raises(ValueError, match="c_n"):
        f("LSTM", x, np.zeros((12, 4), np.float32), np.zeros((12, 3), np.float32), None, None, None, None, None, out, 0, hn, None, False, False, False)
    with pytest.raises(ValueError, match="lengths"):
        f("GRU", x, w_ih, w_hh, None, None, None, None, np.array([1, 4]), out, 0, hn, None, False, False, False)
    with pytest.raises(TypeError):
        f("GRU", x, w_ih.astype(np.float64), w_hh, None, None, None, None, None, out, 0, hn, None, False, False, False)
    with pytest.raises(ValueError, match="mode"):
        f("LSTMX", x, w_ih, w_hh, None, None, None, None, None, out, 0, hn, None, False, False, False)
    ws = f("GRU", x, w_ih, w_hh, None, None, None, None, None, out, 0, hn, None, False, False, True)
    b = fg._native.rnn_backward
    with pytest.raises(ValueError, match="workspace"):
        b("GRU", x, w_ih, w_hh, None, ws[:-1], None, 0, None, None, None, False, False, False, False)
    with pytest.raises(ValueError, match="g_out"):
        b("GRU", x, w_ih, w_hh, None, ws, np.zeros((3, 2, 2), np.float32), 0, None, None, None, False, False, False, False)
