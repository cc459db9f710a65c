"""Pictures of a self-organizing map (:class:`ferrograd.unsupervised.SOM`).

- :func:`save_umatrix`: the U-matrix (``som.distance_map()``) as a PNG: light cells are
  units close to their neighbours (clusters), dark ridges the borders between them;
  optionally the winning unit of each sample drawn on top, one marker per label.
- :func:`save_winner_map`: each unit coloured by the label it wins most often, with that
  label written in the cell and its share of the unit's samples as the colour strength.

Both draw rectangular maps as square cells and hexagonal maps as hexagons at MiniSom's
coordinates (``som.get_euclidean_coordinates()``); matplotlib (an optional extra) is
imported only when a function runs and drawn through the Agg canvas, never pyplot.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any, Optional, Sequence, Tuple

import numpy as np

from . import PathLike, _mpl

__all__ = ["save_umatrix", "save_winner_map"]


def _figure(figsize: Tuple[float, float], dpi: int) -> Tuple[Any, Any]:
    _mpl()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _save(fig: Any, path: PathLike, dpi: int) -> str:
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    fig.savefig(path, format="png", dpi=dpi)
    return path


def _check_som(som: Any, fn: str) -> None:
    if not (hasattr(som, "distance_map") and hasattr(som, "get_euclidean_coordinates")):
        raise TypeError(f"{fn}: expected a ferrograd.unsupervised.SOM, given {type(som).__name__}")


def _cells(ax: Any, som: Any, values: np.ndarray, cmap: str, vmin: float, vmax: float) -> Any:
    """Draws one cell per unit coloured by ``values`` (x, y); returns a mappable."""
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import RegularPolygon

    xx, yy = som.get_euclidean_coordinates()
    hexagonal = som.topology == "hexagonal"
    patches = []
    for i in range(som.x):
        for j in range(som.y):
            if hexagonal:
                patches.append(RegularPolygon((xx[i, j], yy[i, j]), numVertices=6, radius=0.95 / np.sqrt(3),
                                              orientation=0.0))
            else:
                patches.append(RegularPolygon((xx[i, j], yy[i, j]), numVertices=4, radius=0.5 * np.sqrt(2),
                                              orientation=np.pi / 4))
    pc = PatchCollection(patches, cmap=_mpl().colormaps[cmap], edgecolor="none")
    pc.set_array(np.asarray(values, np.float64).ravel())
    pc.set_clim(vmin, vmax)
    ax.add_collection(pc)
    ax.set_xlim(xx.min() - 1, xx.max() + 1)
    ax.set_ylim(yy.min() - 1, yy.max() + 1)
    ax.set_aspect("equal")
    ax.set_xlabel("i")
    ax.set_ylabel("j")
    return pc


def save_umatrix(
    som: Any,
    path: PathLike,
    *,
    data: Any = None,
    labels: Optional[Sequence[Any]] = None,
    scaling: str = "sum",
    cmap: str = "bone_r",
    figsize: Tuple[float, float] = (7.0, 6.0),
    dpi: int = 100,
    title: Optional[str] = "U-matrix",
) -> str:
    """Writes the U-matrix of ``som`` to ``path`` (PNG); returns the path.

    With ``data`` (n, input_len), each sample's winning unit gets a marker (jittered so
    that several are visible); with ``labels`` (n,) too, one marker colour per label and
    a legend.
    """
    _check_som(som, "save_umatrix")
    um = som.distance_map(scaling)
    fig, ax = _figure(figsize, dpi)
    pc = _cells(ax, som, np.nan_to_num(um), cmap, 0.0, 1.0)
    fig.colorbar(pc, ax=ax, label="distance to neighbours (normalised)")
    if data is not None:
        coords = som.transform(data, kind="coordinates")
        xx, yy = som.get_euclidean_coordinates()
        px, py = xx[coords[:, 0], coords[:, 1]], yy[coords[:, 0], coords[:, 1]]
        jit = np.random.default_rng(0).uniform(-0.25, 0.25, size=(2, len(px)))
        if labels is None:
            ax.scatter(px + jit[0], py + jit[1], s=6, c="tab:red", alpha=0.6)
        else:
            lab = np.asarray(labels)
            if lab.shape[0] != coords.shape[0]:
                raise ValueError(
                    f"save_umatrix: data and labels must have the same length, given {coords.shape[0]} and {lab.shape[0]}"
                )
            cm = _mpl().colormaps["tab10" if len(np.unique(lab)) <= 10 else "tab20"]
            for k, u in enumerate(np.unique(lab)):
                m = lab == u
                ax.scatter(px[m] + jit[0][m], py[m] + jit[1][m], s=6, color=cm(k % cm.N), alpha=0.7, label=str(u))
            ax.legend(loc="upper left", bbox_to_anchor=(1.25, 1.0), fontsize=7, markerscale=2)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path, dpi)


def save_winner_map(
    som: Any,
    data: Any,
    labels: Sequence[Any],
    path: PathLike,
    *,
    cmap: str = "tab10",
    figsize: Tuple[float, float] = (7.0, 6.0),
    dpi: int = 100,
    title: Optional[str] = "winner map",
) -> str:
    """Writes the winner map of ``som`` on ``data`` (n, input_len) with ``labels`` (n,) to
    ``path`` (PNG); returns the path. Each unit that wins samples is coloured by its most
    frequent label (written in the cell), its opacity the share of that label among the
    unit's samples; units that win nothing stay white."""
    _check_som(som, "save_winner_map")
    lm = som.labels_map(data, labels)
    classes = sorted({lab for c in lm.values() for lab in c}, key=lambda v: (str(type(v)), v))
    index = {c: k for k, c in enumerate(classes)}
    fig, ax = _figure(figsize, dpi)
    _cells(ax, som, np.zeros((som.x, som.y)), "Greys", 0.0, 1.0)
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import RegularPolygon

    cm = _mpl().colormaps[cmap]
    xx, yy = som.get_euclidean_coordinates()
    hexagonal = som.topology == "hexagonal"
    patches, colors = [], []
    for (i, j), counter in lm.items():
        if not counter:
            continue
        lab, cnt = Counter(counter).most_common(1)[0]
        share = cnt / sum(counter.values())
        rgba = list(cm(index[lab] % cm.N))
        rgba[3] = 0.25 + 0.75 * share
        if hexagonal:
            patches.append(RegularPolygon((xx[i, j], yy[i, j]), 6, radius=0.95 / np.sqrt(3)))
        else:
            patches.append(RegularPolygon((xx[i, j], yy[i, j]), 4, radius=0.5 * np.sqrt(2), orientation=np.pi / 4))
        colors.append(rgba)
        ax.text(xx[i, j], yy[i, j], str(lab), ha="center", va="center", fontsize=max(4, 60 // max(som.x, som.y)))
    ax.add_collection(PatchCollection(patches, facecolors=colors, edgecolor="white", linewidth=0.3))
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path, dpi)
