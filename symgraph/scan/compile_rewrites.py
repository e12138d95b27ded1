"""Compile-time passes on scans: loops that the gradient extended are merged with the
originals, and the step graph of every Scan node gets the same rewrites as the graph
around it (constant folding, merging, stability, ...)."""

from __future__ import annotations

from symgraph.fgraph import FunctionGraph
from symgraph.rewriting import register_pass, rewrite
from symgraph.scan.op import Scan


@register_pass("scan_merge_extended", order=1)
def scan_merge_extended(fgraph: FunctionGraph) -> None:
    """A Scan node whose loop is another's with step outputs appended (built by the
    gradient, ``Scan.with_step_outputs``), on the same inputs, replaces it: one loop
    computes both."""
    by_inputs: dict = {}
    for node in fgraph.toposort():
        if isinstance(node.op, Scan):
            by_inputs.setdefault(tuple(map(id, node.inputs)), []).append(node)
    for nodes in by_inputs.values():
        for node in nodes:
            wider = [other for other in nodes if other is not node
                     and other.op.extends(node.op) and not node.op.extends(other.op)]
            if wider:
                target = max(wider, key=lambda n: len(n.outputs))
                for old, new in zip(node.outputs, target.outputs):
                    fgraph.replace(old, new, reason="scan_merge_extended")


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
