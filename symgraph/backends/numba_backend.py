"""``mode='numba'``: see :mod:`symgraph.backends.numba`."""

from symgraph.backends.numba import (
    STATS,
    blas_threads,
    compile,
    has_lowering,
    lower,
    set_blas_threads,
)

__all__ = ["STATS", "blas_threads", "compile", "has_lowering", "lower", "set_blas_threads"]
