"""Rows picked by integer arrays: the gather ``W[idx]`` (AdvancedSubtensor1, the
embedding lookup) and its gradient, the scatter-add ``inc_subtensor(W[idx], y)``
(AdvancedIncSubtensor1), one thread per element of the picked rows.

With ``W`` viewed as ``(n, width)`` and ``idx`` flattened, element ``e`` of the result
is row ``r = e // width``, column ``c = e % width``:

.. math:: \\mathrm{gather}: y_e = W[\\mathrm{idx}_r, c] \\qquad
          \\mathrm{scatter}: W[\\mathrm{idx}_r, c] \\mathrel{+}= y_e

Repeated ids accumulate through ``cuda.atomic.add`` (in the set variant, one of the
repeats wins). Negative ids count from the end; an id outside ``[-n, n)`` sets the error
flag (the runner then raises the reference's error).
"""

from __future__ import annotations

import math

import numpy as np

from symgraph.backends.cuda.context import LoweringContext, fallback, lower
from symgraph.backends.cuda.jit import compile_kernel, launch_elements
from symgraph.backends.cuda.memory import Site, flat, to_device
from symgraph.backends.cuda.regions import broadcast_into, copy_into
from symgraph.ops.subtensor import AdvancedIncSubtensor1, AdvancedSubtensor1

#: dtypes ``cuda.atomic.add`` supports
ATOMIC_DTYPES = ("int32", "int64", "uint32", "uint64", "float32", "float64")

_ROW = """        r = e // width
        i = idx[r]
        if i < 0:
            i += n
        if i < 0 or i >= n:
            err[0] = 1
        else:
"""
GATHER_SOURCE = ("def KERNEL(x, idx, out, err, n, width, total):\n    e = cuda.grid(1)\n"
                 "    if e < total:\n" + _ROW + "            out[e] = x[i * width + e % width]\n")
SCATTER_SOURCE = ("def KERNEL(out, y, idx, err, n, width, total):\n    e = cuda.grid(1)\n"
                  "    if e < total:\n" + _ROW
                  + "            cuda.atomic.add(out, i * width + e % width, y[e])\n")
SET_ROWS_SOURCE = SCATTER_SOURCE.replace("cuda.atomic.add(out, i * width + e % width, y[e])",
                                         "out[i * width + e % width] = y[e]")


def _ids(idx, ctx: LoweringContext):
    """``env -> device int array`` of row ids (a 0-d id as one element)."""
    if idx.ndim:
        return ctx.device_reader(idx)
    read = ctx.host_reader(idx)
    return lambda env: to_device(np.reshape(read(env), 1))


@lower.register(AdvancedSubtensor1)
def _gather(op, node, ctx: LoweringContext) -> None:
    (x, idx), (out,) = node.inputs, node.outputs
    kernel = compile_kernel(GATHER_SOURCE)
    read_x, read_idx, out_slot = ctx.device_reader(x), _ids(idx, ctx), ctx.slot(out)
    flag = ctx.flag
    site = ctx.new_site(out) if out.ndim else Site(out.dtype)

    def step(env):
        xv, iv = read_x(env), read_idx(env)
        n, width = xv.shape[0], math.prod(xv.shape[1:])
        y = site.get(iv.shape[:idx.ndim] + xv.shape[1:] if out.ndim else (1,))
        total = iv.size * width
        launch_elements(kernel, total, (flat(xv), flat(iv), flat(y), flag.device(), n,
                                        width, total))
        env[out_slot] = y if out.ndim else y.copy_to_host().reshape(())

    ctx.add(step, node, GATHER_SOURCE)


@lower.register(AdvancedIncSubtensor1)
def _scatter(op, node, ctx: LoweringContext) -> None:
    (x, y, idx), (out,) = node.inputs, node.outputs
    if not op.set_instead_of_inc and x.dtype not in ATOMIC_DTYPES:
        return fallback(node, ctx, f"no CUDA atomic add for {x.dtype}")
    source = SET_ROWS_SOURCE if op.set_instead_of_inc else SCATTER_SOURCE
    kernel = compile_kernel(source)
    read_x, read_y, read_idx = ctx.device_reader(x), ctx.argument(y), _ids(idx, ctx)
    out_slot, flag = ctx.slot(out), ctx.flag
    in_place = ctx.can_overwrite(x, node)
    site = None if in_place else ctx.new_site(out)
    if in_place:
        ctx.reuse(out, x)
    rows = Site(y.dtype)  # y broadcast to the full region, when it is not already
    y_static = y.type.shape

    def step(env):
        xv, iv, yv = read_x(env), read_idx(env), read_y(env)
        target = xv if in_place else copy_into(site, xv)
        region = iv.shape + xv.shape[1:]
        if np.shape(yv) != region:
            full = rows.get(region)
            broadcast_into(full, yv, y_static)
            yv = full
        n, width = xv.shape[0], math.prod(xv.shape[1:])
        total = iv.size * width
        launch_elements(kernel, total, (flat(target), flat(yv), flat(iv), flag.device(), n,
                                        width, total))
        env[out_slot] = target

    ctx.add(step, node, source)
