"""Symbolic shapes through a graph, from each node's ``infer_shape``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from symgraph.graph import Constant, Variable, toposort


def static_or_symbolic_shape(var: Variable) -> tuple:
    """Shape of ``var`` as int64 scalars: constants where static, ``var.shape[i]`` else."""
    from symgraph.graph import OPERATORS

    dims = OPERATORS.shape(var)
    return tuple(dims[i] for i in range(var.ndim))


def infer_shapes(outputs: Sequence[Variable], inputs: Sequence[Variable],
                 input_shapes: Sequence[tuple]) -> list[tuple]:
    """Shapes of ``outputs`` given the shapes of ``inputs`` (tuples of int64 scalars).

    Nodes whose op has no ``infer_shape`` fall back to ``Shape`` of their (computed)
    output, so the result is always usable, if not always cheap.
    """
    known: dict = {v: tuple(s) for v, s in zip(inputs, input_shapes)}

    def shape_of(v):
        if v not in known:
            if isinstance(v, Constant):
                known[v] = tuple(Constant(np.int64(d)) for d in v.value.shape)
            else:
                known[v] = static_or_symbolic_shape(v)
        return known[v]

    for node in toposort(outputs, blockers=inputs):
        in_shapes = [shape_of(i) for i in node.inputs]
        try:
            out_shapes = node.op.infer_shape(node, in_shapes)
        except NotImplementedError:
            out_shapes = [static_or_symbolic_shape(o) for o in node.outputs]
        for out, s in zip(node.outputs, out_shapes):
            known[out] = tuple(s)
    return [shape_of(o) for o in outputs]
