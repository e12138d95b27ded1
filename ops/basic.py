"""Tensor constructors, constants, casting and allocation helpers."""

from __future__ import annotations

import numbers

import numpy as np

from symgraph.config import config
from symgraph.graph import Constant, SharedVariable, Variable
from symgraph.types import TensorType

__all__ = [
    "as_tensor_variable", "constant", "shared", "tensor", "cast",
    "scalar", "vector", "matrix", "tensor3", "tensor4",
    "iscalar", "ivector", "imatrix", "itensor3", "itensor4",
    "lscalar", "lvector", "lmatrix", "ltensor3", "ltensor4",
    "fscalar", "fvector", "fmatrix", "ftensor3", "ftensor4",
    "dscalar", "dvector", "dmatrix", "dtensor3", "dtensor4",
    "bscalar", "bvector", "bmatrix",
]


def as_tensor_variable(x, dtype=None, name: str | None = None) -> Variable:
    """A Variable for ``x``: variables pass through; Python floats become ``floatX``
    constants, Python ints ``int64``, numpy values keep their dtype."""
    if isinstance(x, Variable):
        if dtype is not None and x.dtype != str(np.dtype(dtype)):
            return cast(x, dtype)
        return x
    if dtype is None:
        dtype = _default_dtype(x)
    return Constant(x, dtype=dtype, name=name)


def _default_dtype(x):
    if isinstance(x, np.ndarray | np.generic):
        return x.dtype
    arr = np.asarray(x)
    if arr.dtype == object:
        raise TypeError(f"cannot make a tensor from {type(x).__name__}: {x!r}")
    if arr.dtype.kind == "f":
        return config.floatX
    if arr.dtype.kind in "iu":
        return "int64"
    return arr.dtype


def is_python_number(x) -> bool:
    return isinstance(x, numbers.Number) and not isinstance(x, np.generic)


def constant(value, dtype=None, name: str | None = None) -> Constant:
    """A constant tensor (Python floats default to ``floatX``)."""
    return as_tensor_variable(value, dtype=dtype, name=name)


def shared(value, name: str | None = None, borrow: bool = False) -> SharedVariable:
    """A variable whose value persists between calls (see ``SharedVariable``)."""
    return SharedVariable(value, name=name, borrow=borrow)


def tensor(dtype=None, shape=None, name: str | None = None, ndim: int | None = None) -> Variable:
    """A root variable; ``shape`` entries may be ``None`` (unknown) or ints."""
    if shape is None:
        shape = (None,) * (ndim or 0)
    return Variable(TensorType(dtype or config.floatX, shape), name=name)


def cast(x, dtype) -> Variable:
    """``x`` converted to ``dtype`` (``'floatX'`` means ``config.floatX``)."""
    from symgraph.ops.elemwise import Elemwise
    from symgraph.ops.scalar import Cast

    dtype = config.floatX if dtype == "floatX" else str(np.dtype(dtype))
    x = as_tensor_variable(x)
    if x.dtype == dtype:
        return x
    return Elemwise(Cast(dtype))(x)


def _maker(ndim: int, default_dtype: str | None):
    def make(name: str | None = None, dtype=None, shape=None):
        return tensor(dtype or default_dtype or config.floatX,
                      shape if shape is not None else (None,) * ndim, name=name)

    kind = default_dtype or "floatX"
    make.__doc__ = f"A {ndim}-d root variable of dtype {kind}."
    return make


scalar = _maker(0, None)
vector = _maker(1, None)
matrix = _maker(2, None)
tensor3 = _maker(3, None)
tensor4 = _maker(4, None)
iscalar = _maker(0, 'int32')
ivector = _maker(1, 'int32')
imatrix = _maker(2, 'int32')
itensor3 = _maker(3, 'int32')
itensor4 = _maker(4, 'int32')
lscalar = _maker(0, 'int64')
lvector = _maker(1, 'int64')
lmatrix = _maker(2, 'int64')
ltensor3 = _maker(3, 'int64')
ltensor4 = _maker(4, 'int64')
fscalar = _maker(0, 'float32')
fvector = _maker(1, 'float32')
fmatrix = _maker(2, 'float32')
ftensor3 = _maker(3, 'float32')
ftensor4 = _maker(4, 'float32')
dscalar = _maker(0, 'float64')
dvector = _maker(1, 'float64')
dmatrix = _maker(2, 'float64')
dtensor3 = _maker(3, 'float64')
dtensor4 = _maker(4, 'float64')
bscalar = _maker(0, 'int8')
bvector = _maker(1, 'int8')
bmatrix = _maker(2, 'int8')
