"""The BLAS behind compiled matrix products: numba's ``np.dot`` calls scipy's OpenBLAS
(``scipy.linalg.cython_blas``), a different library and thread pool from numpy's. All
products of a compiled function go through it; its thread count is set here.

On a small or shared machine, OpenBLAS threads spin-waiting for cores that other work is
using can make small per-step products many times slower (the LSTM training step on the
2-core development machine: 64 ms with 2 threads under load, 24 ms with 1). Set
``SYMGRAPH_BLAS_THREADS`` (read when the backend is first used) or call
:func:`set_threads`.
"""

from __future__ import annotations

import ctypes
import glob
import os

_SETTERS = ("scipy_openblas_set_num_threads", "scipy_openblas_set_num_threads64_",
            "openblas_set_num_threads")
_GETTERS = ("scipy_openblas_get_num_threads", "scipy_openblas_get_num_threads64_",
            "openblas_get_num_threads")


def _library():
    import scipy
    import scipy.linalg.cython_blas  # noqa: F401  (loads the library numba uses)

    folder = os.path.join(os.path.dirname(os.path.dirname(scipy.__file__)), "scipy.libs")
    for path in sorted(glob.glob(os.path.join(folder, "libscipy_openblas*.so*"))):
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None


def _symbol(names):
    lib = _library()
    for name in names if lib is not None else ():
        fn = getattr(lib, name, None)
        if fn is not None:
            return fn
    return None


def set_threads(n: int) -> bool:
    """Use ``n`` threads in the BLAS of compiled code; False if it cannot be set."""
    fn = _symbol(_SETTERS)
    if fn is None:
        return False
    fn(ctypes.c_int(int(n)))
    return True


def get_threads() -> int | None:
    """The BLAS thread count of compiled code (None if unknown)."""
    fn = _symbol(_GETTERS)
    return None if fn is None else int(fn())


def configure_from_environment() -> None:
    """Apply ``SYMGRAPH_BLAS_THREADS`` when it is set."""
    value = os.environ.get("SYMGRAPH_BLAS_THREADS")
    if value:
        set_threads(int(value))
