"""Kinks: where a graph is not differentiable, and how the checks keep away from them.

A central difference :math:`(f(x + h v) - f(x - h v)) / 2h` is only a derivative when
:math:`f` is smooth on the segment :math:`[x - h v, x + h v]`. ``relu``, ``abs``,
``maximum``, ``clip``, comparisons feeding ``switch``, ``max`` reductions (ties) and the
piecewise-constant ops (``floor``, ``round``, casts to integers) are not, and hypothesis
is very good at drawing points exactly on their kinks (zeros, equal entries). There the
symbolic gradient follows a convention (``relu'(0) = 0``) that no finite difference
reproduces, and a naive check flakes. The strategy:

1. **Detect.** Every node of the graph whose op has a kink and whose floating-point
   inputs depend on the varied inputs (:data:`KINKS` lists them). For each, a distance
   to the kink :math:`d(x) \\ge 0` is computed elementwise from the node's input values:
   :math:`|a|` for ``relu(a)``, ``abs(a)``, ``sgn(a)``; :math:`|a - b|` for
   ``maximum(a, b)``, ``minimum`` and comparisons; :math:`\\min(|a - lo|, |a - hi|)` for
   ``clip``; the distance to the nearest integer (half-integer) for ``floor``/``ceil``/
   integer casts (``round``); the gap between the two largest (smallest) entries for
   ``max`` (``min``, ``argmax``, ``argmin``) reductions.
2. **Measure.** For the point :math:`x`, the direction :math:`v` and the step :math:`h`
   the distances are evaluated at :math:`x` and :math:`x \\pm h v`; the stencil moves an
   element by :math:`\\delta = \\max_\\pm |d(x \\pm h v) - d(x)|`. An element is safe
   when :math:`d(x) \\ge 10\\,\\delta` (about :math:`10 h |\\partial a / \\partial v|`:
   ten times as far from its kink as the stencil reaches) or when the stencil does not
   move it (:math:`\\delta = 0`: a tie built into the graph, e.g. ``maximum(x, x)``).
3. **Nudge.** While an element is unsafe, seeded noise
   :math:`\\sigma (1 + |x|) z`, :math:`z \\sim N(0, 1)`, is added to the varied inputs,
   with :math:`\\sigma = 10^{-3} \\cdot 2^k` (at most :math:`10^{-2}`) on try :math:`k`,
   at most :data:`MAX_NUDGES` times. The check then runs at the nudged point, which is
   as good a test point as the drawn one.
4. **Fallback** for kinks the probe cannot see (inside a scan step): when the
   dot-product test disagrees, :func:`smooth_along` tests whether :math:`f` is smooth
   along the stencil (central differences at :math:`h` and :math:`h/4` agree, and the
   gap between forward and backward differences shrinks with the step as it must for a
   smooth function). If it is not, the point is nudged and the test repeated; a real
   pullback bug disagrees at smooth points too, so it still fails.
"""

from __future__ import annotations

import numpy as np

from symgraph.autodiff import float_reach
from symgraph.compile import function
from symgraph.graph import Constant, toposort
from symgraph.ops import scalar as S
from symgraph.ops.elemwise import Elemwise
from symgraph.ops.reduce import Argmax, Reduce
from symgraph.scan.op import Scan

__all__ = ["KINKS", "MAX_NUDGES", "KinkProbe", "nudge_point", "smooth_along"]

#: tries of step 3 of the strategy
MAX_NUDGES = 12
#: how many times farther from its kink than the stencil reaches an element must be
SAFETY = 10.0


def _to_int(x):
    return np.abs(x - np.rint(x))


def _to_half(x):
    return np.abs(np.abs(x - np.floor(x)) - 0.5)


def _quotient(x, y):
    with np.errstate(all="ignore"):
        q = x / y
    return _to_int(q) * np.abs(y)


