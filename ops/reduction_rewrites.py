"""Rewrites of reductions.

``sum_of_squares``: the sum of squares of a whole array as one BLAS dot product.

.. math:: \\sum_i x_i^2 = \\mathrm{flat}(x) \\cdot \\mathrm{flat}(x)

Global-norm clipping and weight decay compute this for every parameter's gradient each
step; a dot product reads ``x`` once, vectorised, where the elementwise square and the
reduction write and read a temporary of ``x``'s size.

``reduce_over_unit_axes``: a sum, product, max or min over axes of static length 1 is no
reduction along them (:math:`\\sum_{i<1} x_i = x_0`): those axes are dropped, or kept
as they are with ``keepdims``. The gradient of a broadcast bias sums its cotangent over
the broadcast axes keeping them, then sums the result again over those length-1 axes.
"""

from __future__ import annotations

from symgraph.ops import scalar as S
from symgraph.ops.basic import cast
from symgraph.ops.blas import dot
from symgraph.ops.dimshuffle import dimshuffle
from symgraph.ops.elemwise import Elemwise
from symgraph.ops.reduce import Reduce
from symgraph.ops.shape import flatten
from symgraph.rewriting import local_rewrite


def _squared(v):
    """``x`` when ``v`` is ``x * x``, else None."""
    owner = v.owner
    if (owner is not None and isinstance(owner.op, Elemwise)
            and isinstance(owner.op.scalar_op, S.Mul) and len(owner.inputs) == 2
            and owner.inputs[0] is owner.inputs[1]):
        return owner.inputs[0]
    return None


@local_rewrite("sum_of_squares", order=32)
def sum_of_squares(fgraph, node):
    """See the module docstring: ``sum(x * x)`` over every axis -> ``dot(x, x)``."""
    op = node.op
    if not isinstance(op, Reduce) or op.kind != "sum" or op.keepdims:
        return None
    x = _squared(node.inputs[0])
    out = node.outputs[0]
    if (x is None or x.ndim == 0 or sorted(op.axes) != list(range(x.ndim))
            or x.dtype not in ("float32", "float64")):
        return None
    flat = flatten(x)
    total = dot(flat, flat)
    return {out: total if total.dtype == out.dtype else cast(total, out.dtype)}


@local_rewrite("reduce_over_unit_axes", order=33)
def reduce_over_unit_axes(fgraph, node):
    """See the module docstring: the axes of static length 1 leave the reduction."""
    op = node.op
    if not isinstance(op, Reduce):
        return None
    (x,), (out,) = node.inputs, node.outputs
    unit = [a for a in op.axes if x.type.shape[a] == 1]
    if not unit or x.dtype != out.dtype:  # a sum that widens the dtype stays a sum
        return None
    rest = [a for a in op.axes if a not in unit]
    if op.keepdims:
        return {out: Reduce(op.kind, tuple(rest), True)(x) if rest else x}
    dropped = dimshuffle(x, *[a for a in range(x.ndim) if a not in unit])
    if not rest:
        return {out: dropped}
    renumbered = tuple(a - sum(u < a for u in unit) for a in rest)
    return {out: Reduce(op.kind, renumbered, False)(dropped)}
