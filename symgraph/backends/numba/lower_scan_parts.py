"""A scan whose step keeps batch rows apart, compiled as row parts run side by side.

When ``rows.independent_rows`` holds (a recurrent layer: row ``i`` of each new carry
depends on row ``i`` of the carries and sequence slices only), the loop is generated as a
part function that runs every step on the rows ``lo:hi``::

    def sg_part_<tag>(lo, hi, ...):
        c = init[lo:hi]                         # the part's rows of each carry
        for t in range(n):
            x = seq[t, lo:hi]
            ... inner graph (per-step buffers of this part's own) ...
            H[t, lo:hi] = new_c; c = H[t, lo:hi]    # or two buffers of the part's own
            Y[t, lo:hi] = y
        final[0, lo:hi] = c                     # a carry without history
        return

and the graph function allocates the histories and stacks whole, then calls it through
``threads.sg_run_parts``, which cuts ``range(rows)`` into parts and runs them on
threads. Each part's per-step products are ``rows / parts`` high and run on its own core,
with no synchronisation between steps; its elementwise loops share the cores too. With
one part (a small batch, or ``threads.set_threads(1)``) it is the plain loop.
"""

from __future__ import annotations

from symgraph.backends.numba import split
from symgraph.backends.numba.emitter import GraphEmitter, dtype_expr, result_of
from symgraph.backends.numba.lower_basic import contiguous
from symgraph.backends.numba.lower_scan import (
    _read_reversed,
    invariant_refs,
    loop_start,
    note_outputs,
)


def emit_in_parts(op, node, ctx, dims: list) -> None:
    """Emit the loop as a part function and its ``sg_run_parts`` call; ``dims``: the
    stacks' trailing lengths (:func:`trailing_dims`)."""
    from symgraph.backends.numba.compiler import CHUNK_LIMIT

    n_steps, seqs, inits, nonseqs = op.split_inputs(list(node.inputs))
    tag = ctx.name_for(node.outputs[0])
    n, rows = f"{tag}_n", f"{tag}_rows"
    seq_refs = loop_start(ctx, op, tag, n_steps, seqs)
    starts = [f"{tag}_i{k}" for k in range(len(inits))]
    for start, init in zip(starts, inits):
        ctx.emit(f"{start} = {contiguous(ctx, init)}")
    ctx.emit(f"{rows} = {starts[0]}.shape[0]" if starts else f"{seq_refs[0][0]}.shape[1]")
    mismatched = ([f"{s}.shape[0] != {rows}" for s in starts]
                  + [f"{ref}.shape[1] != {rows}" for ref, _ in seq_refs])
    ctx.emit(f"sg_reference_if({' or '.join(mismatched)})")  # the reference names the error
    histories = []
    for k, (start, init) in enumerate(zip(starts, inits)):
        dtype = dtype_expr(init.dtype)
        if op.keep_history[k]:
            histories.append(ctx.name_for(node.outputs[k]))
            ctx.emit(f"{histories[-1]} = sg_empty(({n},) + {start}.shape, {dtype})")
        else:
            histories.append(None)
            ctx.emit(f"{tag}_f{k} = sg_empty((1,) + {start}.shape, {dtype})")
    nonseq_refs = invariant_refs(ctx, op, tag, nonseqs)
    shapes = [f"{ref}.shape" for ref, _ in seq_refs] + [f"{s}.shape" for s in starts]
    shapes += [f"{ref}.shape" for ref, _ in nonseq_refs]
    reversals = [_read_reversed(ctx, out) for out in node.outputs[op.n_carry:]]
    stacked = []
    for out, lengths in zip(node.outputs[op.n_carry:], dims):
        stacked.append(ctx.name_for(out))
        rest = "".join(f", {d}" if isinstance(d, int) else
                       f", {shapes[d[0]]}[{d[1] + (d[0] < len(seqs))}]" for d in lengths)
        ctx.emit(f"{stacked[-1]} = sg_empty(({n}, {rows}{rest}), {dtype_expr(out.dtype)})")

    lines: list[str] = []
    _part_body(op, ctx, GraphEmitter(ctx.state, lines), tag, seq_refs, starts, histories,
               stacked, [bool(r) for r in reversals], nonseq_refs)
    outside = _outside_names(ctx)
    stmts = split.parse([line[4:] for line in lines])
    used = set().union(*(s.reads() | s.writes() for s in stmts))
    local = _declared_locally(ctx.state.preamble, used)
    stmts = split.parse(local) + stmts
    params = sorted((used & outside) - {line.split(" = ")[0] for line in local})
    bounds = [f"{tag}_lo", f"{tag}_hi"]
    name = f"sg_part_{tag}"
    splitter = split.Splitter(CHUNK_LIMIT, lambda chunk, args: ctx.call(chunk, args),
                              prefix=f"{name}_chunk_")
    stmts = splitter.split(stmts, set(), set(params) | set(bounds))
    body = [line for s in stmts for line in s.render(1)]
    source = (f"def {name}({', '.join(bounds + params)}):\n" + "\n".join(body)
              + "\n    return\n")
    ctx.state.functions.extend(splitter.chunks + [(name, source)])
    site = ctx.new_site(name)
    shared = " + ".join(f"{ref}.nbytes" for (ref, _), outer in zip(nonseq_refs, nonseqs)
                        if outer.ndim) or "0"
    ctx.emit(f"sg_run_parts({name}, {site}, _kp, {rows}, {shared}"
             f"{''.join(', ' + p for p in params)})")

    for k, out in enumerate(node.outputs[:op.n_carry]):
        if histories[k]:
            ctx.note(out, "C", owned=True)
        else:
            ctx.alias(out, f"{tag}_f{k}[0]", "C")
    note_outputs(ctx, op, node, stacked, reversals)


