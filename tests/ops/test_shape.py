"""Shape ops: reshape (-1, ndim=), flatten, dimshuffle with 'x', transpose, concatenate,
stack, allocation with symbolic shapes; values, gradients, infer_shape, errors."""

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from tests.helpers import check_grad, check_infer_shape

RNG = np.random.default_rng(0)


def test_reshape_with_minus_one_and_symbolic_shape():
    x = T.dtensor3("x")
    v = RNG.normal(size=(2, 3, 4))
    f = sg.function([x], [x.reshape((-1, 4)), x.reshape((x.shape[0], -1)),
                          x.reshape(T.stack([x.shape[2], x.shape[0] * x.shape[1]]), ndim=2)],
                    mode="numpy")
    a, b, c = f(v)
    assert a.shape == (6, 4) and b.shape == (2, 12) and c.shape == (4, 6)
    np.testing.assert_array_equal(c, v.reshape(4, 6))
    check_grad(lambda t: t.reshape((3, -1)) * T.constant(np.arange(8.0)), v)
    check_infer_shape([x], x.reshape((-1, 4)), [v])
    check_infer_shape([x], x.reshape((x.shape[0], -1)), [v])


def test_reshape_errors():
    x = T.tensor("float64", (2, 3), name="x")
    with pytest.raises(sg.ShapeError, match="cannot reshape"):
        x.reshape((4, 2))
    with pytest.raises(sg.ShapeError, match="at most one -1"):
        x.reshape((-1, -1))
    y = T.dmatrix("y")
    f = sg.function([y], y.reshape((5, -1)), mode="numpy")
    with pytest.raises(sg.ShapeError, match=r"cannot reshape an array of shape \(2, 3\)"):
        f(np.ones((2, 3)))


def test_flatten_dimshuffle_transpose():
    x = T.dtensor3("x")
    v = RNG.normal(size=(2, 3, 4))
    f = sg.function([x], [x.flatten(), x.flatten(2), x.dimshuffle(2, "x", 0, 1), x.T,
                          x.transpose(1, 0, 2)], mode="numpy")
    a, b, c, d, e = f(v)
    np.testing.assert_array_equal(a, v.ravel())
    np.testing.assert_array_equal(b, v.reshape(2, 12))
    np.testing.assert_array_equal(c, v.transpose(2, 0, 1)[:, None])
    np.testing.assert_array_equal(d, v.T)
    np.testing.assert_array_equal(e, v.transpose(1, 0, 2))
    check_grad(lambda t: t.dimshuffle(2, "x", 0, 1) * T.constant(RNG.normal(size=(4, 1, 2, 3))),
               v)
    check_infer_shape([x], x.dimshuffle(2, "x", 0, 1), [v])
    with pytest.raises(sg.ShapeError, match="only axes of static length 1 can be dropped"):
        x.dimshuffle(0, 1)


def test_concatenate_and_stack():
    a, b = T.dmatrix("a"), T.dmatrix("b")
    va, vb = RNG.normal(size=(2, 3)), RNG.normal(size=(4, 3))
    f = sg.function([a, b], [T.concatenate([a, b]), T.stack([a, a], axis=1)], mode="numpy")
    c, s = f(va, vb)
    np.testing.assert_array_equal(c, np.concatenate([va, vb]))
    np.testing.assert_array_equal(s, np.stack([va, va], axis=1))
    check_grad(lambda p, q: T.concatenate([p, q * 2]) ** 2, va, vb)
    check_grad(lambda p: T.stack([p, p * 3], axis=2) ** 2, va)
    check_infer_shape([a, b], T.concatenate([a, b]), [va, vb])
    with pytest.raises(sg.ShapeError, match="shapes differ on axis 1"):
        T.concatenate([T.tensor("float64", (None, 3)), T.tensor("float64", (None, 4))])
    with pytest.raises(sg.ShapeError, match="ranks differ"):
        T.concatenate([a, T.dvector()])


def test_allocation_with_symbolic_shapes():
    x = T.dmatrix("x")
    n_h = 5
    f = sg.function([x], [T.zeros((x.shape[1], n_h)), T.ones_like(x), T.zeros_like(x),
                          T.alloc(T.constant(2.0, dtype="float64"), x.shape[0], 3),
                          T.arange(x.shape[0]), T.arange(1, 7, 2)], mode="numpy")
    z, o, zl, al, ar, ar2 = f(np.ones((2, 4)))
    assert z.shape == (4, 5) and z.dtype == np.dtype(sg.config.floatX)
    np.testing.assert_array_equal(o, np.ones((2, 4)))
    np.testing.assert_array_equal(zl, np.zeros((2, 4)))
    np.testing.assert_array_equal(al, np.full((2, 3), 2.0))
    np.testing.assert_array_equal(ar, [0, 1])
    np.testing.assert_array_equal(ar2, [1, 3, 5])
    check_grad(lambda v: T.alloc(v, 3, 2) * T.constant(RNG.normal(size=(3, 2))), np.ones(2))
    check_infer_shape([x], T.zeros((x.shape[1], n_h)), [np.ones((2, 4))])
