"""Optional cross-check of the recurrent layers against PyTorch (skipped without torch):
a PyTorch state_dict loads into ours and both give the same outputs and gradients, for
padded and packed (unsorted) batches and for the cells."""

from __future__ import annotations

import numpy as np
import pytest

import ferrograd as fg
import ferrograd.nn as nn

torch = pytest.importorskip("torch")
tpack = torch.nn.utils.rnn.pack_padded_sequence
tpad = torch.nn.utils.rnn.pad_packed_sequence


def _load(ours, theirs):
    sd = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
    assert list(sd) == list(ours.state_dict())
    ours.load_state_dict(sd)


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("bi,bf,packed", [(False, False, False), (True, True, False), (True, False, True), (False, True, True)])
def test_layers_match_torch(mode, bi, bf, packed):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    T, B, I, H, L = 6, 4, 3, 5, 2
    theirs = getattr(torch.nn, mode)(I, H, num_layers=L, bidirectional=bi, batch_first=bf).double()
    ours = getattr(nn, mode)(I, H, num_layers=L, bidirectional=bi, batch_first=bf, dtype="float64")
    _load(ours, theirs)
    D = 2 if bi else 1
    x = rng.standard_normal((B, T, I) if bf else (T, B, I))
    h0 = rng.standard_normal((L * D, B, H))
    c0 = rng.standard_normal((L * D, B, H))
    lens = [3, 6, 1, 4]
    xt, xf = torch.tensor(x, requires_grad=True), fg.tensor(x, dtype="float64", requires_grad=True)
    h0t, h0f = torch.tensor(h0, requires_grad=True), fg.tensor(h0, dtype="float64", requires_grad=True)
    c0t, c0f = torch.tensor(c0, requires_grad=True), fg.tensor(c0, dtype="float64", requires_grad=True)
    hxt = (h0t, c0t) if mode == "LSTM" else h0t
    hxf = (h0f, c0f) if mode == "LSTM" else h0f
    if packed:
        ot, ht = theirs(tpack(xt, torch.tensor(lens), batch_first=bf, enforce_sorted=False), hxt)
        of, hf = ours(nn.utils.rnn.pack_padded_sequence(xf, lens, batch_first=bf, enforce_sorted=False), hxf)
        np.testing.assert_allclose(of.data.data, ot.data.detach().numpy(), rtol=1e-12, atol=1e-12)
        ot, _ = tpad(ot, batch_first=bf)
        of, _ = nn.utils.rnn.pad_packed_sequence(of, batch_first=bf)
    else:
        ot, ht = theirs(xt, hxt)
        of, hf = ours(xf, hxf)
    ht, hf = (ht[0], hf[0]) if mode == "LSTM" else (ht, hf)
    np.testing.assert_allclose(of.data, ot.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(hf.data, ht.detach().numpy(), rtol=1e-12, atol=1e-12)
    ((ot**2).sum() + (ht**3).sum()).backward()
    ((of * of).sum() + (hf * hf * hf).sum()).backward()
    np.testing.assert_allclose(xf.grad.data, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h0f.grad.data, h0t.grad.numpy(), rtol=1e-10, atol=1e-12)
    if mode == "LSTM":
        np.testing.assert_allclose(c0f.grad.data, c0t.grad.numpy(), rtol=1e-10, atol=1e-12)
    for name, p in theirs.named_parameters():
        np.testing.assert_allclose(getattr(ours, name).grad.data, p.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cls", ["RNNCell", "LSTMCell", "GRUCell"])
def test_cells_match_torch(cls):
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    theirs = getattr(torch.nn, cls)(3, 5).double()
    ours = getattr(nn, cls)(3, 5, dtype="float64")
    _load(ours, theirs)
    x, h, c = rng.standard_normal((2, 3)), rng.standard_normal((2, 5)), rng.standard_normal((2, 5))
    xt, xf = torch.tensor(x, requires_grad=True), fg.tensor(x, dtype="float64", requires_grad=True)
    if cls == "LSTMCell":
        a = theirs(xt, (torch.tensor(h), torch.tensor(c)))
        b = ours(xf, (h, c))
        lt, lf = (a[0] * a[1]).sum(), (b[0] * b[1]).sum()
    else:
        a, b = theirs(xt, torch.tensor(h)), ours(xf, h)
        lt, lf = (a**2).sum(), (b * b).sum()
    lt.backward()
    lf.backward()
    np.testing.assert_allclose(lf.data, lt.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(xf.grad.data, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    for name, p in theirs.named_parameters():
        np.testing.assert_allclose(getattr(ours, name).grad.data, p.grad.numpy(), rtol=1e-10, atol=1e-12)
