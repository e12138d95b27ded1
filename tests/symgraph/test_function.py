"""function(): outputs, updates semantics, givens, shared values, input validation and
compile-time errors (asserting on message text)."""

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T


def test_single_output_gives_array_and_list_gives_list():
    x = T.dvector("x")
    f1 = sg.function([x], x * 2, mode="numpy")
    f2 = sg.function([x], [x * 2], mode="numpy")
    assert isinstance(f1(np.ones(2)), np.ndarray)
    out = f2(np.ones(2))
    assert isinstance(out, list) and len(out) == 1


def test_updates_use_values_from_before_the_call_swap():
    a = sg.shared(np.array([1.0, 2.0]), name="a")
    b = sg.shared(np.array([3.0, 4.0]), name="b")
    swap = sg.function([], [a + b], updates=[(a, b), (b, a)], mode="numpy")
    (s,) = swap()
    np.testing.assert_array_equal(s, [4.0, 6.0])
    np.testing.assert_array_equal(a.get_value(), [3.0, 4.0])
    np.testing.assert_array_equal(b.get_value(), [1.0, 2.0])


def test_shared_values_persist_and_sgd_updates_train():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3))
    w_true = np.array([1.0, -2.0, 0.5])
    y = X @ w_true
    w = sg.shared(np.zeros(3), name="w")
    x_v, y_v = T.dmatrix("x"), T.dvector("y")
    cost = ((T.dot(x_v, w) - y_v) ** 2).mean()
    step = sg.function([x_v, y_v], cost, updates={w: w - 0.1 * sg.grad(cost, w)}, mode="numpy")
    losses = [float(step(X, y)) for _ in range(200)]
    assert losses[-1] < 1e-6 < losses[0]
    np.testing.assert_allclose(w.get_value(), w_true, atol=1e-3)


def test_givens_substitute_variables():
    x, y = T.dvector("x"), T.dvector("y")
    data = sg.shared(np.array([1.0, 2.0, 3.0]), name="data")
    f = sg.function([y], (x * y).sum(), givens=[(x, data * 2)], mode="numpy")
    assert f(np.ones(3)) == pytest.approx(12.0)
    idx = T.lscalar("idx")
    rows = sg.shared(np.arange(12.0).reshape(4, 3), name="rows")
    g = sg.function([idx], x.sum(), givens={x: rows[idx]}, mode="numpy")
    assert g(2) == pytest.approx(6 + 7 + 8)


def test_inputs_by_name_and_errors_naming_the_input():
    x = T.dmatrix("x")
    f = sg.function([x], x.sum(), mode="numpy")
    assert f(x=np.ones((2, 2))) == 4
    with pytest.raises(sg.InputError, match=r"input 'x' made at .*test_function.py.*2-d"):
        f(np.ones(3))
    with pytest.raises(sg.InputError, match="expected dtype float64, got complex128"):
        f(np.ones((2, 2), dtype=complex))
    xf = T.fmatrix("xf")
    g = sg.function([xf], xf.sum(), mode="numpy")
    with pytest.raises(sg.InputError, match=r"'xf'.*expected dtype float32, got float64 "
                                            r"\(cannot be cast safely"):
        g(np.ones((2, 2)))
    assert g([[1.5, 2.0]]) == pytest.approx(3.5)  # Python lists convert like Theano
    s = T.tensor("float64", (None, 3), name="s")
    h = sg.function([s], s.sum(), mode="numpy")
    with pytest.raises(sg.InputError, match=r"expected shape \(\?, 3\), got \(2, 4\)"):
        h(np.ones((2, 4)))
    with pytest.raises(sg.InputError, match="missing value for input"):
        f()
    with pytest.raises(sg.InputError, match="no input named 'y'"):
        f(y=1)


def test_compile_time_errors():
    x, y = T.dvector("x"), T.dvector("y")
    w = sg.shared(np.zeros(3), name="w")
    with pytest.raises(sg.GraphError, match=r"missing input 'y'.*test_function.py"):
        sg.function([x], x + y, mode="numpy")
    with pytest.raises(sg.GraphError, match="listed twice"):
        sg.function([x, x], x, mode="numpy")
    with pytest.raises(sg.GraphError, match="only target shared variables"):
        sg.function([x], x, updates=[(y, x)], mode="numpy", on_unused_input="ignore")
    with pytest.raises(sg.GraphError, match=r"update of 'w'.*float32.*keep dtype float64"):
        sg.function([x], x, updates=[(w, T.cast(x, "float32"))], mode="numpy")
    with pytest.raises(sg.GraphError, match="rank 1"):
        sg.function([x], x, updates=[(w, x.sum())], mode="numpy")
    with pytest.raises(sg.GraphError, match="updated twice"):
        sg.function([x], x, updates=[(w, x), (w, x)], mode="numpy")
    with pytest.raises(sg.GraphError, match="not used by any output"):
        sg.function([x, y], x * 2, mode="numpy")
    with pytest.raises(sg.GraphError, match="inputs must be root variables"):
        sg.function([x * 2], x, mode="numpy")


def test_shared_variable_set_value_checks_and_copies():
    w = sg.shared(np.zeros((2, 2)), name="w")
    v = w.get_value()
    v[0, 0] = 5
    assert w.get_value()[0, 0] == 0
    w.set_value(np.ones((3, 3)))  # shape may change
    with pytest.raises(sg.InputError, match="expected a 2-d array"):
        w.set_value(np.ones(3))


def test_outputs_do_not_alias_inputs_or_shared_storage():
    x = T.dvector("x")
    w = sg.shared(np.ones(2), name="w")
    f = sg.function([x], [x, w], mode="numpy")
    xv = np.zeros(2)
    a, b = f(xv)
    a[0] = b[0] = 9
    assert xv[0] == 0 and w.get_value()[0] == 1


def test_config_floatX_controls_default_dtypes(monkeypatch):
    old = sg.config.floatX
    try:
        sg.config.floatX = "float64"
        assert T.matrix().dtype == "float64" and T.constant(1.5).dtype == "float64"
        sg.config.floatX = "float32"
        assert T.matrix().dtype == "float32" and T.zeros((2,)).dtype == "float32"
        with pytest.raises(ValueError, match="floatX"):
            sg.config.floatX = "float16x"
    finally:
        sg.config.floatX = old