_ELEMWISE_KINKS = {
    S.Abs: lambda x: np.abs(x), S.Relu: lambda x: np.abs(x), S.Sgn: lambda x: np.abs(x),
    S.Maximum: lambda x, y: np.abs(x - y), S.Minimum: lambda x, y: np.abs(x - y),
    S.LT: lambda x, y: np.abs(x - y), S.GT: lambda x, y: np.abs(x - y),
    S.LE: lambda x, y: np.abs(x - y), S.GE: lambda x, y: np.abs(x - y),
    S.EQ: lambda x, y: np.abs(x - y), S.NEQ: lambda x, y: np.abs(x - y),
    S.Clip: lambda x, lo, hi: np.minimum(np.abs(x - lo), np.abs(x - hi)),
    S.Floor: _to_int, S.Ceil: _to_int, S.Round: _to_half,
    S.IntDiv: _quotient, S.Mod: _quotient,
}

#: op kinds with a kink: the elementwise scalar ops above, casts of floats to integers
#: or bool, and max/min/argmax/argmin reductions
KINKS = tuple(sorted(cls.__name__ for cls in _ELEMWISE_KINKS)) + (
    "Cast(float -> int/bool)", "Reduce{max/min}", "Argmax")


def _gap(x: np.ndarray, axes, kind: str) -> np.ndarray:
    """Gap between the two extreme entries over ``axes`` (``inf`` for a single entry)."""
    axes = tuple(range(x.ndim)) if axes is None else tuple(axes)
    kept = [a for a in range(x.ndim) if a not in axes]
    flat = np.transpose(x, kept + list(axes)).reshape([x.shape[a] for a in kept] + [-1])
    if flat.shape[-1] < 2:
        return np.full(flat.shape[:-1], np.inf)
    s = np.sort(flat, axis=-1)
    return s[..., -1] - s[..., -2] if kind == "max" else s[..., 1] - s[..., 0]


def kink_distance(node, values) -> np.ndarray | None:
    """Elementwise distance of ``node`` to its kink at its input ``values`` (None: the
    op has no kink)."""
    op = node.op
    if isinstance(op, Elemwise):
        scalar = op.scalar_op
        if isinstance(scalar, S.Cast):
            if node.inputs[0].type.is_float and not node.outputs[0].type.is_float:
                x = values[0]
                return np.abs(x) if scalar.dtype == "bool" else _to_int(x)
            return None
        rule = _ELEMWISE_KINKS.get(type(scalar))
        if rule is None:
            return None
        with np.errstate(all="ignore"):
            return np.asarray(rule(*[np.asarray(v, dtype="float64") for v in values]))
    if isinstance(op, Reduce) and op.kind in ("max", "min"):
        return _gap(np.asarray(values[0], dtype="float64"), op.axes, op.kind)
    if isinstance(op, Argmax):
        axes = None if op.axis is None else (op.axis,)
        return _gap(np.asarray(values[0], dtype="float64"), axes, op.kind)
    return None


def _has_kink(node) -> bool:
    op = node.op
    if isinstance(op, Elemwise):
        if isinstance(op.scalar_op, S.Cast):
            return node.inputs[0].type.is_float and not node.outputs[0].type.is_float
        return type(op.scalar_op) in _ELEMWISE_KINKS
    return (isinstance(op, Reduce) and op.kind in ("max", "min")) or isinstance(op, Argmax)


