"""examples/digits_cnn.py, shortened: learns the digits (>= 95 %) in a few epochs and writes
its pictures; summary() shows the conv/pool feature-map shapes."""

from __future__ import annotations

import importlib.util
import os

import pytest

import ferrograd.nn as nn
from ferrograd import train

HERE = os.path.dirname(os.path.abspath(__file__))
pytestmark = pytest.mark.skipif(not (hasattr(nn, "Conv2d") and hasattr(nn, "MaxPool2d")), reason="needs nn.Conv2d and nn.MaxPool2d")


def _example():
    path = os.path.join(HERE, os.pardir, "examples", "digits_cnn.py")
    spec = importlib.util.spec_from_file_location("digits_cnn_example", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_summary_shows_feature_map_shapes():
    text = train.summary(_example().lenet(16, 32), (1, 16, 16), print_fn=None)
    rows = [line for line in text.splitlines() if line[:2].strip().isdigit()]
    shapes = [r.split(")", 1)[1].split("  ")[0].strip() or r for r in rows]
    want = ["(None, 16, 16, 16)", "(None, 16, 16, 16)", "(None, 16, 8, 8)", "(None, 32, 8, 8)",
            "(None, 32, 8, 8)", "(None, 32, 4, 4)", "(None, 512)"]
    for row, w in zip(rows, want):
        assert w in row, (row, w)
    assert "0 (Conv2d)" in rows[0] and "160" in rows[0]  # 16 * (1*3*3) + 16
    assert "2 (MaxPool2d)" in rows[2]
    assert shapes


def test_short_training_run(tmp_path):
    ex = _example()
    # the small model (16, 32 channels), 15 epochs: a few seconds (96-97 % over seeds)
    r = ex.run(epochs=15, seed=0, out_dir=str(tmp_path), verbose=0, c1=16, c2=32)
    assert r["accuracy"] >= 0.95, r
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert not (tmp_path / "filters.png").exists()
        return
    import matplotlib.image as mimage

    for name in ("filters.png", "feature_maps.png"):
        assert (tmp_path / name).exists()
        assert mimage.imread(str(tmp_path / name)).ndim == 3
