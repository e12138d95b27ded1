"""Matrix products: a tiled shared-memory GEMM, :math:`C = \\mathrm{op}(A)\\,\\mathrm{op}(B)`
with :math:`\\mathrm{op}(X) \\in \\{X, X^T\\}`, for float32 and float64.

Each block computes a ``tile x tile`` block of ``C``; thread ``(ty, tx)`` accumulates

.. math:: C_{ij} = \\sum_{p_0} \\sum_{j'=0}^{tile-1} A_{i, p_0 + j'} B_{p_0 + j', j}

stepping ``p_0`` over the inner dimension a tile at a time: the block loads an
``A`` tile and a ``B`` tile into shared memory (zeros past the edges, so no shape needs
to be a multiple of the tile), synchronises, accumulates, synchronises again.

A ``DimShuffle{1,0}`` (a transpose) whose only readers are matrix products is not
materialised: the GEMM reads its input with the indices swapped. Vector operands are
matrices with one row or column (views, no copy); the vector-vector product's 1x1
result comes back to the host as a 0-d value. Integer products run on the host.
"""

from __future__ import annotations

import functools

from symgraph.backends.cuda.context import LoweringContext, fallback, lower
from symgraph.backends.cuda.jit import compile_kernel, launch, shared_buffer
from symgraph.backends.cuda.memory import Site, reshaped
from symgraph.errors import ShapeError
from symgraph.ops.blas import Dot
from symgraph.ops.dimshuffle import DimShuffle

FLOATS = ("float32", "float64")


def gemm_source(dtype: str, trans_a: bool, trans_b: bool, tile: int) -> str:
    """The GEMM kernel ``(a, b, c, m, n, k)``: ``c (m, n) = op(a) (m, k) @ op(b) (k, n)``,
    ``a`` stored ``(k, m)`` when ``trans_a``, ``b`` stored ``(n, k)`` when ``trans_b``."""
    zero = f"np.{dtype}(0.0)"
    a_elem = "a[p, row]" if trans_a else "a[row, p]"
    b_elem = "b[col, q]" if trans_b else "b[q, col]"
    b0 = tile * tile  # shared memory: the A tile at [0, b0), row-major, then the B tile
    return f"""def KERNEL(a, b, c, m, n, k):
    {shared_buffer("s", dtype)}
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    row = cuda.blockIdx.y * {tile} + ty
    col = cuda.blockIdx.x * {tile} + tx
    mine = ty * {tile} + tx
    acc = {zero}
    for p0 in range(0, k, {tile}):
        p = p0 + tx
        q = p0 + ty
        if row < m and p < k:
            s[mine] = {a_elem}
        else:
            s[mine] = {zero}
        if q < k and col < n:
            s[{b0} + mine] = {b_elem}
        else:
            s[{b0} + mine] = {zero}
        cuda.syncthreads()
        for j in range({tile}):
            acc += s[ty * {tile} + j] * s[{b0} + j * {tile} + tx]
        cuda.syncthreads()
    if row < m and col < n:
        c[row, col] = acc
"""


@functools.cache
def gemm_kernel(dtype: str, trans_a: bool, trans_b: bool, tile: int):
    """The compiled :func:`gemm_source` kernel."""
    return compile_kernel(gemm_source(dtype, trans_a, trans_b, tile))


def tile_for(m: int, n: int) -> int:
    """16x16 tiles, smaller when the result is smaller (no idle threads on tiny ones)."""
    small = min(m, n)
    return 4 if small <= 4 else 8 if small <= 8 else 16


def gemm(a, b, c, trans_a: bool, trans_b: bool) -> None:
    """Launch ``c = op(a) @ op(b)`` on device matrices (shapes checked by the caller)."""
    m, n = c.shape
    k = a.shape[0] if trans_a else a.shape[1]
    if not (m and n):
        return
    tile = tile_for(m, n)
    kernel = gemm_kernel(str(c.dtype), trans_a, trans_b, tile)
    launch(kernel, ((n + tile - 1) // tile, (m + tile - 1) // tile), (tile, tile),
           (a, b, c, m, n, k), 2 * tile * tile * c.dtype.itemsize)


def absorbed_transposes(nodes, clients: dict, outputs: set, virtual: set) -> set:
    """Outputs of ``DimShuffle{1,0}`` nodes read only by float matrix products (which
    then read the input transposed instead)."""
    found = set()
    for node in nodes:
        out = node.outputs[0]
        readers = clients.get(out, [])
        if (isinstance(node.op, DimShuffle) and node.op.pattern == (1, 0)
                and out not in outputs and out not in virtual and readers
                and all(r != "output" and isinstance(r.op, Dot) and r.outputs[0].dtype in FLOATS
                        for r in readers)):
            found.add(out)
    return found


def _operand(var, ctx: LoweringContext) -> tuple:
    """``(reader, stored transposed)``: a transposed operand is read from its input."""
    if var in ctx.transposed:
        return ctx.device_reader(var.owner.inputs[0]), True
    return ctx.device_reader(var), False


def _as_matrix(x, trans: bool, first: bool):
    """A vector operand as a one-row (left) or one-column (right) matrix view."""
    if x.ndim == 2:
        return x, trans
    return reshaped(x, (1, x.shape[0]) if first else (x.shape[0], 1)), False


@lower.register(Dot)
def _dot(op, node, ctx: LoweringContext) -> None:
    (a, b), (out,) = node.inputs, node.outputs
    if out.dtype not in FLOATS:
        return fallback(node, ctx, f"no CUDA matrix product for {out.dtype}")
    (read_a, trans_a), (read_b, trans_b) = _operand(a, ctx), _operand(b, ctx)
    out_slot = ctx.slot(out)
    site = ctx.new_site(out) if out.ndim else Site(out.dtype)
    result_shape = {(2, 2): lambda m, n: (m, n), (2, 1): lambda m, n: (m,),
                    (1, 2): lambda m, n: (n,), (1, 1): lambda m, n: (1,)}[(a.ndim, b.ndim)]

    def step(env):
        am, ta = _as_matrix(read_a(env), trans_a, True)
        bm, tb = _as_matrix(read_b(env), trans_b, False)
        (m, ka), (kb, n) = am.shape[::-1] if ta else am.shape, bm.shape[::-1] if tb else bm.shape
        if ka != kb:
            raise ShapeError(f"dot: inner dimensions {ka} and {kb} differ")
        c = site.get(result_shape(m, n))
        gemm(am, bm, reshaped(c, (m, n)), ta, tb)
        env[out_slot] = c if out.ndim else c.copy_to_host().reshape(())

    ctx.add(step, node)
