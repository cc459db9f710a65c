"""``ferrograd.nn.utils.rnn``: the packed-sequence helpers of ``torch.nn.utils.rnn``.

:class:`PackedSequence` (``data`` of shape (sum of lengths, *), ``batch_sizes``,
``sorted_indices``, ``unsorted_indices``), :func:`pack_padded_sequence`,
:func:`pad_packed_sequence`, :func:`pad_sequence` and :func:`pack_sequence`; they are
defined with the recurrent layers in :mod:`ferrograd.nn.rnn` and re-exported here so that
PyTorch's import paths work unchanged.
"""

from __future__ import annotations

from ..rnn import PackedSequence, pack_padded_sequence, pack_sequence, pad_packed_sequence, pad_sequence

__all__ = ["PackedSequence", "pack_padded_sequence", "pad_packed_sequence", "pad_sequence", "pack_sequence"]
