"""Elementwise math: the user-facing functions and, next to them, their gradient rules.

Each rule receives the scalar op, the (rank-aligned) inputs, the output and the output's
cotangent ``g`` and returns one cotangent per input, of the output's shape; Elemwise then
sums it down to the input's shape.
"""

from __future__ import annotations

import numpy as np

from symgraph.graph import Variable
from symgraph.op import disconnected
from symgraph.ops import scalar as S
from symgraph.ops.basic import as_tensor_variable, cast, is_python_number
from symgraph.ops.elemwise import Elemwise, defpullback

__all__ = [
    "add", "sub", "mul", "true_div", "int_div", "mod", "pow", "maximum", "minimum",
    "eq", "neq", "lt", "gt", "le", "ge", "and_", "or_", "invert",
    "neg", "abs", "sgn", "exp", "log", "log1p", "expm1", "sqrt", "sqr", "tanh", "sigmoid",
    "softplus", "relu", "sin", "cos", "floor", "ceil", "round", "switch", "where", "clip",
    "identity", "inv", "log2", "log10",
]


def elemwise(scalar_op, *args) -> Variable:
    """Apply ``scalar_op`` elementwise; Python numbers among ``args`` take the dtype numpy
    would give them next to the tensor operands (weak promotion, NEP 50)."""
    tensors = [a for a in args if isinstance(a, Variable) or not is_python_number(a)]
    tensors = [as_tensor_variable(a) for a in tensors]
    if tensors and len(tensors) < len(args):
        weak = [a for a in args if is_python_number(a) and not isinstance(a, Variable)]
        target = str(np.result_type(*[np.dtype(t.dtype) for t in tensors], *weak))
        args = [as_tensor_variable(a, dtype=target) if is_python_number(a)
                and not isinstance(a, Variable) else as_tensor_variable(a) for a in args]
    else:
        args = [as_tensor_variable(a) for a in args]
    return Elemwise(scalar_op)(*args)


def _op(scalar_cls, name, doc):
    singleton = scalar_cls()

    def fn(*args):
        return elemwise(singleton, *args)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc
    return fn


add = _op(S.Add, "add", "``a + b``")
sub = _op(S.Sub, "sub", "``a - b``")
mul = _op(S.Mul, "mul", "``a * b``")
true_div = _op(S.TrueDiv, "true_div", "``a / b``")
int_div = _op(S.IntDiv, "int_div", "``a // b`` (floor division)")
mod = _op(S.Mod, "mod", "``a % b`` (sign of b, as numpy)")
pow = _op(S.Pow, "pow", "``a ** b``")
maximum = _op(S.Maximum, "maximum", "elementwise max; ties send the gradient to ``a``")
minimum = _op(S.Minimum, "minimum", "elementwise min; ties send the gradient to ``a``")
eq = _op(S.EQ, "eq", "``a == b`` (bool)")
neq = _op(S.NEQ, "neq", "``a != b`` (bool)")
lt = _op(S.LT, "lt", "``a < b`` (bool)")
gt = _op(S.GT, "gt", "``a > b`` (bool)")
le = _op(S.LE, "le", "``a <= b`` (bool)")
ge = _op(S.GE, "ge", "``a >= b`` (bool)")
and_ = _op(S.And, "and_", "bitwise/logical and")
or_ = _op(S.Or, "or_", "bitwise/logical or")
invert = _op(S.Invert, "invert", "bitwise/logical not")
neg = _op(S.Neg, "neg", "``-x``")
abs = _op(S.Abs, "abs", "``|x|``; the gradient at 0 is 0")
sgn = _op(S.Sgn, "sgn", "sign of x (-1, 0, 1)")
exp = _op(S.Exp, "exp", "``e**x``")
log = _op(S.Log, "log", "natural logarithm")
log1p = _op(S.Log1p, "log1p", "``log(1 + x)``, accurate for small x")
expm1 = _op(S.Expm1, "expm1", "``exp(x) - 1``, accurate for small x")
sqrt = _op(S.Sqrt, "sqrt", "square root")
tanh = _op(S.Tanh, "tanh", "hyperbolic tangent; ``d tanh = 1 - tanh**2``")
sigmoid = _op(S.Sigmoid, "sigmoid", "``1 / (1 + exp(-x))``, stable for large |x|")
softplus = _op(S.Softplus, "softplus", "``log(1 + exp(x))``, stable for large |x|")
relu = _op(S.Relu, "relu", "``max(x, 0)``; the gradient at 0 is 0")
sin = _op(S.Sin, "sin", "sine")
cos = _op(S.Cos, "cos", "cosine")
floor = _op(S.Floor, "floor", "round down (zero gradient)")
ceil = _op(S.Ceil, "ceil", "round up (zero gradient)")
round = _op(S.Round, "round", "round half to even (zero gradient)")
identity = _op(S.Identity, "identity", "a copy of x")
switch = _op(S.Switch, "switch", "``switch(cond, a, b)``: a where cond, else b")
where = switch


