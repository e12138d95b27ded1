"""``reshape_length``: a reshaped array's length read from the shape it was given,
against the unrewritten graph; lengths that may be -1 are left alone. ``gather_length``:
a gather's lengths read from its ids and table."""

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.ops.subtensor import AdvancedSubtensor1


def ops_of(fn):
    return [type(n.op) for n in fn.fgraph.toposort()]


@pytest.mark.parametrize("mode", ["numpy", "numba"])
def test_an_array_read_only_for_its_shape_is_not_computed(mode):
    table, ids = T.fmatrix("table"), T.imatrix("ids")
    rows = table[ids.flatten()].reshape((ids.shape[0], ids.shape[1], 4))
    outputs = [T.zeros((rows.shape[1], rows.shape[2])) + rows.shape[0]]
    rewritten = sg.function([table, ids], outputs, mode=mode, on_unused_input="ignore")
    plain = sg.function([table, ids], outputs, on_unused_input="ignore",
                        mode=sg.Mode(mode, exclude=["reshape_length"]))
    assert AdvancedSubtensor1 not in ops_of(rewritten)
    assert AdvancedSubtensor1 in ops_of(plain)
    values = [np.ones((5, 4), np.float32), np.array([[0, 1, 2], [3, 4, 0]], np.int32)]
    (got,), (want,) = rewritten(*values), plain(*values)
    assert got.shape == want.shape == (3, 4)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got, 2)


def test_lengths_that_may_be_minus_one_are_left_alone():
    x, n = T.fvector("x"), T.lscalar("n")
    inferred = x.reshape((-1, 2))
    given = x.reshape((n, 2))
    fn = sg.function([x, n], [inferred.shape[0] + 0, given.shape[0] + 0], mode="numpy")
    assert sum(isinstance(node.op, sg.ops.shape.Reshape) for node in fn.fgraph.toposort()) == 2
    first, second = fn(np.arange(6, dtype=np.float32), -1)
    assert int(first) == 3 and int(second) == 3


@pytest.mark.parametrize("mode", ["numpy", "numba"])
def test_a_gather_read_only_for_its_shape_is_not_computed(mode):
    table, ids = T.ftensor3("table"), T.imatrix("ids")
    rows = table[ids]  # (2, 3, 4, 5): the ids' axes, then the table's after the first
    outputs = [T.zeros(rows.shape) + rows.shape[3], rows.shape[-2] + 0]
    rewritten = sg.function([table, ids], outputs, mode=mode, on_unused_input="ignore")
    plain = sg.function([table, ids], outputs, on_unused_input="ignore",
                        mode=sg.Mode(mode, exclude=["gather_length"]))
    assert AdvancedSubtensor1 not in ops_of(rewritten)
    assert AdvancedSubtensor1 in ops_of(plain)
    values = [np.ones((6, 4, 5), np.float32), np.array([[0, 1, 2], [3, 4, 5]], np.int32)]
    got, want = rewritten(*values), plain(*values)
    assert got[0].shape == want[0].shape == (2, 3, 4, 5)
    np.testing.assert_array_equal(got[0], want[0])
    assert int(got[1]) == int(want[1]) == 4
