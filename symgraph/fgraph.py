"""FunctionGraph: a private, mutable copy of a graph that rewrites edit in place.

It knows each variable's clients (the nodes that use it) and supports ``replace``.
"""

from __future__ import annotations

from collections.abc import Sequence

from symgraph.errors import GraphError
from symgraph.graph import Apply, Variable, ancestors, copy_graph, toposort

OUTPUT = "output"  # the client marker for a graph output


class FunctionGraph:
    """The graph from ``inputs`` to ``outputs``, copied unless ``copy=False``.

    ``clients[var]`` lists ``(node, i)`` pairs, ``node.inputs[i] is var``; a graph output
    appears as ``(OUTPUT, i)``.
    """

    def __init__(self, inputs: Sequence[Variable], outputs: Sequence[Variable],
                 copy: bool = True) -> None:
        if copy:
            outputs, memo = copy_graph(outputs, inputs)
            inputs = [memo[v] for v in inputs]
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self._clients: dict | None = None

    # ---- structure --------------------------------------------------------------------
    def toposort(self) -> list[Apply]:
        return toposort(self.outputs, blockers=self.inputs)

    @property
    def apply_nodes(self) -> list[Apply]:
        return self.toposort()

    @property
    def variables(self) -> list[Variable]:
        return ancestors(self.outputs, blockers=self.inputs)

    @property
    def clients(self) -> dict:
        if self._clients is None:
            clients: dict = {v: [] for v in self.inputs}
            for node in self.toposort():
                for i, inp in enumerate(node.inputs):
                    clients.setdefault(inp, []).append((node, i))
                for out in node.outputs:
                    clients.setdefault(out, [])
            for i, out in enumerate(self.outputs):
                clients.setdefault(out, []).append((OUTPUT, i))
            self._clients = clients
        return self._clients

    # ---- editing ----------------------------------------------------------------------
    def replace(self, old: Variable, new: Variable, reason: str = "") -> None:
        """Make every client of ``old`` use ``new`` instead."""
        if old is new:
            return
        if old.type.dtype != new.type.dtype or old.type.ndim != new.type.ndim:
            raise GraphError(
                f"rewrite {reason or '?'} tried to replace {old.type} by {new.type}"
            )
        for client, i in self.clients.get(old, []):
            if client == OUTPUT:
                self.outputs[i] = new
            else:
                client.inputs[i] = new
        self._clients = None

    def replace_all(self, pairs, reason: str = "") -> None:
        for old, new in pairs:
            self.replace(old, new, reason)

    def __repr__(self) -> str:
        return f"FunctionGraph({len(self.toposort())} nodes, {len(self.outputs)} outputs)"
