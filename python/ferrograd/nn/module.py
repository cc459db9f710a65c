"""``Parameter``, ``Module`` and the containers ``Sequential`` and ``ModuleList``.

PyTorch's semantics: assigning a :class:`Parameter`, a :class:`Module` or (through
:meth:`Module.register_buffer`) a buffer to an attribute registers it under that name;
``state_dict`` keys are the dotted attribute paths (``"0.weight"``, ``"fc1.bias"``).
"""

from __future__ import annotations

import warnings
from collections import OrderedDict, namedtuple
from typing import Any, Callable, Dict, Iterable, Iterator, Optional, Tuple, Union

import numpy as np

from ..tensor import Tensor, _as_array, _resolve_dtype

__all__ = ["Parameter", "Module", "Sequential", "ModuleList"]


class Parameter(Tensor):
    """A Tensor that a :class:`Module` registers as a learnable parameter: a leaf with
    ``requires_grad=True`` (unless told otherwise).

    ``data`` may be a Tensor (its array is shared, not copied), a NumPy array or anything
    array-like (converted to float32/float64, C-contiguous).
    """

    __slots__ = ()

    def __init__(self, data: Any = None, requires_grad: bool = True) -> None:
        if data is None:
            arr = np.empty((0,), dtype=np.float32)
        elif isinstance(data, Tensor):
            arr = data.data
        else:
            arr = _as_array(data, copy=False)
        if not arr.flags.c_contiguous or not arr.flags.writeable:
            arr = np.array(arr, copy=True, order="C")
        self.data = arr
        self.grad = None
        self.grad_fn = None
        self._retain = False
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class _IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """(missing_keys, unexpected_keys) of :meth:`Module.load_state_dict`; with
    ``strict=False`` the keys whose shape did not match (and were not loaded) are in
    ``mismatched_keys``."""

    mismatched_keys: list = []

    def __repr__(self) -> str:
        if not self.missing_keys and not self.unexpected_keys and not self.mismatched_keys:
            return "<All keys matched successfully>"
        return super().__repr__()


def _addindent(s: str, n: int) -> str:
    lines = s.split("\n")
    if len(lines) == 1:
        return s
    return lines[0] + "\n" + "\n".join(" " * n + line for line in lines[1:])


