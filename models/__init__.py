"""Symbolic model building blocks, data handling and the language-model job.

Built only on the public API (``import symgraph as sg``, ``import symgraph.tensor as T``).
"""
