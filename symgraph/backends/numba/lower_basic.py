"""Lowerings of scalar Elemwise nodes and of the shape, allocation and indexing ops.

Views (DimShuffle, Reshape, basic indexing, SpecifyShape) are numba views, never
written to; kernels producing arrays get an ``out`` buffer from ``ctx.buffer``.
"""

from __future__ import annotations

from symgraph.backends.numba import gen
from symgraph.backends.numba.emitter import dtype_expr, result_of
from symgraph.backends.numba.fusion import SUPPORTED_DTYPES, scalar_expr
from symgraph.backends.numba.registry import lower
from symgraph.ops.dimshuffle import DimShuffle
from symgraph.ops.elemwise import Elemwise
from symgraph.ops.shape import Alloc, ARange, Join, MakeVector, Reshape, Shape, SpecifyShape
from symgraph.ops.subtensor import (
    SYMBOLIC,
    AdvancedIncSubtensor,
    AdvancedIncSubtensor1,
    AdvancedSubtensor,
    AdvancedSubtensor1,
    IncSubtensor,
    Slice,
    Subtensor,
)


def _tuple(items) -> str:
    items = list(items)
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


@lower.register(Elemwise)
def _elemwise(op, node, ctx):
    """0-d Elemwise nodes (array ones are fused): one scalar statement."""
    out = node.outputs[0]
    if out.ndim or any(v.dtype not in SUPPORTED_DTYPES for v in node.inputs + node.outputs):
        return ctx.fallback(node)
    expr = scalar_expr(op.scalar_op, [ctx.ref(v) for v in node.inputs],
                       [v.dtype for v in node.inputs], out.dtype)
    if out.type.is_integer and len(expr) < 60:  # shape arithmetic: inline where used
        return ctx.alias(out, expr, "C")
    ctx.bind(out, expr)


@lower.register(DimShuffle)
def _dimshuffle(op, node, ctx):
    (x,), (out,) = node.inputs, node.outputs
    ref, pattern = ctx.ref(x), op.pattern
    kept = [p for p in pattern if p != "x"]
    if out.ndim == 0:
        return ctx.bind(out, f"{ref}[{', '.join('0' * x.ndim)}]" if x.ndim else ref)
    if x.ndim == 0:
        shape = _tuple(["1"] * out.ndim)
        return ctx.bind(out, ctx.call("sg_fill", [ctx.buffer(out), shape, ref], result_of(out)))
    shape = _tuple("1" if p == "x" else f"{ref}.shape[{p}]" for p in pattern)
    if kept == sorted(kept):  # only new or dropped length-1 axes: a reshape
        return ctx.bind(out, f"sg_reshape({contiguous(ctx, x)}, {shape})", "C", owned=False)
    if pattern == (1, 0):
        flipped = {"C": "F", "F": "C"}.get(ctx.layout(x), "A")
        return ctx.bind(out, f"{ref}.T", flipped, owned=False)
    moved = f"np.transpose({ref}, {_tuple(str(p) for p in kept)})"
    if len(kept) == len(pattern) and len(kept) == x.ndim:
        return ctx.bind(out, moved, "A", owned=False)
    copy = ctx.call("sg_copy", [moved, ctx.state.dummy(len(kept), x.dtype)])
    ctx.bind(out, f"sg_reshape({copy}, {shape})", "C", owned=False)


def contiguous(ctx, var) -> str:
    """``var``'s expression, copied when it may not be C-contiguous."""
    if ctx.layout(var) == "C":
        return ctx.ref(var)
    return ctx.call("sg_copy", [ctx.ref(var), ctx.state.dummy(var.ndim, var.dtype)])


@lower.register(Shape)
def _shape(op, node, ctx):
    (x,), (out,) = node.inputs, node.outputs
    if x.ndim == 0:
        return ctx.bind(out, "sg_empty(0, np.int64)")
    ctx.bind(out, ctx.call("sg_shape", [ctx.ref(x)], [("int64", 1)]))


