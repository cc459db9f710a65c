"""ferrograd.data (datasets, loaders, splits, noise) and ferrograd.datasets."""

from __future__ import annotations

import gzip
import os

import numpy as np
import pytest

import ferrograd as fg
from ferrograd.data import (
    DataLoader,
    Dataset,
    GaussianNoise,
    Subset,
    TensorDataset,
    TransformDataset,
    default_collate,
    random_split,
)
from ferrograd import datasets


class ListDataset(Dataset):
    """A plain map-style dataset (forces the per-sample collate path)."""

    def __init__(self, X, y):
        self.X, self.y = X, y

    def __getitem__(self, i):
        return self.X[i], self.y[i]

    def __len__(self):
        return len(self.X)


def _xy(n=10, f=3):
    X = np.arange(n * f, dtype=np.float32).reshape(n, f)
    y = np.arange(n, dtype=np.int64)
    return X, y


# ----------------------------------------------------------------------------- TensorDataset


def test_tensor_dataset_items_and_errors():
    X, y = _xy()
    ds = TensorDataset(X, fg.tensor(y.astype(np.float32)))
    assert len(ds) == 10
    xi, yi = ds[3]
    assert isinstance(xi, fg.Tensor) and np.array_equal(xi.data, X[3]) and yi.item() == 3.0
    with pytest.raises(ValueError, match=r"array 1 has shape \(9,\)"):
        TensorDataset(X, y[:9])
    with pytest.raises(ValueError, match="at least one"):
        TensorDataset()
    with pytest.raises(ValueError, match="0-d"):
        TensorDataset(np.float32(1.0))


# ----------------------------------------------------------------------------- DataLoader


@pytest.mark.parametrize("bs,drop,expect", [(3, False, [3, 3, 3, 1]), (3, True, [3, 3, 3]), (10, False, [10]), (20, True, []), (1, False, [1] * 10)])
def test_loader_batch_sizes(bs, drop, expect):
    X, y = _xy()
    dl = DataLoader(TensorDataset(X, y), batch_size=bs, drop_last=drop)
    sizes = [len(b[1]) for b in dl]
    assert sizes == expect and len(dl) == len(expect)


def test_loader_order_dtypes_and_values():
    X, y = _xy()
    batches = list(DataLoader(TensorDataset(X, y), batch_size=4))
    assert all(isinstance(t, fg.Tensor) for b in batches for t in b)
    assert batches[0][0].dtype == np.float32 and batches[0][1].dtype == np.int64
    assert np.array_equal(np.concatenate([b[0].data for b in batches]), X)
    assert np.array_equal(np.concatenate([b[1].data for b in batches]), y)


def test_loader_shuffle_reproducible_and_a_permutation():
    X, y = _xy(50)
    dl = DataLoader(TensorDataset(X, y), batch_size=7, shuffle=True)
    fg.manual_seed(5)
    e1 = np.concatenate([b[1].data for b in dl])
    e2 = np.concatenate([b[1].data for b in dl])
    fg.manual_seed(5)
    r1 = np.concatenate([b[1].data for b in dl])
    r2 = np.concatenate([b[1].data for b in dl])
    assert np.array_equal(e1, r1) and np.array_equal(e2, r2)
    assert not np.array_equal(e1, e2)  # a new order each epoch
    assert sorted(e1.tolist()) == list(range(50))
    # rows stay aligned with their targets
    b = next(iter(dl))
    assert np.array_equal(b[0].data, X[b[1].data])


def test_loader_fast_path_matches_per_sample_path():
    X, y = _xy(23)
    for shuffle in (False, True):
        fg.manual_seed(9)
        fast = [tuple(t.data for t in b) for b in DataLoader(TensorDataset(X, y), batch_size=5, shuffle=shuffle)]
        fg.manual_seed(9)
        slow = [tuple(t.data for t in b) for b in DataLoader(ListDataset(X, y), batch_size=5, shuffle=shuffle)]
        assert len(fast) == len(slow)
        for a, b in zip(fast, slow):
            assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
            assert a[0].dtype == b[0].dtype and a[1].dtype == b[1].dtype


