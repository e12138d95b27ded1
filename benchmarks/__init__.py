"""Throughput benchmarks: symgraph side by side with PyTorch and JAX.

Run from the repository root::

    python -m benchmarks.run [--workload NAME ...] [--backends numpy,numba,cuda]
                             [--peers torch,jax] [--json PATH] [--budget SECONDS]

Modules:
- :mod:`benchmarks.workloads` -- the workload specs (sizes, optimizer, data source);
- :mod:`benchmarks.data` -- numpy-only data preparation shared by every system;
- :mod:`benchmarks.harness` -- the system registry, timing and FLOP accounting;
- :mod:`benchmarks.peers` -- the PyTorch and JAX implementations;
- :mod:`benchmarks.symgraph_systems` -- where the symgraph systems are registered;
- :mod:`benchmarks.run` -- the command line.

Nothing in ``symgraph`` imports this package.
"""
