"""Rectangular regions of arrays: basic indexing (``x[2, a:b, ::-1]``), writing or adding
into a region (``set_subtensor`` / ``inc_subtensor``), concatenation and broadcasting
(``alloc``). One kernel family covers them all: thread ``e`` of the region unravels
into the region index ``(i0, i1, ...)`` and touches

.. math:: x[b_0 + i_0 s_0,\\; b_1,\\; \\ldots] \\quad\\text{and}\\quad
          y[i_{R-r} m_0, \\ldots, i_{R-1} m_{r-1}]

where each key entry of ``x`` is a fixed index ``b`` or a range ``b + i s`` (start,
step) and ``y`` (rank ``r``) lines up with the region's last axes, broadcast where its
multiplier ``m`` is 0. ``get`` copies ``x``'s region into ``y``; ``set`` and ``inc``
write or add ``y`` into it (a basic region has no repeated element, so no atomics).
Bounds come from the op's own key (``_key``), so bad indices raise the reference's
errors.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from symgraph.backends.cuda import launcher
from symgraph.backends.cuda.context import LoweringContext, host_perform, lower
from symgraph.backends.cuda.jit import compile_kernel, launch_elements, unravel
from symgraph.backends.cuda.memory import Site, sliced
from symgraph.errors import ShapeError
from symgraph.ops.shape import Alloc, Join
from symgraph.ops.subtensor import IncSubtensor, Slice, Subtensor


def region_source(entries: tuple, y_ndim: int, mode: str) -> str:
    """The kernel ``(x, y, bounds..., n..., multipliers..., total)``. ``entries`` has one
    kind per key entry of ``x``: ``"index"`` (bound ``b``), ``"range"`` (bounds ``b``,
    ``s``; a region axis) or ``"new"`` (a region axis of length 1 not in ``x``)."""
    region = [k for k, kind in enumerate(entries) if kind != "index"]
    idx = [f"i{k}" for k in range(len(region))]
    bounds, x_subs = [], []
    for p, kind in enumerate(entries):
        if kind == "index":
            bounds.append(f"b{p}")
            x_subs.append(f"b{p}")
        elif kind == "range":
            bounds += [f"b{p}", f"s{p}"]
            x_subs.append(f"b{p} + i{region.index(p)} * s{p}")
    dims = [f"n{k}" for k in range(len(region))]
    mults = [f"m{j}" for j in range(y_ndim)] if mode != "get" else []
    target = f"x[{', '.join(x_subs)}]"
    if mode == "get":
        statement = f"y[{', '.join(idx)}] = {target}"
    else:
        lead = len(region) - y_ndim
        value = (f"y[{', '.join(f'i{lead + j} * m{j}' for j in range(y_ndim))}]" if y_ndim
                 else "y")
        statement = f"{target} {'=' if mode == 'set' else '+='} {value}"
    params = ["x", "y"] + bounds + dims + mults + ["total"]
    lines = [f"def KERNEL({', '.join(params)}):", "    e = cuda.grid(1)", "    if e < total:"]
    lines += ["        " + line for line in unravel("e", dims, idx)]
    lines.append("        " + statement)
    return "\n".join(lines) + "\n"


@functools.cache
def region_kernel(entries: tuple, y_ndim: int, mode: str):
    """The compiled :func:`region_source` kernel."""
    return compile_kernel(region_source(entries, y_ndim, mode))


def key_entries(idx_list: tuple, x_ndim: int) -> tuple:
    """The entry kinds of a basic key (axes after its last entry are whole ranges)."""
    kinds = ["new" if e is None else "range" if isinstance(e, Slice) else "index"
             for e in idx_list]
    return tuple(kinds) + ("range",) * (x_ndim - sum(e is not None for e in idx_list))


def region_bounds(key: tuple, shape: tuple) -> tuple[list, list]:
    """``(bounds, region shape)`` of a numpy basic ``key`` (ints range-checked) into an
    array of ``shape``, in :func:`region_source`'s parameter order."""
    bounds, dims, axis = [], [], 0
    used = sum(entry is not None for entry in key)
    for entry in tuple(key) + (slice(None),) * (len(shape) - used):
        if entry is None:
            dims.append(1)
            continue
        n = shape[axis]
        axis += 1
        if isinstance(entry, slice):
            start, stop, step = entry.indices(n)
            bounds += [start, step]
            dims.append(len(range(start, stop, step)))
        else:
            bounds.append(entry % n)
    return bounds, dims


def multipliers(static: tuple, shape: tuple, region: list) -> list[int]:
    """Per axis of a value of ``shape`` (static shape ``static``) lined up with the last
    axes of ``region``: 0 where it broadcasts (static length 1), else 1; raises when
    lengths differ."""
    lead = len(region) - len(shape)
    if lead < 0:
        raise ShapeError(f"a value of shape {shape} does not fit a region of shape {region}")
    out = []
    for j, (s, n) in enumerate(zip(static, shape)):
        if s == 1:
            out.append(0)
        elif n == region[lead + j]:
            out.append(1)
        else:
            raise ShapeError(f"a value of shape {shape} does not fit a region of shape "
                             f"{tuple(region)} (only axes of static length 1 broadcast)")
    return out


def write_region(x, y, y_static: tuple, bounds: list, dims: list, entries: tuple,
                 mode: str) -> None:
    """``x[region] = y`` or ``+= y`` (``y`` a device array or a scalar)."""
    y_ndim = len(y_static)
    mults = multipliers(y_static, y.shape, dims) if y_ndim else []
    total = math.prod(dims)
    launch_elements(region_kernel(entries, y_ndim, mode), total,
                    (x, y, *bounds, *dims, *mults, total))


