"""ferrograd.train: fit / evaluate / predict, callbacks, checkpoints and resume, summary."""

from __future__ import annotations

import csv
import math
import os
from collections import OrderedDict

import numpy as np
import pytest

import ferrograd as fg
from ferrograd import datasets, train
from ferrograd.data import DataLoader, TensorDataset
from ferrograd.serialization import load, save
from ferrograd.train import (
    CSVLogger,
    EarlyStopping,
    LambdaCallback,
    LearningRateScheduler,
    ModelCheckpoint,
    TerminateOnNaN,
    Trainer,
)

import ferrograd.nn as nn  # noqa: E402
import ferrograd.optim as optim  # noqa: E402


def mlp(*sizes, act=None, dropout=0.0):
    act = act or nn.ReLU
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(act())
            if dropout:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def blobs(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centers = np.array([[0, 3], [3, 0], [-3, -3]], np.float32)
    X = centers[y] + rng.standard_normal((n, 2)).astype(np.float32) * 0.5
    return X, y.astype(np.int64)


# ----------------------------------------------------------------------------- learning


def test_xor_learns_with_two_layers():
    fg.manual_seed(0)
    X, y = datasets.make_xor()
    t = y.reshape(-1, 1).astype(np.float32)
    model = nn.Sequential(nn.Linear(2, 4), nn.Sigmoid(), nn.Linear(4, 1), nn.Sigmoid())
    hist = train.fit(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=2.0), X, t, epochs=1500, batch_size=4, verbose=0)
    pred = train.predict(model, X)
    assert pred.shape == (4, 1)
    assert ((pred[:, 0] > 0.5) == y.astype(bool)).all(), pred
    assert hist.history["accuracy"][-1] == 1.0 and hist.history["loss"][-1] < hist.history["loss"][0]


def test_digits_mlp_reaches_95_percent():
    fg.manual_seed(0)
    d = datasets.load_digits()
    X = d.data / 16.0
    perm = np.random.default_rng(0).permutation(len(X))
    tr, te = perm[:1400], perm[1400:]
    model = mlp(64, 64, 10)
    trainer = Trainer(model, nn.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=3e-3), metrics=["accuracy"])
    trainer.fit(X[tr], d.target[tr], epochs=12, batch_size=32, verbose=0)
    res = trainer.evaluate(X[te], d.target[te])
    assert set(res) == {"loss", "accuracy"}
    assert res["accuracy"] >= 0.95, res


def test_fit_history_validation_and_model_modes():
    X, y = blobs()
    model = mlp(2, 8, 3, dropout=0.1)
    trainer = Trainer(model, nn.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=0.01), metrics=["accuracy"])
    h = trainer.fit(X, y, epochs=3, batch_size=16, validation_split=0.25, verbose=0)
    assert list(h.history) == ["loss", "accuracy", "val_loss", "val_accuracy"] and h.epoch == [0, 1, 2]
    assert all(len(v) == 3 for v in h.history.values())
    # predict: eval mode, no grad, previous modes restored, no random draws
    model.train()
    state = fg.generator().bit_generator.state
    p1 = trainer.predict(X)
    p2 = trainer.predict(X, batch_size=7)
    assert np.array_equal(p1, p2) and p1.shape == (len(X), 3)
    assert model.training and all(m.training for m in model.modules())
    assert fg.generator().bit_generator.state == state
    model.eval()
    trainer.evaluate(X, y)
    assert not model.training
    # validation given as a DataLoader and as arrays give the same numbers
    r1 = trainer.evaluate(X, y, batch_size=5)
    r2 = trainer.evaluate(DataLoader(TensorDataset(X, y), batch_size=50))
    assert r1["accuracy"] == r2["accuracy"] and math.isclose(r1["loss"], r2["loss"], rel_tol=1e-5)


def test_regression_metrics_and_dataset_input():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((64, 3)).astype(np.float32)
    y = (X @ np.array([[1.0], [-2.0], [0.5]], np.float32)).astype(np.float32)
    model = mlp(3, 1)
    trainer = Trainer(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=0.1), metrics=["mae", "mse"])
    h = trainer.fit(TensorDataset(X, y), epochs=30, batch_size=16, verbose=0)
    assert h.history["mse"][-1] < 1e-3 and h.history["mae"][-1] < 0.03
    out = trainer.evaluate(X, y)
    assert math.isclose(out["mse"], out["loss"], rel_tol=1e-4)
    assert math.isclose(out["mse"], float(np.mean((trainer.predict(X) - y) ** 2)), rel_tol=1e-4)


