"""Indexing: values against numpy, gradients against central differences, shapes, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symgraph as sg
import symgraph.tensor as T
from symgraph.ops.subtensor import (
    AdvancedIncSubtensor1,
    AdvancedSubtensor,
    AdvancedSubtensor1,
    IncSubtensor,
    Subtensor,
    take_range,
)
from symgraph.shape_inference import infer_shapes
from symgraph.testing import check_grads

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
RNG = np.random.default_rng(0)


def run(inputs, outputs, *values):
    return sg.function(inputs, outputs, mode="numpy", on_unused_input="ignore")(*values)


def check_grad(inputs, cost, values, wrt_positions, atol=None):
    """``sg.grad`` of ``cost`` against central differences (``symgraph.testing``), for
    each listed input."""
    check_grads(cost, wrt=[inputs[k] for k in wrt_positions], at=dict(zip(inputs, values)),
                atol=atol)


def weights(shape) -> np.ndarray:
    """A fixed random cotangent, so that sum(w * out) checks every output element."""
    return RNG.standard_normal(shape)


def inferred_shape(out, inputs, values) -> tuple:
    """Shape of ``out`` computed from each node's infer_shape, evaluated numerically."""
    (dims,) = infer_shapes([out], inputs, [tuple(v.shape) for v in inputs])
    return eval_dims(dims, inputs, values)


def eval_dims(dims, inputs, values) -> tuple:
    if not dims:
        return ()
    f = sg.function(inputs, list(dims), mode="numpy", on_unused_input="ignore")
    return tuple(int(d) for d in f(*values))


# ---- basic indexing: hypothesis against numpy -----------------------------------------

@st.composite
def basic_keys(draw):
    """A shape and a basic key for it: ints, slices (negative bounds and steps), None, ...;
    each int or slice bound is static or symbolic."""
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=3)))
    use_ellipsis = draw(st.booleans())
    n_front = draw(st.integers(0, len(shape)))
    n_back = draw(st.integers(0, len(shape) - n_front)) if use_ellipsis else 0

    def item(n):
        if draw(st.booleans()):
            return [None] * draw(st.integers(0, 1)) + [draw(st.integers(-n, n - 1))]
        bound = st.none() | st.integers(-n - 2, n + 2)
        step = st.none() | st.sampled_from([1, 2, 3, -1, -2])
        return [slice(draw(bound), draw(bound), draw(step))] + [None] * draw(st.integers(0, 1))

    items = [k for n in shape[:n_front] for k in item(n)]
    if use_ellipsis:
        items.append(Ellipsis)
        items += [k for n in shape[len(shape) - n_back:] for k in item(n)]
    symbolic = draw(st.lists(st.booleans(), min_size=3 * len(items), max_size=3 * len(items)))
    return shape, tuple(items), symbolic


def symbolize(key, flags):
    """Replace some ints in ``key`` by int64 scalars; returns (key, variables, values)."""
    flags, variables, values = iter(flags), [], []

    def part(p):
        if isinstance(p, int) and next(flags):
            v = T.lscalar(f"k{len(variables)}")
            variables.append(v)
            values.append(p)
            return v
        return p

    out = []
    for item in key:
        if isinstance(item, slice):
            out.append(slice(part(item.start), part(item.stop), part(item.step)))
        else:
            out.append(part(item) if isinstance(item, int) else item)
    return tuple(out), variables, values


@SETTINGS
@given(basic_keys())
def test_basic_indexing_matches_numpy(case):
    shape, key, flags = case
    xv = RNG.standard_normal(shape)
    x = T.tensor("float64", shape=(None,) * len(shape), name="x")
    x_static = T.tensor("float64", shape=shape, name="xs")
    sym_key, variables, values = symbolize(key, flags)
    expected = xv[key]
    for var in (x, x_static):
        out = var[sym_key]
        got = run([var, *variables], out, xv, *values)
        np.testing.assert_array_equal(got, expected)
        assert got.shape == expected.shape
        assert all(s is None or s == e for s, e in zip(out.type.shape, expected.shape))
        assert inferred_shape(out, [var, *variables], [xv, *values]) == expected.shape
    # fully static key on a fully static input: the static shape is exact
    assert x_static[key].type.shape == expected.shape


@SETTINGS
@given(basic_keys())
def test_basic_indexing_gradient(case):
    shape, key, flags = case
    xv = RNG.standard_normal(shape)
    x = T.tensor("float64", shape=(None,) * len(shape), name="x")
    sym_key, variables, values = symbolize(key, flags)
    w = weights(xv[key].shape)
    cost = (x[sym_key] * w).sum()
    gx = run([x, *variables], sg.grad(cost, x), xv, *values)
    expected = np.zeros_like(xv)
    expected[key] += w
    np.testing.assert_allclose(gx, expected)


