"""``receptive_field(model, input_shape)``: output size, jump and receptive field per layer.

For a chain of layers the standard recurrences (per spatial dimension) are, with the
effective kernel ``k' = dilation * (kernel - 1) + 1``::

    n_out     = floor((n_in + 2 * padding - k') / stride) + 1      (ceil for ceil_mode pools)
    jump_out  = jump_in * stride                                   (input pixels between neighbours)
    rf_out    = rf_in + (k' - 1) * jump_in                         (input pixels one unit sees)
    start_out = start_in + ((k' - 1) / 2 - padding) * jump_in      (centre of unit 0's field)

with ``n = input size, jump = 1, rf = 1, start = 0`` at the input (pixel i is centred at
coordinate i). Layers are read through their PyTorch attribute names (``kernel_size``,
``stride``, ``padding``, ``dilation``, ``ceil_mode``, ``output_size``), so the function works
on ferrograd and on PyTorch ``Sequential`` models alike; it never runs the model.
"""

from __future__ import annotations

import math
from typing import Any, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

__all__ = ["receptive_field", "ReceptiveField", "LayerRF"]

# shape-preserving layers (elementwise or per-channel): they change nothing spatially
_POINTWISE = {
    "ReLU", "ReLU6", "LeakyReLU", "PReLU", "ELU", "SELU", "CELU", "GELU", "SiLU", "Mish",
    "Sigmoid", "Tanh", "Softsign", "Softplus", "Hardtanh", "Hardswish", "Hardsigmoid",
    "Softmax", "LogSoftmax", "Softmax2d", "Identity",
    "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout",
    "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "InstanceNorm1d", "InstanceNorm2d",
    "GroupNorm", "LocalResponseNorm",
}


class LayerRF(NamedTuple):
    """One row of :func:`receptive_field`. Spatial fields are tuples with one entry per
    spatial dimension ((L,) for 1-d, (H, W) for 2-d); after a Flatten/Linear they hold the
    whole input (``jump`` and ``start`` are None, ``size`` is the feature count)."""

    name: str
    type: str
    channels: Optional[int]
    size: Tuple[int, ...]
    jump: Optional[Tuple[float, ...]]
    rf: Tuple[int, ...]
    start: Optional[Tuple[float, ...]]


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    vals = [int(x) if float(x).is_integer() else round(float(x), 3) for x in v]
    if len(set(vals)) == 1 and len(vals) > 1:
        return str(vals[0])
    return "x".join(str(x) for x in vals)


class ReceptiveField(list):
    """The rows (:class:`LayerRF`) of :func:`receptive_field`, first the input; ``str()``
    (or ``print``) gives a table. ``rf[-1].rf`` is the last layer's receptive field."""

    def table(self) -> str:
        header = ("Layer (type)", "Channels", "Output size", "Jump", "RF", "Start")
        rows = [
            (f"{r.name} ({r.type})" if r.name else r.type, "-" if r.channels is None else str(r.channels),
             _fmt(r.size), _fmt(r.jump), _fmt(r.rf), _fmt(r.start))
            for r in self
        ]
        widths = [max(len(h), *(len(row[i]) for row in rows)) + 2 for i, h in enumerate(header)]
        line = lambda cells: "".join(  # noqa: E731
            (c.ljust(w) if i == 0 else c.rjust(w)) for i, (c, w) in enumerate(zip(cells, widths))
        )
        sep = "-" * sum(widths)
        return "\n".join([line(header), sep] + [line(r) for r in rows] + [sep])

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return self.table()


def _nums(v: Sequence[float]) -> Tuple[Any, ...]:
    return tuple(int(x) if float(x).is_integer() else float(x) for x in v)


def _tuple(v: Any, nd: int, what: str, layer: str) -> Tuple[Any, ...]:
    if isinstance(v, (tuple, list)):
        if len(v) == 1 and nd > 1:
            return tuple(v) * nd
        if len(v) != nd:
            raise ValueError(f"receptive_field: {layer} has {what}={tuple(v)} but the input has {nd} spatial dimension(s)")
        return tuple(v)
    return (v,) * nd


def _layers(model: Any, prefix: str = "") -> Iterator[Tuple[str, Any]]:
    kids = list(model.named_children()) if hasattr(model, "named_children") else []
    if not kids:
        yield prefix, model
        return
    if type(model).__name__ != "Sequential":
        raise ValueError(
            f"receptive_field: can only follow Sequential models (or single layers); "
            f"{prefix or 'the model'} is a {type(model).__name__} whose call order is unknown"
        )
    for name, child in kids:
        yield from _layers(child, f"{prefix}.{name}" if prefix else name)


