"""Softmax, log-softmax and the cross-entropies with integer class ids, row by row: one
thread per row for rows of at most ``jit.SERIAL_ROW`` classes, else one block per row,
the row's maximum and sum of exponentials reduced by a tree in shared memory.

Along the softmax axis, with :math:`m = \\max_j x_j` (the shift keeps ``exp`` finite):

.. math::
    \\mathrm{softmax}(x)_i = \\frac{e^{x_i - m}}{\\sum_j e^{x_j - m}}, \\quad
    \\mathrm{log\\_softmax}(x)_i = x_i - m - \\log \\sum_j e^{x_j - m}, \\quad
    \\ell = m + \\log \\sum_j e^{x_j - m} - x_y, \\quad
    \\ell_{\\mathrm{nll}} = -\\log p_y.

A class id outside ``[0, K)`` sets the error flag (the runner then raises the
reference's error). Cross-entropy with probability rows as targets runs on the host.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from symgraph.backends.cuda import jit
from symgraph.backends.cuda.context import LoweringContext, fallback, lower
from symgraph.backends.cuda.jit import compile_kernel, launch_rows, shared_buffer
from symgraph.backends.cuda.memory import Site, flat, reshaped, to_device
from symgraph.errors import ShapeError
from symgraph.ops.nnet import CrossEntropyIndexed, LogSoftmax, Softmax, SoftmaxCrossEntropy

_MAX = "a if (a > b or a != a) else b"


def _row_statistics(dtype: str, element: str, serial: bool) -> list[str]:
    """Kernel lines leaving the row's maximum in ``m`` and its sum of ``exp(x - m)`` in
    ``s``, for the row's elements ``element.format(j)``, ``j < k``: by one thread
    (``serial``), or by the block's threads striding over ``j`` and a tree in shared
    memory (every thread gets the results)."""
    def across_threads(var: str, combine: str) -> list[str]:
        """Combine the threads' ``var`` by ``combine`` (of ``a`` and ``b``)."""
        if serial:
            return []
        return [f"buf[tid] = {var}",
                "cuda.syncthreads()",
                "w = nt // 2",
                "while w > 0:",
                "    if tid < w:",
                "        a = buf[tid]",
                "        b = buf[tid + w]",
                f"        buf[tid] = {combine}",
                "    cuda.syncthreads()",
                "    w //= 2",
                f"{var} = buf[0]",
                "cuda.syncthreads()"]

    head = (["tid = 0", "nt = 1"] if serial else
            [shared_buffer("buf", dtype), "tid = cuda.threadIdx.x",
             "nt = cuda.blockDim.x"])
    return (head
            + [f"m = np.{dtype}(-np.inf)",
               "j = tid",
               "while j < k:",
               f"    v = {element.format('j')}",
               "    if v > m or v != v:",
               "        m = v",
               "    j += nt"]
            + across_threads("m", _MAX)
            + [f"s = np.{dtype}(0.0)",
               "j = tid",
               "while j < k:",
               f"    s += math.exp({element.format('j')} - m)",
               "    j += nt"]
            + across_threads("s", "a + b"))


def _row_head(serial: bool) -> list[str]:
    """The row this thread (``serial``) or block works on."""
    if serial:
        return ["row = cuda.grid(1)", "if row >= rows:", "    return"]
    return ["row = cuda.blockIdx.x"]


def softmax_source(dtype: str, log: bool, serial: bool) -> str:
    """``(x, out, k, post, rows)``: x and out flat, viewed as ``(pre, k, post)``; row
    ``p * post + q`` normalises ``x[p, :, q]``."""
    element = "x[base + {} * post]"
    value = "v - math.log(s)" if log else "math.exp(v) / s"
    lines = (_row_head(serial)
             + ["base = (row // post) * k * post + row % post"]
             + _row_statistics(dtype, element, serial)
             + ["j = tid",
                "while j < k:",
                "    v = x[base + j * post] - m",
                f"    out[base + j * post] = {value}",
                "    j += nt"])
    return "def KERNEL(x, out, k, post, rows):\n" + "".join(f"    {line}\n" for line in lines)


