"""Convolutions as differentiable ops: ``conv1d``, ``conv2d``, ``conv_transpose2d``.

Names, argument orders, defaults and shapes follow ``torch.nn.functional`` (NCHW; conv
weight (out_channels, in_channels / groups, kH, kW); transposed-conv weight (in_channels,
out_channels / groups, kH, kW)). Each op is one recorded node: the forward and the backward
call one Rust kernel each (im2col + GEMM, see ``rust/kernels/src/conv.rs``), with the GIL
released. ``conv1d`` is ``conv2d`` on a height-1 view; a 3-D input to ``conv2d`` (2-D to
``conv1d``) is one unbatched sample, as in PyTorch.

Bad input (wrong rank or channel count, kernel larger than the padded input, stride or
dilation below 1, groups not dividing the channels, an empty output) raises ValueError
naming the op (or the layer) and the expected and given shapes.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np

from .. import _native
from ..autograd.grad_mode import _GradMode
from ..tensor import Tensor, _as_array, _contig, _make

__all__ = ["conv1d", "conv2d", "conv_transpose2d"]

IntOrPair = Union[int, Sequence[int]]
Padding = Union[int, Sequence[int], str]


def _is_int(v: Any) -> bool:
    """True for a Python or NumPy integer (bool excluded)."""
    return not isinstance(v, bool) and isinstance(v, (int, np.integer))


def _ints(layer: str, name: str, v: Any, n: int, minimum: Optional[int] = None) -> Tuple[int, ...]:
    """``v`` (an int, or a sequence of 1 or ``n`` ints) as an n-tuple of ints, each at
    least ``minimum`` when given. The one parser of the conv and pool arguments."""
    if _is_int(v):
        t: Tuple[Any, ...] = (v,)
    else:
        try:
            t = tuple(v)
        except TypeError:
            t = ()
        if not t or len(t) not in (1, n) or not all(_is_int(e) for e in t):
            raise ValueError(f"{layer}: {name} must be an int or a tuple of {n} ints, given {v!r}")
    t = tuple(int(e) for e in t) * (n if len(t) == 1 else 1)
    if minimum is not None and any(e < minimum for e in t):
        raise ValueError(f"{layer}: {name} must be at least {minimum}, given {v!r}")
    return t


def _same_pads(kernel: Tuple[int, ...], dilation: Tuple[int, ...]) -> Tuple[Tuple[int, int], ...]:
    """PyTorch's split of 'same' padding: total d * (k - 1), the smaller half first."""
    out = []
    for k, d in zip(kernel, dilation):
        total = d * (k - 1)
        out.append((total // 2, total - total // 2))
    return tuple(out)


def _resolve_padding(
    layer: str, padding: Padding, kernel: Tuple[int, ...], stride: Tuple[int, ...], dilation: Tuple[int, ...]
) -> Tuple[Tuple[int, int], ...]:
    """Padding (int, tuple, 'same' or 'valid') as (before, after) per spatial dim."""
    n = len(kernel)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * n
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"{layer}: padding='same' is not supported for strided convolutions (stride {stride})")
            return _same_pads(kernel, dilation)
        raise ValueError(f"{layer}: padding must be an int, a tuple, 'same' or 'valid', given {padding!r}")
    p = _ints(layer, "padding", padding, n, 0)
    return tuple((e, e) for e in p)


def _input(layer: str, input: Any, weight: Tensor) -> Tensor:
    wd = weight.data
    if isinstance(input, Tensor):
        if input.data.dtype != wd.dtype:
            raise TypeError(
                f"{layer}: input has dtype {input.data.dtype} but the weight has {wd.dtype}; convert one "
                f"(x.to({wd.dtype}) or module.to({input.data.dtype}))"
            )
        return input
    return Tensor._wrap(_as_array(input, wd.dtype, copy=False))


def _check_bias(layer: str, bias: Optional[Tensor], n: int, dtype: np.dtype) -> None:
    if bias is None:
        return
    if not isinstance(bias, Tensor):
        raise TypeError(f"{layer}: bias must be a Tensor or None, given {type(bias).__name__}")
    if bias.data.shape != (n,):
        raise ValueError(f"{layer}: bias must have shape ({n},), given {bias.data.shape}")
    if bias.data.dtype != dtype:
        raise TypeError(f"{layer}: bias has dtype {bias.data.dtype} but the weight has {dtype}")


def _spatial_check(
    layer: str,
    xshape: tuple,
    sizes: Tuple[int, ...],
    pads: Tuple[Tuple[int, int], ...],
    kernel: Tuple[int, ...],
    dilation: Tuple[int, ...],
) -> None:
    for size, (a, b), k, d in zip(sizes, pads, kernel, dilation):
        if size + a + b < d * (k - 1) + 1:
            padded = tuple(s + p0 + p1 for s, (p0, p1) in zip(sizes, pads))
            eff = tuple(dd * (kk - 1) + 1 for kk, dd in zip(kernel, dilation))
            raise ValueError(
                f"{layer}: the kernel {kernel} (dilated size {eff}) is larger than the padded input "
                f"{padded}; input shape {xshape}"
            )


def _conv_nd(
    layer: str,
    nd: int,
    input: Any,
    weight: Tensor,
    bias: Optional[Tensor],
    stride: IntOrPair,
    padding: Padding,
    dilation: IntOrPair,
    groups: int,
) -> Tensor:
    """conv1d (nd = 1) or conv2d (nd = 2), run as one 2-D kernel call."""
    if not isinstance(weight, Tensor):
        raise TypeError(f"{layer}: weight must be a Tensor, given {type(weight).__name__}")
    x = _input(layer, input, weight)
    xd, wd = x.data, weight.data
    letters = "L" if nd == 1 else "H, W"
    if wd.ndim != nd + 2:
        raise ValueError(
            f"{layer}: weight must be {nd + 2}-D (out_channels, in_channels / groups, {'kL' if nd == 1 else 'kH, kW'}), "
            f"given shape {wd.shape}"
        )
    if xd.ndim not in (nd + 1, nd + 2):
        raise ValueError(
            f"{layer}: expected a {nd + 2}-D input (N, C, {letters}) or {nd + 1}-D (C, {letters}), given shape {xd.shape}"
        )
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"{layer}: groups must be a positive int, given {groups!r}")
    groups = int(groups)
    k_out, cg = wd.shape[0], wd.shape[1]
    kernel = tuple(int(s) for s in wd.shape[2:])
    if k_out % groups != 0:
        raise ValueError(f"{layer}: groups ({groups}) must divide out_channels ({k_out}); weight shape {wd.shape}")
    st = _ints(layer, "stride", stride, nd, 1)
    dil = _ints(layer, "dilation", dilation, nd, 1)
    pads = _resolve_padding(layer, padding, kernel, st, dil)
    batched = xd.ndim == nd + 2
    c = xd.shape[1] if batched else xd.shape[0]
    if c != cg * groups:
        raise ValueError(
            f"{layer}: input has {c} channels, shape {xd.shape}; expected {cg * groups} "
            f"(weight {wd.shape} with groups={groups})"
        )
    sizes = xd.shape[-nd:]
    _spatial_check(layer, xd.shape, sizes, pads, kernel, dil)
    _check_bias(layer, bias, k_out, wd.dtype)
    # The 4-D views the kernel sees.
    x4 = xd if batched else xd[None]
    w4 = wd
    if nd == 1:
        x4 = x4[:, :, None, :]
        w4 = wd[:, :, None, :]
        st, dil = (1,) + st, (1,) + dil
        pads = ((0, 0),) + pads
    x4, w4 = _contig(x4), _contig(w4)
    pad4 = (pads[0][0], pads[0][1], pads[1][0], pads[1][1])
    bd = None if bias is None else bias.data
    y4 = _native.conv2d(x4, w4, bd, st, pad4, dil, groups)
    yshape = y4.shape[:2] + y4.shape[3:] if nd == 1 else y4.shape
    if not batched:
        yshape = yshape[1:]
    y = y4.reshape(yshape)
    if not _GradMode.enabled:
        return Tensor._wrap(y)
    inputs = (x, weight) if bias is None else (x, weight, bias)
    need = (x.requires_grad, weight.requires_grad, bias is not None and bias.requires_grad)
    xshape, wshape, y4shape = xd.shape, wd.shape, y4.shape

    def backward(g):
        g4 = g if g.shape == y4shape else g.reshape(y4shape)
        g4 = np.ascontiguousarray(g4, dtype=wd.dtype)
        dx, dw, db = _native.conv2d_backward(x4, w4, g4, st, pad4, dil, groups, *need)
        # Reshape only when needed: a fresh array (not a view) is kept as .grad uncopied.
        if dx is not None and dx.shape != xshape:
            dx = dx.reshape(xshape)
        if dw is not None and dw.shape != wshape:
            dw = dw.reshape(wshape)
        return (dx, dw) if bias is None else (dx, dw, db)

    return _make(y, inputs, backward, "ConvolutionBackward")