def receptive_field(model: Any, input_shape: Sequence[int]) -> ReceptiveField:
    """Traces output size, jump and receptive field through a ``Sequential`` model.

    ``input_shape`` is one input's shape without the batch: (C, L) for Conv1d models,
    (C, H, W) for Conv2d models. Understood layers: Conv1d/Conv2d (int, tuple, 'same' or
    'valid' padding; dilation), MaxPool/AvgPool/MinPool 1d/2d (ceil_mode), AdaptiveAvgPool /
    AdaptiveMaxPool (largest window), activations, BatchNorm, Dropout, Identity, and
    Flatten / Linear (after which every unit sees the whole input); nested Sequentials are
    walked in order. Returns a :class:`ReceptiveField` (a list of :class:`LayerRF`, the
    input first) that prints as a table. Raises ValueError for an unknown layer, a layer
    whose window does not fit, or a model that is not a chain.
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) < 2:
        raise ValueError(f"receptive_field: input_shape must be (C, L) or (C, H, W) without the batch, given {tuple(input_shape)}")
    nd = len(shape) - 1
    channels: Optional[int] = shape[0]
    size: List[int] = list(shape[1:])
    jump: List[float] = [1.0] * nd
    rf: List[float] = [1.0] * nd
    start: List[float] = [0.0] * nd
    full = tuple(shape[1:])
    flat = False
    out = ReceptiveField([LayerRF("", "input", channels, tuple(size), _nums(jump), _nums(rf), _nums(start))])

    for name, layer in _layers(model):
        tname = type(layer).__name__

        def row() -> LayerRF:
            return LayerRF(name, tname, channels, tuple(size), _nums(jump), _nums(rf), _nums(start))
        where = f"layer {name or tname} ({tname})"
        if flat:
            if tname == "Linear":
                size = [int(layer.out_features)]
            elif tname not in _POINTWISE and tname != "Flatten":
                raise ValueError(f"receptive_field: {where} after a Flatten is not supported")
            out.append(LayerRF(name, tname, None, tuple(size), None, full, None))
            continue
        if tname == "Flatten" or tname == "Linear":
            if tname == "Linear":
                size = [int(layer.out_features)]
            else:
                size = [int(channels or 1) * int(math.prod(size))]
            flat = True
            channels = None
            out.append(LayerRF(name, tname, None, tuple(size), None, full, None))
            continue
        if tname.startswith("Adaptive") and hasattr(layer, "output_size"):
            osz = _tuple(layer.output_size, nd, "output_size", where)
            for d in range(nd):
                o = size[d] if osz[d] is None else int(osz[d])
                n = size[d]
                if o < 1:
                    raise ValueError(f"receptive_field: {where} output_size {osz} must be positive")
                k = max(math.ceil((i + 1) * n / o) - (i * n) // o for i in range(o))
                s = n / o
                rf[d] = rf[d] + (k - 1) * jump[d]
                start[d] = start[d] + (k - 1) / 2 * jump[d]
                jump[d] = jump[d] * s
                size[d] = o
            out.append(row())
            continue
        if hasattr(layer, "kernel_size"):
            if tname.startswith("ConvTranspose"):
                raise ValueError(f"receptive_field: {where}: transposed convolutions are not supported")
            k = _tuple(layer.kernel_size, nd, "kernel_size", where)
            stride = getattr(layer, "stride", None)
            s = _tuple(k if stride is None or stride == () else stride, nd, "stride", where)
            dil = _tuple(getattr(layer, "dilation", 1) or 1, nd, "dilation", where)
            pad_attr = getattr(layer, "padding", 0)
            ceil_mode = bool(getattr(layer, "ceil_mode", False))
            new_size = []
            for d in range(nd):
                kd, sd, dd = int(k[d]), int(s[d]), int(dil[d])
                ke = dd * (kd - 1) + 1
                if isinstance(pad_attr, str):
                    if pad_attr == "valid":
                        pl = pr = 0
                    elif pad_attr == "same":
                        pl = (ke - 1) // 2
                        pr = ke - 1 - pl
                    else:
                        raise ValueError(f"receptive_field: {where} has unknown padding {pad_attr!r}")
                else:
                    pl = pr = int(_tuple(pad_attr, nd, "padding", where)[d])
                span = size[d] + pl + pr - ke
                if span < 0:
                    raise ValueError(
                        f"receptive_field: {where}: kernel {ke} (dilated) is larger than the padded input "
                        f"{size[d] + pl + pr} in dimension {d}"
                    )
                if ceil_mode:
                    o = -(-span // sd) + 1
                    if (o - 1) * sd >= size[d] + pl:
                        o -= 1
                else:
                    o = span // sd + 1
                new_size.append(o)
                rf[d] = rf[d] + (ke - 1) * jump[d]
                start[d] = start[d] + ((ke - 1) / 2 - pl) * jump[d]
                jump[d] = jump[d] * sd
            size = new_size
            if hasattr(layer, "out_channels"):
                channels = int(layer.out_channels)
            out.append(row())
            continue
        if tname in _POINTWISE or type(layer).__module__.endswith("nn.activation") or type(layer).__module__.endswith("modules.activation"):
            out.append(row())
            continue
        raise ValueError(
            f"receptive_field: cannot analyse {where}: expected convolution, pooling, activation, "
            f"BatchNorm, Dropout, Flatten or Linear layers"
        )
    return out
