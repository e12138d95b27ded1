"""Reductions: values vs numpy over axes/keepdims, gradients, infer_shape."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import symgraph as sg
import symgraph.tensor as T
from tests.helpers import check_grad, check_infer_shape

REDUCTIONS = {"sum": np.sum, "prod": np.prod, "max": np.max, "min": np.min, "mean": np.mean}


@st.composite
def shape_and_axis(draw):
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    axis = draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1),
                          st.lists(st.integers(0, len(shape) - 1), min_size=1,
                                   max_size=len(shape), unique=True).map(tuple)))
    return shape, axis, draw(st.booleans())


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@given(case=shape_and_axis(), seed=st.integers(0, 50))
def test_reduction_values_and_gradients(name, case, seed):
    shape, axis, keepdims = case
    rng = np.random.default_rng(seed)
    x = rng.permutation(np.prod(shape)).reshape(shape) / 7.0 + 0.5  # distinct: no max ties
    xv = T.tensor("float64", (None,) * len(shape), name="x")
    fn = getattr(T, name)
    f = sg.function([xv], fn(xv, axis=axis, keepdims=keepdims), mode="numpy")
    np.testing.assert_allclose(f(x), REDUCTIONS[name](x, axis=axis, keepdims=keepdims))
    check_grad(lambda v: fn(v, axis=axis, keepdims=keepdims), x, seed=seed)
    check_infer_shape([xv], fn(xv, axis=axis, keepdims=keepdims), [x])


def test_argmax_argmin_and_max_ties():
    x = T.dmatrix("x")
    v = np.array([[1.0, 5.0, 2.0], [7.0, 0.0, 7.0]])
    f = sg.function([x], [T.argmax(x, axis=1), T.argmin(x, axis=0), T.argmax(x)], mode="numpy")
    a, b, c = f(v)
    np.testing.assert_array_equal(a, [1, 0])
    np.testing.assert_array_equal(b, [0, 1, 0])
    assert c == 3 and a.dtype == np.int64
    g = sg.function([x], sg.grad(T.max(x, axis=1).sum(), x), mode="numpy")
    np.testing.assert_array_equal(g(v), [[0, 1, 0], [1, 0, 1]])  # ties share the gradient


def test_mean_of_integers_var_std_norm():
    i = T.ivector("i")
    assert sg.function([i], i.mean(), mode="numpy")(np.array([1, 2], "int32")) == 1.5
    x = T.dmatrix("x")
    v = np.random.default_rng(0).normal(size=(3, 4))
    f = sg.function([x], [T.var(x, axis=0), T.std(x), x.norm(2), x.norm(1, axis=1)],
                    mode="numpy")
    out = f(v)
    np.testing.assert_allclose(out[0], v.var(axis=0))
    np.testing.assert_allclose(out[1], v.std())
    np.testing.assert_allclose(out[2], np.linalg.norm(v))
    np.testing.assert_allclose(out[3], np.abs(v).sum(axis=1))


def test_axis_errors():
    x = T.dmatrix("x")
    with pytest.raises(sg.ShapeError, match="axis 2 is out of range"):
        x.sum(axis=2)
    with pytest.raises(sg.ShapeError, match="repeated axis"):
        x.sum(axis=(0, 0))
