"""``scan``: Theano's interface, built into one :class:`Scan` node."""

from __future__ import annotations

from symgraph.errors import GraphError
from symgraph.fgraph import FunctionGraph
from symgraph.graph import Constant, Variable, graph_inputs, rebuild
from symgraph.scan.op import Scan
from symgraph.scan.trace import TracedStep, run_trace_passes


def scan(fn, sequences=None, outputs_info=None, non_sequences=None, n_steps=None,
         go_backwards: bool = False, truncate_gradient: int = -1, name: str = "scan"):
    """Loop ``fn`` over the leading axis of ``sequences``, Theano style.

    ``fn(*sequence_slices, *previous_outputs, *non_sequences)`` returns the step's
    outputs (a variable or a list). ``outputs_info`` has one entry per output: an initial
    state (the output is recurrent: its previous value is passed to the next step), or
    ``None`` (a per-step output not fed back). Variables that ``fn`` uses without
    receiving them (shared weights, outer tensors) become non-sequences automatically.

    Parameters
    ----------
    sequences : Variable or list, optional
        Iterated over axis 0; entries may be ``{'input': x, 'taps': [0]}``.
    outputs_info : Variable, None or list, optional
        Initial states; dict entries ``{'initial': x, 'taps': [-1]}`` are accepted.
    non_sequences : list, optional
        Passed unchanged to every step.
    n_steps : int or symbolic int scalar, optional
        Number of steps. By default every sequence must have the same length, which is
        the number of steps; with ``n_steps`` sequences may be longer (a prefix is used).
    go_backwards : bool
        Iterate the sequences from the end; outputs are in iteration order.
    truncate_gradient : int
        ``-1`` for full backpropagation through time, else only the last
        ``truncate_gradient`` steps receive gradient.

    Returns
    -------
    (outputs, updates)
        ``outputs`` stacked over time (one variable, or a list); ``updates`` is an empty
        dict (random draws inside ``fn`` are not supported).
    """
    from symgraph.ops.basic import as_tensor_variable

    seqs = [_sequence(s) for s in _as_list(sequences)]
    infos = _as_list(outputs_info)
    inits = [_initial(i, k) for k, i in enumerate(infos)]
    nonseqs = [as_tensor_variable(v) for v in _as_list(non_sequences)]
    if go_backwards:
        seqs = [s[::-1] for s in seqs]
    steps = _n_steps(seqs, n_steps)
    outputs = build_scan(fn, seqs, inits, nonseqs, steps, exact_length=n_steps is None,
                         truncate_gradient=truncate_gradient, name=name)
    return (outputs[0] if len(outputs) == 1 else outputs), {}


def build_scan(fn, seqs, inits, nonseqs, steps, exact_length: bool, truncate_gradient: int,
               name: str, keep_history: bool = True) -> list[Variable]:
    """Trace ``fn`` on placeholders and build the Scan node.

    ``inits`` has one entry per step output (``None`` for a per-step output). Returns the
    node's outputs in the order of ``inits``: carry histories (or final carries when
    ``keep_history`` is false) and stacked per-step outputs.
    """
    seq_slices = [_placeholder(s, s.type.with_shape(s.type.shape[1:]), "[t]") for s in seqs]
    carry_inputs = [_placeholder(i, i.type, "[t-1]") for i in inits if i is not None]
    nonseq_inputs = [v if isinstance(v, Constant) else _placeholder(v, v.type, "")
                     for v in nonseqs]
    outs = _step_outputs(fn(*seq_slices, *carry_inputs, *nonseq_inputs), inits)

    recurrent = [k for k, i in enumerate(inits) if i is not None]
    per_step = [k for k, i in enumerate(inits) if i is None]
    inner_outputs = ([_conform_carry(outs[k], inits[k], k) for k in recurrent]
                     + [outs[k] for k in per_step])

    explicit = seq_slices + carry_inputs + [v for v in nonseq_inputs
                                            if not isinstance(v, Constant)]
    explicit_set = set(explicit)
    free = [v for v in graph_inputs(inner_outputs, blockers=explicit)
            if v not in explicit_set and not isinstance(v, Constant)]
    free_inputs = [_placeholder(v, v.type, "") for v in free]
    inner_outputs = rebuild(inner_outputs, dict(zip(free, free_inputs)))[0]
    outer_nonseqs = [v for v in nonseqs if not isinstance(v, Constant)] + free
    step = run_trace_passes(TracedStep(FunctionGraph(explicit + free_inputs, inner_outputs),
                                       seqs, len(recurrent), outer_nonseqs))
    op = Scan(step.inner, len(step.seqs), len(recurrent), len(step.nonseqs),
              keep_history=(keep_history,) * len(recurrent),
              truncate_gradient=truncate_gradient, exact_length=exact_length, name=name)
    node_outputs = op.make_node(steps, *step.seqs, *[inits[k] for k in recurrent],
                                *step.nonseqs).outputs
    ordered: list = [None] * len(inits)
    for pos, k in enumerate(recurrent + per_step):
        ordered[k] = node_outputs[pos]
    return ordered


