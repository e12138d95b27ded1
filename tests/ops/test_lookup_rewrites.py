"""``gather_before_product``: products of looked-up rows become look-ups in the product of
the (small) table, in the forward pass and in both gradients; against the unrewritten
graph on both backends."""

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.ops.blas import Dot
from symgraph.ops.dimshuffle import DimShuffle
from symgraph.ops.lookup_rewrites import MAX_ROWS
from symgraph.ops.shape import Reshape
from symgraph.ops.subtensor import AdvancedIncSubtensor1, AdvancedSubtensor1

UNREWRITTEN = ["gather_before_product"]


def embedding_step(rows: int, mode: str, exclude=()):
    """ids (T, B) -> E[ids] (T, B, d) -> flattened -> dot(., W) + b -> tanh -> cost,
    with the gradients of E, W and b (a time-major embedding layer and its projection)."""
    rng = np.random.default_rng(0)
    table = sg.shared(rng.normal(size=(rows, 5)), name="E")
    w = sg.shared(rng.normal(size=(5, 8)), name="W")
    b = sg.shared(rng.normal(size=(8,)), name="b")
    ids = T.lmatrix("ids")
    looked = table[ids.flatten()].reshape((ids.shape[0], ids.shape[1], 5))
    projected = T.dot(looked.reshape((-1, 5)), w) + b
    cost = (T.tanh(projected) ** 2).sum()
    outputs = [cost, *sg.grad(cost, [table, w, b])]
    return sg.function([ids], outputs, mode=sg.Mode(mode, exclude=list(exclude)))


def _source(v):
    while v.owner is not None and isinstance(v.owner.op, (Reshape, DimShuffle)):
        v = v.owner.inputs[0]
    return v


def row_products(fn) -> int:
    """Products reading looked-up rows, and scatters of products (the N-row work)."""
    nodes = fn.fgraph.toposort()
    reads = [n for n in nodes if isinstance(n.op, Dot) and any(
        _source(v).owner is not None and isinstance(_source(v).owner.op, AdvancedSubtensor1)
        for v in n.inputs)]
    scatters = [n for n in nodes if isinstance(n.op, AdvancedIncSubtensor1)
                and _source(n.inputs[1]).owner is not None
                and isinstance(_source(n.inputs[1]).owner.op, Dot)]
    return len(reads) + len(scatters)


@pytest.mark.parametrize("mode", ["numpy", "numba"])
def test_matches_the_unrewritten_graph_with_repeated_ids(mode):
    ids = np.array([[0, 3, 3], [6, 0, 1], [3, 3, 2], [5, 4, 0]])  # repeats accumulate
    rewritten = embedding_step(7, mode)
    plain = embedding_step(7, mode, exclude=UNREWRITTEN)
    assert row_products(plain) == 3  # forward, weight gradient, table gradient
    assert row_products(rewritten) == 0
    for a, b in zip(rewritten(ids), plain(ids)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_large_tables_keep_the_original_order():
    fn = embedding_step(MAX_ROWS + 1, "numpy")
    assert row_products(fn) == 3


def test_an_id_outside_the_table_is_still_a_clear_error():
    fn = embedding_step(7, "numpy")
    with pytest.raises(IndexError, match="7"):
        fn(np.array([[0, 7]]))