def test_loader_subset_fast_path_and_generator_arg():
    X, y = _xy(30)
    sub = Subset(Subset(TensorDataset(X, y), np.arange(29, -1, -1)), [0, 2, 4, 6, 8])
    got = np.concatenate([b[1].data for b in DataLoader(sub, batch_size=2)])
    assert got.tolist() == [29, 27, 25, 23, 21]
    g1 = [b[1].data.tolist() for b in DataLoader(TensorDataset(X, y), 8, shuffle=True, generator=np.random.default_rng(3))]
    g2 = [b[1].data.tolist() for b in DataLoader(TensorDataset(X, y), 8, shuffle=True, generator=np.random.default_rng(3))]
    assert g1 == g2


def test_loader_bad_arguments():
    X, y = _xy()
    for bs in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            DataLoader(TensorDataset(X, y), batch_size=bs)
    with pytest.raises(TypeError, match="dataset"):
        DataLoader(42)


def test_default_collate_structures():
    b = default_collate([(np.ones(2, np.float32), 1), (np.zeros(2, np.float32), 0)])
    assert b[0].shape == (2, 2) and b[1].data.dtype == np.int64
    d = default_collate([{"a": 1.0}, {"a": 2.0}])
    assert d["a"].dtype == np.float32
    with pytest.raises(ValueError, match="different shapes"):
        default_collate([np.ones(2), np.ones(3)])


# ----------------------------------------------------------------------------- random_split


def test_random_split_lengths_fractions_and_reproducibility():
    ds = TensorDataset(*_xy(10))
    a, b = random_split(ds, [3, 7])
    assert len(a) == 3 and len(b) == 7
    idx = np.concatenate([a.indices, b.indices])
    assert sorted(idx.tolist()) == list(range(10))
    parts = random_split(ds, [0.3, 0.3, 0.4])
    assert [len(p) for p in parts] == [3, 3, 4]
    parts = random_split(TensorDataset(*_xy(11)), [0.5, 0.5])
    assert [len(p) for p in parts] == [6, 5]  # remainder round-robin, as PyTorch
    fg.manual_seed(1)
    s1 = random_split(ds, [5, 5])[0].indices
    fg.manual_seed(1)
    s2 = random_split(ds, [5, 5])[0].indices
    assert np.array_equal(s1, s2)
    with pytest.raises(ValueError, match="does not equal"):
        random_split(ds, [3, 3])
    with pytest.raises(ValueError, match="lengths"):
        random_split(ds, [0.5, 2])


# ----------------------------------------------------------------------------- noise


def test_gaussian_noise_statistics_reproducibility_and_types():
    x = np.zeros((20000, 4), np.float32)
    fg.manual_seed(0)
    out = GaussianNoise(0.5, mean=1.0)(x)
    assert out.dtype == np.float32 and out.shape == x.shape and not out is x
    assert abs(out.mean() - 1.0) < 0.02 and abs(out.std() - 0.5) < 0.02
    assert np.all(x == 0)  # input untouched
    fg.manual_seed(0)
    assert np.array_equal(GaussianNoise(0.5, mean=1.0)(x), out)
    t = GaussianNoise(0.1, clip=(0.0, 0.05))(fg.tensor(np.zeros((3, 2))))
    assert isinstance(t, fg.Tensor) and t.data.min() >= 0 and t.data.max() <= 0.05
    assert GaussianNoise(0.1)(np.zeros(3, np.float64)).dtype == np.float64
    with pytest.raises(ValueError, match="std"):
        GaussianNoise(-1)


def test_noise_as_dataset_transform():
    X = np.zeros((8, 3), np.float32)
    y = np.arange(8)
    ds = TensorDataset(X, y, transform=GaussianNoise(1.0))
    e1 = np.concatenate([b[0].data for b in DataLoader(ds, 4)])
    e2 = np.concatenate([b[0].data for b in DataLoader(ds, 4)])
    assert e1.shape == (8, 3) and not np.array_equal(e1, e2)  # fresh noise each epoch
    assert np.all(X == 0)
    xi, yi = TransformDataset(TensorDataset(X, y), GaussianNoise(1.0))[2]
    assert xi.shape == (3,) and yi.item() == 2 and np.any(xi.data != 0)


# ----------------------------------------------------------------------------- datasets


def _digits_csv():
    path = os.path.join(os.path.dirname(datasets.__file__), "data", "digits.csv.gz")
    with gzip.open(path, "rt") as f:
        return [line.strip() for line in f]