def _part_body(op, ctx, part, tag, seq_refs, starts, histories, stacked, reversed_,
               nonseq_refs) -> None:
    """The part function's statements (see the module docstring)."""
    from symgraph.backends.numba.compiler import emit_graph

    inner = op.inner
    n, t, lo, hi = f"{tag}_n", f"{tag}_t", f"{tag}_lo", f"{tag}_hi"
    part.profile_bank = f"int({lo} > 0)"
    carries = [f"{tag}_c{k}" for k in range(op.n_carry)]
    for k, (cur, start) in enumerate(zip(carries, starts)):
        part.emit(f"{cur} = sg_rows({start}, None, {lo}, {hi})")
        if not histories[k]:  # two buffers: a step never writes the carry it reads
            dtype = dtype_expr(inner.outputs[k].dtype)
            part.emit(f"{tag}_b{k} = sg_empty((2,) + {cur}.shape, {dtype})")
    part.emit(f"for {t} in range({n}):")
    body = part.child()
    n_seq = len(seq_refs)
    for slot, (ref, backwards) in zip(inner.inputs[:n_seq], seq_refs):
        step = f"{ref}.shape[0] - 1 - {t}" if backwards else t
        body.bind(slot, f"sg_rows({ref}, {step}, {lo}, {hi})", "C", owned=False)
    for slot, cur in zip(inner.inputs[n_seq:n_seq + op.n_carry], carries):
        body.alias(slot, cur, "C")
    for slot, (ref, layout) in zip(inner.inputs[n_seq + op.n_carry:], nonseq_refs):
        body.alias(slot, ref, layout)
    slots = [f"{n} - 1 - {t}" if r else t for r in reversed_]  # stored in reversed order
    sinks = {}
    for k, new in enumerate(inner.outputs[:op.n_carry]):
        sinks[new] = (f"sg_rows({histories[k]}, {t}, {lo}, {hi})" if histories[k]
                      else f"{tag}_b{k}[{t} % 2]")
    for new, name, slot in zip(inner.outputs[op.n_carry:], stacked, slots):
        sinks.setdefault(new, f"sg_rows({name}, {slot}, {lo}, {hi})")
    body.sinks = {v: where for v, where in sinks.items() if v not in inner.inputs}
    emit_graph(body, inner.inputs, inner.outputs)

    # step outputs first: one may be a carry the step received
    for new, name, slot in zip(inner.outputs[op.n_carry:], stacked, slots):
        body.emit(body.call("sg_store_rows", [body.ref(new), name, slot, lo, hi],
                            result_of(new)))
    for k, new in enumerate(inner.outputs[:op.n_carry]):
        value = body.ref(new)
        store = (body.call("sg_store_rows", [value, histories[k], t, lo, hi], result_of(new))
                 if histories[k] else
                 body.call("sg_store", [value, f"{tag}_b{k}", f"{t} % 2"], result_of(new)))
        body.emit(f"{carries[k]} = {store}")
    for k, cur in enumerate(carries):
        if not histories[k]:
            part.emit(part.call("sg_store_rows", [cur, f"{tag}_f{k}", "0", lo, hi],
                                result_of(inner.outputs[k])))