def test_bad_inputs_are_clear():
    X, y = blobs(20)
    model = mlp(2, 3)
    tr = Trainer(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(ValueError, match=r"x has shape \(20, 2\), y has shape \(19,\)"):
        tr.fit(X, y[:19], verbose=0)
    with pytest.raises(ValueError, match="y is required"):
        tr.fit(X, verbose=0)
    with pytest.raises(ValueError, match="unknown metric"):
        Trainer(model, nn.CrossEntropyLoss(), None, metrics=["f2"]).evaluate(X, y)
    with pytest.raises(ValueError, match="validation_split"):
        tr.fit(X, y, validation_split=1.5, verbose=0)
    with pytest.raises(ValueError, match="no optimizer"):
        Trainer(model, nn.CrossEntropyLoss()).fit(X, y)


def test_accuracy_metric_cases():
    from ferrograd.train.metrics import Accuracy

    a = Accuracy()
    assert a.update(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([1, 1])) == 0.5
    assert a.update(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([[0, 1], [1, 0]])) == 1.0
    assert a.result() == 0.75
    b = Accuracy()
    assert b.update(np.array([[0.7], [0.2], [0.6]]), np.array([[1.0], [0.0], [0.0]])) == pytest.approx(2 / 3)
    c = Accuracy(from_logits=True)
    assert c.update(np.array([0.3, -0.1]), np.array([1, 0])) == 1.0
    with pytest.raises(ValueError, match="target"):
        Accuracy().update(np.zeros((4, 3)), np.zeros((5,)))


# ----------------------------------------------------------------------------- callbacks


class _Holder:
    """A stand-in trainer / model for driving callbacks with scripted logs."""

    def __init__(self):
        self.stop_training = False
        self.w = 0.0
        self.model = self

    def state_dict(self):
        return OrderedDict(w=np.array(self.w))

    def load_state_dict(self, sd, strict=True):
        self.w = float(sd["w"])


def _drive(cb, values, key="val_loss"):
    h = _Holder()
    cb.set_trainer(h)
    cb.on_train_begin({})
    ran = 0
    for epoch, v in enumerate(values):
        h.w = float(epoch)  # the "weights" after this epoch
        cb.on_epoch_end(epoch, {key: v})
        ran += 1
        if h.stop_training:
            break
    cb.on_train_end({})
    return ran, h


@pytest.mark.parametrize(
    "kwargs,values,key,ran,best_epoch",
    [
        (dict(patience=0), [1.0, 0.9, 0.95, 0.5], "val_loss", 3, 1),
        (dict(patience=2), [1.0, 0.9, 0.95, 0.92, 0.5], "val_loss", 4, 1),
        (dict(patience=2), [1.0, 0.9, 0.95, 0.85, 0.9, 0.91, 0.1], "val_loss", 6, 3),
        (dict(patience=1, min_delta=0.1), [1.0, 0.95, 0.8, 0.75], "val_loss", 2, 0),
        (dict(patience=1, min_delta=0.1), [1.0, 0.85, 0.8, 0.75], "val_loss", 3, 1),
        (dict(monitor="val_accuracy", patience=2), [0.5, 0.6, 0.55, 0.7], "val_accuracy", 4, 3),
        (dict(monitor="val_accuracy", patience=1), [0.5, 0.6, 0.55, 0.7], "val_accuracy", 3, 1),  # as Keras: patience 0 and 1 alike
        (dict(monitor="val_accuracy", patience=0), [0.5, 0.6, 0.6], "val_accuracy", 3, 1),
        (dict(monitor="val_accuracy", mode="min", patience=0), [0.5, 0.6], "val_accuracy", 2, 0),
        (dict(monitor="score", mode="max", patience=1), [1, 2, 2, 2], "score", 3, 1),
        (dict(patience=0, baseline=0.5), [0.7, 0.6, 0.4], "val_loss", 2, -1),
        (dict(patience=2), [1.0, float("nan"), float("nan")], "val_loss", 3, 0),
    ],
)
def test_early_stopping_scripted(kwargs, values, key, ran, best_epoch):
    cb = EarlyStopping(restore_best_weights=True, **kwargs)
    n, h = _drive(cb, values, key)
    assert n == ran and cb.best_epoch == best_epoch
    if best_epoch >= 0:
        assert h.w == best_epoch  # weights of the best epoch restored
    else:
        assert h.w == n - 1  # nothing beat the baseline: weights left alone


def test_early_stopping_without_restore_and_missing_monitor():
    cb = EarlyStopping(patience=0)
    n, h = _drive(cb, [1.0, 2.0, 3.0])
    assert n == 2 and h.w == 1.0 and cb.stopped_epoch == 1
    with pytest.warns(RuntimeWarning, match="val_loss"):
        _drive(EarlyStopping(), [1.0], key="loss")


def test_early_stopping_in_fit_restores_best_weights():
    X, y = blobs(60)
    model = mlp(2, 3)
    tr = Trainer(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.0))
    seen = []
    grab = LambdaCallback(on_epoch_end=lambda e, logs: seen.append(model.state_dict()))
    es = EarlyStopping(monitor="val_loss", patience=1, restore_best_weights=True)
    h = tr.fit(X, y, epochs=10, validation_data=(X, y), callbacks=[es, grab], verbose=0)
    assert len(h.epoch) == 2  # lr 0: no improvement after the first epoch
    for k, v in model.state_dict().items():
        assert np.array_equal(v, seen[0][k])


