"""scan: values and gradients against the same step unrolled in Python, Theano's
options, second order, long sequences and errors."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import symgraph as sg
import symgraph.tensor as T
from tests.helpers import check_grad


def rnn_step(x_t, h, W, U):
    return T.tanh(T.dot(x_t, W) + T.dot(h, U))


def unrolled(xs, h0, W, U, n):
    h, hs = h0, []
    for t in range(n):
        h = rnn_step(xs[t], h, W, U)
        hs.append(h)
    return T.stack(hs)


@given(T_=st.integers(1, 5), B=st.integers(1, 3), H=st.integers(1, 4), seed=st.integers(0, 50))
def test_scan_gradient_equals_unrolled(T_, B, H, seed):
    rng = np.random.default_rng(seed)
    xs_v, h0_v = rng.normal(size=(T_, B, 3)), rng.normal(size=(B, H))
    W_v, U_v = rng.normal(size=(3, H)) * 0.5, rng.normal(size=(H, H)) * 0.5
    xs, h0, W, U = T.dtensor3("xs"), T.dmatrix("h0"), T.dmatrix("W"), T.dmatrix("U")
    hs, _ = sg.scan(rnn_step, sequences=xs, outputs_info=h0, non_sequences=[W, U])
    ref = unrolled(xs, h0, W, U, T_)
    weights = T.dtensor3("weights")  # a random projection of all states
    costs = [(hs * weights).sum(), (ref * weights).sum()]
    grads = [sg.grad(c, [xs, h0, W, U]) for c in costs]
    f = sg.function([xs, h0, W, U, weights], [hs, ref, *grads[0], *grads[1]], mode="numpy")
    out = f(xs_v, h0_v, W_v, U_v, rng.normal(size=(T_, B, H)))
    np.testing.assert_allclose(out[0], out[1], rtol=1e-12)
    for a, b in zip(out[2:6], out[6:10]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_scan_gradient_by_finite_differences():
    rng = np.random.default_rng(1)

    def model(xs, h0, W, U):
        return sg.scan(rnn_step, sequences=xs, outputs_info=h0, non_sequences=[W, U])[0]

    check_grad(model, rng.normal(size=(4, 2, 3)), rng.normal(size=(2, 3)),
               rng.normal(size=(3, 3)), rng.normal(size=(3, 3)))


def test_go_backwards_iterates_from_the_end():
    xs = T.dvector("xs")
    acc, _ = sg.scan(lambda x, a: a * 10 + x, sequences=xs,
                     outputs_info=T.constant(0.0, dtype="float64"), go_backwards=True)
    f = sg.function([xs], acc, mode="numpy")
    np.testing.assert_allclose(f(np.array([1.0, 2.0, 3.0])), [3.0, 32.0, 321.0])
    check_grad(lambda v: sg.scan(lambda x, a: T.tanh(a * 0.5 + x), sequences=v,
                                 outputs_info=T.constant(0.1, dtype="float64"),
                                 go_backwards=True)[0], np.array([0.3, -0.2, 0.5]))


def test_n_steps_without_sequences_and_non_sequences():
    a = T.dscalar("a")
    powers, _ = sg.scan(lambda p, a: p * a, outputs_info=T.constant(1.0, dtype="float64"),
                        non_sequences=a, n_steps=4)
    f = sg.function([a], powers, mode="numpy")
    np.testing.assert_allclose(f(2.0), [2.0, 4.0, 8.0, 16.0])
    g = sg.function([a], sg.grad(powers[-1], a), mode="numpy")
    np.testing.assert_allclose(g(2.0), 4 * 2.0 ** 3)


def test_symbolic_n_steps_from_shape():
    x = T.dmatrix("x")
    count, _ = sg.scan(lambda c: c + 1, outputs_info=T.constant(0, dtype="int64"),
                       n_steps=x.shape[0])
    assert list(sg.function([x], count, mode="numpy")(np.ones((3, 2)))) == [1, 2, 3]


def test_multiple_outputs_with_none_and_shared_weights_used_implicitly():
    W = sg.shared(np.array([[0.5, -0.3], [0.2, 0.1]]), name="W")
    xs = T.dmatrix("xs")
    h0 = T.dvector("h0")
    (hs, ys), _ = sg.scan(lambda x, h: [T.tanh(x + T.dot(h, W)), T.dot(h, W).sum()],
                          sequences=xs, outputs_info=[h0, None])
    f = sg.function([xs, h0], [hs, ys], mode="numpy")
    xv, h0v = np.array([[1.0, 2.0], [0.5, -1.0], [0.0, 0.3]]), np.array([0.1, 0.2])
    h, hs_ref, ys_ref = h0v, [], []
    for x in xv:
        ys_ref.append((h @ W.get_value()).sum())
        h = np.tanh(x + h @ W.get_value())
        hs_ref.append(h)
    out_h, out_y = f(xv, h0v)
    np.testing.assert_allclose(out_h, hs_ref)
    np.testing.assert_allclose(out_y, ys_ref)
    gW = sg.function([xs, h0], sg.grad(hs.sum() + ys.sum(), W), mode="numpy")
    eps, num = 1e-6, np.zeros((2, 2))
    base = W.get_value()
    for idx in np.ndindex(2, 2):
        vals = []
        for s in (1, -1):
            w = base.copy()
            w[idx] += s * eps
            W.set_value(w)
            a, b = f(xv, h0v)
            vals.append(a.sum() + b.sum())
        num[idx] = (vals[0] - vals[1]) / (2 * eps)
    W.set_value(base)
    np.testing.assert_allclose(gW(xv, h0v), num, rtol=1e-6)


def test_truncate_gradient_matches_hand_truncated_reference():
    rng = np.random.default_rng(3)
    T_, k = 6, 2
    xs_v, h0_v = rng.normal(size=(T_, 2, 3)), rng.normal(size=(2, 3))
    W_v, U_v = rng.normal(size=(3, 3)) * 0.5, rng.normal(size=(3, 3)) * 0.5
    xs, h0, W, U = T.dtensor3("xs"), T.dmatrix("h0"), T.dmatrix("W"), T.dmatrix("U")
    hs, _ = sg.scan(rnn_step, sequences=xs, outputs_info=h0, non_sequences=[W, U],
                    truncate_gradient=k)
    cost = (hs ** 2).sum()
    f = sg.function([xs, h0, W, U], [hs, *sg.grad(cost, [xs, h0, W, U])], mode="numpy")
    states, gx, gh0, gW, gU = f(xs_v, h0_v, W_v, U_v)
    # reference: the first T-k steps' states are constants; only the last k steps are
    # differentiated, and only the loss terms of those steps reach the weights
    start = T.dmatrix("start")
    tail = unrolled(xs[T_ - k:], start, W, U, k)
    ref_cost = (tail ** 2).sum()
    g_ref = sg.function([xs, start, W, U], sg.grad(ref_cost, [xs, W, U]), mode="numpy")
    rx, rW, rU = g_ref(xs_v, states[T_ - k - 1], W_v, U_v)
    np.testing.assert_allclose(gx[: T_ - k], 0)
    np.testing.assert_allclose(gx[T_ - k:], rx[T_ - k:], rtol=1e-10)
    np.testing.assert_allclose(gW, rW, rtol=1e-10)
    np.testing.assert_allclose(gU, rU, rtol=1e-10)
    np.testing.assert_allclose(gh0, 0)


def test_second_order_gradient_through_a_tiny_scan():
    rng = np.random.default_rng(4)

    def grad_of_scan(h0, U):
        hs, _ = sg.scan(lambda h: T.tanh(T.dot(h, U)), outputs_info=h0, n_steps=3)
        return sg.grad(hs[-1].sum(), U)

    check_grad(grad_of_scan, rng.normal(size=3), rng.normal(size=(3, 3)))


def test_scan_inside_scan_and_scan_of_scan_outputs():
    rng = np.random.default_rng(5)
    x = T.dmatrix("x")

    def row_cumsum(row):
        return sg.scan(lambda v, acc: acc + v, sequences=row,
                       outputs_info=T.constant(0.0, dtype="float64"))[0]

    nested, _ = sg.scan(row_cumsum, sequences=x)
    second, _ = sg.scan(lambda r, acc: acc + r, sequences=nested,
                        outputs_info=T.zeros((x.shape[1],), dtype="float64"))
    f = sg.function([x], [nested, second], mode="numpy")
    xv = rng.normal(size=(3, 4))
    a, b = f(xv)
    np.testing.assert_allclose(a, np.cumsum(xv, axis=1))
    np.testing.assert_allclose(b, np.cumsum(np.cumsum(xv, axis=1), axis=0))
    check_grad(lambda m: sg.scan(row_cumsum, sequences=T.tanh(m))[0] ** 2, xv)


def test_ten_thousand_steps_without_recursion_errors():
    s = T.dvector("s")
    hs, _ = sg.scan(lambda x, h: h * 0.5 + x, sequences=s,
                    outputs_info=T.constant(0.0, dtype="float64"))
    f = sg.function([s], [hs[-1], sg.grad(hs[-1], s)], mode="numpy")
    last, g = f(np.ones(10_000))
    assert last == pytest.approx(2.0)
    np.testing.assert_allclose(g[-3:], [0.25, 0.5, 1.0])
    assert g[0] == 0.0  # 0.5 ** 9999 underflows


def test_errors_taps_lengths_and_types():
    x = T.dmatrix("x")
    with pytest.raises(NotImplementedError, match="taps"):
        sg.scan(lambda a, b: a, sequences=x, outputs_info={"initial": x[0], "taps": [-2]})
    with pytest.raises(NotImplementedError, match="taps"):
        sg.scan(lambda a: a, sequences={"input": x, "taps": [-1]})
    with pytest.raises(sg.GraphError, match="initial state"):
        sg.scan(lambda a, h: T.cast(a, "float32"), sequences=x, outputs_info=x[0])
    with pytest.raises(sg.GraphError, match="give sequences or n_steps"):
        sg.scan(lambda h: h, outputs_info=x)
    y = T.dmatrix("y")
    out, _ = sg.scan(lambda a, b: a + b, sequences=[x, y])
    f = sg.function([x, y], out, mode="numpy")
    with pytest.raises(sg.ShapeError, match="differ in length"):
        f(np.ones((3, 2)), np.ones((4, 2)))


def test_infer_shape_of_scan_outputs():
    xs, h0 = T.dtensor3("xs"), T.dmatrix("h0")
    (hs, ys), _ = sg.scan(lambda x, h: [h + x.sum(), x * 2], sequences=xs,
                          outputs_info=[h0, None])
    node = hs.owner
    shapes = node.op.infer_shape(node, [tuple(v.shape) for v in node.inputs])
    f = sg.function([xs, h0], [T.stack(list(s)) for s in shapes] + [hs, ys], mode="numpy",
                    on_unused_input="ignore")
    s_h, s_y, hv, yv = f(np.ones((5, 2, 3)), np.ones((2, 1)))
    assert tuple(s_h) == hv.shape == (5, 2, 1)
    assert tuple(s_y) == yv.shape == (5, 2, 3)


@pytest.mark.parametrize("mode", ["numpy", "numba"])
def test_zero_steps_give_empty_outputs_of_the_right_shape_and_gradients(mode):
    """A loop over an empty sequence: the stacked outputs keep their trailing shape (from
    the step's shape inference) and the gradients are zero, or pass straight through."""
    xs, h0, U = T.dtensor3("xs"), T.dmatrix("h0"), T.dmatrix("U")
    (hs, ys), _ = sg.scan(lambda x, h: [T.tanh(x + T.dot(h, U)), T.dot(h, U)[:, :2]],
                          sequences=xs, outputs_info=[h0, None])
    cost = (hs ** 2).sum() + ys.sum() + (h0 ** 2).sum()
    f = sg.function([xs, h0, U], [hs, ys, *sg.grad(cost, [U, xs, h0])], mode=mode)
    h0_value = np.arange(6.0).reshape(2, 3)
    got_hs, got_ys, g_u, g_xs, g_h0 = f(np.zeros((0, 2, 3)), h0_value, np.eye(3))
    assert got_hs.shape == (0, 2, 3) and got_ys.shape == (0, 2, 2)
    np.testing.assert_array_equal(g_u, np.zeros((3, 3)))
    assert g_xs.shape == (0, 2, 3)
    np.testing.assert_array_equal(g_h0, 2 * h0_value)
