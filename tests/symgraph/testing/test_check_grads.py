"""check_grads: correct gradients pass (float32 models included, at kinks included);
planted wrong pullbacks (sign, missing broadcast sum, wrong axis) fail with a message
naming the op, node by node."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import symgraph as sg
import symgraph.tensor as T
from symgraph.graph import Apply
from symgraph.op import Op
from symgraph.ops.elemwise import sum_to
from symgraph.testing import GradientCheckError, check_grads, shapes, tensors
from symgraph.types import TensorType, broadcast_shapes


class SquareWrongSign(Op):
    """``x ** 2`` whose pullback has the wrong sign."""

    def make_node(self, x):
        return Apply(self, [x], [x.type])

    def perform(self, node, inputs):
        return [inputs[0] ** 2]

    def pullback(self, inputs, outputs, cotangents):
        return [-2 * inputs[0] * cotangents[0]]


class BiasAdd(Op):
    """``x + b`` with ``b`` broadcast over the rows; the planted pullback forgets to sum
    the cotangent of ``b`` over the broadcast axis."""

    __props__ = ("planted",)

    def __init__(self, planted: bool) -> None:
        self.planted = planted

    def make_node(self, x, b):
        return Apply(self, [x, b], [TensorType(x.dtype, broadcast_shapes(x.type.shape,
                                                                         b.type.shape))])

    def perform(self, node, inputs):
        return [inputs[0] + inputs[1]]

    def pullback(self, inputs, outputs, cotangents):
        (g,) = cotangents
        return [g, g if self.planted else sum_to(g, inputs[1])]


class CumSum(Op):
    """``cumsum(x, axis)``; its pullback, a reversed cumulative sum, runs along
    ``grad_axis`` (the planted bug: the other axis)."""

    __props__ = ("axis", "grad_axis")

    def __init__(self, axis: int, grad_axis: int) -> None:
        self.axis, self.grad_axis = axis, grad_axis

    def make_node(self, x):
        return Apply(self, [x], [x.type])

    def perform(self, node, inputs):
        return [np.cumsum(inputs[0], axis=self.axis)]

    def pullback(self, inputs, outputs, cotangents):
        return [ReverseCumSum(self.grad_axis)(cotangents[0])]


class ReverseCumSum(Op):
    __props__ = ("axis",)

    def __init__(self, axis: int) -> None:
        self.axis = axis

    def make_node(self, g):
        return Apply(self, [g], [g.type])

    def perform(self, node, inputs):
        g = np.flip(inputs[0], self.axis)
        return [np.flip(np.cumsum(g, axis=self.axis), self.axis)]


# ---- correct gradients pass -----------------------------------------------------------------

@given(x=tensors("float32", shapes(1, 3)), w=tensors("float32", (4, 2)))
def test_float32_graph_is_checked_in_float64(x, w):
    check_grads(lambda x, w: T.tanh(x.sum() * T.dot(w.T, w)) + T.nnet.sigmoid(x).mean(),
                [x, w])


@given(pair=shapes(1, 3, broadcastable=True), data=st.data())
def test_broadcasting_pullbacks_sum_over_size_one_axes(pair, data):
    a = data.draw(tensors("float32", pair[0]))
    b = data.draw(tensors("float32", pair[1], domain="positive"))
    check_grads(lambda a, b: a * b + a / b - T.exp(b) * T.tanh(a), [a, b])


@given(x=tensors("float32", shapes(1, 2), elements=st.sampled_from([0.0, 1.0, -1.0, 0.5])))
def test_kinks_are_nudged_away(x):
    """Ties and points exactly on relu/abs/max/clip/switch kinks (hypothesis draws them)."""
    check_grads(lambda x: T.nnet.relu(x) + abs(x - 1) + T.maximum(x, 0.5) + x.max()
                + T.clip(x, -1.0, 1.0) + T.switch(x > 0, x ** 2, -x) + T.minimum(x, x), [x])


def test_a_kink_inside_a_scan_step_is_handled_by_the_smoothness_fallback():
    W = np.random.default_rng(0).normal(size=(3, 3)).astype("float32")

    def model(xs, W):
        step = lambda x, h, W: T.nnet.relu(T.dot(x, W) + h)  # noqa: E731
        return sg.scan(step, sequences=xs, outputs_info=T.zeros((xs.shape[1], 3)),
                       non_sequences=W)[0]

    with pytest.raises(GradientCheckError):  # at relu's kink (pre-activations all zero)
        check_grads(model, [np.zeros((4, 2, 3), "float32"), W], nudge=False)
    check_grads(model, [np.zeros((4, 2, 3), "float32"), W])


def test_symbolic_cost_with_shared_variables_and_integer_inputs():
    rng = np.random.default_rng(0)
    E = sg.shared(rng.normal(size=(5, 3)).astype("float32"), name="E")
    W = sg.shared(rng.normal(size=(3, 4)).astype("float32"), name="W")
    ids, y = T.lvector("ids"), T.lvector("y")
    logits = T.dot(E[ids], W)
    cost = T.nnet.categorical_crossentropy(T.nnet.softmax(logits), y).mean()
    before = W.get_value()
    check_grads(cost, [E, W], at={ids: np.array([0, 3, 3]), y: np.array([1, 0, 2])})
    np.testing.assert_array_equal(W.get_value(), before)  # the model is not touched
    assert W.dtype == "float32"


def test_function_form_can_vary_parameters_and_hold_arguments():
    W = sg.shared(np.ones((3, 2), "float32") * 0.3, name="W")
    check_grads(lambda x: T.tanh(T.dot(x, W)), at=[np.ones((2, 3), "float32")], wrt=[W])
    check_grads(lambda x, y: (x * y).sum(), at=[np.ones(3), np.arange(3.0)], wrt=[0])


def test_random_draws_are_held_fixed_during_the_check():
    rs = sg.RandomStreams(3)
    keep = rs.binomial((2, 3), p=0.5).astype("float32")
    noise = rs.uniform((2, 3), dtype="float32")
    states = [s.get_value() for s, _ in rs.updates()]
    check_grads(lambda x: T.tanh(x * keep * 2 + noise), [np.ones((2, 3), "float32")])
    for (s, _), before in zip(rs.updates(), states):
        np.testing.assert_array_equal(s.get_value(), before)


def test_missing_values_and_bad_wrt_are_reported():
    x, y = T.dvector("x"), T.dvector("y")
    with pytest.raises(TypeError, match="no value for 'y'"):
        check_grads((x * y).sum(), [x], at={x: np.ones(2)})
    with pytest.raises(TypeError, match="root or shared"):
        check_grads((x * y).sum(), [x * 2], at={x: np.ones(2), y: np.ones(2)})
    with pytest.raises(TypeError, match="only floating-point"):
        check_grads(lambda i: T.cast(i, "float64") * 2, at=[np.array([1, 2])], wrt=[0])


# ---- planted bugs are caught and named ------------------------------------------------------

@given(x=tensors("float32", shapes(1, 2), domain="positive"))
def test_wrong_sign_is_named(x):
    with pytest.raises(GradientCheckError) as err:
        check_grads(lambda v: T.tanh(SquareWrongSign()(v * 0.5)), [x])
    msg = str(err.value)
    assert "directional derivative mismatch" in msg and "'at[0]'" in msg
    culprits = msg.split("disagrees:")[1]
    assert "SquareWrongSign" in culprits and "test_check_grads.py" in culprits
    assert "Elemwise" not in culprits  # only the culprit is named


@given(rows=st.integers(2, 4), cols=st.integers(1, 3), data=st.data())
def test_missing_broadcast_sum_is_named(rows, cols, data):
    x = data.draw(tensors("float32", (rows, cols)))
    b = data.draw(tensors("float32", (1, cols)))
    check_grads(lambda x, b: T.tanh(BiasAdd(False)(x, b)), [x, b])
    with pytest.raises(GradientCheckError) as err:
        check_grads(lambda x, b: T.tanh(BiasAdd(True)(x, b)), [x, b])
    msg = str(err.value)
    assert f"has shape ({rows}, {cols}) but 'at[1]' has shape (1, {cols})" in msg
    assert "BiasAdd{True}" in msg.split("disagrees:")[1]


@given(x=tensors("float32", shapes(2, 2, min_side=2), domain="positive"))
def test_wrong_axis_is_named(x):
    check_grads(lambda v: T.tanh(CumSum(0, 0)(v)), [x])
    with pytest.raises(GradientCheckError) as err:
        check_grads(lambda v: T.tanh(CumSum(0, 1)(v)), [x])
    assert "CumSum{0, 1}" in str(err.value).split("disagrees:")[1]


def test_a_wrong_pullback_inside_a_scan_step_is_named_inside_the_step():
    def model(xs, h0):
        step = lambda x, h: T.tanh(SquareWrongSign()(h) * 0.5 + x)  # noqa: E731
        return sg.scan(step, sequences=xs, outputs_info=h0)[0]

    rng = np.random.default_rng(1)
    with pytest.raises(GradientCheckError) as err:
        check_grads(model, [rng.normal(size=(3, 2)), rng.uniform(0.5, 1, size=2)])
    culprits = str(err.value).split("disagrees:")[1]
    assert "Scan" in culprits and "inside the step of Scan" in culprits
    assert "SquareWrongSign" in culprits


class NoPullback(Op):
    def make_node(self, x):
        return Apply(self, [x], [x.type])

    def perform(self, node, inputs):
        return [inputs[0] * 3]


def test_a_gradient_that_cannot_be_built_is_a_check_failure():
    with pytest.raises(GradientCheckError, match="building the symbolic gradient failed"
                       ".*NoPullback"):
        check_grads(lambda x: NoPullback()(x), [np.ones(3)])


def test_verify_grad_is_the_same_checker():
    from symgraph.gradient import verify_grad

    with pytest.raises(GradientCheckError, match="verify_grad: directional derivative"):
        verify_grad(lambda v: SquareWrongSign()(v), [np.array([0.5, 2.0])])
