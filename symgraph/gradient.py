"""Public gradient tools: ``grad`` and ``verify_grad``.

``verify_grad`` compares the symbolic gradient with central finite differences through
the dot-product test :math:`\\langle \\nabla_x (u^T f(x)), v\\rangle \\approx
u^T \\frac{f(x + \\epsilon v) - f(x - \\epsilon v)}{2\\epsilon}` with seeded random ``u``
and ``v``, then a per-element report. On failure it re-checks every node of the graph on
its own and names the ops whose pullback disagrees. The checker itself lives in
:mod:`symgraph.testing` (``check_grads``); ``verify_grad`` is a thin wrapper over it.
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

    A thin wrapper over the checker of :mod:`symgraph.testing` (which also offers
    :func:`symgraph.testing.check_grads`: float64 recompilation, kink avoidance, symbolic
    costs with shared variables). ``verify_grad`` checks in the points' own dtype.

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
    from symgraph.ops.basic import tensor
    from symgraph.testing._gradcheck import GradProblem, dot_product_test

    rng = np.random.default_rng(rng if rng is not None else 0)
    pt = [np.array(p, dtype=dtype or np.asarray(p).dtype) for p in pt]
    if not pt or any(p.dtype.kind != "f" for p in pt):
        raise TypeError("verify_grad: pt must be a non-empty list of floating-point arrays")
    work = str(np.result_type(*pt))
    eps = eps or _default_eps(work)
    tol = rel_tol or _default_tol(work)
    atol = abs_tol or tol
    labels = [f"pt[{i}]" for i in range(len(pt))]
    xs = [tensor(p.dtype, (None,) * p.ndim, name=label) for p, label in zip(pt, labels)]
    problem = GradProblem(fn(*xs), xs, labels)
    dot_product_test(problem, pt, who="verify_grad", n_tests=n_tests, rng=rng, eps=eps,
                     rtol=tol, atol=atol, mode=mode, nudge=False)
