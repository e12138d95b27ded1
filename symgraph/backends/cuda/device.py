"""Is there a device to run on? numba-cuda imported lazily, with one clear error when it
is missing or finds neither a GPU nor its simulator.

numba-cuda chooses between the GPU and its simulator (threads running the kernels as
Python, ``NUMBA_ENABLE_CUDASIM=1``) when ``numba.cuda`` is first imported; the choice
holds for the rest of the process.
"""

from __future__ import annotations

import importlib
import importlib.util

from symgraph.errors import SymgraphError

INSTALL_HINT = 'pip install -e ".[cuda]" (or pip install numba-cuda==0.30.4)'


class CudaUnavailableError(SymgraphError, RuntimeError):
    """``mode='cuda'`` cannot run here: numba-cuda is missing, or it finds no GPU."""


def numba_cuda_installed() -> bool:
    """True when the numba-cuda package (not only numba's deprecated copy) is installed."""
    return importlib.util.find_spec("numba_cuda") is not None


def require_cuda():
    """``numba.cuda`` when kernels can run (on a GPU or in the simulator), else raise
    :class:`CudaUnavailableError` saying what is missing and how to get it."""
    if not numba_cuda_installed():
        raise CudaUnavailableError(
            f"mode='cuda' needs the numba-cuda package, which is not installed: {INSTALL_HINT}")
    try:
        from numba import cuda
    except ImportError as exc:  # e.g. the NVIDIA CUDA Python bindings are missing
        raise CudaUnavailableError(f"mode='cuda': numba-cuda does not import ({exc}); "
                                   f"reinstall it: {INSTALL_HINT}") from None

    _import_array_support()
    if simulator_enabled():
        return cuda
    try:
        cuda.current_context()
    except Exception as exc:  # numba-cuda's driver errors have several types
        raise CudaUnavailableError(
            "mode='cuda' needs an NVIDIA GPU with a working driver, or NUMBA_ENABLE_CUDASIM=1 "
            "(set before numba.cuda is first imported) for numba-cuda's simulator; "
            f"numba-cuda says: {' '.join(str(exc).split())}") from None
    return cuda


def _import_array_support() -> None:
    """Import numba-cuda's numpy-array implementation, which its kernel compiler loads.

    numba-cuda 0.30.4 registers its CUDA version of ``np.row_stack`` there for every
    numpy >= 2, but numpy 2.5 removed ``row_stack`` (an alias of ``vstack``), so the import
    fails on the first kernel compile. With numpy >= 2.5 the alias is put back for the
    import and removed again after it.
    """
    import numpy as np

    missing = not hasattr(np, "row_stack")
    if missing:
        np.row_stack = np.vstack
    try:
        importlib.import_module("numba.cuda.np.arrayobj")
    finally:
        if missing:
            del np.row_stack


def simulator_enabled() -> bool:
    """Whether ``numba.cuda`` runs kernels in its simulator (decided at its import)."""
    from numba.cuda.core import config

    return bool(config.ENABLE_CUDASIM)
