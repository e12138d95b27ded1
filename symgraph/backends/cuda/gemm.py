"""Matrix products: a tiled shared-memory GEMM, :math:`C = \\mathrm{op}(A)\\,\\mathrm{op}(B)`
with :math:`\\mathrm{op}(X) \\in \\{X, X^T\\}`, for float32 and float64.

Each block computes a ``tile x tile`` block of ``C``; thread ``(ty, tx)`` accumulates

.. math:: C_{ij} = \\sum_{p_0} \\sum_{j'=0}^{tile-1} A_{i, p_0 + j'} B_{p_0 + j', j}

stepping ``p_0`` over the inner dimension a tile at a time: the block loads an
``A`` tile and a ``B`` tile into shared memory (zeros past the edges, so no shape needs
to be a multiple of the tile), synchronises, accumulates, synchronises again. Threads
next to each other load elements next to each other in memory (coalesced), also from
an operand stored transposed: its tile is loaded with the thread roles swapped.

**Split inner dimension.** A product with few output tiles and a long inner dimension
(a recurrent step's ``dgates @ U^T``: 32x512 from an inner 2048) would leave most of the
GPU idle while a few blocks walk the whole inner dimension. It is cut into ``splits``
chunks (a third grid dimension); block ``z`` writes its partial product to
``W[z]`` and a second kernel adds the ``W[z]`` in order, so the result does not depend
on scheduling (no atomics).

A ``DimShuffle{1,0}`` (a transpose) whose only readers are matrix products is not
materialised: the GEMM reads its input with the indices swapped. Vector operands are
matrices with one row or column (views, no copy); the vector-vector product's 1x1
result comes back to the host as a 0-d value. Integer products run on the host.
"""

from __future__ import annotations

import functools

from symgraph.backends.cuda.context import LoweringContext, fallback, lower
from symgraph.backends.cuda.jit import (
    compile_kernel,
    launch,
    launch_elements,
    shared_buffer,
)
from symgraph.backends.cuda.memory import Site, flat, reshaped
from symgraph.errors import ShapeError
from symgraph.ops.blas import Dot
from symgraph.ops.dimshuffle import DimShuffle

FLOATS = ("float32", "float64")
#: Blocks a product should launch to keep a large GPU busy (two per multiprocessor of
#: an H100, which has 132); fewer output tiles than this split the inner dimension.
TARGET_BLOCKS = 256
#: The shortest inner-dimension chunk worth a block of its own.
MIN_CHUNK = 256


def _tile_load(name: str, trans: bool, inner: str, outer: str, bound: str, tile: int,
                offset: str) -> list[str]:
    """Source lines loading this block's tile of operand ``name`` into shared memory at
    ``offset``: element ``[outer index][inner index]`` of the tile, ``outer`` its row
    (``A``) or column (``B``) index base, ``inner`` the inner-dimension base.

    Stored as used (``a`` as (m, k), ``b`` as (k, n)) thread ``(ty, tx)`` loads the tile's
    element at the thread's own position; stored transposed, the roles swap so that
    ``tx`` runs along memory."""
    if name == "a":  # the A tile is stored [row][inner]
        src = f"a[{inner} + ty, {outer} + tx]" if trans else f"a[{outer} + ty, {inner} + tx]"
        ok = (f"{inner} + ty < k and {outer} + tx < {bound}" if trans
              else f"{outer} + ty < {bound} and {inner} + tx < k")
    else:  # the B tile is stored [inner][column]
        src = f"b[{outer} + ty, {inner} + tx]" if trans else f"b[{inner} + ty, {outer} + tx]"
        ok = (f"{outer} + ty < {bound} and {inner} + tx < k" if trans
              else f"{inner} + ty < k and {outer} + tx < {bound}")
    dst = f"{offset} + tx * {tile} + ty" if trans else f"{offset} + ty * {tile} + tx"
    return [f"    if {ok}:", f"        s[{dst}] = {src}", "    else:", f"        s[{dst}] = zero"]


