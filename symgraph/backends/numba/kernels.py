"""Hand-written compiled kernels that lowerings call from generated code: copies and
fills, sums, softmax family, cross-entropies, gather / scatter-add (matrix products:
``products``).

They are generic over dtype, rank and layout (numba specialises them on first use) and
compiled with ``cache=True``, so a specialisation compiled once is loaded from numba's
disk cache by later processes. Every kernel that produces an array takes an ``out``
buffer and returns the array it wrote: ``out`` itself when its shape is right (a
preallocated per-step buffer inside a compiled scan), else a fresh array (top-level code
passes an empty placeholder), through ``glue.sg_out`` as generated kernels do. A failed
check raises :class:`SGRuntimeError`; the runner then reproduces the reference
interpreter's error. Gathers and softmax cross-entropies of at least
:data:`PART_ELEMENTS` elements run in row parts on threads when there are several
(``threads.sg_parts_of``; an error in any part is raised after all finish).

They avoid numba features that are slow to compile (array-to-array assignment and
``np.broadcast_to`` pull in error-message formatting that took 3 s to compile).
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba.extending import overload

from symgraph.backends.numba.glue import sg_out, sg_same_data
from symgraph.backends.numba.prelude import JIT_OPTIONS, SGRuntimeError, sg_exp32
from symgraph.backends.numba.threads import sg_part_count, sg_parts_of
from symgraph.backends.numba.transpose import sg_copy_columns

__all__ = ["sg_arange", "sg_copy", "sg_fill", "sg_index", "sg_nll_ids", "sg_scatter",
           "sg_scatter_into", "sg_shape", "sg_slice", "sg_softmax", "sg_store",
           "sg_store_rows", "sg_sum_all", "sg_sum_rows", "sg_take", "sg_vector",
           "sg_xent_ids", "sg_xent_ids_softmax", "sg_xent_rows"]

jit = numba.njit(**JIT_OPTIONS)

#: Elements from which gathers and softmax cross-entropies run in row parts on threads
#: (``threads.sg_parts_of``) when there are several. (Scatter-adds and column sums read
#: memory at the rate two cores do: in column parts they were no faster.)
PART_ELEMENTS = 1 << 14


def _exp(x):  # pragma: no cover - replaced by the overload inside compiled code
    return math.exp(x)


@overload(_exp, jit_options={"error_model": "numpy"})
def _exp_overload(x):
    if x == numba.types.float32:
        return lambda x: sg_exp32(x)
    return lambda x: math.exp(x)


def _copy_loops(out, x):  # pragma: no cover - replaced by the overload below
    raise NotImplementedError


def _nd_copy_source(ndim: int) -> str:
    idx = ", ".join(f"i{k}" for k in range(ndim))
    lines = ["def copy(out, x):"]
    for k in range(ndim):
        lines.append("    " * (k + 1) + f"for i{k} in range(x.shape[{k}]):")
    lines.append("    " * (ndim + 1) + f"out[{idx}] = x[{idx}]")
    return "\n".join(lines)


@overload(_copy_loops, jit_options={"error_model": "numpy"})
def _copy_overload(out, x):
    if x.ndim == 0:
        return None
    if x.layout == "C":
        def flat(out, x):
            o, s = out.reshape(out.size), x.reshape(x.size)
            for i in range(s.size):
                o[i] = s[i]
        return flat
    namespace: dict = {}
    exec(_nd_copy_source(x.ndim), namespace)
    if not (x.ndim == 2 and out.ndim == 2 and x.dtype == out.dtype
            and x.dtype in (numba.float32, numba.float64)):
        return namespace["copy"]

    def matrix(out, x):  # a transposed matrix in SIMD blocks
        if x.strides[0] == x.itemsize and out.strides[1] == out.itemsize:
            sg_copy_columns(x, out)
        else:
            for i in range(x.shape[0]):
                for j in range(x.shape[1]):
                    out[i, j] = x[i, j]
    return matrix


# ---- buffers and small helpers -----------------------------------------------------------

@jit
def _same(a, b):
    for k in range(len(a)):
        if a[k] != b[k]:
            return False
    return True


@jit
def sg_copy(x, out):
    """A C-contiguous copy of ``x`` (into ``out`` when it fits)."""
    out = sg_out(out, x.shape)
    _copy_loops(out, x)
    return out


@jit
def sg_store(x, stack, index):
    """``stack[index] = x`` (same shape), skipped when ``x`` already is that slot (the
    kernel computing it wrote it there); returns the slot. A scan step's new carry into
    its history or buffer, or a step output into its stack."""
    return _store(x, stack[index])


@jit
def sg_store_rows(x, stack, index, lo, hi):
    """``stack[index, lo:hi] = x``: ``sg_store`` for a loop running in row parts
    (``lower_scan_parts``), each part storing its rows of the step; returns the slot."""
    return _store(x, stack[index, lo:hi])


@jit
def _store(x, slot):
    if not _same(x.shape, slot.shape):
        raise SGRuntimeError()
    if not sg_same_data(x, slot):
        _copy_loops(slot, x)
    return slot


@jit
def sg_fill(out, shape, value):
    """An array of ``shape`` filled with the scalar ``value``."""
    out = sg_out(out, shape)
    flat = out.reshape(out.size)
    for i in range(flat.size):
        flat[i] = value
    return out


@jit
def sg_shape(x):
    """``x.shape`` as an int64 vector."""
    out = np.empty(x.ndim, np.int64)
    for k in range(x.ndim):
        out[k] = x.shape[k]
    return out


@jit
def sg_vector(values, out):
    """A vector from a tuple of scalars."""
    out = sg_out(out, (len(values),))
    for k in range(len(values)):
        out[k] = values[k]
    return out


@jit
def sg_arange(start, stop, step, out):
    """``np.arange(start, stop, step)`` into ``out``'s dtype."""
    if step == 0:
        raise SGRuntimeError()
    n = max(int(math.ceil((stop - start) / step)), 0)
    out = sg_out(out, (n,))
    for i in range(n):
        out[i] = start + i * step
    return out


