"""Core rewrites that need no knowledge of particular ops: merging equal subgraphs
(common-subexpression elimination) and constant folding."""

from __future__ import annotations

from symgraph.fgraph import FunctionGraph
from symgraph.graph import Constant
from symgraph.rewriting import local_rewrite, register_pass

_FOLD_MAX_SIZE = 1 << 16


@register_pass("merge", order=0)
def merge(fgraph: FunctionGraph) -> None:
    """Merge equal constants, then nodes with equal ops and identical inputs (CSE)."""
    constants: dict = {}
    for var in fgraph.variables:
        if isinstance(var, Constant) and var.value.size <= _FOLD_MAX_SIZE:
            first = constants.setdefault(var.signature(), var)
            if first is not var:
                fgraph.replace(var, first, reason="merge")
    seen: dict = {}
    for node in fgraph.toposort():
        key = (node.op, tuple(id(i) for i in node.inputs))
        twin = seen.setdefault(key, node)
        if twin is not node and getattr(node.op, "mergeable", True):
            for old, new in zip(node.outputs, twin.outputs):
                fgraph.replace(old, new, reason="merge")


@local_rewrite("constant_folding", order=10)
def constant_folding(fgraph: FunctionGraph, node):
    """Precompute nodes whose inputs are all constants (skipping ops marked
    ``foldable = False`` and results larger than 64k elements)."""
    if not node.op.foldable or not all(isinstance(i, Constant) for i in node.inputs):
        return None
    values = node.op.perform(node, [i.value for i in node.inputs])
    if any(v.size > _FOLD_MAX_SIZE for v in values):
        return None
    return {out: Constant(v.astype(out.dtype), name=out.name)
            for out, v in zip(node.outputs, values)}


@register_pass("merge_again", order=100)
def merge_again(fgraph: FunctionGraph) -> None:
    """Run ``merge`` once more after the other rewrites."""
    merge(fgraph)
