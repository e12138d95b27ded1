"""Elemwise: a scalar op applied to every element of same-rank, broadcast inputs.

Inputs of lower rank are padded on the left with broadcastable axes. Only axes of static
length 1 broadcast; the pullback therefore sums each input's cotangent over exactly the
axes where that input has static length 1 and the output does not.
"""

from __future__ import annotations

import numpy as np

from symgraph.errors import ShapeError
from symgraph.graph import Apply, Constant, Variable
from symgraph.op import Op
from symgraph.ops.dimshuffle import dimshuffle
from symgraph.ops.scalar import ScalarOp
from symgraph.types import TensorType, broadcast_shapes, format_shape

#: gradient rules: ``PULLBACKS[type(scalar_op)](scalar_op, inputs, output, cotangent)``
#: returns one cotangent (of the output's shape) or ``disconnected()`` per input.
PULLBACKS: dict = {}


def defpullback(*scalar_classes):
    """Register a gradient rule for one or more ScalarOp classes."""

    def deco(fn):
        for cls in scalar_classes:
            PULLBACKS[cls] = fn
        return fn

    return deco


class Elemwise(Op):
    """Apply ``scalar_op`` elementwise."""

    __props__ = ("scalar_op",)

    def __init__(self, scalar_op: ScalarOp) -> None:
        self.scalar_op = scalar_op

    def __str__(self) -> str:
        return f"Elemwise{{{self.scalar_op!r}}}"

    def make_node(self, *inputs: Variable) -> Apply:
        if len(inputs) != self.scalar_op.nin:
            raise TypeError(f"{self} takes {self.scalar_op.nin} inputs, got {len(inputs)}")
        ndim = max(v.ndim for v in inputs)
        inputs = [v if v.ndim == ndim else dimshuffle(v, *(["x"] * (ndim - v.ndim)),
                                                      *range(v.ndim)) for v in inputs]
        shape = broadcast_shapes(*(v.type.shape for v in inputs))
        if shape is None:
            raise ShapeError(_mismatch_message(self, inputs))
        dtype = self.scalar_op.output_dtype(*(v.dtype for v in inputs))
        return Apply(self, inputs, [TensorType(dtype, shape)])

    def perform(self, node, inputs):
        _check_runtime_shapes(node, inputs)
        with np.errstate(all="ignore"):
            out = self.scalar_op(*inputs)
        return [np.asarray(out, dtype=node.outputs[0].dtype)]

    def pullback(self, inputs, outputs, cotangents):
        (out,), (g,) = outputs, cotangents
        rule = PULLBACKS.get(type(self.scalar_op))
        if rule is None:
            from symgraph.op import NotImplementedGrad

            return [NotImplementedGrad(self, i) for i in range(len(inputs))]
        grads = rule(self.scalar_op, inputs, out, g)
        return [gi if not isinstance(gi, Variable) else sum_to(gi, x)
                for gi, x in zip(grads, inputs)]

    def infer_shape(self, node, input_shapes):
        dims = []
        for axis in range(node.outputs[0].ndim):
            source = next((s[axis] for v, s in zip(node.inputs, input_shapes)
                           if v.type.shape[axis] != 1), None)
            dims.append(source if source is not None else Constant(np.int64(1)))
        return [tuple(dims)]


def sum_to(g: Variable, x: Variable) -> Variable:
    """Reduce the cotangent ``g`` to the shape of ``x``: sum over the axes where ``x`` has
    static length 1 and ``g`` may not; broadcast where ``g`` is static 1 and ``x`` is not."""
    axes = tuple(a for a, (gs, xs) in enumerate(zip(g.type.shape, x.type.shape))
                 if xs == 1 and gs != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    if any(gs == 1 and xs != 1 for gs, xs in zip(g.type.shape, x.type.shape)):
        from symgraph.ops.basic import zeros_like

        g = g + zeros_like(x)
    return g


def _mismatch_message(op, inputs) -> str:
    parts = [f"  input {i}: shape {format_shape(v.type.shape)} made at {v.creation}"
             for i, v in enumerate(inputs)]
    return (f"{op}: shapes cannot be broadcast (only axes of static length 1 broadcast):\n"
            + "\n".join(parts))


def _check_runtime_shapes(node, values) -> None:
    shapes = [v.shape for v in values]
    for axis in range(node.outputs[0].ndim):
        sizes = {s[axis] for s, var in zip(shapes, node.inputs) if var.type.shape[axis] != 1}
        if len(sizes) > 1:
            detail = "\n".join(f"  input {i}: shape {s} (made at {var.creation})"
                               for i, (s, var) in enumerate(zip(shapes, node.inputs)))
            raise ShapeError(f"{node.op}: run-time shapes do not match on axis {axis} "
                             f"(only axes of static length 1 broadcast):\n{detail}")
