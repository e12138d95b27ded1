"""Shape rewrites: read a reshape's length from the shape it was given.

- ``reshape_length``: ``reshape(x, (d0, ..., dn)).shape[i]`` -> ``di`` when ``di`` is a
  constant of at least 0 or another array's length (``y.shape[k]``, never -1). What
  only reads a reshaped array's shape then no longer needs the array: after
  ``gather_before_product``, the seed LSTM's embedding rows ``E[ids]`` were still
  gathered just to give the input sequence's shape.
"""

from __future__ import annotations

import numpy as np

from symgraph.graph import Constant, Variable
from symgraph.ops.shape import MakeVector, Reshape, Shape
from symgraph.ops.subtensor import Subtensor
from symgraph.rewriting import local_rewrite


def _never_negative(d: Variable) -> bool:
    if isinstance(d, Constant):
        return bool(np.all(np.asarray(d.value) >= 0))
    owner = d.owner
    return (owner is not None and isinstance(owner.op, Subtensor) and len(owner.inputs) == 1
            and owner.inputs[0].owner is not None
            and isinstance(owner.inputs[0].owner.op, Shape))


@local_rewrite("reshape_length", order=26)
def reshape_length(fgraph, node):
    """``Subtensor{i}(Shape(Reshape(x, MakeVector(d...))))`` -> ``d[i]``."""
    if not (isinstance(node.op, Subtensor) and len(node.inputs) == 1
            and len(node.op.idx_list) == 1 and isinstance(node.op.idx_list[0], int)):
        return None
    vector = node.inputs[0]
    if vector.owner is None or not isinstance(vector.owner.op, Shape):
        return None
    reshaped = vector.owner.inputs[0]
    if reshaped.owner is None or not isinstance(reshaped.owner.op, Reshape):
        return None
    lengths = reshaped.owner.inputs[1]
    if lengths.owner is None or not isinstance(lengths.owner.op, MakeVector):
        return None
    d = lengths.owner.inputs[node.op.idx_list[0]]
    out = node.outputs[0]
    if not _never_negative(d) or d.dtype != out.dtype or d.ndim != 0:
        return None
    return {out: d}