@jit
def sg_index(i, n):
    """``i`` normalised to ``[0, n)``; raises when ``i`` is outside ``[-n, n)``."""
    if i < -n or i >= n:
        raise SGRuntimeError()
    return i + n if i < 0 else i


@jit
def sg_slice(start, stop, n):
    """``(start, length)`` of ``range(n)[start:stop]`` (Python's rules, step 1)."""
    if start < 0:
        start = max(start + n, 0)
    elif start > n:
        start = n
    if stop < 0:
        stop = max(stop + n, 0)
    elif stop > n:
        stop = n
    return start, max(stop - start, 0)


# ---- sums ----------------------------------------------------------------------------------
# The reductions of nearly every gradient (bias gradients, the loss): in the library, so
# that a build compiles none of them. The same loops and float64 accumulation, in the same
# order, as the generated reduction kernels (``gen.reduce_kernel``).

@jit
def sg_sum_rows(x, out):
    """``x.sum(axis=0)`` of a float matrix, accumulated in float64 row after row."""
    n = x.shape[1]
    acc = np.zeros(n, np.float64)
    for i in range(x.shape[0]):
        for j in range(n):
            acc[j] += x[i, j]
    out = sg_out(out, (n,))
    for j in range(n):
        out[j] = acc[j]
    return out


@jit
def sg_sum_all(x, like):
    """The sum of all of a float array's elements, accumulated in float64 in C order,
    as ``like``'s dtype."""
    acc = 0.0
    for v in x.flat:
        acc += v
    return _cast_like(like, acc)


def _cast_like(array, value):  # pragma: no cover - replaced by the overload below
    raise NotImplementedError


@overload(_cast_like, jit_options={"error_model": "numpy"})
def _cast_like_overload(array, value):
    dtype = array.dtype
    return lambda array, value: dtype(value)


# ---- softmax family ---------------------------------------------------------------------

@jit
def _split(shape, axis):
    pre, post = 1, 1
    for k in range(axis):
        pre *= shape[k]
    for k in range(axis + 1, len(shape)):
        post *= shape[k]
    return pre, shape[axis], post


#: Row reductions may be reordered (``reassoc``), so that LLVM vectorises them; the sum
#: of exponentials accumulates in float64.
_reducing_jit = numba.njit(**JIT_OPTIONS, fastmath={"reassoc"})


@_reducing_jit
def _row_max(row):
    """The maximum of a 1-d array (a NaN in it makes every softmax term NaN anyway)."""
    m = row[0]
    for j in range(1, row.shape[0]):
        m = max(m, row[j])
    return m


