"""``sum_of_squares``: ``sum(x * x)`` over every axis as one dot product, against the
unrewritten graph; partial sums are left alone. ``reduce_over_unit_axes``: reductions
along axes of static length 1 are dropped, against the unrewritten graph."""

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


@pytest.mark.parametrize("mode", ["numpy", "numba"])
def test_reductions_over_unit_axes_are_dropped(mode):
    x = T.tensor("float32", (None, 1, None), name="x")
    flags = T.tensor("bool", (1, None), name="flags")
    outputs = [x.sum(axis=1), x.max(axis=1, keepdims=True), x.sum(axis=(0, 1)),
               x.prod(axis=(1, 2), keepdims=True), x.min(axis=(1, 2)),
               flags.sum(axis=0)]  # bool -> int64: a real sum, left alone
    rewritten = sg.function([x, flags], outputs, mode=mode)
    plain = sg.function([x, flags], outputs,
                        mode=sg.Mode(mode, exclude=["reduce_over_unit_axes"]))
    reduces = [n.op for n in rewritten.fgraph.toposort() if isinstance(n.op, Reduce)]
    assert sorted((op.kind, op.axes, op.keepdims) for op in reduces) == [
        ("min", (1,), False), ("prod", (2,), True), ("sum", (0,), False),
        ("sum", (0,), False)]  # the sum and max over axis 1 alone are gone
    assert ops_of(plain).count(Reduce) == 6
    rng = np.random.default_rng(1)
    values = rng.normal(size=(3, 1, 4)).astype("float32"), rng.random((1, 5)) > 0.5
    for a, b in zip(rewritten(*values), plain(*values)):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-6)
