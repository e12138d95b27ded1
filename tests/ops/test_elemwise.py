"""Elementwise ops: values against numpy, gradients by finite differences (hypothesis
over shapes with broadcastable dims), dtype promotion, infer_shape, errors."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import symgraph as sg
import symgraph.tensor as T
from tests.helpers import check_grad, check_infer_shape

# name -> (symbolic fn, numpy fn, input domain)
UNARY = {
    "neg": (T.neg, np.negative, (-3, 3)),
    "abs": (T.abs, np.abs, (0.1, 3)),
    "exp": (T.exp, np.exp, (-3, 3)),
    "log": (T.log, np.log, (0.1, 3)),
    "log1p": (T.log1p, np.log1p, (-0.5, 3)),
    "expm1": (T.expm1, np.expm1, (-3, 3)),
    "sqrt": (T.sqrt, np.sqrt, (0.1, 3)),
    "tanh": (T.tanh, np.tanh, (-3, 3)),
    "sigmoid": (T.sigmoid, lambda x: 1 / (1 + np.exp(-x)), (-6, 6)),
    "softplus": (T.softplus, lambda x: np.log1p(np.exp(x)), (-6, 6)),
    "relu": (T.relu, lambda x: np.maximum(x, 0), (0.1, 3)),
    "sin": (T.sin, np.sin, (-3, 3)),
    "cos": (T.cos, np.cos, (-3, 3)),
    "sqr": (T.sqr, np.square, (-3, 3)),
    "inv": (T.inv, lambda x: 1 / x, (0.5, 3)),
}
BINARY = {
    "add": (T.add, np.add, (-3, 3), (-3, 3)),
    "sub": (T.sub, np.subtract, (-3, 3), (-3, 3)),
    "mul": (T.mul, np.multiply, (-3, 3), (-3, 3)),
    "true_div": (T.true_div, np.true_divide, (-3, 3), (0.5, 3)),
    "pow": (T.pow, np.power, (0.5, 2), (-2, 2)),
    "maximum": (T.maximum, np.maximum, (-3, 3), (-3, 3)),
    "minimum": (T.minimum, np.minimum, (-3, 3), (-3, 3)),
}


def broadcast_pair():
    """Two shapes of equal rank where each axis is n, or 1 on one side."""
    return st.integers(0, 3).flatmap(lambda nd: st.tuples(
        st.lists(st.integers(1, 3), min_size=nd, max_size=nd),
        st.lists(st.booleans(), min_size=nd, max_size=nd),
        st.lists(st.booleans(), min_size=nd, max_size=nd))).map(
        lambda t: (tuple(1 if a else n for n, a in zip(t[0], t[1])),
                   tuple(1 if b and not a else n for n, a, b in zip(t[0], t[1], t[2]))))


def sym(shape, name, dtype="float64"):
    """A variable whose static shape marks the length-1 axes as broadcastable."""
    return T.tensor(dtype, tuple(1 if s == 1 else None for s in shape), name=name)


@pytest.mark.parametrize("name", sorted(UNARY))
@given(shape=st.lists(st.integers(1, 3), max_size=3).map(tuple), seed=st.integers(0, 99))
def test_unary_values_and_grad(name, shape, seed):
    fn, ref, (lo, hi) = UNARY[name]
    x = np.random.default_rng(seed).uniform(lo, hi, shape)
    xv = sym(shape, "x")
    f = sg.function([xv], fn(xv), mode="numpy")
    np.testing.assert_allclose(f(x), ref(x), rtol=1e-12, atol=1e-12)
    check_grad(fn, x, seed=seed)


@pytest.mark.parametrize("name", sorted(BINARY))
@given(shapes=broadcast_pair(), seed=st.integers(0, 99))
def test_binary_values_and_grad_with_broadcasting(name, shapes, seed):
    fn, ref, dom_a, dom_b = BINARY[name]
    rng = np.random.default_rng(seed)
    a = rng.uniform(*dom_a, shapes[0])
    b = rng.uniform(*dom_b, shapes[1])
    while name in ("maximum", "minimum") and np.any(np.abs(a - b) < 0.05):
        b = rng.uniform(*dom_b, shapes[1])  # keep away from ties (the kink)
    av, bv = sym(shapes[0], "a"), sym(shapes[1], "b")
    f = sg.function([av, bv], fn(av, bv), mode="numpy")
    np.testing.assert_allclose(f(a, b), ref(a, b), rtol=1e-12)

    def at_shapes(x, y):
        return fn(T.specify_shape(x, [1 if s == 1 else None for s in shapes[0]]),
                  T.specify_shape(y, [1 if s == 1 else None for s in shapes[1]]))

    check_grad(at_shapes, a, b, seed=seed)


def test_switch_clip_and_comparisons():
    x = T.dvector("x")
    y = T.dvector("y")
    out = T.switch(x > 0, x * 2, y) + T.clip(x, -1, 1)
    f = sg.function([x, y], out, mode="numpy")
    xv, yv = np.array([-2.0, -0.5, 0.5, 3.0]), np.array([1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(f(xv, yv), np.where(xv > 0, xv * 2, yv) + np.clip(xv, -1, 1))
    check_grad(lambda a, b: T.switch(a > 0, a * 2, b) + T.clip(a, -1, 1), xv, yv)
    g = sg.function([x, y], sg.grad(out.sum(), y), mode="numpy")
    np.testing.assert_array_equal(g(xv, yv), (xv <= 0).astype(float))
    for op, ref in [(T.eq, np.equal), (T.neq, np.not_equal), (T.lt, np.less),
                    (T.le, np.less_equal), (T.gt, np.greater), (T.ge, np.greater_equal)]:
        fc = sg.function([x, y], op(x, y), mode="numpy")
        np.testing.assert_array_equal(fc(xv, yv), ref(xv, yv))
        assert fc(xv, yv).dtype == np.bool_


def test_python_numbers_on_either_side_keep_the_tensor_dtype():
    x = T.fmatrix("x")
    for expr in [x + 1, 1 + x, x * 0.5, 0.5 * x, 2 - x, x / 3, 1 / (x + 1), x ** 2, 2 ** x]:
        assert expr.dtype == "float32", expr
    i = T.imatrix("i")
    assert (i + 1).dtype == "int32"
    assert (i * 0.5).dtype == "float64"  # numpy: int32 array * 0.5 -> float64
    assert (i / 2).dtype == "float64"
    assert (x + i).dtype == "float64"
    assert (x + T.dmatrix()).dtype == "float64"
    f = sg.function([x], [1 - x, x ** 2], mode="numpy")
    a, b = f(np.ones((2, 2), "float32") * 3)
    np.testing.assert_array_equal(a, -2 * np.ones((2, 2)))
    assert a.dtype == np.float32 and b.dtype == np.float32


def test_higher_order_gradients():
    x = T.dvector("x")
    for fn, d2 in [(T.tanh, lambda v: -2 * np.tanh(v) * (1 - np.tanh(v) ** 2)),
                   (T.sigmoid, lambda v: (s := 1 / (1 + np.exp(-v))) * (1 - s) * (1 - 2 * s)),
                   (lambda v: v * v * v, lambda v: 6 * v)]:
        g = sg.grad(fn(x).sum(), x)
        h = sg.grad(g.sum(), x)  # diagonal Hessian for elementwise fns
        f = sg.function([x], h, mode="numpy")
        v = np.linspace(-2, 2, 5)
        np.testing.assert_allclose(f(v), d2(v), rtol=1e-10, atol=1e-12)


def test_infer_shape_non_square():
    a, b = T.dmatrix("a"), T.dtensor3("b")
    b = T.specify_shape(b, (None, 1, None))
    check_infer_shape([a, b.owner.inputs[0]], a * b, [np.ones((3, 4)), np.ones((2, 1, 4))])


def test_broadcast_mismatch_names_both_shapes_and_lines():
    a = T.tensor("float64", (None, 3), name="a")
    b = T.tensor("float64", (None, 4), name="b")
    with pytest.raises(sg.ShapeError) as err:
        a + b
    msg = str(err.value)
    assert "(?, 3)" in msg and "(?, 4)" in msg and "test_elemwise.py" in msg


def test_runtime_mismatch_is_a_clear_error():
    a, b = T.dvector("a"), T.dvector("b")
    f = sg.function([a, b], a + b, mode="numpy")
    with pytest.raises(sg.ShapeError, match="run-time shapes do not match on axis 0"):
        f(np.ones(3), np.ones(1))  # a run-time 1 does not broadcast (not static)