def conv2d(
    input: Any,
    weight: Tensor,
    bias: Optional[Tensor] = None,
    stride: IntOrPair = 1,
    padding: Padding = 0,
    dilation: IntOrPair = 1,
    groups: int = 1,
) -> Tensor:
    """2-D convolution (cross-correlation, as PyTorch), forward and backward in Rust.

    input: (N, C, H, W) or unbatched (C, H, W); weight: (K, C / groups, kH, kW); bias: (K,)
    or None. stride, dilation: int or (h, w) >= 1; padding: int, (h, w), 'valid' or 'same'
    (stride 1 only; an odd total is split with the extra row / column after, as PyTorch).
    Returns (N, K, OH, OW) with OH = (H + 2 pH - dH (kH - 1) - 1) // sH + 1 (likewise OW).
    """
    return _conv_nd("conv2d", 2, input, weight, bias, stride, padding, dilation, groups)


def conv1d(
    input: Any,
    weight: Tensor,
    bias: Optional[Tensor] = None,
    stride: IntOrPair = 1,
    padding: Padding = 0,
    dilation: IntOrPair = 1,
    groups: int = 1,
) -> Tensor:
    """1-D convolution: input (N, C, L) or (C, L); weight (K, C / groups, kL); bias (K,) or
    None. Returns (N, K, OL), OL = (L + 2 p - d (kL - 1) - 1) // s + 1. Runs as conv2d on a
    height-1 view (no copy)."""
    return _conv_nd("conv1d", 1, input, weight, bias, stride, padding, dilation, groups)