@_reducing_jit
def _exp_shifted(row, m, out):
    """``out = exp(row - m)``; returns its sum."""
    total = 0.0
    for j in range(row.shape[0]):
        e = _exp(row[j] - m)
        out[j] = e
        total += e
    return total


@_reducing_jit
def _logsumexp(row):
    """``log(sum(exp(row)))``, shifted by the maximum."""
    m = _row_max(row)
    total = 0.0
    for j in range(row.shape[0]):
        total += _exp(row[j] - m)
    return m + math.log(total)


@jit
def _softmax_rows(x2, log, o2):
    """Softmax or log-softmax of each row of the C-contiguous matrix ``x2``."""
    for r in range(x2.shape[0]):
        row, o = x2[r], o2[r]
        m = _row_max(row)
        total = _exp_shifted(row, m, o)
        if log:
            lse = m + math.log(total)
            for j in range(row.shape[0]):
                o[j] = row[j] - lse
        else:
            inv = 1.0 / total
            for j in range(row.shape[0]):
                o[j] = o[j] * inv


@jit
def sg_softmax(x, axis, log, out):
    """Softmax (``log=False``) or log-softmax along ``axis``, shifted by the maximum."""
    out = sg_out(out, x.shape)
    pre, k, post = _split(x.shape, axis)
    if k == 0:
        return out
    if post == 1:  # the last axis: contiguous rows
        _softmax_rows(np.ascontiguousarray(x).reshape((pre, k)), log, out.reshape((pre, k)))
        return out
    x3 = np.ascontiguousarray(x).reshape((pre, k, post))
    o3 = out.reshape((pre, k, post))
    for p in range(pre):
        for q in range(post):
            m = x3[p, 0, q]
            for j in range(1, k):
                v = x3[p, j, q]
                if v > m or v != v:
                    m = v
            total = 0.0
            for j in range(k):
                e = _exp(x3[p, j, q] - m)
                o3[p, j, q] = e
                total += e
            if log:
                lse = m + math.log(total)
                for j in range(k):
                    o3[p, j, q] = x3[p, j, q] - lse
            else:
                inv = 1.0 / total
                for j in range(k):
                    o3[p, j, q] = o3[p, j, q] * inv
    return out


