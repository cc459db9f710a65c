"""Convolution layers: ``Conv1d``, ``Conv2d``, ``ConvTranspose2d`` (PyTorch's names,
arguments, defaults, weight layouts and initialisation, so weights move between the two).

Shapes (NCHW): Conv2d input (N, C_in, H, W) or (C_in, H, W) -> (N, C_out, H_out, W_out);
weight (C_out, C_in / groups, kH, kW), bias (C_out,). Conv1d the same without H.
ConvTranspose2d weight (C_in, C_out / groups, kH, kW). Weights and biases are drawn from
the library generator as PyTorch does: kaiming_uniform_(a = √5) for the weight, and
U(-1/√fan_in, 1/√fan_in) for the bias, fan_in = weight.shape[1] * kH * kW.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np

from ..tensor import Tensor, _resolve_dtype
from . import functional_conv as FC
from . import init
from .module import Module, Parameter

__all__ = ["Conv1d", "Conv2d", "ConvTranspose2d"]

_MODES = ("zeros", "reflect", "replicate", "circular")


def _count(layer: str, name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{layer}: {name} must be a positive int, given {v!r}")
    return int(v)


class _ConvNd(Module):
    """Shared parameters, checks and initialisation of the convolution layers."""

    _nd = 2
    _transposed = False

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Union[int, Sequence[int]],
        stride: Union[int, Sequence[int]],
        padding: Union[int, Sequence[int], str],
        dilation: Union[int, Sequence[int]],
        groups: int,
        bias: bool,
        padding_mode: str,
        output_padding: Union[int, Sequence[int]] = 0,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        nd = self._nd
        self.in_channels = _count(name, "in_channels", in_channels)
        self.out_channels = _count(name, "out_channels", out_channels)
        self.groups = _count(name, "groups", groups)
        if self.in_channels % self.groups != 0:
            raise ValueError(f"{name}: in_channels ({in_channels}) must be divisible by groups ({groups})")
        if self.out_channels % self.groups != 0:
            raise ValueError(f"{name}: out_channels ({out_channels}) must be divisible by groups ({groups})")
        self.kernel_size = FC._ints(name, "kernel_size", kernel_size, nd, 1)
        self.stride = FC._ints(name, "stride", stride, nd, 1)
        self.dilation = FC._ints(name, "dilation", dilation, nd, 1)
        if padding_mode not in _MODES:
            raise ValueError(f"{name}: padding_mode must be one of {_MODES}, given {padding_mode!r}")
        if self._transposed and padding_mode != "zeros":
            raise ValueError(f"{name}: only 'zeros' padding_mode is supported, given {padding_mode!r}")
        self.padding_mode = padding_mode
        if isinstance(padding, str):
            if self._transposed or padding not in ("same", "valid"):
                raise ValueError(f"{name}: padding must be an int, a tuple{', same or valid' if not self._transposed else ''}, given {padding!r}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError(f"{name}: padding='same' is not supported for strided convolutions")
            self.padding: Union[str, Tuple[int, ...]] = padding
        else:
            self.padding = FC._ints(name, "padding", padding, nd, 0)
        self.output_padding = FC._ints(name, "output_padding", output_padding, nd, 0)
        # (before, after) per spatial dim, as F.pad wants them (last dim first).
        if self.padding == "same":
            pads = FC._same_pads(self.kernel_size, self.dilation)
        elif self.padding == "valid":
            pads = ((0, 0),) * nd
        else:
            pads = tuple((p, p) for p in self.padding)
        self._pads = pads
        self._reversed_padding_repeated_twice = tuple(v for pr in reversed(pads) for v in pr)
        dt = _resolve_dtype(dtype) or np.dtype(np.float32)
        if self._transposed:
            wshape = (self.in_channels, self.out_channels // self.groups) + self.kernel_size
        else:
            wshape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        self.weight = Parameter(np.empty(wshape, dtype=dt))
        if bias:
            self.bias = Parameter(np.empty((self.out_channels,), dtype=dt))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-draws weight and bias from the library generator (PyTorch's defaults)."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            init.uniform_(self.bias, -bound, bound)

    def _layer(self) -> str:
        return f"{type(self).__name__}(in_channels={self.in_channels})"

    def _check_input(self, input: Any) -> None:
        """Rank and channel count, with the layer named in the error."""
        shape = tuple(input.data.shape) if isinstance(input, Tensor) else tuple(np.shape(input))
        nd = self._nd
        spatial = "L" if nd == 1 else "H, W"
        if len(shape) not in (nd + 1, nd + 2):
            raise ValueError(
                f"{self._layer()}: expected a {nd + 2}-D input (N, {self.in_channels}, {spatial}) or {nd + 1}-D "
                f"({self.in_channels}, {spatial}), given shape {shape}"
            )
        c = shape[1] if len(shape) == nd + 2 else shape[0]
        if c != self.in_channels:
            raise ValueError(f"{self._layer()}: input has {c} channels, shape {shape}")

    def _pad_input(self, input: Any) -> Any:
        """Explicit padding for the non-zero padding modes (then the conv pads nothing)."""
        shape = tuple(input.data.shape) if isinstance(input, Tensor) else tuple(np.shape(input))
        sizes = shape[-self._nd :]
        for size, (a, b) in zip(sizes, self._pads):
            if self.padding_mode == "reflect" and max(a, b) >= size:
                raise ValueError(
                    f"{self._layer()}: reflect padding {max(a, b)} must be smaller than the input size {size}; "
                    f"input shape {shape}"
                )
            if self.padding_mode == "circular" and max(a, b) > size:
                raise ValueError(
                    f"{self._layer()}: circular padding {max(a, b)} must not exceed the input size {size}; "
                    f"input shape {shape}"
                )
        from . import functional as F

        pad = getattr(F, "pad", None)
        if pad is None:  # pragma: no cover - until F.pad lands
            raise NotImplementedError(f"{self._layer()}: padding_mode={self.padding_mode!r} needs F.pad")
        if not isinstance(input, Tensor):
            input = Tensor._wrap(np.asarray(input, dtype=self.weight.data.dtype))
        return pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        nd = self._nd
        if self.padding != (0,) * nd:
            s += f", padding={self.padding!r}" if isinstance(self.padding, str) else f", padding={self.padding}"
        if self.dilation != (1,) * nd:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * nd:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv2d(_ConvNd):
    """2-D convolution over (N, C_in, H, W) (or unbatched (C_in, H, W)).

    Args: in_channels, out_channels, kernel_size (int or (kH, kW)), stride=1, padding=0
    (int, (pH, pW), 'valid' or 'same'; 'same' needs stride 1), dilation=1, groups=1,
    bias=True, padding_mode='zeros' ('reflect', 'replicate', 'circular' pad explicitly
    first), dtype (float32 default or float64).

    Output (N, C_out, H_out, W_out), H_out = (H + 2 pH - dH (kH - 1) - 1) // sH + 1.
    """

    _nd = 2

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Union[int, Sequence[int]],
        stride: Union[int, Sequence[int]] = 1,
        padding: Union[int, Sequence[int], str] = 0,
        dilation: Union[int, Sequence[int]] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        dtype: Any = None,
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode, dtype=dtype
        )

    def forward(self, input: Any) -> Tensor:
        self._check_input(input)
        layer = self._layer()
        if self.padding_mode != "zeros":
            input = self._pad_input(input)
            return FC._conv_nd(layer, 2, input, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        pad = self.padding if isinstance(self.padding, str) else self.padding
        return FC._conv_nd(layer, 2, input, self.weight, self.bias, self.stride, pad, self.dilation, self.groups)


class Conv1d(_ConvNd):
    """1-D convolution over (N, C_in, L) (or unbatched (C_in, L)); the same arguments as
    :class:`Conv2d` with one spatial dim; weight (C_out, C_in / groups, kL)."""

    _nd = 1

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Union[int, Sequence[int]],
        stride: Union[int, Sequence[int]] = 1,
        padding: Union[int, Sequence[int], str] = 0,
        dilation: Union[int, Sequence[int]] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        dtype: Any = None,
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode, dtype=dtype
        )

    def forward(self, input: Any) -> Tensor:
        self._check_input(input)
        layer = self._layer()
        if self.padding_mode != "zeros":
            input = self._pad_input(input)
            return FC._conv_nd(layer, 1, input, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        return FC._conv_nd(layer, 1, input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class ConvTranspose2d(_ConvNd):
    """2-D transposed convolution (decoders, generators): the gradient of a Conv2d with
    respect to its input.

    Args: in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0
    (smaller than stride or dilation), groups=1, bias=True, dilation=1,
    padding_mode='zeros' (the only mode, as in PyTorch), dtype.

    Input (N, C_in, H, W) -> (N, C_out, H_out, W_out), H_out = (H - 1) sH - 2 pH +
    dH (kH - 1) + output_padding + 1; ``forward(input, output_size)`` picks the
    output_padding that gives ``output_size``. Weight (C_in, C_out / groups, kH, kW).
    """

    _nd = 2
    _transposed = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Union[int, Sequence[int]],
        stride: Union[int, Sequence[int]] = 1,
        padding: Union[int, Sequence[int]] = 0,
        output_padding: Union[int, Sequence[int]] = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: Union[int, Sequence[int]] = 1,
        padding_mode: str = "zeros",
        dtype: Any = None,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            groups,
            bias,
            padding_mode,
            output_padding=output_padding,
            dtype=dtype,
        )
        for o, s, d in zip(self.output_padding, self.stride, self.dilation):
            if o >= max(s, d):
                raise ValueError(
                    f"ConvTranspose2d: output_padding {self.output_padding} must be smaller than either stride "
                    f"{self.stride} or dilation {self.dilation}"
                )

    def forward(self, input: Any, output_size: Optional[Sequence[int]] = None) -> Tensor:
        self._check_input(input)
        opad = self.output_padding
        if output_size is not None:
            opad = self._output_padding_for(input, output_size)
        return FC._conv_transpose(
            self._layer(), input, self.weight, self.bias, self.stride, self.padding, opad, self.groups, self.dilation
        )

    def _output_padding_for(self, input: Any, output_size: Sequence[int]) -> Tuple[int, ...]:
        shape = tuple(input.data.shape) if isinstance(input, Tensor) else tuple(np.shape(input))
        want = tuple(int(v) for v in output_size)[-2:]
        out = []
        for i, (size, w) in enumerate(zip(shape[-2:], want)):
            s, p, d, k = self.stride[i], self.padding[i], self.dilation[i], self.kernel_size[i]
            lo = (size - 1) * s - 2 * p + d * (k - 1) + 1
            if not lo <= w < lo + s:
                raise ValueError(
                    f"{self._layer()}: requested output size {tuple(want)} is not reachable from input shape "
                    f"{shape}: expected each between {lo} and {lo + s - 1}"
                )
            out.append(w - lo)
        return tuple(out)
