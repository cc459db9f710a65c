"""The issue-5 examples (adding problem, forecast, sequence classification) run with tiny
settings and give sensible results; their data generators match loop references; detaching
the carried state cuts the gradient (truncated BPTT)."""

from __future__ import annotations

import importlib.util
import math
import os

import numpy as np
import pytest

import ferrograd as fg
import ferrograd.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
needs_rnn = pytest.mark.skipif(not (hasattr(nn, "LSTM") and hasattr(nn, "GRU") and hasattr(nn, "RNN")), reason="needs nn.LSTM / GRU / RNN")


def _example(name: str):
    path = os.path.join(HERE, os.pardir, "examples", f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"{name}_example", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ----------------------------------------------------------------------------- data generators


def test_adding_batch_matches_definition():
    ex = _example("adding_problem")
    x, y = ex.adding_batch(np.random.default_rng(0), 64, 20)
    assert x.shape == (64, 20, 2) and y.shape == (64, 1) and x.dtype == y.dtype == np.float32
    markers = x[:, :, 1]
    assert set(np.unique(markers)) == {0.0, 1.0}
    np.testing.assert_array_equal(markers[:, :10].sum(1), 1)  # one marker per half
    np.testing.assert_array_equal(markers[:, 10:].sum(1), 1)
    np.testing.assert_allclose(y[:, 0], (x[:, :, 0] * markers).sum(1), rtol=1e-6)
    assert ((x[:, :, 0] >= 0) & (x[:, :, 0] < 1)).all()


def test_sentences_match_loop_reference():
    ex = _example("sequence_classification")
    tokens, lengths, labels = ex.make_sentences(300, np.random.default_rng(1), min_len=6, max_len=25)
    assert tokens.shape == (300, 25) and tokens.dtype == lengths.dtype == labels.dtype == np.int64
    assert lengths.min() >= 6 and lengths.max() <= 25
    for t, n, lab in zip(tokens, lengths, labels):
        assert (t[n:] == 0).all() and (t[:n] != 0).all()
        score, negate = 0, False
        for tok in t[:n]:
            s = 1 if 1 <= tok <= 4 else (-1 if 5 <= tok <= 8 else 0)
            score += -s if negate else s
            negate = tok == 9
        assert score != 0 and lab == (score > 0)
    assert 0.3 < labels.mean() < 0.7


def test_series_is_seeded_and_seasonal():
    ex = _example("forecast")
    s = ex.make_series(730, seed=3)
    assert s.shape == (730, 5) and s.dtype == np.float32 and np.isfinite(s).all()
    np.testing.assert_array_equal(s, ex.make_series(730, seed=3))
    assert not np.array_equal(s, ex.make_series(730, seed=4))
    # The weekly profile: mean by weekday follows WEEKLY (up to noise).
    by_day = np.array([s[d::7, 0].mean() for d in range(7)])
    assert np.corrcoef(by_day, ex.WEEKLY)[0, 1] > 0.9
    np.testing.assert_allclose(s[:, 1] ** 2 + s[:, 2] ** 2, 1, rtol=1e-5)


# ----------------------------------------------------------------------------- examples, tiny


@needs_rnn
def test_adding_problem_small():
    ex = _example("adding_problem")
    res = ex.main(seq_len=8, hidden=16, steps=300, batch_size=32, lr=1e-2, n_test=300, verbose=False)
    assert set(res) == {"baseline", "LSTM", "GRU", "RNN"}
    base = res["baseline"]["test_mse"]
    assert 0.1 < base < 0.25  # ≈ 2/12
    for kind in ("LSTM", "GRU", "RNN"):
        assert math.isfinite(res[kind]["test_mse"]) and res[kind]["seconds"] > 0
        assert 0 <= res[kind]["reach_init"] < 1e3 and 0 <= res[kind]["reach_trained"] < 1e3
    # On 8-step sequences the gated networks learn the task well within 300 steps.
    assert res["LSTM"]["test_mse"] < 0.5 * base
    assert res["GRU"]["test_mse"] < 0.5 * base


@needs_rnn
def test_sequence_classification_small():
    ex = _example("sequence_classification")
    res = ex.main(n_train=800, n_test=400, epochs=4, batch_size=32, hidden=32, lr=1e-2, max_len=16, verbose=False)
    assert 0.4 < res["majority"] < 0.65
    assert res["test_accuracy"] > res["majority"] + 0.1


@needs_rnn
def test_sequence_classifier_ignores_padding():
    """Extra padding after each sentence changes neither the logits nor the gradients."""
    ex = _example("sequence_classification")
    fg.manual_seed(0)
    model = ex.SentimentLSTM(hidden=12)
    tokens, lengths, _ = ex.make_sentences(10, np.random.default_rng(2), max_len=15)
    padded = np.concatenate([tokens, np.zeros((10, 7), np.int64)], axis=1)

    def run(tok):
        for p in model.parameters():
            p.grad = None
        out = model(tok, lengths)
        (out * fg.tensor(np.arange(20.0).reshape(10, 2))).sum().backward()
        return out.data, [p.grad.data.copy() for p in model.parameters()]

    out_a, g_a = run(tokens)
    out_b, g_b = run(padded)
    np.testing.assert_allclose(out_a, out_b, rtol=1e-5, atol=1e-6)
    for a, b in zip(g_a, g_b):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert not g_a[0][0].any()  # the padding row of the embedding gets no gradient


@needs_rnn
def test_sequence_classifier_packed_matches_lengths():
    if not hasattr(nn.utils, "rnn"):
        pytest.skip("needs nn.utils.rnn")
    ex = _example("sequence_classification")
    fg.manual_seed(0)
    model = ex.SentimentLSTM(hidden=12)
    tokens, lengths, _ = ex.make_sentences(9, np.random.default_rng(5), max_len=12)
    a = model(tokens, lengths).data
    model.packed = True
    b = model(tokens, lengths).data
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@needs_rnn
def test_forecast_small(tmp_path):
    ex = _example("forecast")
    png = tmp_path / "f.png"
    res = ex.main(n_days=500, hidden=8, epochs=3, tbptt_epochs=1, plot_path=str(png), verbose=False)
    for part in ("window", "tbptt"):
        for method in ("lstm", "naive"):
            errs = res[part][method]
            assert math.isfinite(errs["mae"]) and 0 < errs["mae"] <= errs["rmse"] < 50
    # Seasonal naive on this series: errors from the noise (AR(1) std ≈ 1.9 per value, so
    # RMSE ≈ 1.9 √(2 (1 - 0.6^7)) ≈ 2.6) plus the yearly drift within a week.
    assert 2.0 < res["window"]["naive"]["rmse"] < 3.5
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert res["plot"] is None
    else:
        assert res["plot"] == str(png) and png.stat().st_size > 10_000


# ----------------------------------------------------------------------------- truncated BPTT


@needs_rnn
@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_detaching_the_carried_state_cuts_the_gradient(kind):
    fg.manual_seed(0)
    rnn = getattr(nn, kind)(3, 5, batch_first=True).double()
    rng = np.random.default_rng(0)
    x1 = fg.tensor(rng.standard_normal((2, 4, 3)), dtype="float64", requires_grad=True)
    x2 = fg.tensor(rng.standard_normal((2, 6, 3)), dtype="float64", requires_grad=True)

    def detach(state):
        return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()

    # Without detaching, chunk 2's loss reaches chunk 1's inputs.
    _, state = rnn(x1)
    out2, _ = rnn(x2, state)
    out2.sum().backward()
    assert x1.grad is not None and np.abs(x1.grad.data).sum() > 0
    full = [p.grad.data.copy() for p in rnn.parameters()]

    # Detached: no gradient reaches chunk 1, and the parameters' gradients are exactly those
    # of chunk 2 run from a constant initial state with the same values.
    x1.grad = None
    rnn.zero_grad()
    _, state = rnn(x1)
    carried = detach(state)
    out2d, _ = rnn(x2, carried)
    np.testing.assert_allclose(out2d.data, out2.data, rtol=1e-12)  # same forward values
    out2d.sum().backward()
    assert x1.grad is None
    tbptt = [p.grad.data.copy() for p in rnn.parameters()]

    rnn.zero_grad()
    const = tuple(fg.tensor(s.data.copy(), dtype="float64") for s in carried) if isinstance(carried, tuple) else fg.tensor(carried.data.copy(), dtype="float64")
    out_c, _ = rnn(x2, const)
    out_c.sum().backward()
    for a, b in zip(tbptt, (p.grad.data for p in rnn.parameters())):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    # ... and differ from the full-BPTT gradients (chunk 1 contributed there).
    assert any(not np.allclose(a, b) for a, b in zip(tbptt, full))
