"""Feed-forward building blocks: embedding, linear and softmax output layers, dropout.

Every layer is symbolic: calling it on graph variables returns graph variables, and its
trainable weights are shared variables listed in ``.params`` with dotted names
(``'embed.W'``, ``'out.b'``), the keys under which checkpoints store them.

Initialisation: every weight is drawn ``uniform(-s, s)`` from the numpy ``rng`` given to
the layer, with ``s = init_scale`` when given (the PTB recipe uses 0.1) and a fan-in
scaled default otherwise (see each layer). Values take ``sg.config.floatX`` unless a
``dtype`` is given.

Built only on the public API.
"""

from __future__ import annotations

import numpy as np

import symgraph as sg
import symgraph.tensor as T
from symgraph import Variable

__all__ = ["uniform_init", "Embedding", "Linear", "LogisticRegression", "Dropout", "n_params"]


def uniform_init(rng: np.random.Generator, shape, scale: float, dtype=None) -> np.ndarray:
    """``uniform(-scale, scale)`` of ``shape``, drawn in float64 and cast to ``dtype``
    (default ``sg.config.floatX``), so that float32 and float64 models start alike."""
    if not scale >= 0:
        raise ValueError(f"init scale must be >= 0, got {scale!r}")
    values = rng.uniform(-scale, scale, size=shape)
    return values.astype(dtype or sg.config.floatX)


def _dims(name: str, **sizes: int) -> None:
    for key, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name}: {key} must be a positive int, got {value!r}")


def n_params(params) -> int:
    """Total number of scalars in a list of shared variables."""
    return int(sum(p.get_value(borrow=True).size for p in params))


class Embedding:
    """Lookup table: row ``i`` of ``W`` (``n_vocab``, ``dim``) is the vector of token ``i``.

    .. math:: e_{tb} = W[\\mathrm{ids}_{tb}]

    The gradient is a scatter-add into the rows that were looked up (repeated ids
    accumulate). Default init: ``uniform(-0.1, 0.1)``.

    Parameters
    ----------
    n_vocab, dim : int
    rng : numpy.random.Generator
    init_scale : float, optional
    name : str
        Prefix of the parameter names.
    """

    def __init__(self, n_vocab: int, dim: int, rng: np.random.Generator,
                 init_scale: float | None = None, name: str = "embed", dtype=None) -> None:
        _dims("Embedding", n_vocab=n_vocab, dim=dim)
        scale = 0.1 if init_scale is None else init_scale
        self.n_vocab, self.dim, self.name = int(n_vocab), int(dim), name
        self.W = sg.shared(uniform_init(rng, (n_vocab, dim), scale, dtype), name=f"{name}.W")
        self.params = [self.W]

    def __call__(self, ids) -> Variable:
        """Vectors of integer ``ids`` of any shape ``S``; the result has shape ``S + (dim,)``."""
        ids = T.as_tensor_variable(ids)
        if not ids.type.is_integer:
            raise TypeError(f"Embedding {self.name!r}: ids must be integers, got "
                            f"{ids.describe()}")
        if ids.ndim == 1:
            return self.W[ids]
        rows = self.W[ids.flatten()]
        return rows.reshape([ids.shape[i] for i in range(ids.ndim)] + [self.dim])


class Linear:
    """Affine map on the last axis: :math:`y = x W + b`, ``W`` (``n_in``, ``n_out``).

    Inputs of rank > 2 are flattened to one matrix for a single GEMM and reshaped back.
    Default init: ``uniform(-1/sqrt(n_in), 1/sqrt(n_in))`` for ``W`` and ``b``.
    """

    def __init__(self, n_in: int, n_out: int, rng: np.random.Generator,
                 init_scale: float | None = None, name: str = "linear", dtype=None) -> None:
        _dims(type(self).__name__, n_in=n_in, n_out=n_out)
        scale = 1.0 / np.sqrt(n_in) if init_scale is None else init_scale
        self.n_in, self.n_out, self.name = int(n_in), int(n_out), name
        self.W = sg.shared(uniform_init(rng, (n_in, n_out), scale, dtype), name=f"{name}.W")
        self.b = sg.shared(uniform_init(rng, (n_out,), scale, dtype), name=f"{name}.b")
        self.params = [self.W, self.b]

    def __call__(self, x) -> Variable:
        """:math:`x W + b` over the last axis of ``x`` (rank >= 1)."""
        x = T.as_tensor_variable(x)
        if x.ndim <= 2:
            return T.dot(x, self.W) + self.b
        lead = [x.shape[i] for i in range(x.ndim - 1)]
        flat = x.reshape((-1, self.n_in))
        return (T.dot(flat, self.W) + self.b).reshape(lead + [self.n_out])


class LogisticRegression(Linear):
    """Softmax output layer (Theano tutorial's ``LogisticRegression``):

    .. math:: z = x W + b, \\qquad p(y = k \\mid x) = \\mathrm{softmax}(z / \\tau)_k

    Train on :meth:`logits` with the fused, stable cross-entropy
    (:func:`symgraph.models.masks.sequence_cross_entropy`); use :meth:`probabilities`
    to sample.
    """

    def logits(self, x) -> Variable:
        """Unnormalised scores :math:`z = x W + b`, shape ``x.shape[:-1] + (n_out,)``."""
        return self(x)

    def probabilities(self, x, temperature=1.0) -> Variable:
        """:math:`\\mathrm{softmax}(z / \\tau)` over the last axis; ``temperature`` (τ) may
        be a number or a symbolic scalar."""
        z = self.logits(x)
        if not (isinstance(temperature, int | float) and temperature == 1.0):
            z = z / T.cast(temperature, z.dtype)
        return T.nnet.softmax(z)

    def p_y_given_x(self, x) -> Variable:
        """Alias of :meth:`probabilities` (the Theano tutorial's name)."""
        return self.probabilities(x)


class Dropout:
    """Inverted dropout with a seeded random stream.

    In training each entry is kept with probability :math:`1 - p` and scaled up:

    .. math:: y = x \\odot \\frac{r}{1 - p}, \\qquad r \\sim \\mathrm{Bernoulli}(1 - p)

    so :math:`E[y] = x` and evaluation needs no rescaling: with ``train=False`` (or
    ``p == 0``) the layer is the identity. Draws come from ``streams``
    (``sg.RandomStreams(seed)``): the same seed gives the same masks, each call of a
    compiled function gets fresh ones, and the stream states (shared variables in
    ``streams.states``) can be checkpointed.
    """

    def __init__(self, p: float, streams: sg.RandomStreams | None = None) -> None:
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p!r}")
        if p > 0 and streams is None:
            raise ValueError("Dropout with p > 0 needs a seeded sg.RandomStreams")
        self.p, self.streams = float(p), streams

    def __call__(self, x, train: bool) -> Variable:
        """``x`` with dropout applied when ``train`` is true."""
        x = T.as_tensor_variable(x)
        if not train or self.p == 0.0:
            return x
        keep = self.streams.binomial(x.shape, p=1.0 - self.p, dtype=x.dtype)
        return x * keep * (1.0 / (1.0 - self.p))