def gemm_source(dtype: str, trans_a: bool, trans_b: bool, tile: int) -> str:
    """The GEMM kernel ``(a, b, c, m, n, k, chunk)``: ``c[z] (m, n) = op(a)[:, K_z] @
    op(b)[K_z, :]`` for the inner range ``K_z = [z chunk, (z + 1) chunk)`` of block
    ``z`` of the grid's third dimension; ``a`` stored ``(k, m)`` when ``trans_a``, ``b``
    stored ``(n, k)`` when ``trans_b``."""
    b0 = tile * tile  # shared memory: the A tile at [0, b0), row-major, then the B tile
    loads = (_tile_load("a", trans_a, "p0", "row0", "m", tile, "0")
             + _tile_load("b", trans_b, "p0", "col0", "n", tile, str(b0)))
    body = "\n".join("    " + line for line in loads)
    return f"""def KERNEL(a, b, c, m, n, k, chunk):
    {shared_buffer("s", dtype)}
    zero = np.{dtype}(0.0)
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    row0 = cuda.blockIdx.y * {tile}
    col0 = cuda.blockIdx.x * {tile}
    z = cuda.blockIdx.z
    acc = zero
    for p0 in range(z * chunk, min(k, (z + 1) * chunk), {tile}):
{body}
        cuda.syncthreads()
        for j in range({tile}):
            acc += s[ty * {tile} + j] * s[{b0} + j * {tile} + tx]
        cuda.syncthreads()
    if row0 + ty < m and col0 + tx < n:
        c[z, row0 + ty, col0 + tx] = acc
"""


#: ``c[i] = w[0, i] + w[1, i] + ...``: the partial products of a split product, in order.
SUM_SPLITS_SOURCE = """def KERNEL(w, c, splits, total):
    i = cuda.grid(1)
    if i < total:
        acc = w[0, i]
        for z in range(1, splits):
            acc += w[z, i]
        c[i] = acc
"""


@functools.cache
def gemm_kernel(dtype: str, trans_a: bool, trans_b: bool, tile: int):
    """The compiled :func:`gemm_source` kernel."""
    return compile_kernel(gemm_source(dtype, trans_a, trans_b, tile))


@functools.cache
def sum_splits_kernel():
    """The compiled :data:`SUM_SPLITS_SOURCE` kernel."""
    return compile_kernel(SUM_SPLITS_SOURCE)


def tile_for(m: int, n: int) -> int:
    """16x16 tiles, smaller when the result is smaller (no idle threads on tiny ones)."""
    small = min(m, n)
    return 4 if small <= 4 else 8 if small <= 8 else 16


def split_for(blocks: int, k: int, tile: int) -> tuple[int, int]:
    """``(splits, chunk)``: how many inner-dimension chunks of ``chunk`` (a multiple of
    the tile) a product of ``blocks`` output tiles runs in (see the module docstring)."""
    splits = min(-(-TARGET_BLOCKS // blocks), k // MIN_CHUNK)
    if splits < 2:
        return 1, max(k, 1)
    chunk = -(-k // splits)
    chunk = -(-chunk // tile) * tile
    return -(-k // chunk), chunk


def gemm(a, b, c, trans_a: bool, trans_b: bool, workspace: Site | None = None) -> None:
    """Launch ``c = op(a) @ op(b)`` on device matrices (shapes checked by the caller);
    a split product keeps its partial products in ``workspace`` (a new array without)."""
    m, n = c.shape
    k = a.shape[0] if trans_a else a.shape[1]
    if not (m and n):
        return
    tile = tile_for(m, n)
    grid = ((n + tile - 1) // tile, (m + tile - 1) // tile)
    splits, chunk = split_for(grid[0] * grid[1], k, tile)
    kernel = gemm_kernel(str(c.dtype), trans_a, trans_b, tile)
    if splits == 1:
        launch(kernel, grid + (1,), (tile, tile), (a, b, reshaped(c, (1, m, n)), m, n, k, chunk),
               2 * tile * tile * c.dtype.itemsize)
        return
    w = (workspace or Site(c.dtype)).get((splits, m, n))
    launch(kernel, grid + (splits,), (tile, tile), (a, b, w, m, n, k, chunk),
           2 * tile * tile * c.dtype.itemsize)
    launch_elements(sum_splits_kernel(), m * n,
                    (reshaped(w, (splits, m * n)), flat(c), splits, m * n))


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
    workspace = Site(out.dtype)
    result_shape = {(2, 2): lambda m, n: (m, n), (2, 1): lambda m, n: (m,),
                    (1, 2): lambda m, n: (n,), (1, 1): lambda m, n: (1,)}[(a.ndim, b.ndim)]

    def step(env):
        am, ta = _as_matrix(read_a(env), trans_a, True)
        bm, tb = _as_matrix(read_b(env), trans_b, False)
        (m, ka), (kb, n) = am.shape[::-1] if ta else am.shape, bm.shape[::-1] if tb else bm.shape
        if ka != kb:
            raise ShapeError(f"dot: inner dimensions {ka} and {kb} differ")
        c = site.get(result_shape(m, n))
        gemm(am, bm, reshaped(c, (m, n)), ta, tb, workspace)
        env[out_slot] = c if out.ndim else c.copy_to_host().reshape(())

    ctx.add(step, node)