def test_terminate_on_nan_stops_at_the_batch():
    X, y = blobs(40)
    model = mlp(2, 3)
    calls = {"n": 0}
    ce = nn.CrossEntropyLoss()

    def loss_fn(out, target):
        calls["n"] += 1
        loss = ce(out, target)
        return loss * float("nan") if calls["n"] == 3 else loss

    cb = TerminateOnNaN()
    h = Trainer(model, loss_fn, optim.SGD(model.parameters(), lr=0.1)).fit(X, y, epochs=5, batch_size=10, callbacks=[cb], verbose=0)
    assert cb.terminated_batch == 2 and calls["n"] == 3 and h.epoch == [0]


def test_model_checkpoint_files(tmp_path):
    X, y = blobs(40)
    model = mlp(2, 4, 3)
    tr = Trainer(model, nn.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=0.05))
    pattern = str(tmp_path / "ck-{epoch:02d}-{val_loss:.3f}.safetensors")
    cb = ModelCheckpoint(pattern, monitor="val_loss")
    tr.fit(X, y, epochs=3, batch_size=8, validation_data=(X, y), callbacks=[cb], verbose=0)
    assert len(cb.saved) == 3 and all(os.path.exists(p) for p in cb.saved)
    assert os.path.basename(cb.saved[0]).startswith("ck-01-")
    ck = load(cb.saved[-1])
    assert ck["epoch"] == 3 and set(ck) >= {"model", "optimizer", "epoch", "rng"}
    for k, v in model.state_dict().items():
        assert np.array_equal(ck["model"][k], v)
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
    # save_best_only on a scripted monitor; weights only
    best = ModelCheckpoint(str(tmp_path / "best.safetensors"), monitor="val_acc", save_best_only=True, save_weights_only=True)
    best.set_trainer(tr)
    for e, v in enumerate([0.5, 0.7, 0.6, 0.8]):
        best.on_epoch_end(e, {"val_acc": v})
    assert len(best.saved) == 3 and list(load(best.saved[-1])) == list(model.state_dict())


