"""Reverse-mode differentiation: a memoised walk over the graph in reverse topological
order.

For ``cost = f(x)`` every node ``y = op(a, b, ...)`` between ``wrt`` and ``cost`` gets its
output cotangent ``ȳ = ∂cost/∂y`` (the sum over its clients: fan-out accumulation) and
hands ``ā, b̄, ...`` to its inputs through ``op.pullback``. Gradients are ordinary graphs,
so the gradient of a gradient works wherever the pullbacks are built from differentiable
ops.
"""

from __future__ import annotations

import warnings

import numpy as np

from symgraph.errors import GradientError
from symgraph.graph import OPERATORS, Constant, Variable, as_variable, toposort
from symgraph.op import Disconnected, NotImplementedGrad

_POLICIES = ("raise", "warn", "ignore")


def grad(cost, wrt, known_grads=None, disconnected_inputs: str = "raise"):
    """Gradient of the scalar ``cost`` with respect to ``wrt``.

    Parameters
    ----------
    cost : scalar Variable or None
        ``None`` is allowed when ``known_grads`` gives the starting cotangents.
    wrt : Variable or list of Variables
    known_grads : dict, optional
        ``{variable: cotangent}`` seeds, added to the cost's contribution.
    disconnected_inputs : {'raise', 'warn', 'ignore'}
        What to do for a ``wrt`` entry that the cost does not depend on; its gradient
        is zeros in the last two cases.

    Returns
    -------
    Variable or list of Variables, matching ``wrt``.
    """
    if disconnected_inputs not in _POLICIES:
        raise ValueError(f"disconnected_inputs must be one of {_POLICIES}")
    single = isinstance(wrt, Variable)
    wrt_list = [wrt] if single else list(wrt)
    for v in wrt_list:
        if not isinstance(v, Variable):
            raise TypeError(f"grad: wrt must hold Variables, got {type(v).__name__}")
        if not v.type.is_float:
            raise GradientError(f"grad: cannot differentiate with respect to {v.describe()}: "
                                "it is not a floating-point variable")
    seeds = _seeds(cost, known_grads)
    totals = backpropagate(seeds, wrt_list)
    results = []
    for v in wrt_list:
        g = totals.get(v)
        if g is None:
            g = _disconnected_result(v, disconnected_inputs)
        results.append(g)
    return results[0] if single else results


def _seeds(cost, known_grads) -> dict:
    seeds: dict = {}
    if cost is not None:
        cost = as_variable(cost)
        if cost.ndim != 0:
            raise GradientError(
                f"grad: cost must be a scalar, got {cost.describe()}; "
                "reduce it (e.g. .sum() or .mean()) or pass known_grads"
            )
        if not cost.type.is_float:
            raise GradientError(f"grad: cost must be floating point, got {cost.describe()}")
        seeds[cost] = Constant(np.ones((), cost.dtype))
    for var, g in (known_grads or {}).items():
        g = as_variable(g)
        if g.ndim != var.ndim:
            raise GradientError(f"known_grads: cotangent of rank {g.ndim} given for "
                                f"{var.describe()}")
        seeds[var] = OPERATORS.add(seeds[var], g) if var in seeds else g
    if not seeds:
        raise GradientError("grad: give a cost or known_grads")
    return seeds


def _disconnected_result(v: Variable, policy: str) -> Variable:
    msg = f"grad: the cost does not depend on {v.describe()}"
    if policy == "raise":
        raise GradientError(msg + " (pass disconnected_inputs='ignore' to get zeros)")
    if policy == "warn":
        warnings.warn(msg, stacklevel=3)
    return OPERATORS.zeros_like(v)


def backpropagate(seeds: dict, wrt: list) -> dict:
    """Total cotangent of every variable on a path from ``wrt`` to the seeds.

    ``seeds`` maps variables to their starting cotangents. Returns ``{variable: total}``
    for the ``wrt`` entries (and every intermediate) that received a contribution.
    """
    nodes = toposort(list(seeds), blockers=[])
    reached = float_reach(nodes, wrt)
    contributions: dict = {v: [g] for v, g in seeds.items()}
    totals: dict = {}

    def total(var):
        if var not in totals:
            parts = contributions.pop(var, [])
            totals[var] = _accumulate(parts) if parts else None
        return totals[var]

    for node in reversed(nodes):
        if not any(inp in reached for inp in node.inputs):
            continue
        cotangents = [total(o) for o in node.outputs]
        if all(c is None for c in cotangents):
            continue
        pulled = node.op.pullback(node.inputs, node.outputs, cotangents)
        if len(pulled) != len(node.inputs):
            raise GradientError(f"{node.op}.pullback returned {len(pulled)} cotangents "
                                f"for {len(node.inputs)} inputs")
        for inp, g in zip(node.inputs, pulled):
            if inp not in reached or g is None or isinstance(g, Disconnected):
                continue
            if isinstance(g, NotImplementedGrad):
                raise g.error(inp.describe())
            contributions.setdefault(inp, []).append(_conform(g, inp, node.op))
    for v in wrt:
        total(v)
    return {v: g for v, g in totals.items() if g is not None}


def float_reach(nodes, wrt) -> set:
    """Floating-point variables that depend on any of ``wrt`` (``nodes`` in
    topological order)."""
    reached = set(wrt)
    for node in nodes:
        if any(inp in reached for inp in node.inputs):
            reached.update(o for o in node.outputs if o.type.is_float)
    return reached


def _conform(g, inp: Variable, op) -> Variable:
    g = as_variable(g)
    if g.ndim != inp.ndim:
        raise GradientError(f"{op}.pullback returned a cotangent of rank {g.ndim} for "
                            f"{inp.describe()}")
    if g.dtype != inp.dtype:
        g = OPERATORS.cast(g, inp.dtype)
    return g


def _accumulate(parts: list) -> Variable:
    """Fan-out accumulation: the sum of all contributions."""
    acc = parts[0]
    for part in parts[1:]:
        acc = OPERATORS.add(acc, part)
    return acc
