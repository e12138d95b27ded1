"""Kernels from generated source, and how they are launched.

Every kernel of this backend is Python source text defining ``def KERNEL(...)``
(written by the generators in the sibling modules; it never contains a user string).
:func:`compile_kernel` renames it ``k_<hash of the source>``, executes it with the
prelude below in scope and wraps it in ``@cuda.jit``: equal sources share one compiled
kernel per process. numba-cuda specialises each kernel on its argument types at the
first launch.

The prelude holds the device functions that ScalarOp templates call (their
``helpers``: ``sg_sigmoid``, ``sg_softplus``, ``sg_sign``, ``sg_round``) and the float32
variants that :func:`symgraph.backends.numba.fusion.scalar_expr` emits
(``sg_exp32``, ``sg_tanh32``, ``sg_sigmoid32``, here CUDA's own ``expf`` / ``tanhf``).
"""

from __future__ import annotations

import hashlib
import linecache
import math

import numpy as np
from numba import cuda, types

from symgraph.backends.cuda import launcher

#: Threads per block of one-thread-per-element kernels (fewer for smaller arrays).
MAX_THREADS = 256
#: Threads per block of kernels that reduce a row in shared memory (a power of two).
ROW_THREADS = 128
#: Rows at most this long are reduced by one thread each (no shared memory, no
#: synchronisation); longer rows by a block of threads.
SERIAL_ROW = 32
#: Dynamic shared memory of a row-reducing block: one 8-byte slot per thread.
ROW_SHARED_BYTES = ROW_THREADS * 8


@cuda.jit(device=True)
def sg_sigmoid(x):
    """Logistic function without overflow: :math:`1/(1+e^{-x})` for :math:`x \\ge 0`,
    :math:`e^x/(1+e^x)` below."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@cuda.jit(device=True)
def sg_sigmoid32(x):
    """:func:`sg_sigmoid` in float32 arithmetic."""
    one = np.float32(1.0)
    if x >= 0:
        return one / (one + math.exp(-x))
    e = math.exp(x)
    return e / (one + e)


@cuda.jit(device=True)
def sg_exp32(x):
    """:math:`e^x` of a float32 (CUDA's ``expf``)."""
    return math.exp(x)


@cuda.jit(device=True)
def sg_tanh32(x):
    """:math:`\\tanh x` of a float32 (CUDA's ``tanhf``)."""
    return math.tanh(x)


@cuda.jit(device=True)
def sg_softplus(x):
    """:math:`\\log(1+e^x) = \\max(x, 0) + \\log(1 + e^{-|x|})` (no overflow)."""
    return max(x, 0) + math.log1p(math.exp(-abs(x)))


@cuda.jit(device=True)
def sg_sign(x):
    """numpy's ``sign``: -1, 0 or 1; NaN stays NaN."""
    if x > 0:
        return 1
    if x < 0:
        return -1
    if x == 0:
        return 0
    return x


@cuda.jit(device=True)
def sg_round(x):
    """numpy's ``round``: to the nearest integer, halves to even; NaN and inf stay."""
    if x != x or x - x != 0:
        return x
    f = math.floor(x)
    d = x - f
    if d > 0.5 or (d == 0.5 and f - 2.0 * math.floor(f * 0.5) != 0.0):
        f += 1.0
    return f


PRELUDE = {"cuda": cuda, "math": math, "np": np, "nbtypes": types, "sg_sigmoid": sg_sigmoid,
           "sg_sigmoid32": sg_sigmoid32, "sg_exp32": sg_exp32, "sg_tanh32": sg_tanh32,
           "sg_softplus": sg_softplus, "sg_sign": sg_sign, "sg_round": sg_round}

_KERNELS: dict[str, object] = {}


def kernel_name(source: str) -> str:
    """``k_<hash>``: the name a kernel source compiles to."""
    return "k_" + hashlib.sha1(source.encode()).hexdigest()[:16]


def compile_kernel(source: str):
    """The ``@cuda.jit`` kernel defined by ``source`` (a function named ``KERNEL``),
    compiled once per distinct source. Tracebacks show the generated lines."""
    name = kernel_name(source)
    kernel = _KERNELS.get(name)
    if kernel is None:
        text = source.replace("def KERNEL(", f"def {name}(", 1)
        filename = f"<symgraph-cuda {name}>"
        linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
        namespace = dict(PRELUDE)
        exec(compile(text, filename, "exec"), namespace)
        kernel = _KERNELS[name] = cuda.jit(namespace[name])
    return kernel


def shared_buffer(name: str, dtype: str) -> str:
    """The source line binding ``name`` to the block's shared memory as a ``dtype`` array.

    Kernels use only this dynamic array, sized at launch (``shared_bytes`` of
    :func:`launch`) and indexed at fixed offsets, never sliced; never static shared
    arrays. The CUDA simulator makes a static array when the first thread of a block
    asks for it, and two threads asking at the same moment can each get their own: the
    block then no longer shares it and the kernel computes garbage, intermittently. The
    simulator makes the dynamic array once per launch.
    """
    return f"{name} = cuda.shared.array(0, nbtypes.{dtype})"


def launch(kernel, blocks, threads, args, shared_bytes: int = 0) -> None:
    """``kernel[blocks, threads](*args)`` with ``shared_bytes`` of dynamic shared memory
    per block: the one place kernels are launched (past numba-cuda's per-call dispatch
    where it can be, :mod:`~symgraph.backends.cuda.launcher`)."""
    launcher.launch(kernel, blocks, threads, args, shared_bytes)


def launch_elements(kernel, total: int, args) -> None:
    """Launch one thread per element of a ``total``-element domain (nothing when it
    is empty)."""
    if total:
        threads = min(MAX_THREADS, total)
        launch(kernel, (total + threads - 1) // threads, threads, args)


def launch_rows(kernel, serial: bool, rows: int, length: int, args) -> None:
    """Launch a row kernel over ``rows`` rows of ``length`` elements: one thread per row
    (``serial``) or one block per row, with :data:`ROW_SHARED_BYTES` of shared memory
    (its ``buf``)."""
    if serial:
        launch_elements(kernel, rows, args)
    elif rows:
        launch(kernel, rows, row_threads(length), args, ROW_SHARED_BYTES)


def row_threads(length: int) -> int:
    """Threads of a block that reduces a row of ``length`` elements: the smallest power
    of two covering it, at most :data:`ROW_THREADS`."""
    threads = 1
    while threads < min(length, ROW_THREADS):
        threads *= 2
    return threads


def unravel(flat: str, dims: list[str], names: list[str], temp: str = "r") -> list[str]:
    """Source lines setting ``names[k]`` to the index along ``dims[k]`` of the C-order
    position ``flat`` (the last axis varies fastest); ``temp`` prefixes the quotients."""
    if not dims:
        return []
    lines, rest = [], flat
    for k in range(len(dims) - 1, 0, -1):
        lines.append(f"{names[k]} = {rest} % {dims[k]}")
        lines.append(f"{temp}{k} = {rest} // {dims[k]}")
        rest = f"{temp}{k}"
    lines.append(f"{names[0]} = {rest}")
    return lines
