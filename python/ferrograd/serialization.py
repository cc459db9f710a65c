"""Saving and loading: :func:`save` / :func:`load` in the safetensors format, without pickle.

What can be saved: a (nested) ``dict`` — or list / tuple — whose leaves are NumPy arrays,
:class:`ferrograd.Tensor` s, NumPy scalars, and the JSON-like values ``int``, ``float``,
``bool``, ``str`` and ``None``. That covers ``model.state_dict()``, ``optimizer.state_dict()``
and a training checkpoint such as::

    ferrograd.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                    "epoch": 3, "rng": ferrograd.generator().bit_generator.state}, "ckpt.safetensors")

The file is an ordinary safetensors file: every array is a tensor named by its path in the
tree (``model.0.weight``, ``optimizer.state.0.exp_avg``), so a flat state dict saved here
opens with ``safetensors.torch.load_file`` and can be loaded into the equivalent PyTorch
model. The tree's shape (dict key order, int-vs-str keys, lists, tuples, the non-array
leaves) is stored as JSON under the ``"ferrograd.tree"`` metadata key. A plain safetensors
file without that key loads as a flat ``dict`` name -> array.

Safety: loading never runs code (no pickle, no eval). The header is parsed and checked
before any data is touched — its size against the file's, every tensor's dtype, shape and
byte range, the JSON tree's depth and references — and any inconsistency raises
``ValueError`` naming the problem. Writes are atomic: the bytes go to a temporary file in the
target's directory, which is flushed, fsync'ed and renamed over the target with
:func:`os.replace`, so a crash mid-save leaves the previous file intact.
"""

from __future__ import annotations

import json
import math
import os
import struct
import tempfile
from collections import OrderedDict
from typing import Any, BinaryIO, Dict, Tuple, Union

import numpy as np

PathLike = Union[str, "os.PathLike[str]"]

_TREE_KEY = "ferrograd.tree"
_FORMAT_VERSION = 1
_MAX_HEADER = 100 * 1024 * 1024  # bytes; real headers are a few KB
_MAX_DEPTH = 64  # nesting of the saved tree

# safetensors dtype names <-> NumPy dtypes (little-endian on disk).
_ST_TO_NP = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"),
    "U32": np.dtype("<u4"),
    "U16": np.dtype("<u2"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("bool"),
}
_SAVABLE_KINDS = "fiub"


# ----------------------------------------------------------------------------- save


def _tensor_type():
    from .tensor import Tensor

    return Tensor


