"""ferrograd.data.transforms: image-batch augmentation (exactness, seeding, plumbing)."""

from __future__ import annotations

import numpy as np
import pytest

import ferrograd as fg
from ferrograd.data import DataLoader, TensorDataset, TransformDataset
from ferrograd.data import transforms as T


def _batch(n=3, c=2, h=5, w=5, dtype=np.float32):
    return np.arange(n * c * h * w, dtype=dtype).reshape(n, c, h, w)


ALL = [
    lambda: T.RandomHorizontalFlip(0.5),
    lambda: T.RandomVerticalFlip(0.5),
    lambda: T.RandomTranslation((2, 1)),
    lambda: T.RandomCrop(5, padding=1),
    lambda: T.RandomRotation(15),
    lambda: T.RandomAffine(10, translate=(1.5, 1.0), scale=(0.9, 1.1)),
    lambda: T.GaussianNoise(0.1),
    lambda: T.Compose([T.RandomRotation(5), T.RandomTranslation(1), T.GaussianNoise(0.05)]),
]


@pytest.mark.parametrize("make", ALL)
def test_seeded_reproducible_and_input_untouched(make):
    x = np.random.default_rng(0).standard_normal((16, 2, 5, 5)).astype(np.float32)
    x0 = x.copy()
    fg.manual_seed(7)
    a = make()(x)
    fg.manual_seed(7)
    b = make()(x)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(x, x0)
    assert a.shape == x.shape and a.dtype == x.dtype
    # a different seed gives a different draw
    fg.manual_seed(8)
    assert not np.array_equal(make()(x), a)


@pytest.mark.parametrize("make", ALL)
def test_tensor_and_single_image(make):
    x = np.random.default_rng(1).standard_normal((2, 5, 5)).astype(np.float32)  # (C, H, W)
    fg.manual_seed(0)
    out = make()(fg.tensor(x))
    assert isinstance(out, fg.Tensor) and out.shape == (2, 5, 5)
    out2 = make()(x[0])  # (H, W)
    assert isinstance(out2, np.ndarray) and out2.shape == (5, 5)


def test_bad_rank():
    with pytest.raises(ValueError, match=r"RandomCrop.*\(N, C, H, W\).*\(7,\)"):
        T.RandomCrop(3)(np.zeros(7))


def test_horizontal_flip_exact_and_per_sample():
    x = _batch(n=64)
    fg.manual_seed(3)
    out = T.RandomHorizontalFlip(0.5)(x)
    flipped = np.array([np.array_equal(o, xi[..., ::-1]) for o, xi in zip(out, x)])
    kept = np.array([np.array_equal(o, xi) for o, xi in zip(out, x)])
    assert np.all(flipped ^ kept)
    assert 10 < flipped.sum() < 54  # per-sample draws, not one coin for the batch
    np.testing.assert_array_equal(T.RandomHorizontalFlip(1.0)(x), x[..., ::-1])
    np.testing.assert_array_equal(T.RandomHorizontalFlip(0.0)(x), x)
    np.testing.assert_array_equal(T.RandomVerticalFlip(1.0)(x), x[..., ::-1, :])


def test_translation_exact():
    x = _batch(n=40, c=2, h=4, w=6) + 1  # no zeros in the input
    fg.manual_seed(5)
    out = T.RandomTranslation((2, 1))(x)
    fg.manual_seed(5)
    g = fg._random.generator()
    sx = g.integers(-2, 3, size=40)
    sy = g.integers(-1, 2, size=40)
    for o, xi, dx, dy in zip(out, x, sx, sy):
        ref = np.zeros_like(xi)
        ys, xs = np.meshgrid(np.arange(4), np.arange(6), indexing="ij")
        src_y, src_x = ys - dy, xs - dx
        ok = (src_y >= 0) & (src_y < 4) & (src_x >= 0) & (src_x < 6)
        ref[:, ok] = xi[:, src_y[ok], src_x[ok]]
        np.testing.assert_array_equal(o, ref)
    assert len({(a, b) for a, b in zip(sx, sy)}) > 5


def test_translation_fill_and_zero():
    x = _batch(n=2)
    np.testing.assert_array_equal(T.RandomTranslation(0)(x), x)
    fg.manual_seed(0)
    out = T.RandomTranslation((3, 0), fill=-1.0)(np.ones((50, 1, 2, 4), np.float32))
    assert set(np.unique(out)) <= {-1.0, 1.0} and (out == -1).any()