def test_result_is_a_copy_not_a_view():
    x = T.dvector("x")
    xv = np.arange(4.0)
    out = run([x], x[1:], xv)
    out[0] = 99.0
    assert xv[1] == 1.0 and not np.shares_memory(out, xv)


def test_shape_vector_indexing():
    x = T.dmatrix("x")
    assert run([x], [x.shape[0], x.shape[-1]], np.zeros((2, 5))) == [2, 5]
    v = T.lvector("v")
    assert run([v], v[-2], [4, 5, 6]) == 5


def test_trivial_keys_copy_and_can_be_set():
    x = T.dmatrix("x")
    xv = RNG.standard_normal((2, 3))
    for out in (x[()], x[...], x[:, :], x[:]):
        assert out.owner.op == Subtensor(()) and out.type == x.type
        np.testing.assert_array_equal(run([x], out, xv), xv)
    np.testing.assert_array_equal(run([x], T.set_subtensor(x[:], 2.0), xv), np.full((2, 3), 2.0))
    s = T.dscalar("s")
    assert run([s], s[()], 1.5) == 1.5


def test_static_shapes():
    x = T.dmatrix("x", shape=(6, 4))
    assert x[1:].type.shape == (5, 4)
    assert x[::-2, 1].type.shape == (3,)
    assert x[None, :, None].type.shape == (1, 6, 1, 4)
    assert x[:T.lscalar()].type.shape == (None, 4)
    assert x[::-1].type.shape == (6, 4)


# ---- symbolic slice lengths (infer_shape) -----------------------------------------------

@SETTINGS
@given(st.integers(0, 6), st.none() | st.integers(-8, 8), st.none() | st.integers(-8, 8),
       st.none() | st.sampled_from([1, 2, 3, -1, -2, -3]), st.booleans())
def test_infer_shape_of_symbolic_slices(n, start, stop, step, symbolic_step):
    x = T.dvector("x")
    parts = [T.lscalar(name) if p is not None else None
             for p, name in ((start, "a"), (stop, "b"), (step, "c"))]
    if not symbolic_step and step is not None:
        parts[2] = step
    out = x[slice(*parts)]
    variables = [p for p in parts if isinstance(p, sg.Variable)]
    values = [v for p, v in zip(parts, (start, stop, step)) if isinstance(p, sg.Variable)]
    xv = np.zeros(n)
    assert inferred_shape(out, [x, *variables], [xv, *values]) == xv[start:stop:step].shape


def test_infer_shape_non_square():
    x = T.dtensor3("x")
    i = T.lscalar("i")
    xv = RNG.standard_normal((2, 7, 5))
    for out in (x[1], x[:, 2:i], x[None, -1, ::-2], x[..., i], x[:, :, None]):
        node = out.owner
        (dims,) = node.op.infer_shape(node, [tuple(v.shape) for v in node.inputs])
        f = sg.function([x, i], [T.stack([T.cast(d, "int64") for d in dims]), out],
                        mode="numpy", on_unused_input="ignore")
        inferred, actual = f(xv, 4)
        assert tuple(inferred) == actual.shape


# ---- integer-array indexing -----------------------------------------------------------------

@SETTINGS
@given(st.integers(1, 5), st.integers(1, 4),
       st.lists(st.integers(0, 100), min_size=0, max_size=6), st.sampled_from([1, 2]))
def test_embedding_lookup(rows, cols, raw, rank):
    idx_v = np.array([r % rows - (rows if r % 3 == 0 else 0) for r in raw], dtype="int64")
    if rank == 2:
        idx_v = np.concatenate([idx_v, idx_v]).reshape(2, -1)
    W = T.dmatrix("W")
    idx = T.lmatrix("idx") if rank == 2 else T.lvector("idx")
    Wv = RNG.standard_normal((rows, cols))
    out = W[idx]
    assert isinstance(out.owner.op, AdvancedSubtensor1)
    np.testing.assert_array_equal(run([W, idx], out, Wv, idx_v), Wv[idx_v])
    w = weights(idx_v.shape + (cols,))
    gW = run([W, idx], sg.grad((out * w).sum(), W), Wv, idx_v)
    expected = np.zeros_like(Wv)
    np.add.at(expected, idx_v, w)
    np.testing.assert_allclose(gW, expected)
    assert inferred_shape(out, [W, idx], [Wv, idx_v]) == Wv[idx_v].shape


