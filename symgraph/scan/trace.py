"""Rewrites of a scan's step, applied when ``sg.scan`` traces it.

They run before any gradient is taken, so the gradient scan (built by
``symgraph.scan.pullback`` from the step graph) is derived from the rewritten step: a
step whose four gate products were merged into one has a pullback with one product too.
Passes are registered with ``register_pass(name, order, phase="scan-trace")`` and receive
a :class:`TracedStep`; ``sg.config.excluded_rewrites`` switches them off by name.

The op-agnostic pass here, ``scan_hoist_invariants``, moves work that depends only on
non-sequences out of the loop (loop-invariant code motion).
"""

from __future__ import annotations

from symgraph.fgraph import FunctionGraph
from symgraph.graph import Constant, Variable, rebuild
from symgraph.rewriting import register_pass, selected


class TracedStep:
    """A traced step graph with its outer sequences and non-sequences.

    ``inner.inputs`` is ``[*sequence_slices, *carries, *non_sequences]``; ``seqs`` and
    ``nonseqs`` are the matching outer variables. Passes edit ``inner`` and may add
    sequences or non-sequences.
    """

    def __init__(self, inner: FunctionGraph, seqs: list, n_carry: int, nonseqs: list) -> None:
        self.inner, self.seqs, self.n_carry, self.nonseqs = inner, list(seqs), n_carry, list(
            nonseqs)

    @property
    def seq_inputs(self) -> list[Variable]:
        return self.inner.inputs[: len(self.seqs)]

    @property
    def carry_inputs(self) -> list[Variable]:
        return self.inner.inputs[len(self.seqs): len(self.seqs) + self.n_carry]

    @property
    def nonseq_inputs(self) -> list[Variable]:
        return self.inner.inputs[len(self.seqs) + self.n_carry:]

    def outer_of(self, inner_var: Variable) -> Variable:
        """The outer variable feeding a sequence slice or a non-sequence placeholder."""
        k = self.inner.inputs.index(inner_var)
        if k < len(self.seqs):
            return self.seqs[k]
        return self.nonseqs[k - len(self.seqs) - self.n_carry]

    def add_sequence(self, outer: Variable, slice_type) -> Variable:
        """Append an outer sequence; returns its per-step placeholder."""
        p = Variable(slice_type)
        self.inner.inputs.insert(len(self.seqs), p)
        self.seqs.append(outer)
        self.inner._clients = None
        return p

    def add_non_sequence(self, outer: Variable) -> Variable:
        """Append an outer non-sequence; returns its inner placeholder."""
        p = Variable(outer.type)
        p.creation = outer.creation
        self.inner.inputs.append(p)
        self.nonseqs.append(outer)
        self.inner._clients = None
        return p

    def to_outer(self, inner_var: Variable) -> Variable:
        """Rebuild an inner expression of non-sequences and constants outside the loop."""
        mapping = {p: o for p, o in zip(self.nonseq_inputs, self.nonseqs)}
        return rebuild([inner_var], mapping)[0][0]


def enabled(name: str) -> bool:
    """Whether the scan rewrite ``name`` is switched on (``config.excluded_rewrites``)."""
    from symgraph.config import config

    return name not in config.excluded_rewrites


def run_trace_passes(step: TracedStep) -> TracedStep:
    """Apply the enabled ``scan-trace`` passes in order."""
    for r in selected(phase="scan-trace"):
        r.apply(step)
    return step


def invariant_variables(step: TracedStep) -> set:
    """Inner variables that depend on non-sequences and constants only, and on at least
    one non-sequence (constant subgraphs stay inside, where constant folding takes them),
    computed by ops that may run ahead (``foldable``)."""
    invariant = set(step.nonseq_inputs)
    for node in step.inner.toposort():
        if (node.op.foldable and any(i in invariant for i in node.inputs)
                and all(isinstance(i, Constant) or i in invariant for i in node.inputs)):
            invariant.update(node.outputs)
    return invariant


@register_pass("scan_hoist_invariants", order=20, phase="scan-trace")
def hoist_invariants(step: TracedStep) -> None:
    """Compute step work that depends only on non-sequences once, before the loop, and
    pass it in as a non-sequence (e.g. the concatenated gate weights, ``W.T``)."""
    invariant = invariant_variables(step)
    placeholders = set(step.nonseq_inputs)
    frontier = []
    for var, users in step.inner.clients.items():
        if var not in invariant or var in placeholders or isinstance(var, Constant):
            continue
        if any(node == "output" or not all(o in invariant for o in node.outputs)
               for node, _ in users):
            frontier.append(var)
    for var in frontier:
        outer = step.to_outer(var)
        step.inner.replace(var, step.add_non_sequence(outer), reason="scan_hoist_invariants")


@register_pass("scan_prune_inputs", order=90, phase="scan-trace")
def prune_inputs(step: TracedStep) -> None:
    """Drop sequences and non-sequences the step no longer uses (after hoisting)."""
    used = set()
    for node in step.inner.toposort():
        used.update(node.inputs)
    used.update(step.inner.outputs)
    n_seq = len(step.seqs)
    keep_seq = [k for k in range(n_seq) if step.inner.inputs[k] in used]
    nonseq_start = n_seq + step.n_carry
    keep_nonseq = [k for k in range(len(step.nonseqs))
                   if step.inner.inputs[nonseq_start + k] in used]
    carries = step.carry_inputs
    step.inner.inputs = ([step.inner.inputs[k] for k in keep_seq] + carries
                         + [step.inner.inputs[nonseq_start + k] for k in keep_nonseq])
    step.seqs = [step.seqs[k] for k in keep_seq]
    step.nonseqs = [step.nonseqs[k] for k in keep_nonseq]
    step.inner._clients = None


@register_pass("scan_weight_grad_gemm", order=95, phase="scan-trace")
def _weight_grad_gemm(step: TracedStep) -> None:
    """In the gradient of a scan, the cotangent of a weight used only in products with a
    sequence or carry is one GEMM over the saved operands after the backward loop instead
    of T small ones accumulated inside it (applied by ``symgraph.scan.pullback``; this
    entry names the switch)."""


@register_pass("scan_save_products", order=96, phase="scan-trace")
def _save_products(step: TracedStep) -> None:
    """In the gradient of a scan, the values of the step's matrix products are saved by
    the forward loop (extra per-step outputs) instead of recomputed by the backward one
    (applied by ``symgraph.scan.pullback``; this entry names the switch)."""


@register_pass("scan_save_activations", order=97, phase="scan-trace")
def _save_activations(step: TracedStep) -> None:
    """In the gradient of a scan, the outputs of the step's sigmoid, tanh and exp (whose
    derivatives need only their outputs) are saved by the forward loop instead of
    recomputed by the backward one (applied by ``symgraph.scan.pullback``; this entry
    names the switch)."""
