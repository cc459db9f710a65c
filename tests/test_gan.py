"""ferrograd.gan.GAN: each step updates only its own network (bitwise), the losses match
NumPy references of the documented formulas, packing, fit / sample / history, save /
load, bad input, and smoke runs of the two GAN examples."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

import ferrograd as fg
import ferrograd.nn as nn
import ferrograd.optim as optim
from ferrograd.gan import GAN

HERE = os.path.dirname(os.path.abspath(__file__))


def _nets(latent=3, dim=2, dtype=np.float64, pack=1):
    G = nn.Sequential(nn.Linear(latent, 8, dtype=dtype), nn.Tanh(), nn.Linear(8, dim, dtype=dtype))
    D = nn.Sequential(nn.Linear(dim * pack, 8, dtype=dtype), nn.LeakyReLU(0.2), nn.Linear(8, 1, dtype=dtype))
    return G, D


def _params(m):
    return [p.data.copy() for p in m.parameters()]


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b))


def _changed(a, b):
    return all(not np.array_equal(x, y) for x, y in zip(a, b))


def _softplus(x):
    return np.logaddexp(0.0, x)


def test_discriminator_step_updates_only_the_discriminator(rng):
    fg.manual_seed(0)
    G, D = _nets()
    gan = GAN(G, D, 3)
    g0, d0 = _params(G), _params(D)
    gan.discriminator_step(rng.normal(size=(16, 2)))
    assert _same(_params(G), g0), "the discriminator step changed the generator"
    assert _changed(_params(D), d0)
    assert all(p.grad is None for p in G.parameters())
    assert len(gan.g_optimizer.state) == 0  # the generator's optimizer never stepped


def test_generator_step_updates_only_the_generator():
    fg.manual_seed(1)
    G, D = _nets()
    gan = GAN(G, D, 3)
    D[0].weight.requires_grad_(True)
    g0, d0 = _params(G), _params(D)
    gan.generator_step(16)
    assert _same(_params(D), d0), "the generator step changed the discriminator"
    assert _changed(_params(G), g0)
    assert all(p.grad is None for p in D.parameters())  # no gradient reached D
    assert all(p.requires_grad for p in D.parameters())  # flags restored
    assert len(gan.d_optimizer.state) == 0


def test_train_step_losses_match_numpy(rng):
    fg.manual_seed(2)
    G, D = _nets()
    gan = GAN(G, D, 3, label_smoothing=0.1)
    lin = [m for m in G.modules() if isinstance(m, nn.Linear)] + [m for m in D.modules() if isinstance(m, nn.Linear)]
    W = [(m.weight.data.copy(), m.bias.data.copy()) for m in lin]

    def g_np(z):
        return np.tanh(z @ W[0][0].T + W[0][1]) @ W[1][0].T + W[1][1]

    def d_np(x):
        h = x @ W[2][0].T + W[2][1]
        return (np.where(h > 0, h, 0.2 * h) @ W[3][0].T + W[3][1])[:, 0]

    real = rng.normal(size=(10, 2))
    fg.manual_seed(77)
    loss, p_real, p_fake = gan.discriminator_step(real)
    z = np.random.Generator(np.random.PCG64(77)).standard_normal((10, 3))
    lr_, lf = d_np(real), d_np(g_np(z))
    # BCE(x, y) = max(x,0) - x y + log(1 + exp(-|x|)) = softplus(x) - x y
    want = np.mean(_softplus(lr_) - 0.9 * lr_) + np.mean(_softplus(lf))
    np.testing.assert_allclose(loss, want, rtol=1e-10)
    np.testing.assert_allclose(p_real, np.mean(1 / (1 + np.exp(-lr_))), rtol=1e-10)
    np.testing.assert_allclose(p_fake, np.mean(1 / (1 + np.exp(-lf))), rtol=1e-10)
    # generator step (after the discriminator moved): the non-saturating loss -mean log D(G(z))
    W = [(m.weight.data.copy(), m.bias.data.copy()) for m in lin]
    fg.manual_seed(78)
    gl = gan.generator_step(10)
    z = np.random.Generator(np.random.PCG64(78)).standard_normal((10, 3))
    np.testing.assert_allclose(gl, np.mean(_softplus(-d_np(g_np(z)))), rtol=1e-10)


def test_packing_reshapes_for_the_discriminator(rng):
    fg.manual_seed(3)
    G, D = _nets(pack=4)
    seen = []

    class Spy(nn.Module):
        def forward(self, x):
            seen.append(x.shape)
            return x

    gan = GAN(G, nn.Sequential(Spy(), *list(D)), 3, pack=4)
    real = rng.normal(size=(18, 2))
    gan.discriminator_step(real)  # 18 -> 16 samples, 4 packs of 4
    gan.generator_step(18)
    assert seen == [(4, 8), (4, 8), (4, 8)]
    # a pack holds consecutive samples side by side
    x = fg.tensor(np.arange(16.0).reshape(8, 2))
    np.testing.assert_array_equal(gan._pack(x).data[1], [8, 9, 10, 11, 12, 13, 14, 15])
    with pytest.raises(ValueError, match="at least pack=4 samples, given 3"):
        gan.discriminator_step(real[:3])


def test_fit_history_sample_and_modes(rng):
    fg.manual_seed(4)
    G, D = _nets(dtype=np.float32)
    gan = GAN(G, D, 3, d_steps=2)
    X = rng.normal(size=(70, 2)).astype(np.float32)
    h = gan.fit(X, epochs=3, batch_size=16, verbose=0)  # 4 full batches per epoch (the last 6 dropped)
    assert set(h.history) == {"d_loss", "g_loss", "d_real", "d_fake"} and len(h.history["d_loss"]) == 3
    assert len(gan.step_history["d_loss"]) == 12 and len(gan.step_history["g_loss"]) == 6
    np.testing.assert_allclose(h.history["d_loss"][0], np.mean(gan.step_history["d_loss"][:4]), rtol=1e-6)
    gan.train()
    s = gan.sample(5)
    assert s.shape == (5, 2) and s.dtype == np.float32 and gan.training and G.training
    fg.manual_seed(9)
    a = gan.sample(3)
    fg.manual_seed(9)
    np.testing.assert_array_equal(gan.sample(3), a)
    p = gan.discriminate(X[:4])
    assert p.shape == (4,) and np.all((p > 0) & (p < 1))


def test_fit_bad_input():
    fg.manual_seed(5)
    gan = GAN(*_nets(), 3)
    with pytest.raises(ValueError, match=r"generator makes samples of shape \(2,\); data must be \(N, 2\), given shape \(10, 3\)"):
        gan.fit(np.zeros((10, 3)), verbose=0)
    bad = np.zeros((10, 2))
    bad[3, 1] = np.inf
    with pytest.raises(ValueError, match="finite, given 1 NaN or inf"):
        gan.fit(bad, verbose=0)
    with pytest.raises(ValueError, match=r"non-empty dataset.*given shape \(0, 2\)"):
        gan.fit(np.zeros((0, 2)), verbose=0)
    G, D = _nets()
    with pytest.raises(ValueError, match="g_optimizer must hold only the generator's parameters"):
        GAN(G, D, 3, g_optimizer=optim.Adam(D.parameters()))
    with pytest.raises(ValueError, match="latent_dim must be an int >= 1"):
        GAN(G, D, 0)
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\)"):
        GAN(G, D, 3, label_smoothing=1.0)
    wide = nn.Sequential(nn.Linear(2, 2, dtype=np.float64))  # 2 logits per sample
    with pytest.raises(ValueError, match=r"one logit per sample.*gave shape \(4, 2\)"):
        GAN(G, wide, 3).discriminator_step(np.zeros((4, 2)))


def test_custom_optimizers_and_save_load(tmp_path, rng):
    fg.manual_seed(6)
    G, D = _nets()
    gopt, dopt = optim.SGD(G.parameters(), lr=0.01), optim.SGD(D.parameters(), lr=0.02)
    gan = GAN(G, D, 3, g_optimizer=gopt, d_optimizer=dopt)
    assert gan.g_optimizer is gopt and gan.d_optimizer is dopt
    gan.fit(rng.normal(size=(32, 2)), epochs=1, batch_size=8, verbose=0)
    path = tmp_path / "gan.safetensors"
    gan.save(path)
    assert set(k.split(".")[0] for k in gan.state_dict()) == {"generator", "discriminator"}
    fg.manual_seed(7)
    other = GAN(*_nets(), 3)
    other.load(path)
    for a, b in zip(gan.state_dict().values(), other.state_dict().values()):
        np.testing.assert_array_equal(a, b)


def _example(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, os.pardir, "examples", f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_gan_mixture_example_smoke(tmp_path, capsys):
    ex = _example("gan_mixture")
    # the mode statistics on hand-made samples
    c = ex.ring_centers()
    pts = np.concatenate([c[:7] + 0.01, c[:1] + 1.0])  # 7 modes hit, one far point
    s = ex.mode_stats(np.repeat(pts, 30, axis=0), std=0.05)
    assert s["modes_covered"] == 7 and abs(s["high_quality"] - 7 / 8) < 1e-12
    r = ex.main(["--epochs", "1", "--points", "512", "--width", "16", "--out", str(tmp_path), "--quiet"])
    assert 0 <= r["modes_covered"] <= 8 and 0.0 <= r["high_quality"] <= 1.0
    out = capsys.readouterr().out
    assert "modes covered:" in out and "high-quality samples" in out


def test_dcgan_example_smoke(tmp_path, capsys):
    ex = _example("dcgan_digits")
    G, D = ex.generator(8, 8, 4), ex.discriminator(4, 8)
    z = fg.randn(2, 8, 1, 1)
    assert G(z).shape == (2, 1, 8, 8) and D(G(z)).shape == (2, 1)
    r = ex.main(["--epochs", "1", "--channels", "8", "4", "--judge-epochs", "1", "--out", str(tmp_path), "--quiet"])
    assert 0 <= r["classes"] <= 10
    assert "digit classes generated" in capsys.readouterr().out
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert (tmp_path / "dcgan_digits.png").exists()


def test_progress_bar_shows_both_losses(capsys, rng):
    fg.manual_seed(8)
    gan = GAN(*_nets(dtype=np.float32), 3)
    gan.fit(rng.normal(size=(64, 2)).astype(np.float32), epochs=2, batch_size=16, verbose=1)
    err = capsys.readouterr().err
    assert "GAN" in err and "d_loss:" in err and "g_loss:" in err and "8/8" in err
    gan.fit(rng.normal(size=(64, 2)).astype(np.float32), epochs=1, batch_size=16, verbose=2)
    out = capsys.readouterr().out
    assert out.startswith("Epoch 1/1") and "d_loss:" in out and "g_loss:" in out
