"""The numba backend against the numpy reference, op by op: values, dtypes and shapes
must agree (hypothesis over shapes, broadcast patterns, dtypes and values).

Compiling is the slow part, so each graph is compiled once (``compiled`` caches the pair
of functions by a key) and hypothesis only varies the values and run-time shapes.
"""

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import symgraph as sg
import symgraph.tensor as T
from symgraph.backends.numba.fusion import MAX_STORED
from tests.helpers import assert_same as same_values

_COMPILED: dict = {}


def compiled(key, build):
    """``(numba_fn, numpy_fn)`` for the graph ``build() -> (inputs, outputs)``, once per
    key."""
    if key not in _COMPILED:
        inputs, outputs = build()
        _COMPILED[key] = tuple(sg.function(inputs, outputs, mode=mode,
                                           on_unused_input="ignore")
                               for mode in ("numba", "numpy"))
    return _COMPILED[key]


def assert_same(got, want, rtol=2e-6, atol=1e-6, what=""):
    """``tests.helpers.assert_same`` with the CPU backend's tighter tolerance."""
    same_values(got, want, rtol=rtol, atol=atol, what=what)


def run_both(fns, *values, **tol):
    numba_fn, numpy_fn = fns
    assert_same(numba_fn(*values), numpy_fn(*values), **tol)


def values(shape, dtype, seed, low=-2.0, high=2.0):
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.random(shape) > 0.5
    if np.dtype(dtype).kind in "iu":
        return rng.integers(int(low) - 3, int(high) + 4, shape).astype(dtype)
    return rng.uniform(low, high, shape).astype(dtype)


def sym(pattern, dtype, name):
    """A variable whose static shape has 1 where ``pattern`` says so (broadcastable)."""
    return T.tensor(dtype, tuple(1 if b else None for b in pattern), name=name)


# ---- elementwise -------------------------------------------------------------------------

BINARY_FLOAT = [T.add, T.sub, T.mul, T.true_div, T.maximum, T.minimum, T.lt, T.ge, T.eq,
                lambda a, b: T.switch(T.gt(a, b), a, b), lambda a, b: abs(a) ** T.clip(b, -2, 2)]
# name, static pattern (True: static length 1; None: 0-d), dtype
OPERANDS = [("a", (False, False), "float32"), ("b", (False, False), "float32"),
            ("d", (False, False), "float64"), ("i", (False, False), "int32"),
            ("l", (False, False), "int64"), ("m", (False, False), "bool"),
            ("row", (True, False), "float32"), ("col", (False, True), "int64"),
            ("s", None, "float64")]


def _binary_graph():
    """Binary ops on operands of mixed dtypes and broadcast patterns (full, a row, a
    column, a 0-d value): the outputs have the full pattern and make few loops (at most
    ``MAX_STORED`` outputs each), plus one over the row for ``clip(row)``."""
    v = {name: (T.tensor(dt, (), name=name) if pat is None else sym(pat, dt, name))
         for name, pat, dt in OPERANDS}
    a, b, row = v["a"], v["b"], v["row"]
    outs = [op(a, b) for op in BINARY_FLOAT] + [op(a, row) for op in BINARY_FLOAT[::2]]
    outs += [(a * b + 1.0) / (abs(b) + v["s"]), v["col"] * row, v["col"] + v["l"] * 2]
    for x, y in [("d", "a"), ("i", "a"), ("l", "a"), ("m", "d"), ("i", "col"), ("m", "s")]:
        x, y = v[x], v[y]
        outs += [x * y + 1, T.maximum(x, y), T.lt(x, y), x * 1.5 - y]
    return [v[name] for name, _, _ in OPERANDS], outs


@given(sides=st.tuples(st.integers(1, 4), st.integers(1, 5)), seed=st.integers(0, 99))
def test_binary_fused_broadcast_mixed_dtypes(sides, seed):
    """Fused binary ops with static-1 broadcasting and mixed dtypes."""
    fns = compiled("binary", _binary_graph)
    args = []
    for k, (_, pat, dt) in enumerate(OPERANDS):
        shape = () if pat is None else tuple(1 if b else n for b, n in zip(pat, sides))
        args.append(values(shape, dt, seed + k, 0.5, 2.0))
    run_both(fns, *args, rtol=2e-6, atol=2e-6)
    main = fns[0].__source__.split("\n\n")[0]
    stored = sum(1 for ln in main.splitlines() if "[fused:" in ln)
    calls = len(re.findall(r"sg_call(_as)?\(", main))
    assert calls <= 2 + stored // MAX_STORED  # fused, not one per op


