"""Shape ops: ``x.shape``, allocation, reshape, transpose, concatenate and stack."""

from __future__ import annotations

import numpy as np

from symgraph.errors import ShapeError
from symgraph.graph import Apply, Constant, Variable
from symgraph.op import Op, disconnected
from symgraph.ops.basic import as_tensor_variable, cast
from symgraph.ops.dimshuffle import dimshuffle
from symgraph.types import TensorType, format_shape

__all__ = ["shape", "shape_padleft", "shape_padright", "alloc", "zeros", "ones", "zeros_like",
           "ones_like", "full", "arange", "reshape", "flatten", "transpose", "concatenate",
           "stack", "dimshuffle", "addbroadcast", "specify_shape"]


class Shape(Op):
    """``x.shape`` as an int64 vector."""

    def make_node(self, x):
        return Apply(self, [x], [TensorType("int64", (x.ndim,))])

    def perform(self, node, inputs):
        return [np.asarray(inputs[0].shape, dtype="int64")]

    def pullback(self, inputs, outputs, cotangents):
        return [disconnected()]

    def infer_shape(self, node, input_shapes):
        return [(Constant(np.int64(node.inputs[0].ndim)),)]


class ShapeVector:
    """What ``x.shape`` returns: indexable like a tuple of symbolic int64 scalars (static
    lengths become constants), and usable as a symbolic vector."""

    def __init__(self, x: Variable) -> None:
        self.x = x
        self._vector = None

    @property
    def vector(self) -> Variable:
        if self._vector is None:
            self._vector = Shape()(self.x)
        return self._vector

    def __getitem__(self, i):
        if isinstance(i, slice):
            return tuple(self[k] for k in range(*i.indices(self.x.ndim)))
        i = int(i)
        if not -self.x.ndim <= i < self.x.ndim:
            raise IndexError(f"shape index {i} out of range for a {self.x.ndim}-d variable")
        static = self.x.type.shape[i]
        if static is not None:
            return Constant(np.int64(static))
        return self.vector[i % self.x.ndim]

    def __len__(self) -> int:
        return self.x.ndim

    def __iter__(self):
        return (self[i] for i in range(self.x.ndim))

    def __repr__(self) -> str:
        return f"Shape({self.x!r})"


def shape(x) -> ShapeVector:
    """``x.shape``: index it (``x.shape[0]``) for symbolic lengths."""
    return ShapeVector(as_tensor_variable(x))


def _as_dims(dims) -> list[Variable]:
    if isinstance(dims, ShapeVector):
        return list(dims)
    if isinstance(dims, Variable):
        if dims.ndim == 1 and dims.type.shape[0] is not None:
            return [dims[i] for i in range(dims.type.shape[0])]
        if dims.ndim == 0:
            return [dims]
        raise ShapeError(f"a shape must be a tuple of scalars or a vector of known length, "
                         f"got {dims.describe()}")
    if isinstance(dims, int | np.integer):
        dims = (dims,)
    out = []
    for d in dims:
        d = as_tensor_variable(d) if not isinstance(d, int | np.integer) else Constant(
            np.int64(d))
        if d.ndim != 0 or not d.type.is_integer:
            raise ShapeError(f"a shape entry must be an integer scalar, got {d.describe()}")
        out.append(cast(d, "int64"))
    return out


def _static(d: Variable):
    return int(d.value) if isinstance(d, Constant) else None


class Alloc(Op):
    """``alloc(value, *shape)``: ``value`` broadcast to ``shape`` (a fresh array)."""

    foldable = False

    def make_node(self, value, *dims):
        static = tuple(_static(d) for d in dims)
        if value.ndim > len(dims):
            raise ShapeError(f"alloc: value of rank {value.ndim} into {len(dims)} dims")
        vshape = (1,) * (len(dims) - value.ndim) + value.type.shape
        for s, v in zip(static, vshape):
            if s is not None and v not in (None, 1, s):
                raise ShapeError(f"alloc: cannot broadcast {format_shape(value.type.shape)} "
                                 f"to {format_shape(static)}")
        out = tuple(s if s is not None else (v if v not in (None, 1) else None)
                    for s, v in zip(static, vshape))
        return Apply(self, [value, *dims], [TensorType(value.dtype, out)])

    def perform(self, node, inputs):
        value, *dims = inputs
        shape = tuple(int(d) for d in dims)
        if any(d < 0 for d in shape):
            raise ShapeError(f"alloc: negative dimension in shape {shape}")
        return [np.array(np.broadcast_to(value, shape))]

    def pullback(self, inputs, outputs, cotangents):
        value, *dims = inputs
        (g,) = cotangents
        lead = g.ndim - value.ndim
        axes = tuple(range(lead)) + tuple(
            lead + a for a, s in enumerate(value.type.shape) if s == 1)
        gv = g.sum(axis=axes, keepdims=True) if axes else g
        if lead:  # the leading axes are length 1 after the sum: drop them
            gv = dimshuffle(gv, *range(lead, g.ndim))
        return [gv] + [disconnected() for _ in dims]

    def infer_shape(self, node, input_shapes):
        return [tuple(node.inputs[1:])]


