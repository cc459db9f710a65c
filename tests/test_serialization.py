"""ferrograd.save / load: round trips, interop, atomic writes, and hostile files."""

from __future__ import annotations

import io
import json
import math
import os
import struct
from collections import OrderedDict

import numpy as np
import pytest
import safetensors.numpy as stn

import ferrograd as fg
from ferrograd.serialization import load, save


def _same(a, b):
    """Deep equality with types (int vs str keys, tuple vs list, dtypes, NaN)."""
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, dict):
        assert list(a.keys()) == list(b.keys())
        for k in a:
            assert type(k) is type(list(b.keys())[list(a.keys()).index(k)])
            _same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    elif isinstance(a, fg.Tensor):
        _same(a.data, b.data)
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b)
    elif isinstance(a, np.generic):
        assert a.dtype == b.dtype and a == b
    else:
        assert a == b


def _checkpoint():
    rng = np.random.default_rng(0)
    return {
        "model": OrderedDict([("0.weight", rng.standard_normal((4, 3)).astype(np.float32)), ("0.bias", np.zeros(4, np.float32)), ("2.weight", rng.standard_normal((2, 4)))]),
        "optimizer": {
            "state": {0: {"step": np.float32(3.0), "exp_avg": np.ones((4, 3), np.float32)}, 1: {"step": 7, "exp_avg": np.zeros(4, np.float32)}},
            "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "amsgrad": False, "maximize": None, "params": [0, 1]}],
        },
        "epoch": 3,
        "rng": fg.generator().bit_generator.state,
        "misc": [1, "two", 3.5, None, True, float("nan"), float("inf"), -float("inf"), 2**100, -5],
        "arrays": {
            "i8": np.arange(5, dtype=np.int8), "u16": np.arange(3, dtype=np.uint16), "b": np.array([True, False]),
            "f16": np.ones(2, np.float16), "empty": np.zeros((0, 3)), "scalar0d": np.array(2.5), "noncontig": np.arange(12.0).reshape(3, 4).T,
            "bigendian": np.arange(4, dtype=">f4"), "i64": np.int64(2**40),
        },
        "tensor": fg.tensor([1.0, 2.0]),
        "1": "string key '1' beside int key 1",
        1: "int key",
    }


def test_round_trip_checkpoint(tmp_path):
    obj = _checkpoint()
    p = tmp_path / "ck.safetensors"
    save(obj, p)
    back = load(p)
    exp = dict(obj)
    exp["arrays"] = dict(obj["arrays"])
    exp["arrays"]["bigendian"] = obj["arrays"]["bigendian"].astype("<f4")
    exp["arrays"]["noncontig"] = np.ascontiguousarray(obj["arrays"]["noncontig"])
    _same(exp, back)
    assert back["arrays"]["bigendian"].dtype == np.float32
    assert back["model"]["0.weight"].flags.writeable and back["model"]["0.weight"].flags.owndata
    # the generator state restores the stream
    g = np.random.Generator(np.random.PCG64())
    g.bit_generator.state = back["rng"]
    assert g.random() == fg.generator().random()


def test_bytes_and_file_objects():
    buf = io.BytesIO()
    save({"a": np.arange(3)}, buf)
    raw = buf.getvalue()
    assert load(raw)["a"].tolist() == [0, 1, 2]
    assert load(io.BytesIO(raw))["a"].tolist() == [0, 1, 2]


