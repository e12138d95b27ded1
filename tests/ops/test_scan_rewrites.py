"""The rewrites that make a seed-style LSTM fast, each against the unrewritten graph, and
the structure they produce (one input GEMM before the loop, one recurrent GEMM per step)."""

import contextlib

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.ops.blas import Dot
from symgraph.scan.op import Scan
from tests.test_seed_notebook import (
    LogisticRegression,
    LstmLayer,
    batch,
    sequence_categorical_crossentropy,
)

SCAN_REWRITES = ["scan_merge_gemm", "scan_hoist_invariants", "scan_hoist_input_gemm",
                 "scan_weight_grad_gemm", "scan_prune_inputs", "scan_save_products",
                 "scan_save_activations", "scan_prune_unread_inputs", "scan_prune_outputs",
                 "incs_into_join"]


@contextlib.contextmanager
def without(*names):
    added = set(names) - sg.config.excluded_rewrites
    sg.config.excluded_rewrites.update(added)
    try:
        yield
    finally:
        sg.config.excluded_rewrites.difference_update(added)


def seed_lstm_step(seed=0):
    """The seed notebook's LSTM training step: cost, gradients and the compiled function."""
    rng = np.random.default_rng(seed)
    x = T.tensor3("x", dtype="float64")
    y = T.lmatrix("y")
    mask = T.matrix("mask", dtype="float64")
    lstm = LstmLayer(rng, x, mask, 6, 8)
    out = LogisticRegression(rng, lstm.output, 8, 6)
    params = lstm.params + out.params
    cost = sequence_categorical_crossentropy(out.p_y_given_x, y, mask) / mask.sum()
    f = sg.function([x, y, mask], [cost, *sg.grad(cost, params)], mode="numpy")
    return f


def scans(fn):
    return [n for n in fn.fgraph.toposort() if isinstance(n.op, Scan)]


def dots(fgraph):
    return [n for n in fgraph.toposort() if isinstance(n.op, Dot)]


def run_step(fn):
    x_ids, y_ids, mask = batch(np.random.default_rng(1))
    return fn(np.eye(6)[x_ids], y_ids, mask)


def test_seed_lstm_has_one_input_gemm_outside_and_one_recurrent_gemm_per_step():
    fn = seed_lstm_step()
    forward, backward = scans(fn)
    assert not forward.op.name.startswith("grad") and backward.op.name.startswith("grad")
    assert len(dots(forward.op.inner)) == 1  # the 4 recurrent products, merged
    assert len(dots(backward.op.inner)) == 1  # dot(g, U.T); the rest runs outside
    projection = [s for s in forward.inputs[1: 1 + forward.op.n_seq] if s.owner is not None]
    assert len(projection) == 1  # x @ [W_i|W_f|W_o|W_c] for all steps, before the loop
    outer = dots(fn.fgraph)
    assert any(n.inputs[0].owner is not None and "Reshape" in str(n.inputs[0].owner.op)
               for n in outer)
    with without(*SCAN_REWRITES, "merge_gemm"):
        plain = seed_lstm_step()
    fwd_plain, bwd_plain = scans(plain)
    assert len(dots(fwd_plain.op.inner)) == 8  # the naive form, for comparison
    assert len(dots(bwd_plain.op.inner)) > 8


def test_backward_reads_saved_products_from_the_one_forward_loop():
    """The forward loop saves its recurrent product and its start states (extra step
    outputs); the extended loop replaces the original (one forward loop), and the
    backward pass recomputes no product of the states."""
    fn = seed_lstm_step()
    forward, backward = scans(fn)
    n_out = len(forward.op.inner.outputs) - forward.op.n_carry
    assert n_out >= forward.op.n_carry + 1  # start states and the product, stacked
    with without("scan_save_products"):
        recomputing = seed_lstm_step()
    assert len(dots(fn.fgraph)) < len(dots(recomputing.fgraph))
    for a, b in zip(run_step(fn), run_step(recomputing)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)


def test_backward_reads_saved_activations_and_no_pre_activations():
    """The forward loop saves the gates' sigmoid and tanh outputs; the backward loop
    computes no sigmoid, tanh or exp, and reads every sequence it is given (those it no
    longer reads, such as pre-activations, are not passed)."""
    from symgraph.ops import scalar as S
    from symgraph.ops.elemwise import Elemwise

    def exponentials(fgraph):
        return [n for n in fgraph.toposort() if isinstance(n.op, Elemwise)
                and isinstance(n.op.scalar_op, S.Sigmoid | S.Tanh | S.Exp)]

    fn = seed_lstm_step()
    forward, backward = scans(fn)
    assert exponentials(forward.op.inner) and not exponentials(backward.op.inner)
    with without("scan_save_activations"):
        recomputing = seed_lstm_step()
    fwd_r, bwd_r = scans(recomputing)
    assert exponentials(bwd_r.op.inner)
    assert backward.op.n_seq <= bwd_r.op.n_seq + len(exponentials(forward.op.inner))
    inner = backward.op.inner
    assert all(inner.clients.get(v) for v in inner.inputs[:backward.op.n_seq])  # all read
    with without("scan_prune_unread_inputs"):
        unpruned = seed_lstm_step()
    assert scans(unpruned)[1].op.n_seq > backward.op.n_seq
    assert scans(unpruned)[0].op.n_out >= forward.op.n_out
    for a, b in zip(run_step(fn), run_step(recomputing)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)


