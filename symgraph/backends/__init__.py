"""Backends turn a rewritten FunctionGraph into a callable ``runner(values) -> results``
(values: the graph's inputs in order; results: its outputs in order). A runner that keeps
shared values itself (the CUDA backend keeps them on the GPU) names its ``holder``; see
``Function.__call__`` and ``SharedVariable.hold``."""

from __future__ import annotations

import importlib

_BACKENDS = {
    "numpy": "symgraph.backends.numpy_backend",
    "numba": "symgraph.backends.numba_backend",
    "cuda": "symgraph.backends.cuda_backend",
}


def get_backend(name: str):
    """The backend module for ``name`` (imported on first use)."""
    if name not in _BACKENDS:
        raise ValueError(f"unknown mode {name!r}; choose one of {sorted(_BACKENDS)}")
    return importlib.import_module(_BACKENDS[name])