def _join_graph():
    """Joins of one fused loop's outputs along every axis, which the loop stores in
    place (``fusion.absorb_joins``), and joins that must stay: an operand that is also
    returned, a repeated operand, an operand that is a view, a cast operand."""
    x, y, v = T.ftensor3("x"), T.ftensor3("y"), T.fvector("v")
    absorbed = []
    for axis in (0, 1, 2, -2):
        t = T.tanh(x * (axis + 3.0)) * y
        absorbed.append(T.concatenate([t * 2.0, t - x, T.exp(-abs(t))], axis=axis))
    u = T.tanh(v)
    absorbed.append(T.concatenate([u * 2.0, u + 1.0], axis=0))  # a 1-d loop
    row = T.sigmoid(v).dimshuffle("x", 0)  # an axis of static length 1 nothing loops over
    absorbed.append(T.concatenate([row * 3.0, row - 1.0, row * row], axis=0))
    t = x * y + 1.0
    kept = [T.concatenate([t * 2.0, t], axis=1), t,  # ``t`` is also returned
            T.concatenate([t - 1.0, t - 1.0], axis=2),  # repeated
            T.concatenate([T.exp(y), y[:, ::-1]], axis=1),  # a view
            T.concatenate([T.cast(x > 0, "int32"), T.cast(y * 2, "int32")], axis=0)]
    return [x, y, v], absorbed + kept, len(absorbed)


@given(shape=st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 5)),
       seed=st.integers(0, 99))
def test_joins_of_a_loops_outputs_are_stored_in_place(shape, seed):
    fns = compiled("join", lambda: _join_graph()[:2])
    run_both(fns, values(shape, "float32", seed), values(shape, "float32", seed + 1),
             values(shape[-1:], "float32", seed + 2), rtol=2e-6, atol=2e-6)
    main = fns[0].__source__.split("\n\n")[0]
    joins = [ln for ln in main.splitlines() if "= Join{" in ln]
    assert len([ln for ln in joins if "[fused: " in ln]) == _join_graph()[2], main


def _unary_graph(dtype):
    x = T.tensor(dtype, (None, None), name="x")
    pos = abs(x) + 0.5
    outs = [-x, abs(x), T.sgn(x), T.exp(x), T.log(pos), T.log1p(pos), T.expm1(x),
            T.sqrt(pos), T.tanh(x), T.sigmoid(x), T.softplus(x), T.relu(x), T.sin(x),
            T.cos(x), T.floor(x * 3), T.ceil(x * 3), T.round(x * 2), T.cast(x * 3, "int32"),
            T.cast(x, "float64" if dtype == "float32" else "float32"), T.cast(x > 0, dtype),
            T.identity(x), T.sqr(x), T.inv(pos)]
    return [x], outs


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@given(shape=st.tuples(st.integers(1, 5), st.integers(1, 70)), scale=st.sampled_from(
    [1.0, 30.0]), seed=st.integers(0, 99))
def test_unary(dtype, shape, scale, seed):
    """Every unary op; float32 exp/tanh/sigmoid use the vectorisable formulations."""
    fns = compiled(("unary", dtype), lambda: _unary_graph(dtype))
    x = values(shape, dtype, seed, -scale, scale)
    tol = {"rtol": 5e-6, "atol": 1e-6} if dtype == "float32" else {"rtol": 1e-12,
                                                                      "atol": 1e-12}
    run_both(fns, x, **tol)


def test_integer_and_bool_ops():
    def build():
        i, n = T.imatrix("i"), T.lvector("n")
        return [i, n], [i + n, i * n, i // n, i % n, -i, abs(i), i * 2, i / n,
                        T.maximum(i, n), i + 1.5, ~(i > 0), (i > 0) & (i < 3),
                        (i > 0) | (i < -3), T.sgn(i), i ** 2]

    fns = compiled("int", build)
    rng = np.random.default_rng(0)
    run_both(fns, rng.integers(-9, 10, (3, 4)).astype("int32"), np.array([1, -2, 3, 7]))


def test_scalar_graph_and_zero_d_values():
    """0-d inputs, outputs and shared values (numba scalars inside)."""
    def build():
        a, b = T.dscalar("a"), T.lscalar("b")
        return [a, b], [a * b + 1, T.exp(a), T.cast(b, "float32") / 3, a > 1]

    run_both(compiled("scalars", build), np.float64(1.25), np.int64(3))


