"""``mode='cuda'``: see :mod:`symgraph.backends.cuda`. Needs numba-cuda (the ``cuda``
extra) and a GPU, or ``NUMBA_ENABLE_CUDASIM=1`` for numba-cuda's simulator."""

from __future__ import annotations

from symgraph.backends.cuda.device import CudaUnavailableError, require_cuda
from symgraph.fgraph import FunctionGraph

__all__ = ["CudaUnavailableError", "compile"]


def compile(fgraph: FunctionGraph, n_inputs: int = 0):  # noqa: A001 - the backend protocol
    """A runner for ``fgraph`` on the GPU (raises :class:`CudaUnavailableError`, saying
    what is missing, when there is none)."""
    require_cuda()
    from symgraph.backends.cuda.program import Runner

    return Runner(fgraph, n_inputs)
