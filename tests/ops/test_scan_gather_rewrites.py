"""``scan_gather_in_step``: a loop over looked-up rows gathers them step by step, against
the unrewritten graph (values and gradients, numpy and numba), and the cases it leaves
alone or must still reject."""

import numpy as np
import pytest

import symgraph as sg
import symgraph.models as M
import symgraph.tensor as T
from symgraph.ops.subtensor import AdvancedSubtensor1
from symgraph.scan.op import Scan


def _char_lstm(extra_reader: bool = False):
    rng = np.random.default_rng(0)
    ids, targets, mask = T.imatrix("ids"), T.imatrix("targets"), T.fmatrix("mask")
    embed = M.Embedding(11, 6, rng, init_scale=0.3, dtype="float32")
    rnn = M.StackedRNN("lstm", 6, (5,), rng, init_scale=0.3, dtype="float32")
    out = M.LogisticRegression(5, 11, rng, init_scale=0.3, dtype="float32")
    hs, _ = rnn(embed(ids), mask, None)
    cost = M.sequence_cross_entropy(out.logits(hs), targets, mask, normalize="token")
    params = embed.params + rnn.params + out.params
    outputs = [cost] + sg.grad(cost, params)
    if extra_reader:  # the embedded sequence read outside the loop as well
        outputs.append(embed(ids).sum())
    return [ids, targets, mask], outputs


def _batch(seed=1):
    rng = np.random.default_rng(seed)
    ids, targets = (rng.integers(0, 11, (7, 5)).astype(np.int32) for _ in range(2))
    mask = (np.arange(7)[:, None] < rng.integers(1, 8, 5)[None, :]).astype(np.float32)
    return ids, targets, mask


def _gathers(fn):
    """(gathers outside loops, gathers inside the first loop's step)"""
    nodes = fn.fgraph.toposort()
    loop = next(n.op for n in nodes if isinstance(n.op, Scan))
    return (sum(isinstance(n.op, AdvancedSubtensor1) for n in nodes),
            sum(isinstance(n.op, AdvancedSubtensor1) for n in loop.inner.toposort()))


@pytest.mark.parametrize("mode", ["numpy", "numba"])
def test_the_loop_gathers_its_rows_and_matches_the_unrewritten_graph(mode):
    inputs, outputs = _char_lstm()
    rewritten = sg.function(inputs, outputs, mode=mode)
    plain = sg.function(inputs, outputs, mode=sg.Mode(mode, exclude=["scan_gather_in_step"]))
    assert _gathers(rewritten) == (0, 1)
    assert _gathers(plain) == (1, 0)
    for seed in (1, 2):
        for got, want in zip(rewritten(*_batch(seed)), plain(*_batch(seed))):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def _looped(extra_reader: bool = False):
    """A loop over ``table[ids]`` reshaped time-major; and its total, and the sequence's
    sum when ``extra_reader``."""
    table, ids, h0 = T.fmatrix("table"), T.imatrix("ids"), T.fmatrix("h0")
    seq = table[ids.flatten()].reshape((ids.shape[0], ids.shape[1], 4))
    hs, _ = sg.scan(lambda x, h: T.tanh(x + h), sequences=[seq], outputs_info=[h0])
    return [table, ids, h0], [hs.sum()] + ([seq.sum()] if extra_reader else [])


def _reference_sum(table, ids, h0):
    h, total = h0.astype(np.float64), 0.0
    for t in range(ids.shape[0]):
        h = np.tanh(table[ids[t]] + h)
        total += h.sum()
    return total


def _values(width=4, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((5, width)).astype(np.float32),
            rng.integers(0, 5, (3, 2)).astype(np.int32),
            rng.standard_normal((2, 4)).astype(np.float32))


def test_rows_read_outside_the_loop_too_are_gathered_once_outside():
    inputs, outputs = _looped(extra_reader=True)
    fn = sg.function(inputs, outputs, mode="numpy")
    assert _gathers(fn) == (1, 0)
    total, rows = fn(*_values())
    assert np.isclose(float(total), _reference_sum(*_values()), rtol=1e-5)


@pytest.mark.parametrize("mode", ["numpy", "numba"])
def test_rows_of_another_width_than_the_reshape_are_still_an_error(mode):
    inputs, outputs = _looped()
    fn = sg.function(inputs, outputs, mode=mode)
    assert _gathers(fn) == (0, 1)
    (total,) = fn(*_values())
    assert np.isclose(float(total), _reference_sum(*_values()), rtol=1e-5)
    with pytest.raises(sg.errors.ShapeError, match="test_scan_gather_rewrites.py"):
        fn(*_values(width=6))  # 6 columns, not 4: the unrewritten reshape fails too