def test_learning_rate_scheduler_function_and_scheduler():
    X, y = blobs(20)
    model = mlp(2, 3)
    opt = optim.SGD(model.parameters(), lr=1.0)
    lrs = []
    cb = LearningRateScheduler(lambda epoch: 0.1 * 0.5**epoch)
    h = Trainer(model, nn.CrossEntropyLoss(), opt).fit(
        X, y, epochs=3, callbacks=[cb, LambdaCallback(on_epoch_begin=lambda e, l: lrs.append(opt.param_groups[0]["lr"]))], verbose=0
    )
    assert lrs == [0.1, 0.05, 0.025] and h.history["lr"] == [0.1, 0.05, 0.025]
    cb2 = LearningRateScheduler(lambda epoch, lr: lr * 0.1)
    Trainer(model, nn.CrossEntropyLoss(), opt).fit(X, y, epochs=2, callbacks=[cb2], verbose=0)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.025 * 0.01)
    sched_mod = getattr(optim, "lr_scheduler", None)
    if sched_mod is None or not hasattr(sched_mod, "StepLR"):
        pytest.skip("ferrograd.optim.lr_scheduler not available yet")
    opt = optim.SGD(model.parameters(), lr=1.0)
    cb3 = LearningRateScheduler(sched_mod.StepLR(opt, step_size=1, gamma=0.5))
    h = Trainer(model, nn.CrossEntropyLoss(), opt).fit(X, y, epochs=3, callbacks=[cb3], verbose=0)
    assert h.history["lr"] == [1.0, 0.5, 0.25]
    opt = optim.SGD(model.parameters(), lr=1.0)
    cb4 = LearningRateScheduler(sched_mod.ReduceLROnPlateau(opt, factor=0.5, patience=0), monitor="val_loss")
    Trainer(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.0))  # unused
    tr = Trainer(model, nn.CrossEntropyLoss(), opt)
    opt.param_groups[0]["lr"] = 1.0
    cb4.set_trainer(tr)
    for e, v in enumerate([1.0, 1.0, 1.0]):
        cb4.on_epoch_end(e, {"val_loss": v})
    assert opt.param_groups[0]["lr"] == pytest.approx(0.25)


def test_csv_logger(tmp_path):
    X, y = blobs(20)
    model = mlp(2, 3)
    path = tmp_path / "log.csv"
    Trainer(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1)).fit(X, y, epochs=3, callbacks=[CSVLogger(path)], verbose=0)
    rows = list(csv.reader(open(path)))
    assert rows[0] == ["epoch", "accuracy", "loss"] and [r[0] for r in rows[1:]] == ["0", "1", "2"]


def test_user_callback_protocol_order():
    X, y = blobs(20)
    model = mlp(2, 3)
    events = []

    class Recorder(train.Callback):
        def on_train_begin(self, logs=None):
            events.append(("train_begin", self.params["epochs"], self.params["steps"], self.model is model))

        def on_epoch_begin(self, epoch, logs=None):
            events.append(("epoch_begin", epoch))

        def on_batch_end(self, batch, logs=None):
            events.append(("batch_end", batch, logs["size"], "loss" in logs))
            if batch == 1 and self.trainer.epoch == 1:
                self.trainer.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            events.append(("epoch_end", epoch))

        def on_train_end(self, logs=None):
            events.append(("train_end",))

    Trainer(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1)).fit(X, y, epochs=4, batch_size=8, shuffle=False, callbacks=[Recorder()], verbose=0)
    assert events == [
        ("train_begin", 4, 3, True), ("epoch_begin", 0), ("batch_end", 0, 8, True), ("batch_end", 1, 8, True), ("batch_end", 2, 4, True),
        ("epoch_end", 0), ("epoch_begin", 1), ("batch_end", 0, 8, True), ("batch_end", 1, 8, True), ("epoch_end", 1), ("train_end",),
    ]


def test_progress_output(capsys):
    X, y = blobs(20)
    model = mlp(2, 3)
    tr = Trainer(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1))
    tr.fit(X, y, epochs=2, verbose=0)
    assert capsys.readouterr().out == ""
    tr.fit(X, y, epochs=2, verbose=1)  # not a terminal: one line per epoch, no bar
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[0].startswith("Epoch 1/2") and "loss:" in out[0] and "accuracy:" in out[0]


# ----------------------------------------------------------------------------- checkpoint / resume


def _resume_setup(seed):
    fg.manual_seed(seed)
    model = mlp(2, 16, 3, dropout=0.2)
    opt = optim.Adam(model.parameters(), lr=0.01)
    return model, opt


