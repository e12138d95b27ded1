"""Numerical-stability rewrites on the ops of ``symgraph.ops`` (named passes; switch one
off with ``sg.Mode(..., exclude=['log_softmax'])``).

- ``softmax_cross_entropy``: ``categorical_crossentropy(softmax(x), y)`` as the indexed op
  or as ``-sum(t * log(softmax(x)), -1)`` -> ``SoftmaxCrossEntropy(x, y)``;
- ``log_softmax``: ``log(softmax(x))`` -> ``log_softmax(x)``;
- ``log_sigmoid``: ``log(sigmoid(x))`` -> ``-softplus(-x)`` and
  ``log(1 - sigmoid(x))`` -> ``-softplus(x)``.

They run after constant folding (order 10), on the graph as given to ``function``, i.e.
after ``grad``. The graph builders already produce the fused forms where they can (see
``symgraph.ops.nnet``); these passes catch graphs built another way (``givens``, the op
classes used directly, ``T.log`` on a softmax).
"""

from __future__ import annotations

import numpy as np

from symgraph.graph import Constant, Variable
from symgraph.ops import scalar as S
from symgraph.ops.basic import cast
from symgraph.ops.dimshuffle import DimShuffle
from symgraph.ops.elemwise import Elemwise
from symgraph.ops.math import neg, softplus
from symgraph.ops.nnet import CrossEntropyIndexed, LogSoftmax, Softmax, SoftmaxCrossEntropy
from symgraph.ops.reduce import Reduce
from symgraph.rewriting import local_rewrite


def _elemwise_input(v: Variable, scalar_cls) -> list[Variable] | None:
    """The inputs of ``v``'s owner when it is an Elemwise of ``scalar_cls``."""
    if (v.owner is not None and isinstance(v.owner.op, Elemwise)
            and isinstance(v.owner.op.scalar_op, scalar_cls)):
        return v.owner.inputs
    return None


def _is_node(node, scalar_cls) -> bool:
    return isinstance(node.op, Elemwise) and isinstance(node.op.scalar_op, scalar_cls)


def _last_axis_softmax(v: Variable, *op_classes) -> Variable | None:
    """The logits ``x`` when ``v = op(x)`` over its last axis, for op in ``op_classes``."""
    if (v.owner is not None and type(v.owner.op) in op_classes
            and v.owner.op.axis % v.ndim == v.ndim - 1):
        return v.owner.inputs[0]
    return None


def _same_dtype(new: Variable, old: Variable) -> Variable:
    return new if new.dtype == old.dtype else cast(new, old.dtype)


@local_rewrite("softmax_cross_entropy", order=19)
def softmax_cross_entropy(fgraph, node):
    """``categorical_crossentropy(softmax(x), y)`` -> ``SoftmaxCrossEntropy(x, y)``: the
    stable ``logsumexp(x) - x[y]``, for integer ids (``CrossEntropyIndexed(softmax(x), y)``)
    and for target rows (``-sum(t * log(softmax(x)), axis=-1)``, also with
    ``log_softmax(x)`` in place of ``log(softmax(x))``)."""
    out = node.outputs[0]
    if isinstance(node.op, CrossEntropyIndexed):
        probs, ids = node.inputs
        logits = _last_axis_softmax(probs, Softmax)
        if logits is not None:
            return {out: _same_dtype(SoftmaxCrossEntropy()(logits, ids), out)}
        return None
    if not _is_node(node, S.Neg):
        return None
    total = node.inputs[0]
    if not (total.owner is not None and isinstance(total.owner.op, Reduce)
            and total.owner.op.kind == "sum" and not total.owner.op.keepdims
            and total.owner.op.axes == (total.owner.inputs[0].ndim - 1,)):
        return None
    product = total.owner.inputs[0]
    factors = _elemwise_input(product, S.Mul)
    if factors is None:
        return None
    for log_p, targets in (factors, factors[::-1]):
        logits = _log_softmax_logits(log_p)
        if (logits is not None and targets.type.is_float
                and _no_broadcast(targets, product) and _no_broadcast(log_p, product)):
            return {out: _same_dtype(SoftmaxCrossEntropy()(logits, targets), out)}
    return None


def _log_softmax_logits(v: Variable) -> Variable | None:
    """``x`` when ``v`` is ``log(softmax(x))`` or ``log_softmax(x)`` over the last axis."""
    logits = _last_axis_softmax(v, LogSoftmax)
    if logits is not None:
        return logits
    inner = _elemwise_input(v, S.Log)
    return _last_axis_softmax(inner[0], Softmax) if inner else None


def _no_broadcast(v: Variable, out: Variable) -> bool:
    """True when ``v`` has ``out``'s rank and is not stretched along any axis."""
    return v.ndim == out.ndim and all(
        vs != 1 or os == 1 for vs, os in zip(v.type.shape, out.type.shape))