class KinkProbe:
    """Steps 1-3 of the strategy for one graph.

    Parameters
    ----------
    outputs : list of Variable
    wrt, fixed : list of Variable
        The varied root variables and the others (in the order values are given).
    mode : str
        Backend of the probe function.
    """

    def __init__(self, outputs, wrt, fixed, mode) -> None:
        nodes = toposort(outputs)
        reached = float_reach(nodes, wrt)
        self.nodes = [n for n in nodes if _has_kink(n)
                      and any(i in reached for i in n.inputs if i.type.is_float)]
        #: scans whose step has kinks: only the fallback (step 4) covers those
        self.hidden = [n for n in nodes if isinstance(n.op, Scan)
                       and any(_has_kink(m) for m in n.op.inner.toposort())]
        self._vars = []
        for node in self.nodes:
            for v in node.inputs:
                if not isinstance(v, Constant) and v not in self._vars:
                    self._vars.append(v)
        self._fn = (function(list(wrt) + list(fixed), self._vars, mode=mode,
                             on_unused_input="ignore", no_default_updates=True)
                    if self._vars else None)

    def distances(self, point, fixed_values) -> list[np.ndarray]:
        """One distance array per kink node at ``point``."""
        if self._fn is None:
            return []
        env = dict(zip(self._vars, self._fn(*point, *fixed_values)))
        return [kink_distance(n, [v.value if isinstance(v, Constant) else env[v]
                                  for v in n.inputs]) for n in self.nodes]

    def unsafe(self, point, fixed_values, v, h) -> list[tuple]:
        """``(node, number of unsafe elements, smallest distance)`` for every kink node the
        stencil ``point ± h v`` comes too close to."""
        if self._fn is None:
            return []
        d0 = self.distances(point, fixed_values)
        dp = self.distances([p + h * d for p, d in zip(point, v)], fixed_values)
        dm = self.distances([p - h * d for p, d in zip(point, v)], fixed_values)
        bad = []
        for node, a, b, c in zip(self.nodes, d0, dp, dm):
            with np.errstate(all="ignore"):
                moved = np.maximum(np.abs(b - a), np.abs(c - a))
                mask = (moved > 0) & ~(a >= SAFETY * moved)
            if np.any(mask):
                bad.append((node, int(mask.sum()), float(np.min(a[mask]))))
        return bad

    def make_safe(self, point, fixed_values, v, h, rng, notes: list) -> list[np.ndarray]:
        """``point``, nudged (step 3) until the stencil keeps clear of every kink."""
        first_bad: list = []
        for k in range(MAX_NUDGES + 1):
            bad = self.unsafe(point, fixed_values, v, h)
            if not bad:
                if k:
                    notes.append(f"nudged the point {k} time(s) away from kinks of "
                                 f"{describe_nodes(first_bad)}")
                return point
            if k == 0:
                first_bad = [n for n, _, _ in bad]
            if k < MAX_NUDGES:
                point = nudge_point(point, rng, k)
        notes.append(f"the stencil still comes close to kinks of {describe_nodes(first_bad)} "
                     f"after {MAX_NUDGES} nudges")
        return point


def describe_nodes(nodes) -> str:
    names = [f"{n.op} (made at {n.outputs[0].creation})" for n in nodes[:3]]
    more = f" and {len(nodes) - 3} more" if len(nodes) > 3 else ""
    return ", ".join(names) + more


def nudge_point(point, rng, k: int) -> list[np.ndarray]:
    """Step 3: ``x + sigma (1 + |x|) z`` with ``sigma = min(1e-2, 1e-3 * 2**k)``."""
    sigma = min(1e-2, 1e-3 * 2.0 ** k)
    return [(p + sigma * (1 + np.abs(p)) * rng.standard_normal(p.shape)).astype(p.dtype)
            for p in point]


def smooth_along(f, point, v, h, tol: float, noise: float) -> bool:
    """Step 4: whether the scalar function ``f(point)`` looks smooth on ``point ± h v``.

    With :math:`D_s = (f(x + s v) - f(x - s v)) / 2s` and
    :math:`G_s = |f(x + s v) + f(x - s v) - 2 f(x)| / s` (forward minus backward
    difference, :math:`\\approx s |f''|` for smooth :math:`f`, the slope jump at a kink):
    smooth when :math:`|D_h - D_{h/4}| \\le` ``tol`` and
    :math:`G_{h/4} \\le G_h / 2 +` ``noise``.
    """
    def at(s):
        return float(f([p + s * d for p, d in zip(point, v)]))

    f0 = float(f(point))
    fp, fm, fp4, fm4 = at(h), at(-h), at(h / 4), at(-h / 4)
    d1, d4 = (fp - fm) / (2 * h), (fp4 - fm4) / (h / 2)
    g1, g4 = abs(fp + fm - 2 * f0) / h, abs(fp4 + fm4 - 2 * f0) / (h / 4)
    return bool(abs(d1 - d4) <= tol + 4 * noise and g4 <= g1 / 2 + 4 * noise)
