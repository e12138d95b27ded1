"""Loops whose rows are independent, run as row parts on threads, and products cut into
row parts: the same values and gradients as the numpy reference for any number of parts
(``threads.set_threads`` / ``set_min_rows`` are read at run time, so one compiled function
is run with 1 to 4 parts, down to parts of one row)."""

import contextlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import symgraph as sg
import symgraph.models as M
import symgraph.tensor as T
from symgraph.backends.numba import blas, threads
from symgraph.backends.numba.rows import independent_rows
from symgraph.errors import ShapeError
from symgraph.scan.op import Scan
from tests.symgraph.backends.test_numba_backend import assert_same

PART_SETTINGS = [(1, 16), (2, 1), (3, 2), (4, 1)]  # (threads, min_rows)


@pytest.fixture
def parts():
    """Restores the process's thread settings after a test changes them."""
    before = threads.get_threads()
    yield lambda n, min_rows: (threads.set_threads(n), threads.set_min_rows(min_rows))
    threads.set_threads(before)
    threads.set_min_rows(threads.MIN_ROWS)


@contextlib.contextmanager
def compiling_in_parts(n: int = 2):
    """Loops are generated as part functions only while more than one thread is set."""
    before = threads.get_threads()
    threads.set_threads(n)
    try:
        yield
    finally:
        threads.set_threads(before)


def scans_of(fn) -> list:
    return [n.op for n in fn.runner.fgraph.toposort() if isinstance(n.op, Scan)]


# ---- which loops ------------------------------------------------------------------------

def _loop(step):
    x, h0, w = T.ftensor3("x"), T.fmatrix("h0"), T.fmatrix("w")
    hs, _ = sg.scan(step, sequences=[x], outputs_info=[h0], non_sequences=[w])
    fn = sg.function([x, h0, w], hs, mode="numba", on_unused_input="ignore")
    return scans_of(fn)[0]


def test_recurrent_steps_keep_rows_apart():
    assert independent_rows(_loop(lambda xt, h, w: T.tanh(xt + T.dot(h, w))))
    assert independent_rows(_loop(lambda xt, h, w: T.nnet.softmax(xt + T.dot(h, w))))
    assert independent_rows(_loop(lambda xt, h, w: xt + h.sum(axis=1, keepdims=True)))


def test_rows_gathered_from_a_shared_table_by_each_rows_id_keep_rows_apart():
    def loop(step):
        ids, h0, table = T.imatrix("ids"), T.fmatrix("h0"), T.fmatrix("table")
        hs, _ = sg.scan(step, sequences=[ids], outputs_info=[h0], non_sequences=[table])
        fn = sg.function([ids, h0, table], hs, mode="numba", on_unused_input="ignore")
        return scans_of(fn)[0]

    assert independent_rows(loop(lambda i, h, table: T.tanh(table[i] + h)))
    assert not independent_rows(loop(lambda i, h, table: T.tanh(h[i] + h)))  # rows of a row array


@pytest.mark.parametrize("step", [
    lambda xt, h, w: xt + h.sum(axis=0, keepdims=True),  # a sum over rows
    lambda xt, h, w: xt + T.dot(w, h),  # rows contracted
    lambda xt, h, w: xt + h[0],  # one row read by all
    lambda xt, h, w: xt + h / T.cast(h.shape[0], "float32"),  # the row count in arithmetic
    lambda xt, h, w: xt + h[::-1],  # rows reordered
    lambda xt, h, w: xt + w,  # a non-sequence with rows of its own
])
def test_steps_that_mix_rows_are_not_cut(step):
    assert not independent_rows(_loop(step))


# ---- the recurrent models -------------------------------------------------------------------

_MODELS: dict = {}


