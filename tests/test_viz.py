"""ferrograd.viz: PNG grids and training curves (skipped without matplotlib)."""

from __future__ import annotations

import builtins
import importlib

import numpy as np
import pytest

import ferrograd as fg
import ferrograd.nn as nn
from ferrograd import viz


class FakeConv(nn.Module):
    """Conv-shaped stand-in: a weight (out, in, kh, kw) and a kernel_size (so this test
    does not depend on nn.Conv2d); forward is a 'valid' correlation in NumPy."""

    def __init__(self, cin, cout, k):
        super().__init__()
        self.kernel_size = (k, k)
        self.weight = nn.Parameter(np.random.default_rng(0).standard_normal((cout, cin, k, k)).astype(np.float32))

    def forward(self, x):
        a, w = x.data, self.weight.data
        k = w.shape[-1]
        win = np.lib.stride_tricks.sliding_window_view(a, (k, k), axis=(2, 3))  # (N, C, H', W', k, k)
        return fg.Tensor._wrap(np.einsum("nchwij,ocij->nohw", win, w).astype(a.dtype))


class FakePool(nn.Module):
    def __init__(self):
        super().__init__()
        self.kernel_size = 2

    def forward(self, x):
        a = x.data
        n, c, h, w = a.shape
        return fg.Tensor._wrap(a[:, :, : h // 2 * 2, : w // 2 * 2].reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5)))


def test_missing_matplotlib_message(monkeypatch, tmp_path):
    real_import = builtins.__import__

    def fake_import(name, *a, **k):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("no matplotlib")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=r"pip install ferrograd\[viz\]"):
        viz.save_image_grid(np.zeros((1, 1, 4, 4)), tmp_path / "x.png")


def _read(path):
    mimage = pytest.importorskip("matplotlib.image")
    return mimage.imread(str(path))


def test_save_filters_grid_size(tmp_path):
    pytest.importorskip("matplotlib")
    conv = FakeConv(1, 6, 5)
    p = tmp_path / "sub" / "filters.png"
    hw = viz.save_filters(conv, p, scale=4, pad=1)
    img = _read(p)
    # 6 filters, one input channel: a 3-column grid of 2 rows, 20x20 px tiles
    assert hw == viz.grid_shape(2, 3, 20, 20, 1) == img.shape[:2]
    # multi-channel: rows = out channels, columns = in channels
    hw2 = viz.save_filters(FakeConv(3, 4, 3).weight, tmp_path / "f2.png", scale=2, pad=0)
    assert hw2 == (4 * 6, 3 * 6) == _read(tmp_path / "f2.png").shape[:2]
    # a tile is the filter, min-max scaled, nearest-upscaled (grey colormap: R = G = B)
    w = conv.weight.data[0, 0]
    unit = (w - w.min()) / (w.max() - w.min())
    tile = img[1 : 1 + 20, 1 : 1 + 20, 0]
    np.testing.assert_allclose(tile[::4, ::4], unit, atol=2.5 / 255)  # 256-entry colormap + 8-bit PNG
    with pytest.raises(ValueError, match="weight is"):
        viz.save_filters(np.zeros((3, 3)), tmp_path / "bad.png")


def test_save_feature_maps(tmp_path):
    pytest.importorskip("matplotlib")
    model = nn.Sequential(FakeConv(1, 4, 3), nn.ReLU(), FakePool(), FakeConv(4, 20, 3), FakePool(), nn.Flatten())
    model.train()
    img = np.random.default_rng(1).random((1, 12, 12))
    rows = viz.save_feature_maps(model, img, tmp_path / "fm.png", tile=24, pad=2, max_channels=8)
    assert [s for _, s in rows] == [(1, 12, 12), (4, 10, 10), (4, 5, 5), (20, 3, 3), (20, 1, 1)]
    assert rows[1][0] == "0 (FakeConv)"
    out = _read(tmp_path / "fm.png")
    assert out.shape[:2] == viz.grid_shape(5, 8, 24, 24, 2)
    assert model.training  # mode restored
    # a list of layers and (H, W) input work too
    rows2 = viz.save_feature_maps([model[0], model[1], model[2]], img[0], tmp_path / "fm2.png", include_input=False)
    assert [s for _, s in rows2] == [(4, 10, 10), (4, 5, 5)]
    with pytest.raises(ValueError, match="no conv or pooling"):
        viz.save_feature_maps(nn.Sequential(nn.ReLU()), img, tmp_path / "none.png")


def test_save_image_grid(tmp_path):
    pytest.importorskip("matplotlib")
    x = np.random.default_rng(2).random((10, 1, 8, 8))
    hw = viz.save_image_grid(x, tmp_path / "g.png", nrow=4, pad=2, scale=2)
    assert hw == viz.grid_shape(3, 4, 16, 16, 2) == _read(tmp_path / "g.png").shape[:2]
    rgb = fg.tensor(np.random.default_rng(3).random((3, 3, 5, 5)).astype(np.float32))
    hw = viz.save_image_grid(rgb, tmp_path / "rgb.png", nrow=8, pad=1, normalize=False)
    got = _read(tmp_path / "rgb.png")
    assert hw == (7, 19) == got.shape[:2]
    np.testing.assert_allclose(got[1:6, 1:6, :3], np.moveaxis(rgb.numpy()[0], 0, -1), atol=1 / 255 + 1e-6)
    with pytest.raises(ValueError, match="expected"):
        viz.save_image_grid(np.zeros((2, 2, 4, 4)), tmp_path / "bad.png")


def test_plot_history(tmp_path):
    pytest.importorskip("matplotlib")
    from ferrograd.train import History

    h = History()
    for e in range(5):
        h.on_epoch_end(e, {"loss": 1.0 / (e + 1), "accuracy": 0.5 + 0.1 * e, "val_loss": 1.2 / (e + 1), "val_accuracy": 0.45 + 0.1 * e})
    size = viz.plot_history(h, tmp_path / "curves.png", figsize=(8, 3), dpi=50)
    assert size == (150, 400) == _read(tmp_path / "curves.png").shape[:2]
    viz.plot_history(h.history, tmp_path / "c2.png", keys=["loss"])
    with pytest.raises(ValueError, match="no curve named"):
        viz.plot_history(h, tmp_path / "c3.png", keys=["f1"])


def test_viz_module_imports_without_matplotlib_at_import_time():
    # importing ferrograd.viz must not import matplotlib
    mod = importlib.reload(viz)
    assert hasattr(mod, "save_filters")
