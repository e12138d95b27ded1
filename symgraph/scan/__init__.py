"""Loops over time: ``scan`` (Theano's interface) and the ``Scan`` op behind it."""

from symgraph.scan.build import scan
from symgraph.scan.op import Scan

__all__ = ["Scan", "scan"]
