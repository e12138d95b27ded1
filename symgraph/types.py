"""Tensor types: a dtype and a static shape with ``None`` for unknown dimensions.

Only a dimension statically known to be 1 broadcasts (the Theano/PyTensor rule), so the
pullback of a broadcast is a sum over axes known at graph-build time.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from symgraph.errors import InputError

Shape = tuple  # tuple[int | None, ...]

FLOAT_DTYPES = ("float16", "float32", "float64")
INT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
ALL_DTYPES = FLOAT_DTYPES + INT_DTYPES + ("bool", "complex64", "complex128")


class TensorType:
    """The type of a tensor variable.

    Parameters
    ----------
    dtype : str or numpy dtype
    shape : sequence of int or None
        Static shape; ``None`` marks a dimension whose length is only known at run time.
    """

    __slots__ = ("dtype", "shape")

    def __init__(self, dtype, shape: Sequence[int | None]) -> None:
        dtype = str(np.dtype(dtype))
        if dtype not in ALL_DTYPES:
            raise TypeError(f"unsupported dtype {dtype!r}")
        shape = tuple(None if s is None else int(s) for s in shape)
        if any(s is not None and s < 0 for s in shape):
            raise ValueError(f"negative static dimension in shape {shape}")
        object.__setattr__(self, "dtype", dtype)
        object.__setattr__(self, "shape", shape)

    def __setattr__(self, key, value):
        raise AttributeError("TensorType is immutable")

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def broadcastable(self) -> tuple[bool, ...]:
        """Theano's view of the shape: True where the dimension is statically 1."""
        return tuple(s == 1 for s in self.shape)

    @property
    def is_float(self) -> bool:
        return self.dtype in FLOAT_DTYPES

    @property
    def is_integer(self) -> bool:
        return self.dtype in INT_DTYPES or self.dtype == "bool"

    def __eq__(self, other) -> bool:
        return isinstance(other, TensorType) and (self.dtype, self.shape) == (
            other.dtype,
            other.shape,
        )

    def __hash__(self) -> int:
        return hash((TensorType, self.dtype, self.shape))

    def __repr__(self) -> str:
        dims = ", ".join("?" if s is None else str(s) for s in self.shape)
        return f"TensorType({self.dtype}, ({dims}{',' if self.ndim == 1 else ''}))"

    def with_shape(self, shape) -> TensorType:
        return TensorType(self.dtype, shape)

    def with_dtype(self, dtype) -> TensorType:
        return TensorType(dtype, self.shape)

    def is_compatible(self, other: TensorType) -> bool:
        """True when a value of ``other`` is also a value of ``self`` (same dtype and
        rank, and every static dimension of ``self`` agrees)."""
        return (
            self.dtype == other.dtype
            and self.ndim == other.ndim
            and all(a is None or a == b for a, b in zip(self.shape, other.shape))
        )

    def filter(self, value, name: str = "input") -> np.ndarray:
        """Convert ``value`` to an array of this type, or raise :class:`InputError`.

        numpy arrays must cast safely (``np.can_cast(..., 'safe')``); Python numbers and
        lists are converted to ``dtype`` when the values survive the conversion exactly
        (integers) or are finite-representable (floats), as Theano's ``allow_downcast=None``.
        """
        if isinstance(value, np.ndarray | np.generic):
            arr = np.asarray(value)
            if arr.dtype != self.dtype:
                if not np.can_cast(arr.dtype, self.dtype, casting="safe"):
                    raise InputError(
                        f"{name}: expected dtype {self.dtype}, got {arr.dtype} "
                        f"(cannot be cast safely; convert with .astype({self.dtype!r}))"
                    )
                arr = arr.astype(self.dtype)
        else:
            try:
                raw = np.asarray(value)
            except Exception as exc:  # ragged lists and the like
                kind = type(value).__name__
                raise InputError(f"{name}: cannot convert {kind} to an array: {exc}") from None
            if raw.dtype == object:
                raise InputError(f"{name}: cannot convert {type(value).__name__} to an array")
            if raw.dtype.kind == "f" and self.dtype not in FLOAT_DTYPES:
                raise InputError(f"{name}: expected dtype {self.dtype}, got floating values")
            arr = raw.astype(self.dtype)
            if raw.dtype.kind in "iub" and not np.array_equal(arr, raw):
                raise InputError(f"{name}: values do not fit in dtype {self.dtype}")
        if arr.ndim != self.ndim:
            raise InputError(
                f"{name}: expected a {self.ndim}-d array of shape {format_shape(self.shape)}, "
                f"got {arr.ndim}-d array of shape {arr.shape}"
            )
        for axis, (want, got) in enumerate(zip(self.shape, arr.shape)):
            if want is not None and want != got:
                raise InputError(
                    f"{name}: expected shape {format_shape(self.shape)}, got {arr.shape} "
                    f"(axis {axis} must be {want})"
                )
        return arr


def format_shape(shape) -> str:
    """``(None, 3)`` -> ``'(?, 3)'``."""
    dims = ", ".join("?" if s is None else str(s) for s in shape)
    return f"({dims}{',' if len(shape) == 1 else ''})"


def broadcast_shapes(*shapes: Shape) -> Shape | None:
    """Static broadcast of same-rank shapes under the static-1 rule; None on mismatch."""
    out = []
    for dims in zip(*shapes):
        known = {d for d in dims if d is not None and d != 1}
        if len(known) > 1:
            return None
        if known:
            out.append(known.pop())
        elif all(d == 1 for d in dims):
            out.append(1)
        else:
            out.append(None)
    return tuple(out)


def upcast(*dtypes: str) -> str:
    """numpy's promotion of ``dtypes``."""
    return str(np.result_type(*[np.dtype(d) for d in dtypes]))
