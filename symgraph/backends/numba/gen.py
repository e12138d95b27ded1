"""Generated kernels for ops whose loops depend on ranks, axes and broadcast patterns:
reductions, broadcasts (Alloc of an array), joins and in-place region updates
(``x[key] += y``). Each returns ``(name, source)``; the name is the hash of the source,
so equal structures share one compiled (and disk-cached) kernel.
"""

from __future__ import annotations

import hashlib

import numpy as np

from symgraph.backends.numba.emitter import dtype_expr


def _named(lines: list[str]) -> tuple[str, str]:
    source = "\n".join(lines) + "\n"
    name = "k_" + hashlib.sha1(source.encode()).hexdigest()[:16]
    return name, source.replace("def KERNEL(", f"def {name}(", 1)


def _tuple(items) -> str:
    items = list(items)
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


def _realloc(out: str, dims: list[str]) -> str:
    if not dims:
        return ""
    return f"    {out} = sg_out({out}, {_tuple(dims)})"


def _loops(dims: list[str], body: list[str], indent: int = 1) -> list[str]:
    lines, pad = [], "    " * indent
    for k, d in enumerate(dims):
        lines.append(f"{pad}for i{k} in range({d}):")
        pad += "    "
    return lines + [pad + b for b in body]


def reduce_kernel(kind: str, in_dtype: str, out_dtype: str, ndim: int, axes: tuple,
                  keepdims: bool, arg: bool) -> tuple[str, str]:
    """``x`` (rank ``ndim``) reduced over ``axes`` by ``kind`` (sum, prod, max, min), or
    (``arg``) the index of the max / min over one axis or over the flattened array.
    Float sums and products accumulate in float64; max / min propagate NaN."""
    kept = [a for a in range(ndim) if a not in axes]
    if keepdims:
        out_dims = ["1" if a in axes else f"x.shape[{a}]" for a in range(ndim)]
        out_idx = ["0" if a in axes else f"i{a}" for a in range(ndim)]
    else:
        out_dims = [f"x.shape[{a}]" for a in kept]
        out_idx = [f"i{a}" for a in kept]
    scalar = not out_dims
    is_float = np.dtype(in_dtype).kind == "f"
    if kind in ("sum", "prod") and not arg:
        acc = "float64" if is_float else ("uint64" if np.dtype(in_dtype).kind == "u"
                                           else "int64")
        init = "0" if kind == "sum" else "1"
    else:
        acc = in_dtype if in_dtype != "bool" else "int8"
        if is_float:
            init = "-np.inf" if kind == "max" else "np.inf"
        else:
            info = np.iinfo(acc)
            init = str(info.min if kind == "max" else info.max)
    lines = ["def KERNEL(x, out):"]
    if kind in ("max", "min") or arg:
        empty = " or ".join(f"x.shape[{a}] == 0" for a in axes)
        lines.append(f"    if {empty}: raise SGRuntimeError()")
    cell = "acc" if scalar else f"acc[{', '.join(out_idx)}]"
    best = "best" if scalar else f"best[{', '.join(out_idx)}]"
    if scalar:
        lines.append(f"    acc = np.{acc}({init})")
        if arg:
            lines.append("    best = 0")
    else:
        lines.append(f"    acc = sg_empty({_tuple(out_dims)}, np.{acc})")
        lines.append("    flat_acc = sg_reshape(acc, (acc.size,))")
        lines.append(f"    for j in range(acc.size): flat_acc[j] = np.{acc}({init})")
        if arg:
            lines.append(f"    best = sg_empty({_tuple(out_dims)}, np.int64)")
            lines.append("    flat_best = sg_reshape(best, (best.size,))")
            lines.append("    for j in range(best.size): flat_best[j] = 0")
    if arg:
        lines.append("    flat = 0")
    body = [f"v = x[{', '.join(f'i{a}' for a in range(ndim))}]"]
    if kind == "sum" and not arg:
        body.append(f"{cell} += v")
    elif kind == "prod" and not arg:
        body.append(f"{cell} *= v")
    else:
        better = ">" if kind == "max" else "<"
        nan = " or v != v" if is_float else ""
        body.append(f"if (v {better} {cell}{nan}) and {cell} == {cell}:")
        body.append(f"    {cell} = v")
        if arg:
            pos = "flat" if len(axes) == ndim else f"i{axes[0]}"
            body.append(f"    {best} = {pos}")
    if arg:
        body.append("flat += 1")
    lines += _loops([f"x.shape[{a}]" for a in range(ndim)], body)
    result, res_dtype = ("best", "int64") if arg else ("acc", out_dtype)
    if scalar:
        lines.append(f"    return {dtype_expr(res_dtype)}({result})")
    else:
        lines.append(_realloc("out", out_dims))
        lines.append(f"    src = sg_reshape({result}, ({result}.size,))")
        lines.append("    dst = sg_reshape(out, (out.size,))")
        lines.append(f"    for j in range(dst.size): dst[j] = {dtype_expr(res_dtype)}(src[j])")
        lines.append("    return out")
    return _named(lines)


