"""Recurrent layers: ``RNN``, ``LSTM``, ``GRU``, the cells ``RNNCell``, ``LSTMCell``,
``GRUCell``, and the packed-sequence helpers of ``torch.nn.utils.rnn``.

Names, arguments, defaults, shapes, gate orders and parameter names follow PyTorch, so
state dicts move between the two:

- RNN:  h' = tanh(W_ih x + b_ih + W_hh h + b_hh) (or relu).
- LSTM: i, f, g, o = σ, σ, tanh, σ of (W_ih x + b_ih + W_hh h + b_hh) in that gate order;
  c' = f c + i g; h' = o tanh(c').
- GRU:  r, z = σ(W_i{r,z} x + b_i{r,z} + W_h{r,z} h + b_h{r,z});
  n = tanh(W_in x + b_in + r (W_hn h + b_hn)); h' = (1 - z) n + z h.

Parameters of layer k: ``weight_ih_l{k}`` (G H, I_k), ``weight_hh_l{k}`` (G H, H),
``bias_ih_l{k}``, ``bias_hh_l{k}`` (G H), with the suffix ``_reverse`` for the backward
direction (G = 1, 4, 3 gates; I_0 = input_size, I_k = D H after). All drawn from
U(-1/√H, 1/√H).

Each layer is one recorded op: both directions run one Rust call each over the whole
sequence (input projection as one GEMM, per step one recurrent GEMM plus one fused gate
kernel), and its backward is one Rust call per direction (backpropagation through time
with the weight gradients as GEMMs over all steps). No Python runs per time step.

Variable lengths: pass ``lengths`` (one per batch entry, 1..seq) to ``forward``, or a
:class:`PackedSequence` from :func:`pack_padded_sequence`. Padded steps give zero outputs,
take no part in the gradients, and h_n is the state at each sequence's true last step
(the reverse direction starts there). Truncated backpropagation through time: carry
``h_n.detach()`` (and ``c_n.detach()``) into the next chunk.
"""

from __future__ import annotations

import math
import sys
from collections import OrderedDict
from typing import Any, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from .. import _native
from ..autograd.grad_mode import _GradMode
from ..tensor import Tensor, _as_array, _contig, _make, _resolve_dtype, cat
from . import functional as F
from . import init
from .module import Module, Parameter

__all__ = [
    "RNNBase",
    "RNN",
    "LSTM",
    "GRU",
    "RNNCellBase",
    "RNNCell",
    "LSTMCell",
    "GRUCell",
    "PackedSequence",
    "pack_padded_sequence",
    "pad_packed_sequence",
    "pad_sequence",
    "pack_sequence",
]

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}
# Values the forward saves per (time step, batch row), in units of H (see rust/kernels/src/rnn.rs).
_SAVED = {"RNN_TANH": 2, "RNN_RELU": 2, "LSTM": 7, "GRU": 5}
_NODE = {"RNN_TANH": "RnnTanhBackward", "RNN_RELU": "RnnReluBackward", "LSTM": "LstmBackward", "GRU": "GruBackward"}


# ----------------------------------------------------------------------------- the op

# Large arrays handed out again once nobody else references them: a fresh multi-megabyte
# array every training step page-faults its memory in anew (measured: a GRU train step
# spent about a third of its time there). Keyed by (shape, dtype); the most recent keys
# are kept, a few arrays each.
_BUFFERS: "OrderedDict[tuple, list]" = OrderedDict()
_BUFFER_KEYS, _BUFFERS_PER_KEY = 8, 3


def _buffer(shape: tuple, dtype: np.dtype) -> np.ndarray:
    """An uninitialised C-contiguous array, reused when only this cache still holds it."""
    key = (shape, dtype.str)
    lst = _BUFFERS.get(key)
    if lst is None:
        lst = _BUFFERS[key] = []
        if len(_BUFFERS) > _BUFFER_KEYS:
            _BUFFERS.popitem(last=False)
    else:
        _BUFFERS.move_to_end(key)
    for a in lst:
        # References: the list, the loop variable and getrefcount's argument.
        if sys.getrefcount(a) <= 3:
            return a
    a = np.empty(shape, dtype=dtype)
    if len(lst) < _BUFFERS_PER_KEY:
        lst.append(a)
    return a



