"""Tensor creation and conversion, the backward engine, grad mode, threads and seeds."""

from __future__ import annotations

import numpy as np
import pytest

import ferrograd as fg
from ferrograd.autograd import GradcheckError, gradcheck


def test_creation_and_dtypes():
    assert fg.tensor([1.0, 2.0]).dtype == fg.float32
    assert fg.tensor([1, 2]).dtype == fg.float32  # ints become float32, values kept
    assert fg.tensor(np.array([True, False])).numpy().tolist() == [1.0, 0.0]
    assert fg.tensor(np.arange(3.0)).dtype == fg.float64
    assert fg.tensor([1.0], dtype=fg.float64).dtype == fg.float64
    assert fg.tensor([1.0], dtype="float64").dtype == fg.float64
    assert fg.tensor(np.array([2**24 + 1], np.int64), dtype=fg.float64).item() == 2**24 + 1
    assert fg.zeros(2, 3).shape == (2, 3) and fg.zeros((2, 3)).numpy().sum() == 0
    assert fg.ones(4).numpy().tolist() == [1.0] * 4
    assert fg.full((2,), 7.5).numpy().tolist() == [7.5, 7.5]
    np.testing.assert_array_equal(fg.eye(3).numpy(), np.eye(3))
    np.testing.assert_array_equal(fg.arange(5).numpy(), np.arange(5, dtype=np.float32))
    np.testing.assert_array_equal(fg.arange(1, 2, 0.25).numpy(), [1, 1.25, 1.5, 1.75])
    assert fg.rand(3, 4).shape == (3, 4) and fg.randn(2, dtype=fg.float64).dtype == fg.float64
    r = fg.rand(1000).numpy()
    assert r.min() >= 0 and r.max() < 1


def test_rejects_non_real_input():
    with pytest.raises(TypeError, match="real numbers"):
        fg.tensor(np.array([1 + 2j]))
    with pytest.raises(TypeError, match="real numbers"):
        fg.tensor(["a", "b"])
    with pytest.raises(TypeError, match="float32 or float64"):
        fg.tensor([1.0], dtype=np.int32)
    with pytest.raises(TypeError):
        fg.from_numpy(np.arange(3))


def test_numpy_is_zero_copy_and_tensor_copies():
    a = np.zeros(3, np.float32)
    t = fg.from_numpy(a)
    assert t.numpy() is a
    t.numpy()[0] = 5
    assert a[0] == 5
    c = fg.tensor(a)
    a[1] = 9
    assert c.numpy()[1] == 0


def test_properties_repr_item_detach():
    x = fg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    assert x.shape == (2, 2) and x.ndim == 2 and x.numel() == 4 and len(x) == 2 and x.size(1) == 2
    assert repr(x) == "tensor([[1., 2.],\n        [3., 4.]], requires_grad=True)"
    y = x * 2
    assert "grad_fn=<MulBackward>" in repr(y)
    assert "dtype=float64" in repr(fg.tensor(np.ones(1)))
    assert fg.tensor([3.5]).item() == 3.5 and isinstance(fg.tensor([3.5]).item(), float)
    with pytest.raises(ValueError, match="one-element"):
        x.item()
    d = y.detach()
    assert not d.requires_grad and d.grad_fn is None and d.numpy() is y.numpy()
    assert x.is_leaf and not y.is_leaf


def test_backward_accumulates_and_sums_paths():
    x = fg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = (x * x + x).sum()
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 5.0, 7.0])
    (x * 2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [5.0, 7.0, 9.0])


def test_gradients_of_shared_inputs_do_not_alias():
    a = fg.tensor([1.0, 2.0], requires_grad=True)
    b = fg.tensor([3.0, 4.0], requires_grad=True)
    (a + b).sum().backward()
    a.grad.numpy()[0] = 100.0
    assert b.grad.numpy()[0] == 1.0


def test_long_chain_does_not_recurse():
    x = fg.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0 + 0.0
    y.sum().backward()
    assert x.grad.numpy()[0] == 1.0


