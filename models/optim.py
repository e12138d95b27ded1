"""Optimizers as update lists, gradient clipping and learning-rate decay.

Each optimizer returns an :class:`Updates`: a plain list of ``(shared, new_value)``
pairs, ready for ``sg.function(..., updates=...)``, that also carries ``.state``, the
optimizer's own shared variables (moments, accumulators, step counter) with names such as
``'adam.lstm0.W.m'``, so that checkpoints can save and restore them.

The learning rate ``lr`` may be a number, a shared variable (set a new value between
epochs to decay it without recompiling, see :func:`lr_at_epoch`) or any scalar
expression. Update expressions are cast back to each parameter's dtype.

Built only on the public API.
"""

from __future__ import annotations

import numpy as np

import symgraph as sg
import symgraph.tensor as T
from symgraph import SharedVariable, Variable

__all__ = [
    "Updates", "sgd", "momentum", "adagrad", "adam", "OPTIMIZERS", "make_optimizer",
    "global_norm", "clip_global_norm", "clip_elementwise", "lr_at_epoch",
]


class Updates(list):
    """A list of ``(shared, new_value)`` pairs plus ``.state``, the optimizer's state
    variables (each a named shared variable)."""

    def __init__(self, pairs=(), state=()) -> None:
        super().__init__(pairs)
        self.state: list[SharedVariable] = list(state)


def _check(params, grads, where: str) -> tuple[list, list]:
    params, grads = list(params), list(grads)
    if len(params) != len(grads):
        raise ValueError(f"{where}: got {len(params)} parameters but {len(grads)} gradients")
    for p in params:
        if not isinstance(p, SharedVariable):
            raise TypeError(f"{where}: parameters must be shared variables, got {p!r}")
    return params, grads


def _name(p: SharedVariable, k: int) -> str:
    return p.name or f"param{k}"


def _zeros_like(p: SharedVariable, name: str) -> SharedVariable:
    value = p.get_value(borrow=True)
    return sg.shared(np.zeros(value.shape, dtype=value.dtype), name=name)


def _lr(lr, dtype: str) -> Variable:
    return T.cast(T.as_tensor_variable(lr), dtype)


def _assign(p: SharedVariable, expr) -> tuple:
    return (p, T.cast(expr, p.dtype))


def sgd(params, grads, lr) -> Updates:
    """Plain gradient descent: :math:`p \\leftarrow p - \\eta\\, g`."""
    params, grads = _check(params, grads, "sgd")
    return Updates([_assign(p, p - _lr(lr, p.dtype) * g) for p, g in zip(params, grads)])


def momentum(params, grads, lr, mu: float = 0.9) -> Updates:
    """Heavy-ball momentum (PyTorch's convention, the velocity does not include ``lr``):

    .. math:: v \\leftarrow \\mu v + g, \\qquad p \\leftarrow p - \\eta\\, v

    State: one velocity per parameter, ``'momentum.<param>.v'``, starting at zero.
    """
    params, grads = _check(params, grads, "momentum")
    pairs, state = [], []
    for k, (p, g) in enumerate(zip(params, grads)):
        v = _zeros_like(p, f"momentum.{_name(p, k)}.v")
        v_new = T.cast(mu * v + g, p.dtype)
        pairs += [(v, v_new), _assign(p, p - _lr(lr, p.dtype) * v_new)]
        state.append(v)
    return Updates(pairs, state)


def adagrad(params, grads, lr, eps: float = 1e-8) -> Updates:
    """Adagrad as in Karpathy's min-char-rnn:

    .. math:: G \\leftarrow G + g^2, \\qquad p \\leftarrow p - \\eta\\, g / \\sqrt{G + \\epsilon}

    State: the accumulated squares ``'adagrad.<param>.G'``, starting at zero.
    """
    params, grads = _check(params, grads, "adagrad")
    pairs, state = [], []
    for k, (p, g) in enumerate(zip(params, grads)):
        acc = _zeros_like(p, f"adagrad.{_name(p, k)}.G")
        acc_new = T.cast(acc + g * g, p.dtype)
        pairs += [(acc, acc_new),
                  _assign(p, p - _lr(lr, p.dtype) * g / T.sqrt(acc_new + eps))]
        state.append(acc)
    return Updates(pairs, state)


