"""Peer implementations of the benchmark workloads (PyTorch, JAX).

Each module exposes ``build(workload, dataset) -> trainer`` (see :mod:`benchmarks.harness`)
and imports its framework at module level, so importing it fails with ImportError when
the framework is not installed.
"""