def test_merge_extended_runs_one_forward_loop_for_final_state_scans():
    """A loop returning only its final state: its gradient needs the states of every
    step, from an extended loop that replaces the original at compile time."""
    rng = np.random.default_rng(3)
    xs, h0, U = T.dtensor3("xs"), T.dmatrix("h0"), T.dmatrix("U")
    hs, _ = sg.scan(lambda x, h: T.tanh(x + T.dot(h, U)), sequences=xs, outputs_info=h0)
    cost = (hs[-1] ** 2).sum()
    outputs = [cost, *sg.grad(cost, [U, xs, h0])]
    merged = sg.function([xs, h0, U], outputs, mode="numpy")
    separate = sg.function([xs, h0, U], outputs,
                           mode=sg.Mode("numpy", exclude=["scan_merge_extended"]))
    forward = [n for n in scans(merged) if not n.op.name.startswith("grad")]
    assert len(forward) == 1
    assert len([n for n in scans(separate) if not n.op.name.startswith("grad")]) == 2
    vals = [rng.normal(size=(4, 2, 3)), rng.normal(size=(2, 3)), rng.normal(size=(3, 3))]
    for a, b in zip(merged(*vals), separate(*vals)):
        np.testing.assert_allclose(a, b, rtol=1e-12)


@pytest.mark.parametrize("name", SCAN_REWRITES + ["scan_inner_rewrites", "inc_into_sum"])
def test_each_scan_rewrite_matches_the_unrewritten_graph(name):
    with without(*SCAN_REWRITES, "scan_inner_rewrites", "inc_into_sum"):
        reference = run_step(seed_lstm_step())
    with without(name):
        others = run_step(seed_lstm_step())
    only = [n for n in SCAN_REWRITES + ["scan_inner_rewrites", "inc_into_sum"] if n != name]
    with without(*only):
        alone = run_step(seed_lstm_step())
    for got in (others, alone):
        for a, b in zip(got, reference):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)


def test_merge_gemm_at_compile_time_on_a_plain_graph():
    x = T.dmatrix("x")
    ws = [T.dmatrix(f"w{i}") for i in range(3)]
    out = sum(T.tanh(T.dot(x, w)).sum() * (i + 1) for i, w in enumerate(ws))
    inputs = [x, *ws]
    grads = sg.grad(out, ws)
    merged = sg.function(inputs, [out, *grads], mode="numpy")
    plain = sg.function(inputs, [out, *grads], mode=sg.Mode("numpy", exclude=["merge_gemm"]))
    assert len(dots(merged.fgraph)) < len(dots(plain.fgraph))
    rng = np.random.default_rng(0)
    vals = [rng.normal(size=(4, 3))] + [rng.normal(size=(3, k)) for k in (2, 3, 1)]
    for a, b in zip(merged(*vals), plain(*vals)):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_truncated_gradient_with_weight_grad_gemm_matches_without():
    rng = np.random.default_rng(2)
    xs, h0, U = T.dtensor3("xs"), T.dmatrix("h0"), T.dmatrix("U")

    def build():
        hs, _ = sg.scan(lambda x, h: T.tanh(x + T.dot(h, U)), sequences=xs, outputs_info=h0,
                        truncate_gradient=3)
        return sg.function([xs, h0, U], sg.grad((hs ** 2).sum(), [U, xs]), mode="numpy")

    vals = [rng.normal(size=(5, 2, 3)), rng.normal(size=(2, 3)), rng.normal(size=(3, 3))]
    with without("scan_weight_grad_gemm"):
        expected = build()(*vals)
    for a, b in zip(build()(*vals), expected):
        np.testing.assert_allclose(a, b, rtol=1e-10)


def test_prune_outputs_drops_unread_and_repeated_step_outputs():
    rng = np.random.default_rng(4)
    xs, h0 = T.dtensor3("xs"), T.dmatrix("h0")

    def step(x, h):
        new = T.tanh(x + h)
        return new, new * 2, new * 2, x.sum()  # a repeated output, and an unread one

    (hs, a, b, _), _ = sg.scan(step, sequences=xs, outputs_info=[h0, None, None, None])
    outputs = [hs.sum() + a.sum(), b]
    pruned = sg.function([xs, h0], outputs, mode="numpy")
    kept = sg.function([xs, h0], outputs, mode=sg.Mode("numpy", exclude=["scan_prune_outputs"]))
    (loop,), (full,) = scans(pruned), scans(kept)
    assert len(loop.outputs) == 2 and len(full.outputs) == 4
    vals = [rng.normal(size=(3, 2, 4)), rng.normal(size=(2, 4))]
    for x, y in zip(pruned(*vals), kept(*vals)):
        np.testing.assert_allclose(x, y, rtol=1e-12)


def test_gate_cotangents_are_joined_not_added_into_zeros():
    """The pullbacks of the four gate slices of ``z`` become one concatenation; slices
    that do not tile the axis stay increments."""
    from symgraph.ops.shape import Join
    from symgraph.ops.subtensor import IncSubtensor

    rng = np.random.default_rng(5)
    z = T.tensor("float64", (None, 6), name="z")  # a static width, as LSTM gates have
    gates = [T.nnet.sigmoid(z[:, 0:2]), T.tanh(z[:, 2:4]), T.nnet.sigmoid(z[:, 4:6])]
    tiled = sg.grad((gates[0] * gates[1] + gates[2] ** 2).sum(), z)
    gapped = sg.grad((T.tanh(z[:, 0:2]) * T.tanh(z[:, 3:5])).sum(), z)
    joined = sg.function([z], [tiled, gapped], mode="numpy")
    plain = sg.function([z], [tiled, gapped], mode=sg.Mode("numpy", exclude=["incs_into_join"]))
    ops = [type(n.op) for n in joined.fgraph.toposort()]
    assert Join in ops and ops.count(IncSubtensor) == 2  # the gapped pair only
    value = rng.normal(size=(3, 6))
    for a, b in zip(joined(value), plain(value)):
        np.testing.assert_allclose(a, b, rtol=1e-12)
