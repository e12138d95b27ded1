"""Hypothesis strategies for symgraph tests: shapes, tensors in an op's safe domain, and
padded, masked batches of token ids.

>>> from hypothesis import given
>>> from symgraph.testing.strategies import padded_batches, tensors
>>> @given(x=tensors("float64", (2, 3), domain="positive"))
... def test_log_grad(x): ...
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from symgraph.config import config

__all__ = ["DOMAINS", "domain_elements", "shapes", "tensors", "lengths", "padded_batches"]

#: Named safe domains ``(low, high)``: where the common ops are smooth and well
#: conditioned. ``'nonzero'`` is ``[-3, -0.1] U [0.1, 3]``.
DOMAINS = {
    "any": (-3.0, 3.0),
    "positive": (0.1, 3.0),       # log, sqrt, 1/x, x ** y
    "negative": (-3.0, -0.1),
    "nonzero": (0.1, 3.0),        # |x| in this range, either sign: division
    "unit": (0.05, 0.95),         # probabilities: binary cross-entropy, log(p), log(1-p)
    "signed_unit": (-0.95, 0.95),  # arctanh-like ops, correlations
}


def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 1, max_side: int = 4, *,
           broadcastable: bool = False):
    """Shapes with small sides, size-1 sides drawn often.

    Parameters
    ----------
    min_dims, max_dims : int
        Range of the rank.
    min_side, max_side : int
        Range of each side (1 is drawn about a third of the time when allowed).
    broadcastable : bool
        Draw pairs ``(shape, other)`` instead, where ``other`` broadcasts against
        ``shape`` under symgraph's rule (static size-1 axes broadcast): ``shape`` with
        some leading axes dropped and some sides set to 1.
    """
    side = st.integers(min_side, max_side)
    if min_side <= 1 <= max_side:
        side = st.one_of(st.just(1), side)
    base = st.lists(side, min_size=min_dims, max_size=max_dims).map(tuple)
    if not broadcastable:
        return base
    return base.flatmap(lambda s: st.tuples(st.just(s), _broadcasting_against(s)))


def _broadcasting_against(shape: tuple):
    def make(drop: int):
        rest = shape[drop:]
        return st.lists(st.booleans(), min_size=len(rest), max_size=len(rest)).map(
            lambda ones: tuple(1 if one else d for one, d in zip(ones, rest)))

    return st.integers(0, len(shape)).flatmap(make)


def _inward(value: float, dtype, up: bool) -> float:
    """``value`` rounded into ``dtype``, towards the inside of the interval."""
    v = np.asarray(value, dtype=dtype)
    if up and float(v) < value:
        v = np.nextafter(v, np.asarray(np.inf, dtype=dtype))
    if not up and float(v) > value:
        v = np.nextafter(v, np.asarray(-np.inf, dtype=dtype))
    return float(v)


def domain_elements(domain="any", dtype=None):
    """The element strategy of a domain: a name of :data:`DOMAINS` or ``(low, high)``."""
    dtype = np.dtype(dtype or config.floatX)
    if isinstance(domain, str):
        if domain not in DOMAINS:
            raise ValueError(f"unknown domain {domain!r}; choose one of {sorted(DOMAINS)} or "
                             "give (low, high)")
        low, high = DOMAINS[domain]
    else:
        low, high = (float(b) for b in domain)
    if not low < high:
        raise ValueError(f"empty domain ({low}, {high})")
    if dtype.kind in "iu":
        ints = st.integers(int(np.ceil(low)), int(np.floor(high)))
        return ints if domain != "nonzero" else ints.filter(bool)
    width = dtype.itemsize * 8
    floats = st.floats(_inward(low, dtype, True), _inward(high, dtype, False), width=width,
                       allow_nan=False, allow_infinity=False, allow_subnormal=False)
    if domain == "nonzero":
        return st.one_of(floats, floats.map(lambda x: -x))
    return floats


def tensors(dtype=None, shape=None, elements=None, *, domain=None):
    """Arrays of ``dtype`` and ``shape`` with values in a safe domain.

    Parameters
    ----------
    dtype : str, optional
        Default ``config.floatX``.
    shape : tuple or strategy of tuples, optional
        Default :func:`shapes`.
    elements : strategy, domain name or ``(low, high)``, optional
        The values: a hypothesis strategy, or a domain (see :data:`DOMAINS`).
    domain : domain name or ``(low, high)``, optional
        The op's safe domain, e.g. ``domain=(0.1, 3)`` or ``domain='positive'``
        (default ``'any'``, :math:`[-3, 3]`); same as giving it as ``elements``.

    Examples
    --------
    >>> tensors("float32", shapes(1, 2), domain="positive")  # for log
    >>> tensors("float64", (3, 4), elements=(-1, 1))
    """
    dtype = np.dtype(dtype or config.floatX)
    if elements is not None and domain is not None:
        raise ValueError("tensors: give elements or domain, not both")
    spec = elements if elements is not None else (domain or "any")
    if isinstance(spec, str | tuple | list):
        spec = domain_elements(spec, dtype)
    return hnp.arrays(dtype, shapes() if shape is None else shape, elements=spec)


def lengths(max_len: int, max_batch: int, *, min_len: int = 1, min_batch: int = 1):
    """Per-sequence lengths: a list of ``min_batch..max_batch`` ints in
    ``[min_len, max_len]``."""
    return st.lists(st.integers(min_len, max_len), min_size=min_batch, max_size=max_batch)


@st.composite
def padded_batches(draw, vocab: int, max_len: int, max_batch: int, *, min_len: int = 1,
                   min_batch: int = 1, pad_id: int = 0, dtype: str = "int64",
                   mask_dtype: str | None = None):
    """Time-major padded batches ``(ids, mask)``.

    ``ids`` is ``(T, B)`` integers in ``[0, vocab)`` (``pad_id`` at padding), ``mask`` a
    ``(T, B)`` float 0/1 array (``mask_dtype``, default ``config.floatX``) with
    :math:`m_{tb} = [t < \\ell_b]` for the drawn lengths :math:`\\ell_b`: padding only at
    the end of each column, and :math:`T = \\max_b \\ell_b`, so at least one sequence is
    full-length.
    """
    lens = draw(lengths(max_len, max_batch, min_len=min_len, min_batch=min_batch))
    steps, batch = max(lens), len(lens)
    ids = draw(hnp.arrays(np.dtype(dtype), (steps, batch), elements=st.integers(0, vocab - 1)))
    mask = np.arange(steps)[:, None] < np.asarray(lens)[None, :]
    ids = np.where(mask, ids, pad_id).astype(dtype)
    return ids, mask.astype(mask_dtype or config.floatX)
