"""The Scan op: one loop over time with a carry / sequence / non-sequence core.

Inputs of a Scan node::

    [n_steps, *sequences, *initial_carries, *non_sequences]

Step ``t`` runs the inner graph on ``(sequences[k][t]..., carries..., non_sequences...)``
and gets ``(new_carries..., step_outputs...)``. Outputs of the node::

    [*carry_outputs, *stacked_step_outputs]

where carry output ``k`` is the stacked history ``(c_1, ..., c_T)`` when
``keep_history[k]`` is true (Theano's semantics) and the final carry ``c_T`` otherwise.
"""

from __future__ import annotations

import numpy as np

from symgraph.errors import ShapeError
from symgraph.fgraph import FunctionGraph
from symgraph.graph import Apply, Variable
from symgraph.op import Op
from symgraph.shape_inference import infer_shapes, static_or_symbolic_shape
from symgraph.types import TensorType, format_shape


class Scan(Op):
    """See the module docstring. ``inner`` is a FunctionGraph whose inputs are
    ``[*sequence_slices, *carries, *non_sequences]`` and outputs
    ``[*new_carries, *step_outputs]``."""

    __props__ = ("inner", "n_seq", "n_carry", "n_nonseq", "keep_history", "truncate_gradient",
                 "exact_length")
    foldable = False

    def __init__(self, inner: FunctionGraph, n_seq: int, n_carry: int, n_nonseq: int,
                 keep_history: tuple[bool, ...], truncate_gradient: int = -1,
                 exact_length: bool = False, name: str = "scan") -> None:
        self.inner = inner
        self.n_seq, self.n_carry, self.n_nonseq = n_seq, n_carry, n_nonseq
        self.keep_history = tuple(keep_history)
        self.truncate_gradient = int(truncate_gradient)
        self.exact_length = bool(exact_length)  # every sequence has exactly n_steps entries
        self.name = name
        self.n_out = len(inner.outputs) - n_carry
        self._runner = None

    def __str__(self) -> str:
        return (f"Scan{{{self.name}, seq={self.n_seq}, carry={self.n_carry}, "
                f"nonseq={self.n_nonseq}, out={self.n_out}}}")

    def __hash__(self) -> int:
        return hash((Scan, id(self.inner), self.keep_history, self.truncate_gradient))

    def __eq__(self, other) -> bool:
        return type(other) is Scan and other.inner is self.inner and all(
            getattr(self, p) == getattr(other, p) for p in self.__props__[1:])

    # ---- groups of inputs and outputs -------------------------------------------------
    def split_inputs(self, inputs):
        """``(n_steps, sequences, initial_carries, non_sequences)``"""
        s, c = 1 + self.n_seq, 1 + self.n_seq + self.n_carry
        return inputs[0], list(inputs[1:s]), list(inputs[s:c]), list(inputs[c:])

    def with_history(self) -> Scan:
        """The same loop with every carry's history kept."""
        if all(self.keep_history):
            return self
        return Scan(self.inner, self.n_seq, self.n_carry, self.n_nonseq,
                    (True,) * self.n_carry, self.truncate_gradient, self.exact_length, self.name)

    def with_inner(self, inner: FunctionGraph, n_seq: int | None = None,
                   n_nonseq: int | None = None) -> Scan:
        """The same loop (carries, history, truncation, name) with the step ``inner``,
        which may take fewer sequences or non-sequences; a step already rewritten
        (``inner_rewritten``) stays marked so."""
        op = Scan(inner, self.n_seq if n_seq is None else n_seq, self.n_carry,
                  self.n_nonseq if n_nonseq is None else n_nonseq, self.keep_history,
                  self.truncate_gradient, self.exact_length, self.name)
        op.inner_rewritten = getattr(self, "inner_rewritten", False)
        return op

    def with_step_outputs(self, extra) -> Scan:
        """The same loop also stacking the inner variables ``extra`` (values the step
        computes or receives) as per-step outputs, appended after the existing ones. The
        inner graph shares its variables with this one, so that the compile-time rewrite
        ``scan_merge_extended`` can tell the two loops compute the same thing."""
        return self.with_inner(FunctionGraph(self.inner.inputs,
                                             self.inner.outputs + list(extra), copy=False))

    def extends(self, other: Scan) -> bool:
        """Whether this loop is ``other`` with step outputs appended."""
        mine, theirs = self.inner, other.inner
        return (len(mine.inputs) == len(theirs.inputs)
                and all(a is b for a, b in zip(mine.inputs, theirs.inputs))
                and len(mine.outputs) >= len(theirs.outputs)
                and all(a is b for a, b in zip(mine.outputs, theirs.outputs))
                and all(getattr(self, p) == getattr(other, p) for p in self.__props__[1:]))

    def make_node(self, n_steps, *args):
        if len(args) != self.n_seq + self.n_carry + self.n_nonseq:
            raise TypeError(f"{self}: expected {self.n_seq + self.n_carry + self.n_nonseq} "
                            f"inputs after n_steps, got {len(args)}")
        _, seqs, inits, _ = self.split_inputs([n_steps, *args])
        length = _static_steps(n_steps)
        for k, (seq, inner) in enumerate(zip(seqs, self.inner.inputs)):
            if seq.ndim != inner.ndim + 1 or seq.dtype != inner.dtype:
                raise TypeError(f"scan: sequence {k} ({seq.describe()}) does not match the "
                                f"step's slice type {inner.type}")
        out_types = []
        for k, init in enumerate(inits):
            carry_shape = self.inner.outputs[k].type.shape
            shape = tuple(a if a is not None else b for a, b in zip(init.type.shape,
                                                                     carry_shape))
            if self.keep_history[k]:
                shape = (length,) + shape
            out_types.append(TensorType(init.dtype, shape))
        for out in self.inner.outputs[self.n_carry:]:
            out_types.append(TensorType(out.dtype, (length,) + out.type.shape))
        return Apply(self, [n_steps, *args], out_types)

    # ---- numpy reference --------------------------------------------------------------
    def runner(self):
        if self._runner is None:
            from symgraph.backends.numpy_backend import Interpreter

            self._runner = Interpreter(self.inner)
        return self._runner

    def perform(self, node, inputs):
        n_steps, seqs, carries, nonseqs = self.split_inputs(list(inputs))
        n = _check_lengths(node, int(n_steps), seqs, self.exact_length)
        run = self.runner()
        histories = [np.empty((n,) + c.shape, c.dtype) if keep else None
                     for c, keep in zip(carries, self.keep_history)]
        outs: list = [None] * self.n_out
        for t in range(n):
            results = run([s[t] for s in seqs] + carries + nonseqs)
            new = results[: self.n_carry]
            for k, (old, value) in enumerate(zip(carries, new)):
                if value.shape != old.shape:
                    raise ShapeError(
                        f"scan step {t} changed the shape of carry {k} from {old.shape} to "
                        f"{value.shape} (scan made at {node.outputs[0].creation})")
                if histories[k] is not None:
                    histories[k][t] = value
            carries = [np.asarray(v) for v in new]
            for j, value in enumerate(results[self.n_carry:]):
                if outs[j] is None:
                    outs[j] = np.empty((n,) + value.shape, value.dtype)
                outs[j][t] = value
        if n == 0 and outs:
            outs = [np.zeros((0,) + shape, out.dtype) for shape, out in zip(
                self.step_shapes(node, seqs, carries, nonseqs),
                self.inner.outputs[self.n_carry:])]
        carry_outs = [h if h is not None else c for h, c in zip(histories, carries)]
        return carry_outs + outs

    def step_shapes(self, node, seqs, carries, nonseqs) -> list[tuple]:
        """The shapes the step outputs would have, for a loop of zero steps (whose stacked
        outputs still need their trailing shape): the step's shape inference, run on the
        initial carries, the non-sequences and the sequences' slice shapes (host arrays).
        A shape that depends on a sequence's values is an error."""
        from symgraph.backends.numpy_backend import Interpreter
        from symgraph.ops.shape import Shape

        inputs = self.inner.inputs
        step = infer_shapes(self.inner.outputs[self.n_carry:], inputs,
                            [static_or_symbolic_shape(v) for v in inputs])
        shape_graph = FunctionGraph(inputs, [d for s in step for d in s], copy=False)
        slices = set(inputs[: self.n_seq])
        for user in shape_graph.toposort():
            if not isinstance(user.op, Shape) and any(v in slices for v in user.inputs):
                raise ShapeError(f"scan of zero steps: the shape of a step output depends on "
                                 f"the values of a sequence, so it is unknown (scan made at "
                                 f"{node.outputs[0].creation}); give the loop at least one "
                                 f"step")
        empty = [np.zeros(s.shape[1:], s.dtype) for s in seqs]
        values = iter(Interpreter(shape_graph)(empty + list(carries) + list(nonseqs)))
        return [tuple(int(next(values)) for _ in s) for s in step]

    # ---- gradient and shapes ----------------------------------------------------------
    def pullback(self, inputs, outputs, cotangents):
        from symgraph.scan.pullback import scan_pullback

        return scan_pullback(self, inputs, outputs, cotangents)

    def infer_shape(self, node, input_shapes):
        n_steps = node.inputs[0]
        _, seq_shapes, carry_shapes, nonseq_shapes = self.split_inputs(input_shapes)
        inner_in = [s[1:] for s in seq_shapes] + list(carry_shapes) + list(nonseq_shapes)
        out_shapes = []
        for k, shape in enumerate(carry_shapes):
            out_shapes.append(((n_steps,) + tuple(shape)) if self.keep_history[k]
                              else tuple(shape))
        step_shapes = infer_shapes(self.inner.outputs[self.n_carry:], self.inner.inputs,
                                   inner_in)
        if any(_mentions(s, self.inner.inputs) for s in step_shapes):
            raise NotImplementedError("scan output shape depends on inner values")
        out_shapes += [(n_steps,) + tuple(s) for s in step_shapes]
        return out_shapes


def _mentions(shape, inner_inputs) -> bool:
    from symgraph.graph import graph_inputs

    roots = set(graph_inputs(list(shape)))
    return any(v in roots for v in inner_inputs)


def _static_steps(n_steps: Variable):
    from symgraph.graph import Constant

    return int(n_steps.value) if isinstance(n_steps, Constant) else None


def _check_lengths(node, n: int, seqs, exact: bool) -> int:
    if n < 0:
        raise ShapeError(f"scan: n_steps must be >= 0, got {n} (scan made at "
                         f"{node.outputs[0].creation})")
    for k, s in enumerate(seqs):
        if exact and s.shape[0] != n:
            raise ShapeError(f"scan: the sequences differ in length: sequence 0 has {n} steps, "
                             f"sequence {k} has {s.shape[0]} (shape {s.shape}; scan made at "
                             f"{node.outputs[0].creation}); pass n_steps to use a prefix")
        if s.shape[0] < n:
            raise ShapeError(f"scan: sequence {k} has {s.shape[0]} steps, fewer than n_steps="
                             f"{n} (shape {s.shape}, expected {format_shape((n,) + s.shape[1:])}"
                             f"; scan made at {node.outputs[0].creation})")
    return n