def conv_transpose2d(
    input: Any,
    weight: Tensor,
    bias: Optional[Tensor] = None,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    output_padding: IntOrPair = 0,
    groups: int = 1,
    dilation: IntOrPair = 1,
) -> Tensor:
    """2-D transposed convolution (the gradient of conv2d with respect to its input).

    input: (N, Cin, H, W) or (Cin, H, W); weight: (Cin, Cout / groups, kH, kW); bias:
    (Cout,) or None. Returns (N, Cout, OH, OW) with OH = (H - 1) sH - 2 pH + dH (kH - 1) +
    output_padding_h + 1 (likewise OW); output_padding must be smaller than the stride or
    the dilation. Argument order as PyTorch (groups before dilation).
    """
    return _conv_transpose("conv_transpose2d", input, weight, bias, stride, padding, output_padding, groups, dilation)


def _conv_transpose(
    layer: str,
    input: Any,
    weight: Tensor,
    bias: Optional[Tensor],
    stride: IntOrPair,
    padding: IntOrPair,
    output_padding: IntOrPair,
    groups: int,
    dilation: IntOrPair,
) -> Tensor:
    if not isinstance(weight, Tensor):
        raise TypeError(f"{layer}: weight must be a Tensor, given {type(weight).__name__}")
    x = _input(layer, input, weight)
    xd, wd = x.data, weight.data
    if wd.ndim != 4:
        raise ValueError(f"{layer}: weight must be 4-D (in_channels, out_channels / groups, kH, kW), given shape {wd.shape}")
    if xd.ndim not in (3, 4):
        raise ValueError(f"{layer}: expected a 4-D input (N, C, H, W) or 3-D (C, H, W), given shape {xd.shape}")
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"{layer}: groups must be a positive int, given {groups!r}")
    groups = int(groups)
    if isinstance(padding, str):
        raise ValueError(f"{layer}: padding must be an int or a tuple of 2 ints, given {padding!r}")
    st = _ints(layer, "stride", stride, 2, 1)
    dil = _ints(layer, "dilation", dilation, 2, 1)
    pad = _ints(layer, "padding", padding, 2, 0)
    opad = _ints(layer, "output_padding", output_padding, 2, 0)
    cin, cog = wd.shape[0], wd.shape[1]
    if cin % groups != 0:
        raise ValueError(f"{layer}: groups ({groups}) must divide in_channels ({cin}); weight shape {wd.shape}")
    batched = xd.ndim == 4
    c = xd.shape[1] if batched else xd.shape[0]
    if c != cin:
        raise ValueError(f"{layer}: input has {c} channels, shape {xd.shape}; expected {cin} (weight {wd.shape})")
    for o, s, d in zip(opad, st, dil):
        if o >= max(s, d):
            raise ValueError(
                f"{layer}: output_padding {opad} must be smaller than either stride {st} or dilation {dil}"
            )
    kernel = wd.shape[2:]
    out = tuple((i - 1) * s - 2 * p + d * (k - 1) + o + 1 for i, s, p, d, k, o in zip(xd.shape[-2:], st, pad, dil, kernel, opad))
    if any(o < 1 for o in out) or 0 in xd.shape[-2:]:
        raise ValueError(
            f"{layer}: the output would be empty ({out}): input shape {xd.shape}, kernel {tuple(kernel)}, "
            f"stride {st}, padding {pad}, dilation {dil}"
        )
    _check_bias(layer, bias, cog * groups, wd.dtype)
    x4 = _contig(xd if batched else xd[None])
    w4 = _contig(wd)
    bd = None if bias is None else bias.data
    y4 = _native.conv_transpose2d(x4, w4, bd, st, pad, opad, dil, groups)
    y = y4 if batched else y4[0]
    if not _GradMode.enabled:
        return Tensor._wrap(y)
    inputs = (x, weight) if bias is None else (x, weight, bias)
    need = (x.requires_grad, weight.requires_grad, bias is not None and bias.requires_grad)
    xshape, y4shape = xd.shape, y4.shape

    def backward(g):
        g4 = g if g.shape == y4shape else g.reshape(y4shape)
        g4 = np.ascontiguousarray(g4, dtype=wd.dtype)
        dx, dw, db = _native.conv_transpose2d_backward(x4, w4, g4, st, pad, opad, dil, groups, *need)
        if dx is not None and dx.shape != xshape:
            dx = dx.reshape(xshape)
        return (dx, dw) if bias is None else (dx, dw, db)

    return _make(y, inputs, backward, "ConvolutionBackward")
