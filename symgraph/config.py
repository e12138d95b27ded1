"""Global settings: ``floatX`` and the default compilation ``mode``.

``floatX`` defaults to ``'float32'`` and is read from ``SYMGRAPH_FLOATX``; ``mode`` defaults
to ``'numba'`` when numba imports, else ``'numpy'``, and is read from ``SYMGRAPH_MODE``.
"""

from __future__ import annotations

import os

_FLOATX_CHOICES = ("float32", "float64")
_MODE_CHOICES = ("numpy", "numba", "cuda")


def _default_mode() -> str:
    try:
        import numba  # noqa: F401
    except ImportError:  # pragma: no cover - numba is a hard dependency
        return "numpy"
    return "numba"


class Config:
    """Mutable settings object; assignments are validated."""

    def __init__(self) -> None:
        self.floatX = os.environ.get("SYMGRAPH_FLOATX", "float32")
        self.mode = os.environ.get("SYMGRAPH_MODE", _default_mode())
        self.excluded_rewrites: set[str] = set()

    def __setattr__(self, key: str, value) -> None:
        if key == "floatX" and value not in _FLOATX_CHOICES:
            raise ValueError(f"config.floatX must be one of {_FLOATX_CHOICES}, got {value!r}")
        if key == "mode" and value not in _MODE_CHOICES:
            raise ValueError(f"config.mode must be one of {_MODE_CHOICES}, got {value!r}")
        object.__setattr__(self, key, value)


config = Config()