def test_crop_exact():
    x = _batch(n=30, c=1, h=4, w=4)
    fg.manual_seed(11)
    out = T.RandomCrop(3, padding=1)(x)
    fg.manual_seed(11)
    g = fg._random.generator()
    tops = g.integers(0, 6 - 3 + 1, size=30)
    lefts = g.integers(0, 6 - 3 + 1, size=30)
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    for o, p, t, l in zip(out, padded, tops, lefts):
        np.testing.assert_array_equal(o, p[:, t : t + 3, l : l + 3])
    # no padding and full size: identity
    np.testing.assert_array_equal(T.RandomCrop((4, 4))(x), x)
    # modes
    fg.manual_seed(0)
    out = T.RandomCrop(6, padding=1, padding_mode="edge")(x)
    np.testing.assert_array_equal(out, np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge"))
    with pytest.raises(ValueError, match="larger than the padded image"):
        T.RandomCrop(7, padding=1)(x)
    with pytest.raises(ValueError, match="padding_mode"):
        T.RandomCrop(3, padding_mode="wrap")


def test_rotation_identity_and_quarter_turn():
    x = np.random.default_rng(2).standard_normal((4, 3, 7, 7)).astype(np.float64)
    np.testing.assert_allclose(T.affine_batch(x, 0.0), x, atol=1e-12)
    np.testing.assert_allclose(T.RandomRotation((0, 0))(x), x, atol=1e-12)
    np.testing.assert_allclose(T.RandomRotation((90, 90))(x), np.rot90(x, axes=(2, 3)), atol=1e-9)
    np.testing.assert_allclose(T.affine_batch(x, -90.0), np.rot90(x, k=-1, axes=(2, 3)), atol=1e-9)
    np.testing.assert_allclose(T.affine_batch(x, 180.0), x[..., ::-1, ::-1], atol=1e-9)
    # even size: the centre lies between pixels, a quarter turn is still a permutation
    y = np.random.default_rng(3).standard_normal((2, 1, 6, 6))
    np.testing.assert_allclose(T.affine_batch(y, 90.0), np.rot90(y, axes=(2, 3)), atol=1e-9)


def test_rotation_bilinear_small_angle_and_per_sample():
    # a constant image stays constant inside (bilinear weights sum to 1), zero fill outside
    x = np.ones((20, 1, 9, 9), np.float32)
    fg.manual_seed(1)
    out = T.RandomRotation(10)(x)
    np.testing.assert_allclose(out[:, :, 3:6, 3:6], 1.0, atol=1e-6)
    assert out.min() >= 0.0 and out.max() <= 1.0 + 1e-6
    corners = out[:, 0, 0, 0]
    assert len(np.unique(np.round(corners, 5))) > 5  # per-sample angles
    # bilinear value check: half-pixel shift averages neighbours
    z = np.zeros((1, 1, 3, 3))
    z[0, 0, 1, 1] = 1.0
    sh = T.affine_batch(z, 0.0, tx=0.5)
    np.testing.assert_allclose(sh[0, 0, 1], [0.0, 0.5, 0.5], atol=1e-12)


def test_affine_integer_shift_matches_translation():
    x = _batch(n=1, c=1, h=5, w=5).astype(np.float64)
    out = T.affine_batch(x, 0.0, tx=2, ty=-1)
    ref = np.zeros_like(x)
    ref[0, 0, 0:4, 2:5] = x[0, 0, 1:5, 0:3]
    np.testing.assert_allclose(out, ref, atol=1e-12)


def test_affine_int_input_and_fill():
    x = np.full((1, 1, 4, 4), 3, dtype=np.int64)
    out = T.affine_batch(x, 0.0, tx=1, fill=-2)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0, :, 0], -2)
    np.testing.assert_allclose(out[0, 0, :, 1:], 3)


def test_normalize_formula():
    x = np.random.default_rng(4).standard_normal((3, 2, 4, 4)).astype(np.float32)
    out = T.Normalize([0.5, -1.0], [2.0, 0.25])(x)
    ref = np.stack([(x[:, 0] - 0.5) / 2.0, (x[:, 1] + 1.0) / 0.25], axis=1)
    np.testing.assert_allclose(out, ref, rtol=1e-6)
    assert out.dtype == np.float32
    np.testing.assert_allclose(T.Normalize(1.0, 2.0)(x), (x - 1) / 2, rtol=1e-6)
    with pytest.raises(ValueError, match="3 values but the images have 2 channels"):
        T.Normalize([0, 0, 0], [1, 1, 1])(x)
    with pytest.raises(ValueError, match="non-zero"):
        T.Normalize(0.0, 0.0)


def test_bad_arguments():
    with pytest.raises(ValueError):
        T.RandomHorizontalFlip(1.5)
    with pytest.raises(ValueError):
        T.RandomTranslation(-1)
    with pytest.raises(ValueError):
        T.RandomAffine(scale=(0.0, 1.0))
    with pytest.raises(ValueError):
        T.RandomRotation((10, -10))
    with pytest.raises(TypeError):
        T.Compose([1])


def test_dataloader_transform_per_epoch_and_seeded():
    X = np.random.default_rng(5).standard_normal((20, 1, 6, 6)).astype(np.float32)
    y = np.arange(20)
    aug = T.Compose([T.RandomAffine(10, translate=(1, 1)), T.RandomHorizontalFlip()])

    def epochs():
        fg.manual_seed(9)
        ds = TensorDataset(X, y, transform=aug)
        dl = DataLoader(ds, batch_size=8, shuffle=True)
        return [[(xb.numpy().copy(), yb.numpy().copy()) for xb, yb in dl] for _ in range(2)]

    e1, e2 = epochs(), epochs()
    for a, b in zip(e1, e2):
        for (xa, ya), (xb, yb) in zip(a, b):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)
    assert e1[0][0][0].shape == (8, 1, 6, 6)
    # fresh randomness each epoch
    assert not np.array_equal(np.concatenate([b[0] for b in e1[0]]), np.concatenate([b[0] for b in e1[1]]))
    # TransformDataset, item by item
    td = TransformDataset(TensorDataset(X, y), T.RandomCrop(6, padding=2))
    item = td[0]
    assert item[0].shape == (1, 6, 6) and int(item[1].item()) == 0
