"""Random streams, Theano style: ``rs = sg.RandomStreams(seed); u = rs.uniform((n, m))``.

Counter-based and reproducible. Every draw made with a stream (each call of
``rs.uniform``, ``rs.normal``, ``rs.binomial``) owns a shared *state*, a uint64 vector
``[seed, stream, counter]``; its values are a pure function of that state, computed with
numpy's Philox generator (key ``(seed, stream)``, the counter in the top word of Philox's
256-bit counter, so successive calls never overlap). The state's ``default_update``
advances the counter by one, and ``sg.function`` applies it after every call unless the
state is updated explicitly (or ``no_default_updates=True``). Hence:

- the same seed gives the same draws, in every run and every function;
- each call of a compiled function gets fresh draws;
- ``rs.seed(n)`` resets every stream of ``rs`` as if it had been made with seed ``n``.

Switching dropout off at evaluation time is the model's business (a ``train`` flag).
"""

from __future__ import annotations

import numpy as np

from symgraph.config import config
from symgraph.errors import ShapeError
from symgraph.graph import Apply, Constant, SharedVariable, Variable
from symgraph.op import NotImplementedGrad, Op, disconnected
from symgraph.ops.basic import as_tensor_variable, cast
from symgraph.ops.shape import _as_dims
from symgraph.types import FLOAT_DTYPES, TensorType, format_shape

__all__ = ["RandomStreams", "RandomVariable"]

_MAX_SEED = 2**64


class RandomVariable(Op):
    """A draw from ``dist`` in {``'uniform'``, ``'normal'``, ``'binomial'``}.

    Inputs: ``(state, param0, param1, *size)``; the parameters are ``(low, high)``,
    ``(avg, std)`` or ``(n, p)`` and broadcast against ``size``.

    - uniform: :math:`low + (high - low)\\,u`, :math:`u \\sim U[0, 1)`;
    - normal: :math:`avg + std\\,z`, :math:`z \\sim N(0, 1)`;
    - binomial: the number of successes in ``n`` trials of probability ``p``.

    Gradients: the state and the size are disconnected; the parameters have no gradient
    (:class:`NotImplementedGrad`): to learn them, draw a standard sample and transform it
    in the graph (``low + (high - low) * rs.uniform(size)``).
    """

    __props__ = ("dist", "dtype")
    foldable = False  # a draw is never precomputed at compile time
    mergeable = False  # and never merged with another draw (CSE)

    def __init__(self, dist: str, dtype: str) -> None:
        self.dist, self.dtype = dist, str(np.dtype(dtype))

    def make_node(self, state, p0, p1, *size):
        if state.dtype != "uint64" or state.ndim != 1:
            raise TypeError(f"{self}: the state must be a uint64 vector, got {state.describe()}")
        static = tuple(int(d.value) if isinstance(d, Constant) else None for d in size)
        for name, param in (("first", p0), ("second", p1)):
            if param.ndim > len(size) or any(
                    s is not None and ps not in (None, 1, s)
                    for s, ps in zip(static[len(static) - param.ndim:], param.type.shape)):
                raise ShapeError(f"{self}: the {name} parameter {param.describe()} does not "
                                 f"broadcast to the size {format_shape(static)}")
        return Apply(self, [state, p0, p1, *size], [TensorType(self.dtype, static)])

    def perform(self, node, inputs):
        state, p0, p1, *size = inputs
        shape = tuple(int(d) for d in size)
        if any(d < 0 for d in shape):
            raise ShapeError(f"{self}: negative size {shape} (made at "
                             f"{node.outputs[0].creation})")
        rng = generator(state)
        try:
            return [np.asarray(self._draw(rng, p0, p1, shape), dtype=self.dtype)]
        except ValueError as exc:
            raise ShapeError(f"{self}: {exc} (parameters of shapes {p0.shape} and "
                             f"{p1.shape}, size {shape}; made at "
                             f"{node.outputs[0].creation})") from exc

    def _draw(self, rng: np.random.Generator, p0, p1, shape):
        if self.dist == "uniform":
            u = rng.random(shape, dtype=self.dtype)
            return np.broadcast_to(p0 + (p1 - p0) * u, shape)
        if self.dist == "normal":
            z = rng.standard_normal(shape, dtype=self.dtype)
            return np.broadcast_to(p0 + p1 * z, shape)
        if np.any(p1 < 0) or np.any(p1 > 1) or np.any(p0 < 0):
            raise ValueError("binomial needs n >= 0 and p in [0, 1]")
        return rng.binomial(p0, p1, size=shape)

    def pullback(self, inputs, outputs, cotangents):
        reason = ("random draws are not differentiable in their parameters; draw a standard "
                  "sample and transform it in the graph instead")
        return [disconnected(), NotImplementedGrad(self, 1, reason),
                NotImplementedGrad(self, 2, reason)] + [disconnected()] * (len(inputs) - 3)

    def infer_shape(self, node, input_shapes):
        return [tuple(node.inputs[3:])]


