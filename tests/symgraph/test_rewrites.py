"""Core rewrites (constant folding, merge) against the unrewritten graph, and the pass
switches."""

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.rewriting import REGISTRY, selected


def ops_of(fn):
    return [type(n.op).__name__ for n in fn.fgraph.toposort()]


def test_constant_folding_precomputes_constant_subgraphs():
    x = T.dvector("x")
    c = T.constant(np.array([1.0, 2.0, 3.0]), dtype="float64")
    out = x * T.exp(c * 2) + T.log(c).sum()
    fast = sg.function([x], out, mode="numpy")
    slow = sg.function([x], out, mode=sg.Mode("numpy", exclude=["constant_folding"]))
    v = np.array([0.5, -1.0, 2.0])
    np.testing.assert_allclose(fast(v), slow(v))
    assert len(fast.fgraph.toposort()) < len(slow.fgraph.toposort())
    assert len(fast.fgraph.toposort()) == 2  # mul and add remain


def test_merge_removes_duplicate_subgraphs():
    x = T.dmatrix("x")
    a = T.tanh(T.dot(x, x.T)).sum()
    b = T.tanh(T.dot(x, x.T)).sum()  # built twice
    merged = sg.function([x], a + b, mode="numpy")
    plain = sg.function([x], a + b, mode=sg.Mode("numpy", exclude=["merge", "merge_again",
                                                                "merge_gemm"]))
    v = np.random.default_rng(0).normal(size=(3, 2))
    np.testing.assert_allclose(merged(v), plain(v))
    assert ops_of(merged).count("Dot") == 1 and ops_of(plain).count("Dot") == 2


def test_passes_are_named_and_switchable():
    names = {r.name for r in selected()}
    assert {"merge", "constant_folding"} <= names
    assert "constant_folding" not in {r.name for r in selected(exclude=["constant_folding"])}
    with pytest.raises(ValueError, match="unknown rewrite"):
        selected(exclude=["no_such_rewrite"])
    assert all(REGISTRY[n].doc for n in names)
    sg.config.excluded_rewrites.add("constant_folding")
    try:
        assert "constant_folding" not in {r.name for r in selected()}
    finally:
        sg.config.excluded_rewrites.discard("constant_folding")


def test_rewrites_do_not_touch_the_users_graph():
    x = T.dvector("x")
    c = T.constant(2.0, dtype="float64")
    out = x * (c + c)
    before = sg.printing.debugprint(out, file=False)
    sg.function([x], out, mode="numpy")
    assert sg.printing.debugprint(out, file=False) == before


def test_debugprint_of_variables_and_functions():
    x = T.dmatrix("x")
    out = T.tanh(T.dot(x, x.T)).sum()
    text = sg.printing.debugprint(out, file=False)
    assert "Dot" in text and "tanh" in text and "'x'" in text
    f = sg.function([x], out, mode="numpy")
    assert sg.printing.debugprint(f, file=False).startswith("compiled function (numpy)")
