"""Random draws: numpy's Philox generator is called from compiled code through numba's
object mode, so the draws are exactly the reference interpreter's (same seed, same
numbers). The helper is a module-level function, so graphs using it stay cacheable."""

from __future__ import annotations

import hashlib

import numpy as np

from symgraph.backends.numba.registry import lower
from symgraph.ops.random import RandomVariable, generator

_DISTS = ("uniform", "normal", "binomial")
_DTYPES = ("float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16",
           "uint32", "uint64", "bool")
_NUMBA_NAMES = {"bool": "boolean"}


def sg_draw(dist: int, dtype: int, state, p0, p1, shape):
    """A draw of ``RandomVariable(_DISTS[dist], _DTYPES[dtype])`` (plain Python, run in
    object mode): a C-contiguous array, or a numpy scalar for ``shape == ()``."""
    op = RandomVariable(_DISTS[dist], _DTYPES[dtype])
    shape = tuple(int(d) for d in shape)
    if any(d < 0 for d in shape):
        raise ValueError(f"negative size {shape}")
    out = np.asarray(op._draw(generator(np.asarray(state)), np.asarray(p0), np.asarray(p1),
                              shape), dtype=op.dtype)
    return out[()] if not shape else np.ascontiguousarray(out)


@lower.register(RandomVariable)
def _random(op, node, ctx):
    """A generated kernel holding the object-mode call (object-mode blocks stay out of
    the graph function, where numba mishandled them inside loops)."""
    if op.dist not in _DISTS or op.dtype not in _DTYPES:
        return ctx.fallback(node)
    (state, p0, p1, *dims), (out,) = node.inputs, node.outputs
    base = _NUMBA_NAMES.get(out.dtype, out.dtype)
    typ = base if out.ndim == 0 else f"{base}[{', '.join([':'] * (out.ndim - 1) + ['::1'])}]"
    size = "(" + "".join(f"d{k}, " for k in range(len(dims))) + ")"
    params = ", ".join(["state", "p0", "p1"] + [f"d{k}" for k in range(len(dims))])
    source = "\n".join([
        f"def KERNEL({params}):",
        f"    with numba.objmode(out={typ!r}):",
        f"        out = sg_draw({_DISTS.index(op.dist)}, {_DTYPES.index(op.dtype)}, state, "
        f"p0, p1, {size})",
        "    return out", ""])
    name = "k_" + hashlib.sha1(source.encode()).hexdigest()[:16]
    ctx.kernel(name, source.replace("def KERNEL(", f"def {name}(", 1))
    args = [ctx.ref(v) for v in (state, p0, p1, *dims)]
    ctx.bind(out, ctx.call(name, args))
