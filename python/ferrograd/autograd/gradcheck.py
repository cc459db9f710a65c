"""Numerical verification of analytic gradients."""

from __future__ import annotations

from typing import Any, Callable, Sequence, Union

import numpy as np

from .grad_mode import no_grad


class GradcheckError(RuntimeError):
    """Raised by :func:`gradcheck` when analytic and numerical Jacobians disagree."""


def _flatten_outputs(out: Any) -> list:
    from ..tensor import Tensor

    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        res = []
        for o in out:
            res.extend(_flatten_outputs(o))
        return res
    raise TypeError(f"gradcheck: fn must return a Tensor or a tuple of Tensors, given {type(out).__name__}")


def gradcheck(
    fn: Callable[..., Any],
    inputs: Union[Any, Sequence[Any]],
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
) -> bool:
    """Checks the gradients of ``fn`` at ``inputs`` against central finite differences.

    ``inputs`` is a Tensor or a sequence of Tensors (others are passed through as
    constants). Every input that requires grad is cast to float64; for each output element
    the analytic gradient (one backward pass with a one-hot output gradient) is compared
    with (f(x + eps e_i) - f(x - eps e_i)) / (2 eps) for every input element i, and passes
    where |analytic - numerical| <= atol + rtol * |numerical|.

    Returns True if all entries pass; otherwise raises :class:`GradcheckError` naming the
    worst mismatch (or returns False when ``raise_exception`` is False).
    """
    from ..tensor import Tensor

    single = isinstance(inputs, Tensor)
    seq = [inputs] if single else list(inputs)
    xs: list = []
    for x in seq:
        if isinstance(x, Tensor) and x.requires_grad:
            t = Tensor._wrap(np.array(x.data, dtype=np.float64, copy=True))
            t.requires_grad_(True)
            xs.append(t)
        else:
            xs.append(x)
    diff = [i for i, x in enumerate(xs) if isinstance(x, Tensor) and x.requires_grad]
    if not diff:
        raise ValueError("gradcheck: no input requires grad; pass tensors with requires_grad=True")

    def evaluate() -> list:
        with no_grad():
            return [np.array(o.data, dtype=np.float64, copy=True) for o in _flatten_outputs(fn(*xs))]

    # Numerical Jacobians: numeric[k][i] has shape (out_k.size, x_i.size).
    base = evaluate()
    numeric = [[np.zeros((o.size, xs[i].data.size)) for i in diff] for o in base]
    for col, i in enumerate(diff):
        data = xs[i].data  # perturbed in place, whatever its memory layout
        for j, pos in enumerate(np.ndindex(data.shape)):
            orig = data[pos]
            data[pos] = orig + eps
            plus = evaluate()
            data[pos] = orig - eps
            minus = evaluate()
            data[pos] = orig
            for k in range(len(base)):
                numeric[k][col][:, j] = ((plus[k] - minus[k]) / (2 * eps)).reshape(-1)

    # Analytic Jacobians, one backward pass per output element.
    outs = _flatten_outputs(fn(*xs))
    worst = (-1.0, "")
    ok = True
    for k, o in enumerate(outs):
        if o.data.dtype != np.float64:
            raise GradcheckError(f"gradcheck: output {k} has dtype {o.data.dtype}; float64 inputs must give float64 outputs")
        analytic = [np.zeros_like(numeric[k][c]) for c in range(len(diff))]
        if o.requires_grad:
            for r in range(o.data.size):
                for i in diff:
                    xs[i].grad = None
                onehot = np.zeros(o.data.size)
                onehot[r] = 1.0
                o.backward(onehot.reshape(o.data.shape), retain_graph=True)
                for c, i in enumerate(diff):
                    g = xs[i].grad
                    if g is not None:
                        analytic[c][r, :] = np.ravel(g.data, order="C")
        for c, i in enumerate(diff):
            a, n = analytic[c], numeric[k][c]
            err = np.abs(a - n) - (atol + rtol * np.abs(n))
            bad = ~(err <= 0)
            if bad.any():
                ok = False
                pos = np.unravel_index(int(np.nanargmax(np.where(np.isnan(err), np.inf, err))), err.shape)
                score = float(np.nan_to_num(err[pos], nan=np.inf))
                if score > worst[0]:
                    worst = (
                        score,
                        f"gradcheck: Jacobian mismatch for output {k} w.r.t. input {i} at "
                        f"(output element {pos[0]}, input element {pos[1]}): analytic "
                        f"{a[pos]:.10g}, numerical {n[pos]:.10g} (atol={atol}, rtol={rtol}; "
                        f"{int(bad.sum())} of {bad.size} entries differ)",
                    )
    for i in diff:
        xs[i].grad = None
    if not ok:
        if raise_exception:
            raise GradcheckError(worst[1])
        return False
    return True
