"""Lowerings of matrix products, reductions and the softmax / cross-entropy ops.

Float matrix products go through numba's ``np.dot`` (scipy's BLAS): every product of a
compiled function uses that one BLAS, never numpy's. A matrix added to a product that
nothing else reads is one call accumulating into a copy of it (``sg_gemm_add``; planned
by :func:`products_added` before a graph's steps are emitted). Reductions are generated
loop nests (one kernel per kind, rank, axes and dtypes), accumulating float sums in
float64; the common float sums are library kernels with the same loops.
"""

from __future__ import annotations

from symgraph.backends.numba import fusion, gen
from symgraph.backends.numba.emitter import result_of
from symgraph.backends.numba.lower_basic import contiguous
from symgraph.backends.numba.registry import lower
from symgraph.ops import scalar as S
from symgraph.ops.blas import Dot
from symgraph.ops.dimshuffle import DimShuffle
from symgraph.ops.nnet import CrossEntropyIndexed, LogSoftmax, Softmax, SoftmaxCrossEntropy
from symgraph.ops.reduce import Argmax, Reduce

_FLOATS = ("float32", "float64")


@lower.register(Dot)
def _dot(op, node, ctx):
    (a, b), (out,) = node.inputs, node.outputs
    if out.dtype not in _FLOATS:
        if a.ndim == 2 and b.ndim == 2:
            return ctx.bind(out, ctx.call("sg_dot_loops", [ctx.ref(a), ctx.ref(b),
                                                           ctx.buffer(out)]))
        return ctx.fallback(node)
    operands = _blas_operands(ctx, a, b)
    if a.ndim == 2 and b.ndim == 2:
        return ctx.bind(out, ctx.call("sg_gemm", operands + [ctx.buffer(out)], result_of(out)))
    ctx.bind(out, ctx.call("sg_dot_vec", operands))


def _blas_operands(ctx, *variables) -> list[str]:
    return [ctx.ref(v) if ctx.layout(v) in "CF" else contiguous(ctx, v) for v in variables]


def products_added(steps: list, clients: dict, graph_outputs: set, virtual: set) -> list:
    """``(group, product node)`` for each group that is one addition of a matrix to a
    float matrix product which nothing else reads: the two become one ``c + a @ b``
    kernel call (BLAS accumulating into a copy of ``c``), as the LSTM step's
    ``x_t + h U``, its backward ``dh + dz U^T`` and a bias added to a product. ``c`` may
    broadcast along its axes of static length 1 (a bias row); the product may not. A
    ``c`` that loops read through a view (a DimShuffle in ``virtual``) is then
    materialised as that view."""
    found = []
    for step in steps:
        if not isinstance(step, fusion.Group) or len(step.members) != 1 or step.joined:
            continue
        (node,) = step.members
        out = node.outputs[0]
        if (not isinstance(node.op.scalar_op, S.Add) or len(node.inputs) != 2
                or out.ndim != 2 or out.dtype not in _FLOATS
                or step.outputs != [out] or any(out.type.broadcastable)):
            continue
        for product, other in (node.inputs, node.inputs[::-1]):
            owner = product.owner
            if (owner is not None and isinstance(owner.op, Dot) and product is not other
                    and all(v.ndim == 2 for v in owner.inputs)
                    and clients.get(product) == [node] and product not in graph_outputs
                    and other.ndim == 2 and other.dtype == product.dtype == out.dtype
                    and (other not in virtual or _view_of_array(other, virtual))):
                found.append((step, owner))
                break
    return found


def _view_of_array(var, virtual: set) -> bool:
    """Whether ``var`` is a DimShuffle of an array that is itself materialised."""
    owner = var.owner
    return (owner is not None and isinstance(owner.op, DimShuffle)
            and owner.inputs[0] not in virtual)


def emit_gemm_add(ctx, addition, product_node) -> None:
    """``c + a @ b`` as one ``sg_gemm_add`` call: the addition node ``addition`` of a
    matrix ``c`` (broadcast along its axes of static length 1) and the output of the
    float product ``product_node``, which only the addition reads
    (:func:`products_added`)."""
    product, out = product_node.outputs[0], addition.outputs[0]
    other = addition.inputs[1] if addition.inputs[0] is product else addition.inputs[0]
    ctx.comment(addition, "  [with the product above: sg_gemm_add]")
    repeats = [str(b) for b in other.type.broadcastable]
    args = (_blas_operands(ctx, *product_node.inputs) + [ctx.ref(other)] + repeats
            + [ctx.buffer(out)])
    ctx.bind(out, ctx.call("sg_gemm_add", args, result_of(out)))


# ---- reductions ---------------------------------------------------------------------------

