"""``Tensor``: a NumPy array with reverse-mode autograd, and its differentiable ops.

Each op below is one function with its forward and its backward side by side: the forward
computes the output array, the backward closure (recorded only when an input requires
grad and grad mode is on) maps the output's gradient to one gradient per input.

Storage is a NumPy array: float32 by default, float64 supported. Comparisons give bool
tensors and ``max(dim)`` / ``argmax`` give int64 index tensors; those never carry grad.
Matrix products, activations, exp/log, softmax and reductions run in Rust
(``ferrograd._native``); broadcasting arithmetic uses NumPy's compiled ufuncs.
"""

from __future__ import annotations

import builtins
import math
from collections import namedtuple
from typing import Any, Iterable, Optional, Sequence, Union

import numpy as np

from . import _native
from ._random import generator
from .autograd.grad_mode import _GradMode
from .autograd.graph import Node, run_backward

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int64 = np.dtype(np.int64)
bool_ = np.dtype(np.bool_)

_FLOATS = (float32, float64)
_DTYPE_NAMES = {"float32": float32, "float": float32, "float64": float64, "double": float64}

Number = Union[int, float]
TensorLike = Union["Tensor", np.ndarray, Number, Sequence]

values_indices = namedtuple("values_indices", ["values", "indices"])


# ----------------------------------------------------------------------------- helpers


def _resolve_dtype(dtype: Any) -> Optional[np.dtype]:
    if dtype is None:
        return None
    if isinstance(dtype, str) and dtype in _DTYPE_NAMES:
        return _DTYPE_NAMES[dtype]
    try:
        d = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype: expected float32 or float64, given {dtype!r}") from None
    if d not in _FLOATS:
        raise TypeError(f"dtype: expected float32 or float64, given {d}")
    return d


def _as_array(data: Any, dtype: Optional[np.dtype] = None, copy: bool = True) -> np.ndarray:
    """Converts ``data`` to a float32/float64 array; integers and bools become float32."""
    if isinstance(data, Tensor):
        data = data.data
    from_array = isinstance(data, (np.ndarray, np.generic))
    if from_array:
        arr = np.asarray(data)
    else:
        try:
            arr = np.asarray(data)
        except (ValueError, TypeError) as e:
            raise TypeError(f"tensor: cannot convert {type(data).__name__} to an array: {e}") from None
    kind = arr.dtype.kind
    if dtype is None:
        if from_array and arr.dtype in _FLOATS:
            dtype = arr.dtype
        elif kind in "iubf":
            dtype = float32
        else:
            raise TypeError(
                f"tensor: expected real numbers (float, int or bool), given dtype {arr.dtype}"
            )
    elif kind not in "iubf":
        raise TypeError(f"tensor: expected real numbers (float, int or bool), given dtype {arr.dtype}")
    if copy:
        return np.array(arr, dtype=dtype, copy=True)
    return arr.astype(dtype, copy=False)


def _contig(a: np.ndarray) -> np.ndarray:
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


