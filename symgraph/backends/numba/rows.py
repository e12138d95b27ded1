"""Which scans treat their batch rows independently (and may run them in parts).

A recurrent layer over a batch computes row ``i`` of every carry and step output from
row ``i`` of the carries and sequence slices and from the whole non-sequences (the
weights): ``h_t[i] = f(x_t[i], h_{t-1}[i]; W)``. The rows can then be cut into parts that
run the whole loop side by side (``lower_scan``, ``threads.sg_run_parts``), each part
with its own per-step buffers and no exchange until the loop ends.

:func:`independent_rows` proves it for a step graph by giving each variable a kind:

- ``SHARED``: the same for every row (non-sequences, constants, what only they make);
- ``ROWS``: axis 0 is the batch axis (carries, sequence slices, what keeps that axis);
- ``SHAPE``: the shape vector of a ``ROWS`` array; ``COUNT``: its entry 0 (the number of
  rows, which a part sees as its own: used only as the first length of an ``Alloc``).

An op it does not know, or a known op that mixes rows (a product contracting over rows, a
reduction or join along axis 0, an index into axis 0, arithmetic on the row count), makes
the answer False, and the loop runs whole.
"""

from __future__ import annotations

from symgraph.graph import Constant
from symgraph.ops.blas import Dot
from symgraph.ops.dimshuffle import DimShuffle
from symgraph.ops.elemwise import Elemwise
from symgraph.ops.nnet import LogSoftmax, Softmax
from symgraph.ops.reduce import Reduce
from symgraph.ops.shape import Alloc, Join, Shape
from symgraph.ops.subtensor import AdvancedSubtensor1, IncSubtensor, Slice, Subtensor

SHARED, ROWS, SHAPE, COUNT = "shared", "rows", "shape", "count"
_WHOLE = Slice(None, None, None)


def independent_rows(op) -> bool:
    """Whether the Scan ``op``'s step keeps batch rows apart (see the module docstring):
    every sequence slice and carry has the batch on axis 0, every new carry and step
    output keeps it there, and no op combines two rows."""
    inner = op.inner
    row_inputs = inner.inputs[:op.n_seq + op.n_carry]
    if not row_inputs or any(v.ndim == 0 for v in row_inputs):
        return False
    kinds = {v: ROWS for v in row_inputs}
    kinds.update({v: SHARED for v in inner.inputs[op.n_seq + op.n_carry:]})
    for node in inner.toposort():
        got = [kinds[v] if v in kinds else SHARED if isinstance(v, Constant) else None
               for v in node.inputs]
        if None in got:
            return False
        out = _kind(node, got)
        if out is None:
            return False
        kinds.update({o: out for o in node.outputs})
    return all(kinds.get(v) == ROWS and v.ndim for v in inner.outputs)


def _kind(node, got: list) -> str | None:
    """The kind of ``node``'s outputs given its inputs' kinds, or None when it mixes rows
    (or is not known to keep them apart)."""
    op = node.op
    if all(k == SHARED for k in got):
        return None if _draws(op) else SHARED
    if isinstance(op, Elemwise):
        return _elemwise(node, got)
    if isinstance(op, DimShuffle):
        return ROWS if got[0] == ROWS and op.pattern[:1] == (0,) else None
    if isinstance(op, Dot):
        a, b = node.inputs
        return ROWS if got == [ROWS, SHARED] and a.ndim == 2 and b.ndim == 2 else None
    if isinstance(op, Shape):
        return SHAPE if got[0] == ROWS else None
    if isinstance(op, Subtensor):
        return _subtensor(op, got)
    if isinstance(op, IncSubtensor):
        return _increment(node, got)
    if isinstance(op, Alloc):
        return _alloc(node, got)
    if isinstance(op, Join):
        return ROWS if op.axis % node.outputs[0].ndim != 0 and set(got) == {ROWS} else None
    if isinstance(op, Reduce):
        return ROWS if got == [ROWS] and 0 not in op.axes and node.outputs[0].ndim else None
    if isinstance(op, AdvancedSubtensor1):  # rows of a shared table, one per row's id
        table, ids = node.inputs
        return ROWS if got == [SHARED, ROWS] and ids.ndim == 1 and table.ndim >= 1 else None
    if isinstance(op, Softmax | LogSoftmax):
        return ROWS if got == [ROWS] and op.axis % node.inputs[0].ndim != 0 else None
    return None


def _alloc(node, got: list) -> str | None:
    """An array of ``count`` rows filled with a value the same for every row, or with a
    row array broadcast along its other axes."""
    value, first, *rest = got
    if first != COUNT or any(k != SHARED for k in rest):
        return None
    value_var, ndim = node.inputs[0], node.outputs[0].ndim
    if value == SHARED and (value_var.ndim < ndim or value_var.type.shape[0] == 1):
        return ROWS
    return ROWS if value == ROWS and value_var.ndim == ndim else None


def _draws(op) -> bool:
    from symgraph.ops.random import RandomVariable

    return isinstance(op, RandomVariable)


def _elemwise(node, got: list) -> str | None:
    """Rows stay apart when every shared input is the same for all rows (a scalar, or
    length 1 along axis 0) and the shape and row-count kinds stay out."""
    for var, kind in zip(node.inputs, got):
        if kind in (SHAPE, COUNT):
            return None
        if kind == SHARED and var.ndim and var.type.shape[0] != 1:
            return None
    return ROWS


def _subtensor(op, got: list) -> str | None:
    x, *index = got
    if any(k != SHARED for k in index):
        return None
    if x == ROWS:
        return ROWS if not op.idx_list or op.idx_list[0] == _WHOLE else None
    if x == SHAPE and len(op.idx_list) == 1 and isinstance(op.idx_list[0], int):
        return COUNT if op.idx_list[0] == 0 else SHARED
    return None


def _increment(node, got: list) -> str | None:
    """``x[key] += y`` keeps rows apart when the key takes every row and ``y``'s rows are
    ``x``'s (or ``y`` is the same for all rows)."""
    op = node.op
    x, y, *index = got
    if x != ROWS or any(k != SHARED for k in index):
        return None
    if op.idx_list and op.idx_list[0] != _WHOLE:
        return None
    y_var = node.inputs[1]
    target_ndim = node.inputs[0].ndim - sum(isinstance(e, int) for e in op.idx_list)
    if y == ROWS:
        return ROWS if y_var.ndim == target_ndim else None
    if y == SHARED and (y_var.ndim < target_ndim or y_var.type.shape[0] == 1):
        return ROWS
    return None