def _model(kind: str, masked: bool):
    """``(numba_fn, numpy_fn, n_states)``: a 2-layer model's loss, gradients and final
    states (unmasked: carried states as inputs), compiled once per kind."""
    key = (kind, masked)
    if key not in _MODELS:
        rng = np.random.default_rng(0)
        ids, targets, mask = T.imatrix("ids"), T.imatrix("targets"), T.fmatrix("mask")
        embed = M.Embedding(11, 6, rng, init_scale=0.3, dtype="float32")
        rnn = M.StackedRNN(kind, 6, (5, 4), rng, init_scale=0.3, dtype="float32")
        out = M.LogisticRegression(4, 11, rng, init_scale=0.3, dtype="float32")
        states = [T.fmatrix(f"s{k}") for k in range(len(rnn.state_sizes))]
        hs, finals = rnn(embed(ids), mask if masked else None, None if masked else states)
        cost = M.sequence_cross_entropy(out.logits(hs), targets, mask, normalize="token")
        params = embed.params + rnn.params + out.params
        inputs = [ids, targets, mask] + ([] if masked else states)
        outputs = [cost] + sg.grad(cost, params) + ([] if masked else finals)
        with compiling_in_parts():
            _MODELS[key] = tuple(sg.function(inputs, outputs, mode=m,
                                             on_unused_input="ignore")
                                 for m in ("numba", "numpy")) + (rnn.state_sizes,)
    return _MODELS[key]


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("masked", [True, False])
@given(steps=st.integers(1, 6), batch=st.integers(1, 9), setting=st.sampled_from(PART_SETTINGS),
       seed=st.integers(0, 2**16))