def alloc(value, *shape) -> Variable:
    """``value`` broadcast to ``shape`` (each entry an int or a symbolic int scalar)."""
    if len(shape) == 1 and not isinstance(shape[0], int | np.integer | Variable):
        shape = shape[0]
    value = as_tensor_variable(value)
    return Alloc()(value, *_as_dims(shape))


def full(shape, fill_value, dtype=None) -> Variable:
    """A tensor of ``shape`` filled with ``fill_value``."""
    from symgraph.config import config

    return alloc(as_tensor_variable(np.asarray(fill_value, dtype=dtype or config.floatX)),
                 *_as_dims(shape))


def zeros(shape, dtype=None) -> Variable:
    """Zeros of ``shape`` (ints or symbolic scalars, e.g. ``(x.shape[1], n_h)``)."""
    return full(shape, 0, dtype)


def ones(shape, dtype=None) -> Variable:
    """Ones of ``shape``."""
    return full(shape, 1, dtype)


def zeros_like(x, dtype=None) -> Variable:
    """Zeros of ``x``'s shape (and dtype unless given)."""
    x = as_tensor_variable(x)
    return alloc(Constant(np.zeros((), dtype or x.dtype)), *shape(x))


def ones_like(x, dtype=None) -> Variable:
    """Ones of ``x``'s shape (and dtype unless given)."""
    x = as_tensor_variable(x)
    return alloc(Constant(np.ones((), dtype or x.dtype)), *shape(x))


class ARange(Op):
    """``arange(start, stop, step)``."""

    __props__ = ("dtype",)

    def __init__(self, dtype: str) -> None:
        self.dtype = dtype

    def make_node(self, start, stop, step):
        length = None
        if all(isinstance(v, Constant) for v in (start, stop, step)):
            length = len(np.arange(start.value, stop.value, step.value))
        return Apply(self, [start, stop, step], [TensorType(self.dtype, (length,))])

    def perform(self, node, inputs):
        start, stop, step = inputs
        if step == 0:
            raise ShapeError("arange: step must not be zero")
        return [np.arange(start, stop, step, dtype=self.dtype)]

    def pullback(self, inputs, outputs, cotangents):
        return [disconnected()] * 3

    def infer_shape(self, node, input_shapes):
        from symgraph.ops.math import ceil, maximum

        start, stop, step = node.inputs
        n = maximum(ceil((stop - start) / step), 0)
        return [(cast(n, "int64"),)]


def arange(start, stop=None, step=1, dtype=None) -> Variable:
    """Evenly spaced values in ``[start, stop)`` (int64 for integer arguments)."""
    if stop is None:
        start, stop = 0, start
    args = [as_tensor_variable(v) for v in (start, stop, step)]
    if dtype is None:
        dtype = str(np.result_type(*[np.dtype(a.dtype) for a in args]))
    return ARange(str(np.dtype(dtype)))(*[cast(a, dtype) for a in args])