def test_retain_graph_and_freed_graph():
    x = fg.tensor([2.0], requires_grad=True)
    y = (x ** 3).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert x.grad.item() == 24.0
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_non_scalar_backward_needs_gradient():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    with pytest.raises(RuntimeError, match="scalar outputs"):
        y.backward()
    with pytest.raises(ValueError, match="shape"):
        y.backward(np.ones(3))
    y.backward(fg.tensor([1.0, 10.0]))
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 30.0])
    with pytest.raises(RuntimeError, match="does not require grad"):
        fg.tensor([1.0]).sum().backward()


def test_no_grad_context_and_decorator():
    x = fg.tensor([1.0], requires_grad=True)
    with fg.no_grad():
        y = x * 2
        with fg.enable_grad():
            z = x * 2
    assert not y.requires_grad and y.grad_fn is None and z.requires_grad

    @fg.no_grad()
    def f(t):
        return t * 3

    assert not f(x).requires_grad
    assert fg.is_grad_enabled()
    assert (x * 2).requires_grad


def test_retain_grad_on_intermediate():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    h.retain_grad()
    (h * h).sum().backward()
    np.testing.assert_array_equal(h.grad.numpy(), [6.0, 12.0])
    np.testing.assert_array_equal(x.grad.numpy(), [18.0, 36.0])


def test_gradcheck_catches_a_wrong_gradient():
    from ferrograd.tensor import _make

    def bad_square(x):
        return _make(x.data ** 2, (x,), lambda g: (g * 3 * x.data,), "BadBackward")

    x = fg.tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)
    with pytest.raises(GradcheckError, match="analytic"):
        gradcheck(bad_square, x)
    assert gradcheck(bad_square, x, raise_exception=False) is False
    assert gradcheck(lambda t: t ** 2, x)


def test_manual_seed_reproduces():
    fg.manual_seed(7)
    a = fg.randn(5).numpy().copy()
    fg.manual_seed(7)
    np.testing.assert_array_equal(fg.randn(5).numpy(), a)
    with pytest.raises(TypeError):
        fg.manual_seed(1.5)


def test_threads_setting():
    n = fg.get_num_threads()
    try:
        fg.set_num_threads(1)
        assert fg.get_num_threads() == 1
        with pytest.raises(ValueError):
            fg.set_num_threads(0)
        with pytest.raises(TypeError):
            fg.set_num_threads(1.5)
    finally:
        fg.set_num_threads(n)
    assert fg.simd_level() in ("avx512f", "avx2+fma", "scalar")


def test_env_var_sets_threads():
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", "import ferrograd as f; print(f.get_num_threads())"],
        env={**__import__("os").environ, "FERROGRAD_NUM_THREADS": "3"},
        capture_output=True, text=True, check=True,
    )
    assert out.stdout.strip() == "3"


def test_determinism_across_thread_counts(rng):
    a = rng.standard_normal((300, 517)).astype(np.float32)
    b = rng.standard_normal((517, 211)).astype(np.float32)
    big = rng.standard_normal((64, 20_011)).astype(np.float32)
    n0 = fg.get_num_threads()

    def run():
        ta = fg.tensor(a, requires_grad=True)
        tb = fg.tensor(b, requires_grad=True)
        c = ta @ tb
        s = fg.softmax(c, dim=1)
        loss = (s * c).sum() + fg.tensor(big).sum() + fg.tensor(big).mean(0).sum() + fg.tensor(big).max(1).values.sum()
        loss.backward()
        return [c.numpy(), s.numpy(), loss.numpy(), ta.grad.numpy(), tb.grad.numpy(),
                fg.tensor(big).sum(1).numpy(), fg.tensor(big).max(0).indices.numpy(), fg.log_softmax(fg.tensor(big)).numpy()]

    try:
        fg.set_num_threads(1)
        one = run()
        fg.set_num_threads(2)
        two = run()
        fg.set_num_threads(3)
        three = run()
    finally:
        fg.set_num_threads(n0)
    for x, y, z in zip(one, two, three):
        assert x.tobytes() == y.tobytes() == z.tobytes()


