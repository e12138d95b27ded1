"""Neural-network ops (``T.nnet``): softmax, log-softmax, cross-entropies and the fused,
numerically stable softmax cross-entropy on logits.

Stability is built in where the graph is made: ``categorical_crossentropy(softmax(x), y)``
becomes :class:`SoftmaxCrossEntropy` on the logits ``x`` (so its gradient,
``softmax(x) - onehot(y)``, is finite even for logits of +-1000), and
``binary_crossentropy(sigmoid(x), t)`` becomes ``softplus(x) - t*x``. The pullback of
:class:`Softmax` recognises a cotangent ``a / softmax(x)`` (what ``log(softmax(x))``
sends back) and returns the log-softmax pullback ``a - softmax(x) * sum(a)`` without
dividing. The named passes in ``symgraph.ops.rewrites`` catch the same patterns in graphs
built another way.
"""

from __future__ import annotations

import numpy as np

from symgraph.config import config
from symgraph.errors import ShapeError, SymgraphError
from symgraph.graph import Apply, Variable
from symgraph.op import Op, disconnected
from symgraph.ops import scalar as S
from symgraph.ops.basic import as_tensor_variable, cast, is_python_number
from symgraph.ops.elemwise import Elemwise, sum_to
from symgraph.ops.math import clip, eq, exp, log, relu, sigmoid, softplus
from symgraph.ops.reduce import sum as tsum
from symgraph.ops.shape import arange, shape, shape_padright
from symgraph.types import TensorType, format_shape

__all__ = [
    "sigmoid", "softplus", "relu", "hard_sigmoid", "softmax", "log_softmax",
    "categorical_crossentropy", "binary_crossentropy", "sigmoid_binary_crossentropy",
    "softmax_cross_entropy_with_logits", "onehot", "Softmax", "LogSoftmax",
    "CrossEntropyIndexed", "SoftmaxCrossEntropy", "TargetError",
]


class TargetError(SymgraphError, IndexError):
    """An integer class id outside ``[0, K)`` given to a cross-entropy at run time."""


def _float_input(x) -> Variable:
    x = as_tensor_variable(x)
    return x if x.type.is_float else cast(x, config.floatX)


def _axis(axis: int, x: Variable, where: str) -> int:
    if x.ndim == 0:
        raise ShapeError(f"{where}: needs an input of rank >= 1, got {x.describe()}")
    if not -x.ndim <= axis < x.ndim:
        raise ShapeError(f"{where}: axis {axis} is out of range for {x.describe()}")
    return axis % x.ndim


# ---- softmax and log-softmax ------------------------------------------------------------

class Softmax(Op):
    """:math:`y_i = e^{x_i - m} / \\sum_j e^{x_j - m}` along ``axis``, ``m = max_j x_j``
    (the shift changes nothing mathematically and keeps ``exp`` from overflowing).

    Pullback: :math:`\\bar x = y \\odot (\\bar y - \\sum_{axis} \\bar y \\odot y)`; when
    the cotangent is ``a / y`` (from ``log(softmax(x))``) it is
    :math:`\\bar x = a - y \\sum_{axis} a`, which never divides by an underflowed ``y``.
    """

    __props__ = ("axis",)

    def __init__(self, axis: int = -1) -> None:
        self.axis = int(axis)

    def make_node(self, x):
        x = _float_input(x)
        _axis(self.axis, x, str(self))
        return Apply(self, [x], [x.type])

    def perform(self, node, inputs):
        (x,) = inputs
        if x.shape[self.axis] == 0:
            return [x.copy()]
        e = np.exp(x - np.max(x, axis=self.axis, keepdims=True))
        return [e / np.sum(e, axis=self.axis, keepdims=True)]

    def pullback(self, inputs, outputs, cotangents):
        (y,), (g,) = outputs, cotangents
        over_y, rest = _split_over(g, y)
        parts = []
        for a in over_y:  # d/dx of a * log(y)
            a = sum_to(a, y)
            parts.append(a - y * tsum(a, self.axis, keepdims=True))
        if rest is not None:
            parts.append(y * (rest - tsum(rest * y, self.axis, keepdims=True)))
        total = parts[0]
        for p in parts[1:]:
            total = total + p
        return [total]

    def infer_shape(self, node, input_shapes):
        return [tuple(input_shapes[0])]


