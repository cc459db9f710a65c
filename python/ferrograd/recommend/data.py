"""Ratings data: the sparse user x item container, MovieLens files, a synthetic generator
and the train / test split.

:class:`RatingMatrix` is a small sparse matrix of its own (scipy is not a dependency): the
observed ratings as three aligned COO arrays ``users`` (nnz,), ``items`` (nnz,) and
``ratings`` (nnz,), with the matrix shape ``(n_users, n_items)`` and the rating scale.
:meth:`RatingMatrix.tocsr` gives the row-compressed (per user) form, :meth:`RatingMatrix.T`
the item x user matrix and :meth:`RatingMatrix.to_dense` the dense ``(n_users, n_items)``
values with a boolean mask of the observed entries (missing entries hold ``fill``).
"""

from __future__ import annotations

import io
import math
import os
import warnings
from typing import Any, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = ["RatingMatrix", "CSR", "load_ratings", "save_ratings", "make_ratings", "train_test_split"]

PathLike = Union[str, "os.PathLike[str]"]


class CSR(NamedTuple):
    """A compressed sparse row matrix: row ``r`` holds columns ``indices[indptr[r]:indptr[r+1]]``
    (increasing) with values ``data[indptr[r]:indptr[r+1]]``; ``shape`` is (rows, columns)."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    shape: Tuple[int, int]


def _scale(scale: Any, what: str) -> Tuple[float, float]:
    try:
        lo, hi = (float(v) for v in scale)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: scale must be a pair (lowest, highest), given {scale!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"{what}: scale must be finite with lowest < highest, given {scale!r}")
    return lo, hi


def _index_array(a: Any, name: str, what: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 1:
        raise ValueError(f"{what}: {name} must be 1-D, given shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(f"{what}: {name} must be integer indices, given dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


class RatingMatrix:
    """Observed ratings of ``n_users`` users on ``n_items`` items, stored sparse (COO).

    Args:
        users, items: (nnz,) integer indices in ``[0, n_users)`` and ``[0, n_items)``.
        ratings: (nnz,) values within ``scale`` (float32 by default).
        n_users, n_items: the matrix shape (default: the largest index + 1).
        scale: (lowest, highest) rating (default (1, 5), MovieLens' stars).
        timestamps: optional (nnz,) int64 times (seconds) of the ratings.
        user_ids, item_ids: optional raw ids of rows / columns (from a file).

    Each (user, item) pair may occur once. Errors: ValueError for mismatched lengths,
    indices out of range, duplicate pairs, non-finite ratings or ratings outside ``scale``
    (naming the first offending entry).
    """

    def __init__(
        self,
        users: Any,
        items: Any,
        ratings: Any,
        n_users: Optional[int] = None,
        n_items: Optional[int] = None,
        *,
        scale: Sequence[float] = (1, 5),
        timestamps: Any = None,
        user_ids: Any = None,
        item_ids: Any = None,
        dtype: Any = np.float32,
        _checked: bool = False,
    ) -> None:
        what = "RatingMatrix"
        u = _index_array(users, "users", what)
        i = _index_array(items, "items", what)
        r = np.asarray(ratings)
        if r.ndim != 1:
            raise ValueError(f"{what}: ratings must be 1-D, given shape {r.shape}")
        if r.size and r.dtype.kind not in "iuf":
            raise ValueError(f"{what}: ratings must be numbers, given dtype {r.dtype}")
        r = r.astype(dtype, copy=False)
        if not (len(u) == len(i) == len(r)):
            raise ValueError(f"{what}: users, items and ratings need the same length, given {len(u)}, {len(i)}, {len(r)}")
        self.scale = _scale(scale, what)
        nu = int(u.max()) + 1 if (n_users is None and len(u)) else int(n_users or 0)
        ni = int(i.max()) + 1 if (n_items is None and len(i)) else int(n_items or 0)
        if nu < 0 or ni < 0:
            raise ValueError(f"{what}: n_users and n_items must be >= 0, given {n_users}, {n_items}")
        if not _checked and len(u):
            for name, a, n in (("users", u, nu), ("items", i, ni)):
                bad = np.flatnonzero((a < 0) | (a >= n))
                if bad.size:
                    raise ValueError(f"{what}: {name} must lie in [0, {n}), given {a[bad[0]]} at entry {bad[0]}")
            fin = np.isfinite(r)
            if not fin.all():
                k = int(np.flatnonzero(~fin)[0])
                raise ValueError(f"{what}: ratings must be finite, given {r[k]} at entry {k}")
            lo, hi = self.scale
            out = np.flatnonzero((r < lo) | (r > hi))
            if out.size:
                k = int(out[0])
                raise ValueError(f"{what}: ratings must lie in the scale [{lo:g}, {hi:g}], given {r[k]:g} at entry {k}")
            key = u * max(ni, 1) + i
            uniq, first, counts = np.unique(key, return_index=True, return_counts=True)
            if uniq.size != key.size:
                d = int(np.flatnonzero(counts > 1)[0])
                raise ValueError(
                    f"{what}: each (user, item) pair may be rated once; ({u[first[d]]}, {i[first[d]]}) occurs {counts[d]} times"
                )
        self.users, self.items, self.ratings = u, i, r
        self.n_users, self.n_items = nu, ni
        self.timestamps = None if timestamps is None else np.asarray(timestamps, dtype=np.int64)
        if self.timestamps is not None and self.timestamps.shape != u.shape:
            raise ValueError(f"{what}: timestamps need shape {u.shape}, given {self.timestamps.shape}")
        self.user_ids = None if user_ids is None else np.asarray(user_ids)
        self.item_ids = None if item_ids is None else np.asarray(item_ids)

    # ---- shape and statistics
    @property
    def shape(self) -> Tuple[int, int]:
        """(n_users, n_items)."""
        return (self.n_users, self.n_items)

    @property
    def nnz(self) -> int:
        """The number of observed ratings."""
        return int(self.ratings.size)

    def __len__(self) -> int:
        return self.nnz

    @property
    def density(self) -> float:
        """nnz / (n_users * n_items)."""
        cells = self.n_users * self.n_items
        return self.nnz / cells if cells else 0.0

    @property
    def sparsity(self) -> float:
        """1 - density: the fraction of missing entries (0.937 for MovieLens 100k)."""
        return 1.0 - self.density

    def user_counts(self) -> np.ndarray:
        """(n_users,) number of ratings of each user."""
        return np.bincount(self.users, minlength=self.n_users)

    def item_counts(self) -> np.ndarray:
        """(n_items,) number of ratings of each item (its popularity)."""
        return np.bincount(self.items, minlength=self.n_items)

    def mean(self) -> float:
        """The mean observed rating (NaN when empty)."""
        return float(self.ratings.mean(dtype=np.float64)) if self.nnz else float("nan")

    def __repr__(self) -> str:
        return (
            f"RatingMatrix(n_users={self.n_users}, n_items={self.n_items}, nnz={self.nnz}, "
            f"sparsity={self.sparsity:.4f}, scale={self.scale})"
        )

    # ---- conversions
    def _like(self, idx: np.ndarray) -> "RatingMatrix":
        return RatingMatrix(
            self.users[idx], self.items[idx], self.ratings[idx], self.n_users, self.n_items,
            scale=self.scale, timestamps=None if self.timestamps is None else self.timestamps[idx],
            user_ids=self.user_ids, item_ids=self.item_ids, dtype=self.ratings.dtype, _checked=True,
        )

    def subset(self, index: Any) -> "RatingMatrix":
        """The ratings at ``index`` (an int array or a boolean mask over the nnz entries),
        with the same shape, scale and ids."""
        idx = np.asarray(index)
        if idx.dtype == bool:
            if idx.shape != self.ratings.shape:
                raise ValueError(f"RatingMatrix.subset: a mask needs shape {self.ratings.shape}, given {idx.shape}")
            idx = np.flatnonzero(idx)
        return self._like(_index_array(idx, "index", "RatingMatrix.subset"))

    @property
    def T(self) -> "RatingMatrix":
        """The item x user matrix (same ratings, roles swapped)."""
        return RatingMatrix(
            self.items, self.users, self.ratings, self.n_items, self.n_users, scale=self.scale,
            timestamps=self.timestamps, user_ids=self.item_ids, item_ids=self.user_ids,
            dtype=self.ratings.dtype, _checked=True,
        )

    def tocsr(self) -> CSR:
        """The per-user compressed form (rows = users, columns = items in increasing order)."""
        order = np.lexsort((self.items, self.users))
        indptr = np.zeros(self.n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.users, minlength=self.n_users), out=indptr[1:])
        return CSR(indptr, self.items[order], self.ratings[order], self.shape)

    def to_dense(self, fill: float = 0.0, dtype: Any = None) -> Tuple[np.ndarray, np.ndarray]:
        """(values, mask): ``values`` (n_users, n_items) with the ratings at observed entries
        and ``fill`` elsewhere; ``mask`` (n_users, n_items) bool, True where observed."""
        dt = self.ratings.dtype if dtype is None else np.dtype(dtype)
        values = np.full(self.shape, fill, dtype=dt)
        mask = np.zeros(self.shape, dtype=bool)
        values[self.users, self.items] = self.ratings
        mask[self.users, self.items] = True
        return values, mask

    @classmethod
    def from_dense(cls, values: Any, mask: Any = None, *, scale: Sequence[float] = (1, 5), dtype: Any = np.float32) -> "RatingMatrix":
        """The ratings of a dense (n_users, n_items) array at ``mask`` (default: the
        non-zero, non-NaN entries)."""
        v = np.asarray(values)
        if v.ndim != 2:
            raise ValueError(f"RatingMatrix.from_dense: expected a 2-D array, given shape {v.shape}")
        m = (np.nan_to_num(v) != 0) & ~np.isnan(v.astype(np.float64)) if mask is None else np.asarray(mask, dtype=bool)
        if m.shape != v.shape:
            raise ValueError(f"RatingMatrix.from_dense: mask needs shape {v.shape}, given {m.shape}")
        u, i = np.nonzero(m)
        return cls(u, i, v[u, i], v.shape[0], v.shape[1], scale=scale, dtype=dtype)


# ----------------------------------------------------------------------------- files


def _detect_sep(line: str) -> str:
    if "::" in line:
        return "::"
    if "\t" in line:
        return "\t"
    if "," in line:
        return ","
    return " "


def load_ratings(
    path: PathLike,
    sep: Optional[str] = None,
    *,
    scale: Sequence[float] = (1, 5),
    dtype: Any = np.float32,
    encoding: str = "latin-1",
) -> RatingMatrix:
    """Reads a MovieLens-format ratings file: one ``user item rating timestamp`` per line
    (the timestamp may be left out), separated by tabs (MovieLens 100k ``u.data``), by
    ``::`` (MovieLens 1M/10M ``ratings.dat``) or by commas (``ratings.csv`` of MovieLens
    20M / latest, whose first line of column names ``userId,...`` is skipped), or by ``sep``
    if given. Blank lines are skipped. (MovieLens 10M / 20M / latest use half stars: pass
    ``scale=(0.5, 5)``.)

    Raw user / item ids (any integers) are mapped to contiguous indices in increasing id
    order; ``result.user_ids[u]`` and ``result.item_ids[i]`` give the raw ids back.

    Errors: ``ValueError("load_ratings: <path>, line <n>: ...")`` for a line with the wrong
    number of fields, a non-numeric field, a non-finite rating, a rating outside ``scale``
    or a repeated (user, item) pair; FileNotFoundError for a missing file; ValueError for a
    file without ratings.
    """
    what = "load_ratings"
    lo, hi = _scale(scale, what)
    name = os.fspath(path)
    with open(name, "r", encoding=encoding, newline=None) as f:
        text = f.read()
    if sep is None:
        first = next((ln for ln in text.split("\n", 64) if ln.strip()), "")
        sep = _detect_sep(first)
    elif not isinstance(sep, str) or not sep:
        raise ValueError(f"{what}: sep must be a non-empty string, given {sep!r}")
    fast = _parse_fast(text, sep, lo, hi)
    lineno = None
    if fast is None:  # a malformed file: the line-by-line parser names the bad line
        us, its, rs, ts, lineno = _parse_lines(text.split("\n"), name, sep, lo, hi)
    else:
        us, its, rs, ts = fast
    if us.size == 0:
        raise ValueError(f"{what}: {name} holds no ratings (expected lines 'user item rating timestamp')")
    user_ids, ui = np.unique(us, return_inverse=True)
    item_ids, ii = np.unique(its, return_inverse=True)
    key = ui.astype(np.int64) * len(item_ids) + ii
    order = np.argsort(key, kind="stable")
    dup = np.flatnonzero(key[order][1:] == key[order][:-1])
    if dup.size:
        if lineno is None:
            lineno = _parse_lines(text.split("\n"), name, sep, lo, hi)[4]
        a, b = order[dup[0]], order[dup[0] + 1]
        raise ValueError(
            f"{what}: {name}, line {lineno[b]}: user {us[b]} rated item {its[b]} already on line {lineno[a]}"
        )
    return RatingMatrix(
        ui, ii, rs, len(user_ids), len(item_ids), scale=(lo, hi), timestamps=ts,
        user_ids=user_ids, item_ids=item_ids, dtype=dtype, _checked=True,
    )


def _is_header(line: str, sep: str) -> bool:
    first = line.strip().split(sep)[0].strip().lower() if line.strip() else ""
    return sep == "," and first in ("userid", "user_id", "user")


def _parse_fast(text: str, sep: str, lo: float, hi: float) -> Optional[Tuple[np.ndarray, ...]]:
    """The whole file through NumPy's C parser (``numpy.loadtxt``); None when anything is
    off (then :func:`_parse_lines` finds and names the line)."""
    if sep not in ("\t", "::", ",", " "):
        return None
    body = text.replace("::", "\t") if sep == "::" else text
    delim = {"::": "\t", " ": None}.get(sep, sep)
    first = next((ln for ln in body.split("\n", 64) if ln.strip()), "")
    skip = 1 if _is_header(first, sep) and body.lstrip().startswith(first.strip()) else 0
    if not first:
        return (np.zeros(0, np.int64),) * 2 + (np.zeros(0), np.zeros(0, np.int64))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            arr = np.loadtxt(io.StringIO(body), delimiter=delim, dtype=np.float64, ndmin=2, skiprows=skip)
    except (ValueError, UserWarning):
        return None
    if arr.shape[1] not in (3, 4) or not np.all(np.isfinite(arr)):
        return None
    ids = arr[:, [0, 1] + ([3] if arr.shape[1] == 4 else [])]
    if not np.all(ids == np.rint(ids)) or np.abs(ids).max(initial=0) >= 2.0**53:
        return None
    r = arr[:, 2]
    if not np.all((r >= lo) & (r <= hi)):
        return None
    ts = arr[:, 3].astype(np.int64) if arr.shape[1] == 4 else np.zeros(arr.shape[0], np.int64)
    return arr[:, 0].astype(np.int64), arr[:, 1].astype(np.int64), r.copy(), ts


def _parse_lines(lines: List[str], name: str, sep: str, lo: float, hi: float) -> Tuple[np.ndarray, ...]:
    """Line by line, raising ValueError naming the file and line of the first bad line;
    returns (users, items, ratings, timestamps, line numbers)."""
    what = "load_ratings"
    n = len(lines)
    us = np.empty(n, dtype=np.int64)
    its = np.empty(n, dtype=np.int64)
    rs = np.empty(n, dtype=np.float64)
    ts = np.zeros(n, dtype=np.int64)
    lineno = np.empty(n, dtype=np.int64)
    k = 0
    splitter = None if sep == " " else sep
    header_ok = sep == ","
    for no, line in enumerate(lines, 1):  # the diagnostic pass over the text lines
        if not line.strip():
            continue
        parts = line.strip().split(splitter)
        if header_ok:
            header_ok = False
            if _is_header(line, sep):
                continue
        if len(parts) not in (3, 4):
            raise ValueError(
                f"{what}: {name}, line {no}: expected 'user item rating timestamp' separated by {sep!r} "
                f"(3 or 4 fields), given {len(parts)} field(s): {line.strip()[:80]!r}"
            )
        try:
            us[k] = int(parts[0])
            its[k] = int(parts[1])
            rs[k] = float(parts[2])
            if len(parts) == 4:
                ts[k] = int(parts[3])
        except (ValueError, OverflowError):
            raise ValueError(
                f"{what}: {name}, line {no}: expected integer user and item ids, a numeric rating and an integer "
                f"timestamp, given {line.strip()[:80]!r}"
            ) from None
        if not math.isfinite(rs[k]) or not lo <= rs[k] <= hi:
            raise ValueError(f"{what}: {name}, line {no}: rating {parts[2].strip()} is outside the scale [{lo:g}, {hi:g}]")
        lineno[k] = no
        k += 1
    return us[:k], its[:k], rs[:k], ts[:k], lineno[:k]


def save_ratings(ratings: RatingMatrix, path: PathLike, sep: str = "\t") -> None:
    """Writes ``ratings`` as a MovieLens-format file (``user item rating timestamp`` per
    line, raw ids when the matrix has them, else 1-based indices), atomically (temp file
    + rename). Integral ratings are written without a decimal point."""
    if not isinstance(ratings, RatingMatrix):
        raise TypeError(f"save_ratings: expected a RatingMatrix, given {type(ratings).__name__}")
    uid = ratings.user_ids[ratings.users] if ratings.user_ids is not None else ratings.users + 1
    iid = ratings.item_ids[ratings.items] if ratings.item_ids is not None else ratings.items + 1
    ts = ratings.timestamps if ratings.timestamps is not None else np.zeros(ratings.nnz, dtype=np.int64)
    r = ratings.ratings.astype(np.float64)
    integral = bool(np.all(r == np.round(r)))
    rtxt = r.astype(np.int64).astype(str) if integral else np.char.mod("%.6g", r)
    cols = [np.asarray(uid).astype(str).tolist(), np.asarray(iid).astype(str).tolist(), rtxt.tolist(), ts.astype(str).tolist()]
    body = "\n".join(map(sep.join, zip(*cols)))
    target = os.fspath(path)
    tmp = f"{target}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="latin-1") as f:
            f.write(body + ("\n" if body else ""))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


# ----------------------------------------------------------------------------- synthetic data


def _positive_int(v: Any, name: str, what: str, minimum: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
        raise ValueError(f"{what}: {name} must be an int >= {minimum}, given {v!r}")
    return int(v)


def make_ratings(
    n_users: int = 943,
    n_items: int = 1682,
    n_ratings: int = 100_000,
    rank: int = 10,
    seed: Optional[int] = 0,
    *,
    noise: float = 0.6,
    selection_bias: float = 0.6,
    dtype: Any = np.float32,
) -> RatingMatrix:
    """A synthetic ratings set shaped like MovieLens: integer stars 1-5 of ``n_users`` users
    on ``n_items`` items, ``n_ratings`` of them (the defaults are MovieLens 100k's size,
    93.7 % missing).

    The generative model (all draws from ``numpy.random.default_rng(seed)``):

    - taste: user factors P (n_users, rank) and item factors Q (n_items, rank), N(0, 1/rank),
      the affinity ``a[u, i] = P[u] . Q[i]`` scaled to standard deviation 0.9;
    - activity and popularity: user activity and item popularity log-normal (sigma 1.0 and
      1.3), so a few users rate a lot and a few items (the blockbusters) collect a large
      share of ratings (a long tail of items with one or two ratings);
    - which pairs are rated: ``n_ratings`` distinct (user, item) pairs drawn without
      replacement with weight ``activity[u] * popularity[i] * exp(selection_bias * a[u, i])``
      (users tend to pick items they expect to like; Gumbel top-k sampling);
    - the rating: ``round(3.0 + b_u + b_i + a[u, i] + e)`` clipped to 1..5 with user
      biases b_u ~ N(0, 0.35), item biases b_i ~ N(0, 0.35) + 0.2 * (standardised log
      popularity) (popular items are rated higher) and noise e ~ N(0, ``noise``).

    The result is sorted by timestamp (timestamps increase from 874,724,710, as
    MovieLens 100k's do). Returns a :class:`RatingMatrix` with scale (1, 5).
    """
    what = "make_ratings"
    nu = _positive_int(n_users, "n_users", what)
    ni = _positive_int(n_items, "n_items", what)
    nr = _positive_int(n_ratings, "n_ratings", what)
    k = _positive_int(rank, "rank", what)
    if nr > nu * ni:
        raise ValueError(f"{what}: n_ratings must be at most n_users * n_items = {nu * ni}, given {nr}")
    if not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"{what}: noise must be a finite number >= 0, given {noise!r}")
    if not math.isfinite(selection_bias):
        raise ValueError(f"{what}: selection_bias must be finite, given {selection_bias!r}")
    rng = np.random.default_rng(seed)
    P = rng.normal(0.0, 1.0 / math.sqrt(k), size=(nu, k))
    Q = rng.normal(0.0, 1.0 / math.sqrt(k), size=(ni, k))
    log_act = rng.normal(0.0, 1.0, size=nu)
    log_pop = rng.normal(0.0, 1.3, size=ni)
    b_u = rng.normal(0.0, 0.35, size=nu)
    b_i = rng.normal(0.0, 0.35, size=ni) + 0.2 * (log_pop - log_pop.mean()) / (log_pop.std() + 1e-12)
    aff = P @ Q.T
    aff *= 0.9 / (aff.std() + 1e-12)
    # Gumbel top-k: the n_ratings largest of log-weight + Gumbel noise are a weighted sample
    # without replacement.
    keys = log_act[:, None] + log_pop[None, :] + selection_bias * aff
    keys += rng.gumbel(size=keys.shape)
    flat = np.argpartition(keys.ravel(), keys.size - nr)[keys.size - nr :]
    flat.sort()
    users, items = np.divmod(flat, ni)
    raw = 3.0 + b_u[users] + b_i[items] + aff[users, items] + rng.normal(0.0, noise, size=nr)
    ratings = np.clip(np.rint(raw), 1, 5)
    times = 874_724_710 + np.sort(rng.integers(0, 18_000_000, size=nr))
    order = rng.permutation(nr)  # rating order in time is random
    return RatingMatrix(
        users[order], items[order], ratings[order], nu, ni, scale=(1, 5), timestamps=times,
        user_ids=np.arange(1, nu + 1), item_ids=np.arange(1, ni + 1), dtype=dtype, _checked=True,
    )


def train_test_split(
    ratings: RatingMatrix, test_size: float = 0.2, seed: Optional[int] = 0
) -> Tuple[RatingMatrix, RatingMatrix]:
    """Splits by rating: a random ``test_size`` fraction of the observed ratings (a seeded
    permutation, ``numpy.random.default_rng(seed)``) goes to the test matrix, the rest to
    the train matrix; both keep the full (n_users, n_items) shape. ``test_size`` is a
    fraction in (0, 1) or a number of ratings."""
    what = "train_test_split"
    if not isinstance(ratings, RatingMatrix):
        raise TypeError(f"{what}: expected a RatingMatrix, given {type(ratings).__name__}")
    n = ratings.nnz
    if n < 2:
        raise ValueError(f"{what}: need at least 2 ratings to split, given {n}")
    if isinstance(test_size, (int, np.integer)) and not isinstance(test_size, bool) and test_size >= 1:
        n_test = int(test_size)
    elif isinstance(test_size, (float, np.floating)) and 0.0 < test_size < 1.0:
        n_test = int(round(n * float(test_size)))
    else:
        raise ValueError(f"{what}: test_size must be a fraction in (0, 1) or a count >= 1, given {test_size!r}")
    if not 1 <= n_test < n:
        raise ValueError(f"{what}: test_size={test_size!r} of {n} ratings leaves an empty part")
    perm = np.random.default_rng(seed).permutation(n)
    test_idx = np.sort(perm[:n_test])
    train_idx = np.sort(perm[n_test:])
    return ratings._like(train_idx), ratings._like(test_idx)
