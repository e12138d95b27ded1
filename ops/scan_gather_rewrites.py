"""``scan_gather_in_step``: a loop over looked-up rows looks them up step by step.

An embedded sequence fed to a loop is a gather of table rows reshaped to time-major::

    X = reshape(P[reshape(ids, (-1,))], (T, B, d))      # P: V x d, ids: T x B
    scan(step, sequences=[X, ...])                       # step reads x_t = X[t]

Materialising ``X`` writes ``T B d`` values that the loop then reads back (with a
character model's ``d = 4h`` gate pre-activations after ``gather_before_product``, more
than the rest of the forward pass). Instead the loop takes the ids as its sequence and
the table as a non-sequence, and its step gathers ``x_t = P[ids_t]``: the rows are read
from a table that stays in cache, and in row parts each part gathers its own rows.

It applies when ``X`` is read by nothing but the loop, its shape is the ids' shape and a
constant ``d``, and the ids are an integer matrix. The reshape then fails unless ``P`` has
``d`` columns; the table given to the loop is checked to have them.
"""

from __future__ import annotations

from symgraph.fgraph import FunctionGraph
from symgraph.graph import Constant, Variable
from symgraph.ops.basic import tensor
from symgraph.ops.shape import MakeVector, Reshape, specify_shape
from symgraph.ops.shape_rewrites import length_read
from symgraph.ops.subtensor import AdvancedSubtensor1
from symgraph.rewriting import register_pass
from symgraph.scan.op import Scan


def _length(dim: Variable, of: Variable, axis: int) -> bool:
    """Whether ``dim`` is ``of.shape[axis]``."""
    read = None if dim.owner is None else length_read(dim.owner)
    return read is not None and read[0] is of and read[1] == axis


def _looked_up(seq: Variable):
    """``(table, ids, width)`` when ``seq`` is ``reshape(table[reshape(ids, (-1,))],
    (ids.shape[0], ids.shape[1], width))`` with ``ids`` an integer matrix and ``width``
    a constant, else None. (Then ``table`` has ``width`` columns, or the reshape fails
    for any non-empty ``ids``.)"""
    node = seq.owner
    if node is None or not isinstance(node.op, Reshape) or seq.ndim != 3:
        return None
    gathered, shape_vector = node.inputs
    owner = gathered.owner
    if (owner is None or not isinstance(owner.op, AdvancedSubtensor1) or gathered.ndim != 2
            or shape_vector.owner is None or not isinstance(shape_vector.owner.op, MakeVector)):
        return None
    table, flat = owner.inputs
    if flat.owner is None or not isinstance(flat.owner.op, Reshape) or flat.ndim != 1:
        return None
    ids = flat.owner.inputs[0]  # an integer matrix flattened (the only 1-d reshape of it)
    d0, d1, width = shape_vector.owner.inputs
    if (ids.ndim != 2 or not ids.dtype.startswith(("int", "uint"))
            or not isinstance(width, Constant) or not _length(d0, ids, 0)
            or not _length(d1, ids, 1)):
        return None
    return table, ids, int(width.value)


def _only_read_by(var: Variable, node, clients) -> bool:
    readers = clients.get(var, [])
    return bool(readers) and all(c is node for c, _ in readers)


@register_pass("scan_gather_in_step", order=27)
def scan_gather_in_step(fgraph: FunctionGraph) -> None:
    """See the module docstring."""
    for node in fgraph.toposort():
        op = node.op
        if not isinstance(op, Scan):
            continue
        n_steps, seqs, inits, nonseqs = op.split_inputs(list(node.inputs))
        found = {k: _looked_up(s) for k, s in enumerate(seqs)
                 if _only_read_by(s, node, fgraph.clients)}
        found = {k: f for k, f in found.items() if f is not None}
        if not found:
            continue
        inner = FunctionGraph(op.inner.inputs, op.inner.outputs)  # a copy to edit
        new_seqs, new_slices, tables, table_slots = list(seqs), list(inner.inputs), [], []
        for k, (table, ids, width) in found.items():
            new_seqs[k] = ids
            ids_t = tensor(ids.dtype, shape=ids.type.shape[1:])
            rows = specify_shape(table, (table.type.shape[0], width))  # as the reshape checked
            rows.creation = seqs[k].creation  # a mismatch names the user's reshape
            table_t = tensor(rows.dtype, shape=rows.type.shape)
            inner.replace(inner.inputs[k], AdvancedSubtensor1()(table_t, ids_t),
                          reason="scan_gather_in_step")
            new_slices[k] = ids_t
            tables.append(rows)
            table_slots.append(table_t)
        step = FunctionGraph(new_slices + table_slots, inner.outputs, copy=False)
        new_op = op.with_inner(step, op.n_seq, op.n_nonseq + len(tables))
        new_node = new_op.make_node(n_steps, *new_seqs, *inits, *nonseqs, *tables)
        for old, new in zip(node.outputs, new_node.outputs):
            fgraph.replace(old, new, reason="scan_gather_in_step")
