"""Autoencoders (ferrograd.unsupervised.autoencoder): losses against NumPy references of
the documented formulas, gradcheck of the KL sparsity penalty, the noise models, training,
encode / decode / reconstruct, save / load and bad input."""

from __future__ import annotations

import numpy as np
import pytest

import ferrograd as fg
import ferrograd.nn as nn
from ferrograd.unsupervised import AutoEncoder, DenoisingAutoEncoder, SparseAutoEncoder, StackedAutoEncoder
from ferrograd.unsupervised.autoencoder import kl_sparsity_penalty


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _np_linear(layer, x):
    return x @ layer.weight.data.astype(np.float64).T + layer.bias.data.astype(np.float64)


def _kl_ref(code, rho, beta):
    rh = np.clip(code.reshape(code.shape[0], -1).mean(0), 1e-6, 1 - 1e-6)
    return beta * np.sum(rho * np.log(rho / rh) + (1 - rho) * np.log((1 - rho) / (1 - rh)))


def _shallow(n_in=6, n_code=3, dtype=np.float64, sigmoid_code=True):
    enc = nn.Sequential(nn.Linear(n_in, n_code, dtype=dtype), nn.Sigmoid() if sigmoid_code else nn.Identity())
    dec = nn.Linear(n_code, n_in, dtype=dtype)
    return enc, dec


# ----------------------------------------------------------------------------- losses


def test_kl_penalty_matches_numpy_and_gradcheck(rng):
    code = rng.uniform(0.02, 0.98, size=(7, 5))
    t = fg.tensor(code, dtype=fg.float64, requires_grad=True)
    got = kl_sparsity_penalty(t, 0.1, 2.5)
    np.testing.assert_allclose(got.item(), _kl_ref(code, 0.1, 2.5), rtol=1e-12)
    fg.gradcheck(lambda c: kl_sparsity_penalty(c, 0.1, 2.5), [t])
    # rho_hat == rho: no penalty and no gradient
    flat = fg.tensor(np.full((4, 3), 0.2), dtype=fg.float64, requires_grad=True)
    pen = kl_sparsity_penalty(flat, 0.2, 3.0)
    pen.backward()
    assert abs(pen.item()) < 1e-12 and np.abs(flat.grad.data).max() < 1e-12


def test_sparse_autoencoder_loss_is_mse_plus_kl(rng):
    fg.manual_seed(3)
    enc, dec = _shallow()
    ae = SparseAutoEncoder(enc, dec, rho=0.05, beta=3.0)
    x = rng.normal(size=(9, 6))
    code = _sigmoid(_np_linear(enc[0], x))
    recon = _np_linear(dec, code)
    want = np.mean((recon - x) ** 2) + _kl_ref(code, 0.05, 3.0)
    np.testing.assert_allclose(ae.loss(x).item(), want, rtol=1e-10)
    # the plain autoencoder on the same modules: only the MSE
    plain = AutoEncoder(enc, dec)
    np.testing.assert_allclose(plain.loss(x).item(), np.mean((recon - x) ** 2), rtol=1e-10)


def test_bce_loss_matches_numpy(rng):
    fg.manual_seed(4)
    enc = nn.Sequential(nn.Linear(5, 3, dtype=np.float64), nn.Tanh())
    dec = nn.Sequential(nn.Linear(3, 5, dtype=np.float64), nn.Sigmoid())
    ae = AutoEncoder(enc, dec, loss="bce")
    x = rng.uniform(0, 1, size=(6, 5))
    p = _sigmoid(_np_linear(dec[0], np.tanh(_np_linear(enc[0], x))))
    want = -np.mean(x * np.log(p) + (1 - x) * np.log(1 - p))
    np.testing.assert_allclose(ae.loss(x).item(), want, rtol=1e-8)


@pytest.mark.parametrize("noise,level", [("gaussian", 0.3), ("masking", 0.4)])
def test_denoising_corruption_matches_the_library_generator(rng, noise, level):
    fg.manual_seed(5)
    enc, dec = _shallow()
    ae = DenoisingAutoEncoder(enc, dec, noise=noise, noise_level=level)
    x = rng.normal(size=(8, 6))
    fg.manual_seed(99)
    got = ae.loss(x).item()
    g = np.random.Generator(np.random.PCG64(99))  # what manual_seed(99) builds
    if noise == "gaussian":
        xc = x + level * g.standard_normal(x.shape)
    else:
        xc = np.where(g.random(x.shape) >= level, x, 0.0)
    recon = _np_linear(dec, _sigmoid(_np_linear(enc[0], xc)))
    np.testing.assert_allclose(got, np.mean((recon - x) ** 2), rtol=1e-10)  # target: the clean x
    # eval mode: no corruption, deterministic reconstructions
    np.testing.assert_array_equal(ae.reconstruct(x), ae.reconstruct(x))
    clean = _np_linear(dec, _sigmoid(_np_linear(enc[0], x)))
    np.testing.assert_allclose(ae.reconstruct(x), clean, rtol=1e-10)