class Reshape(Op):
    """``x.reshape(shape)``; ``shape`` is an int64 vector of length ``ndim`` (one -1 allowed)."""

    __props__ = ("ndim",)

    def __init__(self, ndim: int) -> None:
        self.ndim = ndim

    def make_node(self, x, shp):
        static = [None] * self.ndim
        if shp.owner is not None and isinstance(shp.owner.op, MakeVector):
            static = [_static(d) for d in shp.owner.inputs]
        elif isinstance(shp, Constant):
            static = [int(v) for v in shp.value]
        static = [None if s is not None and s < 0 else s for s in static]
        known_in = x.type.shape
        if all(s is not None for s in known_in) and all(s is not None for s in static):
            if int(np.prod(known_in)) != int(np.prod(static)):
                raise ShapeError(f"reshape: cannot reshape {x.describe()} to "
                                 f"{format_shape(tuple(static))}")
        return Apply(self, [x, shp], [TensorType(x.dtype, tuple(static))])

    def perform(self, node, inputs):
        x, shp = inputs
        try:
            return [np.reshape(x, tuple(int(s) for s in shp)).copy()]
        except ValueError as exc:
            raise ShapeError(f"reshape: cannot reshape an array of shape {x.shape} to "
                             f"{tuple(int(s) for s in shp)} (made at "
                             f"{node.outputs[0].creation})") from exc

    def pullback(self, inputs, outputs, cotangents):
        x, _ = inputs
        (g,) = cotangents
        return [reshape(g, shape(x).vector, ndim=x.ndim), disconnected()]

    def infer_shape(self, node, input_shapes):
        from symgraph.ops.math import eq, switch

        x, shp = node.inputs
        dims = [shp[i] for i in range(self.ndim)]
        total = None
        for d in input_shapes[0]:
            total = d if total is None else total * d
        if total is None:
            total = Constant(np.int64(1))
        known = None
        for d in dims:
            term = switch(eq(d, -1), 1, d)
            known = term if known is None else known * term
        fixed = [switch(eq(d, -1), total // known, d) for d in dims]
        return [tuple(fixed)]


class MakeVector(Op):
    """A 1-d vector from scalars of one dtype."""

    __props__ = ("dtype",)

    def __init__(self, dtype: str) -> None:
        self.dtype = dtype

    def make_node(self, *scalars):
        return Apply(self, scalars, [TensorType(self.dtype, (len(scalars),))])

    def perform(self, node, inputs):
        return [np.array(inputs, dtype=self.dtype)]

    def pullback(self, inputs, outputs, cotangents):
        (g,) = cotangents
        if not outputs[0].type.is_float:
            return [disconnected() for _ in inputs]
        return [g[i] for i in range(len(inputs))]

    def infer_shape(self, node, input_shapes):
        return [(Constant(np.int64(len(node.inputs))),)]


def reshape(x, newshape, ndim: int | None = None) -> Variable:
    """``x`` with a new shape (ints or symbolic scalars, one ``-1`` allowed). ``ndim`` must
    be given when ``newshape`` is a symbolic vector of unknown length."""
    x = as_tensor_variable(x)
    if isinstance(newshape, Variable) and newshape.ndim == 1:
        if ndim is None:
            ndim = newshape.type.shape[0]
            if ndim is None:
                raise ShapeError("reshape: give ndim= when the new shape is a symbolic vector")
        return Reshape(ndim)(x, cast(newshape, "int64"))
    dims = _as_dims(newshape)
    if ndim is not None and ndim != len(dims):
        raise ShapeError(f"reshape: ndim={ndim} but the new shape has {len(dims)} entries")
    if sum(1 for d in dims if isinstance(d, Constant) and int(d.value) == -1) > 1:
        raise ShapeError("reshape: at most one -1 is allowed in the new shape")
    return Reshape(len(dims))(x, MakeVector("int64")(*dims))


def flatten(x, ndim: int = 1) -> Variable:
    """Keep the first ``ndim - 1`` axes and merge the rest into one."""
    x = as_tensor_variable(x)
    if not 1 <= ndim <= max(x.ndim, 1):
        raise ShapeError(f"flatten: ndim must be in [1, {x.ndim}], got {ndim}")
    lead = [shape(x)[i] for i in range(ndim - 1)]
    return reshape(x, lead + [-1])


def transpose(x, *axes) -> Variable:
    """Reverse the axes, or permute them as ``axes``."""
    x = as_tensor_variable(x)
    if len(axes) == 1 and isinstance(axes[0], list | tuple):
        axes = tuple(axes[0])
    if not axes:
        axes = tuple(reversed(range(x.ndim)))
    return dimshuffle(x, *axes)


def shape_padleft(x, n: int = 1) -> Variable:
    """Add ``n`` broadcastable axes on the left."""
    x = as_tensor_variable(x)
    return dimshuffle(x, *(["x"] * n), *range(x.ndim))


def shape_padright(x, n: int = 1) -> Variable:
    """Add ``n`` broadcastable axes on the right."""
    x = as_tensor_variable(x)
    return dimshuffle(x, *range(x.ndim), *(["x"] * n))


class Join(Op):
    """Concatenate along ``axis``."""

    __props__ = ("axis",)

    def __init__(self, axis: int) -> None:
        self.axis = axis

    def make_node(self, *tensors):
        first = tensors[0]
        for t in tensors[1:]:
            if t.ndim != first.ndim:
                raise ShapeError(f"concatenate: ranks differ: {first.describe()} and "
                                 f"{t.describe()}")
            for a in range(first.ndim):
                if a != self.axis and None not in (t.type.shape[a], first.type.shape[a]) \
                        and t.type.shape[a] != first.type.shape[a]:
                    raise ShapeError(f"concatenate along axis {self.axis}: shapes differ on "
                                     f"axis {a}: {first.describe()} and {t.describe()}")
        dtype = str(np.result_type(*[np.dtype(t.dtype) for t in tensors]))
        tensors = [cast(t, dtype) for t in tensors]
        lengths = [t.type.shape[self.axis] for t in tensors]
        out = []
        for a in range(first.ndim):
            if a == self.axis:
                out.append(None if None in lengths else int(np.sum(lengths)))
            else:
                out.append(next((t.type.shape[a] for t in tensors
                                 if t.type.shape[a] is not None), None))
        return Apply(self, tensors, [TensorType(dtype, tuple(out))])

    def perform(self, node, inputs):
        try:
            return [np.concatenate(inputs, axis=self.axis)]
        except ValueError as exc:
            raise ShapeError(f"concatenate: {exc} (input shapes "
                             f"{[v.shape for v in inputs]})") from exc

    def pullback(self, inputs, outputs, cotangents):
        from symgraph.ops.subtensor import take_range

        (g,) = cotangents
        grads, start = [], Constant(np.int64(0))
        for t in inputs:
            length = shape(t)[self.axis]
            grads.append(take_range(g, self.axis, start, start + length))
            start = start + length
        return grads

    def infer_shape(self, node, input_shapes):
        dims = list(input_shapes[0])
        total = dims[self.axis]
        for s in input_shapes[1:]:
            total = total + s[self.axis]
        dims[self.axis] = total
        return [tuple(dims)]


def concatenate(tensors, axis: int = 0) -> Variable:
    """Join ``tensors`` along an existing axis."""
    tensors = [as_tensor_variable(t) for t in tensors]
    if not tensors:
        raise ValueError("concatenate: need at least one tensor")
    ndim = tensors[0].ndim
    if not -ndim <= axis < ndim:
        raise ShapeError(f"concatenate: axis {axis} out of range for rank {ndim}")
    if len(tensors) == 1:
        return tensors[0]
    return Join(axis % ndim)(*tensors)


def stack(tensors, axis: int = 0) -> Variable:
    """Join ``tensors`` along a new axis."""
    tensors = [as_tensor_variable(t) for t in tensors]
    if not tensors:
        raise ValueError("stack: need at least one tensor")
    ndim = tensors[0].ndim + 1
    if not -ndim <= axis < ndim:
        raise ShapeError(f"stack: axis {axis} out of range for rank {ndim}")
    axis %= ndim
    expanded = [dimshuffle(t, *range(axis), "x", *range(axis, t.ndim)) for t in tensors]
    if len(expanded) == 1:
        return expanded[0]
    return Join(axis)(*expanded)


class SpecifyShape(Op):
    """Assert a static shape (checked at run time)."""

    __props__ = ("shape",)

    def __init__(self, shape) -> None:
        self.shape = tuple(shape)

    def make_node(self, x):
        if len(self.shape) != x.ndim:
            raise ShapeError(f"specify_shape: rank {len(self.shape)} for {x.describe()}")
        return Apply(self, [x], [TensorType(x.dtype, self.shape)])

    def perform(self, node, inputs):
        (x,) = inputs
        if any(s is not None and s != d for s, d in zip(self.shape, x.shape)):
            raise ShapeError(f"specify_shape: expected {format_shape(self.shape)}, got "
                             f"{x.shape} (made at {node.outputs[0].creation})")
        return [x]

    def pullback(self, inputs, outputs, cotangents):
        return [cotangents[0]]

    def infer_shape(self, node, input_shapes):
        return [tuple(Constant(np.int64(s)) if s is not None else d
                      for s, d in zip(self.shape, input_shapes[0]))]


def specify_shape(x, shape) -> Variable:
    """``x`` with a static shape; a mismatch at run time raises."""
    return SpecifyShape(shape)(as_tensor_variable(x))


def addbroadcast(x, *axes) -> Variable:
    """Declare ``axes`` of ``x`` to have length 1 (checked at run time)."""
    x = as_tensor_variable(x)
    return specify_shape(x, tuple(1 if a in axes else s for a, s in enumerate(x.type.shape)))
