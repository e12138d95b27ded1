"""C-contiguous copies of transposed matrices in SIMD blocks: ``sg_copy_columns``.

Copying a Fortran-ordered matrix (a transposed weight, ``w.T``) into C order element by
element reads one element per cache line from each source column and keeps only a few
lines in use, at about 2 ns per element (150 us for a 512 x 128 float matrix on the
development machine). Here the copy goes block by block: ``W`` columns of ``W`` rows are
loaded as ``W`` vectors (each contiguous in the source), transposed in registers and
stored as ``W`` contiguous row pieces of the destination, ``W`` being the lanes of one
SIMD register. The transposition swaps the off-diagonal halves of the block, then of
each quarter, down to single lanes::

    for h in W/2, W/4, ..., 1:             # log2(W) rounds of W two-vector shuffles
        for each pair (v[r], v[r + h]) with r & h == 0:
            v[r]     <- lanes c of v[r] where c & h == 0, else lane c - h of v[r + h]
            v[r + h] <- lane c + h of v[r] where c & h == 0, else lane c of v[r + h]

Rows and columns left over below a whole block are copied one element at a time.
"""

from __future__ import annotations

import functools

import numba
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from symgraph.backends.numba.prelude import JIT_OPTIONS
from symgraph.backends.numba.tiles import VECTOR_BYTES

__all__ = ["sg_copy_columns", "copier", "block_lanes"]


def block_lanes(vector_bytes: int, itemsize: int) -> int:
    """The side of a block: the lanes of one vector register."""
    return max(1, vector_bytes // itemsize)


def _shuffled(builder, x, y, lanes: int, h: int):
    """The pair ``(v[r], v[r + h])`` after the round of width ``h`` (module docstring)."""
    first = [c if c & h == 0 else lanes + c - h for c in range(lanes)]
    second = [c + h if c & h == 0 else lanes + c for c in range(lanes)]
    mask = functools.partial(ir.Constant, ir.VectorType(ir.IntType(32), lanes))
    return (builder.shuffle_vector(x, y, mask(first)),
            builder.shuffle_vector(x, y, mask(second)))


@functools.cache
def _block(vector_bytes: int):
    """``block(x, out, i, j)``: ``out[i:i+W, j:j+W] = x[i:i+W, j:j+W]`` for ``x`` whose
    columns are contiguous (unit stride along axis 0) and ``out`` whose rows are."""

    @intrinsic
    def block(typingctx, x, out, i, j):
        if not (isinstance(x, types.Array) and isinstance(out, types.Array)
                and x.ndim == out.ndim == 2 and x.dtype == out.dtype
                and x.dtype in (types.float32, types.float64)
                and isinstance(i, types.Integer) and isinstance(j, types.Integer)):
            return None

        def codegen(context, builder, signature, args):
            intp = context.get_value_type(types.intp)
            scalar = context.get_value_type(x.dtype)
            size = context.get_abi_sizeof(scalar)
            lanes = block_lanes(vector_bytes, size)
            vector = ir.VectorType(scalar, lanes)
            source, target = (context.make_array(t)(context, builder, v)
                              for t, v in zip(signature.args[:2], args[:2]))
            row, column = (context.cast(builder, args[k], signature.args[k], types.intp)
                           for k in (2, 3))
            column_stride = builder.sdiv(cgutils.unpack_tuple(builder, source.strides)[1],
                                         intp(size))
            row_stride = builder.sdiv(cgutils.unpack_tuple(builder, target.strides)[0],
                                      intp(size))

            def vector_at(array, offset):
                return builder.bitcast(builder.gep(array.data, [offset]), vector.as_pointer())

            loaded = []
            for c in range(lanes):  # x[i:i+W, j+c], contiguous
                at = builder.add(row, builder.mul(builder.add(column, intp(c)), column_stride))
                loaded.append(builder.load(vector_at(source, at), align=size))
            h = lanes // 2
            while h:
                for r in range(lanes):
                    if r & h == 0:
                        loaded[r], loaded[r + h] = _shuffled(builder, loaded[r],
                                                             loaded[r + h], lanes, h)
                h //= 2
            for r in range(lanes):  # out[i+r, j:j+W]
                at = builder.add(builder.mul(builder.add(row, intp(r)), row_stride), column)
                builder.store(loaded[r], vector_at(target, at), align=size)
            return context.get_dummy_value()

        return types.none(x, out, i, j), codegen

    return block


def copier(vector_bytes: int, **options):
    """``copy(x, out)``: ``out[...] = x`` for a float matrix ``x`` with contiguous
    columns into ``out`` with contiguous rows (same shape), in blocks for registers of
    ``vector_bytes`` (a numba function compiled with ``options``)."""
    block = _block(vector_bytes)

    def copy(x, out):
        m, n = x.shape
        side = max(1, vector_bytes // x.itemsize)  # block_lanes
        whole_m, whole_n = m - m % side, n - n % side
        for i in range(0, whole_m, side):
            for j in range(0, whole_n, side):
                block(x, out, i, j)
            for j in range(whole_n, n):
                for r in range(i, i + side):
                    out[r, j] = x[r, j]
        for i in range(whole_m, m):
            for j in range(n):
                out[i, j] = x[i, j]

    return numba.njit(**options)(copy)


sg_copy_columns = copier(VECTOR_BYTES, **JIT_OPTIONS)
