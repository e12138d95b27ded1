"""Compile-time pass on scans: the step graph of every Scan node gets the same rewrites as
the graph around it (constant folding, merging, stability, ...)."""

from __future__ import annotations

from symgraph.fgraph import FunctionGraph
from symgraph.rewriting import register_pass, rewrite
from symgraph.scan.op import Scan


@register_pass("scan_inner_rewrites", order=50)
def scan_inner_rewrites(fgraph: FunctionGraph) -> None:
    """Rewrite each scan's step graph (a copy: the user's graph is left alone)."""
    for node in fgraph.toposort():
        op = node.op
        if not isinstance(op, Scan) or getattr(op, "inner_rewritten", False):
            continue
        inner = rewrite(FunctionGraph(op.inner.inputs, op.inner.outputs))
        new_op = Scan(inner, op.n_seq, op.n_carry, op.n_nonseq, op.keep_history,
                      op.truncate_gradient, op.exact_length, op.name)
        new_op.inner_rewritten = True
        new_node = new_op.make_node(*node.inputs)
        for old, new in zip(node.outputs, new_node.outputs):
            fgraph.replace(old, new, reason="scan_inner_rewrites")