def adam(params, grads, lr, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> Updates:
    """Adam (Kingma & Ba) with bias correction; at step :math:`t = 1, 2, \\ldots`:

    .. math::
        m &\\leftarrow \\beta_1 m + (1 - \\beta_1) g, \\qquad
        v \\leftarrow \\beta_2 v + (1 - \\beta_2) g^2 \\\\
        \\hat m &= m / (1 - \\beta_1^t), \\qquad \\hat v = v / (1 - \\beta_2^t), \\qquad
        p \\leftarrow p - \\eta\\, \\hat m / (\\sqrt{\\hat v} + \\epsilon)

    State: ``'adam.t'`` (the step counter, a float64 scalar) and per parameter
    ``'adam.<param>.m'`` and ``'adam.<param>.v'``, all starting at zero.
    """
    params, grads = _check(params, grads, "adam")
    step = sg.shared(np.array(0.0, dtype="float64"), name="adam.t")
    t = step + 1.0
    correction1 = 1.0 - T.as_tensor_variable(np.float64(b1)) ** t
    correction2 = 1.0 - T.as_tensor_variable(np.float64(b2)) ** t
    pairs, state = [(step, t)], [step]
    for k, (p, g) in enumerate(zip(params, grads)):
        m = _zeros_like(p, f"adam.{_name(p, k)}.m")
        v = _zeros_like(p, f"adam.{_name(p, k)}.v")
        m_new = T.cast(b1 * m + (1.0 - b1) * g, p.dtype)
        v_new = T.cast(b2 * v + (1.0 - b2) * (g * g), p.dtype)
        m_hat = m_new / T.cast(correction1, p.dtype)
        v_hat = v_new / T.cast(correction2, p.dtype)
        pairs += [(m, m_new), (v, v_new),
                  _assign(p, p - _lr(lr, p.dtype) * m_hat / (T.sqrt(v_hat) + eps))]
        state += [m, v]
    return Updates(pairs, state)


OPTIMIZERS = {"sgd": sgd, "momentum": momentum, "adagrad": adagrad, "adam": adam}


def make_optimizer(name: str, params, grads, lr) -> Updates:
    """The optimizer called ``name`` (``'sgd'``, ``'momentum'``, ``'adagrad'``, ``'adam'``)
    with its default hyper-parameters."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[name](params, grads, lr)


def global_norm(grads) -> Variable:
    """:math:`\\lVert g \\rVert = \\sqrt{\\sum_i \\sum g_i^2}` over all the gradients."""
    grads = [T.as_tensor_variable(g) for g in grads]
    if not grads:
        raise ValueError("global_norm got no gradients")
    total = (grads[0] * grads[0]).sum()
    for g in grads[1:]:
        total = total + T.cast((g * g).sum(), total.dtype)
    return T.sqrt(total)


def clip_global_norm(grads, max_norm: float) -> list[Variable]:
    """Rescale all gradients together so that their global norm is at most ``max_norm``:

    .. math:: g_i \\leftarrow g_i \\cdot \\min\\Big(1, \\frac{c}{\\lVert g \\rVert + 10^{-6}}\\Big)

    (the direction of the whole update is kept; TensorFlow's ``clip_by_global_norm`` and
    PyTorch's ``clip_grad_norm_`` do the same).
    """
    if not max_norm > 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm!r}")
    grads = [T.as_tensor_variable(g) for g in grads]
    norm = global_norm(grads)
    scale = T.minimum(1.0, max_norm / (norm + 1e-6))
    return [g * T.cast(scale, g.dtype) for g in grads]


def clip_elementwise(grads, c: float) -> list[Variable]:
    """Clip every gradient entry into :math:`[-c, c]` (min-char-rnn's ``np.clip``)."""
    if not c > 0:
        raise ValueError(f"clip value must be > 0, got {c!r}")
    return [T.clip(T.as_tensor_variable(g), -c, c) for g in grads]


def lr_at_epoch(lr: float, decay: float, decay_after: int, epoch: int) -> float:
    """The learning rate of 1-based ``epoch``: held for ``decay_after`` epochs, then
    multiplied by ``decay`` every epoch (TensorFlow's PTB schedule):

    .. math:: \\eta_e = \\eta \\cdot \\mathrm{decay}^{\\max(e - \\mathrm{decay\\_after}, 0)}
    """
    if epoch < 1:
        raise ValueError(f"epochs are 1-based, got epoch {epoch}")
    return float(lr) * float(decay) ** max(int(epoch) - int(decay_after), 0)
