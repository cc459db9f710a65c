"""Pooling layers: ``MaxPool2d``, ``MinPool2d``, ``AvgPool2d``, ``AdaptiveAvgPool2d``,
``MaxPool1d``, ``AvgPool1d`` with PyTorch's arguments and defaults (stride defaults to
kernel_size). Input (N, C, H, W) or (C, H, W) for the 2-D layers, (N, C, L) or (C, L) for
the 1-D ones; the work runs in Rust (see :mod:`ferrograd.nn.functional_pool`)."""

from __future__ import annotations

from typing import Any, Optional

from . import functional_pool as FP
from .module import Module

__all__ = ["MaxPool2d", "MinPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "MaxPool1d", "MinPool1d", "AvgPool1d"]


class _ExtremumPool(Module):
    _fn: Any = None

    def __init__(
        self,
        kernel_size: Any,
        stride: Optional[Any] = None,
        padding: Any = 0,
        dilation: Any = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if (stride is not None) else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def forward(self, input: Any) -> Any:
        return type(self)._fn(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
            self.ceil_mode,
            self.return_indices,
            layer=f"{type(self).__name__}({self.extra_repr()})",
        )

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        )


class MaxPool2d(_ExtremumPool):
    """2-D max pooling; ``return_indices=True`` also returns int64 indices ``h * W + w``.

    Shapes: (N, C, H, W) -> (N, C, OH, OW), OH = floor((H + 2 padding - dilation
    (kernel_size - 1) - 1) / stride) + 1 (ceil with ``ceil_mode``)."""

    _fn = staticmethod(FP.max_pool2d)


class MinPool2d(_ExtremumPool):
    """2-D min pooling (as :class:`MaxPool2d` with the minimum)."""

    _fn = staticmethod(FP.min_pool2d)


class MaxPool1d(_ExtremumPool):
    """1-D max pooling: (N, C, L) -> (N, C, OL)."""

    _fn = staticmethod(FP.max_pool1d)


class MinPool1d(_ExtremumPool):
    """1-D min pooling: (N, C, L) -> (N, C, OL)."""

    _fn = staticmethod(FP.min_pool1d)


class AvgPool2d(Module):
    """2-D average pooling. ``count_include_pad`` divides by the window size including
    padding; ``divisor_override`` fixes the divisor. (N, C, H, W) -> (N, C, OH, OW)."""

    def __init__(
        self,
        kernel_size: Any,
        stride: Optional[Any] = None,
        padding: Any = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: Optional[int] = None,
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if (stride is not None) else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    def forward(self, input: Any) -> Any:
        return FP.avg_pool2d(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
            self.divisor_override,
            layer=f"AvgPool2d({self.extra_repr()})",
        )

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool1d(Module):
    """1-D average pooling: (N, C, L) -> (N, C, OL)."""

    def __init__(
        self,
        kernel_size: Any,
        stride: Optional[Any] = None,
        padding: Any = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if (stride is not None) else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad

    def forward(self, input: Any) -> Any:
        return FP.avg_pool1d(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
            layer=f"AvgPool1d({self.extra_repr()})",
        )

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Adaptive 2-D average pooling to ``output_size`` (an int or a pair; None keeps that
    input size): (N, C, H, W) -> (N, C, OH, OW)."""

    def __init__(self, output_size: Any) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, input: Any) -> Any:
        return FP.adaptive_avg_pool2d(input, self.output_size, layer=f"AdaptiveAvgPool2d({self.extra_repr()})")

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
