"""Elementwise fusion: connected Elemwise nodes with the same loop domain become one
loop nest (one generated kernel), with no temporaries between them.

Planning (:func:`plan`) walks the nodes in topological order and merges an Elemwise node
into the groups of its Elemwise producers when both have the same rank and the same
static-1 axes (so the same run-time shape) and the merge creates no cycle (no path from
the group through an outside node back into it). A view whose clients are all fused
(a DimShuffle, or slicing with integers and step-less slices) is not materialised:
groups read its input with permuted, broadcast or offset indices.
Values used outside their group (or returned) are stored; the others live in registers.

Kernels (:func:`group_kernel`) are keyed by their source, so equal structures (the same
ops, dtypes and access patterns) share one compiled kernel within a process and on disk.
The scalar code comes from each ScalarOp's ``expr`` template, with vectorisable float32
versions of ``exp``, ``tanh`` and ``sigmoid`` (see ``prelude``) and explicit casts to
``ScalarOp.output_dtype`` (numba's own promotion differs: ``float32 * 2`` is float64).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

import numpy as np

from symgraph.backends.numba.emitter import describe_op, dtype_expr, literal, sanitize
from symgraph.graph import Apply, Constant, Variable
from symgraph.ops import scalar as S
from symgraph.ops.dimshuffle import DimShuffle
from symgraph.ops.elemwise import Elemwise
from symgraph.ops.shape import Join
from symgraph.ops.subtensor import SYMBOLIC, Slice, Subtensor

#: Most arrays one fused loop stores: LLVM vectorises a loop behind run-time overlap
#: checks between every stored and every loaded array, so compile time grows with their
#: product (an 86-output loop took 15 s to compile; 9 outputs, 1.5 s).
MAX_STORED = int(os.environ.get("SYMGRAPH_NUMBA_MAX_STORED", "12"))
SUPPORTED_DTYPES = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                    "uint64", "float32", "float64"}
#: ``SYMGRAPH_NUMBA_FAST_FLOAT32=0`` keeps libm's exp / tanh in float32 loops (to compare).
FAST_FLOAT32 = os.environ.get("SYMGRAPH_NUMBA_FAST_FLOAT32", "1") != "0"
_FAST32 = {S.Exp: "sg_exp32({0})", S.Tanh: "sg_tanh32({0})", S.Sigmoid: "sg_sigmoid32({0})"}


# ---- scalar expressions -----------------------------------------------------------------

def scalar_expr(sop, args: list[str], in_dtypes: list[str], out_dtype: str) -> str:
    """Source of ``sop`` applied to the scalar expressions ``args``, of ``out_dtype``."""
    if isinstance(sop, S.Cast):
        return sop.expr(*args)
    fast = _FAST32.get(type(sop)) if FAST_FLOAT32 else None
    if fast and out_dtype == "float32" and in_dtypes == ["float32"]:
        return fast.format(*args)
    if isinstance(sop, S.Invert) and in_dtypes == ["bool"]:
        return f"(not {args[0]})"
    if isinstance(sop, S.Switch):
        cast = [args[0]] + [_cast(a, d, out_dtype) for a, d in zip(args[1:], in_dtypes[1:])]
        return sop.expr(*cast)
    common = str(np.result_type(*[np.dtype(d) for d in in_dtypes]))
    cast = [_cast(a, d, common) for a, d in zip(args, in_dtypes)]
    return _cast(sop.expr(*cast), None, out_dtype)


def _cast(expr: str, dtype: str | None, target: str) -> str:
    if dtype == target:
        return expr
    if target == "bool":
        return f"({expr} != 0)"
    return f"{dtype_expr(target)}({expr})"


def fusable(node: Apply) -> bool:
    """An Elemwise node with array output and dtypes the generated loops support."""
    if not isinstance(node.op, Elemwise) or node.outputs[0].ndim == 0:
        return False
    return all(v.dtype in SUPPORTED_DTYPES for v in node.inputs + node.outputs)


def _pattern(var: Variable) -> tuple:
    return tuple(s == 1 for s in var.type.shape)


# ---- planning -----------------------------------------------------------------------------

@dataclass
class Group:
    """Fused Elemwise nodes: ``members`` in topological order, ``outputs`` stored.

    ``joined[part] = (join_output, k, axis)``: the member output ``part`` is stored as
    the ``k``-th block along ``axis`` of ``join_output`` (one of ``outputs``), which a
    Join node in ``joins`` would have concatenated (:func:`absorb_joins`)."""

    members: list[Apply]
    outputs: list[Variable] = field(default_factory=list)
    joined: dict = field(default_factory=dict)
    joins: list[Apply] = field(default_factory=list)


def client_map(nodes: list[Apply], outputs) -> dict:
    """``clients[var]``: the nodes among ``nodes`` using ``var``, and ``"output"`` for
    each of ``outputs`` (the form :func:`plan` takes)."""
    clients: dict = {}
    for node in nodes:
        for inp in node.inputs:
            clients.setdefault(inp, []).append(node)
    for out in outputs:
        clients.setdefault(out, []).append("output")
    return clients


def plan(nodes: list[Apply], clients: dict, graph_outputs: set) -> tuple[list, set]:
    """Steps for ``nodes`` (Apply nodes and Groups, in a valid order) and the set of
    DimShuffle outputs that groups read through index maps (not materialised).

    ``clients[var]`` lists the nodes using ``var`` (``"output"`` for a graph output).
    """
    index = {id(n): k for k, n in enumerate(nodes)}
    virtual: set = set()
    for node in reversed(nodes):
        out = node.outputs[0]
        if (is_view(node) and out not in graph_outputs and clients.get(out)
                and all(c != "output" and (fusable(c) or c.outputs[0] in virtual)
                        for c in clients[out])):
            virtual.add(out)
    changed = True
    while changed:  # slicing is absorbed only on materialised arrays (their shapes are
        changed = False  # the kernel's arguments), and then what it reads is real too
        for node in nodes:
            out, x = node.outputs[0], node.inputs[0]
            if out in virtual and isinstance(node.op, Subtensor) and x in virtual:
                virtual.discard(out)
                changed = True
            if out in virtual and any(c.outputs[0] not in virtual and not fusable(c)
                                      for c in clients[out]):
                virtual.discard(out)
                changed = True
    group_of: dict[int, int] = {}
    groups: dict[int, list[Apply]] = {}
    for node in nodes:
        if not fusable(node):
            continue
        group_of[id(node)] = id(node)
        groups[id(node)] = [node]
        for inp in node.inputs:
            p = inp.owner
            if p is None or id(p) not in group_of:
                continue
            other, mine = group_of[id(p)], group_of[id(node)]
            if other == mine or _pattern(p.outputs[0]) != _pattern(node.outputs[0]):
                continue
            merged = groups[other] + groups[mine]
            if (_stored(merged, clients, graph_outputs, virtual) <= MAX_STORED
                    and _acyclic(merged, index, virtual, group_of, groups, (other, mine))):
                merged.sort(key=lambda n: index[id(n)])
                groups[other] = merged
                del groups[mine]
                for n in merged:
                    group_of[id(n)] = other
    _merge_siblings(groups, group_of, index, virtual,
                    lambda m: _stored(m, clients, graph_outputs, virtual) <= MAX_STORED)
    steps = _order(nodes, [Group(members) for members in groups.values()])
    for step in steps:
        if isinstance(step, Group):
            members = {id(n) for n in step.members}
            for n in step.members:
                out = n.outputs[0]
                if out in graph_outputs or any(c == "output" or id(c) not in members
                                               for c in _client_nodes(clients, out, virtual)):
                    step.outputs.append(out)
    return steps, virtual


def absorb_joins(steps: list, clients: dict, graph_outputs: set) -> list:
    """``steps`` without the Join nodes whose operands are all outputs of one group,
    distinct and read by nothing else: the group's loop stores each operand straight
    into its block of the joined array (operand ``k`` of ``K`` along ``axis`` at offset
    ``k * n_axis``: the operands share the loop's shape). That saves a copy of the
    whole result, e.g. the backward LSTM step's four gate cotangents concatenated for
    one ``(B, 4H) @ (4H, H)`` product."""
    made_by = {out: step for step in steps if isinstance(step, Group) for out in step.outputs}
    kept = []
    for step in steps:
        group = None if isinstance(step, Group) or not isinstance(step.op, Join) else \
            made_by.get(step.inputs[0])
        out = step.outputs[0] if group is not None else None
        if group is None or not all(
                made_by.get(part) is group and clients.get(part) == [step]
                and part not in graph_outputs and part.dtype == out.dtype
                for part in step.inputs) or len(set(step.inputs)) != len(step.inputs):
            kept.append(step)
            continue
        axis = step.op.axis % out.ndim
        at = group.outputs.index(step.inputs[0])
        group.outputs[at:at + 1] = [out]
        for k, part in enumerate(step.inputs):
            if k:
                group.outputs.remove(part)
            group.joined[part] = (out, k, axis)
        group.joins.append(step)
    return kept


def _stored(members: list[Apply], clients: dict, graph_outputs: set, virtual: set) -> int:
    """How many outputs a group made of ``members`` would store."""
    ids = {id(n) for n in members}
    return sum(1 for n in members if n.outputs[0] in graph_outputs or any(
        c == "output" or id(c) not in ids
        for c in _client_nodes(clients, n.outputs[0], virtual)))


def _merge_siblings(groups: dict, group_of: dict, index: dict, virtual: set,
                    small_enough) -> None:
    """Merge groups whose loops provably have the same run-time domain: same pattern,
    and on every loop axis both read some array axis in common (e.g. ``a + b`` and
    ``a * b``: one pass over ``a``, one kernel instead of two)."""
    def cover(members):
        ndim = members[0].outputs[0].ndim
        outs = {n.outputs[0] for n in members}
        axes_of = [set() for _ in range(ndim)]
        for n in members:
            for inp in n.inputs:
                src, axes = _access(inp, virtual)
                if src in outs:
                    continue
                for a, (k, _, length) in enumerate(axes):
                    if k is not None and length is None:
                        axes_of[k].add((src, a))
        return (_pattern(members[0].outputs[0]), axes_of)

    covers = {gid: cover(members) for gid, members in groups.items()}
    changed = True
    while changed:  # until no two groups can merge (merging can make new pairs)
        changed = False
        order = sorted(groups, key=lambda g: index[id(groups[g][0])])
        for pos, gid in enumerate(order):
            if gid not in groups:
                continue
            for other in order[:pos]:
                if other not in groups:
                    continue
                (pa, ca), (pb, cb) = covers[other], covers[gid]
                if pa != pb or not ca or not all(x & y for x, y in zip(ca, cb)):
                    continue
                merged = groups[other] + groups[gid]
                if small_enough(merged) and _acyclic(merged, index, virtual, group_of,
                                                     groups, (other, gid)):
                    merged.sort(key=lambda n: index[id(n)])
                    groups[other] = merged
                    del groups[gid]
                    for n in merged:
                        group_of[id(n)] = other
                    covers[other] = cover(merged)
                    changed = True
                    break


def is_view(node: Apply) -> bool:
    """A node that fused loops can read through instead of materialising: a DimShuffle,
    or basic indexing with integers and step-less slices (not of a ``Shape``: its
    lengths are read as ``x.shape[i]``, a scalar)."""
    from symgraph.ops.shape import Shape

    if isinstance(node.op, DimShuffle):
        return True
    if isinstance(node.op, Subtensor) and node.inputs[0].ndim and not (
            node.inputs[0].owner is not None and isinstance(node.inputs[0].owner.op, Shape)):
        return all(isinstance(e, int) or e == SYMBOLIC
                   or (isinstance(e, Slice) and e.step is None) for e in node.op.idx_list)
    return False


def _client_nodes(clients, var, virtual):
    """Clients of ``var``, looking through absorbed views."""
    out = []
    for c in clients.get(var, []):
        if c != "output" and c.outputs[0] in virtual:
            out += _client_nodes(clients, c.outputs[0], virtual)
        else:
            out.append(c)
    return out


def _source(var: Variable, virtual: set) -> tuple[Variable, bool, list]:
    """The variable behind a chain of absorbed views, whether there was one, and the
    views' index inputs."""
    through, extra = False, []
    while var in virtual:
        extra += var.owner.inputs[1:]
        var, through = var.owner.inputs[0], True
    return var, through, extra


def _acyclic(members: list[Apply], index: dict, virtual: set, group_of: dict,
             groups: dict, merging: tuple) -> bool:
    """True when the would-be group leaves the graph of steps acyclic: no external input
    depends on one of its members through other steps (another group counts as one
    step: it runs when all its members' inputs are ready), and no member reads another
    through a view."""
    first = min(index[id(n)] for n in members)
    outs = {n.outputs[0] for n in members}
    for n in members:
        for inp in n.inputs:
            src, through, extra = _source(inp, virtual)
            if src in outs and through:
                return False
            starts = extra + ([] if src in outs else [src])
            if any(_depends(v, outs, first, index, group_of, groups, merging)
                   for v in starts):
                return False
    return True


def _depends(var, outs: set, first: int, index: dict, group_of: dict, groups: dict,
             merging: tuple) -> bool:
    """Whether ``var`` is computed from one of ``outs``, walking back through nodes and
    whole groups (other than the ones being merged)."""
    stack, seen = [var], set()
    while stack:
        v = stack.pop()
        if v in outs:
            return True
        node = v.owner
        if node is None or id(node) in seen:
            continue
        gid = group_of.get(id(node))
        unit = groups[gid] if gid is not None and gid not in merging else [node]
        if max(index.get(id(m), -1) for m in unit) < first:
            continue
        for m in unit:
            seen.add(id(m))
            stack.extend(m.inputs)
    return False


def _order(nodes: list[Apply], groups: list[Group]) -> list:
    """Topological order of the condensed graph (each group as one step)."""
    step_of = {id(n): g for g in groups for n in g.members}
    produced_by = {o: step_of.get(id(n), n) for n in nodes for o in n.outputs}
    order: list = []
    state: dict[int, int] = {}
    for n in nodes:
        _visit(step_of.get(id(n), n), produced_by, order, state)
    ready = set()
    for step in order:  # every step after the steps it reads from (a cycle would not be)
        members = step.members if isinstance(step, Group) else [step]
        inside = {o for m in members for o in m.outputs}
        if any(produced_by.get(i) is not None and i not in ready and i not in inside
               for m in members for i in m.inputs):
            raise AssertionError("internal: elementwise fusion produced a cycle")
        ready |= inside
    return order


def _visit(step, produced_by, order, state):
    stack = [(step, False)]
    while stack:
        s, expanded = stack.pop()
        if state.get(id(s)) == 2:
            continue
        if expanded:
            state[id(s)] = 2
            order.append(s)
            continue
        if state.get(id(s)) == 1:
            continue
        state[id(s)] = 1
        stack.append((s, True))
        members = s.members if isinstance(s, Group) else [s]
        for m in members:
            for inp in m.inputs:
                dep = produced_by.get(inp)
                if dep is not None and dep is not s and state.get(id(dep)) != 2:
                    stack.append((dep, False))


# ---- kernels ------------------------------------------------------------------------------

def _access(var: Variable, virtual: set) -> tuple[Variable, tuple]:
    """How a fused loop reads ``var`` at loop index ``(i0, i1, ...)``: ``(source, axes)``
    with one ``(k, offsets, length)`` per axis of ``source``: the loop axis ``k`` read
    there (None: a broadcast or length-1 axis, index 0), the view tokens added to the
    index, and the token holding the axis' length in the loop (None: the source's own
    length). Tokens are ``(view_node, kind, axis)`` keys (computed in the kernel)."""
    axes = [(None if s == 1 else k, (), None) for k, s in enumerate(var.type.shape)]
    while var in virtual:
        node, x = var.owner, var.owner.inputs[0]
        new = []
        if isinstance(node.op, DimShuffle):
            pattern = node.op.pattern
            for a in range(x.ndim):
                pos = pattern.index(a) if a in pattern else None
                if pos is None or x.type.shape[a] == 1:
                    new.append((None, axes[pos][1] if pos is not None else (), None))
                else:
                    new.append(axes[pos])
        else:
            pos = 0
            for a in range(x.ndim):
                entry = node.op.idx_list[a] if a < len(node.op.idx_list) else Slice(
                    None, None, None)
                if not isinstance(entry, Slice):
                    new.append((None, ((node, "index", a),), None))
                    continue
                k, offs, length = axes[pos]
                pos += 1
                if entry.start is None and entry.stop is None:
                    new.append((k, offs, length))
                    continue
                if length is None:
                    length = (node, "length", a)
                new.append((k, offs + ((node, "start", a),), length))
        var, axes = x, new
    return var, tuple(axes)


def _is_literal(var: Variable) -> bool:
    return isinstance(var, Constant) and var.value.size == 1


class LoopBody:
    """The statements of one fused loop's body, for both backends' generators: each
    input element is loaded once into a temporary ``t<k>`` (through the index maps of
    the views the plan absorbed), each member's scalar expression into another.
    ``param(var)`` names a kernel argument and ``subscripts(axes)`` writes the index of
    a load (``axes`` as :func:`_access` gives them), each the backend's own."""

    def __init__(self, virtual: set, param, subscripts) -> None:
        self.virtual, self.param, self.subscripts = virtual, param, subscripts
        self.lines: list[str] = []
        self.loads: dict = {}  # (source, axes) -> temporary
        self.temps: dict = {}  # member output -> temporary

    def _temporary(self) -> str:
        return f"t{len(self.temps) + len(self.loads)}"

    def read(self, var: Variable) -> str:
        """The expression of ``var``'s element at the loop index."""
        if var in self.temps:
            return self.temps[var]
        src, axes = _access(var, self.virtual)
        if _is_literal(src):
            return literal(src.value, src.dtype)
        name = self.param(src)
        if src.ndim == 0:
            return name
        key = (src, axes)
        if key not in self.loads:
            t = self._temporary()
            self.lines.append(f"{t} = {name}[{', '.join(self.subscripts(axes))}]")
            self.loads[key] = t
        return self.loads[key]

    def compute(self, node: Apply) -> str:
        """Append the member ``node``'s scalar expression; returns its temporary."""
        out = node.outputs[0]
        expr = scalar_expr(node.op.scalar_op, [self.read(v) for v in node.inputs],
                           [v.dtype for v in node.inputs], out.dtype)
        t = self._temporary()
        self.lines.append(f"{t} = {expr}  # {sanitize(describe_op(node.op))}")
        self.temps[out] = t
        return t


def group_kernel(group: Group, virtual: set) -> tuple[str, str, list, list]:
    """``(name, source, args, outs)`` of the kernel computing ``group``: ``args`` are the
    variables (arrays and 0-d values, view bounds included) to pass, ``outs`` the stored
    variables (the kernel takes one buffer per output after the arguments and returns
    the arrays)."""
    ndim = group.members[0].outputs[0].ndim
    args: list = []
    arg_pos: dict = {}
    idx = [f"i{k}" for k in range(ndim)]

    tokens: dict = {}
    token_lines: list[str] = []

    def param(key) -> str:
        if isinstance(key, tuple):
            return token(key)
        if key not in arg_pos:
            arg_pos[key] = len(args)
            args.append(key)
        return f"x{arg_pos[key]}"

    def token(key) -> str:
        """A slice's start / length or a normalised index of an absorbed view, computed
        at the top of the kernel from the raw bounds (no line in the graph function)."""
        if key in tokens:
            return tokens[key]
        node, kind, axis = key
        src = param(node.inputs[0])
        n = f"{src}.shape[{axis}]"
        it = iter(node.inputs[1:])

        def raw(p, default):
            if p is None:
                return default
            if p == SYMBOLIC:
                v = next(it)
                return literal(v.value, v.dtype) if _is_literal(v) else param(v)
            return str(int(p))

        for a, entry in enumerate(node.op.idx_list):
            if isinstance(entry, Slice):
                parts = (raw(entry.start, "0"), raw(entry.stop, n))
            else:
                parts = (raw(entry, None),)
            if a == axis:
                break
        j = len(token_lines)
        if kind == "index":
            token_lines.append(f"q{j} = sg_index({parts[0]}, {n})")
            tokens[key] = f"q{j}"
        else:
            token_lines.append(f"s{j}, l{j} = sg_slice({parts[0]}, {parts[1]}, {n})")
            tokens[(node, "start", axis)] = f"s{j}"
            tokens[(node, "length", axis)] = f"l{j}"
        return tokens[key]

    def subscripts(axes) -> list[str]:
        subs = []
        for k, offs, _ in axes:
            terms = ([] if k is None else [idx[k]]) + [param(o) for o in offs]
            if offs:  # unsigned: numba then skips the negative-index wraparound
                subs.append(f"np.uint64({' + '.join(terms)})")  # (which blocks SIMD)
            else:
                subs.append(terms[0] if terms else "0")
        return subs

    loop = LoopBody(virtual, param, subscripts)
    for node in group.members:
        loop.compute(node)
    body, loads, temps = loop.lines, loop.loads, loop.temps
    outs = list(group.outputs)
    blocks = {out: 0 for out in outs}
    for j, out in enumerate(outs):
        if out in temps:
            body.append(f"o{j}[{', '.join(idx)}] = {temps[out]}")
    rows = []  # a joined output is stored through one row view per block: LLVM
    last = ndim - 1  # vectorises stores to separate rows, not to offsets in one array
    for part, (out, k, axis) in group.joined.items():
        j, blocks[out] = outs.index(out), blocks[out] + 1
        if axis == last:
            at = idx[:last] + [f"{k} * n{axis}:{k + 1} * n{axis}"]
        else:
            at = [f"{k} * n{axis} + i{axis}" if a == axis else idx[a] for a in range(last)]
        rows.append(f"r{j}_{k} = o{j}[{', '.join(at)}]")
        body.append(f"r{j}_{k}[i{last}] = {temps[part]}")

    head, dims, checks = list(token_lines), [], []
    for k in range(ndim):
        sources = []
        for (src, axes) in loads:
            for a, (m, _, length) in enumerate(axes):
                if m == k:
                    sources.append(param(length) if length is not None
                                   else f"x{arg_pos[src]}.shape[{a}]")
        sources = list(dict.fromkeys(sources))
        if not sources:
            dims.append("1")
            continue
        head.append(f"n{k} = {sources[0]}")
        dims.append(f"n{k}")
        checks += [f"{other} != n{k}" for other in sources[1:]]
    if checks:  # one raise site: each one adds cleanup code that stops LLVM inlining
        head.append(f"if {' or '.join(checks)}: raise SGRuntimeError()")
    for _, _, axis in group.joined.values():
        if dims[axis] == "1":  # no loop reads the axis: name its length for the offsets
            head.append(f"n{axis} = 1")
    params = [f"x{k}" for k in range(len(args))] + [f"o{j}" for j in range(len(outs))]
    lines = [f"def KERNEL({', '.join(params)}):"]
    lines += ["    " + h for h in dict.fromkeys(head)]
    for j, out in enumerate(outs):
        joined = {axis for part, (o, _, axis) in group.joined.items() if o is out}
        out_dims = [f"{blocks[out]} * {d}" if k in joined else d for k, d in enumerate(dims)]
        shape = "(" + ", ".join(out_dims) + ("," if ndim == 1 else "") + ")"
        lines.append(f"    o{j} = sg_out(o{j}, {shape})")
    indent = "    "
    for k in range(ndim):
        if k == last:
            lines += [indent + r for r in rows]
        lines.append(f"{indent}for i{k} in range({dims[k]}):")
        indent += "    "
    lines += [indent + b for b in body]
    ret = ", ".join(f"o{j}" for j in range(len(outs)))
    lines.append(f"    return {ret}")
    source = "\n".join(lines) + "\n"
    name = "k_" + hashlib.sha1(source.encode()).hexdigest()[:16]
    return name, source.replace("def KERNEL(", f"def {name}(", 1), args, outs
