"""Masks as a contract: masked state updates and the masked sequence cross-entropy.

A mask is a float ``(T, B)`` tensor holding 1.0 on real steps and 0.0 on padding (see
:func:`symgraph.models.batching.check_mask`, which validates masks where data enters).
Mathematically a masked recurrence blends

.. math:: s_t = m_t \\, \\mathrm{new}_t + (1 - m_t) \\, s_{t-1},

but the product form lets an ``inf`` or ``NaN`` in ``new`` at a padded step leak into the
state (``0 * inf = nan``) and into the gradient. Both helpers here select with
``T.switch`` instead, so that padded positions

* leave the state *exactly* unchanged (bit for bit),
* add exactly nothing to the loss,
* receive exactly zero, finite gradients (the pullback of ``switch`` routes the whole
  cotangent to the selected branch and an exact zero to the other).

Built only on the public API.
"""

from __future__ import annotations

import symgraph.tensor as T
from symgraph import Variable

__all__ = ["masked_update", "masked_token_losses", "sequence_cross_entropy", "NORMALIZATIONS"]

#: The loss normalisations accepted by :func:`sequence_cross_entropy`.
NORMALIZATIONS = ("token", "sequence", "none")


def _broadcast_mask(mask: Variable, like: Variable) -> Variable:
    """``mask`` with new trailing axes so that it broadcasts against ``like``."""
    mask = T.as_tensor_variable(mask)
    extra = like.ndim - mask.ndim
    if extra < 0:
        raise ValueError(
            f"mask of rank {mask.ndim} cannot mask a value of rank {like.ndim}; the mask "
            "must have the value's leading axes (e.g. (B,) for (B, H) states)")
    return T.shape_padright(mask, extra) if extra else mask


def masked_update(mask_t, new, old) -> Variable:
    """Blend one recurrent step: keep ``old`` where the step is padding.

    .. math:: s_t[b] = \\begin{cases} \\mathrm{new}[b] & m_t[b] > 0 \\\\
                                     \\mathrm{old}[b] & \\text{otherwise} \\end{cases}

    which equals ``m * new + (1 - m) * old`` for a 0/1 mask, but is exact and NaN-free at
    padded steps even when ``new`` holds ``inf`` or ``NaN`` there: the state is unchanged
    bit for bit, and the gradient reaching ``new`` at a padded step is exactly zero.

    Parameters
    ----------
    mask_t : Variable, shape (B,)
        The mask of this step (one scan slice of a ``(T, B)`` mask).
    new : Variable, shape (B, ...)
        The state the cell computed.
    old : Variable, shape (B, ...)
        The previous state.

    Returns
    -------
    Variable of ``new``'s shape and dtype.
    """
    new, old = T.as_tensor_variable(new), T.as_tensor_variable(old)
    keep_new = _broadcast_mask(mask_t, new) > 0
    return T.switch(keep_new, new, old)


def masked_token_losses(logits, targets, mask=None) -> Variable:
    """Per-position cross-entropy, exactly zero on padding.

    .. math:: \\ell_{tb} = \\begin{cases}
              \\mathrm{logsumexp}(z_{tb}) - z_{tb, y_{tb}} & m_{tb} > 0 \\\\
              0 & \\text{otherwise} \\end{cases}

    computed with the fused, stable ``T.nnet.softmax_cross_entropy_with_logits``.

    Parameters
    ----------
    logits : Variable, shape (T, B, K)
    targets : integer Variable, shape (T, B)
        Class ids in ``[0, K)`` (padded positions may hold any valid id, e.g. ``<pad>``).
    mask : Variable, shape (T, B), optional
        ``None`` counts every position.

    Returns
    -------
    Variable, shape (T, B)
    """
    ce = T.nnet.softmax_cross_entropy_with_logits(logits, targets)
    if mask is None:
        return ce
    return T.switch(_broadcast_mask(mask, ce) > 0, ce, 0.0)


def sequence_cross_entropy(logits, targets, mask=None, normalize: str = "token") -> Variable:
    """Masked cross-entropy of a batch of sequences, normalised as chosen.

    With :math:`\\ell_{tb}` from :func:`masked_token_losses` and :math:`m_{tb}` the mask:

    - ``'token'`` (the default, what perplexity uses): nats per real token,
      :math:`\\sum_{tb} \\ell_{tb} / \\max(1, \\sum_{tb} m_{tb})`;
    - ``'sequence'``: the mean over the B sequences of each sequence's summed loss,
      :math:`\\frac{1}{B} \\sum_b \\sum_t \\ell_{tb}`;
    - ``'none'``: the plain sum :math:`\\sum_{tb} \\ell_{tb}`.

    The choice changes the gradient's scale (and so the effective learning rate): per
    token, every real token weighs the same whatever the batch's lengths; per sequence,
    long sequences weigh more. There is no hidden default beyond ``'token'``.

    Parameters
    ----------
    logits : Variable, shape (T, B, K)
    targets : integer Variable, shape (T, B)
    mask : Variable, shape (T, B), optional
        ``None``: every position is real (e.g. a contiguous BPTT window).
    normalize : {'token', 'sequence', 'none'}

    Returns
    -------
    Variable, a scalar.
    """
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
    losses = masked_token_losses(logits, targets, mask)
    total = losses.sum()
    if normalize == "none":
        return total
    if normalize == "sequence":
        return total / T.cast(losses.shape[1], losses.dtype)
    if mask is None:
        count = T.cast(losses.shape[0] * losses.shape[1], losses.dtype)
    else:
        count = T.maximum(T.cast(T.as_tensor_variable(mask).sum(), losses.dtype), 1.0)
    return total / count
