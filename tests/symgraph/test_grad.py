"""grad(): fan-out accumulation, known_grads, disconnected policies, higher order, markers."""

import warnings

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.graph import Apply
from symgraph.op import Op
from symgraph.types import TensorType
from tests.helpers import check_grad


def run(inputs, outputs, *values):
    return sg.function(inputs, outputs, mode="numpy", on_unused_input="ignore")(*values)


def test_fan_out_accumulates():
    x = T.dscalar("x")
    y = x * x + x * 3 + T.exp(x)  # x used four times
    g = run([x], sg.grad(y, x), 0.5)
    assert g == pytest.approx(2 * 0.5 + 3 + np.exp(0.5))


def test_grad_structure_follows_wrt():
    x, y = T.dscalar("x"), T.dscalar("y")
    c = x * y
    assert isinstance(sg.grad(c, x), sg.Variable)
    gs = sg.grad(c, [x, y])
    assert isinstance(gs, list) and len(gs) == 2
    np.testing.assert_allclose(run([x, y], gs, 2.0, 3.0), [3.0, 2.0])


def test_known_grads_seed_an_intermediate():
    x = T.dvector("x")
    h = T.tanh(x)
    g = sg.grad(None, x, known_grads={h: T.ones_like(h) * 2})
    v = np.array([0.1, -0.4])
    np.testing.assert_allclose(run([x], g, v), 2 * (1 - np.tanh(v) ** 2))


def test_disconnected_inputs_policies():
    x, y = T.dscalar("x"), T.dscalar("y")
    with pytest.raises(sg.GradientError, match=r"does not depend on 'y'.*test_grad.py"):
        sg.grad(x * 2, y)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        g = sg.grad(x * 2, y, disconnected_inputs="warn")
    assert any("does not depend" in str(m.message) for m in w)
    assert run([y], g, 3.0) == 0
    assert run([y], sg.grad(x * 2, y, disconnected_inputs="ignore"), 3.0) == 0


def test_integer_paths_are_disconnected():
    x = T.dvector("x")
    i = T.argmax(x)
    cost = T.cast(i, "float64") + x.sum()
    np.testing.assert_array_equal(run([x], sg.grad(cost, x), np.array([1.0, 3.0])), [1, 1])


def test_cost_must_be_a_float_scalar():
    x = T.dvector("x")
    with pytest.raises(sg.GradientError, match="cost must be a scalar"):
        sg.grad(x * 2, x)
    with pytest.raises(sg.GradientError, match="not a floating-point variable"):
        sg.grad(x.sum(), T.ivector("i"))


class NoGrad(Op):
    """A test op without a gradient rule."""

    def make_node(self, x):
        return Apply(self, [x], [TensorType(x.dtype, x.type.shape)])

    def perform(self, node, inputs):
        return [inputs[0] * 2]


def test_not_implemented_gradient_raises_only_when_needed():
    x, y = T.dvector("x"), T.dvector("y")
    cost = NoGrad()(x).sum() + (y * y).sum()
    assert run([x, y], sg.grad(cost, y), np.ones(2), np.ones(2)).tolist() == [2.0, 2.0]
    with pytest.raises(sg.GradientError, match="NoGrad.*not implemented"):
        sg.grad(cost, x)


@pytest.mark.parametrize("name, fn", [
    ("tanh", T.tanh), ("sigmoid", T.sigmoid), ("softmax", lambda v: T.nnet.softmax(v)),
    ("dot", lambda v: T.dot(v, v.T)), ("product", lambda v: v * v * T.exp(v))])
def test_grad_of_grad(name, fn):
    rng = np.random.default_rng(0)

    def first_derivative(v):
        return sg.grad((fn(v) * T.constant(rng.normal(size=(2, 3) if name != "dot" else
                                                      (2, 2)))).sum(), v)

    check_grad(first_derivative, rng.normal(size=(2, 3)))


def test_hessian_of_quadratic_form():
    x = T.dvector("x")
    A = np.array([[2.0, 1.0], [1.0, 3.0]])
    cost = T.dot(x, T.dot(T.constant(A), x)) / 2
    g = sg.grad(cost, x)
    rows = [sg.grad(g[i], x) for i in range(2)]
    np.testing.assert_allclose(run([x], rows, np.array([0.3, -0.7])), A)