@lower.register(MakeVector)
def _make_vector(op, node, ctx):
    out = node.outputs[0]
    if not node.inputs:
        return ctx.bind(out, f"sg_empty(0, {dtype_expr(op.dtype)})")
    values = _tuple(f"{dtype_expr(op.dtype)}({ctx.ref(v)})" for v in node.inputs)
    ctx.bind(out, ctx.call("sg_vector", [values, ctx.buffer(out)]))


@lower.register(SpecifyShape)
def _specify_shape(op, node, ctx):
    (x,), (out,) = node.inputs, node.outputs
    if x.ndim == 0:
        return ctx.alias(out, ctx.ref(x), "C")
    for k, s in enumerate(op.shape):
        if s is not None:
            ctx.check(f"{ctx.ref(x)}.shape[{k}] != {s}")
    ctx.alias(out, ctx.ref(x), ctx.layout(x))


@lower.register(Reshape)
def _reshape(op, node, ctx):
    (x, shp), (out,) = node.inputs, node.outputs
    if shp in ctx.virtual and isinstance(shp.owner.op, Shape):  # the shape of another value
        dims = [f"{ctx.ref(shp.owner.inputs[0])}.shape[{k}]" for k in range(op.ndim)]
    elif shp in ctx.virtual:
        dims = [ctx.ref(d) for d in shp.owner.inputs]
    else:
        dims = [f"{ctx.ref(shp)}[{k}]" for k in range(op.ndim)]
    if x.ndim == 0:
        for d in dims:
            ctx.check(f"{d} != 1 and {d} != -1")
        if not op.ndim:
            return ctx.alias(out, ctx.ref(x), "C")
        shape = _tuple(["1"] * op.ndim)
        return ctx.bind(out, ctx.call("sg_fill", [ctx.buffer(out), shape, ctx.ref(x)],
                                      result_of(out)))
    if op.ndim == 0:
        ctx.check(f"{ctx.ref(x)}.size != 1")
        return ctx.bind(out, f"{contiguous(ctx, x)}.reshape(1)[0]")
    ctx.bind(out, f"sg_reshape({contiguous(ctx, x)}, {_tuple(dims)})", "C", owned=False)


@lower.register(Alloc)
def _alloc(op, node, ctx):
    (value, *dims), (out,) = node.inputs, node.outputs
    if out.ndim == 0:
        return ctx.alias(out, ctx.ref(value), "C")
    refs = [ctx.ref(d) for d in dims]
    if all(s == 1 for s in value.type.shape):  # one element: a fill (a library kernel)
        element = ctx.ref(value)
        if value.ndim:
            element += f"[{', '.join('0' * value.ndim)}]"
        return ctx.bind(out, ctx.call("sg_fill", [ctx.buffer(out), _tuple(refs), element],
                                      result_of(out)))
    name = ctx.kernel(*gen.broadcast_kernel(value.type.shape, out.ndim, out.dtype))
    ctx.bind(out, ctx.call(name, [ctx.ref(value)] + refs + [ctx.buffer(out)],
                           result_of(out)))


@lower.register(ARange)
def _arange(op, node, ctx):
    start, stop, step = (ctx.ref(v) for v in node.inputs)
    out = node.outputs[0]
    ctx.bind(out, ctx.call("sg_arange", [start, stop, step, ctx.buffer(out)]))


@lower.register(Join)
def _join(op, node, ctx):
    out = node.outputs[0]
    name = ctx.kernel(*gen.join_kernel(len(node.inputs), out.ndim, op.axis, out.dtype))
    ctx.bind(out, ctx.call(name, [ctx.ref(v) for v in node.inputs] + [ctx.buffer(out)],
                           result_of(out)))


# ---- basic indexing --------------------------------------------------------------------

