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


def _topo_order(root: Node) -> list[Node]:
    """Nodes reachable from ``root``, each after every node that consumes its output."""
    order: list[Node] = []
    visited: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        for t in node.inputs:
            fn = t.grad_fn
            if fn is not None and id(fn) not in visited:
                stack.append((fn, False))
    order.reverse()
    return order


def _accumulate_leaf(t: "Tensor", g: np.ndarray) -> None:
    from ..tensor import Tensor

    if g.dtype != t.data.dtype:
        g = g.astype(t.data.dtype)
    if t.grad is None:
        # A fresh, writable copy: the incoming array may be a broadcast view or shared
        # with another input's gradient.
        t.grad = Tensor._wrap(np.array(g, dtype=t.data.dtype, copy=True).reshape(t.data.shape))
    else:
        t.grad = Tensor._wrap(t.grad.data + g)


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
    grads: dict[int, np.ndarray] = {id(node0): grad}
    outputs: dict[int, "Tensor"] = {id(node0): root}
    for node in order:
        g = grads.pop(id(node), None)
        out_t = outputs.pop(id(node), None)
        if out_t is not None and out_t._retain and out_t.grad_fn is node:
            _accumulate_leaf(out_t, g) if g is not None else None
        if g is None:
            continue
        fn = node.backward_fn
        if fn is None:
            raise _freed(node)
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
            if child is None:
                _accumulate_leaf(t, gi)
            else:
                key = id(child)
                prev = grads.get(key)
                grads[key] = gi if prev is None else prev + gi
                outputs[key] = t
        if not retain_graph:
            node.backward_fn = None
