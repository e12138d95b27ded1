"""Loops over time: ``scan`` (Theano's interface) and the ``Scan`` op behind it."""

from symgraph.scan import compile_rewrites as _compile_rewrites  # noqa: F401 (registers)
from symgraph.scan.build import scan
from symgraph.scan.op import Scan

__all__ = ["Scan", "scan"]