def clip(x, lo, hi) -> Variable:
    """``min(max(x, lo), hi)``; the gradient flows to x where ``lo <= x <= hi``."""
    return elemwise(S.Clip(), x, lo, hi)


def sqr(x) -> Variable:
    """``x * x``"""
    return mul(x, x)


def inv(x) -> Variable:
    """``1 / x``"""
    return true_div(1.0, x)


def log2(x) -> Variable:
    return true_div(log(x), float(np.log(2.0)))


def log10(x) -> Variable:
    return true_div(log(x), float(np.log(10.0)))


# ---- gradient rules -------------------------------------------------------------------

def _mask(cond, like: Variable) -> Variable:
    return cast(cond, like.dtype)



@defpullback(S.Add)
def _(op, inputs, out, g):
    return [g, g]


@defpullback(S.Sub)
def _(op, inputs, out, g):
    return [g, -g]


@defpullback(S.Mul)
def _(op, inputs, out, g):
    x, y = inputs
    return [g * y, g * x]


@defpullback(S.TrueDiv)
def _(op, inputs, out, g):
    x, y = inputs
    return [g / y, -g * x / (y * y)]


@defpullback(S.Pow)
def _(op, inputs, out, g):
    x, y = inputs
    gx = g * y * x ** (y - 1)
    gy = g * out * log(switch(gt(x, 0), x, 1))
    return [gx, gy]


@defpullback(S.Maximum)
def _(op, inputs, out, g):
    x, y = inputs
    return [g * _mask(ge(x, y), g), g * _mask(lt(x, y), g)]


@defpullback(S.Minimum)
def _(op, inputs, out, g):
    x, y = inputs
    return [g * _mask(le(x, y), g), g * _mask(gt(x, y), g)]


@defpullback(S.IntDiv, S.Floor, S.Ceil, S.Round, S.Sgn)
def _(op, inputs, out, g):
    return [g * 0 for _ in inputs]


@defpullback(S.Mod)
def _(op, inputs, out, g):
    x, y = inputs
    return [g, -g * floor(x / y)]


@defpullback(S.EQ, S.NEQ, S.LT, S.GT, S.LE, S.GE, S.And, S.Or, S.Invert)
def _(op, inputs, out, g):
    return [disconnected() for _ in inputs]


@defpullback(S.Neg)
def _(op, inputs, out, g):
    return [-g]


@defpullback(S.Identity)
def _(op, inputs, out, g):
    return [g]


@defpullback(S.Abs)
def _(op, inputs, out, g):
    return [g * sgn(inputs[0])]


@defpullback(S.Exp)
def _(op, inputs, out, g):
    return [g * out]


@defpullback(S.Expm1)
def _(op, inputs, out, g):
    return [g * (out + 1)]


@defpullback(S.Log)
def _(op, inputs, out, g):
    return [g / inputs[0]]


@defpullback(S.Log1p)
def _(op, inputs, out, g):
    return [g / (inputs[0] + 1)]


@defpullback(S.Sqrt)
def _(op, inputs, out, g):
    return [g / (out * 2)]


@defpullback(S.Tanh)
def _(op, inputs, out, g):
    return [g * (1 - out * out)]


@defpullback(S.Sigmoid)
def _(op, inputs, out, g):
    return [g * out * (1 - out)]


@defpullback(S.Softplus)
def _(op, inputs, out, g):
    return [g * sigmoid(inputs[0])]


@defpullback(S.Relu)
def _(op, inputs, out, g):
    return [g * _mask(gt(inputs[0], 0), g)]


@defpullback(S.Sin)
def _(op, inputs, out, g):
    return [g * cos(inputs[0])]


@defpullback(S.Cos)
def _(op, inputs, out, g):
    return [-g * sin(inputs[0])]


@defpullback(S.Switch)
def _(op, inputs, out, g):
    cond = inputs[0]
    zero = g * 0
    return [disconnected(), switch(cond, g, zero), switch(cond, zero, g)]


@defpullback(S.Clip)
def _(op, inputs, out, g):
    x, lo, hi = inputs
    inside = _mask(ge(x, lo), g) * _mask(le(x, hi), g)
    return [g * inside, g * _mask(lt(x, lo), g), g * _mask(gt(x, hi), g)]


@defpullback(S.Cast)
def _(op, inputs, out, g):
    (x,) = inputs
    if not (x.type.is_float and out.type.is_float):
        return [disconnected()]
    return [cast(g, x.dtype)]