def _unbroadcast(g: np.ndarray, shape: tuple) -> np.ndarray:
    """Sums ``g`` over the axes that broadcasting added or stretched to reach ``shape``."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, s in enumerate(shape) if s == 1 and g.shape[i + lead] != 1
    )
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


def _other(x: Any, like: "Tensor") -> "Tensor":
    """The second operand of a binary op as a Tensor (constants keep ``like``'s dtype)."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return Tensor._wrap(np.asarray(x, dtype=like.data.dtype))
    if isinstance(x, np.ndarray) and x.dtype in _FLOATS:
        return Tensor._wrap(x)  # a float array keeps its dtype (NumPy's promotion applies)
    return Tensor._wrap(_as_array(x, like.data.dtype, copy=False))


def _make(data: np.ndarray, inputs: tuple, backward, name: str) -> "Tensor":
    """Wraps an op's output, recording the node when some input needs grad."""
    t = Tensor.__new__(Tensor)
    t.data = data if type(data) is np.ndarray else np.asarray(data)
    t.grad = None
    t._retain = False
    if _GradMode.enabled:
        for p in inputs:
            if p.requires_grad:
                t.requires_grad = True
                t.grad_fn = Node(name, inputs, backward)
                return t
    t.requires_grad = False
    t.grad_fn = None
    return t


def _shape_err(op: str, a: np.ndarray, b: np.ndarray) -> ValueError:
    return ValueError(f"{op}: shapes {a.shape} and {b.shape} cannot be broadcast together")


def _binary_forward(op: str, ufunc, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    try:
        return ufunc(a, b)
    except ValueError:
        raise _shape_err(op, a, b) from None


def _normalize_dim(op: str, dim: int, ndim: int) -> int:
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{op}: dim must be an int, given {type(dim).__name__}")
    d = int(dim)
    lo, hi = (-ndim, ndim - 1) if ndim > 0 else (-1, 0)
    if not lo <= d <= hi:
        raise IndexError(f"{op}: dimension out of range (expected to be in range of [{lo}, {hi}], but got {d})")
    return d % ndim if ndim > 0 else 0


def _normalize_axes(op: str, dim: Any, ndim: int) -> Optional[tuple]:
    if dim is None:
        return None
    if isinstance(dim, (list, tuple)):
        axes = tuple(sorted({_normalize_dim(op, d, ndim) for d in dim}))
        if len(axes) != len(dim):
            raise ValueError(f"{op}: dim {tuple(dim)} names a dimension twice")
        return axes
    return (_normalize_dim(op, dim, ndim),)


def _pick(op: str, dim: Any, axis: Any, keepdim: bool, keepdims: Optional[bool]) -> tuple:
    if axis is not None:
        if dim is not None:
            raise TypeError(f"{op}: give dim or axis, not both")
        dim = axis
    if keepdims is not None:
        keepdim = keepdims
    return dim, bool(keepdim)


# ----------------------------------------------------------------------------- Tensor


class Tensor:
    """An n-dimensional array of float32 (default) or float64 that records its history.

    ``data`` is the NumPy array holding the values; ``grad`` the accumulated gradient
    (a Tensor of the same shape, or None); ``grad_fn`` the node that made it (None for
    leaves). Build tensors with :func:`ferrograd.tensor` and friends.
    """

    __slots__ = ("data", "requires_grad", "grad", "grad_fn", "_retain", "__weakref__")
    __array_priority__ = 1000  # make ``ndarray op Tensor`` call the Tensor's reflected op

    def __init__(self, data: TensorLike, requires_grad: bool = False, dtype: Any = None) -> None:
        self.data = _as_array(data, _resolve_dtype(dtype), copy=True)
        self.grad: Optional[Tensor] = None
        self.grad_fn: Optional[Node] = None
        self._retain = False
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _wrap(cls, data: np.ndarray) -> "Tensor":
        """A leaf around ``data`` without copying or checking (internal)."""
        t = cls.__new__(cls)
        t.data = data
        t.grad = None
        t.grad_fn = None
        t.requires_grad = False
        t._retain = False
        return t

    # ---- properties
    @property
    def shape(self) -> tuple:
        """The shape, a tuple of ints."""
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        """The NumPy dtype (``ferrograd.float32`` or ``ferrograd.float64``)."""
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def is_leaf(self) -> bool:
        """True for tensors not made by a recorded op."""
        return self.grad_fn is None

    @property
    def T(self) -> "Tensor":
        """The tensor with its dimensions reversed (the transpose of a matrix)."""
        return self.permute(*reversed(range(self.ndim)))

    def dim(self) -> int:
        return self.data.ndim

    def size(self, dim: Optional[int] = None) -> Union[tuple, int]:
        """The shape, or the size of dimension ``dim``."""
        if dim is None:
            return self.data.shape
        return self.data.shape[_normalize_dim("size", dim, self.ndim)]

    def numel(self) -> int:
        return int(self.data.size)

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    # ---- conversion
    def numpy(self) -> np.ndarray:
        """The underlying NumPy array (no copy: writes to it change the tensor)."""
        return self.data

    def item(self) -> Union[float, int, bool]:
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(
                f"item: only one-element tensors can be converted to Python scalars, given shape {self.shape}"
            )
        return self.data.reshape(()).item()

    def tolist(self) -> Any:
        return self.data.tolist()

    def detach(self) -> "Tensor":
        """A new leaf sharing this tensor's data, cut off from the graph."""
        return Tensor._wrap(self.data)

    def clone(self) -> "Tensor":
        """A copy of the data that stays in the graph (gradient passes straight through)."""
        return _make(self.data.copy(), (self,), lambda g: (g,), "CloneBackward")

    def to(self, dtype: Any) -> "Tensor":
        """This tensor cast to ``dtype`` (float32 or float64); differentiable."""
        d = _resolve_dtype(dtype)
        if d == self.data.dtype:
            return self
        src = self.data.dtype
        return _make(self.data.astype(d), (self,), lambda g: (g.astype(src),), "ToCopyBackward")

    def float(self) -> "Tensor":
        if self.data.dtype.kind in "biu":
            return Tensor._wrap(self.data.astype(float32))
        return self.to(float32)

    def double(self) -> "Tensor":
        if self.data.dtype.kind in "biu":
            return Tensor._wrap(self.data.astype(float64))
        return self.to(float64)

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        """Sets ``requires_grad`` on a leaf in place and returns it."""
        if requires_grad and self.data.dtype not in _FLOATS:
            raise RuntimeError(
                f"only floating-point tensors can require gradients, given dtype {self.data.dtype}"
            )
        if not requires_grad and self.grad_fn is not None:
            raise RuntimeError("requires_grad_: you can only change requires_grad of leaf tensors")
        self.requires_grad = bool(requires_grad)
        return self

    def retain_grad(self) -> None:
        """Keeps ``.grad`` on this non-leaf tensor after backward."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad: can't retain_grad on a tensor that has requires_grad=False")
        self._retain = True

    def zero_(self) -> "Tensor":
        self.data[...] = 0
        return self

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise RuntimeError(
                f"Boolean value of a tensor with {self.data.size} values is ambiguous"
            )
        return bool(self.data.reshape(()))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        if dtype is not None:
            return self.data.astype(dtype)
        return self.data

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        for i in range(self.data.shape[0]):
            yield self[i]

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        body = np.array2string(
            self.data, separator=", ", prefix="tensor(", precision=4, threshold=1000, edgeitems=3
        )
        extras = []
        if self.data.dtype != float32:
            extras.append(f"dtype={self.data.dtype}")
        if self.grad_fn is not None:
            extras.append(f"grad_fn=<{self.grad_fn.name}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        tail = "".join(", " + e for e in extras)
        return f"tensor({body}{tail})"

    # ---- autograd
    def backward(
        self, gradient: Optional[TensorLike] = None, retain_graph: bool = False
    ) -> None:
        """Accumulates the gradient of this tensor w.r.t. every leaf in ``.grad``.

        A tensor with more than one element needs ``gradient`` (same shape). The graph's
        saved values are freed afterwards unless ``retain_graph=True``.
        """
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"grad can be implicitly created only for scalar outputs; this tensor has "
                    f"shape {self.shape}: pass backward(gradient) with that shape"
                )
            g = np.ones(self.data.shape, dtype=self.data.dtype)
        else:
            g = _as_array(gradient, self.data.dtype, copy=False)
            if g.shape != self.data.shape:
                raise ValueError(
                    f"backward: gradient has shape {g.shape}, expected the tensor's shape {self.shape}"
                )
        if not self.requires_grad:
            raise RuntimeError(
                "element 0 of tensors does not require grad and does not have a grad_fn"
            )
        run_backward(self, g, retain_graph)

    # ---- arithmetic
    def __add__(self, other: Any) -> "Tensor":
        return add(self, other)

    def __radd__(self, other: Any) -> "Tensor":
        return add(_other(other, self), self)

    def __sub__(self, other: Any) -> "Tensor":
        return sub(self, other)

    def __rsub__(self, other: Any) -> "Tensor":
        return sub(_other(other, self), self)

    def __mul__(self, other: Any) -> "Tensor":
        return mul(self, other)

    def __rmul__(self, other: Any) -> "Tensor":
        return mul(_other(other, self), self)

    def __truediv__(self, other: Any) -> "Tensor":
        return div(self, other)

    def __rtruediv__(self, other: Any) -> "Tensor":
        return div(_other(other, self), self)

    def __pow__(self, other: Any) -> "Tensor":
        return pow(self, other)

    def __rpow__(self, other: Any) -> "Tensor":
        return pow(_other(other, self), self)

    def __neg__(self) -> "Tensor":
        return neg(self)

    def __pos__(self) -> "Tensor":
        return self

    def __abs__(self) -> "Tensor":
        return abs(self)

    def __matmul__(self, other: Any) -> "Tensor":
        return matmul(self, other)

    def __rmatmul__(self, other: Any) -> "Tensor":
        return matmul(_other(other, self), self)

    # ---- comparisons (no grad)
    def _cmp(self, other: Any, ufunc, op: str) -> "Tensor":
        o = other.data if isinstance(other, Tensor) else other
        try:
            return Tensor._wrap(np.asarray(ufunc(self.data, o)))
        except ValueError:
            raise _shape_err(op, self.data, np.asarray(o)) from None

    def __lt__(self, other: Any) -> "Tensor":
        return self._cmp(other, np.less, "lt")

    def __le__(self, other: Any) -> "Tensor":
        return self._cmp(other, np.less_equal, "le")

    def __gt__(self, other: Any) -> "Tensor":
        return self._cmp(other, np.greater, "gt")

    def __ge__(self, other: Any) -> "Tensor":
        return self._cmp(other, np.greater_equal, "ge")

    def __eq__(self, other: Any) -> "Tensor":  # type: ignore[override]
        return self._cmp(other, np.equal, "eq")

    def __ne__(self, other: Any) -> "Tensor":  # type: ignore[override]
        return self._cmp(other, np.not_equal, "ne")

    # ---- methods forwarding to the ops below
    def matmul(self, other: Any) -> "Tensor":
        return matmul(self, other)

    def sum(self, dim: Any = None, keepdim: bool = False, *, axis: Any = None, keepdims: Optional[bool] = None) -> "Tensor":
        return sum(self, dim, keepdim, axis=axis, keepdims=keepdims)

    def mean(self, dim: Any = None, keepdim: bool = False, *, axis: Any = None, keepdims: Optional[bool] = None) -> "Tensor":
        return mean(self, dim, keepdim, axis=axis, keepdims=keepdims)

    def max(self, dim: Any = None, keepdim: bool = False, *, axis: Any = None, keepdims: Optional[bool] = None):
        return max(self, dim, keepdim, axis=axis, keepdims=keepdims)

    def min(self, dim: Any = None, keepdim: bool = False, *, axis: Any = None, keepdims: Optional[bool] = None):
        return min(self, dim, keepdim, axis=axis, keepdims=keepdims)

    def amax(self, dim: Any = None, keepdim: bool = False) -> "Tensor":
        return amax(self, dim, keepdim)

    def amin(self, dim: Any = None, keepdim: bool = False) -> "Tensor":
        return amin(self, dim, keepdim)

    def argmax(self, dim: Optional[int] = None, keepdim: bool = False) -> "Tensor":
        return argmax(self, dim, keepdim)

    def argmin(self, dim: Optional[int] = None, keepdim: bool = False) -> "Tensor":
        return argmin(self, dim, keepdim)

    def reshape(self, *shape: Any) -> "Tensor":
        return reshape(self, *shape)

    view = reshape

    def transpose(self, dim0: int, dim1: int) -> "Tensor":
        return transpose(self, dim0, dim1)

    def permute(self, *dims: Any) -> "Tensor":
        return permute(self, *dims)

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> "Tensor":
        return flatten(self, start_dim, end_dim)

    def squeeze(self, dim: Any = None) -> "Tensor":
        return squeeze(self, dim)

    def unsqueeze(self, dim: int) -> "Tensor":
        return unsqueeze(self, dim)

    def expand(self, *shape: Any) -> "Tensor":
        return expand(self, *shape)

    def __getitem__(self, index: Any) -> "Tensor":
        return getitem(self, index)

    def exp(self) -> "Tensor":
        return exp(self)

    def log(self) -> "Tensor":
        return log(self)

    def sqrt(self) -> "Tensor":
        return sqrt(self)

    def abs(self) -> "Tensor":
        return abs(self)

    def clip(self, min: Optional[Number] = None, max: Optional[Number] = None) -> "Tensor":
        return clip(self, min, max)

    clamp = clip

    def relu(self) -> "Tensor":
        return relu(self)

    def sigmoid(self) -> "Tensor":
        return sigmoid(self)

    def tanh(self) -> "Tensor":
        return tanh(self)

    def softmax(self, dim: int = -1) -> "Tensor":
        return softmax(self, dim)

    def log_softmax(self, dim: int = -1) -> "Tensor":
        return log_softmax(self, dim)


# ----------------------------------------------------------------------------- creation


def tensor(data: TensorLike, requires_grad: bool = False, dtype: Any = None) -> Tensor:
    """A new leaf tensor holding a copy of ``data`` (float32 unless ``data`` is float64
    or ``dtype`` says otherwise; ints and bools become float32)."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def from_numpy(arr: np.ndarray) -> Tensor:
    """A tensor sharing ``arr``'s memory (float32 or float64 arrays only)."""
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, given {type(arr).__name__}")
    if arr.dtype not in _FLOATS:
        raise TypeError(f"from_numpy: expected a float32 or float64 array, given dtype {arr.dtype}")
    return Tensor._wrap(arr)


def _size(op: str, size: tuple) -> tuple:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    out = []
    for s in size:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)):
            raise TypeError(f"{op}: sizes must be ints, given {s!r}")
        if s < 0:
            raise ValueError(f"{op}: sizes must be non-negative, given {tuple(size)}")
        out.append(int(s))
    return tuple(out)


