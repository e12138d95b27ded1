"""The numba CPU backend (``mode='numba'``): the whole graph as one generated,
njit-compiled function. See ``compiler`` for the pipeline, ``registry`` for adding the
lowering of a new op, ``fusion`` for elementwise fusion and ``lower_scan`` for loops."""

from symgraph.backends.numba.blas import get_threads as blas_threads
from symgraph.backends.numba.blas import set_threads as set_blas_threads
from symgraph.backends.numba.compiler import STATS, compile
from symgraph.backends.numba.registry import has_lowering, lower

__all__ = ["STATS", "blas_threads", "compile", "has_lowering", "lower", "set_blas_threads"]
