"""DimShuffle: permute axes, insert broadcastable axes ('x') and drop axes of length 1."""

from __future__ import annotations

import numpy as np

from symgraph.errors import ShapeError
from symgraph.graph import Apply, Constant
from symgraph.op import Op
from symgraph.types import TensorType


class DimShuffle(Op):
    """``x.dimshuffle(*pattern)``: output axis ``k`` is input axis ``pattern[k]``, or a new
    axis of length 1 where ``pattern[k] == 'x'``. Input axes left out must have static
    length 1."""

    __props__ = ("pattern",)

    def __init__(self, pattern) -> None:
        self.pattern = tuple(p if p == "x" else int(p) for p in pattern)

    def make_node(self, x):
        kept = [p for p in self.pattern if p != "x"]
        if len(set(kept)) != len(kept) or any(not 0 <= p < x.ndim for p in kept):
            raise ShapeError(f"dimshuffle{self.pattern}: invalid for a {x.ndim}-d input "
                             f"({x.describe()})")
        dropped = [a for a in range(x.ndim) if a not in kept]
        for a in dropped:
            if x.type.shape[a] != 1:
                raise ShapeError(
                    f"dimshuffle{self.pattern} drops axis {a} of {x.describe()}, whose length "
                    f"is {'unknown' if x.type.shape[a] is None else x.type.shape[a]}; only "
                    "axes of static length 1 can be dropped")
        shape = tuple(1 if p == "x" else x.type.shape[p] for p in self.pattern)
        return Apply(self, [x], [TensorType(x.dtype, shape)])

    def perform(self, node, inputs):
        (x,) = inputs
        kept = [p for p in self.pattern if p != "x"]
        dropped = tuple(a for a in range(x.ndim) if a not in kept)
        y = np.transpose(np.squeeze(x, axis=dropped) if dropped else x,
                         np.argsort(np.argsort(kept)))
        return [np.reshape(y, [1 if p == "x" else x.shape[p] for p in self.pattern])]

    def pullback(self, inputs, outputs, cotangents):
        (x,), (g,) = inputs, cotangents
        new_axes = tuple(k for k, p in enumerate(self.pattern) if p == "x")
        if new_axes:  # sum (length-1 axes: a no-op on values, fixes the static shape) and drop
            g = g.sum(axis=new_axes, keepdims=True)
            g = DimShuffle([k for k in range(len(self.pattern)) if k not in new_axes])(g)
        kept = [p for p in self.pattern if p != "x"]  # g's axes are these input axes
        return [dimshuffle(g, *[kept.index(a) if a in kept else "x" for a in range(x.ndim)])]

    def infer_shape(self, node, input_shapes):
        (shape,) = input_shapes
        return [tuple(Constant(np.int64(1)) if p == "x" else shape[p] for p in self.pattern)]


def dimshuffle(x, *pattern):
    """``x.dimshuffle(1, 'x', 0)``; a single list or tuple argument works too."""
    from symgraph.ops.basic import as_tensor_variable

    if len(pattern) == 1 and isinstance(pattern[0], list | tuple):
        pattern = tuple(pattern[0])
    x = as_tensor_variable(x)
    if tuple(pattern) == tuple(range(x.ndim)):
        return x
    return DimShuffle(pattern)(x)