def test_load_digits_matches_the_shipped_csv():
    b = datasets.load_digits()
    assert b.data.shape == (1797, 64) and b.data.dtype == np.float32
    assert b.target.shape == (1797,) and b.target.dtype == np.int64
    assert b.images.shape == (1797, 8, 8) and np.array_equal(b.images.reshape(1797, 64), b.data)
    assert b.data.min() == 0 and b.data.max() == 16 and np.all(b.data == np.round(b.data))
    assert b.target_names.tolist() == list(range(10))
    assert np.bincount(b.target).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    lines = _digits_csv()
    assert len(lines) == 1797
    for i in (0, 1, 2, 1000, 1796):
        vals = [int(v) for v in lines[i].split(",")]
        assert b.data[i].tolist() == vals[:64] and b.target[i] == vals[64]
    assert b.data[0, :8].tolist() == [0, 0, 5, 13, 9, 1, 0, 0]
    assert "Alpaydin" in b.DESCR and "BSD" in b.DESCR and "CC BY 4.0" in b.DESCR
    assert b["data"] is b.data


def test_load_digits_options_and_fresh_arrays():
    X, y = datasets.load_digits(return_X_y=True)
    X[0, 0] = 99
    assert datasets.load_digits().data[0, 0] == 0  # cached file, fresh arrays
    X2, y2 = datasets.load_digits(n_class=3, return_X_y=True, dtype=np.float64)
    assert X2.dtype == np.float64 and set(y2.tolist()) == {0, 1, 2}
    with pytest.raises(ValueError, match="n_class"):
        datasets.load_digits(n_class=11)


def test_make_moons_formula():
    X, y = datasets.make_moons(7, shuffle=False, dtype=np.float64)
    t_out, t_in = np.linspace(0, np.pi, 3), np.linspace(0, np.pi, 4)
    ref = np.concatenate([np.stack([np.cos(t_out), np.sin(t_out)], 1), np.stack([1 - np.cos(t_in), 1 - np.sin(t_in) - 0.5], 1)])
    assert np.allclose(X, ref) and y.tolist() == [0, 0, 0, 1, 1, 1, 1]
    Xs, ys = datasets.make_moons(7, shuffle=True, random_state=0, dtype=np.float64)
    assert sorted(map(tuple, Xs.round(12))) == sorted(map(tuple, ref.round(12)))
    for xi, yi in zip(Xs, ys):  # labels travel with their points
        assert tuple(xi.round(12)) in set(map(tuple, ref[y == yi].round(12)))
    Xn, _ = datasets.make_moons(2000, shuffle=False, noise=0.1, random_state=1, dtype=np.float64)
    X0, _ = datasets.make_moons(2000, shuffle=False, dtype=np.float64)
    assert abs((Xn - X0).std() - 0.1) < 0.01
    a = datasets.make_moons(50, noise=0.2, random_state=3)[0]
    assert np.array_equal(a, datasets.make_moons(50, noise=0.2, random_state=3)[0])
    assert datasets.make_moons((2, 5))[0].shape == (7, 2)


def test_make_regression_recipe():
    X, y, c = datasets.make_regression(200, 8, n_informative=3, bias=2.5, coef=True, random_state=0, dtype=np.float64)
    assert X.shape == (200, 8) and y.shape == (200,) and c.shape == (8,)
    assert np.allclose(X @ c + 2.5, y)
    assert np.count_nonzero(c) == 3 and np.all((c >= 0) & (c < 100))
    X, y = datasets.make_regression(100, 4, n_targets=2, noise=1.0, random_state=1)
    assert y.shape == (100, 2) and X.dtype == np.float32
    fg.manual_seed(3)
    a = datasets.make_regression(10, 2)[0]
    fg.manual_seed(3)
    assert np.array_equal(a, datasets.make_regression(10, 2)[0])


def test_make_xor():
    X, y = datasets.make_xor()
    assert X.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]] and y.tolist() == [0, 1, 1, 0]
    X, y = datasets.make_xor(100, noise=0.05, random_state=0)
    assert X.shape == (100, 2) and np.array_equal(y, (X.round() [:, 0] != X.round()[:, 1]).astype(np.int64))
    with pytest.raises(TypeError, match="random_state"):
        datasets.make_xor(4, random_state="x")
