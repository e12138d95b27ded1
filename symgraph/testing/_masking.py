"""Helpers of ``check_mask_invariance``: the padded, refilled and reordered variants of a
batch, and the comparisons of what a model computes on them."""

from __future__ import annotations

import numpy as np

from symgraph.graph import Variable, toposort
from symgraph.ops.shape import Shape

__all__ = ["as_positions", "close", "describe_change", "from_ids", "max_diff",
           "padding_gradients", "real_positions_diff", "variants"]


def describe_change(k, out, a, b) -> str:
    a, b = np.asarray(a, dtype="float64"), np.asarray(b, dtype="float64")
    name = f" {out.name!r}" if out.name else ""
    if out.ndim == 0:
        return f"the cost{name} changed from {float(a):.6g} to {float(b):.6g}"
    if a.shape != b.shape:
        return f"per-sequence output {k}{name} changed shape from {a.shape} to {b.shape}"
    with np.errstate(invalid="ignore"):
        diff = np.where(np.isnan(a - b), np.inf, np.abs(a - b))
    at = int(np.argmax(diff.ravel()))
    seq = int(np.unravel_index(at, a.shape)[0])
    return (f"per-sequence output {k}{name} changed by up to {diff.ravel()[at]:.3g} "
            f"(sequence {seq}: {a.ravel()[at]:.6g} -> {b.ravel()[at]:.6g})")


def max_diff(a, b) -> float:
    a, b = np.asarray(a, dtype="float64"), np.asarray(b, dtype="float64")
    if a.shape != b.shape:
        return float("inf")
    with np.errstate(invalid="ignore"):
        return float(np.nanmax(np.abs(a - b), initial=0.0))


def from_ids(outputs, ids) -> list[Variable]:
    """Float variables computed directly from the ids (embedding lookups, one-hots)."""
    depends = {ids}
    found = []
    for node in toposort(outputs):
        if any(i in depends for i in node.inputs) and not isinstance(node.op, Shape):
            for o in node.outputs:
                if o.type.is_float:
                    if any(i in depends and not i.type.is_float for i in node.inputs):
                        found.append(o)
                else:
                    depends.add(o)
    return found


def variants(x, m, n_pad, rng):
    """(description, x, mask, permutation) of the three variants."""
    T_, B = m.shape
    real = x[m > 0] if np.any(m > 0) else x.reshape((-1,) + x.shape[2:])

    def garbage(n):
        return real[rng.integers(0, len(real), n)]

    out = []
    pad = m == 0
    if np.any(pad):
        refill = x.copy()
        refill[pad] = garbage(int(pad.sum()))
        out.append(("other content at the padded positions", refill, m, None))
    extra = garbage(n_pad * B).reshape((n_pad, B) + x.shape[2:])
    out.append((f"{n_pad} padded steps appended", np.concatenate([x, extra]),
                np.concatenate([m, np.zeros((n_pad, B), m.dtype)]), None))
    if B > 1:
        perm = rng.permutation(B)
        if np.all(perm == np.arange(B)):
            perm = np.roll(perm, 1)
        out.append((f"its sequences reordered (columns {perm.tolist()})", x[:, perm],
                    m[:, perm], perm))
    return out


def close(a, b, rtol, atol) -> bool:
    a, b = np.asarray(a, dtype="float64"), np.asarray(b, dtype="float64")
    scale = float(np.max(np.abs(a), initial=0.0)) if np.all(np.isfinite(a)) else 0.0
    return a.shape == b.shape and bool(np.allclose(b, a, rtol=rtol, atol=atol * (1 + scale),
                                                   equal_nan=False))


def as_positions(g, T_, B):
    g = np.asarray(g)
    if g.shape[:2] == (T_, B):
        return g.reshape(T_, B, -1)
    if g.ndim >= 1 and g.shape[0] == T_ * B:
        return g.reshape(T_, B, -1)
    return None


def padding_gradients(pos_grads, m, names, what, reported: set) -> list[str]:
    """Input gradients must be finite, and exactly zero at padded positions (each input
    reported once)."""
    out = []
    for k, (name, g) in enumerate(zip(names, pos_grads)):
        g3 = as_positions(g, *m.shape)
        if g3 is None or k in reported:
            continue
        if not np.all(np.isfinite(g3)):
            out.append(f"the gradient w.r.t. {name} is not finite{what}")
            reported.add(k)
            continue
        bad = np.argwhere((m == 0) & np.any(g3 != 0, axis=-1))
        if len(bad):
            t, b = (int(i) for i in bad[0])
            out.append(f"the gradient w.r.t. {name} is not exactly zero at {len(bad)} padded "
                       f"position(s){what}, e.g. (t={t}, b={b}): "
                       f"{np.max(np.abs(g3[t, b])):.3g}; padded steps must not feed the "
                       "outputs")
            reported.add(k)
    return out


def real_positions_diff(a, b, m_base, m_variant, perm, rtol, atol) -> float | None:
    """Largest change of an input gradient at the real positions (None: unchanged)."""
    a3, b3 = as_positions(a, *m_base.shape), as_positions(b, *m_variant.shape)
    if a3 is None or b3 is None:
        return None
    real = m_base > 0
    if perm is not None:
        a3, real = a3[:, perm], real[:, perm]
    b3 = b3[: m_base.shape[0]]
    if b3.shape != a3.shape or close(a3[real], b3[real], rtol, atol):
        return None
    return max_diff(a3[real], b3[real])
