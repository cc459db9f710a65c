"""nn.utils.receptive_field: hand-computed values, PyTorch attribute layers, and an
empirical check (the support of an output unit's input gradient) with torch if present."""

from __future__ import annotations

import numpy as np
import pytest

import ferrograd.nn as nn
from ferrograd.nn.utils import receptive_field


class Conv2d(nn.Module):
    """Attribute-only stand-in with PyTorch's names (the real layer may not exist in CI)."""

    def __init__(self, cin, cout, kernel_size, stride=1, padding=0, dilation=1):
        super().__init__()
        self.in_channels, self.out_channels = cin, cout
        self.kernel_size, self.stride, self.padding, self.dilation = kernel_size, stride, padding, dilation


class Conv1d(Conv2d):
    pass


class MaxPool2d(nn.Module):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride or kernel_size, padding
        self.dilation, self.ceil_mode = dilation, ceil_mode


class AdaptiveAvgPool2d(nn.Module):
    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size


class Weird(nn.Module):
    pass


def test_two_convs_and_pool_by_hand():
    model = nn.Sequential(Conv2d(1, 4, 3), nn.ReLU(), Conv2d(4, 8, 3), nn.ReLU(), MaxPool2d(2),
                          Conv2d(8, 8, 3), nn.Flatten(), nn.Linear(8 * 3 * 3, 10))
    rows = receptive_field(model, (1, 14, 14))
    got = [(r.type, r.channels, r.size, r.jump, r.rf, r.start) for r in rows]
    assert got == [
        ("input", 1, (14, 14), (1, 1), (1, 1), (0, 0)),
        ("Conv2d", 4, (12, 12), (1, 1), (3, 3), (1, 1)),
        ("ReLU", 4, (12, 12), (1, 1), (3, 3), (1, 1)),
        ("Conv2d", 8, (10, 10), (1, 1), (5, 5), (2, 2)),
        ("ReLU", 8, (10, 10), (1, 1), (5, 5), (2, 2)),
        ("MaxPool2d", 8, (5, 5), (2, 2), (6, 6), (2.5, 2.5)),
        ("Conv2d", 8, (3, 3), (2, 2), (10, 10), (4.5, 4.5)),
        ("Flatten", None, (72,), None, (14, 14), None),
        ("Linear", None, (10,), None, (14, 14), None),
    ]
    assert [r.name for r in rows[1:4]] == ["0", "1", "2"]
    text = str(rows)
    assert "Jump" in text and "RF" in text and "MaxPool2d" in text and "2.5" in text


def test_stride_padding_dilation_same_valid_ceil():
    model = nn.Sequential(
        Conv2d(3, 8, (5, 3), stride=(2, 1), padding=(2, 1)),  # H: 16 -> 8, W: 10 -> 10
        Conv2d(8, 8, 3, padding="same", dilation=2),          # same size, k' = 5
        MaxPool2d(3, stride=2, ceil_mode=True),               # H: 8 -> 4 (ceil), W: 10 -> 5 (ceil)
        Conv2d(8, 8, 1, padding="valid"),
    )
    r = receptive_field(model, (3, 16, 10))
    assert r[1].size == (8, 10) and r[1].jump == (2, 1) and r[1].rf == (5, 3) and r[1].start == (0, 0)
    assert r[2].size == (8, 10) and r[2].rf == (5 + 4 * 2, 3 + 4 * 1) and r[2].start == (0, 0)
    assert r[3].size == (4, 5) and r[3].jump == (4, 2) and r[3].rf == (13 + 2 * 2, 7 + 2 * 1)
    assert r[3].start == (1 * 2, 1 * 1)
    assert r[4].size == (4, 5) and r[4].rf == r[3].rf


def test_conv1d_and_nested_sequential_and_adaptive():
    m1 = nn.Sequential(nn.Sequential(Conv1d(2, 4, 5, stride=2)), nn.Sequential(Conv1d(4, 4, 3, dilation=3)))
    r = receptive_field(m1, (2, 40))
    assert [x.name for x in r[1:]] == ["0.0", "1.0"]
    assert r[-1].size == (12,) and r[-1].jump == (2,) and r[-1].rf == (5 + 6 * 2,)
    m2 = nn.Sequential(Conv2d(1, 2, 3), AdaptiveAvgPool2d(1))
    r2 = receptive_field(m2, (1, 6, 6))
    assert r2[-1].size == (1, 1) and r2[-1].rf == (6, 6) and r2[-1].start == (2.5, 2.5)


def test_errors():
    with pytest.raises(ValueError, match="cannot analyse layer 1 \\(Weird\\)"):
        receptive_field(nn.Sequential(Conv2d(1, 1, 3), Weird()), (1, 8, 8))
    with pytest.raises(ValueError, match="larger than the padded input"):
        receptive_field(nn.Sequential(Conv2d(1, 1, 5), Conv2d(1, 1, 5)), (1, 8, 8))
    with pytest.raises(ValueError, match="spatial dimension"):
        receptive_field(nn.Sequential(Conv2d(1, 1, (3, 3))), (1, 8))
    with pytest.raises(ValueError, match="input_shape"):
        receptive_field(nn.Sequential(Conv2d(1, 1, 3)), (8,))


def test_real_layers_if_present():
    if not (hasattr(nn, "Conv2d") and hasattr(nn, "MaxPool2d")):
        pytest.skip("nn.Conv2d / nn.MaxPool2d not available")
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 8, 3), nn.MaxPool2d(2))
    r = receptive_field(model, (1, 14, 14))
    assert [x.rf for x in r] == [(1, 1), (3, 3), (3, 3), (5, 5), (6, 6)]
    assert r[-1].size == (5, 5) and r[-1].jump == (2, 2)


def test_matches_gradient_support_in_torch():
    torch = pytest.importorskip("torch")
    tn = torch.nn
    torch.manual_seed(0)
    model = tn.Sequential(
        tn.Conv2d(1, 2, 3, padding=1), tn.ReLU(), tn.Conv2d(2, 2, (3, 5), stride=2, dilation=(1, 2)),
        tn.AvgPool2d(2), tn.Conv2d(2, 1, 3, padding=2, dilation=2),
    )
    for p in model.parameters():  # positive weights: no cancellation inside the support
        p.data.abs_().add_(0.1)
    H = W = 64
    r = receptive_field(model, (1, H, W))[-1]
    x = torch.rand(1, 1, H, W, requires_grad=True)
    y = model(x)
    assert tuple(y.shape[2:]) == r.size
    i, j = r.size[0] // 2, r.size[1] // 2
    y[0, 0, i, j].backward()
    nz = np.argwhere(x.grad[0, 0].numpy() != 0)
    lo, hi = nz.min(0), nz.max(0)
    for d, idx in enumerate((i, j)):
        centre = r.start[d] + idx * r.jump[d]
        assert hi[d] - lo[d] + 1 == r.rf[d]
        assert (lo[d] + hi[d]) / 2 == centre