def broadcast_kernel(in_shape: tuple, out_ndim: int, dtype: str) -> tuple[str, str]:
    """``out`` of shape ``(d0, ..)`` filled with ``x`` broadcast numpy-style (x's axes
    aligned on the right; statically 1 or run-time 1 axes repeat)."""
    lead = out_ndim - len(in_shape)
    dims = [f"d{k}" for k in range(out_ndim)]
    lines = [f"def KERNEL(x, {', '.join(dims)}, out):"]
    checks, subs = [], []
    for a, s in enumerate(in_shape):
        k = lead + a
        if s == 1:
            subs.append("0")
            continue
        checks.append(f"(x.shape[{a}] != 1 and x.shape[{a}] != d{k})")
        lines.append(f"    s{a} = 0 if x.shape[{a}] == 1 else 1")
        subs.append(f"i{k} * s{a}")
    if checks:
        lines.append(f"    if {' or '.join(checks)}: raise SGRuntimeError()")
    lines.append(_realloc("out", dims))
    value = f"x[{', '.join(subs)}]" if in_shape else "x"
    lines += _loops(dims, [f"out[{', '.join(f'i{k}' for k in range(out_ndim))}] = {value}"])
    lines.append("    return out")
    return _named(lines)


def join_kernel(n: int, ndim: int, axis: int, dtype: str) -> tuple[str, str]:
    """Concatenation of ``n`` arrays of rank ``ndim`` along ``axis``."""
    xs = [f"x{j}" for j in range(n)]
    lines = [f"def KERNEL({', '.join(xs)}, out):"]
    checks = [f"x{j}.shape[{a}] != x0.shape[{a}]" for j in range(1, n) for a in range(ndim)
              if a != axis]
    if checks:
        lines.append(f"    if {' or '.join(checks)}: raise SGRuntimeError()")
    total = " + ".join(f"x{j}.shape[{axis}]" for j in range(n))
    dims = [total if a == axis else f"x0.shape[{a}]" for a in range(ndim)]
    lines.append(f"    total = {total}")
    dims[axis] = "total"
    lines.append(_realloc("out", dims))
    lines.append("    off = 0")
    for j in range(n):
        src = [f"i{a}" for a in range(ndim)]
        dst = [f"off + i{a}" if a == axis else f"i{a}" for a in range(ndim)]
        lines += _loops([f"x{j}.shape[{a}]" for a in range(ndim)],
                        [f"out[{', '.join(dst)}] = x{j}[{', '.join(src)}]"])
        lines.append(f"    off += x{j}.shape[{axis}]")
    lines.append("    return out")
    return _named(lines)


def update_kernel(region_ndim: int, y_shape: tuple, set_mode: bool) -> tuple[str, str]:
    """``region[...] = y`` or ``region += y`` in place, ``y`` broadcast under the static-1
    rule (its other axes must match the region's: checked)."""
    lead = region_ndim - len(y_shape)
    subs, checks = [], []
    for a, s in enumerate(y_shape):
        k = lead + a
        if s == 1:
            subs.append("0")
        else:
            subs.append(f"i{k}")
            checks.append(f"y.shape[{a}] != r.shape[{k}]")
    lines = ["def KERNEL(r, y):"]
    if checks:
        lines.append(f"    if {' or '.join(checks)}: raise SGRuntimeError()")
    value = f"y[{', '.join(subs)}]" if y_shape else "y"
    target = f"r[{', '.join(f'i{k}' for k in range(region_ndim))}]"
    op = "=" if set_mode else "+="
    lines += _loops([f"r.shape[{k}]" for k in range(region_ndim)], [f"{target} {op} {value}"])
    lines.append("    return 0")
    return _named(lines)