@jit
def _by_row(x, ids, out):
    """``x`` as (rows, K), ``ids`` and the loss buffer ``out`` as flat vectors, after
    checking that there is one id per row; returns them and ``out``."""
    k = x.shape[x.ndim - 1]
    if k == 0 or not _same(x.shape[:-1], ids.shape):
        raise SGRuntimeError()
    out = sg_out(out, ids.shape)
    x2 = np.ascontiguousarray(x).reshape((x.size // k, k))
    return x2, np.ascontiguousarray(ids).reshape(ids.size), out, out.reshape(out.size)


@jit
def _class(ids, r, k):
    c = ids[r]
    if c < 0 or c >= k:
        raise SGRuntimeError()
    return c


@jit
def sg_xent_ids(x, ids, out):
    """Softmax cross-entropy on logits ``x`` (..., K) with class ids (...):
    ``logsumexp(x) - x[..., id]`` per row."""
    x2, i1, out, o1 = _by_row(x, ids, out)
    for r in range(x2.shape[0]):
        o1[r] = _logsumexp(x2[r]) - x2[r, _class(i1, r, x2.shape[1])]
    return out


@jit
def sg_xent_ids_softmax(x, ids, out, probs):
    """``sg_xent_ids`` and the softmax of ``x`` (which its gradient needs) from one pass
    of exponentials: ``probs = exp(x - m) / s``, ``loss = m + log(s) - x[id]``."""
    x2, i1, out, o1 = _by_row(x, ids, out)
    probs = sg_out(probs, x.shape)
    p2 = probs.reshape(x2.shape)
    if x2.size >= PART_ELEMENTS and sg_part_count(x2.shape[0]) > 1:
        sg_parts_of(_xent_softmax_rows, x2.shape[0], x2, i1, o1, p2)
    else:
        _xent_softmax_rows(0, x2.shape[0], x2, i1, o1, p2)
    return out, probs


@jit
def _xent_softmax_rows(lo, hi, x2, i1, o1, p2):
    for r in range(lo, hi):
        row, p = x2[r], p2[r]
        c = _class(i1, r, row.shape[0])
        m = _row_max(row)
        total = _exp_shifted(row, m, p)
        o1[r] = m + math.log(total) - row[c]
        inv = 1.0 / total
        for j in range(row.shape[0]):
            p[j] = p[j] * inv


@jit
def sg_xent_rows(x, t, out):
    """Softmax cross-entropy on logits ``x`` (..., K) with target rows ``t`` (..., K):
    ``-sum_k t_k (x_k - logsumexp(x))``."""
    k = x.shape[x.ndim - 1]
    if k == 0 or not _same(x.shape, t.shape):
        raise SGRuntimeError()
    out = sg_out(out, x.shape[:-1])
    x2 = np.ascontiguousarray(x).reshape((x.size // k, k))
    t2 = np.ascontiguousarray(t).reshape((t.size // k, k))
    o1 = out.reshape(out.size)
    for r in range(x2.shape[0]):
        lse = _logsumexp(x2[r])
        total = 0.0
        for j in range(k):
            total += t2[r, j] * (x2[r, j] - lse)
        o1[r] = -total
    return out


@jit
def sg_nll_ids(p, ids, out):
    """``-log p[..., id]`` per row (cross-entropy of probabilities with class ids)."""
    k = p.shape[p.ndim - 1]
    if not _same(p.shape[:-1], ids.shape):
        raise SGRuntimeError()
    out = sg_out(out, ids.shape)
    p2 = np.ascontiguousarray(p).reshape((p.size // max(k, 1), k))
    i1 = np.ascontiguousarray(ids).reshape(ids.size)
    o1 = out.reshape(out.size)
    for r in range(p2.shape[0]):
        c = i1[r]
        if c < 0 or c >= k:
            raise SGRuntimeError()
        o1[r] = -math.log(p2[r, c])
    return out


# ---- gather and scatter-add on the leading axis ------------------------------------------

@jit
def _row(i, n):
    """Row ``i`` of ``n`` (negative counts from the end); out of range raises."""
    if i < -n or i >= n:
        raise SGRuntimeError()
    return i + n if i < 0 else i


@jit
def sg_take(x, idx, out):
    """``x[idx]`` for an integer array ``idx`` (any rank): rows of ``x``."""
    n = x.shape[0]
    out = sg_out(out, idx.shape + x.shape[1:])
    row = x.size // n if n else 0
    x2 = np.ascontiguousarray(x).reshape((n, row))
    i1 = np.ascontiguousarray(idx).reshape(idx.size)
    o2 = out.reshape((idx.size, row))
    if o2.size >= PART_ELEMENTS and sg_part_count(i1.size) > 1:
        sg_parts_of(_take_rows, i1.size, x2, i1, o2)
    else:
        _take_rows(0, i1.size, x2, i1, o2)
    return out


@jit
def _take_rows(lo, hi, x2, i1, o2):
    for r in range(lo, hi):
        i = _row(i1[r], x2.shape[0])
        for j in range(o2.shape[1]):
            o2[r, j] = x2[i, j]


@jit
def sg_scatter_into(out, y, idx, set_mode):
    """Add the rows ``y`` to (or, with ``set_mode``, write them into) the rows ``idx`` of
    the C-contiguous ``out``, in place; repeated indices accumulate. ``y`` has the full
    region shape ``idx.shape + out.shape[1:]``."""
    n = out.shape[0]
    if not _same(y.shape, idx.shape + out.shape[1:]):
        raise SGRuntimeError()
    row = out.size // n if n else 0
    o2 = out.reshape((n, row))
    i1 = np.ascontiguousarray(idx).reshape(idx.size)
    y2 = np.ascontiguousarray(y).reshape((idx.size, row))
    for r in range(i1.size):
        i = _row(i1[r], n)
        if set_mode:
            for j in range(row):
                o2[i, j] = y2[r, j]
        else:
            for j in range(row):
                o2[i, j] += y2[r, j]
    return out


@jit
def sg_scatter(x, y, idx, set_mode, out):
    """A copy of ``x`` with :func:`sg_scatter_into` applied."""
    out = sg_copy(x, out)
    return sg_scatter_into(out, y, idx, set_mode)