def test_resume_is_bitwise_identical(tmp_path):
    X, y = blobs(90, seed=3)
    losses = []
    rec = LambdaCallback(on_batch_end=lambda b, logs: losses.append(logs["loss"]))

    # 4 epochs straight
    model, opt = _resume_setup(11)
    fg.manual_seed(99)
    t1 = Trainer(model, nn.CrossEntropyLoss(), opt)
    h1 = t1.fit(X, y, epochs=4, batch_size=16, validation_split=0.2, callbacks=[rec], verbose=0)
    straight, losses[:] = list(losses), []
    w_straight = model.state_dict()

    # 2 epochs, checkpoint, a new model and optimizer (other init), load, 2 more
    model, opt = _resume_setup(11)
    fg.manual_seed(99)
    t2 = Trainer(model, nn.CrossEntropyLoss(), opt)
    t2.fit(X, y, epochs=2, batch_size=16, validation_split=0.2, callbacks=[rec, ModelCheckpoint(str(tmp_path / "ck-{epoch}.safetensors"))], verbose=0)
    del model, opt, t2
    fg.generator().random(17)  # disturb the stream: the checkpoint must restore it
    model, opt = _resume_setup(12345)
    t3 = Trainer(model, nn.CrossEntropyLoss(), opt)
    start = t3.load_checkpoint(tmp_path / "ck-2.safetensors")
    assert start == 2
    h3 = t3.fit(X, y, epochs=4, batch_size=16, validation_split=0.2, callbacks=[rec], verbose=0, initial_epoch=start)
    assert losses == straight  # the same loss sequence, bit for bit
    for k, v in model.state_dict().items():
        assert np.array_equal(v, w_straight[k]), k
    assert h3.epoch == [2, 3] and h3.history["val_loss"] == h1.history["val_loss"][2:]


def test_load_checkpoint_rejects_non_checkpoints(tmp_path):
    model = mlp(2, 3)
    save({"weights": np.ones(2)}, tmp_path / "x.safetensors")
    with pytest.raises(ValueError, match="checkpoint dict"):
        Trainer(model, None).load_checkpoint(tmp_path / "x.safetensors")


# ----------------------------------------------------------------------------- summary and Keras-style API


def test_summary_sequential_and_custom():
    model = mlp(784, 256, 10)
    state = fg.generator().bit_generator.state
    text = train.summary(model, (784,), print_fn=None)
    assert "(None, 256)" in text and "(None, 10)" in text and "Linear" in text and "ReLU" in text
    assert "Total params: 203,530" in text and "Trainable params: 203,530" in text and "Non-trainable params: 0" in text
    assert "200,960" in text and "2,570" in text
    assert fg.generator().bit_generator.state == state
    assert all("forward" not in vars(m) for m in model.modules())

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = mlp(8, 4)
            self.head = nn.Linear(4, 2)
            self.scale = nn.Parameter(fg.ones(2).data)

        def forward(self, x):
            return self.head(self.enc(x).relu()) * self.scale

    net = Net()
    text = train.summary(net, (8,), print_fn=None)
    assert "enc.0 (Linear)" in text and "head (Linear)" in text and "Total params: 48" in text
    assert "(None, 2)" in text
    with pytest.raises(ValueError, match="forward pass"):
        train.summary(net, (7,), print_fn=None)
    assert all("forward" not in vars(m) for m in net.modules())


def test_keras_style_sequential():
    X, y = blobs(60)
    fg.manual_seed(0)
    model = train.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))
    model.compile(optimizer="adam", loss="cross_entropy", metrics=["accuracy"], lr=0.05)
    h = model.fit(X, y, epochs=20, batch_size=16, verbose=0)
    assert h.history["accuracy"][-1] > 0.9
    assert model.evaluate(X, y)["accuracy"] > 0.9
    assert model.predict(X).shape == (60, 3)
    assert "Total params: 99" in model.summary((2,), print_fn=None)
    assert isinstance(model, nn.Sequential) and list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    with pytest.raises(RuntimeError, match="compile"):
        train.Sequential(nn.Linear(2, 2)).fit(X, y)


def test_progress_bar_on_a_terminal(capsys, monkeypatch):
    import ferrograd.train.trainer as trainer_mod

    monkeypatch.setattr(trainer_mod, "_isatty", lambda: True)
    X, y = blobs(40)
    model = mlp(2, 3)
    Trainer(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1)).fit(
        X, y, epochs=2, batch_size=8, validation_data=(X, y), verbose=1
    )
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out and "5/5" in out and "val_accuracy" in out
