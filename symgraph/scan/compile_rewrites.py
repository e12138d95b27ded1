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


@register_pass("scan_prune_outputs", order=51)
def scan_prune_outputs(fgraph: FunctionGraph) -> None:
    """Step outputs nothing reads are not stacked, and a step output equal to an earlier
    one (the same inner variable, after the step's own rewrites merged equal
    expressions) is read from the earlier: a loop stores only what is used. (Carries
    stay: the loop needs them.)"""
    clients = fgraph.clients
    for node in fgraph.toposort():
        op = node.op
        if not isinstance(op, Scan):
            continue
        inner_outs = op.inner.outputs[op.n_carry:]
        outer_outs = node.outputs[op.n_carry:]
        kept: dict = {}  # inner variable -> position among the kept step outputs
        same: dict = {}  # outer output -> the kept outer output with the same inner value
        for inner, outer in zip(inner_outs, outer_outs):
            if not clients.get(outer):
                continue
            if inner in kept:
                same[outer] = kept[inner]
            else:
                kept[inner] = outer
        if len(kept) == len(inner_outs):
            continue
        new_op = op.with_inner(FunctionGraph(
            op.inner.inputs, op.inner.outputs[:op.n_carry] + list(kept), copy=False))
        new_node = new_op.make_node(*node.inputs)
        replacements = list(zip(node.outputs[:op.n_carry], new_node.outputs[:op.n_carry]))
        replacements += list(zip(kept.values(), new_node.outputs[op.n_carry:]))
        by_old = dict(replacements)
        replacements += [(old, by_old[first]) for old, first in same.items()]
        for old, new in replacements:
            fgraph.replace(old, new, reason="scan_prune_outputs")


@register_pass("scan_prune_unread_inputs", order=52)
def scan_prune_unread_inputs(fgraph: FunctionGraph) -> None:
    """Sequences and non-sequences that the step (after its own rewrites, and after
    ``scan_prune_outputs`` dropped unread results) no longer reads are not passed to
    the loop: e.g. the saved gate pre-activations of an LSTM once the backward loop
    reads the saved activations instead. The loops that produced them then lose that
    reader, so ``scan_prune_outputs`` runs again (unless switched off) until nothing
    changes."""
    from symgraph.config import config

    while _prune_unread_inputs(fgraph) and "scan_prune_outputs" not in config.excluded_rewrites:
        scan_prune_outputs(fgraph)


def _prune_unread_inputs(fgraph: FunctionGraph) -> bool:
    changed = False
    for node in fgraph.toposort():
        op = node.op
        if not isinstance(op, Scan):
            continue
        clients = op.inner.clients
        n_steps, seqs, inits, nonseqs = op.split_inputs(list(node.inputs))
        inner_seq = op.inner.inputs[:op.n_seq]
        inner_nonseq = op.inner.inputs[op.n_seq + op.n_carry:]
        keep_seq = [k for k, v in enumerate(inner_seq) if clients.get(v)]
        keep_nonseq = [k for k, v in enumerate(inner_nonseq) if clients.get(v)]
        if len(keep_seq) == op.n_seq and len(keep_nonseq) == op.n_nonseq:
            continue
        carries = op.inner.inputs[op.n_seq: op.n_seq + op.n_carry]
        inner = FunctionGraph([inner_seq[k] for k in keep_seq] + list(carries)
                              + [inner_nonseq[k] for k in keep_nonseq], op.inner.outputs,
                              copy=False)
        new_op = op.with_inner(inner, len(keep_seq), len(keep_nonseq))
        new_node = new_op.make_node(n_steps, *[seqs[k] for k in keep_seq], *inits,
                                    *[nonseqs[k] for k in keep_nonseq])
        for old, new in zip(node.outputs, new_node.outputs):
            fgraph.replace(old, new, reason="scan_prune_unread_inputs")
        changed = True
    return changed


@register_pass("scan_inner_rewrites", order=50)
def scan_inner_rewrites(fgraph: FunctionGraph) -> None:
    """Rewrite each scan's step graph (a copy: the user's graph is left alone)."""
    for node in fgraph.toposort():
        op = node.op
        if not isinstance(op, Scan) or getattr(op, "inner_rewritten", False):
            continue
        inner = rewrite(FunctionGraph(op.inner.inputs, op.inner.outputs))
        new_op = op.with_inner(inner)
        new_op.inner_rewritten = True
        new_node = new_op.make_node(*node.inputs)
        for old, new in zip(node.outputs, new_node.outputs):
            fgraph.replace(old, new, reason="scan_inner_rewrites")
