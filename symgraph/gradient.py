"""Public gradient tools: ``grad`` and ``verify_grad``.

``verify_grad`` compares the symbolic gradient with central finite differences through
the dot-product test :math:`\\langle \\nabla_x (u^T f(x)), v\\rangle \\approx
u^T \\frac{f(x + \\epsilon v) - f(x - \\epsilon v)}{2\\epsilon}` with seeded random ``u``
and ``v``, then a per-element report. On failure it re-checks every node of the graph on
its own and names the ops whose pullback disagrees.
"""

from __future__ import annotations

import numpy as np

from symgraph.autodiff import grad
from symgraph.errors import SymgraphError

__all__ = ["grad", "verify_grad", "GradientCheckError", "numeric_grad"]


class GradientCheckError(SymgraphError, AssertionError):
    """The symbolic gradient disagrees with finite differences."""


def _default_eps(dtype) -> float:
    return {"float64": 1e-6, "float32": 1e-2, "float16": 1e-1}[str(dtype)]


def _default_tol(dtype) -> float:
    return {"float64": 1e-5, "float32": 1e-2, "float16": 5e-2}[str(dtype)]


def numeric_grad(f, points, eps: float):
    """Central-difference gradient of the scalar function ``f(*points)`` w.r.t. each
    point, element by element (for per-element reports on small inputs)."""
    grads = []
    for k, p in enumerate(points):
        g = np.zeros(p.shape, dtype="float64")
        for idx in np.ndindex(p.shape):
            shifted = [q.copy() for q in points]
            shifted[k][idx] = p[idx] + eps
            hi = float(f(*shifted))
            shifted[k][idx] = p[idx] - eps
            lo = float(f(*shifted))
            g[idx] = (hi - lo) / (2 * eps)
        grads.append(g)
    return grads


def verify_grad(fn, pt, n_tests: int = 2, rng=None, eps: float | None = None,
                abs_tol: float | None = None, rel_tol: float | None = None, mode="numpy",
                dtype: str | None = None) -> None:
    """Check the gradient of ``fn`` at the point ``pt`` numerically; raise on mismatch.

    Parameters
    ----------
    fn : callable
        Takes symbolic variables (one per entry of ``pt``) and returns a symbolic tensor
        of any shape; its gradient is checked through random projections.
    pt : list of arrays
        The point (floating-point arrays; their dtype sets the tolerances).
    n_tests : int
        Number of random projections ``u`` (and directions ``v``) tried.
    rng : numpy Generator or int seed, optional
    eps, abs_tol, rel_tol : float, optional
        Step and tolerances; defaults depend on the dtype.

    Example
    -------
    >>> import numpy as np, symgraph.tensor as T
    >>> from symgraph.gradient import verify_grad
    >>> verify_grad(lambda x: T.tanh(x) * 2, [np.random.rand(3, 4)])
    """
    from symgraph.compile import function
    from symgraph.ops.basic import tensor

    rng = np.random.default_rng(rng if rng is not None else 0)
    pt = [np.array(p, dtype=dtype or np.asarray(p).dtype) for p in pt]
    if not pt or any(p.dtype.kind != "f" for p in pt):
        raise TypeError("verify_grad: pt must be a non-empty list of floating-point arrays")
    work = str(np.result_type(*pt))
    eps = eps or _default_eps(work)
    tol = rel_tol or _default_tol(work)
    atol = abs_tol or tol
    xs = [tensor(p.dtype, (None,) * p.ndim, name=f"pt[{i}]") for i, p in enumerate(pt)]
    out = fn(*xs)
    f_out = function(xs, out, mode=mode, on_unused_input="ignore")
    u_var = tensor(out.dtype, (None,) * out.ndim, name="u")
    cost = (out * u_var).sum()
    grads = grad(cost, xs, disconnected_inputs="ignore")
    f_cost = function(xs + [u_var], cost, mode=mode, on_unused_input="ignore")
    f_grad = function(xs + [u_var], grads, mode=mode, on_unused_input="ignore")
    shape = np.shape(f_out(*pt))
    for _ in range(n_tests):
        u = rng.standard_normal(shape).astype(out.dtype)
        v = [rng.standard_normal(p.shape).astype(p.dtype) for p in pt]
        analytic = sum(float(np.sum(g * d)) for g, d in zip(f_grad(*pt, u), v))
        hi = f_cost(*[p + eps * d for p, d in zip(pt, v)], u)
        lo = f_cost(*[p - eps * d for p, d in zip(pt, v)], u)
        numeric = (float(hi) - float(lo)) / (2 * eps)
        err = abs(analytic - numeric)
        if err > atol + tol * max(abs(analytic), abs(numeric)):
            report = _element_report(f_cost, f_grad, pt, u, eps)
            culprits = _blame_nodes(f_out, pt, mode, eps, tol, atol, rng)
            raise GradientCheckError(
                f"verify_grad: directional derivative mismatch: symbolic {analytic:.6g}, "
                f"finite differences {numeric:.6g} (abs error {err:.3g}, eps {eps})\n"
                f"{report}\n{culprits}")