# ---- reductions, products ------------------------------------------------------------------

def _reduce_graph(dtype):
    x = T.tensor(dtype, (None, None, None), name="x")
    outs = []
    for axis in [None, 1, (0, 2)]:
        outs += [x.sum(axis), x.sum(axis, keepdims=True), x.max(axis), x.min(axis, True),
                 x.mean(axis)]
    outs += [(x * 0.5).prod(0) if dtype == "float32" else x.prod(0), T.argmax(x),
             T.argmax(x, axis=1), T.argmin(x, axis=2, keepdims=True)]
    return [x], outs


@pytest.mark.parametrize("dtype", ["float32", "int64"])
@given(shape=st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 5)),
       seed=st.integers(0, 99))
def test_reductions(dtype, shape, seed):
    fns = compiled(("reduce", dtype), lambda: _reduce_graph(dtype))
    run_both(fns, values(shape, dtype, seed), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@given(m=st.integers(0, 5), n=st.integers(0, 5), seed=st.integers(0, 99))
def test_common_sums_use_the_library_kernels(dtype, m, n, seed):
    """A float matrix's column sums and any float array's total (bias gradients, losses)
    are library kernels, not generated ones; transposed and empty inputs included."""
    def build():
        x = T.tensor(dtype, (None, None), name="x")
        return [x], [x.sum(0), x.T.sum(0), x.sum(0, keepdims=True), x.sum(), x.T.sum(),
                     (x * 2).sum(), x.sum(1)]

    fns = compiled(("library_sums", dtype), build)
    main = fns[0].__source__.split("\n\n")[0]
    assert main.count("sg_call_as(sg_sum_rows,") == 3
    assert main.count("sg_call_as(sg_sum_all,") == 3
    run_both(fns, values((m, n), dtype, seed), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
@given(m=st.integers(1, 5), k=st.integers(0, 6), n=st.integers(1, 5), seed=st.integers(0, 9))
def test_dot(dtype, m, k, n, seed):
    """Matrix, vector and transposed products (float: BLAS, ints: loops)."""
    def build():
        a = T.tensor(dtype, (None, None), name="a")
        b = T.tensor(dtype, (None, None), name="b")
        v = T.tensor(dtype, (None,), name="v")
        outs = [T.dot(a, b), T.dot(b.T, a.T)]
        if dtype != "int64":
            outs += [T.dot(a, v), T.dot(v, b), T.dot(v, v), T.dot(a.T, a)]
        return [a, b, v], outs

    fns = compiled(("dot", dtype), build)
    run_both(fns, values((m, k), dtype, seed), values((k, n), dtype, seed + 1),
             values((k,), dtype, seed + 2), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@given(m=st.integers(0, 5), k=st.integers(0, 6), n=st.integers(1, 5), seed=st.integers(0, 9))
def test_matrix_plus_product_is_one_blas_call(dtype, m, k, n, seed):
    """``c + a @ b`` (either order, transposed operands, ``c`` a broadcast row or column)
    becomes one ``sg_gemm_add`` call when nothing else reads the product; a product read
    twice stays apart from its addition. All agree with the reference, empty sizes
    included."""
    shapes = {"c": "mn", "d": "mn", "e": "mk", "f": "kn", "row": "1n", "column": "m"}
    shapes.update({f"a{j}": "mk" for j in range(4)} | {f"b{j}": "kn" for j in range(4)})

    def build():  # no two products share an operand (merge_gemm would join them)
        x = {name: T.tensor(dtype, tuple(1 if d == "1" else None for d in dims), name=name)
             for name, dims in shapes.items()}
        shared = T.dot(x["a3"], x["b3"])  # read by an addition and a product
        outs = [x["c"] + T.dot(x["a0"], x["b0"]),
                (T.dot(x["c"].T, x["e"]) + x["f"].T).T,
                x["row"] + T.dot(x["a1"] * 2, x["b1"]),
                T.dot(x["a2"], x["b2"]) + x["column"].dimshuffle(0, "x"),
                x["d"] + shared, shared * 2]
        return list(x.values()), outs

    fns = compiled(("gemm_add", dtype), build)
    main = fns[0].__source__.split("\n\n")[0]
    assert main.count("sg_call_as(sg_gemm_add,") == 4
    assert main.count("sg_call_as(sg_gemm,") == 1
    sizes = {"m": m, "k": k, "n": n, "1": 1}
    run_both(fns, *(values(tuple(sizes[d] for d in dims), dtype, seed + j)
                    for j, dims in enumerate(shapes.values())), rtol=1e-5, atol=1e-5)


def test_matrix_plus_product_kernel_layouts_broadcasts_and_in_place():
    """The kernel itself: C and F operands give ``c + a @ b``; a row or column repeats
    only where its flag allows; with ``out`` being ``c`` BLAS accumulates in place;
    mismatched sizes raise."""
    from symgraph.backends.numba.prelude import SGRuntimeError
    from symgraph.backends.numba.products import sg_gemm_add

    a, b, c = (values(shape, "float32", seed) for seed, shape in enumerate([(4, 3), (3, 5),
                                                                          (4, 5)]))
    want, tol = c + a @ b, {"rtol": 1e-5, "atol": 1e-5}
    empty = np.empty((0, 0), np.float32)
    strided = np.zeros((8, 3), np.float32)[::2]  # neither C- nor F-contiguous: copied
    strided[...] = a
    for left in (a, np.asfortranarray(a), strided):
        for right in (b, np.asfortranarray(b)):
            assert_same(sg_gemm_add(left, right, c, False, False, empty), want, **tol)
    assert_same(sg_gemm_add(a, b, c[:1], True, False, empty), c[:1] + a @ b, **tol)
    assert_same(sg_gemm_add(a, b, c[:, :1], False, True, empty), c[:, :1] + a @ b, **tol)
    assert_same(sg_gemm_add(a, b, c[:1, :1], True, True, empty), c[:1, :1] + a @ b, **tol)
    target = c.copy()
    result = sg_gemm_add(a, b, target, False, False, target)
    assert result.ctypes.data == target.ctypes.data
    assert_same(target, want, **tol)
    for bad in [(b, c[:3], True), (b, c[:1], False), (b[:2], c, False)]:
        with pytest.raises(SGRuntimeError):
            sg_gemm_add(a, bad[0], bad[1], bad[2], False, empty)


# ---- shapes, allocation, joins --------------------------------------------------------------

def test_shape_ops():
    def build():
        x, v = T.fmatrix("x"), T.fvector("v")
        x3 = T.ftensor3("x3")
        return [x, v, x3], [
            x.reshape((x.shape[1], -1)), x.flatten(), x.T, x.dimshuffle(1, "x", 0),
            v.dimshuffle("x", 0), x3.dimshuffle(2, 0, 1), x3.dimshuffle(1, "x", 2, 0) * 2,
            T.concatenate([x, 2 * x], axis=0), T.concatenate([x, x, x], axis=1),
            T.stack([v, v * 2]), T.zeros((x.shape[0], 2)), T.ones_like(x), T.alloc(v, 3, 4),
            T.arange(x.shape[0] + 2), T.arange(1.0, 2.0, 0.25), x.shape[1] * x,
            T.zeros_like(v) + v, T.specify_shape(v, (4,)), x3.flatten(2), x3.shape.vector,
            T.alloc(x.sum(keepdims=True), x.shape[1], 3)]  # one element: a library fill

    rng = np.random.default_rng(0)
    fns = compiled("shape", build)
    run_both(fns, rng.random((3, 4)).astype("float32"), rng.random(4).astype("float32"),
             rng.random((2, 3, 4)).astype("float32"))
    assert re.search(r"sg_fill, \d+, _kp, _rt\d+, _e2_float32, \(v\d+\.shape\[1\], "
                     r"np\.int64\(3\)\), v\d+\[0, 0\]\)", fns[0].__source__)


# ---- indexing ------------------------------------------------------------------------------

@given(rows=st.integers(2, 5), cols=st.integers(3, 6), k=st.integers(-2, 1),
       seed=st.integers(0, 99))
def test_basic_indexing_and_inc(rows, cols, k, seed):
    def build():
        x, y, i = T.fmatrix("x"), T.fmatrix("y"), T.lscalar("i")
        return [x, y, i], [
            x[1], x[-1], x[:, 1:3], x[::-1], x[1:, ::2], x[i], x[:, i], x[1, 2],
            x[None, 1], x[i:, :i], x[:, 1:] * 2 + x[:, :-1],
            T.set_subtensor(x[1:], y[:-1]), T.inc_subtensor(x[:, 1], y[:, 0]),
            T.set_subtensor(x[i, i], 5.0), T.inc_subtensor(x[1:3, 1:], 1.0),
            T.inc_subtensor(x[:, i:], y[0, i:])]

    fns = compiled("basic", build)
    run_both(fns, values((rows, cols), "float32", seed),
             values((rows, cols), "float32", seed + 1), np.int64(k))


@given(n=st.integers(1, 6), seed=st.integers(0, 99))
def test_gather_scatter_and_advanced(n, seed):
    """``W[idx]`` (the embedding lookup) and its scatter-add with repeated and negative
    indices, plus integer-array indexing on two axes."""
    def build():
        w, idx, v = T.fmatrix("w"), T.lvector("idx"), T.fvector("v")
        m = T.lmatrix("m")
        return [w, idx, v, m], [
            w[idx], w[m], v[idx], T.inc_subtensor(w[idx], T.ones((idx.shape[0], 3))),
            T.inc_subtensor(w[idx], v[:3]), T.set_subtensor(w[idx], 2.0),
            T.inc_subtensor(w[m], 1.0), w[idx, idx % 3], w[T.arange(idx.shape[0]), 1],
            T.inc_subtensor(w[idx, idx % 3], v[: idx.shape[0]]),
            T.set_subtensor(w[idx, idx % 3], 1.5)]

    rng = np.random.default_rng(seed)
    w = rng.random((7, 3)).astype("float32")
    idx = rng.integers(-7, 7, n)
    fns = compiled("advanced", build)
    run_both(fns, w, idx, rng.random(7).astype("float32"),
             rng.integers(0, 7, (2, n)))


# ---- nnet --------------------------------------------------------------------------------

@given(rows=st.integers(1, 5), classes=st.integers(1, 7), scale=st.sampled_from([1.0, 50.0]),
       seed=st.integers(0, 99))
def test_softmax_and_cross_entropies(rows, classes, scale, seed):
    def build():
        x, t, y = T.fmatrix("x"), T.lvector("t"), T.fmatrix("y")
        x3 = T.ftensor3("x3")
        p = T.nnet.softmax(x)
        ce = T.nnet.categorical_crossentropy(p, t)
        return [x, t, y, x3], [
            p, T.nnet.softmax(x, axis=0), T.nnet.log_softmax(x), ce,
            T.nnet.categorical_crossentropy(p, T.nnet.softmax(y)),
            T.nnet.categorical_crossentropy(p * 1.0, t),
            T.nnet.softmax_cross_entropy_with_logits(x3, T.nnet.softmax(x3)),
            T.nnet.binary_crossentropy(T.nnet.sigmoid(x), 0.25),
            sg.grad(ce.sum(), x), sg.grad(T.nnet.log_softmax(x3).sum() * 2, x3)]

    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((rows, classes)) * scale).astype("float32")
    t = rng.integers(0, classes, rows)
    y = rng.standard_normal((rows, classes)).astype("float32")
    x3 = rng.standard_normal((2, rows, classes)).astype("float32")
    fns = compiled("nnet", build)
    run_both(fns, x, t, y, x3, rtol=2e-5, atol=2e-5)
    # the loss with ids and the softmax its gradient needs share one pass
    assert "sg_xent_ids_softmax" in fns[0].__source__


def test_random_draws_match_the_reference():
    """RandomStreams draws (Philox in object mode) equal the reference's for a seed."""
    def make(mode):
        rs = sg.RandomStreams(7)
        x = T.fmatrix("x")
        out = (x * rs.binomial(x.shape, p=0.5, dtype="float32") + rs.normal((2, 3))
               + rs.uniform())
        return sg.function([x], out, mode=mode)

    f, g = make("numba"), make("numpy")
    x = np.ones((2, 3), "float32")
    first, second = f(x), f(x)
    assert not np.array_equal(first, second)  # the states advance after each call
    assert_same([first, second], [g(x), g(x)])


def test_lengths_added_to_arrays_in_fused_loops():
    """``zeros((n, 4)) + ids.shape[0]``: the length read as a scalar, not as a view of
    the shape vector (the fused loop used to walk into the Shape node and crash)."""
    ids = T.imatrix("ids")
    outputs = [T.zeros((ids.shape[1], 4)) + ids.shape[0],
               ids.shape[0] * T.ones((2,)) + ids[0, 0]]
    value = np.full((2, 3), 5, np.int32)
    got = sg.function([ids], outputs, mode="numba")(value)
    assert_same(got, sg.function([ids], outputs, mode="numpy")(value))
    np.testing.assert_array_equal(got[0], np.full((3, 4), 2.0))
