"""Checks for users' own models: gradients, the mask contract, and scan.

- :func:`check_grads`: the dot-product gradient test in float64, away from kinks, with
  a node-by-node report on failure;
- :func:`check_mask_invariance`: padding and batch order change nothing, and padded
  positions get exactly zero, finite gradients;
- :func:`check_scan_vs_unrolled`: ``sg.scan`` of a step equals the same step unrolled
  in Python, in values and gradients.

Each raises an :class:`AssertionError` subclass whose message names the op or the
contract that failed, so a plain ``pytest`` test reports it well.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from symgraph.autodiff import grad
from symgraph.compile import function
from symgraph.config import config
from symgraph.errors import SymgraphError
from symgraph.gradient import GradientCheckError
from symgraph.graph import Constant, SharedVariable, Variable, graph_inputs
from symgraph.testing._float64 import float64_values, to_float64
from symgraph.testing._gradcheck import GradProblem, dot_product_test
from symgraph.testing._masking import (
    close,
    describe_change,
    from_ids,
    max_diff,
    padding_gradients,
    real_positions_diff,
    variants,
)
from symgraph.types import TensorType

__all__ = ["GradientCheckError", "MaskContractError", "ScanMismatchError", "check_grads",
           "check_mask_invariance", "check_scan_vs_unrolled", "default_eps",
           "default_rtol"]


class MaskContractError(SymgraphError, AssertionError):
    """A sequence model breaks the mask contract (padding changed something)."""


class ScanMismatchError(SymgraphError, AssertionError):
    """``sg.scan`` of a step and the same step unrolled in Python disagree."""


def default_eps(dtype) -> float:
    """Finite-difference step for ``dtype``: :math:`\\epsilon_{mach}^{1/3}`, which balances
    the truncation error :math:`O(h^2)` of central differences against the rounding
    error :math:`O(\\epsilon_{mach} / h)` (about 6e-6 in float64, 5e-3 in float32)."""
    return float(np.finfo(np.dtype(dtype)).eps) ** (1 / 3)


def default_rtol(dtype) -> float:
    """Relative tolerance of the dot-product test for ``dtype`` (1e-5 in float64)."""
    return {"float64": 1e-5, "float32": 1e-2, "float16": 5e-2}[str(np.dtype(dtype))]


# ---- check_grads ---------------------------------------------------------------------------

def check_grads(f_or_cost, wrt=None, at=None, *, n_tests: int = 3, seed: int = 0,
                eps: float | None = None, rtol: float | None = None,
                atol: float | None = None, mode="numpy", float64: bool = True,
                nudge: bool = True) -> None:
    """Check symbolic gradients against central differences; raise on mismatch.

    Two forms:

    - ``check_grads(fn, at=[x0, y0])`` (or ``check_grads(fn, [x0, y0])``, as
      ``verify_grad``): ``fn`` builds a symbolic output from one symbolic variable per
      value (of its dtype, with the size-1 axes of the value broadcastable). All
      floating-point arguments are varied, unless ``wrt`` lists what to vary: argument
      positions and/or shared variables ``fn`` uses (model parameters); integer
      arguments (token ids) are held fixed.
    - ``check_grads(cost, wrt=[x, W], at={x: x0, ids: ids0})``: ``cost`` is a symbolic
      output, ``wrt`` root or shared variables, ``at`` the values of the other roots
      (shared variables default to their current value).

    The output may have any shape; with seeded random :math:`u` and :math:`v` the test is
    :math:`\\langle \\mathrm{pullback}(u), v\\rangle \\approx
    \\langle u, (f(x + h v) - f(x - h v)) / 2h\\rangle`. The graph is rebuilt in float64
    first (whatever ``config.floatX``; shared variables become float64 copies; the
    model is left untouched), ``h`` is :func:`default_eps` of the dtype checked, and
    with ``nudge`` the point is moved off kinks.

    Kinks (``relu``, ``abs``, ``maximum``, ``max`` ties, ``clip`` bounds, comparisons
    feeding ``switch``, ``floor``/``round``/integer casts) are found in the graph; each
    one's distance :math:`d` to its kink is measured at :math:`x` and :math:`x \\pm h v`,
    and while some :math:`d(x)` is less than ten times the distance the stencil moves it
    (about :math:`10 h |\\partial a / \\partial v|`), seeded noise of relative size
    :math:`10^{-3}` to :math:`10^{-2}` is added to the varied inputs. Kinks inside scan
    steps are caught afterwards: a mismatch where the cost is not smooth along the
    stencil (central differences at :math:`h` and :math:`h/4` disagree) nudges and
    repeats the test, while a wrong pullback disagrees at smooth points too and fails.
    Details in :mod:`symgraph.testing._kinks`.

    Parameters
    ----------
    f_or_cost : callable or Variable
    wrt : list, optional
        Form 1: argument positions (ints) and/or shared variables; form 2: variables.
    at : list or tuple (form 1) or dict (form 2)
    n_tests : int
        Random projections tried.
    seed : int
        Seed of the projections, directions and nudges (the check is deterministic).
    eps, rtol, atol : float, optional
        Step and tolerances (defaults: :func:`default_eps`, :func:`default_rtol`,
        ``rtol * 1e-3``).
    mode : str
        Backend (default the numpy reference).
    float64 : bool
        Check in float64 (default) or in the graph's own dtypes.
    nudge : bool
        Move the point away from kinks.

    Raises
    ------
    GradientCheckError
        (an ``AssertionError``) with the two derivatives, a per-element report and the
        ops whose pullback disagrees when checked node by node, with where they were made.
    """
    if isinstance(f_or_cost, Variable):
        out, wrt_vars, labels, roots, values = _cost_form(f_or_cost, wrt, at)
    elif callable(f_or_cost):
        out, wrt_vars, labels, roots, values = _function_form(f_or_cost, wrt, at)
    else:
        raise TypeError("check_grads: the first argument must be a function building a "
                        f"symbolic output or a symbolic Variable, got {type(f_or_cost)}")
    g = to_float64([out, *roots], enabled=float64)
    new = {r: g[r] for r in roots}
    vals = {new[r]: v for r, v in zip(roots, float64_values(values, float64))}
    wrt_new = [new[w] for w in wrt_vars]
    # shared variables still shared (integer ones, random states) stay implicit
    fixed = [new[r] for r in roots
             if r not in set(wrt_vars) and not isinstance(new[r], SharedVariable)]
    point = [np.array(vals[w]) for w in wrt_new]
    for w, label, p in zip(wrt_new, labels, point):
        if not w.type.is_float:
            raise TypeError(f"check_grads: cannot vary {label} of dtype {p.dtype} (only "
                            "floating-point inputs have a gradient)")
    if not point:
        raise TypeError("check_grads: nothing to vary (no floating-point input)")
    work = str(np.result_type(*point))
    eps = eps or default_eps(work)
    rtol = rtol or default_rtol(work)
    atol = atol if atol is not None else rtol * 1e-3
    dot_product_test(GradProblem(g.outputs[0], wrt_new, labels, fixed,
                                 [vals[f] for f in fixed]),
                     point, who="check_grads", n_tests=n_tests,
                     rng=np.random.default_rng(seed), eps=eps, rtol=rtol, atol=atol,
                     mode=mode, nudge=nudge)


def _label(var: Variable, fallback: str) -> str:
    return repr(var.name) if var.name else fallback


def _function_form(fn, wrt, at):
    if at is None:
        at, wrt = wrt, None
    if at is None or isinstance(at, dict | np.ndarray):
        raise TypeError("check_grads(fn, ...): give the point as a list of values, one per "
                        "argument of fn (at=[x0, y0])")
    values = [np.asarray(a) for a in at]
    args = [Variable(TensorType(v.dtype, tuple(1 if s == 1 else None for s in v.shape)),
                     name=f"at[{i}]") for i, v in enumerate(values)]
    out = _as_output(fn(*args), "fn")
    roots = [r for r in graph_inputs([out]) if not isinstance(r, Constant)]
    extra_roots = [r for r in roots if r not in set(args)]
    for r in extra_roots:
        if not isinstance(r, SharedVariable):
            raise TypeError(f"check_grads: fn's output depends on {r.describe()}, which is "
                            "not one of its arguments (pass it as an argument)")
    if wrt is None:
        chosen = [a for a, v in zip(args, values) if v.dtype.kind == "f"]
    else:
        chosen = []
        for w in wrt if isinstance(wrt, list | tuple) else [wrt]:
            if isinstance(w, int | np.integer):
                chosen.append(args[int(w)])
            elif isinstance(w, SharedVariable):
                chosen.append(w)
                if w not in extra_roots:
                    extra_roots.append(w)
            else:
                raise TypeError("check_grads(fn, wrt=...): wrt lists argument positions or "
                                f"shared variables, got {w!r}")
    all_roots = args + extra_roots
    all_values = values + [r.get_value() for r in extra_roots]
    labels = [_label(w, f"shared variable #{i}") for i, w in enumerate(chosen)]
    return out, chosen, labels, all_roots, all_values


def _cost_form(cost, wrt, at):
    wrt = [wrt] if isinstance(wrt, Variable) else list(wrt or [])
    if not wrt:
        raise TypeError("check_grads(cost, wrt, at): wrt must list the variables to vary")
    at = dict(at or {})
    for w in wrt:
        if not isinstance(w, Variable) or w.owner is not None or isinstance(w, Constant):
            raise TypeError(f"check_grads: wrt must hold root or shared variables, got "
                            f"{w.describe() if isinstance(w, Variable) else repr(w)}")
    roots = [r for r in graph_inputs([cost]) if not isinstance(r, Constant)]
    roots += [w for w in wrt if w not in set(roots)]
    values = []
    for r in roots:
        if r in at:
            values.append(np.asarray(at[r]))
        elif isinstance(r, SharedVariable):
            values.append(r.get_value())
        else:
            raise TypeError(f"check_grads: no value for {r.describe()}; give it in at={{...}}")
    labels = [_label(w, f"wrt[{i}]") for i, w in enumerate(wrt)]
    return _as_output(cost, "cost"), wrt, labels, roots, values


def _as_output(result, what: str) -> Variable:
    if isinstance(result, list | tuple):
        parts = [r for r in result if isinstance(r, Variable)]
        if len(parts) != len(result) or not parts:
            raise TypeError(f"check_grads: {what} must give symbolic variables")
        result = parts[0] if len(parts) == 1 else _concat(parts)
    if not isinstance(result, Variable):
        raise TypeError(f"check_grads: {what} must give a symbolic Variable, got "
                        f"{type(result).__name__}")
    return result


def _concat(parts) -> Variable:
    """Several outputs as one vector (projected together)."""
    from symgraph.ops.basic import cast
    from symgraph.ops.shape import concatenate
    from symgraph.types import upcast

    dtype = upcast(*[p.dtype for p in parts])
    return concatenate([cast(p, dtype).flatten() for p in parts])


# ---- check_mask_invariance -------------------------------------------------------------------

_CONTRACT = ("mask contract violated: padded steps must leave the per-sequence outputs, "
             "the cost and the gradients unchanged, whatever the padding holds, and get "
             "exactly zero, finite gradients; here")


def check_mask_invariance(fn: Callable, batch, mask, *, params=None, n_pad: int = 2,
                          seed: int = 0, mode="numpy", float64: bool = True,
                          rtol: float | None = None, atol: float | None = None) -> None:
    """Check the mask contract of a sequence model on one batch.

    ``fn(x, mask)`` receives symbolic time-major inputs ``x`` (integer ids ``(T, B)``, or
    features ``(T, B, ...)``) and a float ``(T, B)`` mask, and returns per-sequence
    outputs (leading axis ``B``: per-sequence losses, scores, final states) and/or a
    scalar cost, as one variable or a tuple. The check evaluates, in float64 (like
    :func:`check_grads`), the outputs and the gradients of

    .. math:: J = \\sum_k \\langle w_k, \\mathrm{out}_k \\rangle + \\sum_j \\mathrm{cost}_j

    (seeded random :math:`w_k`) with respect to the parameters (``params``, by default
    every floating-point shared variable the outputs use) and to the inputs (``x``
    itself, or for ids every float tensor computed directly from them, e.g. the
    embedding lookup), on the batch and on three variants:

    1. other content (ids or features drawn from the batch) at the padded positions;
    2. ``n_pad`` padded steps appended;
    3. the sequences (columns) in another order.

    Per-sequence outputs (permuted along), costs and parameter gradients must not
    change; input gradients must be finite everywhere and exactly zero at padded
    positions (and unchanged at real positions).

    Parameters
    ----------
    fn : callable
    batch : array, (T, B) integers or (T, B, ...) floats
    mask : array, (T, B)
        1.0 on real steps, 0.0 on padding.
    params : list of SharedVariable, optional
    n_pad : int
    seed : int
    mode : str
    float64 : bool
    rtol, atol : float, optional
        Tolerances of the comparisons (default 1e-7 in float64, 1e-4 otherwise).

    Raises
    ------
    MaskContractError
        (an ``AssertionError``) starting ``mask contract violated``, one line per
        violation.
    """
    batch, mask = np.asarray(batch), np.asarray(mask)
    if batch.ndim < 2 or mask.shape != batch.shape[:2]:
        raise ValueError(f"check_mask_invariance: batch {batch.shape} and mask {mask.shape} "
                         "must be time-major, (T, B, ...) and (T, B)")
    if not np.all((mask == 0) | (mask == 1)):
        raise ValueError("check_mask_invariance: the mask must hold only 0.0 and 1.0")
    x_var = Variable(TensorType(batch.dtype, (None,) * batch.ndim),
                     name="ids" if batch.dtype.kind in "iu" else "x")
    m_dtype = mask.dtype if mask.dtype.kind == "f" else config.floatX
    m_var = Variable(TensorType(m_dtype, (None, None)), name="mask")
    outs = _outputs_of(fn(x_var, m_var))
    roots = [r for r in graph_inputs(outs) if not isinstance(r, Constant)]
    for r in roots:
        if r not in (x_var, m_var) and not isinstance(r, SharedVariable):
            raise TypeError(f"check_mask_invariance: fn's outputs depend on {r.describe()}, "
                            "which is neither the inputs nor the mask (make it shared)")
    shared = [r for r in roots if isinstance(r, SharedVariable) and r.type.is_float]
    params = shared if params is None else list(params)
    g = to_float64(outs + [x_var, m_var] + params, enabled=float64)
    outs64 = g.outputs[: len(outs)]
    p64 = [g[p] for p in params]
    fixed = [g[s] for s in shared if s not in set(params)]
    positional = [g[x_var]] if batch.dtype.kind == "f" else from_ids(outs64, g[x_var])
    per_seq = [o for o in outs64 if o.ndim >= 1]
    weights = [Variable(TensorType(o.dtype, (None,) * o.ndim), name=f"w{k}")
               for k, o in enumerate(per_seq)]
    objective = _total([(o * w).sum() for o, w in zip(per_seq, weights)]
                       + [o for o in outs64 if o.ndim == 0])
    grads = grad(objective, p64 + positional, disconnected_inputs="ignore")
    ins = [g[x_var], g[m_var], *p64, *fixed]
    in_values = [g.shared[v] for v in p64 + fixed]
    f_out = function(ins, outs64, mode=mode, on_unused_input="ignore",
                     no_default_updates=True)
    f = function(ins + weights, outs64 + grads, mode=mode, on_unused_input="ignore",
                     no_default_updates=True)
    rng = np.random.default_rng(seed)
    x_val = float64_values([batch], float64 and batch.dtype.kind == "f")[0]
    m_val = mask.astype(g[m_var].dtype)
    shapes = [np.shape(v) for v in f_out(x_val, m_val, *in_values)]
    B = mask.shape[1]
    for o, s in zip(outs, shapes):
        if o.ndim >= 1 and (len(s) < 1 or s[0] != B):
            raise ValueError(f"check_mask_invariance: per-sequence output {o.describe()} has "
                             f"shape {s}; its leading axis must be the batch ({B})")
    w_vals = [rng.standard_normal(s) for s, o in zip(shapes, outs64) if o.ndim >= 1]
    n_out, n_par = len(outs64), len(p64)

    def run(x, m, w):
        res = f(x, m, *in_values, *w)
        return (res[:n_out], res[n_out:n_out + n_par], res[n_out + n_par:])

    rtol = rtol or (1e-7 if float64 else 1e-4)
    atol = atol if atol is not None else rtol
    base = run(x_val, m_val, w_vals)
    grad_names = [_label(p, f"parameter #{i}") for i, p in enumerate(params)]
    pos_names = [f"the inputs (through {v.owner.op} made at {v.creation})" if v.owner
                 else "the inputs" for v in positional]
    lines: list[str] = []
    reported: set = set()
    lines += padding_gradients(base[2], m_val, pos_names, "", reported)
    for what, x, m, perm in variants(x_val, m_val, n_pad, rng):
        w = [wv[perm] for wv in w_vals] if perm is not None else w_vals
        got = run(x, m, w)
        lines += padding_gradients(got[2], m, pos_names, f" with {what}", reported)
        changed = []
        for k, (o, a, b) in enumerate(zip(outs, base[0], got[0])):
            if o.ndim and perm is not None:
                a = np.asarray(a)[perm]
            if not close(a, b, rtol, atol):
                changed.append(describe_change(k, o, a, b))
        worst, moved = 0.0, []
        for name, a, b in zip(grad_names, base[1], got[1]):
            if not close(a, b, rtol, atol):
                moved.append(name)
                worst = max(worst, max_diff(a, b))
        for a, b in zip(base[2], got[2]):
            diff = real_positions_diff(a, b, m_val, m, perm, rtol, atol)
            if diff is not None:
                moved.append("the inputs")
                worst = max(worst, diff)
        if moved:
            changed.append(f"the gradients w.r.t. {', '.join(dict.fromkeys(moved))} changed "
                           f"(by up to {worst:.3g})")
        if changed:
            lines.append(f"with {what}: " + "; ".join(changed))
    if lines:
        lengths = [int(v) for v in mask.sum(axis=0)]
        raise MaskContractError("\n".join([_CONTRACT] + [f"  - {v}" for v in lines]
                                          + [f"(batch: T={mask.shape[0]}, B={B}, lengths "
                                             f"{lengths})"]))


def _outputs_of(result) -> list[Variable]:
    parts = list(result) if isinstance(result, list | tuple) else [result]
    if not parts or not all(isinstance(p, Variable) and p.type.is_float for p in parts):
        raise TypeError("check_mask_invariance: fn must return floating-point per-sequence "
                        "outputs (leading axis B) and/or a scalar cost (a Variable or a "
                        "tuple of them)")
    return parts


def _total(terms) -> Variable:
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


# ---- check_scan_vs_unrolled -------------------------------------------------------------------

def check_scan_vs_unrolled(step: Callable, sequences: Sequence = (),
                           outputs_info: Sequence = (), non_sequences: Sequence = (), *,
                           n_steps: int | None = None, go_backwards: bool = False,
                           seed: int = 0, mode="numpy", float64: bool = True,
                           rtol: float | None = None, atol: float | None = None) -> None:
    """``sg.scan(step, ...)`` equals ``step`` unrolled in Python, values and gradients.

    The values are numpy arrays (``outputs_info`` entries may be ``None`` for per-step
    outputs, as in ``sg.scan``). Both graphs are rebuilt in float64 (unless ``float64``
    is false); the gradients of :math:`\\sum_k \\langle w_k, \\mathrm{out}_k\\rangle`
    (seeded random :math:`w_k`) with respect to every floating-point sequence, initial
    state, non-sequence and shared variable must agree.

    Parameters
    ----------
    step : callable
        ``step(*sequence_slices, *previous_outputs, *non_sequences)``, as for ``sg.scan``.
    sequences, outputs_info, non_sequences : sequences of arrays
        The values; each becomes a symbolic input of its dtype.
    n_steps : int, optional
        Default: the length of the first sequence.
    go_backwards : bool
    seed : int
        Seed of the projections :math:`w_k`.
    mode : str
    float64 : bool
    rtol, atol : float, optional
        Tolerances (default 1e-9 in float64, 1e-4 otherwise).

    Raises
    ------
    ScanMismatchError
        (an ``AssertionError``) naming the output or input and the first step that differ.
    """
    import symgraph as sg
    from symgraph.ops.shape import stack

    def roots(values, what):
        return [None if v is None else Variable(
            TensorType(np.asarray(v).dtype, (None,) * np.ndim(v)), name=f"{what}[{k}]")
            for k, v in enumerate(values)]

    seq_vals, info_vals, ns_vals = list(sequences), list(outputs_info), list(non_sequences)
    seqs, infos, nonseqs = (roots(seq_vals, "sequences"), roots(info_vals, "outputs_info"),
                            roots(ns_vals, "non_sequences"))
    scanned, _ = sg.scan(step, sequences=seqs, outputs_info=list(infos),
                         non_sequences=nonseqs, n_steps=n_steps, go_backwards=go_backwards)
    scanned = scanned if isinstance(scanned, list) else [scanned]
    n = int(n_steps) if n_steps is not None else len(seq_vals[0])
    used = [s[::-1] if go_backwards else s for s in seqs]
    recurrent = [k for k, i in enumerate(infos) if i is not None]
    prev, history = [infos[k] for k in recurrent], []
    for t in range(n):
        res = step(*[s[t] for s in used], *prev, *nonseqs)
        if isinstance(res, tuple) and len(res) == 2 and isinstance(res[1], dict):
            res = res[0]
        res = list(res) if isinstance(res, list | tuple) else [res]
        history.append(res)
        prev = [res[k] for k in recurrent]
    unrolled = [stack([h[k] for h in history]) for k in range(len(scanned))]
    given = [(v, x) for v, x in zip(seqs + infos + nonseqs, seq_vals + info_vals + ns_vals)
             if v is not None]
    g = to_float64(scanned + unrolled + [v for v, _ in given], enabled=float64)
    ins = [g[v] for v, _ in given] + list(g.shared)
    values = float64_values([x for _, x in given], float64) + list(g.shared.values())
    f = function(ins, g.outputs[: 2 * len(scanned)], mode=mode, on_unused_input="ignore",
                     no_default_updates=True)
    results = f(*values)
    rtol = rtol or (1e-9 if float64 else 1e-4)
    atol = atol if atol is not None else rtol
    out_s, out_u = results[: len(scanned)], results[len(scanned):]
    for k, (a, b) in enumerate(zip(out_s, out_u)):
        if not close(b, a, rtol, atol):
            raise ScanMismatchError(f"scan vs unrolled: output {k} differs "
                                    f"{_first_step(a, b, rtol, atol)}")
    rng = np.random.default_rng(seed)
    weights = [Constant(rng.standard_normal(np.shape(a)).astype(o.dtype))
               for a, o in zip(out_s, g.outputs)]
    wrt = [v for v in ins if v.type.is_float]
    labels = [_label(v, "a shared variable") for v in wrt]
    costs = [_total([(o * w).sum() for o, w in zip(outs, weights)])
             for outs in (g.outputs[: len(scanned)], g.outputs[len(scanned): 2 * len(scanned)])]
    grads = [grad(c, wrt, disconnected_inputs="ignore") for c in costs]
    f_grad = function(ins, grads[0] + grads[1], mode=mode, on_unused_input="ignore",
                     no_default_updates=True)
    gv = f_grad(*values)
    for label, a, b in zip(labels, gv[: len(wrt)], gv[len(wrt):]):
        if not close(b, a, rtol, atol):
            raise ScanMismatchError(f"scan vs unrolled: the gradient w.r.t. {label} differs: "
                                    f"max abs difference "
                                    f"{np.max(np.abs(np.asarray(a) - b)):.3g} (scan "
                                    f"{np.ravel(a)[:3]}..., unrolled {np.ravel(b)[:3]}...)")


def _first_step(a, b, rtol, atol) -> str:
    a, b = np.asarray(a, dtype="float64"), np.asarray(b, dtype="float64")
    if a.shape != b.shape:
        return f"in shape: scan {a.shape}, unrolled {b.shape}"
    for t in range(a.shape[0]):
        if not close(b[t], a[t], rtol, atol):
            return (f"first at step t={t}: max abs difference "
                    f"{np.max(np.abs(a[t] - b[t])):.3g}")
    return "(in the last bits)"