def _emit_reduce(ctx, node, kind, axes, keepdims, arg) -> None:
    """One kernel per kind, dtype, rank and axes; ``keepdims`` is a reshape of its
    result (so both forms share the kernel)."""
    (x,), (out,) = node.inputs, node.outputs
    if x.ndim == 0:
        return ctx.alias(out, "np.int64(0)" if arg else ctx.ref(x), "C")
    name = _library_sum(kind, x, out, tuple(axes), arg) or ctx.kernel(*gen.reduce_kernel(
        kind, x.dtype, out.dtype, x.ndim, tuple(axes), False, arg))
    kept = [a for a in range(x.ndim) if a not in axes]
    result = [("int64" if arg else out.dtype, len(kept))]
    if not keepdims or len(kept) == out.ndim:
        buf = ctx.buffer(out) if out.ndim else ctx.state.dummy(1, out.dtype)
        return ctx.bind(out, ctx.call(name, [ctx.ref(x), buf], result))
    if not kept:  # a scalar result, as an array of 1s
        shape = "(" + "1, " * out.ndim + ")"
        value = ctx.call(name, [ctx.ref(x), ctx.state.dummy(1, out.dtype)], result)
        return ctx.bind(out, ctx.call("sg_fill", [ctx.buffer(out), shape, value], result_of(out)))
    reduced = ctx.call(name, [ctx.ref(x), ctx.state.dummy(len(kept), out.dtype)], result)
    dims = ", ".join("1" if a in axes else f"{ctx.ref(x)}.shape[{a}]" for a in range(x.ndim))
    ctx.bind(out, f"sg_reshape({reduced}, ({dims},))", "C")


def _library_sum(kind, x, out, axes, arg) -> str | None:
    """The library kernel for a float sum over all axes or over a matrix's rows, if it is
    one (the generated kernel otherwise)."""
    if kind != "sum" or arg or x.dtype not in _FLOATS or out.dtype != x.dtype:
        return None
    if len(axes) == x.ndim:
        return "sg_sum_all"
    return "sg_sum_rows" if x.ndim == 2 and axes == (0,) else None


@lower.register(Reduce)
def _reduce(op, node, ctx):
    _emit_reduce(ctx, node, op.kind, op.axes, op.keepdims, arg=False)


@lower.register(Argmax)
def _argmax(op, node, ctx):
    x = node.inputs[0]
    axes = tuple(range(x.ndim)) if op.axis is None else (op.axis,)
    _emit_reduce(ctx, node, op.kind, axes, op.keepdims, arg=True)


# ---- softmax and cross-entropies -------------------------------------------------------------

@lower.register(Softmax)
@lower.register(LogSoftmax)
def _softmax(op, node, ctx):
    (x,), (out,) = node.inputs, node.outputs
    partner = _xent_partner(node, ctx)
    if partner is not None:
        return _xent_with_softmax(partner, node, ctx)
    log = isinstance(op, LogSoftmax)
    ctx.bind(out, ctx.call("sg_softmax", [ctx.ref(x), str(op.axis % x.ndim), str(log),
                                          ctx.buffer(out)], result_of(out)))


@lower.register(SoftmaxCrossEntropy)
def _softmax_xent(op, node, ctx):
    (x, t), (out,) = node.inputs, node.outputs
    partner = _softmax_partner(node, ctx)
    if partner is not None:
        return _xent_with_softmax(node, partner, ctx)
    kernel = "sg_xent_ids" if t.type.is_integer else "sg_xent_rows"
    _row_kernel(ctx, kernel, x, t, out)


# The loss and the softmax its gradient needs, from one pass: a cross-entropy with ids and
# a last-axis softmax of the same logits are lowered together, by whichever comes first.

def _pairable(xent) -> bool:
    return xent.inputs[1].type.is_integer and xent.outputs[0].ndim > 0


def _softmax_partner(xent, ctx):
    if not _pairable(xent):
        return None
    x = xent.inputs[0]
    return next((c for c in ctx.clients.get(x, []) if c != "output"
                 and type(c.op) is Softmax and c.op.axis % x.ndim == x.ndim - 1
                 and c.outputs[0] not in ctx.names), None)


def _xent_partner(softmax, ctx):
    x = softmax.inputs[0]
    if type(softmax.op) is not Softmax or softmax.op.axis % x.ndim != x.ndim - 1:
        return None
    return next((c for c in ctx.clients.get(x, []) if c != "output"
                 and isinstance(c.op, SoftmaxCrossEntropy) and _pairable(c)
                 and c.inputs[1] in ctx.names and c.inputs[1] not in ctx.virtual
                 and c.outputs[0] not in ctx.names), None)


def _xent_with_softmax(xent, softmax, ctx):
    (x, ids), loss, probs = xent.inputs, xent.outputs[0], softmax.outputs[0]
    ctx.bind_many([loss, probs], ctx.call("sg_xent_ids_softmax", [
        ctx.ref(x), ctx.ref(ids), ctx.buffer(loss), ctx.buffer(probs)],
        result_of(loss, probs) if loss.ndim else ()))
    ctx.precomputed.update([loss, probs])


@lower.register(CrossEntropyIndexed)
def _nll(op, node, ctx):
    (p, y), (out,) = node.inputs, node.outputs
    _row_kernel(ctx, "sg_nll_ids", p, y, out)


def _row_kernel(ctx, kernel: str, x, t, out) -> None:
    """Call a per-row kernel; a single row (0-d result) goes through a 1-row view."""
    if out.ndim:
        return ctx.bind(out, ctx.call(kernel, [ctx.ref(x), ctx.ref(t), ctx.buffer(out)]))
    tref = ctx.ref(t)
    if t.ndim == 0:
        t2 = ctx.call("sg_fill", [ctx.state.dummy(1, t.dtype), "(1,)", tref], [(t.dtype, 1)])
    else:
        t2 = f"sg_reshape({contiguous(ctx, t)}, (1, -1))"
    x2 = f"sg_reshape({contiguous(ctx, x)}, (1, -1))"
    dummy = ctx.state.dummy(1, out.dtype)
    ctx.bind(out, ctx.call(kernel, [x2, t2, dummy]) + "[0]")