def generator(state: np.ndarray) -> np.random.Generator:
    """The numpy generator for a state ``[seed, stream, counter]``."""
    seed, stream, counter = (np.uint64(v) for v in state[:3])
    bits = np.random.Philox(key=np.array([seed, stream], dtype=np.uint64),
                            counter=np.array([0, 0, 0, counter], dtype=np.uint64))
    return np.random.Generator(bits)


class RandomStreams:
    """A source of reproducible random draws for graphs (Theano's ``RandomStreams``).

    Parameters
    ----------
    seed : int, optional
        In ``[0, 2**64)``. ``None`` takes a seed from the operating system (draws are then
        not reproducible).

    Examples
    --------
    >>> rs = sg.RandomStreams(seed=1234)
    >>> mask = rs.binomial(h.shape, p=0.5, dtype=sg.config.floatX)   # dropout mask
    >>> f = sg.function([h], h * mask)   # each call draws a new mask
    """

    def __init__(self, seed: int | None = None) -> None:
        self._seed = _check_seed(seed)
        self.states: list[SharedVariable] = []

    # ---- distributions ------------------------------------------------------------------
    def uniform(self, size=(), low=0.0, high=1.0, dtype=None) -> Variable:
        """Uniform draws in ``[low, high)`` of shape ``size`` (ints or symbolic int
        scalars, e.g. ``x.shape``); ``low``/``high`` broadcast against ``size``."""
        dtype = _float_dtype(dtype, "uniform")
        return self._draw("uniform", dtype, size, cast(as_tensor_variable(low), dtype),
                          cast(as_tensor_variable(high), dtype))

    def normal(self, size=(), avg=0.0, std=1.0, dtype=None) -> Variable:
        """Normal draws with mean ``avg`` and standard deviation ``std``, shape ``size``."""
        dtype = _float_dtype(dtype, "normal")
        return self._draw("normal", dtype, size, cast(as_tensor_variable(avg), dtype),
                          cast(as_tensor_variable(std), dtype))

    def binomial(self, size=(), n=1, p=0.5, dtype="int64") -> Variable:
        """Binomial draws (successes in ``n`` trials of probability ``p``), shape ``size``.
        With ``n=1`` and ``dtype=floatX`` this is a dropout keep-mask with keep rate
        ``p``: ``h * rs.binomial(h.shape, p=1 - rate, dtype=floatX) / (1 - rate)``."""
        dtype = config.floatX if dtype == "floatX" else str(np.dtype(dtype))
        n = cast(as_tensor_variable(n), "int64")
        p = as_tensor_variable(p)
        if not p.type.is_float:
            p = cast(p, "float64")
        return self._draw("binomial", dtype, size, n, p)

    # ---- state ----------------------------------------------------------------------------
    def _draw(self, dist: str, dtype: str, size, p0: Variable, p1: Variable) -> Variable:
        dims = _as_dims(size)
        state = SharedVariable(self._initial_state(len(self.states)),
                               name=f"rng_state_{dist}_{len(self.states)}")
        state.default_update = state + Constant(np.array([0, 0, 1], dtype=np.uint64))
        self.states.append(state)
        return RandomVariable(dist, dtype)(state, p0, p1, *dims)

    def _initial_state(self, stream: int) -> np.ndarray:
        return np.array([self._seed, stream, 0], dtype=np.uint64)

    def seed(self, seed: int | None = None) -> None:
        """Restart every stream of this object as if it had been made with ``seed``."""
        self._seed = _check_seed(seed)
        for stream, state in enumerate(self.states):
            state.set_value(self._initial_state(stream))

    def updates(self) -> list[tuple[SharedVariable, Variable]]:
        """The ``(state, advanced state)`` pairs; ``sg.function`` applies them by itself,
        so passing them as ``updates=`` is only needed with ``no_default_updates=True``."""
        return [(s, s.default_update) for s in self.states]

    def __repr__(self) -> str:
        return f"RandomStreams(seed={self._seed}, {len(self.states)} streams)"


def _check_seed(seed) -> int:
    if seed is None:
        return int(np.random.SeedSequence().generate_state(1, np.uint64)[0])
    if not isinstance(seed, int | np.integer) or not 0 <= int(seed) < _MAX_SEED:
        raise ValueError(f"RandomStreams: seed must be an int in [0, 2**64), got {seed!r}")
    return int(seed)


def _float_dtype(dtype, where: str) -> str:
    dtype = config.floatX if dtype in (None, "floatX") else str(np.dtype(dtype))
    if dtype not in FLOAT_DTYPES[1:]:
        raise TypeError(f"RandomStreams.{where}: dtype must be float32 or float64, got "
                        f"{dtype}")
    return dtype
