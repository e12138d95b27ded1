"""Scalar operations: the bodies of elementwise ops.

Each :class:`ScalarOp` knows its numpy implementation (``impl``, the reference), its
output dtype (numpy's promotion, found by applying ``impl`` to one-element arrays) and
``expr``, a Python expression template used by the code-generating backends (numba CPU
and CUDA share it, so the math is written once). Gradient rules live in
``symgraph.ops.math`` next to the user-facing functions.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import scipy.special

from symgraph.op import Props


class ScalarOp(Props):
    """An elementwise function of ``nin`` scalars."""

    __props__: tuple[str, ...] = ()
    nin = 1
    impl = None
    template = ""  # e.g. "math.exp({0})"
    commutative = False
    #: names of helper functions the template calls (defined by each backend's prelude)
    helpers: tuple[str, ...] = ()

    def __repr__(self) -> str:
        props = self._props()
        name = type(self).__name__.lower()
        return f"{name}{{{', '.join(map(str, props))}}}" if props else name

    def output_dtype(self, *dtypes: str) -> str:
        return _probe_dtype(self, tuple(dtypes))

    def __call__(self, *arrays):
        return self.impl(*arrays)

    def expr(self, *args: str) -> str:
        return self.template.format(*args)


@cache
def _probe_dtype(op: ScalarOp, dtypes: tuple) -> str:
    with np.errstate(all="ignore"):
        return str(np.asarray(op.impl(*[np.ones(1, d) for d in dtypes])).dtype)


def _unary(name, impl, template, helpers=()):
    cls = type(name, (ScalarOp,), {"nin": 1, "impl": staticmethod(impl),
                                    "template": template, "helpers": helpers})
    return cls


def _binary(name, impl, template, commutative=False, helpers=()):
    return type(name, (ScalarOp,), {"nin": 2, "impl": staticmethod(impl), "template": template,
                                     "commutative": commutative, "helpers": helpers})


def _sigmoid(x):
    return scipy.special.expit(x)


def _softplus(x):
    return np.logaddexp(np.zeros((), x.dtype), x)


def _relu(x):
    return np.maximum(x, np.zeros((), x.dtype))


Add = _binary("Add", np.add, "({0} + {1})", commutative=True)
Sub = _binary("Sub", np.subtract, "({0} - {1})")
Mul = _binary("Mul", np.multiply, "({0} * {1})", commutative=True)
TrueDiv = _binary("TrueDiv", np.true_divide, "({0} / {1})")
IntDiv = _binary("IntDiv", np.floor_divide, "({0} // {1})")
Mod = _binary("Mod", np.mod, "({0} % {1})")
Pow = _binary("Pow", np.power, "({0} ** {1})")
Maximum = _binary("Maximum", np.maximum, "max({0}, {1})", commutative=True)
Minimum = _binary("Minimum", np.minimum, "min({0}, {1})", commutative=True)
EQ = _binary("EQ", np.equal, "({0} == {1})", commutative=True)
NEQ = _binary("NEQ", np.not_equal, "({0} != {1})", commutative=True)
LT = _binary("LT", np.less, "({0} < {1})")
GT = _binary("GT", np.greater, "({0} > {1})")
LE = _binary("LE", np.less_equal, "({0} <= {1})")
GE = _binary("GE", np.greater_equal, "({0} >= {1})")
And = _binary("And", np.bitwise_and, "({0} & {1})", commutative=True)
Or = _binary("Or", np.bitwise_or, "({0} | {1})", commutative=True)

Neg = _unary("Neg", np.negative, "(-{0})")
Abs = _unary("Abs", np.abs, "abs({0})")
Sgn = _unary("Sgn", np.sign, "sg_sign({0})", helpers=("sg_sign",))
Exp = _unary("Exp", np.exp, "math.exp({0})")
Log = _unary("Log", np.log, "math.log({0})")
Log1p = _unary("Log1p", np.log1p, "math.log1p({0})")
Expm1 = _unary("Expm1", np.expm1, "math.expm1({0})")
Sqrt = _unary("Sqrt", np.sqrt, "math.sqrt({0})")
Tanh = _unary("Tanh", np.tanh, "math.tanh({0})")
Sigmoid = _unary("Sigmoid", _sigmoid, "sg_sigmoid({0})", helpers=("sg_sigmoid",))
Softplus = _unary("Softplus", _softplus, "sg_softplus({0})", helpers=("sg_softplus",))
Relu = _unary("Relu", _relu, "max({0}, 0)")
Sin = _unary("Sin", np.sin, "math.sin({0})")
Cos = _unary("Cos", np.cos, "math.cos({0})")
Floor = _unary("Floor", np.floor, "math.floor({0})")
Ceil = _unary("Ceil", np.ceil, "math.ceil({0})")
Round = _unary("Round", np.round, "sg_round({0})", helpers=("sg_round",))
Invert = _unary("Invert", np.invert, "(~{0})")
Identity = _unary("Identity", lambda x: x.copy(), "{0}")


class Switch(ScalarOp):
    """``switch(cond, a, b)``: ``a`` where ``cond`` is true, else ``b``."""

    nin = 3
    template = "({1} if {0} else {2})"

    @staticmethod
    def impl(cond, a, b):
        return np.where(cond, a, b)

    def output_dtype(self, cond, a, b):
        return str(np.result_type(np.dtype(a), np.dtype(b)))


class Clip(ScalarOp):
    """``clip(x, lo, hi)``: ``min(max(x, lo), hi)``."""

    nin = 3
    template = "min(max({0}, {1}), {2})"

    @staticmethod
    def impl(x, lo, hi):
        return np.minimum(np.maximum(x, lo), hi)


class Cast(ScalarOp):
    """Conversion to ``dtype`` (C semantics for float -> int: truncation)."""

    __props__ = ("dtype",)
    nin = 1

    def __init__(self, dtype: str) -> None:
        self.dtype = str(np.dtype(dtype))

    def impl(self, x):
        return np.asarray(x).astype(self.dtype)

    def output_dtype(self, *dtypes):
        return self.dtype

    def expr(self, x):
        return f"np.{self.dtype}({x})" if self.dtype != "bool" else f"({x} != 0)"