def test_embedding_gradient_accumulates_repeated_indices():
    W = T.dmatrix("W")
    idx = T.lvector("idx")
    Wv = RNG.standard_normal((4, 3))
    idx_v = np.array([2, 0, 2, 2, -2])
    gW = run([W, idx], sg.grad(W[idx].sum(), W), Wv, idx_v)
    np.testing.assert_allclose(gW[:, 0], [1.0, 0.0, 4.0, 0.0])
    check_grad([W, idx], (W[idx] ** 2 * weights((5, 3))).sum(), [Wv, idx_v], [0])


def test_constant_index_arrays_and_lists():
    W = T.dmatrix("W")
    Wv = RNG.standard_normal((5, 2))
    np.testing.assert_array_equal(run([W], W[[4, 0, 4]], Wv), Wv[[4, 0, 4]])
    np.testing.assert_array_equal(run([W], W[np.array([[1], [3]])], Wv), Wv[[[1], [3]]])
    assert run([W], W[[]], Wv).shape == (0, 2)


def test_arange_pair_indexing_and_gradient():
    log_p = T.dmatrix("log_p")
    y = T.lvector("y")
    picked = log_p[T.arange(y.shape[0]), y]
    assert isinstance(picked.owner.op, AdvancedSubtensor)
    pv = RNG.standard_normal((4, 3))
    yv = np.array([2, 0, 2, 1])
    np.testing.assert_allclose(run([log_p, y], picked, pv, yv), pv[np.arange(4), yv])
    cost = -picked.mean()
    g = run([log_p, y], sg.grad(cost, log_p), pv, yv)
    expected = np.zeros_like(pv)
    expected[np.arange(4), yv] = -0.25
    np.testing.assert_allclose(g, expected)
    check_grad([log_p, y], (picked ** 3).sum(), [pv, yv], [0])
    assert inferred_shape(picked, [log_p, y], [pv, yv]) == (4,)


def test_index_pair_with_repeats_accumulates():
    x = T.dtensor3("x")
    i, j = T.lvector("i"), T.lvector("j")
    xv = RNG.standard_normal((3, 2, 4))
    iv, jv = np.array([0, 0, 2, -1]), np.array([1, 1, 0, 0])
    out = x[i, j]
    np.testing.assert_array_equal(run([x, i, j], out, xv, iv, jv), xv[iv, jv])
    w = weights((4, 4))
    expected = np.zeros_like(xv)
    np.add.at(expected, (iv, jv), w)
    np.testing.assert_allclose(run([x, i, j], sg.grad((out * w).sum(), x), xv, iv, jv),
                               expected)


@pytest.mark.parametrize("key", [
    lambda idx: (idx, slice(1, None)), lambda idx: (idx, -1), lambda idx: (idx, None),
    lambda idx: (idx, Ellipsis, 0), lambda idx: (idx, slice(None)), lambda idx: (idx, ...),
])
def test_array_index_followed_by_basic_items(key):
    W = T.dtensor3("W")
    idx = T.lvector("idx")
    Wv = RNG.standard_normal((4, 3, 5))
    idx_v = np.array([3, 0, 3])
    out = W[key(idx)]
    expected = Wv[key(idx_v)]
    np.testing.assert_array_equal(run([W, idx], out, Wv, idx_v), expected)
    w = weights(expected.shape)
    check_grad([W, idx], (out * w).sum(), [Wv, idx_v], [0])


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_take_along_any_axis(axis):
    x = T.dtensor3("x")
    idx = T.lmatrix("idx")
    xv = RNG.standard_normal((3, 4, 5))
    idx_v = np.array([[0, 2, 2], [1, -1, 0]])
    out = T.take(x, idx, axis=axis)
    np.testing.assert_array_equal(run([x, idx], out, xv, idx_v), np.take(xv, idx_v, axis))
    check_grad([x, idx], (out * weights(np.take(xv, idx_v, axis).shape)).sum(),
               [xv, idx_v], [0])


def test_take_range():
    x = T.dmatrix("x")
    a, b = T.lscalar("a"), T.lscalar("b")
    xv = RNG.standard_normal((3, 6))
    np.testing.assert_array_equal(run([x, a, b], take_range(x, 1, a, b), xv, 1, 4),
                                  xv[:, 1:4])
    joined = T.concatenate([x, x[:, :2]], axis=1)
    check_grad([x], (joined * weights((3, 8))).sum(), [xv], [0])


# ---- set_subtensor / inc_subtensor -------------------------------------------------------

