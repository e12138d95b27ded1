"""The reference interpreter: runs each node's ``perform`` in topological order.

It is the oracle every other backend is tested against; clarity beats speed here.
"""

from __future__ import annotations

import numpy as np

from symgraph.errors import SymgraphError
from symgraph.fgraph import FunctionGraph
from symgraph.graph import Constant


class NodeError(SymgraphError, RuntimeError):
    """A node failed at run time; says which op and where its output was made."""


def compile(fgraph: FunctionGraph, n_inputs: int = 0):
    """A runner evaluating ``fgraph`` with numpy."""
    return Interpreter(fgraph)


class Interpreter:
    def __init__(self, fgraph: FunctionGraph) -> None:
        self.fgraph = fgraph
        self.nodes = fgraph.toposort()
        last_use: dict = {}
        for step, node in enumerate(self.nodes):
            for inp in node.inputs:
                last_use[inp] = step
        keep = set(fgraph.outputs) | set(fgraph.inputs)
        self.free_after = [[v for v in node.inputs if last_use.get(v) == step and v not in keep]
                           for step, node in enumerate(self.nodes)]

    def __call__(self, values):
        env = dict(zip(self.fgraph.inputs, values))
        for node, dead in zip(self.nodes, self.free_after):
            args = [v.value if isinstance(v, Constant) else env[v] for v in node.inputs]
            try:
                results = node.op.perform(node, args)
            except SymgraphError:
                raise
            except Exception as exc:
                raise NodeError(
                    f"{node.op} failed at run time on inputs of shapes "
                    f"{[getattr(a, 'shape', None) for a in args]} (node made at "
                    f"{node.outputs[0].creation}): {type(exc).__name__}: {exc}") from exc
            for out, value in zip(node.outputs, results):
                env[out] = _checked(node, out, value)
            for v in dead:
                env.pop(v, None)
        return [o.value if isinstance(o, Constant) else env[o] for o in self.fgraph.outputs]


def _checked(node, out, value):
    """Hold every op to its declared output type (dtype and rank)."""
    value = np.asarray(value)
    if value.dtype != out.dtype or value.ndim != out.ndim:
        raise NodeError(f"internal: {node.op}.perform returned {value.dtype} of rank "
                        f"{value.ndim}, declared {out.type}")
    return value