def trailing_dims(op) -> list | None:
    """For each step output, its lengths after the row axis: an int where static, else
    ``(i, axis)`` when it is the length of the step's input ``i`` along ``axis`` (from
    the ops' shape inference, followed through ``x.shape[k]`` of values the step
    computes); None when some length is neither."""
    from symgraph.graph import Constant
    from symgraph.ops.basic import tensor
    from symgraph.shape_inference import infer_shapes

    inner = op.inner
    outputs = inner.outputs[op.n_carry:]
    if all(None not in out.type.shape[1:] for out in outputs):
        return [list(out.type.shape[1:]) for out in outputs]
    holders = [tuple(tensor("int64", shape=()) for _ in range(v.ndim)) for v in inner.inputs]
    where = {d: (i, axis) for i, dims in enumerate(holders) for axis, d in enumerate(dims)}
    computed = [v for node in inner.toposort() for v in node.outputs]
    shapes = dict(zip(computed, infer_shapes(computed, inner.inputs, holders)))
    shapes.update(zip(inner.inputs, holders))

    def resolve(dim, depth=0):
        if isinstance(dim, Constant):
            return int(dim.value)
        if dim in where:
            return where[dim]
        of = _length_of(dim)
        if of is not None and of[0] in shapes and depth < 16:
            return resolve(shapes[of[0]][of[1]], depth + 1)
        return None

    found = []
    for out in outputs:
        dims = [static if static is not None else resolve(dim)
                for static, dim in zip(out.type.shape[1:], shapes[out][1:])]
        if None in dims:
            return None
        found.append(dims)
    return found


def _length_of(dim):
    """``(x, k)`` when ``dim`` is ``x.shape[k]``, else None."""
    from symgraph.ops.shape import Shape
    from symgraph.ops.subtensor import Subtensor

    node = dim.owner
    if (node is not None and isinstance(node.op, Subtensor) and len(node.op.idx_list) == 1
            and isinstance(node.op.idx_list[0], int) and node.inputs[0].owner is not None
            and isinstance(node.inputs[0].owner.op, Shape)):
        return node.inputs[0].owner.inputs[0], node.op.idx_list[0]
    return None


def _declared_locally(preamble: list, used: set) -> list:
    """The graph function's declarations of the empty arrays and per-step buffers the
    part uses, to be made in the part itself: each part needs buffers of its own, and
    arguments are not free (each array argument is unpacked field by field)."""
    declared = dict(line.split(" = ", 1) for line in preamble)
    wanted = [n for n in declared if n in used]
    wanted += [declared[n] for n in wanted if declared[n] in declared]  # their dummies
    return [f"{n} = {declared[n]}" for n in declared if n in set(wanted)]


def _outside_names(ctx) -> set:
    """The names a part function may take from the graph function: its arguments and
    constants, and what it defined before the loop."""
    text = "\n".join(ctx.state.preamble + ctx.lines + [str(v) for v in ctx.names.values()])
    return (set(split.LOCAL.findall(text)) | {name for name, _ in ctx.state.const_args}
            | {"_kp", "_prof"})
