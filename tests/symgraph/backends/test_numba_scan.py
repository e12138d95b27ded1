"""Compiled scan (a ``for`` loop with the inner graph inline) and a small LSTM-style
training step, against the numpy reference."""

import re

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from tests.symgraph.backends.test_numba_backend import assert_same
from tests.symgraph.backends.test_numba_row_parts import compiling_in_parts


def both(inputs, outputs, updates=None):
    return [sg.function(inputs, outputs, updates=updates, mode=m) for m in ("numba", "numpy")]


@pytest.fixture(scope="module", params=["parts", "whole"])
def rnn(request):
    """A tanh RNN with a per-step output, forwards and backwards, and its gradients. Its
    rows are independent and it is compiled with two threads set ("parts": the loops
    run as row parts, ``lower_scan_parts``), or its rows are mixed by a small term over
    the batch ("whole": one loop over all rows)."""
    x, h0, w = T.ftensor3("x"), T.fmatrix("h0"), T.fmatrix("w")
    mixed = request.param == "whole"

    def step(xt, h, w):
        z = xt + T.dot(h, w)
        hn = T.tanh(z + np.float32(0.1) * h.mean(axis=0, keepdims=True) if mixed else z)
        return hn, (hn * hn).sum(axis=1)

    (hs, ys), _ = sg.scan(step, sequences=[x], outputs_info=[h0, None], non_sequences=[w])
    (hb, yb), _ = sg.scan(step, sequences=[x], outputs_info=[h0, None], non_sequences=[w],
                          go_backwards=True)
    cost = hs[-1].sum() + ys.sum() + (hb * hb).sum() + yb[0].sum()
    outs = [hs, ys, hb, yb] + sg.grad(cost, [x, h0, w])
    with compiling_in_parts(2 if request.param == "parts" else 1):
        return both([x, h0, w], outs) + [request.param]


def graph_code(fn) -> str:
    """The graph function, its chunks and the loops' part functions (not the kernels)."""
    parts = [part.strip("\n") for part in fn.__source__.split("\n\n")]
    return "\n\n".join(part for part in parts
                        if part.startswith(("def sg_graph", "def sg_chunk_", "def sg_part_")))


@pytest.mark.parametrize("steps,batch", [(5, 2), (1, 3), (7, 1), (3, 40)])
def test_scan_forward_backward_and_gradient(rnn, steps, batch):
    rng = np.random.default_rng(steps)
    x = rng.standard_normal((steps, batch, 3)).astype("float32")
    h0 = rng.standard_normal((batch, 3)).astype("float32")
    w = (rng.standard_normal((3, 3)) * 0.5).astype("float32")
    assert_same(rnn[0](x, h0, w), rnn[1](x, h0, w), rtol=1e-5, atol=1e-5)


def test_loops_run_in_parts_when_their_rows_are_independent(rnn):
    code = graph_code(rnn[0])
    assert code.count("sg_run_parts(") == (4 if rnn[2] == "parts" else 0), code


def test_reversed_time_is_read_and_stored_in_place(rnn):
    """A loop reads a reversed sequence from its end, and stores from the end a result
    that the graph only reverses (the gradient's backward loops; the forward loop's
    states saved for them): no whole-sequence copies (values: the test above)."""
    code = graph_code(rnn[0])
    reversals = [ln for ln in code.splitlines() if "Subtensor{((None,None,-1))}" in ln]
    assert len([ln for ln in reversals if "[computed above" in ln]) == 4, code
    reads = code.count(".shape[0] - 1 - ")  # the reversed sequences, read in place
    assert reads == {"parts": 5, "whole": 7}[rnn[2]], code
    assert "_x0 = sg_call(sg_copy" not in code


def test_a_transposed_weight_is_copied_once_before_the_loop(rnn):
    """The backward loops multiply by ``w.T``: a C-contiguous copy made before each loop
    (BLAS is slower on a transposed operand), not one per step."""
    code = graph_code(rnn[0])
    copies = [ln for ln in code.splitlines() if re.search(r"_w\d+ = sg_call\(sg_copy,", ln)]
    assert len(copies) == 2, code
    assert all(re.match(r"    \S", ln) for ln in copies)  # the function's level: no loop


def test_steps_write_their_results_into_the_history_and_stack_slots(rnn):
    """The kernels computing a step's new carry and its stacked outputs write them into
    their slots (a copy follows only if a kernel had to allocate); values: above."""
    code = graph_code(rnn[0])
    if rnn[2] == "whole":
        guarded = [ln for ln in code.splitlines() if "sg_call_as(sg_store, " in ln]
        assert len(guarded) >= 4, code  # the two forward loops' carries and outputs
        assert code.count("sg_slot(") >= 4  # stack slots from the second step on
    else:  # each part writes its rows of the slots, from the first step on
        guarded = [ln for ln in code.splitlines() if "sg_call_as(sg_store_rows, " in ln]
        assert len(guarded) >= 4, code
        assert len(re.findall(r"sg_rows\(v\d+, v\d+_t, v\d+_lo, v\d+_hi\)", code)) >= 2, code