class Module:
    """Base class of every layer and model.

    Subclasses call ``super().__init__()`` first, assign their parameters and sub-modules
    as attributes and define ``forward``; calling the module runs ``forward``.
    """

    training: bool

    def __init__(self) -> None:
        d = self.__dict__
        d["training"] = True
        d["_parameters"] = OrderedDict()
        d["_buffers"] = OrderedDict()
        d["_non_persistent_buffers"] = set()
        d["_modules"] = OrderedDict()

    # ---- calling
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required "forward" function')

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    # ---- registration
    def _check_init(self, what: str) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign {what} before Module.__init__() call")

    def register_parameter(self, name: str, param: Optional[Parameter]) -> None:
        """Registers ``param`` (a Parameter, or None for an absent one) as ``name``."""
        self._check_init("parameters")
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f'parameter name must be a non-empty string without ".", given {name!r}')
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"cannot assign {type(param).__name__} object to parameter '{name}' "
                "(ferrograd.nn.Parameter or None required)"
            )
        self._buffers.pop(name, None)
        self._modules.pop(name, None)
        self._parameters[name] = param
        self.__dict__[name] = param

    def register_buffer(self, name: str, tensor: Any, persistent: bool = True) -> None:
        """Registers a non-learnable array or Tensor (e.g. running statistics) as ``name``;
        persistent buffers are part of the state dict."""
        self._check_init("buffers")
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f'buffer name must be a non-empty string without ".", given {name!r}')
        if tensor is not None and not isinstance(tensor, (Tensor, np.ndarray)):
            raise TypeError(f"cannot assign {type(tensor).__name__} object to buffer '{name}' (Tensor, ndarray or None required)")
        if name in self._parameters or name in self._modules:
            raise KeyError(f"attribute '{name}' already exists")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)
        self.__dict__[name] = tensor

    def add_module(self, name: str, module: Optional["Module"]) -> None:
        """Registers a sub-module (or None) as ``name``."""
        self._check_init("modules")
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f'module name must be a non-empty string without ".", given {name!r}')
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        self._parameters.pop(name, None)
        self._buffers.pop(name, None)
        self._modules[name] = module
        self.__dict__[name] = module

    register_module = add_module

    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        if isinstance(value, Parameter):
            self.register_parameter(name, value)
        elif isinstance(value, Module):
            self.add_module(name, value)
        elif "_parameters" in d and name in d["_parameters"]:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} object to parameter '{name}' "
                    "(ferrograd.nn.Parameter or None required)"
                )
            self.register_parameter(name, None)
        elif "_modules" in d and name in d["_modules"]:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} object to child module '{name}' (Module or None required)")
            d["_modules"][name] = None
            d[name] = None
        elif "_buffers" in d and name in d["_buffers"]:
            if value is not None and not isinstance(value, (Tensor, np.ndarray)):
                raise TypeError(f"cannot assign {type(value).__name__} object to buffer '{name}' (Tensor, ndarray or None required)")
            d["_buffers"][name] = value
            d[name] = value
        else:
            object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        for reg in ("_parameters", "_buffers", "_modules"):
            r = self.__dict__.get(reg)
            if r is not None and name in r:
                del r[name]
                self._non_persistent_buffers.discard(name)
        object.__delattr__(self, name)

    # ---- traversal
    def named_modules(self, memo: Optional[set] = None, prefix: str = "", remove_duplicate: bool = True) -> Iterator[Tuple[str, "Module"]]:
        """(name, module) for this module and every descendant, depth first."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if self in memo:
                return
            memo.add(self)
        yield prefix, self
        for name, m in self._modules.items():
            if m is None:
                continue
            yield from m.named_modules(memo, prefix + ("." if prefix else "") + name, remove_duplicate)

    def modules(self) -> Iterator["Module"]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[Tuple[str, "Module"]]:
        seen = set()
        for name, m in self._modules.items():
            if m is not None and m not in seen:
                seen.add(m)
                yield name, m

    def children(self) -> Iterator["Module"]:
        for _, m in self.named_children():
            yield m

    def _named_members(self, registry: str, prefix: str, recurse: bool) -> Iterator[Tuple[str, Any]]:
        seen = set()
        mods = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for mp, m in mods:
            for name, v in m.__dict__[registry].items():
                if v is None or id(v) in seen:
                    continue
                seen.add(id(v))
                yield mp + ("." if mp else "") + name, v

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[Tuple[str, Parameter]]:
        """(dotted name, Parameter) pairs in registration order, each parameter once."""
        return self._named_members("_parameters", prefix, recurse)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """The parameters in registration order, each once (shared ones too)."""
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[Tuple[str, Any]]:
        return self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True) -> Iterator[Any]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def get_submodule(self, target: str) -> "Module":
        m = self
        if target == "":
            return m
        for item in target.split("."):
            sub = m._modules.get(item)
            if sub is None:
                raise AttributeError(f"{type(m).__name__} has no submodule `{item}` (looking up {target!r})")
            m = sub
        return m

    # ---- modes and gradients
    def train(self, mode: bool = True) -> "Module":
        """Sets training mode (Dropout active) on this module and its descendants."""
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        for m in self.modules():
            m.__dict__["training"] = mode
        return self

    def eval(self) -> "Module":
        """Evaluation mode: ``train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clears every parameter's gradient (None, or zeros in place)."""
        for p in self.parameters():
            if p.grad is not None:
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.data[...] = 0

    def apply(self, fn: Callable[["Module"], Any]) -> "Module":
        """Calls ``fn`` on every descendant (children first) and on this module."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    def to(self, dtype: Any) -> "Module":
        """Casts every floating parameter and buffer to ``dtype`` (float32 or float64), in
        place: the Parameter objects stay the same (re-create optimizers afterwards)."""
        d = _resolve_dtype(dtype)
        for m in self.modules():
            for p in m._parameters.values():
                if p is not None and p.data.dtype != d:
                    p.data = p.data.astype(d)
                    if p.grad is not None:
                        p.grad = Tensor._wrap(p.grad.data.astype(d))
            for name, b in list(m._buffers.items()):
                if isinstance(b, Tensor) and b.data.dtype.kind == "f" and b.data.dtype != d:
                    b.data = b.data.astype(d)
                elif isinstance(b, np.ndarray) and b.dtype.kind == "f" and b.dtype != d:
                    m._buffers[name] = b.astype(d)
                    m.__dict__[name] = m._buffers[name]
        return self

    def double(self) -> "Module":
        return self.to(np.float64)

    def float(self) -> "Module":
        return self.to(np.float32)

    # ---- state
    def state_dict(self, destination: Optional[dict] = None, prefix: str = "", keep_vars: bool = False) -> "OrderedDict[str, Any]":
        """An ordered dict name -> NumPy array copy of every parameter and persistent buffer,
        keyed as PyTorch does (``"0.weight"``, ``"fc1.bias"``). ``keep_vars=True`` gives the
        Parameter / buffer objects themselves."""
        out = OrderedDict() if destination is None else destination
        for mp, m in self.named_modules(prefix=prefix.rstrip(".") if prefix else ""):
            pre = mp + "." if mp else ""
            for name, p in m._parameters.items():
                if p is not None:
                    out[pre + name] = p if keep_vars else np.array(p.data, copy=True)
            for name, b in m._buffers.items():
                if b is not None and name not in m._non_persistent_buffers:
                    if keep_vars:
                        out[pre + name] = b
                    else:
                        out[pre + name] = np.array(b.data if isinstance(b, Tensor) else b, copy=True)
        return out

    def load_state_dict(self, state_dict: Dict[str, Any], strict: bool = True) -> _IncompatibleKeys:
        """Copies arrays (or Tensors) from ``state_dict`` into the parameters and persistent
        buffers in place (cast to each one's dtype).

        strict=True: raises RuntimeError listing every missing key, unexpected key and key
        whose shape differs, and loads nothing. strict=False: loads every key that fits and
        returns (missing_keys, unexpected_keys); keys with a wrong shape are skipped, listed
        in ``.mismatched_keys`` and warned about.
        """
        if not isinstance(state_dict, dict):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict).__name__}.")
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        mismatched = []
        todo = []
        for k, target in own.items():
            if k not in state_dict:
                continue
            v = state_dict[k]
            arr = v.data if isinstance(v, Tensor) else np.asarray(v)
            tarr = target.data if isinstance(target, Tensor) else target
            if arr.shape != tarr.shape:
                mismatched.append((k, arr.shape, tarr.shape))
                continue
            if arr.dtype.kind not in "biuf":
                raise TypeError(f"load_state_dict: value for {k!r} has dtype {arr.dtype}, expected numbers")
            todo.append((tarr, arr))
        if strict and (missing or unexpected or mismatched):
            msgs = []
            if missing:
                msgs.append("Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ".")
            if unexpected:
                msgs.append("Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected) + ".")
            for k, got, want in mismatched:
                msgs.append(
                    f"size mismatch for {k}: copying a param with shape {got} from checkpoint, "
                    f"the shape in current model is {want}."
                )
            raise RuntimeError(
                f"Error(s) in loading state_dict for {type(self).__name__}:\n\t" + "\n\t".join(msgs)
            )
        for tarr, arr in todo:
            tarr[...] = arr
        res = _IncompatibleKeys(missing, unexpected)
        res.mismatched_keys = [k for k, _, _ in mismatched]
        if mismatched:
            warnings.warn(
                "load_state_dict: skipped keys whose shape differs: "
                + ", ".join(f"{k} (checkpoint {g}, model {w})" for k, g, w in mismatched),
                stacklevel=2,
            )
        return res

    # ---- repr
    def extra_repr(self) -> str:
        """The text inside this module's parentheses in ``repr`` (override in layers)."""
        return ""

    def _get_name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        extra = self.extra_repr()
        lines = extra.split("\n") if extra else []
        for name, m in self._modules.items():
            lines.append(f"({name}): " + _addindent(repr(m), 2))
        main = self._get_name() + "("
        if lines:
            if len(lines) == 1 and not self._modules:
                main += lines[0]
            else:
                main += "\n  " + "\n  ".join(lines) + "\n"
        return main + ")"


class Sequential(Module):
    """Runs its modules in order: ``Sequential(m0, m1, ...)`` or
    ``Sequential(OrderedDict(name=module, ...))``; children are named "0", "1", ... or by
    the dict's keys. Supports indexing (an int gives the module, a slice a Sequential),
    ``len``, iteration and ``append``."""

    def __init__(self, *args: Any) -> None:
        super().__init__()
        if len(args) == 1 and isinstance(args[0], (OrderedDict, dict)):
            for name, m in args[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(args):
                if not isinstance(m, Module):
                    raise TypeError(f"Sequential: argument {i} is a {type(m).__name__}, not a Module")
                self.add_module(str(i), m)

    def _index(self, idx: int) -> int:
        n = len(self._modules)
        if not -n <= idx < n:
            raise IndexError(f"index {idx} is out of range for a {type(self).__name__} of length {n}")
        return idx % n

    def __getitem__(self, idx: Union[int, slice]) -> Any:
        if isinstance(idx, slice):
            return type(self)(OrderedDict(list(self._modules.items())[idx]))
        return list(self._modules.values())[self._index(idx)]

    def __setitem__(self, idx: int, module: Module) -> None:
        key = list(self._modules.keys())[self._index(idx)]
        self.add_module(key, module)

    def __delitem__(self, idx: Union[int, slice]) -> None:
        keys = list(self._modules.keys())
        for k in (keys[idx] if isinstance(idx, slice) else [keys[self._index(idx)]]):
            delattr(self, k)
        # Renumber so that the names stay "0", "1", ...
        mods = list(self._modules.values())
        for k in list(self._modules.keys()):
            delattr(self, k)
        for i, m in enumerate(mods):
            self.add_module(str(i), m)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def append(self, module: Module) -> "Sequential":
        """Adds ``module`` at the end (named by its position)."""
        self.add_module(str(len(self)), module)
        return self

    def forward(self, input: Any) -> Any:
        for m in self._modules.values():
            input = m(input)
        return input


class ModuleList(Module):
    """A list of sub-modules, registered as "0", "1", ...; indexable, iterable, with
    ``append``, ``extend`` and ``insert``. It has no ``forward``."""

    def __init__(self, modules: Optional[Iterable[Module]] = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _index(self, idx: int) -> int:
        n = len(self._modules)
        if not -n <= idx < n:
            raise IndexError(f"index {idx} is out of range for a ModuleList of length {n}")
        return idx % n

    def __getitem__(self, idx: Union[int, slice]) -> Any:
        if isinstance(idx, slice):
            return ModuleList(list(self._modules.values())[idx])
        return self._modules[str(self._index(idx))]

    def __setitem__(self, idx: int, module: Module) -> None:
        self.add_module(str(self._index(idx)), module)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def append(self, module: Module) -> "ModuleList":
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> "ModuleList":
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> None:
        mods = list(self._modules.values())
        mods.insert(index, module)
        for k in list(self._modules.keys()):
            delattr(self, k)
        for i, m in enumerate(mods):
            self.add_module(str(i), m)
