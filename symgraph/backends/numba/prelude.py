"""Scalar helpers that generated code calls: the ``helpers`` named by ScalarOp templates
(``sg_sigmoid``, ``sg_softplus``, ``sg_sign``, ``sg_round``), vectorisable float32
``exp``/``tanh``/``sigmoid``, the exceptions that compiled code raises, and the options
every function is compiled with. What graph functions call besides kernels is in
``glue``.

pip's llvmlite has no SVML, so ``math.exp``/``math.tanh`` inside a numba loop are scalar
libm calls that block vectorisation (a fused gate loop ran 60x slower than numpy's
``tanh``). The float32 versions below use only arithmetic, comparisons and a bit cast,
so LLVM vectorises loops that call them. Accuracy, measured against float64 references
over [-120, 100] (tests/symgraph/backends/test_numba_fastmath.py):

- ``sg_exp32``: range reduction ``x = n ln2 + r`` (ln2 split in two), Cephes' degree-6
  polynomial for ``e**r``, scaling by ``2**n`` as two exact powers of two (so results
  underflow gradually to denormals and overflow to inf like ``expf``): <= 1 ulp;
- ``sg_tanh32``: Eigen's rational approximation ``x p(x^2) / q(x^2)`` (degree 13/6,
  input clamped to +-7.905, ``x`` itself below 4e-4): < 7 ulp (4e-7 relative), as
  fast as numpy's AVX-512 ``tanh``; Cephes' polynomial / ``exp`` split was 1.5 ulp but
  twice as slow;
- ``sg_sigmoid32``: ``1 / (1 + exp(-x))``: <= 3 ulp where the result is a normal
  float32; for ``x < -88.7`` (results below 1.2e-38) it returns denormals or 0, an
  absolute error under 3e-39.

NaN propagates through all three. Every function is compiled with
``error_model='numpy'``: the default ('python') checks each division for a zero divisor,
and that branch alone stops LLVM from vectorising the loop.
"""

from __future__ import annotations

import math

import llvmlite.binding as llvm
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

__all__ = ["SGRuntimeError", "SGUseReference", "sg_exp32", "sg_tanh32", "sg_sigmoid32",
           "sg_sigmoid", "sg_softplus", "sg_sign", "sg_round", "JIT_OPTIONS"]

#: Options of every function this backend compiles.
JIT_OPTIONS = {"error_model": "numpy", "cache": True}

# A fused loop reads and writes many arrays that numba cannot declare non-aliasing, so
# LLVM vectorises it only behind run-time overlap checks; its default limits on their
# number (8 and 128) left a 9-output LSTM backward loop scalar (6x slower). Raising the
# limits only lets the vectoriser emit more checks (process-wide LLVM options).
llvm.set_option("symgraph", "-runtime-memory-check-threshold=4096")
llvm.set_option("symgraph", "-vectorize-memory-check-threshold=4096")


class SGRuntimeError(Exception):
    """Raised by compiled code when a run-time check fails (shapes, indices); the runner
    then reruns the graph with the reference interpreter, which raises the precise
    error (type and message) that ``mode='numpy'`` gives."""


class SGUseReference(SGRuntimeError):
    """Raised by compiled code for a case it does not compute (a scan of zero steps whose
    step outputs have trailing dimensions known only once a step ran); the runner returns
    the reference interpreter's results instead."""


@intrinsic
def _i32_as_f32(typingctx, x):
    """Reinterpret the bits of an int32 as a float32 (free; vectorises)."""
    sig = types.float32(types.int32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return sig, codegen


_F = np.float32


@numba.njit(**JIT_OPTIONS)
def sg_exp32(x):
    """``exp`` of a float32, vectorisable (see the module docstring)."""
    y = min(max(x, _F(-104.0)), _F(89.0))
    # round to nearest by the 1.5 * 2**23 trick (no libm floor call: vectorises)
    n = (y * _F(1.44269504088896341) + _F(12582912.0)) - _F(12582912.0)
    r = y - n * _F(0.693359375)
    r = r - n * _F(-2.12194440e-4)
    p = _F(1.9875691500e-4)
    p = p * r + _F(1.3981999507e-3)
    p = p * r + _F(8.3334519073e-3)
    p = p * r + _F(4.1665795894e-2)
    p = p * r + _F(1.6666665459e-1)
    p = p * r + _F(5.0000001201e-1)
    p = p * r * r + r + _F(1.0)
    k = np.int32(n)
    half = k >> np.int32(1)
    s1 = _i32_as_f32((half + np.int32(127)) << np.int32(23))
    s2 = _i32_as_f32((k - half + np.int32(127)) << np.int32(23))
    out = p * s1 * s2
    return out if x == x else x


@numba.njit(**JIT_OPTIONS)
def sg_tanh32(x):
    """``tanh`` of a float32, vectorisable (see the module docstring)."""
    c = _F(7.90531110763549805)
    y = min(max(x, -c), c)
    z = y * y
    p = _F(-2.76076847742355e-16)
    p = p * z + _F(2.00018790482477e-13)
    p = p * z + _F(-8.60467152213735e-11)
    p = p * z + _F(5.12229709037114e-08)
    p = p * z + _F(1.48572235717979e-05)
    p = p * z + _F(6.37261928875436e-04)
    p = p * z + _F(4.89352455891786e-03)
    q = _F(1.19825839466702e-06)
    q = q * z + _F(1.18534705686654e-04)
    q = q * z + _F(2.26843463243900e-03)
    q = q * z + _F(4.89352518554385e-03)
    out = y * p / q
    out = x if abs(x) < _F(0.0004) else out
    return out if x == x else x


@numba.njit(**JIT_OPTIONS)
def sg_sigmoid32(x):
    """``1 / (1 + exp(-x))`` of a float32, vectorisable (see the module docstring)."""
    out = _F(1.0) / (_F(1.0) + sg_exp32(-x))
    return out if x == x else x


@numba.njit(**JIT_OPTIONS)
def sg_sigmoid(x):
    """Stable logistic function (libm ``exp``; float32 loops use ``sg_sigmoid32``)."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@numba.njit(**JIT_OPTIONS)
def sg_softplus(x):
    """``log(1 + exp(x))`` without overflow: ``max(x, 0) + log1p(exp(-|x|))``."""
    return max(x, 0) + math.log1p(math.exp(-abs(x)))


@numba.njit(**JIT_OPTIONS)
def sg_sign(x):
    """numpy's ``sign``: -1, 0 or 1 (NaN stays NaN)."""
    if x != x:
        return x
    return (x > 0) - (x < 0)


@numba.njit(**JIT_OPTIONS)
def sg_round(x):
    """numpy's ``round``: half to even."""
    return np.rint(x)