def _placeholder(v: Variable, type_, suffix: str) -> Variable:
    p = Variable(type_, name=f"{v.name}{suffix}" if v.name else None)
    p.creation = v.creation
    return p


def _as_list(x) -> list:
    if x is None:
        return []
    return list(x) if isinstance(x, list | tuple) else [x]


def _sequence(s) -> Variable:
    from symgraph.ops.basic import as_tensor_variable

    if isinstance(s, dict):
        taps = s.get("taps", [0])
        if list(taps) != [0]:
            raise NotImplementedError(f"scan: sequence taps {taps} are not supported (only "
                                      "[0]); slice the sequence yourself")
        s = s["input"]
    s = as_tensor_variable(s)
    if s.ndim == 0:
        raise GraphError(f"scan: a sequence must have at least one axis, got {s.describe()}")
    return s


def _initial(info, k: int):
    from symgraph.ops.basic import as_tensor_variable

    if isinstance(info, dict):
        taps = info.get("taps", [-1])
        if list(taps) != [-1]:
            raise NotImplementedError(f"scan: outputs_info[{k}] has taps {taps}; only [-1] "
                                      "is supported (carry a tuple of states instead)")
        info = info.get("initial")
    return None if info is None else as_tensor_variable(info)


def _n_steps(seqs, n_steps) -> Variable:
    from symgraph.ops.basic import as_tensor_variable, cast

    if n_steps is not None:
        steps = cast(as_tensor_variable(n_steps), "int64")
        if steps.ndim != 0:
            raise GraphError(f"scan: n_steps must be a scalar, got {steps.describe()}")
        return steps
    if not seqs:
        raise GraphError("scan: give sequences or n_steps")
    return seqs[0].shape[0]  # the others must match (checked at run time)


def _step_outputs(result, inits) -> list[Variable]:
    from symgraph.ops.basic import as_tensor_variable

    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict):
        if result[1]:
            raise NotImplementedError("scan: updates returned by the step function are not "
                                      "supported")
        result = result[0]
    outs = [as_tensor_variable(r) for r in _as_list(result)]
    if not inits:  # no outputs_info: every output is a per-step output
        inits.extend([None] * len(outs))
    if len(outs) != len(inits):
        raise GraphError(f"scan: the step function returned {len(outs)} outputs but "
                         f"outputs_info has {len(inits)} entries")
    return outs


def _conform_carry(out: Variable, init: Variable, k: int) -> Variable:
    if out.ndim != init.ndim or out.dtype != init.dtype:
        raise GraphError(
            f"scan: output {k} of the step is {out.describe()} but its initial state is "
            f"{init.describe()}; a recurrent output must keep the initial state's dtype and "
            f"rank (cast one of them)")
    for a, (s_out, s_init) in enumerate(zip(out.type.shape, init.type.shape)):
        if None not in (s_out, s_init) and s_out != s_init:
            raise GraphError(f"scan: output {k} has length {s_out} on axis {a} but its "
                             f"initial state has {s_init} ({init.describe()})")
    return out
