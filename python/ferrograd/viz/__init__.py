"""``ferrograd.viz``: pictures of what a network learned (matplotlib, an optional extra).

- :func:`save_filters`: a conv layer's learned filters as a PNG grid.
- :func:`save_feature_maps`: the feature maps one image produces at each conv/pool layer.
- :func:`save_image_grid`: a batch of images (N, C, H, W) as one PNG grid.
- :func:`plot_history`: training curves (loss, metrics, their val_ versions) from a
  :class:`ferrograd.train.History`.
- :func:`save_umatrix`, :func:`save_winner_map`: a self-organizing map's U-matrix and
  winner map with labels (``viz/som.py``).

matplotlib is imported only when a function runs (``pip install ferrograd[viz]``); the
grids are written as exact pixel mosaics (every tile the same size, ``pad`` pixels of
``pad_value`` between tiles, so the PNG's size is known in advance) and the curves through
matplotlib's Agg canvas, never touching pyplot's global state or backend.
"""

from __future__ import annotations

import math
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..tensor import Tensor

__all__ = ["save_filters", "save_feature_maps", "save_image_grid", "plot_history", "grid_shape"]

PathLike = Union[str, "os.PathLike[str]"]


def _mpl() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ImportError(
            "ferrograd.viz needs matplotlib, which is an optional extra: pip install ferrograd[viz] "
            "(or pip install matplotlib)"
        ) from None
    return matplotlib


def _np(x: Any) -> np.ndarray:
    if isinstance(x, Tensor):
        return np.asarray(x.data)
    if hasattr(x, "detach") and hasattr(x, "numpy"):  # a torch tensor
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _resize_nearest(img: np.ndarray, th: int, tw: int) -> np.ndarray:
    """(..., h, w) -> (..., th, tw) by nearest neighbour (exact integer upscaling when
    th, tw are multiples of h, w)."""
    h, w = img.shape[-2:]
    ri = (np.arange(th) * h) // th
    ci = (np.arange(tw) * w) // tw
    return img[..., ri[:, None], ci[None, :]]


def _to_unit(t: np.ndarray, lo: Optional[float] = None, hi: Optional[float] = None) -> np.ndarray:
    t = t.astype(np.float64)
    lo = float(np.nanmin(t)) if lo is None else lo
    hi = float(np.nanmax(t)) if hi is None else hi
    if not math.isfinite(lo) or not math.isfinite(hi) or hi - lo < 1e-12:
        return np.full(t.shape, 0.5)
    return np.clip((t - lo) / (hi - lo), 0.0, 1.0)


def grid_shape(n_rows: int, n_cols: int, tile_h: int, tile_w: int, pad: int) -> Tuple[int, int]:
    """The pixel size (height, width) of a grid of ``n_rows`` x ``n_cols`` tiles of
    ``tile_h`` x ``tile_w`` pixels with ``pad`` pixels around and between tiles."""
    return n_rows * tile_h + (n_rows + 1) * pad, n_cols * tile_w + (n_cols + 1) * pad


def _mosaic(tiles: List[List[Optional[np.ndarray]]], th: int, tw: int, pad: int, pad_value: float) -> np.ndarray:
    """Places RGBA tiles (th, tw, 4) on a grid (rows of possibly missing tiles)."""
    rows = len(tiles)
    cols = max((len(r) for r in tiles), default=0)
    H, W = grid_shape(rows, cols, th, tw, pad)
    canvas = np.empty((H, W, 4), dtype=np.float64)
    canvas[...] = pad_value
    canvas[..., 3] = 1.0
    for i, row in enumerate(tiles):
        for j, tile in enumerate(row):
            if tile is None:
                continue
            y, x = pad + i * (th + pad), pad + j * (tw + pad)
            canvas[y : y + th, x : x + tw] = tile
    return canvas


def _rgba(unit: np.ndarray, cmap: str) -> np.ndarray:
    """(h, w) values in [0, 1] through a colormap, or (3, h, w) RGB -> (h, w, 4)."""
    if unit.ndim == 3:
        rgb = np.moveaxis(unit, 0, -1)
        return np.concatenate([rgb, np.ones(rgb.shape[:2] + (1,))], axis=-1)
    cm = _mpl().colormaps[cmap]
    return np.asarray(cm(unit), dtype=np.float64)