SET_INC_CASES = [
    # (key on a (4, 5) x, y shape)
    ((slice(1, 3), 2), (2,)),
    ((slice(None, None, -2),), (2, 5)),
    ((slice(None, None, -2),), (1, 5)),  # broadcast along axis 0 (static 1)
    ((-1,), ()),
    ((None, 2, slice(1, None)), (1, 4)),
]


@pytest.mark.parametrize("key, y_shape", SET_INC_CASES)
@pytest.mark.parametrize("mode", ["set", "inc"])
def test_set_inc_subtensor_values_and_gradients(key, y_shape, mode):
    x = T.dmatrix("x")
    y = T.tensor("float64", shape=tuple(1 if s == 1 else None for s in y_shape), name="y")
    xv, yv = RNG.standard_normal((4, 5)), RNG.standard_normal(y_shape)
    fn = T.set_subtensor if mode == "set" else T.inc_subtensor
    out = fn(x[key], y)
    assert isinstance(out.owner.op, IncSubtensor)
    expected = xv.copy()
    if mode == "set":
        expected[key] = yv
    else:
        expected[key] += yv
    np.testing.assert_allclose(run([x, y], out, xv, yv), expected)
    check_grad([x, y], (T.tanh(out) * weights((4, 5))).sum(), [xv, yv], [0, 1])
    assert inferred_shape(out, [x, y], [xv, yv]) == (4, 5)


@pytest.mark.parametrize("mode", ["set", "inc"])
def test_advanced_set_inc_subtensor(mode):
    W = T.dmatrix("W")
    idx = T.lvector("idx")
    y = T.dmatrix("y")
    Wv, idx_v, yv = RNG.standard_normal((4, 3)), np.array([1, 3, 1]), RNG.standard_normal((3, 3))
    fn = T.set_subtensor if mode == "set" else T.inc_subtensor
    out = fn(W[idx], y)
    expected = Wv.copy()
    if mode == "set":
        expected[idx_v] = yv
    else:
        assert isinstance(out.owner.op, AdvancedIncSubtensor1)
        np.add.at(expected, idx_v, yv)
    np.testing.assert_allclose(run([W, idx, y], out, Wv, idx_v, yv), expected)
    check_idx = np.array([1, 3, 0])  # no repeats: "last write wins" has a unique gradient
    check_grad([W, idx, y], (T.tanh(out) * weights((4, 3))).sum(), [Wv, check_idx, yv],
               [0, 2])


@pytest.mark.parametrize("mode", ["set", "inc"])
def test_index_pair_set_inc(mode):
    x = T.dmatrix("x")
    i, j = T.lvector("i"), T.lvector("j")
    y = T.dvector("y")
    xv, yv = RNG.standard_normal((3, 4)), RNG.standard_normal(3)
    iv, jv = np.array([0, 2, 1]), np.array([3, 3, 0])
    fn = T.set_subtensor if mode == "set" else T.inc_subtensor
    out = fn(x[i, j], y)
    expected = xv.copy()
    if mode == "set":
        expected[iv, jv] = yv
    else:
        np.add.at(expected, (iv, jv), yv)
    np.testing.assert_allclose(run([x, i, j, y], out, xv, iv, jv, yv), expected)
    check_grad([x, i, j, y], (T.tanh(out) * weights((3, 4))).sum(), [xv, iv, jv, yv], [0, 3])


def test_grad_of_grad_through_subtensor():
    x = T.dvector("x")
    v = T.dvector("v")
    xv, vv = RNG.standard_normal(5), RNG.standard_normal(5)
    cost = (x[1:] ** 3).sum() + (x[::-2] * x[0]).sum()
    gx = sg.grad(cost, x)
    hv = sg.grad((gx * v).sum(), x)  # Hessian-vector product
    grad_fn = sg.function([x], gx, mode="numpy")
    numeric = (grad_fn(xv + 1e-6 * vv) - grad_fn(xv - 1e-6 * vv)) / 2e-6
    np.testing.assert_allclose(run([x, v], hv, xv, vv), numeric, atol=1e-5)


def test_grad_of_grad_through_set_subtensor_and_gather():
    x = T.dmatrix("x")
    idx = T.lvector("idx")
    xv, idx_v = RNG.standard_normal((3, 2)), np.array([2, 2, 0])
    z = T.set_subtensor(x[1:], x[1:] ** 2)
    cost = (z[idx] ** 3).sum()
    gx = sg.grad(cost, x)
    check_grad([x, idx], (gx ** 2).sum(), [xv, idx_v], [0], atol=1e-5)