def test_flat_state_dict_is_plain_safetensors(tmp_path):
    sd = OrderedDict([("fc1.weight", np.ones((2, 3), np.float32)), ("fc1.bias", np.zeros(2, np.float32))])
    p = str(tmp_path / "sd.safetensors")
    save(sd, p)
    other = stn.load_file(p)  # another reader sees the PyTorch key names
    assert set(other) == {"fc1.weight", "fc1.bias"} and np.array_equal(other["fc1.weight"], sd["fc1.weight"])
    back = load(p)
    assert isinstance(back, OrderedDict) and list(back) == list(sd)
    # a safetensors file written elsewhere loads as a flat dict
    stn.save_file({"w": np.arange(4, dtype=np.float32)}, str(tmp_path / "plain.safetensors"))
    assert load(tmp_path / "plain.safetensors")["w"].tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize(
    "bad,match",
    [
        ({"x": {1, 2}}, "set"),
        ({"x": object()}, "object"),
        ({(1, 2): 3}, "keys must be str or int"),
        ({"c": np.ones(2, np.complex64)}, "dtype complex64"),
        ({"o": np.array(["a"], dtype=object)}, "dtype object"),
    ],
)
def test_unsavable_values_raise_type_error(tmp_path, bad, match):
    with pytest.raises(TypeError, match=match):
        save(bad, tmp_path / "x.safetensors")
    assert os.listdir(tmp_path) == []


def test_too_deep_raises(tmp_path):
    obj: dict = {}
    cur = obj
    for _ in range(100):
        cur["a"] = {}
        cur = cur["a"]
    with pytest.raises(ValueError, match="nested deeper"):
        save(obj, tmp_path / "x.safetensors")


# ----------------------------------------------------------------------------- atomic writes


def test_interrupted_save_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    p = tmp_path / "ck.safetensors"
    save({"w": np.ones(3)}, p)
    before = p.read_bytes()

    def boom(src, dst):
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="simulated"):
        save({"w": np.zeros(1000)}, p)
    assert p.read_bytes() == before and os.listdir(tmp_path) == ["ck.safetensors"]
    monkeypatch.undo()

    # a crash while writing the bytes (e.g. disk full / KeyboardInterrupt)
    real_fsync = os.fsync

    def fail_fsync(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", fail_fsync)
    with pytest.raises(KeyboardInterrupt):
        save({"w": np.zeros(1000)}, p)
    assert p.read_bytes() == before and os.listdir(tmp_path) == ["ck.safetensors"]
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert load(p)["w"].tolist() == [1, 1, 1]


def test_save_flushes_fsyncs_then_renames(tmp_path, monkeypatch):
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (calls.append("replace"), real_replace(a, b))[1])
    save({"w": np.ones(3)}, tmp_path / "a.safetensors")
    assert calls[:2] == ["fsync", "replace"]
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(tmp_path / "a.safetensors").st_mode & 0o777 == 0o666 & ~umask  # like open(); not mkstemp's 0600


# ----------------------------------------------------------------------------- hostile files


def _file(header: dict, body: bytes = b"") -> bytes:
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + body


def _good() -> bytes:
    buf = io.BytesIO()
    save({"a": np.arange(6, dtype=np.float32).reshape(2, 3), "k": {1: "x"}, "b": np.ones(2)}, buf)
    return buf.getvalue()


def test_every_truncation_is_a_clear_value_error():
    raw = _good()
    for n in range(len(raw)):
        with pytest.raises(ValueError, match="not a valid"):
            load(raw[:n])
    assert load(raw)["k"] == {1: "x"}


