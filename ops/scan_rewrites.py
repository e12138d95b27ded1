"""Rewrites that make a seed-style LSTM fast (issue: four gates, eight small products per
step, written the naive way):

- ``merge_gemm``: products sharing their left operand, ``dot(x, W_i) ... dot(x, W_c)``,
  become one product with the right operands joined, ``dot(x, [W_i|W_f|W_o|W_c])``,
  whose column blocks replace the originals. It runs on scan steps when they are traced
  (so the gradient scan is built from the merged form) and on whole graphs at compile time.
- ``scan_hoist_input_gemm``: a step product ``dot(x[t], W)`` of a sequence slice and a
  non-sequence becomes one large product of all steps before the loop,
  ``dot(x.reshape(T*B, n), W)``, fed to the loop as a new sequence.

Together with ``scan_hoist_invariants`` (the joined weights are computed once, outside
the loop) the step of the seed LSTM has one recurrent product.
"""

from __future__ import annotations

from symgraph.fgraph import FunctionGraph
from symgraph.graph import Constant, ancestors
from symgraph.ops.blas import Dot, tensordot_last_first
from symgraph.ops.shape import concatenate, shape
from symgraph.ops.subtensor import take_range
from symgraph.rewriting import register_pass
from symgraph.scan.trace import TracedStep


def merge_shared_left_products(fgraph: FunctionGraph) -> None:
    """Replace groups of ``dot(a, B_k)`` (same ``a``, matrix ``B_k``) by one product."""
    groups: dict = {}
    for node in fgraph.toposort():
        if isinstance(node.op, Dot) and node.inputs[0].ndim == 2 and node.inputs[1].ndim == 2:
            groups.setdefault(node.inputs[0], []).append(node)
    for left, nodes in groups.items():
        nodes = _independent(nodes)
        if len(nodes) < 2:
            continue
        rights = [n.inputs[1] for n in nodes]
        joined = Dot()(left, concatenate(rights, axis=1))
        start = Constant(_int64(0))
        for node, right in zip(nodes, rights):
            width = shape(right)[1]
            block = take_range(joined, 1, start, start + width)
            fgraph.replace(node.outputs[0], block, reason="merge_gemm")
            start = start + width


def _independent(nodes):
    """Drop products whose right operand depends on another product of the group (joining
    them would make a cycle)."""
    outs = {n.outputs[0] for n in nodes}
    keep = []
    for n in nodes:
        if outs.isdisjoint(set(ancestors([n.inputs[1]])) - {n.outputs[0]}):
            keep.append(n)
    return keep


def _int64(v):
    import numpy as np

    return np.int64(v)


@register_pass("merge_gemm", order=25)
def merge_gemm(fgraph: FunctionGraph) -> None:
    """Products that share their left operand become one product of the joined right
    operands (``dot(x, W_i), dot(x, W_f)`` -> ``dot(x, [W_i|W_f])`` and column blocks)."""
    merge_shared_left_products(fgraph)


@register_pass("scan_merge_gemm", order=10, phase="scan-trace")
def scan_merge_gemm(step: TracedStep) -> None:
    """``merge_gemm`` on a scan step, when it is traced."""
    merge_shared_left_products(step.inner)


@register_pass("scan_hoist_input_gemm", order=30, phase="scan-trace")
def scan_hoist_input_gemm(step: TracedStep) -> None:
    """``dot(x[t], W)`` with ``x`` a sequence and ``W`` a non-sequence becomes one product
    over all steps before the loop, fed in as a new sequence."""
    seq_inputs, nonseq_inputs = set(step.seq_inputs), set(step.nonseq_inputs)
    for node in step.inner.toposort():
        if not isinstance(node.op, Dot):
            continue
        a, w = node.inputs
        if a in seq_inputs and w in nonseq_inputs and a.ndim >= 1 and w.ndim == 2:
            projected = tensordot_last_first(step.outer_of(a), step.outer_of(w))
            out = node.outputs[0]
            slice_ = step.add_sequence(projected, out.type)
            step.inner.replace(out, slice_, reason="scan_hoist_input_gemm")