def advanced_kernel(idx_shapes: list[tuple], x_ndim: int, dtype: str,
                    mode: str) -> tuple[str, str]:
    """``x[i0, i1, ...]`` with integer arrays on the leading axes (broadcast together
    under the static-1 rule) for ``mode='get'``; for ``'inc'`` / ``'set'`` the scatter
    of ``y`` (full region shape) into ``out`` (a copy of ``x``, made by the caller), in
    place, repeated positions accumulating for ``'inc'``."""
    k = len(idx_shapes)
    rank = max(len(s) for s in idx_shapes)
    aligned = [(1,) * (rank - len(s)) + tuple(s) for s in idx_shapes]
    lines = []
    dims, checks = [], []
    for a in range(rank):
        srcs = [(j, a - (rank - len(s))) for j, s in enumerate(idx_shapes)
                if aligned[j][a] != 1]
        if not srcs:
            dims.append("1")
            continue
        lines.append(f"    b{a} = i{srcs[0][0]}.shape[{srcs[0][1]}]")
        dims.append(f"b{a}")
        checks += [f"i{j}.shape[{ax}] != b{a}" for j, ax in srcs[1:]]
    if checks:
        lines.append(f"    if {' or '.join(checks)}: raise SGRuntimeError()")
    lead = " * ".join(f"x.shape[{a}]" for a in range(k))
    lines.append(f"    lead = {lead}")
    lines.append("    rest = x.size // lead if lead else 0")
    for a in range(k, x_ndim):
        lines.append(f"    if x.shape[{a}] == 0: rest = 0")
    count = " * ".join(dims) if dims else "1"
    lines.append(f"    count = {count}")
    region = dims + [f"x.shape[{a}]" for a in range(k, x_ndim)]
    if mode == "get":
        params = "x, " + ", ".join(f"i{j}" for j in range(k)) + ", out"
        lines.append(_realloc("out", region))
        lines.append("    dst = out.reshape((count, rest))")
        lines.append("    src = np.ascontiguousarray(x).reshape((lead, rest))")
    else:
        params = "out, y, " + ", ".join(f"i{j}" for j in range(k))
        shape_checks = " or ".join(f"y.shape[{d}] != {e}" for d, e in enumerate(region))
        lines.append(f"    if y.ndim != {len(region)} or {shape_checks}: "
                     "raise SGRuntimeError()")
        lines.append("    dst = out.reshape((lead, rest))")
        lines.append("    src = np.ascontiguousarray(y).reshape((count, rest))")
    body = ["row = 0"]
    for j, s in enumerate(aligned):
        sub = ", ".join("0" if s[a] == 1 else f"j{a}"
                        for a in range(rank - len(idx_shapes[j]), rank))
        value = f"i{j}[{sub}]" if idx_shapes[j] else f"i{j}"
        body += [f"a = {value}",
                 f"if a < -x_n{j} or a >= x_n{j}: raise SGRuntimeError()",
                 f"row = row * x_n{j} + (a + x_n{j} if a < 0 else a)"]
    if mode == "get":
        body.append("for c in range(rest): dst[pos, c] = src[row, c]")
    else:
        op = "=" if mode == "set" else "+="
        body.append(f"for c in range(rest): dst[row, c] {op} src[pos, c]")
    body.append("pos += 1")
    for j in range(k):
        lines.append(f"    x_n{j} = {'x' if mode == 'get' else 'out'}.shape[{j}]")
    lines.append("    pos = 0")
    loops = []
    pad = "    "
    for a in range(rank):
        loops.append(f"{pad}for j{a} in range({dims[a]}):")
        pad += "    "
    lines += loops + [pad + b for b in body]
    lines.append("    return out")
    if mode != "get":
        lines = [ln.replace("x.shape", "out.shape").replace("x.size", "out.size")
                 for ln in lines]
    return _named([f"def KERNEL({params}):"] + lines)
