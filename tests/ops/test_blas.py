"""dot for every vector/matrix combination, higher-rank dot, values, gradients, errors."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import symgraph as sg
import symgraph.tensor as T
from tests.helpers import check_grad, check_infer_shape


@given(m=st.integers(1, 4), k=st.integers(1, 4), n=st.integers(1, 4),
       ranks=st.sampled_from([(1, 1), (1, 2), (2, 1), (2, 2)]), seed=st.integers(0, 30))
def test_dot_values_gradients_shapes(m, k, n, ranks, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(m, k)[2 - ranks[0]:])
    b = rng.normal(size=(k, n)[: ranks[1]])
    av = T.tensor("float64", (None,) * ranks[0], name="a")
    bv = T.tensor("float64", (None,) * ranks[1], name="b")
    f = sg.function([av, bv], T.dot(av, bv), mode="numpy")
    np.testing.assert_allclose(f(a, b), np.dot(a, b), rtol=1e-12)
    check_grad(T.dot, a, b, seed=seed)
    check_infer_shape([av, bv], T.dot(av, bv), [a, b])


def test_tensor3_dot_matrix_and_dtype_promotion():
    x = T.dtensor3("x")
    w = T.fmatrix("w")
    out = T.dot(x, w)
    assert out.dtype == "float64"
    v, wv = np.ones((2, 3, 4)), np.ones((4, 5), "float32")
    np.testing.assert_allclose(sg.function([x, w], out, mode="numpy")(v, wv),
                               np.dot(v, wv))
    check_grad(lambda a, b: T.dot(a, b), np.random.default_rng(0).normal(size=(2, 3, 4)),
               np.random.default_rng(1).normal(size=(4, 2)))


def test_dot_shape_errors():
    a = T.tensor("float64", (None, 3), name="a")
    b = T.tensor("float64", (4, None), name="b")
    with pytest.raises(sg.ShapeError, match="inner dimensions differ"):
        T.dot(a, b)
    x, y = T.dmatrix("x"), T.dmatrix("y")
    f = sg.function([x, y], T.dot(x, y), mode="numpy")
    with pytest.raises(sg.ShapeError, match=r"\(2, 3\) and \(4, 2\)"):
        f(np.ones((2, 3)), np.ones((4, 2)))
