"""Learning-rate schedulers against their formulas (and PyTorch's, when installed)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import ferrograd as fg
import ferrograd.optim as optim
from ferrograd.optim import lr_scheduler


def _opt(lrs=(0.1, 0.02)):
    groups = [{"params": [fg.tensor(np.ones(2), requires_grad=True)], "lr": lr} for lr in lrs]
    return optim.SGD(groups, lr=lrs[0])


def _lrs(opt):
    return [g["lr"] for g in opt.param_groups]


@pytest.mark.parametrize("step_size,gamma", [(1, 0.5), (3, 0.1), (4, 0.9)])
def test_step_lr(step_size, gamma):
    opt = _opt()
    s = lr_scheduler.StepLR(opt, step_size=step_size, gamma=gamma)
    assert s.get_last_lr() == [0.1, 0.02]
    for epoch in range(1, 12):
        opt.step()
        s.step()
        want = [b * gamma ** (epoch // step_size) for b in (0.1, 0.02)]
        np.testing.assert_allclose(s.get_last_lr(), want, rtol=1e-12)
        assert s.get_last_lr() == _lrs(opt)


def test_exponential_lr():
    opt = _opt()
    s = lr_scheduler.ExponentialLR(opt, gamma=0.7)
    for epoch in range(1, 10):
        s.step()
        np.testing.assert_allclose(s.get_last_lr(), [b * 0.7**epoch for b in (0.1, 0.02)], rtol=1e-12)


@pytest.mark.parametrize("T_max,eta_min", [(5, 0.0), (10, 0.001), (1, 0.01)])
def test_cosine_annealing_follows_closed_form(T_max, eta_min):
    opt = _opt()
    s = lr_scheduler.CosineAnnealingLR(opt, T_max=T_max, eta_min=eta_min)
    for epoch in range(1, 3 * T_max + 2):
        s.step()
        want = [eta_min + (b - eta_min) * (1 + math.cos(math.pi * epoch / T_max)) / 2 for b in (0.1, 0.02)]
        np.testing.assert_allclose(s.get_last_lr(), want, rtol=1e-9, atol=1e-12)


def test_reduce_on_plateau_min_rel_with_cooldown():
    opt = _opt()
    s = lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=2, cooldown=1, min_lr=[0.03, 0.0])
    metrics = [1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95]
    lrs = []
    for m in metrics:
        s.step(m)
        lrs.append(s.get_last_lr())
    # Bad epochs: 3 (0.95 at epochs 3, 4, 5) -> reduce at epoch 5; cooldown 1 -> epoch 6
    # does not count; bad again at 7, 8, 9 -> reduce at 9.
    assert lrs[3] == [0.1, 0.02]
    assert lrs[4] == [0.05, 0.01]
    assert lrs[7] == [0.05, 0.01]
    assert lrs[8] == [0.03, 0.005]  # the first group is floored at its min_lr


@pytest.mark.parametrize("mode,threshold_mode", [("min", "abs"), ("max", "rel"), ("max", "abs")])
def test_reduce_on_plateau_modes(mode, threshold_mode):
    opt = _opt((1.0, 1.0))
    s = lr_scheduler.ReduceLROnPlateau(opt, mode=mode, factor=0.1, patience=0, threshold=0.1,
                                       threshold_mode=threshold_mode)
    sign = 1 if mode == "max" else -1
    s.step(sign * 1.0)  # best
    s.step(sign * 1.05)  # improvement below the threshold: a bad epoch, reduce (patience 0)
    assert s.get_last_lr() == [0.1, 0.1]
    s.step(sign * 2.0)  # clear improvement
    assert s.get_last_lr() == [0.1, 0.1]


def test_reduce_on_plateau_errors_and_eps():
    opt = _opt()
    with pytest.raises(ValueError, match="Factor should be < 1.0."):
        lr_scheduler.ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(ValueError, match="mode avg is unknown!"):
        lr_scheduler.ReduceLROnPlateau(opt, mode="avg")
    with pytest.raises(ValueError, match="threshold mode x is unknown!"):
        lr_scheduler.ReduceLROnPlateau(opt, threshold_mode="x")
    with pytest.raises(ValueError, match="expected 2 min_lrs, got 1"):
        lr_scheduler.ReduceLROnPlateau(opt, min_lr=[0.1])
    tiny = _opt((1e-9, 1e-9))
    s = lr_scheduler.ReduceLROnPlateau(tiny, patience=0)
    s.step(1.0)
    s.step(2.0)
    assert s.get_last_lr() == [1e-9, 1e-9]  # a change below eps is skipped


@pytest.mark.parametrize(
    "make",
    [
        lambda o: lr_scheduler.StepLR(o, 2, 0.5),
        lambda o: lr_scheduler.ExponentialLR(o, 0.9),
        lambda o: lr_scheduler.CosineAnnealingLR(o, 4, 0.001),
        lambda o: lr_scheduler.ReduceLROnPlateau(o, patience=1),
    ],
)
def test_scheduler_state_dict_round_trip(make):
    opt = _opt()
    s = make(opt)
    is_plateau = isinstance(s, lr_scheduler.ReduceLROnPlateau)
    metric = iter([3.0, 2.0, 2.5, 2.5, 2.5, 1.0, 1.5, 1.5, 1.5, 1.5])

    def step(sched):
        sched.step(next(metric)) if is_plateau else sched.step()

    for _ in range(3):
        step(s)
    sd = s.state_dict()
    assert "optimizer" not in sd
    opt2 = _opt()
    opt2.load_state_dict(opt.state_dict())
    s2 = make(opt2)
    s2.load_state_dict(sd)
    for _ in range(5):
        m = next(metric)
        if is_plateau:
            s.step(m)
            s2.step(m)
        else:
            s.step()
            s2.step()
        assert s.get_last_lr() == s2.get_last_lr() == _lrs(opt2)


def test_schedulers_match_torch():
    torch = pytest.importorskip("torch")
    tparams = [torch.nn.Parameter(torch.ones(2)) for _ in range(2)]
    cases = [
        (lambda o: lr_scheduler.StepLR(o, 3, 0.5), lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5)),
        (lambda o: lr_scheduler.ExponentialLR(o, 0.8), lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.8)),
        (lambda o: lr_scheduler.CosineAnnealingLR(o, 4, 0.01),
         lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 4, 0.01)),
    ]
    for ours, theirs in cases:
        opt = _opt()
        topt = torch.optim.SGD([{"params": [tparams[0]], "lr": 0.1}, {"params": [tparams[1]], "lr": 0.02}])
        s, ts = ours(opt), theirs(topt)
        for _ in range(13):
            topt.step()
            s.step()
            ts.step()
            np.testing.assert_allclose(s.get_last_lr(), ts.get_last_lr(), rtol=1e-12)
    opt = _opt()
    topt = torch.optim.SGD([{"params": [tparams[0]], "lr": 0.1}, {"params": [tparams[1]], "lr": 0.02}])
    kw = dict(factor=0.5, patience=1, cooldown=1, threshold=0.01, min_lr=0.001)
    s = lr_scheduler.ReduceLROnPlateau(opt, **kw)
    ts = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kw)
    rng = np.random.default_rng(0)
    for m in rng.random(30) + np.linspace(1, 0.5, 30):
        s.step(float(m))
        ts.step(float(m))
        assert s.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-12)