def _grad_array(g: Optional[np.ndarray], dtype: np.dtype) -> Optional[np.ndarray]:
    if g is None:
        return None
    return np.ascontiguousarray(g, dtype=dtype)


def _rnn_layer(
    mode: str,
    x: Tensor,
    params: Sequence[Tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor]]],
    h0: Optional[Tensor],
    c0: Optional[Tensor],
    lengths: Optional[np.ndarray],
    batch_first: bool,
) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """One layer (one or two directions) over a whole sequence, as one recorded op.

    x: (T, B, I) or with ``batch_first`` (B, T, I); params: per direction (weight_ih
    (G H, I), weight_hh (G H, H), bias_ih, bias_hh (G H) or None); h0 / c0: (D, B, H) or
    None; lengths: int64 (B,) or None. Returns output (x's first two dims, D H), h_n
    (D, B, H) and c_n (D, B, H) for LSTM (else None). Shapes are checked by the caller.
    """
    xd = _contig(x.data)
    dt = params[0][0].data.dtype
    ndir = len(params)
    hid = params[0][1].data.shape[1]
    lstm = mode == "LSTM"
    a0, a1 = xd.shape[0], xd.shape[1]
    bsz = a0 if batch_first else a1
    out = _buffer((a0, a1, ndir * hid), dt)
    hn = np.empty((ndir, bsz, hid), dtype=dt)
    cn = np.empty((ndir, bsz, hid), dtype=dt) if lstm else None
    h0d = None if h0 is None else _contig(h0.data)
    c0d = None if c0 is None else _contig(c0.data)
    inputs: List[Tensor] = [x]
    if h0 is not None:
        inputs.append(h0)
    if c0 is not None:
        inputs.append(c0)
    for p in params:
        inputs.extend(t for t in p if t is not None)
    need = _GradMode.enabled and any(t.requires_grad for t in inputs)
    saved = []
    ws_len = (a0 * a1 * hid * _SAVED[mode],)
    for d, (w_ih, w_hh, b_ih, b_hh) in enumerate(params):
        ws = _native.rnn_forward(
            mode,
            xd,
            w_ih.data,
            w_hh.data,
            None if b_ih is None else b_ih.data,
            None if b_hh is None else b_hh.data,
            None if h0d is None else h0d[d],
            None if c0d is None else c0d[d],
            lengths,
            out,
            d * hid,
            hn[d],
            None if cn is None else cn[d],
            batch_first,
            d == 1,
            need,
            _buffer(ws_len, dt) if need else None,
        )
        saved.append(ws)
    if not need:
        return Tensor._wrap(out), Tensor._wrap(hn), None if cn is None else Tensor._wrap(cn)

    stash: dict = {}
    has_bias = params[0][2] is not None
    need_x = x.requires_grad
    need_h0 = h0 is not None and h0.requires_grad
    need_c0 = c0 is not None and c0.requires_grad

    def backward(_g):
        g_out = _grad_array(stash.pop("out", None), dt)
        g_hn = _grad_array(stash.pop("hn", None), dt)
        g_cn = _grad_array(stash.pop("cn", None), dt)
        dx = np.empty(xd.shape, dtype=dt) if need_x else None
        dh0s, dc0s, dparams = [], [], []
        for d, (w_ih, w_hh, _, _) in enumerate(params):
            dh0, dc0, dwi, dwh, dbi, dbh = _native.rnn_backward(
                mode,
                xd,
                w_ih.data,
                w_hh.data,
                lengths,
                saved[d],
                g_out,
                d * hid,
                None if g_hn is None else g_hn[d],
                None if g_cn is None else g_cn[d],
                dx,
                d > 0,
                has_bias,
                batch_first,
                d == 1,
            )
            dh0s.append(dh0)
            dc0s.append(dc0)
            dparams.extend((dwi, dwh) if not has_bias else (dwi, dwh, dbi, dbh))
        grads: list = [dx]
        if h0 is not None:
            grads.append(np.stack(dh0s) if need_h0 else None)
        if c0 is not None:
            grads.append(np.stack(dc0s) if need_c0 else None)
        grads.extend(dparams)
        return tuple(grads)

    name = _NODE[mode]
    token = _make(np.zeros((), dtype=dt), tuple(inputs), backward, name)
    zero = np.zeros((), dtype=dt)

    def part(key: str, arr: np.ndarray) -> Tensor:
        def bw(g):
            stash[key] = g
            return (zero,)

        return _make(arr, (token,), bw, name)

    return part("out", out), part("hn", hn), None if cn is None else part("cn", cn)


