"""Matrix products that lowerings call from generated code: float products through BLAS
(``sg_gemm``, and ``sg_gemm_add`` for ``c + a @ b``), large ones cut into row parts on
threads (``threads.sg_parts_of``), integer products and vector operands as loops or
``np.dot``. Compiled and cached as ``kernels`` are (see its docstring).
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from symgraph.backends.numba.glue import sg_out, sg_same_data
from symgraph.backends.numba.kernels import _copy_loops
from symgraph.backends.numba.prelude import JIT_OPTIONS, SGRuntimeError
from symgraph.backends.numba.threads import (
    SHARED_BYTES,
    sg_one_thread,
    sg_part_count,
    sg_part_products,
    sg_parts_of,
)
from symgraph.backends.numba.tiles import sg_tiles

__all__ = ["sg_dot_loops", "sg_dot_vec", "sg_gemm", "sg_gemm_add"]

jit = numba.njit(**JIT_OPTIONS)


@jit
def sg_gemm(a, b, out):
    """``a @ b`` for float matrices through BLAS (``_product``: in row parts when large)."""
    if a.shape[1] != b.shape[0]:
        raise SGRuntimeError()
    out = sg_out(out, (a.shape[0], b.shape[1]))
    if a.shape[1] == 0:
        out[...] = 0
    elif out.size:
        _product(_blas_ready(a), _blas_ready(b), out, 0.0)
    return out


@jit
def sg_gemm_add(a, b, c, repeat_rows, repeat_columns, out):
    """``c + a @ b`` for float matrices: ``c`` is copied into ``out`` (unless it is
    ``out``) and BLAS adds the product to it (beta = 1), where a product kernel and an
    addition kernel would write and read a temporary (and the addition be one more
    kernel to compile). ``c`` has the product's shape, or length 1 along an axis where
    it broadcasts (``repeat_rows`` / ``repeat_columns``: its static length is 1, as
    a bias row's). ``a`` and ``b`` are best C- or F-contiguous (others are copied)."""
    m, k, n = a.shape[0], a.shape[1], b.shape[1]
    rows, columns = c.shape[0], c.shape[1]
    if (b.shape[0] != k or (rows != m and not (repeat_rows and rows == 1))
            or (columns != n and not (repeat_columns and columns == 1))):
        raise SGRuntimeError()
    out = sg_out(out, (m, n))
    if rows == m and columns == n:
        if not sg_same_data(out, c):
            _copy_loops(out, c)
    else:
        for i in range(m):
            row = c[0 if rows == 1 else i]
            if columns == n:
                for j in range(n):
                    out[i, j] = row[j]
            else:
                for j in range(n):
                    out[i, j] = row[0]
    if m > 0 and n > 0 and k > 0:
        _product(_blas_ready(a), _blas_ready(b), out, 1.0)
    return out


#: Multiply-adds from which a product runs in the BLAS's own threads when one thread is
#: set (no row parts).
LARGE_PRODUCT = 1 << 24


#: Most bytes of the left operand's rows that a tiled product takes (one core's L2
#: cache): every column panel of ``b`` passes them all, so they must stay in the cache.
TILED_LEFT_BYTES = SHARED_BYTES


#: Fewest rows of ``a`` for which a right operand with contiguous columns (a transposed
#: matrix) is copied with contiguous rows, so that the product runs in tiles: the copy
#: costs about as much as a few rows of the product.
COPIED_RIGHT_ROWS = 8


@jit
def _product(a, b, out, beta):
    """``out = beta * out + a @ b`` (operands BLAS-ready, no size 0). A product of at least
    ``threads.set_part_products`` multiply-adds runs in row parts on threads when there
    are several; with one thread set, a large one in one call to the BLAS and its own
    threads; any other in one call of ``_product_rows`` (inside a loop's row part: on
    that part's core). A transposed ``b`` that the tiles would take if its rows were
    contiguous is copied so first (``sg_copy``: in SIMD blocks)."""
    m, k = a.shape
    macs = m * k * b.shape[1]
    parts = sg_part_count(m) if macs >= sg_part_products() else 1
    if macs >= LARGE_PRODUCT and sg_one_thread():  # the BLAS's own threads
        _gemm_rows(a, b, out, 0, m, beta)
    elif (b.strides[1] != b.itemsize and m >= COPIED_RIGHT_ROWS
          and -(-m // parts) * k * a.itemsize <= TILED_LEFT_BYTES):
        rows = np.empty(b.shape, b.dtype)
        _copy_loops(rows, b)
        _in_parts(a, rows, out, beta, parts)
    else:
        _in_parts(a, b, out, beta, parts)


@jit
def _in_parts(a, b, out, beta, parts):
    if parts > 1:
        sg_parts_of(_product_rows, a.shape[0], a, b, out, beta)
    else:
        _product_rows(0, a.shape[0], a, b, out, beta)


@jit
def _product_rows(lo, hi, a, b, out, beta):
    """Rows ``lo:hi`` in register tiles (``tiles``) where ``b``'s rows are contiguous and
    those rows of ``a`` fit in a core's cache, else through the BLAS."""
    if b.strides[1] == b.itemsize and (hi - lo) * a.shape[1] * a.itemsize <= TILED_LEFT_BYTES:
        sg_tiles(a, b, out, lo, hi, beta)
    else:
        _gemm_rows(a, b, out, lo, hi, beta)


def _blas_ready(x):  # pragma: no cover - replaced by the overload below
    raise NotImplementedError


@overload(_blas_ready, jit_options={"error_model": "numpy"})
def _blas_ready_overload(x):
    """``x`` when numba types it C- or F-contiguous, else a C-contiguous copy (so that a
    caller's wrong belief about a layout costs a copy, not a typing error)."""
    if x.layout in ("C", "F"):
        return lambda x: x
    return lambda x: np.ascontiguousarray(x)


@intrinsic
def _gemm_rows(typingctx, a, b, out, lo, hi, beta):
    """``out[lo:hi] = beta * out[lo:hi] + a[lo:hi] @ b`` through numba's BLAS entry
    point (``numba_xxgemm``, scipy's BLAS, as ``np.dot`` calls it): ``a`` and ``b`` C-
    or F-contiguous, ``out`` C-contiguous, of one float dtype, ``0 <= lo < hi <= m`` and
    no size 0 (the callers check). The rows are a pointer offset into each array."""
    from numba.np.linalg import ensure_blas

    if not (all(isinstance(t, types.Array) and t.ndim == 2 for t in (a, b, out))
            and a.dtype == b.dtype == out.dtype
            and a.dtype in (types.float32, types.float64)
            and a.layout in ("C", "F") and b.layout in ("C", "F") and out.layout == "C"
            and isinstance(lo, types.Integer) and isinstance(hi, types.Integer)
            and isinstance(beta, types.Float)):
        return None
    ensure_blas()

    def codegen(context, builder, signature, args):
        from numba.np.linalg import check_blas_return, get_blas_kind, make_constant_slot

        char, pointer = ir.IntType(8), ir.IntType(8).as_pointer()
        intp = context.get_value_type(types.intp)
        fnty = ir.FunctionType(ir.IntType(32), [char, char, char, intp, intp, intp, pointer,
                                                pointer, intp, pointer, intp, pointer,
                                                pointer, intp])
        gemm = cgutils.get_or_insert_function(builder.module, fnty, "numba_xxgemm")
        left, right, result = (context.make_array(t)(context, builder, v)
                               for t, v in zip(signature.args[:3], args[:3]))
        first, stop = (context.cast(builder, v, t, types.intp)
                       for v, t in zip(args[3:5], signature.args[3:5]))
        rows, k = cgutils.unpack_tuple(builder, left.shape)
        n = cgutils.unpack_tuple(builder, right.shape)[1]
        one = builder.bitcast(make_constant_slot(context, builder, a.dtype, 1.0), pointer)
        scale = cgutils.alloca_once_value(builder, context.cast(
            builder, args[5], signature.args[5], a.dtype))

        def at(array, elements):
            return builder.bitcast(cgutils.pointer_add(
                builder, array.data, builder.mul(elements, array.itemsize)), pointer)

        # row-major product = column-major product of the transposes
        trans_b, ld_b = (char(ord("n")), n) if b.layout == "C" else (char(ord("t")), k)
        if a.layout == "C":
            trans_a, ld_a, data_a = char(ord("n")), k, at(left, builder.mul(first, k))
        else:
            trans_a, ld_a, data_a = char(ord("t")), rows, at(left, first)
        kind = char(ord(get_blas_kind(a.dtype)))
        status = builder.call(gemm, (kind, trans_b, trans_a, n, builder.sub(stop, first), k,
                                     one, builder.bitcast(right.data, pointer), ld_b, data_a,
                                     ld_a, builder.bitcast(scale, pointer),
                                     at(result, builder.mul(first, n)), n))
        check_blas_return(context, builder, status)
        return context.get_dummy_value()

    return types.none(a, b, out, lo, hi, beta), codegen


@jit
def _call_blas_once(single, double):
    _gemm_rows(single, single, single, 0, 1, 0.0)
    _gemm_rows(double, double, double, 0, 1, 0.0)
    np.dot(single, single[0])  # gemv
    np.dot(double, double[0])
    np.dot(single[0], single[0])  # dot
    np.dot(double[0], double[0])


def _resolve_blas_entry_points() -> None:
    """Have numba look up scipy's ``gemm``, ``gemv`` and ``dot`` of both float dtypes now,
    in this thread. It does so on a process's first call of each, holding the GIL to
    import it; the first such call in a row part running on another thread would wait
    for the GIL forever, held by the thread that waits for the part to finish."""
    _call_blas_once(np.ones((1, 1), np.float32), np.ones((1, 1), np.float64))


_resolve_blas_entry_points()


@jit
def sg_dot_loops(a, b, out):
    """``a @ b`` for integer matrices (no BLAS): a plain triple loop."""
    m, k, n = a.shape[0], a.shape[1], b.shape[1]
    if k != b.shape[0]:
        raise SGRuntimeError()
    out = sg_out(out, (m, n))
    for i in range(m):
        for j in range(n):
            out[i, j] = 0
        for p in range(k):
            aip = a[i, p]
            for j in range(n):
                out[i, j] += aip * b[p, j]
    return out


@jit
def sg_dot_vec(a, b):
    """``np.dot`` with a vector operand (float: BLAS)."""
    if a.shape[a.ndim - 1] != b.shape[0]:
        raise SGRuntimeError()
    return np.dot(a, b)