def _key(ctx, idx_list, x, index_inputs) -> tuple[str, bool]:
    """The numba index expression for ``idx_list`` and whether the result keeps a
    C-contiguous ``x`` C-contiguous (numba's rule: integers, then at most one slice
    without a step as the last entry)."""
    it = iter(index_inputs)
    ref = ctx.ref(x)

    def part(p):
        if p is None:
            return ""
        return ctx.ref(next(it)) if p == SYMBOLIC else str(int(p))

    parts, axis, contiguous = [], 0, ctx.layout(x) == "C"
    for pos, entry in enumerate(idx_list):
        if entry is None:
            parts.append("None")
            contiguous = False
            continue
        if isinstance(entry, Slice):
            text = f"{part(entry.start)}:{part(entry.stop)}"
            if entry.step is not None:
                text += f":{part(entry.step)}"
                contiguous = False
            if pos != len(idx_list) - 1:
                contiguous = False
            parts.append(text)
        else:
            n = x.type.shape[axis]
            i = part(entry)
            if entry == SYMBOLIC or n is None or not -n <= entry < n:
                i = f"sg_index({i}, {ref}.shape[{axis}])"  # small: called directly
            parts.append(i)
        axis += 1
    return ", ".join(parts), contiguous


@lower.register(Subtensor)
def _subtensor(op, node, ctx):
    (x, *index_inputs), (out,) = node.inputs, node.outputs
    if x in ctx.virtual:  # x.shape[i] of a Shape node read only this way
        source = x.owner.inputs[0]
        i = op.idx_list[0] % source.ndim
        static = source.type.shape[i]
        expr = f"np.int64({static})" if static is not None else f"{ctx.ref(source)}.shape[{i}]"
        return ctx.alias(out, expr, "C")
    if not op.idx_list:  # x[()], x[:]: the whole array
        return ctx.alias(out, ctx.ref(x), ctx.layout(x))
    key, contiguous = _key(ctx, op.idx_list, x, index_inputs)
    if out.ndim == 0:
        return ctx.bind(out, f"{ctx.ref(x)}[{key}]")
    ctx.bind(out, f"{ctx.ref(x)}[{key}]", "C" if contiguous else "A", owned=False)


def _copy_or_reuse(ctx, node, x, out) -> str:
    """The array an inc/set op writes into: ``x`` itself when nothing else reads it,
    else a copy."""
    if ctx.can_overwrite(x, node):
        ctx.alias(out, ctx.ref(x), "C", owned=True)
        return ctx.ref(x)
    return ctx.bind(out, ctx.call("sg_copy", [ctx.ref(x), ctx.buffer(out)]))


def _update(ctx, target: str, key: str, y, region_ndim: int, set_mode: bool) -> None:
    """``target[key] = y`` or ``target[key] += y`` (y broadcast by the static-1 rule)."""
    if region_ndim == 0:
        ctx.emit(f"{target}[{key}] {'=' if set_mode else '+='} {ctx.ref(y)}")
        return
    name = ctx.kernel(*gen.update_kernel(region_ndim, y.type.shape, set_mode))
    ctx.emit(ctx.call(name, [f"{target}[{key}]" if key else target, ctx.ref(y)]))


@lower.register(IncSubtensor)
def _inc_subtensor(op, node, ctx):
    (x, y, *index_inputs), (out,) = node.inputs, node.outputs
    name = _copy_or_reuse(ctx, node, x, out)
    key = _key(ctx, op.idx_list, out, index_inputs)[0] if op.idx_list else ""
    region_ndim = sum(1 for e in op.idx_list if e is None or isinstance(e, Slice)) + (
        x.ndim - sum(e is not None for e in op.idx_list))
    _update(ctx, name, key, y, region_ndim, op.set_instead_of_inc)


# ---- integer-array indexing on the leading axis ---------------------------------------------

@lower.register(AdvancedSubtensor1)
def _take(op, node, ctx):
    (x, idx), (out,) = node.inputs, node.outputs
    if idx.ndim == 0:
        expr = f"{ctx.ref(x)}[sg_index({ctx.ref(idx)}, {ctx.ref(x)}.shape[0])]"
        if out.ndim == 0:
            return ctx.bind(out, expr)
        return ctx.bind(out, expr, "C" if ctx.layout(x) == "C" else "A", owned=False)
    ctx.bind(out, ctx.call("sg_take", [ctx.ref(x), ctx.ref(idx), ctx.buffer(out)],
                           result_of(out)))