@local_rewrite("log_softmax", order=20)
def log_softmax(fgraph, node):
    """``log(softmax(x))`` -> ``log_softmax(x)`` (``x - logsumexp(x)``: finite where the
    softmax underflows to 0)."""
    if not _is_node(node, S.Log):
        return None
    inner = node.inputs[0]
    if inner.owner is not None and type(inner.owner.op) is Softmax:
        x = inner.owner.inputs[0]
        return {node.outputs[0]: _same_dtype(LogSoftmax(inner.owner.op.axis)(x),
                                             node.outputs[0])}
    return None


@local_rewrite("log_sigmoid", order=20)
def log_sigmoid(fgraph, node):
    """``log(sigmoid(x))`` -> ``-softplus(-x)`` and ``log(1 - sigmoid(x))`` ->
    ``-softplus(x)`` (finite for any x)."""
    if not _is_node(node, S.Log):
        return None
    out, inner = node.outputs[0], node.inputs[0]
    direct = _elemwise_input(inner, S.Sigmoid)
    if direct is not None:
        return {out: _same_dtype(neg(softplus(neg(direct[0]))), out)}
    diff = _elemwise_input(inner, S.Sub)
    if diff is None or not _is_one(diff[0]):
        return None
    complement = _elemwise_input(diff[1], S.Sigmoid)
    if complement is None or diff[1].ndim != out.ndim:
        return None
    return {out: _same_dtype(neg(softplus(complement[0])), out)}


def _is_one(v: Variable) -> bool:
    """True for a constant 1 of a single element (possibly behind a DimShuffle)."""
    while v.owner is not None and isinstance(v.owner.op, DimShuffle):
        v = v.owner.inputs[0]
    return isinstance(v, Constant) and v.value.size == 1 and bool(np.all(v.value == 1))


@local_rewrite("inc_into_sum", order=30)
def inc_into_sum(fgraph, node):
    """``inc_subtensor(zeros, y, key) + b`` -> ``inc_subtensor(b, y, key)`` (same for
    ``set_subtensor`` into zeros): the pullbacks of several slices of one array become a
    chain of increments into one buffer instead of full-size temporaries added up."""
    from symgraph.ops.shape import Alloc
    from symgraph.ops.subtensor import IncSubtensor

    if not _is_node(node, S.Add):
        return None
    out = node.outputs[0]
    for k, inc in enumerate(node.inputs):
        other = node.inputs[1 - k]
        owner = inc.owner
        if (owner is None or not isinstance(owner.op, IncSubtensor)
                or other.type.shape != out.type.shape or inc.type.shape != out.type.shape
                or other.dtype != out.dtype):
            continue
        base = owner.inputs[0]
        if (base.owner is not None and isinstance(base.owner.op, Alloc)
                and isinstance(base.owner.inputs[0], Constant)
                and not np.any(base.owner.inputs[0].value)):
            y, *index_inputs = owner.inputs[1:]
            return {out: IncSubtensor(owner.op.idx_list)(other, y, *index_inputs)}
    return None


@local_rewrite("incs_into_join", order=31)
def incs_into_join(fgraph, node):
    """Increments of zeros over constant slices that tile one axis exactly, e.g. the four
    gate cotangents of an LSTM written into ``zeros(B, 4h)`` at ``[:, 0:h]`` ...
    ``[:, 3h:4h]`` -> ``concatenate([g_0, ..., g_3], axis=1)``: one pass that writes each
    element once, instead of filling zeros and adding every slice into them."""
    from symgraph.ops.shape import Alloc, Join
    from symgraph.ops.subtensor import IncSubtensor, Slice

    out = node.outputs[0]
    clients = fgraph.clients
    pieces, axis, v = [], None, out
    while v.owner is not None and isinstance(v.owner.op, IncSubtensor):
        op = v.owner.op
        if op.set_instead_of_inc or len(v.owner.inputs) != 2 or (
                v is not out and len(clients.get(v, [])) != 1):
            return None
        sliced = [a for a, e in enumerate(op.idx_list) if e != Slice(None, None, None)]
        if len(sliced) != 1 or (axis is not None and sliced[0] != axis):
            return None
        axis = sliced[0]
        entry = op.idx_list[axis]
        if not (isinstance(entry, Slice) and isinstance(entry.start, int)
                and isinstance(entry.stop, int) and entry.step is None):
            return None
        pieces.append((entry.start, entry.stop, v.owner.inputs[1]))
        v = v.owner.inputs[0]
    if (axis is None or v.owner is None or not isinstance(v.owner.op, Alloc)
            or not isinstance(v.owner.inputs[0], Constant) or np.any(v.owner.inputs[0].value)):
        return None
    length = v.owner.inputs[1 + axis]
    pieces.sort(key=lambda p: p[0])
    bounds = [0] + [p[1] for p in pieces]
    if (not isinstance(length, Constant) or int(length.value) != bounds[-1]
            or any(p[0] != b for p, b in zip(pieces, bounds))):
        return None
    for start, stop, y in pieces:  # no broadcasting: each piece is its whole slice
        if y.ndim != out.ndim or y.dtype != out.dtype or y.type.shape[axis] not in (
                None, stop - start) or any(y.type.shape[a] == 1 != out.type.shape[a]
                                           for a in range(out.ndim) if a != axis):
            return None
    return {out: Join(axis)(*[y for _, _, y in pieces])}