def test_models_in_row_parts_match_the_reference(kind, masked, steps, batch, setting, seed):
    numba_fn, numpy_fn, sizes = _model(kind, masked)
    assert any(independent_rows(op) for op in scans_of(numba_fn))
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 11, (steps, batch)).astype(np.int32)
    targets = rng.integers(0, 11, (steps, batch)).astype(np.int32)
    lengths = rng.integers(1, steps + 1, batch)
    mask = (np.arange(steps)[:, None] < lengths[None, :]).astype(np.float32)
    states = [rng.uniform(-1, 1, (batch, s)).astype(np.float32) for s in sizes]
    args = [ids, targets, mask] + ([] if masked else states)
    before = threads.get_threads()
    try:
        threads.set_threads(setting[0])
        threads.set_min_rows(setting[1])
        got = numba_fn(*args)
    finally:
        threads.set_threads(before)
        threads.set_min_rows(threads.MIN_ROWS)
    assert_same(got, numpy_fn(*args), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("masked", [True, False])
def test_every_training_loop_runs_in_parts(kind, masked):
    """With more than one thread set when compiling (see also the single-thread default
    below): both layers' loops, forwards and backwards, including the lengths of step
    outputs known only from shape inference through the step's own values."""
    numba_fn, _, _ = _model(kind, masked)
    assert numba_fn.__source__.count("sg_run_parts(") == 4
    assert numba_fn.__source__.count("\ndef sg_part_") == 4


def test_with_one_thread_loops_are_compiled_whole():
    x, h0, w = T.ftensor3("x"), T.fmatrix("h0"), T.fmatrix("w")
    hs, _ = sg.scan(lambda xt, h, w: T.tanh(xt + T.dot(h, w)), sequences=[x],
                    outputs_info=[h0], non_sequences=[w])
    with compiling_in_parts(1):
        whole = sg.function([x, h0, w], hs, mode="numba")
    with compiling_in_parts(2):
        in_parts = sg.function([x, h0, w], hs, mode="numba")
    assert "sg_run_parts(" not in whole.__source__
    assert "sg_run_parts(" in in_parts.__source__


# ---- a loop written with sg.scan -------------------------------------------------------------

@pytest.fixture(scope="module")
def rnn_loop():
    """A tanh RNN with a per-step output and a final state, forwards and backwards (the
    backward loop reads its sequence reversed), and the gradients."""
    x, h0, w = T.ftensor3("x"), T.fmatrix("h0"), T.fmatrix("w")

    def step(xt, h, w):
        hn = T.tanh(xt + T.dot(h, w))
        return hn, (hn * hn).sum(axis=1)

    (hs, ys), _ = sg.scan(step, sequences=[x], outputs_info=[h0, None], non_sequences=[w])
    (hb, yb), _ = sg.scan(step, sequences=[x], outputs_info=[h0, None], non_sequences=[w],
                          go_backwards=True)
    cost = (hs * hs).sum() + ys.sum() + hb[-1].sum() + yb[0].sum()
    outs = [hs, ys, hb, yb] + sg.grad(cost, [x, h0, w])
    with compiling_in_parts():
        return [sg.function([x, h0, w], outs, mode=m) for m in ("numba", "numpy")]


@pytest.mark.parametrize("setting", PART_SETTINGS)
@pytest.mark.parametrize("steps,batch", [(5, 8), (1, 3), (4, 1), (3, 17)])
def test_scan_in_parts_forward_backward_and_gradient(rnn_loop, parts, setting, steps, batch):
    parts(*setting)
    rng = np.random.default_rng(steps * batch)
    x = rng.standard_normal((steps, batch, 3)).astype("float32")
    h0 = rng.standard_normal((batch, 3)).astype("float32")
    w = (rng.standard_normal((3, 3)) * 0.5).astype("float32")
    assert_same(rnn_loop[0](x, h0, w), rnn_loop[1](x, h0, w), rtol=1e-5, atol=1e-5)


def test_rows_that_disagree_get_the_reference_error(rnn_loop, parts):
    """A sequence with other rows than the initial state: the reference's error."""
    parts(2, 1)
    x = np.zeros((3, 4, 3), "float32")
    with pytest.raises(ShapeError):
        rnn_loop[0](x, np.zeros((5, 3), "float32"), np.eye(3, dtype="float32"))


def test_zero_steps_in_parts_give_the_initial_state(parts):
    parts(3, 1)
    x, h0, n = T.ftensor3("x"), T.fmatrix("h0"), T.lscalar("n")
    (hs, last), _ = sg.scan(lambda xt, h: [h * 0.5 + xt, h], sequences=[x],
                            outputs_info=[h0, None], n_steps=n)
    f, g = (sg.function([x, h0, n], [hs, last], mode=m) for m in ("numba", "numpy"))
    assert "sg_run_parts(" in f.__source__
    xv = np.ones((4, 6, 2), "float32")
    h0v = np.arange(12, dtype="float32").reshape(6, 2)
    for n_steps in (0, 1, 3):
        assert_same(f(xv, h0v, np.int64(n_steps)), g(xv, h0v, np.int64(n_steps)))


# ---- products in row parts, the BLAS threads -------------------------------------------------

@pytest.mark.parametrize("layouts", ["CC", "FC", "CF", "FF"])
@pytest.mark.parametrize("setting", [(1, 16), (2, 16), (3, 1)])
@pytest.mark.parametrize("shape", [(301, 250, 230), (5000, 4, 70), (64, 40000, 4),
                                   (20, 100, 1000)])  # the last: too few rows for parts
def test_large_products_in_row_parts(parts, layouts, setting, shape):
    """Products of at least ``set_part_products`` multiply-adds are cut into row parts,
    each in tiles or a BLAS call on a pointer offset into C- or F-ordered operands (a
    transposed right operand copied first, or not: the left rows too long for tiles);
    with one thread, the largest go to the BLAS whole."""
    from symgraph.backends.numba.products import LARGE_PRODUCT, sg_gemm, sg_gemm_add

    parts(*setting)
    m, k, n = shape
    assert m * k * n >= threads.PART_PRODUCTS and (m * k * n >= LARGE_PRODUCT) == (m == 301)
    rng = np.random.default_rng(len(layouts))
    a, b = rng.standard_normal((m, k)), rng.standard_normal((k, n))
    c = rng.standard_normal((m, n))
    a_in = a if layouts[0] == "C" else np.asfortranarray(a)
    b_in = b if layouts[1] == "C" else np.asfortranarray(b)
    empty = np.empty((0, 0))
    assert_same(sg_gemm(a_in, b_in, empty), a @ b, rtol=1e-10, atol=1e-10)
    assert_same(sg_gemm_add(a_in, b_in, c, False, False, empty), c + a @ b, rtol=1e-10,
                atol=1e-10)


def test_a_product_with_no_inner_length_is_zeros():
    from symgraph.backends.numba.products import sg_gemm

    out = sg_gemm(np.ones((3, 0)), np.ones((0, 4)), np.full((3, 4), np.nan))
    assert_same(out, np.zeros((3, 4)))


def test_the_blas_runs_on_one_thread_while_parts_may_run(parts):
    blas.set_threads(2)
    parts(2, 16)
    with threads.own_cores():
        assert blas.get_threads() == 1
    assert blas.get_threads() == 2
    parts(1, 16)
    with threads.own_cores():
        assert blas.get_threads() == 2


def test_thread_settings_are_checked():
    with pytest.raises(ValueError):
        threads.set_threads(0)
    with pytest.raises(ValueError):
        threads.set_min_rows(0)
    with pytest.raises(ValueError):
        threads.set_shared_limit(-1)
    with pytest.raises(ValueError):
        threads.set_part_products(0)


@pytest.mark.parametrize("product", ["_gemm_rows(a, a, out, 0, 1, 0.0)",  # gemm
                                     "out[0] = np.dot(a, a[0])"])  # gemv
def test_a_process_whose_first_blas_product_runs_in_a_part_finishes(product):
    """numba looks up the BLAS on a process's first product, taking the GIL; in a part
    thread, while the calling thread holds the GIL waiting for the part, that waited
    forever (``products._resolve_blas_entry_points`` looks it up on import)."""
    import subprocess
    import sys

    script = (
        "import numba\n"
        "import numpy as np\n"
        "from symgraph.backends.numba import threads\n"
        "from symgraph.backends.numba.products import _gemm_rows\n"
        "from symgraph.backends.numba.threads import sg_parts_of\n"
        "@numba.njit\n"
        "def part(lo, hi, a, out):\n"
        "    if lo > 0:\n"  # only the part on the other thread multiplies
        f"        {product}\n"
        "@numba.njit\n"
        "def parent(a, out):\n"
        "    sg_parts_of(part, 2, a, out)\n"
        "threads.set_threads(2)\n"
        "threads.set_min_rows(1)\n"
        "out = np.zeros((1, 1), np.float32)\n"
        "parent(np.full((1, 1), 3, np.float32), out)\n"
        "assert out[0, 0] == 9\n"
    )
    done = subprocess.run([sys.executable, "-c", script], timeout=120, capture_output=True,
                          text=True)  # before the fix: waited forever (checked)
    assert done.returncode == 0, done.stderr


def test_loops_over_weights_larger_than_the_shared_limit_run_whole(parts):
    """The shared limit is read at run time: the same compiled training step gives the
    reference's values with its loops in parts and whole."""
    numba_fn, numpy_fn, _ = _model("lstm", True)
    rng = np.random.default_rng(0)
    ids, targets = (rng.integers(0, 11, (5, 8)).astype(np.int32) for _ in range(2))
    mask = (np.arange(5)[:, None] < rng.integers(1, 6, 8)[None, :]).astype(np.float32)
    parts(2, 1)
    try:
        for limit in (0, 1 << 30):
            threads.set_shared_limit(limit)
            assert_same(numba_fn(ids, targets, mask), numpy_fn(ids, targets, mask),
                        rtol=1e-5, atol=1e-6)
    finally:
        threads.set_shared_limit(threads.SHARED_BYTES)


def test_row_views_are_the_rows_of_a_step():
    """``glue.sg_rows``: ``array[index, lo:hi]`` and ``array[lo:hi]`` as C views sharing
    the array's memory (and keeping it alive)."""
    import numba

    from symgraph.backends.numba.glue import sg_rows

    @numba.njit
    def views(a, t, lo, hi):
        step = sg_rows(a, t, lo, hi)
        step[0, 0] = -1.0
        return step, sg_rows(a[t], None, lo, hi)

    a = np.arange(60, dtype=np.float64).reshape(3, 5, 4)
    step, rows = views(a, 2, 1, 4)
    assert step.flags.c_contiguous and step.shape == (3, 4)
    assert_same(step, a[2, 1:4])
    assert_same(rows, a[2, 1:4])
    assert a[2, 1, 0] == -1.0  # a view, not a copy
    del a
    assert_same(step[1], rows[1])  # still valid: the views hold the memory


def _rows_times_two_plus_lo(lo, hi, out, bad):
    for i in range(lo, hi):
        out[i] = 2.0 * i + lo
    if lo <= bad < hi:
        raise threads.SGRuntimeError()


def _parent_of(part):
    """A compiled caller of ``part`` over the rows of ``out``, with the address table
    filled as the runner fills it."""
    import numba
    from numba import types

    part = numba.njit(no_cpython_wrapper=True, no_cfunc_wrapper=True)(part)

    @numba.njit
    def parent(out, bad, addresses):
        threads.sg_run_parts(part, 0, addresses, out.shape[0], 0, out, bad)

    argtypes = (numba.typeof(np.zeros(2)), types.int64)
    parent.compile(argtypes + (numba.typeof(np.zeros(1, np.int64)),))
    compiled = part.overloads[threads.part_argtypes(argtypes)]
    addresses = np.array([compiled.library.get_pointer_to_function(
        compiled.fndesc.llvm_func_name)], np.int64)
    return lambda out, bad: parent(out, bad, addresses)


@pytest.mark.parametrize("starts", [True, False])
def test_parts_cover_every_row_once_and_raise_after_all_finish(parts, starts):
    """Each part writes its rows (its ``lo`` shows which part did); an error in the
    calling thread's part or in another's is raised. Without threads (a platform whose
    thread start fails), the parts run in turn in the calling thread."""
    import llvmlite.binding as llvm
    from numba import cfunc, types

    failing = cfunc(types.int32(types.voidptr, types.voidptr, types.voidptr,
                                types.voidptr))(lambda t, a, f, x: 1)
    if not starts:
        llvm.add_symbol("sg_thread_start", failing.address)
    try:
        run = _parent_of(_rows_times_two_plus_lo)
    finally:
        llvm.add_symbol("sg_thread_start", threads._SYMBOLS["sg_thread_start"])
    for n_parts in (1, 2, 3):
        parts(n_parts, 4)
        out = np.full(12, -1.0)
        run(out, -1)
        lows = [12 * p // n_parts for p in range(n_parts) for _ in range(12 // n_parts)]
        assert_same(out, 2.0 * np.arange(12) + np.array(lows, dtype=float))
    parts(3, 4)
    for bad in (1, 10):  # the calling thread's part, the last part
        with pytest.raises(threads.SGRuntimeError):
            run(np.zeros(12), bad)


@pytest.mark.parametrize("setting", [(1, 16), (2, 1), (3, 1)])
def test_large_gathers_and_cross_entropies_in_parts(parts, setting):
    """Above ``kernels.PART_ELEMENTS`` gathers and softmax cross-entropies run in row
    parts: the same values as numpy, and an id out of range in any part is an error."""
    from symgraph.backends.numba import kernels

    parts(*setting)
    rng = np.random.default_rng(sum(setting))
    table = rng.standard_normal((27, 700)).astype(np.float32)
    ids = rng.integers(0, 27, 300)
    assert ids.size * table.shape[1] >= kernels.PART_ELEMENTS
    empty = np.empty((0, 0), np.float32)
    assert_same(kernels.sg_take(table, ids, empty), table[ids])
    logits = rng.standard_normal((30, 40, 27)).astype(np.float32)
    targets = rng.integers(0, 27, (30, 40))
    assert logits.size >= kernels.PART_ELEMENTS
    loss, probs = kernels.sg_xent_ids_softmax(logits, targets, empty,
                                              np.empty((0, 0, 0), np.float32))
    shifted = logits - logits.max(axis=-1, keepdims=True)
    want_p = np.exp(shifted) / np.exp(shifted).sum(axis=-1, keepdims=True)
    assert_same(probs, want_p, rtol=1e-5, atol=1e-6)
    assert_same(loss, -np.log(np.take_along_axis(want_p, targets[..., None], -1))[..., 0],
                rtol=1e-5, atol=1e-5)
    for bad in (0, -1):  # the first part's rows, the last part's
        wrong = ids.copy()
        wrong[bad] = 27
        with pytest.raises(threads.SGRuntimeError):
            kernels.sg_take(table, wrong, empty)
        wrong_targets = targets.copy()
        wrong_targets.flat[bad] = 27
        with pytest.raises(threads.SGRuntimeError):
            kernels.sg_xent_ids_softmax(logits, wrong_targets, empty,
                                        np.empty((0, 0, 0), np.float32))
