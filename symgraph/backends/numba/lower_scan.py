"""Compiled scan: a ``for`` loop over time with the inner graph emitted inline.

For a Scan node ``[n_steps, *seqs, *inits, *nonseqs] -> [*carry_outs, *stacked_outs]``::

    n = n_steps                         # checked against the sequence lengths
    H = np.empty((n,) + init.shape)     # carry history (keep_history), or two buffers
    c = init                            # the current carry (C-contiguous)
    for t in range(n):
        x = seq[t]
        ... inner graph: every array it computes is a per-step buffer, declared before
            the loop and reused from step to step (kernels reallocate only when a shape
            changes) ...
        H[t] = new_c; c = H[t]          # or copy into the buffer not read this step
        Y[t] = y                        # Y allocated at t == 0 (its shape is known then)

Values leave a step only by these copies, so reusing the step's buffers is safe; the
backward scan built by ``symgraph.scan.pullback`` is just another Scan and compiles the
same way. No Python object is touched inside the loop.
"""

from __future__ import annotations

from symgraph.backends.numba.emitter import dtype_expr, result_of
from symgraph.backends.numba.lower_basic import contiguous
from symgraph.backends.numba.registry import lower
from symgraph.ops.blas import Dot
from symgraph.ops.subtensor import Slice, Subtensor
from symgraph.scan.op import Scan


@lower.register(Scan)
def _scan(op, node, ctx):
    dims = _part_dims(op) if ctx.loop_depth == 0 else None
    if dims is not None:
        from symgraph.backends.numba.lower_scan_parts import emit_in_parts

        return emit_in_parts(op, node, ctx, dims)
    from symgraph.backends.numba.compiler import emit_graph

    n_steps, seqs, inits, nonseqs = op.split_inputs(list(node.inputs))
    inner = op.inner
    tag = ctx.name_for(node.outputs[0]) if node.outputs else f"s{id(node)}"
    n, t = f"{tag}_n", f"{tag}_t"
    seq_refs = loop_start(ctx, op, tag, n_steps, seqs)
    carries, histories, buffers = [], [], []
    for k, init in enumerate(inits):
        cur = f"{tag}_c{k}"
        carries.append(cur)
        ctx.emit(f"{cur} = {contiguous(ctx, init) if init.ndim else ctx.ref(init)}")
        hist, bufs = None, None
        if op.keep_history[k]:
            hist = ctx.name_for(node.outputs[k])
            shape = f"({n},)" if init.ndim == 0 else f"({n},) + {cur}.shape"
            ctx.emit(f"{hist} = sg_empty({shape}, {dtype_expr(init.dtype)})")
        elif init.ndim:  # two buffers: a step never writes the carry it reads
            bufs = f"{tag}_b{k}"
            ctx.emit(f"{bufs} = sg_empty((2,) + {cur}.shape, {dtype_expr(init.dtype)})")
        histories.append(hist)
        buffers.append(bufs)
    if any(None in out.type.shape for out in inner.outputs[op.n_carry:]):
        ctx.emit(f"sg_reference_if({n} == 0)")  # stacked shapes need a step
    stacked, slots = [], []
    reversals = [_read_reversed(ctx, out) for out in node.outputs[op.n_carry:]]
    for j, out in enumerate(inner.outputs[op.n_carry:]):
        name = ctx.name_for(node.outputs[op.n_carry + j])
        slots.append(f"{n} - 1 - {t}" if reversals[j] else t)  # stored in reversed order
        empty = tuple([0] + [s or 0 for s in out.type.shape])
        ctx.emit(f"{name} = sg_empty({empty}, {dtype_expr(out.dtype)})")
        stacked.append(name)

    nonseq_refs = invariant_refs(ctx, op, tag, nonseqs)

    ctx.emit(f"for {t} in range({n}):")
    body = ctx.child()
    n_seq = len(seqs)
    for slot, (ref, backwards) in zip(inner.inputs[:n_seq], seq_refs):
        body.bind(slot, f"{ref}[{ref}.shape[0] - 1 - {t}]" if backwards else f"{ref}[{t}]",
                  "C", owned=False)
    for slot, cur in zip(inner.inputs[n_seq:n_seq + op.n_carry], carries):
        body.alias(slot, cur, "C")
    for slot, (ref, layout) in zip(inner.inputs[n_seq + op.n_carry:], nonseq_refs):
        body.alias(slot, ref, layout)
    carry_at = [(histories[k], t) if histories[k] else (buffers[k], f"{t} % 2")
                for k in range(op.n_carry)]
    carry_slots = [f"{array}[{index}]" for array, index in carry_at]
    body.sinks = _sinks(body, op, t, carry_slots, stacked, slots)
    emit_graph(body, inner.inputs, inner.outputs)

    # step outputs first: one may be a carry the step received
    for new, name, slot in zip(inner.outputs[op.n_carry:], stacked, slots):
        value = body.ref(new)
        body.emit(f"{name} = sg_stack_for({name}, {n}, {value}, {t})")
        if not new.ndim:
            body.emit(f"{name}[{slot}] = {value}")
            continue
        body.emit(body.call("sg_store", [value, name, slot], result_of(new)))
    for k, new in enumerate(inner.outputs[:op.n_carry]):
        value, cur = body.ref(new), carries[k]
        if new.ndim == 0:
            if histories[k]:
                body.emit(f"{histories[k]}[{t}] = {value}")
            body.emit(f"{cur} = {value}")
            continue
        body.emit(f"{cur} = {body.call('sg_store', [value, *carry_at[k]], result_of(new))}")

    for k, out in enumerate(node.outputs[:op.n_carry]):
        if histories[k]:
            ctx.note(out, "C", owned=True)
        else:
            ctx.alias(out, carries[k], "C")
    note_outputs(ctx, op, node, stacked, reversals)


