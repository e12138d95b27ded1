"""The gradient checker behind ``check_grads`` and ``symgraph.gradient.verify_grad``.

For a symbolic output :math:`y = f(x_1, \\dots, x_n)` (any shape), a seeded random
cotangent :math:`u` (shaped like :math:`y`) and random directions :math:`v_k` (shaped
like the :math:`x_k`), the dot-product test compares

.. math::
    \\sum_k \\langle \\mathrm{pullback}_k(u), v_k \\rangle
    \\quad\\text{with}\\quad
    \\frac{c(x + h v) - c(x - h v)}{2 h}, \\qquad c(x) = \\langle u, f(x) \\rangle,

the symbolic side computed by ``grad`` and the other by central differences. They must
agree within ``atol + rtol * max(|symbolic|, |numeric|)`` plus the rounding noise of
the difference quotient, :math:`8\\,\\epsilon_{mach} \\sum |u \\odot y| / h`. Each
gradient must also have the shape of its input (a pullback that forgets to sum over a
broadcast axis returns a bigger array whose dot product can still look right).

On failure the error reports, besides the two numbers:

- a per-element report (central differences along every coordinate, small inputs only);
- the ops whose pullback disagrees on its own: every node on a path from the varied
  inputs is re-made alone on fresh variables at the values it saw, and its pullback
  checked by the same test (scan steps are checked inside, at their first and middle
  steps). An empty list means every op is right alone and the composition is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from symgraph.autodiff import float_reach, grad
from symgraph.compile import function
from symgraph.gradient import GradientCheckError, numeric_grad
from symgraph.graph import Constant, SharedVariable, Variable, toposort
from symgraph.scan.op import Scan
from symgraph.testing._kinks import KinkProbe, nudge_point, smooth_along
from symgraph.types import TensorType

__all__ = ["GradProblem", "dot_product_test", "blame_nodes"]

#: repeats of one projection after the fallback (step 4 of the kink strategy) nudged
MAX_RETRIES = 4


@dataclass
class GradProblem:
    """What to check: ``output`` as a function of the root variables ``wrt`` (varied,
    reported under ``labels``), with the roots ``fixed`` held at ``fixed_values``."""

    output: Variable
    wrt: list
    labels: list
    fixed: list = field(default_factory=list)
    fixed_values: list = field(default_factory=list)


@dataclass
class _Failure:
    kind: str  # 'error', 'shape', 'mismatch'
    text: str
    tol: float = 0.0  # the tolerance the two derivatives missed


def dot_product_test(problem: GradProblem, point, *, who: str, n_tests: int, rng,
                     eps: float, rtol: float, atol: float, mode="numpy",
                     nudge: bool = False) -> list[np.ndarray]:
    """Run ``n_tests`` dot-product tests at ``point`` (one array per ``wrt`` entry).

    With ``nudge`` the point is moved away from kinks first (see
    :mod:`symgraph.testing._kinks`). Returns the point finally used; raises
    :class:`~symgraph.gradient.GradientCheckError` on a mismatch.
    """
    out, wrt, fixed, fixed_values = (problem.output, list(problem.wrt), list(problem.fixed),
                                     list(problem.fixed_values))
    if not out.type.is_float:
        raise TypeError(f"{who}: the output must be floating point, got {out.describe()}")
    ins = wrt + fixed
    u_var = Variable(TensorType(out.dtype, (None,) * out.ndim), name="u")
    cost = (out * u_var).sum()
    try:
        grads = grad(cost, wrt, disconnected_inputs="ignore")
    except Exception as exc:
        raise GradientCheckError(f"{who}: building the symbolic gradient failed: "
                                 f"{type(exc).__name__}: {exc}") from exc
    f_out = function(ins, out, mode=mode, on_unused_input="ignore",
                     no_default_updates=True)
    f_cost = function(ins + [u_var], cost, mode=mode, on_unused_input="ignore",
                     no_default_updates=True)
    f_grad = function(ins + [u_var], grads, mode=mode, on_unused_input="ignore",
                     no_default_updates=True)
    shape = np.shape(f_out(*point, *fixed_values))
    probe = KinkProbe([out], wrt, fixed, mode) if nudge else None
    notes: list[str] = []
    finfo = np.finfo(np.result_type(out.dtype, *[p.dtype for p in point]))
    for test in range(n_tests):
        u = rng.standard_normal(shape).astype(out.dtype)
        v = [rng.standard_normal(p.shape).astype(p.dtype) for p in point]
        for attempt in range(MAX_RETRIES + 1):
            if probe is not None:
                point = probe.make_safe(point, fixed_values, v, eps, rng, notes)
            scale = float(np.sum(np.abs(u * f_out(*point, *fixed_values))))
            noise = 8 * float(finfo.eps) * scale / eps

            def c(pt, u=u):
                return float(f_cost(*pt, *fixed_values, u))

            failure = _one_test(f_grad, c, point, fixed_values, u, v, problem.labels, eps,
                                rtol, atol, noise)
            if failure is None:
                break
            if (nudge and failure.kind == "mismatch" and attempt < MAX_RETRIES
                    and not smooth_along(c, point, v, eps, failure.tol, noise)):
                notes.append(f"test {test + 1}: the cost is not smooth along the "
                             "finite-difference stencil (a kink the probe cannot see, e.g. "
                             "inside a scan step); nudged the point and repeated the test")
                point = nudge_point(point, rng, 2 * attempt + 4)
                continue
            report = _element_report(f_cost, f_grad, point, fixed_values, u, eps,
                                     problem.labels)
            culprits = blame_nodes([out], ins, list(point) + fixed_values, wrt, mode=mode,
                                   eps=eps, rtol=rtol, atol=atol, rng=rng)
            where = f" (test {test + 1} of {n_tests})" if n_tests > 1 else ""
            extra = "".join(f"\nnote: {n}" for n in notes)
            if probe is not None and probe.hidden:
                extra += ("\nnote: kinks inside scan steps are only avoided by the "
                          "smoothness fallback")
            raise GradientCheckError(f"{who}: {failure.text}{where}{extra}\n{report}\n"
                                     f"{culprits}")
    return point


def _one_test(f_grad, c, point, fixed_values, u, v, labels, eps, rtol, atol, noise):
    try:
        g = f_grad(*point, *fixed_values, u)
    except Exception as exc:
        return _Failure("error", f"evaluating the symbolic gradient failed: "
                                 f"{type(exc).__name__}: {exc}")
    for k, (gk, p) in enumerate(zip(g, point)):
        if np.shape(gk) != p.shape:
            return _Failure("shape", f"the gradient with respect to {labels[k]} has shape "
                                     f"{np.shape(gk)} but {labels[k]} has shape {p.shape} "
                                     "(a pullback that does not sum over a broadcast axis?)")
    analytic = sum(float(np.sum(np.asarray(gk, dtype="float64") * d)) for gk, d in zip(g, v))
    hi = c([p + eps * d for p, d in zip(point, v)])
    lo = c([p - eps * d for p, d in zip(point, v)])
    numeric = (hi - lo) / (2 * eps)
    err = abs(analytic - numeric)
    tol = atol + rtol * max(abs(analytic), abs(numeric)) + noise
    if err <= tol:
        return None
    return _Failure("mismatch", f"directional derivative mismatch: symbolic {analytic:.6g}, "
                                f"finite differences {numeric:.6g} (abs error {err:.3g}, "
                                f"tolerance {tol:.3g}, eps {eps:.3g}, computed in "
                                f"{np.result_type(*point)})", tol)


def _element_report(f_cost, f_grad, point, fixed_values, u, eps, labels) -> str:
    if sum(p.size for p in point) > 400:
        return "(inputs too large for a per-element report)"
    try:
        analytic = f_grad(*point, *fixed_values, u)
    except Exception:
        return "(no per-element report: the symbolic gradient cannot be evaluated)"
    numeric = numeric_grad(lambda *ps: f_cost(*ps, *fixed_values, u), point, eps)
    lines = []
    for label, a, n in zip(labels, analytic, numeric):
        a = np.asarray(a, dtype="float64")
        if a.shape != n.shape:
            lines.append(f"  {label}: symbolic gradient of shape {a.shape}, expected {n.shape}")
            continue
        if not a.size:
            continue
        diff = np.abs(a - n)
        worst = tuple(int(i) for i in np.unravel_index(
            int(np.argmax(np.where(np.isnan(diff), np.inf, diff))), diff.shape))
        lines.append(f"  {label}: max abs error {diff[worst]:.3g} at index {worst} "
                     f"(symbolic {a[worst]:.6g}, numeric {n[worst]:.6g})")
    return "per-element report:\n" + "\n".join(lines)


# ---- node by node -------------------------------------------------------------------------

def blame_nodes(outputs, roots, values, wrt, *, mode, eps, rtol, atol, rng) -> str:
    """Check the pullback of every node between ``wrt`` and ``outputs`` on its own.

    Returns the report: the ops whose pullback disagrees, by how much, and where they
    were made.
    """
    lines = _blame(outputs, roots, values, wrt, mode, eps, rtol, atol, rng, depth=0)
    if not lines:
        return "no single op disagrees on its own (check the graph's composition)"
    return "checked node by node, ops whose pullback disagrees:\n" + "\n".join(lines)


def _blame(outputs, roots, values, wrt, mode, eps, rtol, atol, rng, depth) -> list[str]:
    nodes = toposort(outputs, blockers=roots)
    reached = float_reach(nodes, wrt)
    env = dict(zip(roots, values))
    indent = "  " * (depth + 1)
    lines: list[str] = []
    for node in nodes:
        args = [_value(v, env) for v in node.inputs]
        site = node.outputs[0].creation
        try:
            results = node.op.perform(node, args)
        except Exception as exc:
            lines.append(f"{indent}(stopped: {node.op} made at {site} failed to run: {exc})")
            break
        for o, r in zip(node.outputs, results):
            env[o] = np.asarray(r)
        diff = [i for i, v in enumerate(node.inputs) if v in reached and v.type.is_float
                and not isinstance(v, Constant)]
        if not diff or not any(o.type.is_float for o in node.outputs):
            continue
        problems = _check_node(node, args, [env[o] for o in node.outputs], diff, mode, eps,
                               rtol, atol, rng)
        for text in problems:
            lines.append(f"{indent}{node.op} (made at {site}), {text}")
        if problems and isinstance(node.op, Scan) and depth < 3:
            lines += _blame_scan_step(node, args, [env[o] for o in node.outputs], mode, eps,
                                      rtol, atol, rng, depth)
    return lines


def _value(v, env):
    if isinstance(v, Constant):
        return v.value
    if v not in env and isinstance(v, SharedVariable):
        env[v] = v.get_value(borrow=True)
    return env[v]


def _check_node(node, args, outs, diff, mode, eps, rtol, atol, rng) -> list[str]:
    """The dot-product test of one node alone; one line per disagreeing input."""
    roots = [v if isinstance(v, Constant) else Variable(v.type) for v in node.inputs]
    try:
        fresh = node.op.make_node(*roots).outputs
    except Exception:  # an op that cannot be rebuilt alone is skipped
        return []
    cost, scale = None, 0.0
    for o, value in zip(fresh, outs):
        if o.type.is_float:
            w = Constant(rng.standard_normal(np.shape(value)).astype(o.dtype))
            term = (o * w).sum()
            cost = term if cost is None else cost + term
            scale += float(np.sum(np.abs(w.value * value)))
    free = [r for r in roots if not isinstance(r, Constant)]
    vals = [np.array(a) for a, r in zip(args, roots) if not isinstance(r, Constant)]
    try:
        gs = grad(cost, [roots[i] for i in diff], disconnected_inputs="ignore")
        f = function(free, [cost] + gs, mode=mode, on_unused_input="ignore",
                     no_default_updates=True)
        _, *g = f(*vals)
    except Exception as exc:
        return [f"its pullback fails: {type(exc).__name__}: {exc}"]
    problems = []
    for i, gi in zip(diff, g):
        k = free.index(roots[i])
        if np.shape(gi) != vals[k].shape:
            problems.append(f"input {i}: the pullback returns a cotangent of shape "
                            f"{np.shape(gi)} for an input of shape {vals[k].shape} (a missing "
                            "sum over broadcast axes?)")
            continue
        d = rng.standard_normal(vals[k].shape).astype(vals[k].dtype)

        def c(pt, k=k):
            shifted = list(vals)
            shifted[k] = pt[0]
            return float(f(*shifted)[0])

        analytic = float(np.sum(np.asarray(gi, dtype="float64") * d))
        numeric = (c([vals[k] + eps * d]) - c([vals[k] - eps * d])) / (2 * eps)
        err = abs(analytic - numeric)
        noise = 8 * float(np.finfo(vals[k].dtype).eps) * scale / eps
        if err <= atol + rtol * max(abs(analytic), abs(numeric)) + noise:
            continue
        if not smooth_along(c, [vals[k]], [d], eps, atol + rtol * abs(numeric), noise):
            continue  # at a kink of this op: no verdict
        problems.append(f"input {i}: symbolic {analytic:.6g} vs numeric {numeric:.6g} "
                        f"(abs error {err:.3g})")
    return problems


def _blame_scan_step(node, args, outs, mode, eps, rtol, atol, rng, depth) -> list[str]:
    """Check the ops of a scan's step at its first and middle steps."""
    op = node.op
    n_steps, seqs, inits, nonseqs = op.split_inputs(args)
    n = int(n_steps)
    lines: list[str] = []
    for t in sorted({0, n // 2}):
        if t >= n or (t > 0 and not all(op.keep_history)):
            continue
        carries = inits if t == 0 else [h[t - 1] for h in outs[: op.n_carry]]
        values = [s[t] for s in seqs] + list(carries) + list(nonseqs)
        inner = op.inner
        wrt = [v for v in inner.inputs if v.type.is_float]
        found = _blame(inner.outputs, inner.inputs, values, wrt, mode, eps, rtol, atol, rng,
                       depth + 1)
        if found:
            lines.append(f"{'  ' * (depth + 1)}inside the step of {op}, at step t={t}:")
            lines += found
            break
    return lines