def broadcast_into(out, y, y_static: tuple) -> None:
    """Fill the device array ``out`` with ``y`` (an array whose static shape is
    ``y_static``, or a scalar) broadcast over the axes where ``y_static`` is 1."""
    write_region(out, y, y_static, [b for _ in range(out.ndim) for b in (0, 1)],
                 list(out.shape), ("range",) * out.ndim, "set")


def _contiguous_view(entries: tuple, idx_list: tuple) -> bool:
    """Whether the region is a C-contiguous view: indices, then at most one slice with
    no step as the key's last entry, no new axes."""
    kinds = entries[:len(idx_list)]
    if "new" in kinds or "range" in kinds[:-1]:
        return False
    return not kinds or kinds[-1] == "index" or idx_list[-1].step is None


def _view_key(entries: tuple, bounds: list, dims: list) -> tuple:
    """The normalised key of a contiguous view: indices and ``(start, stop)`` pairs
    (:func:`~symgraph.backends.cuda.memory.sliced`)."""
    key, bound, dim = [], iter(bounds), iter(dims)
    for kind in entries:
        if kind == "index":
            key.append(next(bound))
        else:
            start, _ = next(bound), next(bound)
            key.append((start, start + next(dim)))
    return tuple(key)


@lower.register(Subtensor)
def _subtensor(op, node, ctx: LoweringContext) -> None:
    (x, *index_inputs), (out,) = node.inputs, node.outputs
    read_x, out_slot = ctx.device_reader(x), ctx.slot(out)
    read_index = [ctx.host_reader(v) for v in index_inputs]
    entries = key_entries(op.idx_list, x.ndim)
    view = _contiguous_view(entries, op.idx_list)  # one element (0-d) is a "view" too
    site = None if view else ctx.new_site(out)
    kernel = None if view else region_kernel(entries, out.ndim, "get")

    def step(env):
        xv = read_x(env)
        key = op._key([read(env) for read in read_index], xv.shape, node)
        bounds, dims = region_bounds(key, xv.shape)
        if view:
            key = _view_key(entries, bounds, dims)
            if out.ndim:
                env[out_slot] = sliced(xv, key)
            else:  # one element, copied to the host
                env[out_slot] = np.asarray(xv[key], out.dtype).reshape(())
            return
        y = env[out_slot] = site.get(tuple(dims))
        total = math.prod(dims)
        launch_elements(kernel, total, (xv, y, *bounds, *dims, total))

    ctx.add(step, node)


@lower.register(IncSubtensor)
def _inc_subtensor(op, node, ctx: LoweringContext) -> None:
    (x, y, *index_inputs), (out,) = node.inputs, node.outputs
    if ctx.on_host(x):
        return host_perform(node, ctx)
    read_x, read_y, out_slot = ctx.device_reader(x), ctx.argument(y), ctx.slot(out)
    read_index = [ctx.host_reader(v) for v in index_inputs]
    entries = key_entries(op.idx_list, x.ndim)
    mode = "set" if op.set_instead_of_inc else "inc"
    in_place = ctx.can_overwrite(x, node)
    site = None if in_place else ctx.new_site(out)
    if in_place:
        ctx.reuse(out, x)

    def step(env):
        xv = read_x(env)
        target = xv if in_place else copy_into(site, xv)
        key = op._key([read(env) for read in read_index], xv.shape, node)
        bounds, dims = region_bounds(key, xv.shape)
        write_region(target, read_y(env), y.type.shape, bounds, dims, entries, mode)
        env[out_slot] = target

    ctx.add(step, node)


def copy_into(site: Site, x):
    """``x`` copied into the buffer of ``site`` (device to device)."""
    out = site.get(x.shape)
    if x.size:
        launcher.copy(out, x)
    return out


@lower.register(Join)
def _join(op, node, ctx: LoweringContext) -> None:
    out = node.outputs[0]
    readers = [ctx.device_reader(v) for v in node.inputs]
    out_slot, site = ctx.slot(out), ctx.new_site(out)
    axis, entries = op.axis, ("range",) * out.ndim

    def step(env):
        parts = [read(env) for read in readers]
        first = parts[0].shape
        if any(len(p.shape) != len(first) or any(a != axis and p.shape[a] != first[a]
                                                 for a in range(len(first))) for p in parts):
            raise ShapeError(f"concatenate: shapes {[p.shape for p in parts]} differ")
        shape = list(first)
        shape[axis] = sum(p.shape[axis] for p in parts)
        y = env[out_slot] = site.get(tuple(shape))
        offset = 0
        for part in parts:
            bounds = [b for a in range(len(shape)) for b in (offset if a == axis else 0, 1)]
            write_region(y, part, (None,) * part.ndim, bounds, list(part.shape), entries, "set")
            offset += part.shape[axis]

    ctx.add(step, node)


@lower.register(Alloc)
def _alloc(op, node, ctx: LoweringContext) -> None:
    (value, *dims), (out,) = node.inputs, node.outputs
    if ctx.on_host(out):
        return host_perform(node, ctx)
    read_value, out_slot, site = ctx.argument(value), ctx.slot(out), ctx.new_site(out)
    read_dims = [ctx.host_reader(d) for d in dims]

    def step(env):
        shape = tuple(int(read(env)) for read in read_dims)
        if any(d < 0 for d in shape):
            raise ShapeError(f"alloc: negative dimension in shape {shape}")
        v = read_value(env)
        y = env[out_slot] = site.get(shape)
        # numpy's rule (np.broadcast_to): every axis of length 1 repeats
        broadcast_into(y, v, tuple(1 if n == 1 else None for n in np.shape(v)))

    ctx.add(step, node)
