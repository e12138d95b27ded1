"""T.nnet: softmax, log-softmax and the cross-entropies against numpy references,
gradients by finite differences (second order too), infer_shape, stability at logits of
+-1000 and the error messages."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import expit

import symgraph as sg
import symgraph.tensor as T
from symgraph.ops.nnet import (
    CrossEntropyIndexed,
    LogSoftmax,
    Softmax,
    SoftmaxCrossEntropy,
    TargetError,
)
from tests.helpers import arrays, check_grad, check_infer_shape

NN = T.nnet


def ref_log_softmax(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    return x - m - np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))


def ref_softmax(x, axis=-1):
    return np.exp(ref_log_softmax(x, axis))


def run(inputs, outputs, *values):
    return sg.function(inputs, outputs, mode="numpy")(*values)


def ops_of(fn):
    return [type(node.op) for node in fn.fgraph.toposort()]


shape_and_axis = st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple).flatmap(
    lambda s: st.tuples(st.just(s), st.integers(-len(s), len(s) - 1)))


# ---- softmax / log-softmax ---------------------------------------------------------------

@given(shape_and_axis, st.integers(0, 99))
def test_softmax_and_log_softmax_values(shape_axis, seed):
    shape, axis = shape_axis
    x = T.tensor("float64", (None,) * len(shape), name="x")
    xv = arrays(shape, -5, 5, seed=seed)
    sm, lsm = run([x], [NN.softmax(x, axis), NN.log_softmax(x, axis)], xv)
    np.testing.assert_allclose(sm, ref_softmax(xv, axis), rtol=1e-12)
    np.testing.assert_allclose(lsm, ref_log_softmax(xv, axis), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sm.sum(axis=axis), 1.0)


@given(shape_and_axis, st.integers(0, 99))
def test_softmax_and_log_softmax_gradients(shape_axis, seed):
    shape, axis = shape_axis
    xv = arrays(shape, -2, 2, seed=seed)
    check_grad(lambda x: NN.softmax(x, axis), xv)
    check_grad(lambda x: NN.log_softmax(x, axis), xv)


def test_softmax_grad_of_grad():
    xv, w = arrays((3, 4), seed=1), arrays((3, 4), seed=2)

    def first_order(x, op):
        return sg.grad((op(x) * w).sum(), x)

    check_grad(lambda x: first_order(x, NN.softmax), xv)
    check_grad(lambda x: first_order(x, NN.log_softmax), xv)
    check_grad(lambda x: first_order(x, lambda v: T.log(NN.softmax(v, axis=0))), xv)


def test_grad_of_log_softmax_through_softmax_pullback_with_fan_out():
    """softmax(x) used by log and by another client: the pullback splits the cotangent."""
    w, t = arrays((2, 5), seed=3), arrays((2, 5), 0, 1, seed=4)
    check_grad(lambda x: (T.log(NN.softmax(x)) * t).sum() + (NN.softmax(x) * w).sum(),
               arrays((2, 5), seed=5))
    check_grad(lambda x: T.log(NN.softmax(x)) * 2.0, arrays((3, 2), seed=6))


def test_softmax_is_stable_and_keeps_dtype():
    x = T.fmatrix("x")
    xv = np.array([[1000, -1000, 0], [-1000, -1000, -1000]], dtype="float32")
    sm, lsm = run([x], [NN.softmax(x), NN.log_softmax(x)], xv)
    assert sm.dtype == lsm.dtype == np.float32
    np.testing.assert_allclose(sm, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-6)
    np.testing.assert_allclose(lsm, [[0, -2000, -1000], [-np.log(3)] * 3], rtol=1e-6)


def test_softmax_of_integers_is_floatx():
    assert NN.softmax(T.lmatrix()).dtype == sg.config.floatX


def test_gradient_of_log_softmax_finite_at_extreme_logits():
    x, t = T.dmatrix("x"), T.dmatrix("t")
    cost = (T.log(NN.softmax(x)) * t).sum()
    f = sg.function([x, t], sg.grad(cost, x), mode="numpy")
    xv = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 3.0]])
    tv = np.eye(3)[[1, 0]]
    g = f(xv, tv)
    np.testing.assert_allclose(g, tv.sum(1, keepdims=True) * (-ref_softmax(xv)) + tv)


def test_reexports():
    assert NN.sigmoid is T.sigmoid and NN.softplus is T.softplus and NN.relu is T.relu


def test_hard_sigmoid():
    x = T.dvector("x")
    xv = np.array([-5.0, -1.0, 0.0, 1.0, 5.0])
    np.testing.assert_allclose(run([x], NN.hard_sigmoid(x), xv), np.clip(0.2 * xv + 0.5, 0, 1))


# ---- categorical cross-entropy ---------------------------------------------------------

@given(st.lists(st.integers(1, 4), min_size=0, max_size=2).map(tuple), st.integers(2, 5),
       st.integers(0, 99))
def test_categorical_crossentropy_values(lead, k, seed):
    rng = np.random.default_rng(seed)
    pv = ref_softmax(rng.normal(size=lead + (k,)))
    yv = rng.integers(0, k, size=lead)
    onehot = np.eye(k)[yv]
    p = T.tensor("float64", (None,) * (len(lead) + 1), name="p")
    y = T.tensor("int64", (None,) * len(lead), name="y")
    t = T.tensor("float64", (None,) * (len(lead) + 1), name="t")
    by_id = run([p, y], NN.categorical_crossentropy(p, y), pv, yv)
    by_row = run([p, t], NN.categorical_crossentropy(p, t), pv, onehot)
    expected = -np.log(np.sum(pv * onehot, axis=-1))
    assert by_id.shape == by_row.shape == lead
    np.testing.assert_allclose(by_id, expected, rtol=1e-12)
    np.testing.assert_allclose(by_row, expected, rtol=1e-12)


def test_categorical_crossentropy_gradients():
    rng = np.random.default_rng(0)
    pv = rng.uniform(0.1, 1.0, size=(4, 3))
    yv = np.array([0, 2, 1, 2])
    tv = ref_softmax(rng.normal(size=(4, 3)))
    check_grad(lambda p: NN.categorical_crossentropy(p, T.constant(yv)), pv)
    check_grad(lambda p, t: NN.categorical_crossentropy(p, t), pv, tv)
    check_grad(lambda p: sg.grad(NN.categorical_crossentropy(p, T.constant(yv)).sum(), p), pv)


@pytest.mark.parametrize("targets", ["ids", "rows"])
def test_softmax_cross_entropy_values_and_gradients(targets):
    rng = np.random.default_rng(1)
    xv = rng.normal(size=(2, 3, 4))
    yv = rng.integers(0, 4, size=(2, 3))
    tv = np.eye(4)[yv] if targets == "ids" else ref_softmax(rng.normal(size=(2, 3, 4)))
    target = T.constant(yv) if targets == "ids" else T.constant(tv)
    x = T.dtensor3("x")
    got = run([x], NN.softmax_cross_entropy_with_logits(x, target), xv)
    np.testing.assert_allclose(got, -np.sum(tv * ref_log_softmax(xv), axis=-1), rtol=1e-12)
    check_grad(lambda v: NN.softmax_cross_entropy_with_logits(v, target), xv)
    check_grad(lambda v: sg.grad(NN.softmax_cross_entropy_with_logits(v, target).sum(), v),
               xv)
    if targets == "rows":
        check_grad(lambda v, t: NN.softmax_cross_entropy_with_logits(v, t), xv, tv)


def test_categorical_crossentropy_of_softmax_is_fused_when_built():
    x, y, t = T.dmatrix("x"), T.lvector("y"), T.dmatrix("t")
    for target in (y, t):
        out = NN.categorical_crossentropy(NN.softmax(x), target)
        assert isinstance(out.owner.op, SoftmaxCrossEntropy)
        assert out.owner.inputs[0] is x
    assert isinstance(NN.categorical_crossentropy(Softmax(-1)(x), y).owner.op,
                      SoftmaxCrossEntropy)
    # softmax over another axis is not the rows' softmax: not fused
    other = NN.categorical_crossentropy(NN.softmax(x, axis=0), y)
    assert isinstance(other.owner.op, CrossEntropyIndexed)


@pytest.mark.parametrize("targets", ["ids", "onehot"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_softmax_crossentropy_at_extreme_logits_is_finite(targets, dtype):
    """Acceptance: categorical_crossentropy(softmax(x), y) on logits of +-1000 gives
    finite values and gradients, through sg.grad and sg.function."""
    x = T.matrix("x", dtype=dtype)
    y = T.lvector("y") if targets == "ids" else T.matrix("y", dtype=dtype)
    loss = NN.categorical_crossentropy(NN.softmax(x), y)
    cost = loss.mean()
    f = sg.function([x, y], [loss, cost, sg.grad(cost, x)], mode="numpy")
    xv = np.array([[1000, -1000, 0], [-1000, 1000, 500], [-1000, -1000, 1000]], dtype=dtype)
    ids = np.array([1, 1, 0])
    yv = ids if targets == "ids" else np.eye(3, dtype=dtype)[ids]
    loss_v, cost_v, g = f(xv, yv)
    assert np.all(np.isfinite(loss_v)) and np.isfinite(cost_v) and np.all(np.isfinite(g))
    np.testing.assert_allclose(loss_v, [2000, 0, 2000], rtol=1e-6)
    expected = (ref_softmax(xv.astype("float64")) - np.eye(3)[ids]) / 3
    np.testing.assert_allclose(g, expected, rtol=1e-5, atol=1e-7)


def test_binary_crossentropy():
    rng = np.random.default_rng(2)
    ov, tv = rng.uniform(0.05, 0.95, size=(3, 4)), rng.uniform(0, 1, size=(3, 4))
    o, t = T.dmatrix("o"), T.dmatrix("t")
    got = run([o, t], NN.binary_crossentropy(o, t), ov, tv)
    np.testing.assert_allclose(got, -(tv * np.log(ov) + (1 - tv) * np.log(1 - ov)))
    check_grad(lambda a, b: NN.binary_crossentropy(a, b), ov, tv)
    # sigmoid outputs are fused into the stable form, finite for any logits
    x = T.dmatrix("x")
    xv = np.array([[1000.0, -1000.0, 0.0, 3.0]] * 3)
    loss = NN.binary_crossentropy(NN.sigmoid(x), t)
    f = sg.function([x, t], [loss, sg.grad(loss.sum(), x)], mode="numpy")
    loss_v, g = f(xv, tv)
    expected = np.logaddexp(0, xv) - tv * xv
    np.testing.assert_allclose(loss_v, expected)
    np.testing.assert_allclose(g, expit(xv) - tv)
    check_grad(lambda a, b: NN.sigmoid_binary_crossentropy(a, b), arrays((3, 4)), tv)
    # numpy targets on the right of the math
    assert NN.binary_crossentropy(o, tv).ndim == 2


# ---- infer_shape -------------------------------------------------------------------------

def test_infer_shape():
    rng = np.random.default_rng(3)
    x3, x2 = T.dtensor3("x3"), T.dmatrix("x2")
    xv3, xv2 = rng.normal(size=(2, 3, 5)), rng.uniform(0.1, 1, size=(3, 5))
    for op in (Softmax(0), Softmax(2), LogSoftmax(1)):
        check_infer_shape([x3], op(x3), [xv3])
    y2, t3 = T.lmatrix("y2"), T.dtensor3("t3")
    yv2 = rng.integers(0, 5, size=(2, 3))
    check_infer_shape([x3, y2], SoftmaxCrossEntropy()(x3, y2), [xv3, yv2])
    check_infer_shape([x3, t3], SoftmaxCrossEntropy()(x3, t3), [xv3, ref_softmax(xv3)])
    y1 = T.lvector("y1")
    check_infer_shape([x2, y1], CrossEntropyIndexed()(x2, y1), [xv2, np.array([0, 4, 2])])


# ---- errors --------------------------------------------------------------------------------

def test_integer_targets_of_the_wrong_shape():
    p = T.tensor("float64", (None, 5), name="p")
    with pytest.raises(sg.ShapeError, match=r"integer targets .*must have shape \(\?,\).*'y'"):
        NN.categorical_crossentropy(p, T.lmatrix("y"))
    p4 = T.tensor("float64", (4, 5), name="p4")
    with pytest.raises(sg.ShapeError, match="do not match the expected shape"):
        NN.categorical_crossentropy(p4, T.tensor("int64", (3,), name="y"))


def test_float_targets_of_the_wrong_shape():
    p = T.tensor("float64", (None, 5), name="p")
    with pytest.raises(sg.ShapeError, match=r"float targets .*use \.astype\('int64'\)"):
        NN.categorical_crossentropy(p, T.dvector("y"))
    with pytest.raises(sg.ShapeError, match="axis 1"):
        NN.categorical_crossentropy(p, T.tensor("float64", (None, 4), name="t"))


def test_run_time_target_errors_name_the_id_and_the_line():
    p, y = T.dmatrix("p"), T.lvector("y")
    for loss in (NN.categorical_crossentropy(p, y),
                 NN.categorical_crossentropy(NN.softmax(p), y)):
        f = sg.function([p, y], loss, mode="numpy")
        pv = np.full((3, 4), 0.25)
        with pytest.raises(TargetError, match=r"target id 7 at position \(1,\) is out of "
                                              r"range \[0, 4\) for 4 classes") as info:
            f(pv, np.array([0, 7, 1]))
        assert "test_nnet.py" in str(info.value)
        with pytest.raises(TargetError, match="target id -1"):
            f(pv, np.array([0, 1, -1]))
        with pytest.raises(sg.ShapeError, match=r"targets of shape \(2,\) .*\(3, 4\)"):
            f(pv, np.array([0, 1]))


def test_bad_axis_and_rank():
    with pytest.raises(sg.ShapeError, match="axis 2 is out of range"):
        NN.softmax(T.dmatrix(), axis=2)
    with pytest.raises(sg.ShapeError, match="rank >= 1"):
        NN.softmax(T.dscalar())
