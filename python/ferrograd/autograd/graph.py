"""The recorded graph and the reverse-mode walk over it.

Every differentiable op that sees an input requiring grad records a :class:`Node` on its
output: the op's name, its tensor inputs and a ``backward`` closure mapping the output's
gradient to one gradient per input (None where an input needs none). ``run_backward``
sorts the nodes reachable from the root topologically with an explicit stack (no
recursion, so chains of any length work) and calls each closure once, after all the
gradients flowing into its output have been summed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Optional, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from ..tensor import Tensor

BackwardFn = Callable[[np.ndarray], Sequence[Optional[np.ndarray]]]


class Node:
    """One recorded op: its inputs and the closure computing their gradients."""

    __slots__ = ("name", "inputs", "backward_fn", "__weakref__")

    def __init__(self, name: str, inputs: tuple, backward_fn: BackwardFn) -> None:
        self.name = name
        self.inputs = inputs
        self.backward_fn: Optional[BackwardFn] = backward_fn

    def __repr__(self) -> str:
        return f"<{self.name}>"


def _freed(node: Node) -> RuntimeError:
    return RuntimeError(
        f"Trying to backward through the graph a second time (through {node.name}): its "
        "saved values were freed by the first backward. Specify retain_graph=True in the "
        "first backward() call if you need to backward through the graph again."
    )


def _topo_order(root: Node) -> list:
    """Nodes reachable from ``root``, each after every node that consumes its output."""
    order: list = []
    visited: set = set()
    stack: list = [(root, False)]
    pop, push, add = stack.pop, stack.append, visited.add
    while stack:
        node, done = pop()
        if done:
            order.append(node)
            continue
        if node in visited:
            continue
        add(node)
        push((node, True))
        for t in node.inputs:
            fn = t.grad_fn
            if fn is not None and fn not in visited:
                push((fn, False))
    order.reverse()
    return order


_TENSOR: list = []


def _accumulate_leaf(t: "Tensor", g: np.ndarray, fresh: bool = False) -> None:
    """Adds ``g`` to ``t.grad``. A first gradient is stored as is when ``fresh`` (an array
    no one else holds), else as a copy: the incoming array may be a broadcast view, the
    caller's array, or shared with another input's gradient, and ``.grad`` must be a
    writable array of its own (optimizers and clip_grad_* write into it)."""
    if not _TENSOR:
        from ..tensor import Tensor

        _TENSOR.append(Tensor)
    wrap = _TENSOR[0]._wrap
    dt = t.data.dtype
    if g.dtype != dt:
        g = g.astype(dt)
        fresh = True
    if t.grad is None:
        if fresh and g.flags.owndata and g.flags.writeable and g.flags.c_contiguous:
            t.grad = wrap(g)
        else:
            t.grad = wrap(np.array(g, dtype=dt, order="C", copy=True).reshape(t.data.shape))
    else:
        t.grad = wrap(t.grad.data + g)


def run_backward(root: "Tensor", grad: np.ndarray, retain_graph: bool) -> None:
    """Back-propagates ``grad`` (the gradient of some scalar w.r.t. ``root``)."""
    node0 = root.grad_fn
    if node0 is None:
        if root.requires_grad:
            _accumulate_leaf(root, grad)
            return
        raise RuntimeError(
            "element 0 of tensors does not require grad and does not have a grad_fn"
        )
    order = _topo_order(node0)
    grads: dict = {node0: grad}
    # ids of every gradient array seen flowing in this pass: an array met a second time
    # (passed through unchanged by an op, or given to two inputs) is copied before it
    # becomes a leaf's .grad. Ids of freed arrays may be reused: that costs a copy, never
    # an alias.
    seen = {id(grad)}
    retained: dict = {node0: root} if root._retain else {}
    for node in order:
        g = grads.pop(node, None)
        if g is None:
            continue
        if retained:
            out_t = retained.pop(node, None)
            if out_t is not None:
                _accumulate_leaf(out_t, g)
        fn = node.backward_fn
        if fn is None:
            raise _freed(node)
        seen.add(id(g))
        in_grads = fn(g)
        for t, gi in zip(node.inputs, in_grads):
            if gi is None or not t.requires_grad:
                continue
            if type(gi) is not np.ndarray:  # NumPy turns 0-d results into scalars
                gi = np.asarray(gi)
            if gi.shape != t.data.shape:
                raise RuntimeError(
                    f"{node.name}: internal error, gradient of shape {gi.shape} for an input "
                    f"of shape {t.data.shape}"
                )
            child = t.grad_fn
            key = id(gi)
            if child is None:
                _accumulate_leaf(t, gi, key not in seen)
                seen.add(key)
            else:
                seen.add(key)
                prev = grads.get(child)
                grads[child] = gi if prev is None else prev + gi
                if t._retain:
                    retained[child] = t
        if not retain_graph:
            node.backward_fn = None
