"""``summary(model, input_shape)``: a Keras-style table of layers, output shapes and
parameter counts.

It runs one forward pass on a zero batch (in eval mode, without grad, drawing nothing from
the library generator) and records each submodule's output shape as it is called, so it
works for ``nn.Sequential`` and for custom Modules with any ``forward``. Each submodule's
call is observed by temporarily shadowing its ``forward`` with an instance attribute,
removed afterwards (or through ``register_forward_hook`` when Module provides it).
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..tensor import Tensor
from .trainer import _ModeGuard, _param_dtype

__all__ = ["summary"]


def _shape_of(out: Any, batch_named: Optional[int]) -> str:
    if isinstance(out, Tensor) or isinstance(out, np.ndarray):
        shp = tuple(out.shape)
        if batch_named is not None and shp and shp[0] == batch_named:
            return "(" + ", ".join(["None"] + [str(s) for s in shp[1:]]) + (",)" if len(shp) == 1 else ")")
        return str(shp)
    if isinstance(out, (tuple, list)):
        return "[" + ", ".join(_shape_of(o, batch_named) for o in out) + "]"
    return type(out).__name__


def _count(params: Any) -> Tuple[int, int]:
    seen, total, trainable = set(), 0, 0
    for p in params:
        if id(p) in seen:
            continue
        seen.add(id(p))
        n = int(np.prod(p.shape)) if p.shape else 1
        total += n
        if getattr(p, "requires_grad", True):
            trainable += n
    return total, trainable


def summary(
    model: Any,
    input_shape: Union[Sequence[int], Sequence[Sequence[int]]],
    *,
    batch_size: int = 2,
    dtype: Any = None,
    print_fn: Optional[Callable[[str], Any]] = print,
    line_length: int = 80,
) -> str:
    """Prints and returns a table: one row per submodule called during the forward (leaf
    modules, and containers that hold parameters of their own), in call order, with its
    name and type, output shape and number of parameters of its own; then the totals
    (total / trainable / non-trainable parameters, counting shared parameters once) and
    the parameters' size in MB.

    ``input_shape`` is one input's shape without the batch dimension, e.g. ``(784,)``, or a
    list of shapes for a model taking several inputs. A zero batch of ``batch_size``
    samples in ``dtype`` (default: the model's parameter dtype) is pushed through; the
    batch dimension shows as ``None``. ``print_fn=None`` only returns the text.
    """
    if not hasattr(model, "named_modules"):
        raise TypeError(f"summary: expected an nn.Module, given {type(model).__name__}")
    shapes: List[Tuple[int, ...]]
    if len(input_shape) > 0 and all(isinstance(s, (tuple, list)) for s in input_shape):
        shapes = [tuple(int(v) for v in s) for s in input_shape]  # type: ignore[union-attr]
    else:
        shapes = [tuple(int(v) for v in input_shape)]  # type: ignore[arg-type]
    dt = np.dtype(dtype) if dtype is not None else _param_dtype(model)
    inputs = [Tensor._wrap(np.zeros((batch_size,) + s, dtype=dt)) for s in shapes]

    named = [(n, m) for n, m in model.named_modules() if m is not model]
    rows: List[List[Any]] = []
    order: dict = {}
    restore: List[Callable[[], None]] = []

    def record(name: str, mod: Any, out: Any) -> None:
        own = list(mod.parameters(recurse=False)) if _has_recurse(mod) else []
        leaf = not any(True for _ in mod.children())
        if leaf or own:
            rows.append([order[id(mod)], name, type(mod).__name__, _shape_of(out, batch_size), _count(own)[0]])

    for idx, (name, mod) in enumerate(named):
        order[id(mod)] = idx
        if hasattr(mod, "register_forward_hook"):
            h = mod.register_forward_hook(lambda m, i, o, _n=name: record(_n, m, o))
            restore.append(h.remove)
            continue
        orig = mod.forward  # bound method (or an instance attribute already)
        had_instance = "forward" in mod.__dict__

        def wrapped(*a: Any, _orig: Any = orig, _n: str = name, _m: Any = mod, **k: Any) -> Any:
            out = _orig(*a, **k)
            record(_n, _m, out)
            return out

        object.__setattr__(mod, "forward", wrapped)

        def undo(_m: Any = mod, _had: bool = had_instance, _orig: Any = orig) -> None:
            if _had:
                object.__setattr__(_m, "forward", _orig)
            else:
                try:
                    object.__delattr__(_m, "forward")
                except AttributeError:
                    pass

        restore.append(undo)
    try:
        with _ModeGuard(model):
            out = model(*inputs)
    except Exception as e:
        raise ValueError(
            f"summary: the forward pass on a batch of shape(s) {[tuple(x.shape) for x in inputs]} failed: {e}"
        ) from e
    finally:
        for fn in reversed(restore):
            fn()

    total, trainable = _count(model.parameters())
    # parameters' bytes
    seen, nbytes = set(), 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            nbytes += p.data.nbytes

    header = ["Layer (type)", "Output Shape", "Param #"]
    body = [[f"{r[1]} ({r[2]})", r[3], f"{r[4]:,}"] for r in rows]
    if not body:
        body = [[f"{type(model).__name__}", _shape_of(out, batch_size), f"{total:,}"]]
    w0 = max(len(header[0]), *(len(b[0]) for b in body), 30) + 2
    w1 = max(len(header[1]), *(len(b[1]) for b in body), 24) + 2
    w2 = max(len(header[2]), *(len(b[2]) for b in body), 10)
    width = max(line_length, w0 + w1 + w2)
    lines = [f'Model: "{type(model).__name__}"', "=" * width, f"{header[0]:<{w0}}{header[1]:<{w1}}{header[2]:>{w2}}", "=" * width]
    for i, b in enumerate(body):
        lines.append(f"{b[0]:<{w0}}{b[1]:<{w1}}{b[2]:>{w2}}")
        lines.append("-" * width if i < len(body) - 1 else "=" * width)
    lines += [
        f"Total params: {total:,}",
        f"Trainable params: {trainable:,}",
        f"Non-trainable params: {total - trainable:,}",
        f"Params size (MB): {nbytes / 2**20:.2f}",
        f"Output shape: {_shape_of(out, batch_size)}",
        "-" * width,
    ]
    text = "\n".join(lines)
    if print_fn is not None:
        print_fn(text)
    return text


def _has_recurse(mod: Any) -> bool:
    try:
        mod.parameters(recurse=False)
        return True
    except TypeError:
        return False
