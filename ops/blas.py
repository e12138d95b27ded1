"""Matrix products: ``dot`` (vector/matrix combinations, numpy semantics) and
``batched_dot``, with pullbacks :math:`\\bar A = \\bar C B^T`, :math:`\\bar B = A^T \\bar C`."""

from __future__ import annotations

import numpy as np

from symgraph.errors import ShapeError
from symgraph.graph import Apply
from symgraph.op import Op
from symgraph.ops.basic import as_tensor_variable, cast
from symgraph.types import TensorType

__all__ = ["dot", "outer", "batched_dot", "tensordot_last_first"]


class Dot(Op):
    """``np.dot`` for inputs of rank 1 or 2 (vector·vector, matrix·vector, vector·matrix,
    matrix·matrix)."""

    def make_node(self, a, b):
        if a.ndim not in (1, 2) or b.ndim not in (1, 2):
            raise ShapeError(f"dot: inputs must be vectors or matrices, got {a.describe()} "
                             f"and {b.describe()} (use T.tensordot_last_first for higher rank)")
        ka, kb = a.type.shape[-1], b.type.shape[0]
        if ka is not None and kb is not None and ka != kb:
            raise ShapeError(f"dot: inner dimensions differ: {a.describe()} has {ka} columns, "
                             f"{b.describe()} has {kb} rows")
        dtype = str(np.result_type(np.dtype(a.dtype), np.dtype(b.dtype)))
        shape = a.type.shape[:-1] + b.type.shape[1:]
        return Apply(self, [cast(a, dtype), cast(b, dtype)], [TensorType(dtype, shape)])

    def perform(self, node, inputs):
        a, b = inputs
        if a.shape[-1] != b.shape[0]:
            raise ShapeError(f"dot: inner dimensions differ at run time: {a.shape} and "
                             f"{b.shape} (made at {node.outputs[0].creation})")
        return [np.asarray(np.dot(a, b), dtype=node.outputs[0].dtype)]

    def pullback(self, inputs, outputs, cotangents):
        a, b = inputs
        (g,) = cotangents
        if a.ndim == 1 and b.ndim == 1:  # g scalar
            return [g * b, g * a]
        if a.ndim == 2 and b.ndim == 1:  # g (m,)
            return [outer(g, b), dot(g, a)]
        if a.ndim == 1 and b.ndim == 2:  # g (n,)
            return [dot(b, g), outer(a, g)]
        return [dot(g, b.T), dot(a.T, g)]

    def infer_shape(self, node, input_shapes):
        sa, sb = input_shapes
        return [tuple(sa[:-1]) + tuple(sb[1:])]


def dot(a, b):
    """Matrix/vector product as ``np.dot`` for rank-1 and rank-2 inputs; a rank-3 ``a``
    times a matrix contracts ``a``'s last axis (``(T, B, n) · (n, m) -> (T, B, m)``)."""
    a, b = as_tensor_variable(a), as_tensor_variable(b)
    if a.ndim == 0 or b.ndim == 0:
        return a * b
    if a.ndim > 2 and b.ndim <= 2:
        return tensordot_last_first(a, b)
    return Dot()(a, b)


def tensordot_last_first(a, b):
    """Contract the last axis of ``a`` with the first axis of a vector or matrix ``b``."""
    from symgraph.ops.shape import reshape, shape

    a, b = as_tensor_variable(a), as_tensor_variable(b)
    lead = [shape(a)[i] for i in range(a.ndim - 1)]
    flat = reshape(a, [-1, shape(a)[a.ndim - 1]])
    out = Dot()(flat, b)
    tail = [shape(b)[1]] if b.ndim == 2 else []
    return reshape(out, lead + tail)


def outer(a, b):
    """Outer product of two vectors, :math:`a b^T`."""
    a, b = as_tensor_variable(a), as_tensor_variable(b)
    return a.dimshuffle(0, "x") * b.dimshuffle("x", 0)


def batched_dot(a, b):
    """``out[i] = dot(a[i], b[i])`` for rank-3 ``a`` and ``b``."""
    a, b = as_tensor_variable(a), as_tensor_variable(b)
    return (a.dimshuffle(0, 1, 2, "x") * b.dimshuffle(0, "x", 1, 2)).sum(axis=2)
