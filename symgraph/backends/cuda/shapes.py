"""Shapes and views: ``x.shape``, reshape, dimshuffle, specify_shape and arange.

Device values are C-contiguous, so a reshape (and a dimshuffle that only adds or drops
length-1 axes) is a view. A dimshuffle that moves axes is copied by a generated
elementwise kernel, unless fused kernels read through it (the fusion plan's views) or
matrix products read it transposed (see ``gemm``). Values on the host (0-d ones) go
through the op's ``perform``.
"""

from __future__ import annotations

import math

import numpy as np

from symgraph.backends.cuda.context import LoweringContext, host_perform, lower
from symgraph.backends.cuda.elementwise import materialise_view
from symgraph.backends.cuda.memory import reshaped
from symgraph.errors import ShapeError
from symgraph.ops.dimshuffle import DimShuffle
from symgraph.ops.shape import ARange, Reshape, Shape, SpecifyShape


@lower.register(Shape)
def _shape(op, node, ctx: LoweringContext) -> None:
    x_slot, out_slot = ctx.slot(node.inputs[0]), ctx.slot(node.outputs[0])

    def step(env):
        env[out_slot] = np.array(env[x_slot].shape, np.int64)

    ctx.add(step, node)


def resolved_shape(dims: list[int], size: int) -> tuple:
    """``dims`` with its ``-1`` entry (at most one) filled in, checked against ``size``."""
    dims = list(dims)
    unknown = [k for k, d in enumerate(dims) if d == -1]
    known = math.prod(d for d in dims if d != -1)
    if len(unknown) == 1 and known and size % known == 0:
        dims[unknown[0]] = size // known
    if any(d < 0 for d in dims) or math.prod(dims) != size:
        raise ShapeError(f"reshape: cannot reshape {size} elements to {tuple(dims)}")
    return tuple(dims)


@lower.register(Reshape)
def _reshape(op, node, ctx: LoweringContext) -> None:
    (x, shp), (out,) = node.inputs, node.outputs
    if ctx.on_host(x) or ctx.on_host(out):
        return host_perform(node, ctx)
    x_slot, read_shape, out_slot = ctx.slot(x), ctx.host_reader(shp), ctx.slot(out)

    def step(env):
        xv = env[x_slot]
        env[out_slot] = reshaped(xv, resolved_shape([int(d) for d in read_shape(env)], xv.size))

    ctx.add(step, node)


@lower.register(DimShuffle)
def _dimshuffle(op, node, ctx: LoweringContext) -> None:
    (x,), (out,) = node.inputs, node.outputs
    if ctx.on_host(x) or ctx.on_host(out):
        return host_perform(node, ctx)
    kept = [p for p in op.pattern if p != "x"]
    if kept != sorted(kept):
        return materialise_view(node, ctx)
    x_slot, out_slot = ctx.slot(x), ctx.slot(out)

    def step(env):
        xv = env[x_slot]
        env[out_slot] = reshaped(xv, tuple(1 if p == "x" else xv.shape[p] for p in op.pattern))

    ctx.add(step, node)


@lower.register(SpecifyShape)
def _specify_shape(op, node, ctx: LoweringContext) -> None:
    (x,), (out,) = node.inputs, node.outputs
    x_slot, out_slot = ctx.slot(x), ctx.slot(out)

    def step(env):
        xv = env[x_slot]
        if any(s is not None and s != d for s, d in zip(op.shape, np.shape(xv))):
            raise ShapeError(f"specify_shape: expected {op.shape}, got {np.shape(xv)}")
        env[out_slot] = xv

    ctx.add(step, node)


@lower.register(ARange)
def _arange(op, node, ctx: LoweringContext) -> None:
    """Computed on the host from its scalar inputs and uploaded."""
    host_perform(node, ctx)
