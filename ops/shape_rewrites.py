"""Shape rewrites: read a reshape's length from the shape it was given.

- ``reshape_length``: ``reshape(x, (d0, ..., dn)).shape[i]`` -> ``di`` when ``di`` is a
  constant of at least 0 or another array's length (``y.shape[k]``, never -1). What
  only reads a reshaped array's shape then no longer needs the array: after
  ``gather_before_product``, the seed LSTM's embedding rows ``E[ids]`` were still
  gathered just to give the input sequence's shape.
- ``gather_length``: ``table[idx].shape[i]`` -> ``idx.shape[i]`` for the axes of ``idx``,
  else ``table.shape[i - idx.ndim + 1]``: the gradient of a loop that gathers its inputs
  step by step (``scan_gather_in_step``) reads only the gathered rows' shape.
"""

from __future__ import annotations

import numpy as np

from symgraph.graph import Constant, Variable
from symgraph.ops.shape import MakeVector, Reshape, Shape, shape
from symgraph.ops.subtensor import AdvancedSubtensor1, Subtensor
from symgraph.rewriting import local_rewrite


def _never_negative(d: Variable) -> bool:
    if isinstance(d, Constant):
        return bool(np.all(np.asarray(d.value) >= 0))
    owner = d.owner
    return (owner is not None and isinstance(owner.op, Subtensor) and len(owner.inputs) == 1
            and owner.inputs[0].owner is not None
            and isinstance(owner.inputs[0].owner.op, Shape))


def length_read(node) -> tuple[Variable, int] | None:
    """``(x, i)`` when ``node`` is ``Subtensor{i}(Shape(x))``: one length of ``x``."""
    if not (isinstance(node.op, Subtensor) and len(node.inputs) == 1
            and len(node.op.idx_list) == 1 and isinstance(node.op.idx_list[0], int)):
        return None
    vector = node.inputs[0]
    if vector.owner is None or not isinstance(vector.owner.op, Shape):
        return None
    return vector.owner.inputs[0], node.op.idx_list[0]


@local_rewrite("reshape_length", order=26)
def reshape_length(fgraph, node):
    """``Subtensor{i}(Shape(Reshape(x, MakeVector(d...))))`` -> ``d[i]``."""
    read = length_read(node)
    if read is None:
        return None
    reshaped, i = read
    if reshaped.owner is None or not isinstance(reshaped.owner.op, Reshape):
        return None
    lengths = reshaped.owner.inputs[1]
    if lengths.owner is None or not isinstance(lengths.owner.op, MakeVector):
        return None
    d = lengths.owner.inputs[i]
    out = node.outputs[0]
    if not _never_negative(d) or d.dtype != out.dtype or d.ndim != 0:
        return None
    return {out: d}


def _gather_lengths(gathered: Variable) -> list | None:
    """The lengths of ``table[idx]`` from ``idx`` and ``table``, or None."""
    owner = gathered.owner
    if owner is None or not isinstance(owner.op, AdvancedSubtensor1):
        return None
    table, idx = owner.inputs
    return ([shape(idx)[k] for k in range(idx.ndim)]
            + [shape(table)[k] for k in range(1, table.ndim)])


@local_rewrite("gather_length", order=26)
def gather_length(fgraph, node):
    """``Shape(AdvancedSubtensor1(table, idx))`` -> the lengths of ``idx`` and of
    ``table`` past its first axis (a shape vector, or one entry of it)."""
    if isinstance(node.op, Shape):
        lengths = _gather_lengths(node.inputs[0])
        if lengths is None:
            return None
        return {node.outputs[0]: MakeVector("int64")(*lengths)}
    read = length_read(node)
    lengths = None if read is None else _gather_lengths(read[0])
    if lengths is None:
        return None
    return {node.outputs[0]: lengths[read[1] % len(lengths)]}
