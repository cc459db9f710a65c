"""``AutoRec``: an autoencoder on the ratings matrix (Sedhain, Menon, Sanner and Xie,
"AutoRec: Autoencoders Meet Collaborative Filtering", WWW 2015).

Item-based (I-AutoRec, the paper's better variant): each item is one sample, its vector of
ratings from all users (n_users,), zeros where missing; user-based (U-AutoRec): each user
is a sample over the items. The network is ``Linear(n, n_hidden) -> sigmoid ->
Linear(n_hidden, n)``, trained with ferrograd's autograd and optimizers on the **observed
entries only**: :func:`masked_mse_loss` ignores missing entries completely (neither their
value in the target nor the network's output there affects the loss or its gradient),
plus an L2 penalty ``l2 / 2 * (||W_enc||^2 + ||W_dec||^2)`` on the weights (not biases).
The prediction for user u and item i is the reconstruction's entry (u, i) (clipped to the
rating scale); a user or item with no training rating gets the global mean.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from .. import nn
from .. import optim
from ..autograd import no_grad
from ..tensor import Tensor, where
from .base import Recommender
from .data import RatingMatrix

__all__ = ["AutoRec", "masked_mse_loss"]


def masked_mse_loss(input: Tensor, target: Any, mask: Any, reduction: str = "mean") -> Tensor:
    """Squared error on the observed entries only.

    ``input`` (*) a Tensor, ``target`` (*) array / Tensor, ``mask`` (*) bool (True =
    observed). Returns ``sum_{mask} (input - target)^2`` divided by the number of observed
    entries (``reduction="mean"``; 0 when none is observed) or not (``"sum"``). Entries
    where ``mask`` is False are selected away before any arithmetic with the target, so
    their target values (even NaN) change neither the loss nor the gradient, and the
    gradient with respect to ``input`` is exactly zero there.
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"masked_mse_loss: reduction must be 'mean' or 'sum', given {reduction!r}")
    x = input if isinstance(input, Tensor) else Tensor(input)
    t = target.data if isinstance(target, Tensor) else np.asarray(target)
    m = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
    if t.shape != x.shape or m.shape != x.shape:
        raise ValueError(
            f"masked_mse_loss: input, target and mask need the same shape, given {x.shape}, {t.shape} and {m.shape}"
        )
    m = m.astype(bool, copy=False)
    safe_t = np.where(m, t, 0).astype(x.data.dtype, copy=False)
    diff = where(m, x - safe_t, 0.0)
    total = (diff * diff).sum()
    if reduction == "sum":
        return total
    return total / float(max(int(m.sum()), 1))


class _AutoRecNet(nn.Module):
    def __init__(self, n: int, n_hidden: int, activation: str, dtype: Any) -> None:
        super().__init__()
        self.encoder = nn.Linear(n, n_hidden, dtype=dtype)
        self.decoder = nn.Linear(n_hidden, n, dtype=dtype)
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        h = self.encoder(x)
        h = h.sigmoid() if self.activation == "sigmoid" else h.relu() if self.activation == "relu" else h.tanh()
        return self.decoder(h)


