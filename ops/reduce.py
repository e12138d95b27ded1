"""Reductions over axes: sum, prod, max, min (CAReduce), argmax/argmin, and mean."""

from __future__ import annotations

import builtins

import numpy as np

from symgraph.errors import ShapeError
from symgraph.graph import Apply, Constant, Variable
from symgraph.op import Op, disconnected
from symgraph.ops.basic import as_tensor_variable, cast
from symgraph.types import TensorType

__all__ = ["sum", "prod", "max", "min", "argmax", "argmin", "mean", "var", "std", "norm",
           "max_and_argmax", "all", "any"]


def normalize_axis(axis, ndim: int, where: str = "") -> tuple[int, ...]:
    """``None`` -> all axes; ints (negative allowed) -> sorted unique tuple."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int | np.integer) else tuple(axis)
    out = []
    for a in axes:
        a = int(a)
        if not -ndim <= a < ndim:
            raise ShapeError(f"{where}: axis {a} is out of range for a {ndim}-d input")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ShapeError(f"{where}: repeated axis in {axis}")
    return tuple(sorted(out))


def _reduced_shape(shape, axes, keepdims):
    if keepdims:
        return tuple(1 if a in axes else s for a, s in enumerate(shape))
    return tuple(s for a, s in enumerate(shape) if a not in axes)


class Reduce(Op):
    """``fn(x, axis=axes, keepdims=keepdims)`` for fn in sum, prod, max, min."""

    __props__ = ("kind", "axes", "keepdims")
    _FUNCS = {"sum": np.sum, "prod": np.prod, "max": np.max, "min": np.min}

    def __init__(self, kind: str, axes: tuple[int, ...], keepdims: bool) -> None:
        self.kind, self.axes, self.keepdims = kind, tuple(axes), bool(keepdims)

    def make_node(self, x):
        if self.kind in ("max", "min"):
            for a in self.axes:
                if x.type.shape[a] == 0:
                    raise ShapeError(f"{self.kind} over an empty axis of {x.describe()}")
        dtype = x.dtype
        if self.kind in ("sum", "prod") and x.dtype in ("bool", "int8", "int16", "int32"):
            dtype = "int64"
        return Apply(self, [x], [TensorType(dtype, _reduced_shape(x.type.shape, self.axes,
                                                                  self.keepdims))])

    def perform(self, node, inputs):
        (x,) = inputs
        if self.kind in ("max", "min") and builtins.any(x.shape[a] == 0 for a in self.axes):
            raise ShapeError(f"{self.kind} over an empty axis (input shape {x.shape})")
        out = self._FUNCS[self.kind](x, axis=self.axes, keepdims=self.keepdims)
        return [np.asarray(out, dtype=node.outputs[0].dtype)]

    def pullback(self, inputs, outputs, cotangents):
        (x,), (out,), (g,) = inputs, outputs, cotangents
        g_full = _expand(g, x, self.axes, self.keepdims)
        if self.kind == "sum":
            if _needs_broadcast(g_full, x):
                from symgraph.ops.shape import alloc, shape

                g_full = alloc(g_full, *[shape(x)[a] for a in range(x.ndim)])
            return [g_full]
        out_full = _expand(out, x, self.axes, self.keepdims)
        if self.kind == "prod":  # d prod / dx_i = prod / x_i (x without zeros)
            return [g_full * out_full / x]
        from symgraph.ops.math import eq

        # max/min: the gradient goes to every position equal to the extreme
        return [g_full * cast(eq(x, out_full), x.dtype)]

    def infer_shape(self, node, input_shapes):
        (shape,) = input_shapes
        one = Constant(np.int64(1))
        if self.keepdims:
            return [tuple(one if a in self.axes else s for a, s in enumerate(shape))]
        return [tuple(s for a, s in enumerate(shape) if a not in self.axes)]


def _needs_broadcast(g: Variable, x: Variable) -> bool:
    return builtins.any(gs == 1 and xs != 1 for gs, xs in zip(g.type.shape, x.type.shape))


def _expand(g: Variable, x: Variable, axes, keepdims) -> Variable:
    """Reinsert the reduced axes of ``g`` as broadcastable axes."""
    if keepdims or not axes:
        return g
    pattern, k = [], 0
    for a in range(x.ndim):
        if a in axes:
            pattern.append("x")
        else:
            pattern.append(k)
            k += 1
    return g.dimshuffle(*pattern)


class Argmax(Op):
    """Index of the maximum (``kind='max'``) or minimum over one axis (or all, flattened)."""

    __props__ = ("kind", "axis", "keepdims")

    def __init__(self, kind: str, axis: int | None, keepdims: bool) -> None:
        self.kind, self.axis, self.keepdims = kind, axis, bool(keepdims)

    def make_node(self, x):
        if self.axis is None:
            shape = (1,) * x.ndim if self.keepdims else ()
        else:
            shape = _reduced_shape(x.type.shape, (self.axis,), self.keepdims)
        return Apply(self, [x], [TensorType("int64", shape)])

    def perform(self, node, inputs):
        (x,) = inputs
        fn = np.argmax if self.kind == "max" else np.argmin
        if x.size == 0:
            raise ShapeError(f"arg{self.kind} of an empty array (shape {x.shape})")
        return [np.asarray(fn(x, axis=self.axis, keepdims=self.keepdims), dtype="int64")]

    def pullback(self, inputs, outputs, cotangents):
        return [disconnected()]

    def infer_shape(self, node, input_shapes):
        (shape,) = input_shapes
        one = Constant(np.int64(1))
        if self.axis is None:
            return [(one,) * len(shape) if self.keepdims else ()]
        if self.keepdims:
            return [tuple(one if a == self.axis else s for a, s in enumerate(shape))]
        return [tuple(s for a, s in enumerate(shape) if a != self.axis)]


def _reduce(kind, x, axis, keepdims):
    x = as_tensor_variable(x)
    axes = normalize_axis(axis, x.ndim, kind)
    if not axes:
        return x
    return Reduce(kind, axes, keepdims)(x)


def sum(x, axis=None, keepdims: bool = False, dtype=None) -> Variable:
    """:math:`\\sum_{axis} x`"""
    out = _reduce("sum", x, axis, keepdims)
    return cast(out, dtype) if dtype else out


def prod(x, axis=None, keepdims: bool = False) -> Variable:
    """:math:`\\prod_{axis} x` (gradient ``prod / x``: defined where x has no zeros)."""
    return _reduce("prod", x, axis, keepdims)


def max(x, axis=None, keepdims: bool = False) -> Variable:
    """Maximum over ``axis``; the gradient goes to every element equal to the maximum."""
    return _reduce("max", x, axis, keepdims)


def min(x, axis=None, keepdims: bool = False) -> Variable:
    """Minimum over ``axis``; the gradient goes to every element equal to the minimum."""
    return _reduce("min", x, axis, keepdims)


def _arg(kind, x, axis, keepdims):
    x = as_tensor_variable(x)
    if axis is not None:
        (axis,) = normalize_axis(axis, x.ndim, f"arg{kind}")
    return Argmax(kind, axis, keepdims)(x)


def argmax(x, axis=None, keepdims: bool = False) -> Variable:
    """Index of the maximum along ``axis`` (int64; over the flattened input if None)."""
    return _arg("max", x, axis, keepdims)


def argmin(x, axis=None, keepdims: bool = False) -> Variable:
    """Index of the minimum along ``axis`` (int64)."""
    return _arg("min", x, axis, keepdims)


def max_and_argmax(x, axis=None):
    """``(max(x, axis), argmax(x, axis))`` as in Theano."""
    return max(x, axis), argmax(x, axis)


def _count(x: Variable, axes) -> Variable:
    from symgraph.ops.shape import shape as shape_of

    n = None
    for a in axes:
        d = x.type.shape[a]
        term = Constant(np.int64(d)) if d is not None else shape_of(x)[a]
        n = term if n is None else n * term
    return n if n is not None else Constant(np.int64(1))


def mean(x, axis=None, keepdims: bool = False) -> Variable:
    """:math:`\\frac{1}{n}\\sum_{axis} x` (integer inputs give ``float64``, as numpy)."""
    x = as_tensor_variable(x)
    axes = normalize_axis(axis, x.ndim, "mean")
    total = sum(x, axes, keepdims)
    n = _count(x, axes)
    out_dtype = x.dtype if x.type.is_float else "float64"
    return cast(total, out_dtype) / cast(n, out_dtype)


def var(x, axis=None, keepdims: bool = False) -> Variable:
    """Population variance :math:`\\overline{(x - \\bar x)^2}`."""
    x = as_tensor_variable(x)
    centred = x - mean(x, axis, keepdims=True)
    return mean(centred * centred, axis, keepdims)


def std(x, axis=None, keepdims: bool = False) -> Variable:
    """Population standard deviation."""
    from symgraph.ops.math import sqrt

    return sqrt(var(x, axis, keepdims))


def norm(x, L=2, axis=None) -> Variable:
    """:math:`(\\sum |x|^L)^{1/L}`; ``L`` in {1, 2}."""
    from symgraph.ops.math import abs, sqrt

    if L == 1:
        return sum(abs(x), axis)
    if L == 2:
        return sqrt(sum(x * x, axis))
    raise ValueError(f"norm: L must be 1 or 2, got {L}")


def all(x, axis=None, keepdims: bool = False) -> Variable:
    """True where every element along ``axis`` is nonzero."""
    from symgraph.ops.math import neq

    return cast(min(cast(neq(x, 0), "int8"), axis, keepdims), "bool")


def any(x, axis=None, keepdims: bool = False) -> Variable:
    """True where some element along ``axis`` is nonzero."""
    from symgraph.ops.math import neq

    return cast(max(cast(neq(x, 0), "int8"), axis, keepdims), "bool")