def _write_png(path: PathLike, rgba: np.ndarray) -> str:
    _mpl()
    import matplotlib.image as mimage

    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    mimage.imsave(path, np.clip(rgba, 0.0, 1.0), format="png")
    return path


def _auto_scale(h: int, w: int, target: int) -> int:
    return max(1, int(math.ceil(target / max(h, w, 1))))


# ----------------------------------------------------------------------------- filters


def save_filters(
    conv_layer: Any,
    path: PathLike,
    *,
    scale: Optional[int] = None,
    pad: int = 2,
    cmap: str = "gray",
    ncols: Optional[int] = None,
    pad_value: float = 1.0,
) -> Tuple[int, int]:
    """Writes a conv layer's filters to ``path`` as a PNG grid; returns its pixel size
    (height, width).

    ``conv_layer`` is a module with a ``weight`` of shape (out, in/groups, kh, kw) (Conv2d)
    or (out, in/groups, k) (Conv1d, shown as 1-pixel-high strips), or that weight itself.
    Each (out, in) kernel is one tile, scaled to [0, 1] by its own min and max and shown
    through ``cmap``. With one input channel the ``out`` tiles fill a near-square grid
    (``ncols`` columns); otherwise row o holds output channel o's ``in`` kernels. Tiles are
    ``kh*scale`` x ``kw*scale`` pixels (nearest upscaling; default: about 32 px), with
    ``pad`` pixels of ``pad_value`` (grey level, white by default) between them.
    """
    w = _np(getattr(conv_layer, "weight", conv_layer))
    if w.ndim == 3:
        w = w[:, :, None, :]
    if w.ndim != 4:
        raise ValueError(
            f"save_filters: expected a conv layer whose weight is (out, in, kh, kw) or (out, in, k), "
            f"given a weight of shape {tuple(w.shape)}"
        )
    n_out, n_in, kh, kw = w.shape
    s = _auto_scale(kh, kw, 32) if scale is None else int(scale)
    if s < 1 or pad < 0:
        raise ValueError(f"save_filters: scale must be >= 1 and pad >= 0, given scale={scale}, pad={pad}")
    th, tw = kh * s, kw * s
    tile = lambda k: _rgba(_resize_nearest(_to_unit(k), th, tw), cmap)  # noqa: E731
    if n_in == 1:
        cols = ncols or int(math.ceil(math.sqrt(n_out)))
        grid: List[List[Optional[np.ndarray]]] = []
        for o in range(n_out):
            if o % cols == 0:
                grid.append([])
            grid[-1].append(tile(w[o, 0]))
    else:
        grid = [[tile(w[o, i]) for i in range(n_in)] for o in range(n_out)]
    img = _mosaic(grid, th, tw, pad, pad_value)
    _write_png(path, img)
    return img.shape[0], img.shape[1]


# ----------------------------------------------------------------------------- feature maps


def _chain(model_or_layers: Any) -> List[Tuple[str, Any]]:
    if isinstance(model_or_layers, (list, tuple)):
        out: List[Tuple[str, Any]] = []
        for i, m in enumerate(model_or_layers):
            out += [(f"{i}.{n}" if n else str(i), l) for n, l in _chain(m)]
        return out
    kids = list(model_or_layers.named_children()) if hasattr(model_or_layers, "named_children") else []
    if not kids:
        return [("", model_or_layers)]
    if type(model_or_layers).__name__ not in ("Sequential", "ModuleList"):
        raise ValueError(
            f"save_feature_maps: expected a Sequential model or a list of layers, given a "
            f"{type(model_or_layers).__name__} (pass its layers in call order as a list)"
        )
    out = []
    for name, child in kids:
        out += [(f"{name}.{n}" if n else name, l) for n, l in _chain(child)]
    return out


