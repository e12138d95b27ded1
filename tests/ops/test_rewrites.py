"""The stability rewrites of symgraph.ops.rewrites, each against the unrewritten graph
(the same function compiled with the rewrite excluded): equal values and gradients, the
fused op present only when the rewrite runs, and finite results where it matters."""

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.ops.elemwise import Elemwise
from symgraph.ops.nnet import CrossEntropyIndexed, LogSoftmax, Softmax, SoftmaxCrossEntropy
from symgraph.ops.scalar import Softplus
from symgraph.rewriting import REGISTRY

NN = T.nnet


def compile_both(inputs, outputs, name):
    """(rewritten, unrewritten) numpy functions."""
    on = sg.function(inputs, outputs, mode=sg.Mode("numpy"))
    off = sg.function(inputs, outputs, mode=sg.Mode("numpy", exclude=[name]))
    return on, off


def op_types(fn):
    return {type(n.op) for n in fn.fgraph.toposort()}


def scalar_ops(fn):
    return {type(n.op.scalar_op) for n in fn.fgraph.toposort() if isinstance(n.op, Elemwise)}


def assert_same(on, off, *values):
    for a, b in zip(on(*values), off(*values)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_rewrites_are_registered_by_name():
    for name in ("log_softmax", "softmax_cross_entropy", "log_sigmoid"):
        assert name in REGISTRY and REGISTRY[name].default and REGISTRY[name].doc


def test_log_softmax():
    x, w = T.dmatrix("x"), T.dmatrix("w")
    out = T.log(NN.softmax(x))
    cost = (out * w).sum()
    on, off = compile_both([x, w], [out, sg.grad(cost, x)], "log_softmax")
    assert LogSoftmax in op_types(on) and LogSoftmax not in op_types(off)
    rng = np.random.default_rng(0)
    assert_same(on, off, rng.normal(size=(3, 4)), rng.normal(size=(3, 4)))
    # where the softmax underflows, only the rewritten forward is finite
    xv = np.array([[1000.0, -1000.0, 0.0]])
    value_on, grad_on = on(xv, np.ones((1, 3)))
    assert np.all(np.isfinite(value_on)) and np.all(np.isfinite(grad_on))
    np.testing.assert_allclose(value_on, [[0.0, -2000.0, -1000.0]])
    assert np.isneginf(off(xv, np.ones((1, 3)))[0]).any()


def test_log_softmax_other_axis():
    x = T.dtensor3("x")
    on, off = compile_both([x], T.log(NN.softmax(x, axis=1)), "log_softmax")
    assert LogSoftmax in op_types(on)
    assert_same(on, off, np.random.default_rng(1).normal(size=(2, 3, 4)))


@pytest.mark.parametrize("targets", ["ids", "rows"])
def test_softmax_cross_entropy_on_a_graph_built_from_ops(targets):
    """Graphs the builder does not fuse: the indexed op applied to a softmax directly, and
    the dense formula written out by hand."""
    x = T.dmatrix("x")
    if targets == "ids":
        y = T.lvector("y")
        loss = CrossEntropyIndexed()(NN.softmax(x), y)
    else:
        y = T.dmatrix("y")
        loss = -T.sum(y * T.log(NN.softmax(x)), axis=-1)
    cost = loss.mean()
    on, off = compile_both([x, y], [loss, sg.grad(cost, x)], "softmax_cross_entropy")
    assert SoftmaxCrossEntropy in op_types(on)
    assert SoftmaxCrossEntropy not in op_types(off)
    rng = np.random.default_rng(2)
    ids = np.array([0, 2, 1, 2])
    yv = ids if targets == "ids" else np.eye(3)[ids]
    assert_same(on, off, rng.normal(size=(4, 3)), yv)
    # the rewritten forward is finite at extreme logits
    loss_v, _ = on(np.array([[1000.0, -1000.0, 0.0]] * 4), yv)
    np.testing.assert_allclose(loss_v, [0.0, 1000.0, 2000.0, 1000.0])


def test_softmax_cross_entropy_after_log_softmax_and_with_givens():
    x, t = T.dmatrix("x"), T.dmatrix("t")
    loss = -T.sum(NN.log_softmax(x) * t, axis=1)
    on, off = compile_both([x, t], loss, "softmax_cross_entropy")
    assert SoftmaxCrossEntropy in op_types(on) and LogSoftmax in op_types(off)
    rng = np.random.default_rng(3)
    assert_same(on, off, rng.normal(size=(2, 5)), rng.dirichlet(np.ones(5), size=2))
    # givens substitute a softmax for the probabilities after the graph was built
    p, y = T.dmatrix("p"), T.lvector("y")
    f = sg.function([x, y], NN.categorical_crossentropy(p, y), givens={p: NN.softmax(x)},
                    mode="numpy")
    assert SoftmaxCrossEntropy in op_types(f) and CrossEntropyIndexed not in op_types(f)
    np.testing.assert_allclose(f(np.array([[1000.0, 0.0]]), np.array([1])), [1000.0])


def test_softmax_cross_entropy_leaves_broadcast_targets_alone():
    x = T.dmatrix("x")
    t = T.tensor("float64", (1, None), name="t")  # one row of targets for every row
    loss = -T.sum(t * T.log(NN.softmax(x)), axis=-1)
    f = sg.function([x, t], loss, mode="numpy")
    assert SoftmaxCrossEntropy not in op_types(f)
    xv, tv = np.random.default_rng(4).normal(size=(3, 2)), np.array([[0.5, 0.5]])
    np.testing.assert_allclose(f(xv, tv), -np.sum(tv * np.log(np.exp(xv) / np.exp(xv).sum(
        1, keepdims=True)), axis=1))


def test_log_sigmoid():
    x = T.dmatrix("x")
    outs = [T.log(NN.sigmoid(x)), T.log(1 - NN.sigmoid(x))]
    cost = outs[0].sum() + (outs[1] * 2).sum()
    on, off = compile_both([x], outs + [sg.grad(cost, x)], "log_sigmoid")
    assert Softplus in scalar_ops(on) and Softplus not in scalar_ops(off)
    xv = np.random.default_rng(5).normal(size=(3, 2)) * 3
    assert_same(on, off, xv)
    big = np.array([[-1000.0, 1000.0]])
    below, above, _ = on(big)
    np.testing.assert_allclose(below, [[-1000.0, 0.0]])
    np.testing.assert_allclose(above, [[0.0, -1000.0]])
    assert np.isneginf(off(big)[0]).any()


def test_softmax_not_rewritten_when_excluded_everywhere():
    x = T.dmatrix("x")
    f = sg.function([x], T.log(NN.softmax(x)), mode=sg.Mode(
        "numpy", exclude=["log_softmax", "softmax_cross_entropy", "log_sigmoid"]))
    assert Softmax in op_types(f) and LogSoftmax not in op_types(f)
