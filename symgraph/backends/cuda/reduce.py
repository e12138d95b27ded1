"""Reductions over axes (sum, prod, max, min).

For an input of shape ``(d_0, ..., d_{n-1})`` reduced over axes ``R``, output element
``o`` (an index over the kept axes) is

.. math:: y_o = \\bigoplus_{r} x[o \\oplus r]

over the indices ``r`` of the reduced axes. Short rows (at most ``jit.SERIAL_ROW``
elements) take one thread per output; longer ones a block, whose threads stride over
``r`` accumulating privately and then combine their partial results in shared memory
by a tree (halving the active threads each round, so sums are pairwise). ``max`` /
``min`` propagate NaN like numpy. Sums and products of floats accumulate in their own
dtype, of integers and booleans in 64 bits. ``mean`` is a sum times a constant in the
graph.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from symgraph.backends.cuda import jit
from symgraph.backends.cuda.context import LoweringContext, lower
from symgraph.backends.cuda.jit import compile_kernel, launch_rows, shared_buffer, unravel
from symgraph.backends.cuda.memory import Site, flat, reshaped
from symgraph.backends.numba.emitter import literal
from symgraph.errors import ShapeError
from symgraph.ops.reduce import Reduce

#: ``combine(a, b)`` of each kind (``max`` / ``min`` keep a NaN from either side).
COMBINE = {"sum": "({a} + {b})", "prod": "({a} * {b})",
           "max": "({a} if ({a} > {b} or {a} != {a}) else {b})",
           "min": "({a} if ({a} < {b} or {a} != {a}) else {b})"}


def accumulator_dtype(kind: str, dtype: str) -> str:
    """The dtype partial results are kept in."""
    kind_of = np.dtype(dtype).kind
    if kind in ("sum", "prod"):
        return dtype if kind_of == "f" else "uint64" if kind_of == "u" else "int64"
    return "int8" if dtype == "bool" else dtype


def identity(kind: str, dtype: str) -> str:
    """The source of the accumulator's initial value."""
    if kind == "sum":
        return literal(0, dtype)
    if kind == "prod":
        return literal(1, dtype)
    if np.dtype(dtype).kind == "f":
        return literal(-np.inf if kind == "max" else np.inf, dtype)
    info = np.iinfo(dtype)
    return literal(info.min if kind == "max" else info.max, dtype)


def cast_source(expr: str, dtype: str) -> str:
    return f"({expr} != 0)" if dtype == "bool" else f"np.{dtype}({expr})"


def reduce_source(kind: str, ndim: int, axes: tuple, acc: str, out_dtype: str,
                  serial: bool) -> str:
    """The kernel ``(x, out, d0, ..., n_red, n_out)``: ``x`` and ``out`` flat, ``d*`` the
    input's shape, ``n_red`` the number of elements reduced into each of the ``n_out``
    outputs; a thread per output (``serial``) or a block."""
    kept = [a for a in range(ndim) if a not in axes]
    dims = [f"d{a}" for a in range(ndim)]
    flat = "i0"
    for a in range(1, ndim):
        flat = f"({flat} * d{a} + i{a})"
    combine = COMBINE[kind]
    if serial:
        head = ["o = cuda.grid(1)", "if o >= n_out:", "    return", "tid = 0", "nt = 1"]
    else:
        head = [shared_buffer("buf", acc), "o = cuda.blockIdx.x",
                "tid = cuda.threadIdx.x", "nt = cuda.blockDim.x"]
    lines = (head + unravel("o", [dims[a] for a in kept], [f"i{a}" for a in kept], "ro")
             + [f"acc = {identity(kind, acc)}", "j = tid", "while j < n_red:"]
             + ["    " + s for s in unravel("j", [dims[a] for a in axes],
                                            [f"i{a}" for a in axes], "rj")]
             + [f"    acc = {combine.format(a='acc', b=cast_source(f'x[{flat}]', acc))}",
                "    j += nt"])
    if not serial:
        lines += ["buf[tid] = acc",
                  "cuda.syncthreads()",
                  "w = nt // 2",
                  "while w > 0:",
                  "    if tid < w:",
                  f"        buf[tid] = {combine.format(a='buf[tid]', b='buf[tid + w]')}",
                  "    cuda.syncthreads()",
                  "    w //= 2",
                  "if tid != 0:",
                  "    return",
                  "acc = buf[0]"]
    lines.append(f"out[o] = {cast_source('acc', out_dtype)}")
    return (f"def KERNEL(x, out, {', '.join(dims)}, n_red, n_out):\n"
            + "".join(f"    {line}\n" for line in lines))


@functools.cache
def reduce_kernel(kind: str, ndim: int, axes: tuple, dtype: str, out_dtype: str,
                  serial: bool):
    """The compiled :func:`reduce_source` kernel for inputs of ``dtype``."""
    return compile_kernel(reduce_source(kind, ndim, axes, accumulator_dtype(kind, dtype),
                                        out_dtype, serial))


@lower.register(Reduce)
def _reduce(op, node, ctx: LoweringContext) -> None:
    (x,), (out,) = node.inputs, node.outputs
    read_x, out_slot = ctx.device_reader(x), ctx.slot(out)
    site = ctx.new_site(out) if out.ndim else Site(out.dtype)
    kept = [a for a in range(x.ndim) if a not in op.axes]

    def step(env):
        xv = read_x(env)
        n_red = math.prod(xv.shape[a] for a in op.axes)
        n_out = math.prod(xv.shape[a] for a in kept)
        if op.kind in ("max", "min") and not n_red and n_out:
            raise ShapeError(f"{op.kind} over an empty axis (input shape {xv.shape})")
        shape = tuple(1 if a in op.axes else xv.shape[a] for a in range(x.ndim)
                      if op.keepdims or a not in op.axes)
        y = site.get(shape if out.ndim else (1,))
        serial = n_red <= jit.SERIAL_ROW
        kernel = reduce_kernel(op.kind, x.ndim, op.axes, x.dtype, out.dtype, serial)
        launch_rows(kernel, serial, n_out, n_red,
                    (flat(xv), reshaped(y, (n_out,)), *xv.shape, n_red, n_out))
        env[out_slot] = y if out.ndim else y.copy_to_host().reshape(())

    ctx.add(step, node)
