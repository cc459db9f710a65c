"""XOR: a 2-4-1 network with sigmoids learns it; a single layer cannot.

XOR is not linearly separable: no line splits {(0,1), (1,0)} from {(0,0), (1,1)}, so a
single Linear layer followed by a sigmoid (logistic regression) can never get all four
right: trained on the four points it settles near 0.5 everywhere. One hidden layer of 4 sigmoid units bends the decision boundary and gets all four.

    python examples/xor.py
"""

from __future__ import annotations

import numpy as np

import ferrograd as fg
import ferrograd.nn as nn
import ferrograd.optim as optim
from ferrograd import datasets, train


def fit_and_report(name: str, model, epochs: int = 2000, lr: float = 2.0) -> float:
    X, y = datasets.make_xor()  # X (4, 2) in {0, 1}, y (4,) = [0, 1, 1, 0]
    target = y.reshape(-1, 1).astype(np.float32)  # the network has one output
    trainer = train.Trainer(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=lr), metrics=["accuracy"])
    history = trainer.fit(X, target, epochs=epochs, batch_size=4, verbose=0)
    pred = trainer.predict(X)[:, 0]
    print(f"\n{name}: final loss {history.history['loss'][-1]:.4f}, accuracy {history.history['accuracy'][-1]:.2f}")
    for xi, yi, pi in zip(X, y, pred):
        ok = "ok" if (pi > 0.5) == bool(yi) else "WRONG"
        print(f"  {int(xi[0])} xor {int(xi[1])} = {yi}   predicted {pi:.3f}  {ok}")
    return history.history["accuracy"][-1]


def main() -> None:
    fg.manual_seed(0)
    two_layer = nn.Sequential(nn.Linear(2, 4), nn.Sigmoid(), nn.Linear(4, 1), nn.Sigmoid())
    train.summary(two_layer, (2,))
    acc2 = fit_and_report("2-4-1 network (hidden sigmoid layer)", two_layer)
    fg.manual_seed(0)
    single = nn.Sequential(nn.Linear(2, 1), nn.Sigmoid())
    acc1 = fit_and_report("single layer (logistic regression)", single)
    print(f"\nhidden layer: {acc2:.0%} correct; single layer: {acc1:.0%} correct (XOR is not linearly separable)")


if __name__ == "__main__":
    main()