def test_masking_noise_drops_the_requested_fraction():
    fg.manual_seed(0)
    enc, dec = _shallow(50, 4)
    ae = DenoisingAutoEncoder(enc, dec, noise="masking", noise_level=0.25)
    x = np.ones((400, 50))
    seen = []
    ae.encoder = nn.Sequential(_Spy(seen), *list(enc))
    ae.loss(x)
    dropped = 1.0 - seen[0].mean()
    assert abs(dropped - 0.25) < 0.01


class _Spy(nn.Module):
    def __init__(self, store):
        super().__init__()
        self.store = store

    def forward(self, x):
        self.store.append(np.array(x.data))
        return x


# ----------------------------------------------------------------------------- stacked


def test_stacked_structure_and_forward_against_numpy(rng):
    fg.manual_seed(6)
    ae = StackedAutoEncoder([6, 4, 2], activation="tanh", code_activation="linear", output_activation="sigmoid", dtype=np.float64)
    kinds = [type(m).__name__ for m in ae.encoder] + ["|"] + [type(m).__name__ for m in ae.decoder]
    assert kinds == ["Linear", "Tanh", "Linear", "|", "Linear", "Tanh", "Linear", "Sigmoid"]
    assert [(m.in_features, m.out_features) for m in ae.modules() if isinstance(m, nn.Linear)] == [(6, 4), (4, 2), (2, 4), (4, 6)]
    x = rng.normal(size=(5, 6))
    e0, e1, d0, d1 = [m for m in ae.modules() if isinstance(m, nn.Linear)]
    code = _np_linear(e1, np.tanh(_np_linear(e0, x)))
    recon = _sigmoid(_np_linear(d1, np.tanh(_np_linear(d0, code))))
    np.testing.assert_allclose(ae.encode(x), code, rtol=1e-10)
    np.testing.assert_allclose(ae.decode(code), recon, rtol=1e-10)
    np.testing.assert_allclose(ae.reconstruct(x), recon, rtol=1e-10)
    np.testing.assert_allclose(ae.loss(x).item(), np.mean((recon - x) ** 2), rtol=1e-10)
    np.testing.assert_allclose(ae.reconstruction_error(x), ((recon - x) ** 2).mean(1), rtol=1e-10)


def test_fit_reduces_loss_with_validation_and_pretrain_updates_shared_layers():
    fg.manual_seed(0)
    X = fg.datasets.load_digits().data[:400] / 16.0
    ae = StackedAutoEncoder([64, 32, 8], output_activation="sigmoid")
    w0 = ae.encoder[0].weight.data.copy()
    hist = ae.pretrain(X, epochs=2, batch_size=64)
    assert len(hist) == 2 and not np.array_equal(w0, ae.encoder[0].weight.data)
    before = float(np.mean((ae.reconstruct(X) - X) ** 2))
    h = ae.fit(X, epochs=8, batch_size=32, validation_split=0.2, verbose=0)
    assert set(h.history) == {"loss", "val_loss"} and len(h.history["loss"]) == 8
    assert h.history["loss"][-1] < h.history["loss"][0]
    assert float(np.mean((ae.reconstruct(X) - X) ** 2)) < before
    # a second fit continues with the same optimizer
    opt = ae.optimizer_
    ae.fit(X, epochs=1, verbose=0)
    assert ae.optimizer_ is opt


def test_sparse_fit_drives_mean_activation_toward_rho():
    fg.manual_seed(1)
    X = fg.datasets.load_digits().data[:300] / 16.0
    enc = nn.Sequential(nn.Linear(64, 24), nn.Sigmoid())
    ae = SparseAutoEncoder(enc, nn.Linear(24, 64), rho=0.05, beta=3.0)
    start = ae.encode(X).mean()
    ae.fit(X, epochs=30, batch_size=50, verbose=0, lr=3e-3)
    end = ae.encode(X).mean()
    assert start > 0.3 and end < 0.15, (start, end)