def _leaf(arr: np.ndarray, requires_grad: bool) -> Tensor:
    t = Tensor._wrap(arr)
    if requires_grad:
        t.requires_grad_(True)
    return t


def zeros(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros of shape ``size``."""
    return _leaf(np.zeros(_size("zeros", size), _resolve_dtype(dtype) or float32), requires_grad)


def ones(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of ones of shape ``size``."""
    return _leaf(np.ones(_size("ones", size), _resolve_dtype(dtype) or float32), requires_grad)


def full(size: Any, fill_value: Number, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of shape ``size`` filled with ``fill_value``."""
    size = _size("full", size if isinstance(size, (tuple, list)) else (size,))
    return _leaf(np.full(size, fill_value, _resolve_dtype(dtype) or float32), requires_grad)


def zeros_like(t: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return zeros(*t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad)


def ones_like(t: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return ones(*t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad)


def eye(n: int, m: Optional[int] = None, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """The (n, m) identity matrix (m defaults to n)."""
    n, m = _size("eye", (n, n if m is None else m))
    return _leaf(np.eye(n, m, dtype=_resolve_dtype(dtype) or float32), requires_grad)


def arange(start: Number, end: Optional[Number] = None, step: Number = 1, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Values from ``start`` (inclusive) to ``end`` (exclusive) spaced by ``step``."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    return _leaf(np.arange(start, end, step, dtype=_resolve_dtype(dtype) or float32), requires_grad)


def linspace(start: Number, end: Number, steps: int, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """``steps`` values evenly spaced from ``start`` to ``end`` inclusive."""
    return _leaf(np.linspace(start, end, int(steps), dtype=_resolve_dtype(dtype) or float32), requires_grad)


def rand(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Uniform samples on [0, 1) of shape ``size``, from the library generator."""
    d = _resolve_dtype(dtype) or float32
    return _leaf(generator().random(_size("rand", size), dtype=d), requires_grad)


def randn(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples of shape ``size``, from the library generator."""
    d = _resolve_dtype(dtype) or float32
    return _leaf(generator().standard_normal(_size("randn", size), dtype=d), requires_grad)


def rand_like(t: Tensor, dtype: Any = None) -> Tensor:
    return rand(*t.shape, dtype=dtype or t.dtype)


def randn_like(t: Tensor, dtype: Any = None) -> Tensor:
    return randn(*t.shape, dtype=dtype or t.dtype)


def _t(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor._wrap(_as_array(x, copy=False))


# ----------------------------------------------------------------------------- arithmetic


def add(a: TensorLike, b: TensorLike) -> Tensor:
    """a + b with broadcasting."""
    a = _t(a)
    b = _other(b, a)
    sa, sb = a.data.shape, b.data.shape

    def backward(g):
        return _unbroadcast(g, sa), _unbroadcast(g, sb)

    return _make(_binary_forward("add", np.add, a.data, b.data), (a, b), backward, "AddBackward")


def sub(a: TensorLike, b: TensorLike) -> Tensor:
    """a - b with broadcasting."""
    a = _t(a)
    b = _other(b, a)
    sa, sb = a.data.shape, b.data.shape

    def backward(g):
        return _unbroadcast(g, sa), (_unbroadcast(-g, sb) if b.requires_grad else None)

    return _make(_binary_forward("sub", np.subtract, a.data, b.data), (a, b), backward, "SubBackward")


def mul(a: TensorLike, b: TensorLike) -> Tensor:
    """a * b (element-wise) with broadcasting."""
    a = _t(a)
    b = _other(b, a)
    ad, bd = a.data, b.data

    def backward(g):
        return (
            _unbroadcast(g * bd, ad.shape) if a.requires_grad else None,
            _unbroadcast(g * ad, bd.shape) if b.requires_grad else None,
        )

    return _make(_binary_forward("mul", np.multiply, ad, bd), (a, b), backward, "MulBackward")


def div(a: TensorLike, b: TensorLike) -> Tensor:
    """a / b (true division) with broadcasting; x / 0 gives inf or nan as IEEE 754 says."""
    a = _t(a)
    b = _other(b, a)
    ad, bd = a.data, b.data
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = _binary_forward("div", np.divide, ad, bd)

    def backward(g):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            ga = _unbroadcast(g / bd, ad.shape) if a.requires_grad else None
            gb = _unbroadcast(-g * out / bd, bd.shape) if b.requires_grad else None
        return ga, gb

    return _make(out, (a, b), backward, "DivBackward")


def neg(a: TensorLike) -> Tensor:
    """-a."""
    a = _t(a)
    return _make(np.negative(a.data), (a,), lambda g: (-g,), "NegBackward")


def pow(a: TensorLike, b: TensorLike) -> Tensor:
    """a ** b with broadcasting. For a tensor exponent the gradient w.r.t. it is
    a**b * log(a), taken as 0 where a == 0 (PyTorch's convention)."""
    a = _t(a)
    if isinstance(b, (int, float)) and not isinstance(b, bool):
        ad, p = a.data, float(b)
        if p == 2.0:
            out = np.multiply(ad, ad)

            def backward2(g):
                return (g * (2.0 * ad).astype(ad.dtype, copy=False),)

            return _make(out, (a,), backward2, "PowBackward")
        with np.errstate(all="ignore"):
            out = np.power(ad, np.asarray(p, ad.dtype))

        def backward(g):
            if p == 0.0:
                return (np.zeros_like(g),)
            with np.errstate(all="ignore"):
                return (g * (p * np.power(ad, np.asarray(p - 1.0, ad.dtype))),)

        return _make(out, (a,), backward, "PowBackward")
    b = _other(b, a)
    ad, bd = a.data, b.data
    with np.errstate(all="ignore"):
        out = _binary_forward("pow", np.power, ad, bd)

    def backward_t(g):
        with np.errstate(all="ignore"):
            ga = gb = None
            if a.requires_grad:
                ga = _unbroadcast(g * bd * np.power(ad, bd - 1), ad.shape)
            if b.requires_grad:
                lg = np.where(ad == 0, 0, np.log(np.where(ad == 0, 1, ad)))
                gb = _unbroadcast(g * out * lg, bd.shape)
        return ga, gb

    return _make(out, (a, b), backward_t, "PowBackward")


# ----------------------------------------------------------------------------- matmul


def _contig_t(x: np.ndarray, trans: bool) -> tuple:
    """A C-contiguous array and transpose flag describing the same matrix (batch) as x."""
    if x.flags.c_contiguous:
        return x, trans
    sw = np.swapaxes(x, -1, -2)
    if sw.flags.c_contiguous:
        return sw, not trans
    return np.ascontiguousarray(x), trans


def _mm(a: np.ndarray, b: np.ndarray, ta: bool = False, tb: bool = False) -> np.ndarray:
    """op(a) @ op(b) for 2-D arrays: (m, n). The kernel reads C- or F-contiguous arrays
    in place; other layouts and mixed dtypes are converted first."""
    try:
        return _native.mm(a, b, ta, tb)
    except (TypeError, ValueError):
        if a.dtype != b.dtype:
            dt = np.promote_types(a.dtype, b.dtype)
            a, b = a.astype(dt), b.astype(dt)
        if not (a.flags.c_contiguous or a.flags.f_contiguous):
            a = np.ascontiguousarray(a)
        if not (b.flags.c_contiguous or b.flags.f_contiguous):
            b = np.ascontiguousarray(b)
        return _native.mm(a, b, ta, tb)


def _gemm3(a: np.ndarray, b: np.ndarray, ta: bool, tb: bool) -> np.ndarray:
    """op(a) @ op(b) for a, b of 2 or 3 dims (batch 1 or B) -> (m, n) if both are 2-D,
    else (B, m, n)."""
    if a.ndim == 2 and b.ndim == 2:
        return _mm(a, b, ta, tb)
    if a.dtype != b.dtype:
        dt = np.promote_types(a.dtype, b.dtype)
        a, b = a.astype(dt), b.astype(dt)
    a, ta = _contig_t(a, ta)
    b, tb = _contig_t(b, tb)
    m = a.shape[-1] if ta else a.shape[-2]
    n = b.shape[-2] if tb else b.shape[-1]
    if a.ndim == 2 and b.ndim == 2:
        c = np.empty((m, n), dtype=a.dtype)
    else:
        batch = builtins.max(a.shape[0] if a.ndim == 3 else 1, b.shape[0] if b.ndim == 3 else 1)
        c = np.empty((batch, m, n), dtype=a.dtype)
    _native.gemm(ta, tb, 1.0, a, b, 0.0, c)
    return c


def _prod(shape: tuple) -> int:
    return math.prod(shape)


def _as3(x: np.ndarray, bx: tuple, bshape: tuple) -> np.ndarray:
    """x (..., r, c) as a 3-D batch: (1, r, c) when it has no batch dims, else broadcast
    to ``bshape`` and flattened to (prod(bshape), r, c)."""
    if not bx:
        return x[None]
    if bx != bshape:
        x = np.broadcast_to(x, bshape + x.shape[-2:])
    return x.reshape((_prod(bshape),) + x.shape[-2:])


def _bmm(x: np.ndarray, y: np.ndarray, tx: bool = False, ty: bool = False) -> np.ndarray:
    """op(x) @ op(y) for arrays of >= 2 dims with broadcast batch dims (no checks)."""
    if x.ndim == 2 and y.ndim == 2:
        return _gemm3(x, y, tx, ty)
    bx, by = x.shape[:-2], y.shape[:-2]
    m = x.shape[-1] if tx else x.shape[-2]
    n = y.shape[-2] if ty else y.shape[-1]
    if not by and not tx:
        # (..., m, k) @ (k, n): one GEMM with the batch folded into the rows.
        k = x.shape[-1]
        c = _gemm3(x.reshape(_prod(x.shape[:-1]), k), y, False, ty)
        return c.reshape(bx + (m, n))
    bshape = np.broadcast_shapes(bx, by)
    c = _gemm3(_as3(x, bx, bshape), _as3(y, by, bshape), tx, ty)
    return c.reshape(bshape + (m, n))


def matmul(a: TensorLike, b: TensorLike) -> Tensor:
    """Matrix product with NumPy/PyTorch semantics: 1-D vectors, 2-D matrices, and
    batches (..., m, k) @ (..., k, n) with broadcast batch dimensions."""
    a = _t(a)
    b = _other(b, a)
    A, B = a.data, b.data
    if A.ndim == 2 and B.ndim == 2:
        try:
            out2 = _native.mm(A, B)  # the common case: one call, no Python-side checks
        except (TypeError, ValueError):
            if A.shape[1] != B.shape[0]:
                raise ValueError(
                    f"matmul: shapes {A.shape} and {B.shape} are not aligned ({A.shape[1]} (dim 1) != {B.shape[0]} (dim 0))"
                ) from None
            out2 = _mm(A, B)

        def backward2(g):
            return (
                _mm(g, B, False, True) if a.requires_grad else None,
                _mm(A, g, True, False) if b.requires_grad else None,
            )

        return _make(out2, (a, b), backward2, "MmBackward")
    if A.ndim == 0 or B.ndim == 0:
        raise ValueError(f"matmul: both arguments need at least 1 dimension, given shapes {A.shape} and {B.shape}")
    a1, b1 = A.ndim == 1, B.ndim == 1
    A2 = A[None, :] if a1 else A
    B2 = B[:, None] if b1 else B
    if A2.shape[-1] != B2.shape[-2]:
        raise ValueError(
            f"matmul: shapes {A.shape} and {B.shape} are not aligned "
            f"({A2.shape[-1]} (dim {A.ndim - 1}) != {B2.shape[-2]} (dim {builtins.max(B.ndim - 2, 0)}))"
        )
    if A2.ndim > 2 and B2.ndim > 2:
        try:
            np.broadcast_shapes(A2.shape[:-2], B2.shape[:-2])
        except ValueError:
            raise ValueError(f"matmul: batch dimensions of shapes {A.shape} and {B.shape} cannot be broadcast") from None
    C = _bmm(A2, B2)
    out = C
    if a1:
        out = out[..., 0, :]
    if b1:
        out = out[..., 0]

    def backward(g):
        g2 = g
        if b1:
            g2 = g2[..., None]
        if a1:
            g2 = g2[..., None, :]
        ga = gb = None
        if a.requires_grad:
            ga = _unbroadcast(_bmm(g2, B2, ty=True), A2.shape).reshape(A.shape)
        if b.requires_grad:
            if B2.ndim == 2:
                k, n = B2.shape
                rows = _prod(A2.shape[:-1])
                gb = _gemm3(A2.reshape(rows, k), g2.reshape(rows, n), True, False)
            else:
                gb = _unbroadcast(_bmm(A2, g2, tx=True), B2.shape)
            gb = gb.reshape(B.shape)
        return ga, gb

    return _make(out if out.flags.c_contiguous else np.ascontiguousarray(out), (a, b), backward, "MmBackward")


# ----------------------------------------------------------------------------- reductions


def _merge_runs(axes: tuple) -> list:
    """Groups sorted axes into runs of consecutive ones: (0, 1, 3) -> [[0, 1], [3]]."""
    runs: list = []
    for ax in axes:
        if runs and runs[-1][-1] == ax - 1:
            runs[-1].append(ax)
        else:
            runs.append([ax])
    return runs


def _reduce_data(op: str, x: np.ndarray, axes: tuple) -> np.ndarray:
    """Sum or mean of x over ``axes`` (sorted, unique) through the Rust kernel; the
    reduced axes are removed. Consecutive axes are merged into one kernel call."""
    x = _contig(x)
    for run in reversed(_merge_runs(axes)):
        lo, hi = run[0], run[-1]
        shape = x.shape[:lo] + (math.prod(x.shape[lo : hi + 1]),) + x.shape[hi + 1 :]
        x = _native.reduce(op, x.reshape(shape), lo)
    return x


def _keep_shape(shape: tuple, axes: tuple) -> tuple:
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


def _expand_back(g: np.ndarray, shape: tuple, keep_shape: tuple) -> np.ndarray:
    """The gradient of a reduction, g, spread back over the reduced axes."""
    out = np.empty(shape, dtype=g.dtype)
    np.copyto(out, g.reshape(keep_shape))
    return out


def sum(x: TensorLike, dim: Any = None, keepdim: bool = False, *, axis: Any = None, keepdims: Optional[bool] = None) -> Tensor:
    """Sum over ``dim`` (an int, a tuple, or None for all); ``keepdim`` keeps them as 1."""
    x = _t(x)
    if axis is not None or keepdims is not None:
        dim, keepdim = _pick("sum", dim, axis, keepdim, keepdims)
    xd = x.data
    shape = xd.shape
    if dim is None:
        axes = tuple(range(xd.ndim))
        out = _native.reduce("sum", _contig(xd).reshape(-1), 0)
    else:
        axes = _normalize_axes("sum", dim, xd.ndim)
        out = _reduce_data("sum", xd, axes) if axes else xd.copy()
    keep_shape = _keep_shape(shape, axes)
    if keepdim:
        out = out.reshape(keep_shape)

    def backward(g):
        return (_expand_back(g, shape, keep_shape),)

    return _make(out, (x,), backward, "SumBackward")


def mean(x: TensorLike, dim: Any = None, keepdim: bool = False, *, axis: Any = None, keepdims: Optional[bool] = None) -> Tensor:
    """Mean over ``dim`` (an int, a tuple, or None for all); empty gives nan."""
    x = _t(x)
    dim, keepdim = _pick("mean", dim, axis, keepdim, keepdims)
    shape = x.data.shape
    axes = _normalize_axes("mean", dim, x.ndim)
    if axes is None:
        axes = tuple(range(x.ndim))
    if not axes:
        out = x.data.copy()
        count = 1
    else:
        count = math.prod(shape[i] for i in axes)
        x0 = _contig(x.data)
        runs = _merge_runs(axes)
        if len(runs) == 1:
            out = _reduce_data("mean", x0, axes)
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                out = _reduce_data("sum", x0, axes) / np.asarray(count, x0.dtype)
    keep_shape = _keep_shape(shape, axes)
    if keepdim:
        out = out.reshape(keep_shape)
    dt = x.data.dtype

    def backward(g):
        with np.errstate(invalid="ignore", divide="ignore"):
            return (_expand_back(g / np.asarray(count, dt), shape, keep_shape),)

    return _make(out, (x,), backward, "MeanBackward")


def _arg_reduce(op: str, x: np.ndarray, dim: int) -> tuple:
    if x.shape[dim] == 0:
        raise ValueError(f"{op}: cannot reduce over dimension {dim} of size 0 (shape {x.shape})")
    return _native.reduce(op, _contig(x), dim)


def _minmax(op: str, x: TensorLike, dim: Any, keepdim: bool, axis: Any, keepdims: Optional[bool]):
    x = _t(x)
    dim, keepdim = _pick(op, dim, axis, keepdim, keepdims)
    if dim is None or isinstance(dim, (tuple, list)):
        return _amaxmin(op, x, dim, keepdim)
    d = _normalize_dim(op, dim, x.ndim)
    if x.ndim == 0:
        v = _make(x.data.copy(), (x,), lambda g: (g,), f"{op.capitalize()}Backward")
        return values_indices(v, Tensor._wrap(np.zeros((), np.int64)))
    vals, idx = _arg_reduce(op, x.data, d)
    shape = x.data.shape
    if keepdim:
        vals = np.expand_dims(vals, d)
        idx = np.expand_dims(idx, d)
    idx_k = idx if keepdim else np.expand_dims(idx, d)

    def backward(g):
        gk = g if keepdim else np.expand_dims(g, d)
        gx = np.zeros(shape, dtype=g.dtype)
        np.put_along_axis(gx, idx_k, gk, axis=d)
        return (gx,)

    values = _make(vals, (x,), backward, f"{op.capitalize()}Backward")
    return values_indices(values, Tensor._wrap(idx))


def _amaxmin(op: str, x: Tensor, dim: Any, keepdim: bool) -> Tensor:
    """Max/min over several (or all) dims; the gradient is shared evenly among ties."""
    shape = x.data.shape
    axes = _normalize_axes(op, dim, x.ndim)
    if axes is None:
        axes = tuple(range(x.ndim))
    if any(shape[a] == 0 for a in axes):
        raise ValueError(f"{op}: cannot reduce an empty dimension (shape {shape}, dims {axes})")
    data = _contig(x.data)
    for a in reversed(axes):
        data = _native.reduce(op, _contig(data), a)[0]
    out = data
    outk = out.reshape(tuple(1 if i in axes else s for i, s in enumerate(shape)))
    if keepdim:
        out = outk
    xd = x.data

    def backward(g):
        mask = xd == outk
        count = mask.sum(axis=axes, keepdims=True)
        gk = g if keepdim else np.expand_dims(g, axes)
        return ((mask * (gk / np.maximum(count, 1))).astype(xd.dtype, copy=False),)

    return _make(out, (x,), backward, f"{op.capitalize()}Backward")


def max(x: TensorLike, dim: Any = None, keepdim: bool = False, *, axis: Any = None, keepdims: Optional[bool] = None):
    """Maximum. With one int ``dim``: a (values, indices) pair as in PyTorch; with None or a
    tuple of dims: the values only. NaN propagates; ties give the first index."""
    return _minmax("max", x, dim, keepdim, axis, keepdims)


def min(x: TensorLike, dim: Any = None, keepdim: bool = False, *, axis: Any = None, keepdims: Optional[bool] = None):
    """Minimum; see :func:`max`."""
    return _minmax("min", x, dim, keepdim, axis, keepdims)


def amax(x: TensorLike, dim: Any = None, keepdim: bool = False) -> Tensor:
    """Maximum values over ``dim`` (int, tuple or None); ties share the gradient."""
    return _amaxmin("max", _t(x), dim, keepdim)


def amin(x: TensorLike, dim: Any = None, keepdim: bool = False) -> Tensor:
    """Minimum values over ``dim`` (int, tuple or None); ties share the gradient."""
    return _amaxmin("min", _t(x), dim, keepdim)


def _argext(op: str, x: TensorLike, dim: Optional[int], keepdim: bool) -> Tensor:
    x = _t(x)
    if dim is None:
        if x.data.size == 0:
            raise ValueError(f"arg{op}: cannot take arg{op} of an empty tensor")
        _, idx = _native.reduce(op, _contig(x.data).reshape(-1), 0)
        return Tensor._wrap(idx.reshape((1,) * x.ndim) if keepdim else idx)
    d = _normalize_dim(f"arg{op}", dim, x.ndim)
    _, idx = _arg_reduce(op, x.data, d)
    return Tensor._wrap(np.expand_dims(idx, d) if keepdim else idx)


def argmax(x: TensorLike, dim: Optional[int] = None, keepdim: bool = False) -> Tensor:
    """Indices (int64) of the maxima along ``dim`` (of the flattened tensor if None)."""
    return _argext("max", x, dim, keepdim)


def argmin(x: TensorLike, dim: Optional[int] = None, keepdim: bool = False) -> Tensor:
    """Indices (int64) of the minima along ``dim`` (of the flattened tensor if None)."""
    return _argext("min", x, dim, keepdim)


# ----------------------------------------------------------------------------- shape


def reshape(x: TensorLike, *shape: Any) -> Tensor:
    """The same values in a new shape (one entry may be -1)."""
    x = _t(x)
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    src = x.data.shape
    try:
        out = x.data.reshape(shape)
    except (ValueError, TypeError) as e:
        raise ValueError(f"reshape: cannot reshape a tensor of shape {src} into {tuple(shape)} ({e})") from None
    return _make(out, (x,), lambda g: (g.reshape(src),), "ReshapeBackward")


def transpose(x: TensorLike, dim0: int, dim1: int) -> Tensor:
    """Swaps dimensions ``dim0`` and ``dim1``."""
    x = _t(x)
    d0 = _normalize_dim("transpose", dim0, x.ndim)
    d1 = _normalize_dim("transpose", dim1, x.ndim)
    if x.ndim == 0:
        return _make(x.data, (x,), lambda g: (g,), "TransposeBackward")
    return _make(np.swapaxes(x.data, d0, d1), (x,), lambda g: (np.swapaxes(g, d0, d1),), "TransposeBackward")


def permute(x: TensorLike, *dims: Any) -> Tensor:
    """Reorders the dimensions: output dim i is input dim ``dims[i]``."""
    x = _t(x)
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    if len(dims) != x.ndim:
        raise ValueError(f"permute: expected {x.ndim} dims for a tensor of shape {x.shape}, given {tuple(dims)}")
    perm = tuple(_normalize_dim("permute", d, x.ndim) for d in dims)
    if len(set(perm)) != len(perm):
        raise ValueError(f"permute: dims {tuple(dims)} repeat a dimension")
    inv = tuple(np.argsort(perm)) if perm else ()
    return _make(np.transpose(x.data, perm), (x,), lambda g: (np.transpose(g, inv),), "PermuteBackward")


def flatten(x: TensorLike, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merges dimensions ``start_dim`` .. ``end_dim`` (inclusive) into one."""
    x = _t(x)
    if x.ndim == 0:
        return reshape(x, (1,))
    s = _normalize_dim("flatten", start_dim, x.ndim)
    e = _normalize_dim("flatten", end_dim, x.ndim)
    if s > e:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    shp = x.shape
    return reshape(x, shp[:s] + (int(np.prod(shp[s : e + 1], dtype=np.int64)),) + shp[e + 1 :])


def squeeze(x: TensorLike, dim: Any = None) -> Tensor:
    """Removes dimensions of size 1 (all of them, or those in ``dim`` that are 1)."""
    x = _t(x)
    if dim is None:
        shape = tuple(s for s in x.shape if s != 1)
    else:
        axes = _normalize_axes("squeeze", dim, x.ndim) or ()
        shape = tuple(s for i, s in enumerate(x.shape) if not (i in axes and s == 1))
    return reshape(x, shape)


def unsqueeze(x: TensorLike, dim: int) -> Tensor:
    """Inserts a dimension of size 1 at ``dim`` (in range [-ndim-1, ndim])."""
    x = _t(x)
    d = _normalize_dim("unsqueeze", dim, x.ndim + 1)
    return reshape(x, x.shape[:d] + (1,) + x.shape[d:])


def expand(x: TensorLike, *shape: Any) -> Tensor:
    """A broadcast view to ``shape`` (-1 keeps a dimension); gradients are summed back."""
    x = _t(x)
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    lead = len(shape) - x.ndim
    if lead < 0:
        raise ValueError(f"expand: cannot expand shape {x.shape} to {tuple(shape)}")
    target = tuple(x.shape[i - lead] if s == -1 and i >= lead else s for i, s in enumerate(shape))
    src = x.shape
    try:
        out = np.broadcast_to(x.data, target)
    except ValueError:
        raise ValueError(f"expand: cannot expand shape {src} to {tuple(shape)}") from None
    return _make(out, (x,), lambda g: (_unbroadcast(g, src),), "ExpandBackward")


def _index_arrays(index: Any) -> Any:
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    if isinstance(index, list):
        return np.asarray(index)
    return index


def _is_basic(index: Any) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(
        i is None or i is Ellipsis or isinstance(i, slice) or (isinstance(i, (int, np.integer)) and not isinstance(i, bool))
        for i in items
    )


def getitem(x: TensorLike, index: Any) -> Tensor:
    """``x[index]`` with ints, slices, None, Ellipsis, integer arrays and boolean masks.
    Repeated integer indices accumulate their gradients."""
    x = _t(x)
    idx = _index_arrays(index)
    try:
        out = x.data[idx]
    except IndexError as e:
        raise IndexError(f"getitem: {e} (tensor of shape {x.shape})") from None
    basic = _is_basic(idx)
    shape, dt = x.data.shape, x.data.dtype

    def backward(g):
        gx = np.zeros(shape, dtype=dt)
        if basic:
            gx[idx] = g
        else:
            np.add.at(gx, idx, g)
        return (gx,)

    if basic:
        out = out.copy() if isinstance(out, np.ndarray) else np.asarray(out)
    return _make(np.asarray(out), (x,), backward, "IndexBackward")


def cat(tensors: Sequence[TensorLike], dim: int = 0) -> Tensor:
    """Concatenates tensors along an existing dimension ``dim``."""
    ts = [_t(t) for t in tensors]
    if not ts:
        raise ValueError("cat: expected a non-empty sequence of tensors")
    d = _normalize_dim("cat", dim, ts[0].ndim)
    try:
        out = np.concatenate([t.data for t in ts], axis=d)
    except ValueError:
        raise ValueError(
            f"cat: tensors must match in every dimension but {d}, given shapes {[t.shape for t in ts]}"
        ) from None
    splits = np.cumsum([t.shape[d] for t in ts])[:-1]

    def backward(g):
        return tuple(np.split(g, splits, axis=d))

    return _make(out, tuple(ts), backward, "CatBackward")


concatenate = cat


def stack(tensors: Sequence[TensorLike], dim: int = 0) -> Tensor:
    """Stacks tensors of one shape along a new dimension ``dim``."""
    ts = [_t(t) for t in tensors]
    if not ts:
        raise ValueError("stack: expected a non-empty sequence of tensors")
    shapes = {t.shape for t in ts}
    if len(shapes) != 1:
        raise ValueError(f"stack: expected tensors of one shape, given shapes {[t.shape for t in ts]}")
    d = _normalize_dim("stack", dim, ts[0].ndim + 1)
    out = np.stack([t.data for t in ts], axis=d)

    def backward(g):
        return tuple(np.take(g, i, axis=d) for i in range(len(ts)))

    return _make(out, tuple(ts), backward, "StackBackward")


# ----------------------------------------------------------------------------- element-wise


def _unary_native(name: str, x: TensorLike, p1: float = 0.0, p2: float = 0.0, node: str = "") -> Tensor:
    x = _t(x)
    xd = _contig(x.data)
    y = _native.unary(name, xd, p1, p2)

    def backward(g):
        return (_native.unary_backward(name, xd, y, _contig(g.astype(xd.dtype, copy=False)), p1, p2),)

    return _make(y, (x,), backward, node)


def exp(x: TensorLike) -> Tensor:
    """e ** x, element-wise (Rust kernel)."""
    return _unary_native("exp", x, node="ExpBackward")


def log(x: TensorLike) -> Tensor:
    """Natural logarithm, element-wise (log 0 = -inf, log of a negative = nan)."""
    return _unary_native("log", x, node="LogBackward")


def relu(x: TensorLike) -> Tensor:
    """max(x, 0); its gradient at 0 is 0."""
    return _unary_native("relu", x, node="ReluBackward")


def leaky_relu(x: TensorLike, negative_slope: float = 0.01) -> Tensor:
    """x where x > 0, else negative_slope * x."""
    return _unary_native("leaky_relu", x, float(negative_slope), node="LeakyReluBackward")


def sigmoid(x: TensorLike) -> Tensor:
    """1 / (1 + exp(-x)), stable for large |x|."""
    return _unary_native("sigmoid", x, node="SigmoidBackward")


def tanh(x: TensorLike) -> Tensor:
    """Hyperbolic tangent."""
    return _unary_native("tanh", x, node="TanhBackward")


def softsign(x: TensorLike) -> Tensor:
    """x / (1 + |x|)."""
    return _unary_native("softsign", x, node="SoftsignBackward")


def softplus(x: TensorLike, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta x)) / beta, and x itself where beta x > threshold (PyTorch's)."""
    if beta == 0:
        raise ValueError("softplus: beta must be nonzero")
    return _unary_native("softplus", x, float(beta), float(threshold), node="SoftplusBackward")


def _softmax_impl(x: TensorLike, dim: int, log: bool) -> Tensor:
    x = _t(x)
    name = "log_softmax" if log else "softmax"
    if x.ndim == 0:
        y0 = np.zeros((), x.data.dtype) if log else np.ones((), x.data.dtype)
        return _make(y0, (x,), lambda g: (np.zeros_like(g),), "SoftmaxBackward")
    d = _normalize_dim(name, dim, x.ndim)
    last = d == x.ndim - 1
    xd = _contig(x.data if last else np.swapaxes(x.data, d, -1))
    y = _native.softmax(xd, log)
    out = y if last else np.swapaxes(y, d, -1)

    def backward(g):
        gl = g if last else np.swapaxes(g, d, -1)
        gx = _native.softmax_backward(y, _contig(gl.astype(y.dtype, copy=False)), log)
        return (gx if last else np.swapaxes(gx, d, -1),)

    return _make(out, (x,), backward, "LogSoftmaxBackward" if log else "SoftmaxBackward")


def softmax(x: TensorLike, dim: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along ``dim``, computed max-subtracted (Rust kernel)."""
    return _softmax_impl(x, dim, False)


def log_softmax(x: TensorLike, dim: int = -1) -> Tensor:
    """x - logsumexp(x) along ``dim``, computed max-subtracted (Rust kernel)."""
    return _softmax_impl(x, dim, True)


def sqrt(x: TensorLike) -> Tensor:
    """Square root (nan for negatives)."""
    x = _t(x)
    with np.errstate(invalid="ignore"):
        out = np.sqrt(x.data)

    def backward(g):
        with np.errstate(divide="ignore", invalid="ignore"):
            return (g / (2 * out),)

    return _make(out, (x,), backward, "SqrtBackward")


def abs(x: TensorLike) -> Tensor:
    """|x|; its gradient is sign(x) (0 at 0)."""
    x = _t(x)
    xd = x.data
    return _make(np.abs(xd), (x,), lambda g: (g * np.sign(xd),), "AbsBackward")


def clip(x: TensorLike, min: Optional[Number] = None, max: Optional[Number] = None) -> Tensor:
    """Limits values to [min, max]; the gradient passes where min <= x <= max."""
    x = _t(x)
    if min is None and max is None:
        raise ValueError("clip: at least one of min and max must be given")
    xd = x.data
    lo = -np.inf if min is None else min
    hi = np.inf if max is None else max
    out = np.clip(xd, lo, hi).astype(xd.dtype, copy=False)

    def backward(g):
        return (g * ((xd >= lo) & (xd <= hi)),)

    return _make(out, (x,), backward, "ClampBackward")


clamp = clip


def where(condition: TensorLike, a: TensorLike, b: TensorLike) -> Tensor:
    """Element-wise ``a`` where ``condition`` holds, else ``b`` (all broadcast)."""
    cond = condition.data if isinstance(condition, Tensor) else np.asarray(condition)
    cond = cond.astype(bool, copy=False)
    if not isinstance(a, Tensor) and isinstance(b, Tensor):
        a = _other(a, b)
    a = _t(a)
    b = _other(b, a)
    try:
        out = np.where(cond, a.data, b.data)
    except ValueError:
        raise ValueError(
            f"where: shapes {cond.shape}, {a.shape} and {b.shape} cannot be broadcast together"
        ) from None
    sa, sb = a.data.shape, b.data.shape

    def backward(g):
        zero = np.zeros((), g.dtype)
        return (
            _unbroadcast(np.where(cond, g, zero), sa) if a.requires_grad else None,
            _unbroadcast(np.where(cond, zero, g), sb) if b.requires_grad else None,
        )

    return _make(out, (a, b), backward, "WhereBackward")


def _extremum(op: str, a: TensorLike, b: TensorLike) -> Tensor:
    a = _t(a)
    b = _other(b, a)
    ad, bd = a.data, b.data
    ufunc = np.maximum if op == "maximum" else np.minimum
    out = _binary_forward(op, ufunc, ad, bd)

    def backward(g):
        wins = (ad > bd) if op == "maximum" else (ad < bd)
        wa = wins + 0.5 * (ad == bd)
        return (
            _unbroadcast(g * wa, ad.shape).astype(ad.dtype, copy=False) if a.requires_grad else None,
            _unbroadcast(g * (1.0 - wa), bd.shape).astype(bd.dtype, copy=False) if b.requires_grad else None,
        )

    return _make(out, (a, b), backward, "MaximumBackward" if op == "maximum" else "MinimumBackward")


def maximum(a: TensorLike, b: TensorLike) -> Tensor:
    """Element-wise maximum; where equal, each side gets half the gradient."""
    return _extremum("maximum", a, b)


def minimum(a: TensorLike, b: TensorLike) -> Tensor:
    """Element-wise minimum; where equal, each side gets half the gradient."""
    return _extremum("minimum", a, b)