@lower.register(AdvancedIncSubtensor1)
def _scatter(op, node, ctx):
    (x, y, idx), (out,) = node.inputs, node.outputs
    if idx.ndim == 0:
        name = _copy_or_reuse(ctx, node, x, out)
        key = f"sg_index({ctx.ref(idx)}, {name}.shape[0])"
        return _update(ctx, name, key, y, x.ndim - 1, op.set_instead_of_inc)
    region_ndim = idx.ndim + x.ndim - 1
    yref = ctx.ref(y)
    if not (y.ndim == region_ndim and all(s != 1 for s in y.type.shape)):
        off = region_ndim - y.ndim
        shape = [f"{ctx.ref(idx)}.shape[{k}]" for k in range(idx.ndim)] + [
            f"{ctx.ref(x)}.shape[{k}]" for k in range(1, x.ndim)]
        for j, s in enumerate(y.type.shape):  # the static-1 rule
            if s != 1:
                ctx.check(f"{yref}.shape[{j}] != {shape[j + off]}")
        kernel = ctx.kernel(*gen.broadcast_kernel(y.type.shape, region_ndim, y.dtype))
        yref = ctx.call(kernel, [yref] + shape + [ctx.state.dummy(region_ndim, y.dtype)])
    flag = str(op.set_instead_of_inc)
    if ctx.can_overwrite(x, node):
        ctx.emit(ctx.call("sg_scatter_into", [ctx.ref(x), yref, ctx.ref(idx), flag]))
        return ctx.alias(out, ctx.ref(x), "C", owned=True)
    ctx.bind(out, ctx.call("sg_scatter", [ctx.ref(x), yref, ctx.ref(idx), flag,
                                          ctx.buffer(out)]))


@lower.register(AdvancedSubtensor)
def _advanced(op, node, ctx):
    (x, *indices), (out,) = node.inputs, node.outputs
    name = ctx.kernel(*gen.advanced_kernel([i.type.shape for i in indices], x.ndim,
                                           out.dtype, "get"))
    ctx.bind(out, ctx.call(name, [ctx.ref(x)] + [ctx.ref(i) for i in indices]
                           + [ctx.buffer(out)]))


@lower.register(AdvancedIncSubtensor)
def _advanced_inc(op, node, ctx):
    (x, y, *indices), (out,) = node.inputs, node.outputs
    shapes = [i.type.shape for i in indices]
    rank = max(len(s) for s in shapes)
    region_ndim = rank + x.ndim - len(indices)
    yref = ctx.ref(y)
    if not (y.ndim == region_ndim and all(s != 1 for s in y.type.shape)):
        region = []  # the broadcast index shape, then x's trailing axes
        for a in range(rank):
            src = next(((j, a - (rank - len(s))) for j, s in enumerate(shapes)
                        if a >= rank - len(s) and s[a - (rank - len(s))] != 1), None)
            region.append("1" if src is None else f"{ctx.ref(indices[src[0]])}.shape[{src[1]}]")
        region += [f"{ctx.ref(x)}.shape[{a}]" for a in range(len(indices), x.ndim)]
        off = region_ndim - y.ndim
        for j, s in enumerate(y.type.shape):  # the static-1 rule
            if s != 1:
                ctx.check(f"{yref}.shape[{j}] != {region[j + off]}")
        kernel = ctx.kernel(*gen.broadcast_kernel(y.type.shape, region_ndim, y.dtype))
        yref = ctx.call(kernel, [yref] + region + [ctx.state.dummy(region_ndim, y.dtype)])
    target = _copy_or_reuse(ctx, node, x, out)
    mode = "set" if op.set_instead_of_inc else "inc"
    name = ctx.kernel(*gen.advanced_kernel(shapes, x.ndim, out.dtype, mode))
    ctx.emit(ctx.call(name, [target, yref] + [ctx.ref(i) for i in indices]))