def loop_start(ctx, op, tag: str, n_steps, seqs) -> list:
    """Emit the step count ``<tag>_n`` and its checks against the sequences; return each
    sequence's ``(expression, read backwards)`` (a reversed C array is read from its
    end; a sequence that may not be C-contiguous is copied once)."""
    n = f"{tag}_n"
    ctx.emit(f"{n} = {ctx.ref(n_steps)}")
    cmp = "!=" if op.exact_length else "<"
    ctx.check(" or ".join([f"{n} < 0"] + [f"{ctx.ref(q)}.shape[0] {cmp} {n}" for q in seqs]))
    refs = []
    for k, seq in enumerate(seqs):
        base = _reversed(seq)
        if base is not None and ctx.layout(base) == "C":  # y[::-1][t] is y[len - 1 - t]
            refs.append((ctx.ref(base), True))
        elif seq.ndim > 1 and ctx.layout(seq) != "C":  # step slices would be strided
            copy = ctx.call("sg_copy", [ctx.ref(seq), ctx.state.dummy(seq.ndim, seq.dtype)])
            ctx.emit(f"{tag}_x{k} = {copy}")
            refs.append((f"{tag}_x{k}", False))
        else:
            refs.append((ctx.ref(seq), False))
    return refs


def invariant_refs(ctx, op, tag: str, nonseqs) -> list:
    """``(expression, layout)`` of each non-sequence; a transposed matrix the step
    multiplies by is copied C-contiguous once, before the loop."""
    refs = []
    for k, outer in enumerate(nonseqs):
        slot = op.inner.inputs[op.n_seq + op.n_carry + k]
        if outer.ndim == 2 and ctx.layout(outer) != "C" and _multiplied(op.inner, slot):
            ctx.emit(f"{tag}_w{k} = {contiguous(ctx, outer)}")  # once, not once per step
            refs.append((f"{tag}_w{k}", "C"))
        else:
            refs.append((ctx.ref(outer), ctx.layout(outer)))
    return refs


def note_outputs(ctx, op, node, stacked: list, reversals: list) -> None:
    """Name the stacked step outputs in ``ctx`` (the reversed views readers asked for
    are the stacks themselves: they were filled from the end)."""
    for out, name, readers in zip(node.outputs[op.n_carry:], stacked, reversals):
        for rev in readers:  # already in the order they ask for
            ctx.alias(rev.outputs[0], name, "C", owned=len(readers) == 1)
            ctx.precomputed.add(rev.outputs[0])
        if readers:
            ctx.alias(out, f"{name}[::-1]", "A")
        else:
            ctx.note(out, "C", owned=True)


def _part_dims(op) -> list | None:
    """The stacks' trailing lengths (``lower_scan_parts.trailing_dims``) when the loop
    runs as row parts: more than one thread is allowed (``threads.set_threads``), its
    rows are independent and the trailing shape of every step output is known before the
    loop (the stacks are allocated before the parts start); else None."""
    from symgraph.backends.numba import threads
    from symgraph.backends.numba.lower_scan_parts import trailing_dims
    from symgraph.backends.numba.rows import independent_rows

    if threads.get_threads() > 1 and independent_rows(op):
        return trailing_dims(op)
    return None


def _sinks(body, op, t: str, carry_slots: list, stacked: list, slots: list) -> dict:
    """Where the kernels computing the step's results write them (``GraphEmitter.buffer``):
    a new carry into its history slot or the buffer the next step reads, a step output
    into its stack slot (from the second step on: the stack is allocated once the first
    step has given the shape), instead of into a buffer copied there afterwards."""
    inner = op.inner
    sinks: dict = {}
    for new, slot in zip(inner.outputs[:op.n_carry], carry_slots):
        if new.ndim and new not in inner.inputs:
            sinks.setdefault(new, slot)
    for new, name, slot in zip(inner.outputs[op.n_carry:], stacked, slots):
        if new.ndim and new not in inner.inputs:
            sinks.setdefault(new, f"sg_slot({name}, {slot}, {t}, {body.name_for(new)})")
    return sinks


def _multiplied(inner, var) -> bool:
    """Whether a matrix product in the step reads ``var``. A loop-invariant matrix that
    is a transposed view (the backward loop's ``W.T``) is copied C-contiguous before the
    loop for these: BLAS multiplies by a transposed operand more slowly."""
    return any(isinstance(getattr(c, "op", None), Dot) for c, _ in inner.clients.get(var, []))


def _reversed(var):
    """``y`` when ``var`` is ``y[::-1]`` (a reversal of the leading axis), else None."""
    node = var.owner
    if (node is not None and isinstance(node.op, Subtensor) and len(node.inputs) == 1
            and node.op.idx_list == (Slice(None, None, -1),)):
        return node.inputs[0]
    return None


def _read_reversed(ctx, out) -> list:
    """The nodes reversing ``out`` when nothing else reads it (the backward loop's
    results, which the gradient returns in forward time order): the loop then stores
    its steps from the end and those nodes are views of the array it fills."""
    readers = ctx.clients.get(out, [])
    if readers and all(r != "output" and _reversed(r.outputs[0]) is out for r in readers):
        return readers
    return []