def test_scan_with_n_steps_prefix_and_zero_steps():
    x, h0, n = T.fmatrix("x"), T.fvector("h0"), T.lscalar("n")
    hs, _ = sg.scan(lambda xt, h: h * 0.5 + xt, sequences=[x], outputs_info=[h0], n_steps=n)
    f, g = both([x, h0, n], [hs, sg.grad(hs.sum(), x)])
    xv, h0v = np.ones((4, 2), "float32"), np.zeros(2, "float32")
    assert_same(f(xv, h0v, np.int64(3)), g(xv, h0v, np.int64(3)))
    f, g = both([x, h0, n], hs)  # (the reference cannot take this gradient at 0 steps)
    assert_same(f(xv, h0v, np.int64(0)), g(xv, h0v, np.int64(0)))


def test_ten_thousand_steps_scalar_carry_and_gradient():
    s, c0 = T.fvector("s"), T.fscalar("c0")
    acc, _ = sg.scan(lambda x, c: c * np.float32(0.999) + x, sequences=[s], outputs_info=[c0])
    f, g = both([s, c0], [acc, sg.grad(acc[-1], s), sg.grad(acc.sum(), c0)])
    sv = np.random.default_rng(0).standard_normal(10_000).astype("float32")
    assert_same(f(sv, np.float32(0.5)), g(sv, np.float32(0.5)), rtol=1e-4, atol=1e-4)


def test_nested_scan():
    x, h0 = T.ftensor3("x"), T.fmatrix("h0")

    def outer(xt, h):
        inner, _ = sg.scan(lambda r, c: c + r, sequences=[xt], outputs_info=[T.zeros_like(h[0])])
        return h + inner[-1]

    hs, _ = sg.scan(outer, sequences=[x], outputs_info=[h0])
    f, g = both([x, h0], [hs, sg.grad(hs.sum(), x)])
    rng = np.random.default_rng(1)
    xv, h0v = rng.random((3, 2, 4)).astype("float32"), rng.random((2, 4)).astype("float32")
    assert_same(f(xv, h0v), g(xv, h0v), rtol=1e-5)


def _lstm_step_function(mode, params):
    """A masked LSTM over a padded batch: embedding, one layer, softmax output, masked
    mean cross-entropy, gradients and SGD updates of every parameter."""
    emb, w, u, b, wy, by = params
    x, y, m = T.imatrix("x"), T.imatrix("y"), T.fmatrix("m")
    n_h = 6

    def step(xt, mt, h, c):
        z = T.dot(xt, w) + T.dot(h, u) + b
        i, f = T.sigmoid(z[:, :n_h]), T.sigmoid(z[:, n_h:2 * n_h])
        o, g = T.sigmoid(z[:, 2 * n_h:3 * n_h]), T.tanh(z[:, 3 * n_h:])
        cn = f * c + i * g
        hn = o * T.tanh(cn)
        mm = mt.dimshuffle(0, "x")
        return mm * hn + (1 - mm) * h, mm * cn + (1 - mm) * c

    zeros = T.zeros((x.shape[1], n_h), dtype="float32")
    (hs, _), _ = sg.scan(step, sequences=[emb[x], m], outputs_info=[zeros, zeros])
    logits = T.dot(hs, wy) + by
    nll = T.nnet.categorical_crossentropy(T.nnet.softmax(logits), y)
    loss = (nll * m).sum() / m.sum()
    grads = sg.grad(loss, list(params))
    updates = [(p, p - np.float32(0.5) * g) for p, g in zip(params, grads)]
    return sg.function([x, y, m], loss, updates=updates, mode=mode)


def test_lstm_training_step_matches_reference():
    rng = np.random.default_rng(0)
    shapes = [(11, 5), (5, 24), (6, 24), (24,), (6, 11), (11,)]
    init = [rng.uniform(-0.3, 0.3, s).astype("float32") for s in shapes]
    results = {}
    for mode in ("numba", "numpy"):
        params = [sg.shared(v.copy()) for v in init]
        f = _lstm_step_function(mode, params)
        losses = []
        for _ in range(3):  # three steps on one batch: the loss must fall
            r = np.random.default_rng(0)
            x = r.integers(0, 11, (4, 3)).astype("int32")
            y = r.integers(0, 11, (4, 3)).astype("int32")
            m = (np.arange(4)[:, None] < r.integers(1, 5, 3)[None, :]).astype("float32")
            losses.append(f(x, y, m))
        results[mode] = (losses, [p.get_value() for p in params])
    assert_same(results["numba"][0], results["numpy"][0], rtol=1e-5, atol=1e-6)
    assert_same(results["numba"][1], results["numpy"][1], rtol=1e-4, atol=1e-6)
    assert results["numba"][0][-1] < results["numba"][0][0]
