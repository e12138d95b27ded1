"""verify_grad: passes on correct gradients, and on a planted wrong pullback fails with a
per-element report naming the op."""

import numpy as np
import pytest

import symgraph.tensor as T
from symgraph.gradient import GradientCheckError, verify_grad
from symgraph.graph import Apply
from symgraph.op import Op
from symgraph.types import TensorType


class BadSquare(Op):
    """x**2 with a pullback whose sign is wrong."""

    def make_node(self, x):
        return Apply(self, [x], [TensorType(x.dtype, x.type.shape)])

    def perform(self, node, inputs):
        return [inputs[0] ** 2]

    def pullback(self, inputs, outputs, cotangents):
        return [-2 * inputs[0] * cotangents[0]]

    def infer_shape(self, node, input_shapes):
        return input_shapes


def test_verify_grad_accepts_correct_gradients():
    rng = np.random.default_rng(0)
    verify_grad(lambda x, w: T.tanh(T.dot(x, w)).sum(axis=0), [rng.normal(size=(3, 4)),
                                                               rng.normal(size=(4, 2))])


def test_verify_grad_names_the_op_whose_pullback_is_wrong():
    x = np.array([[0.5, 1.0, -1.5]])
    with pytest.raises(GradientCheckError) as err:
        verify_grad(lambda v: T.tanh(BadSquare()(v * 2)), [x])
    msg = str(err.value)
    assert "directional derivative mismatch" in msg
    assert "per-element report" in msg and "pt[0]" in msg
    assert "BadSquare" in msg and "test_gradient_check.py" in msg
    assert "Elemwise{tanh}" not in msg.split("disagrees:")[1]  # only the culprit is named


def test_verify_grad_rejects_integer_points():
    with pytest.raises(TypeError, match="floating-point"):
        verify_grad(lambda v: v * 2, [np.array([1, 2])])
