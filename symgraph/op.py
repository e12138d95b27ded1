"""The Op contract, and the markers a pullback returns for inputs without a gradient.

An op is a small class::

    class Softmax(Op):
        __props__ = ("axis",)              # equality, hashing and printing come from these
        def make_node(self, x): ...        # check inputs, return Apply with output types
        def perform(self, node, inputs): ...   # numpy reference: list of arrays -> list
        def pullback(self, inputs, outputs, cotangents): ...  # symbolic VJP per input
        def infer_shape(self, node, input_shapes): ...  # symbolic output shapes

``pullback`` receives the output cotangents (``None`` for an output that received none)
and returns one entry per input: a variable, :func:`disconnected` (no dependency, e.g.
integer labels) or :class:`NotImplementedGrad` (raises only if that gradient is needed).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from symgraph.errors import GradientError
from symgraph.graph import Apply, Variable


class Disconnected:
    """Marker: the output does not depend (differentiably) on this input."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "disconnected"


def disconnected() -> Disconnected:
    """The typed marker for an input with no gradient path (labels, masks, shapes)."""
    return Disconnected()


class NotImplementedGrad:
    """Marker: this op has no gradient rule for an input; raises only if needed."""

    def __init__(self, op: Op, input_index: int, reason: str = "") -> None:
        self.op, self.input_index, self.reason = op, input_index, reason

    def error(self, wrt_name: str) -> GradientError:
        why = f": {self.reason}" if self.reason else ""
        return GradientError(
            f"the gradient of {self.op} with respect to its input {self.input_index} is not "
            f"implemented{why} (needed for the gradient with respect to {wrt_name})"
        )


class Props:
    """Equality and hashing derived from the attributes named in ``__props__``."""

    __props__: tuple[str, ...] = ()

    def _props(self) -> tuple:
        return tuple(getattr(self, p) for p in self.__props__)

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self._props() == other._props()

    def __hash__(self) -> int:
        return hash((type(self), self._props()))


class Op(Props):
    """Base class of graph operations; see the module docstring for the contract."""

    #: False for ops whose result must not be precomputed at compile time
    #: (random draws, large allocations).
    foldable: bool = True

    def __str__(self) -> str:
        name = type(self).__name__
        if not self.__props__:
            return name
        return f"{name}{{{', '.join(str(p) for p in self._props())}}}"

    __repr__ = __str__

    def __call__(self, *inputs):
        node = self.make_node(*inputs)
        return node.outputs[0] if len(node.outputs) == 1 else node.outputs

    def make_node(self, *inputs) -> Apply:
        raise NotImplementedError

    def perform(self, node: Apply, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def pullback(self, inputs: Sequence[Variable], outputs: Sequence[Variable],
                 cotangents: Sequence[Variable | None]) -> list:
        return [NotImplementedGrad(self, i) for i in range(len(inputs))]

    def infer_shape(self, node: Apply, input_shapes: Sequence[tuple]) -> list[tuple]:
        raise NotImplementedError(f"{self} has no infer_shape")
