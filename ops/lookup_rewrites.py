"""``gather_before_product``: products of looked-up rows with a weight become look-ups in
the product of the whole (small) table with that weight.

An embedding ``X = E[ids]`` (``E``: V x d, ``ids``: N entries) feeding a product costs
``N d h`` multiply-adds per product; with a character vocabulary ``V`` is far smaller than
the ``N`` tokens of a batch, and the same products over the table cost ``V d h``:

- forward:   ``dot(E[ids], W) = dot(E, W)[ids]``, and a row bias added after the
  product joins the table: ``dot(E, W)[ids] + b = (dot(E, W) + b)[ids]``;
- weight:    ``dot(E[ids].T, G) = dot(E.T, S)`` with ``S = scatter_add(0, ids, G)``
  (V x h: the cotangent rows summed per table row);
- table:     ``scatter_add(Z, ids, dot(G, W.T)) = Z + dot(S, W.T)`` (same ``S``).

``E[ids]`` may reach the product through reshapes (time-major ``(T, B, d)`` embeddings
flattened to ``(T*B, d)``). The pass
applies when the table has at most ``MAX_ROWS`` rows (the value of a shared table, or
its static shape): for larger tables (a word vocabulary) the original order is cheaper.
"""

from __future__ import annotations

from symgraph.graph import SharedVariable, Variable
from symgraph.ops import scalar as S
from symgraph.ops.blas import Dot, dot
from symgraph.ops.dimshuffle import DimShuffle
from symgraph.ops.elemwise import Elemwise
from symgraph.ops.shape import Alloc, Reshape, Shape, zeros
from symgraph.ops.subtensor import AdvancedIncSubtensor1, AdvancedSubtensor1, Subtensor
from symgraph.rewriting import local_rewrite

#: Largest table (rows) for which looking up after the product pays.
MAX_ROWS = 512


def _rows(table: Variable) -> int | None:
    if table.type.shape and table.type.shape[0] is not None:
        return table.type.shape[0]
    if isinstance(table, SharedVariable):
        return table.get_value(borrow=True).shape[0]
    return None


def _small(table: Variable) -> bool:
    rows = _rows(table)
    return rows is not None and rows <= MAX_ROWS


def _small_accumulator(z: Variable) -> bool:
    """``z`` has few rows: it is small itself or zeros shaped like a small table
    (``zeros_like(E)``, as gradients make them)."""
    if _small(z):
        return True
    if z.owner is None or not isinstance(z.owner.op, Alloc):
        return False
    rows = z.owner.inputs[1]
    owner = rows.owner
    if (owner is not None and isinstance(owner.op, Subtensor) and owner.op.idx_list == (0,)
            and owner.inputs[0].owner is not None
            and isinstance(owner.inputs[0].owner.op, Shape)):
        return _small(owner.inputs[0].owner.inputs[0])
    return False


def _through_reshapes(x: Variable) -> Variable:
    """``x`` with the reshapes producing it removed. Reshapes compose into one reshape of
    the row-major buffer, so a matrix reshaped (through any chain) from another matrix of
    the same width has the same rows in the same order; the rewritten products check that
    width when they run (``dot(E, W)`` needs ``E``'s width to be ``W``'s height)."""
    while x.owner is not None and isinstance(x.owner.op, Reshape):
        x = x.owner.inputs[0]
    return x


def _lookup(x: Variable) -> tuple[Variable, Variable] | None:
    """``(table, ids)`` when the matrix ``x`` is ``table[ids]`` up to row reshapes."""
    if x.ndim != 2:
        return None
    source = _through_reshapes(x)
    if (source.owner is not None and isinstance(source.owner.op, AdvancedSubtensor1)
            and source.ndim == 2 and _small(source.owner.inputs[0])):
        return source.owner.inputs[0], source.owner.inputs[1]
    return None


def _row_sums(ids: Variable, g: Variable, rows) -> Variable:
    """``scatter_add(zeros(rows, g.shape[1]), ids, g)``: the rows of ``g`` summed per id."""
    return AdvancedIncSubtensor1()(zeros((rows, g.shape[1]), dtype=g.dtype), g, ids)


def _is_transpose(v: Variable) -> bool:
    return (v.owner is not None and isinstance(v.owner.op, DimShuffle)
            and tuple(v.owner.op.pattern) == (1, 0))


@local_rewrite("gather_before_product", order=24)
def gather_before_product(fgraph, node):
    """See the module docstring."""
    op = node.op
    if isinstance(op, Dot):
        a, w = node.inputs
        found = _lookup(a)
        if found is not None and w.ndim == 2:  # forward: dot(E, W)[ids]
            table, ids = found
            return {node.outputs[0]: _keep_site(AdvancedSubtensor1()(dot(table, w), ids),
                                                node.outputs[0])}
        if _is_transpose(a) and w.ndim == 2:  # weight: dot(E.T, S)
            found = _lookup(a.owner.inputs[0])
            if found is not None:
                table, ids = found
                sums = _row_sums(ids, w, table.shape[0])
                return {node.outputs[0]: dot(table.T, sums)}
        return None
    if isinstance(op, AdvancedIncSubtensor1) and not op.set_instead_of_inc:
        z, y, ids = node.inputs
        if z.ndim != 2 or not _small_accumulator(z):
            return None
        product = _through_reshapes(y)
        if product.owner is None or not isinstance(product.owner.op, Dot):
            return None
        g, w_t = product.owner.inputs
        if g.ndim != 2 or w_t.ndim != 2 or y.ndim != 2:
            return None
        rows = z.owner.inputs[1] if z.owner is not None and isinstance(z.owner.op, Alloc) \
            else z.shape[0]
        return {node.outputs[0]: z + dot(_row_sums(ids, g, rows), w_t)}
    if isinstance(op, Elemwise) and isinstance(op.scalar_op, S.Add) and len(node.inputs) == 2:
        return _bias_into_table(node)
    return None


def _bias_into_table(node):
    """``P[ids] + b`` (``b`` a row broadcast over the looked-up rows) -> ``(P + b)[ids]``,
    for a product ``P = dot(E, W)`` made by this pass."""
    for looked, bias in (node.inputs, node.inputs[::-1]):
        owner = looked.owner
        if (owner is not None and isinstance(owner.op, AdvancedSubtensor1)
                and looked.ndim == 2 and bias.ndim == 2 and bias.type.shape[0] == 1
                and owner.inputs[0].owner is not None
                and isinstance(owner.inputs[0].owner.op, Dot)
                and _lookup_table_product(owner.inputs[0])):
            table = owner.inputs[0] + bias
            return {node.outputs[0]: _keep_site(AdvancedSubtensor1()(table, owner.inputs[1]),
                                                node.outputs[0])}
    return None


def _lookup_table_product(p: Variable) -> bool:
    return p.ndim == 2 and _small(p.owner.inputs[0])


def _keep_site(new: Variable, old: Variable) -> Variable:
    new.creation = old.creation
    new.name = old.name
    return new
