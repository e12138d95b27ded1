"""Fused elementwise kernels: each group of the numba backend's fusion plan
(:func:`symgraph.backends.numba.fusion.plan`) becomes one ``@cuda.jit`` kernel with one
thread per element of the group's loop domain.

Thread ``e`` unravels ``e`` into the loop index ``(i0, i1, ...)`` (C order), loads each
input once (through the index maps of the views the plan absorbed: permuted axes,
broadcast axes read at 0, slice offsets), evaluates the members' scalar expressions
(the ScalarOp templates through ``fusion.scalar_expr``, so the math is written once for
both backends) and stores the values used outside the group::

    def KERNEL(x0, x1, o0, n0, n1, total, q0):
        e = cuda.grid(1)
        if e < total:
            i1 = e % n1
            r1 = e // n1
            i0 = r1
            t0 = x0[i0, i1 + q0]
            t1 = x1[0, i1]
            t2 = np.float32((t0 * t1))  # Elemwise{mul}
            o0[i0, i1] = t2

The host side works out the domain ``(n0, n1)`` from the inputs' shapes (checking that
they agree), the view bounds ``q*`` from the index values, and allocates the outputs.
The same generator materialises a view that no fused kernel absorbed (a transpose
read by a reduction, say): a kernel with no members storing the view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from symgraph.backends.cuda.context import LoweringContext
from symgraph.backends.cuda.jit import compile_kernel, launch_elements, unravel
from symgraph.backends.numba.emitter import describe_op
from symgraph.backends.numba.fusion import Group, LoopBody
from symgraph.errors import ShapeError
from symgraph.graph import Apply, Variable


@dataclass
class Loop:
    """A generated kernel and what its launch needs.

    ``args``: the variables passed before the outputs, in order (arrays, or 0-d values
    passed as scalars); ``dims[k]``: where the length of loop axis ``k`` can be read,
    ``("shape", arg position, axis)`` or ``("token", key)``; ``tokens``: the view bounds
    passed last, keyed ``(view node, "start" | "length" | "index", axis)``.
    """

    source: str
    args: list[Variable]
    outputs: list[Variable]
    dims: list[list[tuple]]
    tokens: list[tuple] = field(default_factory=list)


def loop_source(members: list[Apply], stored: list[Variable], virtual: set) -> Loop:
    """The kernel computing ``members`` (Elemwise nodes of one loop domain, in order) and
    storing ``stored``; inputs are read through the views in ``virtual``."""
    ndim = stored[0].ndim
    idx = [f"i{k}" for k in range(ndim)]
    args: list[Variable] = []
    tokens: list[tuple] = []

    def param(var: Variable) -> str:
        if var not in args:
            args.append(var)
        return f"x{args.index(var)}"

    def token(key: tuple) -> str:
        if key not in tokens:
            tokens.append(key)
        return f"q{tokens.index(key)}"

    def subscripts(axes) -> list[str]:
        return [" + ".join(([idx[k]] if k is not None else []) + [token(o) for o in offs])
                or "0" for k, offs, _ in axes]

    loop = LoopBody(virtual, param, subscripts)
    for node in members:
        loop.compute(node)
    stores = [f"o{j}[{', '.join(idx)}] = {loop.read(out)}" for j, out in enumerate(stored)]
    body = loop.lines + stores  # (reading a stored view loads it first)

    dims = []
    for k in range(ndim):
        found = []
        for (src, axes) in loop.loads:
            for a, (m, _, length) in enumerate(axes):
                if m == k:
                    found.append(("token", length) if length is not None
                                 else ("shape", args.index(src), a))
        dims.append(list(dict.fromkeys(found)))
    params = ([f"x{j}" for j in range(len(args))] + [f"o{j}" for j in range(len(stored))]
              + [f"n{k}" for k in range(ndim)] + ["total"]
              + [f"q{j}" for j in range(len(tokens))])
    lines = [f"def KERNEL({', '.join(params)}):", "    e = cuda.grid(1)", "    if e < total:"]
    lines += ["        " + line for line in unravel("e", [f"n{k}" for k in range(ndim)], idx)]
    lines += ["        " + line for line in body]
    return Loop("\n".join(lines) + "\n", args, list(stored), dims, tokens)


def view_bounds(node: Apply, shape: tuple, index_values: list) -> dict:
    """``{(kind, axis): value}`` for a Subtensor view of an array of ``shape``: the start
    and length of each sliced axis and the (normalised) index of each indexed axis.
    Indices out of range raise the reference's error."""
    key = node.op._key(index_values, shape, node)
    bounds = {}
    for axis, entry in enumerate(key):
        if isinstance(entry, slice):
            start, stop, step = entry.indices(shape[axis])
            bounds[("start", axis)] = start
            bounds[("length", axis)] = len(range(start, stop, step))
        else:
            bounds[("index", axis)] = entry % shape[axis]
    return bounds


class LoopStep:
    """Launches a :class:`Loop`: domain from the shapes, bounds from the index values,
    outputs into reused buffers."""

    def __init__(self, loop: Loop, ctx: LoweringContext) -> None:
        self.kernel = compile_kernel(loop.source)
        self.read_args = [ctx.argument(v) for v in loop.args]
        self.dims = loop.dims
        self.outs = [(ctx.slot(v), ctx.new_site(v)) for v in loop.outputs]
        self.tokens = loop.tokens
        views = list(dict.fromkeys(node for node, _, _ in loop.tokens))
        self.views = [(node, ctx.slot(node.inputs[0]),
                       [ctx.host_reader(v) for v in node.inputs[1:]]) for node in views]

    def __call__(self, env) -> None:
        args = [read(env) for read in self.read_args]
        bounds = {}
        for node, x_slot, read_indices in self.views:
            values = [read(env) for read in read_indices]
            for (kind, axis), value in view_bounds(node, env[x_slot].shape, values).items():
                bounds[(node, kind, axis)] = value
        shape = []
        for sources in self.dims:
            lengths = {bounds[s[1]] if s[0] == "token" else args[s[1]].shape[s[2]]
                       for s in sources}
            if len(lengths) > 1:
                raise ShapeError(f"elementwise: operand lengths {sorted(lengths)} differ")
            shape.append(lengths.pop() if lengths else 1)
        shape = tuple(shape)
        total = math.prod(shape)
        outs = []
        for slot, site in self.outs:
            env[slot] = site.get(shape)
            outs.append(env[slot])
        launch_elements(self.kernel, total, args + outs + list(shape) + [total]
                        + [bounds[key] for key in self.tokens])


def lower_group(group: Group, ctx: LoweringContext) -> None:
    """The fused kernel of ``group`` as a step."""
    loop = loop_source(group.members, group.outputs, ctx.virtual)
    ctx.add(LoopStep(loop, ctx), " + ".join(describe_op(n.op) for n in group.members),
            loop.source)


def materialise_view(node: Apply, ctx: LoweringContext) -> None:
    """A step copying the view computed by ``node`` (a DimShuffle) into its own buffer."""
    loop = loop_source([], node.outputs, ctx.virtual | set(node.outputs))
    ctx.add(LoopStep(loop, ctx), node, loop.source)