# ----------------------------------------------------------------------------- helpers


def _int_arg(layer: str, name: str, v: Any, minimum: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
        raise ValueError(f"{layer}: {name} must be an int >= {minimum}, given {v!r}")
    return int(v)


def _as_tensor(layer: str, name: str, v: Any, dtype: np.dtype) -> Tensor:
    if isinstance(v, Tensor):
        if v.data.dtype != dtype:
            raise TypeError(
                f"{layer}: {name} has dtype {v.data.dtype} but the parameters have {dtype}; convert one "
                f"(x.to({dtype}) or module.to({v.data.dtype}))"
            )
        return v
    return Tensor._wrap(_as_array(v, dtype, copy=False))


def _lengths_array(layer: str, lengths: Any, batch: int, seq: int) -> np.ndarray:
    """``lengths`` as a checked int64 array of ``batch`` values in 1..seq."""
    raw = lengths.data if isinstance(lengths, Tensor) else lengths
    arr = np.asarray(raw)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iuf"):
        raise ValueError(f"{layer}: lengths must be a 1-D sequence of ints, given {lengths!r}")
    if arr.dtype.kind == "f" and not np.all(arr == np.round(arr)):
        raise ValueError(f"{layer}: lengths must be integers, given {arr.tolist()}")
    arr = arr.astype(np.int64)
    if arr.shape[0] != batch:
        raise ValueError(f"{layer}: expected {batch} lengths (one per batch entry), given {arr.shape[0]}")
    bad = (arr < 1) | (arr > seq)
    if bad.any():
        b = int(np.argmax(bad))
        raise ValueError(
            f"{layer}: lengths must be between 1 and the sequence length {seq}, given lengths[{b}] = {int(arr[b])}"
        )
    return np.ascontiguousarray(arr)


# ----------------------------------------------------------------------------- packing


class PackedSequence(NamedTuple):
    """A batch of variable-length sequences packed time step by time step, as PyTorch's.

    data: (sum of lengths, *) -- at each time step the entries of the sequences still
    running, longest first; batch_sizes: int64 (max length,) -- how many sequences run at
    each step; sorted_indices / unsorted_indices: int64 (batch,) permutations between the
    original batch order and the longest-first order (None when the input was sorted).
    """

    data: Tensor
    batch_sizes: Tensor
    sorted_indices: Optional[Tensor] = None
    unsorted_indices: Optional[Tensor] = None


def _gather_rows(x: Tensor, idx: np.ndarray) -> Tensor:
    """Rows ``idx`` (distinct) of the 2-D ``x``; the backward scatters them back."""
    xd = x.data
    out = xd[idx]

    def backward(g):
        gx = np.zeros(xd.shape, dtype=xd.dtype)
        gx[idx] = g
        return (gx,)

    return _make(out, (x,), backward, "GatherRowsBackward")


def _scatter_rows(x: Tensor, pos: np.ndarray, nrows: int, fill: float) -> Tensor:
    """A (nrows, *) tensor with row ``pos[i]`` = x[i] (distinct positions), ``fill``
    elsewhere; the backward gathers."""
    xd = x.data
    out = np.full((nrows,) + xd.shape[1:], fill, dtype=xd.dtype)
    out[pos] = xd
    return _make(out, (x,), lambda g: (np.ascontiguousarray(g[pos]),), "ScatterRowsBackward")


def _index_tensor(v: Optional[np.ndarray]) -> Optional[Tensor]:
    return None if v is None else Tensor._wrap(np.asarray(v, dtype=np.int64))


def pack_padded_sequence(input: Any, lengths: Any, batch_first: bool = False, enforce_sorted: bool = True) -> PackedSequence:
    """Packs a padded batch (T, B, *) -- or (B, T, *) with ``batch_first`` -- of sequences of
    the given ``lengths`` (B ints in 1..T). With ``enforce_sorted`` the lengths must be in
    decreasing order; otherwise the batch is sorted (stably, longest first) and the
    permutation kept in ``sorted_indices``. Differentiable with respect to ``input``."""
    op = "pack_padded_sequence"
    x = input if isinstance(input, Tensor) else Tensor._wrap(_as_array(input, copy=False))
    if x.ndim < 2:
        raise ValueError(f"{op}: input must be at least 2-D (T, B, *), given shape {x.shape}")
    seq, batch = (x.shape[1], x.shape[0]) if batch_first else (x.shape[0], x.shape[1])
    lens = _lengths_array(op, lengths, batch, seq)
    if enforce_sorted:
        if np.any(np.diff(lens) > 0):
            raise ValueError(
                f"{op}: lengths must be sorted in decreasing order with enforce_sorted=True, given {lens.tolist()} "
                "(pass enforce_sorted=False to sort them here)"
            )
        sorted_idx = None
        order = np.arange(batch)
    else:
        order = np.argsort(-lens, kind="stable")
        sorted_idx = order
    slens = lens[order]
    tmax = int(slens[0]) if batch else 0
    steps = np.arange(tmax)
    batch_sizes = (slens[None, :] > steps[:, None]).sum(axis=1).astype(np.int64)
    tt, bb = np.nonzero(slens[None, :] > steps[:, None])  # time-major, longest first
    ob = order[bb]
    rows = ob * seq + tt if batch_first else tt * batch + ob
    rest = x.shape[2:]
    flat = x.reshape((seq * batch,) + rest) if x.ndim > 2 else x.reshape(seq * batch, 1)
    data = _gather_rows(flat, rows)
    if x.ndim == 2:
        data = data.reshape(rows.size)
    unsorted = None if sorted_idx is None else np.argsort(sorted_idx)
    return PackedSequence(data, _index_tensor(batch_sizes), _index_tensor(sorted_idx), _index_tensor(unsorted))


def _packed_layout(seq: PackedSequence) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(batch_sizes, lengths in original order, order (sorted -> original), data row
    offsets per step) of a PackedSequence."""
    bs = np.asarray(seq.batch_sizes.data if isinstance(seq.batch_sizes, Tensor) else seq.batch_sizes, dtype=np.int64)
    if bs.ndim != 1 or bs.size == 0 or np.any(bs < 1) or np.any(np.diff(bs) > 0):
        raise ValueError(f"PackedSequence: batch_sizes must be a non-empty non-increasing 1-D array of ints >= 1, given {bs}")
    batch = int(bs[0])
    slens = (bs[None, :] > np.arange(batch)[:, None]).sum(axis=1)
    if seq.sorted_indices is None:
        order = np.arange(batch)
    else:
        si = seq.sorted_indices
        order = np.asarray(si.data if isinstance(si, Tensor) else si, dtype=np.int64)
        if order.shape != (batch,) or not np.array_equal(np.sort(order), np.arange(batch)):
            raise ValueError(f"PackedSequence: sorted_indices must be a permutation of {batch} entries, given {order}")
    lens = np.empty(batch, dtype=np.int64)
    lens[order] = slens
    offsets = np.concatenate(([0], np.cumsum(bs)[:-1]))
    return bs, lens, order, offsets


def _packed_rows(bs: np.ndarray, order: np.ndarray, batch_first: bool, total: int) -> np.ndarray:
    """For each row of packed data, its row in the padded (T, B) / (B, T) layout."""
    batch = int(bs[0])
    tt, sb = np.nonzero(np.arange(batch)[None, :] < bs[:, None])  # time-major, longest first
    ob = order[sb]
    return ob * total + tt if batch_first else tt * batch + ob


def pad_packed_sequence(
    sequence: PackedSequence, batch_first: bool = False, padding_value: float = 0.0, total_length: Optional[int] = None
) -> Tuple[Tensor, Tensor]:
    """Inverse of :func:`pack_padded_sequence`: (padded (T, B, *) or (B, T, *), lengths
    (int64 Tensor of B, in the original batch order)). T is the longest length, or
    ``total_length`` when given (it must not be shorter). Differentiable."""
    op = "pad_packed_sequence"
    if not isinstance(sequence, PackedSequence):
        raise TypeError(f"{op}: expected a PackedSequence, given {type(sequence).__name__}")
    bs, lens, order, _ = _packed_layout(sequence)
    data = sequence.data
    tmax = bs.size
    if total_length is not None:
        if total_length < tmax:
            raise ValueError(f"{op}: total_length ({total_length}) is shorter than the longest sequence ({tmax})")
        tmax = int(total_length)
    batch = int(bs[0])
    if data.shape[0] != int(bs.sum()):
        raise ValueError(f"{op}: data has {data.shape[0]} rows but batch_sizes sum to {int(bs.sum())}")
    rows = _packed_rows(bs, order, batch_first, tmax)
    flat = data if data.ndim > 1 else data.reshape(data.shape[0], 1)
    padded = _scatter_rows(flat, rows, tmax * batch, padding_value)
    rest = data.shape[1:]
    shape = ((batch, tmax) if batch_first else (tmax, batch)) + rest
    return padded.reshape(shape), Tensor._wrap(lens)


def pad_sequence(sequences: Sequence[Any], batch_first: bool = False, padding_value: float = 0.0) -> Tensor:
    """Stacks sequences of shapes (L_i, *) into (max L, B, *) -- (B, max L, *) with
    ``batch_first`` -- padding with ``padding_value``. Differentiable."""
    op = "pad_sequence"
    if len(sequences) == 0:
        raise ValueError(f"{op}: expected a non-empty list of sequences")
    ts = [s if isinstance(s, Tensor) else Tensor._wrap(_as_array(s, copy=False)) for s in sequences]
    rest = ts[0].shape[1:]
    if any(t.ndim < 1 or t.shape[1:] != rest for t in ts):
        raise ValueError(f"{op}: sequences must share their trailing dimensions, given shapes {[t.shape for t in ts]}")
    lens = np.array([t.shape[0] for t in ts], dtype=np.int64)
    batch, tmax = len(ts), int(lens.max())
    flat = cat([t.reshape((t.shape[0],) + rest) for t in ts], 0) if len(ts) > 1 else ts[0]
    b = np.repeat(np.arange(batch), lens)
    t = np.concatenate([np.arange(n) for n in lens])
    rows = b * tmax + t if batch_first else t * batch + b
    f2 = flat if flat.ndim > 1 else flat.reshape(flat.shape[0], 1)
    padded = _scatter_rows(f2, rows, tmax * batch, padding_value)
    shape = ((batch, tmax) if batch_first else (tmax, batch)) + rest
    return padded.reshape(shape)


def pack_sequence(sequences: Sequence[Any], enforce_sorted: bool = True) -> PackedSequence:
    """Packs a list of sequences (L_i, *) (see :func:`pack_padded_sequence`)."""
    lens = [int(s.shape[0]) if hasattr(s, "shape") else len(s) for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lens, enforce_sorted=enforce_sorted)


# ----------------------------------------------------------------------------- layers


class RNNBase(Module):
    """The multi-layer recurrent network shared by :class:`RNN`, :class:`LSTM` and
    :class:`GRU` (see the module docs for the equations and parameters)."""

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        name = {"RNN_TANH": "RNN", "RNN_RELU": "RNN"}.get(mode, mode)
        self.mode = mode
        self.input_size = _int_arg(name, "input_size", input_size, 0)
        self.hidden_size = _int_arg(name, "hidden_size", hidden_size, 1)
        self.num_layers = _int_arg(name, "num_layers", num_layers, 1)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout <= 1.0:
            raise ValueError(f"{name}: dropout should be a number in [0, 1] representing the probability of an element being zeroed, given {dropout!r}")
        if proj_size != 0:
            raise ValueError(f"{name}: proj_size is not supported (only 0), given {proj_size!r}")
        if device not in (None, "cpu"):
            raise ValueError(f"{name}: only the CPU device exists, given {device!r}")
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = float(dropout)
        self.bidirectional = bool(bidirectional)
        self.proj_size = 0
        dt = _resolve_dtype(dtype) or np.dtype(np.float32)
        g = _GATES[mode] * self.hidden_size
        ndir = 2 if self.bidirectional else 1
        self._flat_weights_names: List[str] = []
        for layer in range(self.num_layers):
            isz = self.input_size if layer == 0 else self.hidden_size * ndir
            for d in range(ndir):
                sfx = f"_l{layer}" + ("_reverse" if d == 1 else "")
                shapes = [("weight_ih", (g, isz)), ("weight_hh", (g, self.hidden_size))]
                if self.bias:
                    shapes += [("bias_ih", (g,)), ("bias_hh", (g,))]
                for pname, shape in shapes:
                    setattr(self, pname + sfx, Parameter(np.empty(shape, dtype=dt)))
                    self._flat_weights_names.append(pname + sfx)
        self.reset_parameters()

    def _name(self) -> str:
        return f"{type(self).__name__}(input_size={self.input_size}, hidden_size={self.hidden_size})"

    def reset_parameters(self) -> None:
        """Re-draws every parameter from U(-1/√H, 1/√H) (the library generator)."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    @property
    def all_weights(self) -> List[List[Parameter]]:
        """Per layer and direction: [weight_ih, weight_hh(, bias_ih, bias_hh)]."""
        per = 4 if self.bias else 2
        names = self._flat_weights_names
        return [[getattr(self, n) for n in names[i : i + per]] for i in range(0, len(names), per)]

    def _dir_params(self, layer: int, d: int) -> Tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor]]:
        sfx = f"_l{layer}" + ("_reverse" if d == 1 else "")
        b_ih = getattr(self, "bias_ih" + sfx) if self.bias else None
        b_hh = getattr(self, "bias_hh" + sfx) if self.bias else None
        return getattr(self, "weight_ih" + sfx), getattr(self, "weight_hh" + sfx), b_ih, b_hh

    def _check_state(self, what: str, h: Any, want: tuple, unbatched: bool, dt: np.dtype) -> Tensor:
        t = _as_tensor(self._name(), what, h, dt)
        shape = tuple(t.shape)
        if unbatched:
            if shape != (want[0], want[2]):
                raise ValueError(
                    f"{self._name()}: expected {what} of shape {(want[0], want[2])} for an unbatched input, given {shape}"
                )
            return t.reshape(want)
        if shape != want:
            raise ValueError(f"{self._name()}: expected {what} of shape {want}, given {shape}")
        return t

    def forward(self, input: Any, hx: Any = None, lengths: Any = None) -> Tuple[Any, Any]:
        """input: (L, N, input_size), or (N, L, input_size) with ``batch_first``, or
        unbatched (L, input_size), or a :class:`PackedSequence`; hx: h0 of shape
        (D * num_layers, N, H) (unbatched: (D * num_layers, H)), for LSTM a tuple (h0, c0),
        or None for zeros; lengths: N ints in 1..L (padded input only).

        Returns (output, h_n) -- for LSTM (output, (h_n, c_n)) -- with output (L, N, D * H)
        (batch_first: (N, L, D * H); unbatched (L, D * H); a PackedSequence for packed
        input) and h_n, c_n shaped like h0."""
        name = self._name()
        dt = self.weight_ih_l0.data.dtype
        packed = isinstance(input, PackedSequence)
        batch_first = self.batch_first
        if packed:
            if lengths is not None:
                raise ValueError(f"{name}: lengths cannot be given with a PackedSequence (it carries them)")
            pseq = input
            bs, lens, order, _ = _packed_layout(pseq)
            padded, _ = pad_packed_sequence(pseq, batch_first=False)
            x = _as_tensor(name, "input", padded, dt)
            batch_first = False
            lengths_arr: Optional[np.ndarray] = lens
            unbatched = False
        else:
            x = _as_tensor(name, "input", input, dt)
            if x.ndim not in (2, 3) or x.shape[-1] != self.input_size:
                layout = "(batch, seq, {0})" if batch_first else "(seq, batch, {0})"
                raise ValueError(
                    f"{name}: expected input of shape {layout.format(self.input_size)} or unbatched (seq, {self.input_size}), "
                    f"given shape {tuple(x.shape)}"
                )
            unbatched = x.ndim == 2
            if unbatched:
                x = x.reshape(x.shape[0], 1, x.shape[1])
                batch_first = False
            seq, batch = (x.shape[1], x.shape[0]) if batch_first else (x.shape[0], x.shape[1])
            if seq < 1:
                raise ValueError(f"{name}: the input has no time steps, shape {tuple(input.shape if hasattr(input, 'shape') else x.shape)}")
            lengths_arr = None if lengths is None else _lengths_array(name, lengths, batch, seq)
        batch = x.shape[0] if batch_first else x.shape[1]
        ndir = 2 if self.bidirectional else 1
        want = (self.num_layers * ndir, batch, self.hidden_size)
        lstm = self.mode == "LSTM"
        h0 = c0 = None
        if hx is not None:
            if lstm:
                if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                    raise ValueError(f"{name}: hx must be a tuple (h0, c0), given {type(hx).__name__}")
                h0 = self._check_state("h0", hx[0], want, unbatched, dt)
                c0 = self._check_state("c0", hx[1], want, unbatched, dt)
            else:
                if isinstance(hx, (tuple, list)):
                    raise ValueError(f"{name}: hx must be a Tensor h0, given a {type(hx).__name__}")
                h0 = self._check_state("h0", hx, want, unbatched, dt)
        layer_in = x
        hns, cns = [], []
        for layer in range(self.num_layers):
            params = [self._dir_params(layer, d) for d in range(ndir)]
            sl = slice(layer * ndir, (layer + 1) * ndir)
            lh0 = None if h0 is None else (h0 if self.num_layers == 1 else h0[sl])
            lc0 = None if c0 is None else (c0 if self.num_layers == 1 else c0[sl])
            out, hn, cn = _rnn_layer(self.mode, layer_in, params, lh0, lc0, lengths_arr, batch_first)
            hns.append(hn)
            cns.append(cn)
            if self.dropout > 0.0 and self.training and layer < self.num_layers - 1:
                out = F.dropout(out, self.dropout, True)
            layer_in = out
        h_n = hns[0] if self.num_layers == 1 else cat(hns, 0)
        c_n = None
        if lstm:
            c_n = cns[0] if self.num_layers == 1 else cat(cns, 0)
        output: Any = layer_in
        if packed:
            rows = _packed_rows(bs, order, False, output.shape[0])
            data = _gather_rows(output.reshape(output.shape[0] * output.shape[1], output.shape[2]), rows)
            output = PackedSequence(data, pseq.batch_sizes, pseq.sorted_indices, pseq.unsorted_indices)
        elif unbatched:
            output = output.reshape(output.shape[0], output.shape[2])
            h_n = h_n.reshape(h_n.shape[0], h_n.shape[2])
            if c_n is not None:
                c_n = c_n.reshape(c_n.shape[0], c_n.shape[2])
        return (output, (h_n, c_n)) if lstm else (output, h_n)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.mode == "RNN_RELU":
            s += ", nonlinearity='relu'"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


