"""The lowering registry: ``@lower.register(OpClass)`` adds the numba lowering of an op.

A lowering is ``fn(op, node, ctx) -> None``. It reads the op's props and the node's
types and writes source lines through ``ctx`` (an :class:`~.emitter.GraphEmitter`):

- ``ctx.ref(var)``: the expression of an input (a name, or a literal for a scalar
  constant); ``ctx.is_scalar(var)`` (0-d values are numba scalars), ``ctx.layout(var)``;
- ``ctx.bind(var, expr, layout=..., owned=...)``: ``name = expr`` for an output;
- ``ctx.buffer(var)``: the ``out`` argument to give a kernel that produces ``var`` (a
  per-step buffer inside a compiled loop, an empty placeholder elsewhere);
- ``ctx.use(name)``: a helper from ``prelude``/``kernels`` (its name);
  ``ctx.kernel(source)``: a generated kernel (its name); ``ctx.check(cond)``: raise
  when ``cond`` holds at run time.

Ops without a lowering run their ``perform`` through numba's object mode, with a
warning naming the op (see :func:`lower`'s default below).
"""

from __future__ import annotations

import functools
import warnings


@functools.singledispatch
def lower(op, node, ctx) -> None:
    """Default: call ``op.perform`` through ``numba.objmode``, with a warning."""
    warnings.warn(f"numba backend: no lowering for {type(op).__name__}; it runs its numpy "
                  "perform through numba's object mode (slow)", stacklevel=2)
    ctx.fallback(node)


def has_lowering(op) -> bool:
    """True when ``op``'s type (or a base class other than object) has a lowering."""
    return lower.dispatch(type(op)) is not lower.dispatch(object)
