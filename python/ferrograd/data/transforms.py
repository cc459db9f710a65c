"""Augmentation and preprocessing for image batches (``ferrograd.data.transforms``).

Every transform takes NumPy arrays or :class:`ferrograd.Tensor` s laid out as

- (N, C, H, W): a batch; each of the N images gets its own random draw,
- (C, H, W): one image (what ``TensorDataset.__getitem__`` hands a transform),
- (H, W): one single-channel image,

and returns the same type and shape (a new array; the input is never modified). They plug
into the data pipeline as ``TensorDataset(X, y, transform=...)`` (a DataLoader then passes
each batch of shape (B, C, H, W) through it, drawing fresh randomness every epoch) or
:class:`~ferrograd.data.TransformDataset`, or are called directly on a batch.

All randomness comes from the library generator (``ferrograd._random.generator()``) at
call time, or from a ``generator=`` given to the transform, so ``ferrograd.manual_seed``
reproduces every draw. Geometric transforms are vectorised over the batch (fancy indexing
or one bilinear gather), with no per-pixel or per-sample Python loop.

>>> from ferrograd.data import transforms as T
>>> aug = T.Compose([T.RandomAffine(degrees=10, translate=(1, 1)), T.GaussianNoise(0.05)])
>>> ds = TensorDataset(X.reshape(-1, 1, 8, 8), y, transform=aug)
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import numpy as np

from .._random import generator as _library_generator
from ..tensor import Tensor
from . import GaussianNoise  # noqa: F401  (elementwise, so per-sample by construction; re-exported)

__all__ = [
    "Compose",
    "RandomHorizontalFlip",
    "RandomVerticalFlip",
    "RandomTranslation",
    "RandomCrop",
    "RandomAffine",
    "RandomRotation",
    "GaussianNoise",
    "Normalize",
]

Number = Union[int, float]


# ----------------------------------------------------------------------------- helpers


def _to_batch(x: Any, name: str) -> Tuple[np.ndarray, bool, int]:
    """Returns (array as (N, C, H, W), input was a Tensor, number of leading dims added)."""
    is_t = isinstance(x, Tensor)
    arr = x.data if is_t else np.asarray(x)
    if arr.ndim == 4:
        return arr, is_t, 0
    if arr.ndim == 3:
        return arr[None], is_t, 1
    if arr.ndim == 2:
        return arr[None, None], is_t, 2
    raise ValueError(
        f"{name}: expected an image batch (N, C, H, W), one image (C, H, W) or (H, W), "
        f"given an array of shape {tuple(arr.shape)}"
    )


def _from_batch(out: np.ndarray, is_t: bool, added: int) -> Any:
    if added:
        out = out.reshape(out.shape[added:])
    out = np.ascontiguousarray(out)
    return Tensor._wrap(out) if is_t else out


def _float_dtype(arr: np.ndarray) -> np.dtype:
    return arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float32)


def _gen(g: Optional[np.random.Generator]) -> np.random.Generator:
    return g if g is not None else _library_generator()


def _pair(v: Any, name: str, what: str) -> Tuple[float, float]:
    if isinstance(v, numbers.Number) and not isinstance(v, bool):
        return float(v), float(v)
    try:
        a, b = v
    except (TypeError, ValueError):
        raise ValueError(f"{name}: {what} must be a number or a pair, given {v!r}") from None
    return float(a), float(b)


def _check_prob(p: Any, name: str) -> float:
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not (0.0 <= float(p) <= 1.0):
        raise ValueError(f"{name}: p must be a probability in [0, 1], given {p!r}")
    return float(p)


def _gather_crops(padded: np.ndarray, tops: np.ndarray, lefts: np.ndarray, h: int, w: int) -> np.ndarray:
    """out[n, c, i, j] = padded[n, c, tops[n] + i, lefts[n] + j], one fancy-index gather."""
    n, c = padded.shape[:2]
    rows = (tops[:, None] + np.arange(h)[None, :])[:, None, :, None]  # (N, 1, h, 1)
    cols = (lefts[:, None] + np.arange(w)[None, :])[:, None, None, :]  # (N, 1, 1, w)
    ni = np.arange(n)[:, None, None, None]
    ci = np.arange(c)[None, :, None, None]
    return padded[ni, ci, rows, cols]


# ----------------------------------------------------------------------------- compose


class Compose:
    """Applies ``transforms`` one after the other: ``Compose([a, b])(x) == b(a(x))``."""

    def __init__(self, transforms: Sequence[Callable[[Any], Any]]) -> None:
        self.transforms: List[Callable[[Any], Any]] = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"Compose: every transform must be callable, given {type(t).__name__}")

    def __call__(self, x: Any) -> Any:
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t!r}," for t in self.transforms)
        return f"Compose([{inner}\n])"


# ----------------------------------------------------------------------------- flips


class RandomHorizontalFlip:
    """Mirrors each image left-right (along W) with probability ``p``, independently per
    image. Draws N uniforms from the generator per call."""

    def __init__(self, p: float = 0.5, generator: Optional[np.random.Generator] = None) -> None:
        self.p = _check_prob(p, "RandomHorizontalFlip")
        self.generator = generator

    _axis = 3

    def __call__(self, x: Any) -> Any:
        arr, is_t, added = _to_batch(x, type(self).__name__)
        flip = _gen(self.generator).random(arr.shape[0]) < self.p
        out = np.array(arr, copy=True)
        if flip.any():
            out[flip] = np.flip(arr[flip], axis=self._axis)
        return _from_batch(out, is_t, added)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p})"


class RandomVerticalFlip(RandomHorizontalFlip):
    """Mirrors each image top-bottom (along H) with probability ``p``, per image."""

    _axis = 2


# ----------------------------------------------------------------------------- integer shifts


class RandomTranslation:
    """Shifts each image by a whole number of pixels drawn uniformly from
    [-max_dx, max_dx] (right is positive) and [-max_dy, max_dy] (down is positive), filling
    the uncovered border with ``fill``: ``out[..., y, x] = in[..., y - dy, x - dx]``.

    ``translate`` is ``(max_dx, max_dy)`` or one int for both. Draws N horizontal then N
    vertical shifts per call.
    """

    def __init__(self, translate: Union[int, Tuple[int, int]] = 1, fill: float = 0.0,
                 generator: Optional[np.random.Generator] = None) -> None:
        dx, dy = _pair(translate, "RandomTranslation", "translate")
        if dx < 0 or dy < 0 or dx != int(dx) or dy != int(dy):
            raise ValueError(f"RandomTranslation: translate must be non-negative whole pixels, given {translate!r}")
        self.max_dx, self.max_dy = int(dx), int(dy)
        self.fill = float(fill)
        self.generator = generator

    def __call__(self, x: Any) -> Any:
        arr, is_t, added = _to_batch(x, "RandomTranslation")
        n, _, h, w = arr.shape
        g = _gen(self.generator)
        sx = g.integers(-self.max_dx, self.max_dx + 1, size=n)
        sy = g.integers(-self.max_dy, self.max_dy + 1, size=n)
        pad = ((0, 0), (0, 0), (self.max_dy, self.max_dy), (self.max_dx, self.max_dx))
        padded = np.pad(arr, pad, mode="constant", constant_values=arr.dtype.type(self.fill))
        out = _gather_crops(padded, self.max_dy - sy, self.max_dx - sx, h, w)
        return _from_batch(out, is_t, added)

    def __repr__(self) -> str:
        return f"RandomTranslation(translate=({self.max_dx}, {self.max_dy}), fill={self.fill})"


class RandomCrop:
    """Pads each image with ``padding`` (an int for all sides, ``(left/right, top/bottom)``
    or ``(left, top, right, bottom)``) and cuts a ``size`` window (int or ``(h, w)``) at a
    position drawn uniformly per image — torchvision's RandomCrop. ``padding_mode`` is
    'constant' (with ``fill``), 'edge', 'reflect' or 'symmetric'. Draws N tops then N lefts.
    """

    _MODES = ("constant", "edge", "reflect", "symmetric")

    def __init__(self, size: Union[int, Tuple[int, int]], padding: Union[int, Sequence[int], None] = None,
                 fill: float = 0.0, padding_mode: str = "constant",
                 generator: Optional[np.random.Generator] = None) -> None:
        h, w = _pair(size, "RandomCrop", "size")
        if h < 1 or w < 1 or h != int(h) or w != int(w):
            raise ValueError(f"RandomCrop: size must be positive ints, given {size!r}")
        self.size = (int(h), int(w))
        if padding is None:
            pads = (0, 0, 0, 0)
        elif isinstance(padding, numbers.Integral):
            pads = (int(padding),) * 4
        elif len(padding) == 2:
            pads = (int(padding[0]), int(padding[1]), int(padding[0]), int(padding[1]))
        elif len(padding) == 4:
            pads = tuple(int(p) for p in padding)  # type: ignore[assignment]
        else:
            raise ValueError(f"RandomCrop: padding must be an int, 2 or 4 ints, given {padding!r}")
        if min(pads) < 0:
            raise ValueError(f"RandomCrop: padding must be non-negative, given {padding!r}")
        if padding_mode not in self._MODES:
            raise ValueError(f"RandomCrop: padding_mode must be one of {self._MODES}, given {padding_mode!r}")
        self.padding = pads  # left, top, right, bottom
        self.fill = float(fill)
        self.padding_mode = padding_mode
        self.generator = generator

    def __call__(self, x: Any) -> Any:
        arr, is_t, added = _to_batch(x, "RandomCrop")
        n, _, h, w = arr.shape
        l, t, r, b = self.padding
        ph, pw = h + t + b, w + l + r
        ch, cw = self.size
        if ch > ph or cw > pw:
            raise ValueError(
                f"RandomCrop: crop size {self.size} is larger than the padded image ({ph}, {pw}) "
                f"(input {h}x{w}, padding {self.padding})"
            )
        pad = ((0, 0), (0, 0), (t, b), (l, r))
        if self.padding_mode == "constant":
            padded = np.pad(arr, pad, mode="constant", constant_values=arr.dtype.type(self.fill))
        else:
            if self.padding_mode == "reflect" and (max(t, b) >= h or max(l, r) >= w):
                raise ValueError(
                    f"RandomCrop: reflect padding {self.padding} must be smaller than the image ({h}, {w})"
                )
            padded = np.pad(arr, pad, mode=self.padding_mode)
        g = _gen(self.generator)
        tops = g.integers(0, ph - ch + 1, size=n)
        lefts = g.integers(0, pw - cw + 1, size=n)
        return _from_batch(_gather_crops(padded, tops, lefts, ch, cw), is_t, added)

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding}, padding_mode={self.padding_mode!r})"


# ----------------------------------------------------------------------------- affine (bilinear)


def affine_batch(x: np.ndarray, angle: Any, tx: Any = 0.0, ty: Any = 0.0, scale: Any = 1.0,
                 fill: float = 0.0) -> np.ndarray:
    """Rotates each image of ``x`` (N, C, H, W) by ``angle[n]`` degrees counter-clockwise
    (as displayed, row 0 on top) about its centre, scales it by ``scale[n]`` and shifts it
    by (``tx[n]``, ``ty[n]``) pixels (right, down), resampling bilinearly; points that fall
    outside the input take ``fill``. Each parameter is a scalar or an (N,) array.

    ``affine_batch(x, 90)`` on a square image equals ``np.rot90(x, axes=(2, 3))`` up to
    rounding; ``affine_batch(x, 0)`` is ``x``. Returns a float array (x's float dtype, or
    float32 for integer input). Vectorised: one gather of 4 neighbours for the whole batch.
    """
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"affine_batch: expected (N, C, H, W), given shape {x.shape}")
    n, c, h, w = x.shape
    dt = _float_dtype(x)
    xf = x.astype(dt, copy=False).reshape(n, c, h * w)
    th = np.deg2rad(np.broadcast_to(np.asarray(angle, dtype=np.float64), (n,)))
    s = np.broadcast_to(np.asarray(scale, dtype=np.float64), (n,))
    if np.any(s <= 0):
        raise ValueError(f"affine_batch: scale must be positive, given {np.asarray(scale)}")
    txs = np.broadcast_to(np.asarray(tx, dtype=np.float64), (n,))
    tys = np.broadcast_to(np.asarray(ty, dtype=np.float64), (n,))
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    u = (np.arange(w, dtype=np.float64) - cx)[None, None, :] - txs[:, None, None]  # (N, 1, W)
    v = (np.arange(h, dtype=np.float64) - cy)[None, :, None] - tys[:, None, None]  # (N, H, 1)
    cos = (np.cos(th) / s)[:, None, None]
    sin = (np.sin(th) / s)[:, None, None]
    # inverse map of a counter-clockwise rotation in y-down image coordinates
    xs = (cos * u - sin * v + cx).reshape(n, h * w)
    ys = (sin * u + cos * v + cy).reshape(n, h * w)
    # snap values within rounding of an integer so exact shifts / quarter turns stay exact
    xr, yr = np.rint(xs), np.rint(ys)
    xs = np.where(np.abs(xs - xr) < 1e-9, xr, xs)
    ys = np.where(np.abs(ys - yr) < 1e-9, yr, ys)
    x0, y0 = np.floor(xs), np.floor(ys)
    wx1, wy1 = xs - x0, ys - y0
    x0i, y0i = x0.astype(np.int64), y0.astype(np.int64)
    out = np.zeros((n, c, h * w), dtype=np.float64)
    covered = np.zeros((n, h * w), dtype=np.float64)
    for dy, wy in ((0, 1.0 - wy1), (1, wy1)):
        for dx, wx in ((0, 1.0 - wx1), (1, wx1)):
            xi, yi = x0i + dx, y0i + dy
            ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
            wt = np.where(ok, wx * wy, 0.0)
            if not wt.any():
                continue
            idx = np.where(ok, yi * w + xi, 0)
            vals = np.take_along_axis(xf, idx[:, None, :], axis=2)
            out += wt[:, None, :] * vals
            covered += wt
    if fill != 0.0:
        out += float(fill) * (1.0 - covered)[:, None, :]
    return out.astype(dt, copy=False).reshape(n, c, h, w)


class RandomAffine:
    """Per image: a rotation by an angle drawn uniformly from ``degrees`` (a number d for
    [-d, d], or a (lo, hi) pair; counter-clockwise positive), a shift by up to
    ``translate = (max_dx, max_dy)`` pixels (real-valued, uniform in [-max, max]) and a zoom
    by a factor drawn from ``scale = (lo, hi)``; bilinear resampling about the image centre
    with ``fill`` outside. Draws N angles, then N dx and N dy (if translate), then N scales
    (if scale) per call. Output is float (the input's float dtype, float32 for integers).
    """

    def __init__(self, degrees: Union[Number, Tuple[Number, Number]] = 0.0,
                 translate: Optional[Union[Number, Tuple[Number, Number]]] = None,
                 scale: Optional[Tuple[Number, Number]] = None, fill: float = 0.0,
                 generator: Optional[np.random.Generator] = None) -> None:
        name = type(self).__name__
        if isinstance(degrees, numbers.Number) and not isinstance(degrees, bool):
            if degrees < 0:
                raise ValueError(f"{name}: degrees as a single number must be >= 0, given {degrees!r}")
            self.degrees = (-float(degrees), float(degrees))
        else:
            self.degrees = _pair(degrees, name, "degrees")
            if self.degrees[0] > self.degrees[1]:
                raise ValueError(f"{name}: degrees range must be (lo, hi) with lo <= hi, given {degrees!r}")
        self.translate = None if translate is None else _pair(translate, name, "translate")
        if self.translate is not None and min(self.translate) < 0:
            raise ValueError(f"{name}: translate must be non-negative, given {translate!r}")
        self.scale = None if scale is None else _pair(scale, name, "scale")
        if self.scale is not None and not (0 < self.scale[0] <= self.scale[1]):
            raise ValueError(f"{name}: scale must be (lo, hi) with 0 < lo <= hi, given {scale!r}")
        self.fill = float(fill)
        self.generator = generator

    def __call__(self, x: Any) -> Any:
        arr, is_t, added = _to_batch(x, type(self).__name__)
        n = arr.shape[0]
        g = _gen(self.generator)
        angle = g.uniform(self.degrees[0], self.degrees[1], size=n)
        tx = ty = np.zeros(n)
        if self.translate is not None:
            tx = g.uniform(-self.translate[0], self.translate[0], size=n)
            ty = g.uniform(-self.translate[1], self.translate[1], size=n)
        s = np.ones(n)
        if self.scale is not None:
            s = g.uniform(self.scale[0], self.scale[1], size=n)
        out = affine_batch(arr, angle, tx, ty, s, self.fill)
        return _from_batch(out, is_t, added)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(degrees={self.degrees}, translate={self.translate}, "
                f"scale={self.scale}, fill={self.fill})")


class RandomRotation(RandomAffine):
    """Rotates each image by an angle drawn uniformly from ``degrees`` (d for [-d, d], or
    (lo, hi)), counter-clockwise positive, about its centre; bilinear, ``fill`` outside."""

    def __init__(self, degrees: Union[Number, Tuple[Number, Number]], fill: float = 0.0,
                 generator: Optional[np.random.Generator] = None) -> None:
        super().__init__(degrees=degrees, fill=fill, generator=generator)

    def __repr__(self) -> str:
        return f"RandomRotation(degrees={self.degrees}, fill={self.fill})"


# ----------------------------------------------------------------------------- normalize


class Normalize:
    """Per channel: ``out[:, c] = (x[:, c] - mean[c]) / std[c]`` (mean/std sequences of
    length C, or scalars for all channels). Deterministic."""

    def __init__(self, mean: Union[float, Sequence[float]], std: Union[float, Sequence[float]]) -> None:
        self.mean = np.atleast_1d(np.asarray(mean, dtype=np.float64))
        self.std = np.atleast_1d(np.asarray(std, dtype=np.float64))
        if self.mean.ndim != 1 or self.std.ndim != 1:
            raise ValueError(f"Normalize: mean and std must be numbers or 1-D sequences, given {mean!r}, {std!r}")
        if np.any(self.std == 0) or not np.all(np.isfinite(self.std)):
            raise ValueError(f"Normalize: std must be finite and non-zero, given {std!r}")

    def __call__(self, x: Any) -> Any:
        arr, is_t, added = _to_batch(x, "Normalize")
        c = arr.shape[1]
        for what, v in (("mean", self.mean), ("std", self.std)):
            if v.shape[0] not in (1, c):
                raise ValueError(f"Normalize: {what} has {v.shape[0]} values but the images have {c} channels (shape {tuple(arr.shape)})")
        dt = _float_dtype(arr)
        m = self.mean.astype(dt)[None, :, None, None]
        s = self.std.astype(dt)[None, :, None, None]
        out = (arr.astype(dt, copy=False) - m) / s
        return _from_batch(out, is_t, added)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"