class RNN(RNNBase):
    """Elman RNN: h' = tanh(W_ih x + b_ih + W_hh h + b_hh) (``nonlinearity='relu'`` for
    relu), stacked ``num_layers`` deep, optionally bidirectional, with dropout between
    layers in training. Shapes as :meth:`RNNBase.forward`."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: unknown nonlinearity {nonlinearity!r}; expected 'tanh' or 'relu'")
        self.nonlinearity = nonlinearity
        mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        super().__init__(mode, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0, device, dtype)

    def forward(self, input: Any, hx: Any = None, lengths: Any = None) -> Tuple[Any, Tensor]:
        return super().forward(input, hx, lengths)


class LSTM(RNNBase):
    """Long short-term memory: gates i, f, g, o (PyTorch's order); c' = f c + i g;
    h' = o tanh(c'). ``forward(input, (h0, c0))`` returns (output, (h_n, c_n)); shapes as
    :meth:`RNNBase.forward`."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, proj_size, device, dtype)

    def forward(self, input: Any, hx: Any = None, lengths: Any = None) -> Tuple[Any, Tuple[Tensor, Tensor]]:
        return super().forward(input, hx, lengths)


class GRU(RNNBase):
    """Gated recurrent unit: gates r, z, n with b_hn inside the reset product,
    n = tanh(W_in x + b_in + r (W_hn h + b_hn)); h' = (1 - z) n + z h. Shapes as
    :meth:`RNNBase.forward`."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0, device, dtype)

    def forward(self, input: Any, hx: Any = None, lengths: Any = None) -> Tuple[Any, Tensor]:
        return super().forward(input, hx, lengths)


# ----------------------------------------------------------------------------- cells


class RNNCellBase(Module):
    """One step of a recurrent cell, for custom loops; parameters ``weight_ih`` (G H, I),
    ``weight_hh`` (G H, H), ``bias_ih``, ``bias_hh`` (G H), drawn from U(-1/√H, 1/√H).
    Runs the same fused Rust kernels as the layers (one step, differentiable)."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, bias: bool, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        name = type(self).__name__
        self.mode = mode
        self.input_size = _int_arg(name, "input_size", input_size, 0)
        self.hidden_size = _int_arg(name, "hidden_size", hidden_size, 1)
        if device not in (None, "cpu"):
            raise ValueError(f"{name}: only the CPU device exists, given {device!r}")
        self.bias = bool(bias)
        dt = _resolve_dtype(dtype) or np.dtype(np.float32)
        g = _GATES[mode] * self.hidden_size
        self.weight_ih = Parameter(np.empty((g, self.input_size), dtype=dt))
        self.weight_hh = Parameter(np.empty((g, self.hidden_size), dtype=dt))
        if self.bias:
            self.bias_ih = Parameter(np.empty((g,), dtype=dt))
            self.bias_hh = Parameter(np.empty((g,), dtype=dt))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def _name(self) -> str:
        return f"{type(self).__name__}(input_size={self.input_size}, hidden_size={self.hidden_size})"

    def reset_parameters(self) -> None:
        """Re-draws every parameter from U(-1/√H, 1/√H) (the library generator)."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def _step(self, input: Any, hx: Any) -> Tuple[Tensor, Optional[Tensor], bool]:
        name = self._name()
        dt = self.weight_ih.data.dtype
        x = _as_tensor(name, "input", input, dt)
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(
                f"{name}: expected input of shape (batch, {self.input_size}) or unbatched ({self.input_size},), "
                f"given shape {tuple(x.shape)}"
            )
        unbatched = x.ndim == 1
        batch = 1 if unbatched else x.shape[0]
        want = (self.hidden_size,) if unbatched else (batch, self.hidden_size)
        lstm = self.mode == "LSTM"

        def state(what: str, v: Any) -> Tensor:
            t = _as_tensor(name, what, v, dt)
            if tuple(t.shape) != want:
                raise ValueError(f"{name}: expected {what} of shape {want}, given {tuple(t.shape)}")
            return t.reshape(1, batch, self.hidden_size)

        h0 = c0 = None
        if hx is not None:
            if lstm:
                if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                    raise ValueError(f"{name}: hx must be a tuple (h, c), given {type(hx).__name__}")
                h0, c0 = state("h", hx[0]), state("c", hx[1])
            else:
                h0 = state("hx", hx)
        x3 = x.reshape(1, batch, self.input_size)
        params = [(self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)]
        _, hn, cn = _rnn_layer(self.mode, x3, params, h0, c0, None, False)
        return hn, cn, unbatched

    def _shape_out(self, t: Tensor, unbatched: bool) -> Tensor:
        return t.reshape(self.hidden_size) if unbatched else t.reshape(t.shape[1], self.hidden_size)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if self.mode == "RNN_RELU":
            s += ", nonlinearity='relu'"
        return s


class RNNCell(RNNCellBase):
    """h' = tanh(W_ih x + b_ih + W_hh h + b_hh) (or relu). forward(input (N, I) or (I,),
    hx (N, H) or (H,) or None) -> h' (N, H) or (H,)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh", device: Any = None, dtype: Any = None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: unknown nonlinearity {nonlinearity!r}; expected 'tanh' or 'relu'")
        self.nonlinearity = nonlinearity
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size, bias, device, dtype)

    def forward(self, input: Any, hx: Any = None) -> Tensor:
        hn, _, unb = self._step(input, hx)
        return self._shape_out(hn, unb)


class LSTMCell(RNNCellBase):
    """One LSTM step (gates i, f, g, o). forward(input (N, I) or (I,), hx=(h, c) each
    (N, H) or (H,), or None) -> (h', c')."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device: Any = None, dtype: Any = None) -> None:
        super().__init__("LSTM", input_size, hidden_size, bias, device, dtype)

    def forward(self, input: Any, hx: Any = None) -> Tuple[Tensor, Tensor]:
        hn, cn, unb = self._step(input, hx)
        return self._shape_out(hn, unb), self._shape_out(cn, unb)


class GRUCell(RNNCellBase):
    """One GRU step (gates r, z, n; b_hn inside the reset product). forward(input (N, I)
    or (I,), hx (N, H) or (H,) or None) -> h'."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device: Any = None, dtype: Any = None) -> None:
        super().__init__("GRU", input_size, hidden_size, bias, device, dtype)

    def forward(self, input: Any, hx: Any = None) -> Tensor:
        hn, _, unb = self._step(input, hx)
        return self._shape_out(hn, unb)
