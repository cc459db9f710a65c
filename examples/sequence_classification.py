"""Variable-length sequence classification: Embedding(padding_idx=0) + LSTM with ``lengths``.

A synthetic, seeded "sentiment" task whose answer depends on the whole sequence. Sentences
are 6 to 40 tokens long over a vocabulary of 32 tokens:

    0            padding (after the end of each sentence)
    1 .. 4       positive words   (+1)
    5 .. 8       negative words   (-1)
    9            "not": flips the sign of the word right after it
    10 .. 31     neutral filler words

The label is 1 when the sum of the (possibly negated) sentiment words is positive and 0 when
it is negative (sentences with a sum of 0 are not generated). A model must count across the
whole sentence and track negations; a bag-of-words of the last few tokens cannot do it.

The model embeds tokens (``nn.Embedding(32, 16, padding_idx=0)``), runs an LSTM over the
padded batch with each sentence's true length (``lstm(x, lengths=...)``, or
``nn.utils.rnn.pack_padded_sequence`` with ``--packed``), and classifies h_n, the state at
each sentence's true last step, with a Linear layer. Padded steps change neither the output
nor the gradients. Prints the test accuracy (chance: about 50 %).

    python examples/sequence_classification.py
"""

from __future__ import annotations

import argparse
import time
from typing import Dict, Tuple

import numpy as np

import ferrograd as fg
import ferrograd.nn as nn
import ferrograd.optim as optim
from ferrograd.data import DataLoader, TensorDataset
from ferrograd.nn.utils import clip_grad_norm_

PAD, POS, NEG, NOT, FILLER, VOCAB = 0, (1, 5), (5, 9), 9, (10, 32), 32


def make_sentences(
    n: int, rng: np.random.Generator, min_len: int = 6, max_len: int = 40
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n sentences: tokens (n, max_len) int64 padded with 0 after each sentence's end,
    lengths (n,) int64 in [min_len, max_len], labels (n,) int64 in {0, 1}. Vectorised: draws
    extra candidates and keeps the first n whose sentiment sum is nonzero."""
    m = 2 * n + 64
    lengths = rng.integers(min_len, max_len + 1, m)
    kind = rng.choice(4, size=(m, max_len), p=[0.15, 0.15, 0.1, 0.6])  # pos, neg, not, filler
    tokens = np.where(
        kind == 0, rng.integers(*POS, (m, max_len)),
        np.where(kind == 1, rng.integers(*NEG, (m, max_len)),
                 np.where(kind == 2, NOT, rng.integers(*FILLER, (m, max_len)))),
    )
    inside = np.arange(max_len)[None, :] < lengths[:, None]
    tokens = np.where(inside, tokens, PAD)
    sign = np.where((tokens >= POS[0]) & (tokens < POS[1]), 1, 0) - np.where((tokens >= NEG[0]) & (tokens < NEG[1]), 1, 0)
    negated = np.zeros_like(tokens, dtype=bool)
    negated[:, 1:] = tokens[:, :-1] == NOT
    score = np.where(negated, -sign, sign).sum(axis=1)
    keep = np.flatnonzero(score != 0)[:n]
    if keep.size < n:  # pragma: no cover - 2n + 64 candidates are plenty
        raise RuntimeError("make_sentences: too few candidates with a nonzero score")
    return tokens[keep].astype(np.int64), lengths[keep].astype(np.int64), (score[keep] > 0).astype(np.int64)


class SentimentLSTM(nn.Module):
    """tokens (B, T) int64 + lengths (B,) -> logits (B, 2), from the LSTM state at each
    sentence's true last step."""

    def __init__(self, vocab: int = VOCAB, embed: int = 16, hidden: int = 64, packed: bool = False) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, embed, padding_idx=PAD)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 2)
        self.packed = packed

    def forward(self, tokens, lengths) -> fg.Tensor:
        x = self.embed(tokens)  # (B, T, embed)
        if self.packed:
            seq = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            _, (h_n, _) = self.lstm(seq)
        else:
            _, (h_n, _) = self.lstm(x, lengths=lengths)
        return self.head(h_n[-1])  # h_n: (num_layers, B, hidden), the true-last-step states


def accuracy(model: nn.Module, tokens: np.ndarray, lengths: np.ndarray, labels: np.ndarray, batch: int = 500) -> float:
    correct = 0
    with fg.no_grad():
        for s in range(0, len(labels), batch):
            t, ln = tokens[s : s + batch], lengths[s : s + batch]
            logits = model(t[:, : ln.max()], ln).data
            correct += int((logits.argmax(1) == labels[s : s + batch]).sum())
    return correct / len(labels)


def main(
    n_train: int = 4000,
    n_test: int = 1000,
    epochs: int = 12,
    batch_size: int = 64,
    hidden: int = 64,
    lr: float = 5e-3,
    max_len: int = 40,
    packed: bool = False,
    seed: int = 0,
    verbose: bool = True,
) -> Dict[str, float]:
    """Trains on ``n_train`` sentences and returns {'test_accuracy', 'train_accuracy',
    'majority', 'seconds'} ('majority' is the test accuracy of always answering the more
    frequent class)."""
    fg.manual_seed(seed)
    rng = np.random.default_rng(seed)
    tr = make_sentences(n_train, rng, max_len=max_len)
    te = make_sentences(n_test, np.random.default_rng(10_000 + seed), max_len=max_len)
    majority = float(max(te[2].mean(), 1 - te[2].mean()))
    model = SentimentLSTM(hidden=hidden, packed=packed)
    opt = optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    loader = DataLoader(TensorDataset(*tr), batch_size=batch_size, shuffle=True)
    if verbose:
        print(f"sentiment task: {n_train} train / {n_test} test sentences of 6..{max_len} tokens, vocabulary {VOCAB}; "
              f"Embedding(padding_idx=0) + LSTM({hidden}) with {'packed sequences' if packed else 'lengths'}")
    t0 = time.perf_counter()
    for epoch in range(1, epochs + 1):
        total, count = 0.0, 0
        for tokens, lengths, labels in loader:
            ln = lengths.data
            logits = model(tokens.data[:, : ln.max()], ln)  # trim the batch to its longest sentence
            loss = loss_fn(logits, labels)
            opt.zero_grad()
            loss.backward()
            clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            total += loss.item() * len(ln)
            count += len(ln)
        if verbose:
            print(f"  epoch {epoch:2d}  train loss {total / count:.4f}")
    seconds = time.perf_counter() - t0
    res = {
        "test_accuracy": accuracy(model, *te),
        "train_accuracy": accuracy(model, *tr),
        "majority": majority,
        "seconds": seconds,
    }
    if verbose:
        print(f"test accuracy {100 * res['test_accuracy']:.1f} %  (train {100 * res['train_accuracy']:.1f} %, "
              f"majority class {100 * majority:.1f} %, chance 50 %)   training {seconds:.1f} s")
    return res


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--n-train", type=int, default=4000)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--packed", action="store_true", help="use nn.utils.rnn.pack_padded_sequence instead of lengths=")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    main(n_train=a.n_train, epochs=a.epochs, hidden=a.hidden, packed=a.packed, seed=a.seed)