def _split_over(g: Variable, y: Variable) -> tuple[list[Variable], Variable | None]:
    """Write the cotangent ``g`` as ``sum(a_k / y) + rest`` by walking its additions;
    returns ``([a_k], rest)`` (``rest`` is None when nothing is left, and ``g`` itself
    when no term divides by ``y``)."""
    terms, stack = [], [g]
    while stack:
        v = stack.pop()
        if _is_elemwise(v, S.Add):
            stack.extend(reversed(v.owner.inputs))
        else:
            terms.append(v)
    over_y = [t.owner.inputs[0] for t in terms if _divides_by(t, y)]
    if not over_y:
        return [], g
    rest = None
    for t in terms:
        if not _divides_by(t, y):
            rest = t if rest is None else rest + t
    return over_y, rest


def _divides_by(v: Variable, y: Variable) -> bool:
    """True when ``v = a / y`` and the division does not broadcast ``y``."""
    return (_is_elemwise(v, S.TrueDiv) and v.owner.inputs[1] is y
            and all(ys != 1 or vs == 1 for ys, vs in zip(y.type.shape, v.type.shape)))


def _is_elemwise(v: Variable, scalar_cls) -> bool:
    return (v.owner is not None and isinstance(v.owner.op, Elemwise)
            and isinstance(v.owner.op.scalar_op, scalar_cls))


class LogSoftmax(Op):
    """:math:`y_i = x_i - m - \\log \\sum_j e^{x_j - m}` along ``axis`` (stable for any
    finite logits; ``m = max_j x_j``).

    Pullback: :math:`\\bar x = \\bar y - e^{y} \\sum_{axis} \\bar y`.
    """

    __props__ = ("axis",)

    def __init__(self, axis: int = -1) -> None:
        self.axis = int(axis)

    def make_node(self, x):
        x = _float_input(x)
        _axis(self.axis, x, str(self))
        return Apply(self, [x], [x.type])

    def perform(self, node, inputs):
        (x,) = inputs
        if x.shape[self.axis] == 0:
            return [x.copy()]
        return [_log_softmax(x, self.axis)]

    def pullback(self, inputs, outputs, cotangents):
        (y,), (g,) = outputs, cotangents
        return [g - exp(y) * tsum(g, self.axis, keepdims=True)]

    def infer_shape(self, node, input_shapes):
        return [tuple(input_shapes[0])]


def _log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def softmax(x, axis: int = -1) -> Variable:
    """Softmax along ``axis`` (any rank; Theano's took a matrix and normalised rows):

    .. math:: \\mathrm{softmax}(x)_i = \\frac{e^{x_i}}{\\sum_j e^{x_j}}

    Integer inputs are cast to ``floatX``.
    """
    x = _float_input(x)
    return Softmax(_axis(axis, x, "softmax"))(x)


def log_softmax(x, axis: int = -1) -> Variable:
    """:math:`\\log \\mathrm{softmax}(x) = x - \\log\\sum_j e^{x_j}`, computed stably."""
    x = _float_input(x)
    return LogSoftmax(_axis(axis, x, "log_softmax"))(x)


def hard_sigmoid(x) -> Variable:
    """Piecewise-linear sigmoid :math:`\\mathrm{clip}(0.2 x + 0.5, 0, 1)` (Theano's)."""
    x = _float_input(x)
    return clip(x * 0.2 + 0.5, 0.0, 1.0)


# ---- targets ----------------------------------------------------------------------------

def _check_targets(where: str, dist: Variable, targets: Variable) -> None:
    """Graph-build checks shared by the cross-entropies: integer ids of shape
    ``dist.shape[:-1]``, or float rows of ``dist``'s shape."""
    if dist.ndim == 0:
        raise ShapeError(f"{where}: the distribution must have a class axis (rank >= 1), "
                         f"got {dist.describe()}")
    lead, want = dist.type.shape[:-1], None
    if targets.type.is_integer and targets.dtype != "bool":
        if targets.ndim != dist.ndim - 1:
            raise ShapeError(
                f"{where}: integer targets (class ids) must have shape {format_shape(lead)} "
                f"(the distribution's shape without its last axis), one id per row; got "
                f"{targets.describe()} for {dist.describe()}")
        want = lead
    elif targets.type.is_float:
        if targets.ndim != dist.ndim:
            hint = (" (integer class ids need an integer dtype: use .astype('int64'))"
                    if targets.ndim == dist.ndim - 1 else "")
            raise ShapeError(
                f"{where}: float targets (one-hot or probability rows) must have the "
                f"distribution's shape {format_shape(dist.type.shape)}; got "
                f"{targets.describe()} for {dist.describe()}{hint}")
        want = dist.type.shape
    else:
        raise TypeError(f"{where}: targets must be integer class ids or float rows, got "
                        f"{targets.describe()}")
    for axis, (a, b) in enumerate(zip(want, targets.type.shape)):
        if a is not None and b is not None and a != b:
            raise ShapeError(f"{where}: targets {targets.describe()} do not match the "
                             f"expected shape {format_shape(want)} on axis {axis} (the "
                             f"distribution is {dist.describe()})")