def _is_conv_or_pool(layer: Any) -> bool:
    name = type(layer).__name__
    return hasattr(layer, "kernel_size") or "Pool" in name or name.startswith("Conv")


def save_feature_maps(
    model_or_layers: Any,
    image: Any,
    path: PathLike,
    *,
    which: Optional[Callable[[Any], bool]] = None,
    max_channels: int = 16,
    tile: Optional[int] = None,
    pad: int = 2,
    cmap: str = "viridis",
    pad_value: float = 1.0,
    include_input: bool = True,
) -> List[Tuple[str, Tuple[int, ...]]]:
    """Pushes one ``image`` through ``model_or_layers`` (a Sequential, or a list of layers in
    call order) and writes the feature maps of each conv/pool layer to ``path`` as one PNG:
    row 0 the input (its channels), then one row per recorded layer holding its first
    ``max_channels`` channels, each min-max scaled and shown through ``cmap``.

    ``image`` is (C, H, W), (1, C, H, W) or (H, W) (NumPy or Tensor, in the model's dtype).
    ``which(layer) -> bool`` picks the recorded layers (default: conv and pooling layers).
    Every tile is ``tile`` x ``tile`` pixels (default: about 4x the input's size, at least
    48), nearest-upscaled. The model runs in eval mode without grad (its mode is restored).
    Returns the rows as (name, feature-map shape (C, H, W)), in order.
    """
    from .. import no_grad

    x = _np(image)
    if x.ndim == 2:
        x = x[None, None]
    elif x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"save_feature_maps: expected one image (C, H, W), (1, C, H, W) or (H, W), given shape {_np(image).shape}")
    if max_channels < 1:
        raise ValueError(f"save_feature_maps: max_channels must be >= 1, given {max_channels}")
    layers = _chain(model_or_layers)
    pick = which or _is_conv_or_pool
    ts = int(tile) if tile is not None else max(48, 4 * max(x.shape[2:]))
    params = [p for _, l in layers if hasattr(l, "parameters") for p in l.parameters()]
    if params and isinstance(params[0], Tensor) and params[0].data.dtype.kind == "f":
        x = x.astype(params[0].data.dtype, copy=False)
    elif x.dtype.kind != "f":
        x = x.astype(np.float32)
    maps: List[Tuple[str, np.ndarray]] = [("input", x[0])] if include_input else []
    modules = [l for _, l in layers if hasattr(l, "training")]
    modes = [m.training for m in modules]
    try:
        for m in modules:
            m.training = False
        with no_grad():
            h: Any = Tensor._wrap(np.ascontiguousarray(x))
            for name, layer in layers:
                h = layer(h)
                if pick(layer):
                    a = _np(h)
                    if a.ndim == 3:  # (1, C, L): 1-d maps as strips
                        a = a[:, :, None, :]
                    if a.ndim != 4:
                        raise ValueError(f"save_feature_maps: layer {name} ({type(layer).__name__}) gave shape {a.shape}, expected (1, C, H, W)")
                    maps.append((f"{name} ({type(layer).__name__})", a[0]))
    finally:
        for m, t in zip(modules, modes):
            m.training = t
    if len(maps) == (1 if include_input else 0):
        raise ValueError("save_feature_maps: no conv or pooling layer in the model (pass which=...)")
    grid = []
    for _, fm in maps:
        grid.append([_rgba(_resize_nearest(_to_unit(c), ts, ts), cmap) for c in fm[:max_channels]])
    _write_png(path, _mosaic(grid, ts, ts, pad, pad_value))
    return [(n, tuple(fm.shape)) for n, fm in maps]


# ----------------------------------------------------------------------------- image grid