def test_nan_and_inf_propagate():
    x = fg.tensor([np.nan, np.inf, -np.inf, 1.0], requires_grad=True)
    y = fg.exp(x) + fg.tanh(x) * x
    assert np.isnan(y.numpy()[0]) and np.isinf(y.numpy()[1])
    y.sum().backward()
    assert np.isnan(x.grad.numpy()[0])
    m = fg.tensor(np.array([[np.nan, 1.0], [1.0, 2.0]], np.float32))
    assert np.isnan((m @ m).numpy()[0, 0])
    assert np.isnan(m.sum().item()) and np.isnan(m.max().item())
    z = fg.tensor([1.0, 0.0]) / fg.tensor([0.0, 0.0])
    assert np.isinf(z.numpy()[0]) and np.isnan(z.numpy()[1])


def test_shape_errors_name_op_and_shapes():
    a, b = fg.ones(2, 3), fg.ones(4, 5)
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4, 5\)"):
        a @ b
    with pytest.raises(ValueError, match=r"add: shapes \(2, 3\) and \(4, 5\)"):
        a + b
    with pytest.raises(ValueError, match=r"mul"):
        a * b
    with pytest.raises(ValueError, match="reshape"):
        a.reshape(4)
    with pytest.raises(ValueError, match="cat"):
        fg.cat([a, b])
    with pytest.raises(ValueError, match="stack"):
        fg.stack([a, b])
    with pytest.raises(IndexError, match="dimension out of range"):
        a.sum(dim=2)
    with pytest.raises(ValueError, match="matmul: both arguments"):
        fg.tensor(1.0) @ a
    with pytest.raises(IndexError, match="getitem"):
        a[5]


def test_non_contiguous_and_negative_stride_inputs(rng):
    base = rng.standard_normal((6, 8))
    for view in (base[::-1], base[:, ::-2], base.T, base[1::2, 3:]):
        t = fg.from_numpy(view)
        np.testing.assert_allclose((t @ t.T).numpy(), view @ view.T, rtol=1e-12)
        np.testing.assert_allclose(fg.softmax(t, 0).numpy(), np.exp(view) / np.exp(view).sum(0), rtol=1e-12)
        np.testing.assert_allclose(t.sum(1).numpy(), view.sum(1), rtol=1e-12)
        np.testing.assert_allclose(fg.tanh(t).numpy(), np.tanh(view), rtol=1e-12)
        np.testing.assert_array_equal(t.max(0).indices.numpy(), view.argmax(0))


def test_mixed_dtypes_promote_and_grads_keep_input_dtype():
    a = fg.tensor(np.ones(3, np.float32), requires_grad=True)
    b = fg.tensor(np.ones(3, np.float64), requires_grad=True)
    c = a * b
    assert c.dtype == fg.float64
    c.sum().backward()
    assert a.grad.dtype == fg.float32 and b.grad.dtype == fg.float64
    assert (a * 2.5).dtype == fg.float32  # Python scalars keep the tensor's dtype


def test_leaf_grad_never_aliases_the_callers_gradient_or_another_leaf():
    x = fg.tensor(np.ones(3), requires_grad=True)
    g = np.arange(3.0)
    (x * 1.0).backward(g)
    x.grad.numpy()[0] = 99.0
    assert g[0] == 0.0
    y = fg.tensor(np.ones(3), requires_grad=True)
    y.backward(g)  # a leaf as the root
    y.grad.numpy()[1] = 99.0
    assert g[1] == 1.0
    a = fg.tensor(np.ones((2, 2)), requires_grad=True)
    b = fg.tensor(np.ones((2, 2)), requires_grad=True)
    (a - b + a.T).sum().backward()
    assert not np.shares_memory(a.grad.numpy(), b.grad.numpy())
    assert a.grad.numpy().flags.writeable and b.grad.numpy().flags.writeable


def test_using_seed_is_a_fresh_generator_and_restores_the_callers():
    from ferrograd import _random

    fg.manual_seed(5)
    expected_after = np.random.Generator(np.random.PCG64(5))
    expected_after.random(3)
    _random.generator().random(3)
    with _random.using_seed(42) as g:
        assert g is _random.generator()
        inside = fg.randn(4).numpy()
    with _random.using_seed(42):
        again = fg.randn(4).numpy()
    np.testing.assert_array_equal(inside, again)
    # the caller's stream continues where it was, untouched by the seeded blocks
    np.testing.assert_array_equal(_random.generator().random(5), expected_after.random(5))
