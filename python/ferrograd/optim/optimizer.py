"""The optimizer base class: param groups, per-parameter state, state dicts.

Mirrors ``torch.optim.Optimizer``. A subclass declares its hyper-parameters (``defaults``)
and implements :meth:`Optimizer._update`, which updates all parameters of one param group
that have a gradient with ONE call of a fused Rust kernel (per dtype present in the group);
Python never loops over elements.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from typing import Any, Callable, DefaultDict, Dict, Iterable, List, Optional, Tuple, Union

import numpy as np

from ..tensor import Tensor

__all__ = ["Optimizer", "required"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


class _Required:
    """Marks a hyper-parameter that has no default (``lr`` of some optimizers)."""

    def __repr__(self) -> str:
        return "<required parameter>"


required = _Required()

ParamsT = Union[Iterable[Tensor], Iterable[Dict[str, Any]]]


def _check_param(p: Any) -> None:
    if not isinstance(p, Tensor):
        raise TypeError(
            "optimizer can only optimize Tensors, but one of the params is " + type(p).__name__
        )
    if not p.is_leaf:
        raise ValueError("can't optimize a non-leaf Tensor")
    if p.data.dtype not in _FLOATS:
        raise TypeError(
            f"optimizer can only optimize float32 or float64 Tensors, given one of dtype {p.data.dtype}"
        )


class Optimizer:
    """Base class of all optimizers.

    Args:
        params: an iterable of Tensors (parameters: leaves with ``requires_grad``), or of
            dicts, each a param group: ``{"params": [...], <hyper-parameter>: value, ...}``;
            hyper-parameters missing from a group take the value in ``defaults``.
        defaults: the optimizer's default hyper-parameters.

    Attributes:
        param_groups: list of dicts, each with key ``"params"`` (list of Tensors) and every
            hyper-parameter.
        state: per-parameter state, ``{parameter: {name: ndarray | float}}``; the arrays
            have the parameter's shape and dtype.
    """

    def __init__(self, params: ParamsT, defaults: Dict[str, Any]) -> None:
        if isinstance(params, Tensor):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors or "
                "dicts, but got " + type(params).__name__
            )
        if isinstance(params, (set, frozenset)):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but the "
                "ordering of tensors in sets will change between runs. Please use a list instead."
            )
        self.defaults: Dict[str, Any] = dict(defaults)
        self.state: DefaultDict[Tensor, Dict[str, Any]] = defaultdict(dict)
        self.param_groups: List[Dict[str, Any]] = []
        groups = list(params)
        if len(groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    # ---- hooks for subclasses

    def _validate(self, group: Dict[str, Any]) -> None:
        """Raises ValueError for an invalid hyper-parameter of ``group`` (subclasses)."""

    def _update(self, group: Dict[str, Any], params: List[Tensor]) -> None:
        """Updates ``params`` (the group's parameters that have a gradient) in place."""
        raise NotImplementedError

    # ---- param groups

    def add_param_group(self, param_group: Dict[str, Any]) -> None:
        """Adds a param group (a dict with ``"params"`` and optional hyper-parameters)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        group = dict(param_group)
        if "params" not in group:
            raise ValueError("param_group must have a 'params' key")
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but the "
                "ordering of tensors in sets will change between runs. Please use a list instead."
            )
        else:
            params = list(params)
        for p in params:
            _check_param(p)
        unique: List[Tensor] = []
        seen = set()
        for p in params:
            if id(p) in seen:
                continue
            seen.add(id(p))
            unique.append(p)
        if len(unique) != len(params):
            warnings.warn(
                "optimizer contains a parameter group with duplicate parameters; each is "
                "optimized once",
                stacklevel=3,
            )
        group["params"] = unique
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(
                    f"parameter group didn't specify a value of required optimization parameter {name}"
                )
            group.setdefault(name, default)
        for other in self.param_groups:
            if any(id(p) in seen for p in other["params"]):
                raise ValueError("some parameters appear in more than one parameter group")
        self._validate(group)
        self.param_groups.append(group)

    # ---- stepping

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Resets the gradients of all parameters: to None (default) or to zeros."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    g = p.grad.data if isinstance(p.grad, Tensor) else p.grad
                    if isinstance(g, np.ndarray) and g.flags.writeable:
                        g.fill(0)
                    else:
                        p.grad = Tensor._wrap(np.zeros(p.data.shape, p.data.dtype))

    def step(self, closure: Optional[Callable[[], Any]] = None) -> Any:
        """Performs one optimization step over every param group.

        Parameters whose ``grad`` is None are skipped. ``closure``, if given, is called
        first (with gradients enabled) to re-evaluate the model; its return value (the
        loss) is returned.
        """
        loss = None
        if closure is not None:
            from ..autograd import enable_grad

            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                self._update(group, params)
        return loss

    # ---- state dicts

    def state_dict(self) -> Dict[str, Any]:
        """The optimizer's state as PyTorch structures it.

        ``{"state": {index: {name: ndarray | float}}, "param_groups": [{hyper-parameters...,
        "params": [index, ...]}]}`` where parameters are numbered consecutively over the
        groups in order. Arrays are copies.
        """
        index: Dict[int, int] = {}
        groups: List[Dict[str, Any]] = []
        start = 0
        for g in self.param_groups:
            packed = {k: v for k, v in g.items() if k != "params"}
            ids = list(range(start, start + len(g["params"])))
            for p, i in zip(g["params"], ids):
                index[id(p)] = i
            packed["params"] = ids
            start += len(ids)
            groups.append(packed)
        items: List[Tuple[int, Dict[str, Any]]] = []
        for p, s in self.state.items():
            i = index.get(id(p))
            if i is None or not s:
                continue
            items.append(
                (i, {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()})
            )
        items.sort(key=lambda kv: kv[0])
        return {"state": dict(items), "param_groups": groups}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Loads a state dict made by :meth:`state_dict` (of an optimizer of the same
        type over parameters of the same shapes, in the same groups).

        Arrays are copied and cast to their parameter's dtype; the groups' hyper-parameters
        are replaced by the saved ones. Integer keys given as strings are accepted.
        """
        if not isinstance(state_dict, dict) or "param_groups" not in state_dict:
            raise ValueError("load_state_dict: expected a dict with keys 'state' and 'param_groups'")
        saved_groups = list(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                "loaded state dict has a different number of parameter groups "
                f"({len(saved_groups)}, the optimizer has {len(self.param_groups)})"
            )
        id_map: Dict[int, Tensor] = {}
        for g, s in zip(self.param_groups, saved_groups):
            sp = list(s.get("params", []))
            if len(sp) != len(g["params"]):
                raise ValueError(
                    "loaded state dict contains a parameter group that doesn't match the size "
                    f"of optimizer's group ({len(sp)} vs {len(g['params'])} parameters)"
                )
            for i, p in zip(sp, g["params"]):
                id_map[int(i)] = p
        new_state: DefaultDict[Tensor, Dict[str, Any]] = defaultdict(dict)
        for k, v in dict(state_dict.get("state", {})).items():
            try:
                key = int(k)
            except (TypeError, ValueError):
                raise ValueError(f"load_state_dict: state key {k!r} is not a parameter index") from None
            if key not in id_map:
                raise ValueError(
                    f"load_state_dict: the state refers to parameter index {key}, which no group contains"
                )
            p = id_map[key]
            new_state[p] = {name: _cast_state(key, name, val, p) for name, val in dict(v).items()}
        new_groups = []
        for g, s in zip(self.param_groups, saved_groups):
            ng = {k: (tuple(v) if k == "betas" and isinstance(v, list) else v) for k, v in s.items()}
            ng["params"] = g["params"]
            for name, default in self.defaults.items():
                ng.setdefault(name, g.get(name, default))
            self._validate(ng)
            new_groups.append(ng)
        self.state = new_state
        self.param_groups = new_groups

    def __repr__(self) -> str:
        lines = [type(self).__name__ + " ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(g):
                if k != "params":
                    lines.append(f"    {k}: {g[k]}")
        lines.append(")")
        return "\n".join(lines)

    def __getstate__(self) -> Dict[str, Any]:
        return {"defaults": self.defaults, "state": self.state, "param_groups": self.param_groups}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)


def _cast_state(index: int, name: str, value: Any, p: Tensor) -> Any:
    """A saved state entry as this optimizer keeps it: arrays copied to ``p``'s dtype and
    checked against its shape; 0-d arrays and numbers become floats."""
    if isinstance(value, Tensor):
        value = value.data
    if isinstance(value, np.ndarray) and value.ndim == 0 and (name == "step" or name == "mu_product"):
        return float(value)
    if isinstance(value, np.ndarray):
        if value.shape != p.data.shape:
            raise ValueError(
                f"load_state_dict: state '{name}' of parameter {index} has shape "
                f"{tuple(value.shape)}, the parameter has shape {tuple(p.data.shape)}"
            )
        return np.array(value, dtype=p.data.dtype, order="C", copy=True)
    if isinstance(value, (bool, np.bool_)) or value is None:
        return value
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    return value


# ---- helpers for the subclasses


def _runs(params: List[Tensor]) -> List[List[Tensor]]:
    """``params`` split by dtype (one list in the usual single-dtype case)."""
    dt = params[0].data.dtype
    if all(p.data.dtype == dt for p in params):
        return [params]
    by: Dict[np.dtype, List[Tensor]] = {}
    for p in params:
        by.setdefault(p.data.dtype, []).append(p)
    return list(by.values())


def _arrays(
    name: str, params: List[Tensor]
) -> Tuple[List[np.ndarray], List[np.ndarray], List[Tuple[Tensor, np.ndarray]]]:
    """The arrays one kernel call needs for ``params`` (same dtype, each with a grad).

    Returns (param arrays, gradient arrays, write-backs): a parameter whose data is not a
    writeable C-contiguous array is updated in a contiguous copy, listed in write-backs.
    Gradients are made C-contiguous of the parameter's dtype (no copy when they are).
    """
    arrays: List[np.ndarray] = []
    grads: List[np.ndarray] = []
    back: List[Tuple[Tensor, np.ndarray]] = []
    for i, p in enumerate(params):
        d = p.data
        if not (d.flags.c_contiguous and d.flags.writeable):
            d = np.array(d, order="C", copy=True)
            back.append((p, d))
        g = p.grad
        g = g.data if isinstance(g, Tensor) else np.asarray(g)
        if g.shape != d.shape:
            raise ValueError(
                f"{name}: the gradient of a parameter of shape {tuple(d.shape)} has shape {tuple(g.shape)}"
            )
        if g.dtype != d.dtype or not g.flags.c_contiguous:
            g = np.ascontiguousarray(g, dtype=d.dtype)
        arrays.append(d)
        grads.append(g)
    return arrays, grads, back


def _dispatch(name: str, params: List[Tensor], per_param: List[List[Any]], call: Callable[..., Any]) -> List[Any]:
    """Runs ``call(param_arrays, grad_arrays, *lists)`` for ``params`` (each with a grad),
    where ``lists`` are per-parameter lists (state buffers, step counts) aligned with
    ``params``; returns ``call``'s per-parameter results (a list aligned with ``params``,
    or Nones when ``call`` returns None).

    Fast path: one call with the arrays as they are. The binding checks every argument
    before writing anything, so when that call is refused (mixed dtypes, a gradient of
    another dtype or layout, a non-contiguous parameter, a wrong shape), nothing changed:
    the careful path then splits by dtype, converts what can be converted and raises a
    clear error for the rest.
    """
    arrays = [p.data for p in params]
    grads = [g.data if isinstance(g, Tensor) else g for g in (p.grad for p in params)]
    try:
        out = call(arrays, grads, *per_param)
        return list(out) if out is not None else [None] * len(params)
    except (TypeError, ValueError):
        pass
    results: List[Any] = [None] * len(params)
    index = {id(p): i for i, p in enumerate(params)}
    for run in _runs(params):
        idx = [index[id(p)] for p in run]
        a, g, back = _arrays(name, run)
        out = call(a, g, *[[lst[i] for i in idx] for lst in per_param])
        if out is not None:
            for i, r in zip(idx, out):
                results[i] = r
        _write_back(back)
    return results


def _write_back(back: List[Tuple[Tensor, np.ndarray]]) -> None:
    for p, a in back:
        if p.data.flags.writeable:
            p.data[...] = a
        else:
            p.data = a