# ---- error messages ---------------------------------------------------------------------------

def test_error_static_index_out_of_range():
    x = T.dmatrix("x", shape=(3, 4))
    with pytest.raises(IndexError, match=r"index 4 is out of range for axis 1 of length 4.*'x'"):
        x[0, 4]
    with pytest.raises(IndexError, match="index -4 is out of range for axis 0 of length 3"):
        x[-4]
    with pytest.raises(IndexError, match="index 3 is out of range for axis 0 of length 3"):
        x[[0, 3]]


def test_error_float_index_names_the_variable():
    x = T.dmatrix("x")
    f = T.dscalar("f")
    with pytest.raises(TypeError, match=r"must be an integer, got 'f' \(float64.*made at "
                                        r".*test_subtensor.py"):
        x[f]
    with pytest.raises(TypeError, match=r"'fv'.*made at"):
        x[T.dvector("fv")]
    with pytest.raises(TypeError, match="must be an integer"):
        x[1.5]
    with pytest.raises(TypeError, match="slice bound must be an integer"):
        x[: T.dscalar("g")]


def test_error_boolean_mask():
    x = T.dvector("x")
    with pytest.raises(TypeError, match="boolean indexing is not supported; use T.switch"):
        x[x > 0]
    with pytest.raises(TypeError, match="boolean indexing is not supported"):
        x[np.array([True, False])]


def test_error_too_many_indices():
    x = T.dmatrix("x")
    with pytest.raises(sg.ShapeError, match="too many indices: 3 indices for the 2-d 'x'"):
        x[0, 1, 2]
    with pytest.raises(sg.ShapeError, match="too many indices"):
        x[T.lvector(), 0, 1]
    with pytest.raises(IndexError, match="single ellipsis"):
        x[..., 0, ...]


def test_error_array_index_not_leading():
    x = T.dmatrix("x")
    with pytest.raises(IndexError, match="leading axes only.*take"):
        x[:, T.lvector("i")]


def test_error_run_time_index_out_of_range_names_the_creation_site():
    x = T.dmatrix("x")
    i = T.lscalar("i")
    out = x[1:, i]  # the line the message must point to
    f = sg.function([x, i], out, mode="numpy")
    with pytest.raises(IndexError) as info:
        f(np.zeros((3, 2)), 2)
    message = str(info.value)
    assert isinstance(info.value, sg.ShapeError)
    assert "index 2 is out of range for axis 1 of length 2" in message
    assert f"{out.creation}" in message and "test_subtensor.py" in message


def test_error_run_time_array_index_out_of_range():
    W = T.dmatrix("W")
    idx = T.lvector("idx")
    out = W[idx]
    f = sg.function([W, idx], out, mode="numpy")
    with pytest.raises(sg.ShapeError, match=r"index 7 is out of range for axis 0 of length 4 "
                                            r"\(at position \(1,\)"):
        f(np.zeros((4, 2)), [0, 7])
    g = sg.function([W, idx], sg.grad(out.sum(), W), mode="numpy")
    with pytest.raises(IndexError, match=out.creation.replace(".", r"\.")):
        g(np.zeros((4, 2)), [-5])


def test_error_set_subtensor_needs_an_indexing_result():
    x = T.dmatrix("x")
    with pytest.raises(TypeError, match="result of an indexing expression"):
        T.set_subtensor(x, 1.0)
    with pytest.raises(sg.ShapeError, match="does not fit the indexed region"):
        T.set_subtensor(T.dmatrix(shape=(4, 3))[1:], T.dmatrix(shape=(2, 3)))
    with pytest.raises(TypeError, match="not supported here"):
        T.set_subtensor(x[T.lvector(), 1:], 0.0)


def test_error_run_time_value_does_not_fit_region():
    x, y = T.dvector("x"), T.dvector("y")
    f = sg.function([x, y], T.inc_subtensor(x[1:], y), mode="numpy")
    with pytest.raises(sg.ShapeError, match=r"shape \(1,\) does not fit.*region of shape \(3,\)"):
        f(np.zeros(4), np.zeros(1))


def test_ops_print_their_keys():
    x = T.dmatrix("x")
    i = T.lscalar("i")
    assert str(x[1:i, ::-1].owner.op) == "Subtensor{1:?, ::-1}"
    assert str(T.set_subtensor(x[0], 1.0).owner.op) == "IncSubtensor{0, set}"
    assert Subtensor((0,)) == Subtensor((0,)) and hash(Subtensor((0,))) == hash(Subtensor((0,)))