class AutoRec(Recommender):
    """Item- or user-based AutoRec.

    Args:
        n_hidden: hidden units (default 500, as in the paper).
        based: ``"item"`` (default; samples are items, inputs (n_users,)) or ``"user"``.
        l2: weight of the L2 penalty ``l2 / 2 * sum ||W||^2`` on both weight matrices, in
            the units of the paper's objective ``sum_observed (r - r_hat)^2 + l2 / 2 ...``
            (default 30 with the sum over all observed ratings; each minibatch uses
            ``mean_batch_observed (r - r_hat)^2 + l2 / 2 * sum ||W||^2 / n_observed``, the
            same objective divided by n_observed).
        activation: hidden activation ``"sigmoid"`` (default), ``"relu"`` or ``"tanh"``;
            the output is linear.
        epochs, batch_size, lr: Adam training (defaults 30, 64, 1e-3).
        random_state: seed for the initial weights and the batch order (None: the
            library's generator at fit time).
        verbose: passed to :meth:`ferrograd.train.Trainer.fit` (0 silent, 1 progress bar,
            2 a line per epoch).
        dtype: float32 (default) or float64.

    Attributes after fit: ``net_`` (the :class:`~ferrograd.nn.Module`), ``history_`` (the
    :class:`~ferrograd.train.History`; ``val_loss`` is the held-out masked MSE when
    ``fit(train, validation=...)``).
    """

    def __init__(
        self,
        n_hidden: int = 500,
        *,
        based: str = "item",
        l2: float = 30.0,
        activation: str = "sigmoid",
        epochs: int = 30,
        batch_size: int = 64,
        lr: float = 1e-3,
        random_state: Optional[int] = None,
        verbose: int = 0,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        for name, v, lo in (("n_hidden", n_hidden, 1), ("epochs", epochs, 0), ("batch_size", batch_size, 1)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise ValueError(f"AutoRec: {name} must be an int >= {lo}, given {v!r}")
        if based not in ("item", "user"):
            raise ValueError(f"AutoRec: based must be 'item' or 'user', given {based!r}")
        if activation not in ("sigmoid", "relu", "tanh"):
            raise ValueError(f"AutoRec: activation must be 'sigmoid', 'relu' or 'tanh', given {activation!r}")
        for name, v in (("l2", l2), ("lr", lr)):
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not (math.isfinite(v) and v >= 0):
                raise ValueError(f"AutoRec: {name} must be a finite number >= 0, given {v!r}")
        self.n_hidden, self.based, self.l2, self.activation = int(n_hidden), based, float(l2), activation
        self.epochs, self.batch_size, self.lr = int(epochs), int(batch_size), float(lr)
        self.random_state, self.verbose = random_state, int(verbose)
        self.dtype = np.dtype(dtype)

    def _matrix(self, ratings: RatingMatrix) -> np.ndarray:
        """Samples x features: (n_items, n_users) for item-based, zeros where missing."""
        m = ratings.T if self.based == "item" else ratings
        return m.to_dense(0.0, dtype=self.dtype)[0]

    def fit(self, train: RatingMatrix, validation: Optional[RatingMatrix] = None, callbacks: Optional[list] = None) -> "AutoRec":
        """Fits on ``train``; ``validation`` (held-out ratings of the same shape) adds
        ``val_loss`` (the masked MSE on its ratings, predicted from the training ratings)
        to the history; ``callbacks`` are :mod:`ferrograd.train.callbacks` (e.g.
        ``EarlyStopping("val_loss", restore_best_weights=True)``). Returns self."""
        if validation is not None and (not isinstance(validation, RatingMatrix) or validation.shape != getattr(train, "shape", None)):
            got = validation.shape if isinstance(validation, RatingMatrix) else type(validation).__name__
            raise ValueError(f"AutoRec.fit: validation must be a RatingMatrix of the training shape {getattr(train, 'shape', None)}, given {got}")
        self._validation = validation
        self._callbacks = list(callbacks or [])
        return super().fit(train)  # type: ignore[return-value]

    def _fit(self, train: RatingMatrix) -> None:
        from contextlib import nullcontext

        from .._random import using_seed
        from ..train import Trainer

        with using_seed(self.random_state) if self.random_state is not None else nullcontext():
            X = self._matrix(train)
            n_obs = max(train.nnz, 1)
            net = _AutoRecNet(X.shape[1], self.n_hidden, self.activation, self.dtype)
            self.net_ = net
            l2 = self.l2

            def loss_fn(out: Tensor, target: Tensor) -> Tensor:
                t = target.data
                loss = masked_mse_loss(out, t, t != 0)
                if l2 > 0 and net.training:
                    w1, w2 = net.encoder.weight, net.decoder.weight
                    loss = loss + ((w1 * w1).sum() + (w2 * w2).sum()) * (0.5 * l2 / n_obs)
                return loss

            opt = optim.Adam(net.parameters(), lr=self.lr)
            val = None
            if self._validation is not None:
                val = (X, self._matrix(self._validation))
            trainer = Trainer(net, loss_fn, opt, metrics=())
            self.history_ = trainer.fit(
                X, X, epochs=self.epochs, batch_size=self.batch_size, validation_data=val, verbose=self.verbose,
                callbacks=self._callbacks,
            )
            with no_grad():
                net.eval()
                R = net(Tensor(X)).data.astype(np.float64)
            R = R.T if self.based == "item" else R
            R[train.user_counts() == 0, :] = train.mean()
            R[:, train.item_counts() == 0] = train.mean()
            self._recon = R

    def _predict_matrix(self) -> np.ndarray:
        return self._recon