def _is_ids(targets: Variable) -> bool:
    return targets.type.is_integer


def _check_target_values(node, dist: np.ndarray, targets: np.ndarray) -> None:
    """Run-time checks: shapes, and every class id in ``[0, K)``."""
    where = f"{node.op} (made at {node.outputs[0].creation})"
    want = dist.shape[:-1] if targets.dtype.kind in "iub" else dist.shape
    if targets.shape != want:
        raise ShapeError(f"{where}: targets of shape {targets.shape} do not match the "
                         f"distribution of shape {dist.shape} (expected {want})")
    if targets.dtype.kind in "iu" and targets.size:
        k = dist.shape[-1]
        bad = (targets < 0) | (targets >= k)
        if bad.any():
            where_bad = tuple(int(i) for i in np.argwhere(bad)[0])
            raise TargetError(f"{where}: target id {int(targets[where_bad])} at position "
                              f"{where_bad} is out of range [0, {k}) for {k} classes")


def _pick(values: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``values[..., ids]`` row by row."""
    return np.take_along_axis(values, ids[..., None].astype(np.intp), axis=-1)[..., 0]


def onehot(ids, depth, dtype=None) -> Variable:
    """``onehot(ids, K)[..., k] = 1.0 if ids[...] == k else 0.0`` (shape ``ids.shape +
    (K,)``, dtype ``floatX`` unless given); built from a comparison with ``arange(K)``."""
    ids = as_tensor_variable(ids)
    return cast(eq(shape_padright(ids), arange(depth)), dtype or config.floatX)


class CrossEntropyIndexed(Op):
    """:math:`\\ell = -\\log p[\\ldots, y]`: cross-entropy of probabilities ``p`` (..., K)
    against integer class ids ``y`` (...).

    Pullback: :math:`\\bar p = \\mathrm{onehot}(y) \\odot (-\\bar\\ell / p_y)` (a scatter
    into zeros); the ids are disconnected.
    """

    def make_node(self, probs, targets):
        probs, targets = _float_input(probs), as_tensor_variable(targets)
        _check_targets("categorical_crossentropy", probs, targets)
        if not _is_ids(targets):
            raise TypeError(f"{self}: targets must be integer class ids, got "
                            f"{targets.describe()}")
        return Apply(self, [probs, targets],
                     [TensorType(probs.dtype, probs.type.shape[:-1])])

    def perform(self, node, inputs):
        p, y = inputs
        _check_target_values(node, p, y)
        with np.errstate(divide="ignore"):
            return [np.asarray(-np.log(_pick(p, y)), dtype=p.dtype)]

    def pullback(self, inputs, outputs, cotangents):
        (p, y), (g,) = inputs, cotangents
        mask = onehot(y, shape(p)[p.ndim - 1], p.dtype)
        p_y = tsum(p * mask, axis=-1)
        return [mask * shape_padright(-g / p_y), disconnected()]

    def infer_shape(self, node, input_shapes):
        return [tuple(input_shapes[0][:-1])]


class SoftmaxCrossEntropy(Op):
    """Fused, stable softmax cross-entropy on logits ``x`` (..., K):

    .. math:: \\ell = \\mathrm{logsumexp}(x) - x[\\ldots, y]
              \\quad\\text{or}\\quad
              \\ell = -\\sum_k t_k (x_k - \\mathrm{logsumexp}(x))

    for integer ids ``y`` (...) or float target rows ``t`` (..., K).

    Pullback: :math:`\\bar x = \\bar\\ell\\,(\\mathrm{softmax}(x) - \\mathrm{onehot}(y))`,
    or :math:`\\bar\\ell\\,(\\mathrm{softmax}(x) \\sum_k t_k - t)` and
    :math:`\\bar t = -\\bar\\ell\\,\\mathrm{log\\_softmax}(x)`; integer ids are disconnected.
    """

    def make_node(self, logits, targets):
        logits, targets = _float_input(logits), as_tensor_variable(targets)
        _check_targets("softmax_cross_entropy_with_logits", logits, targets)
        dtype = logits.dtype if _is_ids(targets) else str(
            np.result_type(logits.dtype, targets.dtype))
        logits = cast(logits, dtype)
        if not _is_ids(targets):
            targets = cast(targets, dtype)
        return Apply(self, [logits, targets], [TensorType(dtype, logits.type.shape[:-1])])

    def perform(self, node, inputs):
        x, t = inputs
        _check_target_values(node, x, t)
        if x.shape[-1] == 0:
            raise ShapeError(f"{self}: no classes (logits of shape {x.shape}, made at "
                             f"{node.outputs[0].creation})")
        logp = _log_softmax(x, -1)
        loss = -_pick(logp, t) if t.dtype.kind in "iu" else -np.sum(t * logp, axis=-1)
        return [np.asarray(loss, dtype=node.outputs[0].dtype)]

    def pullback(self, inputs, outputs, cotangents):
        (x, t), (g,) = inputs, cotangents
        g_row = shape_padright(g)
        probs = softmax(x)
        if _is_ids(t):
            return [g_row * (probs - onehot(t, shape(x)[x.ndim - 1], x.dtype)),
                    disconnected()]
        return [g_row * (probs * tsum(t, axis=-1, keepdims=True) - t),
                -g_row * log_softmax(x)]

    def infer_shape(self, node, input_shapes):
        return [tuple(input_shapes[0][:-1])]


# ---- user functions -----------------------------------------------------------------------

def _softmax_logits(p: Variable) -> Variable | None:
    """The logits ``x`` when ``p`` is ``softmax(x)`` over its last axis, else None."""
    if (p.owner is not None and isinstance(p.owner.op, Softmax)
            and p.owner.op.axis % p.ndim == p.ndim - 1):
        return p.owner.inputs[0]
    return None


def categorical_crossentropy(coding_dist, true_dist) -> Variable:
    """Cross-entropy between predicted probabilities and targets (Theano semantics).

    Parameters
    ----------
    coding_dist : Variable, shape (..., K)
        Probabilities over ``K`` classes along the last axis.
    true_dist : Variable
        Either integer class ids of shape ``coding_dist.shape[:-1]`` (one per row):
        :math:`\\ell = -\\log p[\\ldots, y]`; or one-hot / probability rows of
        ``coding_dist``'s shape: :math:`\\ell = -\\sum_k t_k \\log p_k`.

    Returns
    -------
    Variable of shape ``coding_dist.shape[:-1]``.

    When ``coding_dist`` is ``softmax(x)`` (last axis), the result is the fused
    :class:`SoftmaxCrossEntropy` on the logits ``x``: finite values and gradients even
    for logits of +-1000. Class ids outside ``[0, K)`` raise :class:`TargetError` at run
    time.
    """
    p, t = _float_input(coding_dist), as_tensor_variable(true_dist)
    _check_targets("categorical_crossentropy", p, t)
    logits = _softmax_logits(p)
    if logits is not None:
        return SoftmaxCrossEntropy()(logits, t)
    if _is_ids(t):
        return CrossEntropyIndexed()(p, t)
    return -tsum(t * log(p), axis=-1)


def softmax_cross_entropy_with_logits(logits, targets) -> Variable:
    """Stable :math:`-\\log\\mathrm{softmax}(x)[y]` from unnormalised logits.

    Parameters
    ----------
    logits : Variable, shape (..., K)
    targets : Variable
        Integer class ids of shape ``logits.shape[:-1]``, or one-hot / probability rows
        of ``logits``'s shape.

    Returns
    -------
    Variable of shape ``logits.shape[:-1]``:
    :math:`\\mathrm{logsumexp}(x) - x_y` (or :math:`-\\sum_k t_k \\log\\mathrm{softmax}(x)_k`),
    whose gradient with respect to the logits is ``softmax(x) - onehot(y)`` per row.
    """
    return SoftmaxCrossEntropy()(logits, targets)


def sigmoid_binary_crossentropy(logits, target) -> Variable:
    """Stable binary cross-entropy from logits,
    :math:`-(t \\log\\sigma(x) + (1-t)\\log(1-\\sigma(x))) = \\mathrm{softplus}(x) - t x`,
    with gradient :math:`\\sigma(x) - t`."""
    x = _float_input(logits)
    return softplus(x) - _as_target(target) * x


def binary_crossentropy(output, target) -> Variable:
    """Elementwise :math:`-(t \\log o + (1 - t) \\log(1 - o))` for probabilities ``o``.

    When ``output`` is ``sigmoid(x)`` this builds :func:`sigmoid_binary_crossentropy` on
    ``x`` instead (same value, finite for any ``x``).
    """
    o, t = _float_input(output), _as_target(target)
    if _is_elemwise(o, S.Sigmoid):
        return sigmoid_binary_crossentropy(o.owner.inputs[0], t)
    return -(t * log(o) + (1 - t) * log(1 - o))


def _as_target(t):
    """Variables and Python numbers as they are (numbers take the tensor's dtype); arrays
    become constants (a bare ndarray on the left of ``*`` would not build a graph)."""
    return t if isinstance(t, Variable) or is_python_number(t) else as_tensor_variable(t)