def test_random_bytes_and_bit_flips_never_crash():
    rng = np.random.default_rng(7)
    for n in (0, 1, 7, 8, 9, 64, 1000):
        with pytest.raises(ValueError):
            load(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
    raw = bytearray(_good())
    for _ in range(300):
        b = bytearray(raw)
        for pos in rng.integers(0, len(b), 3):
            b[pos] = int(rng.integers(0, 256))
        try:
            load(bytes(b))
        except ValueError:
            pass  # a clear error; any other exception type fails the test


@pytest.mark.parametrize(
    "data,match",
    [
        (struct.pack("<Q", 2**63) + b"{}", "header claims"),
        (struct.pack("<Q", 10**6) + b"{}", "truncated"),
        (struct.pack("<Q", 5) + b"{abc}", "not valid JSON"),
        (struct.pack("<Q", 2) + b"\xff\xfe", "not valid JSON"),
        (_file([1, 2]), "JSON list"),
        (_file({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 4), "outside"),
        (_file({"t": {"dtype": "F32", "shape": [2**40, 2**40], "data_offsets": [0, 8]}}, b"\0" * 8), "need"),
        (_file({"t": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4), "shape"),
        (_file({"t": {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}}, b"\0" * 4), "shape"),
        (_file({"t": {"dtype": "OBJ", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4), "dtype"),
        (_file({"t": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}, b"\0" * 4), "outside"),
        (_file({"t": {"dtype": "F32", "shape": [1], "data_offsets": "0-4"}}, b"\0" * 4), "pair of ints"),
        (
            _file({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 8),
            "overlapping",
        ),
        (_file({"t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 12), "cover"),
        (_file({"__metadata__": {"ferrograd.tree": "{not json"}}), "not valid JSON"),
        (_file({"__metadata__": {"ferrograd.tree": "[" * 100000 + "]" * 100000}}), "JSON|nested"),
        (_file({"__metadata__": {"ferrograd.tree": json.dumps({"version": 1, "tree": {"t": "array", "name": "../../etc/passwd"}})}}), "does not hold"),
        (_file({"__metadata__": {"ferrograd.tree": json.dumps({"version": 1, "tree": {"t": "pickle", "v": "cos\nsystem"}})}}), "unknown node"),
        (_file({"__metadata__": {"ferrograd.tree": json.dumps({"version": 99, "tree": {}})}}), "version"),
        (_file({"__metadata__": {"ferrograd.tree": json.dumps({"version": 1, "tree": {"t": "dict", "items": [["i", "1", {"t": "v", "v": 1}]]}})}}), "type tag"),
        (_file({"__metadata__": {"ferrograd.tree": json.dumps({"version": 1, "tree": {"t": "v", "v": {"x": 1}}})}}), "value leaf"),
        (_file({"__metadata__": {"x": 3}}), "__metadata__"),
        (b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x8c\x05posix\x94.", "not a valid"),  # a pickle stream
    ],
)
def test_hostile_headers(data, match):
    with pytest.raises(ValueError, match=match):
        load(data)


def test_path_trick_names_are_just_labels(tmp_path):
    # Tensor names that look like paths are only dictionary keys: nothing is opened or written.
    name = "../../../tmp/evil"
    h = {name: {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "/etc/passwd": {"dtype": "U8", "shape": [1], "data_offsets": [4, 5]}}
    data = _file(h, np.float32(1.5).tobytes() + b"\x07")
    before = set(os.listdir("/tmp"))
    out = load(data)
    assert out[name].tolist() == [1.5] and out["/etc/passwd"].tolist() == [7]
    assert set(os.listdir("/tmp")) - before == set()


def test_unreferenced_and_doubly_referenced_tensors_rejected():
    arr = np.float32(0).tobytes()
    tree = {"version": 1, "tree": {"t": "list", "items": [{"t": "array", "name": "a"}, {"t": "array", "name": "a"}]}}
    data = _file({"__metadata__": {"ferrograd.tree": json.dumps(tree)}, "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, arr)
    with pytest.raises(ValueError, match="twice"):
        load(data)
    tree = {"version": 1, "tree": {"t": "v", "v": 1}}
    data = _file({"__metadata__": {"ferrograd.tree": json.dumps(tree)}, "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, arr)
    with pytest.raises(ValueError, match="not referred"):
        load(data)


# ----------------------------------------------------------------------------- property: any tree round-trips

from hypothesis import given, strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

_dtypes = st.sampled_from([np.float32, np.float64, np.float16, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint32, np.bool_])
_arrays = _dtypes.flatmap(lambda d: hnp.arrays(d, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)))
_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8), _arrays,
)
_keys = st.one_of(st.text(max_size=6), st.integers(-5, 1000))
_trees = st.recursive(
    _leaves,
    lambda kids: st.one_of(st.lists(kids, max_size=4), st.lists(kids, max_size=3).map(tuple), st.dictionaries(_keys, kids, max_size=4)),
    max_leaves=12,
)


@given(_trees)
def test_any_tree_round_trips(tree):
    buf = io.BytesIO()
    save({"root": tree}, buf)
    back = load(buf.getvalue())["root"]
    _same(tree, back)
