"""Indexing: ``x[key]`` and its gradients.

Three op families, each with an *inc* twin that is its pullback:

- :class:`Subtensor` (basic indexing: ints, slices, ``None``) and :class:`IncSubtensor`
  (``set_subtensor`` / ``inc_subtensor``: :math:`\\bar x = g`, or g with the region zeroed
  for *set*; :math:`\\bar y = g[\\mathrm{key}]` summed over the axes y was broadcast on).
- :class:`AdvancedSubtensor1` (``W[idx]``, the embedding lookup: a gather along axis 0) and
  :class:`AdvancedIncSubtensor1` (scatter with ``np.add.at``: repeated indices accumulate).
- :class:`AdvancedSubtensor` (``x[i, j]`` with integer arrays on the leading axes, as in
  ``log_p[T.arange(n), y]``) and :class:`AdvancedIncSubtensor`.

An index structure (``idx_list``) holds one entry per key item: a static ``int``,
:data:`SYMBOLIC` (an integer scalar taken from the node's next index input), a
:class:`Slice` whose parts are ``None``, ints or :data:`SYMBOLIC`, or ``None`` (a new
axis of length 1). Axes after the last entry are kept whole.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from symgraph.errors import ShapeError
from symgraph.graph import Apply, Constant, Variable
from symgraph.op import Op, disconnected
from symgraph.ops.basic import as_tensor_variable, cast
from symgraph.ops.dimshuffle import dimshuffle
from symgraph.ops.elemwise import sum_to
from symgraph.ops.math import maximum, minimum, switch
from symgraph.ops.shape import zeros_like
from symgraph.types import TensorType, broadcast_shapes, format_shape

__all__ = ["getitem", "take", "take_range", "set_subtensor", "inc_subtensor"]

#: Placeholder in an index structure for an integer scalar given as a node input.
SYMBOLIC = "?"


class Slice(NamedTuple):
    """A slice in an index structure; each part is None, an int or :data:`SYMBOLIC`."""

    start: int | str | None
    stop: int | str | None
    step: int | str | None

    def __str__(self) -> str:
        text = ":".join("" if p is None else str(p) for p in self)
        return text[:-1] if text.endswith(":") else text


class IndexOutOfRangeError(ShapeError, IndexError):
    """An index outside ``[-n, n)`` for an axis of length ``n``."""


def _format_key(idx_list) -> str:
    return ", ".join("None" if e is None else str(e) for e in idx_list)


def _index_error(value, axis: int, length: int, where: str) -> IndexOutOfRangeError:
    return IndexOutOfRangeError(f"index {value} is out of range for axis {axis} of length "
                                f"{length} ({where})")


def _check_index_var(v: Variable, what: str = "an index") -> Variable:
    """Symbolic indices must be integer tensors (bool masks and floats are refused)."""
    if v.dtype == "bool":
        raise TypeError(f"boolean indexing is not supported; use T.switch (got {what} "
                        f"{v.describe()})")
    if not v.type.is_integer:
        raise TypeError(f"{what} must be an integer, got {v.describe()}; cast it with "
                        f"T.cast(..., 'int64')")
    return v


# ---- basic indexing ------------------------------------------------------------------

class _BasicIndexOp(Op):
    """Shared by Subtensor and IncSubtensor: the index structure and its key."""

    def _key(self, values, shape, node) -> tuple:
        """The numpy key for the index input ``values``, checked against ``shape``."""
        it = iter(values)

        def part(p):
            return int(next(it)) if p == SYMBOLIC else p

        key, axis = [], 0
        for pos, entry in enumerate(self.idx_list):
            if entry is None:
                key.append(None)
                continue
            if isinstance(entry, Slice):
                key.append(slice(part(entry.start), part(entry.stop), part(entry.step)))
                if key[-1].step == 0:
                    raise ShapeError(f"slice step cannot be zero (entry {pos} of "
                                     f"[{_format_key(self.idx_list)}] made at "
                                     f"{node.outputs[0].creation})")
            else:
                i, n = part(entry), shape[axis]
                if not -n <= i < n:
                    raise _index_error(i, axis, n, f"entry {pos} of the key "
                                       f"[{_format_key(self.idx_list)}] of {self}, made at "
                                       f"{node.outputs[0].creation}")
                key.append(i)
            axis += 1
        return tuple(key)

    def _region_type(self, x: Variable, index_inputs) -> tuple:
        """Static shape of ``x[key]``; checks what can be checked at build time."""
        n_axes = sum(e is not None for e in self.idx_list)
        if n_axes > x.ndim:
            raise ShapeError(f"too many indices: [{_format_key(self.idx_list)}] indexes "
                             f"{n_axes} axes of the {x.ndim}-d {x.describe()}")
        n_sym = sum(p == SYMBOLIC for e in self.idx_list
                    for p in (e if isinstance(e, Slice) else (e,)))
        if n_sym != len(index_inputs):
            raise TypeError(f"{self}: expected {n_sym} index inputs, got {len(index_inputs)}")
        for v in index_inputs:
            if v.ndim != 0:
                raise TypeError(f"{self}: index inputs must be scalars, got {v.describe()}")
            _check_index_var(v)
        it = iter(index_inputs)

        def part(p):
            if p != SYMBOLIC:
                return p
            v = next(it)
            return int(v.value) if isinstance(v, Constant) else v

        out, axis = [], 0
        for entry in self.idx_list:
            if entry is None:
                out.append(1)
                continue
            n = x.type.shape[axis]
            if isinstance(entry, Slice):
                start, stop, step = (part(p) for p in entry)
                if step == 0:
                    raise ShapeError(f"slice step cannot be zero (indexing {x.describe()})")
                static = n is not None and all(p is None or isinstance(p, int)
                                               for p in (start, stop, step))
                full = start is None and stop is None and step in (None, 1, -1)
                out.append(n if full else slice_length(n, start, stop, step) if static
                           else None)
            else:
                i = part(entry)
                if isinstance(i, int) and n is not None and not -n <= i < n:
                    raise _index_error(i, axis, n, f"indexing {x.describe()}")
            axis += 1
        return tuple(out) + x.type.shape[axis:]

    def __str__(self) -> str:
        extra = ", set" if getattr(self, "set_instead_of_inc", False) else ""
        return f"{type(self).__name__}{{{_format_key(self.idx_list)}{extra}}}"

    __repr__ = __str__


class Subtensor(_BasicIndexOp):
    """``x[key]`` for a basic key (ints, slices, new axes); the result is a copy."""

    __props__ = ("idx_list",)

    def __init__(self, idx_list) -> None:
        self.idx_list = tuple(idx_list)

    def make_node(self, x, *index_inputs):
        shape = self._region_type(x, index_inputs)
        return Apply(self, [x, *index_inputs], [TensorType(x.dtype, shape)])

    def perform(self, node, inputs):
        x, *values = inputs
        return [np.array(x[self._key(values, x.shape, node)])]

    def pullback(self, inputs, outputs, cotangents):
        x, *index_inputs = inputs
        (g,) = cotangents
        gx = IncSubtensor(self.idx_list)(zeros_like(x), g, *index_inputs)
        return [gx] + [disconnected() for _ in index_inputs]

    def infer_shape(self, node, input_shapes):
        it = iter(node.inputs[1:])

        def part(p):
            if p != SYMBOLIC:
                return p
            return _int_or_var(next(it))

        dims, axis = [], 0
        x_shape = [_int_or_var(d) for d in input_shapes[0]]
        for entry in self.idx_list:
            if entry is None:
                dims.append(1)
                continue
            if isinstance(entry, Slice):
                dims.append(slice_length(x_shape[axis], *(part(p) for p in entry)))
            else:
                part(entry)
            axis += 1
        dims += x_shape[axis:]
        return [tuple(Constant(np.int64(d)) if isinstance(d, int) else d for d in dims)]


class IncSubtensor(_BasicIndexOp):
    """``x`` with ``y`` added to (or, with ``set_instead_of_inc``, written into)
    ``x[key]``; ``y`` broadcasts to the region under the static-1 rule."""

    __props__ = ("idx_list", "set_instead_of_inc")

    def __init__(self, idx_list, set_instead_of_inc: bool = False) -> None:
        self.idx_list = tuple(idx_list)
        self.set_instead_of_inc = bool(set_instead_of_inc)

    def make_node(self, x, y, *index_inputs):
        region = self._region_type(x, index_inputs)
        y = _fit_value(x, y, region, "set_subtensor" if self.set_instead_of_inc
                       else "inc_subtensor")
        return Apply(self, [x, y, *index_inputs], [x.type])

    def perform(self, node, inputs):
        x, y, *values = inputs
        key = self._key(values, x.shape, node)
        out = x.copy()
        _check_fits(node, y, out[key].shape)
        if self.set_instead_of_inc:
            out[key] = y
        else:
            out[key] += y
        return [out]

    def pullback(self, inputs, outputs, cotangents):
        x, y, *index_inputs = inputs
        (g,) = cotangents
        if self.set_instead_of_inc:
            zero = Constant(np.zeros((), g.dtype))
            gx = IncSubtensor(self.idx_list, True)(g, zero, *index_inputs)
        else:
            gx = g
        gy = _reduce_to(Subtensor(self.idx_list)(g, *index_inputs), y)
        return [gx, gy] + [disconnected() for _ in index_inputs]

    def infer_shape(self, node, input_shapes):
        return [tuple(input_shapes[0])]


def _int_or_var(v):
    if isinstance(v, Constant):
        return int(v.value)
    if isinstance(v, int | np.integer):
        return int(v)
    return cast(v, "int64")


# where / max / min on Python ints, or symbolic when an argument is a Variable
def _where(cond, a, b):
    return (a if cond else b) if isinstance(cond, bool) else switch(cond, a, b)


def _max(a, b):
    return max(a, b) if isinstance(a, int) and isinstance(b, int) else maximum(a, b)


def _min(a, b):
    return min(a, b) if isinstance(a, int) and isinstance(b, int) else minimum(a, b)


def slice_length(n, start, stop, step):
    """Length of ``range(n)[start:stop:step]`` (Python's ``slice.indices`` rules).

    Every argument is an int, ``None`` (not ``n``) or a symbolic int64 scalar; the result
    is an int when all are ints, else a symbolic int64 scalar.
    """
    if all(isinstance(v, int) or v is None for v in (n, start, stop, step)):
        if step == 0:
            raise ShapeError("slice step cannot be zero")
        return len(range(*slice(start, stop, step).indices(n)))
    if start is None and stop is None and step in (None, 1, -1):
        return n
    step = 1 if step is None else step
    if isinstance(step, int):
        return _signed_slice_length(n, start, stop, step, step > 0)
    return _where(step > 0, _signed_slice_length(n, start, stop, step, True),
                  _signed_slice_length(n, start, stop, step, False))


def _signed_slice_length(n, start, stop, step, positive: bool):
    lo, hi = (0, n) if positive else (-1, n - 1)

    def clamp(v):
        return _where(v < 0, _max(v + n, lo), _min(v, hi))

    if positive:
        start = 0 if start is None else clamp(start)
        stop = n if stop is None else clamp(stop)
        return _max((stop - start + step - 1) // step, 0)
    start = n - 1 if start is None else clamp(start)
    stop = -1 if stop is None else clamp(stop)
    return _max((start - stop - step - 1) // (-step), 0)


# ---- helpers shared by the inc ops -----------------------------------------------------

def _fit_value(x: Variable, y, region: tuple, where: str) -> Variable:
    """``y`` cast to ``x``'s dtype, checked to broadcast to ``region`` (static-1 rule)."""
    y = as_tensor_variable(y)
    if y.dtype != x.dtype:
        if not np.can_cast(y.dtype, x.dtype, "same_kind"):
            raise TypeError(f"{where}: cannot store {y.describe()} into {x.describe()} "
                            f"(dtype {y.dtype} does not cast to {x.dtype})")
        y = cast(y, x.dtype)
    padded = (1,) * (len(region) - y.ndim) + y.type.shape
    if y.ndim > len(region) or any(p not in (1, None) and r is not None and p != r
                                   for r, p in zip(region, padded)):
        raise ShapeError(f"{where}: the value {y.describe()} does not fit the indexed region "
                         f"of shape {format_shape(region)} (only axes of static length 1 "
                         f"broadcast)")
    return y


def _check_fits(node, y: np.ndarray, region_shape: tuple) -> None:
    """Run-time check that ``y`` broadcasts to the region under the static-1 rule."""
    y_type = node.inputs[1].type
    padded = (1,) * (len(region_shape) - y.ndim) + y.shape
    static = (1,) * (len(region_shape) - y.ndim) + y_type.shape
    if y.ndim > len(region_shape) or any(s != 1 and p != r for p, s, r in
                                         zip(padded, static, region_shape)):
        raise ShapeError(f"{node.op}: a value of shape {y.shape} does not fit the indexed "
                         f"region of shape {region_shape} (only axes of static length 1 "
                         f"broadcast; node made at {node.outputs[0].creation})")


def _reduce_to(g: Variable, y: Variable) -> Variable:
    """Sum the region cotangent ``g`` down to the shape of the broadcast value ``y``."""
    lead = g.ndim - y.ndim
    if lead:
        g = g.sum(axis=tuple(range(lead)))
    return sum_to(g, y)


# ---- integer-array indexing on the leading axes -----------------------------------------

class _AdvancedBase(Op):
    """Gather (``x[i0, i1, ...]``) with integer arrays on the leading axes of ``x``."""

    #: ``1`` for the ``...1`` ops (exactly one index array), else ``None`` (one or more)
    n_index: int | None = None

    def _region(self, x: Variable, indices) -> tuple:
        if not indices or (self.n_index is not None and len(indices) != self.n_index):
            raise TypeError(f"{self}: expected {self.n_index or 'one or more'} index arrays, "
                            f"got {len(indices)}")
        if len(indices) > x.ndim:
            raise ShapeError(f"too many indices: {len(indices)} index arrays for the "
                             f"{x.ndim}-d {x.describe()}")
        for i in indices:
            _check_index_var(i, "an index array")
        rank = max(i.ndim for i in indices)
        shapes = [(1,) * (rank - i.ndim) + i.type.shape for i in indices]
        shape = broadcast_shapes(*shapes)
        if shape is None:
            raise ShapeError("index arrays cannot be broadcast together: " + ", ".join(
                i.describe() for i in indices))
        for axis, i in enumerate(indices):
            n = x.type.shape[axis]
            if isinstance(i, Constant) and n is not None and i.value.size:
                bad = i.value[(i.value < -n) | (i.value >= n)]
                if bad.size:
                    raise _index_error(int(bad.flat[0]), axis, n, f"indexing {x.describe()}")
        return shape + x.type.shape[len(indices):]

    def _checked(self, node, x: np.ndarray, indices) -> tuple:
        where = node.outputs[0].creation
        for axis, i in enumerate(indices):
            n = x.shape[axis]
            bad = np.flatnonzero((i < -n) | (i >= n))
            if bad.size:
                pos = np.unravel_index(bad[0], i.shape)
                raise _index_error(int(i.flat[bad[0]]), axis, n,
                                   f"at position {tuple(int(p) for p in pos)} of index array "
                                   f"{axis} of {node.op} made at {where}")
        shapes = [(1,) * (max(i.ndim for i in indices) - i.ndim) + i.shape for i in indices]
        statics = [(1,) * (len(shapes[0]) - v.ndim) + v.type.shape
                   for v in node.inputs[-len(indices):]]
        for axis in range(len(shapes[0])):
            sizes = {s[axis] for s, t in zip(shapes, statics) if t[axis] != 1}
            if len(sizes) > 1:
                raise ShapeError(f"{node.op}: index arrays of shapes {[i.shape for i in indices]}"
                                 f" do not match (node made at {where})")
        return tuple(indices)

    def _index_shape(self, indices, index_shapes) -> tuple:
        rank = max(i.ndim for i in indices)
        dims = []
        for axis in range(rank):
            source = next((s[axis - (rank - i.ndim)] for i, s in zip(indices, index_shapes)
                           if axis >= rank - i.ndim
                           and i.type.shape[axis - (rank - i.ndim)] != 1), None)
            dims.append(source if source is not None else Constant(np.int64(1)))
        return tuple(dims)


class _AdvancedGather(_AdvancedBase):
    inc_op: type

    def make_node(self, x, *indices):
        shape = self._region(x, indices)
        return Apply(self, [x, *indices], [TensorType(x.dtype, shape)])

    def perform(self, node, inputs):
        x, *indices = inputs
        return [np.array(x[self._checked(node, x, indices)])]

    def pullback(self, inputs, outputs, cotangents):
        x, *indices = inputs
        (g,) = cotangents
        scattered = self.inc_op()(zeros_like(x), g, *indices)
        scattered.creation = outputs[0].creation  # a bad index names the user's indexing
        return [scattered] + [disconnected() for _ in indices]

    def infer_shape(self, node, input_shapes):
        k = len(node.inputs) - 1
        head = self._index_shape(node.inputs[1:], input_shapes[1:])
        return [head + tuple(input_shapes[0][k:])]


class _AdvancedScatter(_AdvancedBase):
    gather_op: type
    __props__ = ("set_instead_of_inc",)

    def __init__(self, set_instead_of_inc: bool = False) -> None:
        self.set_instead_of_inc = bool(set_instead_of_inc)

    def make_node(self, x, y, *indices):
        region = self._region(x, indices)
        y = _fit_value(x, y, region, "set_subtensor" if self.set_instead_of_inc
                       else "inc_subtensor")
        return Apply(self, [x, y, *indices], [x.type])

    def perform(self, node, inputs):
        x, y, *indices = inputs
        key = self._checked(node, x, indices)
        out = x.copy()
        _check_fits(node, y, np.broadcast_shapes(*(i.shape for i in indices))
                    + x.shape[len(indices):])
        if self.set_instead_of_inc:
            out[key] = y
        else:
            np.add.at(out, key, y)  # repeated indices accumulate
        return [out]

    def pullback(self, inputs, outputs, cotangents):
        x, y, *indices = inputs
        (g,) = cotangents
        if self.set_instead_of_inc:
            gx = type(self)(True)(g, Constant(np.zeros((), g.dtype)), *indices)
        else:
            gx = g
        gy = _reduce_to(self.gather_op()(g, *indices), y)
        return [gx, gy] + [disconnected() for _ in indices]

    def infer_shape(self, node, input_shapes):
        return [tuple(input_shapes[0])]


class AdvancedSubtensor1(_AdvancedGather):
    """``W[idx]``: rows of ``W`` picked by the integer array ``idx`` (any rank); output
    shape ``idx.shape + W.shape[1:]``."""

    n_index = 1


class AdvancedIncSubtensor1(_AdvancedScatter):
    """``W`` with ``y`` scattered into the rows ``idx``: added with ``np.add.at`` (repeated
    indices accumulate) or, with ``set_instead_of_inc``, assigned (the last write wins,
    and the gradient then goes to every repeat)."""

    n_index = 1


class AdvancedSubtensor(_AdvancedGather):
    """``x[i0, i1, ...]`` with integer arrays (broadcast together) on the leading axes,
    e.g. ``log_p[T.arange(n), y]``."""


class AdvancedIncSubtensor(_AdvancedScatter):
    """Scatter twin of :class:`AdvancedSubtensor` (``np.add.at`` with several arrays)."""


AdvancedSubtensor1.inc_op = AdvancedIncSubtensor1
AdvancedSubtensor.inc_op = AdvancedIncSubtensor
AdvancedIncSubtensor1.gather_op = AdvancedSubtensor1
AdvancedIncSubtensor.gather_op = AdvancedSubtensor


# ---- the user-facing functions -------------------------------------------------------------

def _scalar_index(k, what: str = "an index"):
    """An int, or a symbolic integer scalar; raises for anything else."""
    if isinstance(k, bool | np.bool_):
        raise TypeError("boolean indexing is not supported; use T.switch")
    if isinstance(k, int | np.integer):
        return int(k)
    if isinstance(k, Variable):
        if k.ndim != 0:
            raise TypeError(f"{what} must be a scalar, got {k.describe()}")
        _check_index_var(k, what)
        return int(k.value) if isinstance(k, Constant) else k
    raise TypeError(f"{what} must be an integer, got {type(k).__name__} {k!r}")


def _classify(k):
    """One key item -> ('basic', entry) or ('array', integer Variable)."""
    if k is None or k is Ellipsis:
        return "basic", k
    if isinstance(k, slice):
        return "basic", slice(*(None if p is None else _scalar_index(p, "a slice bound")
                                for p in (k.start, k.stop, k.step)))
    if isinstance(k, list | np.ndarray):
        arr = np.asarray(k) if isinstance(k, np.ndarray) or k else np.zeros((0,), "int64")
        if arr.dtype == bool:
            raise TypeError("boolean indexing is not supported; use T.switch")
        if arr.dtype.kind not in "iu":
            raise TypeError(f"an index array must hold integers, got dtype {arr.dtype}")
        return ("basic", int(arr)) if arr.ndim == 0 else ("array", Constant(arr))
    if isinstance(k, Variable) and k.ndim > 0:
        return "array", _check_index_var(k, "an index array")
    return "basic", _scalar_index(k)


def getitem(x, key) -> Variable:
    """``x[key]``, numpy semantics, for the keys listed in the module docstring.

    Basic keys mix ints (negative allowed), slices, ``None`` and one ``...``; any of the
    ints and slice parts may be symbolic integer scalars. Integer arrays index the leading
    axes (``W[idx]``: shape ``idx.shape + W.shape[1:]``; ``x[i, j]``: shape
    ``broadcast(i, j).shape + x.shape[2:]``) and may be followed by basic items.
    """
    x = as_tensor_variable(x)
    items = [_classify(k) for k in (key if isinstance(key, tuple) else (key,))]
    n_arrays = sum(kind == "array" for kind, _ in items)
    if n_arrays:
        if any(kind == "array" for kind, _ in items[n_arrays:]):
            raise IndexError("integer-array indexing is supported on the leading axes only "
                             "(x[idx], x[i, j], x[idx, 1:]); use take(x, idx, axis=k) for "
                             "another axis")
        arrays = [v for _, v in items[:n_arrays]]
        rest = [v for _, v in items[n_arrays:]]
        n_axes = n_arrays + sum(v is not None and v is not Ellipsis for v in rest)
        if n_axes > x.ndim:
            raise ShapeError(f"too many indices: {n_axes} indices for the {x.ndim}-d "
                             f"{x.describe()}")
        op = AdvancedSubtensor1() if n_arrays == 1 else AdvancedSubtensor()
        out = op(x, *arrays)
        if rest:
            out = getitem(out, (slice(None),) * (out.ndim - x.ndim + n_arrays) + tuple(rest))
        return out
    entries = [v for _, v in items]
    if entries.count(Ellipsis) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    n_axes = sum(e is not None and e is not Ellipsis for e in entries)
    if n_axes > x.ndim:
        raise ShapeError(f"too many indices: {n_axes} indices for the {x.ndim}-d "
                         f"{x.describe()}")
    if Ellipsis in entries:
        at = entries.index(Ellipsis)
        entries[at:at + 1] = [slice(None)] * (x.ndim - n_axes)
    while entries and entries[-1] == slice(None):
        entries.pop()  # x[:] stays a (copying) Subtensor node, so set_subtensor(x[:], y) works
    idx_list, inputs = [], []

    def part(p):
        if isinstance(p, Variable):
            inputs.append(p)
            return SYMBOLIC
        return p

    for e in entries:
        if isinstance(e, slice):
            idx_list.append(Slice(part(e.start), part(e.stop), part(e.step)))
        else:
            idx_list.append(e if e is None else part(e))
    return Subtensor(idx_list)(x, *inputs)


def take_range(x, axis: int, start, stop) -> Variable:
    """``x[start:stop]`` along ``axis`` (bounds: ints or symbolic int64 scalars)."""
    x = as_tensor_variable(x)
    return getitem(x, (slice(None),) * axis + (slice(start, stop),))


def take(x, indices, axis: int = 0) -> Variable:
    """Entries of ``x`` at the integer array ``indices`` along ``axis``
    (``np.take``): shape ``x.shape[:axis] + indices.shape + x.shape[axis+1:]``."""
    x = as_tensor_variable(x)
    if not -x.ndim <= axis < x.ndim:
        raise ShapeError(f"take: axis {axis} is out of range for the {x.ndim}-d "
                         f"{x.describe()}")
    axis %= x.ndim
    kind, idx = _classify(indices)
    if kind == "basic":
        idx = Constant(np.int64(idx)) if isinstance(idx, int) else idx
        if not isinstance(idx, Variable):
            raise TypeError(f"take: indices must be an integer array, got {indices!r}")
    if axis == 0:
        return AdvancedSubtensor1()(x, idx)
    front = dimshuffle(x, axis, *[a for a in range(x.ndim) if a != axis])
    picked = AdvancedSubtensor1()(front, idx)  # idx axes, then x's axes without `axis`
    k = idx.ndim
    rest = list(range(k, picked.ndim))
    return dimshuffle(picked, *rest[:axis], *range(k), *rest[axis:])


def _inc(x_sub, y, set_instead_of_inc: bool, where: str) -> Variable:
    x_sub = as_tensor_variable(x_sub)
    node = x_sub.owner
    if node is None or not isinstance(node.op, Subtensor | _AdvancedGather):
        raise TypeError(f"{where}: the first argument must be the result of an indexing "
                        f"expression such as x[1:3] or W[idx], got {x_sub.describe()}")
    x, *index_inputs = node.inputs
    if isinstance(node.op, Subtensor) and x.owner is not None \
            and isinstance(x.owner.op, _AdvancedGather):
        raise TypeError(f"{where}: an integer-array index followed by basic items (like "
                        f"x[idx, 1:]) is not supported here; index with the arrays alone "
                        f"(x[idx]) and adjust y, or build the result with T.concatenate")
    if isinstance(node.op, Subtensor):
        return IncSubtensor(node.op.idx_list, set_instead_of_inc)(x, y, *index_inputs)
    return node.op.inc_op(set_instead_of_inc)(x, y, *index_inputs)


def set_subtensor(x_sub, y) -> Variable:
    """Theano's ``set_subtensor(x[key], y)``: a copy of ``x`` with ``x[key] = y``.

    :math:`\\bar x = g` with the region zeroed; :math:`\\bar y = g[\\mathrm{key}]`.
    """
    return _inc(x_sub, y, True, "set_subtensor")


def inc_subtensor(x_sub, y, set_instead_of_inc: bool = False) -> Variable:
    """Theano's ``inc_subtensor(x[key], y)``: a copy of ``x`` with ``x[key] += y``
    (repeated integer-array indices accumulate).

    :math:`\\bar x = g`; :math:`\\bar y = g[\\mathrm{key}]`.
    """
    return _inc(x_sub, y, set_instead_of_inc, "inc_subtensor")