def xent_source(dtype: str, serial: bool) -> str:
    """``(x, ids, out, err, k, rows)``: ``out[row] = logsumexp(x[row]) - x[row, ids[row]]``."""
    lines = (_row_head(serial)
             + ["base = row * k"]
             + _row_statistics(dtype, "x[base + {}]", serial)
             + ["if tid == 0:",
                "    c = ids[row]",
                "    if c < 0 or c >= k:",
                "        err[0] = 1",
                f"        out[row] = np.{dtype}(np.nan)",
                "    else:",
                "        out[row] = m + math.log(s) - x[base + c]"])
    return ("def KERNEL(x, ids, out, err, k, rows):\n"
            + "".join(f"    {line}\n" for line in lines))


def nll_source() -> str:
    """``(p, ids, out, err, k, rows)``: ``out[row] = -log p[row, ids[row]]`` (one thread
    per row whatever its length)."""
    return """def KERNEL(p, ids, out, err, k, rows):
    row = cuda.grid(1)
    if row < rows:
        c = ids[row]
        if c < 0 or c >= k:
            err[0] = 1
        else:
            out[row] = -math.log(p[row * k + c])
"""


@functools.cache
def softmax_kernel(dtype: str, log: bool, serial: bool):
    return compile_kernel(softmax_source(dtype, log, serial))


@functools.cache
def xent_kernel(dtype: str, serial: bool):
    return compile_kernel(xent_source(dtype, serial))


@functools.cache
def nll_kernel():
    return compile_kernel(nll_source())


@lower.register(Softmax)
@lower.register(LogSoftmax)
def _softmax(op, node, ctx: LoweringContext) -> None:
    (x,), (out,) = node.inputs, node.outputs
    axis, log = op.axis % x.ndim, isinstance(op, LogSoftmax)
    read_x, out_slot, site = ctx.device_reader(x), ctx.slot(out), ctx.new_site(out)

    def step(env):
        xv = read_x(env)
        y = env[out_slot] = site.get(xv.shape)
        k, post = xv.shape[axis], math.prod(xv.shape[axis + 1:])
        rows = xv.size // k if k else 0
        serial = k <= jit.SERIAL_ROW
        launch_rows(softmax_kernel(out.dtype, log, serial), serial, rows, k,
                    (flat(xv), flat(y), k, post, rows))

    ctx.add(step, node)


def _ids_reader(ids, ctx: LoweringContext):
    """``env -> device int array`` of class ids (a 0-d id is uploaded as one element)."""
    if ids.ndim:
        return ctx.device_reader(ids)
    read = ctx.host_reader(ids)
    return lambda env: to_device(np.reshape(read(env), 1))


def _row_loss(node, ctx: LoweringContext, kernel_for) -> None:
    """A step computing one loss per row of ``node.inputs[0]`` (..., K) with the class
    ids ``node.inputs[1]`` (...); ``kernel_for(K) -> (kernel, serial)``."""
    (x, ids), (out,) = node.inputs, node.outputs
    read_x, read_ids, out_slot = ctx.device_reader(x), _ids_reader(ids, ctx), ctx.slot(out)
    site = ctx.new_site(out) if out.ndim else Site(out.dtype)
    flag = ctx.flag

    def step(env):
        xv, iv = read_x(env), read_ids(env)
        *lead, k = xv.shape
        lead = tuple(lead)
        if k == 0 or (ids.ndim and iv.shape != lead):
            raise ShapeError(f"{node.op}: logits of shape {xv.shape} and ids of shape "
                             f"{iv.shape} do not match")
        rows = math.prod(lead)
        y = site.get(lead if out.ndim else (1,))
        kernel, serial = kernel_for(k)
        launch_rows(kernel, serial, rows, k, (flat(xv), flat(iv), reshaped(y, (rows,)),
                                              flag.device(), k, rows))
        env[out_slot] = y if out.ndim else y.copy_to_host().reshape(())

    ctx.add(step, node)


@lower.register(SoftmaxCrossEntropy)
def _softmax_xent(op, node, ctx: LoweringContext) -> None:
    if not node.inputs[1].type.is_integer:
        return fallback(node, ctx, "no CUDA softmax cross-entropy for probability targets")
    dtype = node.outputs[0].dtype
    _row_loss(node, ctx, lambda k: (xent_kernel(dtype, k <= jit.SERIAL_ROW),
                                    k <= jit.SERIAL_ROW))


@lower.register(CrossEntropyIndexed)
def _nll(op, node, ctx: LoweringContext) -> None:
    _row_loss(node, ctx, lambda k: (nll_kernel(), True))