def _element_report(f_cost, f_grad, pt, u, eps) -> str:
    sizes = sum(p.size for p in pt)
    if sizes > 400:
        return "(inputs too large for a per-element report)"
    analytic = f_grad(*pt, u)
    numeric = numeric_grad(lambda *ps: f_cost(*ps, u), pt, eps)
    lines = []
    for k, (a, n) in enumerate(zip(analytic, numeric)):
        diff = np.abs(np.asarray(a, dtype="float64") - n)
        worst = np.unravel_index(int(np.argmax(diff)), diff.shape) if diff.size else ()
        if diff.size:
            lines.append(f"  pt[{k}]: max abs error {diff.max():.3g} at index {worst} "
                         f"(symbolic {np.asarray(a)[worst]:.6g}, numeric {n[worst]:.6g})")
    return "per-element report:\n" + "\n".join(lines)


def _blame_nodes(f_out, pt, mode, eps, tol, atol, rng) -> str:
    """Re-check each float node of the compiled forward graph in isolation."""
    from symgraph.compile import function
    from symgraph.graph import Constant, Variable

    fgraph = f_out.fgraph
    nodes = fgraph.toposort()
    env = dict(zip(fgraph.inputs, pt))
    bad = []
    for node in nodes:
        args = [v.value if isinstance(v, Constant) else env[v] for v in node.inputs]
        for out, value in zip(node.outputs, node.op.perform(node, args)):
            env[out] = value
        float_in = [i for i, v in enumerate(node.inputs)
                    if v.type.is_float and not isinstance(v, Constant)]
        if not float_in or not node.outputs[0].type.is_float:
            continue
        roots = [Variable(v.type) for v in node.inputs]
        try:
            outs = node.op.make_node(*roots).outputs
            cost = sum((o * Constant(rng.standard_normal(np.shape(env[n]))
                                     .astype(o.dtype))).sum()
                       for o, n in zip(outs, node.outputs) if o.type.is_float)
            gs = grad(cost, [roots[i] for i in float_in], disconnected_inputs="ignore")
            f = function(roots, [cost] + gs, mode=mode, on_unused_input="ignore")
        except Exception:  # a node that cannot be rebuilt alone is skipped
            continue
        vals = [np.array(a) for a in args]
        _, *g = f(*vals)
        for k, gi in zip(float_in, g):
            d = rng.standard_normal(vals[k].shape)
            hi = [*vals]
            lo = [*vals]
            hi[k] = vals[k] + eps * d
            lo[k] = vals[k] - eps * d
            numeric = (float(f(*hi)[0]) - float(f(*lo)[0])) / (2 * eps)
            analytic = float(np.sum(gi * d))
            if abs(analytic - numeric) > atol + tol * max(abs(analytic), abs(numeric)):
                bad.append(f"  {node.op} (made at {node.outputs[0].creation}), input {k}: "
                           f"symbolic {analytic:.6g} vs numeric {numeric:.6g}")
    if not bad:
        return "no single op disagrees on its own (check the graph's composition)"
    return "ops whose pullback disagrees:\n" + "\n".join(bad)