def test_conv_autoencoder_over_any_modules(tmp_path):
    fg.manual_seed(2)
    enc = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.ReLU())  # 8x8 -> 4x4
    dec = nn.Sequential(nn.ConvTranspose2d(4, 1, 4, stride=2, padding=1))    # 4x4 -> 8x8
    ae = DenoisingAutoEncoder(enc, dec, noise="gaussian", noise_level=0.05)
    X = (fg.datasets.load_digits().data[:64] / 16.0).reshape(-1, 1, 8, 8)
    h = ae.fit(X, epochs=2, batch_size=16, verbose=0)
    assert h.history["loss"][-1] < h.history["loss"][0]
    assert ae.encode(X[:3]).shape == (3, 4, 4, 4) and ae.reconstruct(X[:3]).shape == (3, 1, 8, 8)
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 1, 8, 8\), given shape \(2, 1, 8, 7\)"):
        ae.encode(np.zeros((2, 1, 8, 7)))
    assert ae.code_shape_ == (4, 4, 4)
    with pytest.raises(ValueError, match=r"decode: expected codes of shape \(N, 4, 4, 4\), given shape \(2, 4, 3, 3\)"):
        ae.decode(np.zeros((2, 4, 3, 3)))
    path = tmp_path / "conv.safetensors"
    ae.save(path)
    fresh = DenoisingAutoEncoder(nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.ReLU()),
                                 nn.Sequential(nn.ConvTranspose2d(4, 1, 4, stride=2, padding=1))).load(path)
    assert fresh.code_shape_ == (4, 4, 4) and fresh.input_shape_ == (1, 8, 8)
    np.testing.assert_array_equal(fresh.reconstruct(X[:3]), ae.reconstruct(X[:3]))


def test_save_load_roundtrip(tmp_path):
    fg.manual_seed(7)
    X = np.random.default_rng(0).normal(size=(20, 6)).astype(np.float32)
    ae = StackedAutoEncoder([6, 3])
    ae.fit(X, epochs=2, verbose=0)
    path = tmp_path / "ae.safetensors"
    ae.save(path)
    fg.manual_seed(8)
    other = StackedAutoEncoder([6, 3])
    assert not np.array_equal(other.reconstruct(X), ae.reconstruct(X))
    other.load(path)
    np.testing.assert_array_equal(other.reconstruct(X), ae.reconstruct(X))
    assert other.input_shape_ == (6,)
    from safetensors.numpy import load_file

    keys = set(load_file(str(path)))
    assert "model.encoder.0.weight" in keys and "model.decoder.0.bias" in keys


# ----------------------------------------------------------------------------- bad input


def test_bad_input_errors():
    fg.manual_seed(9)
    ae = StackedAutoEncoder([6, 3])
    ae.fit(np.ones((4, 6), dtype=np.float32), epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"encode: expected input of shape \(N, 6\), given shape \(4, 5\)"):
        ae.encode(np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"fit: expected input of shape \(N, 6\), given shape \(4, 7\)"):
        ae.fit(np.ones((4, 7)), epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"decode: expected codes of shape \(N, 3\), given shape \(2, 4\)"):
        ae.decode(np.ones((2, 4)))
    bad = np.ones((4, 6))
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="finite.*1 NaN or inf"):
        ae.fit(bad, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"non-empty batch.*given shape \(0, 6\)"):
        ae.reconstruct(np.ones((0, 6)))
    with pytest.raises(ValueError, match=r"layer_sizes\[1\] is 0"):
        StackedAutoEncoder([6, 0, 2])
    with pytest.raises(ValueError, match="at least 2 sizes"):
        StackedAutoEncoder([6])
    enc, dec = _shallow()
    with pytest.raises(ValueError, match=r"rho .* must be in \(0, 1\), given 1.5"):
        SparseAutoEncoder(enc, dec, rho=1.5)
    with pytest.raises(ValueError, match=r"noise_level for masking noise must be a finite number \[0, 1\), given 1.0"):
        DenoisingAutoEncoder(enc, dec, noise="masking", noise_level=1.0)
    with pytest.raises(ValueError, match="noise must be 'gaussian' or 'masking'"):
        DenoisingAutoEncoder(enc, dec, noise="salt")
    with pytest.raises(ValueError, match=r"codes in \[0, 1\]"):
        SparseAutoEncoder(*_shallow(sigmoid_code=False)).loss(np.random.default_rng(0).normal(size=(5, 6)) * 10)