class _Flattener:
    """Turns the tree into (JSON structure, {tensor name: array})."""

    def __init__(self) -> None:
        self.arrays: "OrderedDict[str, np.ndarray]" = OrderedDict()
        self.Tensor = _tensor_type()

    def _name(self, path: str) -> str:
        name = path or "tensor"
        if name in self.arrays:
            i = 1
            while f"{name}#{i}" in self.arrays:
                i += 1
            name = f"{name}#{i}"
        return name

    def _array(self, arr: np.ndarray, path: str, kind: str) -> dict:
        if arr.dtype.kind not in _SAVABLE_KINDS or arr.dtype.itemsize > 8:
            raise TypeError(f"save: cannot store an array of dtype {arr.dtype} at {path or '<root>'!r}")
        if not arr.flags.c_contiguous:
            arr = arr.copy(order="C")  # (np.ascontiguousarray would turn 0-d into 1-d)
        if arr.dtype.byteorder == ">":
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        name = self._name(path)
        self.arrays[name] = arr
        return {"t": kind, "name": name}

    def node(self, obj: Any, path: str, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise ValueError(f"save: the object is nested deeper than {_MAX_DEPTH} levels")
        where = path or "<root>"
        if isinstance(obj, self.Tensor):
            return self._array(obj.data, path, "tensor")
        if isinstance(obj, np.ndarray):
            return self._array(obj, path, "array")
        if isinstance(obj, np.generic):
            if isinstance(obj, (np.floating, np.integer, np.bool_)):
                return self._array(np.asarray(obj), path, "scalar")
            raise TypeError(f"save: cannot store a {type(obj).__name__} at {where!r}")
        if obj is None or isinstance(obj, (bool, str)):
            return {"t": "v", "v": obj}
        if isinstance(obj, int):
            return {"t": "v", "v": int(obj)}
        if isinstance(obj, float):
            if math.isfinite(obj):
                return {"t": "v", "v": obj}
            return {"t": "f", "v": repr(obj)}  # 'nan', 'inf', '-inf'
        if isinstance(obj, dict):
            items = []
            for k, v in obj.items():
                if isinstance(k, bool) or not isinstance(k, (str, int, np.integer)):
                    raise TypeError(
                        f"save: dict keys must be str or int, given {type(k).__name__} key {k!r} at {where!r}"
                    )
                kt = "s" if isinstance(k, str) else "i"
                key = k if kt == "s" else int(k)
                sub = f"{path}.{key}" if path else str(key)
                items.append([kt, key, self.node(v, sub, depth + 1)])
            return {"t": "dict", "items": items, "ordered": isinstance(obj, OrderedDict)}
        if isinstance(obj, (list, tuple)):
            items = [self.node(v, f"{path}.{i}" if path else str(i), depth + 1) for i, v in enumerate(obj)]
            return {"t": "list" if isinstance(obj, list) else "tuple", "items": items}
        raise TypeError(
            f"save: cannot store a {type(obj).__name__} at {where!r}; expected arrays, Tensors, "
            f"numbers, bools, str, None, and dicts / lists / tuples of them"
        )


def _serialize(obj: Any) -> bytes:
    import safetensors.numpy

    fl = _Flattener()
    tree = fl.node(obj, "", 0)
    meta = {
        "format": "np",
        _TREE_KEY: json.dumps({"version": _FORMAT_VERSION, "tree": tree}, allow_nan=False),
    }
    return safetensors.numpy.save(dict(fl.arrays), metadata=meta)


def _fsync_dir(dirname: str) -> None:
    try:
        fd = os.open(dirname, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save(obj: Any, path: Union[PathLike, BinaryIO]) -> None:
    """Saves ``obj`` (a nested dict / list / tuple of arrays, Tensors and JSON-like values)
    to ``path`` in the safetensors format, atomically.

    ``path`` is a file name (written through a temporary file in the same directory, then
    flushed, fsync'ed and renamed over the target) or a writable binary file object (written
    directly). Raises TypeError naming the offending entry for anything else in ``obj``.
    """
    data = _serialize(obj)
    if hasattr(path, "write"):
        path.write(data)  # type: ignore[union-attr]
        return
    path = os.fspath(path)
    target = os.path.abspath(path)
    dirname = os.path.dirname(target)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(target) + ".", suffix=".tmp", dir=dirname)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(dirname)


# ----------------------------------------------------------------------------- load


def _bad(what: str, msg: str) -> ValueError:
    return ValueError(f"load: not a valid ferrograd/safetensors file ({what}): {msg}")


def _parse_header(data: bytes, what: str) -> Tuple[dict, int]:
    """Checks the header and every tensor's entry; returns (header, data start)."""
    n = len(data)
    if n < 8:
        raise _bad(what, f"it has {n} bytes, fewer than the 8-byte header length")
    (hlen,) = struct.unpack("<Q", data[:8])
    if hlen > _MAX_HEADER:
        raise _bad(what, f"its header claims {hlen} bytes (the limit is {_MAX_HEADER})")
    if 8 + hlen > n:
        raise _bad(what, f"its header claims {hlen} bytes but the file has only {n - 8} after the length (truncated?)")
    raw = data[8 : 8 + hlen]
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise _bad(what, f"its header is not valid JSON ({type(e).__name__}: {e})") from None
    if not isinstance(header, dict):
        raise _bad(what, f"its header is a JSON {type(header).__name__}, expected an object")
    body = n - 8 - hlen
    spans = []
    for name, entry in header.items():
        if name == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise _bad(what, "its __metadata__ is not an object of strings")
            continue
        if not isinstance(entry, dict):
            raise _bad(what, f"tensor {name!r}: entry is not an object")
        dt, shape, offs = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if dt not in _ST_TO_NP:
            raise _bad(what, f"tensor {name!r}: unsupported dtype {dt!r} (expected one of {sorted(_ST_TO_NP)})")
        if not isinstance(shape, list) or not all(
            isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**62 for s in shape
        ) or len(shape) > 64:
            raise _bad(what, f"tensor {name!r}: shape {shape!r} is not a list of non-negative ints")
        if not (
            isinstance(offs, list)
            and len(offs) == 2
            and all(isinstance(o, int) and not isinstance(o, bool) for o in offs)
        ):
            raise _bad(what, f"tensor {name!r}: data_offsets {offs!r} is not a pair of ints")
        b, e = offs
        if not 0 <= b <= e <= body:
            raise _bad(
                what, f"tensor {name!r}: data_offsets [{b}, {e}] fall outside the {body} data bytes (truncated?)"
            )
        nbytes = math.prod(shape) * _ST_TO_NP[dt].itemsize
        if e - b != nbytes:
            raise _bad(
                what, f"tensor {name!r}: dtype {dt} and shape {shape} need {nbytes} bytes, its offsets span {e - b}"
            )
        spans.append((b, e, name))
    spans.sort()
    pos = 0
    for b, e, name in spans:
        if b != pos:
            raise _bad(what, f"tensor {name!r}: data starts at byte {b}, expected {pos} (overlapping or gap)")
        pos = e
    if pos != body:
        raise _bad(what, f"the tensors cover {pos} data bytes but the file holds {body}")
    return header, 8 + hlen


def _read_arrays(data: bytes, header: dict, start: int, what: str) -> Dict[str, np.ndarray]:
    import safetensors

    try:
        views = safetensors.deserialize(data)
    except Exception as e:  # SafetensorError: a check of ours missed something
        raise _bad(what, str(e)) from None
    out: Dict[str, np.ndarray] = {}
    for name, v in views:
        entry = header.get(name)
        if not isinstance(entry, dict) or entry.get("dtype") not in _ST_TO_NP:
            raise _bad(what, f"tensor {name!r} disagrees with the header")
        dt = _ST_TO_NP[entry["dtype"]]
        arr = np.frombuffer(v["data"], dtype=dt).reshape(entry["shape"])
        out[name] = arr.astype(dt.newbyteorder("="), copy=True)  # own, writable, native order
    missing = [k for k in header if k != "__metadata__" and k not in out]
    if missing:
        raise _bad(what, f"tensors {missing} are in the header but were not read")
    return out


class _Builder:
    def __init__(self, arrays: Dict[str, np.ndarray], what: str) -> None:
        self.arrays = arrays
        self.used: set = set()
        self.what = what
        self.Tensor = _tensor_type()

    def err(self, msg: str) -> ValueError:
        return _bad(self.what, f"its tree metadata is malformed: {msg}")

    def build(self, node: Any, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise self.err(f"nested deeper than {_MAX_DEPTH} levels")
        if not isinstance(node, dict) or not isinstance(node.get("t"), str):
            raise self.err(f"expected a node object, found {type(node).__name__}")
        t = node["t"]
        if t == "v":
            v = node.get("v")
            if v is not None and not isinstance(v, (bool, int, float, str)):
                raise self.err(f"a value leaf holds a {type(v).__name__}")
            return v
        if t == "f":
            v = node.get("v")
            if v not in ("nan", "inf", "-inf"):
                raise self.err(f"a float leaf holds {v!r}")
            return float(v)
        if t in ("tensor", "array", "scalar"):
            name = node.get("name")
            if not isinstance(name, str) or name not in self.arrays:
                raise self.err(f"it refers to a tensor {name!r} that the file does not hold")
            if name in self.used:
                raise self.err(f"tensor {name!r} is referred to twice")
            self.used.add(name)
            arr = self.arrays[name]
            if t == "scalar":
                if arr.ndim != 0:
                    raise self.err(f"scalar {name!r} has shape {arr.shape}")
                return arr[()]
            if t == "tensor":
                return self.Tensor._wrap(arr)
            return arr
        if t == "dict":
            items = node.get("items")
            if not isinstance(items, list):
                raise self.err("a dict node has no item list")
            out = OrderedDict() if node.get("ordered") else {}
            for it in items:
                if not (isinstance(it, list) and len(it) == 3):
                    raise self.err("a dict item is not a [key type, key, value] triple")
                kt, k, v = it
                if kt == "s" and isinstance(k, str):
                    key: Any = k
                elif kt == "i" and isinstance(k, int) and not isinstance(k, bool):
                    key = k
                else:
                    raise self.err(f"a dict key {k!r} does not match its type tag {kt!r}")
                if key in out:
                    raise self.err(f"dict key {key!r} appears twice")
                out[key] = self.build(v, depth + 1)
            return out
        if t in ("list", "tuple"):
            items = node.get("items")
            if not isinstance(items, list):
                raise self.err(f"a {t} node has no item list")
            vals = [self.build(v, depth + 1) for v in items]
            return vals if t == "list" else tuple(vals)
        raise self.err(f"unknown node type {t!r}")


def _read_bytes(path: Union[PathLike, BinaryIO, bytes, bytearray, memoryview]) -> Tuple[bytes, str]:
    if isinstance(path, (bytes, bytearray, memoryview)):
        return bytes(path), "the given bytes"
    if hasattr(path, "read"):
        data = path.read()  # type: ignore[union-attr]
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"load: the file object must be opened in binary mode, read() gave {type(data).__name__}")
        return bytes(data), "the given file object"
    p = os.fspath(path)
    with open(p, "rb") as f:
        return f.read(), repr(p)


def load(path: Union[PathLike, BinaryIO, bytes]) -> Any:
    """Loads what :func:`save` wrote: the same tree, with arrays as owned, writable NumPy
    arrays (Tensors come back as Tensors, NumPy scalars as NumPy scalars, int dict keys as
    ints). A safetensors file written elsewhere (no ferrograd tree) loads as a flat dict
    name -> array in the header's order.

    ``path`` is a file name, a binary file object or the file's bytes. Raises ValueError
    for a truncated, corrupted or hostile file, naming what is wrong; never runs code.
    """
    data, what = _read_bytes(path)
    header, start = _parse_header(data, what)
    arrays = _read_arrays(data, header, start, what)
    meta = header.get("__metadata__") or {}
    if _TREE_KEY not in meta:
        names = [k for k in header if k != "__metadata__"]
        return OrderedDict((k, arrays[k]) for k in names)
    try:
        doc = json.loads(meta[_TREE_KEY])
    except (ValueError, RecursionError) as e:
        raise _bad(what, f"its tree metadata is not valid JSON ({type(e).__name__})") from None
    if not isinstance(doc, dict) or "tree" not in doc:
        raise _bad(what, "its tree metadata has no 'tree'")
    if doc.get("version") != _FORMAT_VERSION:
        raise _bad(what, f"tree format version {doc.get('version')!r} is not supported (expected {_FORMAT_VERSION})")
    b = _Builder(arrays, what)
    try:
        obj = b.build(doc["tree"], 0)
    except RecursionError:
        raise _bad(what, "its tree metadata is nested too deeply") from None
    unused = sorted(set(arrays) - b.used)
    if unused:
        raise _bad(what, f"tensors {unused[:5]} are not referred to by the tree metadata")
    return obj


__all__ = ["save", "load"]
