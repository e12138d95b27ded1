"""``sum_of_squares``: ``sum(x * x)`` over every axis as one dot product, against the
unrewritten graph; partial sums are left alone."""

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.ops.blas import Dot
from symgraph.ops.reduce import Reduce


def ops_of(fn):
    return [type(n.op) for n in fn.fgraph.toposort()]


@pytest.mark.parametrize("mode", ["numpy", "numba"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_whole_sum_of_squares_is_a_dot_product(mode, dtype):
    x = T.tensor(dtype, (None, None, None), name="x")
    outputs = [(x * x).sum(), T.sqrt((x * x).sum()) * 2]
    rewritten = sg.function([x], outputs, mode=mode)
    plain = sg.function([x], outputs, mode=sg.Mode(mode, exclude=["sum_of_squares"]))
    assert Reduce not in ops_of(rewritten) and Dot in ops_of(rewritten)
    assert Reduce in ops_of(plain)
    value = np.random.default_rng(0).normal(size=(3, 4, 5)).astype(dtype)
    for a, b in zip(rewritten(value), plain(value)):
        assert a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=1e-6 if dtype == "float32" else 1e-13)


def test_partial_sums_and_other_products_are_left_alone():
    x, y = T.dmatrix("x"), T.dmatrix("y")
    fn = sg.function([x, y], [(x * x).sum(axis=0), (x * y).sum(),
                              (x * x).sum(keepdims=True)], mode="numpy")
    assert Dot not in ops_of(fn)
    a, b = np.arange(6.0).reshape(2, 3), np.ones((2, 3))
    got = fn(a, b)
    np.testing.assert_allclose(got[0], (a * a).sum(axis=0))
    np.testing.assert_allclose(got[1], a.sum())
    assert got[2].shape == (1, 1)