def save_image_grid(
    images: Any,
    path: PathLike,
    *,
    nrow: int = 8,
    pad: int = 2,
    scale: int = 1,
    normalize: bool = True,
    value_range: Optional[Tuple[float, float]] = None,
    scale_each: bool = False,
    cmap: str = "gray",
    pad_value: float = 0.0,
) -> Tuple[int, int]:
    """Writes images (N, C, H, W) with C = 1 or 3, or (N, H, W), as one PNG grid of
    ``nrow`` images per row (torchvision's save_image layout); returns its pixel size.

    With ``normalize`` the values are min-max scaled to [0, 1] over the whole batch (each
    image on its own with ``scale_each``, or by the fixed ``value_range=(lo, hi)``);
    otherwise they are taken as [0, 1] and clipped. Single-channel images go through
    ``cmap``. ``scale`` upsamples each image by nearest neighbour.
    """
    x = _np(images).astype(np.float64)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] not in (1, 3) or x.shape[0] < 1:
        raise ValueError(f"save_image_grid: expected (N, 1 or 3, H, W) or (N, H, W) images, given shape {_np(images).shape}")
    if nrow < 1 or scale < 1 or pad < 0:
        raise ValueError(f"save_image_grid: nrow and scale must be >= 1, pad >= 0; given {nrow}, {scale}, {pad}")
    n, c, h, w = x.shape
    if normalize:
        if value_range is not None:
            x = _to_unit(x, float(value_range[0]), float(value_range[1]))
        elif scale_each:
            x = np.stack([_to_unit(xi) for xi in x])
        else:
            x = _to_unit(x)
    else:
        x = np.clip(x, 0.0, 1.0)
    th, tw = h * scale, w * scale
    grid: List[List[Optional[np.ndarray]]] = []
    for i in range(n):
        if i % nrow == 0:
            grid.append([])
        img = _resize_nearest(x[i], th, tw)
        grid[-1].append(_rgba(img[0] if c == 1 else img, cmap))
    out = _mosaic(grid, th, tw, pad, pad_value)
    _write_png(path, out)
    return out.shape[0], out.shape[1]


# ----------------------------------------------------------------------------- history


def plot_history(
    history: Any,
    path: PathLike,
    *,
    keys: Optional[Sequence[str]] = None,
    figsize: Tuple[float, float] = (10.0, 4.0),
    dpi: int = 100,
    title: Optional[str] = None,
) -> Tuple[int, int]:
    """Plots training curves to ``path`` (PNG, ``figsize * dpi`` pixels); returns the pixel
    size (height, width).

    ``history`` is a :class:`ferrograd.train.History` (what ``Trainer.fit`` returns) or its
    ``.history`` dict of per-epoch lists. One panel per quantity (``keys``, default every
    name without a ``val_`` prefix: 'loss', then the metrics), each showing the training
    curve and its ``val_`` counterpart when present, against the epoch (from 1).
    """
    mpl = _mpl()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    hist: Dict[str, List[float]] = dict(getattr(history, "history", history))
    if not hist or not all(isinstance(v, (list, tuple, np.ndarray)) for v in hist.values()):
        raise ValueError(f"plot_history: expected a History or a dict of per-epoch lists, given {type(history).__name__}")
    epochs_attr = getattr(history, "epoch", None)
    base = list(keys) if keys is not None else [k for k in hist if not k.startswith("val_")] or list(hist)
    missing = [k for k in base if k not in hist and f"val_{k}" not in hist]
    if missing:
        raise ValueError(f"plot_history: no curve named {missing}; the history has {sorted(hist)}")
    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(base), squeeze=False)[0]
    for ax, k in zip(axes, base):
        for name, style in ((k, "-"), (f"val_{k}", "--")):
            if name not in hist:
                continue
            ys = np.asarray(hist[name], dtype=np.float64)
            if epochs_attr is not None and len(epochs_attr) == len(ys):
                xs = np.asarray(epochs_attr) + 1
            else:
                xs = np.arange(1, len(ys) + 1)
            ax.plot(xs, ys, style, marker="o" if len(ys) <= 20 else None, ms=3, label=name)
        ax.set_xlabel("epoch")
        ax.set_title(k)
        ax.grid(True, alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    fig.savefig(path, format="png", dpi=dpi)
    del mpl
    return int(round(figsize[1] * dpi)), int(round(figsize[0] * dpi))


# Self-organizing map pictures (U-matrix, winner map) live in viz/som.py.
from .som import save_umatrix, save_winner_map  # noqa: E402

__all__ += ["save_umatrix", "save_winner_map"]
